// A whole machine: a partition, the guest kernel, and the deterministic scheduler that moves
// virtual time and hands each CPU its interrupts (DESIGN.md, execution model). Host and guest
// meet only through the partition's CPU ports and guest memory.
import { cpuPort } from '../hypervisor/cpu.js';
import type { Partition } from '../hypervisor/partition.js';
import { Kernel, type KernelOptions } from '../guest/kernel.js';
import type { GuestCpu } from '../hypervisor/cpu-interface.js';
import type { PartitionVmbus } from '../vmbus/server/partition-io.js';
import type { GuestFiles, HostDevice } from '../devices/device.js';
import { builtinModules } from '../devices/registry.js';
import { Host, type HostConfig } from './host.js';

export interface MachineConfig extends HostConfig {
  kernel?: Partial<KernelOptions>;
  /** The guest's file tree (its disk): KVP pools, copied files. In memory unless given. */
  files?: GuestFiles;
}

/** How a run ended: the guest powered off or asked for a restart. */
export interface MachineExit {
  readonly kind: 'poweroff' | 'reboot';
  readonly ns: number;
}

export class Machine {
  readonly host: Host;
  readonly partition: Partition;
  readonly kernel: Kernel;
  /** The host's VMBus, when the machine has one. */
  readonly vmbus: PartitionVmbus | undefined;
  exit: MachineExit | undefined;

  constructor(config: MachineConfig = {}) {
    const { kernel, files, ...host } = config;
    this.host = new Host(host);
    this.partition = this.host.partition;
    this.vmbus = this.host.vmbus;
    // Firmware lists CPUs by APIC id (the ACPI MADT): Linux numbers them in that order.
    const vps = [...this.partition.vps].sort((a, b) => a.apicId - b.apicId);
    const cpus = vps.map((vp) => cpuPort(vp) as GuestCpu);
    this.kernel = new Kernel(
      {
        memory: this.partition.memory,
        cpus,
        apicIds: vps.map((vp) => vp.apicId),
        elapse: (ns) => this.runFor(ns),
        waitUntil: (done, ns) => this.waitUntil(done, ns),
        fadtHypervisorId: 'MsHyperV',
        ...(files ? { files } : {}),
        wakeAfter: (ns) => void this.partition.clock.schedule(this.nowNs + ns, () => {}),
        // The RTC the guest reads at boot is the host's clock then.
        rtcNs: () => this.host.wallClockNs(),
        powerOff: (kind) => {
          this.exit ??= { kind, ns: this.nowNs };
          this.host.dispose();
        },
      },
      { modules: builtinModules(this.partition.memory.pageSize), ...kernel },
    );
  }

  /** The host back ends of the machine's devices, in offer order. */
  get devices(): readonly HostDevice[] {
    return this.host.devices;
  }

  get nowNs(): number {
    return this.partition.clock.nowNs;
  }

  boot(): void {
    this.kernel.boot();
  }

  /** Advances virtual time by `ns`, event by event, letting every CPU take its interrupts. */
  runFor(ns: number): void {
    this.waitUntil(() => false, ns);
  }

  /**
   * Advances virtual time event by event for up to `ns`, stopping as soon as `done()` holds
   * after the CPUs took their interrupts and the kernel ran its work. Returns `done()`.
   */
  waitUntil(done: () => boolean, ns: number): boolean {
    const clock = this.partition.clock;
    const end = clock.nowNs + Math.max(0, ns);
    for (;;) {
      this.deliverInterrupts();
      if (done()) return true;
      const next = clock.nextEventNs();
      if (next === undefined || next > end) break;
      clock.advanceTo(next);
    }
    clock.advanceTo(end);
    this.deliverInterrupts();
    return done();
  }

  /**
   * Runs for `ns` of virtual time no faster than wall-clock time (times `speed`), for
   * interactive runs. `now` reads a wall clock in ms; `sleep` waits.
   */
  async runPaced(ns: number, opts: { speed?: number; now?: () => number; sleep?: (ms: number) => Promise<void> } = {}): Promise<void> {
    const speed = opts.speed ?? 1;
    const now = opts.now ?? (() => globalThis.performance.now());
    const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    const startWall = now();
    const start = this.nowNs;
    const end = start + ns;
    while (this.nowNs < end) {
      const target = Math.min(end, start + Math.floor((now() - startWall) * 1e6 * speed));
      if (target > this.nowNs) this.runFor(target - this.nowNs);
      if (this.nowNs < end) await sleep(1);
    }
  }

  /** Every CPU takes its interrupts, then the kernel runs its queued work, until all is quiet. */
  private deliverInterrupts(): void {
    for (let round = 0; round < 1000; round++) {
      let n = 0;
      for (let i = 0; i < this.kernel.cpus.length; i++) n += this.kernel.takeInterrupts(i);
      n += this.kernel.runWork();
      if (n === 0) return;
    }
  }
}
