// Parsing trace text (codec.ts's JSON lines) into events. A line that is not an event is a
// TraceFileError naming its line number and the field at fault; nothing a text holds makes the
// parser fail any other way. Blank lines are skipped. Platform-neutral: reader.ts adds files,
// the web app parses what the page was given.
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
export const stripCr = (s: string): string => (s.endsWith('\r') ? s.slice(0, -1) : s);

/** Every event of a whole trace held in memory. */
export function parseTrace(text: string): TraceEvent[] {
  const events: TraceEvent[] = [];
  text.split('\n').forEach((l, i) => {
    const e = parseTraceLine(stripCr(l), i + 1);
    if (e) events.push(e);
  });
  return events;
}

