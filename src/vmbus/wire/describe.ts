// Raw VMBus bytes made readable: a channel message (vmbus.md §2), a ring packet (§8), a whole
// SynIC message slot (§1.2) or a whole ring (§7: its control page, then the packets between its
// read and write indices, each put back together where it wraps) as named fields, or the typed
// errors that name the field at fault.
// Used by `hvkit decode`; platform-neutral, so a browser can show the same thing.
import { HV_HYP_PAGE_SIZE } from '../../memory/pages.js';
import { WireError, type FieldLayout, type FieldSpec, type FieldType, type Struct } from '../../tlfs/struct.js';
import { HV_MESSAGE_PAYLOAD_BYTE_COUNT, HV_MESSAGE_SIZE, HvMessage, HvMessageHeader, HvMessageType } from '../../tlfs/synic.js';
import {
  ChannelFlags,
  ChannelMessageType,
  ConnectionState,
  MAX_SIZE_CHANNEL_MESSAGE,
  PacketType,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VMBUS_MESSAGE_TYPE,
  VMBUS_PKT_TRAILER,
  VmbusFeature,
  versionString,
} from './constants.js';
import { className } from './guids.js';
import { decodeChannelMessage, InitiateContactLegacy, MESSAGES, MessageHeader, messageName, type ChannelMessage } from './messages.js';
import { GpaDirectHeader, GpaRange, PacketDescriptor, PacketTrailer, parsePacket, RING_CONTROL_SIZE, RingControl, TransferPageHeader, type ParsedPacket } from './packets.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** What to read the bytes as; `auto` guesses from the leading fields (never a ring: say `ring`). */
export type DecodeAs = 'auto' | 'message' | 'packet' | 'slot' | 'ring';
export const DECODE_AS: readonly DecodeAs[] = ['auto', 'message', 'packet', 'slot', 'ring'];

/** One decoded leaf: its path (`['range', 0, 'byte_count']`), its JSON value and how a person reads it. */
export interface Field {
  readonly path: readonly (string | number)[];
  /** The dotted form of `path`: `range[0].byte_count`. */
  readonly name: string;
  /** Numbers as numbers, u64s as "0x…" strings, byte arrays as hex strings, GUIDs as text. */
  readonly value: Json;
  readonly text: string;
}

export interface Report {
  readonly kind: 'channel message' | 'packet' | 'synic message' | 'ring';
  /** INITIATE_CONTACT, VM_PKT_DATA_INBAND, VMBUS… */
  readonly name: string;
  readonly type: number;
  /** Bytes the decoded thing occupies (a packet's len8·8, a message's whole payload, a slot's 256). */
  readonly length: number;
  /** Every field in wire order, nested structures dotted. */
  readonly fields: readonly Field[];
  /** Bytes after what was decoded. */
  readonly trailing: Uint8Array;
  /** A slot's channel message. */
  readonly payload?: Report;
  /** Where the thing lies, for a packet of a ring: said after the title. */
  readonly note?: string;
  /** A ring's unread packets, in ring order. */
  readonly packets?: readonly Report[];
}

export type Decoded = { ok: true; report: Report } | { ok: false; errors: WireError[] };

/** A SynIC message slot that does not parse; `field` names what is wrong. */
export class SlotError extends WireError {
  constructor(field: string, reason: string) {
    super('synic message', field, reason);
  }
}

/**
 * Decodes `bytes` as `as` says. Never throws for bad input: the typed errors come back instead.
 * `auto` tries both a message and a packet when the leading fields fit neither, and returns
 * both errors if neither parses.
 */
export function describeBytes(bytes: Uint8Array, as: DecodeAs = 'auto'): Decoded {
  const kind = as === 'auto' ? guess(bytes) : as;
  if (kind !== 'auto') return attempt(DECODERS[kind], bytes);
  const errors: WireError[] = [];
  for (const k of ['message', 'packet'] as const) {
    const r = attempt(DECODERS[k], bytes);
    if (r.ok) return r;
    errors.push(...r.errors);
  }
  return { ok: false, errors };
}

/** `<kind>: <field>: <reason>`, the form `hvkit decode` prints a failure in. */
export const errorLine = (e: WireError): string => `${e.struct}: ${e.field ? `${e.field}: ` : ''}${e.reason}`;

// ---------------------------------------------------------------------------------------------
// Guessing the kind

const DATA_PACKET_TYPES = new Set<number>([PacketType.DATA_INBAND, PacketType.DATA_USING_XFER_PAGES, PacketType.DATA_USING_GPA_DIRECT, PacketType.COMP]);

const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

function guess(bytes: Uint8Array): DecodeAs {
  const dv = view(bytes);
  const H = HvMessageHeader.offsets;
  if (bytes.length === HV_MESSAGE_SIZE && dv.getUint32(H.message_type, true) === VMBUS_MESSAGE_TYPE && dv.getUint8(H.payload_size) <= HV_MESSAGE_PAYLOAD_BYTE_COUNT) return 'slot';
  // A known type with a truncated body still counts as a message, so the error names the missing field.
  if (bytes.length >= MessageHeader.size && bytes.length <= MAX_SIZE_CHANNEL_MESSAGE && dv.getUint32(MessageHeader.offsets.msgtype, true) in MESSAGES) return 'message';
  if (bytes.length >= PacketDescriptor.offsets.type + 2 && DATA_PACKET_TYPES.has(dv.getUint16(PacketDescriptor.offsets.type, true))) return 'packet';
  return 'auto';
}

function attempt(decode: (b: Uint8Array) => Report, bytes: Uint8Array): Decoded {
  try {
    return { ok: true, report: decode(bytes) };
  } catch (e) {
    if (e instanceof WireError) return { ok: false, errors: [e] };
    throw e;
  }
}

const DECODERS: Record<Exclude<DecodeAs, 'auto'>, (b: Uint8Array) => Report> = {
  message: messageReport,
  packet: packetReport,
  slot: slotReport,
  ring: ringReport,
};

// ---------------------------------------------------------------------------------------------
// Fields

type Path = readonly (string | number)[];
/** Extra words for a field's text, by dotted name: a message type's name, a version, flag names. */
type Notes = Readonly<Record<string, (v: number | bigint | string) => string | undefined>>;

const dotted = (path: Path): string => path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i ? `.${p}` : p)).join('');
const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const withNote = (main: string, extra: (string | undefined)[]): string => {
  const parts = extra.filter((x) => x !== undefined && x !== '');
  return parts.length ? `${main} (${parts.join('; ')})` : main;
};
/**
 * Fields that are addresses, handles, offsets into a ring, flags, statuses, versions or
 * connection ids read best in hex, whatever their value; every other number (relids, indices,
 * counts, sizes) in decimal. One base per field, so that a field prints the same way in every
 * message and trace line.
 */
const HEX_FIELDS = new Set([
  'gpadl',
  'ringbuffer_gpadlhandle',
  'monitor_page1',
  'monitor_page2',
  'interrupt_page',
  'chn_flags',
  'feature_flags',
  'feature_bits',
  'supported_features',
  'flags',
  'creation_status',
  'status',
  'vmbus_version_requested',
  'version',
  'connection_id',
  'connectionid',
  'msg_conn_id',
  'msgtype',
  'start_offset',
  'byte_offset',
  'read_index',
  'write_index',
  'interrupt_mask',
  'pending_send_sz',
]);
/** A hex field as C's "%#x" prints it (0 stays "0"), with the decimal beside from 10 on. */
const numberText = (n: number, hexField: boolean, note?: string): string => {
  if (!hexField) return withNote(String(n), [note]);
  return withNote(n === 0 ? '0' : `0x${n.toString(16)}`, [n >= 10 ? String(n) : undefined, note]);
};
const u64Text = (n: bigint): string => `0x${n.toString(16)}`;

function bytesText(b: Uint8Array, note?: string): string {
  if (b.length > 8 && b.every((x) => x === 0)) return withNote('all zero', [`${b.length} bytes`, note]);
  return withNote(b.length ? hex(b) : '(empty)', [`${b.length} bytes`, note]);
}

function leaf(path: Path, v: unknown, notes: Notes): Field {
  const name = dotted(path);
  const note = (x: number | bigint | string) => notes[name]?.(x);
  if (typeof v === 'number') return { path, name, value: v, text: numberText(v, HEX_FIELDS.has(String(path[path.length - 1])), note(v)) };
  if (typeof v === 'bigint') return { path, name, value: u64Text(v), text: withNote(u64Text(v), [note(v)]) };
  if (v instanceof Uint8Array) return { path, name, value: hex(v), text: bytesText(v) };
  const s = String(v);
  return { path, name, value: s, text: withNote(s, [note(s)]) };
}

/** Every leaf of a decoded value of `type`; members named `_x` (C anonymous members) add no path step. */
function walk(type: FieldType, v: unknown, path: Path, notes: Notes, out: Field[]): void {
  switch (type.kind) {
    case 'struct':
      for (const f of type.layout) walkMember(f, v, path, notes, out);
      return;
    case 'bits':
      for (const b of type.bits) out.push(leaf([...path, b.name], (v as Record<string, unknown>)[b.name], notes));
      return;
    case 'array':
      (v as unknown[]).forEach((e, i) => walk(type.elem, e, [...path, i], notes, out));
      return;
    case 'flex':
      return;
    default:
      out.push(leaf(path, v, notes));
  }
}

function walkMember(f: FieldLayout, v: unknown, path: Path, notes: Notes, out: Field[]): void {
  walk(f.type, (v as Record<string, unknown>)[f.name], f.name.startsWith('_') ? path : [...path, f.name], notes, out);
}

/** Names of the bits of `v` that `table` knows, and the rest in hex. */
function flagNames(v: number, table: Readonly<Record<string, number>>): string | undefined {
  const names = Object.entries(table).filter(([, bit]) => v & bit).map(([n]) => n);
  const known = Object.values(table).reduce((a, b) => a | b, 0);
  if (v & ~known) names.push(`0x${(v & ~known).toString(16)}`);
  return names.length ? names.join('|') : undefined;
}

const keyOf = (table: Readonly<Record<string, number>>, v: number): string | undefined => Object.entries(table).find(([, x]) => x === v)?.[0];

function u64List(b: Uint8Array, at: number, count: number): string[] {
  const dv = view(b);
  return Array.from({ length: count }, (_, i) => u64Text(dv.getBigUint64(at + 8 * i, true)));
}

const listField = (path: Path, items: string[], note?: string): Field => ({ path, name: dotted(path), value: items, text: withNote(items.join(' ') || '(none)', [note]) });

// ---------------------------------------------------------------------------------------------
// Channel messages

const MESSAGE_NOTES: Notes = {
  'header.msgtype': (v) => messageName(Number(v)),
  vmbus_version_requested: (v) => `version ${versionString(Number(v))}`,
  'offer.if_type': (v) => className(String(v)),
  'offer.chn_flags': (v) => flagNames(Number(v), ChannelFlags),
  feature_flags: (v) => flagNames(Number(v), VmbusFeature),
  version_supported: (v) => (v ? 'accepted' : 'rejected'),
  connection_state: (v) => keyOf(ConnectionState, Number(v)),
};

function messageReport(payload: Uint8Array): Report {
  const m = decodeChannelMessage(payload);
  const fields: Field[] = [];
  walk(messageStruct(m), m.value, [], MESSAGE_NOTES, fields);
  let trailing = m.extra;
  if (m.type === ChannelMessageType.GPADL_HEADER) trailing = gpadlRanges(m.value, m.extra, fields);
  if (m.type === ChannelMessageType.GPADL_BODY) trailing = gpadlPfns(m.extra, fields);
  return { kind: 'channel message', name: m.name, type: m.type, length: payload.length, fields, trailing };
}

/** The layout decodeChannelMessage used: INITIATE_CONTACT has two. */
function messageStruct(m: ChannelMessage): Struct<FieldSpec> {
  if (m.type === ChannelMessageType.INITIATE_CONTACT && 'interrupt_page' in m.value) return InitiateContactLegacy;
  return MESSAGES[m.type].struct;
}

/**
 * GPADL_HEADER's range data (vmbus.md §2.9, §5.2): ranges of a gpa_range head and its PFNs.
 * A long range continues in GPADL_BODY messages, so the PFNs here may be only the first ones.
 * Returns the bytes after the range data.
 */
function gpadlRanges(value: { range_buflen: number; rangecount: number }, extra: Uint8Array, out: Field[]): Uint8Array {
  const data = extra.subarray(0, Math.min(extra.length, value.range_buflen));
  let at = 0;
  for (let r = 0; r < value.rangecount && at + GpaRange.size <= data.length; r++) {
    const head = GpaRange.decode(data, at);
    walk(GpaRange, head, ['range', r], {}, out);
    at += GpaRange.size;
    const want = Math.ceil((head.byte_offset + head.byte_count) / HV_HYP_PAGE_SIZE);
    const have = Math.min(want, Math.floor((data.length - at) / 8));
    out.push(listField(['range', r, 'pfn_array'], u64List(data, at, have), have < want ? `${have} of ${want}; the rest follow in GPADL_BODY` : undefined));
    at += 8 * have;
  }
  return extra.subarray(at);
}

/** GPADL_BODY's PFNs (its flexible member `pfn`): whole u64s after the fixed part. */
function gpadlPfns(extra: Uint8Array, out: Field[]): Uint8Array {
  const n = Math.floor(extra.length / 8);
  out.push(listField(['pfn'], u64List(extra, 0, n)));
  return extra.subarray(8 * n);
}

// ---------------------------------------------------------------------------------------------
// Packets

/** The 8 bytes after each packet in a ring (vmbus.md §7.3): its start offset in the upper half. */

const packetTypeName = (t: number): string => {
  const k = keyOf(PacketType, t);
  return k ? `VM_PKT_${k}` : `VM_PKT_0x${t.toString(16)}`;
};

const PACKET_NOTES: Notes = {
  type: (v) => packetTypeName(Number(v)),
  offset8: (v) => `${Number(v) * 8} bytes`,
  len8: (v) => `${Number(v) * 8} bytes`,
  flags: (v) => flagNames(Number(v), { COMPLETION_REQUESTED: VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED }),
  'trailer.start_offset': () => 'where the packet starts in the ring data',
};

function packetReport(bytes: Uint8Array): Report {
  const p = parsePacket(bytes);
  const d = PacketDescriptor.decode(bytes);
  const fields: Field[] = [];
  walk(PacketDescriptor, d, [], PACKET_NOTES, fields);
  if (p.ranges) gpaDirectFields(bytes, p, fields);
  if (p.transferRanges) transferFields(bytes, p, fields);
  fields.push({ path: ['payload'], name: 'payload', value: hex(p.payload), text: bytesText(p.payload, asciiNote(p.payload)) });
  const length = d.len8 * 8;
  let trailing = bytes.subarray(length);
  if (trailing.length === VMBUS_PKT_TRAILER) {
    walk(PacketTrailer, PacketTrailer.decode(trailing), ['trailer'], PACKET_NOTES, fields);
    trailing = trailing.subarray(VMBUS_PKT_TRAILER);
  }
  return { kind: 'packet', name: packetTypeName(p.type), type: p.type, length, fields, trailing };
}

/**
 * The members of an extended packet header between the descriptor and its ranges. parsePacket
 * has checked that they lie inside the packet; the header struct also declares one range, which
 * need not be there, so it is decoded from a zero-padded copy and only the members before
 * `rangesAt` are shown.
 */
function headerMembers(s: Struct<FieldSpec>, bytes: Uint8Array, rangesAt: number, out: Field[]): void {
  const copy = new Uint8Array(s.size);
  copy.set(bytes.subarray(0, Math.min(bytes.length, s.size)));
  const v = s.decode(copy);
  for (const f of s.layout) {
    if (f.offset >= PacketDescriptor.size && f.offset + f.type.size <= rangesAt) walkMember(f, v, [], {}, out);
  }
}

function gpaDirectFields(bytes: Uint8Array, p: ParsedPacket, out: Field[]): void {
  headerMembers(GpaDirectHeader, bytes, GpaDirectHeader.offsets.range, out);
  p.ranges!.forEach((r, i) => {
    walk(GpaRange, { byte_count: r.byteCount, byte_offset: r.byteOffset }, ['range', i], {}, out);
    out.push(listField(['range', i, 'pfn_array'], r.pfns.map((x) => `0x${x.toString(16)}`)));
  });
}

function transferFields(bytes: Uint8Array, p: ParsedPacket, out: Field[]): void {
  headerMembers(TransferPageHeader, bytes, TransferPageHeader.offsets.ranges, out);
  p.transferRanges!.forEach((r, i) => {
    out.push(leaf(['ranges', i, 'byte_count'], r.byteCount, {}), leaf(['ranges', i, 'byte_offset'], r.byteOffset, {}));
  });
}

/** In-band payloads are often text: show it when everything before the zero padding is printable. */
function asciiNote(b: Uint8Array): string | undefined {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  const text = b.subarray(0, end);
  if (!text.length || !text.every((x) => x >= 0x20 && x < 0x7f)) return undefined;
  return `ascii ${JSON.stringify(String.fromCharCode(...text))}`;
}

// ---------------------------------------------------------------------------------------------
// SynIC message slots

const slotTypeName = (t: number): string => (t === VMBUS_MESSAGE_TYPE ? 'VMBUS' : `HVMSG_${keyOf(HvMessageType, t) ?? `0x${t.toString(16)}`}`);

const SLOT_NOTES: Notes = { 'header.message_type': (v) => slotTypeName(Number(v)) };

/** The first (innermost) field of `s` that does not fit in `length` bytes. */
function firstMissing(s: Struct<FieldSpec>, length: number): string {
  for (const f of s.layout) {
    if (f.offset + f.type.size <= length) continue;
    return f.type.kind === 'struct' ? `${f.name}.${firstMissing(f.type, length - f.offset)}` : f.name;
  }
  return '';
}

/** A whole 256-byte slot: its header, and its payload (payload_size bytes) as a channel message if it is a VMBus one. */
function slotReport(bytes: Uint8Array): Report {
  if (bytes.length < HvMessage.size) throw new SlotError(firstMissing(HvMessage, bytes.length), `a slot is ${HvMessage.size} bytes, have ${bytes.length}`);
  if (bytes.length > HvMessage.size) throw new SlotError('', `a slot is ${HvMessage.size} bytes, have ${bytes.length}`);
  const m = HvMessage.decode(bytes);
  const size = m.header.payload_size;
  if (size > HV_MESSAGE_PAYLOAD_BYTE_COUNT) throw new SlotError('header.payload_size', `${size} exceeds the ${HV_MESSAGE_PAYLOAD_BYTE_COUNT}-byte payload`);
  const fields: Field[] = [];
  walk(HvMessageHeader, m.header, ['header'], SLOT_NOTES, fields);
  const used = m.payload.subarray(0, size);
  const type = m.header.message_type;
  const base = { kind: 'synic message', name: slotTypeName(type), type, length: HvMessage.size, fields, trailing: new Uint8Array(0) } as const;
  if (type === VMBUS_MESSAGE_TYPE) return { ...base, payload: messageReport(used) };
  fields.push({ path: ['payload'], name: 'payload', value: hex(used), text: bytesText(used) });
  return base;
}

// ---------------------------------------------------------------------------------------------
// Rings

/** A ring that does not parse; `field` names what is wrong. */
export class RingDumpError extends WireError {
  constructor(field: string, reason: string) {
    super('ring', field, reason);
  }
}

const RING_NOTES: Notes = {
  'feature_bits.feat_pending_send_sz': (v) => (v ? 'the writer sets pending_send_sz when blocked' : undefined),
};

/**
 * A whole ring as it lies in memory (vmbus.md §7.1, §7.3): the 4 KiB control page, then the
 * data area. The packets from read_index to write_index are copied out in ring order, a packet
 * that runs past the end of the data area continuing at its start, and each is decoded with its
 * trailer. The indices are checked as a strict reader checks them (8-byte aligned, inside the
 * data area), and so is every packet's length.
 */
function ringReport(bytes: Uint8Array): Report {
  if (bytes.length < RING_CONTROL_SIZE + PacketDescriptor.size) throw new RingDumpError('', `a ring is a ${RING_CONTROL_SIZE}-byte control page and a data area, have ${bytes.length} bytes`);
  const size = bytes.length - RING_CONTROL_SIZE;
  if (size % 8 !== 0) throw new RingDumpError('', `the data area (${size} bytes) is not a multiple of 8 bytes`);
  const control = RingControl.decode(bytes);
  const index = (v: number, field: string): number => {
    if (v >= size || v % 8 !== 0) throw new RingDumpError(field, `${v} is not an 8-byte aligned offset below ${size}`);
    return v;
  };
  const write = index(control.write_index, 'write_index');
  let read = index(control.read_index, 'read_index');
  const fields: Field[] = [];
  for (const f of RingControl.layout) if (!f.name.startsWith('reserved')) walkMember(f, control, [], RING_NOTES, fields);
  const data = bytes.subarray(RING_CONTROL_SIZE);
  const unread = write >= read ? write - read : size - read + write;
  fields.push({ path: ['unread'], name: 'unread', value: unread, text: `${unread} bytes` });
  const packets: Report[] = [];
  const wrapped = (at: number, n: number): Uint8Array => {
    const out = new Uint8Array(n);
    const first = Math.min(n, size - at);
    out.set(data.subarray(at, at + first));
    out.set(data.subarray(0, n - first), first);
    return out;
  };
  for (let left = unread; left > 0; ) {
    const where = `packet at 0x${read.toString(16)}`;
    if (left < PacketDescriptor.size + VMBUS_PKT_TRAILER) throw new RingDumpError(where, `${left} unread bytes cannot hold a packet and its trailer`);
    const len = PacketDescriptor.decode(wrapped(read, PacketDescriptor.size)).len8 * 8;
    if (len < PacketDescriptor.size || len + VMBUS_PKT_TRAILER > left) throw new RingDumpError(`${where}.len8`, `${len} bytes and a trailer do not fit the ${left} unread bytes`);
    const report = packetReport(wrapped(read, len + VMBUS_PKT_TRAILER));
    const wraps = read + len + VMBUS_PKT_TRAILER > size;
    packets.push({ ...report, note: `at 0x${read.toString(16)}${wraps ? `, continued at 0 after the end of the data area` : ''}` });
    read = (read + len + VMBUS_PKT_TRAILER) % size;
    left -= len + VMBUS_PKT_TRAILER;
  }
  return { kind: 'ring', name: `data area ${size} bytes`, type: packets.length, length: bytes.length, fields, trailing: new Uint8Array(0), packets };
}

// ---------------------------------------------------------------------------------------------
// Output

const typeText = (t: number): string => (t > 0xffff ? `0x${t.toString(16)}` : String(t));
const title = (r: Report): string =>
  r.kind === 'ring' ? `ring, ${r.name}, ${r.packets?.length ?? 0} unread packet${r.packets?.length === 1 ? '' : 's'}, ${r.length} bytes` : `${r.kind} ${r.name} (${typeText(r.type)}), ${r.length} bytes`;

/** The human form: a title line, then one `name = value` line per field. */
export function formatReport(r: Report, indent = ''): string[] {
  const lines = [`${indent}${title(r)}${r.note ? `, ${r.note}` : ''}`];
  for (const f of r.fields) lines.push(`${indent}  ${f.name} = ${f.text}`);
  if (r.payload) lines.push(`${indent}  payload:`, ...formatReport(r.payload, `${indent}    `));
  for (const p of r.packets ?? []) lines.push(...formatReport(p, `${indent}  `));
  if (r.trailing.length) lines.push(`${indent}  trailing = ${bytesText(r.trailing)}`);
  return lines;
}

/** The JSON form: the fields nested as the structures nest them. */
export function reportJson(r: Report): Json {
  const fields: { [key: string]: Json } = {};
  for (const f of r.fields) setPath(fields, f.path, f.value);
  return {
    kind: r.kind,
    name: r.name,
    type: r.type,
    length: r.length,
    fields,
    ...(r.payload ? { payload: reportJson(r.payload) } : {}),
    ...(r.packets ? { packets: r.packets.map((p) => reportJson(p)) } : {}),
    ...(r.trailing.length ? { trailing: hex(r.trailing) } : {}),
  };
}

function setPath(root: Json, path: Path, value: Json): void {
  let node = root as Record<string | number, Json>;
  path.forEach((key, i) => {
    if (i === path.length - 1) {
      node[key] = value;
      return;
    }
    node[key] ??= typeof path[i + 1] === 'number' ? [] : {};
    node = node[key] as Record<string | number, Json>;
  });
}

// ---------------------------------------------------------------------------------------------
// Hex text

/** Text that is not a run of hex bytes. */
export class HexTextError extends Error {
  override readonly name = 'HexTextError';
}

/** How far a `*` line may repeat the line before it: far more than any ring or message needs. */
const MAX_EXPANDED_BYTES = 16 << 20;

/** `hexdump -C` lines end in `|ascii|`; their first column is then an offset without a colon. */
const CANONICAL_ASCII = /\s\|.*\|\s*$/;

/**
 * Bytes from hex text, in text order. Tolerates whitespace, commas, `0x` prefixes, offset
 * prefixes (`0000:`, as vmbus.md §13 and `xxd` print them), `xxd`'s ASCII column, and
 * `hexdump -C` lines. A `*` line (`hexdump`, `xxd -a`: the line before it repeats) is expanded
 * up to the offset of the line after it, so that line must have one. Throws HexTextError for
 * anything else, an odd digit count or no digits.
 */
export function parseHexText(text: string): Uint8Array {
  const lines = text.split(/\r\n|\r|\n/);
  const canonical = lines.some((l) => CANONICAL_ASCII.test(l));
  const where = (i: number) => (lines.length > 1 ? `line ${i + 1}: ` : '');
  let digits = '';
  let previous = '';
  let repeat = -1;
  lines.forEach((line, i) => {
    if (line.trim() === '*') {
      if (!previous || repeat >= 0) throw new HexTextError(`${where(i)}'*' (repeated lines) needs a line of bytes before it`);
      repeat = i;
      return;
    }
    const { offset, hex: s } = hexOfLine(line, canonical);
    const bad = /[^0-9a-f]/i.exec(s);
    if (bad) throw new HexTextError(`${where(i)}'${bad[0]}' is not a hex digit`);
    if (repeat >= 0) {
      if (offset === undefined) throw new HexTextError(`${where(repeat)}'*' (repeated lines) can be expanded only up to the offset of the next line, which has none`);
      if (offset > MAX_EXPANDED_BYTES) throw new HexTextError(`${where(i)}offset 0x${offset.toString(16)} is beyond the ${MAX_EXPANDED_BYTES >> 20} MiB a '*' may expand to`);
      const missing = 2 * offset - digits.length;
      if (missing < 0 || missing % previous.length) throw new HexTextError(`${where(i)}offset 0x${offset.toString(16)} does not follow whole repeats of the line before '*'`);
      digits += previous.repeat(missing / previous.length);
      repeat = -1;
    }
    digits += s;
    if (s) previous = s;
  });
  if (repeat >= 0) throw new HexTextError(`${where(repeat)}'*' (repeated lines) can be expanded only up to the offset of the next line, which is missing`);
  if (!digits.length) throw new HexTextError('no hex digits');
  if (digits.length % 2) throw new HexTextError(`odd number of hex digits (${digits.length})`);
  return Uint8Array.from({ length: digits.length / 2 }, (_, i) => parseInt(digits.slice(2 * i, 2 * i + 2), 16));
}

/** The hex digits of one line, its offset (when it has one), ASCII column and separators removed. */
function hexOfLine(line: string, canonical: boolean): { offset: number | undefined; hex: string } {
  let s = line;
  let offset: number | undefined;
  if (canonical) {
    s = s.replace(CANONICAL_ASCII, '');
    const m = /^\s*([0-9a-f]+)(\s+|$)/i.exec(s);
    if (m) {
      offset = parseInt(m[1]!, 16);
      s = s.slice(m[0].length);
    }
  } else {
    const m = /^\s*(0x)?([0-9a-f]+):/i.exec(s);
    if (m) {
      offset = parseInt(m[2]!, 16);
      s = dropAsciiColumn(s.slice(m[0].length));
    }
  }
  return { offset, hex: s.replace(/(^|[\s,])0x(?=[0-9a-f])/gi, '$1').replace(/[\s,]+/g, '') };
}

/** xxd ends a line with two spaces and the bytes as text; that text almost always has a non-hex character. */
function dropAsciiColumn(s: string): string {
  const m = /^(.*?\S)\s{2,}(\S.*)$/.exec(s.trim());
  return m && /[^0-9a-fx,\s]/i.test(m[2]!) ? m[1]! : s;
}
