// The `hvkit` command. bin/hvkit.js runs main(); tests drive program() directly.
import { Command, CommanderError } from 'commander';
import { PartitionConfigError } from '../hypervisor/partition.js';
import { registerRun, UsageError } from './run.js';

export function program(out: (line: string) => void = (l) => process.stdout.write(l + '\n'), status = { code: 0 }): Command {
  const p = new Command('hvkit')
    .description('a software Hyper-V: TLFS hypervisor interface, VMBus, synthetic devices and an enlightened guest')
    .version('0.1.0')
    .exitOverride();
  registerRun(p, out, status);
  return p;
}

export async function main(argv: readonly string[] = process.argv, out?: (line: string) => void): Promise<number> {
  const status = { code: 0 };
  try {
    await program(out, status).parseAsync(argv as string[]);
    return status.code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof UsageError || e instanceof PartitionConfigError) {
      process.stderr.write(`hvkit: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
