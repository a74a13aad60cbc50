// NVSP, the network VSP protocol that runs directly on the NIC's VMBus channel: version
// negotiation, the NDIS version and configuration, the receive and send buffers shared through
// GPADLs, RNDIS messages carried in those buffers, and from version 5 sub-channels and the send
// indirection table. Every message is a 4-byte type followed by one member of a union; Linux sends
// the whole 40-byte struct nvsp_message. Linux: drivers/net/hyperv/hyperv_net.h; OpenVMM:
// vm/devices/net/netvsp/src/protocol.rs.
import { array, bits, bytes, struct, u16, u32, u64 } from '../../../tlfs/struct.js';

// --- Versions (hyperv_net.h NVSP_PROTOCOL_VERSION_*) ----------------------------------------

export const NvspVersion = {
  V1: 0x00002,
  V2: 0x30002,
  V4: 0x40000,
  V5: 0x50000,
  V6: 0x60000,
  V61: 0x60001,
} as const;
export const NVSP_INVALID_PROTOCOL_VERSION = 0xffffffff;

/** netvsc_connect_vsp's ver_list, oldest first; Linux tries them newest first. */
export const LINUX_NVSP_VERSIONS: readonly number[] = [NvspVersion.V1, NvspVersion.V2, NvspVersion.V4, NvspVersion.V5, NvspVersion.V6, NvspVersion.V61];

/** "6.1", "5", "2" as people write NVSP versions (V2 is 0x30002, "NVSPv2"). */
export function nvspVersionName(v: number): string {
  switch (v) {
    case NvspVersion.V1:
      return '1';
    case NvspVersion.V2:
      return '2';
    case NvspVersion.V61:
      return '6.1';
    default:
      return (v & 0xffff) === 0 ? String(v >>> 16) : `0x${v.toString(16)}`;
  }
}

/** The NDIS version netvsc_connect_vsp announces: 6.1 up to NVSP 4, 6.30 from NVSP 5 (NDIS_VERSION_6_1, _6_30). */
export const NDIS_VERSION_6_1 = 0x00060001;
export const NDIS_VERSION_6_30 = 0x0006001e;

// --- Message types (hyperv_net.h, the anonymous enum from NVSP_MSG_TYPE_NONE) ---------------

export const NvspMsgType = {
  NONE: 0,
  INIT: 1,
  INIT_COMPLETE: 2,
  // Version 1
  SEND_NDIS_VER: 100,
  SEND_RECV_BUF: 101,
  SEND_RECV_BUF_COMPLETE: 102,
  REVOKE_RECV_BUF: 103,
  SEND_SEND_BUF: 104,
  SEND_SEND_BUF_COMPLETE: 105,
  REVOKE_SEND_BUF: 106,
  SEND_RNDIS_PKT: 107,
  SEND_RNDIS_PKT_COMPLETE: 108,
  // Version 2
  SEND_CHIMNEY_DELEGATED_BUF: 109,
  SEND_CHIMNEY_DELEGATED_BUF_COMP: 110,
  REVOKE_CHIMNEY_DELEGATED_BUF: 111,
  RESUME_CHIMNEY_RX_INDICATION: 112,
  TERMINATE_CHIMNEY: 113,
  TERMINATE_CHIMNEY_COMP: 114,
  INDICATE_CHIMNEY_EVENT: 115,
  SEND_CHIMNEY_PKT: 116,
  SEND_CHIMNEY_PKT_COMP: 117,
  POST_CHIMNEY_RECV_REQ: 118,
  POST_CHIMNEY_RECV_REQ_COMP: 119,
  ALLOC_RXBUF: 120,
  ALLOC_RXBUF_COMP: 121,
  FREE_RXBUF: 122,
  SEND_VMQ_RNDIS_PKT: 123,
  SEND_VMQ_RNDIS_PKT_COMP: 124,
  SEND_NDIS_CONFIG: 125,
  ALLOC_CHIMNEY_HANDLE: 126,
  ALLOC_CHIMNEY_HANDLE_COMP: 127,
  // Version 4
  SEND_VF_ASSOCIATION: 128,
  SWITCH_DATA_PATH: 129,
  UPLINK_CONNECT_STATE_DEPRECATED: 130,
  // Version 5
  OID_QUERY_EX: 131,
  OID_QUERY_EX_COMP: 132,
  SUBCHANNEL: 133,
  SEND_INDIRECTION_TABLE: 134,
  // Version 6
  PD_API: 135,
  PD_POST_BATCH: 136,
} as const;

/** enum nvsp_status. */
export const NvspStatus = {
  NONE: 0,
  SUCCESS: 1,
  FAIL: 2,
  PROTOCOL_TOO_NEW: 3,
  PROTOCOL_TOO_OLD: 4,
  INVALID_RNDIS_PKT: 5,
  BUSY: 6,
  PROTOCOL_UNSUPPORTED: 7,
} as const;

/** enum nvsp_subchannel_operation, enum nvsp_vm_datapath. */
export const NVSP_SUBCHANNEL_ALLOCATE = 1;
export const NvspDatapath = { SYNTHETIC: 0, VF: 1 } as const;

/** nvsp_1_message_send_rndis_packet.channel_type: RMC_DATA for frames, RMC_CONTROL for RNDIS requests (netvsc_send_pkt). */
export const RndisChannelType = { DATA: 0, CONTROL: 1 } as const;

// --- Buffers and limits (hyperv_net.h) ------------------------------------------------------

/** The ids Linux gives its receive and send buffers; the receive id is the transfer page set id. */
export const NETVSC_RECEIVE_BUFFER_ID = 0xcafe;
export const NETVSC_SEND_BUFFER_ID = 0;
/** Default and maximum buffer sizes, and the legacy (NVSP ≤ 2) receive maximum. */
export const NETVSC_RECEIVE_BUFFER_DEFAULT = 16 << 20;
export const NETVSC_RECEIVE_BUFFER_SIZE = 31 << 20;
export const NETVSC_RECEIVE_BUFFER_SIZE_LEGACY = 15 << 20;
export const NETVSC_SEND_BUFFER_DEFAULT = 1 << 20;
export const NETVSC_SEND_BUFFER_SIZE = 15 << 20;
/** Section sizes: 1728 bytes received frames take, 6144 for frames sent through the send buffer. */
export const NETVSC_RECV_SECTION_SIZE = 1728;
export const NETVSC_SEND_SECTION_SIZE = 6144;
/** netvsc_devinfo_get's defaults: recv and send sections, so the buffers come to 16 MiB and 1 MiB. */
export const NETVSC_DEFAULT_RX = 9709;
export const NETVSC_DEFAULT_TX = 170;
export const NETVSC_MIN_TX_SECTIONS = 10;
export const NETVSC_MIN_RX_SECTIONS = 10;
/** A send section index meaning "none": the data is in page buffers. */
export const NETVSC_INVALID_INDEX = 0xffffffff;
/** Linux's MTU bounds: 68 up, and 65535 less the Ethernet header (NETVSC_MTU - ETH_HLEN). */
export const NETVSC_MTU_MIN = 68;
export const NETVSC_MTU = 65535;
/** The channel's max_pkt_size and the most transfer-page ranges Linux parses. */
export const NETVSC_MAX_PKT_SIZE = 0x1210;
export const NETVSC_MAX_XFER_PAGE_RANGES = 562;
/** sizeof(struct nvsp_message) (+ the 16-byte packet descriptor in the two minimums). */
export const NETVSC_MIN_OUT_MSG_SIZE = 56;
export const NETVSC_MIN_IN_MSG_SIZE = 16;
/** vRSS: the send indirection table Linux accepts, the channels it uses at most and by default. */
export const VRSS_SEND_TAB_SIZE = 16;
export const VRSS_CHANNEL_MAX = 64;
export const VRSS_CHANNEL_DEFAULT = 8;
/** The receive indirection table netvsc sends (ITAB_NUM) and the largest it accepts from the host. */
export const ITAB_NUM = 128;
export const ITAB_NUM_MAX = 256;
/** RSS key length (NETVSC_HASH_KEYLEN). */
export const NETVSC_HASH_KEYLEN = 40;
/** NVSP_RSC_MAX: receive-coalesced fragments one frame may span. */
export const NVSP_RSC_MAX = 562;

/** netvsc_rqstor_size: the requestor has one slot per minimum-sized outgoing message the ring can hold. */
export const netvscRqstorSize = (ringBytes: number): number => Math.floor(ringBytes / NETVSC_MIN_OUT_MSG_SIZE);

// --- Layouts ----------------------------------------------------------------------------------

export const NvspMessageHeader = struct('nvsp_message_header', { msg_type: u32 });

export const NvspMessageInit = struct('nvsp_message_init', { min_protocol_ver: u32, max_protocol_ver: u32 });
export const NvspMessageInitComplete = struct('nvsp_message_init_complete', { negotiated_protocol_ver: u32, max_mdl_chain_len: u32, status: u32 });

export const Nvsp1SendNdisVersion = struct('nvsp_1_message_send_ndis_version', { ndis_major_ver: u32, ndis_minor_ver: u32 });
export const Nvsp1SendReceiveBuffer = struct('nvsp_1_message_send_receive_buffer', { gpadl_handle: u32, id: u16 });
export const Nvsp1ReceiveBufferSection = struct('nvsp_1_receive_buffer_section', { offset: u32, sub_alloc_size: u32, num_sub_allocs: u32, end_offset: u32 });
/** The completion carries one section (num_sections is always 1; Linux refuses anything else). */
export const Nvsp1SendReceiveBufferComplete = struct('nvsp_1_message_send_receive_buffer_complete', {
  status: u32,
  num_sections: u32,
  sections: array(Nvsp1ReceiveBufferSection, 1),
});
export const Nvsp1RevokeReceiveBuffer = struct('nvsp_1_message_revoke_receive_buffer', { id: u16 });
export const Nvsp1SendSendBuffer = struct('nvsp_1_message_send_send_buffer', { gpadl_handle: u32, id: u16 });
export const Nvsp1SendSendBufferComplete = struct('nvsp_1_message_send_send_buffer_complete', { status: u32, section_size: u32 });
export const Nvsp1RevokeSendBuffer = struct('nvsp_1_message_revoke_send_buffer', { id: u16 });
export const Nvsp1SendRndisPacket = struct('nvsp_1_message_send_rndis_packet', { channel_type: u32, send_buf_section_index: u32, send_buf_section_size: u32 });
export const Nvsp1SendRndisPacketComplete = struct('nvsp_1_message_send_rndis_packet_complete', { status: u32 });

/** The capability bits of the NDIS config; the rest of the u64 is unnamed in Linux. */
export const NvspVscCapability = struct('nvsp_2_vsc_capability', {
  _caps: bits('nvsp_2_vsc_capability', 'u64', { vmq: 1, chimney: 1, sriov: 1, ieee8021q: 1, correlation_id: 1, teaming: 1, vsubnetid: 1, rsc: 1, reserved: 56 }),
});
export const Nvsp2SendNdisConfig = struct('nvsp_2_send_ndis_config', { mtu: u32, reserved: u32, capability: NvspVscCapability });
export const Nvsp2AllocRxbuf = struct('nvsp_2_alloc_rxbuf', { alloc_id: u32, len: u32 });
export const Nvsp2AllocRxbufComp = struct('nvsp_2_alloc_rxbuf_comp', { status: u32, alloc_id: u32, gpadl_handle: u32, recv_buf_id: u64 });
export const Nvsp2FreeRxbuf = struct('nvsp_2_free_rxbuf', { recv_buf_id: u64 });

export const Nvsp4SendVfAssociation = struct('nvsp_4_send_vf_association', { allocated: u32, serial: u32 });
export const Nvsp4SwDatapath = struct('nvsp_4_sw_datapath', { active_datapath: u32 });

export const Nvsp5SubchannelRequest = struct('nvsp_5_subchannel_request', { op: u32, num_subchannels: u32 });
export const Nvsp5SubchannelComplete = struct('nvsp_5_subchannel_complete', { status: u32, num_subchannels: u32 });
/** The table itself (count u32 entries) lies at `offset` from the start of the NVSP message. */
export const Nvsp5SendIndirectTable = struct('nvsp_5_send_indirect_table', { count: u32, offset: u32 });

/** Packet Direct (version 6): only the operation is common to the union's views; hvkit's host refuses PD. */
export const Nvsp6PdApiReq = struct('nvsp_6_pd_api_req', { op: u32, u: bytes(30) });
export const Nvsp6PdApiComp = struct('nvsp_6_pd_api_comp', { op: u32, status: u32, u: bytes(28) });
export const Nvsp6PdBuf = struct('nvsp_6_pd_buf', { region_offset: u32, region_id: u16, _flags: bits('nvsp_6_pd_buf', 'u16', { is_partial: 1, reserved: 15 }) });
export const Nvsp6PdBatchMsg = struct('nvsp_6_pd_batch_msg', {
  hdr: NvspMessageHeader,
  count: u16,
  _flags: bits('nvsp_6_pd_batch_msg', 'u16', { guest2host: 1, is_recv: 1, reserved: 14 }),
});

/** The whole message: the type, then the 36-byte union (nvsp_all_messages). */
export const NVSP_MESSAGE_UNION = 36;
export const NvspMessage = struct('nvsp_message', { hdr: NvspMessageHeader, msg: bytes(NVSP_MESSAGE_UNION) });

/** What a receive completion carries (send_recv_completions' packed recv_comp_msg): 8 bytes, not a whole nvsp_message. */
export const NvspRecvCompletion = struct('recv_comp_msg', { hdr: NvspMessageHeader, status: u32 });

/** Where the union starts in every message. */
export const NVSP_BODY = NvspMessageHeader.size;

export const NVSP_LAYOUTS = [
  NvspMessageHeader,
  NvspMessageInit,
  NvspMessageInitComplete,
  Nvsp1SendNdisVersion,
  Nvsp1SendReceiveBuffer,
  Nvsp1ReceiveBufferSection,
  Nvsp1SendReceiveBufferComplete,
  Nvsp1RevokeReceiveBuffer,
  Nvsp1SendSendBuffer,
  Nvsp1SendSendBufferComplete,
  Nvsp1RevokeSendBuffer,
  Nvsp1SendRndisPacket,
  Nvsp1SendRndisPacketComplete,
  NvspVscCapability,
  Nvsp2SendNdisConfig,
  Nvsp2AllocRxbuf,
  Nvsp2AllocRxbufComp,
  Nvsp2FreeRxbuf,
  Nvsp4SendVfAssociation,
  Nvsp4SwDatapath,
  Nvsp5SubchannelRequest,
  Nvsp5SubchannelComplete,
  Nvsp5SendIndirectTable,
  Nvsp6PdApiReq,
  Nvsp6PdApiComp,
  Nvsp6PdBuf,
  Nvsp6PdBatchMsg,
  NvspMessage,
  NvspRecvCompletion,
];
