// A loaded trace at a chosen moment: the control plane (channel table, sequence diagram, packet
// counts) rebuilt from the events up to it, and the events around it that pass the filter.
import type { TraceEvent } from '../../../src/hypervisor/trace.js';
import { ChannelResolver, matches, type TraceFilter } from '../../../src/trace/filter.js';
import { ControlPlane } from '../model/control-plane.js';

/** Events the list shows before the chosen one. */
const LIST_BEFORE = 40;

export class Replay {
  /** Each event annotated with its channel where the trace tells it. */
  readonly events: readonly TraceEvent[];

  constructor(
    readonly name: string,
    events: readonly TraceEvent[],
  ) {
    const r = new ChannelResolver();
    this.events = events.map((e) => r.annotate(e));
  }

  get startNs(): number {
    return this.events[0]?.ns ?? 0;
  }

  get endNs(): number {
    return this.events.at(-1)?.ns ?? 0;
  }

  /** How many events happened at or before `ns`. */
  countAt(ns: number): number {
    let lo = 0;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.events[mid]!.ns <= ns) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The control plane after the first `count` events (the sequence keeps only those passing `filter`). */
  planeAt(count: number, filter: TraceFilter): ControlPlane {
    const plane = new ControlPlane();
    const kept = new ControlPlane();
    for (let i = 0; i < count; i++) {
      const e = this.events[i]!;
      plane.apply(e);
      if (matches(e, filter)) kept.apply(e);
    }
    // The table is the whole plane's; the diagram is the filtered one's.
    plane.steps.splice(0, plane.steps.length, ...kept.steps);
    return plane;
  }

  /** The events passing `filter` up to the `count`-th, the last LIST_BEFORE of them. */
  listAt(count: number, filter: TraceFilter): TraceEvent[] {
    const out: TraceEvent[] = [];
    for (let i = count - 1; i >= 0 && out.length < LIST_BEFORE; i--) {
      const e = this.events[i]!;
      if (matches(e, filter)) out.push(e);
    }
    return out.reverse();
  }
}
