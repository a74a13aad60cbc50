// The CPU ports through which a guest drives its VPs: each trap is decoded for its architecture
// (tlfs.md §4.1 x86-64, §4.2 x86-32, §3.2 arm64 SMCCC) into the ABI-neutral dispatcher, and
// every trap emits a trace event.
import { ARM_SMCCC_VENDOR_HYP_CALL_UID_FUNC_ID, HV_FUNC_ID, HV_SMCCC_UID } from '../tlfs/registers.js';
import { decodeControl } from '../tlfs/control.js';
import { MiscX64 } from '../tlfs/cpuid.js';
import type {
  Arm64Cpu,
  Arm64Registers,
  CpuidResult,
  Fault,
  MsrRead,
  X64Cpu,
  X64Registers,
  X86_32Cpu,
  X86Registers,
} from './cpu-interface.js';
import { cpuidLeaf } from './features.js';
import { hypercalls } from './hypercall/index.js';
import { HypercallRequest } from './hypercall/dispatch.js';
import { registerByMsr, sendIcr } from './registers.js';
import type { Partition } from './partition.js';
import type { EventBus, HypercallTrap, Unstamped } from './trace.js';
import type { Vp } from './vp.js';

/** Architectural x2APIC and APIC MSRs the model answers besides the synthetic ones. */
const IA32_TSC = 0x10;
const IA32_APIC_BASE = 0x1b;
const X2APIC_APICID = 0x802;
const X2APIC_TPR = 0x808;
const X2APIC_EOI = 0x80b;
const X2APIC_ICR = 0x830;

/**
 * What a CALL to guest address `gpa` finds: VMCALL or VMMCALL (undefined), no instruction there
 * (#UD), or no RAM (#GP). The instruction's bytes are compared first: bytes that match lie in
 * the backing, so `gpa` is a whole number there and only the present size is left to check.
 * (Every trap of the doorbell comes through here, so it is kept short: see X64Port.vmcall.)
 */
function callAt(mem: Partition['memory'], gpa: number): Fault | undefined {
  const b = mem.bytes;
  const last = b[gpa + 2];
  if (b[gpa] === OPCODE_0 && b[gpa + 1] === OPCODE_1 && (last === VMCALL_2 || last === VMMCALL_2) && gpa + 3 <= mem.size) return undefined;
  return mem.contains(gpa, 3) ? '#UD' : '#GP';
}

/** 64-bit values from and to 32-bit register pairs, through these views: BigInt arithmetic costs far more. */
const PAIR = new BigUint64Array(2);
const HALF = new Uint32Array(PAIR.buffer);
const LOW = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? 0 : 1;
function pair(hi: number, lo: number): bigint {
  HALF[LOW] = lo >>> 0;
  HALF[1 - LOW] = hi >>> 0;
  return PAIR[0]!;
}
function low32(v: bigint): number {
  PAIR[0] = v;
  return HALF[LOW]!;
}
function high32(v: bigint): number {
  PAIR[0] = v;
  return HALF[1 - LOW]!;
}
/** Where the halves of PAIR[0] and PAIR[1] are in HALF: a doorbell splits two registers at once. */
const LOW0 = LOW;
const HIGH0 = 1 - LOW;
const LOW1 = 2 + LOW;
const HIGH1 = 3 - LOW;

/** VMCALL is 0F 01 C1, VMMCALL 0F 01 D9 (Intel SDM, AMD APM): the same first two bytes. */
const OPCODE_0 = 0x0f;
const OPCODE_1 = 0x01;
const VMCALL_2 = 0xc1;
const VMMCALL_2 = 0xd9;
const MASK32 = 0xffffffffn;


abstract class CpuPort {
  interruptsEnabled = false;
  /** The call being made, reused for every call. */
  protected abstract readonly req: HypercallRequest;

  /** The partition and its event stream, kept here: a trap reads them on every call. */
  protected readonly partition: Partition;
  protected readonly events: EventBus;

  constructor(readonly vp: Vp) {
    this.partition = vp.partition;
    this.events = vp.partition.events;
  }

  interruptPending(): boolean {
    return this.vp.apic.deliverable() !== undefined;
  }

  acceptInterrupt(): number | undefined {
    return this.interruptsEnabled ? this.vp.apic.acknowledge() : undefined;
  }

  /**
   * One hypercall invocation of `this.req`, which holds its answer afterwards. The caller loops
   * while `restartControl` is set: the hypervisor continues a long rep call by having the
   * instruction re-executed (§4.6).
   */
  protected invoke(): void {
    const req = this.req;
    hypercalls.dispatch(this.vp, req);
    if (this.events.active) this.traceCall(req.control, req.inputGpa, req.outputGpa, req.result);
  }

  /** The trap event of a call that ran, with the registers it came in and its result value. */
  protected traceCall(control: bigint, input: bigint, output: bigint, result: bigint): void {
    this.events.emit({
      ...this.hypercallTrap(control, input, output),
      status: Number(result & 0xffffn),
      repsCompleted: Number((result >> 32n) & 0xfffn),
    });
  }

  /** A hypercall instruction refused with `fault` (the hypercall page is off). */
  protected hypercallFault(control: bigint, input: bigint, output: bigint, fault: Fault): Fault {
    const events = this.events;
    if (events.active) events.emit({ ...this.hypercallTrap(control, input, output), fault });
    return fault;
  }

  private hypercallTrap(control: bigint, input: bigint, output: bigint): Unstamped<HypercallTrap> {
    const c = decodeControl(control);
    return { kind: 'trap', what: 'hypercall', vp: this.vp.index, control, code: c.code, fast: c.fast, repCount: c.repCount, repStart: c.repStart, input, output };
  }
}

abstract class X86Port<R> extends CpuPort {
  cpuid(leaf: number, subleaf = 0): CpuidResult {
    const p = this.partition;
    const r = cpuidLeaf(p.features, leaf, { apicId: this.vp.apicId, vendor: p.config.cpuVendor, invariantTsc: (p.tscInvariantControl & 1n) !== 0n });
    if (p.events.active) p.events.emit({ kind: 'trap', what: 'cpuid', vp: this.vp.index, leaf: leaf >>> 0, subleaf: subleaf >>> 0, eax: r.eax, ebx: r.ebx, ecx: r.ecx, edx: r.edx });
    return r;
  }

  rdtsc(): bigint {
    return this.partition.referenceTime.tsc();
  }

  rdmsr(msr: number): MsrRead {
    const r = this.readMsr(msr >>> 0);
    const events = this.events;
    if (events.active) events.emit({ kind: 'trap', what: 'rdmsr', vp: this.vp.index, msr: msr >>> 0, ...r });
    return r;
  }

  wrmsr(msr: number, value: bigint): Fault | undefined {
    const v = BigInt.asUintN(64, value);
    const fault = this.writeMsr(msr >>> 0, v);
    const events = this.events;
    if (events.active) events.emit({ kind: 'trap', what: 'wrmsr', vp: this.vp.index, msr: msr >>> 0, value: v, ...(fault ? { fault } : {}) });
    return fault;
  }

  private readMsr(msr: number): MsrRead {
    const vp = this.vp;
    const def = registerByMsr.get(msr);
    if (def) {
      if (!def.gate(vp.partition.features) || !def.read) return { fault: '#GP' };
      return { value: def.read(vp) };
    }
    switch (msr) {
      case IA32_TSC:
        return { value: this.rdtsc() };
      case IA32_APIC_BASE:
        return { value: 0xfee00000n | (1n << 11n) | (this.x2apic ? 1n << 10n : 0n) | (vp.index === 0 ? 1n << 8n : 0n) };
    }
    if (!this.x2apic) return { fault: '#GP' };
    switch (msr) {
      case X2APIC_APICID:
        return { value: BigInt(vp.apicId) };
      case X2APIC_TPR:
        return { value: BigInt(vp.apic.tpr) };
      case X2APIC_ICR:
        return { value: vp.icr };
      default:
        return { fault: '#GP' };
    }
  }

  private writeMsr(msr: number, v: bigint): Fault | undefined {
    const vp = this.vp;
    const def = registerByMsr.get(msr);
    if (def) {
      if (!def.gate(vp.partition.features) || !def.write) return '#GP';
      return def.write(vp, v) === undefined ? undefined : '#GP';
    }
    if (!this.x2apic) return '#GP';
    switch (msr) {
      case X2APIC_TPR:
        if (v > 0xffn) return '#GP';
        vp.apic.tpr = Number(v);
        return undefined;
      case X2APIC_EOI:
        vp.apic.eoi();
        return undefined;
      case X2APIC_ICR:
        // x2APIC image: destination in [63:32].
        sendIcr(vp, v, Number(v >> 32n));
        return undefined;
      default:
        return '#GP';
    }
  }

  /** xAPIC MMIO: EOI (0xB0), TPR (0x80), ICR high (0x310) then low (0x300, which sends). */
  apicWrite(offset: number, value: number): void {
    const vp = this.vp;
    const v = value >>> 0;
    if (offset === 0xb0) vp.apic.eoi();
    else if (offset === 0x80) vp.apic.tpr = v & 0xff;
    else if (offset === 0x310) this.icrHigh = v;
    else if (offset === 0x300) sendIcr(vp, (BigInt(this.icrHigh) << 32n) | BigInt(v), this.icrHigh >>> 24);
  }
  private icrHigh = 0;

  /** x2APIC mode exists on the 64-bit model only (CPUID.1:ECX[21]). */
  protected abstract readonly x2apic: boolean;

  /**
   * CALL to guest address `gpa` (the hypercall page): a hypercall if VMCALL or VMMCALL is there,
   * else #UD. Each port class defines it as `callAt` then its own vmcall, so that the doorbell's
   * path through one ABI's port is not shared with (and slowed by) another's.
   */
  abstract call(gpa: number, regs: R): Fault | undefined;

  abstract vmcall(regs: R): Fault | undefined;

  /** VMCALL traps to the Hyper-V handler only while the hypercall page is enabled (tlfs.md §4.2). */
  protected get hypercallsEnabled(): boolean {
    return this.partition.hypercallsEnabled;
  }
}

/** XMM0..5 as the twelve halves a fast call hands back: those the guest did not give read as 0. */
function fillXmm(xmm: bigint[]): void {
  while (xmm.length < 12) xmm.push(0n);
}

/** x64 fast registers (tlfs.md §4.1): RDX, R8, then XMM0..5 as low and high halves, read and written in place. */
class X64Request extends HypercallRequest {
  regs: X64Registers = { rcx: 0n, rdx: 0n, r8: 0n, rax: 0n, xmm: [] };
  fastRegister(i: number): bigint {
    const r = this.regs;
    return i === 0 ? r.rdx : i === 1 ? r.r8 : (r.xmm[i - 2] ?? 0n);
  }
  setFastRegister(i: number, v: bigint): void {
    const r = this.regs;
    if (i === 0) r.rdx = v;
    else if (i === 1) r.r8 = v;
    else {
      // Halves before this one read as 0 (as the port hands back all twelve of a fast call).
      while (r.xmm.length < i - 2) r.xmm.push(0n);
      r.xmm[i - 2] = v;
    }
  }
}

export class X64Port extends X86Port<X64Registers> implements X64Cpu {
  readonly arch = 'x64';
  protected readonly x2apic = true;
  protected readonly req = new X64Request();
  /**
   * The XMM halves a fast call hands back: all twelve when XMM fast input is offered, else none
   * (the partition's features never change).
   */
  private readonly xmmHalves = (this.partition.features.misc & MiscX64.HYPERCALL_XMM_INPUT) !== 0 ? 12 : 0;

  call(gpa: number, regs: X64Registers): Fault | undefined {
    return callAt(this.partition.memory, gpa) ?? this.vmcall(regs);
  }

  /**
   * The doorbell's way in. V8 inlines the doorbell's functions (this, callAt, the dispatcher's
   * lane, the call's body, the port table) into the guest's loop only while their bytecode,
   * counted with what each callee's own optimized code inlined, fits its cumulative budget
   * (920 bytes in Node 20): whatever is not the doorbell (a refusal, the general path, the XMM
   * halves, the trace event) is a call out, so that the calls an x64 partition's memory
   * hypercalls or a traced partition made do not push the lane out of the budget.
   */
  vmcall(regs: X64Registers): Fault | undefined {
    if (!this.partition.hypercallsEnabled) return this.refuse(regs);
    // A doorbell (tlfs.md §4.1: fast input in RDX, no output) needs none of the request.
    const half = HALF;
    PAIR[0] = regs.rcx; // one BigInt store for both halves of each
    PAIR[1] = regs.rdx;
    const rax = hypercalls.doorbell(this.vp, half[LOW0]!, half[HIGH0]!, half[LOW1]!, half[HIGH1]!);
    if (rax === undefined) return this.request(regs);
    regs.rax = rax;
    if (regs.xmm.length < this.xmmHalves || this.events.active) this.answered(regs, rax);
    return undefined;
  }

  private refuse(regs: X64Registers): Fault {
    return this.hypercallFault(regs.rcx, regs.rdx, regs.r8, '#UD');
  }

  /** After a doorbell: the XMM halves a fast call hands back, and its trace event. */
  private answered(regs: X64Registers, rax: bigint): void {
    if (this.xmmHalves !== 0) fillXmm(regs.xmm);
    if (this.events.active) this.traceCall(regs.rcx, regs.rdx, regs.r8, rax);
  }

  /** Any call but a doorbell: through the request (its own method, so that the doorbell's stays small). */
  private request(regs: X64Registers): Fault | undefined {
    const misc = this.partition.features.misc;
    const xmmIn = (misc & MiscX64.HYPERCALL_XMM_INPUT) !== 0;
    const xmmOut = xmmIn && (misc & MiscX64.HYPERCALL_XMM_OUTPUT) !== 0;
    const req = this.req;
    req.regs = regs;
    for (;;) {
      // Fast input: RDX, R8, then XMM0..5 (low, high) when XMM input is offered.
      req.control = regs.rcx;
      req.inputGpa = regs.rdx;
      req.outputGpa = regs.r8;
      req.fastCount = xmmIn ? 14 : 2;
      req.fastOutput = xmmOut;
      this.invoke();
      regs.rax = req.result;
      if (req.fast && xmmIn) fillXmm(regs.xmm);
      if (req.restartControl === undefined) return undefined;
      regs.rcx = req.restartControl;
      // The re-executed VMCALL traps afresh: if an element disabled hypercalls, it is #UD.
      if (!this.hypercallsEnabled) return this.refuse(regs);
    }
  }
}

/** x86-32 fast input (tlfs.md §4.2): EBX:ECX and EDI:ESI, the input and output GPA pairs; no fast output. */
class X86Request extends HypercallRequest {
  fastRegister(i: number): bigint {
    return i === 0 ? this.inputGpa : i === 1 ? this.outputGpa : 0n;
  }
  setFastRegister(): void {}
}

export class X86_32Port extends X86Port<X86Registers> implements X86_32Cpu {
  readonly arch = 'x86';
  protected readonly x2apic = false;
  protected readonly req = new X86Request();

  call(gpa: number, regs: X86Registers): Fault | undefined {
    return callAt(this.partition.memory, gpa) ?? this.vmcall(regs);
  }

  vmcall(regs: X86Registers): Fault | undefined {
    if (!this.hypercallsEnabled) return this.refuse(regs);
    const rax = hypercalls.doorbell(this.vp, regs.eax >>> 0, regs.edx >>> 0, regs.ecx >>> 0, regs.ebx >>> 0);
    if (rax !== undefined) {
      if (this.events.active) this.traceCall(pair(regs.edx, regs.eax), pair(regs.ebx, regs.ecx), pair(regs.edi, regs.esi), rax);
      regs.edx = high32(rax);
      regs.eax = low32(rax);
      return undefined;
    }
    const req = this.req;
    for (;;) {
      req.control = pair(regs.edx, regs.eax);
      // Only 16 bytes of fast input exist in 32-bit mode (EBX:ECX, EDI:ESI), and no fast output.
      req.inputGpa = pair(regs.ebx, regs.ecx);
      req.outputGpa = pair(regs.edi, regs.esi);
      req.fastCount = 2;
      req.fastOutput = false;
      this.invoke();
      // On continuation EDX:EAX holds the updated control for the re-executed call.
      const v = req.restartControl ?? req.result;
      regs.edx = high32(v);
      regs.eax = low32(v);
      if (req.restartControl === undefined) return undefined;
      if (!this.hypercallsEnabled) return this.refuse(regs);
    }
  }

  private refuse(regs: X86Registers): Fault {
    return this.hypercallFault(pair(regs.edx, regs.eax), pair(regs.ebx, regs.ecx), pair(regs.edi, regs.esi), '#UD');
  }
}

const ARM_SMCCC_VERSION_FUNC_ID = 0x80000000;
/** SMCCC 1.2: the extended register set Linux's hv_get_vpreg_128 needs. */
const ARM_SMCCC_VERSION_1_2 = 0x10002n;
const SMCCC_RET_NOT_SUPPORTED = 0xffff_ffff_ffff_ffffn;

/** arm64 SMCCC fast registers (tlfs.md §3.2): X2..X17, read and written in place. */
class Arm64Request extends HypercallRequest {
  x: bigint[] = [];
  fastRegister(i: number): bigint {
    return this.x[2 + i]!;
  }
  setFastRegister(i: number, v: bigint): void {
    this.x[2 + i] = v;
  }
}

export class Arm64Port extends CpuPort implements Arm64Cpu {
  readonly arch = 'arm64';
  protected readonly req = new Arm64Request();

  get counterHz(): number {
    return this.partition.referenceTime.tscHz;
  }

  readCounter(): bigint {
    return this.partition.referenceTime.tsc();
  }

  endOfInterrupt(): void {
    this.vp.apic.eoi();
  }

  hvc(imm: number, regs: Arm64Registers): Fault | undefined {
    const x = regs.x;
    const events = this.events;
    if (imm !== 0) {
      if (events.active) events.emit({ kind: 'trap', what: 'smccc', vp: this.vp.index, func: Number((x[0] ?? 0n) & MASK32), fault: '#UD' });
      return '#UD';
    }
    while (x.length < 18) x.push(0n);
    const func = low32(x[0]!);
    if (func !== HV_FUNC_ID) {
      if (func === ARM_SMCCC_VERSION_FUNC_ID) x[0] = ARM_SMCCC_VERSION_1_2;
      else if (func === ARM_SMCCC_VENDOR_HYP_CALL_UID_FUNC_ID) HV_SMCCC_UID.forEach((w, i) => (x[i] = BigInt(w)));
      else x[0] = SMCCC_RET_NOT_SUPPORTED;
      // Hyper-V hypercalls trap as such, from invoke().
      if (events.active) events.emit({ kind: 'trap', what: 'smccc', vp: this.vp.index, func, result: x[0]! });
    } else {
      const control = x[1]!;
      PAIR[0] = control;
      PAIR[1] = x[2]!;
      const result = hypercalls.doorbell(this.vp, HALF[LOW0]!, HALF[HIGH0]!, HALF[LOW1]!, HALF[HIGH1]!);
      if (result !== undefined) {
        x[0] = result;
        if (events.active) this.traceCall(control, x[2]!, x[3]!, result);
        return undefined;
      }
      const req = this.req;
      req.x = x;
      for (;;) {
        // Fast input in X2..X17; fast output in the register pairs after it (SMCCC 1.2).
        req.control = x[1]!;
        req.inputGpa = x[2]!;
        req.outputGpa = x[3]!;
        req.fastCount = 16;
        req.fastOutput = true;
        this.invoke();
        x[0] = req.result;
        if (req.restartControl === undefined) break;
        x[1] = req.restartControl;
      }
    }
    return undefined;
  }
}

/** The CPU port of `vp` for its partition's architecture. */
export function cpuPort(vp: Vp): X64Port | X86_32Port | Arm64Port {
  switch (vp.partition.arch) {
    case 'x64':
      return new X64Port(vp);
    case 'x86':
      return new X86_32Port(vp);
    case 'arm64':
      return new Arm64Port(vp);
  }
}
