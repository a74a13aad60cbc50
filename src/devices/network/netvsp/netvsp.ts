// The host's network device (netvsp): NVSP over the NIC's channel and its sub-channels, RNDIS
// inside it, and a link to a back end (a switch port, a capture, a socket). Behaviour follows
// OpenVMM's vm/devices/net/netvsp (what the host accepts and answers per version, buffer and
// section sizes, RNDIS completions through receive sections) and what Linux's netvsc expects
// (drivers/net/hyperv/netvsc.c, rndis_filter.c).
//
// Nothing the guest controls grows without bound: frames waiting for a receive section or ring
// space (MAX_RX_QUEUE per channel), RNDIS control responses waiting (100 KiB, OpenVMM's
// CONTROL_MESSAGE_MAX_QUEUED_BYTES), transmit completions waiting for ring space (the ring is not
// read while MAX_PENDING_COMPLETIONS wait), violations kept (MAX_VIOLATIONS). What does not fit
// is dropped and counted.
import type { ReleaseId } from '../../../hypervisor/release.js';
import type { GuestMemory } from '../../../memory/guest-memory.js';
import { transferPages, transferPagesHeaderSize, writeTransferPagesHeader } from '../../../vmbus/packet.js';
import type { HostChannel } from '../../../vmbus/server/channel.js';
import { OfferError, STATUS_UNSUCCESSFUL } from '../../../vmbus/server/server.js';
import { PacketType } from '../../../vmbus/wire/constants.js';
import { DeviceClass } from '../../../vmbus/wire/guids.js';
import { PacketError, parsePacket, type PacketHead, type ParsedPacket } from '../../../vmbus/wire/packets.js';
import type { HostContext, HostDevice } from '../../device.js';
import { NO_NETWORK, type NetBackend, type NetEndpoint, type NetLink } from '../backend.js';
import { be16, Eth, EtherType, ETH_HLEN, flowOf, ipv4ChecksumOk, ipv4Of, isBroadcast, isMulticast, l4ChecksumOk, macEquals, macString, IpProto, type Mac } from '../ether.js';
import { NvspError, nvspBody, nvspMessage, nvspRndisPacket, nvspRndisPacketComplete, nvspType, nvspU32, nvspU32At } from '../nvsp.js';
import { FieldReader, readPlainPacketWords, type PlainPacketWords, PpiList, ppiBytes, readRndisPacketHost, rndisBody, rndisControl, rndisInfo, rndisMessageLength, rndisMessageType, RndisError, writeRndisPacketHeader, writeRndisPacketHeaderWords, type PpiValue } from '../rndis.js';
import { rssHash } from '../toeplitz.js';
import { CsumInfoReceive } from '../wire/ndis.js';
import {
  NETVSC_INVALID_INDEX,
  NVSP_BODY,
  NETVSC_RECV_SECTION_SIZE,
  NETVSC_SEND_SECTION_SIZE,
  NVSP_INVALID_PROTOCOL_VERSION,
  NVSP_SUBCHANNEL_ALLOCATE,
  Nvsp1SendNdisVersion,
  Nvsp1SendReceiveBuffer,
  Nvsp1SendReceiveBufferComplete,
  Nvsp1SendRndisPacket,
  Nvsp1SendSendBuffer,
  Nvsp1SendSendBufferComplete,
  Nvsp2SendNdisConfig,
  Nvsp5SendIndirectTable,
  Nvsp5SubchannelComplete,
  Nvsp5SubchannelRequest,
  NvspMessage,
  NvspMessageInit,
  NvspMessageInitComplete,
  NvspMsgType,
  NvspStatus,
  NvspVersion,
  RndisChannelType,
  VRSS_CHANNEL_MAX,
  VRSS_SEND_TAB_SIZE,
} from '../wire/nvsp.js';
import {
  NdisPacketType,
  PpiType,
  RNDIS_DF_CONNECTIONLESS,
  RNDIS_HEADER_SIZE,
  RNDIS_MAJOR_VERSION,
  RNDIS_MEDIUM_802_3,
  RNDIS_MINOR_VERSION,
  RndisIndicateStatus,
  RndisInitializeComplete,
  RndisInitializeRequest,
  RndisKeepaliveComplete,
  RndisKeepaliveRequest,
  RndisMsg,
  RndisQueryComplete,
  RndisQueryRequest,
  RndisResetComplete,
  RndisSetComplete,
  RndisSetRequest,
  RndisStatus,
  RndisPacket,
} from '../wire/rndis.js';
import { DEFAULT_OFFLOADS, queryOid, setOid, type AdapterState } from './adapter.js';
import { SectionPool, SharedBuffer } from './buffers.js';
import { applyTxOffloads } from './offload.js';
import { hostAccepts } from './versions.js';
import { hostRead } from '../../../vmbus/server/gpa-map.js';
import { sliceOf, subarrayOf } from '../../../memory/typed-arrays.js';
import { WordCopier, WordView } from '../../../memory/word-copy.js';

/** OpenVMM's MTU bounds for the NDIS configuration (DEFAULT_MTU, MAX_MTU): frame sizes, header included. */
export const DEFAULT_FRAME_MTU = 1514;
export const MAX_FRAME_MTU = 9216;
/** Room a receive section keeps for the RNDIS header and PPIs: Hyper-V's 1728-byte sections for 1514-byte frames. */
const RX_HEADER_ROOM = NETVSC_RECV_SECTION_SIZE - DEFAULT_FRAME_MTU;
/** Receive sections kept for RNDIS control responses (OpenVMM RX_RESERVED_CONTROL_BUFFERS). */
const RESERVED_CONTROL_SECTIONS = 16;
/** INIT_COMPLETE's max_mdl_chain_len (OpenVMM). */
const MAX_MDL_CHAIN_LEN = 34;
/** INITIALIZE_CMPLT values (OpenVMM): 8 packets per message, 8-byte (2^3) alignment. */
const MAX_PACKETS_PER_MESSAGE = 8;
const PACKET_ALIGNMENT_FACTOR = 3;
const MAX_TRANSFER_SIZE = 0xefffffff;
/** Limits on what waits (see the header). */
export const MAX_RX_QUEUE = 256;
/** Frames in one transfer-page packet at most (OpenVMM RX_BATCH_SIZE). */
const RX_BATCH_SIZE = 375;
const MAX_CONTROL_QUEUED_BYTES = 100 * 1024;
const MAX_PENDING_COMPLETIONS = 4096;
const MAX_VIOLATIONS = 64;
/** The most data one GPA-direct send may carry: a 64 KiB LSO frame and its RNDIS header. */
const MAX_GPA_DIRECT_BYTES = 65536 + 4096;

export interface NicOptions {
  /** The permanent MAC address (default: 00:15:5d and three bytes of the instance GUID). */
  mac?: Mac;
  /** Receive queues offered for vRSS: 1 (no sub-channels, the default) to 64 (VRSS_CHANNEL_MAX). */
  queues?: number;
  /** Where frames go and come from (default: nowhere). */
  backend?: NetBackend;
  /** The endpoint's name in captures and logs. */
  name?: string;
  /** Link speed in bits/s (default 10 Gb/s, what Hyper-V reports for a vSwitch port). */
  linkSpeed?: number;
  /** The name OID_GEN_FRIENDLY_NAME answers (Hyper-V's default, which Linux ignores). */
  friendlyName?: string;
}

export interface NetvspStats {
  /** Frames the guest sent that went out to the back end, and their bytes. */
  txFrames: number;
  txBytes: number;
  /** Frames from the back end written into the guest's receive buffer, and their bytes. */
  rxFrames: number;
  rxBytes: number;
  /** Frames not delivered, by reason. */
  rxDropped: { notReady: number; filtered: number; tooBig: number; linkDown: number; queueFull: number };
  /** Guest frames not sent, by reason. */
  txDropped: { tooBig: number; linkDown: number; badRndis: number; badSection: number; badOffload: number };
  /** Receive completions for sections the host had not lent. */
  badCompletions: number;
  /** Frames per receive channel (vRSS spreading). */
  rxPerChannel: number[];
  /** Frames the host checksummed or segmented for the guest. */
  txChecksummed: number;
  txSegmented: number;
  /** Control messages dropped because too many were waiting. */
  controlDropped: number;
}

/** The guest's receive buffer as the host lends it out. */
interface RecvBuffer {
  readonly buf: SharedBuffer;
  readonly id: number;
  readonly sectionSize: number;
  readonly pool: SectionPool;
  /** For each section lent with frames, the first section of its batch (its transaction id); -1 otherwise. */
  readonly batchOf: Int32Array;
  /** The sections of each batch, by its first. */
  readonly batches: Map<number, Int32Array>;
}

/**
 * Frames already written into receive sections, waiting to go to the guest together in one
 * transfer-page packet (OpenVMM netvsp fills the guest's receive buffers and sends them as one
 * packet with a range each, up to RX_BATCH_SIZE; Linux netvsc_receive walks range_cnt ranges).
 */
class RxBatch {
  count = 0;
  /** Frame bytes (without RNDIS headers), for the counters. */
  bytes = 0;
  readonly sections = new Int32Array(RX_BATCH_SIZE);
  readonly offsets = new Uint32Array(RX_BATCH_SIZE);
  readonly lengths = new Uint32Array(RX_BATCH_SIZE);
  /** The packet's header, written in place for each send. */
  readonly header = new Uint8Array(transferPagesHeaderSize(RX_BATCH_SIZE));
  /** The receive buffer the sections belong to. */
  buffer: RecvBuffer | undefined;
}

interface Queue {
  readonly index: number;
  ch: HostChannel;
  /** Frames in receive sections, not yet named to the guest. */
  readonly batch: RxBatch;
  /** Frames waiting for a section (copies), after those of `batch`. */
  readonly rx: Uint8Array[];
  /** Transmit completions waiting for ring space: trans id, status. */
  readonly completions: { transId: bigint; status: number }[];
  /** A flush of `rx` is scheduled (frames that arrive meanwhile go in the same packet). */
  flushScheduled: boolean;
  /** The channel's packet handler for receiveInPlace (made once). */
  onPacket: (bytes: Uint8Array, at: number, length: number, head: PacketHead) => void;
  /**
   * The scheduled flush (made once: a closure made in scheduleFlush would capture its argument,
   * and V8 then allocates that scope on every call, a frame's worth of garbage each).
   */
  scheduledFlush: () => void;
}

type Phase = 'closed' | 'init' | 'operational';

/** A send's completion message: the successful one made once (the ring copies it; nothing writes it). */
const TX_COMPLETE_SUCCESS = nvspRndisPacketComplete(NvspStatus.SUCCESS);
const txCompletion = (status: number): Uint8Array => (status === NvspStatus.SUCCESS ? TX_COMPLETE_SUCCESS : nvspRndisPacketComplete(status));

/** Whether the frame's destination passes the RNDIS packet filter for `mac`. */
function passesFilter(filter: number, bytes: Uint8Array, at: number, mac: Mac): boolean {
  if (filter & NdisPacketType.PROMISCUOUS) return true;
  if (isBroadcast(bytes, at)) return (filter & NdisPacketType.BROADCAST) !== 0;
  if (isMulticast(bytes, at)) return (filter & (NdisPacketType.ALL_MULTICAST | NdisPacketType.MULTICAST)) !== 0;
  return (filter & NdisPacketType.DIRECTED) !== 0 && macEquals(bytes, at, mac);
}


/** Each receive-checksum verdict bit as a number, from the declared bitfield (per frame, BigInt arithmetic costs too much). */
const RX_CSUM_BITS = ['ip_checksum_succeeded', 'ip_checksum_failed', 'tcp_checksum_succeeded', 'tcp_checksum_failed', 'udp_checksum_succeeded', 'udp_checksum_failed'] as const;
const RX_CSUM = Object.fromEntries(RX_CSUM_BITS.map((k) => [k, Number(CsumInfoReceive.fields.receive.encode({ [k]: true }))])) as Record<(typeof RX_CSUM_BITS)[number], number>;

/** The default MAC: Microsoft's Hyper-V prefix 00:15:5D, then three bytes of the instance GUID. */
export function defaultMac(instanceId: string): Mac {
  const hex = instanceId.replace(/-/g, '');
  return new Uint8Array([0x00, 0x15, 0x5d, parseInt(hex.slice(26, 28), 16), parseInt(hex.slice(28, 30), 16), parseInt(hex.slice(30, 32), 16)]);
}

export class NetvspDevice implements HostDevice, NetEndpoint {
  readonly type = 'network';
  readonly primary: HostChannel;
  readonly stats: NetvspStats = {
    txFrames: 0,
    txBytes: 0,
    rxFrames: 0,
    rxBytes: 0,
    rxDropped: { notReady: 0, filtered: 0, tooBig: 0, linkDown: 0, queueFull: 0 },
    txDropped: { tooBig: 0, linkDown: 0, badRndis: 0, badSection: 0, badOffload: 0 },
    badCompletions: 0,
    rxPerChannel: [0],
    txChecksummed: 0,
    txSegmented: 0,
    controlDropped: 0,
  };
  /** The most recent protocol violations of the guest, oldest first, and how many there were. */
  readonly violations: string[] = [];
  violationCount = 0;
  /** The NVSP version the guest negotiated, and the NDIS version it announced. */
  version: number | undefined;
  ndisVersion: { major: number; minor: number } | undefined;
  readonly adapter: AdapterState;
  phase: Phase = 'closed';
  rndisState: 'uninitialized' | 'initialized' | 'halted' = 'uninitialized';
  recvBuffer: RecvBuffer | undefined;
  sendBuffer: { buf: SharedBuffer; id: number; sectionSize: number; count: number } | undefined;
  /** Every channel: the primary first, then sub-channels by index. */
  readonly queues: (Queue | undefined)[] = [];
  private readonly subchannels: HostChannel[] = [];
  private readonly control: Uint8Array[] = [];
  private controlBytes = 0;
  private readonly mem: GuestMemory;
  private readonly link: NetLink;
  readonly name: string;
  private ndisConfigMtu: number | undefined;

  constructor(
    private readonly ctx: HostContext,
    readonly instanceId: string,
    readonly options: NicOptions = {},
  ) {
    const queues = options.queues ?? 1;
    if (!Number.isInteger(queues) || queues < 1 || queues > VRSS_CHANNEL_MAX) throw new RangeError(`queues ${queues} is not 1 to ${VRSS_CHANNEL_MAX}`);
    const mac = options.mac ?? defaultMac(instanceId);
    this.adapter = {
      permanentMac: mac,
      currentMac: mac,
      mtu: DEFAULT_FRAME_MTU,
      ndisMajor: 6,
      ndisMinor: 30,
      linkUp: true,
      linkSpeed: options.linkSpeed ?? 10_000_000_000,
      packetFilter: 0,
      offloads: { ...DEFAULT_OFFLOADS },
      rss: undefined,
      maxQueues: queues,
      friendlyName: options.friendlyName ?? 'Network Adapter',
    };
    this.name = options.name ?? `nic ${macString(mac)}`;
    this.mem = ctx.server.io.memory;
    this.primary = ctx.server.offer({ classId: DeviceClass.NIC, instanceId, monitor: true }, this.handlerFor(0));
    // A back end delivers from outside the VM (a socket's callback, another VM's send): a throw
    // in here is a host fault, never an exception in the back end's caller.
    const nameOf = () => this.name;
    const macOf = () => this.mac;
    this.link = (options.backend ?? NO_NETWORK).connect({
      get name() {
        return nameOf();
      },
      get mac() {
        return macOf();
      },
      deliver: (frame) => {
        try {
          return this.deliver(frame);
        } catch (e) {
          ctx.fault?.('netvsp: a frame from the back end', e);
          return false;
        }
      },
      deliverFrom: (bytes, at, length) => {
        try {
          return this.deliver(bytes, at, length);
        } catch (e) {
          ctx.fault?.('netvsp: a frame from the back end', e);
          return false;
        }
      },
    });
    const link = this.link;
    this.transmitOut = link.transmitFrom ? (bytes, at, length) => link.transmitFrom!(bytes, at, length) : (bytes, at, length) => link.transmit(subarrayOf(bytes, at, at + length));
  }

  get release(): ReleaseId {
    return this.ctx.release;
  }

  /** The MAC the guest currently uses (what a switch learns). */
  get mac(): Mac {
    return this.adapter.currentMac;
  }

  /** Channels open for receiving: the primary and the opened sub-channels. */
  get openQueues(): number {
    return this.queues.filter((q) => q !== undefined).length;
  }

  dispose(): void {
    this.link.close();
  }

  // --- The link -------------------------------------------------------------------------------

  /**
   * Connects or disconnects the virtual cable: the guest hears RNDIS_STATUS_MEDIA_CONNECT or
   * _DISCONNECT (netvsc_linkstatus_callback), and frames stop both ways while it is down.
   */
  setLink(up: boolean): void {
    if (this.adapter.linkUp === up) return;
    this.adapter.linkUp = up;
    this.ctx.log(`netvsp ${this.instanceId}: link ${up ? 'up' : 'down'}`);
    if (this.rndisState === 'initialized') this.indicateStatus(up ? RndisStatus.MEDIA_CONNECT : RndisStatus.MEDIA_DISCONNECT);
  }

  /** RNDIS_MSG_INDICATE with `status` (and a status buffer) to the guest. */
  indicateStatus(status: number, payload: Uint8Array = new Uint8Array(0)): void {
    const msg = rndisControl(RndisMsg.INDICATE, RndisIndicateStatus, { status, status_buflen: payload.length, status_buf_offset: payload.length ? RndisIndicateStatus.size : 0 }, payload);
    this.queueControl(msg);
  }

  /** Counts a frame for the guest dropped, and why (made once: a closure per frame would be an object per frame). */
  private readonly dropRx = (why: keyof NetvspStats['rxDropped']): false => {
    this.stats.rxDropped[why]++;
    return false;
  };

  /** Sends the frame at bytes[at, at + length) to the back end, as a range where the link takes one. */
  private readonly transmitOut: (bytes: Uint8Array, at: number, length: number) => void;

  /** A frame from the back end for the guest: all of `bytes`, or bytes[at, at + length) (NetEndpoint.deliver, deliverFrom). */
  deliver(bytes: Uint8Array, at = 0, length = bytes.length): boolean {
    const a = this.adapter;
    const drop = this.dropRx;
    if (!a.linkUp) return drop('linkDown');
    if (this.phase !== 'operational' || this.rndisState !== 'initialized' || !this.recvBuffer) return drop('notReady');
    if (length < ETH_HLEN || !passesFilter(a.packetFilter, bytes, at, a.currentMac)) return drop('filtered');
    if (length > a.mtu) return drop('tooBig');
    const q = this.pickQueue(bytes, at, length);
    // Straight into a receive section when one is free and nothing waits before it (no copy
    // kept); otherwise a copy waits for a section, a bounded number of them. A full batch goes
    // to the guest at once (OpenVMM sends RX_BATCH_SIZE buffers per packet at most).
    if (q.rx.length === 0 && q.batch.count >= RX_BATCH_SIZE) this.flushRx(q);
    if (q.rx.length === 0 && q.batch.count < RX_BATCH_SIZE) {
      const r = this.fillSection(q, bytes, at, length);
      if (r === 'tooBig') return drop('tooBig');
      if (r === 'written') {
        this.scheduleFlush(q);
        return true;
      }
    }
    if (q.rx.length >= MAX_RX_QUEUE) this.flushRx(q); // a burst longer than the queue: what fits goes now
    if (q.rx.length >= MAX_RX_QUEUE) return drop('queueFull');
    q.rx.push(sliceOf(bytes, at, at + length));
    this.scheduleFlush(q);
    return true;
  }

  private scheduleFlush(q: Queue): void {
    // Frames that arrive in the same instant (a burst the sender's host forwarded in one poll)
    // reach the guest in one packet.
    if (!q.flushScheduled) {
      q.flushScheduled = true;
      this.ctx.schedule(this.ctx.now(), q.scheduledFlush);
    }
  }

  /** vRSS: the queue the indirection table names for the frame's Toeplitz hash (the primary otherwise). */
  private pickQueue(bytes: Uint8Array, at: number, length: number): Queue {
    const primary = this.queues[0]!;
    const rss = this.adapter.rss;
    if (!rss || this.queues.length < 2) return primary;
    const flow = flowOf(subarrayOf(bytes, at, at + length));
    if (!flow) return primary;
    const h = rssHash(rss.key, flow);
    return this.queues[rss.table[h & (rss.table.length - 1)]!] ?? primary;
  }

  // --- Channels ---------------------------------------------------------------------------------

  private handlerFor(index: number) {
    return {
      open: (ch: HostChannel) => this.onOpen(ch, index),
      close: (ch: HostChannel) => this.onClose(ch, index),
      revoked: (ch: HostChannel) => this.onClose(ch, index),
      signal: (ch: HostChannel) => this.poll(ch, index),
    };
  }

  private onOpen(ch: HostChannel, index: number): number {
    if (index === 0) this.reset();
    else if (this.phase !== 'operational') return STATUS_UNSUCCESSFUL; // a sub-channel of a device not set up
    const q: Queue = {
      index,
      ch,
      batch: new RxBatch(),
      rx: [],
      completions: [],
      flushScheduled: false,
      onPacket: (bytes, at, length, head) => this.onPacketAt(q, bytes, at, length, head),
      scheduledFlush: () => {
        q.flushScheduled = false;
        if (this.queues[q.index] === q) this.flushRx(q);
      },
    };
    this.queues[index] = q;
    while (this.stats.rxPerChannel.length <= index) this.stats.rxPerChannel.push(0);
    if (index === 0) this.phase = 'init';
    else if (this.openQueues === this.subchannels.length + 1) this.sendIndirectionTable();
    return 0;
  }

  private onClose(_ch: HostChannel, index: number): void {
    if (this.queues[index] === undefined) return;
    this.queues[index] = undefined;
    if (index !== 0) return;
    // The primary closed: the device is reset, and its sub-channels go with it (the guest asks
    // for new ones when it opens the primary again).
    this.revokeSubchannels();
    this.reset();
  }

  private reset(): void {
    this.phase = 'closed';
    this.version = undefined;
    this.ndisVersion = undefined;
    this.ndisConfigMtu = undefined;
    this.rndisState = 'uninitialized';
    this.recvBuffer = undefined;
    this.sendBuffer = undefined;
    this.control.length = 0;
    this.controlBytes = 0;
    this.adapter.packetFilter = 0;
    this.adapter.rss = undefined;
    this.adapter.mtu = DEFAULT_FRAME_MTU;
    this.adapter.offloads = { ...DEFAULT_OFFLOADS };
  }

  private revokeSubchannels(): void {
    for (const sub of this.subchannels.splice(0)) this.ctx.server.revoke(sub);
    this.queues.length = Math.min(this.queues.length, 1);
  }

  private violation(what: string): void {
    this.violationCount++;
    this.violations.push(what);
    if (this.violations.length > MAX_VIOLATIONS) this.violations.shift();
  }

  /** The guest signalled channel `index`: send what waits, read what it sent, send again. */
  private poll(ch: HostChannel, index: number): void {
    const q = this.queues[index];
    if (!q || q.ch !== ch) return;
    this.flush(q);
    if (q.completions.length < MAX_PENDING_COMPLETIONS) ch.receiveInPlace(q.onPacket);
    this.flush(q);
  }

  private flush(q: Queue): void {
    this.flushCompletions(q);
    if (q.index === 0) this.flushControl();
    this.flushRx(q);
  }

  // --- Packets from the guest -----------------------------------------------------------------

  /**
   * A packet where the channel's reader copied it (the host's own copy). The usual one, an RNDIS
   * data message in a send section, is handled there, each field read once; any other is parsed
   * whole and goes to onPacket.
   */
  private onPacketAt(q: Queue, bytes: Uint8Array, at: number, length: number, head: PacketHead): void {
    if (head.type === PacketType.COMP) return this.onCompletion(head.transIdLow, head.transIdHigh);
    const pa = head.payloadAt;
    if (head.type === PacketType.DATA_INBAND && head.payloadEnd - pa >= NVSP_BODY + Nvsp1SendRndisPacket.size && nvspU32At(bytes, pa, -NVSP_BODY) === NvspMsgType.SEND_RNDIS_PKT) {
      const body = Nvsp1SendRndisPacket.offsets;
      const index = nvspU32At(bytes, pa, body.send_buf_section_index);
      if (index !== NETVSC_INVALID_INDEX) {
        const status =
          this.phase === 'operational'
            ? this.rndisMessages(q, undefined, nvspU32At(bytes, pa, body.channel_type), index, nvspU32At(bytes, pa, body.send_buf_section_size))
            : (this.violation('RNDIS packet before the buffers and NDIS versions are set'), NvspStatus.FAIL);
        if (head.completionRequested && !(q.completions.length === 0 && q.ch.sendCompletionOf(head.transIdLow, head.transIdHigh, txCompletion(status)))) {
          q.completions.push({ transId: head.transId, status });
        }
        return;
      }
    }
    let p: ParsedPacket;
    try {
      p = parsePacket(sliceOf(bytes, at, at + length));
    } catch (e) {
      // The reader's parsePacketHeadAt made the same checks: this is not expected.
      if (!(e instanceof PacketError)) throw e;
      return this.violation(`packet: ${e.message}`);
    }
    this.onPacket(q, p);
  }

  private onPacket(q: Queue, p: ParsedPacket): void {
    try {
      if (p.type === PacketType.COMP) return this.onCompletion(Number(p.transId & 0xffffffffn), Number(p.transId >> 32n));
      if (p.type !== PacketType.DATA_INBAND && p.type !== PacketType.DATA_USING_GPA_DIRECT) return this.violation(`packet type ${p.type} on channel ${q.index}`);
      const type = nvspType(p.payload);
      if (type === NvspMsgType.SEND_RNDIS_PKT) return this.onRndisPacket(q, p);
      if (q.index !== 0) return this.violation(`NVSP message ${type} on sub-channel ${q.index}`);
      this.onControl(q, p, type);
    } catch (e) {
      if (!(e instanceof NvspError) && !(e instanceof RndisError)) throw e;
      this.violation(e.message);
      if (p.completionRequested && p.type !== PacketType.COMP) this.complete(q, p.transId);
    }
  }

  /**
   * A receive completion: the guest is done with the section the trans id names (a control
   * message) or with the batch of frames that section starts. A completion naming a section
   * that was not lent, or one inside a batch, is refused.
   */
  private onCompletion(transIdLow: number, transIdHigh: number): void {
    const rb = this.recvBuffer;
    const id = transIdHigh === 0 ? transIdLow : -1;
    const first = rb && id >= 0 && id < rb.pool.count ? rb.batchOf[id]! : -1;
    if (rb && first === id) {
      const sections = rb.batches.get(first)!;
      for (let i = 0; i < sections.length; i++) {
        rb.batchOf[sections[i]!] = -1;
        rb.pool.give(sections[i]!);
      }
      rb.batches.delete(first);
      return;
    }
    if (!rb || first !== -1 || !rb.pool.give(id)) {
      this.stats.badCompletions++;
      const transId = (BigInt(transIdHigh >>> 0) << 32n) | BigInt(transIdLow >>> 0);
      return this.violation(`completion for receive section ${transId} that was not lent${first !== -1 ? ` on its own (it is in the batch of ${first})` : ''}`);
    }
  }

  private complete(q: Queue, transId: bigint, payload?: Uint8Array): void {
    if (!q.ch.sendCompletion(transId, payload)) this.violation(`no ring space to complete transaction ${transId}`);
  }

  private onControl(q: Queue, p: ParsedPacket, type: number): void {
    const reply = (m: Uint8Array) => (p.completionRequested ? this.complete(q, p.transId, m) : undefined);
    if (type === NvspMsgType.INIT) {
      const init = nvspBody(NvspMessageInit, p.payload);
      const v = init.min_protocol_ver === init.max_protocol_ver ? init.min_protocol_ver : init.max_protocol_ver;
      const accepted = this.phase === 'init' && this.version === undefined && hostAccepts(this.release, v);
      // OpenVMM: NONE for a version it does not take; negotiated_protocol_ver is only set for version 1.
      reply(
        nvspMessage(NvspMsgType.INIT_COMPLETE, NvspMessageInitComplete, {
          negotiated_protocol_ver: accepted && v === NvspVersion.V1 ? v : NVSP_INVALID_PROTOCOL_VERSION,
          max_mdl_chain_len: MAX_MDL_CHAIN_LEN,
          status: accepted ? NvspStatus.SUCCESS : NvspStatus.NONE,
        }),
      );
      if (accepted) this.version = v;
      return;
    }
    const version = this.version;
    if (version === undefined) return this.violation(`NVSP message ${type} before NVSP_MSG_TYPE_INIT`);
    switch (type) {
      case NvspMsgType.SEND_NDIS_VER: {
        const v = nvspBody(Nvsp1SendNdisVersion, p.payload);
        if (this.ndisVersion) return this.violation('SEND_NDIS_VER sent twice');
        this.ndisVersion = { major: v.ndis_major_ver, minor: v.ndis_minor_ver };
        this.adapter.ndisMajor = v.ndis_major_ver;
        this.adapter.ndisMinor = v.ndis_minor_ver;
        if (p.completionRequested) this.complete(q, p.transId);
        return this.maybeOperational();
      }
      case NvspMsgType.SEND_NDIS_CONFIG: {
        if (version < NvspVersion.V2) return this.violation('SEND_NDIS_CONFIG needs NVSP 2');
        if (this.ndisConfigMtu !== undefined) return this.violation('SEND_NDIS_CONFIG sent twice');
        const c = nvspBody(Nvsp2SendNdisConfig, p.payload);
        // As in the vmswitch (OpenVMM): an MTU out of range means the default.
        this.ndisConfigMtu = c.mtu >= DEFAULT_FRAME_MTU && c.mtu <= MAX_FRAME_MTU ? c.mtu : DEFAULT_FRAME_MTU;
        this.adapter.mtu = this.ndisConfigMtu;
        if (p.completionRequested) this.complete(q, p.transId);
        return this.maybeOperational();
      }
      case NvspMsgType.SEND_RECV_BUF:
        return this.onSendReceiveBuffer(q, p);
      case NvspMsgType.SEND_SEND_BUF:
        return this.onSendSendBuffer(q, p);
      case NvspMsgType.REVOKE_RECV_BUF:
        this.recvBuffer = undefined;
        this.phase = 'init';
        return;
      case NvspMsgType.REVOKE_SEND_BUF:
        this.sendBuffer = undefined;
        return;
      case NvspMsgType.SUBCHANNEL:
        return this.onSubchannelRequest(q, p, version);
      case NvspMsgType.SWITCH_DATA_PATH:
        // No VF is ever offered: the synthetic path stays; the request is acknowledged (OpenVMM).
        if (version < NvspVersion.V4) return this.violation('SWITCH_DATA_PATH needs NVSP 4');
        if (p.completionRequested) this.complete(q, p.transId);
        return;
      default:
        this.violation(`NVSP message ${type} is not handled`);
        if (p.completionRequested) this.complete(q, p.transId, nvspMessage(type));
    }
  }

  private onSendReceiveBuffer(q: Queue, p: ParsedPacket): void {
    const m = nvspBody(Nvsp1SendReceiveBuffer, p.payload);
    const fail = (why: string) => {
      this.violation(`SEND_RECV_BUF: ${why}`);
      this.complete(q, p.transId, nvspMessage(NvspMsgType.SEND_RECV_BUF_COMPLETE, Nvsp1SendReceiveBufferComplete, { status: NvspStatus.FAIL, num_sections: 0, sections: [{ offset: 0, sub_alloc_size: 0, num_sub_allocs: 0, end_offset: 0 }] }));
    };
    if (this.recvBuffer) return fail('a receive buffer is already shared');
    // From NVSP 2 the MTU must be known first (OpenVMM: SendReceiveBufferMissingMTU).
    if (this.version! >= NvspVersion.V2 && this.ndisConfigMtu === undefined) return fail('sent before SEND_NDIS_CONFIG');
    const g = q.ch.gpadl(m.gpadl_handle);
    if (!g) return fail(`GPADL 0x${m.gpadl_handle.toString(16)} does not exist on this channel`);
    if (g.ranges.length !== 1) return fail('the GPADL has more than one range');
    const buf = new SharedBuffer(this.mem, g, m.gpadl_handle);
    const sectionSize = Math.max(NETVSC_RECV_SECTION_SIZE, this.adapter.mtu + RX_HEADER_ROOM);
    const count = Math.floor(buf.size / sectionSize);
    if (count <= RESERVED_CONTROL_SECTIONS) return fail(`${buf.size} bytes hold ${count} sections of ${sectionSize}, too few`);
    this.recvBuffer = { buf, id: m.id, sectionSize, pool: new SectionPool(count), batchOf: new Int32Array(count).fill(-1), batches: new Map() };
    this.complete(
      q,
      p.transId,
      nvspMessage(NvspMsgType.SEND_RECV_BUF_COMPLETE, Nvsp1SendReceiveBufferComplete, {
        status: NvspStatus.SUCCESS,
        num_sections: 1,
        sections: [{ offset: 0, sub_alloc_size: sectionSize, num_sub_allocs: count, end_offset: sectionSize * count }],
      }),
    );
    this.maybeOperational();
  }

  private onSendSendBuffer(q: Queue, p: ParsedPacket): void {
    const m = nvspBody(Nvsp1SendSendBuffer, p.payload);
    const g = q.ch.gpadl(m.gpadl_handle);
    if (this.sendBuffer || !g || g.ranges.length !== 1) {
      this.violation(`SEND_SEND_BUF: ${this.sendBuffer ? 'a send buffer is already shared' : `GPADL 0x${m.gpadl_handle.toString(16)} is not a one-range GPADL of this channel`}`);
      return this.complete(q, p.transId, nvspMessage(NvspMsgType.SEND_SEND_BUF_COMPLETE, Nvsp1SendSendBufferComplete, { status: NvspStatus.FAIL, section_size: 0 }));
    }
    const buf = new SharedBuffer(this.mem, g, m.gpadl_handle);
    this.sendBuffer = { buf, id: m.id, sectionSize: NETVSC_SEND_SECTION_SIZE, count: Math.floor(buf.size / NETVSC_SEND_SECTION_SIZE) };
    this.complete(q, p.transId, nvspMessage(NvspMsgType.SEND_SEND_BUF_COMPLETE, Nvsp1SendSendBufferComplete, { status: NvspStatus.SUCCESS, section_size: NETVSC_SEND_SECTION_SIZE }));
  }

  /** Ready for RNDIS once the NDIS version, the configuration (NVSP ≥ 2) and the receive buffer are in (OpenVMM is_ready_to_initialize). */
  private maybeOperational(): void {
    if (this.phase === 'init' && this.ndisVersion && this.recvBuffer && (this.version! < NvspVersion.V2 || this.ndisConfigMtu !== undefined)) this.phase = 'operational';
  }

  private onSubchannelRequest(q: Queue, p: ParsedPacket, version: number): void {
    const r = nvspBody(Nvsp5SubchannelRequest, p.payload);
    const max = this.adapter.maxQueues - 1;
    const ok = version >= NvspVersion.V5 && this.phase === 'operational' && r.op === NVSP_SUBCHANNEL_ALLOCATE && r.num_subchannels <= max;
    const complete = (status: number, count: number) => this.complete(q, p.transId, nvspMessage(NvspMsgType.SUBCHANNEL, Nvsp5SubchannelComplete, { status, num_subchannels: count }));
    if (!ok) {
      this.violation(`sub-channel request for ${r.num_subchannels} (op ${r.op}) refused: the host offers ${max}`);
      return complete(NvspStatus.FAIL, 0);
    }
    this.revokeSubchannels();
    // Offered before the answer, which says how many were: with the VM's channels used up (its
    // budget), the guest learns it has fewer queues rather than waiting for offers that never come
    // (netvsc's rndis_set_subchannel takes num_subchannels from this answer).
    for (let i = 1; i <= r.num_subchannels; i++) {
      try {
        this.subchannels.push(this.ctx.server.offer({ classId: DeviceClass.NIC, instanceId: this.instanceId, subChannelIndex: i, monitor: true }, this.handlerFor(i)));
      } catch (e) {
        if (!(e instanceof OfferError)) throw e;
        this.violation(`sub-channel ${i} of ${r.num_subchannels} not offered: ${e.message}`);
        break;
      }
    }
    const offered = this.subchannels.length;
    complete(offered > 0 || r.num_subchannels === 0 ? NvspStatus.SUCCESS : NvspStatus.FAIL, offered);
  }

  /**
   * NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE once every channel is open: 16 entries spreading the
   * guest's sends over the channels (OpenVMM guest_send_indirection_table). The table follows a
   * whole nvsp_message, where Hyper-V puts it (netvsc_send_table's fix-up for NVSP ≤ 6).
   */
  private sendIndirectionTable(): void {
    const q = this.queues[0];
    if (!q || this.version === undefined || this.version < NvspVersion.V5) return;
    const n = this.openQueues;
    const msg = new Uint8Array(NvspMessage.size + 4 * VRSS_SEND_TAB_SIZE);
    msg.set(nvspMessage(NvspMsgType.SEND_INDIRECTION_TABLE, Nvsp5SendIndirectTable, { count: VRSS_SEND_TAB_SIZE, offset: NvspMessage.size }));
    const dv = new DataView(msg.buffer);
    for (let i = 0; i < VRSS_SEND_TAB_SIZE; i++) dv.setUint32(NvspMessage.size + 4 * i, i % n, true);
    if (!q.ch.sendInband(msg)) this.violation('no ring space for the send indirection table');
  }

  // --- RNDIS messages from the guest ------------------------------------------------------------

  private onRndisPacket(q: Queue, p: ParsedPacket): void {
    const body = Nvsp1SendRndisPacket.offsets;
    if (p.payload.length < 4 + Nvsp1SendRndisPacket.size) throw new NvspError('msg.nvsp_1_message_send_rndis_packet', `needs ${4 + Nvsp1SendRndisPacket.size} bytes, have ${p.payload.length}`);
    const channelType = nvspU32(p.payload, body.channel_type);
    const index = nvspU32(p.payload, body.send_buf_section_index);
    const size = nvspU32(p.payload, body.send_buf_section_size);
    const status = this.phase === 'operational' ? this.rndisMessages(q, p.ranges, channelType, index, size) : (this.violation('RNDIS packet before the buffers and NDIS versions are set'), NvspStatus.FAIL);
    if (p.completionRequested) this.completeTx(q, p.transId, status);
  }

  /** Finds the message bytes (a send section or GPA-direct pages) and handles each message in them. */
  private rndisMessages(q: Queue, ranges: ParsedPacket['ranges'], channelType: number, index: number, size: number): number {
    // The messages are data[at, end): a section in place in guest memory, or a copy.
    let data: Uint8Array;
    let at = 0;
    let end: number;
    if (index !== NETVSC_INVALID_INDEX) {
      const sb = this.sendBuffer;
      if (!sb || !sb.buf.live(q.ch) || index >= sb.count || size > sb.sectionSize || size === 0) {
        this.stats.txDropped.badSection++;
        this.violation(`send section ${index} (${size} bytes) is not in the ${sb ? `${sb.count}-section` : 'missing'} send buffer`);
        return NvspStatus.FAIL;
      }
      const gpa = sb.buf.gpaOf(index * sb.sectionSize, size);
      data = gpa >= 0 ? this.mem.bytes : sb.buf.read(index * sb.sectionSize, size);
      at = gpa >= 0 ? gpa : 0;
      end = at + size;
    } else if (ranges) {
      const total = this.gather(ranges);
      if (total < 0) {
        this.stats.txDropped.badRndis++;
        return NvspStatus.FAIL;
      }
      data = this.gathered;
      end = total;
    } else {
      this.stats.txDropped.badRndis++;
      this.violation('RNDIS packet with neither a send section nor page buffers');
      return NvspStatus.FAIL;
    }
    // Several RNDIS packet messages may follow each other in one section: netvsc batches the
    // frames the stack hands it back to back (netvsc_send's multi-send data, drivers/net/hyperv/netvsc.c).
    const first = at;
    let status: number = NvspStatus.SUCCESS;
    const view = data === this.mem.bytes ? this.memWords.of(data) : data === this.gathered ? this.gatheredWords.of(data) : undefined;
    const plain = this.plainTx;
    while (at < end) {
      // The usual message, a frame with no offload asked for, is read in one pass over guest
      // memory (or the copy of its pages), each field once; anything else the general way below.
      if (view && ((view.base + at) & 3) === 0 && readPlainPacketWords(view.words, (view.base + at) >>> 2, end - at, plain)) {
        if (!this.transmitPlain(data, at + plain.dataOffset, plain.dataLength)) status = NvspStatus.FAIL;
        at += plain.msgLength;
        continue;
      }
      let length: number;
      try {
        length = rndisMessageLength(data, at, end, this.fields);
      } catch (e) {
        if (!(e instanceof RndisError)) throw e;
        this.stats.txDropped.badRndis++;
        this.violation(`RNDIS message at ${at - first}: ${e.message}`);
        return NvspStatus.FAIL;
      }
      const type = rndisMessageType(data, at, this.fields);
      if (type === RndisMsg.PACKET) {
        if (!this.transmit(data, at, length)) status = NvspStatus.FAIL;
      } else {
        if (q.index !== 0 || at !== first) {
          this.violation(`RNDIS control message 0x${type.toString(16)} ${q.index !== 0 ? 'on a sub-channel' : 'after a packet'}`);
          return NvspStatus.FAIL;
        }
        void channelType; // Linux marks control messages RMC_CONTROL; OpenVMM dispatches on the RNDIS type.
        try {
          this.rndisControlMessage(type, data.slice(at, at + length), length);
        } catch (e) {
          if (!(e instanceof RndisError)) throw e;
          this.violation(e.message);
          return NvspStatus.FAIL;
        }
        return NvspStatus.SUCCESS;
      }
      at += length;
    }
    return status;
  }

  /**
   * Copies GPA-direct ranges out of guest RAM into `gathered` (reused: what is sent on from it is
   * copied by the back end during the call); their length, or -1 (and a violation) if any lies
   * outside RAM or the total is too big.
   */
  private gather(ranges: readonly { byteCount: number; byteOffset: number; pfns: number[] }[]): number {
    let total = 0;
    for (const r of ranges) total += r.byteCount;
    if (total > MAX_GPA_DIRECT_BYTES) return void this.violation(`GPA-direct data of ${total} bytes exceeds ${MAX_GPA_DIRECT_BYTES}`), -1;
    if (this.gathered.length < total) this.gathered = new Uint8Array(Math.max(total, 2 * this.gathered.length, 4096));
    const out = this.gathered;
    let at = 0;
    for (const r of ranges) {
      let left = r.byteCount;
      let off = r.byteOffset;
      for (const pfn of r.pfns) {
        if (left === 0) break;
        const n = Math.min(left, 4096 - off);
        const gpa = pfn * 4096 + off;
        if (!this.mem.contains(gpa, n)) return void this.violation(`GPA-direct page 0x${pfn.toString(16)} is outside guest RAM`), -1;
        hostRead(this.mem, gpa, out.subarray(at, at + n)); // beneath any overlay page (gpa-map.ts)
        at += n;
        left -= n;
        off = 0;
      }
    }
    return total;
  }

  private gathered = new Uint8Array(0);

  /** One RNDIS data packet from the guest, `msgLength` bytes at buf[at..]: checks, offloads, out to the back end. False if dropped. */
  private transmit(buf: Uint8Array, at: number, msgLength: number): boolean {
    const pkt = this.txPacket.clear();
    try {
      readRndisPacketHost(buf, at, msgLength, pkt, this.fields);
    } catch (e) {
      if (!(e instanceof RndisError)) throw e;
      this.stats.txDropped.badRndis++;
      this.violation(e.message);
      return false;
    }
    const start = at + pkt.dataOffset;
    const length = pkt.dataLength;
    const ppis = pkt.ppis;
    if (ppis.length === 0) return this.transmitPlain(buf, start, length);
    if (!this.txReady()) return false;
    const lso = ppis.some((x) => !x.internal && x.type === PpiType.TCP_LARGESEND);
    if (!lso && length > this.adapter.mtu) {
      this.stats.txDropped.tooBig++;
      return false;
    }
    if (!this.adapter.linkUp) {
      this.stats.txDropped.linkDown++;
      return false;
    }
    const r = applyTxOffloads(subarrayOf(buf, start, start + length), ppis, this.adapter.mtu);
    if ('error' in r) {
      this.stats.txDropped.badOffload++;
      this.violation(r.error);
      return false;
    }
    if (r.checksummed) this.stats.txChecksummed++;
    if (r.segmented) this.stats.txSegmented++;
    for (const f of r.frames) {
      this.stats.txFrames++;
      this.stats.txBytes += f.length;
      this.link.transmit(f);
    }
    return true;
  }

  /** Whether the guest may send frames now (RNDIS initialized); a violation if not. */
  private txReady(): boolean {
    if (this.rndisState === 'initialized') return true;
    this.stats.txDropped.badRndis++;
    this.violation('RNDIS packet before INITIALIZE');
    return false;
  }

  /**
   * A frame with no offload asked for (the usual one), at buf[start, start + length): it goes out
   * as the guest wrote it. A frame still in guest memory is copied out first: what the back end
   * reads of it (a switch its addresses, the receiving NIC its filter, then its bytes) must be
   * one frame, not bytes the guest, in a worker alongside, could change in between.
   */
  private transmitPlain(buf: Uint8Array, start: number, length: number): boolean {
    if (!this.txReady()) return false;
    if (length > this.adapter.mtu) {
      this.stats.txDropped.tooBig++;
      return false;
    }
    if (!this.adapter.linkUp) {
      this.stats.txDropped.linkDown++;
      return false;
    }
    this.stats.txFrames++;
    this.stats.txBytes += length;
    if (buf !== this.mem.bytes) this.transmitOut(buf, start, length);
    else {
      if (this.txFrame.length < length) this.txFrame = new Uint8Array(Math.max(length, 2 * this.txFrame.length));
      this.txCopier.copy(this.txFrame, 0, buf, start, length);
      this.transmitOut(this.txFrame, 0, length);
    }
    return true;
  }

  /** What the one-pass reading of a plain message found (reused for each). */
  private readonly plainTx: PlainPacketWords = { msgLength: 0, dataOffset: 0, dataLength: 0 };

  /** Reads the fields of the guest's messages (in guest memory, or a copy of them). */
  private readonly fields = new FieldReader();
  /** The frame being transmitted, out of guest memory (reused: the back end copies what it keeps during the call). */
  private txFrame = new Uint8Array(2048);
  private readonly txCopier = new WordCopier();

  /** The PPIs of the guest packet being transmitted (reused: none made for a packet without them). */
  private readonly txPacket = new PpiList();

  private completeTx(q: Queue, transId: bigint, status: number): void {
    if (q.completions.length === 0 && q.ch.sendCompletion(transId, txCompletion(status))) return;
    q.completions.push({ transId, status });
  }

  private flushCompletions(q: Queue): void {
    while (q.completions.length) {
      const c = q.completions[0]!;
      if (!q.ch.sendCompletion(c.transId, txCompletion(c.status))) {
        q.ch.waitForSpace(128);
        return;
      }
      q.completions.shift();
    }
  }

  /** An RNDIS control message (a private copy): INITIALIZE, QUERY, SET, RESET, KEEPALIVE, HALT. */
  private rndisControlMessage(type: number, msg: Uint8Array, length: number): void {
    switch (type) {
      case RndisMsg.INIT: {
        const r = rndisBody(RndisInitializeRequest, msg, length);
        this.rndisState = 'initialized';
        this.queueControl(
          rndisControl(RndisMsg.INIT_C, RndisInitializeComplete, {
            req_id: r.req_id,
            status: RndisStatus.SUCCESS,
            major_ver: RNDIS_MAJOR_VERSION,
            minor_ver: RNDIS_MINOR_VERSION,
            dev_flags: RNDIS_DF_CONNECTIONLESS,
            medium: RNDIS_MEDIUM_802_3,
            max_pkt_per_msg: MAX_PACKETS_PER_MESSAGE,
            max_xfer_size: MAX_TRANSFER_SIZE,
            pkt_alignment_factor: PACKET_ALIGNMENT_FACTOR,
            af_list_offset: 0,
            af_list_size: 0,
          }),
        );
        return;
      }
      case RndisMsg.QUERY: {
        const r = rndisBody(RndisQueryRequest, msg, length);
        const a = queryOid(this.adapter, r.oid);
        this.queueControl(rndisControl(RndisMsg.QUERY_C, RndisQueryComplete, { req_id: r.req_id, status: a.status, info_buflen: a.info.length, info_buf_offset: RndisQueryComplete.size }, a.info));
        return;
      }
      case RndisMsg.SET: {
        const r = rndisBody(RndisSetRequest, msg, length);
        let status: number;
        try {
          const info = rndisInfo(msg, length, RndisSetRequest.size, r.info_buf_offset, r.info_buflen, 'info_buf');
          const out = setOid(this.adapter, r.oid, info);
          status = out.status;
          if (out.macChanged) this.ctx.log(`netvsp ${this.instanceId}: MAC address now ${macString(this.adapter.currentMac)}`);
        } catch (e) {
          if (!(e instanceof RndisError)) throw e;
          this.violation(e.message);
          status = RndisStatus.INVALID_DATA;
        }
        this.queueControl(rndisControl(RndisMsg.SET_C, RndisSetComplete, { req_id: r.req_id, status }));
        return;
      }
      case RndisMsg.KEEPALIVE: {
        const r = rndisBody(RndisKeepaliveRequest, msg, length);
        this.queueControl(rndisControl(RndisMsg.KEEPALIVE_C, RndisKeepaliveComplete, { req_id: r.req_id, status: RndisStatus.SUCCESS }));
        return;
      }
      case RndisMsg.RESET:
        // The filter is lost in a reset, so the completion says the addressing was reset.
        this.adapter.packetFilter = 0;
        this.queueControl(rndisControl(RndisMsg.RESET_C, RndisResetComplete, { status: RndisStatus.SUCCESS, addressing_reset: 1 }));
        return;
      case RndisMsg.HALT:
        // No response (OpenVMM); the device stops passing frames.
        this.rndisState = 'halted';
        return;
      default:
        this.violation(`RNDIS message type 0x${type.toString(16)} is not a request`);
    }
  }

  // --- To the guest ---------------------------------------------------------------------------

  /** A control response or indication: through a receive section on the primary, or queued. */
  private queueControl(msg: Uint8Array): void {
    if (this.controlBytes + msg.length > MAX_CONTROL_QUEUED_BYTES) {
      this.stats.controlDropped++;
      return this.violation(`more than ${MAX_CONTROL_QUEUED_BYTES} bytes of RNDIS control responses waiting`);
    }
    this.control.push(msg);
    this.controlBytes += msg.length;
    this.flushControl();
  }

  private flushControl(): void {
    const q = this.queues[0];
    while (q && this.control.length) {
      if (!this.sendInSection(q, this.control[0]!, RndisChannelType.CONTROL, 0)) return;
      this.controlBytes -= this.control.shift()!.length;
    }
  }

  /**
   * Writes `frame` as an RNDIS packet message into a free receive section (leaving the control
   * reserve) and adds the section to the queue's batch. 'full' when no section is free (or the
   * buffer is not shared now); 'tooBig' when the message cannot fit a section (only after an MTU
   * change the buffer was not sized for).
   */
  private fillSection(q: Queue, bytes: Uint8Array, at: number, length: number): 'written' | 'full' | 'tooBig' {
    const rb = this.recvBuffer;
    const b = q.batch;
    if (!rb || !rb.buf.live(this.queues[0]?.ch ?? q.ch)) return 'full';
    if (b.buffer !== rb) {
      // Frames written into a buffer the guest has since revoked never reach it.
      if (b.count) this.stats.rxDropped.notReady += b.count;
      b.count = 0;
      b.bytes = 0;
      b.buffer = rb;
    }
    const ppis = this.rxPpis(bytes, at, length);
    const len = RNDIS_HEADER_SIZE + RndisPacket.size + ppiBytes(ppis.length) + length;
    if (len > rb.sectionSize) return 'tooBig';
    if (rb.pool.available <= RESERVED_CONTROL_SECTIONS) return 'full';
    const s = rb.pool.take();
    const offset = s * rb.sectionSize;
    const gpa = rb.buf.gpaOf(offset, len);
    if (gpa >= 0) {
      // In place, as OpenVMM fills a receive section: the header's fields, then the frame.
      const mem = this.mem.bytes;
      const hl = writeRndisPacketHeaderWords(mem, this.memWords, gpa, length, ppis);
      this.frameCopier.copy(mem, gpa + hl, bytes, at, length);
    } else {
      if (this.rxScratch.length < len) this.rxScratch = new Uint8Array(rb.sectionSize);
      const msg = this.rxScratch.subarray(0, len);
      this.frameCopier.copy(msg, writeRndisPacketHeader(msg, 0, length, ppis), bytes, at, length);
      rb.buf.write(offset, msg);
    }
    const i = b.count++;
    b.sections[i] = s;
    b.offsets[i] = offset;
    b.lengths[i] = len;
    b.bytes += length;
    return 'written';
  }

  /**
   * Hands the waiting frames to the guest: those already in sections, then the copies waiting
   * for one, as many as there are sections for (leaving the control reserve). All the sections of
   * a batch are named by one transfer-page packet whose transaction id is the first section; the
   * guest's completion of that id returns them all (OpenVMM netvsp sends its ready receive
   * buffers together, up to RX_BATCH_SIZE).
   */
  private flushRx(q: Queue): void {
    const rb = this.recvBuffer;
    const b = q.batch;
    if (!rb) {
      // Gone meanwhile: dropped with the buffer.
      q.rx.length = 0;
      b.count = 0;
      return;
    }
    if (!rb.buf.live(this.queues[0]?.ch ?? q.ch)) return;
    if (b.buffer !== rb && b.count) {
      this.stats.rxDropped.notReady += b.count;
      b.count = 0;
    }
    for (;;) {
      let taken = 0;
      while (taken < q.rx.length && b.count < RX_BATCH_SIZE) {
        const f = q.rx[taken]!;
        const r = this.fillSection(q, f, 0, f.length);
        if (r === 'full') break;
        if (r === 'tooBig') this.stats.rxDropped.tooBig++; // it leaves the queue: dropped, counted once
        taken++;
      }
      if (taken) q.rx.splice(0, taken);
      if (b.count === 0 || !this.sendBatch(q, rb)) return;
      if (q.rx.length === 0) return;
    }
  }

  /** Sends the queue's batch as one transfer-page packet; false (the batch kept) when the ring is full. */
  private sendBatch(q: Queue, rb: RecvBuffer): boolean {
    const b = q.batch;
    const n = b.count;
    const first = b.sections[0]!;
    const nvsp = this.rxNvsp;
    writeTransferPagesHeader(b.header, rb.id, n, b.lengths, b.offsets, BigInt(first), nvsp.length);
    const header = b.header.subarray(0, transferPagesHeaderSize(n));
    this.rxParts[0] = header;
    this.rxParts[1] = nvsp;
    if (!q.ch.send(this.rxParts)) {
      q.ch.waitForSpace(header.length + nvsp.length);
      return false;
    }
    // One copy of the batch's section list (Array.from would walk the typed array through its iterator).
    const sections = b.sections.slice(0, n);
    for (let i = 0; i < n; i++) rb.batchOf[sections[i]!] = first;
    rb.batches.set(first, sections);
    this.stats.rxFrames += n;
    this.stats.rxBytes += b.bytes;
    this.stats.rxPerChannel[q.index] = (this.stats.rxPerChannel[q.index] ?? 0) + n;
    b.count = 0;
    b.bytes = 0;
    return true;
  }

  /** The NVSP message of every receive transfer-page packet: SEND_RNDIS_PKT of data, no send section. */
  private readonly rxNvsp = nvspRndisPacket(RndisChannelType.DATA, NETVSC_INVALID_INDEX, 0);
  private readonly rxParts: Uint8Array[] = [];

  /** The receive PPIs of one frame: the checksum verdict, and under vRSS its hash (reused objects). */
  private rxPpis(bytes: Uint8Array, at: number, length: number): readonly PpiValue[] {
    const rss = this.adapter.rss;
    // Only an IPv4 frame has checksums to verify or a flow to hash: others need no view of their own.
    const ip = length >= ETH_HLEN && be16(bytes, at + Eth.TYPE) === EtherType.IPV4;
    const frame = ip ? subarrayOf(bytes, at, at + length) : undefined;
    this.rxCsumPpi.value = frame ? this.rxChecksumInfo(frame) : 0;
    const flow = rss && frame ? flowOf(frame) : undefined;
    if (!rss || !flow) return this.rxCsumOnly;
    this.rxHashPpi.value = rssHash(rss.key, flow);
    return this.rxCsumAndHash;
  }

  private readonly rxCsumPpi = { type: PpiType.TCPIP_CHKSUM, value: 0 };
  private readonly rxHashPpi = { type: PpiType.NBL_HASH_VALUE, value: 0 };
  private readonly rxCsumOnly: readonly PpiValue[] = [this.rxCsumPpi];
  private readonly rxCsumAndHash: readonly PpiValue[] = [this.rxCsumPpi, this.rxHashPpi];

  /** Guest memory as words, for the headers written into receive sections; the copier of frames into them. */
  private readonly memWords = new WordView();
  /** The words of `gathered` (GPA-direct messages are read the same one-pass way). */
  private readonly gatheredWords = new WordView();
  private readonly frameCopier = new WordCopier();

  /** Where a message is built when its section is not plain RAM (under an overlay page): reused. */
  private rxScratch = new Uint8Array(0);

  /** The receive checksum PPI: what the host verified of the frame's IPv4 and TCP/UDP checksums. */
  private rxChecksumInfo(frame: Uint8Array): number {
    const ip = ipv4Of(frame);
    if (!ip || ip.fragmented) return 0;
    const ipOk = ipv4ChecksumOk(frame, ip);
    const l4 = ip.protocol === IpProto.TCP || ip.protocol === IpProto.UDP ? l4ChecksumOk(frame, ip) : undefined;
    const tcp = ip.protocol === IpProto.TCP;
    let v = ipOk ? RX_CSUM.ip_checksum_succeeded : RX_CSUM.ip_checksum_failed;
    if (l4 !== undefined) v |= tcp ? (l4 ? RX_CSUM.tcp_checksum_succeeded : RX_CSUM.tcp_checksum_failed) : l4 ? RX_CSUM.udp_checksum_succeeded : RX_CSUM.udp_checksum_failed;
    return v;
  }

  /**
   * Takes a section (leaving `reserve` free), copies `msg` in and sends the transfer-page packet
   * naming it; the section's index is the transaction id the guest completes (OpenVMM). False
   * when no section or no ring space: the caller keeps the message for later.
   */
  private sendInSection(q: Queue, msg: Uint8Array, channelType: number, reserve: number): boolean {
    const rb = this.recvBuffer;
    if (!rb || !rb.buf.live(this.queues[0]?.ch ?? q.ch)) return false;
    if (msg.length > rb.sectionSize) {
      this.violation(`a ${msg.length}-byte RNDIS message does not fit a ${rb.sectionSize}-byte section`);
      return true; // dropped: it never will fit
    }
    if (rb.pool.available <= reserve) return false;
    const s = rb.pool.take();
    rb.buf.write(s * rb.sectionSize, msg);
    const nvsp = nvspRndisPacket(channelType, NETVSC_INVALID_INDEX, 0);
    if (q.ch.send(transferPages(rb.id, [{ byteCount: msg.length, byteOffset: s * rb.sectionSize }], BigInt(s), nvsp))) return true;
    rb.pool.give(s);
    q.ch.waitForSpace(128);
    return false;
  }

  /** The device's state as data (for --json, sysfs notes and tests). */
  state(): Record<string, unknown> {
    return {
      instance: this.instanceId,
      mac: macString(this.adapter.currentMac),
      phase: this.phase,
      nvsp: this.version,
      ndis: this.ndisVersion && `${this.ndisVersion.major}.${this.ndisVersion.minor}`,
      mtu: this.adapter.mtu,
      link: this.adapter.linkUp ? 'up' : 'down',
      queues: this.openQueues,
      rss: this.adapter.rss !== undefined,
      stats: this.stats,
      violations: this.violationCount,
    };
  }
}

/** Offers a NIC on the host. */
export function attachNetvsp(ctx: HostContext, instanceId: string, options: NicOptions = {}): NetvspDevice {
  return new NetvspDevice(ctx, instanceId, options);
}
