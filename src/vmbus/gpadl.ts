// GPADLs: lists of guest pages the host may map (vmbus.md §5). The guest side builds the PFN
// list (buffer or ring layout, §5.3) and splits it across GPADL_HEADER and GPADL_BODY messages
// (§2.23); the host side assembles those messages, validates the ranges and maps them.
import { HV_HYP_PAGE_SIZE } from '../memory/pages.js';
import { PfnList } from '../memory/pfn-list.js';
import { WireError } from '../tlfs/struct.js';
import { ChannelMessageType, GPADL_BODY_PFNS, GPADL_HEADER_PFNS } from './wire/constants.js';
import { encodeChannelMessage, GpadlHeader } from './wire/messages.js';
import { GpaRange } from './wire/packets.js';

/** A GPADL's pages as the host sees them: one range per entry. */
export interface GpadlRange {
  readonly byteCount: number;
  readonly byteOffset: number;
  readonly pfns: readonly number[];
}

/** BUFFER layout: every 4 KiB frame of [gpa, gpa + size), in order. */
export function bufferPfns(gpa: number, size: number): number[] {
  const first = Math.floor(gpa / HV_HYP_PAGE_SIZE);
  return Array.from({ length: Math.ceil(size / HV_HYP_PAGE_SIZE) }, (_, i) => first + i);
}

/**
 * RING layout (hv_gpadl_hvpfn): a ring pair of `sendSize` + `recvSize` bytes at `gpa`. Each ring's
 * header occupies a whole guest page but only its first 4 KiB is shared, so with guest pages of
 * P bytes the (P − 4096) bytes after each header are left out. Returns the PFNs, the GPADL's
 * byte count, and the downstream page offset OPENCHANNEL names.
 */
export function ringPfns(gpa: number, sendSize: number, recvSize: number, guestPageSize: number): { pfns: number[]; byteCount: number; downstreamOffset: number } {
  const skip = guestPageSize - HV_HYP_PAGE_SIZE;
  const total = sendSize + recvSize;
  const byteCount = total - 2 * skip;
  const downstreamOffset = (sendSize - skip) / HV_HYP_PAGE_SIZE;
  const pfns: number[] = [];
  for (let i = 0; i < byteCount / HV_HYP_PAGE_SIZE; i++) {
    const off = i === 0 ? 0 : i <= downstreamOffset ? HV_HYP_PAGE_SIZE * i + skip : HV_HYP_PAGE_SIZE * i + 2 * skip;
    pfns.push((gpa + off) / HV_HYP_PAGE_SIZE);
  }
  return { pfns, byteCount, downstreamOffset };
}

/**
 * The messages that establish one single-range GPADL: a header with up to 26 PFNs, then bodies
 * of up to 28, each sized exactly (create_gpadl_header).
 */
export function gpadlMessages(relid: number, handle: number, pfns: readonly number[], byteCount: number): Uint8Array[] {
  const rangeHeader = new Uint8Array(GpaRange.size);
  GpaRange.encode({ byte_count: byteCount, byte_offset: 0 }, rangeHeader);
  const pfnBytes = (list: readonly number[]) => {
    const b = new Uint8Array(8 * list.length);
    const dv = new DataView(b.buffer);
    list.forEach((p, i) => dv.setBigUint64(8 * i, BigInt(p), true));
    return b;
  };
  const head = pfns.slice(0, GPADL_HEADER_PFNS);
  const extra = new Uint8Array(rangeHeader.length + 8 * head.length);
  extra.set(rangeHeader);
  extra.set(pfnBytes(head), rangeHeader.length);
  const msgs = [
    encodeChannelMessage(
      ChannelMessageType.GPADL_HEADER,
      { child_relid: relid, gpadl: handle, range_buflen: GpaRange.size + 8 * pfns.length, rangecount: 1 },
      extra,
    ),
  ];
  for (let at = GPADL_HEADER_PFNS; at < pfns.length; at += GPADL_BODY_PFNS) {
    msgs.push(encodeChannelMessage(ChannelMessageType.GPADL_BODY, { msgnumber: 0, gpadl: handle }, pfnBytes(pfns.slice(at, at + GPADL_BODY_PFNS))));
  }
  return msgs;
}

/** A GPADL the host could not accept; `field` names the reason. */
export class GpadlError extends WireError {
  constructor(field: string, reason: string) {
    super('gpadl', field, reason);
  }
}

/**
 * The host's view of a GPADL while its messages arrive: the range data as u64s, complete when
 * range_buflen / 8 of them are in (extra trailing bytes in a message are ignored, as OpenVMM does).
 */
export class GpadlAssembly {
  /** At most 8191 words (range_buflen is a u16): 64 KiB however long the guest takes. */
  private readonly words: BigUint64Array;
  private count = 0;
  readonly expected: number;

  constructor(
    readonly relid: number,
    readonly handle: number,
    readonly rangeCount: number,
    rangeBufLen: number,
  ) {
    if (rangeBufLen % 8 !== 0 || rangeBufLen < GpaRange.size) throw new GpadlError('range_buflen', `${rangeBufLen} is not a multiple of 8 of at least 8`);
    if (rangeCount === 0) throw new GpadlError('rangecount', 'a GPADL needs at least one range');
    this.expected = rangeBufLen / 8;
    this.words = new BigUint64Array(this.expected);
  }

  get complete(): boolean {
    return this.count >= this.expected;
  }

  /** Adds range data (whole u64s; a trailing partial u64 is ignored). */
  append(data: Uint8Array): void {
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let i = 0; i + 8 <= data.length && this.count < this.expected; i += 8) this.words[this.count++] = dv.getBigUint64(i, true);
  }

  /** Validates the complete data into ranges (OpenVMM Gpadl::append and range checks). */
  ranges(memorySize: number): GpadlRange[] {
    const out: GpadlRange[] = [];
    let at = 0;
    for (let r = 0; r < this.rangeCount; r++) {
      if (at >= this.count) throw new GpadlError(`range[${r}]`, 'missing');
      const head = this.words[at++]!;
      const byteCount = Number(head & 0xffffffffn);
      const byteOffset = Number(head >> 32n);
      if (byteCount === 0) throw new GpadlError(`range[${r}].byte_count`, 'is zero');
      if (byteOffset >= HV_HYP_PAGE_SIZE) throw new GpadlError(`range[${r}].byte_offset`, `${byteOffset} is not within a page`);
      const n = Math.ceil((byteOffset + byteCount) / HV_HYP_PAGE_SIZE);
      if (at + n > this.count) throw new GpadlError(`range[${r}].pfn_array`, `needs ${n} PFNs, ${this.count - at} left`);
      const pfns: number[] = [];
      for (let k = 0; k < n; k++) {
        const pfn = this.words[at++]!;
        if (pfn >= BigInt(memorySize / HV_HYP_PAGE_SIZE)) throw new GpadlError(`range[${r}].pfn_array[${k}]`, `0x${pfn.toString(16)} is outside guest RAM`);
        pfns.push(Number(pfn));
      }
      out.push({ byteCount, byteOffset, pfns });
    }
    return out;
  }
}

/** A complete GPADL on the host. */
export class Gpadl {
  /**
   * True while the server keeps it (until GPADL_TEARDOWN, the channel's release or an unload):
   * a device holding the object may check this per access instead of looking the handle up.
   */
  live = true;

  constructor(
    readonly relid: number,
    readonly handle: number,
    readonly ranges: readonly GpadlRange[],
  ) {}

  /** Pages named, over all ranges. */
  get pages(): number {
    let n = 0;
    for (const r of this.ranges) n += r.pfns.length;
    return n;
  }

  /** One range as a PfnList (the buffer a device reads and writes). */
  pfnList(range = 0): PfnList {
    const r = this.ranges[range];
    if (!r) throw new GpadlError(`range[${range}]`, 'no such range');
    return new PfnList(r.pfns, r.byteOffset, r.byteCount);
  }

  /**
   * The ring pair this GPADL holds, split at `downstreamOffset` pages (OpenVMM make_rings): one
   * range, offset 0, whole pages, 0 < offset < pages. Returns the host's incoming (guest→host)
   * and outgoing (host→guest) page lists.
   */
  ringPages(downstreamOffset: number): { incoming: number[]; outgoing: number[] } {
    if (this.ranges.length !== 1) throw new GpadlError('rangecount', `a ring GPADL has one range, not ${this.ranges.length}`);
    const r = this.ranges[0]!;
    if (r.byteOffset !== 0) throw new GpadlError('range[0].byte_offset', 'a ring GPADL starts on a page');
    if (r.byteCount % HV_HYP_PAGE_SIZE !== 0) throw new GpadlError('range[0].byte_count', 'a ring GPADL is whole pages');
    const pages = r.pfns.length;
    if (!Number.isInteger(downstreamOffset) || downstreamOffset < 2 || pages - downstreamOffset < 2) {
      throw new GpadlError('downstream_ringbuffer_pageoffset', `${downstreamOffset} does not leave two rings of at least 2 pages in ${pages}`);
    }
    return { incoming: r.pfns.slice(0, downstreamOffset), outgoing: r.pfns.slice(downstreamOffset) };
  }
}

/** Offset of the range data in a GPADL_HEADER message. */
export const GPADL_HEADER_DATA = GpadlHeader.size;
