// NDIS objects netvsc and netvsp exchange through RNDIS: the offload capabilities and
// parameters, the RSS capabilities and parameters, and the values of the per-packet infos
// (checksum, large send, 802.1Q, hash). Linux: drivers/net/hyperv/hyperv_net.h.
import { bits, bytes, struct, u16, u32, u8 } from '../../../tlfs/struct.js';

/** NDIS_OBJECT_TYPE_*: what an object header says it heads. */
export const NdisObjectType = { DEFAULT: 0x80, RSS_CAPABILITIES: 0x88, RSS_PARAMETERS: 0x89, OFFLOAD: 0xa7 } as const;

/** Linux names the header twice (ndis_obj_header for RSS, ndis_object_header for offloads). */
export const NdisObjHeader = struct('ndis_obj_header', { type: u8, rev: u8, size: u16 });
export const NdisObjectHeader = struct('ndis_object_header', { type: u8, revision: u8, size: u16 });

// --- Offloads -------------------------------------------------------------------------------

export const NDIS_OFFLOAD_PARAMETERS_REVISION_1 = 1;
export const NDIS_OFFLOAD_PARAMETERS_REVISION_2 = 2;
export const NDIS_OFFLOAD_PARAMETERS_REVISION_3 = 3;
/** The sizes of struct ndis_offload by revision (NDIS 6.0, 6.1, 6.30) and of the offload parameters up to NVSP 4. */
export const NDIS_OFFLOAD_SIZE = 156;
export const NDIS_OFFLOAD_SIZE_6_0 = 112;
export const NDIS_OFFLOAD_SIZE_6_1 = 144;
export const VERSION_4_OFFLOAD_SIZE = 22;

/** The values of ndis_offload_params' checksum bytes, LSO bytes and RSC bytes. */
export const OffloadParam = {
  NO_CHANGE: 0,
  TX_RX_DISABLED: 1,
  TX_ENABLED_RX_DISABLED: 2,
  RX_ENABLED_TX_DISABLED: 3,
  TX_RX_ENABLED: 4,
  LSOV1_ENABLED: 2,
  LSOV2_DISABLED: 1,
  LSOV2_ENABLED: 2,
  RSC_DISABLED: 1,
  RSC_ENABLED: 2,
} as const;

/** NDIS_OFFLOAD_ENCAP_*, NDIS_TXCSUM_* / NDIS_RXCSUM_* capability bits, NDIS_LSOV2_CAP_*. */
export const NDIS_OFFLOAD_ENCAP_8023 = 0x2;
export const NdisCsumCap = { IP4OPT: 0x1, TCP4OPT: 0x4, TCP4: 0x10, UDP4: 0x40, IP4: 0x100, IP6EXT: 0x1, TCP6OPT: 0x4, TCP6: 0x10, UDP6: 0x40 } as const;
export const NDIS_TXCSUM_ALL_TCP4 = NdisCsumCap.TCP4 | NdisCsumCap.TCP4OPT;
export const NDIS_TXCSUM_ALL_TCP6 = NdisCsumCap.TCP6 | NdisCsumCap.TCP6OPT | NdisCsumCap.IP6EXT;
export const NDIS_LSOV2_CAP_IP6 = 0x5;

export const NdisOffloadParams = struct('ndis_offload_params', {
  header: NdisObjectHeader,
  ip_v4_csum: u8,
  tcp_ip_v4_csum: u8,
  udp_ip_v4_csum: u8,
  tcp_ip_v6_csum: u8,
  udp_ip_v6_csum: u8,
  lso_v1: u8,
  ip_sec_v1: u8,
  lso_v2_ipv4: u8,
  lso_v2_ipv6: u8,
  tcp_connection_ip_v4: u8,
  tcp_connection_ip_v6: u8,
  pad1: u8,
  flags: u32,
  ip_sec_v2: u8,
  ip_sec_v2_ip_v4: u8,
  rsc_ip_v4: u8,
  rsc_ip_v6: u8,
  encapsulated_packet_task_offload: u8,
  encapsulation_types: u8,
  pad2: bytes(2),
});

export const NdisCsumOffload = struct('ndis_csum_offload', {
  ip4_txenc: u32,
  ip4_txcsum: u32,
  ip4_rxenc: u32,
  ip4_rxcsum: u32,
  ip6_txenc: u32,
  ip6_txcsum: u32,
  ip6_rxenc: u32,
  ip6_rxcsum: u32,
});
export const NdisLsov1Offload = struct('ndis_lsov1_offload', { encap: u32, maxsize: u32, minsegs: u32, opts: u32 });
export const NdisIpsecv1Offload = struct('ndis_ipsecv1_offload', { encap: u32, ah_esp: u32, xport_tun: u32, ip4_opts: u32, flags: u32, ip4_ah: u32, ip4_esp: u32 });
export const NdisLsov2Offload = struct('ndis_lsov2_offload', { ip4_encap: u32, ip4_maxsz: u32, ip4_minsg: u32, ip6_encap: u32, ip6_maxsz: u32, ip6_minsg: u32, ip6_opts: u32 });
export const NdisIpsecv2Offload = struct('ndis_ipsecv2_offload', {
  encap: u32,
  ip6: u8,
  ip4opt: u8,
  ip6ext: u8,
  ah: u8,
  esp: u8,
  ah_esp: u8,
  xport: u8,
  tun: u8,
  xport_tun: u8,
  lso: u8,
  extseq: u8,
  pad1: u8,
  udp_esp: u32,
  auth: u32,
  crypto: u32,
  sa_caps: u32,
});
export const NdisRscOffload = struct('ndis_rsc_offload', { ip4: u8, ip6: u8 });
export const NdisEncapOffload = struct('ndis_encap_offload', { flags: u32, maxhdr: u32 });
/** What OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES answers; its header size says which revision (6.0, 6.1 or 6.30) follows. */
export const NdisOffload = struct('ndis_offload', {
  header: NdisObjectHeader,
  csum: NdisCsumOffload,
  lsov1: NdisLsov1Offload,
  ipsecv1: NdisIpsecv1Offload,
  lsov2: NdisLsov2Offload,
  flags: u32,
  ipsecv2: NdisIpsecv2Offload,
  rsc: NdisRscOffload,
  pad1: bytes(2),
  encap_gre: NdisEncapOffload,
});

// --- RSS ------------------------------------------------------------------------------------

export const NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2 = 2;
export const NDIS_RECEIVE_SCALE_PARAMETERS_REVISION_2 = 2;
export const NdisRssCaps = {
  MESSAGE_SIGNALED_INTERRUPTS: 0x01000000,
  CLASSIFICATION_AT_ISR: 0x02000000,
  CLASSIFICATION_AT_DPC: 0x04000000,
  USING_MSI_X: 0x08000000,
  RSS_AVAILABLE_ON_PORTS: 0x10000000,
  SUPPORTS_MSI_X: 0x20000000,
  HASH_TYPE_TCP_IPV4: 0x00000100,
  HASH_TYPE_TCP_IPV6: 0x00000200,
  HASH_TYPE_TCP_IPV6_EX: 0x00000400,
} as const;
export const NdisRssParamFlag = { BASE_CPU_UNCHANGED: 0x1, HASH_INFO_UNCHANGED: 0x2, ITABLE_UNCHANGED: 0x4, HASH_KEY_UNCHANGED: 0x8, DISABLE_RSS: 0x10 } as const;
/** NDIS_HASH_*: the hash function (low byte) and the header fields it covers. */
export const NdisHash = { FUNC_TOEPLITZ: 0x1, IPV4: 0x100, TCP_IPV4: 0x200, IPV6: 0x400, IPV6_EX: 0x800, TCP_IPV6: 0x1000, TCP_IPV6_EX: 0x2000 } as const;
export const NDIS_HASH_FUNCTION_MASK = 0xff;
export const NDIS_RSS_INDIRECTION_TABLE_MAX_SIZE_REVISION_2 = 128 * 4;
export const NDIS_RSS_HASH_SECRET_KEY_MAX_SIZE_REVISION_2 = 40;

export const NdisRecvScaleCap = struct('ndis_recv_scale_cap', { hdr: NdisObjHeader, cap_flag: u32, num_int_msg: u32, num_recv_que: u32, num_indirect_tabent: u16 });
/** The table (u32 entries) and the key follow the fixed part at the offsets it names. */
export const NdisRecvScaleParam = struct('ndis_recv_scale_param', {
  hdr: NdisObjHeader,
  flag: u16,
  base_cpu_number: u16,
  hashinfo: u32,
  indirect_tabsize: u16,
  pad1: u16,
  indirect_taboffset: u32,
  hashkey_size: u16,
  pad2: u16,
  hashkey_offset: u32,
  processor_masks_offset: u32,
  num_processor_masks: u32,
  processor_masks_entry_size: u32,
});

// --- Per-packet info values -------------------------------------------------------------------
// Each is a union of views of one u32; each view is declared on its own and checked against the
// oracle under the union's name.

/** Checksum info as the sender asks for it (tx). */
export const CsumInfoTransmit = struct('ndis_tcp_ip_checksum_info', {
  transmit: bits('transmit', 'u32', { is_ipv4: 1, is_ipv6: 1, tcp_checksum: 1, udp_checksum: 1, ip_header_checksum: 1, reserved: 11, tcp_header_offset: 10, reserved2: 6 }),
});
/** Checksum info as the receiver reports it (rx). */
export const CsumInfoReceive = struct('ndis_tcp_ip_checksum_info', {
  receive: bits('receive', 'u32', {
    tcp_checksum_failed: 1,
    udp_checksum_failed: 1,
    ip_checksum_failed: 1,
    tcp_checksum_succeeded: 1,
    udp_checksum_succeeded: 1,
    ip_checksum_succeeded: 1,
    loopback: 1,
    tcp_checksum_value_invalid: 1,
    ip_checksum_value_invalid: 1,
    reserved: 23,
  }),
});
/** Large send v2 as the sender asks for it. */
export const LsoV2Transmit = struct('ndis_tcp_lso_info', {
  lso_v2_transmit: bits('lso_v2_transmit', 'u32', { mss: 20, tcp_header_offset: 10, type: 1, ip_version: 1 }),
});
export const NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE = 1;
export const NDIS_TCP_LARGE_SEND_OFFLOAD_IPV4 = 0;
export const NDIS_TCP_LARGE_SEND_OFFLOAD_IPV6 = 1;
/** 802.1Q tag (priority, CFI, VLAN id). */
export const Pkt8021qInfo = struct('ndis_pkt_8021q_info', { _tag: bits('ndis_pkt_8021q_info', 'u32', { pri: 3, cfi: 1, vlanid: 12, reserved: 16 }) });

/** Each PPI element: its 12-byte header then a u32 value (NDIS_*_PPI_SIZE). */
export const NDIS_CSUM_PPI_SIZE = 16;
export const NDIS_LSO_PPI_SIZE = 16;
export const NDIS_VLAN_PPI_SIZE = 16;
export const NDIS_HASH_PPI_SIZE = 16;
/** RNDIS_AND_PPI_SIZE: the headroom netvsc keeps, a whole rndis_message and every PPI. */
export const RNDIS_AND_PPI_SIZE = 116;

/** transport flags net_checksum_info computes (hyperv_net.h TRANSPORT_INFO_*). */
export const TransportInfo = { NOT_IP: 0, IPV4_TCP: 0x1, IPV4_UDP: 0x2, IPV6_TCP: 0x10, IPV6_UDP: 0x20 } as const;

export const NDIS_LAYOUTS = [
  NdisObjHeader,
  NdisObjectHeader,
  NdisOffloadParams,
  NdisCsumOffload,
  NdisLsov1Offload,
  NdisIpsecv1Offload,
  NdisLsov2Offload,
  NdisIpsecv2Offload,
  NdisRscOffload,
  NdisEncapOffload,
  NdisOffload,
  NdisRecvScaleCap,
  NdisRecvScaleParam,
  CsumInfoTransmit,
  CsumInfoReceive,
  LsoV2Transmit,
  Pkt8021qInfo,
];
