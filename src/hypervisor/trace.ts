// The trace of the host/guest boundary (DESIGN.md principle 6): one event per guest trap the
// hypervisor handles, per message or event flag that crosses the SynIC, and per VMBus ring
// packet the host reads or writes. The hypervisor and the VMBus server emit them; the `trace`
// layer records, reads, filters and prints them. Every emitter tests `partition.tracer` once
// and builds nothing when it is unset.
//
// Events are plain data: numbers, 64-bit values as bigints, bytes as lowercase hex strings, so
// that a trace file (JSON lines, bigints as "0x…") reads back into exactly these values.

/** Which way a message, signal or packet goes. */
export type TraceDirection = 'to-host' | 'to-guest';
export const TRACE_DIRECTIONS: readonly TraceDirection[] = ['to-host', 'to-guest'];

export type TraceKind = 'trap' | 'message' | 'signal' | 'packet';
export const TRACE_KINDS: readonly TraceKind[] = ['trap', 'message', 'signal', 'packet'];

interface Stamped {
  /** Virtual time of the partition clock, ns. */
  readonly ns: number;
}

/** CPUID executed by the guest (tlfs.md §1); the four registers it got back. */
export interface CpuidTrap extends Stamped {
  readonly kind: 'trap';
  readonly what: 'cpuid';
  readonly vp: number;
  readonly leaf: number;
  readonly subleaf: number;
  readonly eax: number;
  readonly ebx: number;
  readonly ecx: number;
  readonly edx: number;
}

/** RDMSR: the value read, or the fault injected instead (#GP). */
export interface RdmsrTrap extends Stamped {
  readonly kind: 'trap';
  readonly what: 'rdmsr';
  readonly vp: number;
  readonly msr: number;
  readonly value?: bigint;
  readonly fault?: string;
}

/** WRMSR: the value written, and the fault if it was refused. */
export interface WrmsrTrap extends Stamped {
  readonly kind: 'trap';
  readonly what: 'wrmsr';
  readonly vp: number;
  readonly msr: number;
  readonly value: bigint;
  readonly fault?: string;
}

/**
 * One hypercall invocation (tlfs.md §4): the control value decoded, the two parameter registers
 * (input and output GPAs, or the first two fast qwords), and the result; or the fault (#UD when
 * the hypercall page is off). A rep call the hypervisor continues traps once per invocation.
 */
export interface HypercallTrap extends Stamped {
  readonly kind: 'trap';
  readonly what: 'hypercall';
  readonly vp: number;
  readonly control: bigint;
  readonly code: number;
  readonly fast: boolean;
  readonly repCount: number;
  readonly repStart: number;
  readonly input: bigint;
  readonly output: bigint;
  readonly status?: number;
  readonly repsCompleted?: number;
  readonly fault?: string;
}

/** arm64: an HVC that is not a Hyper-V hypercall (SMCCC version, vendor UID, unknown functions). */
export interface SmcccTrap extends Stamped {
  readonly kind: 'trap';
  readonly what: 'smccc';
  readonly vp: number;
  /** X0's function id. */
  readonly func: number;
  /** X0 afterwards. */
  readonly result?: bigint;
  readonly fault?: string;
}

export type TrapEvent = CpuidTrap | RdmsrTrap | WrmsrTrap | HypercallTrap | SmcccTrap;
export type TrapWhat = TrapEvent['what'];
export const TRAP_WHATS: readonly TrapWhat[] = ['cpuid', 'rdmsr', 'wrmsr', 'hypercall', 'smccc'];

/** HvCallPostMessage as the hypervisor accepted it (tlfs.md §4.12.1), before it is routed. */
export interface MessageToHost extends Stamped {
  readonly kind: 'message';
  readonly dir: 'to-host';
  readonly vp: number;
  readonly connection: number;
  readonly type: number;
  /** payload_size bytes, hex. */
  readonly payload: string;
  /** The VMBus channel (relid) the message is about, when the trace layer could tell. */
  readonly channel?: number;
}

/** A message written into SINT `sint`'s slot of VP `vp`'s SIMP (tlfs.md §5.4). */
export interface MessageToGuest extends Stamped {
  readonly kind: 'message';
  readonly dir: 'to-guest';
  readonly vp: number;
  readonly sint: number;
  readonly type: number;
  readonly payload: string;
  readonly channel?: number;
}

/** HvCallSignalEvent as the hypervisor accepted it (tlfs.md §4.12.2), before it is routed. */
export interface SignalToHost extends Stamped {
  readonly kind: 'signal';
  readonly dir: 'to-host';
  readonly vp: number;
  readonly connection: number;
  readonly flag: number;
  readonly channel?: number;
}

/** An event flag set in SINT `sint`'s flags of VP `vp`'s SIEFP (tlfs.md §5.6). */
export interface SignalToGuest extends Stamped {
  readonly kind: 'signal';
  readonly dir: 'to-guest';
  readonly vp: number;
  readonly sint: number;
  readonly flag: number;
  readonly channel?: number;
}

/**
 * A VMBus ring packet (vmbus.md §8): read by the host from a guest→host ring ('to-host') or
 * written by it into a host→guest ring ('to-guest'). `bytes` is the whole packet as the ring
 * holds it, descriptor to padding, trailer excluded; type, trans_id and length are its
 * descriptor's, repeated for filtering.
 */
export interface PacketEvent extends Stamped {
  readonly kind: 'packet';
  readonly dir: TraceDirection;
  readonly channel: number;
  readonly type: number;
  readonly transId: bigint;
  readonly length: number;
  readonly bytes: string;
}

export type MessageEvent = MessageToHost | MessageToGuest;
export type SignalEvent = SignalToHost | SignalToGuest;
export type TraceEvent = TrapEvent | MessageEvent | SignalEvent | PacketEvent;

/** Where trace events go. Set one on `Partition.tracer`. */
export interface Tracer {
  emit(e: TraceEvent): void;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Lowercase hex of `b`, two digits a byte, nothing between. */
export function traceHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX[b[i]!]!;
  return s;
}
