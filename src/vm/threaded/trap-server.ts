// The host thread's side of the control block: it carries out each CPU's trap request on the
// real CPU port and answers, and it tells the guest which CPUs have an interrupt to take. It
// notifies a waiting side only when that side says it sleeps (protocol.ts).
//
// Interrupts are offered as APICv posts them (protocol.ts Offer): the vector a CPU would accept
// next sits in its offer word, and a guest CPU takes it without an ACCEPT trap. The APIC model
// stays here, so the host settles a taken offer (the acceptance the trap would have made) before
// anything else touches that CPU's interrupt state: the APIC's beforeChange hook for raises,
// resets and queued messages, and each trap of that CPU. A take is thus ordered wholly before or
// after every change, and the guest sees what a synchronous ACCEPT at that point would give: the
// same vector, the same priority and ISR blocking afterwards.
import type { Arm64Port, X64Port, X86_32Port } from '../../hypervisor/cpu.js';
import type { Fault, X64Registers, X86Registers } from '../../hypervisor/cpu-interface.js';
import type { Vp } from '../../hypervisor/vp.js';
import type { ControlBlock } from './protocol.js';
import { FAULTS, Offer, Op, S, State, W } from './protocol.js';
import { SLOT_GPA } from './remote-cpu.js';

type Port = X64Port | X86_32Port | Arm64Port;

const X86_REGS = ['eax', 'edx', 'ebx', 'ecx', 'esi', 'edi'] as const;

/** Traps that may change what accepting an interrupt does, by op (the rest only read state). */
const MAY_CHANGE_INTERRUPTS: readonly boolean[] = Array.from({ length: 16 }, (_, op) =>
  ([Op.WRMSR, Op.APIC_WRITE, Op.CALL, Op.VMCALL, Op.HVC, Op.EOI, Op.ACCEPT] as number[]).includes(op),
);

export class TrapServer {
  /** Traps served, for inspection and benchmarks. */
  served = 0;
  /** ACCEPT traps that found no interrupt: each is a round trip the guest's hint should have saved. */
  idleAccepts = 0;
  /** Interrupts a guest CPU took from its offer word, without a trap. */
  posted = 0;
  /** Taken offers the host never made (a guest writing the offer word itself): refused, nothing accepted. */
  forgedTakes = 0;
  /** Traps served by op (index: protocol.ts Op), for telling where a workload's round trips go. */
  readonly byOp: number[] = new Array<number>(16).fill(0);
  /** Register images handed to the ports, one per CPU, reused. */
  private readonly x64: X64Registers[];
  private readonly x86: X86Registers[];
  private readonly arm64: bigint[][];

  constructor(
    readonly block: ControlBlock,
    /** CPU ports in the guest's CPU order, with their VPs. */
    readonly cpus: readonly { port: Port; vp: Vp }[],
  ) {
    this.x64 = cpus.map(() => ({ rcx: 0n, rdx: 0n, r8: 0n, rax: 0n, xmm: new Array<bigint>(12).fill(0n) }));
    // An interrupt raised on the host (a device signalling mid-batch) is published at once, not
    // when the loop comes round: the guest may be waiting for it with nothing else to do.
    cpus.forEach(({ vp }, i) => {
      vp.apic.onRaise = () => this.publish(i);
      vp.apic.beforeChange = () => this.retract(i);
    });
    this.x86 = cpus.map(() => ({ eax: 0, edx: 0, ebx: 0, ecx: 0, esi: 0, edi: 0 }));
    this.arm64 = cpus.map(() => new Array<bigint>(18).fill(0n));
  }

  /** Virtual time is about to move: a guest reading the counter now traps, and is answered after. */
  timeMoving(): void {
    Atomics.add(this.block.header, W.COUNTER_SEQ, 1);
  }

  /** Virtual time has moved: publishes the counter as a trap would read it now (protocol.ts COUNTER_SEQ). */
  timeMoved(): void {
    const { port } = this.cpus[0]!;
    Atomics.store(this.block.counter, 0, port.arch === 'arm64' ? port.readCounter() : port.rdtsc());
    Atomics.add(this.block.header, W.COUNTER_SEQ, 1);
  }

  /** Whether some CPU has posted a request, or taken an offer the host has yet to settle. */
  pending(): boolean {
    const slots = this.block.slots;
    const h = this.block.header;
    for (let i = 0; i < slots.length; i++) if (Atomics.load(slots[i]!.words, S.STATE) === State.REQUEST || Atomics.load(h, W.OFFER + i) & Offer.TAKEN) return true;
    return false;
  }

  /** Answers every pending request; returns how many. */
  serveAll(): number {
    let n = 0;
    const slots = this.block.slots;
    for (let i = 0; i < slots.length; i++) {
      const w = slots[i]!.words;
      if (Atomics.load(w, S.STATE) !== State.REQUEST) continue;
      const fault = this.perform(i);
      w[S.FAULT] = fault ? FAULTS.indexOf(fault) : 0;
      // The hint as the trap left it, before the answer: an accepted or EOI'd interrupt clears
      // it, and a guest reading a stale one would trap to accept an interrupt that is gone.
      this.publish(i);
      Atomics.store(w, S.STATE, State.RESPONSE);
      if (Atomics.load(w, S.WAITING) !== 0) Atomics.notify(w, S.STATE);
      n++;
    }
    this.served += n;
    return n;
  }

  /** Publishes which CPUs have a deliverable interrupt, ringing the doorbell for new ones. */
  publishInterrupts(): void {
    for (let i = 0; i < this.cpus.length; i++) this.publish(i);
  }

  /** Publishes CPU `i`'s hint and offer; a new interrupt or a new offer rings the doorbell. */
  private publish(i: number): void {
    const h = this.block.header;
    const { vp } = this.cpus[i]!;
    let offered = false;
    let v: number | undefined;
    for (;;) {
      const cur = Atomics.load(h, W.OFFER + i);
      if (cur & Offer.TAKEN) {
        this.settle(i, cur);
        continue;
      }
      v = vp.apic.deliverable();
      // Still the offer of the vector due: nothing changed since it was made (a change
      // withdraws it first). Written only when it changes: the guest reads these words as it polls.
      if (v !== undefined && cur === (Offer.OFFERED | v)) break;
      const want = v !== undefined && this.offerable(i, v) ? Offer.OFFERED | v : 0;
      if (cur === want) break;
      // Fails only if the guest took `cur` meanwhile: settle that first, then look again.
      if (Atomics.compareExchange(h, W.OFFER + i, cur, want) !== cur) continue;
      offered = want !== 0;
      break;
    }
    const pending = v !== undefined ? 1 : 0;
    const newHint = Atomics.load(h, W.PENDING + i) !== pending;
    if (newHint) Atomics.store(h, W.PENDING + i, pending);
    if (!(offered || (newHint && pending))) return;
    Atomics.add(h, W.DOORBELL, 1);
    if (Atomics.load(h, W.GUEST_SLEEPING) === 0) return;
    if (this.holding) this.held = true;
    else Atomics.notify(h, W.DOORBELL);
  }

  /**
   * While the host drains a polled ring, the interrupts its reads raise ring the doorbell (a
   * guest polling it goes on writing at once) but a sleeping guest is woken only when the drain
   * is over (wakeHeld): woken mid-drain, it would take the core a host sharing it still needs,
   * for a ring that is then only partly free.
   */
  holdWakes(): void {
    this.holding = true;
  }

  /** Ends holdWakes(): a guest that slept through it and has something new is woken now. */
  wakeHeld(): void {
    this.holding = false;
    if (!this.held) return;
    this.held = false;
    const h = this.block.header;
    if (Atomics.load(h, W.GUEST_SLEEPING) !== 0) Atomics.notify(h, W.DOORBELL);
  }
  private holding = false;
  private held = false;

  /**
   * Whether accepting `v` is only IRR → ISR (or retirement), which may then wait until the host
   * settles it. An auto-EOI vector's acceptance also retries the SynIC messages queued behind it
   * (KVM kvm_hv_notify_acked_sint): the guest would look for them in the slot as soon as it
   * took it, so such a vector is accepted by a trap, as KVM leaves APICv off while auto-EOI is in
   * use (hyperv.c, APICV_INHIBIT_REASON_HYPERV).
   */
  private offerable(i: number, v: number): boolean {
    const { vp } = this.cpus[i]!;
    return !vp.apic.isAutoEoi?.(v) || !vp.synic.queuedFor(v);
  }

  /**
   * Makes CPU `i`'s offer word the host's again before its interrupt state changes: an untaken
   * offer is withdrawn, a taken one settled. publish() offers afresh after the change.
   */
  private retract(i: number): void {
    const h = this.block.header;
    for (;;) {
      const cur = Atomics.load(h, W.OFFER + i);
      if (cur === 0) return;
      if (cur & Offer.TAKEN) return this.settle(i, cur);
      if (Atomics.compareExchange(h, W.OFFER + i, cur, 0) === cur) return;
    }
  }

  /**
   * The acceptance of a vector CPU `i` took from its offer, as its ACCEPT trap would have made it
   * (with interrupts enabled, as the guest had them). Nothing changed the APIC since the offer
   * (retract() runs first), so the APIC gives that same vector. A word the host never offered
   * (the guest thread wrote the shared word itself) is refused: nothing is accepted, it is
   * counted in `forgedTakes`, and the host goes on (what the guest then does is its own affair).
   */
  private settle(i: number, word: number): void {
    const { port, vp } = this.cpus[i]!;
    // The word is the host's before the acceptance runs: an auto-EOI's message retry may raise.
    Atomics.store(this.block.header, W.OFFER + i, 0);
    if (vp.apic.deliverable() !== (word & Offer.VECTOR)) {
      this.forgedTakes++;
      return;
    }
    port.interruptsEnabled = true;
    port.acceptInterrupt();
    this.posted++;
  }

  private perform(i: number): Fault | undefined {
    const { port } = this.cpus[i]!;
    const { words, args: a } = this.block.slots[i]!;
    const op = words[S.OP]!;
    this.byOp[op & 15]!++;
    // A trap follows what the CPU did before it, a take included: that is settled first. A trap
    // that may change the interrupt state (an EOI, the TPR, a SINT, a message) withdraws the offer
    // too, so that publish() keeps only offers made since the last change; the others leave it.
    if (MAY_CHANGE_INTERRUPTS[op & 15] || Atomics.load(this.block.header, W.OFFER + i) & Offer.TAKEN) this.retract(i);
    switch (op) {
      case Op.ACCEPT: {
        port.interruptsEnabled = words[S.AUX] !== 0;
        const v = port.acceptInterrupt();
        if (v === undefined) this.idleAccepts++;
        words[S.AUX] = v ?? -1;
        return undefined;
      }
      case Op.EOI:
        if (port.arch === 'arm64') port.endOfInterrupt();
        return undefined;
      case Op.COUNTER_HZ:
        a[0] = BigInt(port.arch === 'arm64' ? port.counterHz : 0);
        return undefined;
      case Op.READ_COUNTER:
        a[0] = port.arch === 'arm64' ? port.readCounter() : port.rdtsc();
        return undefined;
      case Op.HVC: {
        if (port.arch !== 'arm64') return '#UD';
        const x = this.arm64[i]!;
        for (let k = 0; k < 18; k++) x[k] = a[k]!;
        x.length = 18;
        const fault = port.hvc(Number(a[SLOT_GPA]!), { x });
        for (let k = 0; k < 18; k++) a[k] = x[k]!;
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
        a[0] = r.value;
        return undefined;
      }
      case Op.WRMSR:
        return port.wrmsr(Number(a[0]!), a[1]!);
      case Op.RDTSC:
        a[0] = port.rdtsc();
        return undefined;
      case Op.APIC_WRITE:
        port.apicWrite(Number(a[0]!), Number(a[1]!));
        return undefined;
      case Op.CALL:
      case Op.VMCALL:
        return port.arch === 'x64' ? this.x64Call(port, i, op, a) : this.x86Call(port, i, op, a);
    }
    return '#UD';
  }

  private x64Call(port: X64Port, i: number, op: number, a: BigUint64Array): Fault | undefined {
    const regs = this.x64[i]!;
    regs.rcx = a[0]!;
    regs.rdx = a[1]!;
    regs.r8 = a[2]!;
    regs.rax = a[3]!;
    const xmm = regs.xmm;
    for (let k = 0; k < 12; k++) xmm[k] = a[4 + k]!;
    const fault = op === Op.CALL ? port.call(Number(a[SLOT_GPA]!), regs) : port.vmcall(regs);
    a[0] = regs.rcx;
    a[1] = regs.rdx;
    a[2] = regs.r8;
    a[3] = regs.rax;
    for (let k = 0; k < 12; k++) a[4 + k] = xmm[k]!;
    return fault;
  }

  private x86Call(port: X86_32Port, i: number, op: number, a: BigUint64Array): Fault | undefined {
    const regs = this.x86[i]!;
    for (let k = 0; k < X86_REGS.length; k++) regs[X86_REGS[k]!] = Number(a[k]!) >>> 0;
    const fault = op === Op.CALL ? port.call(Number(a[SLOT_GPA]!), regs) : port.vmcall(regs);
    for (let k = 0; k < X86_REGS.length; k++) a[k] = BigInt(regs[X86_REGS[k]!] >>> 0);
    return fault;
  }
}
