// The VMBus wire parsers both sides use, on arbitrary bytes: a channel message or packet parses
// to what was built, and anything else fails with the typed error naming a field (DESIGN.md
// principle 3). The server and client properties exercise them in context; these hit them hard.
import fc from 'fast-check';
import { describe, expect } from 'vitest';
import { completion, gpaDirect, inband, transferPages } from '../../src/vmbus/packet.js';
import { ChannelMessageError, decodeChannelMessage, MESSAGES } from '../../src/vmbus/wire/messages.js';
import { PacketType } from '../../src/vmbus/wire/constants.js';
import { firstGpaRange, GpaRangeAt, PacketError, PacketHead, parsePacket, parsePacketHead, parsePacketHeadAt, pfnAt } from '../../src/vmbus/wire/packets.js';
import { itFuzz } from '../fuzz/fuzz.js';
import { concatBytes } from '../../src/memory/typed-arrays.js';

const concat = concatBytes;
/** Packet bytes as they sit in a ring: the parts, zero-padded to 8 bytes. */
const inRing = (parts: readonly Uint8Array[]): Uint8Array => {
  const b = concat(parts);
  const out = new Uint8Array(Math.ceil(b.length / 8) * 8);
  out.set(b);
  return out;
};
const U64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

describe('VMBus wire parsers on arbitrary bytes', () => {
  // Mostly a descriptor of a real type, with lengths near the buffer's, then anything.
  const packetBytes = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc
      .record({ type: fc.constantFrom(6, 7, 8, 9, 11, 0, 0xffff), offset8: fc.nat(40), len8: fc.nat(40), flags: fc.constantFrom(0, 1, 2, 0x8001), rest: fc.uint8Array({ maxLength: 320 }) })
      .map((r) => {
        const b = new Uint8Array(16 + r.rest.length);
        const dv = new DataView(b.buffer);
        dv.setUint16(0, r.type, true);
        dv.setUint16(2, r.offset8, true);
        dv.setUint16(4, r.len8, true);
        dv.setUint16(6, r.flags, true);
        b.set(r.rest, 16);
        return b;
      }),
  );

  itFuzz(
    'parsePacket: a packet whose every part lies inside the bytes, or PacketError',
    'vmbus-wire.packets',
    () =>
      fc.property(packetBytes, (b) => {
        try {
          const p = parsePacket(b);
          expect(p.payload.byteOffset - b.byteOffset + p.payload.length).toBeLessThanOrEqual(b.length);
          for (const r of p.ranges ?? []) expect(r.byteOffset).toBeLessThan(4096);
        } catch (e) {
          expect(e).toBeInstanceOf(PacketError);
        }
      }),
    2000,
  );

  itFuzz(
    'parsePacketHead(At): what parsePacket says of the same bytes, in place (the same fields and first GPA range, or the same PacketError)',
    'vmbus-wire.packet-head',
    () =>
      fc.property(packetBytes, fc.nat(16), fc.nat(40), (b, spare, before) => {
        // The packet inside a bigger buffer (a private buffer, an arena), `b.length` bytes of it
        // from `base` (0 for parsePacketHead).
        const base = before === 0 ? 0 : 8 * before;
        const buffer = new Uint8Array(base + b.length + spare).fill(0xa5);
        buffer.set(b, base);
        const head = new PacketHead();
        let want: ReturnType<typeof parsePacket> | Error;
        try {
          want = parsePacket(b);
        } catch (e) {
          want = e as Error;
        }
        let got: Error | undefined;
        try {
          if (base === 0) parsePacketHead(buffer, b.length, head);
          else parsePacketHeadAt(buffer, base, b.length, head);
        } catch (e) {
          got = e as Error;
        }
        if (want instanceof Error) {
          expect(got).toBeInstanceOf(PacketError);
          expect(got?.message).toBe(want.message);
          return;
        }
        expect(got).toBeUndefined();
        expect([head.type, head.flags, head.transId, head.completionRequested]).toEqual([want.type, want.flags, want.transId, want.completionRequested]);
        expect([...buffer.subarray(head.payloadAt, head.payloadEnd)]).toEqual([...want.payload]);
        if (!want.ranges) return;
        // A GPA-direct packet's first range, read where it lies, is parsePacket's.
        const r = new GpaRangeAt();
        firstGpaRange(buffer, base, r);
        const first = want.ranges[0]!;
        expect([r.rangeCount, r.byteCount, r.byteOffset, r.pfnCount]).toEqual([want.ranges.length, first.byteCount, first.byteOffset, first.pfns.length]);
        expect(Array.from({ length: r.pfnCount }, (_, i) => pfnAt(buffer, r.pfnsAt + 8 * i))).toEqual(first.pfns);
      }),
    2000,
  );

  const range = fc.record({ byteOffset: fc.nat(4095), byteCount: fc.nat(3 * 4096) }).map((r) => ({ ...r, pfns: Array.from({ length: Math.ceil((r.byteOffset + r.byteCount) / 4096) }, (_, i) => 0x100 + i) }));
  itFuzz(
    'what the packet builders write parses back to it',
    'vmbus-wire.packet-round-trip',
    () =>
      fc.property(fc.uint8Array({ maxLength: 200 }), U64, fc.boolean(), fc.array(range, { minLength: 1, maxLength: 4 }), fc.nat(0xffff), (payload, id, ask, ranges, set) => {
        const a = parsePacket(inRing(inband(payload, id, ask)));
        expect([a.type, a.transId, a.completionRequested, [...a.payload.subarray(0, payload.length)]]).toEqual([PacketType.DATA_INBAND, id, ask, [...payload]]);
        expect(parsePacket(inRing(completion(id, payload))).type).toBe(PacketType.COMP);
        expect(parsePacket(inRing(gpaDirect(ranges, payload, id))).ranges).toEqual(ranges);
        // In place, 24 bytes into a buffer: the same descriptor, payload and first range.
        const g = inRing(gpaDirect(ranges, payload, id));
        const buffer = new Uint8Array(24 + g.length);
        buffer.set(g, 24);
        const head = new PacketHead();
        parsePacketHeadAt(buffer, 24, g.length, head);
        expect([head.type, head.transId, [...buffer.subarray(head.payloadAt, head.payloadAt + payload.length)]]).toEqual([PacketType.DATA_USING_GPA_DIRECT, id, [...payload]]);
        const r = new GpaRangeAt();
        firstGpaRange(buffer, 24, r);
        expect([r.rangeCount, r.byteCount, r.byteOffset, Array.from({ length: r.pfnCount }, (_, i) => pfnAt(buffer, r.pfnsAt + 8 * i))]).toEqual([ranges.length, ranges[0]!.byteCount, ranges[0]!.byteOffset, ranges[0]!.pfns]);
        const t = parsePacket(inRing(transferPages(set, ranges, id, payload)));
        expect([t.transferPageSet, t.transferRanges]).toEqual([set, ranges.map((r) => ({ byteCount: r.byteCount, byteOffset: r.byteOffset }))]);
        expect([...t.transferWords!]).toEqual(ranges.flatMap((r) => [r.byteCount, r.byteOffset]));
        expect(t.ranges).toBeUndefined();
      }),
    1000,
  );

  const types = Object.keys(MESSAGES).map(Number);
  const messageBytes = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.tuple(fc.oneof(fc.constantFrom(...types), fc.nat(40)), fc.uint8Array({ maxLength: 256 })).map(([t, rest]) => {
      const b = new Uint8Array(4 + rest.length);
      new DataView(b.buffer).setUint32(0, t, true);
      b.set(rest, 4);
      return b;
    }),
  );
  itFuzz(
    'decodeChannelMessage: a message of a known type and its size, or ChannelMessageError',
    'vmbus-wire.messages',
    () =>
      fc.property(messageBytes, (b) => {
        try {
          const m = decodeChannelMessage(b);
          expect(MESSAGES).toHaveProperty(String(m.type));
          expect(b.length).toBeLessThanOrEqual(240);
        } catch (e) {
          expect(e).toBeInstanceOf(ChannelMessageError);
        }
      }),
    2000,
  );
});
