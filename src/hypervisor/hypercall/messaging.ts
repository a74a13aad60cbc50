// HvCallPostMessage and HvCallSignalEvent (tlfs.md §4.12.1, §4.12.2, §5.8).
import { HvCall } from '../../tlfs/hypercall-codes.js';
import { HvInputPostMessage, HvInputSignalEvent } from '../../tlfs/hypercall-inputs.js';
import { PrivHigh } from '../../tlfs/cpuid.js';
import { HvStatus } from '../../tlfs/status.js';
import { ConnectionId, HV_MESSAGE_PAYLOAD_BYTE_COUNT, HV_PORT_ID_MASK } from '../../tlfs/synic.js';
import type { Partition } from '../partition.js';
import type { Vp } from '../vp.js';
import type { HypercallDef } from './dispatch.js';

const P = HvInputPostMessage.offsets;
// The signal-event qword's fields, from its declaration: the connection word is its low half,
// the flag number and the reserved bits its high half.
const S = HvInputSignalEvent.byName;
const CONN_RESERVED_MASK = Number(S.reserved_conn.mask);
const FLAG_SHIFT = S.flag_number.shift - 32;
const FLAG_MASK = 2 ** S.flag_number.width - 1;
const HIGH_RESERVED_MASK = Number(S.reserved.mask >> 32n);

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

/** SignalEvent on the input qword's halves: the doorbell lane (dispatch.ts) calls it as it is. */
function signalRing(partition: Partition, vp: Vp, low: number, high: number): number {
  // Reserved input must be zero: INVALID_HYPERCALL_INPUT throughout hvkit (tlfs.md §4.7).
  if ((low & CONN_RESERVED_MASK) !== 0 || (high & HIGH_RESERVED_MASK) !== 0) return HvStatus.INVALID_HYPERCALL_INPUT;
  return partition.signalEvent(low & HV_PORT_ID_MASK, (high >>> FLAG_SHIFT) & FLAG_MASK, vp.index);
}

export const signalEvent: HypercallDef = {
  code: HvCall.SIGNAL_EVENT,
  rep: false,
  input: HvInputSignalEvent.size,
  gate: (f) => (f.privilegesHigh & PrivHigh.SIGNAL_EVENTS) !== 0,
  run: (ctx) => signalRing(ctx.partition, ctx.vp, ctx.in.getUint32(0, true), ctx.in.getUint32(4, true)),
  ring: signalRing,
};
