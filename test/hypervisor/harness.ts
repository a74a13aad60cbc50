// A kvm-unit-tests-style guest for driving the hypervisor in tests: guest actions go through
// the CPU ports only (CPUID, MSRs, the hypercall page, interrupt acceptance); host actions
// (the test device of tlfs.md 8.0) go through the partition's host API.
import { expect } from 'vitest';
import { Arm64Port, Partition, X64Port, X86_32Port, type PartitionConfig } from '../../src/hypervisor/index.js';
import { encodeControl, type Control } from '../../src/tlfs/control.js';
import { HvMsr } from '../../src/tlfs/msr.js';
import { HV_FUNC_ID } from '../../src/tlfs/registers.js';

/** Where the harness puts guest pages: one 4 KiB page per use and VP. */
export const PAGE = {
  hypercall: 0x10000,
  simp: (vp: number) => 0x20000 + vp * 0x1000,
  siefp: (vp: number) => 0x40000 + vp * 0x1000,
  input: (vp: number) => 0x60000 + vp * 0x1000,
  output: (vp: number) => 0x80000 + vp * 0x1000,
  tsc: 0xa0000,
  assist: (vp: number) => 0xb0000 + vp * 0x1000,
} as const;

export type HypercallArgs = Omit<Partial<Control>, 'reservedSet'> & { code: number };

export class TestGuest {
  /** Interrupts taken, by vector. */
  readonly taken = new Map<number, number>();
  /** Called for each interrupt taken; returning true means the handler EOIs. */
  handler: (vector: number) => boolean = () => true;

  constructor(
    readonly p: Partition,
    readonly index: number,
    readonly cpu: X64Port | X86_32Port | Arm64Port,
  ) {
    cpu.interruptsEnabled = true;
  }

  get vp() {
    return this.p.vps[this.index]!;
  }

  rdmsr(msr: number): bigint {
    const c = this.cpu as X64Port;
    const r = c.rdmsr(msr);
    expect(r.fault, `RDMSR 0x${msr.toString(16)}`).toBeUndefined();
    return r.value!;
  }

  wrmsr(msr: number, v: bigint): void {
    expect((this.cpu as X64Port).wrmsr(msr, v), `WRMSR 0x${msr.toString(16)} = 0x${v.toString(16)}`).toBeUndefined();
  }

  /** hv_do_hypercall: CALL the hypercall page with control, input and output GPAs (or fast qwords). */
  hypercall(c: HypercallArgs, input: bigint = 0n, output: bigint = 0xdead_beef_dead_beefn): bigint {
    return this.hypercallRaw(encodeControl(c), input, output);
  }

  /** A hypercall with any 64-bit control value, through the port's ABI. */
  hypercallRaw(control: bigint, input: bigint, output: bigint): bigint {
    const cpu = this.cpu;
    if (cpu instanceof X64Port) {
      const regs = { rcx: control, rdx: input, r8: output, rax: 0n, xmm: [] as bigint[] };
      expect(cpu.call(PAGE.hypercall, regs)).toBeUndefined();
      return regs.rax;
    }
    if (cpu instanceof X86_32Port) {
      const lo = (v: bigint) => Number(v & 0xffffffffn);
      const hi = (v: bigint) => Number((v >> 32n) & 0xffffffffn);
      const regs = { edx: hi(control), eax: lo(control), ebx: hi(input), ecx: lo(input), edi: hi(output), esi: lo(output) };
      expect(cpu.call(PAGE.hypercall, regs)).toBeUndefined();
      return (BigInt(regs.edx >>> 0) << 32n) | BigInt(regs.eax >>> 0);
    }
    const x = [BigInt(HV_FUNC_ID), control, input, output];
    expect(cpu.hvc(0, { x })).toBeUndefined();
    return x[0]!;
  }

  /** GUEST_OS_ID then HYPERCALL = page | enable, as every kvm-unit-tests Hyper-V test does. */
  enableHypercalls(guestOsId = 0x8f00n << 48n): void {
    this.wrmsr(HvMsr.GUEST_OS_ID, guestOsId);
    this.wrmsr(HvMsr.HYPERCALL, BigInt(PAGE.hypercall) | 1n);
  }

  /** Takes every deliverable interrupt, running the handler for each. */
  drain(): number {
    let n = 0;
    for (let v = this.cpu.acceptInterrupt(); v !== undefined; v = this.cpu.acceptInterrupt()) {
      this.taken.set(v, (this.taken.get(v) ?? 0) + 1);
      n++;
      if (this.handler(v)) this.eoi();
      if (n > 100_000) throw new Error('interrupt storm');
    }
    return n;
  }

  eoi(): void {
    if (this.cpu instanceof Arm64Port) this.cpu.endOfInterrupt();
    else this.wrmsr(HvMsr.EOI, 0n);
  }

  count(vector: number): number {
    return this.taken.get(vector) ?? 0;
  }
}

export function partition(config: Partial<PartitionConfig> = {}): { p: Partition; guests: TestGuest[] } {
  const p = new Partition({ memory: 4 * 1024 * 1024, ...config });
  const guests = p.vps.map((vp, i) => new TestGuest(p, i, p.arch === 'x64' ? new X64Port(vp) : p.arch === 'x86' ? new X86_32Port(vp) : new Arm64Port(vp)));
  return { p, guests };
}

/** Advances virtual time in steps, letting every guest take its interrupts after each. */
export function run(p: Partition, guests: TestGuest[], ns: number, stepNs = 50_000, until?: () => boolean): void {
  const end = p.clock.nowNs + ns;
  while (p.clock.nowNs < end) {
    p.clock.advanceTo(Math.min(end, p.clock.nowNs + stepNs));
    for (const g of guests) g.drain();
    if (until?.()) return;
  }
}

export const status = (result: bigint): number => Number(result & 0xffffn);
export const repsCompleted = (result: bigint): number => Number((result >> 32n) & 0xfffn);
