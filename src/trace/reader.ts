// Reading a trace file back into events, line by line (parse.ts parses each line): a large
// trace is never held whole.
import { createReadStream } from 'node:fs';
import type { TraceEvent } from '../hypervisor/trace.js';
import { parseTraceLine, stripCr } from './parse.js';

export { parseTrace, parseTraceLine, TraceFileError } from './parse.js';

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
