// Recording a partition's event stream (src/hypervisor/trace.ts): a tracer (a JSON-lines file,
// writer.ts; a list in a test) subscribes to `partition.events` and gets every event in order,
// until the function attachTrace returns is called. Any number may listen at once; with none,
// the hypervisor builds no event at all.
import type { EventBus, TraceEvent } from '../hypervisor/trace.js';

/** What records trace events: the trace layer's listener. */
export interface Tracer {
  emit(e: TraceEvent): void;
}

/** Anything with the partition's event stream (a Partition). */
export interface TraceSource {
  readonly events: Pick<EventBus, 'on'>;
}

/**
 * Sends every event of `source` (a Partition) to `tracer` from now on; returns what stops it.
 * Stop before closing a file tracer: a closed file refuses events.
 */
export function attachTrace(source: TraceSource, tracer: Tracer): () => void {
  return source.events.on((e) => tracer.emit(e));
}
