// The guest's NIC driver, as Linux 6.1's hv_netvsc does it (drivers/net/hyperv/netvsc.c,
// netvsc_drv.c, rndis_filter.c): probe opens the channel, negotiates NVSP (6.1 down to 1), sends
// the NDIS version and configuration, shares the receive and send buffers, initialises the RNDIS
// device, reads the MAC, offloads, link and RSS capabilities, registers ethN and asks for
// sub-channels. Frames go out through a send-buffer section (copied) or as page buffers (large
// ones); frames come in as transfer-page packets naming receive-buffer sections, each range
// checked, copied and completed. Link indications, the send table and MTU changes are handled as
// Linux does.
import type { GuestChannel } from '../../../vmbus/client/channel.js';
import { VmbusError } from '../../../vmbus/client/errors.js';
import { vmbusRingSize } from '../../../vmbus/client/ring-size.js';
import type { ClientTransport } from '../../../vmbus/client/transport.js';
import { PacketType, VmbusVersion } from '../../../vmbus/wire/constants.js';
import { PacketError, parsePacket, TransferPageHeader, type PacketHead, type ParsedPacket } from '../../../vmbus/wire/packets.js';
import type { GuestServices } from '../../device.js';
import type { GuestMemory } from '../../../memory/guest-memory.js';
import { WordCopier, WordView } from '../../../memory/word-copy.js';
import { Eth, EtherType, ETH_DATA_LEN, ETH_HLEN, Ip4, IpProto, isBroadcast, isMulticast, be16, macString } from '../ether.js';
import { nvspBody, nvspMessage, nvspRndisPacket, nvspRndisPacketComplete, nvspType, nvspU32, nvspU32At, writeNvspRndisPacket } from '../nvsp.js';
import { FieldReader, ppiBytes, readPacketWords, readRndisPacketGuest, rndisMessageLength, rndisMessageType, RndisError, writeRndisPacketHeader, writeRndisPacketHeaderWords, type PacketWords, type PpiValue, type RndisPacketSink } from '../rndis.js';
import { CsumInfoReceive, CsumInfoTransmit, LsoV2Transmit, NDIS_TCP_LARGE_SEND_OFFLOAD_IPV4, NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE, RNDIS_AND_PPI_SIZE } from '../wire/ndis.js';
import {
  ITAB_NUM,
  ITAB_NUM_MAX,
  NDIS_VERSION_6_1,
  NDIS_VERSION_6_30,
  NETVSC_DEFAULT_RX,
  NETVSC_DEFAULT_TX,
  NETVSC_INVALID_INDEX,
  NETVSC_MAX_PKT_SIZE,
  NETVSC_MTU,
  NETVSC_MTU_MIN,
  NETVSC_RECEIVE_BUFFER_ID,
  NETVSC_RECEIVE_BUFFER_SIZE_LEGACY,
  NETVSC_RECV_SECTION_SIZE,
  NETVSC_SEND_BUFFER_ID,
  NETVSC_SEND_SECTION_SIZE,
  LINUX_NVSP_VERSIONS,
  NVSP_SUBCHANNEL_ALLOCATE,
  Nvsp1RevokeReceiveBuffer,
  Nvsp1RevokeSendBuffer,
  Nvsp1SendNdisVersion,
  Nvsp1SendReceiveBuffer,
  Nvsp1SendReceiveBufferComplete,
  Nvsp1SendRndisPacketComplete,
  Nvsp1SendSendBuffer,
  Nvsp1SendSendBufferComplete,
  Nvsp2SendNdisConfig,
  Nvsp4SendVfAssociation,
  Nvsp5SendIndirectTable,
  Nvsp5SubchannelComplete,
  Nvsp5SubchannelRequest,
  NvspMessageInit,
  NvspMessageInitComplete,
  NvspMessageHeader,
  NvspMsgType,
  NvspRecvCompletion,
  NvspStatus,
  NvspVersion,
  RndisChannelType,
  VRSS_CHANNEL_DEFAULT,
  VRSS_CHANNEL_MAX,
  VRSS_SEND_TAB_SIZE,
  netvscRqstorSize,
  nvspVersionName,
} from '../wire/nvsp.js';
import { PpiType, RndisMsg, RndisPacket, RndisStatus, RndisIndicateStatus, RndisPktinfoId, RNDIS_HEADER_SIZE, RNDIS_PKTINFO_1ST_FRAG, RNDIS_PKTINFO_ID, RNDIS_PKTINFO_LAST_FRAG, RNDIS_PKTINFO_SUBALLOC } from '../wire/rndis.js';
import { NetDevice, NetDeviceError, type NetDeviceOps, type TxMeta, type XmitResult } from './netdev.js';
import { NETVSC_HASH_KEY, RndisDevice } from './rndis-filter.js';
import { CopyArena } from '../copy-arena.js';
import { concatBytes, sliceOf } from '../../../memory/typed-arrays.js';

/** netvsc_ring_bytes: VMBUS_RING_SIZE(ring_size * 4096) with the module's default of 128 pages. */
export const netvscRingBytes = (pageSize: number): number => vmbusRingSize(128 * 4096, pageSize);
/** LINKCHANGE_INT: link events are applied at most every 2 s (netvsc_link_change). */
export const LINKCHANGE_INT_NS = 2e9;
/** NAPI_POLL_WEIGHT: completions are flushed when more than this many wait (enq_receive_complete). */
const NAPI_POLL_WEIGHT = 64;
/** How long the model waits for a host answer Linux would wait for forever. */
const WAIT_NS = 10e9;
/** Guest pages for large frames sent as page buffers (the skbs Linux would point at): 16 of 64 KiB. */
const TX_BOUNCE_SLOTS = 16;
const TX_BOUNCE_SLOT_BYTES = 65536 + 4096;

export interface NetvscEnv {
  readonly services: GuestServices;
  readonly transport: ClientTransport;
  /** register_netdevice: the next free ethN name. */
  allocName(): string;
  /** The interface is registered (and unregistered when it goes). */
  registered(dev: NetDevice, nic: Netvsc): void;
}

/** A queue of netvsc_channel: its VMBus channel, the receive completions waiting, counters. */
interface NvChannel {
  readonly index: number;
  readonly ch: GuestChannel;
  /** multi_recv_comp: trans ids and statuses to complete (the ring of recv_comp_data). */
  readonly completions: { tid: bigint; status: number }[];
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** RSC fragments of the frame being assembled (rsc.data/len, rsc.cnt). */
  rsc: Uint8Array[];
  rscPpi: { csum: number | undefined; hash: number | undefined };
  /** The multi-send data (nvchan->msd): a send section being filled with packets while more follow. */
  msd: Msd | undefined;
  /** The channel's packet handler for receiveInPlace (made once). */
  onPacket: (bytes: Uint8Array, head: PacketHead) => void;
  /**
   * nvchan->recv_buf: each received RNDIS message is copied here (one receive section's worth)
   * before it is read, so that the host cannot change what was checked (netvsc_receive).
   */
  recvCopy: Uint8Array;
  recvCopy32: Uint32Array;
  /** Where the current message's frame lies: the private copy (from 0) or the receive buffer in guest memory (from dataBase). */
  data: Uint8Array;
  dataBase: number;
  /** What the driver tells the stack of each frame it hands up (one object, rewritten per frame). */
  readonly meta: { queue: number; checksumVerified: boolean; hash: number | undefined };
  /** What rndis_filter_receive_data read of the current data packet (reused for each). */
  readonly rx: RxPacket;
  /** What the one-pass reading of the usual message found (reused for each). */
  readonly fast: PacketWords;
}

/**
 * rndis_filter_receive_data's reading of one data packet: the frame's place and the PPIs netvsc
 * acts on (checksum, hash, RSC fragment flags), filled in place for each packet.
 */
class RxPacket implements RndisPacketSink {
  dataOffset = 0;
  dataLength = 0;
  ppiError: RndisError | undefined = undefined;
  csum: number | undefined = undefined;
  hash: number | undefined = undefined;
  rscFlag: number | undefined = undefined;
  /** Reads the packet in buf[0..len) (RndisError if it is refused). */
  read(buf: Uint8Array, len: number): void {
    this.csum = undefined;
    this.hash = undefined;
    this.rscFlag = undefined;
    readRndisPacketGuest(buf, len, this, this.fields);
  }
  /** Reads the fields of the channel's private copy. */
  readonly fields = new FieldReader();
  /** rndis_get_ppi for the types netvsc asks for: each value is (at least) a u32. */
  ppi(type: number, internal: boolean, buf: Uint8Array, valueAt: number, valueEnd: number): void {
    if (valueEnd - valueAt < 4) return;
    if (!internal && type === PpiType.TCPIP_CHKSUM) this.csum = u32At(buf, valueAt);
    else if (!internal && type === PpiType.NBL_HASH_VALUE) this.hash = u32At(buf, valueAt);
    else if (internal && type === RNDIS_PKTINFO_ID) this.rscFlag = buf[valueAt + RndisPktinfoId.offsets.flag];
  }
}

/** A transfer-page packet's ranges when it has none. */
const NO_RANGES = new Uint32Array(0);

/** The PPI list of a frame that needs none (never added to). */
const NO_PPIS: PpiValue[] = [];
Object.freeze(NO_PPIS);

const u32At = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

/** The receive-checksum verdict bits netvsc_recv_callback tests, from the declared bitfield (no BigInt per frame). */
const RX_CSUM_OK = Number(CsumInfoReceive.fields.receive.encode({ tcp_checksum_succeeded: true })) | Number(CsumInfoReceive.fields.receive.encode({ udp_checksum_succeeded: true }));

/** Messages up to this many bytes are copied out of guest memory word by word (larger ones in one move). */
const WORD_COPY_MAX = 256;

/**
 * Copies bytes [from, to) of the message at guest address `gpa` into dst[from, to) (whose words
 * `dst32` are): small, word-aligned runs as 32-bit words (a view of shared memory per copy costs
 * more than the copy), others in one move.
 */
function copyIn(dst: Uint8Array, dst32: Uint32Array, mem: GuestMemory, mem32: Uint32Array<ArrayBufferLike>, gpa: number, from: number, to: number): void {
  if (to - from <= WORD_COPY_MAX && ((gpa | from) & 3) === 0) {
    const end = from + ((to - from) & ~3);
    const w = (gpa + from) >>> 2;
    for (let i = from >>> 2, j = w; i < end >>> 2; i++, j++) dst32[i] = mem32[j]!;
    const bytes = mem.bytes;
    for (let i = end; i < to; i++) dst[i] = bytes[gpa + i]!;
    return;
  }
  dst.set(new Uint8Array(mem.buffer, gpa + from, to - from), from);
}

/**
 * How much of a received message (`len` bytes, its first `copied` already in `buf`) the driver
 * reads besides a data packet's frame: a data packet's header and PPIs; all of anything else, and
 * of a packet whose PPI fields it cannot take at face value (the reader then judges them).
 */
function headBytes(buf: Uint8Array, copied: number, len: number, r: FieldReader): number {
  if (copied < PACKET_HEAD || rndisMessageType(buf, 0, r) !== RndisMsg.PACKET) return len;
  const ppiOffset = r.u32(RNDIS_HEADER_SIZE + RndisPacket.offsets.per_pkt_info_offset);
  if (ppiOffset === 0) return PACKET_HEAD;
  const end = RNDIS_HEADER_SIZE + ppiOffset + r.u32(RNDIS_HEADER_SIZE + RndisPacket.offsets.per_pkt_info_len);
  return end >= PACKET_HEAD && end <= len ? end : len;
}

/** A data packet's fixed part: the RNDIS header and rndis_packet. */
const PACKET_HEAD = RNDIS_HEADER_SIZE + RndisPacket.size;

/** A send section holding `count` RNDIS packets (each padded to pkt_align) not yet sent. */
interface Msd {
  readonly section: number;
  len: number;
  count: number;
  bytes: number;
}

/** What a transmit completion frees: a send section, a bounce slot, counters. */
interface TxContext {
  readonly q: number;
  readonly section: number;
  readonly bounce: number;
  readonly bytes: number;
  /** Frames the send carries (several when batched in one section); 1 when absent. */
  readonly packets?: number;
}

/** The ethtool counters netvsc keeps (netvsc_ethtool_stats), those the model moves. */
export interface NetvscEthStats {
  txNoSpace: number;
  txTooBig: number;
  txBusy: number;
  txSendFull: number;
  rxCompBusy: number;
  stopQueue: number;
  wakeQueue: number;
}


/** The completions netvsc_send_completion hands to the waiting initialiser, in its case order, with the body each needs. */
const INIT_COMPLETIONS: readonly (readonly [number, number, string])[] = [
  [NvspMsgType.INIT_COMPLETE, NvspMessageInitComplete.size, 'nvsp_msg'],
  [NvspMsgType.SEND_RECV_BUF_COMPLETE, Nvsp1SendReceiveBufferComplete.size, 'nvsp_msg1'],
  [NvspMsgType.SEND_SEND_BUF_COMPLETE, Nvsp1SendSendBufferComplete.size, 'nvsp_msg1'],
  [NvspMsgType.SUBCHANNEL, Nvsp5SubchannelComplete.size, 'nvsp_msg5'],
];
/**
 * One NIC: the netvsc_device (channels, buffers, versions) and its net_device. It lives from
 * probe to remove; the netvsc_device part is torn down and rebuilt by an MTU change.
 */
export class Netvsc implements NetDeviceOps {
  readonly netdev: NetDevice;
  nvspVersion = 0;
  /** Channels by queue index: the primary first. */
  readonly chans: NvChannel[] = [];
  numChn = 1;
  maxChn = 1;
  /** tx_table: queue per send-hash bucket, from the host's send indirection table. */
  readonly txTable = new Array<number>(VRSS_SEND_TAB_SIZE).fill(0);
  /** rx_table: the receive indirection table sent to the host. */
  rxTable: number[] = [];
  readonly ethStats: NetvscEthStats = { txNoSpace: 0, txTooBig: 0, txBusy: 0, txSendFull: 0, rxCompBusy: 0, stopQueue: 0, wakeQueue: 0 };
  /** Receive frames refused by the checks of netvsc_receive and rndis_filter, by reason. */
  readonly rxErrors = { badRange: 0, badRndis: 0, badXfer: 0 };
  rndis: RndisDevice | undefined;
  recvBuf: { gpa: number; size: number; gpadl: number; sectionSize: number; sectionCount: number } | undefined;
  /** `map` marks the sections in use; none below `lowFree` is free (a scan for the first free one starts there). */
  sendBuf: { gpa: number; size: number; gpadl: number; sectionSize: number; sectionCount: number; map: Uint8Array; lowFree: number } | undefined;
  private bounce: { gpa: number; free: number[] } | undefined;
  /**
   * Guest memory of the buffers, kept from one set-up to the next (an MTU change): Linux
   * vzallocs them again, the model's page allocator could not give a second 16 MiB run back.
   */
  private readonly memory: { recv?: { gpa: number; size: number }; send?: { gpa: number; size: number }; bounce?: number } = {};
  /** channel_init_pkt: the last NVSP completion of an init step, and whether it came. */
  private initResponse: Uint8Array | undefined;
  private destroying = false;
  private lastReconfig = -Infinity;
  private readonly linkEvents: number[] = [];
  private linkWork: { cancel(): boolean } | undefined;
  /** num_chn asked for on attach (netvsc_devinfo_get). */
  private wantChn = VRSS_CHANNEL_DEFAULT;
  private openChn = 0;

  constructor(
    readonly primary: GuestChannel,
    private readonly env: NetvscEnv,
  ) {
    this.netdev = new NetDevice('', new Uint8Array(6), primary.deviceName, this);
  }

  private get t(): ClientTransport {
    return this.env.transport;
  }

  /** netdev_err and friends: "hv_netvsc <device> eth0: …" once named. */
  log(level: 'err' | 'warn' | 'notice' | 'info' | 'debug', text: string): void {
    const name = this.netdev.name ? this.netdev.name : '(unnamed net_device) (uninitialized)';
    this.env.services.log(level, `hv_netvsc ${this.primary.deviceName} ${name}: ${text}`);
  }

  private wait(done: () => boolean): boolean {
    return this.t.waitUntil(done, WAIT_NS);
  }

  // --- Probe ----------------------------------------------------------------------------------

  /** netvsc_probe. Throws VmbusError when the device cannot be set up. */
  probe(): void {
    const dev = this.netdev;
    dev.setCarrier(false);
    this.attachDevice();
    dev.addr = this.rndis!.hwMac.slice();
    (dev as { permAddr: Uint8Array }).permAddr = this.rndis!.hwMac.slice();
    // MTU range: 68 to 1500, or 65521 from NVSP 2.
    dev.minMtu = NETVSC_MTU_MIN;
    dev.maxMtu = this.nvspVersion >= NvspVersion.V2 ? NETVSC_MTU - ETH_HLEN : ETH_DATA_LEN;
    (dev as { name: string }).name = this.env.allocName();
    this.env.registered(dev, this);
    if (this.numChn > 1) this.env.services.scheduleDelayedWork(0, () => this.subchanWork());
  }

  /** rndis_filter_device_add (with netvsc_device_add and netvsc_connect_vsp inside). */
  private attachDevice(): void {
    this.destroying = false;
    this.openChannel(this.primary, 0);
    try {
      this.connectVsp();
      const r = new RndisDevice({ sendRequest: (m) => this.sendControl(m), wait: (d) => this.wait(d), log: (l, s) => this.log(l, s) });
      this.rndis = r;
      this.maxChn = 1;
      this.numChn = 1;
      if (!r.init()) throw new VmbusError('EINVAL', 'RNDIS initialization failed');
      const mtu = r.queryU32(0x00010106 /* GEN_MAXIMUM_FRAME_SIZE */);
      if (mtu !== undefined && mtu < this.netdev.mtu) this.netdev.mtu = mtu;
      if (!r.queryMac()) throw new VmbusError('EINVAL', 'no permanent address from the host');
      const alias = r.friendlyName();
      if (alias) this.log('debug', `ifalias ${alias}`);
      const hw = r.setHwCaps(this.nvspVersion);
      if (!hw) throw new VmbusError('EINVAL', 'offload set-up failed');
      this.netdev.features = { ...this.netdev.features, txCsumTcp4: hw.txCsumTcp4, txCsumUdp4: hw.txCsumUdp4, tso4: hw.tso4, gsoMaxSize: hw.gsoMaxSize };
      r.queryU32(0x00010114 /* GEN_MEDIA_CONNECT_STATUS */);
      this.log('debug', `Device MAC ${macString(r.hwMac)} link state ${r.linkDown ? 'down' : 'up'}`);
      if (this.nvspVersion < NvspVersion.V5) return;
      const speed = r.queryU32(0x00010107 /* GEN_LINK_SPEED */);
      if (speed !== undefined) this.speedMbps = Math.floor(speed / 10000);
      const cap = r.queryRssCaps();
      if (!cap || cap.num_recv_que < 2) return;
      const tableSize = cap.num_indirect_tabent && cap.num_indirect_tabent <= ITAB_NUM_MAX ? cap.num_indirect_tabent : ITAB_NUM;
      const online = this.t.onlineCpus().length;
      this.maxChn = Math.min(VRSS_CHANNEL_MAX, Math.min(online, cap.num_recv_que));
      this.numChn = Math.min(this.maxChn, this.wantChn);
      // ethtool_rxfh_indir_default: entry i goes to queue i mod n.
      this.rxTable = Array.from({ length: tableSize }, (_, i) => i % this.numChn);
      this.openChn = 1;
      this.primary.onSubchannel = (sc) => this.openSubchannel(sc);
    } catch (e) {
      this.removeDevice();
      throw e;
    }
  }

  /** The link speed the host reported, Mb/s (ndc->speed). */
  speedMbps: number | undefined;

  private openChannel(ch: GuestChannel, index: number): void {
    const bytes = netvscRingBytes(this.t.memory.pageSize);
    ch.open({
      sendRingBytes: bytes,
      recvRingBytes: bytes,
      maxPacketSize: NETVSC_MAX_PKT_SIZE,
      requestorSize: netvscRqstorSize(bytes),
      onEvent: (c) => this.poll(index, c),
    });
    const c: NvChannel = { onPacket: (bytes, head) => this.onPacketAt(c, bytes, head), index, ch, completions: [], rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, rsc: [], rscPpi: { csum: undefined, hash: undefined }, msd: undefined, recvCopy: new Uint8Array(0), recvCopy32: new Uint32Array(0), data: new Uint8Array(0), dataBase: 0, meta: { queue: index, checksumVerified: false, hash: undefined }, rx: new RxPacket(), fast: { dataOffset: 0, dataLength: 0, csum: undefined, hash: undefined } };
    this.chans[index] = c;
  }

  /** netvsc_sc_open: a sub-channel the host offered; opened like the primary. */
  private openSubchannel(sc: GuestChannel): void {
    const i = sc.offer.subChannelIndex;
    if (i >= this.numChn || this.destroying) return;
    try {
      this.openChannel(sc, i);
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      this.log('notice', `sub channel open failed: ${e.errno}`);
    }
    this.openChn++;
  }

  /** netvsc_subchan_work and rndis_set_subchannel: ask for num_chn - 1 sub-channels, wait for them, spread RSS. */
  private subchanWork(): void {
    if (this.destroying || this.numChn < 2) return;
    if (!this.setSubchannels()) {
      this.maxChn = 1;
      this.numChn = 1;
    }
  }

  private setSubchannels(): boolean {
    const resp = this.initRequest(nvspMessage(NvspMsgType.SUBCHANNEL, Nvsp5SubchannelRequest, { op: NVSP_SUBCHANNEL_ALLOCATE, num_subchannels: this.numChn - 1 }));
    if (!resp) {
      this.log('err', 'sub channel allocate send failed');
      return false;
    }
    const c = Nvsp5SubchannelComplete.decode(resp, NvspMessageHeader.size);
    if (c.status !== NvspStatus.SUCCESS) {
      this.log('err', 'sub channel request failed');
      return false;
    }
    if (c.num_subchannels > this.numChn - 1) {
      this.log('err', 'invalid number of allocated sub channel');
      return false;
    }
    this.numChn = 1 + c.num_subchannels;
    if (!this.wait(() => this.openChn >= this.numChn)) this.log('err', `only ${this.openChn} of ${this.numChn} channels opened`);
    for (let i = 0; i < VRSS_SEND_TAB_SIZE; i++) this.txTable[i] = i % this.numChn;
    this.rndis!.setRss(this.rxTable.map((q) => q % this.numChn), NETVSC_HASH_KEY);
    this.netdev.queues = this.numChn;
    return true;
  }

  // --- NVSP set-up (netvsc.c) ---------------------------------------------------------------

  /** Sends an init-type message asking for a completion and waits for the NVSP completion. */
  private initRequest(msg: Uint8Array): Uint8Array | undefined {
    this.initResponse = undefined;
    const id = this.primary.sendRequest(msg, { init: nvspType(msg) });
    if (id === undefined) return undefined;
    if (!this.wait(() => this.initResponse !== undefined)) {
      this.log('err', `no answer to NVSP message ${nvspType(msg)} from the host (Linux would wait forever)`);
      return undefined;
    }
    return this.initResponse;
  }

  /** negotiate_nvsp_ver, then the NDIS configuration from NVSP 2 (MTU, 802.1Q, SR-IOV and teaming from 5, RSC from 6.1). */
  private negotiate(version: number): boolean {
    const resp = this.initRequest(nvspMessage(NvspMsgType.INIT, NvspMessageInit, { min_protocol_ver: version, max_protocol_ver: version }));
    if (!resp) return false;
    if (NvspMessageInitComplete.decode(resp, NvspMessageHeader.size).status !== NvspStatus.SUCCESS) return false;
    if (version === NvspVersion.V1) return true;
    const v5 = version >= NvspVersion.V5 ? 1 : 0;
    const caps = { vmq: 0, chimney: 0, sriov: v5, ieee8021q: 1, correlation_id: 0, teaming: v5, vsubnetid: 0, rsc: version >= NvspVersion.V61 ? 1 : 0, reserved: 0 };
    const cfg = nvspMessage(NvspMsgType.SEND_NDIS_CONFIG, Nvsp2SendNdisConfig, { mtu: this.netdev.mtu + ETH_HLEN, reserved: 0, capability: { _caps: caps } });
    this.primary.sendInband(cfg, VMBUS_RQST_ID_NO_RESPONSE);
    return true;
  }

  /** netvsc_connect_vsp: newest NVSP first, then the NDIS version, then the buffers. */
  private connectVsp(): void {
    let v: number | undefined;
    for (let i = LINUX_NVSP_VERSIONS.length - 1; i >= 0; i--) {
      if (this.negotiate(LINUX_NVSP_VERSIONS[i]!)) {
        v = LINUX_NVSP_VERSIONS[i]!;
        break;
      }
    }
    if (v === undefined) throw new VmbusError('EPROTO', 'no NVSP version in common with the host');
    this.nvspVersion = v;
    this.env.services.log('debug', `hv_netvsc: Negotiated NVSP version:${v.toString(16)}`);
    const ndis = v <= NvspVersion.V4 ? NDIS_VERSION_6_1 : NDIS_VERSION_6_30;
    this.primary.sendInband(nvspMessage(NvspMsgType.SEND_NDIS_VER, Nvsp1SendNdisVersion, { ndis_major_ver: ndis >>> 16, ndis_minor_ver: ndis & 0xffff }), VMBUS_RQST_ID_NO_RESPONSE);
    this.initBuf();
  }

  /** Zeroed guest pages for a buffer (vzalloc), reused when the device is set up again. */
  private buffer(which: 'recv' | 'send', size: number): number {
    const have = this.memory[which];
    if (have && have.size >= size) {
      this.t.memory.fill(have.gpa, size);
      return have.gpa;
    }
    if (have) this.t.freePages(have.gpa, have.size);
    const gpa = this.alloc(size, which === 'recv' ? 'receive' : 'send');
    this.memory[which] = { gpa, size };
    return gpa;
  }

  private alloc(size: number, what: string): number {
    try {
      return this.t.allocPages(size);
    } catch (e) {
      if (!(e instanceof Error) || e.name !== 'OutOfMemoryError') throw e;
      this.log('err', `unable to allocate ${what} buffer of size ${size}`);
      throw new VmbusError('ENOMEM', `no memory for the ${what} buffer`);
    }
  }

  /** netvsc_init_buf: the receive buffer (legacy hosts cap it), then the send buffer, each a GPADL the host acknowledges. */
  private initBuf(): void {
    const page = this.t.memory.pageSize;
    let size = Math.ceil((NETVSC_DEFAULT_RX * NETVSC_RECV_SECTION_SIZE) / page) * page;
    if (this.nvspVersion <= NvspVersion.V2) size = Math.min(size, NETVSC_RECEIVE_BUFFER_SIZE_LEGACY);
    const rgpa = this.buffer('recv', size);
    const rgpadl = this.primary.establishGpadl(rgpa, size);
    this.recvBuf = { gpa: rgpa, size, gpadl: rgpadl, sectionSize: 0, sectionCount: 0 };
    const resp = this.initRequest(nvspMessage(NvspMsgType.SEND_RECV_BUF, Nvsp1SendReceiveBuffer, { gpadl_handle: rgpadl, id: NETVSC_RECEIVE_BUFFER_ID }));
    if (!resp) throw new VmbusError('EINVAL', 'no receive buffer completion');
    const r = Nvsp1SendReceiveBufferComplete.decode(resp, NvspMessageHeader.size);
    if (r.status !== NvspStatus.SUCCESS) {
      this.log('err', `Unable to complete receive buffer initialization with NetVsp - status ${r.status}`);
      throw new VmbusError('EINVAL', 'receive buffer refused');
    }
    const sec = r.sections[0]!;
    this.log('debug', `Receive sections: ${r.num_sections} sub_allocs: size ${sec.sub_alloc_size} count: ${sec.num_sub_allocs}`);
    if (r.num_sections !== 1 || sec.offset !== 0) throw new VmbusError('EINVAL', 'receive buffer sections');
    if (sec.sub_alloc_size < NETVSC_MTU_MIN || sec.sub_alloc_size * sec.num_sub_allocs > size) {
      this.log('err', `invalid recv_section_size ${sec.sub_alloc_size}`);
      throw new VmbusError('EINVAL', 'receive section size');
    }
    this.recvBuf.sectionSize = sec.sub_alloc_size;
    this.recvBuf.sectionCount = sec.num_sub_allocs;
    const ssize = Math.ceil((NETVSC_DEFAULT_TX * NETVSC_SEND_SECTION_SIZE) / page) * page;
    const sgpa = this.buffer('send', ssize);
    const sgpadl = this.primary.establishGpadl(sgpa, ssize);
    this.sendBuf = { gpa: sgpa, size: ssize, gpadl: sgpadl, sectionSize: 0, sectionCount: 0, map: new Uint8Array(0), lowFree: 0 };
    const sresp = this.initRequest(nvspMessage(NvspMsgType.SEND_SEND_BUF, Nvsp1SendSendBuffer, { gpadl_handle: sgpadl, id: NETVSC_SEND_BUFFER_ID }));
    if (!sresp) throw new VmbusError('EINVAL', 'no send buffer completion');
    const s = Nvsp1SendSendBufferComplete.decode(sresp, NvspMessageHeader.size);
    if (s.status !== NvspStatus.SUCCESS) {
      this.log('err', `Unable to complete send buffer initialization with NetVsp - status ${s.status}`);
      throw new VmbusError('EINVAL', 'send buffer refused');
    }
    if (s.section_size < NETVSC_MTU_MIN) {
      this.log('err', `invalid send_section_size ${s.section_size}`);
      throw new VmbusError('EINVAL', 'send section size');
    }
    this.sendBuf.sectionSize = s.section_size;
    this.sendBuf.sectionCount = Math.floor(ssize / s.section_size);
    this.sendBuf.map = new Uint8Array(this.sendBuf.sectionCount);
    this.log('debug', `Send section size: ${s.section_size}, Section count:${this.sendBuf.sectionCount}`);
    this.memory.bounce ??= this.alloc(TX_BOUNCE_SLOTS * TX_BOUNCE_SLOT_BYTES, 'transmit');
    this.bounce = { gpa: this.memory.bounce, free: Array.from({ length: TX_BOUNCE_SLOTS }, (_, i) => TX_BOUNCE_SLOTS - 1 - i) };
  }

  // --- Teardown (netvsc_device_remove, rndis_filter_device_remove) -----------------------------

  /**
   * rndis_filter_device_remove: HALT, then revoke the buffers, close the channel, tear the GPADLs
   * down (after the close from VMBus 4.0). `final` (the driver's remove) also frees the memory.
   */
  removeDevice(final = false): void {
    this.destroying = true;
    if (this.rndis && this.rndis.state !== 'uninitialized') this.rndis.halt();
    this.wait(() => this.chans.every((c) => !c || this.idle(c)));
    const early = this.primary.vmbusVersion < VmbusVersion.WIN10;
    const rb = this.recvBuf;
    const sb = this.sendBuf;
    try {
      if (rb?.sectionCount) this.primary.sendInband(nvspMessage(NvspMsgType.REVOKE_RECV_BUF, Nvsp1RevokeReceiveBuffer, { id: NETVSC_RECEIVE_BUFFER_ID }), VMBUS_RQST_ID_NO_RESPONSE);
      if (rb && early) this.primary.teardownGpadl(rb.gpadl);
      if (sb?.sectionCount) this.primary.sendInband(nvspMessage(NvspMsgType.REVOKE_SEND_BUF, Nvsp1RevokeSendBuffer, { id: NETVSC_SEND_BUFFER_ID }), VMBUS_RQST_ID_NO_RESPONSE);
      if (sb && early) this.primary.teardownGpadl(sb.gpadl);
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      this.log('err', `unable to revoke buffers: ${e.message}`);
    }
    this.primary.onSubchannel = undefined;
    this.primary.close();
    if (!early) {
      if (rb) this.primary.teardownGpadl(rb.gpadl);
      if (sb) this.primary.teardownGpadl(sb.gpadl);
    }
    if (final) {
      const m = this.memory;
      if (m.recv) this.t.freePages(m.recv.gpa, m.recv.size);
      if (m.send) this.t.freePages(m.send.gpa, m.send.size);
      if (m.bounce !== undefined) this.t.freePages(m.bounce, TX_BOUNCE_SLOTS * TX_BOUNCE_SLOT_BYTES);
      delete m.recv;
      delete m.send;
      delete m.bounce;
    }
    this.recvBuf = undefined;
    this.sendBuf = undefined;
    this.bounce = undefined;
    this.chans.length = 0;
    this.rndis = undefined;
  }

  private idle(c: NvChannel): boolean {
    return c.completions.length === 0;
  }

  // --- The interface's operations (net_device_ops) --------------------------------------------

  /** netvsc_open: the packet filter, then carrier if the host says the link is up. */
  open(dev: NetDevice): void {
    dev.setCarrier(false);
    if (!this.rndis?.open()) {
      this.log('err', 'unable to open device (ret -5).');
      throw new NetDeviceError('EIO', 'unable to open device');
    }
    if (!this.rndis.linkDown) dev.setCarrier(true);
  }

  /** netvsc_close. */
  stop(dev: NetDevice): void {
    dev.setCarrier(false);
    if (this.rndis && !this.rndis.close()) this.log('err', 'unable to close device (ret -5).');
  }

  /** netvsc_change_mtu: detach (close, remove) with the old MTU, attach with the new one. */
  changeMtu(dev: NetDevice, mtu: number): void {
    if (!this.rndis || this.destroying) throw new NetDeviceError('ENODEV', 'device removed');
    const orig = dev.mtu;
    const wasUp = dev.up;
    this.wantChn = this.numChn;
    this.detach(dev, wasUp);
    dev.mtu = mtu;
    try {
      this.attach(dev, wasUp);
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      dev.mtu = orig;
      try {
        this.attach(dev, wasUp);
      } catch (e2) {
        if (!(e2 instanceof VmbusError)) throw e2;
        this.log('err', 'restoring mtu failed');
      }
      throw new NetDeviceError('EIO', `MTU change failed: ${e.message}`);
    }
  }

  private detach(dev: NetDevice, wasUp: boolean): void {
    if (wasUp) {
      dev.setCarrier(false);
      this.rndis?.close();
    }
    dev.present = false;
    this.removeDevice();
  }

  private attach(dev: NetDevice, wasUp: boolean): void {
    this.attachDevice();
    if (this.numChn > 1 && !this.setSubchannels()) {
      this.maxChn = 1;
      this.numChn = 1;
    }
    dev.present = true;
    dev.setCarrier(false);
    if (wasUp) {
      this.rndis!.open();
      if (!this.rndis!.linkDown) dev.setCarrier(true);
    }
  }

  // --- Transmit (netvsc_xmit, netvsc_send) ------------------------------------------------------

  /** netvsc_start_xmit. */
  xmit(dev: NetDevice, frame: Uint8Array, meta: TxMeta): XmitResult {
    const r = this.xmitOne(dev, frame, meta);
    // The last of a burst, or a frame not taken: whatever waits in a section goes now.
    if (!meta.more || r !== 'ok') for (const c of this.chans) if (c?.msd) this.sendMsd(c.index, c.msd);
    return r;
  }

  private xmitOne(dev: NetDevice, frame: Uint8Array, meta: TxMeta): XmitResult {
    const sb = this.sendBuf;
    if (!sb || this.destroying || !dev.present) {
      dev.stats.txDropped++;
      return 'dropped';
    }
    const q = this.pickTxQueue(meta);
    // Most frames carry no PPI (one queue, no offload): they share one empty list.
    const ppis: PpiValue[] = (meta.hash && this.netdev.queues > 1) || meta.gsoSize || meta.checksumPartial ? [] : NO_PPIS;
    if (meta.hash && this.netdev.queues > 1) ppis.push({ type: PpiType.NBL_HASH_VALUE, value: meta.hash });
    if (meta.gsoSize) {
      ppis.push({ type: PpiType.TCP_LARGESEND, value: Number(LsoV2Transmit.fields.lso_v2_transmit.encode({ type: NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE, ip_version: NDIS_TCP_LARGE_SEND_OFFLOAD_IPV4, tcp_header_offset: meta.transportOffset ?? ETH_HLEN + Ip4.LEN, mss: meta.gsoSize })) });
    } else if (meta.checksumPartial) {
      const isIp = frame.length >= ETH_HLEN + Ip4.LEN && be16(frame, Eth.TYPE) === EtherType.IPV4;
      const proto = isIp ? frame[ETH_HLEN + Ip4.PROTOCOL] : undefined;
      const ok = (proto === IpProto.TCP && this.netdev.features.txCsumTcp4) || (proto === IpProto.UDP && this.netdev.features.txCsumUdp4);
      if (!ok) {
        dev.stats.txDropped++;
        return 'dropped'; // skb_checksum_help is the stack's job: it should not have asked
      }
      ppis.push({ type: PpiType.TCPIP_CHKSUM, value: Number(CsumInfoTransmit.fields.transmit.encode({ is_ipv4: 1, tcp_checksum: proto === IpProto.TCP, udp_checksum: proto === IpProto.UDP, tcp_header_offset: meta.transportOffset ?? ETH_HLEN + Ip4.LEN })) });
    }
    const hdrLen = RNDIS_HEADER_SIZE + RndisPacket.size + ppiBytes(ppis.length);
    const total = hdrLen + frame.length;
    if (total > RNDIS_AND_PPI_SIZE + 65536) {
      this.ethStats.txTooBig++;
      dev.stats.txDropped++;
      return 'dropped';
    }
    const pending = this.chans[q]!.msd;
    if (total + this.rndis!.pktAlign >= sb.sectionSize && pending) this.sendMsd(q, pending); // page buffers go after what was batched
    const r = total + this.rndis!.pktAlign < sb.sectionSize ? this.sendInSection(q, frame, ppis, total, meta.more === true) : this.sendAsPages(q, frame, ppis, total);
    if (r === 'ok') {
      dev.stats.txPackets++;
      dev.stats.txBytes += frame.length;
    } else if (r === 'dropped') dev.stats.txDropped++;
    return r;
  }

  /** netvsc_select_queue without a socket: the send table by hash, else the queue asked for. */
  private pickTxQueue(meta: TxMeta): number {
    let q = meta.queue ?? (meta.hash !== undefined ? this.txTable[meta.hash & (VRSS_SEND_TAB_SIZE - 1)]! : 0);
    let n = 0;
    for (let i = 0; i < this.chans.length; i++) if (this.chans[i] !== undefined) n++;
    while (q >= n) q -= n;
    return this.chans[q] ? q : 0;
  }

  /** netvsc_get_next_send_section: the first free section (find_first_zero_bit), or -1. */
  private takeSection(): number {
    const sb = this.sendBuf!;
    const i = sb.map.indexOf(0, sb.lowFree);
    if (i < 0) {
      sb.lowFree = sb.map.length;
      return -1;
    }
    sb.map[i] = 1;
    sb.lowFree = i + 1;
    return i;
  }

  /**
   * netvsc_send with a send section: the packet joins the section being filled (when there is
   * one, it holds fewer than max_pkt packets and the packet fits), or takes a new one. While
   * `more` follow (netdev_xmit_more) the packet is padded to pkt_align and kept; otherwise the
   * section goes, and a batch that the packet could not join goes first.
   */
  private sendInSection(q: number, frame: Uint8Array, ppis: readonly PpiValue[], total: number, more: boolean): XmitResult {
    const sb = this.sendBuf!;
    const c = this.chans[q]!;
    const align = this.rndis!.pktAlign;
    let m = c.msd;
    if (m && !(m.count < this.rndis!.maxPkt && m.len + total + align < sb.sectionSize)) {
      this.sendMsd(q, m);
      m = undefined;
    }
    if (!m) {
      const s = this.takeSection();
      if (s < 0) {
        this.ethStats.txSendFull++;
        return this.sendAsPages(q, frame, ppis, total);
      }
      m = { section: s, len: 0, count: 0, bytes: 0 };
    }
    const mem = this.t.memory.bytes;
    const at = sb.gpa + m.section * sb.sectionSize + m.len;
    // netvsc_copy_to_send_buf: while more follow, the packet's msg_len grows to the next pkt_align boundary.
    const padded = !more ? total : align <= 0x40000000 ? (total + align - 1) & -align : Math.ceil(total / align) * align; // pkt_align is a power of two
    const hl = writeRndisPacketHeaderWords(mem, this.memWords, at, frame.length, ppis, padded);
    this.txCopier.copyFrom(mem, at + hl, frame);
    m.count++;
    m.bytes += frame.length;
    if (more) {
      for (let i = at + total; i < at + padded; i++) mem[i] = 0; // at most pkt_align - 1 bytes
      m.len += padded;
      c.msd = m;
      return 'ok';
    }
    m.len += total;
    c.msd = undefined;
    return this.sendPacket(q, writeNvspRndisPacket(this.txNvsp, RndisChannelType.DATA, m.section, m.len), undefined, { q, section: m.section, bounce: -1, bytes: m.bytes, packets: m.count });
  }

  /** Sends a batch a packet could not join; if the ring refuses it, its packets are dropped (netvsc frees msd_skb). */
  private sendMsd(q: number, m: Msd): void {
    this.chans[q]!.msd = undefined;
    const r = this.sendPacket(q, writeNvspRndisPacket(this.txNvsp, RndisChannelType.DATA, m.section, m.len), undefined, { q, section: m.section, bounce: -1, bytes: m.bytes, packets: m.count });
    if (r !== 'ok') this.netdev.stats.txDropped += m.count;
  }

  /** Large frames: the RNDIS header and the frame in guest pages, sent as page buffers (one per 4 KiB piece, fill_pg_buf). */
  private sendAsPages(q: number, frame: Uint8Array, ppis: readonly PpiValue[], total: number): XmitResult {
    const b = this.bounce!;
    const slot = b.free.pop();
    if (slot === undefined) {
      this.ethStats.txBusy++;
      return 'busy';
    }
    const gpa = b.gpa + slot * TX_BOUNCE_SLOT_BYTES;
    const mem = this.t.memory.bytes;
    const hl = writeRndisPacketHeader(mem, gpa, frame.length, ppis);
    this.txCopier.copyFrom(mem, gpa + hl, frame);
    const ranges: { byteCount: number; byteOffset: number; pfns: number[] }[] = [];
    for (let off = 0; off < total; ) {
      const a = gpa + off;
      const n = Math.min(4096 - (a % 4096), total - off);
      ranges.push({ byteCount: n, byteOffset: a % 4096, pfns: [Math.floor(a / 4096)] });
      off += n;
    }
    if (ranges.length > 32) {
      b.free.push(slot);
      this.ethStats.txTooBig++;
      return 'dropped';
    }
    const msg = nvspRndisPacket(RndisChannelType.DATA, NETVSC_INVALID_INDEX, 0);
    return this.sendPacket(q, msg, ranges, { q, section: -1, bounce: slot, bytes: frame.length });
  }

  /** The SEND_RNDIS_PKT message of a send section, written for each packet (the ring copies it). */
  private readonly txNvsp = nvspRndisPacket(RndisChannelType.DATA, 0, 0);

  /** netvsc_send_pkt: in-band with a section, or page buffers; -EAGAIN frees what was taken. */
  private sendPacket(q: number, msg: Uint8Array, ranges: { byteCount: number; byteOffset: number; pfns: number[] }[] | undefined, ctx: TxContext): XmitResult {
    const ch = this.chans[q]!.ch;
    let sent: boolean;
    try {
      sent = ranges ? ch.sendGpaDirect(ranges, msg, ctx) !== undefined : ch.sendRequestOf(msg, ctx) !== 0;
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      this.freeTx(ctx);
      this.log('err', `Unable to send packet pages ${ranges?.length ?? 0} len ${ctx.bytes}, ret ${e.errno}`);
      return 'dropped';
    }
    if (!sent) {
      this.freeTx(ctx);
      this.ethStats.stopQueue++;
      this.ethStats.txBusy++;
      return 'busy';
    }
    return 'ok';
  }

  private freeTx(ctx: TxContext): void {
    const sb = this.sendBuf;
    if (ctx.section >= 0 && sb) {
      sb.map[ctx.section] = 0;
      if (ctx.section < sb.lowFree) sb.lowFree = ctx.section;
    }
    if (ctx.bounce >= 0) this.bounce?.free.push(ctx.bounce);
  }

  /** rndis_filter_send_request: an RNDIS control message as a page buffer (skb NULL: sent at once, never batched). */
  private sendControl(msg: Uint8Array): boolean {
    let gpa: number;
    try {
      gpa = this.alloc(Math.ceil(msg.length / this.t.memory.pageSize) * this.t.memory.pageSize, 'RNDIS request');
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      return false;
    }
    this.t.memory.write(gpa, msg);
    const ranges: { byteCount: number; byteOffset: number; pfns: number[] }[] = [];
    for (let off = 0; off < msg.length; ) {
      const a = gpa + off;
      const n = Math.min(4096 - (a % 4096), msg.length - off);
      ranges.push({ byteCount: n, byteOffset: a % 4096, pfns: [Math.floor(a / 4096)] });
      off += n;
    }
    const nv = nvspRndisPacket(RndisChannelType.CONTROL, NETVSC_INVALID_INDEX, 0);
    let id: bigint | undefined;
    try {
      id = this.primary.sendGpaDirect(ranges, nv, { control: gpa, bytes: msg.length });
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
    }
    if (id === undefined) this.t.freePages(gpa, Math.ceil(msg.length / this.t.memory.pageSize) * this.t.memory.pageSize);
    return id !== undefined;
  }

  // --- Receive (netvsc_poll) ----------------------------------------------------------------

  /** The channel callback (netvsc_channel_cb, then netvsc_poll): every packet, then the receive completions. */
  private poll(index: number, ch: GuestChannel): void {
    const c = this.chans[index];
    if (!c || c.ch !== ch) {
      ch.receive(() => undefined);
      return;
    }
    this.freedTx = false;
    ch.receiveInPlace(c.onPacket);
    this.sendRecvCompletions(c);
    this.netdev.receiveDone();
    if (this.freedTx) this.netdev.txWake();
  }

  /** Guest memory as words: for the RNDIS headers written into send sections, and small messages copied out of the receive buffer. */
  private readonly memWords = new WordView();
  /** Copies frames into send sections and bounce pages. */
  private readonly txCopier = new WordCopier();

  /** Where received frames get their own bytes (netvsc_alloc_recv_skb). */
  private readonly skbs = new CopyArena();

  /** A transmit completion freed room during this poll (netvsc_send_tx_complete wakes the queue). */
  private freedTx = false;

  /** netvsc_process_raw_pkt. */
  private processPacket(c: NvChannel, p: ParsedPacket): void {
    switch (p.type) {
      case PacketType.COMP:
        return this.sendCompletion(c, p);
      case PacketType.DATA_USING_XFER_PAGES:
        return this.receive(c, p);
      case PacketType.DATA_INBAND:
        return this.receiveInband(p);
      default:
        this.log('err', `unhandled packet type ${p.type}, tid ${p.transId.toString(16)}`);
    }
  }

  /**
   * A packet in the channel's private buffer (the guest's copy, as foreach_vmbus_pkt reads it): the
   * usual completion, of a data send, is read there; any other packet is parsed whole and goes
   * to processPacket. Same checks, same order, same outcome.
   */
  private onPacketAt(c: NvChannel, bytes: Uint8Array, head: PacketHead): void {
    const at = head.payloadAt;
    if (head.type === PacketType.COMP && head.payloadEnd - at >= NvspMessageHeader.size + Nvsp1SendRndisPacketComplete.size && nvspU32At(bytes, at, -NvspMessageHeader.size) === NvspMsgType.SEND_RNDIS_PKT_COMPLETE) {
      return this.dataSendCompleted(c, nvspU32At(bytes, at, Nvsp1SendRndisPacketComplete.offsets.status), head.transIdLow, head.transIdHigh);
    }
    let p: ParsedPacket;
    try {
      p = parsePacket(sliceOf(bytes, 0, head.payloadEnd));
    } catch (e) {
      // The reader's parsePacketHead made the same checks: this is not expected.
      if (!(e instanceof PacketError)) throw e;
      return this.log('err', `bad packet: ${e.message}`);
    }
    this.processPacket(c, p);
  }

  /** netvsc_send_completion. */
  private sendCompletion(c: NvChannel, p: ParsedPacket): void {
    const msg = p.payload;
    if (msg.length === 0) {
      const ctx = c.ch.completeRequest(p.transId) as { init?: number } | undefined;
      if (ctx === undefined) return this.log('err', 'Invalid transaction id');
      if (ctx.init !== NvspMsgType.SWITCH_DATA_PATH) this.log('err', 'Unexpected VMBUS completion!!');
      return;
    }
    if (msg.length < NvspMessageHeader.size) return this.log('err', `nvsp_message length too small: ${msg.length}`);
    const type = nvspType(msg);
    // Linux's switch on the type; the data path's completion, the usual one, is looked at first.
    if (type === NvspMsgType.SEND_RNDIS_PKT_COMPLETE) {
      if (msg.length < NvspMessageHeader.size + Nvsp1SendRndisPacketComplete.size) return this.log('err', `nvsp_rndis_pkt_complete length too small: ${msg.length}`);
      const status = nvspU32(msg, Nvsp1SendRndisPacketComplete.offsets.status);
      return this.dataSendCompleted(c, status, Number(p.transId & 0xffffffffn), Number(p.transId >> 32n));
    }
    const at = INIT_COMPLETIONS.findIndex(([t]) => t === type);
    if (at >= 0) {
      // Linux falls through the cases, so INIT_COMPLETE must also be as long as the longer ones below it.
      for (const [, size, name] of INIT_COMPLETIONS.slice(at)) {
        if (msg.length < NvspMessageHeader.size + size) return this.log('err', `${name} length too small: ${msg.length}`);
      }
      const copy = new Uint8Array(40);
      copy.set(msg.subarray(0, Math.min(40, msg.length)));
      this.initResponse = copy;
      return;
    }
    this.log('err', `Unknown send completion type ${type} received!!`);
  }

  /** The completion of a data send (NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE): its section or pages go back, and the queue may wake. */
  private dataSendCompleted(c: NvChannel, status: number, transIdLow: number, transIdHigh: number): void {
    if (status !== NvspStatus.SUCCESS) this.log('err', `nvsp_rndis_pkt_complete error status: ${status.toString(16)}`);
    const ctx = c.ch.completeRequestOf(transIdLow, transIdHigh) as (TxContext & { control?: number }) | undefined;
    if (ctx === undefined) return this.log('err', 'Incorrect transaction id');
    if (ctx.control !== undefined) {
      this.t.freePages(ctx.control, Math.ceil(ctx.bytes / this.t.memory.pageSize) * this.t.memory.pageSize);
      return;
    }
    this.freeTx(ctx);
    this.freedTx = true;
    const q = this.chans[ctx.q];
    if (q) {
      q.txPackets += ctx.packets ?? 1;
      q.txBytes += ctx.bytes;
    }
  }

  /** netvsc_receive: a transfer-page packet, each range an RNDIS message in the receive buffer. */
  private receive(c: NvChannel, p: ParsedPacket): void {
    const rb = this.recvBuf;
    const msg = p.payload;
    if (msg.length < NvspMessageHeader.size) return void this.rxErrors.badXfer++, this.log('err', `invalid nvsp header, length too small: ${msg.length}`);
    const type = nvspType(msg);
    if (type !== NvspMsgType.SEND_RNDIS_PKT) return void this.rxErrors.badXfer++, this.log('err', `Unknown nvsp packet type received ${type}`);
    if (p.transferPageSet !== NETVSC_RECEIVE_BUFFER_ID) {
      this.rxErrors.badXfer++;
      return this.log('err', `Invalid xfer page set id - expecting ${NETVSC_RECEIVE_BUFFER_ID.toString(16)} got ${(p.transferPageSet ?? 0).toString(16)}`);
    }
    void TransferPageHeader; // the offset and range-count checks are parsePacket's (vmbus.md §8.5)
    let status: number = NvspStatus.SUCCESS;
    const ranges = p.transferWords ?? NO_RANGES;
    const count = ranges.length >>> 1;
    // Several ranges, one RNDIS message each: the host batches the frames of a burst (range_cnt).
    for (let i = 0; i < count; i++) {
      const len = ranges[2 * i]!;
      const offset = ranges[2 * i + 1]!;
      if (!rb || offset > rb.size || len > rb.size - offset) {
        c.rsc.length = 0;
        status = NvspStatus.FAIL;
        this.rxErrors.badRange++;
        this.log('err', `Packet offset:${offset} + len:${len} too big`);
        continue;
      }
      if (len > rb.sectionSize) {
        c.rsc.length = 0;
        status = NvspStatus.FAIL;
        this.rxErrors.badRange++;
        this.log('err', `Packet too big: buflen=${len} recv_section_size=${rb.sectionSize}`);
        continue;
      }
      // What the driver checks and acts on is read from a private copy: the host may change its
      // buffer at any time (nvchan->recv_buf). A data packet's frame, which the driver only hands
      // on, stays where the host put it: whoever takes the frame copies it from there once, into
      // a copy of its own, before reading it (the stack, a raw socket).
      if (c.recvCopy.length < len) {
        c.recvCopy = new Uint8Array(Math.ceil(rb.sectionSize / 4) * 4);
        c.recvCopy32 = new Uint32Array(c.recvCopy.buffer);
      }
      const mem = this.t.memory;
      const memView = this.memWords.of(mem.bytes);
      const mem32 = memView.words;
      const gpa = rb.gpa + offset;
      // The usual message, a frame with the host's checksum PPI, is read in one pass over guest
      // memory, each field once; anything else is copied and read the general way below.
      if (((memView.base + gpa) & 3) === 0 && readPacketWords(mem32, (memView.base + gpa) >>> 2, len, c.fast)) {
        if (c.rsc.length) c.rsc.length = 0;
        c.rscPpi.csum = c.fast.csum;
        c.rscPpi.hash = c.fast.hash;
        if (this.recvCallback(c, mem.bytes, gpa + c.fast.dataOffset, c.fast.dataLength) !== NvspStatus.SUCCESS) status = NvspStatus.FAIL;
        continue;
      }
      const first = Math.min(len, PACKET_HEAD);
      copyIn(c.recvCopy, c.recvCopy32, mem, mem32, gpa, 0, first);
      const head = headBytes(c.recvCopy, first, len, c.rx.fields);
      if (head > first) copyIn(c.recvCopy, c.recvCopy32, mem, mem32, gpa, first, head);
      c.data = head === len ? c.recvCopy : mem.bytes;
      c.dataBase = head === len ? 0 : gpa;
      if (this.rndisReceive(c, c.recvCopy, len, i === count - 1) !== NvspStatus.SUCCESS) {
        c.rsc.length = 0;
        status = NvspStatus.FAIL;
      }
    }
    this.enqReceiveComplete(c, p.transId, status);
  }

  /** rndis_filter_receive: the message in buf[0..buflen). */
  private rndisReceive(c: NvChannel, buf: Uint8Array, buflen: number, isLast: boolean): number {
    let length: number;
    try {
      length = rndisMessageLength(buf, 0, buflen, c.rx.fields);
    } catch (e) {
      if (!(e instanceof RndisError)) throw e;
      this.rxErrors.badRndis++;
      const len = buflen >= RNDIS_HEADER_SIZE ? u32At(buf, RNDIS_HEADER_SIZE - 4) : 0;
      this.log('err', `Invalid rndis_msg (buflen: ${buflen}, msg_len: ${len})`);
      return NvspStatus.FAIL;
    }
    const type = rndisMessageType(buf, 0, c.rx.fields);
    switch (type) {
      case RndisMsg.PACKET:
        return this.receiveData(c, buf, buflen, isLast);
      case RndisMsg.INIT_C:
      case RndisMsg.QUERY_C:
      case RndisMsg.SET_C:
        try {
          this.rndis?.onResponse(buf.slice(0, buflen));
        } catch (e) {
          if (!(e instanceof RndisError)) throw e;
        }
        return NvspStatus.SUCCESS;
      case RndisMsg.INDICATE:
        this.linkStatus(buf.slice(0, buflen), length);
        return NvspStatus.SUCCESS;
      default:
        this.rxErrors.badRndis++;
        this.log('err', `unhandled rndis message (type ${type} len ${length})`);
        return NvspStatus.FAIL;
    }
  }

  /** rndis_filter_receive_data and netvsc_recv_callback: checks, PPIs, RSC fragments, to the interface. */
  private receiveData(c: NvChannel, buf: Uint8Array, buflen: number, isLast: boolean): number {
    const pkt = c.rx;
    try {
      pkt.read(buf, buflen);
    } catch (e) {
      if (!(e instanceof RndisError)) throw e;
      this.rxErrors.badRndis++;
      this.log('err', e.field === 'msg.pkt.data_len' ? `rndis message buffer overflow detected (got ${buflen}, min ...)...dropping this message!` : `invalid rndis pkt: ${e.reason}`);
      return NvspStatus.FAIL;
    }
    if (pkt.ppiError) this.log('err', `Invalid ${pkt.ppiError.field.replace(/^msg\.pkt\./, '')}: ${pkt.ppiError.reason}`);
    const rscFlag = pkt.rscFlag;
    if (rscFlag === undefined || !(rscFlag & RNDIS_PKTINFO_SUBALLOC)) {
      // A whole frame (the usual case): no fragments to gather; it goes up from where it lies.
      if (c.rsc.length) c.rsc.length = 0;
      c.rscPpi.csum = pkt.csum;
      c.rscPpi.hash = pkt.hash;
      return this.recvCallback(c, c.data, c.dataBase + pkt.dataOffset, pkt.dataLength);
    }
    // A fragment is kept until the last one: its own copy.
    const frame = this.skbs.copy(c.data, c.dataBase + pkt.dataOffset, c.dataBase + pkt.dataOffset + pkt.dataLength);
    // RSC: fragments of one coalesced frame, the last one completing it (RNDIS_PKTINFO_ID).
    if (rscFlag & RNDIS_PKTINFO_1ST_FRAG) c.rsc.length = 0;
    else if (c.rsc.length === 0) return NvspStatus.FAIL;
    const more = !(rscFlag & RNDIS_PKTINFO_LAST_FRAG);
    if (more && isLast) return NvspStatus.FAIL;
    if (c.rsc.length === 0) c.rscPpi = { csum: pkt.csum, hash: pkt.hash };
    c.rsc.push(frame);
    if (more) return NvspStatus.SUCCESS;
    const parts = c.rsc.splice(0);
    const whole = parts.length === 1 ? parts[0]! : concatBytes(parts);
    return this.recvCallback(c, whole, 0, whole.length);
  }

  /** netvsc_recv_callback: counters, then the interface delivers. */
  private recvCallback(c: NvChannel, bytes: Uint8Array, at: number, length: number): number {
    const dev = this.netdev;
    if (!dev.name) return NvspStatus.FAIL; // not registered yet
    c.rxPackets++;
    c.rxBytes += length;
    dev.stats.rxPackets++;
    dev.stats.rxBytes += length;
    if (isBroadcast(bytes, at)) dev.stats.broadcast++;
    else if (isMulticast(bytes, at)) dev.stats.multicast++;
    const csum = c.rscPpi.csum;
    const meta = c.meta;
    meta.checksumVerified = csum !== undefined && dev.features.rxCsum && (csum & RX_CSUM_OK) !== 0;
    meta.hash = c.rscPpi.hash;
    dev.receive(bytes, at, length, meta);
    return NvspStatus.SUCCESS;
  }

  /** enq_receive_complete: queue the completion; flush early when more than NAPI_POLL_WEIGHT wait. */
  private enqReceiveComplete(c: NvChannel, tid: bigint, status: number): void {
    if (c.completions.length > NAPI_POLL_WEIGHT) this.sendRecvCompletions(c);
    c.completions.push({ tid, status });
  }

  /** send_recv_completions: each a VM_PKT_COMP with the 8-byte recv_comp_msg; stops when the ring is full. */
  private sendRecvCompletions(c: NvChannel): void {
    while (c.completions.length) {
      const r = c.completions[0]!;
      const msg = nvspRndisPacketComplete(r.status, NvspRecvCompletion.size);
      let sent = false;
      try {
        sent = c.ch.sendCompletion(r.tid, msg);
      } catch (e) {
        if (!(e instanceof VmbusError)) throw e;
      }
      if (!sent) {
        this.ethStats.rxCompBusy++;
        return;
      }
      c.completions.shift();
    }
  }

  /** netvsc_receive_inband: the send indirection table, VF association. */
  private receiveInband(p: ParsedPacket): void {
    const msg = p.payload;
    if (msg.length < NvspMessageHeader.size) return this.log('err', `inband nvsp_message length too small: ${msg.length}`);
    const type = nvspType(msg);
    if (type === NvspMsgType.SEND_INDIRECTION_TABLE) return this.sendTable(msg);
    if (type === NvspMsgType.SEND_VF_ASSOCIATION) {
      if (msg.length < NvspMessageHeader.size + Nvsp4SendVfAssociation.size) return this.log('err', `nvsp_v4_msg length too small: ${msg.length}`);
      const v = nvspBody(Nvsp4SendVfAssociation, msg);
      this.log('info', `VF slot ${v.serial} ${v.allocated ? 'added' : 'removed'}`);
    }
  }

  /** netvsc_send_table: 16 entries; up to NVSP 6 the offset is where Hyper-V really puts the table. */
  private sendTable(msg: Uint8Array): void {
    if (msg.length < NvspMessageHeader.size + Nvsp5SendIndirectTable.size) return this.log('err', `nvsp_v5_msg length too small: ${msg.length}`);
    const t = nvspBody(Nvsp5SendIndirectTable, msg);
    if (t.count !== VRSS_SEND_TAB_SIZE) return this.log('err', `Received wrong send-table size:${t.count}`);
    let offset = t.offset;
    if (this.nvspVersion <= NvspVersion.V6 && msg.length >= 40 + 4 * t.count) offset = 40;
    if (msg.length < 4 * t.count || offset > msg.length - 4 * t.count) return this.log('err', `Received send-table offset too big:${offset}`);
    const dv = new DataView(msg.buffer, msg.byteOffset);
    for (let i = 0; i < t.count; i++) this.txTable[i] = dv.getUint32(offset + 4 * i, true);
  }

  // --- Link (netvsc_linkstatus_callback, netvsc_link_change) -----------------------------------

  private linkStatus(data: Uint8Array, length: number): void {
    if (length - RNDIS_HEADER_SIZE < RndisIndicateStatus.size) return this.log('err', `invalid rndis_indicate_status packet, len: ${length}`);
    const ind = RndisIndicateStatus.decode(data, RNDIS_HEADER_SIZE);
    if (ind.status === RndisStatus.LINK_SPEED_CHANGE) {
      if (ind.status_buflen < 4 || ind.status_buf_offset < RndisIndicateStatus.size || data.length - RNDIS_HEADER_SIZE < ind.status_buf_offset || data.length - RNDIS_HEADER_SIZE - ind.status_buf_offset < ind.status_buflen) {
        return this.log('err', 'invalid rndis_indicate_status packet');
      }
      this.speedMbps = Math.floor(new DataView(data.buffer, data.byteOffset).getUint32(RNDIS_HEADER_SIZE + ind.status_buf_offset, true) / 10000);
      return;
    }
    if (ind.status !== RndisStatus.NETWORK_CHANGE && ind.status !== RndisStatus.MEDIA_CONNECT && ind.status !== RndisStatus.MEDIA_DISCONNECT) return;
    if (!this.netdev.name) return;
    this.linkEvents.push(ind.status);
    this.scheduleLinkChange(0);
  }

  private scheduleLinkChange(delayNs: number): void {
    this.linkWork?.cancel();
    this.linkWork = this.env.services.scheduleDelayedWork(delayNs, () => this.linkChange());
  }

  /** netvsc_link_change: one event per run, at most every LINKCHANGE_INT. */
  private linkChange(): void {
    const r = this.rndis;
    if (!r) return;
    const now = this.env.services.uptimeNs();
    const next = this.lastReconfig + LINKCHANGE_INT_NS;
    if (now < next) return this.scheduleLinkChange(Math.min(next - now, LINKCHANGE_INT_NS));
    this.lastReconfig = now;
    const event = this.linkEvents.shift();
    if (event === undefined) return;
    let reschedule = this.linkEvents.length > 0;
    const dev = this.netdev;
    if (event === RndisStatus.MEDIA_CONNECT) {
      if (r.linkDown) {
        r.linkDown = false;
        dev.setCarrier(dev.up);
      } else dev.notifyPeers();
    } else if (event === RndisStatus.MEDIA_DISCONNECT) {
      if (!r.linkDown) {
        r.linkDown = true;
        dev.setCarrier(false);
      }
    } else if (!r.linkDown) {
      r.linkDown = true;
      dev.setCarrier(false);
      this.linkEvents.unshift(RndisStatus.MEDIA_CONNECT);
      reschedule = true;
    }
    if (reschedule) this.scheduleLinkChange(LINKCHANGE_INT_NS);
  }

  /** The NIC as data: versions, buffers, channels, counters. */
  state(): Record<string, unknown> {
    return {
      name: this.netdev.name,
      mac: this.netdev.macString,
      nvsp: nvspVersionName(this.nvspVersion),
      mtu: this.netdev.mtu,
      carrier: this.netdev.carrier,
      channels: this.chans.filter(Boolean).length,
      recvSections: this.recvBuf?.sectionCount,
      recvSectionSize: this.recvBuf?.sectionSize,
      sendSections: this.sendBuf?.sectionCount,
      stats: this.netdev.stats,
      ethtool: this.ethStats,
      rxErrors: this.rxErrors,
      perQueue: this.chans.filter(Boolean).map((c) => ({ queue: c.index, rxPackets: c.rxPackets, txPackets: c.txPackets })),
    };
  }
}

/** VMBUS_RQST_ID_NO_RESPONSE (include/linux/hyperv.h): the trans id of a message that wants no completion. */
export const VMBUS_RQST_ID_NO_RESPONSE = 0xfffffffffffffffdn;

