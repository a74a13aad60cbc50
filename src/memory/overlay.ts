// GPA overlay pages (tlfs.md §2.4): while an overlay is mapped at a GPN the guest sees its
// contents there; once unmapped the guest sees its own page again.
//
// The visible overlay's contents live in RAM itself (the RAM page underneath is saved aside), so
// guest accesses cost nothing extra, a guest in another thread sees the overlay through the
// shared buffer, and the hypervisor writes the page exactly where the guest reads it. Overlays
// stack: mapping a second overlay on the same GPN hides the first until the second goes.
//
// Overlays are what the guest's processors see. The host reaches guest memory through the GPA
// map, beneath them (TLFS "GPA Overlay Pages": an overlaid page is obscured "to the virtual
// processor"; a parent that wants the VP's view uses HvReadGpa/HvWriteGpa): gpaMapPage() is that
// view, the RAM page an overlay hides.
import { GpaOutOfRangeError } from './errors.js';
import { HV_HYP_PAGE_SIZE } from './pages.js';

export class OverlayPage {
  /** GPN where the page is mapped, or undefined. */
  gpn: number | undefined = undefined;
  /** Contents while the page is not the visible one at its GPN. */
  private readonly storage = new Uint8Array(HV_HYP_PAGE_SIZE);
  private window: Uint8Array | undefined = undefined;
  private views: { u32: Uint32Array; dv: DataView } | undefined;

  constructor(
    /** What the page is, for diagnostics: "SIMP vp1", "hypercall page". */
    readonly label: string,
  ) {}

  /**
   * The page's 4 KiB wherever they live now: the RAM window while visible, else private
   * storage. Take it afresh for each use; mapping changes move it.
   */
  get bytes(): Uint8Array {
    return this.window ?? this.storage;
  }

  /** The page as 32-bit words (for Atomics) and as a DataView, wherever it lives now. */
  get u32(): Uint32Array {
    return (this.views ??= this.makeViews()).u32;
  }
  get dv(): DataView {
    return (this.views ??= this.makeViews()).dv;
  }

  private makeViews(): { u32: Uint32Array; dv: DataView } {
    const b = this.bytes;
    return { u32: new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4), dv: new DataView(b.buffer, b.byteOffset, b.byteLength) };
  }

  get mapped(): boolean {
    return this.gpn !== undefined;
  }

  clear(): void {
    this.bytes.fill(0);
  }

  /** @internal Moves the contents into RAM (becoming visible) or back out. */
  setWindow(window: Uint8Array | undefined): void {
    if (window && !this.window) {
      window.set(this.storage);
    } else if (!window && this.window) {
      this.storage.set(this.window);
    }
    this.window = window;
    this.views = undefined;
  }
}

interface Stack {
  /** The guest's own RAM page, saved while any overlay covers it. */
  readonly base: Uint8Array;
  readonly layers: OverlayPage[];
}

export class OverlayTable {
  private readonly stacks = new Map<number, Stack>();
  /** Changes whenever an overlay is mapped or unmapped: a host mapping taken before is stale. */
  generation = 0;

  constructor(private readonly ram: Uint8Array) {}

  /** Number of GPNs currently covered by at least one overlay. */
  get size(): number {
    return this.stacks.size;
  }

  isOverlaid(gpn: number): boolean {
    return this.stacks.has(gpn);
  }

  /** True if any page of [gpa, gpa + length) is covered by an overlay. */
  overlaps(gpa: number, length: number): boolean {
    if (this.stacks.size === 0 || length <= 0) return false;
    const first = Math.floor(gpa / HV_HYP_PAGE_SIZE);
    const last = Math.floor((gpa + length - 1) / HV_HYP_PAGE_SIZE);
    for (let gpn = first; gpn <= last; gpn++) if (this.stacks.has(gpn)) return true;
    return false;
  }

  /**
   * Page `gpn` of the GPA map, as the host sees it: RAM, or the RAM page an overlay hides there.
   * Valid until `generation` changes.
   */
  gpaMapPage(gpn: number): Uint8Array {
    const stack = this.stacks.get(gpn);
    if (stack) return stack.base;
    const gpa = gpn * HV_HYP_PAGE_SIZE;
    if (!Number.isSafeInteger(gpn) || gpn < 0 || gpa + HV_HYP_PAGE_SIZE > this.ram.length) throw new GpaOutOfRangeError(gpa, HV_HYP_PAGE_SIZE, this.ram.length);
    return this.ram.subarray(gpa, gpa + HV_HYP_PAGE_SIZE);
  }

  /** The overlay the guest sees at `gpn`, if any. */
  visibleAt(gpn: number): OverlayPage | undefined {
    const s = this.stacks.get(gpn);
    return s?.layers[s.layers.length - 1];
  }

  /** Maps `page` at `gpn` (moving it if mapped elsewhere). Throws GpaOutOfRangeError outside RAM. */
  map(page: OverlayPage, gpn: number): void {
    const gpa = gpn * HV_HYP_PAGE_SIZE;
    if (!Number.isSafeInteger(gpn) || gpn < 0 || gpa + HV_HYP_PAGE_SIZE > this.ram.length) {
      throw new GpaOutOfRangeError(gpa, HV_HYP_PAGE_SIZE, this.ram.length);
    }
    if (page.gpn === gpn) return;
    if (page.gpn !== undefined) this.unmap(page);
    this.generation++;
    const window = this.ram.subarray(gpa, gpa + HV_HYP_PAGE_SIZE);
    let stack = this.stacks.get(gpn);
    if (!stack) {
      stack = { base: window.slice(), layers: [] };
      this.stacks.set(gpn, stack);
    }
    stack.layers[stack.layers.length - 1]?.setWindow(undefined);
    stack.layers.push(page);
    page.gpn = gpn;
    page.setWindow(window);
  }

  unmap(page: OverlayPage): void {
    const gpn = page.gpn;
    if (gpn === undefined) return;
    const stack = this.stacks.get(gpn);
    page.gpn = undefined;
    if (!stack) return;
    this.generation++;
    const i = stack.layers.indexOf(page);
    if (i < 0) return;
    const top = i === stack.layers.length - 1;
    stack.layers.splice(i, 1);
    if (!top) return; // a hidden layer: its contents are already in its own storage
    page.setWindow(undefined);
    const below = stack.layers[stack.layers.length - 1];
    const gpa = gpn * HV_HYP_PAGE_SIZE;
    const window = this.ram.subarray(gpa, gpa + HV_HYP_PAGE_SIZE);
    if (below) {
      below.setWindow(window);
    } else {
      window.set(stack.base);
      this.stacks.delete(gpn);
    }
  }
}
