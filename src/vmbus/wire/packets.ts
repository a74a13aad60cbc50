// What lives in VMBus shared memory: the ring control page, packets and their descriptors,
// GPA ranges, and the MNF monitor page (vmbus.md §4.2, §5.2, §7.1, §8). Linux:
// include/linux/hyperv.h; a packet parser that names the field at fault.
import { array, bits, bytes, flex, struct, u16, u32, u64, u8, WireError } from '../../tlfs/struct.js';
import { PacketType, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED } from './constants.js';
import { subarrayOf } from '../../memory/typed-arrays.js';

export const PacketDescriptor = struct('vmpacket_descriptor', {
  type: u16,
  offset8: u16,
  len8: u16,
  flags: u16,
  trans_id: u64,
});

/** One GPA range: byte count, offset into the first page, then ⌈(offset + count) / 4096⌉ PFNs. */
export const GpaRange = struct('gpa_range', { byte_count: u32, byte_offset: u32, pfn_array: flex(u64) });

export const GpaDirectHeader = struct('vmdata_gpa_direct', {
  d: PacketDescriptor,
  reserved: u32,
  range_cnt: u32,
  range: array(GpaRange, 1),
});

export const TransferPageRange = struct('vmtransfer_page_range', { byte_count: u32, byte_offset: u32 });

export const TransferPageHeader = struct('vmtransfer_page_packet_header', {
  d: PacketDescriptor,
  xfer_pageset_id: u16,
  sender_owns_set: u8,
  reserved: u8,
  range_cnt: u32,
  ranges: array(TransferPageRange, 1),
});

/**
 * The 8 bytes after each packet in a ring: Linux writes the packet's start offset in the upper
 * half (prev_indices, ring_buffer.c); readers skip it (vmbus.md §7.3).
 */
export const PacketTrailer = struct('vmbus_packet_trailer', { reserved: u32, start_offset: u32 });

/** The ring buffer control page (`struct hv_ring_buffer`): the first 4 KiB of each ring. */
export const RingControl = struct('hv_ring_buffer', {
  write_index: u32,
  read_index: u32,
  interrupt_mask: u32,
  pending_send_sz: u32,
  reserved1: bytes(48),
  feature_bits: bits('feature_bits', 'u32', { feat_pending_send_sz: 1, reserved: 31 }),
  reserved2: bytes(4028),
  buffer: flex(u8),
});
export const RING_CONTROL_SIZE = 4096;

/** MNF trigger group: pending and armed bits for 32 monitor ids. */
export const MonitorTriggerGroup = struct('hv_monitor_trigger_group', { pending: u32, armed: u32 });
export const MonitorParameter = struct('hv_monitor_parameter', { connectionid: u32, flagnumber: u16, rsvdz: u16 });

/** `struct hv_monitor_page` (exactly 4096 bytes). */
export const MonitorPage = struct('hv_monitor_page', {
  trigger_state: u32,
  rsvdz1: u32,
  trigger_group: array(MonitorTriggerGroup, 4),
  rsvdz2: bytes(24),
  next_checktime: bytes(512),
  latency: bytes(256),
  rsvdz3: bytes(256),
  parameter: bytes(1024),
  rsvdz4: bytes(1984),
});
export const MONITOR_GROUPS = 4;
export const MONITORS_PER_GROUP = 32;

/** Linux's GPA-direct packet forms (vmbus.md §8.4): single-page ranges, one 32-page range, or ranges of any size. */
export const PageBuffer = struct('hv_page_buffer', { len: u32, offset: u32, pfn: u64 });
export const MultiPageBuffer = struct('hv_multipage_buffer', { len: u32, offset: u32, pfn_array: array(u64, 32) });
export const MpbArray = struct('hv_mpb_array', { len: u32, offset: u32, pfn_array: flex(u64) });

/** The header Linux's GPA-direct builders write: the descriptor under its own field names. */
const gpaDirectHead = { type: u16, dataoffset8: u16, length8: u16, flags: u16, transactionid: u64, reserved: u32, rangecount: u32 };
export const PacketPageBuffer = struct('vmbus_channel_packet_page_buffer', { ...gpaDirectHead, range: array(PageBuffer, 32) });
export const PacketMultiPageBuffer = struct('vmbus_channel_packet_multipage_buffer', { ...gpaDirectHead, range: MultiPageBuffer });
export const PacketMpbArray = struct('vmbus_packet_mpb_array', { ...gpaDirectHead, range: MpbArray });

// The legacy packet types (vmbus.md §8.2): Linux 6.1 still declares most of them (packed, with
// one-element arrays) but sends none, and receivers (OpenVMM, parsePacket) refuse them; declared
// for decoding what an old peer sends. DATA_USING_GPADL has no Linux struct: the spec's layout.
export const AddRemoveTransferPageSet = struct('vmadd_remove_transfer_page_set', { d: PacketDescriptor, gpadl: u32, xfer_pageset_id: u16, reserved: u16 });
export const EstablishGpadl = struct('vmestablish_gpadl', { d: PacketDescriptor, gpadl: u32, range_cnt: u32, range: array(GpaRange, 1) });
export const TeardownGpadl = struct('vmteardown_gpadl', { d: PacketDescriptor, gpadl: u32, reserved: u32 });
export const DataGpadl = struct('vmdata_gpadl', { d: PacketDescriptor, gpadl: u32, reserved: u32 });
export const AdditionalData = struct('vmadditional_data', { d: PacketDescriptor, total_bytes: u64, offset: u32, byte_cnt: u32, data: bytes(1) });

// ---------------------------------------------------------------------------------------------

/** A packet that does not parse; `field` names what is wrong. */
export class PacketError extends WireError {
  constructor(field: string, reason: string) {
    super('packet', field, reason);
  }
}

export interface ParsedRange {
  byteCount: number;
  byteOffset: number;
  pfns: number[];
}

export interface ParsedPacket {
  type: number;
  flags: number;
  transId: bigint;
  /** Whether the sender asked for a completion (VM_PKT_COMP with this trans_id). */
  completionRequested: boolean;
  /** The in-band part: from offset8·8 to len8·8 (padding included). */
  payload: Uint8Array;
  /** GPA-direct packets: the guest pages the request's data lives in. */
  ranges?: ParsedRange[];
  /** Transfer-page packets: the page set and the byte ranges inside it. */
  transferPageSet?: number;
  transferRanges?: { byteCount: number; byteOffset: number }[];
  /**
   * The same ranges as words, two a range: byte_count of range i at 2i, byte_offset at 2i + 1
   * (the packet's own vmtransfer_page_range order). A receiver walking hundreds of ranges a
   * packet reads these, with no object a range; transferRanges is made from them when asked for.
   */
  transferWords?: Uint32Array;
}

/** A transfer-page packet: its ranges are kept as words, and made into objects only when asked for. */
class TransferPagePacket implements ParsedPacket {
  private made: { byteCount: number; byteOffset: number }[] | undefined;
  constructor(
    readonly type: number,
    readonly flags: number,
    readonly transId: bigint,
    readonly completionRequested: boolean,
    readonly payload: Uint8Array,
    readonly transferPageSet: number,
    readonly transferWords: Uint32Array,
  ) {}

  get transferRanges(): { byteCount: number; byteOffset: number }[] {
    if (!this.made) {
      const w = this.transferWords;
      this.made = Array.from({ length: w.length >>> 1 }, (_, i) => ({ byteCount: w[2 * i]!, byteOffset: w[2 * i + 1]! }));
    }
    return this.made;
  }
}

const D = PacketDescriptor.offsets;
/** The data packet types a receiver takes: four comparisons cost less than a Set lookup per packet. */
const isDataType = (t: number): boolean => t === PacketType.DATA_INBAND || t === PacketType.DATA_USING_XFER_PAGES || t === PacketType.DATA_USING_GPA_DIRECT || t === PacketType.COMP;

/**
 * Parses one packet (descriptor included, trailer excluded) the way a strict receiver does
 * (OpenVMM vmbus_ring): only the data types 6, 7, 9 and 0xB, only flag bit 0, and offsets and
 * ranges that fit. Throws PacketError naming the field otherwise.
 */
export function parsePacket(bytes: Uint8Array): ParsedPacket {
  if (bytes.length < PacketDescriptor.size) throw new PacketError('descriptor', `needs ${PacketDescriptor.size} bytes, have ${bytes.length}`);
  // One packet per call on the data path: the descriptor is read byte by byte (a DataView per
  // packet costs more than the reads), the transaction id through a 64-bit view.
  const type = u16le(bytes, D.type);
  const offset = u16le(bytes, D.offset8) * 8;
  const len = u16le(bytes, D.len8) * 8;
  const flags = u16le(bytes, D.flags);
  if (!isDataType(type)) throw new PacketError('type', `0x${type.toString(16)} is not a data packet type`);
  if (flags & ~VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) throw new PacketError('flags', `0x${flags.toString(16)} has unknown bits`);
  if (len < PacketDescriptor.size || len > bytes.length) throw new PacketError('len8', `${len} bytes is not within [16, ${bytes.length}]`);
  if (offset < PacketDescriptor.size || offset > len) throw new PacketError('offset8', `${offset} is not within [16, ${len}]`);
  const transId = u64le(bytes, D.trans_id);
  const completionRequested = (flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) !== 0;
  // A view: the packet is the reader's private copy already.
  const payload = subarrayOf(bytes, offset, len);
  if (type === PacketType.DATA_USING_XFER_PAGES) {
    const T = TransferPageHeader.offsets;
    const count = transferPageRanges(bytes, 0, offset);
    // A copy of the ranges: the reader's copy of the packet is reused for the next one.
    const words = new Uint32Array(2 * count);
    for (let i = 0, at = T.ranges; i < 2 * count; i++, at += 4) words[i] = u32le(bytes, at);
    return new TransferPagePacket(type, flags, transId, completionRequested, payload, u16le(bytes, T.xfer_pageset_id), words);
  }
  const p: ParsedPacket = { type, flags, transId, completionRequested, payload };
  if (type === PacketType.DATA_USING_GPA_DIRECT) p.ranges = parseGpaDirect(bytes, offset);
  return p;
}

/** The range count of the transfer-page packet at `base` whose in-band part starts at `offset`, once its header and ranges are seen to fit there. */
function transferPageRanges(bytes: Uint8Array, base: number, offset: number): number {
  const T = TransferPageHeader.offsets;
  if (offset < T.ranges) throw new PacketError('offset8', `${offset} leaves no room for the transfer-page header`);
  const count = u32le(bytes, base + T.range_cnt);
  if (T.ranges + 8 * count > offset) throw new PacketError('range_cnt', `${count} ranges do not fit before offset ${offset}`);
  return count;
}

/**
 * A packet's descriptor as parsePacket reads and checks it, filled in by parsePacketHead: what a
 * receiver that reads each packet where it lies (its private copy) needs, in an object it reuses.
 * The transaction id is kept as its two u32 halves; `transId` makes the BigInt.
 */
export class PacketHead {
  type = 0;
  flags = 0;
  transIdLow = 0;
  transIdHigh = 0;
  completionRequested = false;
  /** The in-band part: [payloadAt, payloadEnd) of the packet's bytes. */
  payloadAt = 0;
  payloadEnd = 0;

  get transId(): bigint {
    return (BigInt(this.transIdHigh) << 32n) | BigInt(this.transIdLow);
  }

  /** This head made a copy of `head` (a reader reuses its own head for the next packet). */
  copyOf(head: PacketHead): this {
    this.type = head.type;
    this.flags = head.flags;
    this.transIdLow = head.transIdLow;
    this.transIdHigh = head.transIdHigh;
    this.completionRequested = head.completionRequested;
    this.payloadAt = head.payloadAt;
    this.payloadEnd = head.payloadEnd;
    return this;
  }
}

/**
 * parsePacket for the first `length` bytes of `bytes`, into `head` rather than a new ParsedPacket:
 * the same checks in the same order, the same PacketError for a packet that does not parse. A
 * GPA-direct or transfer-page packet has its ranges checked where they lie (they are not kept: a
 * receiver in place takes only the in-band part).
 */
export function parsePacketHead(bytes: Uint8Array, length: number, head: PacketHead): void {
  parsePacketHeadAt(bytes, 0, length, head);
}

/**
 * parsePacketHead of the packet at `base` of `bytes` (`length` bytes from there); the head's
 * payloadAt and payloadEnd are offsets in `bytes`. A GPA-direct or transfer-page packet's ranges
 * are checked in place (gpaDirectRanges, transferPageRanges: nothing made).
 */
export function parsePacketHeadAt(bytes: Uint8Array, base: number, length: number, head: PacketHead): void {
  if (length < PacketDescriptor.size) throw new PacketError('descriptor', `needs ${PacketDescriptor.size} bytes, have ${length}`);
  const type = u16le(bytes, base + D.type);
  const offset = u16le(bytes, base + D.offset8) * 8;
  const len = u16le(bytes, base + D.len8) * 8;
  const flags = u16le(bytes, base + D.flags);
  if (!isDataType(type)) throw new PacketError('type', `0x${type.toString(16)} is not a data packet type`);
  if (flags & ~VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) throw new PacketError('flags', `0x${flags.toString(16)} has unknown bits`);
  if (len < PacketDescriptor.size || len > length) throw new PacketError('len8', `${len} bytes is not within [16, ${length}]`);
  if (offset < PacketDescriptor.size || offset > len) throw new PacketError('offset8', `${offset} is not within [16, ${len}]`);
  if (type === PacketType.DATA_USING_GPA_DIRECT) gpaDirectRanges(bytes, base, offset, false);
  else if (type === PacketType.DATA_USING_XFER_PAGES) transferPageRanges(bytes, base, offset);
  head.type = type;
  head.flags = flags;
  head.transIdLow = u32le(bytes, base + D.trans_id);
  head.transIdHigh = u32le(bytes, base + D.trans_id + 4);
  head.completionRequested = (flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) !== 0;
  head.payloadAt = base + offset;
  head.payloadEnd = base + len;
}

/**
 * The first range of a GPA-direct packet that parsePacketHeadAt took, read from the packet at
 * `base`: its byte count and offset, how many PFNs it lists, and where they start in `bytes`
 * (little-endian u64s, each a frame number the parser checked). The packet's range count too.
 */
export function firstGpaRange(bytes: Uint8Array, base: number, out: GpaRangeAt): void {
  const G = GpaDirectHeader.offsets;
  out.rangeCount = u32le(bytes, base + G.range_cnt);
  out.byteCount = u32le(bytes, base + G.range);
  out.byteOffset = u32le(bytes, base + G.range + 4);
  out.pfnCount = Math.ceil((out.byteOffset + out.byteCount) / 4096);
  out.pfnsAt = base + G.range + GpaRange.size;
}

/** firstGpaRange's answer, in an object the caller reuses. */
export class GpaRangeAt {
  rangeCount = 0;
  byteCount = 0;
  byteOffset = 0;
  pfnCount = 0;
  pfnsAt = 0;
}

/** The frame number at `at` of a range firstGpaRange found (a u64 below 2^53, as checked). */
export const pfnAt = (bytes: Uint8Array, at: number): number => u32le(bytes, at + 4) * 2 ** 32 + u32le(bytes, at);

const u16le = (b: Uint8Array, at: number): number => b[at]! | (b[at + 1]! << 8);
const u32le = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
const U64 = new BigUint64Array(1);
const U64_BYTES = new Uint8Array(U64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** A little-endian u64: 0n without a BigInt made (most transaction ids of streaming packets). */
function u64le(b: Uint8Array, at: number): bigint {
  let any = 0;
  for (let i = 0; i < 8; i++) any |= U64_BYTES[LITTLE_ENDIAN ? i : 7 - i] = b[at + i]!;
  return any === 0 ? 0n : U64[0]!;
}

/** GPA-direct ranges between the 24-byte header and the in-band part (vmbus.md §8.4). */
function parseGpaDirect(bytes: Uint8Array, end: number): ParsedRange[] {
  return gpaDirectRanges(bytes, 0, end, true)!;
}

/**
 * parseGpaDirect of the packet at `base` of `bytes` (`end` is relative to it): the ranges when
 * `build`, else only the same checks, in the same order, with the same errors (nothing made).
 */
function gpaDirectRanges(bytes: Uint8Array, base: number, end: number, build: boolean): ParsedRange[] | undefined {
  // Read byte by byte, as the descriptor is (every field lies before `end`, within the packet).
  const G = GpaDirectHeader.offsets;
  if (end < G.range) throw new PacketError('offset8', `${end} leaves no room for the GPA-direct header`);
  const count = u32le(bytes, base + G.range_cnt);
  if (count === 0) throw new PacketError('range_cnt', 'a GPA-direct packet needs at least one range');
  // Arrays of their final size (a range never fits past `end`): an empty array's first push
  // reserves room for 17 entries, on a path that parses a packet per I/O request.
  const ranges: ParsedRange[] | undefined = build ? new Array<ParsedRange>(Math.min(count, Math.floor((end - G.range) / GpaRange.size))) : undefined;
  let at = G.range;
  for (let i = 0; i < count; i++) {
    if (at + GpaRange.size > end) throw new PacketError(`range[${i}]`, 'does not fit before the in-band part');
    const byteCount = u32le(bytes, base + at);
    const byteOffset = u32le(bytes, base + at + 4);
    if (byteOffset >= 4096) throw new PacketError(`range[${i}].byte_offset`, `${byteOffset} is not within a page`);
    const n = Math.ceil((byteOffset + byteCount) / 4096);
    at += GpaRange.size;
    if (at + 8 * n > end) throw new PacketError(`range[${i}].pfn_array`, `${n} PFNs do not fit before the in-band part`);
    const pfns: number[] | undefined = ranges ? new Array<number>(n) : undefined;
    for (let k = 0; k < n; k++, at += 8) {
      // Two halves, no BigInt: a frame number above 2^53 - 1 (high half of 21 bits or more) is refused.
      const high = u32le(bytes, base + at + 4);
      if (high >= 2 ** 21) throw new PacketError(`range[${i}].pfn_array[${k}]`, `0x${new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(base + at, true).toString(16)} is not a frame number`);
      if (pfns) pfns[k] = high * 2 ** 32 + u32le(bytes, base + at);
    }
    if (ranges) ranges[i] = { byteCount, byteOffset, pfns: pfns! };
  }
  return ranges;
}

/** Size of an in-band packet of `payload` bytes, descriptor and padding included (no trailer). */
export const inbandPacketSize = (payload: number): number => PacketDescriptor.size + Math.ceil(payload / 8) * 8;
