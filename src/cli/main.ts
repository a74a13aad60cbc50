// The `hvkit` command. bin/hvkit.js runs main(); tests drive it with their own Io.
import { Command, CommanderError } from 'commander';
import { PartitionConfigError } from '../hypervisor/partition.js';
import { ConfigError } from '../vm/config.js';
import { DiskOpenError } from '../vm/disk-file.js';
import { SCRIPT_GRAMMAR, ScriptError } from '../vm/script.js';
import { registerDecode } from './decode.js';
import { registerLab } from './lab.js';
import { registerDisk } from './disk.js';
import { EXIT, EXIT_CODES_HELP, RunFailure, UsageError } from './errors.js';
import type { ProgressStream } from './progress.js';
import { registerRun } from './run.js';
import { registerTrace } from './trace.js';
import { registerWeb } from './web.js';

export interface Io {
  out: (line: string) => void;
  err: (text: string) => void;
  /** A terminal to draw progress on, and after how long; absent: no progress line. */
  progress?: { stream: ProgressStream; delayMs: number };
  /** Ctrl-C: a command that can stop cleanly listens; one that does not is ended by the signal. */
  interrupts?: Interrupts;
}

export interface Interrupts {
  /** Calls `handler` on the next Ctrl-C instead of ending the process; returns what stops that. */
  listen(handler: () => void): () => void;
}

/** The process's own streams; progress only where stdout is a terminal. */
export function stdio(interrupts?: Interrupts): Io {
  return {
    out: (l) => process.stdout.write(l + '\n'),
    err: (t) => process.stderr.write(t),
    ...(process.stdout.isTTY ? { progress: { stream: process.stdout, delayMs: 2000 } } : {}),
    ...(interrupts ? { interrupts } : {}),
  };
}

/** What an action leaves for main(): its exit status, and which command is running. */
export interface Status {
  code: number;
  command: string;
}

/** "hvkit run", or "hvkit" before a command is known. */
const prefix = (s: Status): string => (s.command === 'hvkit' ? 'hvkit' : `hvkit ${s.command}`);

/** Help topics beyond the commands. */
const TOPICS: Record<string, string> = { script: SCRIPT_GRAMMAR, exit: EXIT_CODES_HELP };

export function program(io: Io, status: Status): Command {
  const p = new Command('hvkit')
    .description('a software Hyper-V: TLFS hypervisor interface, VMBus, synthetic devices and an enlightened guest')
    .version('0.1.0')
    .configureOutput({
      writeOut: (t) => io.out(t.replace(/\n$/, '')),
      writeErr: io.err,
      // Commander's own errors in the form of every other: "hvkit run: option '--vps <n>' ...".
      outputError: (t, write) => write(t.replace(/^error: /, `${prefix(status)}: `)),
    })
    .addHelpText('after', `\n${EXIT_CODES_HELP}\n\nMore: hvkit help script (the --script grammar), hvkit help <command>.`)
    .helpCommand(false)
    .exitOverride();
  // Commander's subcommands inherit the output settings; the name in errors is set before parsing.
  p.hook('preSubcommand', (_, sub) => void (status.command = sub.name()));
  registerRun(p, io, status);
  registerDecode(p, io, status);
  registerTrace(p, io, status);
  registerLab(p, io, status);
  registerDisk(p, io, status);
  registerWeb(p, io);
  p.command('help')
    .description('help on a command, or on a topic: script (the --script grammar), exit (exit codes)')
    .argument('[topic]', 'a command or topic')
    .action((topic: string | undefined) => {
      if (topic === undefined) return p.outputHelp();
      if (TOPICS[topic]) return io.out(TOPICS[topic]);
      const cmd = p.commands.find((c) => c.name() === topic);
      if (!cmd) throw new UsageError(`no command or topic '${topic}'; topics: ${Object.keys(TOPICS).join(', ')}; commands: ${p.commands.map((c) => c.name()).join(', ')}`);
      cmd.outputHelp();
    });
  return p;
}

export async function main(argv: readonly string[] = process.argv, io: Io = stdio()): Promise<number> {
  const status: Status = { code: EXIT.ok, command: 'hvkit' };
  const fail = (code: number, message: string): number => {
    io.err(`${prefix(status)}: ${message}\n`);
    return code;
  };
  try {
    await program(io, status).parseAsync(argv as string[]);
    return status.code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (e instanceof UsageError || e instanceof PartitionConfigError || e instanceof ConfigError || e instanceof ScriptError || e instanceof DiskOpenError) return fail(EXIT.usage, e.message);
    if (e instanceof RunFailure) return fail(EXIT.failure, e.message);
    // A bug: still one line, the stack only when asked for.
    if (process.env.HVKIT_DEBUG) io.err(`${(e as Error)?.stack ?? String(e)}\n`);
    return fail(EXIT.failure, `internal error: ${e instanceof Error ? e.message : String(e)} (HVKIT_DEBUG=1 shows where)`);
  }
}
