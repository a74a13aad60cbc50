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
