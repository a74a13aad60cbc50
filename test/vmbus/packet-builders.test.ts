// The packet builders of src/vmbus/packet.ts write descriptors and range tables with direct
// stores (the data path cannot afford the generic struct encoder): their bytes must be what the
// one declaration of each struct encodes, and a value that does not fit a field is refused with
// a WireError naming it, as the encoder refuses it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { completion, gpaDirect, inband, transferPages, transferPagesHeaderSize, writeTransferPagesHeader } from '../../src/vmbus/packet.js';
import { PacketType, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED } from '../../src/vmbus/wire/constants.js';
import { GpaDirectHeader, GpaRange, PacketDescriptor, TransferPageHeader, TransferPageRange } from '../../src/vmbus/wire/packets.js';
import { WireError } from '../../src/tlfs/struct.js';
import { RUNS } from './fuzz-runs.js';

const U64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const len8 = (n: number) => Math.ceil(n / 8);
const descriptor = (type: number, offset8: number, length8: number, flags: number, transId: bigint) => PacketDescriptor.encode({ type, offset8, len8: length8, flags, trans_id: transId });

describe('packet builders against the struct declarations', () => {
  it('in-band packets and completions: the descriptor the declaration encodes', () => {
    fc.assert(
      fc.property(U64, fc.uint8Array({ maxLength: 100 }), fc.boolean(), (tid, payload, want) => {
        const [d, p] = inband(payload, tid, want);
        expect(d).toEqual(descriptor(PacketType.DATA_INBAND, 2, len8(16 + payload.length), want ? VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED : 0, tid));
        expect(p).toBe(payload);
        const [c] = completion(tid, payload);
        expect(c).toEqual(descriptor(PacketType.COMP, 2, len8(16 + payload.length), 0, tid));
      }),
      { numRuns: RUNS },
    );
  });

  it('transfer-page packets: descriptor, page set, range count and ranges where TransferPageHeader puts them, zero padding; the kept-buffer writer gives the same bytes', () => {
    const range = fc.record({ byteCount: fc.nat({ max: 0xffffffff }), byteOffset: fc.nat({ max: 0xffffffff }) });
    fc.assert(
      fc.property(fc.nat({ max: 0xffff }), fc.array(range, { minLength: 1, maxLength: 40 }), U64, fc.nat({ max: 64 }), (set, ranges, tid, payloadLen) => {
        const [h] = transferPages(set, ranges, tid, new Uint8Array(payloadLen));
        const size = len8(TransferPageHeader.offsets.ranges + TransferPageRange.size * ranges.length) * 8;
        const want = new Uint8Array(size);
        want.set(descriptor(PacketType.DATA_USING_XFER_PAGES, size / 8, len8(size + payloadLen), VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, tid));
        const dv = new DataView(want.buffer);
        dv.setUint16(TransferPageHeader.offsets.xfer_pageset_id, set, true);
        dv.setUint32(TransferPageHeader.offsets.range_cnt, ranges.length, true);
        ranges.forEach((r, i) => TransferPageRange.encode({ byte_count: r.byteCount, byte_offset: r.byteOffset }, want, TransferPageHeader.offsets.ranges + TransferPageRange.size * i));
        expect(h).toEqual(want);
        // Into a dirty, larger buffer from parallel arrays: the same bytes in its first `size`.
        const kept = new Uint8Array(transferPagesHeaderSize(40)).fill(0xee);
        writeTransferPagesHeader(kept, set, ranges.length, ranges.map((r) => r.byteCount), ranges.map((r) => r.byteOffset), tid, payloadLen);
        expect(kept.subarray(0, size)).toEqual(want);
      }),
      { numRuns: RUNS },
    );
  });

  it('GPA-direct packets: descriptor, range count, each range and its PFNs as GpaDirectHeader and GpaRange lay them out', () => {
    const range = fc.record({ byteCount: fc.nat({ max: 0xffff }), byteOffset: fc.nat({ max: 4095 }), pfns: fc.array(fc.nat({ max: 2 ** 40 }), { minLength: 1, maxLength: 4 }) });
    fc.assert(
      fc.property(fc.array(range, { minLength: 1, maxLength: 5 }), U64, (ranges, tid) => {
        const [h] = gpaDirect(ranges, new Uint8Array(8), tid);
        let at = GpaDirectHeader.offsets.range;
        for (const r of ranges) at += GpaRange.size + 8 * r.pfns.length;
        const want = new Uint8Array(len8(at) * 8);
        want.set(descriptor(PacketType.DATA_USING_GPA_DIRECT, want.length / 8, len8(want.length + 8), VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, tid));
        const dv = new DataView(want.buffer);
        dv.setUint32(GpaDirectHeader.offsets.range_cnt, ranges.length, true);
        at = GpaDirectHeader.offsets.range;
        for (const r of ranges) {
          dv.setUint32(at + GpaRange.offsets.byte_count, r.byteCount, true);
          dv.setUint32(at + GpaRange.offsets.byte_offset, r.byteOffset, true);
          at += GpaRange.size;
          for (const p of r.pfns) dv.setBigUint64((at += 8) - 8, BigInt(p), true);
        }
        expect(h).toEqual(want);
      }),
      { numRuns: RUNS },
    );
  });

  it('values that do not fit their fields are refused with a WireError naming the field', () => {
    expect(() => inband(new Uint8Array(0), -1n)).toThrow(WireError);
    expect(() => inband(new Uint8Array(0), 1n << 64n)).toThrow(/trans_id/);
    expect(() => inband(new Uint8Array(0x10000 * 8), 0n)).toThrow(/len8/);
    expect(() => transferPages(0x10000, [{ byteCount: 1, byteOffset: 0 }], 0n)).toThrow(/xfer_pageset_id/);
    expect(() => transferPages(1, [{ byteCount: 2 ** 32, byteOffset: 0 }], 0n)).toThrow(/byte_count/);
    expect(() => transferPages(1, [{ byteCount: 1, byteOffset: -1 }], 0n)).toThrow(/byte_offset/);
  });
});
