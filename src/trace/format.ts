// A trace event as one line a person reads: the time as dmesg prints it ("%5lu.%06lu"), who
// (the VP, the channel for a ring packet, "--" for the whole partition), which way ("trap",
// "to-host", "to-guest", or "hv" for what the hypervisor does on its own), and what crossed,
// decoded. Channel messages and ring packets are decoded by src/vmbus/wire/describe.ts, the
// decoder of `hvkit decode`; hypervisor messages, MSRs, hypercalls and statuses are named from
// src/tlfs.
import { ringFill, traceHex, type HypercallTrap, type HypervisorEvent, type MessageEvent, type PacketEvent, type SignalEvent, type TraceEvent, type TrapEvent } from '../hypervisor/trace.js';
import { callName } from '../tlfs/hypercall-codes.js';
import { msrName } from '../tlfs/msr.js';
import { statusName } from '../tlfs/status.js';
import { HvMessageType } from '../tlfs/synic.js';
import { TimerMessagePayload } from '../tlfs/time.js';
import { VMBUS_MESSAGE_TYPE } from '../vmbus/wire/constants.js';
import { describeBytes, errorLine, type Field } from '../vmbus/wire/describe.js';
import { hexBytes } from './codec.js';

/** Seconds and microseconds of virtual time, as dmesg and the guest's log print them. */
export function formatTime(ns: number): string {
  const sec = Math.floor(ns / 1e9);
  const usec = Math.floor((ns % 1e9) / 1000);
  return `${String(sec).padStart(5, ' ')}.${String(usec).padStart(6, '0')}`;
}

const h = (v: number | bigint): string => `0x${v.toString(16)}`;
/** Text from a file kept on its line: anything but printable ASCII is shown quoted and escaped. */
const safe = (s: string): string => (/^[\x20-\x7e]*$/.test(s) ? s : JSON.stringify(s));
/** Connection ids and codes in hex whatever their value, as C's "%#x" (0 stays "0"). */
const num = (n: number): string => (n === 0 ? '0' : h(n));

/** Bytes shown at most in a line; --json has them all. */
const SHOWN_BYTES = 32;

/** One line for `e`. */
export function formatEvent(e: TraceEvent): string {
  const way = e.kind === 'trap' ? 'trap' : 'dir' in e ? e.dir : 'hv';
  return `${formatTime(e.ns)} ${who(e).padEnd(4)} ${way.padEnd(8)} ${body(e)}`;
}

function who(e: TraceEvent): string {
  if (e.kind === 'packet') return `ch${e.channel}`;
  if (e.kind === 'ipi') return `vp${e.from}`;
  return 'vp' in e && e.vp !== undefined ? `vp${e.vp}` : '--';
}

function body(e: TraceEvent): string {
  switch (e.kind) {
    case 'trap':
      return trap(e);
    case 'message':
      return message(e);
    case 'signal':
      return signal(e);
    case 'packet':
      return packet(e);
    default:
      return `${e.kind}${hypervisor(e)}`;
  }
}

// --- Traps ------------------------------------------------------------------------------------

/** Architectural MSRs a guest touches besides the synthetic ones (Linux msr-index.h, apicdef.h). */
const ARCH_MSRS: Readonly<Record<number, string>> = {
  0x10: 'IA32_TSC',
  0x1b: 'IA32_APICBASE',
  0x802: 'X2APIC_ID',
  0x808: 'X2APIC_TASKPRI',
  0x80b: 'X2APIC_EOI',
  0x830: 'X2APIC_ICR',
};

function msrText(msr: number): string {
  const name = ARCH_MSRS[msr] ?? msrName(msr);
  return name.startsWith('MSR_0x') ? h(msr) : `${h(msr)} ${name}`;
}

function trap(e: TrapEvent): string {
  switch (e.what) {
    case 'cpuid':
      return `cpuid ${h(e.leaf)}${e.subleaf ? `.${e.subleaf}` : ''} -> eax=${h(e.eax)} ebx=${h(e.ebx)} ecx=${h(e.ecx)} edx=${h(e.edx)}`;
    case 'rdmsr':
      return `rdmsr ${msrText(e.msr)} -> ${e.value !== undefined ? h(e.value) : safe(e.fault ?? '?')}`;
    case 'wrmsr':
      return `wrmsr ${msrText(e.msr)} <- ${h(e.value)}${e.fault ? ` ${safe(e.fault)}` : ''}`;
    case 'hypercall':
      return hypercall(e);
    case 'smccc':
      return `smccc ${h(e.func)} -> ${e.result !== undefined ? h(e.result) : safe(e.fault ?? '?')}`;
  }
}

function hypercall(e: HypercallTrap): string {
  const parts = [`hypercall ${h(e.code)} ${callName(e.code)}`];
  if (e.fast) parts.push('fast');
  if (e.repCount) parts.push(`rep ${e.repStart}..${e.repCount}`);
  parts.push(`in=${h(e.input)} out=${h(e.output)}`);
  let result = e.fault !== undefined ? safe(e.fault) : e.status !== undefined ? statusName(e.status) : '?';
  if (e.repCount && e.repsCompleted !== undefined) result += ` reps=${e.repsCompleted}`;
  return `${parts.join(' ')} -> ${result}`;
}

// --- Messages and signals ----------------------------------------------------------------------

const hvMessageTypes = new Map<number, string>(Object.entries(HvMessageType).map(([k, v]) => [v, `HVMSG_${k}`]));

function message(e: MessageEvent): string {
  const at = e.dir === 'to-host' ? `msg conn ${num(e.connection)}` : `msg sint ${e.sint}`;
  const bytes = hexBytes(e.payload);
  if (e.type === VMBUS_MESSAGE_TYPE) return `${at}  ${channelMessage(bytes, e.channel)}`;
  const name = hvMessageTypes.get(e.type) ?? `type ${h(e.type)}`;
  if (e.type === HvMessageType.TIMER_EXPIRED && bytes.length >= TimerMessagePayload.size) {
    const t = TimerMessagePayload.decode(bytes);
    return `${at}  ${name} timer_index=${t.timer_index} expiration_time=${h(t.expiration_time)} delivery_time=${h(t.delivery_time)}`;
  }
  return `${at}  ${name} payload=${clipHex(e.payload)}`;
}

function channelMessage(bytes: Uint8Array, channel: number | undefined): string {
  const d = describeBytes(bytes, 'message');
  if (!d.ok) return `VMBUS ${errorLine(d.errors[0]!)}: payload=${clipHex(traceHex(bytes))}`;
  const r = d.report;
  const shown = fieldsText(r.fields);
  // GPADL_BODY and GPADL_TORNDOWN name no channel; the trace may know it (filter.ts).
  const extra = channel !== undefined && !r.fields.some((f) => f.name === 'child_relid') ? `  (channel ${channel})` : '';
  return `${r.name}${shown ? ` ${shown}` : ''}${extra}`;
}

function signal(e: SignalEvent): string {
  const via = e.dir === 'to-host' && e.monitor !== undefined ? ` via monitor ${e.monitor}` : '';
  const at = e.dir === 'to-host' ? `signal conn ${num(e.connection)}${via}` : `signal sint ${e.sint}`;
  const coalesced = e.dir === 'to-guest' && e.coalesced ? ' coalesced' : '';
  return `${at} flag ${e.flag}${coalesced}${e.channel !== undefined ? `  (channel ${e.channel})` : ''}`;
}

// --- What the hypervisor does on its own ------------------------------------------------------

const vpList = (t: readonly number[] | 'all'): string => (t === 'all' ? 'all' : t.length ? t.map((n) => `vp${n}`).join(',') : 'none');
const VISIBILITY: Readonly<Record<number, string>> = { 0: 'none', 1: 'read', 3: 'read-write' };

/** The text after the kind's name. */
function hypervisor(e: HypervisorEvent): string {
  switch (e.kind) {
    case 'message-queued':
      return ` sint ${e.sint} ${messageTypeName(e.type)} depth ${e.depth}`;
    case 'sint-asserted':
      return ` sint ${e.sint} vector ${h(e.vector)}`;
    case 'timer-expired':
      return ` stimer${e.timer}${e.direct ? ' direct' : ''} expiration=${h(e.expiration)}`;
    case 'ipi':
      return ` to vp${e.to} vector ${h(e.vector)}`;
    case 'tlb-flush':
      return ` ${vpList(e.targets)} space=${h(e.addressSpace)} flags=${h(e.flags)}${e.ranges ? ` ranges=${e.ranges}` : ''}`;
    case 'crash':
      return `${e.params.map((p, i) => ` P${i}=${h(p)}`).join('')}${e.message !== undefined ? ` message=${JSON.stringify(clip(e.message))}` : ''}`;
    case 'reset':
    case 'guest-idle':
      return '';
    case 'spin-wait':
      return ` count=${e.count}`;
    case 'visibility':
      return ` ${e.gpns} pages -> ${VISIBILITY[e.visibility] ?? num(e.visibility)}`;
    case 'interrupt-retarget':
      return ` device=${h(e.deviceId)} vector ${h(e.vector)} -> ${vpList(e.targets)}`;
  }
}

/** At most a line's worth of a text. */
const clip = (s: string): string => (s.length > 4 * SHOWN_BYTES ? `${s.slice(0, 4 * SHOWN_BYTES)}…` : s);

function messageTypeName(type: number): string {
  return type === VMBUS_MESSAGE_TYPE ? 'VMBUS' : (hvMessageTypes.get(type) ?? `type ${h(type)}`);
}

// --- Packets -------------------------------------------------------------------------------

/** Descriptor fields the line's head already says. */
const PACKET_HEAD = new Set(['type', 'offset8', 'len8', 'trans_id']);

function packet(e: PacketEvent): string {
  const head = `trans ${h(e.transId)} ${e.length} bytes`;
  const fill = ringFill(e);
  // The ring after the packet, where the trace has its indices.
  const ring = fill === undefined ? '' : `  (ring ${fill}/${e.ringSize} bytes, read ${h(e.readIndex!)} write ${h(e.writeIndex!)})`;
  const d = describeBytes(hexBytes(e.bytes), 'packet');
  if (!d.ok) return `pkt type ${h(e.type)} ${head}: ${errorLine(d.errors[0]!)}: bytes=${clipHex(e.bytes)}${ring}`;
  const shown = fieldsText(d.report.fields.filter((f) => !PACKET_HEAD.has(f.name)));
  return `pkt ${d.report.name} ${head}${shown ? ` ${shown}` : ''}${ring}`;
}

// --- Fields ------------------------------------------------------------------------------------

/** Padding and reserved fields say nothing when they are zero. */
const QUIET = /(^|\.)(padding|reserved\w*|rsvdz\w*)$/;

/**
 * `name=value` for the fields worth a look: not the message header (its type is the line's
 * name), not zero padding or reserved fields, not all-zero byte areas, not zero packet flags.
 */
function fieldsText(fields: readonly Field[]): string {
  return fields
    .filter((f) => !f.name.startsWith('header.') && f.name !== 'msgtype')
    .filter((f) => !(QUIET.test(f.name) && /^(0x)?0*$/.test(String(f.value))))
    .filter((f) => !f.text.startsWith('all zero'))
    .filter((f) => !(f.name === 'flags' && f.value === 0))
    .map((f) => `${f.name}=${compact(f)}`)
    .join(' ');
}

/**
 * A field's text without the decimal describe.ts repeats beside hex ("0x50003 (327683; version
 * 5.3)" becomes "0x50003 (version 5.3)"), and long byte runs cut short.
 */
function compact(f: Field): string {
  const m = /^(0x[0-9a-f]+) \((\d+)(?:; (.*))?\)$/.exec(f.text);
  if (m) return m[3] ? `${m[1]} (${m[3]})` : m[1]!;
  if (typeof f.value === 'string' && /^[0-9a-f]+$/.test(f.value) && f.text.startsWith(f.value) && f.value.length > 2 * SHOWN_BYTES) {
    return `${clipHex(f.value)}${f.text.slice(f.value.length)}`;
  }
  return f.text;
}

function clipHex(hex: string): string {
  return hex.length > 2 * SHOWN_BYTES ? `${hex.slice(0, 2 * SHOWN_BYTES)}…` : hex || '(empty)';
}
