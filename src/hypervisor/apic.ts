// The per-VP interrupt controller as far as the Hyper-V interface needs it: a local APIC's
// IRR and ISR, priority classes (vector >> 4), TPR, EOI and auto-EOI (tlfs.md §5.7). On arm64
// the same object stands for the GIC CPU interface, vectors being INTIDs.

const words = (): Uint32Array => new Uint32Array(8);
const test = (a: Uint32Array, v: number): boolean => (a[v >>> 5]! & (1 << (v & 31))) !== 0;
const set = (a: Uint32Array, v: number): void => {
  a[v >>> 5]! |= 1 << (v & 31);
};
const clear = (a: Uint32Array, v: number): void => {
  a[v >>> 5]! &= ~(1 << (v & 31));
};
function highest(a: Uint32Array): number {
  for (let w = 7; w >= 0; w--) {
    const x = a[w]!;
    if (x !== 0) return w * 32 + 31 - Math.clz32(x);
  }
  return -1;
}

export class InterruptController {
  private readonly irr = words();
  private readonly isr = words();
  /** Task priority register (the low 8 bits are architectural). */
  tpr = 0;
  /** Interrupts accepted per vector since reset, for inspection and tests. */
  readonly accepted = new Uint32Array(256);
  /** Called when a vector becomes pending (so a runner can wake the VP). */
  onRaise: ((vector: number) => void) | undefined;
  /** Called when a vector is retired, by EOI or auto-EOI (SynIC uses it to retry messages). */
  onEoi: ((vector: number) => void) | undefined;
  /** Whether a vector is retired at acceptance instead of going in service (SynIC auto-EOI). */
  isAutoEoi: ((vector: number) => boolean) | undefined;
  /**
   * Called before the host changes what accepting an interrupt would do: a raise, a reset, a
   * message queued behind a SINT. A runner whose guest may take an offered vector without a trap
   * (worker mode's posted interrupts, vm/threaded/protocol.ts Offer) settles or withdraws the
   * offer here, so that the take falls wholly before the change or wholly after it.
   */
  beforeChange: (() => void) | undefined;

  /** Sets a fixed, edge-triggered interrupt pending. Vectors outside 0..255 are ignored. */
  raise(vector: number): void {
    if (!Number.isInteger(vector) || vector < 0 || vector > 255) return;
    this.beforeChange?.();
    set(this.irr, vector);
    this.onRaise?.(vector);
  }

  isPending(vector: number): boolean {
    return test(this.irr, vector);
  }

  inService(vector: number): boolean {
    return test(this.isr, vector);
  }

  /** Processor priority class: the higher of TPR's and the highest in-service vector's. */
  private ppClass(): number {
    const s = highest(this.isr);
    return Math.max(this.tpr >> 4, s < 0 ? 0 : s >> 4);
  }

  /** The vector the processor would take now, if any (before interrupt-enable is considered). */
  deliverable(): number | undefined {
    const v = highest(this.irr);
    if (v < 0 || v >> 4 <= this.ppClass()) return undefined;
    return v;
  }

  /** Accepts the deliverable interrupt: IRR → ISR, or retired at once if auto-EOI. */
  acknowledge(): number | undefined {
    const v = this.deliverable();
    if (v === undefined) return undefined;
    clear(this.irr, v);
    this.accepted[v]!++;
    if (this.isAutoEoi?.(v)) {
      this.onEoi?.(v);
    } else {
      set(this.isr, v);
    }
    return v;
  }

  /** EOI: retires the highest in-service vector. Returns it, or undefined if none was in service. */
  eoi(): number | undefined {
    const v = highest(this.isr);
    if (v < 0) return undefined;
    clear(this.isr, v);
    this.onEoi?.(v);
    return v;
  }

  reset(): void {
    this.beforeChange?.();
    this.irr.fill(0);
    this.isr.fill(0);
    this.accepted.fill(0);
    this.tpr = 0;
  }
}
