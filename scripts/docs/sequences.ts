// Mermaid sequence diagrams drawn from the traced runs (runs.ts): each arrow is one event of the
// trace, labelled from its decoded bytes. What each diagram shows is a selection of a run's
// events, never a drawing made by hand.
import { HvCall } from '../../src/tlfs/hypercall-codes.js';
import { msrName } from '../../src/tlfs/msr.js';
import { statusName } from '../../src/tlfs/status.js';
import type { TraceEvent } from '../../src/hypervisor/trace.js';
import { hexBytes } from '../../src/trace/codec.js';
import { ChannelMessageType as T, versionString } from '../../src/vmbus/wire/constants.js';
import { className, DeviceClass } from '../../src/vmbus/wire/guids.js';
import { decodeChannelMessage, type ChannelMessage } from '../../src/vmbus/wire/messages.js';
import { fence } from './markdown.js';
import { run, type RunName } from './runs.js';

type Who = 'G' | 'HV' | 'H';
interface Arrow {
  from: Who;
  to: Who;
  text: string;
  /** A dashed arrow: an answer. */
  reply?: boolean;
}

const hex = (v: number | bigint): string => `0x${v.toString(16)}`;

function message(e: TraceEvent): ChannelMessage | undefined {
  if (e.kind !== 'message' || e.type !== 1) return undefined;
  try {
    return decodeChannelMessage(hexBytes(e.payload));
  } catch {
    return undefined;
  }
}

/** One line about a channel message: its name and the fields that matter to a reader. */
function messageText(m: ChannelMessage): string {
  const v = m.value as Record<string, unknown>;
  switch (m.type) {
    case T.INITIATE_CONTACT:
      return `INITIATE_CONTACT version ${versionString(Number(v['vmbus_version_requested']))}, target VP ${String(v['target_vcpu'])}`;
    case T.VERSION_RESPONSE:
      return `VERSION_RESPONSE ${v['version_supported'] ? `accepted, msg_conn_id ${String(v['msg_conn_id'])}` : 'rejected'}`;
    case T.OFFERCHANNEL: {
      const offer = v['offer'] as { if_type: string; sub_channel_index: number };
      const sub = offer.sub_channel_index ? `, sub-channel ${offer.sub_channel_index}` : '';
      const name = className(offer.if_type);
      return `OFFERCHANNEL relid ${String(v['child_relid'])}: ${name ? `${name} (${offer.if_type.slice(0, 8)}…)` : offer.if_type}${sub}`;
    }
    case T.GPADL_HEADER: {
      const pfns = (Number(v['range_buflen']) - 8) / 8;
      return `GPADL_HEADER relid ${String(v['child_relid'])}, gpadl ${hex(Number(v['gpadl']))}, ${pfns} pages, ${m.extra.length / 8 - 1} PFNs in this message`;
    }
    case T.GPADL_BODY:
      return `GPADL_BODY gpadl ${hex(Number(v['gpadl']))}, ${m.extra.length / 8} PFNs`;
    case T.GPADL_CREATED:
      return `GPADL_CREATED relid ${String(v['child_relid'])}, gpadl ${hex(Number(v['gpadl']))}, status ${hex(Number(v['creation_status']))}`;
    case T.OPENCHANNEL:
      return `OPENCHANNEL relid ${String(v['child_relid'])}, ring gpadl ${hex(Number(v['ringbuffer_gpadlhandle']))}, target VP ${String(v['target_vp'])}, downstream at page ${String(v['downstream_ringbuffer_pageoffset'])}`;
    case T.OPENCHANNEL_RESULT:
      return `OPENCHANNEL_RESULT relid ${String(v['child_relid'])}, status ${hex(Number(v['status']))}`;
    case T.GPADL_TEARDOWN:
      return `GPADL_TEARDOWN relid ${String(v['child_relid'])}, gpadl ${hex(Number(v['gpadl']))}`;
    case T.GPADL_TORNDOWN:
      return `GPADL_TORNDOWN gpadl ${hex(Number(v['gpadl']))}`;
    default:
      return 'child_relid' in v ? `${m.name} relid ${String(v['child_relid'])}` : m.name;
  }
}

const POST_MESSAGE = HvCall.POST_MESSAGE;
const SIGNAL_EVENT = HvCall.SIGNAL_EVENT;

/** The arrow an event draws, if it is one the diagram wants. */
function arrowOf(e: TraceEvent): Arrow | undefined {
  switch (e.kind) {
    case 'message': {
      const m = message(e);
      if (!m) return undefined;
      // A post to a connection that leads to no port stops at the hypervisor.
      if (e.dir === 'to-host' && e.port === undefined) return { from: 'G', to: 'HV', text: `HvCallPostMessage connection ${e.connection}: ${messageText(m)}` };
      if (e.dir === 'to-host') return { from: 'G', to: 'H', text: `${messageText(m)} (connection ${e.connection})` };
      return { from: 'H', to: 'G', text: `${messageText(m)} (VP ${e.vp})` };
    }
    case 'signal':
      if (e.dir === 'to-host') return { from: 'G', to: 'H', text: `signal: HvCallSignalEvent connection ${hex(e.connection)}` };
      if (e.coalesced) return undefined;
      return { from: 'H', to: 'G', text: `signal: event flag ${e.flag} in SINT${e.sint} of VP ${e.vp}` };
    case 'packet':
      return { from: e.dir === 'to-host' ? 'G' : 'H', to: e.dir === 'to-host' ? 'H' : 'G', text: `packet type ${e.type}, ${e.length} bytes, trans_id ${hex(e.transId)}` };
    case 'trap':
      if (e.what === 'wrmsr') return { from: 'G', to: 'HV', text: `VP ${e.vp}: wrmsr ${msrName(e.msr)} = ${hex(e.value)}${e.fault ? ` (${e.fault})` : ''}` };
      if (e.what === 'hypercall' && e.code === POST_MESSAGE && e.status) return { from: 'HV', to: 'G', reply: true, text: statusName(e.status) };
      return undefined;
    default:
      return undefined;
  }
}

interface Diagram {
  run: RunName;
  /** The events to draw, from the run's events. */
  select: (events: readonly TraceEvent[], from: number) => TraceEvent[];
  participants: readonly Who[];
}

const isMessage = (e: TraceEvent, type: number): boolean => message(e)?.type === type;
const indexOfMessage = (events: readonly TraceEvent[], type: number, from = 0): number => events.findIndex((e, i) => i >= from && isMessage(e, type));

/** Events from the first message of type `first` to the first of type `last` after it, both included. */
const between = (first: number, last: number, keep: (e: TraceEvent) => boolean) => (events: readonly TraceEvent[], from: number) => {
  const a = indexOfMessage(events, first, from);
  const b = indexOfMessage(events, last, a);
  if (a < 0 || b < 0) throw new Error(`the run has no message ${first} followed by ${last}`);
  return events.slice(a, b + 1).filter(keep);
};

const messagesOnly = (e: TraceEvent): boolean => e.kind === 'message';
const failedPosts = (e: TraceEvent): boolean => e.kind === 'message' || (e.kind === 'trap' && e.what === 'hypercall' && e.code === POST_MESSAGE && !!e.status);

/** The relid of the first offer of `classId` in `events`. */
function relidOf(events: readonly TraceEvent[], classId: string): number {
  for (const e of events) {
    const m = message(e);
    if (m?.type === T.OFFERCHANNEL && (m.value as { offer: { if_type: string } }).offer.if_type === classId) return (m.value as { child_relid: number }).child_relid;
  }
  throw new Error(`no offer of ${classId}`);
}

/** A channel's open: its ring GPADL, OPENCHANNEL and the first packets each way. */
function channelOpen(events: readonly TraceEvent[]): TraceEvent[] {
  const relid = relidOf(events, DeviceClass.HEART_BEAT);
  const start = events.findIndex((e) => isMessage(e, T.GPADL_HEADER) && e.kind === 'message' && e.channel === relid);
  const out: TraceEvent[] = [];
  let packetsToHost = 0;
  for (const e of events.slice(start)) {
    if (!('channel' in e) || e.channel !== relid) continue;
    if (!arrowOf(e)) continue;
    out.push(e);
    if (e.kind === 'packet' && e.dir === 'to-host' && ++packetsToHost === 2) break;
  }
  return out;
}

/** Revocation at kexec: the Hyper-V MSRs written, the posts, the messages. */
const hyperVMsr = (msr: number): boolean => msr >= 0x40000000 && msr < 0x40001000;
const kexecEvents = (events: readonly TraceEvent[], from: number): TraceEvent[] =>
  events.slice(from).filter((e) => e.kind === 'message' || (e.kind === 'trap' && e.what === 'wrmsr' && hyperVMsr(e.msr)) || (e.kind === 'trap' && e.what === 'hypercall' && e.code !== SIGNAL_EVENT && !!e.status));

export const DIAGRAMS: Readonly<Record<string, Diagram>> = {
  connect: { run: 'boot', select: between(T.INITIATE_CONTACT, T.REQUESTOFFERS, messagesOnly), participants: ['G', 'H'] },
  'connect-fallback': { run: 'boot-ws2016', select: between(T.INITIATE_CONTACT, T.REQUESTOFFERS, failedPosts), participants: ['G', 'HV', 'H'] },
  offers: { run: 'boot', select: between(T.REQUESTOFFERS, T.ALLOFFERS_DELIVERED, messagesOnly), participants: ['G', 'H'] },
  open: { run: 'settled', select: channelOpen, participants: ['G', 'H'] },
  rescind: { run: 'rescind', select: (events, from) => events.slice(from).filter(messagesOnly), participants: ['G', 'H'] },
  unload: { run: 'kexec', select: (events, from) => events.slice(from).filter(messagesOnly), participants: ['G', 'H'] },
  kexec: { run: 'kexec', select: kexecEvents, participants: ['G', 'HV', 'H'] },
};

const NAMES: Readonly<Record<Who, string>> = { G: 'Guest (Linux 6.1 model)', HV: 'Hypervisor', H: 'Host (VMBus server and devices)' };

/** The diagram `name` as a fenced Mermaid block, with the command it was traced from. */
export async function sequenceDiagram(name: string): Promise<string> {
  const d = DIAGRAMS[name];
  if (!d) throw new Error(`no diagram '${name}' (have ${Object.keys(DIAGRAMS).join(', ')})`);
  const r = await run(d.run);
  const arrows = d.select(r.events, r.from).map(arrowOf).filter((a): a is Arrow => a !== undefined);
  if (!arrows.length) throw new Error(`diagram '${name}' has no arrows`);
  const lines = ['sequenceDiagram', ...d.participants.map((p) => `  participant ${p} as ${NAMES[p]}`), ...arrows.map((a) => `  ${a.from}${a.reply ? '-->>' : '->>'}${a.to}: ${a.text.replace(/[;#]/g, ',')}`)];
  return `${fence('mermaid', lines.join('\n'))}\n\n<sub>Drawn from the trace of \`${r.title}\` (${arrows.length} events).</sub>`;
}
