// What a workload running in the guest thread gets: the booted kernel, its arguments, and the
// kernel's way of waiting while interrupts are taken.
import type { Kernel } from '../../guest/kernel.js';

export interface GuestContext<A = unknown> {
  readonly kernel: Kernel;
  readonly args: A;
  /** Waits up to `ns` of virtual time, taking interrupts, until `done()`. */
  waitUntil(done: () => boolean, ns: number): boolean;
}

/** A workload module's default export; its result must be structured-cloneable. */
export type Workload<A = unknown, R = unknown> = (ctx: GuestContext<A>) => R | Promise<R>;
