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

  it('lending: after rewind() the next copies reuse the block; one outgrown is replaced by one that holds a whole round', () => {
    const arena = new DataArena();
    const src = new Uint8Array(8192).map((_, i) => i * 3);
    const given = arena.copy(src, 0, 100);
    arena.lends = true;
    // Lending starts in a block of its own: what was given before is never overwritten.
    const a = arena.copy(src, 1, 100);
    expect(a.buffer).not.toBe(given.buffer);
    arena.rewind();
    const b = arena.copy(src, 2, 100);
    expect(b.buffer).toBe(a.buffer);
    expect(b.byteOffset).toBe(a.byteOffset);
    expect(a[0]).toBe(src[2]);
    expect(given[0]).toBe(src[0]);
    // A round of 100 KiB (large copies go in the block too) outgrows a 64 KiB block.
    arena.rewind();
    const round = () => Array.from({ length: 25 }, (_, k) => arena.copy(src, k, 4096));
    expect(new Set(round().map((c) => c.buffer)).size).toBe(2);
    arena.rewind();
    const next = round();
    expect(new Set(next.map((c) => c.buffer)).size).toBe(1);
    expect(next[0]!.buffer.byteLength).toBe(128 * 1024);
    next.forEach((c, k) => expect(c[0]).toBe(src[k]));
    arena.rewind();
    expect(round()[0]!.buffer).toBe(next[0]!.buffer);
  });

  it('gives each copy its own bytes across blocks', () => {
    const arena = new DataArena();
    const src = new Uint8Array(256).map((_, i) => i);
    const copies = Array.from({ length: 700 }, (_, k) => arena.copy(src, k % 100, 128));
    copies.forEach((c, k) => expect(c[0]).toBe(k % 100));
    expect(new Set(copies.map((c) => c.buffer)).size).toBeGreaterThan(1);
  });
});
