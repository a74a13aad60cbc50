#!/usr/bin/env node
// The `hvkit` command.
import { Command, CommanderError } from 'commander';
import { PartitionConfigError } from '../hypervisor/partition.js';
import { registerRun, UsageError } from './run.js';

export function program(out: (line: string) => void = (l) => process.stdout.write(l + '\n')): Command {
  const p = new Command('hvkit')
    .description('a software Hyper-V: TLFS hypervisor interface, VMBus, synthetic devices and an enlightened guest')
    .version('0.1.0')
    .exitOverride();
  registerRun(p, out);
  return p;
}

export async function main(argv: readonly string[] = process.argv): Promise<number> {
  try {
    await program().parseAsync(argv as string[]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof UsageError || e instanceof PartitionConfigError) {
      process.stderr.write(`hvkit: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

// A reader that stops early (`hvkit run | head`) is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

main().then((code) => {
  process.exitCode = code;
});
