// A record that cannot grow without limit: the most recent entries up to a capacity, plus a count
// of every entry ever added. Whatever one side can make the other record (violations, log lines,
// faults) is kept in one of these (DESIGN.md "Budgets"). It lives in the top layer so that the
// hypervisor, the host and the guest can all use it.

export class BoundedLog<T> {
  private entries: T[] = [];
  /** Index of the oldest kept entry in `entries` (dropped ones stay below it until compaction). */
  private head = 0;
  private used = 0;
  /** Entries ever added, kept or not. */
  total = 0;

  /**
   * @param capacity how much is kept: a number of entries, or of units `size` counts (bytes of
   *   text, as Linux's log ring keeps bytes, not lines).
   */
  constructor(
    readonly capacity: number,
    private readonly size: (entry: T) => number = () => 1,
  ) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`capacity ${capacity} is not a positive integer`);
  }

  push(entry: T): void {
    this.total++;
    this.entries.push(entry);
    this.used += this.size(entry);
    // Oldest first out; the newest entry always stays, even one bigger than the capacity.
    while (this.used > this.capacity && this.head < this.entries.length - 1) this.used -= this.size(this.entries[this.head++]!);
    // Compact once the dropped prefix is as long as what is kept: amortised O(1) per push.
    if (this.head > 64 && this.head * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** Entries kept now. */
  get length(): number {
    return this.entries.length - this.head;
  }

  /** Entries added but no longer kept. */
  get dropped(): number {
    return this.total - this.length;
  }

  /** The kept entries, oldest first (a copy). */
  get items(): T[] {
    return this.entries.slice(this.head);
  }

  /** The kept entry at `i` (negative: from the newest), as Array.prototype.at. */
  at(i: number): T | undefined {
    const n = this.length;
    const k = i < 0 ? n + i : i;
    return k >= 0 && k < n ? this.entries[this.head + k] : undefined;
  }

  clear(): void {
    this.entries = [];
    this.head = 0;
    this.used = 0;
  }

  [Symbol.iterator](): Iterator<T> {
    return this.items[Symbol.iterator]();
  }
}
