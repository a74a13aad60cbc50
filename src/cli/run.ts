// `hvkit run`: boot a VM and print the guest's kernel log.
import type { Command } from 'commander';
import type { Arch } from '../hypervisor/features.js';
import type { ReleaseId } from '../hypervisor/release.js';
import type { GuestPageSize } from '../memory/pages.js';
import { formatRecord, type LogRecord } from '../guest/klog.js';
import { Machine } from '../vm/machine.js';
import { parseArch, parsePageSize, parsePositiveInt, parseRelease, parseSize, parseUntil } from './parse.js';

interface RunOptions {
  release: ReleaseId;
  arch: Arch;
  vps: number;
  memory: number;
  pageSize: GuestPageSize;
  vmbus: boolean;
  until: 'booted' | number;
  json: boolean;
  verbose: boolean;
  pace: boolean;
}

/** Adds `run`; `status.code` receives its exit status. */
export function registerRun(program: Command, out: (line: string) => void, status: { code: number }): void {
  program
    .command('run')
    .description('boot a VM and print the guest kernel log')
    .option('--release <release>', 'Hyper-V release to emulate', parseRelease, 'ws2022')
    .option('--arch <arch>', 'guest architecture: x64, x86 or arm64', parseArch, 'x64')
    .option('--vps <n>', 'virtual processors', parsePositiveInt, 2)
    .option('--memory <size>', 'guest RAM, e.g. 256M or 1G', parseSize, 256 << 20)
    .option('--page-size <size>', 'guest page size: 4k, 16k or 64k (16k and 64k on arm64)', parsePageSize, 4096)
    .option('--no-vmbus', 'do not connect to VMBus (the SynIC is still set up)')
    .option('--until <point>', '"booted", or seconds of virtual time to run after boot', parseUntil, 'booted')
    .option('--pace', 'run the virtual time after boot no faster than wall-clock time', false)
    .option('--json', 'print the log as JSON lines', false)
    .option('--verbose', 'include debug-level lines (pr_debug and hvkit step notes)', false)
    .action(async (o: RunOptions) => {
      const m = new Machine({ release: o.release, arch: o.arch, vps: o.vps, memory: o.memory, pageSize: o.pageSize, kernel: { vmbusSynic: true, vmbus: o.vmbus } });
      const print = (r: LogRecord) => {
        if (r.level === 'debug' && !o.verbose) return;
        out(o.json ? JSON.stringify({ time: r.ns / 1e9, level: r.level, text: r.text, ...(r.annotation ? { annotation: true } : {}) }) : formatRecord(r));
      };
      m.kernel.log.onRecord(print);
      m.boot();
      if (typeof o.until === 'number') {
        const ns = Math.round(o.until * 1e9);
        if (o.pace) await m.runPaced(ns);
        else m.runFor(ns);
      }
      if (m.kernel.stage !== 'booted') status.code = 1;
    });
}

/** A request hvkit cannot carry out as asked: printed without a stack, exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
