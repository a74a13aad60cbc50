// DataArena (src/devices/hvsock/data-arena.ts): each copy holds exactly the bytes it was given,
// whatever their alignment and size and however many blocks the copies fill, and stays as it
// was when the source changes afterwards (the source is the ring, which the guest rewrites).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DataArena } from '../../src/devices/hvsock/data-arena.js';
import { fuzz } from '../fuzz/fuzz.js';

describe('DataArena', () => {
  it('copies exactly, and the copies outlive their source', () => {
    fuzz(
      'hvsock-data-arena',
      fc.property(
        fc.array(fc.record({ from: fc.nat(64), n: fc.oneof(fc.nat(600), fc.integer({ min: 16 * 1024, max: 20 * 1024 })) }), { minLength: 1, maxLength: 40 }),
        fc.boolean(),
        fc.nat(3),
        (copies, shared, skew) => {
          // A source like the ring's window: word aligned or not, in shared memory or not.
          const backing = shared ? new SharedArrayBuffer(32 * 1024) : new ArrayBuffer(32 * 1024);
          const src = new Uint8Array(backing, skew, 32 * 1024 - 4);
          const arena = new DataArena();
          const kept: { copy: Uint8Array; want: Uint8Array }[] = [];
          let round = 0;
          for (const { from, n } of copies) {
            for (let i = 0; i < from + n; i++) src[i] = (i * 7 + round * 13) & 0xff;
            round++;
            const copy = arena.copy(src, from, n);
            kept.push({ copy, want: src.slice(from, from + n) });
          }
          src.fill(0xee);
          for (const { copy, want } of kept) expect(Buffer.from(copy).equals(Buffer.from(want))).toBe(true);
        },
      ),
      200,
    );
  });

  it('gives each copy its own bytes across blocks', () => {
    const arena = new DataArena();
    const src = new Uint8Array(256).map((_, i) => i);
    const copies = Array.from({ length: 700 }, (_, k) => arena.copy(src, k % 100, 128));
    copies.forEach((c, k) => expect(c[0]).toBe(k % 100));
    expect(new Set(copies.map((c) => c.buffer)).size).toBeGreaterThan(1);
  });
});
