// `hvkit run --guest linux`: the real Linux 6.1 VMBus code (compiled to WebAssembly by
// `npm run build:linux` from Debian's linux-source-6.1) boots in place of the model, and its own
// printk lines are the log. The module is taken from the checkout's build cache: it is GPL-2.0
// and built from the kernel's sources, so the package never carries it.
import { existsSync, readFileSync } from 'node:fs';
import { formatRecord, LOG_LEVELS, type LogRecord } from '../guest/klog.js';
import { wasm } from '../guest/linux/wasm.js';
import { attachTrace } from '../trace/attach.js';
import { openTraceFile, type TraceFile } from '../trace/writer.js';
import type { VmConfig } from '../vm/config.js';
import { LinuxMachine } from '../vm/linux-machine.js';
import { EXIT, RunFailure, UsageError } from './errors.js';
import type { Io } from './main.js';
import { outputFile } from './outputs.js';
import { readScript } from './script-file.js';
import { machineConfig } from './vm-options.js';
import { formatLsvmbus, vmbusSysfsExists } from './lsvmbus.js';
import { runScript, type StepResult } from '../vm/script.js';
import { LINUX_SCRIPT_STEPS, linuxScriptMachine, unsupportedLinuxStep } from '../vm/linux-script.js';

import { LINUX_WASM_PATH } from './linux-wasm.js';

export { LINUX_WASM_PATH };

/** How long `--until shutdown` waits for the guest to power off, virtual seconds. */
const SHUTDOWN_LIMIT_S = 120;

export interface LinuxRunOptions {
  vmbus: boolean;
  until: 'booted' | 'shutdown' | number;
  json: boolean;
  verbose: boolean;
  threads: boolean;
  pace: boolean;
  sysfs?: string;
  trace?: string;
  script?: string;
  keepGoing?: boolean;
  state?: string;
}

/** `hvkit lsvmbus --guest linux`: Linux's own channel list, in lsvmbus's format (or as JSON). */
export function lsvmbusLinux(io: Io, vm: VmConfig, o: { verbose: number; json: boolean }): number {
  if (!existsSync(LINUX_WASM_PATH)) throw new RunFailure(`--guest linux: no Linux module at ${LINUX_WASM_PATH}; build it with npm run build:linux (needs Debian's clang, lld and linux-source-6.1)`);
  const { release, devices, wallClockStartNs, budget, features, cpuVendor, vmbus } = machineConfig(vm);
  const m = new LinuxMachine(new wasm.Module(readFileSync(LINUX_WASM_PATH)), { release, devices, wallClockStartNs, budget, features, cpuVendor, vmbus });
  try {
    m.boot();
    const snapshot = m.guest.vmbusSnapshot();
    if (o.json) io.out(JSON.stringify(snapshot, null, 2));
    else for (const line of formatLsvmbus(snapshot, Math.min(2, o.verbose) as 0 | 1 | 2)) io.out(line);
    return vmbusSysfsExists(snapshot) ? EXIT.ok : EXIT.failure;
  } finally {
    m.host.dispose();
  }
}

export async function runLinux(io: Io, vm: VmConfig, o: LinuxRunOptions): Promise<number> {
  for (const [set, name] of [
    [o.threads, '--threads'],
    [o.pace, '--pace'],
    [o.sysfs, '--sysfs'],
    [o.state, '--state'],
    [!o.vmbus, '--no-vmbus'],
  ] as const) {
    if (set) throw new UsageError(`--guest linux: ${name} is not supported with the real Linux guest yet`);
  }
  const steps = o.script ? readScript(o.script) : undefined;
  const refused = steps && unsupportedLinuxStep(steps);
  if (refused) throw new UsageError(`--script: line ${refused.line}: step "${refused.op}" is not supported with the real Linux guest (it runs ${LINUX_SCRIPT_STEPS.join(', ')})`);
  if (!existsSync(LINUX_WASM_PATH)) throw new RunFailure(`--guest linux: no Linux module at ${LINUX_WASM_PATH}; build it with npm run build:linux (needs Debian's clang, lld and linux-source-6.1)`);
  const module = new wasm.Module(readFileSync(LINUX_WASM_PATH));
  const { release, devices, wallClockStartNs, budget, features, cpuVendor, vmbus } = machineConfig(vm);
  const m = new LinuxMachine(module, { release, devices, wallClockStartNs, budget, features, cpuVendor, vmbus });
  const log = (r: LogRecord): void => {
    if (r.level === 'debug' && !o.verbose) return;
    io.out(o.json ? JSON.stringify({ time: r.ns / 1e9, level: r.level, text: r.text }) : formatRecord(r));
  };
  m.guest.log.onRecord(log);
  // The daemons' syslog (hv_kvp_daemon's), as the model's run shows it: warnings and errors
  // always, the rest with --verbose.
  m.guest.journal.onRecord((r: LogRecord): void => {
    if (!o.verbose && LOG_LEVELS.indexOf(r.level) > LOG_LEVELS.indexOf('warn')) return;
    io.out(o.json ? JSON.stringify({ time: r.ns / 1e9, level: r.level, journal: r.text }) : formatRecord({ ...r, text: `journal: ${r.text}` }));
  });
  let trace: TraceFile | undefined;
  let detach: (() => void) | undefined;
  try {
    trace = o.trace ? outputFile('--trace', o.trace, openTraceFile) : undefined;
    detach = trace ? attachTrace(m.partition, trace) : undefined;
    const r = m.boot();
    if (r !== 0) throw new RunFailure(`the Linux guest did not boot: vmbus_bus_init or hv_utils returned ${r}`);
    let failed: StepResult[] = [];
    if (steps) {
      const report = (res: StepResult): void => io.out(o.json ? JSON.stringify({ script: res }) : `hvkit script: line ${res.line}: ${res.status === 'failed' ? 'FAILED: ' : ''}${res.text}`);
      failed = (await runScript(linuxScriptMachine(m), steps, report, { keepGoing: o.keepGoing ?? false })).filter((x) => x.status === 'failed');
    }
    if (typeof o.until === 'number') m.runFor(o.until * 1e9);
    else if (o.until === 'shutdown' && !m.haltedBy) {
      m.host.shutdownGuest();
      if (!m.waitUntil(() => m.poweredOff, SHUTDOWN_LIMIT_S * 1e9)) throw new RunFailure(`the guest did not power off within ${SHUTDOWN_LIMIT_S} s of being asked`);
    }
    // The guest's VMBus as Linux itself holds it (its channel list, read through the shim), as the
    // model's state gives its own; the host's view beside it.
    if (o.json) io.out(JSON.stringify({ state: { vm: { guest: 'linux', release, arch: 'x86', vps: 1 }, stage: m.haltedBy ? 'halted' : 'booted', vmbus: m.guest.vmbusSnapshot(), host: { vmbus: m.vmbus?.server.state() }, devices: m.guest.events.items } }));
    if (failed.length) throw new RunFailure(`${failed.length} of ${steps!.length} script steps failed (line ${failed.map((x) => x.line).join(', ')})`);
    return EXIT.ok;
  } finally {
    detach?.();
    m.host.dispose();
    await trace?.close();
  }
}
