// A command's data buffer in guest memory: the GPA-direct range of an EXECUTE_SRB packet, cut to
// the request's data_transfer_length. Pages are Hyper-V's 4 KiB pages whatever the guest's own
// page size; every page must lie in RAM, which the host checks before it touches any byte, and the
// host reaches it through the GPA map, never into an overlay page.
import { HV_HYP_PAGE_SIZE } from '../../memory/pages.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { ParsedRange } from '../../vmbus/wire/packets.js';
import { hostViews } from '../../vmbus/server/gpa-map.js';
import { DataAccessError, type ScsiData } from './target.js';

/** Why a range cannot back a buffer: the field at fault. */
export class RangeProblem extends Error {
  override readonly name = 'RangeProblem';
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

export class GpaData implements ScsiData {
  /** Runs of guest-physically contiguous bytes, as pairs: GPA, then length (no object per run). */
  private readonly runs: number[];

  /**
   * `length` bytes of `range` (which must hold them), writable by the host or not. Throws
   * RangeProblem when the range is too short or a page lies outside RAM.
   */
  constructor(
    private readonly memory: GuestMemory,
    range: ParsedRange,
    readonly length: number,
    readonly writable: boolean,
  ) {
    if (range.byteCount < length) throw new RangeProblem('range.byte_count', `${range.byteCount} bytes is less than the ${length} the request transfers`);
    const runs: number[] = [];
    let left = length;
    let offset = range.byteOffset;
    // The run being gathered: pages that follow each other in guest memory make one run.
    let runGpa = 0;
    let runLength = 0;
    for (let i = 0; left > 0; i++) {
      const pfn = range.pfns[i];
      if (pfn === undefined) throw new RangeProblem(`range.pfn_array[${i}]`, 'missing');
      const gpa = pfn * HV_HYP_PAGE_SIZE + offset;
      const n = Math.min(left, HV_HYP_PAGE_SIZE - offset);
      if (!Number.isSafeInteger(gpa) || !memory.contains(gpa, n)) throw new RangeProblem(`range.pfn_array[${i}]`, `page 0x${pfn.toString(16)} is outside the guest's ${memory.size}-byte RAM`);
      if (runLength > 0 && runGpa + runLength === gpa) runLength += n;
      else {
        if (runLength > 0) runs.push(runGpa, runLength);
        runGpa = gpa;
        runLength = n;
      }
      left -= n;
      offset = 0;
    }
    if (runLength > 0) runs.push(runGpa, runLength);
    this.runs = runs;
  }

  write(offset: number, src: Uint8Array): void {
    if (!this.writable) throw new DataAccessError('the request is a write (data_in WRITE_TYPE): its buffer is not for the host to write');
    let at = 0;
    for (const v of this.views(offset, src.length)) {
      v.set(src.subarray(at, at + v.length));
      at += v.length;
    }
  }

  read(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let at = 0;
    for (const v of this.views(offset, length)) {
      out.set(v, at);
      at += v.length;
    }
    return out;
  }

  views(offset: number, length: number): Uint8Array[] {
    if (offset < 0 || length < 0 || offset + length > this.length) throw new DataAccessError(`${length} bytes at ${offset} overrun the ${this.length}-byte buffer`);
    let out: Uint8Array[] | undefined;
    let skip = offset;
    let left = length;
    const runs = this.runs;
    for (let r = 0; r < runs.length; r += 2) {
      if (left === 0) break;
      const runGpa = runs[r]!;
      const runLength = runs[r + 1]!;
      if (skip >= runLength) {
        skip -= runLength;
        continue;
      }
      const n = Math.min(runLength - skip, left);
      // Through the GPA map: a buffer under an overlay page is the RAM the overlay hides (gpa-map.ts).
      const views = hostViews(this.memory, runGpa + skip, n);
      // The usual buffer, one run of pages: hostViews' own list is the answer.
      if (n === left && out === undefined) return views;
      out ??= [];
      for (let i = 0; i < views.length; i++) out.push(views[i]!);
      left -= n;
      skip = 0;
    }
    return out ?? [];
  }
}
