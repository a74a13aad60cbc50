// Building and reading NVSP messages, for both ends. A message is the 4-byte type and a body;
// senders write the whole 40-byte nvsp_message as Linux does (vmbus_sendpacket with
// sizeof(struct nvsp_message)), readers check that the body they are about to read is there,
// as netvsc_send_completion and netvsc_receive do (drivers/net/hyperv/netvsc.c).
import { WireError, type FieldSpec, type Struct, type StructValue } from '../../tlfs/struct.js';
import { NVSP_BODY, Nvsp1SendRndisPacket, Nvsp1SendRndisPacketComplete, NvspMessage, NvspMessageHeader, NvspMsgType } from './wire/nvsp.js';

/** An NVSP message that is too short or wrong; `field` names what. */
export class NvspError extends WireError {
  constructor(field: string, reason: string) {
    super('nvsp_message', field, reason);
  }
}

/** A whole nvsp_message of `type` whose body is `body` encoded with `S` (zero-padded to 40 bytes). */
export function nvspMessage<F extends FieldSpec>(type: number, S?: Struct<F>, body?: StructValue<F>): Uint8Array {
  const out = new Uint8Array(NvspMessage.size);
  new DataView(out.buffer).setUint32(NvspMessageHeader.offsets.msg_type, type, true);
  if (S && body) S.encode(body, out, NVSP_BODY);
  return out;
}

/** The message type of `payload`, which must hold at least the header. */
export function nvspType(payload: Uint8Array): number {
  if (payload.length < NvspMessageHeader.size) throw new NvspError('hdr', `needs ${NvspMessageHeader.size} bytes, have ${payload.length}`);
  return payload[0]! | (payload[1]! << 8) | (payload[2]! << 16) | ((payload[3]! << 24) >>> 0);
}

/** The body of `payload` as `S`; throws NvspError naming the body if the message is shorter than the header and `S`. */
export function nvspBody<F extends FieldSpec>(S: Struct<F>, payload: Uint8Array): StructValue<F> {
  if (payload.length < NVSP_BODY + S.size) throw new NvspError(`msg.${S.name}`, `needs ${NVSP_BODY + S.size} bytes, have ${payload.length}`);
  return S.decode(payload, NVSP_BODY);
}

/** A little-endian u32 of a body field, for the hot paths that read one field of a checked body. */
export function nvspU32(payload: Uint8Array, bodyOffset: number): number {
  return nvspU32At(payload, 0, bodyOffset);
}

/** nvspU32 of the message at `at` of `bytes` (the caller checked it holds the body); bodyOffset -NVSP_BODY reads the type. */
export function nvspU32At(bytes: Uint8Array, at: number, bodyOffset: number): number {
  const i = at + NVSP_BODY + bodyOffset;
  return (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) >>> 0;
}

// The per-frame messages of both directions, written field by field at their declared offsets:
// the generic encoder walks an object per call, which the data path cannot afford.
const RP = Nvsp1SendRndisPacket.offsets;

function put32(out: Uint8Array, at: number, v: number): void {
  out[at] = v;
  out[at + 1] = v >>> 8;
  out[at + 2] = v >>> 16;
  out[at + 3] = v >>> 24;
}

/** SEND_RNDIS_PKT (nvsp_1_message_send_rndis_packet). */
export function nvspRndisPacket(channelType: number, sectionIndex: number, sectionSize: number): Uint8Array {
  return writeNvspRndisPacket(new Uint8Array(NvspMessage.size), channelType, sectionIndex, sectionSize);
}

/** nvspRndisPacket written over `out` (a whole nvsp_message, reused by a sender: the ring copies it). */
export function writeNvspRndisPacket(out: Uint8Array, channelType: number, sectionIndex: number, sectionSize: number): Uint8Array {
  out.fill(0);
  put32(out, NvspMessageHeader.offsets.msg_type, NvspMsgType.SEND_RNDIS_PKT);
  put32(out, NVSP_BODY + RP.channel_type, channelType);
  put32(out, NVSP_BODY + RP.send_buf_section_index, sectionIndex);
  put32(out, NVSP_BODY + RP.send_buf_section_size, sectionSize);
  return out;
}

/**
 * SEND_RNDIS_PKT_COMPLETE (nvsp_1_message_send_rndis_packet_complete): a whole nvsp_message from
 * the host; netvsc's receive completions send only the header and status (`size` 8).
 */
export function nvspRndisPacketComplete(status: number, size: number = NvspMessage.size): Uint8Array {
  const out = new Uint8Array(size);
  put32(out, NvspMessageHeader.offsets.msg_type, NvspMsgType.SEND_RNDIS_PKT_COMPLETE);
  put32(out, NVSP_BODY + Nvsp1SendRndisPacketComplete.offsets.status, status);
  return out;
}
