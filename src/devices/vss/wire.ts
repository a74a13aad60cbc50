// The VSS (backup, "volume snapshot") IC's message body (ICMSGTYPE_VSS, vmbus.md §9.8): Linux
// include/uapi/linux/hyperv.h hv_vss_hdr, hv_vss_check_feature, hv_vss_check_dm_info, hv_vss_msg
// and enum hv_vss_op; drivers/hv/hv_snapshot.c for the version and the timeouts.
//
// Linux declares hv_vss_msg as two unions: { vss_hdr | int error } at 0 and { vss_cf | dm_info }
// at 8. On the wire (host <-> kernel) only vss_hdr and the flags matter; `error` is the daemon's
// answer to the kernel and overlays the operation byte (see guest.ts). struct.ts has no unions, so
// HvVssMsg declares the vss_hdr and vss_cf views and VssAt the other members' places, beside it
// (the oracle test checks both against Linux's layout).
import { bytes, struct, u32, u8, WireError, type Infer } from '../../tlfs/struct.js';
import { icVersion } from '../ic/wire.js';

export const HvVssHdr = struct('hv_vss_hdr', { operation: u8, reserved: bytes(7) });
export const HvVssCheckFeature = struct('hv_vss_check_feature', { flags: u32 });
export const HvVssCheckDmInfo = struct('hv_vss_check_dm_info', { flags: u32 });
/** The 12 bytes the guest requires after the IC headers (hv_snapshot.c checks ICMSG_HDR + sizeof). */
export const HvVssMsg = struct('hv_vss_msg', { vss_hdr: HvVssHdr, vss_cf: HvVssCheckFeature });

export type VssMessage = Infer<typeof HvVssMsg>;

/** Where the members of hv_vss_msg's unions sit, counted from its start. */
export const VssAt = {
  operation: HvVssMsg.offsets.vss_hdr + HvVssHdr.offsets.operation,
  /** `int error`, the first union's other member: the daemon's answer, written over vss_hdr. */
  error: HvVssMsg.offsets.vss_hdr,
  /** vss_cf.flags, and dm_info.flags, the second union's other view of the same four bytes. */
  flags: HvVssMsg.offsets.vss_cf + HvVssCheckFeature.offsets.flags,
} as const;

/** enum hv_vss_op. FREEZE, THAW and AUTO_RECOVER exist only from message version 5.0 (the header's comment). */
export const VssOp = {
  CREATE: 0,
  DELETE: 1,
  HOT_BACKUP: 2,
  GET_DM_INFO: 3,
  BU_COMPLETE: 4,
  FREEZE: 5,
  THAW: 6,
  AUTO_RECOVER: 7,
  COUNT: 8,
} as const;

/** Daemon registration on the kernel <-> daemon side only (VSS_OP_REGISTER, VSS_OP_REGISTER1). */
export const VSS_OP_REGISTER = 128;
export const VSS_OP_REGISTER1 = 129;

/** vss_cf.flags of a HOT_BACKUP answer Linux means to give: the guest cannot auto-recover. */
export const VSS_HBU_NO_AUTO_RECOVERY = 0x00000005;

/** VSS_MAJOR.VSS_MINOR: the one version hv_snapshot.c offers. */
export const VSS_VERSION = icVersion(5, 0);
/** The lowest message version with FREEZE and THAW. */
export const VSS_FREEZE_MIN_VERSION = icVersion(5, 0);

/** hv_snapshot.c: the channel's max_pkt_size and vmbus_recvpacket's buffer (HV_HYP_PAGE_SIZE * 2). */
export const VSS_MAX_PKT_SIZE = 8192;
/** Seconds the kernel waits for the daemon to answer a FREEZE (VSS_FREEZE_TIMEOUT; anything else: HV_UTIL_TIMEOUT). */
export const VSS_FREEZE_TIMEOUT_S = 15 * 60;

const OP_NAMES: Readonly<Record<number, string>> = {
  [VssOp.CREATE]: 'CREATE',
  [VssOp.DELETE]: 'DELETE',
  [VssOp.HOT_BACKUP]: 'HOT_BACKUP',
  [VssOp.GET_DM_INFO]: 'GET_DM_INFO',
  [VssOp.BU_COMPLETE]: 'BU_COMPLETE',
  [VssOp.FREEZE]: 'FREEZE',
  [VssOp.THAW]: 'THAW',
  [VssOp.AUTO_RECOVER]: 'AUTO_RECOVER',
};
export const vssOpName = (op: number): string => OP_NAMES[op] ?? `op ${op}`;

/** A request body: the operation and the check-feature (or DM info) flags. */
export function encodeVssMessage(operation: number, flags = 0): Uint8Array {
  return HvVssMsg.encode({ vss_hdr: { operation, reserved: new Uint8Array(7) }, vss_cf: { flags } });
}

/** The operation and flags of a body; throws WireError when it is shorter than hv_vss_msg. */
export function parseVssMessage(body: Uint8Array): { operation: number; flags: number } {
  if (body.length < HvVssMsg.size) throw new WireError('hv_vss_msg', '', `needs ${HvVssMsg.size} bytes, has ${body.length}`);
  const m = HvVssMsg.decode(body);
  return { operation: m.vss_hdr.operation, flags: m.vss_cf.flags };
}

export const VSS_LAYOUTS = [HvVssHdr, HvVssCheckFeature, HvVssCheckDmInfo, HvVssMsg];
