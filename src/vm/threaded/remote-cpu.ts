// The guest thread's CPUs: each trap becomes a request in the CPU's slot and a wait for the
// host's answer, as a VM exit blocks the vCPU until the hypervisor resumes it: polling first,
// then Atomics.wait (protocol.ts says when each side notifies). Checks for a pending interrupt
// read a hint word instead of trapping, an interrupt the host offers is taken without one
// (protocol.ts Offer, APICv's posted interrupts), and the counter is read where the host
// publishes it (protocol.ts COUNTER_SEQ), as RDTSC runs without an exit on real hardware.
import type { Arch, Arm64Cpu, Arm64Registers, CpuidResult, Fault, MsrRead, X64Cpu, X64Registers, X86_32Cpu, X86Registers } from '../../hypervisor/cpu-interface.js';
import type { ControlBlock} from './protocol.js';
import { FAULTS, Offer, Op, S, State, W } from './protocol.js';

/** Polls of the answer before sleeping on it: most traps are answered within a microsecond, while a thread put to sleep takes tens of microseconds to wake. */
const SPIN_LOOPS = 5_000;

/** The host stopped answering: the guest thread cannot go on. */
export class HostGoneError extends Error {
  override readonly name = 'HostGoneError';
}

export class RemoteCpu {
  interruptsEnabled = false;
  private readonly words: Int32Array;
  protected readonly args: BigUint64Array;

  constructor(
    private readonly block: ControlBlock,
    private readonly slot: number,
    /** Answers a request in place: a test that runs both sides in one thread passes the host's serveAll. */
    private readonly serveInPlace?: () => void,
  ) {
    this.words = block.slots[slot]!.words;
    this.args = block.slots[slot]!.args;
  }

  /** Posts the request already in `args`, wakes the host if it sleeps, and waits for its answer. */
  protected trap(op: number, aux = 0): Fault | undefined {
    const w = this.words;
    const h = this.block.header;
    // Plain stores: the STATE store publishes them.
    w[S.OP] = op;
    w[S.AUX] = aux;
    Atomics.store(w, S.STATE, State.REQUEST);
    this.wakeHost();
    this.serveInPlace?.();
    for (let spin = 0; spin < SPIN_LOOPS && Atomics.load(w, S.STATE) === State.REQUEST; spin++) {
      if ((spin & 255) === 255) Atomics.add(h, W.GUEST_BEAT, 1);
    }
    while (Atomics.load(w, S.STATE) === State.REQUEST) {
      if (Atomics.load(h, W.HOST_STOPPED)) throw new HostGoneError('the host loop stopped');
      Atomics.store(w, S.WAITING, 1);
      // The wait itself checks STATE: an answer that came in between is not slept through.
      Atomics.wait(w, S.STATE, State.REQUEST, 50);
      Atomics.store(w, S.WAITING, 0);
    }
    // STATE stays RESPONSE until the next request: the host acts only on REQUEST.
    return FAULTS[w[S.FAULT]!];
  }

  /**
   * The counter as the host published it, read with no trap as a guest reads the reference TSC
   * page (protocol.ts COUNTER_SEQ): the same value a trap would get at this point, since the
   * host's clock moves only while the sequence is odd. Undefined while it moves, or before the
   * first publication: then the caller traps.
   */
  protected publishedCounter(): bigint | undefined {
    const h = this.block.header;
    const seq = Atomics.load(h, W.COUNTER_SEQ);
    if (seq === 0 || (seq & 1) !== 0) return undefined;
    const v = Atomics.load(this.block.counter, 0);
    return Atomics.load(h, W.COUNTER_SEQ) === seq ? v : undefined;
  }

  /**
   * The counter by a trap, whatever is published: the request and answer alone, the host's side
   * a counter read. What the trap round-trip bench times (workloads/traps.ts).
   */
  trapCounter(): bigint {
    this.trap(Op.READ_COUNTER);
    return this.args[0]!;
  }

  protected get aux(): number {
    return this.words[S.AUX]!;
  }

  private wakeHost(): void {
    const h = this.block.header;
    if (Atomics.load(h, W.HOST_SLEEPING) !== 0) {
      Atomics.add(h, W.HOST_WAKE, 1);
      Atomics.notify(h, W.HOST_WAKE);
    }
  }

  /**
   * An offer, or the hint. A taken offer the host has not settled yet means nothing more for
   * now: the host settles it, offers what comes next and rings the doorbell.
   */
  interruptPending(): boolean {
    const h = this.block.header;
    const offer = Atomics.load(h, W.OFFER + this.slot);
    if (offer & Offer.TAKEN) return false;
    return offer !== 0 || Atomics.load(h, W.PENDING + this.slot) !== 0;
  }

  acceptInterrupt(): number | undefined {
    if (!this.interruptsEnabled) return undefined;
    const h = this.block.header;
    const at = W.OFFER + this.slot;
    for (;;) {
      const offer = Atomics.load(h, at);
      if (offer & Offer.TAKEN) return undefined;
      if (!(offer & Offer.OFFERED)) break;
      // Taken without a trap, as a posted interrupt is delivered without a VM exit. A failed
      // exchange means the host withdrew or replaced the offer (a higher vector came): look again.
      if (Atomics.compareExchange(h, at, offer, (offer & Offer.VECTOR) | Offer.TAKEN) === offer) {
        // A napping host settles it, and offers what comes next, only once woken.
        this.wakeHost();
        return offer & Offer.VECTOR;
      }
    }
    if (Atomics.load(h, W.PENDING + this.slot) === 0) return undefined;
    this.trap(Op.ACCEPT, 1);
    const v = this.aux;
    return v < 0 ? undefined : v;
  }
}

abstract class RemoteX86<R> extends RemoteCpu {
  cpuid(leaf: number, subleaf = 0): CpuidResult {
    this.args[0] = BigInt(leaf >>> 0);
    this.args[1] = BigInt(subleaf >>> 0);
    this.trap(Op.CPUID);
    const a = this.args;
    return { eax: Number(a[0]!), ebx: Number(a[1]!), ecx: Number(a[2]!), edx: Number(a[3]!) };
  }

  rdmsr(msr: number): MsrRead {
    this.args[0] = BigInt(msr >>> 0);
    const fault = this.trap(Op.RDMSR);
    return fault ? { fault } : { value: this.args[0]! };
  }

  wrmsr(msr: number, value: bigint): Fault | undefined {
    this.args[0] = BigInt(msr >>> 0);
    this.args[1] = value;
    return this.trap(Op.WRMSR);
  }

  rdtsc(): bigint {
    const published = this.publishedCounter();
    if (published !== undefined) return published;
    this.trap(Op.RDTSC);
    return this.args[0]!;
  }

  apicWrite(offset: number, value: number): void {
    this.args[0] = BigInt(offset);
    this.args[1] = BigInt(value >>> 0);
    this.trap(Op.APIC_WRITE);
  }

  call(gpa: number, regs: R): Fault | undefined {
    this.args[SLOT_GPA] = BigInt(gpa);
    return this.hypercall(Op.CALL, regs);
  }

  vmcall(regs: R): Fault | undefined {
    return this.hypercall(Op.VMCALL, regs);
  }

  protected abstract hypercall(op: number, regs: R): Fault | undefined;
}

/** The argument that carries the target of a CALL, clear of the register images. */
export const SLOT_GPA = 23;

export class RemoteX64Cpu extends RemoteX86<X64Registers> implements X64Cpu {
  readonly arch = 'x64';

  protected hypercall(op: number, regs: X64Registers): Fault | undefined {
    const a = this.args;
    a[0] = regs.rcx;
    a[1] = regs.rdx;
    a[2] = regs.r8;
    a[3] = regs.rax;
    for (let i = 0; i < 12; i++) a[4 + i] = regs.xmm[i] ?? 0n;
    const fault = this.trap(op);
    regs.rcx = a[0]!;
    regs.rdx = a[1]!;
    regs.r8 = a[2]!;
    regs.rax = a[3]!;
    for (let i = 0; i < 12; i++) regs.xmm[i] = a[4 + i]!;
    return fault;
  }
}

const X86_REGS = ['eax', 'edx', 'ebx', 'ecx', 'esi', 'edi'] as const;

export class RemoteX86Cpu extends RemoteX86<X86Registers> implements X86_32Cpu {
  readonly arch = 'x86';

  protected hypercall(op: number, regs: X86Registers): Fault | undefined {
    X86_REGS.forEach((r, i) => (this.args[i] = BigInt(regs[r] >>> 0)));
    const fault = this.trap(op);
    X86_REGS.forEach((r, i) => (regs[r] = Number(this.args[i]!) >>> 0));
    return fault;
  }
}

export class RemoteArm64Cpu extends RemoteCpu implements Arm64Cpu {
  readonly arch = 'arm64';
  readonly counterHz: number;

  constructor(block: ControlBlock, slot: number, serveInPlace?: () => void) {
    super(block, slot, serveInPlace);
    this.trap(Op.COUNTER_HZ);
    this.counterHz = Number(this.args[0]!);
  }

  hvc(imm: number, regs: Arm64Registers): Fault | undefined {
    const x = regs.x;
    for (let i = 0; i < 18; i++) this.args[i] = x[i] ?? 0n;
    this.args[SLOT_GPA] = BigInt(imm);
    const fault = this.trap(Op.HVC);
    for (let i = 0; i < 18; i++) x[i] = this.args[i]!;
    return fault;
  }

  readCounter(): bigint {
    const published = this.publishedCounter();
    if (published !== undefined) return published;
    this.trap(Op.READ_COUNTER);
    return this.args[0]!;
  }

  endOfInterrupt(): void {
    this.trap(Op.EOI);
  }
}

export function remoteCpu(arch: Arch, block: ControlBlock, slot: number, serveInPlace?: () => void): X64Cpu | X86_32Cpu | Arm64Cpu {
  switch (arch) {
    case 'x64':
      return new RemoteX64Cpu(block, slot, serveInPlace);
    case 'x86':
      return new RemoteX86Cpu(block, slot, serveInPlace);
    case 'arm64':
      return new RemoteArm64Cpu(block, slot, serveInPlace);
  }
}
