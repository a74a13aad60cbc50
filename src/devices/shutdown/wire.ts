// The shutdown IC's request body (ICMSGTYPE_SHUTDOWN, vmbus.md §9.5): Linux
// include/linux/hyperv.h shutdown_msg_data; OpenVMM hyperv_ic_protocol/src/shutdown.rs
// ShutdownMessage and ShutdownFlags (force = bit 0, restart = bit 1, hibernate = bit 2), which
// Linux reads as the values 0/1 shut down, 2/3 restart, 4/5 hibernate (hv_util.c).
import { bytes, struct, u32 } from '../../tlfs/struct.js';

export const ShutdownMsgData = struct('shutdown_msg_data', {
  reason_code: u32,
  timeout_seconds: u32,
  flags: u32,
  display_message: bytes(2048),
});

export const ShutdownFlag = { FORCE: 1, RESTART: 2, HIBERNATE: 4 } as const;

/** SHTDN_REASON_FLAG_PLANNED (Windows SDK), the reason code OpenVMM's host sends. */
export const SHTDN_REASON_FLAG_PLANNED = 0x80000000;

export type ShutdownKind = 'shutdown' | 'restart' | 'hibernate';

/** The `flags` value of a request. */
export function shutdownFlags(kind: ShutdownKind, force: boolean): number {
  const base = kind === 'restart' ? ShutdownFlag.RESTART : kind === 'hibernate' ? ShutdownFlag.HIBERNATE : 0;
  return base | (force ? ShutdownFlag.FORCE : 0);
}

/**
 * A request body. The reason text goes into display_message as NUL-terminated UTF-16LE, cut to
 * fit. UNVERIFIED: the encoding Hyper-V uses there (Linux ignores the field, OpenVMM sends zeros);
 * UTF-16 is what Windows' other IC strings (KVP) use. The timeout is OpenVMM's 0.
 */
export function encodeShutdownMessage(kind: ShutdownKind, force: boolean, reason = ''): Uint8Array {
  const size = ShutdownMsgData.fields.display_message.size;
  const text = new Uint8Array(size);
  let units = Math.min(reason.length, size / 2 - 1);
  // Never end on half a surrogate pair.
  if (units < reason.length && units > 0 && (reason.charCodeAt(units - 1) & 0xfc00) === 0xd800) units--;
  const dv = new DataView(text.buffer);
  for (let i = 0; i < units; i++) dv.setUint16(2 * i, reason.charCodeAt(i), true);
  return ShutdownMsgData.encode({ reason_code: SHTDN_REASON_FLAG_PLANNED, timeout_seconds: 0, flags: shutdownFlags(kind, force), display_message: text });
}

export const SHUTDOWN_LAYOUTS = [ShutdownMsgData];
