// The vstor_packet fields the I/O path reads and writes, as byte offsets into a whole packet
// (header, then the vmscsi_request in its union), taken from the one declaration in wire.ts and
// checked against the field's declared type when this module loads. Both ends use them for direct
// loads and stores on each request: decoding and encoding whole structures through the generic
// codec cost more than the I/O itself (bench/storage.ts).
import type { FieldSpec, Struct } from '../../tlfs/struct.js';
import { VmscsiRequest, VSTOR_PACKET_HEADER, VstorPacket } from './wire.js';

/** Offset of `name` in `s` plus `base`; throws at load if the field is not of `kind` (a declaration changed). */
function field<F extends FieldSpec>(s: Struct<F>, name: keyof F & string, kind: 'u8' | 'u16' | 'u32' | 'bytes', base = 0): number {
  const f = s.layout.find((l) => l.name === name);
  if (!f || f.type.kind !== kind) throw new Error(`${s.name}.${name} is not a ${kind} field`);
  return base + f.offset;
}

const H = VSTOR_PACKET_HEADER;

/** Byte offsets in a vstor_packet (header included) of the fields the data path touches. */
export const Vstor = {
  operation: field(VstorPacket, 'operation', 'u32'),
  flags: field(VstorPacket, 'flags', 'u32'),
  status: field(VstorPacket, 'status', 'u32'),
  /** vmscsi_request's fields, at their place in the union. */
  length: field(VmscsiRequest, 'length', 'u16', H),
  srbStatus: field(VmscsiRequest, 'srb_status', 'u8', H),
  scsiStatus: field(VmscsiRequest, 'scsi_status', 'u8', H),
  portNumber: field(VmscsiRequest, 'port_number', 'u8', H),
  pathId: field(VmscsiRequest, 'path_id', 'u8', H),
  targetId: field(VmscsiRequest, 'target_id', 'u8', H),
  lun: field(VmscsiRequest, 'lun', 'u8', H),
  cdbLength: field(VmscsiRequest, 'cdb_length', 'u8', H),
  senseInfoLength: field(VmscsiRequest, 'sense_info_length', 'u8', H),
  dataIn: field(VmscsiRequest, 'data_in', 'u8', H),
  dataTransferLength: field(VmscsiRequest, 'data_transfer_length', 'u32', H),
  payload: field(VmscsiRequest, 'payload', 'bytes', H),
  queueTag: field(VmscsiRequest, 'queue_tag', 'u8', H),
  queueAction: field(VmscsiRequest, 'queue_action', 'u8', H),
  srbFlags: field(VmscsiRequest, 'srb_flags', 'u32', H),
  timeOutValue: field(VmscsiRequest, 'time_out_value', 'u32', H),
} as const;

/** Bytes of vmscsi_request.payload (the CDB of a request, the sense data of a completion). */
export const SRB_PAYLOAD_BYTES = (VmscsiRequest.layout.find((l) => l.name === 'payload')!.type as { size: number }).size;

/** Little-endian loads and stores on plain bytes: no DataView made per packet. */
export const le16 = (b: Uint8Array, at: number): number => b[at]! | (b[at + 1]! << 8);
export const le32 = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

export function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
}

export function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}
