// HvCallPostMessage and HvCallSignalEvent (tlfs.md §4.12.1, §4.12.2, §5.8).
import { HvCall } from '../../tlfs/hypercall-codes.js';
import { HvInputPostMessage, HvInputSignalEvent } from '../../tlfs/hypercall-inputs.js';
import { PrivHigh } from '../../tlfs/cpuid.js';
import { HvStatus } from '../../tlfs/status.js';
import { ConnectionId, HV_MESSAGE_PAYLOAD_BYTE_COUNT, HV_PORT_ID_MASK } from '../../tlfs/synic.js';
import type { HypercallDef } from './dispatch.js';

const P = HvInputPostMessage.offsets;
// Byte offsets of the signal-event qword's fields, from its declaration (low byte first).
const S = HvInputSignalEvent.byName;
const CONN_RESERVED_BYTE = S.reserved_conn.shift / 8;
const FLAG_AT = S.flag_number.shift / 8;
const RESERVED_AT = S.reserved.shift / 8;

export const postMessage: HypercallDef = {
  code: HvCall.POST_MESSAGE,
  rep: false,
  input: HvInputPostMessage.size,
  // The 256-byte input never fits registers; QEMU answers a fast PostMessage with an error too.
  fast: false,
  gate: (f) => (f.privilegesHigh & PrivHigh.POST_MESSAGES) !== 0,
  run: (ctx) => {
    const conn = ctx.in.getUint32(P.connectionid, true);
    // Reserved input must be zero: INVALID_HYPERCALL_INPUT throughout hvkit (tlfs.md §4.7).
    if (BigInt(conn) & ConnectionId.byName.reserved.mask || ctx.in.getUint32(P.reserved, true) !== 0) return HvStatus.INVALID_HYPERCALL_INPUT;
    const type = ctx.in.getUint32(P.message_type, true);
    const size = ctx.in.getUint32(P.payload_size, true);
    // Guest message types are non-zero with bit 31 clear; the payload fits one slot.
    if (type === 0 || type & 0x80000000 || size > HV_MESSAGE_PAYLOAD_BYTE_COUNT) return HvStatus.INVALID_PARAMETER;
    // The partition emits the message event (partition.ts).
    return ctx.partition.postMessage(conn, type, ctx.input.subarray(P.payload, P.payload + size), ctx.vp.index);
  },
};

export const signalEvent: HypercallDef = {
  code: HvCall.SIGNAL_EVENT,
  rep: false,
  input: 8,
  gate: (f) => (f.privilegesHigh & PrivHigh.SIGNAL_EVENTS) !== 0,
  run: (ctx) => {
    const dv = ctx.in;
    if (dv.getUint8(CONN_RESERVED_BYTE) !== 0 || dv.getUint16(RESERVED_AT, true) !== 0) return HvStatus.INVALID_HYPERCALL_INPUT;
    const conn = dv.getUint32(0, true) & HV_PORT_ID_MASK;
    return ctx.partition.signalEvent(conn, dv.getUint16(FLAG_AT, true), ctx.vp.index);
  },
};
