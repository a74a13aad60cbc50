// The fast ring against the plain one it replaced (test/vmbus/reference-ring.ts): the same
// random sequences of batches, wraps, masks, pending_send_sz values, feature bits, corrupt
// indices and scribbled data run on two copies of the same memory, and after every step both
// hold the same bytes, indices and control words, and gave the same packets, signal decisions
// and errors. Every way of writing (parts, reserve and fill, the descriptor from a BigInt or from
// two words) and of reading (next, readInto,
// view) is held to the reference's write(parts) and next().
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { contiguousRing, Ctl, pagedRing, type RingMemory } from '../../src/vmbus/ring/memory.js';
import * as fast from '../../src/vmbus/ring/ring.js';
import { PacketDescriptor } from '../../src/vmbus/wire/packets.js';
import { runs } from './fuzz-runs.js';
import * as ref from './reference-ring.js';

/** A packet as the test writes it: raw parts, or a descriptor's fields and a payload. */
type PacketSpec =
  | { kind: 'raw'; parts: Uint8Array[]; fill: 'parts' | 'reserve' }
  | { kind: 'fields'; type: number; offset8: number; flags: number; transId: bigint; payload: Uint8Array; fill: 'parts' | 'reserve' | 'words' };

type Op =
  | { k: 'batch'; packets: PacketSpec[]; commit: boolean }
  | { k: 'write'; packet: PacketSpec }
  | { k: 'read'; max: number; how: 'next' | 'readInto' | 'view'; commit: boolean }
  | { k: 'mask'; on: boolean }
  | { k: 'pending'; bytes: number; relative: 'no' | 'free' | 'free+next' }
  | { k: 'feature'; end: 'reader' | 'writer'; on: boolean }
  | { k: 'control'; word: number; value: number }
  | { k: 'scribble'; at: number; bytes: Uint8Array }
  | { k: 'query' };

const packetSpec: fc.Arbitrary<PacketSpec> = fc.oneof(
  fc.record({
    kind: fc.constant('raw' as const),
    parts: fc.array(fc.uint8Array({ maxLength: 600 }), { minLength: 1, maxLength: 3 }),
    fill: fc.constantFrom('parts' as const, 'reserve' as const),
  }),
  fc.record({
    kind: fc.constant('fields' as const),
    type: fc.constantFrom(6, 7, 9, 11, 0x1234),
    offset8: fc.oneof(fc.constant(2), fc.integer({ min: 0, max: 0xffff })),
    flags: fc.oneof(fc.constant(0), fc.constant(1), fc.integer({ min: 0, max: 0xffff })),
    transId: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    payload: fc.uint8Array({ maxLength: 1200 }),
    fill: fc.constantFrom('parts' as const, 'reserve' as const, 'words' as const),
  }),
);

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('batch' as const), packets: fc.array(packetSpec, { minLength: 1, maxLength: 5 }), commit: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('write' as const), packet: packetSpec }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('read' as const), max: fc.integer({ min: 1, max: 6 }), how: fc.constantFrom('next' as const, 'readInto' as const, 'view' as const), commit: fc.boolean() }) },
  fc.record({ k: fc.constant('mask' as const), on: fc.boolean() }),
  // pending_send_sz anywhere, or near the space free now, where the signal rule has its edges.
  fc.record({ k: fc.constant('pending' as const), bytes: fc.oneof(fc.integer({ min: 0, max: 9000 }), fc.integer({ min: -5, max: 0x7fffffff })), relative: fc.constant('no' as const) }),
  { weight: 2, arbitrary: fc.record({ k: fc.constant('pending' as const), bytes: fc.constantFrom(-8, 0, 8), relative: fc.constantFrom('free' as const, 'free+next' as const) }) },
  fc.record({ k: fc.constant('feature' as const), end: fc.constantFrom('reader' as const, 'writer' as const), on: fc.boolean() }),
  // A hostile or buggy peer: any value in any control word, any bytes anywhere in the data.
  fc.record({
    k: fc.constant('control' as const),
    word: fc.constantFrom(Ctl.WRITE_INDEX, Ctl.READ_INDEX, Ctl.INTERRUPT_MASK, Ctl.PENDING_SEND_SZ, Ctl.FEATURE_BITS),
    value: fc.oneof(fc.integer({ min: 0, max: 16384 }).map((v) => v & ~7), fc.integer({ min: 0, max: 0xffffffff })),
  }),
  fc.record({ k: fc.constant('scribble' as const), at: fc.nat(20000), bytes: fc.uint8Array({ minLength: 1, maxLength: 32 }) }),
  fc.record({ k: fc.constant('query' as const) }),
);

/** Where a ring lives: contiguous guest memory, or a page list in or out of order. */
const geometry = fc.oneof(
  fc.record({ kind: fc.constant('contiguous' as const), dataPages: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant('paged' as const), pfns: fc.constantFrom([9, 3, 20, 21, 5], [4, 5, 6], [7, 2], [30, 31, 32, 33]) }),
);

const readerMode = fc.oneof(
  fc.constant<fast.ReaderMode>({ kind: 'strict' }),
  fc.oneof(fc.integer({ min: 16, max: 5000 }), fc.integer({ min: 0, max: 24 })).map((n): fast.ReaderMode => ({ kind: 'linux', maxPacketSize: n })),
);

/** What an operation returned or threw, comparable across the two implementations. */
type Outcome = { ok: unknown } | { error: string };
function outcome(f: () => unknown): Outcome {
  try {
    return { ok: f() };
  } catch (e) {
    if (!(e instanceof Error)) throw e;
    return { error: `${e.constructor.name}: ${e.message}` };
  }
}

function ringOf(mem: GuestMemory, g: typeof geometry extends fc.Arbitrary<infer G> ? G : never): RingMemory {
  return g.kind === 'contiguous' ? contiguousRing(mem, 0x10000, (1 + g.dataPages) * 4096) : pagedRing(mem, g.pfns);
}

/** The parts the reference writes for a packet. */
function partsOf(p: PacketSpec): Uint8Array[] {
  if (p.kind === 'raw') return p.parts;
  const len8 = Math.ceil((16 + p.payload.length) / 8);
  return [PacketDescriptor.encode({ type: p.type, offset8: p.offset8, len8, flags: p.flags, trans_id: p.transId }), p.payload];
}

/** Writes a packet into a fast batch the way the spec says: parts, or reserve and fill in place. */
function writeFast(b: fast.WriteBatch, p: PacketSpec): boolean {
  if (p.fill === 'parts') return b.write(partsOf(p));
  if (p.kind === 'fields') {
    const s = b.reserve(16 + p.payload.length);
    if (!s) return false;
    if (p.fill === 'words') s.descriptorWords(p.type, p.offset8, p.flags, Number(p.transId & 0xffffffffn), Number(p.transId >> 32n));
    else s.descriptor(p.type, p.offset8, p.flags, p.transId);
    s.set(16, p.payload);
    return true;
  }
  const whole = Buffer.concat(p.parts);
  const s = b.reserve(whole.length);
  if (!s) return false;
  // Some bytes with the word stores, the rest as a copy.
  if (whole.length >= 8) {
    s.setU16(0, whole.readUInt16LE(0));
    s.setU32(2, whole.readUInt32LE(2));
    s.setU16(6, whole.readUInt16LE(6));
    s.set(8, whole.subarray(8));
  } else {
    s.set(0, whole);
  }
  return true;
}

function readLen8(ring: RingMemory, at: number): number {
  const b = new Uint8Array(2);
  ring.read(at + 4, b);
  return b[0]! | (b[1]! << 8);
}

describe('the fast ring against the reference ring', () => {
  it('same bytes, indices, packets, signals and errors on any sequence', () => {
    fc.assert(
      fc.property(geometry, readerMode, fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.array(op, { maxLength: 60 }), (g, mode, seed, ops) => {
        const memA = new GuestMemory({ size: 64 * 4096 });
        const memB = new GuestMemory({ size: 64 * 4096 });
        // Old contents in the data area, so that a byte not written shows.
        for (let i = 0; i < memA.bytes.length; i += seed.length) {
          memA.bytes.set(seed.subarray(0, Math.min(seed.length, memA.bytes.length - i)), i);
        }
        memB.bytes.set(memA.bytes);
        const ringA = ringOf(memA, g);
        const ringB = ringOf(memB, g);
        ref.initRing(ringA);
        fast.initRing(ringB);
        const rw = new ref.RingWriter(ringA);
        const rr = new ref.RingReader(ringA, mode);
        const fw = new fast.RingWriter(ringB);
        const fr = new fast.RingReader(ringB, mode);
        const buffer = new Uint8Array(fr.largestPacket);
        const same = (a: Outcome, b: Outcome, what: string) => expect(b, what).toEqual(a);

        for (const [step, o] of ops.entries()) {
          const at = `step ${step}: ${o.k}`;
          switch (o.k) {
            case 'batch': {
              let a: ref.WriteBatch | undefined;
              let b: fast.WriteBatch | undefined;
              same(
                outcome(() => void (a = rw.batch())),
                outcome(() => void (b = fw.batch())),
                at,
              );
              if (!a || !b) break;
              for (const p of o.packets) {
                same(outcome(() => [a!.write(partsOf(p)), a!.free, a!.length]), outcome(() => [writeFast(b!, p), b!.free, b!.length]), at);
              }
              if (o.commit) same(outcome(() => a!.commit()), outcome(() => b!.commit()), at);
              break;
            }
            case 'write':
              same(
                outcome(() => rw.write(partsOf(o.packet))),
                outcome(() => ({ ...fw.write(partsOf(o.packet)) })),
                at,
              );
              break;
            case 'read': {
              let a: ref.ReadBatch | undefined;
              let b: fast.ReadBatch | undefined;
              same(
                outcome(() => void (a = rr.batch())),
                outcome(() => void (b = fr.batch())),
                at,
              );
              if (!a || !b) break;
              for (let i = 0; i < o.max; i++) {
                // readInto says the payload offset only in the copy's offset8, which the bytes compare.
                const want = outcome(() => {
                  const p = a!.next();
                  return p && { bytes: Buffer.from(p.bytes).toString('hex'), offset: o.how === 'readInto' ? 0 : p.offset, available: a!.available };
                });
                const got = outcome(() => {
                  if (o.how === 'next') {
                    const p = b!.next();
                    return p && { bytes: Buffer.from(p.bytes).toString('hex'), offset: p.offset, available: b!.available };
                  }
                  if (o.how === 'readInto') {
                    const n = b!.readInto(buffer);
                    return n < 0 ? undefined : { bytes: Buffer.from(buffer.subarray(0, n)).toString('hex'), offset: 0, available: b!.available };
                  }
                  const v = b!.view();
                  return v && { bytes: Buffer.from(v.bytes.subarray(v.at, v.at + v.length)).toString('hex'), offset: v.offset, available: b!.available };
                });
                same(want, got, at);
                if ('error' in want || !('ok' in want) || want.ok === undefined) break;
              }
              if (o.commit) same(outcome(() => a!.commit()), outcome(() => b!.commit()), at);
              break;
            }
            case 'mask':
              same(
                outcome(() => (o.on ? rr.mask() : rr.unmask())),
                outcome(() => (o.on ? fr.mask() : fr.unmask())),
                at,
              );
              break;
            case 'pending': {
              const w = Atomics.load(ringA.control, Ctl.WRITE_INDEX);
              const r = Atomics.load(ringA.control, Ctl.READ_INDEX);
              const free = ringA.dataSize - (w >= r ? w - r : ringA.dataSize - r + w);
              // The next packet's room: its len8 and trailer (what reading it frees).
              const next = r % 8 === 0 && r < ringA.dataSize ? readLen8(ringA, r) * 8 + 8 : 0;
              const bytes = o.relative === 'no' ? o.bytes : free + o.bytes + (o.relative === 'free+next' ? next : 0);
              same(
                outcome(() => rw.setPendingSendSize(bytes)),
                outcome(() => fw.setPendingSendSize(bytes)),
                at,
              );
              break;
            }
            case 'feature':
              if (o.end === 'reader') {
                rr.setFeaturePendingSendSize(o.on);
                fr.setFeaturePendingSendSize(o.on);
              } else {
                rw.setFeaturePendingSendSize(o.on);
                fw.setFeaturePendingSendSize(o.on);
              }
              break;
            case 'control':
              Atomics.store(ringA.control, o.word, o.value);
              Atomics.store(ringB.control, o.word, o.value);
              break;
            case 'scribble': {
              const where = o.at % ringA.dataSize;
              const bytes = o.bytes.subarray(0, ringA.dataSize - where);
              ringA.write(where, bytes);
              ringB.write(where, bytes);
              break;
            }
            case 'query':
              same(
                outcome(() => [rr.readable(), rw.available()]),
                outcome(() => [fr.readable(), fw.available()]),
                at,
              );
              break;
          }
          // The whole of memory: control pages, data areas, and nothing written elsewhere.
          expect(Buffer.compare(memA.bytes, memB.bytes), `${at}: memory differs`).toBe(0);
        }
      }),
      { numRuns: runs(5) },
    );
  });
});
