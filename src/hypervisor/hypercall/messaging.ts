// HvCallPostMessage and HvCallSignalEvent (tlfs.md §4.12.1, §4.12.2, §5.8).
import { HvCall } from '../../tlfs/hypercall-codes.js';
import { HvInputPostMessage, HvInputSignalEvent } from '../../tlfs/hypercall-inputs.js';
import { PrivHigh } from '../../tlfs/cpuid.js';
import { HvStatus } from '../../tlfs/status.js';
import { ConnectionId, HV_MESSAGE_PAYLOAD_BYTE_COUNT } from '../../tlfs/synic.js';
import type { HypercallDef } from './dispatch.js';

const P = HvInputPostMessage.offsets;
const SIGNAL_RESERVED = HvInputSignalEvent.byName.reserved_conn.mask | HvInputSignalEvent.byName.reserved.mask;

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
    return ctx.partition.postMessage(conn, type, ctx.input.subarray(P.payload, P.payload + size), ctx.vp.index);
  },
};

export const signalEvent: HypercallDef = {
  code: HvCall.SIGNAL_EVENT,
  rep: false,
  input: 8,
  gate: (f) => (f.privilegesHigh & PrivHigh.SIGNAL_EVENTS) !== 0,
  run: (ctx) => {
    const q = ctx.in.getBigUint64(0, true);
    if (q & SIGNAL_RESERVED) return HvStatus.INVALID_HYPERCALL_INPUT;
    const conn = HvInputSignalEvent.get(q, 'connection_id');
    const flag = HvInputSignalEvent.get(q, 'flag_number');
    return ctx.partition.signalEvent(conn, flag, ctx.vp.index);
  },
};
