// The shared block through which a guest in a worker thread reaches the hypervisor (DESIGN.md,
// execution model): one request slot per CPU for traps, answered by the host thread, and
// counters the host bumps when a CPU has an interrupt to take. All words are accessed with
// Atomics.
//
// Both sides poll before they sleep, and a side calls Atomics.notify only when its peer says it
// sleeps: a notify costs about as much as a whole round trip between two polling threads. The
// sleeper raises its flag, looks once more, then waits on the word the other side changes; the
// other side changes the word, then reads the flag. Atomics are sequentially consistent, so at
// least one of the two sees the other: the sleeper does not sleep, or the waker notifies.
//
// Polling pays only while the peer runs. On a machine with fewer free cores than threads, a
// polling side may be keeping its peer off the core it waits for: so each side beats a counter
// as it goes round its loops (the host also after each batch it reads from a polled ring), and a
// side whose peer's beat has stopped naps instead of polling (BeatWatch). Sleeping is not free
// on a shared machine either: a thread woken by a futex is often moved to its waker's core, and
// two threads that sleep and wake each other in turn can end up taking turns on one core while
// the other idles; two that poll are both runnable, and the system spreads them.

/** Header words (Int32). */
export const W = {
  /** Bumped by the guest when it posts a trap request while the host sleeps: the host sleeps on it. */
  HOST_WAKE: 0,
  /** Bumped by the host whenever some CPU got a deliverable interrupt: the guest sleeps on it. */
  DOORBELL: 1,
  /** The guest's work is over (1) or it failed (2). */
  GUEST_DONE: 2,
  /** The host loop has stopped: guest requests will not be answered. */
  HOST_STOPPED: 3,
  /** 1 while the host loop sleeps on HOST_WAKE. */
  HOST_SLEEPING: 4,
  /** 1 while the guest sleeps on DOORBELL. */
  GUEST_SLEEPING: 5,
  /** Per-CPU "an interrupt is deliverable" hints start here (MAX_CPUS words). */
  PENDING: 16,
  /** Bumped by the host loop every round and after each batch read from a polled ring: on a cache line of its own, after the hints. */
  HOST_BEAT: 256,
  /** Bumped by the guest as it waits (for interrupts, for answers): on the next cache line. */
  GUEST_BEAT: 272,
  /** Per-CPU interrupt offers start here (MAX_CPUS words, values in `Offer`). */
  OFFER: 288,
  /**
   * The host's counter (TSC, or arm64's virtual counter) as a trap would read it now, and its
   * sequence: odd while the host moves virtual time, bumped again once the new value is out (a
   * seqlock, as Hyper-V's reference TSC page has its tsc_sequence). A guest reads the counter
   * there with no trap when the sequence is even and unchanged around its read; otherwise it
   * traps, and the host answers once time has moved. The value is at byte COUNTER_AT.
   */
  COUNTER_SEQ: 528,
} as const;

/** Byte offset of the published counter (a 64-bit word after COUNTER_SEQ). */
export const COUNTER_AT = 4 * (W.COUNTER_SEQ + 2);

/**
 * A CPU's offer word, APICv's posted interrupts in miniature (Intel SDM vol. 3, "Posted-Interrupt
 * Processing" and "Virtual-Interrupt Delivery"): there a CPU takes an interrupt the hypervisor
 * posted without a VM exit, and the hypervisor brings its own APIC model up to date later. Here
 * the host writes OFFERED | v when v is the vector a synchronous ACCEPT would return now; a guest
 * CPU with interrupts enabled takes it by compare-exchange to TAKEN | v, with no trap; the host
 * then settles it (the same acceptance an ACCEPT trap makes, IRR → ISR) before it changes that
 * CPU's interrupt state in any other way, and before it serves that CPU's next trap. 0: no offer.
 * Only the host writes a word that is 0 or TAKEN; the guest only turns OFFERED into TAKEN.
 */
export const Offer = { OFFERED: 0x100, TAKEN: 0x200, VECTOR: 0xff } as const;

/**
 * One side's view of whether its peer is on a core, from the peer's beat (HOST_BEAT, GUEST_BEAT),
 * which the peer moves every few microseconds while it runs. The peer runs while its beat keeps
 * moving between looks taken close together. A move found after a long gap between looks (this
 * side was busy, or off its core) says only that the peer ran at some point, which on a core the
 * two share is always so: the peer then has `probeMs` to show a move, not the full `silentMs`;
 * no move across a gap, and it has none. Moves made while this side slept are not counted at all
 * (woke): the peer ran then because this side did not.
 */
export class BeatWatch {
  private beat: number;
  private lookAt: number;
  private movedAt: number;

  constructor(
    /** Without a move for this long, the peer is not running. */
    private readonly silentMs: number,
    /** After a gap in looking, the time the peer gets to show a move. */
    private readonly probeMs: number,
    beat: number,
    now: number,
  ) {
    this.beat = beat;
    this.lookAt = now;
    this.movedAt = now - silentMs + probeMs;
  }

  /** Looks at the peer's beat at `now` (ms): whether the peer is to be taken as running. */
  runs(beat: number, now: number): boolean {
    if (beat !== this.beat) this.movedAt = now - this.lookAt < this.probeMs ? now : Math.max(this.movedAt, now - this.silentMs + this.probeMs);
    this.beat = beat;
    this.lookAt = now;
    return now - this.movedAt < this.silentMs;
  }

  /**
   * This side has just woken from a sleep: the peer ran meanwhile, as it had to (it may have
   * woken this side, and on a shared core it ran because this side slept). Its beat as it is
   * now is where the next look starts, with no move counted for the sleep.
   */
  woke(beat: number, now: number): void {
    this.beat = beat;
    this.lookAt = now;
  }

  /** This side has just seen the peer at work (an answered trap, a packet read). */
  seen(now: number): void {
    this.movedAt = now;
  }
}

export const MAX_CPUS = 240;
/**
 * The counter's cache line is its own: the host writes it every time virtual time moves, and
 * the first slot after it holds the words a trapping guest polls (sharing a line with them
 * doubled the trap round trip).
 */
const HEADER_BYTES = 4 * W.COUNTER_SEQ + 64;
/** One CPU's request slot: state, op, fault, aux, waiting, then 24 64-bit arguments. */
export const SLOT_BYTES = 256;
export const SLOT_ARGS = 24;
const ARGS_AT = 32;

export const S = {
  /** IDLE, then REQUEST (guest) → RESPONSE (host) → REQUEST (guest) … */
  STATE: 0,
  OP: 1,
  FAULT: 2,
  AUX: 3,
  /** 1 while the guest sleeps on STATE for the host's answer. */
  WAITING: 4,
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

/**
 * Typed views of the block: the header, and each CPU's slot as 32-bit words and 64-bit
 * arguments. Arguments are unsigned: a register value goes in and comes out as it is.
 */
export class ControlBlock {
  readonly header: Int32Array;
  /** The published counter (W.COUNTER_SEQ). */
  readonly counter: BigUint64Array;
  readonly slots: { words: Int32Array; args: BigUint64Array }[];

  constructor(
    readonly buffer: SharedArrayBuffer,
    cpus: number,
  ) {
    if (cpus > MAX_CPUS) throw new RangeError(`at most ${MAX_CPUS} CPUs in a threaded VM`);
    this.header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.counter = new BigUint64Array(buffer, COUNTER_AT, 1);
    this.slots = Array.from({ length: cpus }, (_, i) => ({
      words: new Int32Array(buffer, HEADER_BYTES + i * SLOT_BYTES, ARGS_AT / 4),
      args: new BigUint64Array(buffer, HEADER_BYTES + i * SLOT_BYTES + ARGS_AT, SLOT_ARGS),
    }));
  }
}
