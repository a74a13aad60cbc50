// The guest thread's work, whatever thread API carries it (Node's worker_threads in
// guest-thread.ts, a browser's Web Worker in web/): the kernel over remote CPUs and the shared
// guest RAM. It boots, runs the workload, and reports the log and the workload's result.
// Waiting means sleeping on the doorbell the host rings when a CPU has an interrupt (Atomics.wait,
// which every worker may do). Platform-neutral.
import { Kernel, type KernelOptions, type KernelState } from '../../guest/kernel.js';
import type { LogRecord } from '../../guest/klog.js';
import type { Arch } from '../../hypervisor/cpu-interface.js';
import { GuestMemory } from '../../memory/guest-memory.js';
import type { GuestPageSize } from '../../memory/pages.js';
import { builtinModules } from '../../devices/registry.js';
import { GuestInput } from '../../guest/input/index.js';
import type { GuestFiles } from '../../devices/device.js';
import type { Workload } from './guest-context.js';
import { BeatWatch, ControlBlock, W } from './protocol.js';
import { HostGoneError, remoteCpu } from './remote-cpu.js';

export interface GuestThreadData {
  control: SharedArrayBuffer;
  memory: SharedArrayBuffer;
  /** RAM present at boot, and the cell hot add moves (GuestMemory.presentCell). */
  memorySize: number;
  memoryPresent: SharedArrayBuffer;
  pageSize: GuestPageSize;
  arch: Arch;
  cpus: number;
  kernel: Partial<KernelOptions>;
  /** Load the built-in VMBus driver modules (they cannot be sent as data). */
  builtinModules: boolean;
  /** The VM's state directory, holding the guest's file tree; in memory when absent (Node only). */
  stateDir?: string;
  /** The host's wall clock when the guest starts (what its RTC reads), and the CPUs' APIC ids. */
  rtcNs: bigint;
  apicIds: number[];
  /** The workload module's URL (guest-thread.ts imports it); a browser worker passes its own. */
  workload: string;
  args: unknown;
  /** Virtual nanoseconds per wall-clock nanosecond. */
  speed: number;
}

/** What the guest thread posts: each log and journal line as it is printed, then its report. */
export type GuestMessage =
  | { type: 'log' | 'journal'; record: LogRecord }
  | { type: 'report'; report: { log: LogRecord[]; journal: LogRecord[]; result: unknown; error: string | undefined; state: KernelState } };

/** Wall time the guest polls for an interrupt before it sleeps. */
const GUEST_POLL_MS = 0.5;
/** A host loop whose beat has not moved for this long is not running: polling for it is in its way. */
const HOST_SILENT_MS = 0.05;
/** After the guest looked away (its own work, or off its core), the host's time to show its beat moves. */
const HOST_PROBE_MS = 0.02;

/** What carries the guest thread's work: where its messages go, its files, and its workload. */
export interface GuestTransport {
  post(m: GuestMessage): void;
  /** The guest's file tree; in memory when absent. */
  files?: GuestFiles;
  workload(): Promise<Workload>;
}

/** Boots the kernel, runs the workload and reports; the host learns the end from GUEST_DONE. */
export async function runGuestThread(d: GuestThreadData, t: GuestTransport): Promise<void> {
  const block = new ControlBlock(d.control, d.cpus);
  const h = block.header;
  const memory = new GuestMemory({ size: d.memorySize, capacity: d.memory.byteLength, pageSize: d.pageSize, buffer: d.memory, presentCell: d.memoryPresent });
  const cpus = Array.from({ length: d.cpus }, (_, i) => remoteCpu(d.arch, block, i));
  // Waiting polls the doorbell a while before it sleeps on it (protocol.ts says who notifies).
  const waitUntil = (done: () => boolean, ns: number): boolean => {
    const end = performance.now() + ns / 1e6 / d.speed;
    let busyAt = performance.now();
    // Polling waits for the host, so only while it runs (its beat moves).
    const host = new BeatWatch(HOST_SILENT_MS, HOST_PROBE_MS, Atomics.load(h, W.HOST_BEAT), busyAt);
    for (;;) {
      Atomics.add(h, W.GUEST_BEAT, 1);
      const bell = Atomics.load(h, W.DOORBELL);
      // One interrupt per CPU between looks at done(): a streaming device interrupts without end.
      for (let i = 0; i < kernel.cpus.length; i++) kernel.takeInterrupts(i, 1);
      kernel.runWork();
      if (done()) return true;
      const now = performance.now();
      const left = end - now;
      if (left <= 0) return done();
      if (Atomics.load(h, W.HOST_STOPPED)) throw new HostGoneError('the host loop stopped');
      if (kernel.cpus.some((c) => c.online && c.ops.cpu.interruptsEnabled && c.ops.cpu.interruptPending())) {
        busyAt = now;
        continue;
      }
      if (host.runs(Atomics.load(h, W.HOST_BEAT), now) && now - busyAt < GUEST_POLL_MS) {
        for (let spin = 0; spin < 200 && Atomics.load(h, W.DOORBELL) === bell; spin++);
        continue;
      }
      Atomics.store(h, W.GUEST_SLEEPING, 1);
      Atomics.wait(h, W.DOORBELL, bell, Math.min(left, 20));
      Atomics.store(h, W.GUEST_SLEEPING, 0);
      busyAt = performance.now();
      host.woke(Atomics.load(h, W.HOST_BEAT), busyAt);
    }
  };
  const options: Partial<KernelOptions> = { ...d.kernel, modules: d.builtinModules ? builtinModules(d.pageSize, { input: new GuestInput(), ...(d.kernel.network ? { network: d.kernel.network } : {}), ...(d.kernel.balloon ? { balloon: d.kernel.balloon } : {}) }) : [] };
  const files = t.files ? { files: t.files } : {};
  const platform = { memory, cpus, apicIds: d.apicIds, rtcNs: () => d.rtcNs, elapse: (ns: number) => void waitUntil(() => false, ns), waitUntil, fadtHypervisorId: 'MsHyperV', ...files };
  const kernel: Kernel = new Kernel(platform, options);
  // Log lines go out as they are printed, so the host shows them live (and has them if it stops us).
  kernel.log.onRecord((record) => t.post({ type: 'log', record }));
  kernel.journal.onRecord((record) => t.post({ type: 'journal', record }));
  let result: unknown;
  let error: string | undefined;
  try {
    kernel.boot();
    const workload = await t.workload();
    result = await workload({ kernel, args: d.args, waitUntil });
  } catch (e) {
    error = e instanceof Error ? (e.stack ?? e.message) : String(e);
  }
  t.post({ type: 'report', report: { log: kernel.log.records, journal: kernel.journal.records, result, error, state: kernel.state() } });
  Atomics.store(h, W.GUEST_DONE, error ? 2 : 1);
  Atomics.add(h, W.HOST_WAKE, 1);
  Atomics.notify(h, W.HOST_WAKE);
}

