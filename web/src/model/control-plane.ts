// The VMBus control plane as the event stream shows it (the partition's events, live or read
// from a trace file): the channel table (offers, opens, closes, rescinds) and the sequence of
// channel messages between guest and host, plus packet and signal counts per channel. One model
// serves the live view and the replay of a trace at a chosen moment.
import type { TraceEvent, TraceKind } from '../../../src/hypervisor/trace.js';
import { hexBytes } from '../../../src/trace/codec.js';
import { ChannelResolver } from '../../../src/trace/filter.js';
import { WireError } from '../../../src/tlfs/struct.js';
import { ChannelMessageType, VMBUS_MESSAGE_TYPE } from '../../../src/vmbus/wire/constants.js';
import { decodeChannelMessage } from '../../../src/vmbus/wire/messages.js';
import { className } from './classes.js';

export type ChannelPhase = 'offered' | 'opening' | 'open' | 'closed' | 'rescinded' | 'released';

export interface ChannelRow {
  relid: number;
  classId: string;
  className: string;
  instance: string;
  subChannel: number;
  connectionId: number;
  state: ChannelPhase;
  /** Target VP from the guest's OPENCHANNEL. */
  targetVp: number | undefined;
  packetsToHost: number;
  packetsToGuest: number;
  signalsToHost: number;
  signalsToGuest: number;
}

/** One arrow of the sequence diagram. */
export interface SequenceStep {
  ns: number;
  from: 'guest' | 'host';
  name: string;
  relid: number | undefined;
  /** A short note: the version, the GPADL handle, a status. */
  detail: string;
}

/** The kinds the live views follow: the messages (the diagram) and the signals (per-channel counts). */
export const CONTROL_KINDS: readonly TraceKind[] = ['message', 'signal'];

/** The arrows kept: the oldest are dropped past this many (a long run keeps sending messages). */
export const MAX_STEPS = 2000;

const hex = (n: number): string => `0x${n.toString(16)}`;

export class ControlPlane {
  readonly channels = new Map<number, ChannelRow>();
  readonly steps: SequenceStep[] = [];
  /** Steps dropped off the front. */
  dropped = 0;
  version = '';
  /** Events seen, and the last one's time. */
  events = 0;
  lastNs = 0;
  private readonly resolver = new ChannelResolver();

  apply(e: TraceEvent): void {
    this.events++;
    this.lastNs = e.ns;
    const relid = this.resolver.channelOf(e);
    if (e.kind === 'packet') {
      const ch = this.channels.get(e.channel);
      if (ch && e.dir === 'to-host') ch.packetsToHost++;
      else if (ch) ch.packetsToGuest++;
      return;
    }
    if (e.kind === 'signal') {
      const ch = relid === undefined ? undefined : this.channels.get(relid);
      if (ch && e.dir === 'to-host') ch.signalsToHost++;
      else if (ch) ch.signalsToGuest++;
      return;
    }
    if (e.kind !== 'message' || e.type !== VMBUS_MESSAGE_TYPE) return;
    let m;
    try {
      m = decodeChannelMessage(hexBytes(e.payload));
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      this.step({ ns: e.ns, from: e.dir === 'to-host' ? 'guest' : 'host', name: 'malformed message', relid: undefined, detail: err.message });
      return;
    }
    const from = e.dir === 'to-host' ? 'guest' : 'host';
    let detail = '';
    const ch = relid === undefined ? undefined : this.channels.get(relid);
    switch (m.type) {
      case ChannelMessageType.INITIATE_CONTACT:
        detail = `version ${m.value.vmbus_version_requested >>> 16}.${m.value.vmbus_version_requested & 0xffff}`;
        break;
      case ChannelMessageType.VERSION_RESPONSE:
        detail = m.value.version_supported ? 'supported' : 'refused';
        break;
      case ChannelMessageType.OFFERCHANNEL: {
        const o = m.value.offer;
        this.channels.set(m.value.child_relid, {
          relid: m.value.child_relid,
          classId: o.if_type,
          className: className(o.if_type),
          instance: o.if_instance,
          subChannel: o.sub_channel_index,
          connectionId: m.value.connection_id,
          state: 'offered',
          targetVp: undefined,
          packetsToHost: 0,
          packetsToGuest: 0,
          signalsToHost: 0,
          signalsToGuest: 0,
        });
        detail = className(o.if_type);
        break;
      }
      case ChannelMessageType.OPENCHANNEL:
        if (ch) {
          ch.state = 'opening';
          ch.targetVp = m.value.target_vp;
        }
        detail = `target VP ${m.value.target_vp}`;
        break;
      case ChannelMessageType.OPENCHANNEL_RESULT:
        if (ch) ch.state = m.value.status === 0 ? 'open' : 'closed';
        detail = `status ${hex(m.value.status)}`;
        break;
      case ChannelMessageType.CLOSECHANNEL:
        if (ch) ch.state = 'closed';
        break;
      case ChannelMessageType.RESCIND_CHANNELOFFER:
        if (ch) ch.state = 'rescinded';
        break;
      case ChannelMessageType.RELID_RELEASED:
        if (ch) ch.state = 'released';
        break;
      case ChannelMessageType.GPADL_HEADER:
      case ChannelMessageType.GPADL_CREATED:
      case ChannelMessageType.GPADL_TEARDOWN:
      case ChannelMessageType.GPADL_TORNDOWN:
        detail = `gpadl ${hex(m.value.gpadl)}`;
        break;
      case ChannelMessageType.MODIFYCHANNEL:
        if (ch) ch.targetVp = m.value.target_vp;
        detail = `target VP ${m.value.target_vp}`;
        break;
    }
    if (m.type === ChannelMessageType.VERSION_RESPONSE && m.value.version_supported) this.version = 'connected';
    this.step({ ns: e.ns, from, name: m.name, relid, detail });
  }

  private step(s: SequenceStep): void {
    this.steps.push(s);
    if (this.steps.length > MAX_STEPS) {
      this.steps.splice(0, this.steps.length - MAX_STEPS);
      this.dropped++;
    }
  }
}
