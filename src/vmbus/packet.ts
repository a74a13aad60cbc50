// Building packets to write into a ring and reading them out of one (vmbus.md §8.3–§8.5), for
// either end.
import type { ReadBatch } from './ring/ring.js';
import { PacketType, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED } from './wire/constants.js';
import { GpaDirectHeader, GpaRange, PacketDescriptor, PacketError, parsePacket, TransferPageHeader, TransferPageRange, type ParsedPacket } from './wire/packets.js';

/**
 * Reads every packet of a batch and parses it: good ones go to `onPacket`, ones that do not
 * parse to `onBad` (the reader skips them). Returns how many were read.
 */
export function readPackets(batch: ReadBatch, onPacket: (p: ParsedPacket) => void, onBad: (e: PacketError) => void, onRaw?: (bytes: Uint8Array) => void): number {
  let n = 0;
  for (let raw = batch.next(); raw; raw = batch.next()) {
    n++;
    // Seen as the ring held it, before parsing: a packet that does not parse crossed too.
    onRaw?.(raw.bytes);
    let p: ParsedPacket;
    try {
      p = parsePacket(raw.bytes);
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

/** An in-band data packet: descriptor (offset8 = 2) then the payload. */
export function inband(payload: Uint8Array, transId: bigint, completionRequested = false): Uint8Array[] {
  const d = PacketDescriptor.encode({
    type: PacketType.DATA_INBAND,
    offset8: 2,
    len8: len8(PacketDescriptor.size + payload.length),
    flags: completionRequested ? VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED : 0,
    trans_id: transId,
  });
  return [d, payload];
}

/** A completion (VM_PKT_COMP) echoing `transId`, with an optional payload. */
export function completion(transId: bigint, payload: Uint8Array = new Uint8Array(0)): Uint8Array[] {
  const d = PacketDescriptor.encode({ type: PacketType.COMP, offset8: 2, len8: len8(PacketDescriptor.size + payload.length), flags: 0, trans_id: transId });
  return [d, payload];
}

export interface GpaDirectRange {
  byteCount: number;
  byteOffset: number;
  pfns: readonly number[];
}

/** A GPA-direct request: its data lives in the listed guest pages (Linux always asks for a completion). */
export function gpaDirect(ranges: readonly GpaDirectRange[], payload: Uint8Array, transId: bigint): Uint8Array[] {
  let headerLen = GpaDirectHeader.offsets.range;
  for (const r of ranges) headerLen += GpaRange.size + 8 * r.pfns.length;
  const header = new Uint8Array(len8(headerLen) * 8);
  const dv = new DataView(header.buffer);
  PacketDescriptor.encode(
    { type: PacketType.DATA_USING_GPA_DIRECT, offset8: header.length / 8, len8: len8(header.length + payload.length), flags: VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, trans_id: transId },
    header,
  );
  dv.setUint32(GpaDirectHeader.offsets.range_cnt, ranges.length, true);
  let at = GpaDirectHeader.offsets.range;
  for (const r of ranges) {
    GpaRange.encode({ byte_count: r.byteCount, byte_offset: r.byteOffset }, header, at);
    at += GpaRange.size;
    for (const p of r.pfns) {
      dv.setBigUint64(at, BigInt(p), true);
      at += 8;
    }
  }
  return [header, payload];
}

const D = PacketDescriptor.offsets;
const G = GpaDirectHeader.offsets;

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

function putU16(dst: Uint8Array, at: number, v: number): void {
  dst[at] = v & 0xff;
  dst[at + 1] = (v >>> 8) & 0xff;
}

function putU32(dst: Uint8Array, at: number, v: number): void {
  putU16(dst, at, v & 0xffff);
  putU16(dst, at + 2, v >>> 16);
}

/** The descriptor of a packet of `length` bytes whose payload starts at `offset` (a multiple of 8). */
function putDescriptor(dst: Uint8Array, type: number, offset: number, length: number, flags: number, transId: number | bigint): void {
  putU16(dst, D.type, type);
  putU16(dst, D.offset8, offset / 8);
  putU16(dst, D.len8, len8(length));
  putU16(dst, D.flags, flags);
  if (typeof transId === 'number') putU64(dst, D.trans_id, transId);
  else {
    U64.setBigUint64(0, BigInt.asUintN(64, transId), true);
    for (let i = 0; i < 8; i++) dst[D.trans_id + i] = U64.getUint8(i);
  }
}
/** Where a bigint transaction id is split into bytes without arithmetic on it. */
const U64 = new DataView(new ArrayBuffer(8));

/** Where a completion's payload starts: right after its descriptor. */
export const COMPLETION_PAYLOAD_AT = PacketDescriptor.size;

/**
 * The descriptor of a completion echoing `transId` with a `payloadLength`-byte payload, into
 * `dst` from 0: the bytes `completion()` makes, for a caller that builds the whole packet in one
 * buffer (the payload at COMPLETION_PAYLOAD_AT). Returns the packet's length.
 */
export function putCompletionHeader(dst: Uint8Array, payloadLength: number, transId: bigint): number {
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
export const GPA_DIRECT_PFNS_AT = G.range + GpaRange.size;

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
  putU32(dst, G.reserved, 0);
  putU32(dst, G.range_cnt, 1);
  putU32(dst, G.range + GpaRange.offsets.byte_count, range.byteCount);
  putU32(dst, G.range + GpaRange.offsets.byte_offset, range.byteOffset);
  // The padding between the last PFN and the payload, if any, is zero as gpaDirect() leaves it.
  dst.fill(0, GPA_DIRECT_PFNS_AT + 8 * range.pfnCount, header);
  return header + payloadLength;
}

/** A transfer-page packet: byte ranges inside a previously shared page set (netvsc receive path). */
export function transferPages(pageSetId: number, ranges: readonly { byteCount: number; byteOffset: number }[], transId: bigint, payload: Uint8Array = new Uint8Array(0)): Uint8Array[] {
  const headerLen = TransferPageHeader.offsets.ranges + TransferPageRange.size * ranges.length;
  const header = new Uint8Array(len8(headerLen) * 8);
  const dv = new DataView(header.buffer);
  PacketDescriptor.encode(
    { type: PacketType.DATA_USING_XFER_PAGES, offset8: header.length / 8, len8: len8(header.length + payload.length), flags: VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, trans_id: transId },
    header,
  );
  dv.setUint16(TransferPageHeader.offsets.xfer_pageset_id, pageSetId, true);
  dv.setUint32(TransferPageHeader.offsets.range_cnt, ranges.length, true);
  ranges.forEach((r, i) => TransferPageRange.encode({ byte_count: r.byteCount, byte_offset: r.byteOffset }, header, TransferPageHeader.offsets.ranges + TransferPageRange.size * i));
  return [header, payload];
}
