// The host reaches guest memory through the partition's GPA map, beneath the overlay pages (SIMP,
// SIEFP, VP assist, hypercall and TSC pages): TLFS "GPA Overlay Pages" says an overlaid page is
// obscured to the virtual processor, and a parent that wants the processor's view must ask for it
// (HvReadGpa/HvWriteGpa). So a ring or monitor page the guest placed under an overlay is the RAM
// the overlay hides: Hyper-V refuses nothing, the host never writes into a hypervisor page, and
// the guest sees the host's writes once it removes the overlay (memory/overlay.ts gpaMapPage).
import type { GuestMemory } from '../../memory/guest-memory.js';
import { HV_HYP_PAGE_SIZE } from '../../memory/pages.js';
import { pagedRing, type RingMemory } from '../ring/memory.js';
import { RING_CONTROL_SIZE } from '../wire/packets.js';

/** Calls `f(page, offsetInPage, bytes, done)` for each page piece of [gpa, gpa + length) in the GPA map. */
function walk(mem: GuestMemory, gpa: number, length: number, f: (page: Uint8Array, at: number, n: number, done: number) => void): void {
  mem.check(gpa, length);
  for (let done = 0; done < length; ) {
    const at = (gpa + done) % HV_HYP_PAGE_SIZE;
    const n = Math.min(length - done, HV_HYP_PAGE_SIZE - at);
    f(mem.overlays.gpaMapPage(Math.floor((gpa + done) / HV_HYP_PAGE_SIZE)), at, n, done);
    done += n;
  }
}

/**
 * [gpa, gpa + length) of the GPA map as views, in order: one view of RAM when no overlay covers
 * the range (the usual case), else a view per page. Valid until `mem.overlays.generation` changes.
 */
export function hostViews(mem: GuestMemory, gpa: number, length: number): Uint8Array[] {
  if (!mem.overlays.overlaps(gpa, length)) return [mem.view(gpa, length)];
  const out: Uint8Array[] = [];
  walk(mem, gpa, length, (page, at, n) => out.push(page.subarray(at, at + n)));
  return out;
}

/** Copies [gpa, gpa + dst.length) of the GPA map into `dst`. */
export function hostRead(mem: GuestMemory, gpa: number, dst: Uint8Array): void {
  let at = 0;
  for (const v of hostViews(mem, gpa, dst.length)) {
    dst.set(v, at);
    at += v.length;
  }
}

/** Writes `bytes` at `gpa` as the host does: into the GPA map. */
export function hostWrite(mem: GuestMemory, gpa: number, bytes: Uint8Array): void {
  walk(mem, gpa, bytes.length, (page, at, n, done) => page.set(bytes.subarray(done, done + n), at));
}

/** A page of the GPA map as 32-bit words (for Atomics): `gpa` is page-aligned. */
export function hostWords(mem: GuestMemory, gpa: number): Uint32Array {
  const page = mem.overlays.gpaMapPage(gpa / HV_HYP_PAGE_SIZE);
  return new Uint32Array(page.buffer, page.byteOffset, HV_HYP_PAGE_SIZE / 4);
}

/**
 * A ring over GPADL frames as the host maps them: pagedRing when no overlay covers any of them
 * (the usual case), else one over the pages beneath. Valid until `mem.overlays.generation` changes.
 */
export function hostRing(mem: GuestMemory, pfns: readonly number[]): RingMemory {
  if (!pfns.some((p) => mem.overlays.isOverlaid(p))) return pagedRing(mem, pfns);
  if (pfns.length < 2) throw new RangeError('a ring needs a control page and at least one data page');
  const [control, ...data] = pfns.map((p) => mem.overlays.gpaMapPage(p));
  const dataSize = data.length * HV_HYP_PAGE_SIZE;
  const pieces = (offset: number, length: number, f: (page: Uint8Array, at: number, n: number, done: number) => void) => {
    for (let done = 0, pos = offset; done < length; ) {
      const at = pos % HV_HYP_PAGE_SIZE;
      const n = Math.min(length - done, HV_HYP_PAGE_SIZE - at);
      f(data[Math.floor(pos / HV_HYP_PAGE_SIZE)]!, at, n, done);
      done += n;
      pos = (pos + n) % dataSize;
    }
  };
  return {
    control: new Uint32Array(control!.buffer, control!.byteOffset, RING_CONTROL_SIZE / 4),
    dataSize,
    read: (offset, dst) => pieces(offset, dst.length, (page, at, n, done) => dst.set(page.subarray(at, at + n), done)),
    write: (offset, src) => pieces(offset, src.length, (page, at, n, done) => page.set(src.subarray(done, done + n), at)),
  };
}
