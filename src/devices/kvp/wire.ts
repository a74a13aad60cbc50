// The KVP IC's messages (ICMSGTYPE_KVPEXCHANGE, vmbus.md §9.7): Linux
// include/uapi/linux/hyperv.h (hv_kvp_*, KVP_OP_*, KVP_POOL_*, REG_*, the size limits) and
// OpenVMM vm/devices/hyperv_ic_protocol/src/kvp.rs (KvpMessage: what the host sends). The host
// puts a 4-byte hv_kvp_hdr and then one member of the body union after the IC headers, always
// padded to the largest of them (the enumerate record); the guest's kernel reads it as
// hv_kvp_msg in place. Between the guest's kernel and its daemon the same hv_kvp_msg travels
// whole (7432 bytes) through /dev/vmbus/hv_kvp, its first word doubling as the daemon's error.
// Strings are UTF-16LE on the wire, sizes in bytes with the terminator.
import { HV_HYP_PAGE_SIZE } from '../../memory/pages.js';
import { bytes, struct, u16, u32, u8, WireError } from '../../tlfs/struct.js';

// --- Constants -------------------------------------------------------------------------------

/** Limits of a key and a value in bytes, terminator included (they bound the UTF-16 on the wire). */
export const HV_KVP_EXCHANGE_MAX_KEY_SIZE = 512;
export const HV_KVP_EXCHANGE_MAX_VALUE_SIZE = 2048;
/** hv_kvp_ipaddr_value's string sizes, in UTF-16 units. */
export const MAX_ADAPTER_ID_SIZE = 128;
export const MAX_IP_ADDR_SIZE = 1024;
export const MAX_GATEWAY_SIZE = 512;

/** hv_kvp_init: channel->max_pkt_size, and the buffer hv_kvp_onchannelcallback reads into (HV_HYP_PAGE_SIZE * 4). */
export const KVP_MAX_PKT_SIZE = 4 * HV_HYP_PAGE_SIZE;

/** enum hv_kvp_exchg_op. */
export const KvpOp = { GET: 0, SET: 1, DELETE: 2, ENUMERATE: 3, GET_IP_INFO: 4, SET_IP_INFO: 5, COUNT: 6 } as const;
/** The daemon's registration operations (kernel↔daemon only; REGISTER shares 4 with GET_IP_INFO). */
export const KVP_OP_REGISTER = 4;
export const KVP_OP_REGISTER1 = 100;

/** enum hv_kvp_exchg_pool. AUTO_INTERNAL never crosses between host and guest (OpenVMM hyperv_ic_protocol kvp.rs). */
export const KvpPool = { EXTERNAL: 0, GUEST: 1, AUTO: 2, AUTO_EXTERNAL: 3, AUTO_INTERNAL: 4, COUNT: 5 } as const;
export type KvpPoolId = 0 | 1 | 2 | 3 | 4;
export const KVP_POOL_NAMES: Readonly<Record<KvpPoolId, string>> = { 0: 'EXTERNAL', 1: 'GUEST', 2: 'AUTO', 3: 'AUTO_EXTERNAL', 4: 'AUTO_INTERNAL' };

/** value_type: REG_SZ (UTF-16), REG_U32, REG_U64 (Linux's numbering). */
export const RegType = { SZ: 1, U32: 4, U64: 8 } as const;
/** Windows' REG_EXPAND_SZ and REG_QWORD, which OpenVMM's host also accepts in an answer (kvp.rs ValueType). */
export const REG_EXPAND_SZ = 2;
export const REG_QWORD = 11;

/** hv_kvp_ipaddr_value.addr_family. */
export const AddrFamily = { NONE: 0, IPV4: 1, IPV6: 2 } as const;

// --- Layouts ---------------------------------------------------------------------------------

export const HvKvpHdr = struct('hv_kvp_hdr', { operation: u8, pool: u8, pad: u16 });

/**
 * One key and value. `value` is a union in C: the UTF-16 (or, for the daemon, UTF-8) string, or
 * a u32 / u64 at its start for REG_U32 / REG_U64.
 */
export const HvKvpExchgMsgValue = struct('hv_kvp_exchg_msg_value', {
  value_type: u32,
  key_size: u32,
  value_size: u32,
  key: bytes(HV_KVP_EXCHANGE_MAX_KEY_SIZE),
  value: bytes(HV_KVP_EXCHANGE_MAX_VALUE_SIZE),
});

export const HvKvpMsgGet = struct('hv_kvp_msg_get', { data: HvKvpExchgMsgValue });
export const HvKvpMsgSet = struct('hv_kvp_msg_set', { data: HvKvpExchgMsgValue });
export const HvKvpMsgDelete = struct('hv_kvp_msg_delete', { key_size: u32, key: bytes(HV_KVP_EXCHANGE_MAX_KEY_SIZE) });
export const HvKvpMsgEnumerate = struct('hv_kvp_msg_enumerate', { index: u32, data: HvKvpExchgMsgValue });

/** IP settings of one adapter: UTF-16 strings of MAX_*_SIZE units each. */
export const HvKvpIpaddrValue = struct('hv_kvp_ipaddr_value', {
  adapter_id: bytes(2 * MAX_ADAPTER_ID_SIZE),
  addr_family: u8,
  dhcp_enabled: u8,
  ip_addr: bytes(2 * MAX_IP_ADDR_SIZE),
  sub_net: bytes(2 * MAX_IP_ADDR_SIZE),
  gate_way: bytes(2 * MAX_GATEWAY_SIZE),
  dns_addr: bytes(2 * MAX_IP_ADDR_SIZE),
});

/** GET_IP_INFO / SET_IP_INFO on the wire: operation and pool, then the settings at offset 2 (no pad). */
export const HvKvpIpMsg = struct('hv_kvp_ip_msg', { operation: u8, pool: u8, kvp_ip_val: HvKvpIpaddrValue });

/** The kernel's answer to the daemon's registration: its version string (HV_DRV_VERSION). */
export const HvKvpRegister = struct('hv_kvp_register', { version: bytes(HV_KVP_EXCHANGE_MAX_KEY_SIZE) });

/**
 * The whole message as Linux declares it. The header is a union with `int error` (the daemon's
 * answer); `body` is the union of hv_kvp_msg_get, _set, _delete, _enumerate, hv_kvp_ipaddr_value
 * and hv_kvp_register, padded to 4 bytes (7428).
 */
export const HvKvpMsg = struct('hv_kvp_msg', { kvp_hdr: HvKvpHdr, body: bytes(7428) });

export const KVP_LAYOUTS = [HvKvpHdr, HvKvpExchgMsgValue, HvKvpMsgGet, HvKvpMsgSet, HvKvpMsgDelete, HvKvpMsgEnumerate, HvKvpIpaddrValue, HvKvpIpMsg, HvKvpRegister, HvKvpMsg];

// --- Offsets inside an hv_kvp_msg (the wire body, or the daemon's message) --------------------

type ValueField = keyof typeof HvKvpExchgMsgValue.offsets;
const BODY = HvKvpMsg.offsets.body;
const V = HvKvpExchgMsgValue.offsets;

/** Where each field the protocol touches sits, counted from the start of an hv_kvp_msg. */
export const KvpAt = {
  operation: HvKvpMsg.offsets.kvp_hdr + HvKvpHdr.offsets.operation,
  pool: HvKvpMsg.offsets.kvp_hdr + HvKvpHdr.offsets.pool,
  /** The daemon's `int error`, the other member of the header's union. */
  error: HvKvpMsg.offsets.kvp_hdr,
  body: BODY,
  get: (f: ValueField): number => BODY + HvKvpMsgGet.offsets.data + V[f],
  set: (f: ValueField): number => BODY + HvKvpMsgSet.offsets.data + V[f],
  deleteKeySize: BODY + HvKvpMsgDelete.offsets.key_size,
  deleteKey: BODY + HvKvpMsgDelete.offsets.key,
  enumIndex: BODY + HvKvpMsgEnumerate.offsets.index,
  enum: (f: ValueField): number => BODY + HvKvpMsgEnumerate.offsets.data + V[f],
  /** hv_kvp_msg.body.kvp_ip_val (the daemon's view, after the 4-byte header). */
  ipVal: (f: keyof typeof HvKvpIpaddrValue.offsets): number => BODY + HvKvpIpaddrValue.offsets[f],
  /** hv_kvp_ip_msg.kvp_ip_val (the wire view, after 2 bytes). */
  ipMsg: (f: keyof typeof HvKvpIpaddrValue.offsets): number => HvKvpIpMsg.offsets.kvp_ip_val + HvKvpIpaddrValue.offsets[f],
  register: BODY + HvKvpRegister.offsets.version,
} as const;

/**
 * The body the host sends for GET, SET, DELETE and ENUMERATE: the header and the largest of
 * those members (OpenVMM kvp.rs KvpMessage: header, 2 bytes of padding, 2576 bytes).
 */
export const KVP_EXCHANGE_BYTES = BODY + HvKvpMsgEnumerate.size;

// --- The host's strings ----------------------------------------------------------------------

/** Why a string cannot go on the wire. */
export type KvpStringProblem =
  | { readonly reason: 'too-long'; readonly bytes: number; readonly max: number }
  | { readonly reason: 'ill-formed'; readonly at: number }
  | { readonly reason: 'nul'; readonly at: number };

/**
 * A JS string as the host puts it in a key or value area: UTF-16LE and a terminator, at most
 * `max` bytes in all. Refused: a lone surrogate (not UTF-16), an embedded U+0000 (the guest
 * would cut the string there, and the size would lie), or more than `max` bytes.
 */
export function encodeKvpString(s: string, max: number): { bytes: Uint8Array; size: number } | KvpStringProblem {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0) return { reason: 'nul', at: i };
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff) return { reason: 'ill-formed', at: i };
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return { reason: 'ill-formed', at: i };
  }
  const size = 2 * (s.length + 1);
  if (size > max) return { reason: 'too-long', bytes: size, max };
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < s.length; i++) dv.setUint16(2 * i, s.charCodeAt(i), true);
  return { bytes: out, size };
}

/**
 * A string out of a guest's answer, checked as OpenVMM's host checks it (kvp.rs parse_str):
 * `size` bytes, even, within the area, ending in a UTF-16 NUL, and well-formed UTF-16 before
 * it. Throws WireError naming `struct.field` otherwise.
 */
export function decodeKvpString(area: Uint8Array, size: number, struct: string, field: string): string {
  if (size % 2 !== 0) throw new WireError(struct, field, `size ${size} is odd`);
  if (size < 2 || size > area.length) throw new WireError(struct, field, `size ${size} is not within [2, ${area.length}]`);
  const dv = new DataView(area.buffer, area.byteOffset, area.byteLength);
  const units = size / 2 - 1;
  if (dv.getUint16(2 * units, true) !== 0) throw new WireError(struct, field, 'no terminating NUL where the size ends');
  let out = '';
  for (let i = 0; i < units; i++) {
    const c = dv.getUint16(2 * i, true);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < units ? dv.getUint16(2 * (i + 1), true) : 0;
      if (d < 0xdc00 || d > 0xdfff) throw new WireError(struct, field, `lone surrogate 0x${c.toString(16)} at unit ${i}`);
      out += String.fromCharCode(c, d);
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      throw new WireError(struct, field, `lone surrogate 0x${c.toString(16)} at unit ${i}`);
    } else {
      out += String.fromCharCode(c);
    }
  }
  return out;
}

/** The text of a value record: a string type decoded, a number type as its decimal digits. */
export function decodeKvpValue(value: Uint8Array, type: number, size: number, struct: string): string {
  const dv = new DataView(value.buffer, value.byteOffset, value.byteLength);
  switch (type) {
    case RegType.SZ:
    case REG_EXPAND_SZ:
      return decodeKvpString(value, size, struct, 'value');
    case RegType.U32:
      if (size !== 4 || value.length < 4) throw new WireError(struct, 'value_size', `${size} bytes for a REG_U32`);
      return String(dv.getUint32(0, true));
    case RegType.U64:
    case REG_QWORD:
      if (size !== 8 || value.length < 8) throw new WireError(struct, 'value_size', `${size} bytes for a 64-bit value`);
      return String(dv.getBigUint64(0, true));
    default:
      throw new WireError(struct, 'value_type', `unknown value type ${type}`);
  }
}
