// The Hyper-V Dynamic Memory protocol between hv_balloon (the guest's VSC) and the host's dynamic
// memory VSP: every message is a dm_header (type, size including the header, the guest's
// transaction id) and a body. Layouts and constants follow Linux 6.1 drivers/hv/hv_balloon.c
// (struct dm_*, enum dm_message_type, the DYNMEM_PROTOCOL_VERSION_* enum, HA_CHUNK, PAGES_IN_2M);
// every one is checked against the oracle (test/oracle/balloon-constants.test.ts, oracle.test.ts).
// C unions are declared as their struct view: dm_version as {minor, major}, dm_caps as cap_bits,
// dm_mem_page_range as finfo (struct.ts has no unions; the u64 view is the same bytes).
import { bits, flex, struct, u16, u32, u64, u8, WireError } from '../../tlfs/struct.js';

// --- Layouts ---------------------------------------------------------------------------------

/** struct dm_header: `size` counts the header too. */
export const DmHeader = struct('dm_header', {
  /** enum dm_message_type. */
  type: u16,
  /** Bytes of the message, header included. */
  size: u16,
  /** The guest's counter; hvkit's host answers with 0. */
  trans_id: u32,
});

/** struct dm_message: a header and the enclosed message. */
export const DmMessage = struct('dm_message', { hdr: DmHeader, data: flex(u8) });

/** union dm_version: the minor version in the low half, the major in the high. */
export const DmVersion = struct('dm_version', { minor_version: u16, major_version: u16 });

/** union dm_caps (cap_bits): hot_add_alignment n means 2^n MiB. */
export const DmCaps = struct('dm_caps', { cap_bits: bits('cap_bits', 'u64', { balloon: 1, hot_add: 1, hot_add_alignment: 4, reservedz: 58 }) });

/** union dm_mem_page_range (finfo): a PFN of 40 bits (the AMD64 limit) and a count of 24. */
export const DmMemPageRange = struct('dm_mem_page_range', { finfo: bits('finfo', 'u64', { start_page: 40, page_cnt: 24 }) });

/** Guest → host: the version the guest asks for; is_last_attempt when it has no lower one left. */
export const DmVersionRequest = struct('dm_version_request', {
  hdr: DmHeader,
  version: DmVersion,
  _attempt: bits('dm_version_request', 'u32', { is_last_attempt: 1, reservedz: 31 }),
});

/** Host → guest: whether the version is accepted. */
export const DmVersionResponse = struct('dm_version_response', { hdr: DmHeader, _r: bits('dm_version_response', 'u64', { is_accepted: 1, reservedz: 63 }) });

/** Guest → host: what the guest can do (balloon, hot add, its hot-add alignment). */
export const DmCapabilities = struct('dm_capabilities', {
  hdr: DmHeader,
  caps: DmCaps,
  /** Linux sends 0, as the Windows driver does; the host does not use it. */
  min_page_cnt: u64,
  /** Linux sends all ones; the host does not use it. */
  max_page_number: u64,
});

/** Host → guest: whether the capabilities are accepted (if not, the guest stops). */
export const DmCapabilitiesResp = struct('dm_capabilities_resp_msg', { hdr: DmHeader, _r: bits('dm_capabilities_resp_msg', 'u64', { is_accepted: 1, reservedz: 63 }) });

/** Guest → host, every second: memory pressure, in 4 KiB pages. No answer. */
export const DmStatus = struct('dm_status', {
  hdr: DmHeader,
  /** Available memory (Linux: si_mem_available). */
  num_avail: u64,
  /** Committed memory: what the host's pressure calculation uses. */
  num_committed: u64,
  /** Windows' page files; Linux sends 0. */
  page_file_size: u64,
  /** Zero and free pages; Linux sends 0. */
  zero_free: u64,
  /** Page file writes; Linux sends 0. */
  page_file_writes: u32,
  /** File cache efficiency; Linux sends 0. */
  io_diff: u32,
});

/** Host → guest: give up `num_pages` pages (balloon up). */
export const DmBalloon = struct('dm_balloon', {
  hdr: DmHeader,
  /** 4 KiB pages the host wants. */
  num_pages: u32,
  reservedz: u32,
});

/** Guest → host: the pages given, as ranges; more_pages while more messages of the answer follow. */
export const DmBalloonResponse = struct('dm_balloon_response', {
  hdr: DmHeader,
  reservedz: u32,
  _r: bits('dm_balloon_response', 'u32', { more_pages: 1, range_count: 31 }),
  range_array: flex(DmMemPageRange),
});

/** Host → guest: take these pages back (balloon down). */
export const DmUnballoonRequest = struct('dm_unballoon_request', {
  hdr: DmHeader,
  _r: bits('dm_unballoon_request', 'u32', { more_pages: 1, reservedz: 31 }),
  range_count: u32,
  range_array: flex(DmMemPageRange),
});

/** Guest → host: the unballoon is done. */
export const DmUnballoonResponse = struct('dm_unballoon_response', { hdr: DmHeader });

/**
 * Host → guest: hot add this page range. A longer message (hdr.size of two ranges) carries the
 * region to add after it: Linux reads `range[1]` when hdr.size is not sizeof(dm_hot_add).
 */
export const DmHotAdd = struct('dm_hot_add', { hdr: DmHeader, range: DmMemPageRange });

/** Guest → host: how many pages were added; result 1 success, 0 a failure worth retrying. */
export const DmHotAddResponse = struct('dm_hot_add_response', {
  hdr: DmHeader,
  /** Pages added; fewer than asked means no more will be. */
  page_count: u32,
  /** 1 success (or, with page_count 0, hot add off for good); 0 a transient failure. */
  result: u32,
});

/** struct dm_info_header: one item of an INFO message. */
export const DmInfoHeader = struct('dm_info_header', { type: u32, data_size: u32 });

/** Host → guest (protocol 1.0 on): information items. */
export const DmInfoMsg = struct('dm_info_msg', { hdr: DmHeader, reserved: u32, info_size: u32, info: flex(u8) });

export const BALLOON_LAYOUTS = [DmHeader, DmMessage, DmVersion, DmCaps, DmMemPageRange, DmVersionRequest, DmVersionResponse, DmCapabilities, DmCapabilitiesResp, DmStatus, DmBalloon, DmBalloonResponse, DmUnballoonRequest, DmUnballoonResponse, DmHotAdd, DmHotAddResponse, DmInfoHeader, DmInfoMsg];

// --- Constants -------------------------------------------------------------------------------

/** enum dm_message_type. */
export const DmMessageType = {
  DM_ERROR: 0,
  DM_VERSION_REQUEST: 1,
  DM_VERSION_RESPONSE: 2,
  DM_CAPABILITIES_REPORT: 3,
  DM_CAPABILITIES_RESPONSE: 4,
  DM_STATUS_REPORT: 5,
  DM_BALLOON_REQUEST: 6,
  DM_BALLOON_RESPONSE: 7,
  DM_UNBALLOON_REQUEST: 8,
  DM_UNBALLOON_RESPONSE: 9,
  DM_MEM_HOT_ADD_REQUEST: 10,
  DM_MEM_HOT_ADD_RESPONSE: 11,
  DM_VERSION_03_MAX: 11,
  DM_INFO_MESSAGE: 12,
  DM_VERSION_1_MAX: 12,
} as const;
const T = DmMessageType;

export const DM_MESSAGE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(DmMessageType)
    .filter(([k]) => !k.endsWith('_MAX'))
    .map(([k, v]) => [v, k]),
);

/** The DYNMEM_PROTOCOL_VERSION_* enum: major in the high half, minor in the low. */
export const DynmemVersion = {
  DYNMEM_PROTOCOL_VERSION_1: 0x0000_0003,
  DYNMEM_PROTOCOL_VERSION_2: 0x0001_0000,
  DYNMEM_PROTOCOL_VERSION_3: 0x0002_0000,
  WIN7: 0x0000_0003,
  WIN8: 0x0001_0000,
  WIN10: 0x0002_0000,
  CURRENT: 0x0002_0000,
} as const;

/** "2.0" for DYNMEM_PROTOCOL_VERSION_3, as hv_balloon's "Using Dynamic Memory protocol version" line prints it. */
export const dynmemVersionString = (v: number): string => `${v >>> 16}.${v & 0xff}`;

/** enum dm_info_type. */
export const DmInfoType = { INFO_TYPE_MAX_PAGE_CNT: 0, MAX_INFO_TYPE: 1 } as const;

/** enum hv_dm_state: the guest driver's state. */
export const HvDmState = { DM_INITIALIZING: 0, DM_INITIALIZED: 1, DM_BALLOON_UP: 2, DM_BALLOON_DOWN: 3, DM_HOT_ADD: 4, DM_INIT_ERROR: 5 } as const;

/** PAGES_IN_2M and HA_CHUNK (128 MiB) in guest pages of `pageSize` bytes (hv_balloon.c). */
export const pagesIn2M = (pageSize: number): number => (2 << 20) / pageSize;
export const haChunk = (pageSize: number): number => (128 << 20) / pageSize;
/** The protocol's page: HV_HYP_PAGE_SIZE. hv_balloon's receive and balloon-response buffers are one of them. */
export const DM_PAGE_SIZE = 4096;
/** The most ranges one DM_BALLOON_RESPONSE holds: as many as fit one 4 KiB buffer after the header. */
export const MAX_RANGES_PER_BALLOON_RESPONSE = Math.floor((DM_PAGE_SIZE - DmBalloonResponse.size) / DmMemPageRange.size);
/** start_page is 40 bits, page_cnt 24. */
export const MAX_RANGE_PFN = 2 ** 40 - 1;
export const MAX_RANGE_PAGES = 2 ** 24 - 1;
/** hot_add_alignment hv_balloon reports: 2^7 MiB = 128 MiB. */
export const LINUX_HOT_ADD_ALIGNMENT = 7;

// --- Messages --------------------------------------------------------------------------------

/** A page range: first PFN (4 KiB frames) and count. */
export interface PageRange {
  readonly start: number;
  readonly count: number;
}

/** One decoded dynamic-memory message. */
export type DmMessageValue =
  | { readonly type: 'version-request'; readonly transId: number; readonly version: number; readonly isLastAttempt: boolean }
  | { readonly type: 'version-response'; readonly transId: number; readonly accepted: boolean }
  | { readonly type: 'capabilities'; readonly transId: number; readonly balloon: boolean; readonly hotAdd: boolean; readonly hotAddAlignment: number; readonly minPageCount: bigint; readonly maxPageNumber: bigint }
  | { readonly type: 'capabilities-response'; readonly transId: number; readonly accepted: boolean }
  | { readonly type: 'status'; readonly transId: number; readonly numAvail: bigint; readonly numCommitted: bigint; readonly pageFileSize: bigint; readonly zeroFree: bigint; readonly pageFileWrites: number; readonly ioDiff: number }
  | { readonly type: 'balloon'; readonly transId: number; readonly numPages: number }
  | { readonly type: 'balloon-response'; readonly transId: number; readonly morePages: boolean; readonly ranges: readonly PageRange[] }
  | { readonly type: 'unballoon'; readonly transId: number; readonly morePages: boolean; readonly ranges: readonly PageRange[] }
  | { readonly type: 'unballoon-response'; readonly transId: number }
  | { readonly type: 'hot-add'; readonly transId: number; readonly range: PageRange; readonly region: PageRange | undefined }
  | { readonly type: 'hot-add-response'; readonly transId: number; readonly pageCount: number; readonly result: number }
  | { readonly type: 'info'; readonly transId: number; readonly maxPageCount: bigint | undefined; readonly infoType: number | undefined }
  | { readonly type: 'error'; readonly transId: number };

const fail = (struct: string, field: string, reason: string): never => {
  throw new WireError(struct, field, reason);
};

function range(v: { finfo: { start_page: number; page_cnt: number } }): PageRange {
  return { start: v.finfo.start_page, count: v.finfo.page_cnt };
}

function ranges(buf: Uint8Array, name: string, at: number, count: number, size: number): PageRange[] {
  if (at + count * DmMemPageRange.size > size) fail(name, 'range_count', `${count} ranges do not fit the ${size}-byte message`);
  const out: PageRange[] = [];
  for (let i = 0; i < count; i++) out.push(range(DmMemPageRange.decode(buf, at + i * DmMemPageRange.size)));
  return out;
}

/**
 * Decodes one message: the header's size must fit the bytes received and the type's structure,
 * and range counts must fit the size. Throws WireError naming the field at fault.
 */
export function decodeDmMessage(buf: Uint8Array): DmMessageValue {
  if (buf.length < DmHeader.size) fail('dm_header', 'size', `${buf.length} bytes is shorter than the header`);
  const hdr = DmHeader.decode(buf);
  if (hdr.size < DmHeader.size || hdr.size > buf.length) fail('dm_header', 'size', `${hdr.size} is not between ${DmHeader.size} and the ${buf.length} bytes received`);
  const b = buf.subarray(0, hdr.size);
  const need = (s: { name: string; size: number }): void => {
    if (hdr.size < s.size) fail(s.name, 'hdr.size', `${hdr.size} is less than its ${s.size} bytes`);
  };
  const transId = hdr.trans_id;
  switch (hdr.type) {
    case T.DM_ERROR:
      return { type: 'error', transId };
    case T.DM_VERSION_REQUEST: {
      need(DmVersionRequest);
      const m = DmVersionRequest.decode(b);
      return { type: 'version-request', transId, version: (m.version.major_version << 16 | m.version.minor_version) >>> 0, isLastAttempt: m._attempt.is_last_attempt === 1 };
    }
    case T.DM_VERSION_RESPONSE:
      need(DmVersionResponse);
      return { type: 'version-response', transId, accepted: DmVersionResponse.decode(b)._r.is_accepted === 1 };
    case T.DM_CAPABILITIES_REPORT: {
      need(DmCapabilities);
      const m = DmCapabilities.decode(b);
      const c = m.caps.cap_bits;
      return { type: 'capabilities', transId, balloon: c.balloon === 1, hotAdd: c.hot_add === 1, hotAddAlignment: c.hot_add_alignment, minPageCount: m.min_page_cnt, maxPageNumber: m.max_page_number };
    }
    case T.DM_CAPABILITIES_RESPONSE:
      need(DmCapabilitiesResp);
      return { type: 'capabilities-response', transId, accepted: DmCapabilitiesResp.decode(b)._r.is_accepted === 1 };
    case T.DM_STATUS_REPORT: {
      need(DmStatus);
      const m = DmStatus.decode(b);
      return { type: 'status', transId, numAvail: m.num_avail, numCommitted: m.num_committed, pageFileSize: m.page_file_size, zeroFree: m.zero_free, pageFileWrites: m.page_file_writes, ioDiff: m.io_diff };
    }
    case T.DM_BALLOON_REQUEST:
      need(DmBalloon);
      return { type: 'balloon', transId, numPages: DmBalloon.decode(b).num_pages };
    case T.DM_BALLOON_RESPONSE: {
      need(DmBalloonResponse);
      const m = DmBalloonResponse.decode(b);
      return { type: 'balloon-response', transId, morePages: m._r.more_pages === 1, ranges: ranges(b, 'dm_balloon_response', DmBalloonResponse.size, m._r.range_count, hdr.size) };
    }
    case T.DM_UNBALLOON_REQUEST: {
      need(DmUnballoonRequest);
      const m = DmUnballoonRequest.decode(b);
      return { type: 'unballoon', transId, morePages: m._r.more_pages === 1, ranges: ranges(b, 'dm_unballoon_request', DmUnballoonRequest.size, m.range_count, hdr.size) };
    }
    case T.DM_UNBALLOON_RESPONSE:
      return { type: 'unballoon-response', transId };
    case T.DM_MEM_HOT_ADD_REQUEST: {
      need(DmHotAdd);
      const m = DmHotAdd.decode(b);
      // hv_balloon: exactly sizeof(dm_hot_add) is a plain request; anything longer carries a region.
      let region: PageRange | undefined;
      if (hdr.size !== DmHotAdd.size) {
        if (hdr.size < DmHotAdd.size + DmMemPageRange.size) fail('dm_hot_add', 'hdr.size', `${hdr.size} is neither ${DmHotAdd.size} nor room for a region`);
        region = range(DmMemPageRange.decode(b, DmHotAdd.size));
      }
      return { type: 'hot-add', transId, range: range(m.range), region };
    }
    case T.DM_MEM_HOT_ADD_RESPONSE: {
      need(DmHotAddResponse);
      const m = DmHotAddResponse.decode(b);
      return { type: 'hot-add-response', transId, pageCount: m.page_count, result: m.result };
    }
    case T.DM_INFO_MESSAGE: {
      need(DmInfoMsg);
      const m = DmInfoMsg.decode(b);
      if (m.info_size > hdr.size - DmInfoMsg.size) fail('dm_info_msg', 'info_size', `${m.info_size} is more than the ${hdr.size - DmInfoMsg.size} bytes after the header`);
      if (m.info_size < DmInfoHeader.size) return { type: 'info', transId, maxPageCount: undefined, infoType: undefined };
      const ih = DmInfoHeader.decode(b, DmInfoMsg.size);
      const dataAt = DmInfoMsg.size + DmInfoHeader.size;
      // process_info: INFO_TYPE_MAX_PAGE_CNT carries one u64 (data_size must be 8).
      const max = ih.type === DmInfoType.INFO_TYPE_MAX_PAGE_CNT && ih.data_size === 8 && m.info_size >= DmInfoHeader.size + 8 ? new DataView(b.buffer, b.byteOffset + dataAt, 8).getBigUint64(0, true) : undefined;
      return { type: 'info', transId, maxPageCount: max, infoType: ih.type };
    }
    default:
      return fail('dm_header', 'type', `${hdr.type} is not a dynamic memory message type`);
  }
}

// --- Encoders --------------------------------------------------------------------------------

const hdr = (type: number, size: number, transId: number) => ({ type, size, trans_id: transId >>> 0 });

export function encodeVersionRequest(transId: number, version: number, isLastAttempt: boolean): Uint8Array {
  return DmVersionRequest.encode({ hdr: hdr(T.DM_VERSION_REQUEST, DmVersionRequest.size, transId), version: { minor_version: version & 0xffff, major_version: version >>> 16 }, _attempt: { is_last_attempt: isLastAttempt ? 1 : 0, reservedz: 0 } });
}

export function encodeVersionResponse(transId: number, accepted: boolean): Uint8Array {
  return DmVersionResponse.encode({ hdr: hdr(T.DM_VERSION_RESPONSE, DmVersionResponse.size, transId), _r: { is_accepted: accepted ? 1 : 0, reservedz: 0 } });
}

export function encodeCapabilities(transId: number, c: { balloon: boolean; hotAdd: boolean; hotAddAlignment: number; minPageCount: bigint; maxPageNumber: bigint }): Uint8Array {
  return DmCapabilities.encode({
    hdr: hdr(T.DM_CAPABILITIES_REPORT, DmCapabilities.size, transId),
    caps: { cap_bits: { balloon: c.balloon ? 1 : 0, hot_add: c.hotAdd ? 1 : 0, hot_add_alignment: c.hotAddAlignment, reservedz: 0 } },
    min_page_cnt: c.minPageCount,
    max_page_number: c.maxPageNumber,
  });
}

export function encodeCapabilitiesResponse(transId: number, accepted: boolean): Uint8Array {
  return DmCapabilitiesResp.encode({ hdr: hdr(T.DM_CAPABILITIES_RESPONSE, DmCapabilitiesResp.size, transId), _r: { is_accepted: accepted ? 1 : 0, reservedz: 0 } });
}

export function encodeStatus(transId: number, s: { numAvail: bigint; numCommitted: bigint }): Uint8Array {
  return DmStatus.encode({ hdr: hdr(T.DM_STATUS_REPORT, DmStatus.size, transId), num_avail: s.numAvail, num_committed: s.numCommitted, page_file_size: 0n, zero_free: 0n, page_file_writes: 0, io_diff: 0 });
}

export function encodeBalloon(transId: number, numPages: number): Uint8Array {
  return DmBalloon.encode({ hdr: hdr(T.DM_BALLOON_REQUEST, DmBalloon.size, transId), num_pages: numPages, reservedz: 0 });
}

function encodeRanges(buf: Uint8Array, at: number, list: readonly PageRange[]): void {
  list.forEach((r, i) => DmMemPageRange.encode({ finfo: { start_page: r.start, page_cnt: r.count } }, buf, at + i * DmMemPageRange.size));
}

/** A DM_BALLOON_RESPONSE; at most MAX_RANGES_PER_BALLOON_RESPONSE ranges fit its 4 KiB. */
export function encodeBalloonResponse(transId: number, morePages: boolean, list: readonly PageRange[]): Uint8Array {
  if (list.length > MAX_RANGES_PER_BALLOON_RESPONSE) fail('dm_balloon_response', 'range_count', `${list.length} ranges do not fit ${DM_PAGE_SIZE} bytes`);
  const size = DmBalloonResponse.size + list.length * DmMemPageRange.size;
  const buf = new Uint8Array(size);
  DmBalloonResponse.encode({ hdr: hdr(T.DM_BALLOON_RESPONSE, size, transId), reservedz: 0, _r: { more_pages: morePages ? 1 : 0, range_count: list.length } }, buf);
  encodeRanges(buf, DmBalloonResponse.size, list);
  return buf;
}

/** A DM_UNBALLOON_REQUEST; like the response, it must fit the guest's 4 KiB receive buffer. */
export function encodeUnballoonRequest(transId: number, morePages: boolean, list: readonly PageRange[]): Uint8Array {
  if (DmUnballoonRequest.size + list.length * DmMemPageRange.size > DM_PAGE_SIZE) fail('dm_unballoon_request', 'range_count', `${list.length} ranges do not fit ${DM_PAGE_SIZE} bytes`);
  const size = DmUnballoonRequest.size + list.length * DmMemPageRange.size;
  const buf = new Uint8Array(size);
  DmUnballoonRequest.encode({ hdr: hdr(T.DM_UNBALLOON_REQUEST, size, transId), _r: { more_pages: morePages ? 1 : 0, reservedz: 0 }, range_count: list.length }, buf);
  encodeRanges(buf, DmUnballoonRequest.size, list);
  return buf;
}

export function encodeUnballoonResponse(transId: number): Uint8Array {
  return DmUnballoonResponse.encode({ hdr: hdr(T.DM_UNBALLOON_RESPONSE, DmUnballoonResponse.size, transId) });
}

/** A DM_MEM_HOT_ADD_REQUEST: the page range, and optionally the region to add it in. */
export function encodeHotAdd(transId: number, r: PageRange, region?: PageRange): Uint8Array {
  const size = DmHotAdd.size + (region ? DmMemPageRange.size : 0);
  const buf = new Uint8Array(size);
  DmHotAdd.encode({ hdr: hdr(T.DM_MEM_HOT_ADD_REQUEST, size, transId), range: { finfo: { start_page: r.start, page_cnt: r.count } } }, buf);
  if (region) encodeRanges(buf, DmHotAdd.size, [region]);
  return buf;
}

export function encodeHotAddResponse(transId: number, pageCount: number, result: number): Uint8Array {
  return DmHotAddResponse.encode({ hdr: hdr(T.DM_MEM_HOT_ADD_RESPONSE, DmHotAddResponse.size, transId), page_count: pageCount, result });
}

/** A DM_INFO_MESSAGE with one INFO_TYPE_MAX_PAGE_CNT item. */
export function encodeInfoMaxPageCount(transId: number, maxPageCount: bigint): Uint8Array {
  const size = DmInfoMsg.size + DmInfoHeader.size + 8;
  const buf = new Uint8Array(size);
  DmInfoMsg.encode({ hdr: hdr(T.DM_INFO_MESSAGE, size, transId), reserved: 0, info_size: DmInfoHeader.size + 8 }, buf);
  DmInfoHeader.encode({ type: DmInfoType.INFO_TYPE_MAX_PAGE_CNT, data_size: 8 }, buf, DmInfoMsg.size);
  new DataView(buf.buffer).setBigUint64(DmInfoMsg.size + DmInfoHeader.size, maxPageCount, true);
  return buf;
}
