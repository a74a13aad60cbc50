// `hvkit run`: boot a VM with its devices, print the guest's kernel log, and stop once the guest
// reaches the requested point. `hvkit lsvmbus`: boot the same way, then list the VMBus devices.
import { mkdirSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { formatRecord, type LogRecord } from '../guest/klog.js';
import { attachTrace } from '../trace/attach.js';
import { openTraceFile } from '../trace/writer.js';
import type { VmbusSnapshot } from '../vmbus/client/snapshot.js';
import { DirectoryFiles } from '../vm/dirfs.js';
import { Machine } from '../vm/machine.js';
import { parseScript, runScript, type Step } from '../vm/script.js';
import { ThreadedMachine } from '../vm/threaded/machine.js';
import type { RunArgs, RunResult } from '../vm/threaded/workloads/run.js';
import { formatLsvmbus, lsvmbusExitCode } from './lsvmbus.js';
import { parseUntil } from './parse.js';
import { writeSysfs } from './sysfs.js';
import { addVmOptions, machineConfig, vmFromOptions, type VmOptions } from './vm-options.js';

interface RunOptions extends VmOptions {
  vmbus: boolean;
  until: 'booted' | 'shutdown' | number;
  json: boolean;
  verbose: boolean;
  pace: boolean;
  threads: boolean;
  sysfs?: string;
  trace?: string;
  script?: string;
  state?: string;
}

/** How long `--until shutdown` waits for the guest to power off, virtual seconds. */
const SHUTDOWN_LIMIT_S = 120;
/** The longest a --threads run may take on the wall clock, beyond its virtual time. */
const THREADED_SLACK_MS = 60_000;

/** Adds `run` and `lsvmbus`; `status.code` receives the exit status. */
export function registerRun(program: Command, out: (line: string) => void, status: { code: number }): void {
  addVmOptions(program.command('run').description('boot a VM and print the guest kernel log'))
    .option('--no-vmbus', 'do not connect to VMBus (the SynIC is still set up)')
    .option('--until <point>', '"booted", "shutdown" (the host asks the guest to shut down), or seconds of virtual time after boot', parseUntil, 'booted')
    .option('--threads', 'run the guest kernel in a worker thread, concurrently with the host', false)
    .option('--pace', 'run the virtual time after boot no faster than wall-clock time', false)
    .option('--json', 'print the log as JSON lines, then the final state', false)
    .option('--verbose', 'include debug-level lines (pr_debug and hvkit step notes)', false)
    .option('--sysfs <dir>', "write the guest's /sys/bus/vmbus/devices tree into DIR once booted")
    .option('--trace <file>', 'write every trap, message, signal and packet as JSON lines')
    .option('--script <file>', 'host actions to run once booted, one per line (see src/vm/script.ts)')
    .option('--state <dir>', "the VM's state directory: the guest's file tree (KVP pools, copied files) lives there")
    .action(async (o: RunOptions, cmd: Command) => {
      const vm = machineConfig(vmFromOptions(cmd, o));
      const print = (r: LogRecord) => {
        if (r.level === 'debug' && !o.verbose) return;
        out(o.json ? JSON.stringify({ time: r.ns / 1e9, level: r.level, text: r.text, ...(r.annotation ? { annotation: true } : {}) }) : formatRecord(r));
      };
      // The daemons' syslog (the guest's journal) only with --verbose, marked as such.
      const printJournal = (r: LogRecord) => {
        if (!o.verbose) return;
        out(o.json ? JSON.stringify({ time: r.ns / 1e9, level: r.level, journal: r.text }) : formatRecord({ ...r, text: `journal: ${r.text}` }));
      };
      const kernel = { vmbusSynic: true, vmbus: o.vmbus };
      const steps = o.script ? readScript(o.script) : undefined;
      if (steps && o.threads) throw new UsageError('--script runs the guest in this thread; drop --threads');
      if (o.state) mkdirSync(o.state, { recursive: true });
      const m = o.threads ? new ThreadedMachine({ ...vm, kernel, ...(o.state ? { stateDir: o.state } : {}) }) : new Machine({ ...vm, kernel, ...(o.state ? { files: new DirectoryFiles(o.state) } : {}) });
      // Attached before boot, so the trace starts with the first CPUID.
      const trace = o.trace ? openTraceFile(o.trace) : undefined;
      const stop = trace ? attachTrace(m.partition, trace) : undefined;
      try {
        status.code = m instanceof ThreadedMachine ? await runThreaded(m, o, print, printJournal, out) : await runInThread(m, o, print, printJournal, out, steps);
      } finally {
        stop?.();
        await trace?.close();
      }
    });

  addVmOptions(program.command('lsvmbus').description("boot a VM and list its VMBus devices as Linux's lsvmbus does"))
    .option('-v, --verbose', 'more detail; -vv for more', (_: string, n: number) => n + 1, 0)
    .action((o: VmOptions & { verbose: number }, cmd: Command) => {
      const m = new Machine(machineConfig(vmFromOptions(cmd, o)));
      m.boot();
      const snapshot: VmbusSnapshot = m.kernel.vmbus?.snapshot() ?? { state: 'disconnected', version: '', devices: [] };
      for (const line of formatLsvmbus(snapshot, Math.min(2, o.verbose) as 0 | 1 | 2)) out(line);
      status.code = lsvmbusExitCode(snapshot);
    });
}

type Printer = (r: LogRecord) => void;

async function runInThread(m: Machine, o: RunOptions, print: Printer, printJournal: Printer, out: (line: string) => void, steps?: readonly Step[]): Promise<number> {
  m.kernel.log.onRecord(print);
  m.kernel.journal.onRecord(printJournal);
  m.boot();
  if (o.sysfs && m.kernel.vmbus) await writeSysfs(o.sysfs, m.kernel.vmbus.snapshot());
  const booted = m.kernel.stage === 'booted';
  if (steps && booted) await runScript(m, steps, (line) => out(o.json ? JSON.stringify({ script: line }) : `hvkit script: ${line}`), { readFile: (path) => readFileSync(path) });
  if (typeof o.until === 'number') {
    const ns = Math.round(o.until * 1e9);
    if (o.pace) await m.runPaced(ns);
    else m.runFor(ns);
  } else if (o.until === 'shutdown' && m.kernel.stage === 'booted') {
    if (!m.host.shutdownGuest()) throw new UsageError('--until shutdown needs a shutdown device');
    m.waitUntil(() => m.kernel.stage === 'halted', SHUTDOWN_LIMIT_S * 1e9);
  }
  if (o.json) out(JSON.stringify({ state: m.kernel.state() }));
  // A script may end the guest itself: booting was what --until booted asked for.
  if (steps && booted && o.until !== 'shutdown' && m.kernel.stage === 'halted') return 0;
  return reached(o.until, m.kernel.stage) ? 0 : 1;
}

/** The guest in a worker: its log comes back when the workload ends. */
async function runThreaded(m: ThreadedMachine, o: RunOptions, print: Printer, printJournal: Printer, out: (line: string) => void): Promise<number> {
  const args: RunArgs = { until: o.until, limitSeconds: SHUTDOWN_LIMIT_S };
  if (o.until === 'shutdown' && !m.host.shutdownGuest()) throw new UsageError('--until shutdown needs a shutdown device');
  const seconds = typeof o.until === 'number' ? o.until : o.until === 'shutdown' ? SHUTDOWN_LIMIT_S : 0;
  const r = await m.run<RunResult>(workload('run'), args, seconds * 1000 + THREADED_SLACK_MS);
  r.log.forEach(print);
  r.journal.forEach(printJournal);
  if (r.error) out(`hvkit: the guest thread failed: ${r.error}`);
  if (o.sysfs && r.result?.booted) await writeSysfs(o.sysfs, r.result.booted);
  if (o.json) out(JSON.stringify({ state: r.state }));
  return reached(o.until, r.result?.stage ?? r.state.stage) ? 0 : 1;
}

function readScript(path: string): Step[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read the script ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return parseScript(text, path);
}

function reached(until: RunOptions['until'], stage: string): boolean {
  return until === 'shutdown' ? stage === 'halted' : stage === 'booted';
}

/** A built workload module: workers run JavaScript, so from sources (tests) use the build. */
function workload(name: string): URL {
  return import.meta.url.endsWith('.ts') ? new URL(`../../dist/vm/threaded/workloads/${name}.js`, import.meta.url) : new URL(`../vm/threaded/workloads/${name}.js`, import.meta.url);
}

/** A request hvkit cannot carry out as asked: printed without a stack, exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
