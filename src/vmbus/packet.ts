// Building packets to write into a ring and reading them out of one (vmbus.md §8.3–§8.5), for
// either end.
import type { ReadBatch } from './ring/ring.js';
import { sliceOf, subarrayOf } from '../memory/typed-arrays.js';
import { PacketType, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED } from './wire/constants.js';
import { WireError } from '../tlfs/struct.js';
import { GpaDirectHeader, GpaRange, PacketDescriptor, PacketError, parsePacket, TransferPageHeader, TransferPageRange, type ParsedPacket } from './wire/packets.js';

/**
 * Reads every packet of a batch and parses it: good ones go to `onPacket`, ones that do not
 * parse to `onBad` (the reader skips them). Returns how many were read.
 */
export function readPackets(batch: ReadBatch, onPacket: (p: ParsedPacket) => void, onBad: (e: PacketError) => void, onRaw?: (bytes: Uint8Array) => void): number {
  let n = 0;
  for (let bytes = batch.nextBytes(); bytes; bytes = batch.nextBytes()) {
    n++;
    // Seen as the ring held it, before parsing: a packet that does not parse crossed too.
    onRaw?.(bytes);
    let p: ParsedPacket;
    try {
      p = parsePacket(bytes);
    } catch (e) {
      if (!(e instanceof PacketError)) throw e;
      onBad(e);
      continue;
    }
    onPacket(p);
  }
  return n;
}

/**
 * readPackets() for a device that takes in-band data where it lies: an in-band packet with no
 * flags goes to `onInband` as its in-band part [start, end) of `bytes` (padding included, as
 * parsePacket's payload), found through ReadBatch.view(): in the ring itself when the packet
 * does not wrap, so valid during the call only, and the device copies what it keeps. The host's
 * strict reader has checked len8 and offset8 (locate); type and flags are read once, here,
 * which is all parsePacket asks of such a packet. Any other packet is copied and parsed as
 * readPackets() does, and goes to `onPacket` or `onBad`. Returns how many were read.
 */
export function readInband(
  batch: ReadBatch,
  onInband: (bytes: Uint8Array, start: number, end: number) => void,
  onPacket: (p: ParsedPacket) => void,
  onBad: (e: PacketError) => void,
  onRaw?: (bytes: Uint8Array) => void,
): number {
  let n = 0;
  for (let v = batch.view(); v; v = batch.view()) {
    n++;
    const bytes = v.bytes;
    const at = v.at;
    const end = at + v.length;
    onRaw?.(subarrayOf(bytes, at, end));
    const type = bytes[at + D.type]! | (bytes[at + D.type + 1]! << 8);
    const flags = bytes[at + D.flags]! | (bytes[at + D.flags + 1]! << 8);
    if (type === PacketType.DATA_INBAND && flags === 0) {
      onInband(bytes, at + v.offset, end);
      continue;
    }
    let p: ParsedPacket;
    try {
      p = parsePacket(sliceOf(bytes, at, end));
    } catch (e) {
      if (!(e instanceof PacketError)) throw e;
      onBad(e);
      continue;
    }
    onPacket(p);
  }
  return n;
}

const len8 = (bytes: number) => Math.ceil(bytes / 8);

// The builders write the descriptor and the range tables field by field at their declared
// offsets: a packet or more per frame on the network and storage data paths, where the generic
// struct encoder (an object walk per call) costs more than the packet's copy into the ring.
const D = PacketDescriptor.offsets;
const TP = TransferPageHeader.offsets;
const TPR = TransferPageRange.offsets;
const GD = GpaDirectHeader.offsets;
const GR = GpaRange.offsets;
const U64 = new BigUint64Array(1);
const U64_BYTES = new Uint8Array(U64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

// The same refusals as the struct encoder: a value that does not fit its field is a WireError naming it.
function put16(out: Uint8Array, at: number, v: number, sname: string, field: string): void {
  if (!(v >= 0 && v <= 0xffff && Number.isInteger(v))) throw new WireError(sname, field, `${String(v)} is not a u16`);
  out[at] = v;
  out[at + 1] = v >>> 8;
}
function put32(out: Uint8Array, at: number, v: number, sname: string, field: string): void {
  if (!(v >= 0 && v <= 0xffffffff && Number.isInteger(v))) throw new WireError(sname, field, `${String(v)} is not a u32`);
  out[at] = v;
  out[at + 1] = v >>> 8;
  out[at + 2] = v >>> 16;
  out[at + 3] = v >>> 24;
}
function put64(out: Uint8Array, at: number, v: bigint, sname: string, field: string): void {
  if (v === 0n) {
    for (let i = 0; i < 8; i++) out[at + i] = 0;
    return;
  }
  if (typeof v !== 'bigint' || v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new WireError(sname, field, `${String(v)} is not a u64`);
  U64[0] = v;
  for (let i = 0; i < 8; i++) out[at + i] = U64_BYTES[LITTLE_ENDIAN ? i : 7 - i]!;
}

/** vmpacket_descriptor at the start of `out`. */
function descriptor(out: Uint8Array, type: number, offset8: number, len8: number, flags: number, transId: bigint): void {
  const n = PacketDescriptor.name;
  put16(out, D.type, type, n, 'type');
  put16(out, D.offset8, offset8, n, 'offset8');
  put16(out, D.len8, len8, n, 'len8');
  put16(out, D.flags, flags, n, 'flags');
  put64(out, D.trans_id, transId, n, 'trans_id');
}

const EMPTY = new Uint8Array(0);

/** An in-band data packet: descriptor (offset8 = 2) then the payload. */
export function inband(payload: Uint8Array, transId: bigint, completionRequested = false): Uint8Array[] {
  const d = new Uint8Array(PacketDescriptor.size);
  descriptor(d, PacketType.DATA_INBAND, PacketDescriptor.size / 8, len8(PacketDescriptor.size + payload.length), completionRequested ? VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED : 0, transId);
  return [d, payload];
}

/** A completion (VM_PKT_COMP) echoing `transId`, with an optional payload. */
export function completion(transId: bigint, payload: Uint8Array = EMPTY): Uint8Array[] {
  const d = new Uint8Array(PacketDescriptor.size);
  descriptor(d, PacketType.COMP, PacketDescriptor.size / 8, len8(PacketDescriptor.size + payload.length), 0, transId);
  return [d, payload];
}

export interface GpaDirectRange {
  byteCount: number;
  byteOffset: number;
  pfns: readonly number[];
}

/** A GPA-direct request: its data lives in the listed guest pages (Linux always asks for a completion). */
export function gpaDirect(ranges: readonly GpaDirectRange[], payload: Uint8Array, transId: bigint): Uint8Array[] {
  let headerLen = GD.range;
  for (const r of ranges) headerLen += GpaRange.size + 8 * r.pfns.length;
  const header = new Uint8Array(len8(headerLen) * 8);
  descriptor(header, PacketType.DATA_USING_GPA_DIRECT, header.length / 8, len8(header.length + payload.length), VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, transId);
  put32(header, GD.range_cnt, ranges.length, GpaDirectHeader.name, 'range_cnt');
  let at = GD.range;
  for (const r of ranges) {
    put32(header, at + GR.byte_count, r.byteCount, GpaRange.name, 'byte_count');
    put32(header, at + GR.byte_offset, r.byteOffset, GpaRange.name, 'byte_offset');
    at += GpaRange.size;
    for (const p of r.pfns) {
      put64(header, at, BigInt.asUintN(64, BigInt(p)), GpaRange.name, 'pfn_array');
      at += 8;
    }
  }
  return [header, payload];
}

/** A little-endian u64 from a safe integer into `dst` at `at` (two 32-bit halves, no BigInt). */
export function putU64(dst: Uint8Array, at: number, v: number): void {
  const lo = v >>> 0;
  const hi = Math.floor(v / 2 ** 32) >>> 0;
  dst[at] = lo & 0xff;
  dst[at + 1] = (lo >>> 8) & 0xff;
  dst[at + 2] = (lo >>> 16) & 0xff;
  dst[at + 3] = lo >>> 24;
  dst[at + 4] = hi & 0xff;
  dst[at + 5] = (hi >>> 8) & 0xff;
  dst[at + 6] = (hi >>> 16) & 0xff;
  dst[at + 7] = hi >>> 24;
}

/**
 * The descriptor of a packet of `length` bytes whose payload starts at `offset` (a multiple of
 * 8); a transaction id that is a safe integer is written without BigInt.
 */
function putDescriptor(dst: Uint8Array, type: number, offset: number, length: number, flags: number, transId: number | bigint): void {
  if (typeof transId === 'bigint') return descriptor(dst, type, offset / 8, len8(length), flags, transId);
  const n = PacketDescriptor.name;
  put16(dst, D.type, type, n, 'type');
  put16(dst, D.offset8, offset / 8, n, 'offset8');
  put16(dst, D.len8, len8(length), n, 'len8');
  put16(dst, D.flags, flags, n, 'flags');
  putU64(dst, D.trans_id, transId);
}

/** Where a completion's payload starts: right after its descriptor. */
export const COMPLETION_PAYLOAD_AT = PacketDescriptor.size;

/**
 * The descriptor of a completion echoing `transId` with a `payloadLength`-byte payload, into
 * `dst` from 0: the bytes `completion()` makes, for a caller that builds the whole packet in one
 * buffer (the payload at COMPLETION_PAYLOAD_AT). Returns the packet's length.
 */
export function putCompletionHeader(dst: Uint8Array, payloadLength: number, transId: bigint | number): number {
  const length = COMPLETION_PAYLOAD_AT + payloadLength;
  putDescriptor(dst, PacketType.COMP, COMPLETION_PAYLOAD_AT, length, 0, transId);
  return length;
}

/** Where an in-band packet's payload starts: right after its descriptor. */
export const INBAND_PAYLOAD_AT = PacketDescriptor.size;

/**
 * The descriptor of an in-band packet with a `payloadLength`-byte payload, into `dst` from 0:
 * the bytes `inband()` makes, for a caller that builds the whole packet in one buffer of its own
 * (the payload at INBAND_PAYLOAD_AT). `transId` is a safe integer. Returns the packet's length.
 */
export function putInbandHeader(dst: Uint8Array, payloadLength: number, transId: number, completionRequested: boolean): number {
  const length = INBAND_PAYLOAD_AT + payloadLength;
  putDescriptor(dst, PacketType.DATA_INBAND, INBAND_PAYLOAD_AT, length, completionRequested ? VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED : 0, transId);
  return length;
}

/** Where the PFNs of a one-range GPA-direct packet start (after its range's byte count and offset). */
export const GPA_DIRECT_PFNS_AT = GD.range + GpaRange.size;

/** Bytes of a one-range GPA-direct header with `pfnCount` PFNs, descriptor included: where its payload starts. */
export const gpaDirectHeaderLength = (pfnCount: number): number => len8(GPA_DIRECT_PFNS_AT + 8 * pfnCount) * 8;

/**
 * The header of a GPA-direct request with one range into `dst` from 0, as `gpaDirect()` makes it,
 * but the PFNs: the caller writes `range.pfnCount` of them at GPA_DIRECT_PFNS_AT (putU64) and the
 * payload at gpaDirectHeaderLength(pfnCount). `transId` is a safe integer. Returns the packet's
 * length (header plus payload).
 */
export function putGpaDirectHeader(dst: Uint8Array, range: { readonly byteCount: number; readonly byteOffset: number; readonly pfnCount: number }, payloadLength: number, transId: number): number {
  const header = gpaDirectHeaderLength(range.pfnCount);
  putDescriptor(dst, PacketType.DATA_USING_GPA_DIRECT, header, header + payloadLength, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, transId);
  put32(dst, GD.reserved, 0, GpaDirectHeader.name, 'reserved');
  put32(dst, GD.range_cnt, 1, GpaDirectHeader.name, 'range_cnt');
  put32(dst, GD.range + GR.byte_count, range.byteCount, GpaRange.name, 'byte_count');
  put32(dst, GD.range + GR.byte_offset, range.byteOffset, GpaRange.name, 'byte_offset');
  // The padding between the last PFN and the payload, if any, is zero as gpaDirect() leaves it.
  for (let i = GPA_DIRECT_PFNS_AT + 8 * range.pfnCount; i < header; i++) dst[i] = 0;
  return header + payloadLength;
}

/** Bytes of a transfer-page packet's header with `count` ranges, padded to 8. */
export const transferPagesHeaderSize = (count: number): number => len8(TP.ranges + TransferPageRange.size * count) * 8;

/**
 * A transfer-page packet's header written into `header` (transferPagesHeaderSize(count) bytes)
 * from parallel arrays of `count` ranges: the receive path of a NIC names many sections per
 * packet and keeps its range table from one packet to the next.
 */
export function writeTransferPagesHeader(header: Uint8Array, pageSetId: number, count: number, byteCounts: ArrayLike<number>, byteOffsets: ArrayLike<number>, transId: bigint, payloadLength: number): void {
  const size = transferPagesHeaderSize(count);
  descriptor(header, PacketType.DATA_USING_XFER_PAGES, size / 8, len8(size + payloadLength), VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, transId);
  const n = TransferPageHeader.name;
  put16(header, TP.xfer_pageset_id, pageSetId, n, 'xfer_pageset_id');
  header[TP.sender_owns_set] = 0;
  header[TP.reserved] = 0;
  put32(header, TP.range_cnt, count, n, 'range_cnt');
  for (let i = 0, at = TP.ranges; i < count; i++, at += TransferPageRange.size) {
    put32(header, at + TPR.byte_count, byteCounts[i]!, TransferPageRange.name, 'byte_count');
    put32(header, at + TPR.byte_offset, byteOffsets[i]!, TransferPageRange.name, 'byte_offset');
  }
  for (let at = TP.ranges + TransferPageRange.size * count; at < size; at++) header[at] = 0;
}

/** A transfer-page packet: byte ranges inside a previously shared page set (netvsc receive path). */
export function transferPages(pageSetId: number, ranges: readonly { byteCount: number; byteOffset: number }[], transId: bigint, payload: Uint8Array = EMPTY): Uint8Array[] {
  const header = new Uint8Array(transferPagesHeaderSize(ranges.length));
  writeTransferPagesHeader(
    header,
    pageSetId,
    ranges.length,
    ranges.map((r) => r.byteCount),
    ranges.map((r) => r.byteOffset),
    transId,
    payload.length,
  );
  return [header, payload];
}
