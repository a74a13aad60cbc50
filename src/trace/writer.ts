// Recording a trace as JSON lines (codec.ts). Events arrive synchronously from the partition's
// event stream (attach.ts), often while the VM runs without yielding to the event loop, so the
// file is written with synchronous appends of a bounded buffer: a stream would hold the whole
// trace in memory until the run ended. Messages and signals get their `channel` on the way
// (filter.ts).
//
//   const file = openTraceFile(path);
//   const stop = attachTrace(m.partition, file);
//   ... run ...
//   stop();
//   await file.close();
import { Buffer } from 'node:buffer';
import { closeSync, openSync, writeSync } from 'node:fs';
import type { TraceEvent } from '../hypervisor/trace.js';
import type { Tracer } from './attach.js';
import { encodeEvent } from './codec.js';
import { ChannelResolver } from './filter.js';

/** A tracer writing JSON lines to `write`, `bufferBytes` characters at a time. */
export class JsonLinesTracer implements Tracer {
  private readonly resolver = new ChannelResolver();
  private chunks: string[] = [];
  private pending = 0;
  /** Events emitted so far. */
  count = 0;

  constructor(
    private readonly write: (text: string) => void,
    private readonly bufferBytes = 64 * 1024,
  ) {}

  emit(e: TraceEvent): void {
    const line = encodeEvent(this.resolver.annotate(e)) + '\n';
    this.chunks.push(line);
    this.pending += line.length;
    this.count++;
    if (this.pending >= this.bufferBytes) this.flush();
  }

  /** Writes out what is buffered. */
  flush(): void {
    if (this.pending === 0) return;
    const text = this.chunks.join('');
    this.chunks = [];
    this.pending = 0;
    this.write(text);
  }
}

/** A trace file being written. */
export interface TraceFile extends Tracer {
  readonly path: string;
  /** Events written so far. */
  readonly count: number;
  flush(): void;
  /** Flushes and closes the file; emitting afterwards throws. */
  close(): Promise<void>;
}

/**
 * Creates (or truncates) `path` and returns a tracer writing to it, for attachTrace. Throws the
 * file system's error if it cannot.
 */
export function openTraceFile(path: string): TraceFile {
  let fd: number | undefined = openSync(path, 'w');
  const out = new JsonLinesTracer((text) => {
    if (fd === undefined) throw new Error(`trace file '${path}' is closed`);
    // writeSync may write less than asked (a pipe, a full disk's last bytes): loop.
    const b = Buffer.from(text, 'utf8');
    for (let at = 0; at < b.length; ) at += writeSync(fd, b, at);
  });
  return {
    path,
    get count() {
      return out.count;
    },
    emit(e) {
      if (fd === undefined) throw new Error(`trace file '${path}' is closed`);
      out.emit(e);
    },
    flush: () => out.flush(),
    close() {
      if (fd !== undefined) {
        out.flush();
        closeSync(fd);
        fd = undefined;
      }
      return Promise.resolve();
    },
  };
}
