// The heartbeat IC's message body (ICMSGTYPE_HEARTBEAT, vmbus.md §9.4). Linux declares 40 bytes
// (include/linux/hyperv.h heartbeat_msg_data) but reads only seq_num, "as the host may not fill
// [the reserved area] entirely" (hv_util.c); OpenVMM declares what the host sends, 16 bytes
// (vm/devices/hyperv_ic_protocol/src/heartbeat.rs HeartbeatMessage). Both begin with the u64
// sequence number the guest answers incremented by one.
import { array, bytes, struct, u32, u64 } from '../../tlfs/struct.js';

/** Linux's view (the guest side). */
export const HeartbeatMsgData = struct('heartbeat_msg_data', { seq_num: u64, reserved: array(u32, 8) });

/** What hvkit's host sends: OpenVMM's HeartbeatMessage. */
export const HeartbeatMessage = struct('ic_heartbeat_message', { sequence_number: u64, application_state: u32, reserved: bytes(4) });

/** HeartbeatMessage.application_state (OpenVMM ApplicationState); the host sends UNKNOWN and Linux leaves it. */
export const HeartbeatApplicationState = { UNKNOWN: 0, HEALTHY: 1, CRITICAL: 2, STOPPED: 3 } as const;

export const HEARTBEAT_LAYOUTS = [HeartbeatMsgData, HeartbeatMessage];
