// The guest's page allocator: a guest that opens and closes channels for ever (their rings are
// contiguous blocks) reuses the freed blocks, as Linux's buddy allocator does.
import { describe, expect, it } from 'vitest';
import { OutOfMemoryError, PageAllocator } from '../../src/guest/mm.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';

describe('PageAllocator', () => {
  it('a freed block is reused for the next block of its size, zeroed: 10^4 ring-sized cycles fit in 1 MiB', () => {
    const mem = new GuestMemory({ size: 1 << 20 });
    const mm = new PageAllocator(mem, 64 << 10);
    const seen = new Set<number>();
    for (let i = 0; i < 10_000; i++) {
      const gpa = mm.allocContiguous(12 * 4096);
      expect(mem.read32(gpa)).toBe(0);
      mem.write32(gpa, 0xdead);
      seen.add(gpa);
      mm.freeContiguous(gpa, 12 * 4096);
    }
    expect(seen.size).toBe(1);
  });

  it('single pages come from free blocks once RAM is used up; then RAM is exhausted', () => {
    const mem = new GuestMemory({ size: 64 << 10 });
    const mm = new PageAllocator(mem, 0);
    const block = mm.allocContiguous(8 * 4096);
    for (let i = 0; i < 8; i++) mm.allocPage();
    expect(() => mm.allocPage()).toThrow(OutOfMemoryError);
    mm.freeContiguous(block, 8 * 4096);
    const pages = Array.from({ length: 8 }, () => mm.allocPage());
    expect(pages.sort((a, b) => a - b)).toEqual(Array.from({ length: 8 }, (_, i) => block + i * 4096));
    expect(() => mm.allocPage()).toThrow(OutOfMemoryError);
  });

  it('allocPageList takes the pages allocPage would, in its order, zeroed; out of RAM it keeps those it took and throws', () => {
    // Two allocators over the same history: freed pages in a scattered order, fresh RAM, then a free block split.
    const setup = () => {
      const mem = new GuestMemory({ size: 64 << 10 });
      const mm = new PageAllocator(mem, 0);
      const block = mm.allocContiguous(4 * 4096);
      const singles = Array.from({ length: 6 }, () => mm.allocPage());
      for (const gpa of [singles[3]!, singles[0]!, singles[4]!]) {
        mem.fill(gpa, 4096, 0xaa);
        mm.freePage(gpa);
      }
      mem.fill(block, 4 * 4096, 0xbb);
      mm.freeContiguous(block, 4 * 4096);
      return { mem, mm };
    };
    const one = setup();
    const two = setup();
    const expected = Array.from({ length: 11 }, () => one.mm.allocPage());
    const list = two.mm.allocPageList(11);
    expect(list).toEqual(expected);
    expect(two.mm.usedPages).toBe(one.mm.usedPages);
    expect(two.mem.bytes).toEqual(one.mem.bytes);
    for (const gpa of list) expect(two.mem.read(gpa, 4096).every((b) => b === 0)).toBe(true);

    const left = two.mm.freePageCount;
    expect(() => two.mm.allocPageList(left + 1)).toThrow(OutOfMemoryError);
    expect(two.mm.freePageCount).toBe(0);
  });

  it('allocPageList(count, false) takes the same pages and leaves what they held (a read\'s buffer, which the device fills)', () => {
    const mem = new GuestMemory({ size: 64 << 10 });
    const mm = new PageAllocator(mem, 0);
    const [a, b] = [mm.allocPage(), mm.allocPage()];
    mem.fill(a!, 4096, 0xaa);
    mem.fill(b!, 4096, 0xbb);
    mm.freePage(a!);
    mm.freePage(b!);
    const pages = mm.allocPageList(2, false);
    expect(pages).toEqual([b, a]);
    expect(mem.read(b!, 4096).every((x) => x === 0xbb)).toBe(true);
    expect(mem.read(a!, 4096).every((x) => x === 0xaa)).toBe(true);
    expect(mm.usedPages).toBe(2);
  });
});
