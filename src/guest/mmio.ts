// vmbus_allocate_mmio / vmbus_free_mmio (drivers/hv/vmbus_drv.c): ranges of the VMBus MMIO
// window (src/memory/layout.ts) handed to drivers that map device memory, such as hyperv_fb's
// frame buffer. First fit at the requested alignment; freed ranges are reused.
import type { GpaWindow } from '../memory/layout.js';

export class MmioAllocator {
  private readonly used: { gpa: number; size: number }[] = [];

  constructor(readonly window: GpaWindow | undefined) {}

  /** A range of `size` bytes aligned to `align` (a power of two), or undefined when none is free (-ENOMEM). */
  allocate(size: number, align: number): number | undefined {
    const w = this.window;
    if (!w || !(size > 0) || !Number.isSafeInteger(size) || !(align > 0)) return undefined;
    const sorted = [...this.used].sort((a, b) => a.gpa - b.gpa);
    let at = Math.ceil(w.base / align) * align;
    for (const u of sorted) {
      if (at + size <= u.gpa) break;
      at = Math.max(at, Math.ceil((u.gpa + u.size) / align) * align);
    }
    if (at + size > w.base + w.size) return undefined;
    this.used.push({ gpa: at, size });
    return at;
  }

  free(gpa: number): void {
    const i = this.used.findIndex((u) => u.gpa === gpa);
    if (i >= 0) this.used.splice(i, 1);
  }
}
