// A buffer described by a list of 4 KiB frames, possibly non-contiguous: the shape of every GPA
// list VMBus and the hypercalls exchange (GPADLs, gpa_range, rings over a page list).
// Gather and scatter copy whole runs of consecutive frames at once.
import { PfnListError } from './errors.js';
import type { GuestMemory } from './guest-memory.js';
import { HV_HYP_PAGE_SIZE } from './pages.js';

/** A run of consecutive frames: `count` frames starting at `pfn`. */
export interface PfnRun {
  readonly pfn: number;
  readonly count: number;
}

export class PfnList {
  readonly pfns: readonly number[];
  /** Byte offset of the buffer's start within the first frame. */
  readonly offset: number;
  /** Length of the buffer in bytes. */
  readonly length: number;
  /** The frames merged into runs of consecutive PFNs. */
  readonly runs: readonly PfnRun[];

  constructor(pfns: readonly number[], offset = 0, length?: number) {
    const capacity = pfns.length * HV_HYP_PAGE_SIZE;
    for (let i = 0; i < pfns.length; i++) {
      const p = pfns[i]!;
      if (!Number.isSafeInteger(p) || p < 0) throw new PfnListError(`pfns[${i}]`, `${p} is not a frame number`);
    }
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= HV_HYP_PAGE_SIZE) {
      throw new PfnListError('offset', `${offset} is not within a 4 KiB page`);
    }
    const len = length ?? capacity - offset;
    if (!Number.isSafeInteger(len) || len < 0 || offset + len > capacity) {
      throw new PfnListError('length', `${len} bytes at offset ${offset} do not fit ${pfns.length} pages`);
    }
    this.pfns = pfns;
    this.offset = offset;
    this.length = len;
    this.runs = mergeRuns(pfns);
  }

  /** A list covering [gpa, gpa + length) of contiguous guest memory. */
  static fromRange(gpa: number, length: number): PfnList {
    if (!Number.isSafeInteger(gpa) || gpa < 0) throw new PfnListError('gpa', `${gpa} is not an address`);
    const first = Math.floor(gpa / HV_HYP_PAGE_SIZE);
    const last = length > 0 ? Math.floor((gpa + length - 1) / HV_HYP_PAGE_SIZE) : first;
    const pfns = Array.from({ length: last - first + 1 }, (_, i) => first + i);
    return new PfnList(pfns, gpa % HV_HYP_PAGE_SIZE, length);
  }

  /** True when the whole buffer is one run of consecutive frames. */
  get contiguous(): boolean {
    return this.runs.length <= 1;
  }

  /** The GPA of byte `pos` of the buffer. */
  gpaAt(pos: number): number {
    if (!Number.isSafeInteger(pos) || pos < 0 || pos >= this.length) throw new PfnListError('pos', `${pos} is outside the ${this.length}-byte buffer`);
    const abs = this.offset + pos;
    return this.pfns[Math.floor(abs / HV_HYP_PAGE_SIZE)]! * HV_HYP_PAGE_SIZE + (abs % HV_HYP_PAGE_SIZE);
  }

  /** Copies `dst.length` bytes starting at buffer position `pos` out of guest memory. */
  gather(mem: GuestMemory, pos: number, dst: Uint8Array): void {
    this.walk(pos, dst.length, (gpa, at, n) => dst.set(mem.view(gpa, n), at));
  }

  /** Copies `src` into the buffer at position `pos`. */
  scatter(mem: GuestMemory, pos: number, src: Uint8Array): void {
    this.walk(pos, src.length, (gpa, at, n) => mem.view(gpa, n).set(src.subarray(at, at + n)));
  }

  /** Calls `f(gpa, bufferIndex, bytes)` for each physically contiguous piece of [pos, pos + len). */
  private walk(pos: number, len: number, f: (gpa: number, at: number, n: number) => void): void {
    if (!Number.isSafeInteger(pos) || pos < 0 || !Number.isSafeInteger(len) || pos + len > this.length) {
      throw new PfnListError('pos', `${len} bytes at ${pos} exceed the ${this.length}-byte buffer`);
    }
    if (len === 0) return;
    let abs = this.offset + pos;
    let done = 0;
    // Skip whole runs before the start, then copy run by run.
    let runStart = 0; // index of the first frame of the current run, in frames
    for (const run of this.runs) {
      const runBytesEnd = (runStart + run.count) * HV_HYP_PAGE_SIZE;
      if (abs < runBytesEnd) {
        const inRun = abs - runStart * HV_HYP_PAGE_SIZE;
        const n = Math.min(len - done, runBytesEnd - abs);
        f(run.pfn * HV_HYP_PAGE_SIZE + inRun, done, n);
        done += n;
        abs += n;
        if (done === len) return;
      }
      runStart += run.count;
    }
  }
}

function mergeRuns(pfns: readonly number[]): PfnRun[] {
  const runs: PfnRun[] = [];
  for (const p of pfns) {
    const last = runs[runs.length - 1];
    if (last && last.pfn + last.count === p) runs[runs.length - 1] = { pfn: last.pfn, count: last.count + 1 };
    else runs.push({ pfn: p, count: 1 });
  }
  return runs;
}
