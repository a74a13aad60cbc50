// What the guest kernel does with the CPU it runs on, per architecture, the way Linux's helpers
// do it: hv_get_register/hv_set_register (MSRs on x86, HvCallGet/SetVpRegisters on arm64),
// hv_do_hypercall and its fast and rep forms (include/asm-generic/mshyperv.h,
// arch/x86/include/asm/mshyperv.h, arch/arm64/hyperv/hv_core.c), the counter, and EOI.
import type { Arm64Cpu, GuestCpu, X64Cpu, X86_32Cpu, X86Cpu } from '../hypervisor/cpu-interface.js';
import { HV_HYPERCALL_FAST_BIT, HV_HYPERCALL_REP_COMP_OFFSET, HV_HYPERCALL_REP_START_MASK, HV_HYPERCALL_REP_START_OFFSET, HV_HYPERCALL_VARHEAD_OFFSET, resultRepsCompleted, resultStatus } from '../tlfs/control.js';
import { HvCall } from '../tlfs/hypercall-codes.js';
import { HvMsr, sintMsr } from '../tlfs/msr.js';
import { HV_FUNC_ID, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, HvRegister, sintRegister } from '../tlfs/registers.js';
import { HvStatus, statusName } from '../tlfs/status.js';
import type { KernelLog } from './klog.js';

/** Linux's "no hypercall page yet" result (hv_do_hypercall returns U64_MAX). */
export const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** The synthetic registers generic Linux code names (HV_REGISTER_*), mapped per architecture. */
export type Reg =
  | 'GUEST_OS_ID'
  | 'VP_INDEX'
  | 'TIME_REF_COUNT'
  | 'REFERENCE_TSC'
  | 'VP_ASSIST_PAGE'
  | 'SCONTROL'
  | 'SIEFP'
  | 'SIMP'
  | 'EOM'
  | 'STIMER0_CONFIG'
  | 'STIMER0_COUNT'
  | 'CRASH_CTL'
  | `CRASH_P${0 | 1 | 2 | 3 | 4}`
  | `SINT${number}`;

const X86_REGS: Record<string, number> = {
  GUEST_OS_ID: HvMsr.GUEST_OS_ID,
  VP_INDEX: HvMsr.VP_INDEX,
  TIME_REF_COUNT: HvMsr.TIME_REF_COUNT,
  REFERENCE_TSC: HvMsr.REFERENCE_TSC,
  VP_ASSIST_PAGE: HvMsr.VP_ASSIST_PAGE,
  SCONTROL: HvMsr.SCONTROL,
  SIEFP: HvMsr.SIEFP,
  SIMP: HvMsr.SIMP,
  EOM: HvMsr.EOM,
  STIMER0_CONFIG: HvMsr.STIMER0_CONFIG,
  STIMER0_COUNT: HvMsr.STIMER0_COUNT,
  CRASH_CTL: HvMsr.CRASH_CTL,
  ...Object.fromEntries([0, 1, 2, 3, 4].map((n) => [`CRASH_P${n}`, HvMsr.CRASH_P0 + n])),
  ...Object.fromEntries(Array.from({ length: 16 }, (_, n) => [`SINT${n}`, sintMsr(n)])),
};

const ARM64_REGS: Record<string, number> = {
  GUEST_OS_ID: HvRegister.GUEST_OS_ID,
  VP_INDEX: HvRegister.VP_INDEX,
  TIME_REF_COUNT: HvRegister.TIME_REF_COUNT,
  REFERENCE_TSC: HvRegister.REFERENCE_TSC,
  VP_ASSIST_PAGE: HvRegister.VP_ASSIST_PAGE,
  SCONTROL: HvRegister.SCONTROL,
  SIEFP: HvRegister.SIEFP,
  SIMP: HvRegister.SIMP,
  EOM: HvRegister.EOM,
  STIMER0_CONFIG: HvRegister.STIMER0_CONFIG,
  STIMER0_COUNT: HvRegister.STIMER0_COUNT,
  CRASH_CTL: HvRegister.GUEST_CRASH_CTL,
  ...Object.fromEntries([0, 1, 2, 3, 4].map((n) => [`CRASH_P${n}`, HvRegister.GUEST_CRASH_P0 + n])),
  ...Object.fromEntries(Array.from({ length: 16 }, (_, n) => [`SINT${n}`, sintRegister(n)])),
};

/** The guest hit a condition Linux answers with BUG() or panic(). */
export class GuestPanic extends Error {
  override readonly name = 'GuestPanic';
}

/** The per-CPU operations the Hyper-V code in the kernel uses. */
export interface CpuOps {
  readonly cpu: GuestCpu;
  getReg(r: Reg): bigint;
  setReg(r: Reg, v: bigint): void;
  /** hv_do_hypercall(control, input, output) with guest-physical addresses (0 = none). */
  hypercall(control: bigint, input: number, output: number): bigint;
  fastHypercall8(code: number, a: bigint): bigint;
  fastHypercall16(code: number, a: bigint, b: bigint): bigint;
  /** The free-running counter the clocksource reads: the TSC, or CNTVCT_EL0 on arm64. */
  counter(): bigint;
  readonly counterHz: number;
}

/** hv_do_rep_hypercall: re-issues while the status is SUCCESS and fewer reps are done. */
export function repHypercall(ops: CpuOps, code: number, repCount: number, varHead: number, input: number, output: number): bigint {
  let control = BigInt(code) | (BigInt(varHead) << BigInt(HV_HYPERCALL_VARHEAD_OFFSET)) | (BigInt(repCount) << BigInt(HV_HYPERCALL_REP_COMP_OFFSET));
  for (;;) {
    const status = ops.hypercall(control, input, output);
    if (resultStatus(status) !== HvStatus.SUCCESS) return status;
    const done = resultRepsCompleted(status);
    if (done >= repCount) return status;
    control = (control & ~HV_HYPERCALL_REP_START_MASK) | (BigInt(done) << BigInt(HV_HYPERCALL_REP_START_OFFSET));
  }
}

abstract class X86Ops implements CpuOps {
  /** GPA of the hypercall page once hyperv_init has enabled it. */
  hypercallPage: number | undefined;

  constructor(
    readonly cpu: X64Cpu | X86_32Cpu,
    protected readonly log: KernelLog,
  ) {}

  get x86(): X86Cpu {
    return this.cpu;
  }

  rdmsr(msr: number): bigint {
    const r = this.cpu.rdmsr(msr);
    if (r.fault) {
      // rdmsrl is not the _safe variant: x86 warns and carries on with 0 (arch/x86/mm/extable.c).
      this.log.warn(`unchecked MSR access error: RDMSR from 0x${msr.toString(16)}`);
      return 0n;
    }
    return r.value;
  }

  wrmsr(msr: number, v: bigint): void {
    if (this.cpu.wrmsr(msr, v)) {
      const hi = Number(v >> 32n).toString(16).padStart(8, '0');
      const lo = Number(v & 0xffffffffn).toString(16).padStart(8, '0');
      this.log.warn(`unchecked MSR access error: WRMSR to 0x${msr.toString(16)} (tried to write 0x${hi}${lo})`);
    }
  }

  getReg(r: Reg): bigint {
    return this.rdmsr(X86_REGS[r]!);
  }

  setReg(r: Reg, v: bigint): void {
    this.wrmsr(X86_REGS[r]!, v);
  }

  counter(): bigint {
    return this.cpu.rdtsc();
  }

  get counterHz(): number {
    return Number(this.rdmsr(HvMsr.TSC_FREQUENCY));
  }

  /** One CALL to the hypercall page with the control and the two input/output values. */
  protected abstract call(control: bigint, a: bigint, b: bigint): bigint;

  hypercall(control: bigint, input: number, output: number): bigint {
    return this.call(control, BigInt(input), BigInt(output));
  }
  fastHypercall8(code: number, a: bigint): bigint {
    return this.call(BigInt(code) | HV_HYPERCALL_FAST_BIT, a, 0n);
  }
  fastHypercall16(code: number, a: bigint, b: bigint): bigint {
    return this.call(BigInt(code) | HV_HYPERCALL_FAST_BIT, a, b);
  }
}

export class X64Ops extends X86Ops {
  declare readonly cpu: X64Cpu;

  protected call(rcx: bigint, rdx: bigint, r8: bigint): bigint {
    if (this.hypercallPage === undefined) return U64_MAX;
    const regs = { rcx, rdx, r8, rax: 0n, xmm: [] as bigint[] };
    if (this.cpu.call(this.hypercallPage, regs)) throw new GuestPanic(`hypercall page at 0x${this.hypercallPage.toString(16)} faulted`);
    return regs.rax;
  }

}

export class X86_32Ops extends X86Ops {
  declare readonly cpu: X86_32Cpu;

  /** EDX:EAX control, EBX:ECX input, EDI:ESI output; result in EDX:EAX (tlfs.md 4.2). */
  protected call(control: bigint, input: bigint, output: bigint): bigint {
    if (this.hypercallPage === undefined) return U64_MAX;
    const hi = (v: bigint) => Number((v >> 32n) & 0xffffffffn);
    const lo = (v: bigint) => Number(v & 0xffffffffn);
    const regs = { edx: hi(control), eax: lo(control), ebx: hi(input), ecx: lo(input), edi: hi(output), esi: lo(output) };
    if (this.cpu.call(this.hypercallPage, regs)) throw new GuestPanic(`hypercall page at 0x${this.hypercallPage.toString(16)} faulted`);
    return (BigInt(regs.edx >>> 0) << 32n) | BigInt(regs.eax >>> 0);
  }
}

export class Arm64Ops implements CpuOps {
  constructor(readonly cpu: Arm64Cpu) {}

  /** HVC #0 with X0 = HV_FUNC_ID, X1 = control, X2.. = arguments; returns X0..X17. */
  private smccc(control: bigint, args: bigint[]): bigint[] {
    const x = [BigInt(HV_FUNC_ID), control, ...args];
    if (this.cpu.hvc(0, { x })) throw new GuestPanic('HVC #0 faulted');
    return x;
  }

  hypercall(control: bigint, input: number, output: number): bigint {
    return this.smccc(control, [BigInt(input), BigInt(output)])[0]!;
  }
  fastHypercall8(code: number, a: bigint): bigint {
    return this.smccc(BigInt(code) | HV_HYPERCALL_FAST_BIT, [a])[0]!;
  }
  fastHypercall16(code: number, a: bigint, b: bigint): bigint {
    return this.smccc(BigInt(code) | HV_HYPERCALL_FAST_BIT, [a, b])[0]!;
  }

  /** hv_get_vpreg_128: a fast GetVpRegisters of one register; the value comes back in X6:X7. */
  getReg128(name: number): { low: bigint; high: bigint } {
    const control = BigInt(HvCall.GET_VP_REGISTERS) | HV_HYPERCALL_FAST_BIT | (1n << BigInt(HV_HYPERCALL_REP_COMP_OFFSET));
    const x = this.smccc(control, [HV_PARTITION_ID_SELF, BigInt(HV_VP_INDEX_SELF), BigInt(name), 0n]);
    // arch/arm64/hyperv/hv_core.c: a failed register access is a BUG().
    if (resultStatus(x[0]!) !== HvStatus.SUCCESS) throw new GuestPanic(`hv_get_vpreg 0x${name.toString(16)}: ${statusName(resultStatus(x[0]!))}`);
    return { low: x[6]!, high: x[7]! };
  }

  /** hv_set_vpreg: a fast SetVpRegisters of one register (name in X4, value in X6:X7). */
  setReg128(name: number, low: bigint, high = 0n): void {
    const control = BigInt(HvCall.SET_VP_REGISTERS) | HV_HYPERCALL_FAST_BIT | (1n << BigInt(HV_HYPERCALL_REP_COMP_OFFSET));
    const x = this.smccc(control, [HV_PARTITION_ID_SELF, BigInt(HV_VP_INDEX_SELF), BigInt(name), 0n, low, high]);
    if (resultStatus(x[0]!) !== HvStatus.SUCCESS) throw new GuestPanic(`hv_set_vpreg 0x${name.toString(16)}: ${statusName(resultStatus(x[0]!))}`);
  }

  getReg(r: Reg): bigint {
    return this.getReg128(ARM64_REGS[r]!).low;
  }

  setReg(r: Reg, v: bigint): void {
    this.setReg128(ARM64_REGS[r]!, v);
  }

  counter(): bigint {
    return this.cpu.readCounter();
  }

  get counterHz(): number {
    return this.cpu.counterHz;
  }
}

export type AnyCpuOps = X64Ops | X86_32Ops | Arm64Ops;

export function cpuOps(cpu: GuestCpu, log: KernelLog): AnyCpuOps {
  switch (cpu.arch) {
    case 'x64':
      return new X64Ops(cpu, log);
    case 'x86':
      return new X86_32Ops(cpu, log);
    case 'arm64':
      return new Arm64Ops(cpu);
  }
}
