// The allocator under the Linux module's kmalloc and pages: aligned, non-overlapping ranges
// inside its heap, every byte back after everything is freed, and a bad free refused.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BadFreeError, RamAllocator } from '../../../src/guest/linux/ram-allocator.js';

describe('RamAllocator', () => {
  it('aligns, stays inside the heap, never overlaps, and coalesces back to one range', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ size: fc.integer({ min: 1, max: 20_000 }), alignLog: fc.integer({ min: 0, max: 12 }), freeAt: fc.nat(40) }), { maxLength: 40 }),
        (ops) => {
          const a = new RamAllocator(1000, 1000 + 256 * 1024);
          const live: { at: number; size: number }[] = [];
          ops.forEach((op, i) => {
            const align = 1 << op.alignLog;
            const at = a.alloc(op.size, align);
            if (at !== 0) {
              expect(at % align).toBe(0);
              expect(at).toBeGreaterThanOrEqual(a.base);
              expect(at + op.size).toBeLessThanOrEqual(a.end);
              for (const l of live) expect(at + op.size <= l.at || l.at + l.size <= at).toBe(true);
              live.push({ at, size: op.size });
            }
            if (op.freeAt < i && live.length) a.release(live.splice(op.freeAt % live.length, 1)[0]!.at);
          });
          for (const l of live) a.release(l.at);
          expect(a.usedBytes).toBe(0);
          // Everything coalesced: the whole heap is one allocation again.
          expect(a.alloc(a.end - a.base, 1)).toBe(a.base);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('answers 0 when nothing fits and for sizes or alignments it cannot honour', () => {
    const a = new RamAllocator(4096, 8192);
    expect(a.alloc(4097, 1)).toBe(0);
    expect(a.alloc(0, 8)).toBe(0);
    expect(a.alloc(16, 3)).toBe(0);
    expect(a.alloc(4096, 4096)).toBe(4096);
    expect(a.alloc(1, 1)).toBe(0);
  });

  it('refuses to free what it never gave out, and a double free', () => {
    const a = new RamAllocator(4096, 8192);
    const p = a.alloc(64, 8);
    expect(() => a.release(p + 8)).toThrow(BadFreeError);
    a.release(p);
    expect(() => a.release(p)).toThrow(BadFreeError);
  });
});
