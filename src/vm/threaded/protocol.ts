// The shared block through which a guest in a worker thread reaches the hypervisor (DESIGN.md,
// execution model): one request slot per CPU for traps, answered by the host thread, and
// counters the host bumps when a CPU has an interrupt to take. All words are accessed with
// Atomics; a waiting side sleeps in Atomics.wait on the word the other side notifies.

/** Header words (Int32). */
export const W = {
  /** Bumped by the guest whenever it posts a trap request: the host loop sleeps on it. */
  HOST_WAKE: 0,
  /** Bumped by the host whenever some CPU got a deliverable interrupt: the guest sleeps on it. */
  DOORBELL: 1,
  /** The guest's work is over (1) or it failed (2). */
  GUEST_DONE: 2,
  /** The host loop has stopped: guest requests will not be answered. */
  HOST_STOPPED: 3,
  /** Per-CPU "an interrupt is deliverable" hints start here. */
  PENDING: 16,
} as const;

export const MAX_CPUS = 240;
const HEADER_BYTES = 4 * (W.PENDING + MAX_CPUS);
/** One CPU's request slot: state, op, fault, aux, then 24 64-bit arguments. */
export const SLOT_BYTES = 256;
export const SLOT_ARGS = 24;

export const S = {
  /** IDLE → REQUEST (guest) → RESPONSE (host) → IDLE (guest). */
  STATE: 0,
  OP: 1,
  FAULT: 2,
  AUX: 3,
} as const;
export const State = { IDLE: 0, REQUEST: 1, RESPONSE: 2 } as const;

export const Op = {
  CPUID: 1,
  RDMSR: 2,
  WRMSR: 3,
  RDTSC: 4,
  APIC_WRITE: 5,
  CALL: 6,
  VMCALL: 7,
  HVC: 8,
  READ_COUNTER: 9,
  EOI: 10,
  ACCEPT: 11,
  COUNTER_HZ: 12,
} as const;

export const FAULTS = [undefined, '#GP', '#UD'] as const;

export function controlBytes(cpus: number): number {
  return HEADER_BYTES + cpus * SLOT_BYTES;
}

/** Typed views of the block: the header, and each CPU's slot as 32-bit words and 64-bit args. */
export class ControlBlock {
  readonly header: Int32Array;
  readonly slots: { words: Int32Array; args: BigInt64Array }[];

  constructor(
    readonly buffer: SharedArrayBuffer,
    cpus: number,
  ) {
    if (cpus > MAX_CPUS) throw new RangeError(`at most ${MAX_CPUS} CPUs in a threaded VM`);
    this.header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.slots = Array.from({ length: cpus }, (_, i) => ({
      words: new Int32Array(buffer, HEADER_BYTES + i * SLOT_BYTES, 4),
      args: new BigInt64Array(buffer, HEADER_BYTES + i * SLOT_BYTES + 16, SLOT_ARGS),
    }));
  }
}
