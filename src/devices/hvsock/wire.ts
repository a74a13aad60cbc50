// Hyper-V sockets on the wire (vmbus.md §11): service ids, the offer's hv_sock user-defined
// area, and the packets: each a VM_PKT_DATA_INBAND packet whose payload is a vmpipe_proto_header
// and `data_size` bytes of stream data; a packet with no data is the sender's EOF. Linux:
// net/vmw_vsock/hyperv_transport.c, include/linux/hyperv.h; OpenVMM: vmbus_core protocol.rs
// (HvsockUserDefinedParameters), vmbus_ring lib.rs (PipeHeader), vmbus_async pipe.rs.
import { bytes, guid, guidFromBytes, guidToBytes, struct, u32, u8, WireError } from '../../tlfs/struct.js';
import { ChannelFlags, PacketType, VMBUS_PKT_TRAILER, VMBUS_PIPE_TYPE_BYTE } from '../../vmbus/wire/constants.js';
import { HVSOCK_TEMPLATE } from '../../vmbus/wire/guids.js';
import { PacketDescriptor } from '../../vmbus/wire/packets.js';

// --- Layouts --------------------------------------------------------------------------------

/** The header in front of every hv_sock packet's data. */
export const VmpipeProtoHeader = struct('vmpipe_proto_header', { pkt_type: u32, data_size: u32 });

/** HVS_MTU_SIZE: the most data one packet may carry, a limit the host sets (hyperv_transport.c). */
export const HVS_MTU_SIZE = 16384;
/** HVS_SEND_BUF_SIZE: Linux sends at most one 4 KiB page per packet, header included. */
export const HVS_SEND_BUF_SIZE = 4096 - VmpipeProtoHeader.size;

/** Linux's send buffer: one 4 KiB page (BUILD_BUG_ON in hvs_stream_enqueue). */
export const HvsSendBuf = struct('hvs_send_buf', { hdr: VmpipeProtoHeader, data: bytes(HVS_SEND_BUF_SIZE) });
/** Linux's view of a received packet after the descriptor. */
export const HvsRecvBuf = struct('hvs_recv_buf', { hdr: VmpipeProtoHeader, data: bytes(HVS_MTU_SIZE) });

/**
 * The offer's 120-byte user-defined area for hv_sock (OpenVMM HvsockUserDefinedParameters; the
 * version and silo id are unaligned, as Windows lays them out). Linux reads only the byte at
 * offset 4, as "connection initiated by the host" (u.pipe.user_def[0]).
 */
export const HvsockUserDefined = struct('HvsockUserDefinedParameters', {
  pipe_type: u32,
  is_for_guest_accept: u8,
  is_for_guest_container: u8,
  version: u32,
  silo_id: guid,
  padding: bytes(2),
});

/**
 * A service id as Linux's union hvs_service_id sees it through its port view: the AF_VSOCK port
 * in the first four bytes, then the rest of the template.
 */
export const HvsServiceId = struct('hvs_service_id', { svm_port: u32, b: bytes(12) });

export const HVSOCK_LAYOUTS = [VmpipeProtoHeader, HvsSendBuf, HvsRecvBuf, HvsServiceId];

// --- Constants ------------------------------------------------------------------------------

/** vmpipe_proto_header.pkt_type: Linux writes only DATA (OpenVMM: 2 partial, 3/4 GPA-direct set-up). */
export const VmpipePacketType = { DATA: 1, PARTIAL: 2, SETUP_GPA_DIRECT: 3, TEARDOWN_GPA_DIRECT: 4 } as const;

/** HvsockUserDefined.version (OpenVMM HvsockParametersVersion). */
export const HvsockParamsVersion = { PRE_RS5: 0, RS5: 1 } as const;

/** The offer flags of every hv_sock channel (OpenVMM ChannelType::HvSocket); Linux tests only TLNPI. */
export const HVSOCK_OFFER_FLAGS = ChannelFlags.ENUMERATE_DEVICE_INTERFACE | ChannelFlags.NAMED_PIPE_MODE | ChannelFlags.TLNPI_PROVIDER_OFFER;

/** HVS_HEADER_LEN: descriptor and pipe header, where the data starts. */
export const HVS_HEADER_LEN = PacketDescriptor.size + VmpipeProtoHeader.size;
/** HVS_PKT_LEN(n): ring bytes one packet with n data bytes takes, trailer included. */
export const hvsPktLen = (n: number): number => HVS_HEADER_LEN + Math.ceil(n / 8) * 8 + VMBUS_PKT_TRAILER;
/** HVS_MAX_PKT_SIZE: Linux's receive limit (channel max_pkt_size) for hv_sock channels. */
export const HVS_MAX_PKT_SIZE = hvsPktLen(HVS_MTU_SIZE);

/** RINGBUFFER_HVS_{SND,RCV}_SIZE (six 4 KiB pages, header page included) and RINGBUFFER_HVS_MAX_SIZE. */
export const RINGBUFFER_HVS_SIZE = 6 * 4096;
export const RINGBUFFER_HVS_MAX_SIZE = 64 * 4096;

/** HVS_CLOSE_TIMEOUT: 8 * HZ, how long a closing guest socket waits for the host's rescind. */
export const HVS_CLOSE_TIMEOUT_NS = 8e9;
/** VSOCK_DEFAULT_CONNECT_TIMEOUT (net/vmw_vsock/af_vsock.c): 2 * HZ. */
export const VSOCK_CONNECT_TIMEOUT_NS = 2e9;

/** hv_sock's port limits: listening ports up to 0x7FFFFFFF, the rest host ephemeral ports. */
export const MAX_LISTEN_PORT = 0x7fffffff;
export const MIN_HOST_EPHEMERAL_PORT = 0x80000000;
/** af_vsock: ports up to 1023 are reserved; VMADDR_PORT_ANY means "pick one". */
export const LAST_RESERVED_PORT = 1023;
export const VMADDR_PORT_ANY = 0xffffffff;
/** AF_VSOCK context ids Linux uses for hv_sock: the guest is ANY, the host HOST. */
export const VMADDR_CID_ANY = 0xffffffff;
export const VMADDR_CID_HOST = 2;

/**
 * The VM ids a Windows host uses in SOCKADDR_HV (hvsocket.h; Microsoft's "Make your own
 * integration services"). They never travel over VMBus.
 */
export const HvGuid = {
  ZERO: '00000000-0000-0000-0000-000000000000',
  WILDCARD: '00000000-0000-0000-0000-000000000000',
  BROADCAST: 'ffffffff-ffff-ffff-ffff-ffffffffffff',
  CHILDREN: '90db8b89-0d35-4f79-8ce9-49ea0ac8b7cd',
  LOOPBACK: 'e0e16197-dd56-4a10-9195-5ee7a155a838',
  PARENT: 'a42e7cda-d03f-480c-9cc2-a4de20abb878',
} as const;

// --- Service ids ----------------------------------------------------------------------------

const TEMPLATE = HvsServiceId.decode(guidToBytes(HVSOCK_TEMPLATE));

/** The service id of an AF_VSOCK port: the template with the port in its first four bytes (little-endian). */
export function serviceIdOfPort(port: number): string {
  if (!Number.isInteger(port) || port < 0 || port > 0xffffffff) throw new RangeError(`port ${port} is not a u32`);
  return guidFromBytes(HvsServiceId.encode({ svm_port: port, b: TEMPLATE.b }));
}

/** is_valid_srv_id: everything after the port is the template's. */
export function isVsockServiceId(id: string): boolean {
  let b: Uint8Array;
  try {
    b = guidToBytes(id);
  } catch (e) {
    if (e instanceof WireError) return false;
    throw e;
  }
  const tail = HvsServiceId.decode(b).b;
  return tail.every((x, i) => x === TEMPLATE.b[i]);
}

/** get_port_by_srv_id: the first four bytes as a little-endian u32, whatever the rest. */
export function portOfServiceId(id: string): number {
  return HvsServiceId.decode(guidToBytes(id)).svm_port;
}

/** A service given as a port or a GUID, as the GUID (lower case). */
export function serviceId(service: number | string): string {
  if (typeof service === 'number') return serviceIdOfPort(service);
  return guidFromBytes(guidToBytes(service));
}

// --- Offers ---------------------------------------------------------------------------------

/** The user-defined area of an hv_sock offer, padded to the offer's 120 bytes. */
export function hvsockUserDefined(isForGuestAccept: boolean, version: number = HvsockParamsVersion.RS5): Uint8Array {
  const u = new Uint8Array(120);
  HvsockUserDefined.encode(
    { pipe_type: VMBUS_PIPE_TYPE_BYTE, is_for_guest_accept: isForGuestAccept ? 1 : 0, is_for_guest_container: 0, version, silo_id: HvGuid.ZERO, padding: new Uint8Array(2) },
    u,
  );
  return u;
}

// --- Packets --------------------------------------------------------------------------------

/**
 * Builds data packets (data_size = data.length; empty data is EOF): a 24-byte head, the
 * descriptor (type 6, offset8 2, flags 0, trans_id 0) then the pipe header, and the data; the ring
 * pads to 8 bytes. One writer per connection: the head is reused, since the ring copies the parts
 * at once, and only len8 and data_size change from packet to packet.
 */
export class HvsPacketWriter {
  private readonly head = new Uint8Array(HVS_HEADER_LEN);
  private readonly view = new DataView(this.head.buffer);
  private readonly one: Uint8Array[] = [this.head];
  private readonly two: Uint8Array[] = [this.head, this.head];

  constructor() {
    PacketDescriptor.encode({ type: PacketType.DATA_INBAND, offset8: PacketDescriptor.size / 8, len8: 0, flags: 0, trans_id: 0n }, this.head);
    VmpipeProtoHeader.encode({ pkt_type: VmpipePacketType.DATA, data_size: 0 }, this.head, PacketDescriptor.size);
  }

  /** The parts of the packet carrying `data`; valid until the next call. */
  packet(data: Uint8Array): Uint8Array[] {
    if (data.length > HVS_MTU_SIZE) throw new RangeError(`${data.length} bytes exceed HVS_MTU_SIZE`);
    this.view.setUint16(PacketDescriptor.offsets.len8, Math.ceil((HVS_HEADER_LEN + data.length) / 8), true);
    this.view.setUint32(PacketDescriptor.size + VmpipeProtoHeader.offsets.data_size, data.length, true);
    if (data.length === 0) return this.one;
    this.two[1] = data;
    return this.two;
  }
}

/** The parts of one data packet, freshly allocated (see HvsPacketWriter). */
export function hvsPacket(data: Uint8Array): Uint8Array[] {
  return new HvsPacketWriter().packet(data).slice();
}

/** A packet payload that is not a valid hv_sock packet; `field` names what is wrong. */
export class HvsockWireError extends WireError {
  constructor(field: string, reason: string) {
    super('vmpipe_proto_header', field, reason);
  }
}

/**
 * The data of one received packet's in-band payload (what follows the descriptor): empty means
 * EOF. Checks as hvs_update_recv_data does: the payload holds a header, and data_size fits both
 * the packet and HVS_MTU_SIZE. `strictType` also requires pkt_type DATA (OpenVMM's host; Linux
 * ignores the type). Throws HvsockWireError.
 */
export function parseHvsPayload(payload: Uint8Array, strictType = false): Uint8Array {
  const size = hvsDataSize(payload, 0, payload.length, strictType);
  return payload.subarray(VmpipeProtoHeader.size, VmpipeProtoHeader.size + size);
}

/**
 * parseHvsPayload() on the payload [start, end) of `bytes`, where it lies: the data's size (its
 * bytes follow the header at start + HVS_PIPE_HEADER_LEN), with the same checks and errors.
 */
export function hvsDataSize(bytes: Uint8Array, start: number, end: number, strictType = false): number {
  const length = end - start;
  if (length < VmpipeProtoHeader.size) throw new HvsockWireError('', `a ${length}-byte payload has no room for the header`);
  const type = u32le(bytes, start + VmpipeProtoHeader.offsets.pkt_type);
  const size = u32le(bytes, start + VmpipeProtoHeader.offsets.data_size);
  if (strictType && type !== VmpipePacketType.DATA) throw new HvsockWireError('pkt_type', `${type} is not DATA (1)`);
  if (size > length - VmpipeProtoHeader.size) throw new HvsockWireError('data_size', `${size} exceeds the ${length - VmpipeProtoHeader.size} bytes the packet holds`);
  if (size > HVS_MTU_SIZE) throw new HvsockWireError('data_size', `${size} exceeds HVS_MTU_SIZE (${HVS_MTU_SIZE})`);
  return size;
}

/** A little-endian u32 read without a DataView (one per packet costs more than the read). */
const u32le = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
