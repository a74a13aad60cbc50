// Network constants against the Linux oracle: NVSP versions, message types and statuses, the
// buffer sizes and limits of hyperv_net.h, RNDIS message types, statuses and OIDs of rndis.h,
// the NDIS object and offload constants, and the per-packet info types.
import { describe, expect, it } from 'vitest';
import * as nvsp from '../../src/devices/network/wire/nvsp.js';
import * as rndis from '../../src/devices/network/wire/rndis.js';
import * as ndis from '../../src/devices/network/wire/ndis.js';
import { loadOracle } from './oracle.js';

const { oracle, source } = loadOracle();
const macro = (name: string): bigint => {
  const m = oracle.macros[name];
  if (!m) throw new Error(`${name} is not in the oracle`);
  return BigInt(m.hex);
};
const enumValue = (e: string, name: string): bigint => {
  const v = oracle.enums[e]?.values.find((x) => x.name === name);
  if (!v) throw new Error(`${e}.${name} is not in the oracle`);
  return BigInt(v.value);
};
const check = (pairs: [number | bigint, string][]) => {
  for (const [ours, name] of pairs) expect(BigInt(ours), name).toBe(macro(name));
};

describe(`network constants against the Linux oracle (${source})`, () => {
  it('NVSP versions, in the order netvsc_connect_vsp lists them', () => {
    const names = ['1', '2', '4', '5', '6', '61'];
    expect(nvsp.LINUX_NVSP_VERSIONS.map(BigInt)).toEqual(names.map((n) => macro(`NVSP_PROTOCOL_VERSION_${n}`)));
    check([[nvsp.NVSP_INVALID_PROTOCOL_VERSION, 'NVSP_INVALID_PROTOCOL_VERSION']]);
  });

  it('NVSP message types and statuses: every Linux NVSP_MSG*_TYPE_* and NVSP_STAT_* is declared', () => {
    const types = Object.keys(oracle.macros).filter((k) => /^NVSP_MSG\d?_TYPE_/.test(k));
    expect(types.length).toBeGreaterThan(30);
    for (const k of types) expect(BigInt((nvsp.NvspMsgType as Record<string, number>)[k.replace(/^NVSP_MSG\d?_TYPE_/, '')] ?? -1), k).toBe(macro(k));
    const stats = Object.keys(oracle.macros).filter((k) => k.startsWith('NVSP_STAT_') && k !== 'NVSP_STAT_MAX');
    for (const k of stats) expect(BigInt((nvsp.NvspStatus as Record<string, number>)[k.slice('NVSP_STAT_'.length)] ?? -1), k).toBe(macro(k));
    expect(BigInt(nvsp.NVSP_SUBCHANNEL_ALLOCATE)).toBe(enumValue('nvsp_subchannel_operation', 'NVSP_SUBCHANNEL_ALLOCATE'));
    expect(BigInt(nvsp.NvspDatapath.SYNTHETIC)).toBe(enumValue('nvsp_vm_datapath', 'NVSP_DATAPATH_SYNTHETIC'));
    expect(BigInt(nvsp.NvspDatapath.VF)).toBe(enumValue('nvsp_vm_datapath', 'NVSP_DATAPATH_VF'));
  });

  it('buffers, sections, MTU and vRSS limits (hyperv_net.h)', () => {
    check([
      [nvsp.NETVSC_RECEIVE_BUFFER_ID, 'NETVSC_RECEIVE_BUFFER_ID'],
      [nvsp.NETVSC_SEND_BUFFER_ID, 'NETVSC_SEND_BUFFER_ID'],
      [nvsp.NETVSC_RECEIVE_BUFFER_DEFAULT, 'NETVSC_RECEIVE_BUFFER_DEFAULT'],
      [nvsp.NETVSC_RECEIVE_BUFFER_SIZE, 'NETVSC_RECEIVE_BUFFER_SIZE'],
      [nvsp.NETVSC_RECEIVE_BUFFER_SIZE_LEGACY, 'NETVSC_RECEIVE_BUFFER_SIZE_LEGACY'],
      [nvsp.NETVSC_SEND_BUFFER_DEFAULT, 'NETVSC_SEND_BUFFER_DEFAULT'],
      [nvsp.NETVSC_SEND_BUFFER_SIZE, 'NETVSC_SEND_BUFFER_SIZE'],
      [nvsp.NETVSC_RECV_SECTION_SIZE, 'NETVSC_RECV_SECTION_SIZE'],
      [nvsp.NETVSC_SEND_SECTION_SIZE, 'NETVSC_SEND_SECTION_SIZE'],
      [nvsp.NETVSC_DEFAULT_RX, 'NETVSC_DEFAULT_RX'],
      [nvsp.NETVSC_DEFAULT_TX, 'NETVSC_DEFAULT_TX'],
      [nvsp.NETVSC_MIN_TX_SECTIONS, 'NETVSC_MIN_TX_SECTIONS'],
      [nvsp.NETVSC_MIN_RX_SECTIONS, 'NETVSC_MIN_RX_SECTIONS'],
      [nvsp.NETVSC_INVALID_INDEX, 'NETVSC_INVALID_INDEX'],
      [nvsp.NETVSC_MTU_MIN, 'NETVSC_MTU_MIN'],
      [nvsp.NETVSC_MTU, 'NETVSC_MTU'],
      [nvsp.NETVSC_MAX_PKT_SIZE, 'NETVSC_MAX_PKT_SIZE'],
      [nvsp.NETVSC_MAX_XFER_PAGE_RANGES, 'NETVSC_MAX_XFER_PAGE_RANGES'],
      [nvsp.NETVSC_MIN_OUT_MSG_SIZE, 'NETVSC_MIN_OUT_MSG_SIZE'],
      [nvsp.NETVSC_MIN_IN_MSG_SIZE, 'NETVSC_MIN_IN_MSG_SIZE'],
      [nvsp.VRSS_SEND_TAB_SIZE, 'VRSS_SEND_TAB_SIZE'],
      [nvsp.VRSS_CHANNEL_MAX, 'VRSS_CHANNEL_MAX'],
      [nvsp.VRSS_CHANNEL_DEFAULT, 'VRSS_CHANNEL_DEFAULT'],
      [nvsp.ITAB_NUM, 'ITAB_NUM'],
      [nvsp.ITAB_NUM_MAX, 'ITAB_NUM_MAX'],
      [nvsp.NETVSC_HASH_KEYLEN, 'NETVSC_HASH_KEYLEN'],
      [nvsp.NVSP_RSC_MAX, 'NVSP_RSC_MAX'],
    ]);
    // The message sizes Linux's minimums are made of.
    expect(BigInt(nvsp.NvspMessage.size + 16)).toBe(macro('NETVSC_MIN_OUT_MSG_SIZE'));
    expect(BigInt(nvsp.NvspMessageHeader.size + 12)).toBe(macro('NETVSC_MIN_IN_MSG_SIZE'));
    // 9709 sections of 1728 bytes round up to the 16 MiB default; 170 of 6144 make 255 pages, just under 1 MiB.
    expect(Math.ceil((nvsp.NETVSC_DEFAULT_RX * nvsp.NETVSC_RECV_SECTION_SIZE) / 4096) * 4096).toBe(nvsp.NETVSC_RECEIVE_BUFFER_DEFAULT);
    expect(nvsp.NETVSC_DEFAULT_TX * nvsp.NETVSC_SEND_SECTION_SIZE).toBe(nvsp.NETVSC_SEND_BUFFER_DEFAULT - 4096);
  });

  it('RNDIS message types, statuses and the OIDs netvsc and netvsp use (rndis.h)', () => {
    for (const [k, v] of Object.entries(rndis.RndisMsg)) expect(BigInt(v), k).toBe(macro(`RNDIS_MSG_${k}`));
    check([[rndis.RNDIS_MSG_COMPLETION, 'RNDIS_MSG_COMPLETION']]);
    for (const [k, v] of Object.entries(rndis.RndisStatus)) expect(BigInt(v), k).toBe(macro(`RNDIS_STATUS_${k}`));
    for (const [k, v] of Object.entries(rndis.Oid)) {
      const name = k.startsWith('P802_3_') ? `RNDIS_OID_802_3_${k.slice(7)}` : k.startsWith('GEN_RECEIVE_SCALE') || k.startsWith('TCP_') || k === 'OFFLOAD_ENCAPSULATION' ? `OID_${k}` : `RNDIS_OID_${k}`;
      expect(BigInt(v), name).toBe(macro(name));
    }
    check([
      [rndis.RNDIS_MAJOR_VERSION, 'RNDIS_MAJOR_VERSION'],
      [rndis.RNDIS_MINOR_VERSION, 'RNDIS_MINOR_VERSION'],
      [rndis.RNDIS_DF_CONNECTIONLESS, 'RNDIS_DF_CONNECTIONLESS'],
      [rndis.RNDIS_MEDIUM_802_3, 'RNDIS_MEDIUM_802_3'],
      [rndis.RNDIS_MEDIA_STATE_CONNECTED, 'RNDIS_MEDIA_STATE_CONNECTED'],
      [rndis.RNDIS_MEDIA_STATE_DISCONNECTED, 'RNDIS_MEDIA_STATE_DISCONNECTED'],
      [rndis.RNDIS_CONFIG_PARAM_TYPE_INTEGER, 'RNDIS_CONFIG_PARAM_TYPE_INTEGER'],
      [rndis.RNDIS_CONFIG_PARAM_TYPE_STRING, 'RNDIS_CONFIG_PARAM_TYPE_STRING'],
      [rndis.RNDIS_MAX_PKT_DEFAULT, 'RNDIS_MAX_PKT_DEFAULT'],
      [rndis.RNDIS_PKT_ALIGN_DEFAULT, 'RNDIS_PKT_ALIGN_DEFAULT'],
      [rndis.RNDIS_EXT_LEN, 'RNDIS_EXT_LEN'],
      [rndis.RNDIS_HEADER_SIZE, 'RNDIS_HEADER_SIZE'],
      [rndis.RNDIS_PKTINFO_SUBALLOC, 'RNDIS_PKTINFO_SUBALLOC'],
      [rndis.RNDIS_PKTINFO_1ST_FRAG, 'RNDIS_PKTINFO_1ST_FRAG'],
      [rndis.RNDIS_PKTINFO_LAST_FRAG, 'RNDIS_PKTINFO_LAST_FRAG'],
      [rndis.RNDIS_PKTINFO_ID_V1, 'RNDIS_PKTINFO_ID_V1'],
    ]);
    for (const [k, v] of Object.entries(rndis.NdisPacketType)) expect(BigInt(v), k).toBe(macro(`NDIS_PACKET_TYPE_${k}`));
  });

  it('per-packet info types (enum ndis_per_pkt_info_type) and the internal RNDIS_PKTINFO_ID', () => {
    const names: Record<string, string> = {
      TCPIP_CHKSUM: 'TCPIP_CHKSUM_PKTINFO',
      IPSEC: 'IPSEC_PKTINFO',
      TCP_LARGESEND: 'TCP_LARGESEND_PKTINFO',
      CLASSIFICATION_HANDLE: 'CLASSIFICATION_HANDLE_PKTINFO',
      SG_LIST: 'SG_LIST_PKTINFO',
      IEEE_8021Q: 'IEEE_8021Q_INFO',
      ORIGINAL: 'ORIGINAL_PKTINFO',
      NBL_HASH_VALUE: 'NBL_HASH_VALUE',
      ORIGINAL_NET_BUFLIST: 'ORIGINAL_NET_BUFLIST',
      CACHED_NET_BUFLIST: 'CACHED_NET_BUFLIST',
      SHORT_PKT_PADINFO: 'SHORT_PKT_PADINFO',
    };
    for (const [k, v] of Object.entries(rndis.PpiType)) expect(BigInt(v), k).toBe(enumValue('ndis_per_pkt_info_type', names[k]!));
    expect(BigInt(rndis.RNDIS_PKTINFO_ID)).toBe(enumValue('rndis_per_pkt_info_interal_type', 'RNDIS_PKTINFO_ID'));
  });

  it('NDIS objects, offloads, RSS and the PPI sizes (hyperv_net.h)', () => {
    check([
      [ndis.NdisObjectType.DEFAULT, 'NDIS_OBJECT_TYPE_DEFAULT'],
      [ndis.NdisObjectType.OFFLOAD, 'NDIS_OBJECT_TYPE_OFFLOAD'],
      [ndis.NdisObjectType.RSS_CAPABILITIES, 'NDIS_OBJECT_TYPE_RSS_CAPABILITIES'],
      [ndis.NdisObjectType.RSS_PARAMETERS, 'NDIS_OBJECT_TYPE_RSS_PARAMETERS'],
      [ndis.NDIS_OFFLOAD_PARAMETERS_REVISION_1, 'NDIS_OFFLOAD_PARAMETERS_REVISION_1'],
      [ndis.NDIS_OFFLOAD_PARAMETERS_REVISION_2, 'NDIS_OFFLOAD_PARAMETERS_REVISION_2'],
      [ndis.NDIS_OFFLOAD_PARAMETERS_REVISION_3, 'NDIS_OFFLOAD_PARAMETERS_REVISION_3'],
      [ndis.NDIS_OFFLOAD_SIZE, 'NDIS_OFFLOAD_SIZE'],
      [ndis.NDIS_OFFLOAD_SIZE_6_0, 'NDIS_OFFLOAD_SIZE_6_0'],
      [ndis.NDIS_OFFLOAD_SIZE_6_1, 'NDIS_OFFLOAD_SIZE_6_1'],
      [ndis.VERSION_4_OFFLOAD_SIZE, 'VERSION_4_OFFLOAD_SIZE'],
      [ndis.OffloadParam.NO_CHANGE, 'NDIS_OFFLOAD_PARAMETERS_NO_CHANGE'],
      [ndis.OffloadParam.TX_RX_DISABLED, 'NDIS_OFFLOAD_PARAMETERS_TX_RX_DISABLED'],
      [ndis.OffloadParam.TX_ENABLED_RX_DISABLED, 'NDIS_OFFLOAD_PARAMETERS_TX_ENABLED_RX_DISABLED'],
      [ndis.OffloadParam.RX_ENABLED_TX_DISABLED, 'NDIS_OFFLOAD_PARAMETERS_RX_ENABLED_TX_DISABLED'],
      [ndis.OffloadParam.TX_RX_ENABLED, 'NDIS_OFFLOAD_PARAMETERS_TX_RX_ENABLED'],
      [ndis.OffloadParam.LSOV1_ENABLED, 'NDIS_OFFLOAD_PARAMETERS_LSOV1_ENABLED'],
      [ndis.OffloadParam.LSOV2_DISABLED, 'NDIS_OFFLOAD_PARAMETERS_LSOV2_DISABLED'],
      [ndis.OffloadParam.LSOV2_ENABLED, 'NDIS_OFFLOAD_PARAMETERS_LSOV2_ENABLED'],
      [ndis.OffloadParam.RSC_DISABLED, 'NDIS_OFFLOAD_PARAMETERS_RSC_DISABLED'],
      [ndis.OffloadParam.RSC_ENABLED, 'NDIS_OFFLOAD_PARAMETERS_RSC_ENABLED'],
      [ndis.NDIS_OFFLOAD_ENCAP_8023, 'NDIS_OFFLOAD_ENCAP_8023'],
      [ndis.NDIS_TXCSUM_ALL_TCP4, 'NDIS_TXCSUM_ALL_TCP4'],
      [ndis.NDIS_TXCSUM_ALL_TCP6, 'NDIS_TXCSUM_ALL_TCP6'],
      [ndis.NDIS_LSOV2_CAP_IP6, 'NDIS_LSOV2_CAP_IP6'],
      [ndis.NdisCsumCap.UDP4, 'NDIS_TXCSUM_CAP_UDP4'],
      [ndis.NdisCsumCap.UDP6, 'NDIS_TXCSUM_CAP_UDP6'],
      [ndis.NdisCsumCap.TCP4, 'NDIS_RXCSUM_CAP_TCP4'],
      [ndis.NdisCsumCap.IP4, 'NDIS_RXCSUM_CAP_IP4'],
      [ndis.NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2, 'NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2'],
      [ndis.NDIS_RECEIVE_SCALE_PARAMETERS_REVISION_2, 'NDIS_RECEIVE_SCALE_PARAMETERS_REVISION_2'],
      [ndis.NDIS_RSS_INDIRECTION_TABLE_MAX_SIZE_REVISION_2, 'NDIS_RSS_INDIRECTION_TABLE_MAX_SIZE_REVISION_2'],
      [ndis.NDIS_RSS_HASH_SECRET_KEY_MAX_SIZE_REVISION_2, 'NDIS_RSS_HASH_SECRET_KEY_MAX_SIZE_REVISION_2'],
      [ndis.NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE, 'NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE'],
      [ndis.NDIS_TCP_LARGE_SEND_OFFLOAD_IPV4, 'NDIS_TCP_LARGE_SEND_OFFLOAD_IPV4'],
      [ndis.NDIS_TCP_LARGE_SEND_OFFLOAD_IPV6, 'NDIS_TCP_LARGE_SEND_OFFLOAD_IPV6'],
      [ndis.NDIS_CSUM_PPI_SIZE, 'NDIS_CSUM_PPI_SIZE'],
      [ndis.NDIS_LSO_PPI_SIZE, 'NDIS_LSO_PPI_SIZE'],
      [ndis.NDIS_VLAN_PPI_SIZE, 'NDIS_VLAN_PPI_SIZE'],
      [ndis.NDIS_HASH_PPI_SIZE, 'NDIS_HASH_PPI_SIZE'],
      [ndis.RNDIS_AND_PPI_SIZE, 'RNDIS_AND_PPI_SIZE'],
    ]);
    for (const [k, v] of Object.entries(ndis.NdisRssCaps)) expect(BigInt(v), k).toBe(macro(`NDIS_RSS_CAPS_${k}`));
    for (const [k, v] of Object.entries(ndis.NdisRssParamFlag)) expect(BigInt(v), k).toBe(macro(`NDIS_RSS_PARAM_FLAG_${k}`));
    for (const [k, v] of Object.entries(ndis.NdisHash)) expect(BigInt(v), k).toBe(macro(`NDIS_HASH_${k}`));
    for (const [k, v] of Object.entries(ndis.TransportInfo)) expect(BigInt(v), k).toBe(macro(`TRANSPORT_INFO_${k}`));
    // Each PPI is its header and one u32; the headroom is a whole rndis_message and all four PPIs (NDIS_ALL_PPI_SIZE).
    expect(ndis.NDIS_CSUM_PPI_SIZE).toBe(rndis.RndisPerPacketInfo.size + 4);
    expect(BigInt(ndis.RNDIS_AND_PPI_SIZE)).toBe(BigInt(rndis.RndisMessage.size) + macro('NDIS_ALL_PPI_SIZE'));
  });
});
