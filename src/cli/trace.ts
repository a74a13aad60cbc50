// `hvkit trace FILE`: a trace recorded with `hvkit run --trace FILE` (src/trace/attach.ts,
// writer.ts), printed one decoded line per event, or as JSON lines, optionally only some
// channels, kinds and directions. The file is read as a stream: a trace of any size prints as it
// is read.
import { InvalidArgumentError, type Command } from 'commander';
import { TRACE_DIRECTIONS, TRACE_KINDS, type TraceDirection, type TraceKind } from '../hypervisor/trace.js';
import { encodeEvent } from '../trace/codec.js';
import { ChannelResolver, matches, type TraceFilter } from '../trace/filter.js';
import { formatEvent } from '../trace/format.js';
import { readTraceFile, TraceFileError } from '../trace/reader.js';
import type { Io } from './main.js';
import { UsageError } from './errors.js';

interface TraceOptions {
  channel?: number[];
  kind?: TraceKind[];
  dir?: TraceDirection[];
  json: boolean;
}

/**
 * A list option: repeat it or give a comma-separated list (`--channel 1,2` or `--channel 1
 * --channel 2`). It takes one word at a time, so that `--kind packet FILE` leaves FILE alone.
 */
function listParser<T>(what: string, parse: (s: string) => T | undefined): (v: string, previous: T[] | undefined) => T[] {
  return (v, previous) => {
    const out = [...(previous ?? [])];
    for (const s of v.split(',')) {
      const x = parse(s.trim());
      if (x === undefined) throw new InvalidArgumentError(`expected ${what}`);
      out.push(x);
    }
    return out;
  };
}

export const parseChannels = listParser('channel relids (non-negative integers)', (s) => (/^\d+$/.test(s) && Number.isSafeInteger(Number(s)) ? Number(s) : undefined));
export const parseKinds = listParser(`kinds among ${TRACE_KINDS.join(', ')}`, (s) => TRACE_KINDS.find((k) => k === s));
export const parseDirs = listParser(`directions among ${TRACE_DIRECTIONS.join(', ')}`, (s) => TRACE_DIRECTIONS.find((d) => d === s));

/** Adds `trace`; `status.code` receives 1 when the file holds a line that is not an event. */
export function registerTrace(program: Command, io: Io, status: { code: number }): void {
  program
    .command('trace')
    .description('print a trace recorded with `run --trace`: every trap, message, signal and packet between guest and host, and what the hypervisor did on its own')
    .argument('<file>', 'a trace file (JSON lines)')
    .option('--channel <relids>', 'only events about these VMBus channels (messages, signals, packets); repeat or separate with commas', parseChannels)
    .option('--kind <kinds>', `only these kinds, repeated or separated with commas: ${TRACE_KINDS.join(', ')}`, parseKinds)
    .option('--dir <dir>', `only messages, signals and packets going this way: ${TRACE_DIRECTIONS.join(', ')}`, parseDirs)
    .option('--json', 'print the events as JSON lines, their channels filled in', false)
    .action(async (file: string, o: TraceOptions) => {
      const filter: TraceFilter = { channels: o.channel ?? [], kinds: o.kind ?? [], dirs: o.dir ?? [] };
      const resolver = new ChannelResolver();
      try {
        for await (const e of readTraceFile(file)) {
          const a = resolver.annotate(e);
          if (matches(a, filter)) io.out(o.json ? encodeEvent(a) : formatEvent(a));
        }
      } catch (e) {
        if (e instanceof TraceFileError) {
          io.err(`hvkit trace: ${file}: ${e.message}\n`);
          status.code = 1;
          return;
        }
        const code = (e as NodeJS.ErrnoException).code;
        if (typeof code === 'string') throw new UsageError(`cannot read '${file}': ${(e as Error).message}`);
        throw e;
      }
    });
}
