// Which VMBus channel an event is about, and choosing events by channel, kind and direction.
//
// Packets carry their channel. Messages name it in child_relid when their type has one
// (vmbus.md §2); GPADL_BODY and GPADL_TORNDOWN name only the GPADL, whose channel its
// GPADL_HEADER gave. A guest signals a channel on the connection id its OFFERCHANNEL gave
// (Linux vmbus_set_event), and the host sets event flag `relid` of the VMBus SINT (Linux
// vmbus_chan_sched scans the flags by relid). So the channel of a signal or a GPADL message is
// known once the trace has shown its offer or header: a resolver reads the trace in order.
import type { MessageEvent, PacketEvent, SignalEvent, TraceDirection, TraceEvent, TraceKind } from '../hypervisor/trace.js';
import { WireError } from '../tlfs/struct.js';
import { ChannelMessageType, VMBUS_MESSAGE_SINT, VMBUS_MESSAGE_TYPE } from '../vmbus/wire/constants.js';
import { decodeChannelMessage, type ChannelMessage } from '../vmbus/wire/messages.js';
import { hexBytes } from './codec.js';

/** Follows a trace in order and tells the channel (relid) of each event it can. */
export class ChannelResolver {
  private readonly byConnection = new Map<number, number>();
  private readonly byGpadl = new Map<number, number>();

  /** The channel of `e`; events must come in trace order. */
  channelOf(e: TraceEvent): number | undefined {
    switch (e.kind) {
      case 'packet':
        return e.channel;
      case 'message':
        return this.messageChannel(e) ?? e.channel;
      case 'signal':
        if (e.channel !== undefined) return e.channel;
        if (e.dir === 'to-host') return this.byConnection.get(e.connection);
        return e.sint === VMBUS_MESSAGE_SINT && e.flag !== 0 ? e.flag : undefined;
      default:
        // Traps and the hypervisor's own events are about no channel.
        return undefined;
    }
  }

  /** `e` with its `channel` filled in when it can be told (the same object if there is nothing to add). */
  annotate(e: TraceEvent): TraceEvent {
    const channel = this.channelOf(e);
    if (channel === undefined || (e.kind !== 'message' && e.kind !== 'signal') || e.channel === channel) return e;
    return { ...e, channel };
  }

  private messageChannel(e: MessageEvent): number | undefined {
    if (e.type !== VMBUS_MESSAGE_TYPE) return undefined;
    let m: ChannelMessage;
    try {
      m = decodeChannelMessage(hexBytes(e.payload));
    } catch (err) {
      if (err instanceof WireError) return undefined;
      throw err;
    }
    switch (m.type) {
      case ChannelMessageType.OFFERCHANNEL:
        this.byConnection.set(m.value.connection_id, m.value.child_relid);
        return m.value.child_relid;
      case ChannelMessageType.GPADL_HEADER:
        this.byGpadl.set(m.value.gpadl, m.value.child_relid);
        return m.value.child_relid;
      case ChannelMessageType.GPADL_BODY:
        return this.byGpadl.get(m.value.gpadl);
      case ChannelMessageType.GPADL_TORNDOWN:
        return this.byGpadl.get(m.value.gpadl);
    }
    return 'child_relid' in m.value ? m.value.child_relid : undefined;
  }
}

/** What to keep; an absent or empty list keeps everything in that respect. */
export interface TraceFilter {
  /** Channel relids: keeps the events about one of them (traps and hypervisor events are about none). */
  readonly channels?: readonly number[];
  readonly kinds?: readonly TraceKind[];
  /** Keeps messages, signals and packets going this way (other kinds have no direction). */
  readonly dirs?: readonly TraceDirection[];
}

/** Whether `e` passes `f`. `e` should be annotated (ChannelResolver) for the channel test. */
export function matches(e: TraceEvent, f: TraceFilter): boolean {
  if (f.kinds?.length && !f.kinds.includes(e.kind)) return false;
  if (f.dirs?.length && !(hasDirection(e) && f.dirs.includes(e.dir))) return false;
  if (f.channels?.length && !(hasDirection(e) && e.channel !== undefined && f.channels.includes(e.channel))) return false;
  return true;
}

/** Messages, signals and packets: the events that cross one way or the other, and may be about a channel. */
export function hasDirection(e: TraceEvent): e is MessageEvent | SignalEvent | PacketEvent {
  return e.kind === 'message' || e.kind === 'signal' || e.kind === 'packet';
}

/** The events of a trace that pass `f`, annotated with their channels, in order. */
export function* selectEvents(events: Iterable<TraceEvent>, f: TraceFilter = {}): Generator<TraceEvent> {
  const r = new ChannelResolver();
  for (const e of events) {
    const a = r.annotate(e);
    if (matches(a, f)) yield a;
  }
}
