// The file-copy ("Guest services", Copy-VMFile) IC's message bodies (ICMSGTYPE_FCOPY, vmbus.md
// §9.9): Linux include/uapi/linux/hyperv.h hv_fcopy_hdr, hv_start_fcopy, hv_do_fcopy, enum
// hv_fcopy_op and the copy flags; drivers/hv/hv_fcopy.c (Linux 6.1) for the version and the
// packet size. Names and paths travel as NUL-terminated UTF-16LE in W_MAX_PATH units.
import { bytes, guid, struct, u32, u64, WireError, type Infer } from '../../tlfs/struct.js';
import { icVersion } from '../ic/wire.js';

export const HvFcopyHdr = struct('hv_fcopy_hdr', { operation: u32, service_id0: guid, service_id1: guid });

/** W_MAX_PATH: UTF-16 units of a name or path, the NUL included. */
export const W_MAX_PATH = 260;

export const HvStartFcopy = struct('hv_start_fcopy', {
  hdr: HvFcopyHdr,
  file_name: bytes(2 * W_MAX_PATH),
  path_name: bytes(2 * W_MAX_PATH),
  copy_flags: u32,
  file_size: u64,
});

/** DATA_FRAGMENT: the most data one WRITE_TO_FILE carries. */
export const DATA_FRAGMENT = 6 * 1024;

export const HvDoFcopy = struct('hv_do_fcopy', { hdr: HvFcopyHdr, pad: u32, offset: u64, size: u32, data: bytes(DATA_FRAGMENT) });

export type StartFcopy = Infer<typeof HvStartFcopy>;

/** enum hv_fcopy_op. */
export const FcopyOp = { START_FILE_COPY: 0, WRITE_TO_FILE: 1, COMPLETE_FCOPY: 2, CANCEL_FCOPY: 3 } as const;

/** copy_flags. */
export const OVER_WRITE = 0x1;
export const CREATE_PATH = 0x2;

/** Kernel <-> daemon registration versions (not wire versions): FCOPY_VERSION_0, FCOPY_VERSION_1 = FCOPY_CURRENT_VERSION. */
export const FCOPY_VERSION_0 = 0;
export const FCOPY_VERSION_1 = 1;
export const FCOPY_CURRENT_VERSION = FCOPY_VERSION_1;

/** hv_fcopy.c WIN8_SRV_VERSION: the one message version Linux offers. */
export const FCOPY_VERSION = icVersion(1, 1);

/** hv_fcopy.c: max_pkt_size and vmbus_recvpacket's buffer (HV_HYP_PAGE_SIZE * 2). */
export const FCOPY_MAX_PKT_SIZE = 8192;

/** The service ids the host leaves zero (Linux ignores them). UNVERIFIED: what Hyper-V puts there. */
const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

const OP_NAMES: Readonly<Record<number, string>> = {
  [FcopyOp.START_FILE_COPY]: 'START_FILE_COPY',
  [FcopyOp.WRITE_TO_FILE]: 'WRITE_TO_FILE',
  [FcopyOp.COMPLETE_FCOPY]: 'COMPLETE_FCOPY',
  [FcopyOp.CANCEL_FCOPY]: 'CANCEL_FCOPY',
};
export const fcopyOpName = (op: number): string => OP_NAMES[op] ?? `op ${op}`;

/** A W_MAX_PATH field: the UTF-16 units of `s`, then NULs; WireError if `s` leaves no room for one. */
function utf16Field(s: string, field: string): Uint8Array {
  if (s.length >= W_MAX_PATH) throw new WireError('hv_start_fcopy', field, `${s.length} UTF-16 units do not fit ${W_MAX_PATH - 1} and a NUL`);
  const out = new Uint8Array(2 * W_MAX_PATH);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < s.length; i++) dv.setUint16(2 * i, s.charCodeAt(i), true);
  return out;
}

/** The UTF-16 string of a field, up to its first NUL (lone surrogates kept as they are). */
export function utf16FieldText(field: Uint8Array): string {
  const dv = new DataView(field.buffer, field.byteOffset, field.byteLength);
  let s = '';
  for (let i = 0; i + 1 < field.length; i += 2) {
    const u = dv.getUint16(i, true);
    if (!u) break;
    s += String.fromCharCode(u);
  }
  return s;
}

export const fcopyHdr = (operation: number): Infer<typeof HvFcopyHdr> => ({ operation, service_id0: ZERO_GUID, service_id1: ZERO_GUID });

/** START_FILE_COPY: destination directory, file name, flags and the size to come. */
export function encodeStartFcopy(pathName: string, fileName: string, copyFlags: number, fileSize: bigint): Uint8Array {
  return HvStartFcopy.encode({
    hdr: fcopyHdr(FcopyOp.START_FILE_COPY),
    file_name: utf16Field(fileName, 'file_name'),
    path_name: utf16Field(pathName, 'path_name'),
    copy_flags: copyFlags >>> 0,
    file_size: fileSize,
  });
}

/** WRITE_TO_FILE: up to DATA_FRAGMENT bytes at `offset`; the whole structure goes out, data padded with zeros. */
export function encodeDoFcopy(offset: bigint, data: Uint8Array): Uint8Array {
  if (data.length > DATA_FRAGMENT) throw new WireError('hv_do_fcopy', 'data', `${data.length} bytes exceed DATA_FRAGMENT (${DATA_FRAGMENT})`);
  return HvDoFcopy.encode({ hdr: fcopyHdr(FcopyOp.WRITE_TO_FILE), pad: 0, offset, size: data.length, data });
}

/** COMPLETE_FCOPY and CANCEL_FCOPY: the header alone. */
export function encodeFcopyHdr(operation: number): Uint8Array {
  return HvFcopyHdr.encode(fcopyHdr(operation));
}

/** A message body as the host built it, read back (decoders, tests). */
export type FcopyMessage =
  | { readonly op: typeof FcopyOp.START_FILE_COPY; readonly fileName: string; readonly pathName: string; readonly copyFlags: number; readonly fileSize: bigint }
  | { readonly op: typeof FcopyOp.WRITE_TO_FILE; readonly offset: bigint; readonly data: Uint8Array }
  | { readonly op: number };

/**
 * Reads a body: the header, then what its operation carries. Throws WireError naming the
 * structure that does not fit, or a WRITE_TO_FILE size beyond DATA_FRAGMENT.
 */
export function parseFcopyMessage(body: Uint8Array): FcopyMessage {
  const op = HvFcopyHdr.decode(body).operation;
  if (op === FcopyOp.START_FILE_COPY) {
    const s = HvStartFcopy.decode(body);
    return { op, fileName: utf16FieldText(s.file_name), pathName: utf16FieldText(s.path_name), copyFlags: s.copy_flags, fileSize: s.file_size };
  }
  if (op === FcopyOp.WRITE_TO_FILE) {
    const d = HvDoFcopy.decode(body);
    if (d.size > DATA_FRAGMENT) throw new WireError('hv_do_fcopy', 'size', `${d.size} bytes exceed DATA_FRAGMENT (${DATA_FRAGMENT})`);
    return { op, offset: d.offset, data: d.data.subarray(0, d.size) };
  }
  return { op };
}

export const FCOPY_LAYOUTS = [HvFcopyHdr, HvStartFcopy, HvDoFcopy];
