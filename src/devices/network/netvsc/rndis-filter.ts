// The guest's RNDIS device (drivers/net/hyperv/rndis_filter.c): requests with their ids
// (INITIALIZE, QUERY, SET, HALT), matching responses to the request that waits, the checks
// Linux makes on each response, and the queries and sets of device set-up: MTU, MAC, friendly
// name, offloads, link state and speed, RSS capabilities and parameters, the packet filter.
import { rndisBody, rndisControl, rndisHeader, rndisInfo, RndisError } from '../rndis.js';
import {
  NDIS_OFFLOAD_ENCAP_8023,
  NDIS_OFFLOAD_PARAMETERS_REVISION_1,
  NDIS_OFFLOAD_PARAMETERS_REVISION_2,
  NDIS_OFFLOAD_PARAMETERS_REVISION_3,
  NDIS_OFFLOAD_SIZE,
  NDIS_OFFLOAD_SIZE_6_0,
  NDIS_OFFLOAD_SIZE_6_1,
  NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2,
  NDIS_RECEIVE_SCALE_PARAMETERS_REVISION_2,
  NDIS_TXCSUM_ALL_TCP4,
  NdisCsumCap,
  NdisHash,
  NdisObjectType,
  NdisOffload,
  NdisOffloadParams,
  NdisRecvScaleCap,
  NdisRecvScaleParam,
  NdisRssParamFlag,
  OffloadParam,
  VERSION_4_OFFLOAD_SIZE,
} from '../wire/ndis.js';
import { NETVSC_HASH_KEYLEN, NvspVersion } from '../wire/nvsp.js';
import {
  NdisPacketType,
  Oid,
  RNDIS_EXT_LEN,
  RNDIS_HEADER_SIZE,
  RNDIS_MAJOR_VERSION,
  RNDIS_MINOR_VERSION,
  RndisHaltRequest,
  RndisInitializeComplete,
  RndisInitializeRequest,
  RndisMessage,
  RndisMsg,
  RndisQueryComplete,
  RndisQueryRequest,
  RndisSetComplete,
  RndisSetRequest,
  RndisStatus,
} from '../wire/rndis.js';

/** netvsc_hash_key: the default Toeplitz key (Microsoft's RSS verification key). */
export const NETVSC_HASH_KEY = new Uint8Array([
  0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
  0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
]);

/** The device states of enum rndis_device_state. */
export type RndisDeviceState = 'uninitialized' | 'initializing' | 'initialized' | 'data-initialized';

/** What the filter needs from netvsc: sending a control message, waiting, logging. */
export interface RndisTransport {
  /** rndis_filter_send_request: the message as a page buffer; false if it could not be sent. */
  sendRequest(msg: Uint8Array): boolean;
  /** wait_for_completion with the model's bound; false on timeout. */
  wait(done: () => boolean): boolean;
  /** netdev_err / netdev_warn / netdev_dbg on the interface. */
  log(level: 'err' | 'warn' | 'info' | 'debug', text: string): void;
}

interface Request {
  readonly id: number;
  readonly type: number;
  readonly oid: number;
  response: Uint8Array | undefined;
}

export interface QueryResult {
  readonly status: number;
  readonly info: Uint8Array;
}

export class RndisDevice {
  state: RndisDeviceState = 'uninitialized';
  /** new_req_id: the last id given; the first request is 1 (atomic_inc_return). */
  private lastId = 0;
  private readonly requests = new Map<number, Request>();
  /** netvsc's max_pkt and pkt_align, from INITIALIZE's completion. */
  maxPkt = 8;
  pktAlign = 8;
  /** The packet filter last set. */
  filter = 0;
  /** rndis_device.link_state: true means the link is down (as Linux keeps it). */
  linkDown = false;
  hwMac = new Uint8Array(6);
  rssKey = new Uint8Array(NETVSC_HASH_KEYLEN);

  constructor(private readonly t: RndisTransport) {}

  private request(type: number, body: Uint8Array, oid = 0): Request | undefined {
    const id = ++this.lastId >>> 0;
    const req: Request = { id, type, oid, response: undefined };
    // Every request/response has the request id first (rndis_filter_receive_response).
    new DataView(body.buffer, body.byteOffset).setUint32(RNDIS_HEADER_SIZE, id, true);
    this.requests.set(id, req);
    if (!this.t.sendRequest(body)) {
      this.requests.delete(id);
      return undefined;
    }
    const got = this.t.wait(() => req.response !== undefined);
    this.requests.delete(id);
    if (!got) this.t.log('err', `no response to RNDIS request ${id} (type 0x${type.toString(16)}) from the host (Linux would wait forever)`);
    return got ? req : undefined;
  }

  /**
   * rndis_filter_receive_response: matches a completion to its request by id. A response longer
   * than the request's buffer (rndis_message and RNDIS_EXT_LEN) is replaced by BUFFER_OVERFLOW.
   */
  onResponse(msg: Uint8Array): void {
    const h = rndisHeader(msg);
    if (this.state === 'uninitialized') return this.t.log('err', 'got rndis message uninitialized');
    if (h.length - RNDIS_HEADER_SIZE < 4) return this.t.log('err', `rndis msg_len too small: ${h.length}`);
    const id = new DataView(msg.buffer, msg.byteOffset).getUint32(RNDIS_HEADER_SIZE, true);
    const req = this.requests.get(id);
    if (!req) return this.t.log('err', `no rndis request found for this response (id 0x${id.toString(16)} res type 0x${h.type.toString(16)})`);
    if (h.length <= RndisMessage.size + RNDIS_EXT_LEN) {
      req.response = msg.slice(0, h.length);
      if (req.type === RndisMsg.QUERY && req.oid === Oid.GEN_MEDIA_CONNECT_STATUS) this.setLinkState(req.response);
    } else {
      this.t.log('err', `rndis response buffer overflow detected (size ${h.length} max ${RndisMessage.size})`);
      const r = new Uint8Array(RndisMessage.size);
      r.set(msg.subarray(0, RNDIS_HEADER_SIZE + 4));
      new DataView(r.buffer).setUint32(RNDIS_HEADER_SIZE + 4, RndisStatus.BUFFER_OVERFLOW, true);
      new DataView(r.buffer).setUint32(4, RndisMessage.size, true);
      req.response = r;
    }
  }

  /** rndis_set_link_state: from the media connect status query, when its answer is valid. */
  private setLinkState(resp: Uint8Array): void {
    try {
      const len = resp.length;
      const c = rndisBody(RndisQueryComplete, resp, len);
      if (c.status !== RndisStatus.SUCCESS) return;
      const info = rndisInfo(resp, len, RndisQueryComplete.size, c.info_buf_offset, c.info_buflen, 'info_buf');
      if (info.length < 4) return;
      this.linkDown = new DataView(info.buffer, info.byteOffset).getUint32(0, true) !== 0;
    } catch (e) {
      if (!(e instanceof RndisError)) throw e;
    }
  }

  /** rndis_filter_init_device: RNDIS 1.0, 16 KiB transfers; success makes the device initialized. */
  init(): boolean {
    const msg = rndisControl(RndisMsg.INIT, RndisInitializeRequest, { req_id: 0, major_ver: RNDIS_MAJOR_VERSION, minor_ver: RNDIS_MINOR_VERSION, max_xfer_size: 0x4000 });
    this.state = 'initializing';
    const r = this.request(RndisMsg.INIT, msg);
    if (!r) {
      this.state = 'uninitialized';
      return false;
    }
    try {
      const c = rndisBody(RndisInitializeComplete, r.response!, r.response!.length);
      if (c.status !== RndisStatus.SUCCESS) throw new RndisError('status', `0x${c.status.toString(16)}`);
      this.state = 'initialized';
      this.maxPkt = c.max_pkt_per_msg;
      this.pktAlign = 2 ** Math.min(c.pkt_alignment_factor, 31);
      return true;
    } catch (e) {
      if (!(e instanceof RndisError)) throw e;
      this.state = 'uninitialized';
      return false;
    }
  }

  /**
   * rndis_filter_query_device: the answer's information buffer, if the completion is long enough,
   * its offset and length lie inside it, and it fits `maxSize` bytes; undefined otherwise.
   */
  query(oid: number, maxSize: number, request: Uint8Array = new Uint8Array(0)): Uint8Array | undefined {
    const msg = rndisControl(RndisMsg.QUERY, RndisQueryRequest, { req_id: 0, oid, info_buflen: request.length, info_buf_offset: RndisQueryRequest.size, dev_vc_handle: 0 }, request);
    const r = this.request(RndisMsg.QUERY, msg, oid);
    if (!r) return undefined;
    const resp = r.response!;
    const len = new DataView(resp.buffer, resp.byteOffset).getUint32(4, true);
    if (len - RNDIS_HEADER_SIZE < RndisQueryComplete.size) return undefined;
    const c = RndisQueryComplete.decode(resp, RNDIS_HEADER_SIZE);
    if (c.info_buflen > maxSize || c.info_buf_offset < RndisQueryComplete.size || len - RNDIS_HEADER_SIZE < c.info_buf_offset || len - RNDIS_HEADER_SIZE - c.info_buf_offset < c.info_buflen) return undefined;
    return resp.slice(RNDIS_HEADER_SIZE + c.info_buf_offset, RNDIS_HEADER_SIZE + c.info_buf_offset + c.info_buflen);
  }

  /** A u32 answer, or undefined. */
  queryU32(oid: number): number | undefined {
    const v = this.query(oid, 4);
    return v && v.length === 4 ? new DataView(v.buffer).getUint32(0, true) : undefined;
  }

  /** SET of `oid` with `info`; the completion's status (undefined when none came). */
  set(oid: number, info: Uint8Array): number | undefined {
    const msg = rndisControl(RndisMsg.SET, RndisSetRequest, { req_id: 0, oid, info_buflen: info.length, info_buf_offset: RndisSetRequest.size, dev_vc_handle: 0 }, info);
    const r = this.request(RndisMsg.SET, msg, oid);
    if (!r) return undefined;
    try {
      return rndisBody(RndisSetComplete, r.response!, r.response!.length).status;
    } catch (e) {
      if (!(e instanceof RndisError)) throw e;
      return undefined;
    }
  }

  /** rndis_filter_query_device_mac. */
  queryMac(): boolean {
    const v = this.query(Oid.P802_3_PERMANENT_ADDRESS, 6);
    if (!v) return false;
    this.hwMac = new Uint8Array(6);
    this.hwMac.set(v.subarray(0, 6));
    return true;
  }

  /** rndis_filter_set_packet_filter: nothing is sent when the filter does not change. */
  setPacketFilter(filter: number): boolean {
    if (this.filter === filter) return true;
    const info = new Uint8Array(4);
    new DataView(info.buffer).setUint32(0, filter, true);
    const status = this.set(Oid.GEN_CURRENT_PACKET_FILTER, info);
    if (status === undefined) return false;
    this.filter = filter;
    return true;
  }

  /** rndis_filter_open_device: broadcast, all multicast and directed frames. */
  open(): boolean {
    if (this.state !== 'initialized') return true;
    if (!this.setPacketFilter(NdisPacketType.BROADCAST | NdisPacketType.ALL_MULTICAST | NdisPacketType.DIRECTED)) return false;
    this.state = 'data-initialized';
    return true;
  }

  /** rndis_filter_close_device: the filter goes to 0. */
  close(): boolean {
    if (this.state !== 'data-initialized') return true;
    if (!this.setPacketFilter(0)) return false;
    this.state = 'initialized';
    return true;
  }

  /** rndis_filter_halt_device: HALT, which has no response; the device is uninitialized. */
  halt(): void {
    const msg = rndisControl(RndisMsg.HALT, RndisHaltRequest, { req_id: ++this.lastId >>> 0 });
    this.t.sendRequest(msg);
    this.state = 'uninitialized';
  }

  /** rndis_query_hwcaps: the revision and size asked for follow the NVSP version. */
  queryHwCaps(nvspVersion: number): ReturnType<typeof NdisOffload.decode> | undefined {
    const [rev, size] = nvspVersion >= NvspVersion.V5 ? [NDIS_OFFLOAD_PARAMETERS_REVISION_3, NDIS_OFFLOAD_SIZE] : nvspVersion >= NvspVersion.V4 ? [NDIS_OFFLOAD_PARAMETERS_REVISION_2, NDIS_OFFLOAD_SIZE_6_1] : [NDIS_OFFLOAD_PARAMETERS_REVISION_1, NDIS_OFFLOAD_SIZE_6_0];
    const req = new Uint8Array(size);
    NdisOffload.fields.header.encode({ type: NdisObjectType.OFFLOAD, revision: rev, size }, req, 0);
    const v = this.query(Oid.TCP_OFFLOAD_HARDWARE_CAPABILITIES, NdisOffload.size, req);
    if (!v) return undefined;
    const full = new Uint8Array(NdisOffload.size);
    full.set(v);
    const caps = NdisOffload.decode(full);
    if (caps.header.type !== NdisObjectType.OFFLOAD) return void this.t.log('warn', `invalid NDIS objtype 0x${caps.header.type.toString(16)}`), undefined;
    if (caps.header.revision < NDIS_OFFLOAD_PARAMETERS_REVISION_1) return void this.t.log('warn', `invalid NDIS objrev ${caps.header.revision.toString(16)}`), undefined;
    if (caps.header.size > v.length || caps.header.size < NDIS_OFFLOAD_SIZE_6_0) return void this.t.log('warn', `invalid NDIS objsize ${caps.header.size}, data size ${v.length}`), undefined;
    return caps;
  }

  /**
   * rndis_netdev_set_hwcaps: from the host's capabilities, what to turn on (IP header checksums
   * stay off: Linux always does them itself), then OID_TCP_OFFLOAD_PARAMETERS. NVSP 4 and older
   * get the 22-byte revision without UDP checksums.
   */
  setHwCaps(nvspVersion: number): { txCsumTcp4: boolean; txCsumUdp4: boolean; tso4: boolean; gsoMaxSize: number } | undefined {
    const caps = this.queryHwCaps(nvspVersion);
    if (!caps) return undefined;
    const p = NdisOffloadParams.zero();
    p.ip_v4_csum = OffloadParam.TX_RX_DISABLED;
    const out = { txCsumTcp4: false, txCsumUdp4: false, tso4: false, gsoMaxSize: 65536 };
    if ((caps.csum.ip4_txcsum & NDIS_TXCSUM_ALL_TCP4) === NDIS_TXCSUM_ALL_TCP4) {
      out.txCsumTcp4 = true;
      p.tcp_ip_v4_csum = OffloadParam.TX_RX_ENABLED;
      if (caps.lsov2.ip4_encap & NDIS_OFFLOAD_ENCAP_8023) {
        p.lso_v2_ipv4 = OffloadParam.LSOV2_ENABLED;
        out.tso4 = true;
        out.gsoMaxSize = Math.min(out.gsoMaxSize, caps.lsov2.ip4_maxsz);
      }
      if (caps.csum.ip4_txcsum & NdisCsumCap.UDP4) {
        p.udp_ip_v4_csum = OffloadParam.TX_RX_ENABLED;
        out.txCsumUdp4 = true;
      }
    }
    let size = NdisOffloadParams.size;
    if (nvspVersion <= NvspVersion.V4) {
      size = VERSION_4_OFFLOAD_SIZE;
      p.udp_ip_v4_csum = 0;
      p.udp_ip_v6_csum = 0;
      out.txCsumUdp4 = false;
    }
    p.header = { type: NdisObjectType.DEFAULT, revision: NDIS_OFFLOAD_PARAMETERS_REVISION_3, size };
    const status = this.set(Oid.TCP_OFFLOAD_PARAMETERS, NdisOffloadParams.encode(p).subarray(0, size));
    if (status !== RndisStatus.SUCCESS) {
      this.t.log('err', `Fail to set offload on host side:0x${(status ?? 0).toString(16)}`);
      return undefined;
    }
    return out;
  }

  /** OID_GEN_RECEIVE_SCALE_CAPABILITIES with its header filled (rndis_filter_device_add's vRSS set-up). */
  queryRssCaps(): ReturnType<typeof NdisRecvScaleCap.decode> | undefined {
    const req = NdisRecvScaleCap.encode({ hdr: { type: NdisObjectType.RSS_CAPABILITIES, rev: NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2, size: NdisRecvScaleCap.size }, cap_flag: 0, num_int_msg: 0, num_recv_que: 0, num_indirect_tabent: 0 });
    const v = this.query(Oid.GEN_RECEIVE_SCALE_CAPABILITIES, NdisRecvScaleCap.size, req);
    if (!v) return undefined;
    const full = new Uint8Array(NdisRecvScaleCap.size);
    full.set(v);
    return NdisRecvScaleCap.decode(full);
  }

  /**
   * rndis_set_rss_param_msg: the parameters, then the table (u32 entries) and the key right
   * after them. rndis_filter_set_rss_param sends it twice: disabled first, then enabled.
   */
  setRssParams(table: readonly number[], key: Uint8Array, flag: number): boolean {
    const tabBytes = 4 * table.length;
    const info = new Uint8Array(NdisRecvScaleParam.size + tabBytes + NETVSC_HASH_KEYLEN);
    NdisRecvScaleParam.encode(
      {
        hdr: { type: NdisObjectType.RSS_PARAMETERS, rev: NDIS_RECEIVE_SCALE_PARAMETERS_REVISION_2, size: NdisRecvScaleParam.size },
        flag,
        base_cpu_number: 0,
        hashinfo: NdisHash.FUNC_TOEPLITZ | NdisHash.IPV4 | NdisHash.TCP_IPV4 | NdisHash.IPV6 | NdisHash.TCP_IPV6,
        indirect_tabsize: tabBytes,
        pad1: 0,
        indirect_taboffset: NdisRecvScaleParam.size,
        hashkey_size: NETVSC_HASH_KEYLEN,
        pad2: 0,
        hashkey_offset: NdisRecvScaleParam.size + tabBytes,
        processor_masks_offset: 0,
        num_processor_masks: 0,
        processor_masks_entry_size: 0,
      },
      info,
    );
    const dv = new DataView(info.buffer);
    table.forEach((q, i) => dv.setUint32(NdisRecvScaleParam.size + 4 * i, q, true));
    info.set(key, NdisRecvScaleParam.size + tabBytes);
    const status = this.set(Oid.GEN_RECEIVE_SCALE_PARAMETERS, info);
    if (status === RndisStatus.SUCCESS) {
      if (!(flag & NdisRssParamFlag.DISABLE_RSS) && !(flag & NdisRssParamFlag.HASH_KEY_UNCHANGED)) this.rssKey = key.slice();
      return true;
    }
    this.t.log('err', `Fail to set RSS parameters:0x${(status ?? 0).toString(16)}`);
    return false;
  }

  /** rndis_filter_set_rss_param: disable, then enable with the table and key. */
  setRss(table: readonly number[], key: Uint8Array): boolean {
    this.setRssParams(table, key, NdisRssParamFlag.DISABLE_RSS);
    return this.setRssParams(table, key, 0);
  }

  /** rndis_get_friendly_name: the host's name for the NIC, unless it is Hyper-V's default. */
  friendlyName(): string | undefined {
    const v = this.query(Oid.GEN_FRIENDLY_NAME, 512);
    if (!v || v.length === 0) return undefined;
    let s = '';
    for (let i = 0; i + 1 < v.length; i += 2) {
      const c = v[i]! | (v[i + 1]! << 8);
      if (c === 0) break;
      s += String.fromCharCode(c);
    }
    return s === 'Network Adapter' ? undefined : s;
  }
}
