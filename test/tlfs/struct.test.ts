import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TLFS_LAYOUTS } from '../../src/tlfs/layouts.js';
import type { Bitfield} from '../../src/tlfs/struct.js';
import { Struct, WireError, bits, bytes, struct, u16, u32, u64, u8, type BitSpec, type FieldSpec } from '../../src/tlfs/struct.js';
import { HvMessage, HvMessageHeader, SintRegister } from '../../src/tlfs/synic.js';

describe('struct declarations', () => {
  it('lay fields out packed, in order, little-endian', () => {
    const S = struct('t', { a: u8, b: u32, c: u16, d: u64, e: bytes(3) });
    expect(S.size).toBe(18);
    expect(S.offsets).toEqual({ a: 0, b: 1, c: 5, d: 7, e: 15 });
    const buf = S.encode({ a: 0x11, b: 0x22334455, c: 0x6677, d: 0x8899aabbccddeeffn, e: new Uint8Array([1, 2, 3]) });
    expect([...buf]).toEqual([0x11, 0x55, 0x44, 0x33, 0x22, 0x77, 0x66, 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 1, 2, 3]);
  });

  it('a header written by hand decodes field by field', () => {
    const raw = new Uint8Array(16);
    raw.set([0x10, 0x00, 0x00, 0x80, 24, 0x01, 0, 0, 7]);
    expect(HvMessageHeader.decode(raw)).toEqual({ message_type: 0x80000010, payload_size: 24, message_flags: { msg_pending: 1, reserved: 0 }, reserved: 0, sender: 7n });
  });

  it('decoding too few bytes is a WireError naming the structure', () => {
    expect(() => HvMessage.decode(new Uint8Array(255))).toThrow(WireError);
    expect(() => HvMessage.decode(new Uint8Array(255))).toThrow(/hv_message: needs 256 bytes/);
    expect(() => HvMessage.decode(new Uint8Array(256), 1)).toThrow(WireError);
  });

  it('encoding a value that does not fit is a WireError naming the field', () => {
    const v = HvMessageHeader.zero();
    expect(() => HvMessageHeader.encode({ ...v, payload_size: 256 })).toThrow(/hv_message_header\.payload_size/);
    expect(() => HvMessageHeader.encode({ ...v, message_flags: { msg_pending: 2, reserved: 0 } })).toThrow(/message_flags\.msg_pending/);
    expect(() => HvMessageHeader.encode({ ...v, sender: -1n })).toThrow(WireError);
  });

  it('bit fields read, replace and encode named fields', () => {
    const v = SintRegister.encode({ vector: 0xf3, masked: 0, auto_eoi: 1 });
    expect(v).toBe(0xf3n | (1n << 17n));
    expect(SintRegister.get(v, 'vector')).toBe(0xf3);
    expect(SintRegister.with(v, 'masked', true)).toBe(v | (1n << 16n));
    expect(() => SintRegister.with(v, 'vector', 256)).toThrow(WireError);
    expect(SintRegister.reservedMask).toBe((0xffn << 8n) | (((1n << 43n) - 1n) << 21n));
    expect(() => bits('bad', 'u8', { a: 3 })).toThrow(/widths add to 3/);
  });
});

/** Bytes as hex: comparing two 4 KiB arrays this way costs microseconds, and a failure reads well. */
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

// Every declared layout, fed arbitrary bytes: decoding never fails and re-encodes the same bytes.
describe('every TLFS layout round-trips arbitrary bytes', () => {
  for (const layout of TLFS_LAYOUTS) {
    it(layout.name, () => {
      if (layout instanceof Struct) {
        const s = layout as Struct<FieldSpec>;
        fc.assert(
          fc.property(fc.uint8Array({ minLength: s.size, maxLength: s.size + 8 }), (raw) => {
            const v = s.decode(raw);
            // Not toEqual on the arrays: its element-wise deep equality took 95% of this test.
            expect(hex(s.encode(v))).toBe(hex(raw.subarray(0, s.size)));
          }),
          { numRuns: 50 },
        );
      } else {
        const b = layout as Bitfield<BitSpec>;
        fc.assert(
          fc.property(fc.bigInt({ min: 0n, max: (1n << BigInt(b.size * 8)) - 1n }), (x) => {
            expect(b.encode(b.decode(x) as Record<string, number>)).toBe(x);
          }),
          { numRuns: 200 },
        );
      }
    });
  }
});
