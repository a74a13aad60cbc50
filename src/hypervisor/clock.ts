// Virtual time belongs to the VM: a nanosecond counter that only moves when someone advances
// it, with a queue of events that fire in deadline order as it moves. Tests step it and every
// timer behaves deterministically; an interactive runner can pace it to wall-clock time.

export interface ClockEvent {
  readonly atNs: number;
  cancel(): void;
}

interface Entry {
  atNs: number;
  seq: number;
  fn: () => void;
  live: boolean;
}

export class VirtualClock {
  private ns = 0;
  private seq = 0;
  private readonly heap: Entry[] = [];

  /** Nanoseconds since the partition was created. */
  get nowNs(): number {
    return this.ns;
  }

  /** Runs `fn` when the clock reaches `atNs` (at once on the next advance if already past). */
  schedule(atNs: number, fn: () => void): ClockEvent {
    const e: Entry = { atNs: Math.max(Math.ceil(atNs), this.ns), seq: this.seq++, fn, live: true };
    this.push(e);
    return {
      atNs: e.atNs,
      cancel: () => {
        e.live = false;
      },
    };
  }

  /** Deadline of the next live event, if any. */
  nextEventNs(): number | undefined {
    this.dropDead();
    return this.heap[0]?.atNs;
  }

  /**
   * Moves the clock to `targetNs`, firing due events in order; each runs with the clock at its
   * own deadline. Events an event schedules within the window fire too. Returns how many fired.
   */
  advanceTo(targetNs: number): number {
    // Whole nanoseconds only: time feeds 64-bit arithmetic (the TSC, the reference counter).
    targetNs = Math.floor(targetNs);
    if (!(targetNs >= this.ns) || !Number.isSafeInteger(targetNs)) return 0;
    let fired = 0;
    for (;;) {
      this.dropDead();
      const top = this.heap[0];
      if (!top || top.atNs > targetNs) break;
      this.pop();
      this.ns = Math.max(this.ns, top.atNs);
      top.live = false;
      top.fn();
      fired++;
    }
    this.ns = targetNs;
    return fired;
  }

  advance(deltaNs: number): number {
    return this.advanceTo(this.ns + Math.max(0, deltaNs));
  }

  /** Fires every event already due without moving the clock. */
  runDue(): number {
    return this.advanceTo(this.ns);
  }

  private dropDead(): void {
    while (this.heap.length > 0 && !this.heap[0]!.live) this.pop();
  }

  private before(a: Entry, b: Entry): boolean {
    return a.atNs < b.atNs || (a.atNs === b.atNs && a.seq < b.seq);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
