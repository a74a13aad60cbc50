// Reading a trace file the page was given (recorded by `hvkit run --trace`): the CLI's parser
// (src/trace/parse.ts) over the file's text, with the refusals a page needs on top: an empty
// file, a file too large to hold, bytes that are not UTF-8. Every refusal is a TraceLoadError
// whose message says what was wrong; nothing a file holds makes loading fail any other way.
import type { TraceEvent } from '../../../src/hypervisor/trace.js';
import { parseTrace, TraceFileError } from '../../../src/trace/parse.js';

/** The largest trace the page reads: it holds every event in memory to scrub through them. */
export const MAX_TRACE_BYTES = 64 << 20;

export class TraceLoadError extends Error {
  override readonly name = 'TraceLoadError';
}

const mib = (n: number): string => `${(n / (1 << 20)).toFixed(1)} MiB`;

/** Refuses a file by its size alone, before its bytes are read. */
export function checkTraceSize(name: string, size: number): void {
  if (size === 0) throw new TraceLoadError(`${name}: the file is empty: a trace has one event per line`);
  if (size > MAX_TRACE_BYTES) throw new TraceLoadError(`${name}: ${mib(size)} is more than the ${mib(MAX_TRACE_BYTES)} a page reads; cut it with \`hvkit trace --json --channel/--kind\` first`);
}

/** The events of a trace file's bytes, in order. */
export function loadTrace(name: string, bytes: Uint8Array): TraceEvent[] {
  checkTraceSize(name, bytes.length);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new TraceLoadError(`${name}: not a trace: the file is not UTF-8 text`);
  }
  let events: TraceEvent[];
  try {
    events = parseTrace(text);
  } catch (e) {
    if (e instanceof TraceFileError) {
      const last = e.line === text.split('\n').length && !text.endsWith('\n');
      throw new TraceLoadError(`${name}: not a trace: line ${e.line}: ${e.reason}${last ? ' (the file may be cut short)' : ''}`);
    }
    throw e;
  }
  if (events.length === 0) throw new TraceLoadError(`${name}: the file holds no events (blank lines only)`);
  for (let i = 1; i < events.length; i++) {
    if (events[i]!.ns < events[i - 1]!.ns) throw new TraceLoadError(`${name}: not a trace: event ${i + 1} (at ${events[i]!.ns} ns) is earlier than the one before it`);
  }
  return events;
}
