// A lab: several VMs in one process, their NICs on shared virtual switches, run in lockstep on
// virtual time. Each machine keeps its own clock; the lab moves them all forward a quantum at a
// time, so that a frame one VM sends reaches the other within a quantum of virtual time, and a
// run is as deterministic as one machine's.
import { VirtualSwitch } from '../devices/network/switch.js';
import { Machine, type MachineConfig } from './machine.js';

export interface LabVm {
  readonly name: string;
  readonly machine: Machine;
}

/** Virtual time the lab lets each machine run before it moves to the next (100 µs). */
export const LAB_QUANTUM_NS = 100_000;

export class Lab {
  readonly switches = new Map<string, VirtualSwitch>();
  readonly vms: LabVm[] = [];
  private ns = 0;
  /** Called for each switch as it is created (a capture taps it). */
  onSwitch: ((sw: VirtualSwitch) => void) | undefined;

  constructor(readonly quantumNs = LAB_QUANTUM_NS) {}

  /** Virtual time of the lab (every machine has reached it). */
  get nowNs(): number {
    return this.ns;
  }

  /** The switch named `name`, created on first use. */
  switch(name: string): VirtualSwitch {
    let s = this.switches.get(name);
    if (!s) {
      s = new VirtualSwitch(name, { now: () => this.ns });
      this.switches.set(name, s);
      this.onSwitch?.(s);
    }
    return s;
  }

  /** Adds a VM; its NICs name their switches through `nic.backend` (see `switch`). */
  add(name: string, config: MachineConfig): Machine {
    if (this.vms.some((v) => v.name === name)) throw new Error(`lab: a VM is already named ${name}`);
    const machine = new Machine(config);
    this.vms.push({ name, machine });
    return machine;
  }

  vm(name: string): Machine | undefined {
    return this.vms.find((v) => v.name === name)?.machine;
  }

  /** Boots every VM in turn; lab time starts where the last boot left its clock. */
  boot(): void {
    for (const v of this.vms) v.machine.boot();
    this.ns = Math.max(this.ns, ...this.vms.map((v) => v.machine.nowNs));
  }

  /** Moves every machine to `ns` from now, quantum by quantum, checking `done` after each; returns done(). */
  waitUntil(done: () => boolean, ns: number): boolean {
    const end = this.ns + Math.max(0, ns);
    while (this.ns < end) {
      if (done()) return true;
      this.step(Math.min(end, this.ns + this.quantumNs));
    }
    return done();
  }

  runFor(ns: number): void {
    this.waitUntil(() => false, ns);
  }

  /** waitUntil in slices of wall time, yielding to the event loop between them (sockets, Ctrl-C). */
  async waitUntilAsync(done: () => boolean, ns: number, opts: { signal?: AbortSignal; sliceMs?: number } = {}): Promise<boolean> {
    const end = this.ns + Math.max(0, ns);
    const sliceMs = opts.sliceMs ?? 20;
    for (;;) {
      const until = globalThis.performance.now() + sliceMs;
      while (this.ns < end && globalThis.performance.now() < until) {
        if (done()) return true;
        this.step(Math.min(end, this.ns + this.quantumNs));
      }
      if (done()) return true;
      if (this.ns >= end || opts.signal?.aborted) return done();
      await new Promise<void>((r) => setTimeout(r, 0));
    }
  }

  private step(to: number): void {
    for (const v of this.vms) {
      const m = v.machine;
      if (to > m.nowNs) m.runFor(to - m.nowNs);
    }
    this.ns = to;
  }
}
