// A machine whose guest runs in a worker thread (DESIGN.md principle 4): the partition, its
// devices and VMBus stay on this thread; the guest kernel runs in the worker over the same
// guest RAM. Traps cross in the control block; virtual time follows the wall clock. The host
// loop polls (the trap slots, and the rings of channels that are streaming) before it sleeps,
// as a host with a core to spare does.
import { Worker } from 'node:worker_threads';
import { cpuPort } from '../../hypervisor/cpu.js';
import type { Partition } from '../../hypervisor/partition.js';
import type { LogRecord } from '../../guest/klog.js';
import type { KernelState } from '../../guest/kernel.js';
import type { PartitionVmbus } from '../../vmbus/server/partition-io.js';
import { Host } from '../host.js';
import type { MachineConfig } from '../machine.js';
import type { GuestMessage, GuestThreadData } from './guest-thread.js';
import { BeatWatch, ControlBlock, controlBytes, Op, W } from './protocol.js';
import { TrapServer } from './trap-server.js';

export interface ThreadedConfig extends Omit<MachineConfig, 'files'> {
  /** Virtual nanoseconds per wall-clock nanosecond (1: real time). */
  speed?: number;
  /** The VM's state directory: the guest (in its worker) keeps its file tree there. */
  stateDir?: string;
}

export interface GuestReport<R> {
  log: LogRecord[];
  /** The guest's journal (its daemons' syslog lines). */
  journal: LogRecord[];
  result: R | undefined;
  error: string | undefined;
  state: KernelState;
  /** Wall-clock milliseconds the host loop ran, and the traps it served. */
  wallMs: number;
  traps: number;
  /** Of those, ACCEPT traps that found no interrupt (TrapServer.idleAccepts). */
  idleAccepts: number;
  /** Interrupts the guest took from the host's offer, with no ACCEPT trap (TrapServer.posted). */
  postedAccepts: number;
  /** Traps served by kind (protocol.ts Op names), those that were served at least once. */
  trapsByOp: Partial<Record<keyof typeof Op, number>>;
}

/** How a run is bounded and observed. */
export interface ThreadedRunOptions {
  /** Wall-clock milliseconds the host serves the guest at most (default 60 s). */
  maxMs?: number;
  /** Aborting stops the host loop; the guest thread then reports what it has. */
  signal?: AbortSignal;
  /** Each kernel log line, as the guest prints it. */
  onLog?: (r: LogRecord) => void;
  /** Each journal line (the daemons' syslog), as it is written. */
  onJournal?: (r: LogRecord) => void;
}

/** A guest whose beat has not moved for this long is not running: polling for it is in its way. */
const GUEST_SILENT_MS = 0.05;
/** After the loop looked away (a long round, or off its core), the guest's time to show its beat moves. */
const GUEST_PROBE_MS = 0.02;
/** Traps answered back to back before the host loop moves time and publishes interrupts. */
const TRAP_BURST = 16;
/** Wall time the host loop polls with nothing to do before it sleeps. */
const HOST_POLL_MS = 0.5;
/** Wall time a channel's ring is polled after it last had packets (NAPI's budget, roughly). */
const RING_POLL_NS = 1_000_000;
/** Wall time the host loop keeps the thread before it lets the event loop run. */
const SLICE_MS = 20;
/**
 * Host loops serving at once in this thread (several machines with their guests in workers and
 * their hosts here, as in a lab). While there are several, each hands the thread over after
 * SHARED_SLICE_MS, and waits in the event loop rather than napping in Atomics.wait: a nap blocks
 * the thread, and so the other machines, whose guests then trap and signal a host that cannot run.
 */
let serving = 0;
const SHARED_SLICE_MS = 0.2;

export class ThreadedMachine {
  readonly host: Host;
  readonly partition: Partition;
  readonly vmbus: PartitionVmbus | undefined;
  private readonly block: ControlBlock;
  private readonly traps: TrapServer;
  private readonly speed: number;
  /** APIC ids in the firmware's CPU order (Linux CPU n is the n-th). */
  private readonly apicIds: number[];

  constructor(private readonly config: ThreadedConfig = {}) {
    const { kernel: _kernel, speed, stateDir: _stateDir, ...host } = config;
    this.speed = speed ?? 1;
    // The server polls streaming rings here: a host thread of its own can afford it.
    // Each batch read from a polled ring beats the host's counter: a guest waiting for room in
    // that ring sees the host at work through a long drain, and polls on rather than sleeping.
    const beat = () => void Atomics.add(this.block.header, W.HOST_BEAT, 1);
    const vmbus = host.vmbus === false ? false : { ...(typeof host.vmbus === 'object' ? host.vmbus : {}), pollNs: RING_POLL_NS * this.speed, onPolledBatch: beat };
    this.host = new Host({ ...host, vmbus });
    this.partition = this.host.partition;
    this.vmbus = this.host.vmbus;
    // Firmware lists CPUs by APIC id, as the in-thread machine does.
    const vps = [...this.partition.vps].sort((a, b) => a.apicId - b.apicId);
    this.apicIds = vps.map((vp) => vp.apicId);
    this.block = new ControlBlock(new SharedArrayBuffer(controlBytes(vps.length)), vps.length);
    this.traps = new TrapServer(
      this.block,
      vps.map((vp) => ({ vp, port: cpuPort(vp) })),
    );
  }

  /**
   * Boots the guest in a worker, runs `workload` (the URL of a JavaScript module whose default
   * export receives the kernel and `args`; see workloads/) there, and serves it until it
   * finishes, `maxMs` of wall time pass or `signal` aborts.
   */
  async run<R>(workload: URL, args: unknown, options: number | ThreadedRunOptions = {}): Promise<GuestReport<R>> {
    const opts: ThreadedRunOptions = typeof options === 'number' ? { maxMs: options } : options;
    // Node cannot load TypeScript in a worker: run from source (the tests), the worker runs the
    // built guest thread, so `npm run build` must have run.
    const script = import.meta.url.endsWith('.ts') ? new URL('../../../dist/vm/threaded/guest-thread.js', import.meta.url) : new URL('./guest-thread.js', import.meta.url);
    const data: GuestThreadData = {
      control: this.block.buffer,
      memory: this.partition.memory.buffer,
      memorySize: this.partition.memory.size,
      memoryPresent: this.partition.memory.presentCell,
      pageSize: this.partition.memory.pageSize,
      arch: this.partition.arch,
      cpus: this.block.slots.length,
      // Modules are code: the worker builds the built-in set itself unless told there are none.
      kernel: { ...this.config.kernel, modules: undefined },
      builtinModules: this.config.kernel?.modules === undefined,
      ...(this.config.stateDir === undefined ? {} : { stateDir: this.config.stateDir }),
      rtcNs: this.host.wallClockNs(),
      apicIds: this.apicIds,
      workload: workload.href,
      args,
      speed: this.speed,
    };
    const worker = new Worker(script, { workerData: data });
    // A guest thread that dies stops the host loop at its next slice.
    const gone = { now: false };
    const report = new Promise<Omit<GuestReport<R>, 'wallMs' | 'traps' | 'idleAccepts' | 'trapsByOp' | 'postedAccepts'>>((resolve, reject) => {
      worker.on('message', (m: GuestMessage) => {
        if (m.type === 'report') resolve(m.report as Omit<GuestReport<R>, 'wallMs' | 'traps' | 'idleAccepts' | 'trapsByOp' | 'postedAccepts'>);
        else if (m.type === 'log') opts.onLog?.(m.record);
        else opts.onJournal?.(m.record);
      });
      worker.once('error', (e) => {
        gone.now = true;
        reject(e);
      });
      worker.once('exit', () => (gone.now = true));
    });
    report.catch(() => undefined); // observed below, after the loop
    const started = performance.now();
    try {
      await this.serve(started + (opts.maxMs ?? 60_000), gone, opts.signal);
      // A guest still running learns that the host stopped at its next trap or wait, and reports.
      this.stopServing();
      // The timer is cleared either way: a pending one would keep the process alive for 5 s.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the guest thread did not report')), 5000)));
      try {
        const r = await Promise.race([report, late]);
        return { ...r, wallMs: performance.now() - started, traps: this.traps.served, idleAccepts: this.traps.idleAccepts, trapsByOp: this.trapsByOp(), postedAccepts: this.traps.posted };
      } finally {
        clearTimeout(timer);
      }
    } finally {
      this.stopServing();
      await worker.terminate();
      this.host.dispose();
    }
  }

  private trapsByOp(): GuestReport<unknown>['trapsByOp'] {
    const out: GuestReport<unknown>['trapsByOp'] = {};
    for (const [name, op] of Object.entries(Op) as [keyof typeof Op, number][]) if (this.traps.byOp[op]) out[name] = this.traps.byOp[op];
    return out;
  }

  private stopServing(): void {
    Atomics.store(this.block.header, W.HOST_STOPPED, 1);
    // The published counter is withdrawn for good: a guest reading it traps, and learns the host stopped.
    Atomics.or(this.block.header, W.COUNTER_SEQ, 1);
    for (const s of this.block.slots) Atomics.notify(s.words, 0);
    Atomics.add(this.block.header, W.DOORBELL, 1);
    Atomics.notify(this.block.header, W.DOORBELL);
  }

  /**
   * The host loop, in slices that let this thread's event loop run in between: it answers traps,
   * moves virtual time (running due events), polls streaming rings and publishes interrupts.
   * With nothing to do it polls the trap slots a while, then sleeps until a trap arrives or the
   * next timer is due (at most 1 ms): waking a sleeping thread costs tens of microseconds.
   */
  private async serve(deadline: number, gone: { now: boolean }, signal: AbortSignal | undefined): Promise<void> {
    const h = this.block.header;
    const clock = this.partition.clock;
    const traps = this.traps;
    const server = this.vmbus?.server;
    const wallStart = performance.now();
    const virtualStart = clock.nowNs;
    let busyAt = wallStart;
    // Whether the guest is on its core, from its beat.
    const guest = new BeatWatch(GUEST_SILENT_MS, GUEST_PROBE_MS, Atomics.load(h, W.GUEST_BEAT), wallStart);
    serving++;
    try {
      while (!Atomics.load(h, W.GUEST_DONE) && !gone.now && !signal?.aborted && performance.now() < deadline) {
        const slice = performance.now() + (serving > 1 ? SHARED_SLICE_MS : SLICE_MS);
        let idle = false;
        for (;;) {
          // Every round: a guest waiting on this loop polls only while it sees the beat move.
          Atomics.add(h, W.HOST_BEAT, 1);
          // A guest trapping back to back is answered first: the next request usually follows
          // within a fraction of a microsecond. The rest of the loop runs every TRAP_BURST traps.
          let busy = 0;
          for (let spin = 0; spin < 100 && busy < TRAP_BURST; spin++) {
            const n = traps.serveAll();
            if (n === 0 && busy === 0) break;
            if (n !== 0) spin = 0;
            busy += n;
          }
          const now = performance.now();
          if (Atomics.load(h, W.GUEST_DONE) || now >= slice) break;
          // The counter the guest reads without a trap is withdrawn while time moves (due events
          // run, interrupts come), then published as a trap would read it once it has moved.
          traps.timeMoving();
          clock.advanceTo(virtualStart + (now - wallStart) * 1e6 * this.speed);
          traps.timeMoved();
          if (server?.polling) {
            traps.holdWakes();
            try {
              busy += server.poll(clock.nowNs);
            } finally {
              traps.wakeHeld();
            }
          }
          traps.publishInterrupts();
          if (busy) {
            // A trap answered or a packet read: the guest has been running.
            busyAt = now;
            guest.seen(now);
            continue;
          }
          // Poll a while after the last trap or packet, and on while a ring is polled, but then
          // only while the guest runs: a guest that sleeps traps and writes nothing until it is
          // woken, and one that is not running may need this core to run at all.
          const next = clock.nextEventNs();
          const dueMs = next === undefined ? 1 : (next - clock.nowNs) / 1e6 / this.speed;
          const guestAwake = Atomics.load(h, W.GUEST_SLEEPING) === 0;
          const guestRuns = guest.runs(Atomics.load(h, W.GUEST_BEAT), now) && guestAwake;
          // A guest awake and busy lately is polled for even when it is not seen running: napping
          // and waking in turn with it lets the system put both threads on one core (protocol.ts).
          if (dueMs <= 0.05 || (guestAwake && now - busyAt < HOST_POLL_MS) || (guestRuns && server?.polling)) {
            for (let spin = 0; spin < 100 && !traps.pending(); spin++);
            continue;
          }
          if (serving > 1) {
            idle = true;
            break;
          }
          // Nap: a ring being polled is looked at again soon, a trap wakes the host at once.
          const seen = Atomics.load(h, W.HOST_WAKE);
          Atomics.store(h, W.HOST_SLEEPING, 1);
          if (!traps.pending()) Atomics.wait(h, W.HOST_WAKE, seen, Math.min(dueMs, server?.polling || guestAwake ? 0.05 : 1));
          Atomics.store(h, W.HOST_SLEEPING, 0);
          busyAt = performance.now();
          guest.woke(Atomics.load(h, W.GUEST_BEAT), busyAt);
        }
        // An idle loop sharing the thread comes back on a timer (about a millisecond, the longest nap).
        await new Promise<void>((r) => (idle ? setTimeout(r, 0) : setImmediate(r)));
      }
    } finally {
      serving--;
    }
  }
}
