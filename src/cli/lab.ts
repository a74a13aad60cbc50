// `hvkit lab FILE.json [--pcap FILE]`: several VMs in this process, their NICs on shared virtual
// switches, each VM's log printed with its name in front; then each VM's script, in file order,
// while all of them keep running; `--pcap` captures every switch.
import type { Command } from 'commander';
import { formatRecord, LOG_LEVELS, type LogRecord } from '../guest/klog.js';
import { Lab } from '../vm/lab.js';
import { loadLabConfig } from '../vm/lab-config.js';
import { macFromName, NicOpenError, openNics, type OpenedNics } from '../vm/network/backends.js';
import { PcapFile } from '../vm/network/pcap-file.js';
import { DEFAULT_WALL_CLOCK_START_NS } from '../vm/host.js';
import { runScript, type StepResult } from '../vm/script.js';
import { guestNetwork } from '../vm/network.js';
import { ipString } from '../devices/network/ether.js';
import { EXIT, EXIT_CODES_HELP, RunFailure, UsageError } from './errors.js';
import type { Io, Status } from './main.js';
import { outputFile } from './outputs.js';
import { machineConfig } from './vm-options.js';

interface LabOptions {
  pcap?: string;
  json: boolean;
  verbose: boolean;
}

/** The switch a lab NIC without a back end joins. */
const DEFAULT_SWITCH = 'lan';
const JOURNAL_ALWAYS = LOG_LEVELS.indexOf('warn');

export function registerLab(program: Command, io: Io, status: Status): void {
  program
    .command('lab')
    .description('run several VMs on shared virtual switches in one process, each log line prefixed with its VM')
    .argument('<file>', 'the lab file: {"vms": [{"name", "vm", "script"}], "seconds"} (see examples/two-vms.lab.json)')
    .option('--pcap <file>', 'capture every frame of every switch into a pcapng file')
    .option('--json', 'JSON lines: log records and script results, each with its VM', false)
    .option('--verbose', 'include debug-level lines and the whole guest journal', false)
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(async (file: string, o: LabOptions) => {
      status.code = await lab(io, file, o);
    });
}

async function lab(io: Io, file: string, o: LabOptions): Promise<number> {
  const config = loadLabConfig(file);
  const capture = o.pcap ? outputFile('--pcap', o.pcap, (p) => new PcapFile(p, DEFAULT_WALL_CLOCK_START_NS, `hvkit lab ${file}`)) : undefined;
  const l = new Lab();
  if (capture) l.onSwitch = (sw) => sw.addTap(capture.writer.tap(`switch ${sw.name}`));
  const opened: OpenedNics[] = [];
  const stop = new AbortController();
  const unlisten = io.interrupts?.listen(() => stop.abort());
  const out = (vm: string, text: string, json: Record<string, unknown>) => io.out(o.json ? JSON.stringify({ vm, ...json }) : text ? `${vm}: ${text}` : `${vm}:`);
  try {
    for (const v of config.vms) {
      let nets: OpenedNics;
      try {
        nets = await openNics(v.vm.devices, {
          now: () => l.nowNs,
          switchNamed: (name) => l.switch(name),
          defaultSwitch: DEFAULT_SWITCH,
          label: (k) => `${v.name}/eth${k}`,
          defaultMac: (k) => macFromName(`${v.name}/eth${k}`),
        });
      } catch (e) {
        if (e instanceof NicOpenError) throw new UsageError(`${v.name}: network device /devices/${e.index}: ${e.reason}`);
        throw e;
      }
      opened.push(nets);
      const base = machineConfig(v.vm, nets);
      const m = l.add(v.name, { ...base, kernel: { ...base.kernel, hostname: v.name }, ...(nets.live ? { pace: {} } : {}) });
      m.kernel.log.onRecord((r: LogRecord) => {
        if (r.level === 'debug' && !o.verbose) return;
        out(v.name, formatRecord(r), { time: r.ns / 1e9, level: r.level, text: r.text });
      });
      m.kernel.journal.onRecord((r: LogRecord) => {
        if (!o.verbose && LOG_LEVELS.indexOf(r.level) > JOURNAL_ALWAYS) return;
        out(v.name, formatRecord({ ...r, text: `journal: ${r.text}` }), { time: r.ns / 1e9, level: r.level, journal: r.text });
      });
    }
    l.boot();
    for (const v of l.vms) if (v.machine.kernel.stage !== 'booted') throw new RunFailure(`${v.name}: the guest did not boot: it is ${v.machine.kernel.stage}`);
    // The guests bring their interfaces up at the end of boot (ip= is a late initcall).
    await l.waitUntilAsync(() => false, 10e6, { signal: stop.signal });
    const resolve = (name: string): string | undefined => {
      const m = l.vm(name);
      const a = m ? guestNetwork(m).devices.map((d) => guestNetwork(m).inet(d.name)?.address).find(Boolean) : undefined;
      return a ? ipString(a.address) : undefined;
    };
    const failed: string[] = [];
    for (const v of config.vms) {
      if (stop.signal.aborted) break;
      const report = (r: StepResult) => {
        if (o.json) return out(v.name, '', { script: r });
        const [first, ...rest] = r.text.split('\n');
        out(v.name, `hvkit script: line ${r.line}: ${r.status === 'failed' ? 'FAILED: ' : ''}${first}`, {});
        for (const line of rest) out(v.name, line, {});
      };
      const results = await runScript(l.vm(v.name)!, v.script, report, { signal: stop.signal, lab: { waitUntilAsync: (d, ns, opts) => l.waitUntilAsync(d, ns, opts), resolve } });
      for (const r of results) if (r.status === 'failed') failed.push(`${v.name} line ${r.line}`);
    }
    if (config.seconds > 0 && !stop.signal.aborted) await l.waitUntilAsync(() => false, config.seconds * 1e9, { signal: stop.signal });
    if (stop.signal.aborted) return EXIT.interrupted;
    if (failed.length) throw new RunFailure(`${failed.length} script step${failed.length === 1 ? '' : 's'} failed (${failed.join(', ')})`);
    return EXIT.ok;
  } finally {
    unlisten?.();
    for (const n of opened) n.close();
    for (const v of l.vms) v.machine.host.dispose();
    capture?.close();
  }
}
