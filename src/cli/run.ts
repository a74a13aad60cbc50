// `hvkit run`: boot a VM with its devices, print the guest's kernel log as it is printed, run a
// script against it, and stop once the guest reaches the requested point. `hvkit lsvmbus`: boot
// the same way, then list the VMBus devices. Everything a run can refuse is refused before boot.
import { readFileSync, writeFileSync } from 'node:fs';
import { openDisk } from '../vm/disk-file.js';
import { Option, type Command } from 'commander';
import type { KernelState } from '../guest/kernel.js';
import { formatRecord, LOG_LEVELS, type LogRecord } from '../guest/klog.js';
import { attachTrace } from '../trace/attach.js';
import { openTraceFile, type TraceFile } from '../trace/writer.js';
import type { VmbusSnapshot } from '../vmbus/client/snapshot.js';
import type { VmConfig } from '../vm/config.js';
import { DirectoryFiles } from '../vm/dirfs.js';
import { Machine } from '../vm/machine.js';
import { hostNics, netInterfaces, netState, pairNetState } from '../vm/network.js';
import { inputState } from '../vm/input.js';
import { runScript, SCRIPT_STEPS, STEP_LIMIT_S, type Step, type StepResult } from '../vm/script.js';
import { ThreadedMachine } from '../vm/threaded/machine.js';
import { MAX_CPUS } from '../vm/threaded/protocol.js';
import type { RunArgs, RunResult } from '../vm/threaded/workloads/run.js';
import { EXIT, EXIT_CODES_HELP, RunFailure, UsageError } from './errors.js';
import { formatLsvmbus, vmbusSysfsExists } from './lsvmbus.js';
import type { Io, Status } from './main.js';
import { outputDirectory, outputFile, sysfsDirectory } from './outputs.js';
import { encodePng, SCREEN_SETTLE_NS, videoHost } from '../vm/screenshot.js';
import type { HostDevice } from '../devices/device.js';
import { parseUntil } from './parse.js';
import { readScript } from './script-file.js';
import { Progress } from './progress.js';
import { writeSysfs } from './sysfs.js';
import { storageSnapshot } from '../vm/storage.js';
import { addVmOptions, machineConfig, vmFromOptions, type VmOptions } from './vm-options.js';
import { openRunNics } from './nics.js';
import { lsvmbusLinux, runLinux } from './run-linux.js';

interface RunOptions extends VmOptions {
  guest: 'model' | 'linux';
  vmbus: boolean;
  until: 'booted' | 'shutdown' | number;
  json: boolean;
  verbose: boolean;
  pace: boolean;
  threads: boolean;
  keepGoing: boolean;
  sysfs?: string;
  trace?: string;
  screenshot?: string;
  script?: string;
  state?: string;
}

/** How long `--until shutdown` waits for the guest to power off, virtual seconds. */
const SHUTDOWN_LIMIT_S = 120;
/** The longest a --threads run may take on the wall clock, beyond its virtual time. */
const THREADED_SLACK_MS = 60_000;
/** Journal lines at this level and worse are shown without --verbose: they say why a daemon failed. */
const JOURNAL_ALWAYS = LOG_LEVELS.indexOf('warn');

/** Adds `run` and `lsvmbus`; `status.code` receives the exit status. */
export function registerRun(program: Command, io: Io, status: Status): void {
  addVmOptions(program.command('run').description('boot a VM and print the guest kernel log'))
    .addOption(new Option('--guest <guest>', 'the guest: hvkit’s model of Linux, or the real Linux 6.1 VMBus code (a one-VP 32-bit x86 guest; npm run build:linux first)').choices(['model', 'linux']).default('model'))
    .option('--no-vmbus', 'do not connect to VMBus (the SynIC is still set up)')
    .option('--until <point>', `"booted", "shutdown" (the host asks the guest to shut down), or seconds of virtual time after boot (at most ${STEP_LIMIT_S})`, parseUntil, 'booted')
    .option('--threads', 'run the guest kernel in a worker thread, concurrently with the host', false)
    .option('--pace', 'run virtual time no faster than the wall clock, from the start of the boot', false)
    .option('--json', 'print JSON lines: log records, script results, then the final state', false)
    .option('--verbose', 'include debug-level lines (pr_debug, hvkit step notes) and the whole guest journal', false)
    .option('--sysfs <dir>', "write the guest's /sys/bus/vmbus/devices tree into DIR once booted (new, empty, or an earlier export)")
    .option('--trace <file>', 'write every trap, message, signal and packet as JSON lines')
    .option('--screenshot <file>', "save the guest's screen (the video device) as a PNG when the run ends")
    .option('--script <file>', `host actions once booted, one per line: ${SCRIPT_STEPS.join(', ')} (hvkit help script)`)
    .option('--keep-going', 'run the script steps after a failed one too (the exit status is still 1)', false)
    .option('--state <dir>', "the VM's state directory: the guest's file tree (KVP pools, copied files) lives there")
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(async (o: RunOptions, cmd: Command) => {
      status.code = await run(io, vmFromOptions(cmd, o), o);
    });

  addVmOptions(program.command('lsvmbus').description("boot a VM and list its VMBus devices as Linux's lsvmbus does"))
    .option('-v, --verbose', 'more detail; -vv for more', (_: string, n: number) => n + 1, 0)
    .option('--json', 'the devices and their channels as JSON', false)
    .addOption(new Option('--guest <guest>', 'the guest: hvkit’s model of Linux, or the real Linux 6.1 VMBus code (its own channel list)').choices(['model', 'linux']).default('model'))
    .action((o: VmOptions & { verbose: number; json: boolean; guest: 'model' | 'linux' }, cmd: Command) => {
      if (o.guest === 'linux') {
        status.code = lsvmbusLinux(io, vmFromOptions(cmd, o), o);
        return;
      }
      const m = new Machine(machineConfig(vmFromOptions(cmd, o)));
      try {
        m.boot();
        const snapshot: VmbusSnapshot = m.kernel.vmbus?.snapshot() ?? { state: 'disconnected', version: '', devices: [] };
        if (o.json) io.out(JSON.stringify({ ...snapshot, scsi: storageSnapshot(m) }, null, 2));
        else for (const line of formatLsvmbus(snapshot, Math.min(2, o.verbose) as 0 | 1 | 2)) io.out(line);
        if (!vmbusSysfsExists(snapshot)) status.code = EXIT.failure;
      } finally {
        // The disk images close (and their locks go) with the host.
        m.host.dispose();
      }
    });
}

/** Where a run's output goes: the log, the journal, script results and the final state. */
class RunOutput {
  private readonly progress: Progress | undefined;
  readonly line: (text: string) => void;

  constructor(
    private readonly io: Io,
    private readonly o: RunOptions,
    source: { virtualNs(): number; packets(): number } | undefined,
    endNs: number | undefined,
  ) {
    // A progress line only for a person at a terminal, never into --json.
    this.progress = io.progress && source && !o.json ? new Progress(source, { ...io.progress, ...(endNs === undefined ? {} : { endNs }) }, io.out) : undefined;
    this.line = this.progress ? (t) => this.progress!.print(t) : io.out;
  }

  log = (r: LogRecord): void => {
    if (r.level === 'debug' && !this.o.verbose) return;
    this.line(this.o.json ? JSON.stringify({ time: r.ns / 1e9, level: r.level, text: r.text, ...(r.annotation ? { annotation: true } : {}) }) : formatRecord(r));
  };

  /** The daemons' syslog: its warnings and errors always, the rest with --verbose. */
  journal = (r: LogRecord): void => {
    if (!this.o.verbose && LOG_LEVELS.indexOf(r.level) > JOURNAL_ALWAYS) return;
    this.line(this.o.json ? JSON.stringify({ time: r.ns / 1e9, level: r.level, journal: r.text }) : formatRecord({ ...r, text: `journal: ${r.text}` }));
  };

  step = (r: StepResult): void => {
    this.line(this.o.json ? JSON.stringify({ script: r }) : `hvkit script: line ${r.line}: ${r.status === 'failed' ? 'FAILED: ' : ''}${r.text}`);
  };

  state(vm: VmConfig, state: KernelState, network?: unknown[], input?: ReturnType<typeof inputState>): void {
    if (!this.o.json) return;
    const machine = { release: vm.release, arch: vm.arch, vps: vm.vps, memory: vm.memory, ...(vm.dynamicMemory ? { dynamicMemory: vm.dynamicMemory } : {}), pageSize: vm.pageSize, devices: vm.devices.map((d) => d.type) };
    const hasInput = input && (input.keyboard || input.mouse || input.guest);
    this.line(JSON.stringify({ state: { vm: machine, ...state, ...(network?.length ? { network } : {}), ...(hasInput ? { input } : {}) } }));
  }

  stop(): void {
    this.progress?.stop();
  }
}

async function run(io: Io, vm: VmConfig, o: RunOptions): Promise<number> {
  if (o.guest === 'linux') return runLinux(io, vm, o);
  const steps = o.script ? readScript(o.script) : undefined;
  if (o.threads && steps) throw new UsageError('--script: script steps run with the guest in this thread; drop --threads');
  if (o.threads && vm.vps > MAX_CPUS) throw new UsageError(`--threads: at most ${MAX_CPUS} VPs with the guest in a worker, not ${vm.vps}`);
  if (o.until === 'shutdown' && !o.vmbus) throw new UsageError('--until shutdown: the host asks through the shutdown IC, which needs VMBus; drop --no-vmbus');
  if (o.until === 'shutdown' && !vm.devices.some((d) => d.type === 'shutdown')) throw new UsageError('--until shutdown: the VM has no shutdown device');
  if (o.state) outputDirectory('--state', o.state);
  if (o.sysfs) sysfsDirectory('--sysfs', o.sysfs);
  if (o.screenshot) screenshotFile(vm, o, o.screenshot);
  // The NICs' back ends (sockets, capture files) are opened before boot: one that cannot be is refused now.
  let clock: { nowNs: number } | undefined;
  const nets = await openRunNics(vm, () => clock?.nowNs ?? 0);
  let trace: TraceFile | undefined;
  let output: RunOutput | undefined;
  let host: { dispose(): void } | undefined;
  const stop = new AbortController();
  const unlisten = io.interrupts?.listen(() => stop.abort());
  try {
    trace = o.trace ? outputFile('--trace', o.trace, openTraceFile) : undefined;
    const base = machineConfig(vm, nets);
    const config = { ...base, kernel: { ...base.kernel, vmbusSynic: true, vmbus: o.vmbus } };
    const endNs = typeof o.until === 'number' ? o.until * 1e9 : undefined;
    if (o.threads) {
      const m = new ThreadedMachine({ ...config, ...(o.state ? { stateDir: o.state } : {}) });
      clock = m.partition.clock;
      host = m.host;
      output = new RunOutput(io, o, progressSource(m), endNs);
      return await traced(m, trace, () => runThreaded(m, vm, o, output!, stop.signal));
    }
    // A NIC on a socket talks to peers in real time: virtual time may not run ahead of them.
    const m = new Machine({ ...config, ...(o.state ? { files: new DirectoryFiles(o.state) } : {}), ...(o.pace || nets.live ? { pace: {} } : {}) });
    clock = m.partition.clock;
    host = m.host;
    output = new RunOutput(io, o, progressSource(m), endNs);
    return await traced(m, trace, () => runInThread(m, vm, o, output!, stop.signal, steps));
  } finally {
    host?.dispose();
    output?.stop();
    unlisten?.();
    nets.close();
    await trace?.close();
  }
}

/** Runs `body` with the trace attached from the first CPUID on. */
async function traced(m: Machine | ThreadedMachine, trace: TraceFile | undefined, body: () => Promise<number>): Promise<number> {
  const detach = trace ? attachTrace(m.partition, trace) : undefined;
  try {
    return await body();
  } finally {
    detach?.();
  }
}

/** What the progress line reads: the virtual clock and the host's packet counters. */
function progressSource(m: Machine | ThreadedMachine): { virtualNs(): number; packets(): number } {
  return {
    virtualNs: () => m.partition.clock.nowNs,
    packets: () => {
      let n = 0;
      for (const ch of m.vmbus?.server.channels.values() ?? []) n += ch.packetsReceived + ch.packetsSent;
      return n;
    },
  };
}

async function runInThread(m: Machine, vm: VmConfig, o: RunOptions, out: RunOutput, signal: AbortSignal, steps?: readonly Step[]): Promise<number> {
  m.kernel.log.onRecord(out.log);
  m.kernel.journal.onRecord(out.journal);
  m.boot();
  if (signal.aborted) return EXIT.interrupted;
  if (m.kernel.stage !== 'booted') throw new RunFailure(`the guest did not boot: it is ${m.kernel.stage}`);
  if (o.sysfs && m.kernel.vmbus) await writeSysfs(o.sysfs, m.kernel.vmbus.snapshot(), { nets: netInterfaces(m), storage: storageSnapshot(m) });
  let failed: StepResult[] = [];
  if (steps) {
    const results = await runScript(m, steps, out.step, { keepGoing: o.keepGoing, signal, host: { readFile: (path) => readFileSync(path), writeFile: (path, data) => writeFileSync(path, data), openDisk: (path, opts) => openDisk(path, opts) } });
    failed = results.filter((r) => r.status === 'failed');
  }
  if (typeof o.until === 'number') {
    await m.runForAsync(o.until * 1e9, { signal });
  } else if (o.until === 'shutdown' && m.kernel.stage === 'booted') {
    m.host.shutdownGuest();
    await m.waitUntilAsync(() => m.kernel.stage === 'halted', SHUTDOWN_LIMIT_S * 1e9, { signal });
  }
  if (o.screenshot && !signal.aborted) {
    // What the guest drew last reaches the host within hyperv_fb's update throttle.
    if (m.kernel.stage === 'booted') await m.runForAsync(SCREEN_SETTLE_NS, { signal });
    saveScreenshot(o.screenshot, m.devices);
  }
  out.state(vm, m.kernel.state(), netState(m), inputState(m));
  if (signal.aborted) return EXIT.interrupted;
  if (failed.length) throw new RunFailure(`${failed.length} of ${steps!.length} script steps failed (line ${failed.map((r) => r.line).join(', ')})`);
  // A script may end the guest itself: booting was what --until booted asked for.
  const stage = m.kernel.stage as string;
  const endedByScript = steps !== undefined && o.until !== 'shutdown' && stage === 'halted';
  if (!endedByScript) reached(o.until, stage, m.nowNs);
  return EXIT.ok;
}

/** The guest in a worker: its log streams back as it is printed. */
async function runThreaded(m: ThreadedMachine, vm: VmConfig, o: RunOptions, out: RunOutput, signal: AbortSignal): Promise<number> {
  const args: RunArgs = { until: o.until, limitSeconds: SHUTDOWN_LIMIT_S };
  if (o.until === 'shutdown') m.host.shutdownGuest();
  const seconds = typeof o.until === 'number' ? o.until : o.until === 'shutdown' ? SHUTDOWN_LIMIT_S : 0;
  const r = await m.run<RunResult>(workload('run'), args, { maxMs: seconds * 1000 + THREADED_SLACK_MS, signal, onLog: out.log, onJournal: out.journal });
  const network = pairNetState(hostNics(m.host), r.result?.network ?? []);
  if (signal.aborted) {
    out.state(vm, r.state, network);
    return EXIT.interrupted;
  }
  if (r.error) throw new RunFailure(`the guest thread failed: ${r.error.split('\n')[0]}`);
  if (o.sysfs && r.result?.booted) await writeSysfs(o.sysfs, r.result.booted, { nets: r.result.nets, storage: r.result.storage });
  if (o.screenshot) saveScreenshot(o.screenshot, m.host.devices);
  out.state(vm, r.state, network);
  reached(o.until, r.result?.stage ?? r.state.stage, undefined);
  return EXIT.ok;
}

/** Throws a RunFailure unless the guest got where --until asked. */
function reached(until: RunOptions['until'], stage: string, nowNs: number | undefined): void {
  const at = nowNs === undefined ? '' : ` at ${(nowNs / 1e9).toFixed(3)} s`;
  if (until === 'shutdown' && stage !== 'halted') throw new RunFailure(`the guest did not power off within ${SHUTDOWN_LIMIT_S} s of being asked: it is ${stage}`);
  if (until !== 'shutdown' && stage !== 'booted') throw new RunFailure(`the guest stopped running${at}: it is ${stage}`);
}

/** The --screenshot file: the VM must have a video device, and the path must take a file (created now). */
function screenshotFile(vm: VmConfig, o: RunOptions, path: string): void {
  if (!o.vmbus) throw new UsageError('--screenshot: the video device needs VMBus; drop --no-vmbus');
  if (!vm.devices.some((d) => d.type === 'video')) throw new UsageError('--screenshot: the VM has no video device');
  outputFile('--screenshot', path, (p) => writeFileSync(p, new Uint8Array(0)));
}

/** Writes the host's copy of the screen; a guest that never set a mode is a run-time failure. */
function saveScreenshot(path: string, devices: readonly HostDevice[]): void {
  const frame = videoHost(devices)?.render();
  if (!frame) throw new RunFailure('--screenshot: the guest never set a video mode');
  writeFileSync(path, encodePng(frame));
}

/** A built workload module: workers run JavaScript, so from sources (tests) use the build. */
function workload(name: string): URL {
  return import.meta.url.endsWith('.ts') ? new URL(`../../dist/vm/threaded/workloads/${name}.js`, import.meta.url) : new URL(`../vm/threaded/workloads/${name}.js`, import.meta.url);
}
