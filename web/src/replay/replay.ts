// A loaded trace at a chosen moment: the control plane (channel table, sequence diagram, packet
// counts) rebuilt from the events up to it, each channel's rings as its last packet each way
// left them, and the events around it that pass the filter.
import { ringFill, type PacketEvent, type TraceEvent } from '../../../src/hypervisor/trace.js';
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

  /**
   * Each channel's rings after the first `count` events, as the last packet each way that
   * carries the ring's indices left them (PacketEvent): 'to-host' packets tell the guest→host
   * ring, 'to-guest' ones the host→guest ring. A ring no such packet crossed yet is absent.
   */
  ringsAt(count: number): Map<number, ChannelRings> {
    const rings = new Map<number, ChannelRings>();
    for (let i = 0; i < count; i++) {
      const e = this.events[i]!;
      if (e.kind !== 'packet') continue;
      const r = packetRing(e);
      if (!r) continue;
      const c = rings.get(e.channel) ?? {};
      if (e.dir === 'to-host') c.outbound = r;
      else c.inbound = r;
      rings.set(e.channel, c);
    }
    return rings;
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

/** One ring as a packet event left it: its indices, its data area and the bytes waiting in it. */
export interface TracedRing {
  readIndex: number;
  writeIndex: number;
  dataSize: number;
  /** Bytes waiting (hv_get_bytes_to_read), and free (hv_get_bytes_to_write). */
  bytesAvailToRead: number;
  bytesAvailToWrite: number;
  /** When the packet crossed. */
  ns: number;
}

/** A channel's guest→host (outbound) and host→guest (inbound) rings, where the trace told them. */
export interface ChannelRings {
  outbound?: TracedRing;
  inbound?: TracedRing;
}

function packetRing(e: PacketEvent): TracedRing | undefined {
  const fill = ringFill(e);
  // A trace from before the indices were recorded, or indices no ring could hold.
  if (fill === undefined || fill > e.ringSize!) return undefined;
  return { readIndex: e.readIndex!, writeIndex: e.writeIndex!, dataSize: e.ringSize!, bytesAvailToRead: fill, bytesAvailToWrite: e.ringSize! - fill, ns: e.ns };
}
