// The guest's physical page allocator: whole guest pages (4, 16 or 64 KiB) from the RAM above
// the kernel image, and 4 KiB Hyper-V pages, which a 16 or 64 KiB kernel carves out of its
// own pages as Linux's hv_alloc_hyperv_page() does with kmalloc(4096) (tlfs.md §7.5). Freed
// multi-page blocks are reused for blocks of the same size, as the buddy allocator would: a guest
// that opens and closes channels for ever does not run out of RAM. It keeps the counts
// /proc/meminfo shows (MemTotal: the managed pages; MemFree: those not allocated), which the
// balloon driver moves as Linux's adjust_managed_page_count does: a page given to the host leaves
// the managed pages, a hot-added page joins them.
import type { GuestMemory } from '../memory/guest-memory.js';
import { HV_HYP_PAGE_SIZE } from '../memory/pages.js';

export class OutOfMemoryError extends Error {
  override readonly name = 'OutOfMemoryError';
}

export class PageAllocator {
  private next: number;
  /** totalram_pages: pages the allocator manages (MemTotal). */
  private managed: number;
  /** Pages allocated and not freed. */
  private used = 0;
  /** Commit charged by user space beyond its resident pages (memory-demand.ts). */
  pendingCommit = 0;
  private readonly freePages: number[] = [];
  private readonly freeHvPages: number[] = [];
  /** Freed contiguous blocks, by their number of pages. */
  private readonly freeBlocks = new Map<number, number[]>();

  constructor(
    private readonly mem: GuestMemory,
    /** Bytes at the bottom of RAM the kernel image and firmware occupy. */
    reserved: number,
    /**
     * End of the boot RAM the bump pointer may use: where the VMBus MMIO window begins
     * (src/memory/layout.ts), else all of it. Hot-added RAM comes through addPages.
     */
    private readonly end: number = mem.size,
  ) {
    this.next = Math.ceil(reserved / mem.pageSize) * mem.pageSize;
    this.end = Math.min(end, mem.size);
    this.managed = Math.max(0, (this.end - this.next) / mem.pageSize);
  }

  /** The boot RAM the bump pointer has not handed out yet, [start, end): where large allocations come from next. */
  get unallocated(): { start: number; end: number } {
    return { start: this.next, end: this.end };
  }

  /** MemTotal, in guest pages. */
  get totalPages(): number {
    return this.managed;
  }

  /** MemFree, in guest pages. */
  get freePageCount(): number {
    return this.managed - this.used;
  }

  /** Pages allocated and not freed. */
  get usedPages(): number {
    return this.used;
  }

  /** vm_memory_committed(): the model's Committed_AS, in pages (allocated plus charged-ahead). */
  get committedPages(): number {
    return this.used + this.pendingCommit;
  }

  /** One zeroed guest page, or undefined when none is free (an allocation that may fail). */
  tryAllocPage(): number | undefined {
    if (this.freePageCount <= 0) return undefined;
    try {
      return this.allocPage();
    } catch (e) {
      if (e instanceof OutOfMemoryError) return undefined;
      throw e;
    }
  }

  /**
   * A block of `pages` contiguous pages that leaves the allocator (alloc_pages, then
   * adjust_managed_page_count(-pages) as hv_balloon does): not zeroed, no longer in MemTotal.
   * Undefined when no such block is free.
   */
  takePages(pages: number): number | undefined {
    if (!Number.isInteger(pages) || pages < 1 || this.freePageCount < pages) return undefined;
    let gpa: number | undefined;
    if (pages === 1) gpa = this.freePages.pop() ?? this.bump();
    else {
      gpa = this.freeBlocks.get(pages)?.pop();
      if (gpa === undefined && this.next + pages * this.mem.pageSize <= this.end) {
        gpa = this.next;
        this.next += pages * this.mem.pageSize;
      }
    }
    if (gpa === undefined) return undefined;
    this.managed -= pages;
    return gpa;
  }

  /** Pages join the allocator as free (a ballooned page given back, or hot-added RAM onlined). */
  addPages(gpa: number, pages: number): void {
    for (let i = pages - 1; i >= 0; i--) this.freePages.push(gpa + i * this.mem.pageSize);
    this.managed += pages;
  }

  get pageSize(): number {
    return this.mem.pageSize;
  }

  /** One zeroed guest page; returns its GPA. */
  allocPage(): number {
    const gpa = this.freePages.pop() ?? this.bump() ?? this.splitBlock();
    this.mem.fill(gpa, this.mem.pageSize);
    this.used++;
    return gpa;
  }

  /**
   * `count` zeroed pages, as `count` calls of allocPage() would take them (the same pages in the
   * same order, the same OutOfMemoryError after those it could take), zeroed a contiguous run at
   * a time: one large zeroing costs less than many small ones. With `zeroed` false they keep what
   * they held (a buffer a device fills, which Linux does not clear either).
   */
  allocPageList(count: number, zeroed = true): number[] {
    const size = this.mem.pageSize;
    const pages: number[] = [];
    try {
      for (let i = 0; i < count; i++) pages.push(this.freePages.pop() ?? this.bump() ?? this.splitBlock());
    } finally {
      // Taken pages are zeroed and counted even when one could not be found, as allocPage leaves them.
      for (let i = 0; zeroed && i < pages.length; ) {
        let end = i + 1;
        while (end < pages.length && pages[end] === pages[i]! + (end - i) * size) end++;
        this.mem.fill(pages[i]!, (end - i) * size);
        i = end;
      }
      this.used += pages.length;
    }
    return pages;
  }

  freePage(gpa: number): void {
    this.freePages.push(gpa);
    this.used--;
  }

  /** One zeroed, 4 KiB-aligned Hyper-V page (hv_alloc_hyperv_zeroed_page). */
  allocHvPage(): number {
    if (this.mem.pageSize === HV_HYP_PAGE_SIZE) return this.allocPage();
    if (this.freeHvPages.length === 0) {
      const page = this.allocPage();
      for (let off = this.mem.pageSize - HV_HYP_PAGE_SIZE; off >= 0; off -= HV_HYP_PAGE_SIZE) this.freeHvPages.push(page + off);
    }
    const gpa = this.freeHvPages.pop()!;
    this.mem.fill(gpa, HV_HYP_PAGE_SIZE);
    return gpa;
  }

  freeHvPage(gpa: number): void {
    if (this.mem.pageSize === HV_HYP_PAGE_SIZE) this.freePage(gpa);
    else this.freeHvPages.push(gpa);
  }

  /** Zeroed, physically contiguous guest pages covering `bytes` (alloc_pages of an order). */
  allocContiguous(bytes: number): number {
    const pages = Math.ceil(bytes / this.mem.pageSize);
    if (pages === 1) return this.allocPage();
    let gpa = this.freeBlocks.get(pages)?.pop();
    if (gpa === undefined) {
      if (this.next + pages * this.mem.pageSize > this.end) throw new OutOfMemoryError(`no ${pages} contiguous pages left at 0x${this.next.toString(16)}`);
      gpa = this.next;
      this.next += pages * this.mem.pageSize;
    }
    this.mem.fill(gpa, pages * this.mem.pageSize);
    this.used += pages;
    return gpa;
  }

  /** Returns a block from allocContiguous. */
  freeContiguous(gpa: number, bytes: number): void {
    const pages = Math.ceil(bytes / this.mem.pageSize);
    if (pages === 1) return this.freePage(gpa);
    this.used -= pages;
    const list = this.freeBlocks.get(pages) ?? [];
    list.push(gpa);
    this.freeBlocks.set(pages, list);
  }

  private bump(): number | undefined {
    if (this.next + this.mem.pageSize > this.end) return undefined;
    const gpa = this.next;
    this.next += this.mem.pageSize;
    return gpa;
  }

  /** With RAM used up, a free block becomes single pages. */
  private splitBlock(): number {
    for (const [pages, list] of this.freeBlocks) {
      const gpa = list.pop();
      if (gpa === undefined) continue;
      for (let i = 1; i < pages; i++) this.freePages.push(gpa + i * this.mem.pageSize);
      return gpa;
    }
    throw new OutOfMemoryError(`guest RAM exhausted at 0x${this.next.toString(16)}`);
  }
}
