// The RNDIS miniport the host presents: what it answers to QUERY and how it takes SET, for the
// OIDs Linux's netvsc uses (rndis_filter.c) and those OpenVMM's netvsp answers
// (handle_oid_query, handle_oid_set), with the values the Hyper-V vSwitch reports where OpenVMM
// mirrors them. Unknown OIDs answer RNDIS_STATUS_NOT_SUPPORTED, bad input RNDIS_STATUS_INVALID_DATA.
import { macString, type Mac } from '../ether.js';
import {
  NDIS_LSOV2_CAP_IP6,
  NDIS_OFFLOAD_ENCAP_8023,
  NDIS_OFFLOAD_SIZE,
  NDIS_OFFLOAD_SIZE_6_0,
  NDIS_OFFLOAD_SIZE_6_1,
  NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2,
  NdisCsumCap,
  NdisHash,
  NDIS_HASH_FUNCTION_MASK,
  NdisObjectType,
  NdisOffload,
  NdisOffloadParams,
  NdisRecvScaleCap,
  NdisRecvScaleParam,
  NdisRssCaps,
  NdisRssParamFlag,
  OffloadParam,
} from '../wire/ndis.js';
import { NETVSC_HASH_KEYLEN } from '../wire/nvsp.js';
import { Oid, RNDIS_CONFIG_PARAM_TYPE_STRING, RNDIS_MEDIA_STATE_CONNECTED, RNDIS_MEDIA_STATE_DISCONNECTED, RNDIS_MEDIUM_802_3, RndisConfigParameterInfo, RndisStatus } from '../wire/rndis.js';
import { LSO_MAX_OFFLOAD_SIZE, LSO_MIN_SEGMENT_COUNT } from './offload.js';

export interface OffloadConfig {
  /** Transmit checksums the host completes, receive checksums it reports. */
  txTcp4: boolean;
  txUdp4: boolean;
  txIp4: boolean;
  rxTcp4: boolean;
  rxUdp4: boolean;
  rxIp4: boolean;
  lso4: boolean;
}

export const DEFAULT_OFFLOADS: Readonly<OffloadConfig> = { txTcp4: false, txUdp4: false, txIp4: false, rxTcp4: false, rxUdp4: false, rxIp4: false, lso4: false };

export interface RssState {
  readonly key: Uint8Array;
  /** Queue index per entry; the host's table always has `INDIRECTION_TABLE_SIZE` entries. */
  readonly table: Uint16Array;
}

/** The host's indirection table size (OpenVMM's default, and netvsc's ITAB_NUM). */
export const INDIRECTION_TABLE_SIZE = 128;

/** What QUERY answers depend on; SET changes some of it. */
export interface AdapterState {
  readonly permanentMac: Mac;
  currentMac: Mac;
  /** The NDIS configuration's frame size, Ethernet header included (1514 for an MTU of 1500). */
  mtu: number;
  ndisMajor: number;
  ndisMinor: number;
  linkUp: boolean;
  /** Bits per second. */
  readonly linkSpeed: number;
  packetFilter: number;
  offloads: OffloadConfig;
  rss: RssState | undefined;
  /** Receive queues the host offers (1 + sub-channels at most). */
  readonly maxQueues: number;
  readonly friendlyName: string;
}

export type QueryAnswer = { status: number; info: Uint8Array };

/** The vSwitch's vendor id: the first bytes of Microsoft's MAC prefix 00:15:5D (OpenVMM). */
const VENDOR_ID = 0x0000155d;
const BUFFER_SPACE = 256 * 1024;
const ETH_HLEN = 14;
/** MAC options the vSwitch reports (OpenVMM): copy lookahead, transfers not pending, no loopback, 802.1p, 802.1Q. */
const MAC_OPTIONS = 0x1 | 0x4 | 0x8 | 0x40 | 0x80;

const u32 = (...vs: number[]): Uint8Array => {
  const b = new Uint8Array(4 * vs.length);
  const dv = new DataView(b.buffer);
  vs.forEach((v, i) => dv.setUint32(4 * i, v >>> 0, true));
  return b;
};
const ok = (info: Uint8Array): QueryAnswer => ({ status: RndisStatus.SUCCESS, info });

const COMMON_OIDS = [
  Oid.GEN_SUPPORTED_LIST,
  Oid.GEN_HARDWARE_STATUS,
  Oid.GEN_MEDIA_SUPPORTED,
  Oid.GEN_MEDIA_IN_USE,
  Oid.GEN_MAXIMUM_LOOKAHEAD,
  Oid.GEN_CURRENT_LOOKAHEAD,
  Oid.GEN_MAXIMUM_FRAME_SIZE,
  Oid.GEN_MAXIMUM_TOTAL_SIZE,
  Oid.GEN_TRANSMIT_BLOCK_SIZE,
  Oid.GEN_RECEIVE_BLOCK_SIZE,
  Oid.GEN_LINK_SPEED,
  Oid.GEN_TRANSMIT_BUFFER_SPACE,
  Oid.GEN_RECEIVE_BUFFER_SPACE,
  Oid.GEN_VENDOR_ID,
  Oid.GEN_VENDOR_DESCRIPTION,
  Oid.GEN_VENDOR_DRIVER_VERSION,
  Oid.GEN_DRIVER_VERSION,
  Oid.GEN_CURRENT_PACKET_FILTER,
  Oid.GEN_MAC_OPTIONS,
  Oid.GEN_MEDIA_CONNECT_STATUS,
  Oid.GEN_MAXIMUM_SEND_PACKETS,
  Oid.GEN_NETWORK_LAYER_ADDRESSES,
  Oid.GEN_FRIENDLY_NAME,
  Oid.P802_3_PERMANENT_ADDRESS,
  Oid.P802_3_CURRENT_ADDRESS,
  Oid.P802_3_MULTICAST_LIST,
  Oid.P802_3_MAXIMUM_LIST_SIZE,
  Oid.GEN_RNDIS_CONFIG_PARAMETER,
];
const NDIS6_OIDS = [Oid.TCP_OFFLOAD_PARAMETERS, Oid.OFFLOAD_ENCAPSULATION, Oid.TCP_OFFLOAD_HARDWARE_CAPABILITIES, Oid.TCP_OFFLOAD_CURRENT_CONFIG];
const NDIS630_OIDS = [Oid.GEN_RECEIVE_SCALE_CAPABILITIES, Oid.GEN_RECEIVE_SCALE_PARAMETERS];

/** The offload object by NDIS revision: 6.0 (112 bytes), 6.1 (144) or 6.30 (156). */
function ndisOffload(s: AdapterState, current: boolean): Uint8Array {
  const o = NdisOffload.zero();
  const size = s.ndisMajor === 6 && s.ndisMinor >= 30 ? NDIS_OFFLOAD_SIZE : s.ndisMajor === 6 && s.ndisMinor >= 1 ? NDIS_OFFLOAD_SIZE_6_1 : NDIS_OFFLOAD_SIZE_6_0;
  o.header = { type: NdisObjectType.OFFLOAD, revision: size === NDIS_OFFLOAD_SIZE ? 3 : size === NDIS_OFFLOAD_SIZE_6_1 ? 2 : 1, size };
  const on = (hw: boolean, cur: boolean) => (current ? cur : hw);
  const c = s.offloads;
  const v4 = (ip: boolean, tcp: boolean, udp: boolean) => (ip || tcp || udp ? NdisCsumCap.IP4OPT : 0) | (tcp ? NdisCsumCap.TCP4OPT | NdisCsumCap.TCP4 : 0) | (udp ? NdisCsumCap.UDP4 : 0) | (ip ? NdisCsumCap.IP4 : 0);
  o.csum = {
    ip4_txenc: NDIS_OFFLOAD_ENCAP_8023,
    ip4_txcsum: v4(on(true, c.txIp4), on(true, c.txTcp4), on(true, c.txUdp4)),
    ip4_rxenc: NDIS_OFFLOAD_ENCAP_8023,
    ip4_rxcsum: v4(on(true, c.rxIp4), on(true, c.rxTcp4), on(true, c.rxUdp4)),
    ip6_txenc: NDIS_OFFLOAD_ENCAP_8023,
    ip6_txcsum: 0,
    ip6_rxenc: NDIS_OFFLOAD_ENCAP_8023,
    ip6_rxcsum: 0,
  };
  if (on(true, c.lso4)) {
    o.lsov2 = { ip4_encap: NDIS_OFFLOAD_ENCAP_8023, ip4_maxsz: LSO_MAX_OFFLOAD_SIZE, ip4_minsg: LSO_MIN_SEGMENT_COUNT, ip6_encap: 0, ip6_maxsz: 0, ip6_minsg: 0, ip6_opts: 0 };
  }
  void NDIS_LSOV2_CAP_IP6; // IPv6 offloads are not advertised: the guest stack has no IPv6.
  return NdisOffload.encode(o).subarray(0, size);
}

/** Answers a QUERY for `oid`. */
export function queryOid(s: AdapterState, oid: number): QueryAnswer {
  switch (oid) {
    case Oid.GEN_SUPPORTED_LIST: {
      const list = [...COMMON_OIDS, ...(s.ndisMajor >= 6 ? NDIS6_OIDS : []), ...(s.ndisMajor === 6 && s.ndisMinor >= 30 ? NDIS630_OIDS : [])];
      return ok(u32(...list));
    }
    case Oid.GEN_HARDWARE_STATUS:
      return ok(u32(0)); // NdisHardwareStatusReady
    case Oid.GEN_MEDIA_SUPPORTED:
    case Oid.GEN_MEDIA_IN_USE:
      return ok(u32(RNDIS_MEDIUM_802_3));
    case Oid.GEN_MAXIMUM_LOOKAHEAD:
    case Oid.GEN_CURRENT_LOOKAHEAD:
    case Oid.GEN_MAXIMUM_FRAME_SIZE:
      return ok(u32(s.mtu - ETH_HLEN));
    case Oid.GEN_MAXIMUM_TOTAL_SIZE:
    case Oid.GEN_TRANSMIT_BLOCK_SIZE:
    case Oid.GEN_RECEIVE_BLOCK_SIZE:
      return ok(u32(s.mtu));
    case Oid.GEN_LINK_SPEED:
      return ok(u32(Math.floor(s.linkSpeed / 100))); // units of 100 bps
    case Oid.GEN_TRANSMIT_BUFFER_SPACE:
    case Oid.GEN_RECEIVE_BUFFER_SPACE:
      return ok(u32(BUFFER_SPACE));
    case Oid.GEN_VENDOR_ID:
      return ok(u32(VENDOR_ID));
    case Oid.GEN_VENDOR_DESCRIPTION:
      return ok(new TextEncoder().encode('Microsoft Corporation'));
    case Oid.GEN_VENDOR_DRIVER_VERSION:
    case Oid.GEN_DRIVER_VERSION:
      return ok(new Uint8Array([0x00, 0x01])); // 1.0, a u16
    case Oid.GEN_CURRENT_PACKET_FILTER:
      return ok(u32(s.packetFilter));
    case Oid.GEN_MAC_OPTIONS:
      return ok(u32(MAC_OPTIONS));
    case Oid.GEN_MEDIA_CONNECT_STATUS:
      return ok(u32(s.linkUp ? RNDIS_MEDIA_STATE_CONNECTED : RNDIS_MEDIA_STATE_DISCONNECTED));
    case Oid.GEN_MAXIMUM_SEND_PACKETS:
      return ok(u32(0xffffffff));
    case Oid.GEN_FRIENDLY_NAME: {
      // UTF-16LE with its terminator; Linux ignores Hyper-V's default, "Network Adapter".
      const name = s.friendlyName + '\0';
      const b = new Uint8Array(name.length * 2);
      for (let i = 0; i < name.length; i++) new DataView(b.buffer).setUint16(2 * i, name.charCodeAt(i), true);
      return ok(b);
    }
    case Oid.P802_3_PERMANENT_ADDRESS:
      return ok(s.permanentMac.slice());
    case Oid.P802_3_CURRENT_ADDRESS:
      return ok(s.currentMac.slice());
    case Oid.P802_3_MAXIMUM_LIST_SIZE:
      return ok(u32(0));
    case Oid.TCP_OFFLOAD_HARDWARE_CAPABILITIES:
      return ok(ndisOffload(s, false));
    case Oid.TCP_OFFLOAD_CURRENT_CONFIG:
      return ok(ndisOffload(s, true));
    case Oid.GEN_RECEIVE_SCALE_CAPABILITIES: {
      const cap = NdisRecvScaleCap.encode({
        hdr: { type: NdisObjectType.RSS_CAPABILITIES, rev: NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2, size: NdisRecvScaleCap.size },
        cap_flag: NdisRssCaps.HASH_TYPE_TCP_IPV4 | NdisRssCaps.HASH_TYPE_TCP_IPV6 | NdisHash.FUNC_TOEPLITZ,
        num_int_msg: 1,
        num_recv_que: s.maxQueues,
        num_indirect_tabent: INDIRECTION_TABLE_SIZE,
      });
      return ok(cap);
    }
    default:
      return { status: RndisStatus.NOT_SUPPORTED, info: new Uint8Array(0) };
  }
}

export type SetOutcome = { status: number; rssChanged?: boolean; macChanged?: boolean };

/** Applies a SET of `oid` with information buffer `info` (already checked to lie inside the message). */
export function setOid(s: AdapterState, oid: number, info: Uint8Array): SetOutcome {
  const dv = new DataView(info.buffer, info.byteOffset, info.byteLength);
  switch (oid) {
    case Oid.GEN_CURRENT_PACKET_FILTER:
      if (info.length < 4) return { status: RndisStatus.INVALID_LENGTH };
      s.packetFilter = dv.getUint32(0, true);
      return { status: RndisStatus.SUCCESS };
    case Oid.TCP_OFFLOAD_PARAMETERS:
      return { status: setOffloads(s, info) };
    case Oid.GEN_RECEIVE_SCALE_PARAMETERS:
      return setRss(s, info);
    case Oid.GEN_RNDIS_CONFIG_PARAMETER:
      return setConfigParameter(s, info);
    case Oid.GEN_NETWORK_LAYER_ADDRESSES:
    case Oid.OFFLOAD_ENCAPSULATION:
    case Oid.P802_3_MULTICAST_LIST:
      return { status: RndisStatus.SUCCESS };
    default:
      return { status: RndisStatus.NOT_SUPPORTED };
  }
}

/** ndis_offload_params: at least revision 1's 20 bytes; missing trailing fields mean "no change" (OpenVMM). */
function setOffloads(s: AdapterState, info: Uint8Array): number {
  const REV1_SIZE = NdisOffloadParams.offsets.flags + 4;
  if (info.length < REV1_SIZE) return RndisStatus.INVALID_LENGTH;
  const full = new Uint8Array(NdisOffloadParams.size);
  full.set(info.subarray(0, Math.min(info.length, full.length)));
  const p = NdisOffloadParams.decode(full);
  if (p.header.type !== NdisObjectType.DEFAULT) return RndisStatus.INVALID_DATA;
  if (p.lso_v1 === OffloadParam.LSOV1_ENABLED) return RndisStatus.NOT_SUPPORTED;
  const o = s.offloads;
  const apply = (v: number, set: (tx: boolean, rx: boolean) => void) => {
    if (v === OffloadParam.TX_RX_DISABLED) set(false, false);
    else if (v === OffloadParam.TX_ENABLED_RX_DISABLED) set(true, false);
    else if (v === OffloadParam.RX_ENABLED_TX_DISABLED) set(false, true);
    else if (v === OffloadParam.TX_RX_ENABLED) set(true, true);
  };
  apply(p.ip_v4_csum, (tx, rx) => ((o.txIp4 = tx), (o.rxIp4 = rx)));
  apply(p.tcp_ip_v4_csum, (tx, rx) => ((o.txTcp4 = tx), (o.rxTcp4 = rx)));
  apply(p.udp_ip_v4_csum, (tx, rx) => ((o.txUdp4 = tx), (o.rxUdp4 = rx)));
  if (p.lso_v2_ipv4 === OffloadParam.LSOV2_ENABLED) o.lso4 = true;
  else if (p.lso_v2_ipv4 === OffloadParam.LSOV2_DISABLED) o.lso4 = false;
  return RndisStatus.SUCCESS;
}

/**
 * ndis_recv_scale_param, then the table and key where it says (OpenVMM oid_set_rss_parameters):
 * DISABLE_RSS or no hash function turns RSS off; otherwise a 40-byte key, a table of whole u32
 * entries naming queues the host has, both inside the buffer. A short table repeats.
 */
function setRss(s: AdapterState, info: Uint8Array): SetOutcome {
  const fixed = new Uint8Array(NdisRecvScaleParam.size);
  fixed.set(info.subarray(0, Math.min(info.length, fixed.length)));
  const p = NdisRecvScaleParam.decode(fixed);
  if (p.flag & NdisRssParamFlag.DISABLE_RSS || (p.hashinfo & NDIS_HASH_FUNCTION_MASK) === 0) {
    const was = s.rss !== undefined;
    s.rss = undefined;
    return { status: RndisStatus.SUCCESS, rssChanged: was };
  }
  if (p.hashkey_size !== NETVSC_HASH_KEYLEN) return { status: RndisStatus.INVALID_DATA };
  if (p.indirect_tabsize === 0 || p.indirect_tabsize % 4 !== 0) return { status: RndisStatus.INVALID_DATA };
  if (p.hashkey_offset > info.length || info.length - p.hashkey_offset < NETVSC_HASH_KEYLEN) return { status: RndisStatus.INVALID_DATA };
  const entries = Math.min(p.indirect_tabsize / 4, INDIRECTION_TABLE_SIZE);
  if (p.indirect_taboffset > info.length || info.length - p.indirect_taboffset < 4 * entries) return { status: RndisStatus.INVALID_DATA };
  const dv = new DataView(info.buffer, info.byteOffset, info.byteLength);
  const given: number[] = [];
  for (let i = 0; i < entries; i++) {
    const q = dv.getUint32(p.indirect_taboffset + 4 * i, true);
    if (q >= s.maxQueues) return { status: RndisStatus.INVALID_DATA };
    given.push(q);
  }
  const table = new Uint16Array(INDIRECTION_TABLE_SIZE);
  for (let i = 0; i < table.length; i++) table[i] = given[i % given.length]!;
  s.rss = { key: info.slice(p.hashkey_offset, p.hashkey_offset + NETVSC_HASH_KEYLEN), table };
  return { status: RndisStatus.SUCCESS, rssChanged: true };
}

/**
 * A configuration parameter (rndis_config_parameter_info, then the UTF-16 name and value at their
 * offsets): Linux sets "NetworkAddress" to twelve hex digits to change the MAC (rndis_filter_set_device_mac).
 */
function setConfigParameter(s: AdapterState, info: Uint8Array): SetOutcome {
  if (info.length < RndisConfigParameterInfo.size) return { status: RndisStatus.INVALID_LENGTH };
  const c = RndisConfigParameterInfo.decode(info);
  const text = (off: number, len: number): string | undefined => {
    if (len > 255 || len % 2 !== 0 || off > info.length || info.length - off < len) return undefined;
    let out = '';
    for (let i = 0; i < len; i += 2) out += String.fromCharCode(info[off + i]! | (info[off + i + 1]! << 8));
    return out;
  };
  const name = text(c.parameter_name_offset, c.parameter_name_length);
  const value = text(c.parameter_value_offset, c.parameter_value_length);
  if (name === undefined || value === undefined) return { status: RndisStatus.INVALID_DATA };
  if (name !== 'NetworkAddress') return { status: RndisStatus.NOT_SUPPORTED };
  if (c.parameter_type !== RNDIS_CONFIG_PARAM_TYPE_STRING || !/^[0-9a-fA-F]{12}$/.test(value)) return { status: RndisStatus.INVALID_DATA };
  s.currentMac = new Uint8Array(6).map((_, i) => parseInt(value.slice(2 * i, 2 * i + 2), 16));
  return { status: RndisStatus.SUCCESS, macChanged: true };
}

/** For logs: "00:15:5d:…". */
export const adapterMac = (s: AdapterState): string => macString(s.currentMac);
