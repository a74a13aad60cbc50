// The host thread's side of the control block: it carries out each CPU's trap request on the
// real CPU port and answers, and it tells the guest which CPUs have an interrupt to take.
import type { Arm64Port, X64Port, X86_32Port } from '../../hypervisor/cpu.js';
import type { Fault } from '../../hypervisor/cpu-interface.js';
import type { Vp } from '../../hypervisor/vp.js';
import type { ControlBlock} from './protocol.js';
import { FAULTS, Op, S, State, W } from './protocol.js';
import { SLOT_GPA } from './remote-cpu.js';

type Port = X64Port | X86_32Port | Arm64Port;

const X86_REGS = ['eax', 'edx', 'ebx', 'ecx', 'esi', 'edi'] as const;

export class TrapServer {
  /** Traps served, for inspection and benchmarks. */
  served = 0;

  constructor(
    readonly block: ControlBlock,
    /** CPU ports in the guest's CPU order, with their VPs. */
    readonly cpus: readonly { port: Port; vp: Vp }[],
  ) {}

  /** Answers every pending request; returns how many. */
  serveAll(): number {
    let n = 0;
    for (let i = 0; i < this.cpus.length; i++) {
      const w = this.block.slots[i]!.words;
      if (Atomics.load(w, S.STATE) !== State.REQUEST) continue;
      const fault = this.perform(i);
      Atomics.store(w, S.FAULT, fault ? FAULTS.indexOf(fault) : 0);
      Atomics.store(w, S.STATE, State.RESPONSE);
      Atomics.notify(w, S.STATE);
      n++;
    }
    this.served += n;
    return n;
  }

  /** Publishes which CPUs have a deliverable interrupt, ringing the doorbell for new ones. */
  publishInterrupts(): void {
    const h = this.block.header;
    let ring = false;
    for (let i = 0; i < this.cpus.length; i++) {
      const pending = this.cpus[i]!.vp.apic.deliverable() !== undefined ? 1 : 0;
      if (Atomics.exchange(h, W.PENDING + i, pending) !== pending && pending) ring = true;
    }
    if (ring) {
      Atomics.add(h, W.DOORBELL, 1);
      Atomics.notify(h, W.DOORBELL);
    }
  }

  private perform(i: number): Fault | undefined {
    const { port } = this.cpus[i]!;
    const { words, args: a } = this.block.slots[i]!;
    const op = Atomics.load(words, S.OP);
    const u = (k: number) => BigInt.asUintN(64, a[k]!);
    switch (op) {
      case Op.ACCEPT: {
        port.interruptsEnabled = Atomics.load(words, S.AUX) !== 0;
        const v = port.acceptInterrupt();
        Atomics.store(words, S.AUX, v ?? -1);
        return undefined;
      }
      case Op.EOI:
        if (port.arch === 'arm64') port.endOfInterrupt();
        return undefined;
      case Op.COUNTER_HZ:
        a[0] = BigInt(port.arch === 'arm64' ? port.counterHz : 0);
        return undefined;
      case Op.READ_COUNTER:
        a[0] = BigInt.asIntN(64, port.arch === 'arm64' ? port.readCounter() : port.rdtsc());
        return undefined;
      case Op.HVC: {
        if (port.arch !== 'arm64') return '#UD';
        const x = Array.from({ length: 18 }, (_, k) => u(k));
        const fault = port.hvc(Number(a[SLOT_GPA]!), { x });
        x.forEach((v, k) => (a[k] = BigInt.asIntN(64, v)));
        return fault;
      }
    }
    if (port.arch === 'arm64') return '#UD';
    switch (op) {
      case Op.CPUID: {
        const r = port.cpuid(Number(a[0]!), Number(a[1]!));
        a[0] = BigInt(r.eax >>> 0);
        a[1] = BigInt(r.ebx >>> 0);
        a[2] = BigInt(r.ecx >>> 0);
        a[3] = BigInt(r.edx >>> 0);
        return undefined;
      }
      case Op.RDMSR: {
        const r = port.rdmsr(Number(a[0]!));
        if (r.fault) return r.fault;
        a[0] = BigInt.asIntN(64, r.value);
        return undefined;
      }
      case Op.WRMSR:
        return port.wrmsr(Number(a[0]!), u(1));
      case Op.RDTSC:
        a[0] = BigInt.asIntN(64, port.rdtsc());
        return undefined;
      case Op.APIC_WRITE:
        port.apicWrite(Number(a[0]!), Number(a[1]!));
        return undefined;
      case Op.CALL:
      case Op.VMCALL:
        return port.arch === 'x64' ? this.x64(port, op, a) : this.x86(port, op, a);
    }
    return '#UD';
  }

  private x64(port: X64Port, op: number, a: BigInt64Array): Fault | undefined {
    const u = (k: number) => BigInt.asUintN(64, a[k]!);
    const regs = { rcx: u(0), rdx: u(1), r8: u(2), rax: u(3), xmm: Array.from({ length: 12 }, (_, k) => u(4 + k)) };
    const fault = op === Op.CALL ? port.call(Number(a[SLOT_GPA]!), regs) : port.vmcall(regs);
    [regs.rcx, regs.rdx, regs.r8, regs.rax, ...regs.xmm].forEach((v, k) => (a[k] = BigInt.asIntN(64, v)));
    return fault;
  }

  private x86(port: X86_32Port, op: number, a: BigInt64Array): Fault | undefined {
    const regs = { eax: 0, edx: 0, ebx: 0, ecx: 0, esi: 0, edi: 0 };
    X86_REGS.forEach((r, k) => (regs[r] = Number(a[k]!) >>> 0));
    const fault = op === Op.CALL ? port.call(Number(a[SLOT_GPA]!), regs) : port.vmcall(regs);
    X86_REGS.forEach((r, k) => (a[k] = BigInt(regs[r] >>> 0)));
    return fault;
  }
}
