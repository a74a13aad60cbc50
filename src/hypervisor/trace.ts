// The trace of the host/guest boundary (DESIGN.md principle 6): one typed event stream per
// partition, `partition.events`. Every guest trap the hypervisor handles, every message or event
// flag that crosses the SynIC and every VMBus ring packet the host reads or writes emits one event
// into it; so do the hypervisor's own actions towards the guest (timer expiries, interrupts,
// IPIs, TLB flushes, crashes, resets). The hypervisor and the VMBus server only emit; the
// `trace` layer records, reads, filters and prints (src/trace/attach.ts subscribes a writer).
//
// Zero cost without listeners: an emitter tests `events.active` before it builds an event.
//
// Events are plain data: numbers, 64-bit values as bigints, bytes as lowercase hex strings, so
// that a trace file (JSON lines, bigints as "0x…") reads back into exactly these values.

/** Which way a message, signal or packet goes. */
export type TraceDirection = 'to-host' | 'to-guest';
export const TRACE_DIRECTIONS: readonly TraceDirection[] = ['to-host', 'to-guest'];

interface Stamped {
  /** Virtual time of the partition clock, ns; the stream sets it. */
  readonly ns: number;
}

// --- Traps: what the guest executes and the hypervisor answers -----------------------------------

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

// --- Messages, signals and packets: what crosses between guest and host --------------------------

/**
 * A message posted on a connection (HvCallPostMessage, tlfs.md §4.12.1), as the hypervisor
 * accepted it, before it is routed: the host's answer, if it gives one at once, comes after.
 */
export interface MessageToHost extends Stamped {
  readonly kind: 'message';
  readonly dir: 'to-host';
  readonly vp: number;
  readonly connection: number;
  readonly type: number;
  /** payload_size bytes, hex. */
  readonly payload: string;
  /** The port the connection leads to; absent when it leads nowhere (the post fails). */
  readonly port?: number;
  /** The VMBus channel (relid) the message is about, when the trace layer could tell. */
  readonly channel?: number;
}

/**
 * A message written into SINT `sint`'s slot of VP `vp`'s SIMP (tlfs.md §5.4): the payload as the
 * guest finds it there, delivery-time fields filled in.
 */
export interface MessageToGuest extends Stamped {
  readonly kind: 'message';
  readonly dir: 'to-guest';
  readonly vp: number;
  readonly sint: number;
  readonly type: number;
  readonly payload: string;
  readonly channel?: number;
}

/**
 * An event flag signalled on a connection (HvCallSignalEvent, tlfs.md §4.12.2), before it is
 * routed; or a pending bit the hypervisor found in the guest's monitor page (vmbus.md §4.2), which
 * names the `monitor` id and no VP, since no instruction trapped.
 */
export interface SignalToHost extends Stamped {
  readonly kind: 'signal';
  readonly dir: 'to-host';
  readonly vp?: number;
  readonly monitor?: number;
  readonly connection: number;
  readonly flag: number;
  /** The port the connection leads to; absent when it leads nowhere. */
  readonly port?: number;
  readonly channel?: number;
}

/**
 * An event flag set in SINT `sint`'s flags of VP `vp`'s SIEFP (tlfs.md §5.6); `coalesced` when
 * it was set already, so that the SINT was not asserted again.
 */
export interface SignalToGuest extends Stamped {
  readonly kind: 'signal';
  readonly dir: 'to-guest';
  readonly vp: number;
  readonly sint: number;
  readonly flag: number;
  readonly coalesced?: boolean;
  readonly channel?: number;
}

/**
 * A VMBus ring packet (vmbus.md §8): read by the host from a guest→host ring ('to-host') or
 * written by it into a host→guest ring ('to-guest'). `bytes` is the whole packet as the ring
 * holds it, descriptor to padding, trailer excluded; type, trans_id and length are its
 * descriptor's, repeated for filtering. readIndex, writeIndex and ringSize are the ring's indices
 * and data-area size just after the packet crossed, as the host's end sees them (vmbus.md §7):
 * 'to-host', the read index the host's read has reached (it publishes it when the batch is done)
 * and the guest's write index; 'to-guest', the write index past the packet and the guest's read
 * index. The bytes waiting in the ring then are ringFill(e) (hv_get_bytes_to_read's arithmetic).
 * Traces recorded before these fields were added have none of them.
 */
export interface PacketEvent extends Stamped {
  readonly kind: 'packet';
  readonly dir: TraceDirection;
  readonly channel: number;
  readonly type: number;
  readonly transId: bigint;
  readonly length: number;
  readonly bytes: string;
  readonly readIndex?: number;
  readonly writeIndex?: number;
  readonly ringSize?: number;
}

/** Bytes waiting in a packet event's ring just after the packet crossed; undefined when the trace has no indices. */
export function ringFill(e: PacketEvent): number | undefined {
  const { readIndex: r, writeIndex: w, ringSize: size } = e;
  if (r === undefined || w === undefined || size === undefined || size <= 0) return undefined;
  // hv_get_bytes_to_read (include/linux/hyperv.h), on whatever the indices hold.
  return w >= r ? w - r : size - r + w;
}

export type MessageEvent = MessageToHost | MessageToGuest;
export type SignalEvent = SignalToHost | SignalToGuest;

// --- What the hypervisor does on its own --------------------------------------------------------

/** A message queued for SINT `sint` of VP `vp` (tlfs.md §5.4), `depth` now waiting for the slot. */
export interface MessageQueuedEvent extends Stamped {
  readonly kind: 'message-queued';
  readonly vp: number;
  readonly sint: number;
  readonly type: number;
  readonly depth: number;
}

/** SINT `sint` of VP `vp` raised its interrupt `vector` (tlfs.md §5.7). */
export interface SintAssertedEvent extends Stamped {
  readonly kind: 'sint-asserted';
  readonly vp: number;
  readonly sint: number;
  readonly vector: number;
}

/** Synthetic timer `timer` of VP `vp` expired (tlfs.md §6.3), in direct or message mode. */
export interface TimerExpiredEvent extends Stamped {
  readonly kind: 'timer-expired';
  readonly vp: number;
  readonly timer: number;
  readonly direct: boolean;
  /** Reference time (100 ns units) the timer was due. */
  readonly expiration: bigint;
}

/** An IPI from VP `from` to VP `to` (the ICR, or HvCallSendSyntheticClusterIpi: tlfs.md §4.12.5, §7.6). */
export interface IpiEvent extends Stamped {
  readonly kind: 'ipi';
  readonly from: number;
  readonly to: number;
  readonly vector: number;
}

/** A TLB flush hypercall from VP `vp` (tlfs.md §4.12.3): the VPs it reached and `ranges` GVA ranges (0: the space). */
export interface TlbFlushEvent extends Stamped {
  readonly kind: 'tlb-flush';
  readonly vp: number;
  readonly targets: readonly number[] | 'all';
  readonly addressSpace: bigint;
  readonly flags: bigint;
  readonly ranges: number;
}

/** The guest reported a crash through CRASH_CTL (tlfs.md §2.7, §7.1): P0..P4, and the message buffer's text. */
export interface CrashEvent extends Stamped {
  readonly kind: 'crash';
  readonly params: readonly bigint[];
  readonly message?: string;
}

/** The partition was reset (HV_X64_MSR_RESET, tlfs.md §7.8). */
export interface ResetEvent extends Stamped {
  readonly kind: 'reset';
}

/** VP `vp` read GUEST_IDLE (tlfs.md §7.7): it idles until an interrupt is pending. */
export interface GuestIdleEvent extends Stamped {
  readonly kind: 'guest-idle';
  readonly vp: number;
}

/** HvCallNotifyLongSpinWait from VP `vp` (tlfs.md §7.7), after `count` spins. */
export interface SpinWaitEvent extends Stamped {
  readonly kind: 'spin-wait';
  readonly vp: number;
  readonly count: bigint;
}

/** HvCallModifySparseGpaPageHostVisibility (tlfs.md §4.12.7): `gpns` pages made `visibility` (0 none, 1 read, 3 read-write) to the host. */
export interface VisibilityEvent extends Stamped {
  readonly kind: 'visibility';
  readonly gpns: number;
  readonly visibility: number;
}

/** HvCallRetargetDeviceInterrupt (tlfs.md §4.12.8): device `deviceId`'s interrupt now goes to `vector` on `targets`. */
export interface InterruptRetargetEvent extends Stamped {
  readonly kind: 'interrupt-retarget';
  readonly deviceId: bigint;
  readonly vector: number;
  readonly targets: readonly number[] | 'all';
}

export type HypervisorEvent =
  | MessageQueuedEvent
  | SintAssertedEvent
  | TimerExpiredEvent
  | IpiEvent
  | TlbFlushEvent
  | CrashEvent
  | ResetEvent
  | GuestIdleEvent
  | SpinWaitEvent
  | VisibilityEvent
  | InterruptRetargetEvent;

/** Every event of the stream, told apart by `kind`. */
export type TraceEvent = TrapEvent | MessageEvent | SignalEvent | PacketEvent | HypervisorEvent;
export type TraceKind = TraceEvent['kind'];
/** The kinds: the boundary crossings first, then what the hypervisor does on its own. */
export const TRACE_KINDS: readonly TraceKind[] = [
  'trap',
  'message',
  'signal',
  'packet',
  'message-queued',
  'sint-asserted',
  'timer-expired',
  'ipi',
  'tlb-flush',
  'crash',
  'reset',
  'guest-idle',
  'spin-wait',
  'visibility',
  'interrupt-retarget',
];

/** An event as its emitter gives it: the stream stamps the time. */
export type Unstamped<E extends Stamped> = E extends unknown ? Omit<E, 'ns'> : never;
export type TraceEventInit = Unstamped<TraceEvent>;

export type TraceListener = (e: TraceEvent) => void;

/** What an emitter needs of the stream: whether anyone listens, and the emit. */
export interface TraceEmitter {
  /** False when nobody listens: build no event. */
  readonly active: boolean;
  /** Whether someone listens for events of `kind` (absent: as `active`): costly events check it. */
  wants?(kind: TraceKind): boolean;
  emit(e: TraceEventInit): void;
}

/** Which events a listener takes: all of them unless `kinds` is given. */
export interface TraceSubscription {
  readonly kinds?: readonly TraceKind[];
}

interface Subscriber {
  readonly l: TraceListener;
  readonly kinds: ReadonlySet<TraceKind> | undefined;
}

/**
 * The partition's event stream: any number of listeners, each getting every event in order (or
 * every event of the kinds it asked for), the same object for all of them. Emitting without a
 * listener does nothing.
 */
export class EventBus implements TraceEmitter {
  /** Replaced, never changed in place: a listener may subscribe or leave during an emit. */
  private listeners: readonly Subscriber[] = [];
  /**
   * Whether `listeners` is non-empty, kept beside it: every trap reads it, and a boolean field
   * reads the same whatever shape of array the listeners were last kept in.
   */
  private listening = false;

  constructor(private readonly now: () => number) {}

  get active(): boolean {
    return this.listening;
  }

  /** Whether some listener takes events of `kind`: a ring packet's bytes are hexed only then. */
  wants(kind: TraceKind): boolean {
    for (const s of this.listeners) if (!s.kinds || s.kinds.has(kind)) return true;
    return false;
  }

  /** Subscribes `l` (to every kind, or to `sub.kinds`); returns what unsubscribes it (again: nothing more). */
  on(l: TraceListener, sub: TraceSubscription = {}): () => void {
    const entry: Subscriber = { l, kinds: sub.kinds ? new Set(sub.kinds) : undefined };
    this.listeners = [...this.listeners, entry];
    this.listening = true;
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      // One subscription each: a listener subscribed twice stays once.
      const i = this.listeners.indexOf(entry);
      if (i >= 0) this.listeners = [...this.listeners.slice(0, i), ...this.listeners.slice(i + 1)];
      this.listening = this.listeners.length > 0;
    };
  }

  emit(e: TraceEventInit): void {
    const listeners = this.listeners;
    if (listeners.length === 0) return;
    const stamped = { ns: this.now(), ...e } as TraceEvent;
    for (const s of listeners) if (!s.kinds || s.kinds.has(stamped.kind)) s.l(stamped);
  }
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Lowercase hex of `b`, two digits a byte, nothing between. */
export function traceHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX[b[i]!]!;
  return s;
}
