// The boundary between a guest and the hypervisor, as the guest sees it: the instructions that
// trap (CPUID, RDMSR/WRMSR, VMCALL/VMMCALL, HVC), the counter it reads without trapping, and
// interrupt acceptance. The guest imports only these types (DESIGN.md principle 1).
import type { CpuidResult } from '../tlfs/cpuid.js';

export type { CpuidResult };
export type Arch = 'x64' | 'x86' | 'arm64';

/** An exception the instruction raised instead of completing. */
export type Fault = '#GP' | '#UD';

export type MsrRead = { readonly value: bigint; readonly fault?: undefined } | { readonly value?: undefined; readonly fault: Fault };

/** Registers of an x86-64 hypercall (tlfs.md §4.1). The hypervisor writes RAX, and RCX on continuation. */
export interface X64Registers {
  rcx: bigint;
  rdx: bigint;
  r8: bigint;
  rax: bigint;
  /** XMM0..XMM5 as 12 qwords: low then high half of each. */
  xmm: bigint[];
}

/** Registers of a 32-bit x86 hypercall (tlfs.md §4.2); 32-bit values. */
export interface X86Registers {
  eax: number;
  edx: number;
  ebx: number;
  ecx: number;
  esi: number;
  edi: number;
}

/** X0..X17 of an arm64 SMCCC call (tlfs.md §3.2). */
export interface Arm64Registers {
  x: bigint[];
}

interface CpuCommon {
  readonly arch: Arch;
  /** RFLAGS.IF / PSTATE.I: whether the CPU takes interrupts. */
  interruptsEnabled: boolean;
  /** A vector (INTID) is deliverable, whatever the interrupt flag. */
  interruptPending(): boolean;
  /** Takes the highest deliverable interrupt (if enabled) and returns its vector. */
  acceptInterrupt(): number | undefined;
}

export interface X86Cpu extends CpuCommon {
  readonly arch: 'x64' | 'x86';
  cpuid(leaf: number, subleaf?: number): CpuidResult;
  rdmsr(msr: number): MsrRead;
  wrmsr(msr: number, value: bigint): Fault | undefined;
  /** RDTSC: the virtual TSC, synchronised across VPs; does not trap. */
  rdtsc(): bigint;
  /** A write to the xAPIC register page (0xFEE00000 + offset), which the hypervisor emulates. */
  apicWrite(offset: number, value: number): void;
}

export interface X64Cpu extends X86Cpu {
  readonly arch: 'x64';
  /** CALL to guest address `gpa` (the hypercall page): runs the instruction found there. */
  call(gpa: number, regs: X64Registers): Fault | undefined;
  vmcall(regs: X64Registers): Fault | undefined;
}

export interface X86_32Cpu extends X86Cpu {
  readonly arch: 'x86';
  call(gpa: number, regs: X86Registers): Fault | undefined;
  vmcall(regs: X86Registers): Fault | undefined;
}

export interface Arm64Cpu extends CpuCommon {
  readonly arch: 'arm64';
  /** HVC #imm with the SMC calling convention in X0..X17. */
  hvc(imm: number, regs: Arm64Registers): Fault | undefined;
  /** CNTVCT_EL0 and CNTFRQ_EL0: the virtual counter and its frequency; do not trap. */
  readCounter(): bigint;
  readonly counterHz: number;
  /** ICC_EOIR1_EL1: end of the interrupt in service. */
  endOfInterrupt(): void;
}

export type GuestCpu = X64Cpu | X86_32Cpu | Arm64Cpu;
