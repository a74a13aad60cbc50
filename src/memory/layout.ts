// Where hvkit's machine puts things in guest physical space beyond RAM. A Generation 2 VM on
// Hyper-V has an MMIO gap below 4 GiB that ACPI hands to the VMBus device (_CRS of VMBUS), from
// which Linux's vmbus_allocate_mmio carves device ranges such as hyperv_fb's frame buffer
// (drivers/hv/vmbus_drv.c vmbus_walk_resources). hvkit backs all guest physical space with one
// buffer, so the window is the top of that buffer: RAM, as the guest's allocator uses it, ends
// where the window begins. Both sides compute it from the partition's size, as both read the same
// firmware tables.

export interface GpaWindow {
  readonly base: number;
  readonly size: number;
}

/** The window's size: enough for synthvid's 8 MiB frame buffer (hyperv_fb.c SYNTHVID_FB_SIZE_WIN8). */
export const VMBUS_MMIO_BYTES = 8 << 20;
/** Below this much guest memory there is no window: small test VMs keep all of it as RAM. */
export const VMBUS_MMIO_MIN_MEMORY = 32 << 20;

/** The VMBus MMIO window of a partition with `memorySize` bytes, or undefined when it has none. */
export function vmbusMmioWindow(memorySize: number): GpaWindow | undefined {
  if (!(memorySize >= VMBUS_MMIO_MIN_MEMORY)) return undefined;
  return { base: memorySize - VMBUS_MMIO_BYTES, size: VMBUS_MMIO_BYTES };
}

/** True if [gpa, gpa + length) lies inside `w`. */
export function inWindow(w: GpaWindow | undefined, gpa: number, length: number): boolean {
  return w !== undefined && Number.isSafeInteger(gpa) && Number.isSafeInteger(length) && length >= 0 && gpa >= w.base && gpa + length <= w.base + w.size;
}
