// Ring buffers (vmbus.md §7): content, the never-full rule, trailers and wraparound, both
// signalling rules checked against a model, hostile peers, page-list rings, Linux's clamping.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { contiguousRing, Ctl, pagedRing, type RingMemory } from '../../src/vmbus/ring/memory.js';
import { initRing, RingCorruptError, RingReader, RingWriter } from '../../src/vmbus/ring/ring.js';
import { PacketDescriptor } from '../../src/vmbus/wire/packets.js';
import { fuzz } from '../fuzz/fuzz.js';

/** An in-band packet carrying `payload` (descriptor + payload; the ring pads it). */
function packet(payload: Uint8Array, transId = 0n): Uint8Array[] {
  const d = PacketDescriptor.encode({ type: 6, offset8: 2, len8: Math.ceil((16 + payload.length) / 8), flags: 0, trans_id: transId });
  return [d, payload];
}
const payloadOf = (p: { bytes: Uint8Array; offset: number }, n: number) => p.bytes.subarray(p.offset, p.offset + n);

function ring(pages = 4): { mem: GuestMemory; r: RingMemory } {
  const mem = new GuestMemory({ size: 64 * 4096 });
  const r = contiguousRing(mem, 0x4000, pages * 4096);
  initRing(r);
  return { mem, r };
}

describe('ring buffer layout and arithmetic', () => {
  it('writes the packet, padding and the trailer at the write index (vmbus.md §7.3, §13)', () => {
    const { mem, r } = ring();
    // The worked example of vmbus.md §13: "hello", COMPLETION_REQUESTED, at data offset 0x40.
    Atomics.store(r.control, Ctl.WRITE_INDEX, 0x40);
    Atomics.store(r.control, Ctl.READ_INDEX, 0x40);
    const d = PacketDescriptor.encode({ type: 6, offset8: 2, len8: 3, flags: 1, trans_id: 0x1122334455667788n });
    const w = new RingWriter(r);
    expect(w.write([d, new TextEncoder().encode('hello')]).written).toBe(true);
    const at = 0x4000 + 4096 + 0x40;
    expect(Buffer.from(mem.read(at, 32)).toString('hex')).toBe(
      '0600020003000100' + '8877665544332211' + '68656c6c6f000000' + '0000000040000000',
    );
    expect(Atomics.load(r.control, Ctl.WRITE_INDEX)).toBe(0x60);
  });

  it('a batch with a budget takes at most that many packets and commits just them; the next batch goes on from there', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 8 }), (sizes, budget) => {
        // The same packets into two rings: one read whole, one in batches of `budget`.
        const a = ring(4);
        const b = ring(4);
        const payloads = sizes.map((n, i) => new Uint8Array(n).map((_, j) => (i * 31 + j) & 0xff));
        for (const p of payloads) {
          expect(new RingWriter(a.r).write(packet(p)).written).toBe(true);
          expect(new RingWriter(b.r).write(packet(p)).written).toBe(true);
        }
        const whole = new RingReader(a.r).batch();
        const all = payloads.map((p) => Buffer.from(payloadOf(whole.next()!, p.length)));
        expect(whole.next()).toBeUndefined();
        whole.commit();
        const rd = new RingReader(b.r);
        const parts: Buffer[] = [];
        for (let k = 0; parts.length < payloads.length; k++) {
          const batch = rd.batch(budget);
          let taken = 0;
          for (let p = batch.next(); p; p = batch.next()) {
            parts.push(Buffer.from(payloadOf(p, payloads[parts.length]!.length)));
            taken++;
          }
          expect(taken).toBe(Math.min(budget, payloads.length - k * budget));
          batch.commit();
        }
        expect(parts).toEqual(all);
        expect(Atomics.load(b.r.control, Ctl.READ_INDEX)).toBe(Atomics.load(a.r.control, Ctl.READ_INDEX));
      }),
      { numRuns: 100 },
    );
  });

  it('never fills the ring completely: a packet that would leave it exactly full is refused', () => {
    const { r } = ring(2); // 4096 data bytes
    const w = new RingWriter(r);
    // 4096 - 8 (trailer) - 8 (never full) = 4080 bytes of packet fit; 4088 would fill the ring.
    expect(w.batch().write([new Uint8Array(4088)])).toBe(false);
    expect(w.batch().write([new Uint8Array(4080)])).toBe(true);
  });

  it('wraps packets around the end of the data area', () => {
    const { r } = ring(2);
    const w = new RingWriter(r);
    const rd = new RingReader(r);
    for (let round = 0; round < 50; round++) {
      const payload = new Uint8Array(1000 + round).map((_, i) => (i * 7 + round) & 0xff);
      expect(w.write(packet(payload, BigInt(round))).written).toBe(true);
      const b = rd.batch();
      const p = b.next()!;
      expect(Buffer.compare(payloadOf(p, payload.length), payload)).toBe(0);
      expect(b.next()).toBeUndefined();
      b.commit();
    }
  });
});

describe('a sender that writes from the same arrays packet after packet', () => {
  it('puts each packet as its arrays hold it at the time, aligned or not, wrapped or not, the same arrays or new ones', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ len: fc.constantFrom(0, 3, 8, 48, 64, 100, 301, 400), fill: fc.integer({ min: 0, max: 255 }), fresh: fc.boolean(), unaligned: fc.boolean() }), { minLength: 1, maxLength: 60 }),
        (sends) => {
          const { r } = ring(2);
          const w = new RingWriter(r);
          const rd = new RingReader(r);
          // Each packet whole in one part (as storvsc builds its requests): a view of a buffer of
          // the sender's own, one per length, or a new array each time.
          const own = new Uint8Array(1024);
          const views = new Map<string, Uint8Array>();
          sends.forEach((s, n) => {
            const at = s.unaligned ? 1 : 0;
            const total = PacketDescriptor.size + s.len;
            const key = `${total}:${at}`;
            const whole = s.fresh ? new Uint8Array(total) : (views.get(key) ?? views.set(key, own.subarray(at, at + total)).get(key)!);
            const [d] = packet(new Uint8Array(s.len), BigInt(n));
            whole.set(d!);
            const view = whole.subarray(PacketDescriptor.size);
            for (let i = 0; i < s.len; i++) view[i] = (s.fill + i * 13 + n) & 0xff;
            const expected = view.slice();
            expect(w.write([whole]).written).toBe(true);
            const b = rd.batch();
            const p = b.next()!;
            expect(Buffer.compare(payloadOf(p, s.len), expected)).toBe(0);
            b.commit();
          });
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('signalling rules against a model (vmbus.md §7.4, §7.6)', () => {
  it('any interleaving: FIFO content, empty→non-empty write signals, pending_send_sz read signals', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('write' as const), sizes: fc.array(fc.nat(700), { minLength: 1, maxLength: 4 }) }),
      fc.record({ k: fc.constant('read' as const), max: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ k: fc.constant('mask' as const), on: fc.boolean() }),
    );
    fuzz(
      'ring.signalling-model',
      fc.property(fc.array(op, { maxLength: 80 }), fc.boolean(), (ops, paged) => {
        const mem = new GuestMemory({ size: 64 * 4096 });
        const r = paged ? pagedRing(mem, [9, 3, 20, 21, 5]) : contiguousRing(mem, 0x8000, 5 * 4096);
        initRing(r);
        const w = new RingWriter(r);
        const rd = new RingReader(r);
        const queue: Uint8Array[] = [];
        let seq = 0;
        let masked = false;
        let blockedOn = 0; // the pending_send_sz the writer set, or 0
        for (const o of ops) {
          if (o.k === 'mask') {
            masked = o.on;
            if (o.on) rd.mask();
            else rd.unmask();
          } else if (o.k === 'write') {
            const b = w.batch();
            const wasEmpty = queue.length === 0;
            let wrote = 0;
            for (const n of o.sizes) {
              const p = new Uint8Array(n).fill(seq & 0xff);
              if (!b.write(packet(p, BigInt(seq)))) {
                // Full: ask to be told when this packet fits (Linux drivers' pending send size).
                blockedOn = 16 + Math.ceil(n / 8) * 8 + 8;
                w.setPendingSendSize(blockedOn);
                break;
              }
              queue.push(p);
              seq++;
              wrote++;
            }
            const { signal } = b.commit();
            expect(signal).toBe(wrote > 0 && wasEmpty && !masked);
          } else {
            // Linux's writable bytes, straight from the control words.
            const writable = () => {
              const wi = Atomics.load(r.control, Ctl.WRITE_INDEX);
              const ri = Atomics.load(r.control, Ctl.READ_INDEX);
              return r.dataSize - (wi >= ri ? wi - ri : r.dataSize - ri + wi);
            };
            const b = rd.batch();
            const before = writable();
            for (let i = 0; i < o.max; i++) {
              const p = b.next();
              if (!p) break;
              const want = queue.shift()!;
              expect(Buffer.compare(payloadOf(p, want.length), want)).toBe(0);
            }
            const { signal } = b.commit();
            const after = writable();
            // hv_pkt_iter_close: signal iff the writer is blocked on P and this batch took the
            // writable space from at most P to more than P.
            expect(signal).toBe(blockedOn !== 0 && before <= blockedOn && after > blockedOn);
            if (signal) {
              blockedOn = 0;
              w.setPendingSendSize(0);
            }
          }
        }
        // Whatever is left reads back in order.
        const b = rd.batch();
        for (const want of queue) expect(Buffer.compare(payloadOf(b.next()!, want.length), want)).toBe(0);
        expect(b.next()).toBeUndefined();
      }),
      300,
    );
  });

  it('exactly pending_send_sz free is still "blocked" (the ring is never full): the read that adds space signals', () => {
    const { r } = ring(2); // 4096 data bytes
    const w = new RingWriter(r);
    const rd = new RingReader(r);
    // Fill most of the ring: 24 + 2 × 2008 bytes.
    w.write(packet(new Uint8Array(0)));
    w.write(packet(new Uint8Array(1984)));
    w.write(packet(new Uint8Array(1984)));
    const wi = Atomics.load(r.control, Ctl.WRITE_INDEX);
    const free = 4096 - wi;
    w.setPendingSendSize(free); // exactly what is free now: not enough, as the ring may not fill
    const b = rd.batch();
    b.next();
    expect(b.commit().signal).toBe(true);
    // Asking for less than what is already free: the writer was not blocked by this reader.
    w.setPendingSendSize(free);
    const b2 = rd.batch();
    b2.next();
    expect(b2.commit().signal).toBe(false);
  });

  it('a writer that does not set the pending_send_sz feature bit never gets a space signal', () => {
    const { r } = ring(2);
    Atomics.store(r.control, Ctl.FEATURE_BITS, 0);
    const w = new RingWriter(r);
    const rd = new RingReader(r);
    while (w.write(packet(new Uint8Array(500))).written);
    w.setPendingSendSize(600);
    const b = rd.batch();
    while (b.next());
    expect(b.commit().signal).toBe(false);
  });
});

describe('a hostile peer never causes a wild access (vmbus.md §12)', () => {
  it('a reader facing arbitrary indices and bytes returns valid packets or RingCorruptError', () => {
    fuzz(
      'ring.reader-hostile-indices',
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), fc.uint8Array({ minLength: 4096, maxLength: 4096 }), fc.boolean(), (wi, ri, data, strict) => {
        const { mem, r } = ring(2);
        mem.write(0x4000 + 4096, data);
        Atomics.store(r.control, Ctl.WRITE_INDEX, wi);
        Atomics.store(r.control, Ctl.READ_INDEX, ri);
        const rd = new RingReader(r, strict ? { kind: 'strict' } : { kind: 'linux', maxPacketSize: 1024 });
        try {
          const b = rd.batch();
          for (let i = 0; i < 600; i++) {
            const p = b.next();
            if (!p) break;
            expect(p.bytes.length).toBeGreaterThanOrEqual(strict ? 16 : 0);
            expect(p.bytes.length).toBeLessThanOrEqual(strict ? 4096 : 1024);
            expect(p.offset).toBeLessThanOrEqual(Math.max(p.bytes.length, 16));
          }
          b.commit();
        } catch (e) {
          expect(e).toBeInstanceOf(RingCorruptError);
        }
      }),
      500,
    );
  });

  it('an index out of range or unaligned is reported, naming it', () => {
    const { r } = ring(2);
    Atomics.store(r.control, Ctl.WRITE_INDEX, 4096);
    expect(() => new RingReader(r).batch()).toThrow(/ring\.write_index: 4096 is not an 8-byte aligned offset below 4096/);
    Atomics.store(r.control, Ctl.WRITE_INDEX, 8);
    Atomics.store(r.control, Ctl.READ_INDEX, 12);
    expect(() => new RingWriter(r).batch()).toThrow(/ring\.read_index/);
  });

  it('a writer facing an arbitrary read index writes valid packets or reports corruption', () => {
    fuzz(
      'ring.writer-hostile-read-index',
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.nat(3000), (ri, n) => {
        const { r } = ring(2);
        Atomics.store(r.control, Ctl.READ_INDEX, ri);
        try {
          const b = new RingWriter(r).batch();
          b.write(packet(new Uint8Array(n)));
          b.commit();
          expect(Atomics.load(r.control, Ctl.WRITE_INDEX) % 8).toBe(0);
        } catch (e) {
          expect(e).toBeInstanceOf(RingCorruptError);
        }
      }),
      500,
    );
  });

  it("Linux's reader clamps len8 and offset8 and truncates to max_pkt_size (desynchronising, as Linux does)", () => {
    const { r } = ring(2);
    const w = new RingWriter(r);
    w.write(packet(new Uint8Array(2000).fill(1)));
    const rd = new RingReader(r, { kind: 'linux', maxPacketSize: 1024 });
    const p = rd.batch().next()!;
    expect(p.bytes.length).toBe(1024);
    expect(new DataView(p.bytes.buffer).getUint16(4, true)).toBe(128); // the copy's len8 rewritten
    // A bogus offset8 falls back to 16.
    const { r: r2 } = ring(2);
    new RingWriter(r2).write([PacketDescriptor.encode({ type: 6, offset8: 200, len8: 4, flags: 0, trans_id: 0n }), new Uint8Array(16)]);
    expect(new RingReader(r2, { kind: 'linux', maxPacketSize: 4096 }).batch().next()!.offset).toBe(16);
    // The strict reader calls both corrupt.
    expect(() => new RingReader(r2).batch().next()).toThrow(RingCorruptError);
  });
});

describe('nextCopy: nextBytes without the view', () => {
  it('the same packets, the same bytes, the same errors and the same commits as nextBytes, for any packets and any index (strict and Linux readers)', () => {
    fuzz(
      'vmbus-ring.next-copy',
      fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 12 }), fc.nat(4095), fc.boolean(), fc.option(fc.tuple(fc.nat(15), fc.nat(0xffff))), (payloads, start, linux, poke) => {
        // Two rings with the same contents: one read with nextBytes, one with nextCopy.
        const read = (useCopy: boolean) => {
          const { mem, r } = ring(4);
          const at = (start * 8) % r.dataSize;
          Atomics.store(r.control, Ctl.WRITE_INDEX, at);
          Atomics.store(r.control, Ctl.READ_INDEX, at);
          const w = new RingWriter(r);
          for (const p of payloads) w.write(packet(p, BigInt(p.length)));
          // A descriptor's len8 or offset8 overwritten: a packet that does not fit, or a corrupt ring.
          if (poke) mem.write16(0x4000 + 4096 + ((at + 2 + (poke[0] % 2) * 2) % r.dataSize), poke[1]);
          const reader = new RingReader(r, linux ? { kind: 'linux', maxPacketSize: 256 } : { kind: 'strict' });
          const batch = reader.batch();
          const got: (number[] | string)[] = [];
          try {
            for (;;) {
              if (useCopy) {
                const n = batch.nextCopy();
                if (n < 0) break;
                got.push([...batch.copyBytes.subarray(batch.copyAt, batch.copyAt + n)]);
              } else {
                const b = batch.nextBytes();
                if (!b) break;
                got.push([...b]);
              }
            }
          } catch (e) {
            got.push(e instanceof RingCorruptError ? e.message : 'other');
          }
          got.push(JSON.stringify(batch.commit()));
          return got;
        };
        expect(read(true)).toEqual(read(false));
      }),
      300,
    );
  });
});
