// The framing every integration component ("util" device) puts in its VMBus packets (vmbus.md
// §9.1–§9.3): a VMBus pipe header, the IC message header, then the message body. Linux:
// include/linux/hyperv.h (vmbuspipe_hdr, icmsg_hdr, icmsg_negotiate, ic_version, ICMSG*),
// include/uapi/linux/hyperv.h (UTIL_*_VERSION, HV_* statuses); OpenVMM:
// vm/devices/hyperv_ic_protocol/src/lib.rs (Header, NegotiateMessage, HeaderFlags).
import { bytes, flex, struct, u16, u32, u8, WireError, type Infer } from '../../tlfs/struct.js';

/** Version numbers are packed as Linux packs them: major << 16 | minor (hv_util.c *_VERSION). */
export const icVersion = (major: number, minor: number): number => ((major & 0xffff) * 0x10000 + (minor & 0xffff)) >>> 0;
export const icMajor = (v: number): number => v >>> 16;
export const icMinor = (v: number): number => v & 0xffff;
/** "3.0": how Linux prints a version ("%d.%d", v >> 16, v & 0xFFFF). */
export const formatIcVersion = (v: number): string => `${icMajor(v)}.${icMinor(v)}`;

// --- Layouts --------------------------------------------------------------------------------

/**
 * The pipe header in front of every IC message: Linux skips it and echoes it back; OpenVMM's
 * message pipe (vmbus_async pipe.rs) writes `flags` = PIPE_PACKET_TYPE_DATA and `msgsize` = the
 * bytes that follow it, and checks both on receipt.
 */
export const VmbusPipeHeader = struct('vmbuspipe_hdr', { flags: u32, msgsize: u32 });

export const IcVersion = struct('ic_version', { major: u16, minor: u16 });

export const IcMsgHeader = struct('icmsg_hdr', {
  icverframe: IcVersion,
  icmsgtype: u16,
  icvermsg: IcVersion,
  icmsgsize: u16,
  status: u32,
  ictransaction_id: u8,
  icflags: u8,
  reserved: bytes(2),
});

/** The NEGOTIATE body: counts, then `icframe_vercnt` framework versions and `icmsg_vercnt` message versions. */
export const IcMsgNegotiate = struct('icmsg_negotiate', {
  icframe_vercnt: u16,
  icmsg_vercnt: u16,
  reserved: u32,
  icversion_data: flex(IcVersion),
});

export type IcHeader = Infer<typeof IcMsgHeader>;

/** Where the IC header starts in a packet's payload, and where the message body starts (ICMSG_HDR). */
export const IC_HEADER_OFFSET = VmbusPipeHeader.size;
export const ICMSG_HDR = VmbusPipeHeader.size + IcMsgHeader.size;
/** Byte offset of a top-level icmsg_hdr field in a packet payload. */
export const icField = (name: keyof typeof IcMsgHeader.offsets): number => IC_HEADER_OFFSET + IcMsgHeader.offsets[name];

// --- Constants ------------------------------------------------------------------------------

/** ICMSGTYPE_* (Linux); OpenVMM adds RDV 6, GUEST_INTERFACE 7 (= FCOPY) and VM_SESSION 8. */
export const IcMsgType = {
  NEGOTIATE: 0,
  HEARTBEAT: 1,
  KVPEXCHANGE: 2,
  SHUTDOWN: 3,
  TIMESYNC: 4,
  VSS: 5,
  FCOPY: 7,
} as const;

/** ICMSGHDRFLAG_*: a request carries TRANSACTION | REQUEST, every answer TRANSACTION | RESPONSE. */
export const IcMsgHdrFlag = { TRANSACTION: 1, REQUEST: 2, RESPONSE: 4 } as const;
export const IC_REQUEST_FLAGS = IcMsgHdrFlag.TRANSACTION | IcMsgHdrFlag.REQUEST;
export const IC_RESPONSE_FLAGS = IcMsgHdrFlag.TRANSACTION | IcMsgHdrFlag.RESPONSE;

/** OpenVMM's PIPE_PACKET_TYPE_DATA (vmbus_ring lib.rs): the pipe header of a whole message. */
export const VMBUS_PIPE_PACKET_TYPE_DATA = 1;

export const UTIL_FW_VERSION = icVersion(3, 0);
export const UTIL_WS2K8_FW_VERSION = icVersion(1, 0);
/** Linux refuses a NEGOTIATE that lists more versions of either kind. */
export const IC_VERSION_NEGOTIATION_MAX_VER_COUNT = 100;

/** HRESULTs in `status` (include/uapi/linux/hyperv.h). */
export const HV_S_OK = 0x00000000;
export const HV_E_FAIL = 0x80004005;
export const HV_S_CONT = 0x80070103;
export const HV_ERROR_NOT_SUPPORTED = 0x80070032;
export const HV_ERROR_MACHINE_LOCKED = 0x800704f7;
export const HV_ERROR_DEVICE_NOT_CONNECTED = 0x8007048f;
export const HV_INVALIDARG = 0x80070057;
export const HV_GUID_NOTFOUND = 0x80041002;
export const HV_ERROR_ALREADY_EXISTS = 0x80070050;
export const HV_ERROR_DISK_FULL = 0x80070070;

/**
 * The versions Linux 6.1's drivers offer, in decreasing preference (hv_util.c fw_versions,
 * sd_versions, ts_versions, hb_versions; hv_kvp.c; hv_snapshot.c; hv_fcopy.c). A guest service
 * negotiates with these; the host tables are in versions.ts.
 */
export const LINUX_UTIL_VERSIONS = {
  shutdown: { framework: [UTIL_FW_VERSION, UTIL_WS2K8_FW_VERSION], message: [icVersion(3, 2), icVersion(3, 1), icVersion(3, 0), icVersion(1, 0)] },
  timesync: { framework: [UTIL_FW_VERSION, UTIL_WS2K8_FW_VERSION], message: [icVersion(4, 0), icVersion(3, 0), icVersion(1, 0)] },
  heartbeat: { framework: [UTIL_FW_VERSION, UTIL_WS2K8_FW_VERSION], message: [icVersion(3, 0), icVersion(1, 0)] },
  kvp: { framework: [UTIL_FW_VERSION, UTIL_WS2K8_FW_VERSION], message: [icVersion(4, 0), icVersion(3, 0), icVersion(1, 0)] },
  vss: { framework: [UTIL_FW_VERSION], message: [icVersion(5, 0)] },
  fcopy: { framework: [UTIL_FW_VERSION], message: [icVersion(1, 1)] },
} as const satisfies Record<string, { framework: readonly number[]; message: readonly number[] }>;

// --- Parsing and building -------------------------------------------------------------------

/** One IC message as it sits in a packet payload. */
export interface IcMessage {
  readonly pipe: Infer<typeof VmbusPipeHeader>;
  readonly header: IcHeader;
  /** Everything after the 28-byte headers (padding included: the ring pads to 8 bytes). */
  readonly body: Uint8Array;
}

/** Splits a packet payload into its headers and body. Throws WireError if it is shorter than ICMSG_HDR. */
export function parseIcMessage(payload: Uint8Array): IcMessage {
  if (payload.length < ICMSG_HDR) throw new WireError('icmsg_hdr', '', `the message needs ${ICMSG_HDR} bytes of headers, has ${payload.length}`);
  return {
    pipe: VmbusPipeHeader.decode(payload),
    header: IcMsgHeader.decode(payload, IC_HEADER_OFFSET),
    body: payload.subarray(ICMSG_HDR),
  };
}

/**
 * The body an IC message's headers vouch for, read the way OpenVMM's host does (common.rs
 * read_message): the pipe header must say DATA and its `msgsize` must fit the payload; then
 * `icmsgsize` bytes must fit inside that. Throws WireError naming the field otherwise.
 */
export function icMessageBody(payload: Uint8Array): IcMessage {
  const m = parseIcMessage(payload);
  if (m.pipe.flags !== VMBUS_PIPE_PACKET_TYPE_DATA) throw new WireError('vmbuspipe_hdr', 'flags', `pipe packet type ${m.pipe.flags} is not DATA (${VMBUS_PIPE_PACKET_TYPE_DATA})`);
  if (m.pipe.msgsize < IcMsgHeader.size || VmbusPipeHeader.size + m.pipe.msgsize > payload.length) {
    throw new WireError('vmbuspipe_hdr', 'msgsize', `${m.pipe.msgsize} bytes is not within [${IcMsgHeader.size}, ${payload.length - VmbusPipeHeader.size}]`);
  }
  const available = m.pipe.msgsize - IcMsgHeader.size;
  if (m.header.icmsgsize > available) throw new WireError('icmsg_hdr', 'icmsgsize', `${m.header.icmsgsize} bytes exceed the ${available} the pipe header holds`);
  return { ...m, body: m.body.subarray(0, m.header.icmsgsize) };
}

export interface IcMessageFields {
  type: number;
  /** Framework and message versions (packed); both 0.0 in a NEGOTIATE request (OpenVMM). */
  framework: number;
  message: number;
  status?: number;
  transactionId: number;
  flags: number;
  body: Uint8Array;
}

/** A whole IC message: pipe header (DATA, msgsize), icmsg_hdr with icmsgsize = the body's length, body. */
export function encodeIcMessage(m: IcMessageFields): Uint8Array {
  if (m.body.length > 0xffff - IcMsgHeader.size) throw new WireError('icmsg_hdr', 'icmsgsize', `a body of ${m.body.length} bytes does not fit`);
  const out = new Uint8Array(ICMSG_HDR + m.body.length);
  VmbusPipeHeader.encode({ flags: VMBUS_PIPE_PACKET_TYPE_DATA, msgsize: IcMsgHeader.size + m.body.length }, out);
  IcMsgHeader.encode(
    {
      icverframe: { major: icMajor(m.framework), minor: icMinor(m.framework) },
      icmsgtype: m.type,
      icvermsg: { major: icMajor(m.message), minor: icMinor(m.message) },
      icmsgsize: m.body.length,
      status: m.status ?? HV_S_OK,
      ictransaction_id: m.transactionId,
      icflags: m.flags,
      reserved: new Uint8Array(2),
    },
    out,
    IC_HEADER_OFFSET,
  );
  out.set(m.body, ICMSG_HDR);
  return out;
}

/** The versions a NEGOTIATE body lists. */
export interface NegotiateVersions {
  readonly framework: number[];
  readonly message: number[];
}

/**
 * Reads a NEGOTIATE body: the counts, then that many versions of each kind. Throws WireError if
 * a count exceeds IC_VERSION_NEGOTIATION_MAX_VER_COUNT or the versions do not fit.
 */
export function parseNegotiate(body: Uint8Array): NegotiateVersions {
  const n = IcMsgNegotiate.decode(body);
  for (const [field, count] of [
    ['icframe_vercnt', n.icframe_vercnt],
    ['icmsg_vercnt', n.icmsg_vercnt],
  ] as const) {
    if (count > IC_VERSION_NEGOTIATION_MAX_VER_COUNT) throw new WireError('icmsg_negotiate', field, `${count} versions exceed ${IC_VERSION_NEGOTIATION_MAX_VER_COUNT}`);
  }
  const total = n.icframe_vercnt + n.icmsg_vercnt;
  const need = IcMsgNegotiate.size + total * IcVersion.size;
  if (need > body.length) throw new WireError('icmsg_negotiate', 'icversion_data', `${total} versions need ${need} bytes, the body has ${body.length}`);
  const versions: number[] = [];
  for (let i = 0; i < total; i++) {
    const v = IcVersion.decode(body, IcMsgNegotiate.size + i * IcVersion.size);
    versions.push(icVersion(v.major, v.minor));
  }
  return { framework: versions.slice(0, n.icframe_vercnt), message: versions.slice(n.icframe_vercnt) };
}

/** A NEGOTIATE body offering these versions (in the order given). */
export function encodeNegotiate(framework: readonly number[], message: readonly number[]): Uint8Array {
  const out = new Uint8Array(IcMsgNegotiate.size + (framework.length + message.length) * IcVersion.size);
  IcMsgNegotiate.encode({ icframe_vercnt: framework.length, icmsg_vercnt: message.length, reserved: 0 }, out);
  [...framework, ...message].forEach((v, i) => IcVersion.encode({ major: icMajor(v), minor: icMinor(v) }, out, IcMsgNegotiate.size + i * IcVersion.size));
  return out;
}

/** The IC layouts the oracle checks. */
export const IC_LAYOUTS = [VmbusPipeHeader, IcVersion, IcMsgHeader, IcMsgNegotiate];
