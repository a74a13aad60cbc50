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
 *
 * @example
 * ```ts
 * import { mkdtempSync } from 'node:fs';
 * import { tmpdir } from 'node:os';
 * import { join } from 'node:path';
 * import { attachTrace, formatEvent, Machine, openTraceFile, readTraceFile } from 'hvkit';
 *
 * // Record a boot, as `hvkit run --trace FILE` does...
 * const path = join(mkdtempSync(join(tmpdir(), 'hvkit-trace-')), 'boot.jsonl');
 * const m = new Machine({ release: 'ws2022', vps: 2 });
 * const file = openTraceFile(path);
 * const stop = attachTrace(m.partition, file);
 * m.boot();
 * stop();
 * await file.close();
 *
 * // ...then read it back, one event at a time, and print the first VMBus message.
 * for await (const e of readTraceFile(path)) {
 *   if (e.kind === 'message') {
 *     console.log(formatEvent(e).trim()); // → 0.417000 vp0  to-host  msg conn 0x4  INITIATE_CONTACT vmbus_version_requested=0x50003 (version 5.3) target_vcpu=0 msg_sint=2 msg_vtl=0 feature_flags=0 monitor_page1=0x100c000 monitor_page2=0x100d000
 *     break;
 *   }
 * }
 * ```
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
