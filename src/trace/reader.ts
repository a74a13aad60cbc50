// Reading a trace file (codec.ts's JSON lines) back into events, line by line. A line that is
// not an event is a TraceFileError naming its line number and the field at fault; nothing a
// file holds makes the reader fail any other way. Blank lines are skipped.
import { createReadStream } from 'node:fs';
import type { TraceEvent } from '../hypervisor/trace.js';
import { decodeEvent } from './codec.js';

/** A line of a trace file that is not a trace event. */
export class TraceFileError extends Error {
  override readonly name = 'TraceFileError';
  constructor(
    /** 1-based. */
    readonly line: number,
    readonly reason: string,
  ) {
    super(`line ${line}: ${reason}`);
  }
}

/** The event on line `line` (its text without the line break), or undefined for a blank line. */
export function parseTraceLine(text: string, line: number): TraceEvent | undefined {
  if (text.trim() === '') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new TraceFileError(line, `not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const d = decodeEvent(v);
  if (!d.ok) throw new TraceFileError(line, d.reason);
  return d.event;
}

/** Lines end at '\n'; a '\r' before it (a file edited on Windows) is not part of the line. */
const stripCr = (s: string): string => (s.endsWith('\r') ? s.slice(0, -1) : s);

/** Every event of a whole trace held in memory. */
export function parseTrace(text: string): TraceEvent[] {
  const events: TraceEvent[] = [];
  text.split('\n').forEach((l, i) => {
    const e = parseTraceLine(stripCr(l), i + 1);
    if (e) events.push(e);
  });
  return events;
}

/**
 * The events of the trace file at `path`, as they are read: a large trace is never held whole.
 * File system errors (no such file) propagate as they are; bad lines are TraceFileErrors.
 */
export async function* readTraceFile(path: string): AsyncGenerator<TraceEvent> {
  let line = 0;
  let rest = '';
  // utf8 decoding in the stream keeps a character split between chunks whole.
  for await (const chunk of createReadStream(path, { encoding: 'utf8' }) as AsyncIterable<string>) {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop()!;
    for (const p of parts) {
      const e = parseTraceLine(stripCr(p), ++line);
      if (e) yield e;
    }
  }
  const e = parseTraceLine(stripCr(rest), line + 1);
  if (e) yield e;
}
