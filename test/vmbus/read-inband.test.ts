// readInband (packet.ts), the host's reading of in-band data where it lies, must take the same
// packets as readPackets does: the same in-band parts for in-band packets without flags, the
// same parsed packets and the same errors for everything else, the same read index and signal
// decision, whether packets wrap the end of the ring or not.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { readInband, readPackets } from '../../src/vmbus/packet.js';
import { contiguousRing, Ctl } from '../../src/vmbus/ring/memory.js';
import { initRing, RingCorruptError, RingReader, RingWriter } from '../../src/vmbus/ring/ring.js';
import { PacketDescriptor, type ParsedPacket } from '../../src/vmbus/wire/packets.js';
import { fuzz } from '../fuzz/fuzz.js';

const RING = 0x4000;
const PAGES = 2; // 4096 data bytes: a few packets wrap

/** A packet as a guest may write it: any type, flags, offset8 and len8, and a payload. */
const packet = fc.record({
  type: fc.oneof(fc.constant(6), fc.constantFrom(6, 7, 9, 11, 0, 8, 0xffff)),
  flags: fc.oneof(fc.constant(0), fc.constantFrom(0, 1, 2)),
  offset8: fc.oneof(fc.constant(2), fc.nat(6)),
  payload: fc.uint8Array({ maxLength: 300 }),
  lenDelta: fc.oneof(fc.constant(0), fc.integer({ min: -3, max: 3 })),
  transId: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
});

/** What a read gave: each packet as readPackets would hand it, or its error. */
type Seen = (string | number | bigint | boolean)[];
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const parsed = (p: ParsedPacket): Seen => ['packet', p.type, p.flags, p.transId, p.completionRequested, hex(p.payload), JSON.stringify(p.ranges ?? null), p.transferPageSet ?? -1, JSON.stringify(p.transferRanges ?? null)];
/** An in-band packet without flags is handed over as its in-band part alone (readInband's contract). */
const inbandOr = (p: ParsedPacket): Seen => (p.type === 6 && p.flags === 0 ? ['inband', hex(p.payload)] : parsed(p));

function twoRings(start: number) {
  const make = () => {
    const mem = new GuestMemory({ size: 16 * 4096 });
    const r = contiguousRing(mem, RING, PAGES * 4096);
    initRing(r);
    Atomics.store(r.control, Ctl.WRITE_INDEX, start);
    Atomics.store(r.control, Ctl.READ_INDEX, start);
    return r;
  };
  return [make(), make()] as const;
}

describe('readInband', () => {
  it('reads what readPackets reads, in-band data where it lies', () => {
    fuzz(
      'vmbus-read-inband',
      fc.property(fc.array(packet, { minLength: 1, maxLength: 12 }), fc.nat(4096 / 8 - 1), fc.nat(600), (packets, start8, pending) => {
        const rings = twoRings(start8 * 8);
        for (const r of rings) {
          const w = new RingWriter(r);
          for (const p of packets) {
            const len8 = Math.max(0, Math.ceil((16 + p.payload.length) / 8) + p.lenDelta);
            const d = PacketDescriptor.encode({ type: p.type, offset8: p.offset8, len8: Math.min(len8, 0xffff), flags: p.flags, trans_id: p.transId });
            if (!w.write([d, p.payload]).written) break;
          }
          // A writer waiting for room: the commit's signal decision is compared too.
          Atomics.store(r.control, Ctl.PENDING_SEND_SZ, pending);
        }
        const outcome = (read: (reader: RingReader, seen: Seen[]) => void, r: (typeof rings)[number]) => {
          const reader = new RingReader(r, { kind: 'strict' });
          const seen: Seen[] = [];
          let error = '';
          try {
            read(reader, seen);
          } catch (e) {
            if (!(e instanceof RingCorruptError)) throw e;
            error = e.message;
          }
          return { seen, error, read: Atomics.load(r.control, Ctl.READ_INDEX) };
        };
        const viaCopies = outcome((reader, seen) => {
          const batch = reader.batch();
          readPackets(batch, (p) => seen.push(inbandOr(p)), (e) => seen.push(['bad', e.message]));
          seen.push(['signal', batch.commit().signal]);
        }, rings[0]);
        const inPlace = outcome((reader, seen) => {
          const batch = reader.batch();
          readInband(
            batch,
            (bytes, start, end) => seen.push(['inband', hex(bytes.subarray(start, end))]),
            (p) => seen.push(parsed(p)),
            (e) => seen.push(['bad', e.message]),
          );
          seen.push(['signal', batch.commit().signal]);
        }, rings[1]);
        expect(inPlace).toEqual(viaCopies);
      }),
      400,
    );
  });
});
