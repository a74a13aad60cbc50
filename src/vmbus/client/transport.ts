// What the VMBus client needs from the guest kernel it runs in: its RAM and page allocator,
// the two hypercalls VMBus uses, its CPUs' VP numbers, a way to wait while interrupts run, and
// its log. The kernel (src/guest) implements it over its CPUs; nothing here reaches the host.
import type { GuestMemory } from '../../memory/guest-memory.js';

export type LogLevel = 'err' | 'warn' | 'info' | 'debug';

export interface ClientTransport {
  readonly memory: GuestMemory;
  /** Linux numbers of the CPUs now online, ascending (cpu_online_mask). */
  onlineCpus(): readonly number[];
  /** hv_cpu_number_to_vp_number. */
  vpIndex(cpu: number): number;
  /** HvCallPostMessage from CPU `cpu`: message type 1 on `connectionId`. Returns the HV status. */
  postMessage(connectionId: number, payload: Uint8Array, cpu: number): number;
  /** HvCallSignalEvent as a fast hypercall (connection id | flag << 32). Returns the HV status. */
  signalEvent(connectionId: number, flag: number): number;
  /** Zeroed, physically contiguous guest pages covering `bytes` (a multiple of the page size). */
  allocPages(bytes: number): number;
  freePages(gpa: number, bytes: number): void;
  /**
   * `count` single guest pages, not necessarily contiguous: what `count` calls of
   * allocPages(pageSize) return, in the same order, zeroed in runs (each is freed on its own)
   * unless `zeroed` is false (pages a device will write, as a read's bio pages: Linux does not
   * zero those). Absent where the kernel has no such call: the caller then asks page by page.
   */
  allocPageList?(count: number, zeroed?: boolean): number[];
  /** One zeroed 4 KiB Hyper-V page (hv_alloc_hyperv_zeroed_page). */
  allocHvPage(): number;
  freeHvPage(gpa: number): void;
  /**
   * vmbus_allocate_mmio: `bytes` of the VMBus MMIO window at an `align`-byte boundary, or
   * undefined when the window has no such room (-ENOMEM). Absent where there is no window.
   */
  allocateMmio?(bytes: number, align: number): number | undefined;
  freeMmio?(gpa: number): void;
  /**
   * Lets up to `ns` of time pass while interrupts are taken, returning as soon as `done()` is
   * true; returns `done()`. Linux's wait_for_completion and udelay both map onto it.
   */
  waitUntil(done: () => boolean, ns: number): boolean;
  log(level: LogLevel, message: string): void;
}
