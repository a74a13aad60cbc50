// A user-space workload that wants memory: `memory demand SIZE` in a VM script. Like a process
// that maps SIZE of anonymous memory and touches it, it charges the whole size to Committed_AS at
// once (the commit charge of the mapping) and faults pages in as free memory allows, a batch per
// tick, keeping a reserve free for the kernel (min_free_kbytes' role). Lowering the demand
// frees pages at once; `memory demand 0` frees all of it.
import type { PageAllocator } from './mm.js';

/** Pages faulted in per step, and how often a step runs while memory is short (guest ns). */
const PAGES_PER_STEP = 8192;
export const MEMORY_DEMAND_STEP_NS = 10_000_000;
/** Pages left free for the kernel: 1 MiB, about min_free_kbytes of a small VM. UNVERIFIED as a model of reclaim. */
const RESERVE_BYTES = 1 << 20;

export class MemoryDemand {
  /** Pages the workload wants, and those it holds (GPAs). */
  private wanted = 0;
  private readonly held: number[] = [];
  private step: { cancel(): boolean } | undefined;

  constructor(
    private readonly mm: PageAllocator,
    private readonly schedule: (delayNs: number, work: () => void) => { cancel(): boolean },
  ) {}

  /** Bytes the workload wants. */
  get wantedBytes(): number {
    return this.wanted * this.mm.pageSize;
  }

  /** Bytes it holds (resident). */
  get residentBytes(): number {
    return this.held.length * this.mm.pageSize;
  }

  /** Sets the demand to `bytes` (rounded up to whole pages). */
  set(bytes: number): void {
    this.wanted = Math.ceil(Math.max(0, bytes) / this.mm.pageSize);
    while (this.held.length > this.wanted) this.mm.freePage(this.held.pop()!);
    this.fault();
  }

  /** Faults in what it can now; if pages are still missing, tries again next step. */
  private fault(): void {
    this.step?.cancel();
    this.step = undefined;
    const reserve = RESERVE_BYTES / this.mm.pageSize;
    for (let n = 0; n < PAGES_PER_STEP && this.held.length < this.wanted && this.mm.freePageCount > reserve; n++) {
      const gpa = this.mm.tryAllocPage();
      if (gpa === undefined) break;
      this.held.push(gpa);
    }
    this.mm.pendingCommit = this.wanted - this.held.length;
    if (this.held.length < this.wanted) this.step = this.schedule(MEMORY_DEMAND_STEP_NS, () => this.fault());
  }
}
