// A partition: guest memory, N virtual processors, the release it emulates, virtual time, and
// the partition-wide synthetic state (guest OS id, hypercall page, reference TSC page, crash
// registers, ports). Guest code reaches it only through each VP's CPU port.
import { GuestMemory, MAX_GUEST_MEMORY } from '../memory/guest-memory.js';
import { BoundedLog } from '../tlfs/bounded-log.js';
import { OverlayPage } from '../memory/overlay.js';
import { gpnFieldToGpa, type GuestPageSize } from '../memory/pages.js';
import { MiscX64 } from '../tlfs/cpuid.js';
import {
  HV_CRASH_CTL_CRASH_NOTIFY,
  HV_CRASH_CTL_CRASH_NOTIFY_MSG,
  HV_CRASH_CTL_NO_CRASH_DUMP,
  HV_CRASH_PARAMS,
} from '../tlfs/msr.js';
import { HV_X64_MSR_HYPERCALL_LOCKED } from '../tlfs/pages.js';
import { HV_PARTITION_ID_SELF } from '../tlfs/registers.js';
import { HvStatus } from '../tlfs/status.js';
import { HvPortType } from '../tlfs/synic.js';
import { TscPage } from '../tlfs/time.js';
import { VirtualClock } from './clock.js';
import { ARCH_MAX_VPS, computeFeatures, type Arch, type FeatureOverrides, type Features, type IsolationConfig } from './features.js';
import { PortTable, type HostMessage, type Port, type PortSpec } from './ports.js';
import { ReferenceTime } from './reference-time.js';
import { release, type Release, type ReleaseId } from './release.js';
import type { SynicMessage, WriteFault } from './synic.js';
import { EventBus, traceHex } from './trace.js';
import { Vp } from './vp.js';

export interface PartitionConfig {
  release: ReleaseId;
  arch: Arch;
  vps: number;
  /** RAM in bytes. */
  memory: number;
  /** Backing for memory hot add (dynamic memory's maximum); undefined: RAM cannot grow. */
  memoryMaximum: number | undefined;
  pageSize: GuestPageSize;
  /** Virtual TSC (arm64: virtual counter) frequency, Hz; above 10 MHz. */
  tscHz: number;
  /** APIC id of each VP, by VP index; default the identity. */
  apicIds: readonly number[] | undefined;
  /** Decides the hypercall page's instruction (VMCALL or VMMCALL). */
  cpuVendor: 'intel' | 'amd';
  features: FeatureOverrides;
  isolation: IsolationConfig | undefined;
  /** Posted messages a SINT queues before HvCallPostMessage answers INSUFFICIENT_BUFFERS. */
  messageQueueDepth: number;
  /** Rep elements processed per hypercall invocation before it continues (tlfs.md §4.6). */
  repQuantum: number;
  /** 'restart': re-execute with an updated rep start (TLFS); 'partial': return SUCCESS with fewer reps done. */
  repContinuation: 'restart' | 'partial';
  /** Whether CRASH_CTL offers CRASH_NOTIFY_MSG (a message buffer). */
  crashMessage: boolean;
  /** What HvCallGetPartitionId answers. */
  partitionId: bigint;
  /** Host faults kept for inspection (all are counted). */
  hostFaults: number;
  /**
   * RAM someone else allocated, adopted as it is: a shared WebAssembly.Memory's buffer when the
   * guest is a wasm module whose addresses are GPAs (the real Linux VMBus code, src/guest/linux).
   * Its size must be `memory`.
   */
  ramBuffer: SharedArrayBuffer | undefined;
}

export const DEFAULT_PARTITION_CONFIG: PartitionConfig = {
  release: 'ws2022',
  arch: 'x64',
  vps: 2,
  memory: 64 * 1024 * 1024,
  memoryMaximum: undefined,
  pageSize: 4096,
  tscHz: 2_500_000_000,
  apicIds: undefined,
  cpuVendor: 'intel',
  features: {},
  isolation: undefined,
  messageQueueDepth: 16,
  repQuantum: 64,
  repContinuation: 'restart',
  crashMessage: true,
  partitionId: 0x1n,
  hostFaults: 100,
  ramBuffer: undefined,
};

/** A configuration value the hypervisor cannot run with. */
export class PartitionConfigError extends Error {
  override readonly name = 'PartitionConfigError';
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

/** An exception host code threw where the guest or the clock entered it, caught there. */
export interface HostFault {
  /** Which host code: "channel 3 (…) signal", "device timer", "VMBus message port". */
  readonly where: string;
  readonly error: string;
  readonly ns: number;
}

/** What the guest reported through the crash MSRs (tlfs.md §2.7, §7.1). */
export interface CrashReport {
  readonly params: readonly bigint[];
  readonly control: bigint;
  /** The text of the message buffer, when CRASH_NOTIFY_MSG was set. */
  readonly message?: string;
  readonly ns: number;
}

const HYPERCALL_RESERVED_LOCK = HV_X64_MSR_HYPERCALL_LOCKED;

/** A JSON-friendly snapshot of a partition (64-bit values as hex strings). */
export interface PartitionState {
  release: ReleaseId;
  arch: Arch;
  nowNs: number;
  referenceTime: string;
  guestOsId: string;
  hypercall: string;
  referenceTsc: string;
  crashes: number;
  vps: {
    index: number;
    apicId: number;
    vpAssist: string;
    scontrol: string;
    simp: string;
    siefp: string;
    sints: string[];
    queued: number[];
    assertions: number[];
    stimers: { config: string; count: string; deadline: string | undefined; expirations: number }[];
    pendingVector: number | undefined;
  }[];
}

export class Partition {
  readonly config: PartitionConfig;
  readonly release: Release;
  readonly arch: Arch;
  readonly features: Features;
  readonly memory: GuestMemory;
  readonly clock = new VirtualClock();
  readonly referenceTime: ReferenceTime;
  /** The typed event stream of every boundary crossing (trace.ts): `events.on(listener)`. */
  readonly events: EventBus;
  readonly vps: readonly Vp[];
  readonly ports: PortTable;

  private osId = 0n;
  private hypercallValue = 0n;
  /** Whether VMCALL reaches the hypervisor: kept with the two registers it depends on (it is asked on every call). */
  private enabled = false;
  readonly hypercallPage = new OverlayPage('hypercall page');
  referenceTscMsr = 0n;
  readonly tscPage = new OverlayPage('reference TSC page');
  private tscSequence = 0;
  readonly crashParams: bigint[] = new Array<bigint>(HV_CRASH_PARAMS).fill(0n);
  readonly crashes: CrashReport[] = [];
  reenlightenmentControl = 0n;
  tscEmulationControl = 0n;
  tscEmulationStatus = 0n;
  tscInvariantControl = 0n;
  /** Host visibility of 4 KiB pages of an isolated partition (HvCallModifySparseGpaPageHostVisibility). */
  readonly hostVisibility = new Map<number, number>();
  /** Device interrupts the host registered, by device id, with their current target. */
  readonly deviceInterrupts = new Map<bigint, { vector: number; targets: number[] | 'all' } | undefined>();
  /** Partition resets requested through HV_X64_MSR_RESET. */
  resets = 0;
  /**
   * Exceptions host code threw at a boundary (a device's handler, a host timer, a message port),
   * the most recent ones and a count of all: recorded there, never propagated into the guest's
   * hypercall or the host's run loop.
   */
  readonly hostFaults: BoundedLog<HostFault>;

  constructor(config: Partial<PartitionConfig> = {}) {
    const c: PartitionConfig = { ...DEFAULT_PARTITION_CONFIG, ...config };
    this.config = c;
    this.release = release(c.release);
    this.arch = c.arch;
    if (!['x64', 'x86', 'arm64'].includes(c.arch)) throw new PartitionConfigError('arch', `'${String(c.arch)}' is not x64, x86 or arm64`);
    if (!Number.isInteger(c.vps) || c.vps < 1) throw new PartitionConfigError('vps', `${c.vps} is not a positive integer`);
    if (c.vps > ARCH_MAX_VPS[c.arch]) throw new PartitionConfigError('vps', `${c.vps} exceeds the ${ARCH_MAX_VPS[c.arch]} virtual processors ${c.arch} allows`);
    if (c.vps > this.release.maxVirtualProcessors) {
      throw new PartitionConfigError('vps', `${c.vps} exceeds the ${this.release.maxVirtualProcessors} virtual processors ${this.release.name} allows`);
    }
    if (![4096, 16384, 65536].includes(c.pageSize)) throw new PartitionConfigError('pageSize', `${c.pageSize} is not 4096, 16384 or 65536`);
    if (c.pageSize !== 4096 && c.arch !== 'arm64') throw new PartitionConfigError('pageSize', `${c.pageSize}-byte pages exist only on arm64`);
    if (!Number.isSafeInteger(c.memory) || c.memory <= 0 || c.memory % c.pageSize !== 0) {
      throw new PartitionConfigError('memory', `${c.memory} is not a positive multiple of the ${c.pageSize}-byte page`);
    }
    if (c.memory > MAX_GUEST_MEMORY) throw new PartitionConfigError('memory', `${c.memory} is more than the ${MAX_GUEST_MEMORY}-byte maximum`);
    if (c.memoryMaximum !== undefined && (!Number.isSafeInteger(c.memoryMaximum) || c.memoryMaximum < c.memory || c.memoryMaximum > MAX_GUEST_MEMORY || c.memoryMaximum % c.pageSize !== 0)) {
      throw new PartitionConfigError('memoryMaximum', `${c.memoryMaximum} is not a multiple of the ${c.pageSize}-byte page between the ${c.memory}-byte memory and ${MAX_GUEST_MEMORY}`);
    }
    if (c.apicIds !== undefined) {
      const ids = c.apicIds;
      if (ids.length !== c.vps || new Set(ids).size !== ids.length || ids.some((x) => !Number.isInteger(x) || x < 0 || x > 0xffffffff)) {
        throw new PartitionConfigError('apicIds', `must list ${c.vps} distinct APIC ids`);
      }
    }
    if (!Number.isInteger(c.messageQueueDepth) || c.messageQueueDepth < 1) throw new PartitionConfigError('messageQueueDepth', 'must be at least 1');
    if (!Number.isInteger(c.repQuantum) || c.repQuantum < 1) throw new PartitionConfigError('repQuantum', 'must be at least 1');
    if (!Number.isInteger(c.hostFaults) || c.hostFaults < 1) throw new PartitionConfigError('hostFaults', 'must be at least 1');
    this.hostFaults = new BoundedLog(c.hostFaults);
    this.features = computeFeatures(this.release, c.arch, c.features, c.isolation);
    this.memory = new GuestMemory({ size: c.memory, pageSize: c.pageSize, ...(c.memoryMaximum !== undefined ? { capacity: c.memoryMaximum } : {}), ...(c.ramBuffer ? { buffer: c.ramBuffer } : {}) });
    this.referenceTime = new ReferenceTime(this.clock, c.tscHz);
    this.events = new EventBus(() => this.clock.nowNs);
    this.ports = new PortTable(c.vps);
    this.vps = Array.from({ length: c.vps }, (_, i) => new Vp(this, i, c.apicIds?.[i] ?? i));
  }

  vpByApicId(apicId: number): Vp | undefined {
    return this.vps.find((v) => v.apicId === apicId);
  }

  // --- Guest OS id and the hypercall page (tlfs.md §2.2, §2.3, §4.13) -------------------------

  get guestOsId(): bigint {
    return this.osId;
  }
  set guestOsId(v: bigint) {
    this.osId = v;
    this.enabled = (this.hypercallValue & 1n) !== 0n && v !== 0n;
  }
  get hypercallMsr(): bigint {
    return this.hypercallValue;
  }
  set hypercallMsr(v: bigint) {
    this.hypercallValue = v;
    this.enabled = (v & 1n) !== 0n && this.osId !== 0n;
  }

  get hypercallsEnabled(): boolean {
    return this.enabled;
  }

  writeGuestOsId(v: bigint): WriteFault {
    this.guestOsId = v;
    // Writing 0 disables the hypercall page (TLFS; KVM clears HYPERCALL.enable).
    if (v === 0n && this.hypercallMsr & 1n) this.placeHypercallPage(this.hypercallMsr & ~1n);
    return undefined;
  }

  writeHypercallMsr(v: bigint): WriteFault {
    const lockOffered = (this.features.misc & MiscX64.HYPERCALL_MSR_LOCK) !== 0;
    if (this.hypercallMsr & HYPERCALL_RESERVED_LOCK) return 'HYPERCALL MSR is locked';
    if (v & HYPERCALL_RESERVED_LOCK && !lockOffered) return 'HYPERCALL lock bit not offered';
    // While the guest OS id is 0 the page cannot be enabled; KVM ignores such writes.
    if (this.guestOsId === 0n && v & 1n) return undefined;
    if (v & 1n && !this.memory.contains(gpnFieldToGpa(v), 4096)) return 'hypercall page outside RAM';
    this.placeHypercallPage(v);
    return undefined;
  }

  private placeHypercallPage(v: bigint): void {
    if (v & 1n) {
      const page = this.hypercallPage;
      this.memory.overlays.map(page, gpnFieldToGpa(v) / 4096);
      // OpenVMM: VMCALL (Intel) or VMMCALL (AMD), RET at offset 0, INT3 everywhere else.
      const b = page.bytes;
      b.fill(0xcc);
      b.set(this.config.cpuVendor === 'amd' ? [0x0f, 0x01, 0xd9, 0xc3] : [0x0f, 0x01, 0xc1, 0xc3], 0);
    } else {
      this.memory.overlays.unmap(this.hypercallPage);
    }
    this.hypercallMsr = v;
  }

  // --- Reference TSC page (tlfs.md §6.2) -----------------------------------------------------

  writeReferenceTsc(v: bigint): WriteFault {
    if (v & 1n) {
      const gpa = gpnFieldToGpa(v);
      if (!this.memory.contains(gpa, 4096)) return 'reference TSC page outside RAM';
      this.memory.overlays.map(this.tscPage, gpa / 4096);
      this.publishTscPage();
    } else {
      this.memory.overlays.unmap(this.tscPage);
    }
    this.referenceTscMsr = v;
    return undefined;
  }

  /**
   * Writes scale and offset with the sequence protocol (KVM, OpenVMM): sequence 0 first, then
   * the parameters, then the next sequence, which is never 0 or 0xFFFFFFFF.
   */
  publishTscPage(): void {
    const b = this.tscPage.bytes;
    const seq = new Uint32Array(b.buffer, b.byteOffset, 1);
    Atomics.store(seq, 0, 0);
    const dv = new DataView(b.buffer, b.byteOffset, TscPage.size);
    dv.setBigUint64(TscPage.offsets.tsc_scale, this.referenceTime.scale, true);
    dv.setBigInt64(TscPage.offsets.tsc_offset, this.referenceTime.offset, true);
    let next = (this.tscSequence + 1) >>> 0;
    if (next === 0 || next === 0xffffffff) next = 1;
    this.tscSequence = next;
    Atomics.store(seq, 0, next);
  }

  /** Host action: mark the TSC page invalid (sequence 0) so the guest falls back to the MSR. */
  invalidateTscPage(): void {
    const b = this.tscPage.bytes;
    Atomics.store(new Uint32Array(b.buffer, b.byteOffset, 1), 0, 0);
  }

  // --- Crash MSRs (tlfs.md §2.7) ---------------------------------------------------------------

  /** CRASH_CTL reads back the capabilities offered. */
  get crashCapabilities(): bigint {
    return HV_CRASH_CTL_CRASH_NOTIFY | (this.config.crashMessage ? HV_CRASH_CTL_CRASH_NOTIFY_MSG : 0n);
  }

  writeCrashCtl(v: bigint): WriteFault {
    const allowed = this.crashCapabilities | HV_CRASH_CTL_NO_CRASH_DUMP | (7n << 58n);
    if (v & ~allowed) return 'CRASH_CTL bits not offered';
    if (!(v & HV_CRASH_CTL_CRASH_NOTIFY)) return undefined;
    const params = [...this.crashParams];
    let message: string | undefined;
    if (v & HV_CRASH_CTL_CRASH_NOTIFY_MSG) {
      // P3 = GPA of the message, P4 = its length (at most a 4 KiB page). A bad buffer is the
      // guest's problem: the report just carries no text.
      const gpa = params[3]!;
      const len = params[4]!;
      if (len <= 4096n && gpa <= BigInt(Number.MAX_SAFE_INTEGER) && this.memory.contains(Number(gpa), Number(len))) {
        message = new TextDecoder('utf-8', { fatal: false }).decode(this.memory.read(Number(gpa), Number(len)));
      }
    }
    const report: CrashReport = { params, control: v, ns: this.clock.nowNs, ...(message !== undefined ? { message } : {}) };
    this.crashes.push(report);
    if (this.events.active) this.events.emit({ kind: 'crash', params, ...(message !== undefined ? { message } : {}) });
    return undefined;
  }

  // --- Reset (HV_X64_MSR_RESET) --------------------------------------------------------------

  /** Resets every synthetic register, page and timer of the partition. RAM and ports stay. */
  reset(): void {
    for (const vp of this.vps) vp.reset();
    this.memory.overlays.unmap(this.hypercallPage);
    this.memory.overlays.unmap(this.tscPage);
    this.guestOsId = 0n;
    this.hypercallMsr = 0n;
    this.referenceTscMsr = 0n;
    this.crashParams.fill(0n);
    this.reenlightenmentControl = 0n;
    this.tscEmulationControl = 0n;
    this.tscEmulationStatus = 0n;
    this.tscInvariantControl = 0n;
    this.resets++;
    if (this.events.active) this.events.emit({ kind: 'reset' });
  }

  // --- Host faults ---------------------------------------------------------------------------

  /** Records an exception host code threw at a boundary (see hostFaults). */
  hostFault(where: string, error: unknown): void {
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    this.hostFaults.push({ where, error: text, ns: this.clock.nowNs });
  }

  /** `f` as host code entered at a boundary: what it throws is recorded (hostFault), not propagated. */
  guard<A extends unknown[]>(where: string, f: (...args: A) => void): (...args: A) => void {
    return (...args) => {
      try {
        f(...args);
      } catch (e) {
        this.hostFault(where, e);
      }
    };
  }

  // --- Ports, connections, messages and events (tlfs.md §5.8) --------------------------------

  createPort(id: number, spec: PortSpec): number {
    return this.ports.createPort(id, spec);
  }
  deletePort(id: number): number {
    return this.ports.deletePort(id);
  }
  connectPort(connectionId: number, portId: number): number {
    return this.ports.connectPort(connectionId, portId);
  }
  disconnectPort(connectionId: number): number {
    return this.ports.disconnectPort(connectionId);
  }

  /**
   * Posts a message on a connection: the semantics of HvCallPostMessage once its input is
   * validated. `fromVp` is the sender (the guest VP, or the VP the host acts for).
   */
  postMessage(connectionId: number, type: number, payload: Uint8Array, fromVp: number): number {
    const port = this.ports.resolve(connectionId, HvPortType.MESSAGE);
    // Traced before it is routed: the host's answer, if it gives one at once, comes after.
    if (this.events.active) {
      this.events.emit({ kind: 'message', dir: 'to-host', vp: fromVp, connection: connectionId, type, payload: traceHex(payload), ...(typeof port === 'number' ? {} : { port: port.id }) });
    }
    if (typeof port === 'number') return port;
    const spec = port.spec;
    if (spec.type === 'host-message') {
      // The host reads the message in the call, from the hypervisor's copy of the input (as a
      // VMBus server reads its message buffer): no copy per message; a handler copies what it keeps.
      const m: HostMessage = { type, payload, vp: fromVp };
      return spec.handler(m);
    }
    if (spec.type !== 'message') return HvStatus.INVALID_PORT_ID;
    const target = this.vps[spec.vp];
    if (!target) return HvStatus.INVALID_VP_INDEX;
    const msg: SynicMessage = { type, payload: payload.slice(), sender: BigInt(port.id) };
    return target.synic.post(spec.sint, msg);
  }

  /**
   * Signals flag `flag` on a connection: HvCallSignalEvent's semantics once validated. This is
   * the guest's doorbell, which the optimizer inlines into each CPU port's hypercall path while
   * the path's bytecode fits its budget: only a host port's signal while no one traces is
   * handled here, anything else (an error, a guest port, the trace event) by signalAny().
   */
  signalEvent(connectionId: number, flag: number, fromVp: number): number {
    const port = this.ports.resolve(connectionId, HvPortType.EVENT);
    if (typeof port !== 'number' && !this.events.active) {
      const spec = port.spec;
      if (spec.type === 'host-event' && flag < spec.flagCount) {
        spec.handler(flag, fromVp);
        return HvStatus.SUCCESS;
      }
    }
    return this.signalAny(port, connectionId, flag, fromVp);
  }

  /** signalEvent() on any port, or none: the trace event, then the checks in their order. */
  private signalAny(port: Port | number, connectionId: number, flag: number, fromVp: number): number {
    if (this.events.active) this.events.emit({ kind: 'signal', dir: 'to-host', vp: fromVp, connection: connectionId, flag, ...(typeof port === 'number' ? {} : { port: port.id }) });
    if (typeof port === 'number') return port;
    const spec = port.spec;
    if (spec.type === 'host-event') {
      if (flag >= spec.flagCount) return HvStatus.INVALID_PARAMETER;
      spec.handler(flag, fromVp);
      return HvStatus.SUCCESS;
    }
    if (spec.type !== 'event') return HvStatus.INVALID_PORT_ID;
    if (flag >= spec.flagCount) return HvStatus.INVALID_PARAMETER;
    const target = this.vps[spec.vp];
    if (!target) return HvStatus.INVALID_VP_INDEX;
    return target.synic.signalFlag(spec.sint, spec.baseFlag + flag);
  }

  /** The hypervisor's state as data, for inspection at any moment (DESIGN.md principle 6). */
  state(): PartitionState {
    const hex = (v: bigint) => `0x${v.toString(16)}`;
    return {
      release: this.release.id,
      arch: this.arch,
      nowNs: this.clock.nowNs,
      referenceTime: this.referenceTime.now().toString(),
      guestOsId: hex(this.guestOsId),
      hypercall: hex(this.hypercallMsr),
      referenceTsc: hex(this.referenceTscMsr),
      crashes: this.crashes.length,
      vps: this.vps.map((vp) => ({
        index: vp.index,
        apicId: vp.apicId,
        vpAssist: hex(vp.vpAssist),
        scontrol: hex(vp.synic.scontrol),
        simp: hex(vp.synic.simp),
        siefp: hex(vp.synic.siefp),
        sints: vp.synic.sints.map(hex),
        queued: vp.synic.sints.map((_, s) => vp.synic.queueDepth(s)),
        assertions: [...vp.synic.assertions],
        stimers: vp.stimers.map((t) => ({ config: hex(t.config), count: hex(t.count), deadline: t.deadline?.toString(), expirations: t.expirations })),
        pendingVector: vp.apic.deliverable(),
      })),
    };
  }

  /** HvCallGetPartitionId's answer; HV_PARTITION_ID_SELF names this partition in inputs. */
  isSelf(partitionId: bigint): boolean {
    return partitionId === HV_PARTITION_ID_SELF || partitionId === this.config.partitionId;
  }
}
