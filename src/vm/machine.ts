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
import { GuestInput } from '../guest/input/index.js';
import { Host, type HostConfig } from './host.js';

export interface MachineConfig extends HostConfig {
  kernel?: Partial<KernelOptions>;
  /** The guest's file tree (its disk): KVP pools, copied files. In memory unless given. */
  files?: GuestFiles;
  /** Virtual time no faster than the wall clock, from the first instruction of the boot on. */
  pace?: PaceOptions;
}

export interface PaceOptions {
  /** Virtual nanoseconds per wall-clock nanosecond (default 1). */
  speed?: number;
  /** The wall clock in ms (default performance.now). */
  now?: () => number;
  /** Blocks for `ms` (default Atomics.wait, which a browser's main thread does not allow). */
  sleep?: (ms: number) => void;
}

/** Holds virtual time back until the wall clock catches up with it. */
class Pacer {
  private readonly speed: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => void;
  private origin: { wallMs: number; ns: number } | undefined;

  constructor(opts: PaceOptions) {
    this.speed = opts.speed ?? 1;
    if (!(this.speed > 0)) throw new RangeError(`pace speed ${this.speed} is not positive`);
    this.now = opts.now ?? (() => globalThis.performance.now());
    const word = new Int32Array(new SharedArrayBuffer(4));
    this.sleep = opts.sleep ?? ((ms) => void Atomics.wait(word, 0, 0, ms));
  }

  /** Returns once virtual time may move to `ns`; the first call starts the clock. */
  hold(fromNs: number, toNs: number): void {
    this.origin ??= { wallMs: this.now(), ns: fromNs };
    const dueMs = this.origin.wallMs + (toNs - this.origin.ns) / 1e6 / this.speed;
    for (let left = dueMs - this.now(); left > 0; left = dueMs - this.now()) this.sleep(left);
  }
}

/** bootAsync keeps this much of the RAM the guest allocates from next faulted in ahead of its steps. */
const BOOT_WARM_AHEAD = 32 << 20;
/** The RAM bootAsync faults in at a time. */
const BOOT_WARM_CHUNK = 1 << 20;

/** How a run ended: the guest powered off or asked for a restart. */
export interface MachineExit {
  readonly kind: 'poweroff' | 'reboot';
  readonly ns: number;
}

/**
 * A VM: a partition, the host's VMBus and devices, and the guest kernel (modelled on Linux 6.1),
 * on a deterministic virtual clock. `boot()` runs the guest until it has booted; `runFor(ns)` lets
 * virtual time pass.
 *
 * @example
 * ```ts
 * import { Machine } from 'hvkit';
 *
 * const m = new Machine({ release: 'ws2022', vps: 2 });
 * m.boot();
 * const vmbus = m.kernel.vmbus!.snapshot();
 * console.log(vmbus.state, vmbus.version); // → connected 5.3
 * console.log(vmbus.devices.length); // → 11
 * ```
 */
export class Machine {
  readonly host: Host;
  readonly partition: Partition;
  readonly kernel: Kernel;
  /** The host's VMBus, when the machine has one. */
  readonly vmbus: PartitionVmbus | undefined;
  exit: MachineExit | undefined;

  private readonly pacer: Pacer | undefined;

  constructor(config: MachineConfig = {}) {
    const { kernel, files, pace, ...host } = config;
    this.pacer = pace ? new Pacer(pace) : undefined;
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
      { modules: builtinModules(this.partition.memory.pageSize, { input: new GuestInput(), ...(kernel?.network ? { network: kernel.network } : {}), ...(kernel?.balloon ? { balloon: kernel.balloon } : {}) }), ...kernel },
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

  /**
   * boot() in slices of about `sliceMs` of wall time, yielding to the event loop between them so
   * that a page keeps drawing while the guest boots. The kernel's boot steps (Kernel.bootSteps)
   * run in the same order with nothing of the machine's in between, so the boot is boot()'s,
   * event for event. Stops between two steps, the boot unfinished, once `signal` is aborted.
   * `pause` is how a slice lets the event loop run (default: a zero timeout, setImmediate in Node);
   * a page may wait for its next animation frame instead.
   */
  async bootAsync(opts: { signal?: AbortSignal; sliceMs?: number; pause?: () => Promise<void> } = {}): Promise<void> {
    const sliceMs = opts.sliceMs ?? 20;
    const now = () => globalThis.performance.now();
    const steps = this.kernel.bootSteps();
    const memory = this.partition.memory;
    let warmed = 0;
    let sliceEnd = now() + sliceMs;
    for (;;) {
      // A driver's probe zeroes its buffers in one step (netvsc's are 31 MiB), and zeroing fresh
      // RAM is mostly page faults: the RAM its allocations take next is faulted in beforehand,
      // a chunk at a time between the steps, which changes no byte of it.
      const free = this.kernel.mm.unallocated;
      const ahead = Math.min(free.start + BOOT_WARM_AHEAD, free.end);
      warmed = Math.max(warmed, free.start);
      if (warmed < ahead) {
        const length = Math.min(BOOT_WARM_CHUNK, ahead - warmed);
        memory.prefault(warmed, length);
        warmed += length;
      } else if (steps.next().done) return;
      if (now() < sliceEnd) continue;
      await (opts.pause ?? yieldToEventLoop)();
      if (opts.signal?.aborted) return;
      sliceEnd = now() + sliceMs;
    }
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
      this.pacer?.hold(clock.nowNs, next);
      clock.advanceTo(next);
    }
    this.pacer?.hold(clock.nowNs, end);
    clock.advanceTo(end);
    this.deliverInterrupts();
    return done();
  }

  /**
   * waitUntil in slices of about `sliceMs` of wall time, yielding to the event loop between
   * them so that signals, streams and timers are served during a long run. Stops early, without
   * `done()`, once `signal` is aborted.
   */
  async waitUntilAsync(done: () => boolean, ns: number, opts: { signal?: AbortSignal; sliceMs?: number } = {}): Promise<boolean> {
    const sliceMs = opts.sliceMs ?? 20;
    const now = () => globalThis.performance.now();
    const end = this.nowNs + Math.max(0, ns);
    for (;;) {
      const sliceEnd = now() + sliceMs;
      // A paced machine sleeps between events: one slice never holds more than its share.
      const step = this.pacer ? Math.min(end - this.nowNs, sliceMs * 1e6) : end - this.nowNs;
      if (this.waitUntil(() => done() || now() >= sliceEnd, step) && done()) return true;
      if (this.nowNs >= end || opts.signal?.aborted) return done();
      await yieldToEventLoop();
    }
  }

  /** runFor in slices (waitUntilAsync). */
  async runForAsync(ns: number, opts: { signal?: AbortSignal; sliceMs?: number } = {}): Promise<void> {
    await this.waitUntilAsync(() => false, ns, opts);
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

/** Lets the event loop run: setImmediate where there is one (Node), else a zero timeout. */
function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => void };
  return new Promise<void>((r) => (g.setImmediate ? g.setImmediate(r) : setTimeout(r, 0)));
}
