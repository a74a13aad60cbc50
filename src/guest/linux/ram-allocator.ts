// The allocator behind the Linux module's kmalloc, pages and vmalloc (linux/shim/mm.c): byte
// ranges of the wasm memory above the module's own data (__heap_base), first fit with the
// alignment asked for. Its bookkeeping lives here, outside guest RAM, so nothing the host writes
// into RAM can corrupt it.

/** An allocation the shim frees that it never got (a double free, a stray pointer). */
export class BadFreeError extends Error {
  override readonly name = 'BadFreeError';
}

export class RamAllocator {
  /** Free ranges [start, end), sorted by start, never adjacent. */
  private free: { start: number; end: number }[];
  private readonly used = new Map<number, number>();

  constructor(
    readonly base: number,
    readonly end: number,
  ) {
    // Address 0 is the shim's "no memory" answer, so the heap starts above it.
    if (!(Number.isSafeInteger(base) && Number.isSafeInteger(end) && base > 0 && base <= end)) throw new RangeError(`bad heap [${base}, ${end})`);
    this.free = base < end ? [{ start: base, end }] : [];
  }

  /** Bytes allocated now. */
  get usedBytes(): number {
    let n = 0;
    for (const size of this.used.values()) n += size;
    return n;
  }

  /** An address aligned to `align` (a power of two) with `size` bytes free after it, or 0 when none is left. */
  alloc(size: number, align: number): number {
    if (!(Number.isSafeInteger(size) && size > 0 && Number.isSafeInteger(align) && align > 0 && (align & (align - 1)) === 0)) return 0;
    for (let i = 0; i < this.free.length; i++) {
      const r = this.free[i]!;
      const at = Math.ceil(r.start / align) * align;
      if (at + size > r.end) continue;
      const pieces: { start: number; end: number }[] = [];
      if (at > r.start) pieces.push({ start: r.start, end: at });
      if (at + size < r.end) pieces.push({ start: at + size, end: r.end });
      this.free.splice(i, 1, ...pieces);
      this.used.set(at, size);
      return at;
    }
    return 0;
  }

  release(addr: number): void {
    const size = this.used.get(addr);
    if (size === undefined) throw new BadFreeError(`kfree(0x${addr.toString(16)}): not an allocation`);
    this.used.delete(addr);
    let lo = 0;
    let hi = this.free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.free[mid]!.start < addr) lo = mid + 1;
      else hi = mid;
    }
    const range = { start: addr, end: addr + size };
    const prev = this.free[lo - 1];
    const next = this.free[lo];
    if (prev && prev.end === range.start) {
      prev.end = range.end;
      if (next && next.start === prev.end) {
        prev.end = next.end;
        this.free.splice(lo, 1);
      }
    } else if (next && next.start === range.end) {
      next.start = range.start;
    } else {
      this.free.splice(lo, 0, range);
    }
  }
}
