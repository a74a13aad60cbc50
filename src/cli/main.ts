// The `hvkit` command. bin/hvkit.js runs main(); tests drive program() directly.
import { Command, CommanderError } from 'commander';
import { PartitionConfigError } from '../hypervisor/partition.js';
import { registerDecode } from './decode.js';
import { ConfigError } from '../vm/config.js';
import { ScriptError } from '../vm/script.js';
import { registerRun, UsageError } from './run.js';
import { registerTrace } from './trace.js';

export interface Io {
  out: (line: string) => void;
  err: (text: string) => void;
}

const stdio: Io = { out: (l) => process.stdout.write(l + '\n'), err: (t) => process.stderr.write(t) };

export function program(io: Io = stdio, status = { code: 0 }): Command {
  const p = new Command('hvkit')
    .description('a software Hyper-V: TLFS hypervisor interface, VMBus, synthetic devices and an enlightened guest')
    .version('0.1.0')
    .configureOutput({ writeOut: (t) => io.out(t.replace(/\n$/, '')), writeErr: io.err })
    .exitOverride();
  const out = io.out;
  registerRun(p, out, status);
  registerDecode(p, io, status);
  registerTrace(p, io, status);
  return p;
}

export async function main(argv: readonly string[] = process.argv, io: Io = stdio): Promise<number> {
  const status = { code: 0 };
  try {
    await program(io, status).parseAsync(argv as string[]);
    return status.code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof UsageError || e instanceof PartitionConfigError || e instanceof ConfigError || e instanceof ScriptError) {
      io.err(`hvkit: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
