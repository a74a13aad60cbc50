// A machine whose guest is Linux 6.1's real VMBus code compiled to WebAssembly (issue 17), on
// hvkit's unchanged host: a one-VP x86-32 partition that adopts the module's shared memory as
// its RAM, and the same deterministic scheduler as Machine (machine.ts).
import { cpuPort } from '../hypervisor/cpu.js';
import type { X86_32Cpu } from '../hypervisor/cpu-interface.js';
import type { Partition } from '../hypervisor/partition.js';
import { LINUX_RAM_BYTES, LinuxGuest, USERSPACE_SHUTDOWN_NS } from '../guest/linux/guest.js';
import { sharedMemory, type WasmModule } from '../guest/linux/wasm.js';
import { KVP_DEVICE, linuxKvpDaemon } from '../guest/linux/kvp-daemon.js';
import type { KvpDaemon } from '../devices/kvp/daemon.js';
import type { GuestFiles } from '../devices/device.js';
import type { PartitionVmbus } from '../vmbus/server/partition-io.js';
import { Host, type HostConfig } from './host.js';

export type LinuxMachineConfig = Omit<HostConfig, 'arch' | 'vps' | 'memory' | 'ramBuffer'> & {
  /** The guest's file tree, where hv_kvp_daemon keeps its pools; in memory unless given. */
  readonly files?: GuestFiles;
};

export class LinuxMachine {
  readonly host: Host;
  readonly partition: Partition;
  readonly vmbus: PartitionVmbus | undefined;
  readonly guest: LinuxGuest;
  /** vmbus_bus_init()'s result once booted: 0, or a negative errno. */
  bootResult: number | undefined;
  /** hv_kvp_daemon, on Linux's /dev/vmbus/hv_kvp (boot starts it once hv_kvp registered the device). */
  readonly kvpDaemon: KvpDaemon;

  constructor(module: WasmModule, config: LinuxMachineConfig = {}) {
    const memory = sharedMemory(LINUX_RAM_BYTES);
    // wasm32: the guest is a 32-bit x86 Linux with one CPU (the shim's kernel is uniprocessor).
    const { files, ...hostConfig } = config;
    this.host = new Host({ ...hostConfig, arch: 'x86', vps: 1, memory: LINUX_RAM_BYTES, ramBuffer: memory.buffer });
    this.partition = this.host.partition;
    this.vmbus = this.host.vmbus;
    const cpu = cpuPort(this.partition.vps[0]!) as X86_32Cpu;
    this.guest = new LinuxGuest(module, {
      cpu,
      memory,
      now: () => this.nowNs,
      waitUntil: (done, ns) => this.waitUntil(done, ns),
      wakeAt: (ns) => void this.partition.clock.schedule(Math.max(ns, this.nowNs), () => {}),
    });
    this.kvpDaemon = linuxKvpDaemon(this.guest, files ? { files } : {});
  }

  /** The guest asked for power-off (orderly_poweroff, after a shutdown request). */
  get poweredOff(): boolean {
    return this.guest.events.items.includes('poweroff');
  }

  /** How the guest ended, if it has: user space stopped after orderly_poweroff or orderly_reboot. */
  get haltedBy(): 'poweroff' | 'reboot' | undefined {
    const r = this.guest.shutdownRequest;
    return r && this.nowNs >= r.atNs + USERSPACE_SHUTDOWN_NS ? r.kind : undefined;
  }

  /**
   * waitUntil in slices of about `sliceMs` of wall time, yielding to the event loop between them
   * (as Machine.waitUntilAsync), so a long script step leaves signals and streams served.
   */
  async waitUntilAsync(done: () => boolean, ns: number, opts: { signal?: AbortSignal; sliceMs?: number } = {}): Promise<boolean> {
    const sliceMs = opts.sliceMs ?? 20;
    const now = () => globalThis.performance.now();
    const end = this.nowNs + Math.max(0, ns);
    for (;;) {
      const sliceEnd = now() + sliceMs;
      if (this.waitUntil(() => done() || now() >= sliceEnd, end - this.nowNs) && done()) return true;
      if (this.nowNs >= end || opts.signal?.aborted) return done();
      await new Promise<void>((r) => setTimeout(r, 0));
    }
  }

  get nowNs(): number {
    return this.partition.clock.nowNs;
  }

  /**
   * Brings the guest up in Linux's initcall order: VMBus (vmbus_bus_init: connect, offers, one
   * device per offer), then, unless `utils` is false, the hv_utils module, whose probes open the
   * integration services' channels, and then (unless `kvpDaemon` is false) user space's
   * hv_kvp_daemon, as systemd starts it once /dev/vmbus/hv_kvp exists
   * (hv-kvp-daemon.service's ConditionPathExists). Returns the first nonzero errno, or 0.
   */
  boot(opts: { utils?: boolean; kvpDaemon?: boolean } = {}): number {
    for (const step of this.bootSteps(opts)) step();
    return this.bootResult!;
  }

  /**
   * boot() with `pause()` awaited between its steps (VMBus, hv_utils, the KVP daemon), so that a
   * page draws between them; each step runs synchronously, as Linux's waits run the machine
   * inside it. Stops before the next step once `signal` is aborted. Returns boot()'s result.
   */
  async bootAsync(opts: { utils?: boolean; kvpDaemon?: boolean; signal?: AbortSignal; pause?: () => Promise<void> } = {}): Promise<number | undefined> {
    const pause = opts.pause ?? (() => new Promise<void>((r) => setTimeout(r, 0)));
    for (const step of this.bootSteps(opts)) {
      if (opts.signal?.aborted) break;
      step();
      await pause();
    }
    return this.bootResult;
  }

  /** boot()'s steps, each ending once the work it started settled; a step after a failure does nothing. */
  private bootSteps(opts: { utils?: boolean; kvpDaemon?: boolean }): (() => void)[] {
    const ok = () => this.bootResult === 0;
    return [
      () => {
        this.bootResult = this.guest.start();
        this.waitUntil(() => false, 0);
      },
      () => {
        if (!ok() || opts.utils === false) return;
        this.bootResult = this.guest.loadUtils();
        this.waitUntil(() => false, 0);
      },
      () => {
        if (!ok() || opts.utils === false || opts.kvpDaemon === false || !this.guest.chardevs.registered.has(KVP_DEVICE)) return;
        this.kvpDaemon.start();
        this.waitUntil(() => false, 0);
      },
    ];
  }

  runFor(ns: number): void {
    this.waitUntil(() => false, ns);
  }

  /** Advances virtual time event by event for up to `ns`, stopping once `done()` holds; returns `done()`. */
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

  private deliverInterrupts(): void {
    for (let round = 0; round < 1000; round++) {
      const n = this.guest.takeInterrupts() + this.guest.runWork() + this.guest.runUserSpace();
      if (n === 0) return;
    }
  }
}
