// RNDIS, the remote NDIS message set netvsc and netvsp exchange inside NVSP's buffers: the
// control requests (INITIALIZE, QUERY, SET, RESET, KEEPALIVE, HALT) and their completions,
// status indications, and data packets with their per-packet info. Every message starts with an
// 8-byte header (type, length). Linux: include/linux/rndis.h, drivers/net/hyperv/hyperv_net.h;
// OpenVMM: vm/devices/net/netvsp/src/rndisprot.rs.
import { bits, bytes, flex, struct, u16, u32, u8 } from '../../../tlfs/struct.js';

// --- Message types (include/linux/rndis.h RNDIS_MSG_*) ---------------------------------------

export const RNDIS_MSG_COMPLETION = 0x80000000;
export const RndisMsg = {
  PACKET: 0x00000001,
  INIT: 0x00000002,
  INIT_C: 0x80000002,
  HALT: 0x00000003,
  QUERY: 0x00000004,
  QUERY_C: 0x80000004,
  SET: 0x00000005,
  SET_C: 0x80000005,
  RESET: 0x00000006,
  RESET_C: 0x80000006,
  INDICATE: 0x00000007,
  KEEPALIVE: 0x00000008,
  KEEPALIVE_C: 0x80000008,
} as const;

// --- Statuses (rndis.h RNDIS_STATUS_*), those netvsc and netvsp use -------------------------

export const RndisStatus = {
  SUCCESS: 0x00000000,
  PENDING: 0x00000103,
  BUFFER_OVERFLOW: 0x80000005,
  FAILURE: 0xc0000001,
  RESOURCES: 0xc000009a,
  NOT_SUPPORTED: 0xc00000bb,
  INVALID_DATA: 0xc0010015,
  INVALID_LENGTH: 0xc0010014,
  INVALID_OID: 0xc0010017,
  BUFFER_TOO_SHORT: 0xc0010016,
  MEDIA_CONNECT: 0x4001000b,
  MEDIA_DISCONNECT: 0x4001000c,
  LINK_SPEED_CHANGE: 0x40010013,
  NETWORK_CHANGE: 0x40010018,
} as const;

// --- OIDs (rndis.h RNDIS_OID_*, hyperv_net.h OID_*) -------------------------------------------

export const Oid = {
  GEN_SUPPORTED_LIST: 0x00010101,
  GEN_HARDWARE_STATUS: 0x00010102,
  GEN_MEDIA_SUPPORTED: 0x00010103,
  GEN_MEDIA_IN_USE: 0x00010104,
  GEN_MAXIMUM_LOOKAHEAD: 0x00010105,
  GEN_MAXIMUM_FRAME_SIZE: 0x00010106,
  GEN_LINK_SPEED: 0x00010107,
  GEN_TRANSMIT_BUFFER_SPACE: 0x00010108,
  GEN_RECEIVE_BUFFER_SPACE: 0x00010109,
  GEN_TRANSMIT_BLOCK_SIZE: 0x0001010a,
  GEN_RECEIVE_BLOCK_SIZE: 0x0001010b,
  GEN_VENDOR_ID: 0x0001010c,
  GEN_VENDOR_DESCRIPTION: 0x0001010d,
  GEN_CURRENT_PACKET_FILTER: 0x0001010e,
  GEN_CURRENT_LOOKAHEAD: 0x0001010f,
  GEN_DRIVER_VERSION: 0x00010110,
  GEN_MAXIMUM_TOTAL_SIZE: 0x00010111,
  GEN_MAC_OPTIONS: 0x00010113,
  GEN_MEDIA_CONNECT_STATUS: 0x00010114,
  GEN_MAXIMUM_SEND_PACKETS: 0x00010115,
  GEN_VENDOR_DRIVER_VERSION: 0x00010116,
  GEN_NETWORK_LAYER_ADDRESSES: 0x00010118,
  GEN_FRIENDLY_NAME: 0x00020216,
  GEN_RNDIS_CONFIG_PARAMETER: 0x0001021b,
  GEN_RECEIVE_SCALE_CAPABILITIES: 0x00010203,
  GEN_RECEIVE_SCALE_PARAMETERS: 0x00010204,
  P802_3_PERMANENT_ADDRESS: 0x01010101,
  P802_3_CURRENT_ADDRESS: 0x01010102,
  P802_3_MULTICAST_LIST: 0x01010103,
  P802_3_MAXIMUM_LIST_SIZE: 0x01010104,
  TCP_OFFLOAD_CURRENT_CONFIG: 0xfc01020b,
  TCP_OFFLOAD_PARAMETERS: 0xfc01020c,
  TCP_OFFLOAD_HARDWARE_CAPABILITIES: 0xfc01020d,
  OFFLOAD_ENCAPSULATION: 0x0101010a,
} as const;

/** RNDIS_MAJOR_VERSION.RNDIS_MINOR_VERSION, the version INITIALIZE asks for. */
export const RNDIS_MAJOR_VERSION = 1;
export const RNDIS_MINOR_VERSION = 0;
/** RNDIS_DF_CONNECTIONLESS, RNDIS_MEDIUM_802_3. */
export const RNDIS_DF_CONNECTIONLESS = 0x1;
export const RNDIS_MEDIUM_802_3 = 0;
/** RNDIS_MEDIA_STATE_*: what GEN_MEDIA_CONNECT_STATUS answers (netvsc keeps link_state = value != 0, so 1 is "down"). */
export const RNDIS_MEDIA_STATE_CONNECTED = 0;
export const RNDIS_MEDIA_STATE_DISCONNECTED = 1;
/** RNDIS_CONFIG_PARAM_TYPE_*: rndis_config_parameter_info.parameter_type. */
export const RNDIS_CONFIG_PARAM_TYPE_INTEGER = 0;
export const RNDIS_CONFIG_PARAM_TYPE_STRING = 2;
/** netvsc's defaults until INITIALIZE's completion says otherwise (hyperv_net.h). */
export const RNDIS_MAX_PKT_DEFAULT = 8;
export const RNDIS_PKT_ALIGN_DEFAULT = 8;
/** RNDIS_EXT_LEN: room netvsc keeps after a response for its information buffer (one Hyper-V page). */
export const RNDIS_EXT_LEN = 4096;

/** NDIS_PACKET_TYPE_*: the packet filter bits (hyperv_net.h). */
export const NdisPacketType = {
  DIRECTED: 0x00000001,
  MULTICAST: 0x00000002,
  ALL_MULTICAST: 0x00000004,
  BROADCAST: 0x00000008,
  SOURCE_ROUTING: 0x00000010,
  PROMISCUOUS: 0x00000020,
  SMT: 0x00000040,
  ALL_LOCAL: 0x00000080,
  GROUP: 0x00000100,
  ALL_FUNCTIONAL: 0x00000200,
  FUNCTIONAL: 0x00000400,
  MAC_FRAME: 0x00000800,
} as const;

/** enum ndis_per_pkt_info_type: the per-packet info types netvsc reads or writes. */
export const PpiType = {
  TCPIP_CHKSUM: 0,
  IPSEC: 1,
  TCP_LARGESEND: 2,
  CLASSIFICATION_HANDLE: 3,
  SG_LIST: 5,
  IEEE_8021Q: 6,
  ORIGINAL: 7,
  NBL_HASH_VALUE: 8,
  ORIGINAL_NET_BUFLIST: 9,
  CACHED_NET_BUFLIST: 10,
  SHORT_PKT_PADINFO: 11,
} as const;
/** enum rndis_per_pkt_info_interal_type: internal PPIs (the `internal` bit set). */
export const RNDIS_PKTINFO_ID = 1;
/** rndis_pktinfo_id.flag bits, and its version. */
export const RNDIS_PKTINFO_SUBALLOC = 0x1;
export const RNDIS_PKTINFO_1ST_FRAG = 0x2;
export const RNDIS_PKTINFO_LAST_FRAG = 0x4;
export const RNDIS_PKTINFO_ID_V1 = 1;

// --- Layouts ----------------------------------------------------------------------------------

/** The 8-byte header, then the 44-byte union of message bodies. */
export const RNDIS_HEADER_SIZE = 8;
export const RndisMessage = struct('rndis_message', { ndis_msg_type: u32, msg_len: u32, msg: bytes(44) });

export const RndisPacket = struct('rndis_packet', {
  data_offset: u32,
  data_len: u32,
  oob_data_offset: u32,
  oob_data_len: u32,
  num_oob_data_elements: u32,
  per_pkt_info_offset: u32,
  per_pkt_info_len: u32,
  vc_handle: u32,
  reserved: u32,
});

export const RndisInitializeRequest = struct('rndis_initialize_request', { req_id: u32, major_ver: u32, minor_ver: u32, max_xfer_size: u32 });
export const RndisInitializeComplete = struct('rndis_initialize_complete', {
  req_id: u32,
  status: u32,
  major_ver: u32,
  minor_ver: u32,
  dev_flags: u32,
  medium: u32,
  max_pkt_per_msg: u32,
  max_xfer_size: u32,
  pkt_alignment_factor: u32,
  af_list_offset: u32,
  af_list_size: u32,
});
export const RndisHaltRequest = struct('rndis_halt_request', { req_id: u32 });
export const RndisQueryRequest = struct('rndis_query_request', { req_id: u32, oid: u32, info_buflen: u32, info_buf_offset: u32, dev_vc_handle: u32 });
export const RndisQueryComplete = struct('rndis_query_complete', { req_id: u32, status: u32, info_buflen: u32, info_buf_offset: u32 });
export const RndisSetRequest = struct('rndis_set_request', { req_id: u32, oid: u32, info_buflen: u32, info_buf_offset: u32, dev_vc_handle: u32, info_buf: flex(u8) });
export const RndisSetComplete = struct('rndis_set_complete', { req_id: u32, status: u32 });
export const RndisResetRequest = struct('rndis_reset_request', { reserved: u32 });
export const RndisResetComplete = struct('rndis_reset_complete', { status: u32, addressing_reset: u32 });
export const RndisKeepaliveRequest = struct('rndis_keepalive_request', { req_id: u32 });
export const RndisKeepaliveComplete = struct('rndis_keepalive_complete', { req_id: u32, status: u32 });
export const RndisIndicateStatus = struct('rndis_indicate_status', { status: u32, status_buflen: u32, status_buf_offset: u32 });
export const RndisDiagnosticInfo = struct('rndis_diagnostic_info', { diag_status: u32, error_offset: u32 });
export const RndisConfigParameterInfo = struct('rndis_config_parameter_info', {
  parameter_name_offset: u32,
  parameter_name_length: u32,
  parameter_type: u32,
  parameter_value_offset: u32,
  parameter_value_length: u32,
});
/** Out-of-band data, which netvsc never uses; netvsp refuses packets that carry it (OpenVMM). */
export const RndisOobd = struct('rndis_oobd', { size: u32, type: u32, class_info_offset: u32 });

/** A per-packet info element: its size, type (31 bits) and internal bit, and where its value starts. */
export const RndisPerPacketInfo = struct('rndis_per_packet_info', {
  size: u32,
  _type: bits('rndis_per_packet_info', 'u32', { type: 31, internal: 1 }),
  ppi_offset: u32,
});
/** The internal RNDIS_PKTINFO_ID value: receive-coalesced (RSC) fragments of one frame. */
export const RndisPktinfoId = struct('rndis_pktinfo_id', { ver: u8, flag: u8, pkt_id: u16 });

/** RNDIS_MESSAGE_SIZE(msg): the header plus one body. */
export const rndisMessageSize = (body: { size: number }): number => RNDIS_HEADER_SIZE + body.size;

export const RNDIS_LAYOUTS = [
  RndisMessage,
  RndisPacket,
  RndisInitializeRequest,
  RndisInitializeComplete,
  RndisHaltRequest,
  RndisQueryRequest,
  RndisQueryComplete,
  RndisSetRequest,
  RndisSetComplete,
  RndisResetRequest,
  RndisResetComplete,
  RndisKeepaliveRequest,
  RndisKeepaliveComplete,
  RndisIndicateStatus,
  RndisDiagnosticInfo,
  RndisConfigParameterInfo,
  RndisOobd,
  RndisPerPacketInfo,
  RndisPktinfoId,
];
