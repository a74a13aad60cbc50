// The guest's physical page allocator: whole guest pages (4, 16 or 64 KiB) from the RAM above
// the kernel image, and 4 KiB Hyper-V pages, which a 16 or 64 KiB kernel carves out of its
// own pages as Linux's hv_alloc_hyperv_page() does with kmalloc(4096) (tlfs.md §7.5). Freed
// multi-page blocks are reused for blocks of the same size, as the buddy allocator would: a guest
// that opens and closes channels for ever does not run out of RAM.
import type { GuestMemory } from '../memory/guest-memory.js';
import { HV_HYP_PAGE_SIZE } from '../memory/pages.js';

export class OutOfMemoryError extends Error {
  override readonly name = 'OutOfMemoryError';
}

export class PageAllocator {
  private next: number;
  private readonly freePages: number[] = [];
  private readonly freeHvPages: number[] = [];
  /** Freed contiguous blocks, by their number of pages. */
  private readonly freeBlocks = new Map<number, number[]>();

  constructor(
    private readonly mem: GuestMemory,
    /** Bytes at the bottom of RAM the kernel image and firmware occupy. */
    reserved: number,
  ) {
    this.next = Math.ceil(reserved / mem.pageSize) * mem.pageSize;
  }

  get pageSize(): number {
    return this.mem.pageSize;
  }

  /** Bytes handed out and not given back, the kernel image's reserve included (free(1)'s "used"). */
  get usedBytes(): number {
    let free = this.freePages.length * this.mem.pageSize + this.freeHvPages.length * HV_HYP_PAGE_SIZE;
    for (const [pages, list] of this.freeBlocks) free += pages * list.length * this.mem.pageSize;
    return this.next - free;
  }

  /** One zeroed guest page; returns its GPA. */
  allocPage(): number {
    const gpa = this.freePages.pop() ?? this.bump() ?? this.splitBlock();
    this.mem.fill(gpa, this.mem.pageSize);
    return gpa;
  }

  freePage(gpa: number): void {
    this.freePages.push(gpa);
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
      if (this.next + pages * this.mem.pageSize > this.mem.size) throw new OutOfMemoryError(`no ${pages} contiguous pages left at 0x${this.next.toString(16)}`);
      gpa = this.next;
      this.next += pages * this.mem.pageSize;
    }
    this.mem.fill(gpa, pages * this.mem.pageSize);
    return gpa;
  }

  /** Returns a block from allocContiguous. */
  freeContiguous(gpa: number, bytes: number): void {
    const pages = Math.ceil(bytes / this.mem.pageSize);
    if (pages === 1) return this.freePage(gpa);
    const list = this.freeBlocks.get(pages) ?? [];
    list.push(gpa);
    this.freeBlocks.set(pages, list);
  }

  private bump(): number | undefined {
    if (this.next + this.mem.pageSize > this.mem.size) return undefined;
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
