// storvsc, as Linux 6.1's drivers/scsi/storvsc_drv.c drives a storvsp: the channel opened with
// 128 KiB rings and max_pkt_size STORVSC_MAX_PKT_SIZE; storvsc_channel_init (BEGIN_INITIALIZATION,
// the protocol versions newest first, QUERY_PROPERTIES, FCHBA_DATA on Fibre Channel,
// END_INITIALIZATION, each waited for 5 s under VMBUS_RQST_INIT); handle_multichannel_storage
// (min(online CPUs - 1, max_channel_cnt) sub-channels, opened as they are offered);
// storvsc_queuecommand and storvsc_do_io (the SRB, its GPA-direct range, the channel of the
// issuing CPU as get_og_chn picks it, the blk-mq tag as transaction id); the channel callback
// (the packet checks, COMPLETE_IO, ENUMERATE_BUS and REMOVE_DEVICE, unsolicited FCHBA_DATA);
// storvsc_on_io_completion and storvsc_handle_error (the INQUIRY/MODE SENSE override, the SRB
// status to host byte mapping, LUN removal, rescans); the host reset handler; removal.
import type { GuestChannel } from '../../../vmbus/client/channel.js';
import type { VmbusClient, VmbusDriver } from '../../../vmbus/client/client.js';
import { VmbusError } from '../../../vmbus/client/errors.js';
import { vmbusRingSize } from '../../../vmbus/client/ring-size.js';
import { GPA_DIRECT_PFNS_AT, gpaDirectHeaderLength, inband, INBAND_PAYLOAD_AT, putGpaDirectHeader, putInbandHeader } from '../../../vmbus/packet.js';
import { HV_HYP_PAGE_SIZE } from '../../../memory/pages.js';
import { DeviceClass } from '../../../vmbus/wire/guids.js';
import { PacketDescriptor, type PacketHead, type ParsedPacket } from '../../../vmbus/wire/packets.js';
import type { GuestModule, GuestServices } from '../../device.js';
import { normalizeSense, ScsiOp, ScsiStatus } from '../scsi.js';
import {
  ChannelProperties,
  FcWwnPacket,
  LINUX_6_1_VMSTOR_VERSIONS,
  ProtocolVersion,
  REQUEST_COMPLETION_FLAG,
  SP_UNTAGGED,
  SRB_SIMPLE_TAG_REQUEST,
  SrbFlags,
  SrbStatus,
  srbStatusCode,
  STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL,
  StorvscRequestType,
  STORVSC_FC_MAX_CHANNELS,
  STORVSC_FC_MAX_LUNS_PER_TARGET,
  STORVSC_FC_MAX_TARGETS,
  STORVSC_FC_MAX_XFER_SIZE,
  STORVSC_IDE_MAX_CHANNELS,
  STORVSC_IDE_MAX_LUNS_PER_TARGET,
  STORVSC_IDE_MAX_TARGETS,
  STORVSC_MAX_CHANNELS,
  STORVSC_MAX_CMD_LEN,
  STORVSC_MAX_LUNS_PER_TARGET,
  STORVSC_MAX_PKT_SIZE,
  STORVSC_MAX_TARGETS,
  STORVSC_SENSE_BUFFER_SIZE,
  VMBUS_RQST_INIT,
  VMBUS_RQST_RESET,
  VmscsiRequest,
  VmstorVersion,
  vmstorVersionString,
  VstorOp,
  VSTOR_PACKET_HEADER,
  VstorPacket,
} from '../wire.js';
import { le32, put16, put32, Vstor } from '../srb-fields.js';
import { HostByte, putHvPfns, putHvPfnWords, ScsiCore, type ScsiCmnd, type ScsiDevice, type ScsiHost } from './scsi-core.js';

/** storvsc_ringbuffer_size (128 KiB, rounded by VMBUS_RING_SIZE for the guest's pages). */
export const STORVSC_RINGBUFFER_SIZE = 128 * 1024;
/** storvsc_vcpus_per_sub_channel and ring_avail_percent_lowater. */
export const STORVSC_VCPUS_PER_SUB_CHANNEL = 4;
export const RING_AVAIL_PERCENT_LOWATER = 10;
/** storvsc_timeout: the request timeout the SCSI layer arms (and storvsc_eh_timed_out resets). */
export const STORVSC_TIMEOUT_S = 180;
/** Waits of storvsc_execute_vstor_op and handle_multichannel_storage. */
const VSTOR_OP_TIMEOUT_NS = 5e9;
const SUB_CHANNEL_TIMEOUT_NS = 10e9;
/** MAX_MULTIPAGE_BUFFER_PACKET (include/linux/hyperv.h): the largest request storvsc_drv_init sizes the queue for. */
const MAX_MULTIPAGE_BUFFER_PACKET = 0x120;

export type StorvscKind = 'scsi' | 'ide' | 'fc';

/** max_outstanding_req_per_channel of storvsc_drv_init for a ring of `ringBytes`. */
export function maxOutstandingPerChannel(ringBytes: number, pageSize: number): number {
  const perRequest = Math.ceil((MAX_MULTIPAGE_BUFFER_PACKET + VstorPacket.size + 8) / 8) * 8;
  return Math.floor((ringBytes - pageSize) / perRequest);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * A u8, u16 or u32 field of `v` at byte `at` into zeroed little-endian words (the field within
 * one word, as every vmscsi_request field is at its natural alignment).
 */
function orLe(words: Uint32Array, at: number, v: number): void {
  const i = at >>> 2;
  words[i] = words[i]! | (v << ((at & 3) << 3));
}

/** The words of a packet's descriptor holding its trans_id (a little-endian u64, word aligned). */
const TRANS_ID_WORD = PacketDescriptor.offsets.trans_id / 4;
if (!Number.isInteger(TRANS_ID_WORD) || GPA_DIRECT_PFNS_AT % 8 !== 0) throw new Error('storvsc: the descriptor\'s trans_id or the PFNs are not word aligned');

const u64be = (b: Uint8Array): bigint => new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, false);

interface InitRequest {
  packet: Uint8Array | undefined;
}

/** One hardware queue's tags: the command holding each, and a bound below which every tag is taken. */
interface TagSet {
  readonly cmds: (ScsiCmnd | undefined)[];
  lowestFree: number;
}

/** One storvsc device: its channels, the SCSI host it registered and the requests in flight. */
export class StorvscDevice {
  readonly kind: StorvscKind;
  /** The negotiated protocol (vmstor_proto_version). */
  version = 0;
  maxTransferBytes = 0;
  /** num_sc: sub-channels asked for. */
  numSc = 0;
  /** stor_chns[cpu]: the channel each CPU's I/O goes to; alloced_cpus: the CPUs with one of their own. */
  readonly storChns = new Map<number, GuestChannel>();
  readonly allocedCpus = new Set<number>();
  readonly subchannels: GuestChannel[] = [];
  host: ScsiHost | undefined;
  destroy = false;
  /** num_outstanding_req. */
  outstanding = 0;
  /** FC port and node names (fc_host port_name, node_name). */
  portName = 0n;
  nodeName = 0n;
  /** blk-mq tags per hardware queue (one per CPU), by CPU number: an array, looked up on every request and completion. */
  private readonly tags: (TagSet | undefined)[] = [];
  private readonly initRequest: InitRequest = { packet: undefined };
  private readonly resetRequest: InitRequest = { packet: undefined };
  private packetBuffer = new Uint8Array(0);
  private packetWords = new Uint32Array(0);
  private canQueue = 1;
  /** Bad packets seen (pktlen < minlen, unknown trans ids), for inspection. */
  badPackets = 0;
  /** handle_error_wq: an ordered work queue (one item at a time, in order); host_scan_work queued at most once. */
  private readonly errorWq: (() => void)[] = [];
  private errorWqRunning = false;
  private scanQueued = false;

  constructor(
    readonly driver: StorvscDriver,
    readonly channel: GuestChannel,
  ) {
    const c = channel.offer.classId;
    this.kind = c === DeviceClass.IDE ? 'ide' : c === DeviceClass.SYNTHFC ? 'fc' : 'scsi';
  }

  private get services(): GuestServices {
    return this.driver.services;
  }

  private get vmbus(): VmbusClient {
    return this.driver.vmbus;
  }

  /** dev_err / dev_warn on the hv_device: "hv_storvsc <instance guid>: ...". */
  devLog(level: 'err' | 'warn' | 'info', text: string): void {
    this.services.log(level, `hv_storvsc ${this.channel.deviceName}: ${text}`);
  }

  // --- Probe ----------------------------------------------------------------------------------

  /** storvsc_probe. Throws VmbusError when the host does not answer as it must. */
  probe(): void {
    const online = this.vmbus.transport.onlineCpus().length;
    const maxSubChannels = this.kind === 'ide' ? 0 : Math.floor((online - 1) / STORVSC_VCPUS_PER_SUB_CHANNEL);
    const ringBytes = vmbusRingSize(STORVSC_RINGBUFFER_SIZE, this.vmbus.transport.memory.pageSize);
    this.canQueue = Math.floor((maxOutstandingPerChannel(ringBytes, this.vmbus.transport.memory.pageSize) * (maxSubChannels + 1) * (100 - RING_AVAIL_PERCENT_LOWATER)) / 100);
    this.connect(ringBytes);
    const core = this.driver.core;
    const host = core.addHost({
      name: 'storvsc_host_t',
      queuecommand: (cmd, cpu) => this.queuecommand(cmd, cpu),
      configure: (sdev) => this.configure(sdev),
    });
    this.host = host;
    switch (this.kind) {
      case 'fc':
        host.maxLun = STORVSC_FC_MAX_LUNS_PER_TARGET;
        host.maxId = STORVSC_FC_MAX_TARGETS;
        host.maxChannel = STORVSC_FC_MAX_CHANNELS - 1;
        break;
      case 'scsi':
        host.maxLun = STORVSC_MAX_LUNS_PER_TARGET;
        host.maxId = STORVSC_MAX_TARGETS;
        host.maxChannel = STORVSC_MAX_CHANNELS - 1;
        break;
      default:
        host.maxLun = STORVSC_IDE_MAX_LUNS_PER_TARGET;
        host.maxId = STORVSC_IDE_MAX_TARGETS;
        host.maxChannel = STORVSC_IDE_MAX_CHANNELS - 1;
    }
    // Any reasonable host reports a multiple of the page; round down anyway (storvsc_probe).
    let maxXfer = Math.floor(this.maxTransferBytes / HV_HYP_PAGE_SIZE) * HV_HYP_PAGE_SIZE;
    if (this.kind === 'fc') maxXfer = Math.min(maxXfer, STORVSC_FC_MAX_XFER_SIZE);
    host.maxSectors = maxXfer >> 9;
    host.canQueue = this.canQueue;
    if (this.kind === 'ide') {
      // The IDE device's target id is bytes 4 and 5 of its instance GUID (Data2, little-endian).
      const target = parseInt(this.channel.offer.instanceId.slice(9, 13), 16);
      this.driver.core.scanHost(host, [[0, target]]);
    } else {
      core.scanHost(host);
    }
  }

  /** storvsc_connect_to_vsp: open the channel, then storvsc_channel_init. */
  private connect(ringBytes: number): void {
    this.channel.open({
      sendRingBytes: ringBytes,
      recvRingBytes: ringBytes,
      userData: new Uint8Array(ChannelProperties.size),
      maxPacketSize: STORVSC_MAX_PKT_SIZE,
      onEvent: (ch) => this.onChannelCallback(ch),
    });
    this.setStorChn(this.channel.targetCpu, this.channel);
    this.allocedCpus.add(this.channel.targetCpu);
    try {
      this.channelInit();
    } catch (e) {
      this.channel.close();
      throw e;
    }
  }

  /** storvsc_execute_vstor_op: one init request under VMBUS_RQST_INIT, waited for 5 s. */
  private executeVstorOp(op: number, body?: Uint8Array, statusCheck = true, timeoutNs = VSTOR_OP_TIMEOUT_NS, request = this.initRequest, id = VMBUS_RQST_INIT): Uint8Array {
    const packet = new Uint8Array(VstorPacket.size);
    const dv = new DataView(packet.buffer);
    dv.setUint32(VstorPacket.offsets.operation, op, true);
    dv.setUint32(VstorPacket.offsets.flags, REQUEST_COMPLETION_FLAG, true);
    if (body) packet.set(body, VSTOR_PACKET_HEADER);
    request.packet = undefined;
    if (!this.channel.sendPacket(inband(packet, id, true))) throw new VmbusError('EAGAIN', 'the ring to the host is full');
    if (!this.vmbus.transport.waitUntil(() => request.packet !== undefined, timeoutNs)) throw new VmbusError('ETIMEDOUT', `no answer to ${op}`);
    const answer = request.packet!;
    if (statusCheck) {
      const a = new DataView(answer.buffer, answer.byteOffset, answer.byteLength);
      if (a.getUint32(0, true) !== VstorOp.COMPLETE_IO || a.getUint32(VstorPacket.offsets.status, true) !== 0) throw new VmbusError('EINVAL', `operation ${op} failed`);
    }
    return answer;
  }

  /** storvsc_channel_init. */
  private channelInit(): void {
    this.executeVstorOp(VstorOp.BEGIN_INITIALIZATION);
    let status = 1;
    let answer: Uint8Array | undefined;
    for (const v of LINUX_6_1_VMSTOR_VERSIONS) {
      answer = this.executeVstorOp(VstorOp.QUERY_PROTOCOL_VERSION, ProtocolVersion.encode({ major_minor: v, revision: 0 }), false);
      const a = new DataView(answer.buffer, answer.byteOffset, answer.byteLength);
      if (a.getUint32(0, true) !== VstorOp.COMPLETE_IO) throw new VmbusError('EINVAL', 'QUERY_PROTOCOL_VERSION not completed');
      status = a.getUint32(VstorPacket.offsets.status, true);
      if (status === 0) {
        this.version = v;
        break;
      }
    }
    if (status !== 0) {
      this.devLog('err', 'Obsolete Hyper-V version');
      throw new VmbusError('EINVAL', 'no common storage protocol version');
    }
    this.services.note(`hv_storvsc ${this.channel.deviceName}: storage protocol ${vmstorVersionString(this.version)}`);
    const props = ChannelProperties.decode(this.executeVstorOp(VstorOp.QUERY_PROPERTIES), VSTOR_PACKET_HEADER);
    const maxChns = props.max_channel_cnt;
    const multi = (props.flags & STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL) !== 0;
    this.maxTransferBytes = props.max_transfer_bytes;
    if (this.kind === 'fc') this.cacheWwn(this.executeVstorOp(VstorOp.FCHBA_DATA));
    this.executeVstorOp(VstorOp.END_INITIALIZATION);
    if (multi) this.handleMultichannelStorage(maxChns);
  }

  /** cache_wwn: the active pair of names (port, node), big-endian (wwn_to_u64). */
  private cacheWwn(packet: Uint8Array): void {
    if (packet.length < VSTOR_PACKET_HEADER + FcWwnPacket.size) return;
    const w = FcWwnPacket.decode(packet, VSTOR_PACKET_HEADER);
    this.nodeName = u64be(w.primary_active ? w.primary_node_wwn : w.secondary_node_wwn);
    this.portName = u64be(w.primary_active ? w.primary_port_wwn : w.secondary_port_wwn);
  }

  /** handle_multichannel_storage: as many sub-channels as online CPUs but one allow, up to the host's count. */
  private handleMultichannelStorage(maxChns: number): void {
    const numSc = Math.min(this.vmbus.transport.onlineCpus().length - 1, maxChns);
    if (numSc <= 0) return;
    this.numSc = numSc;
    this.channel.onSubchannel = (sc) => this.handleScCreation(sc);
    const body = new Uint8Array(2);
    body[0] = numSc & 0xff;
    body[1] = numSc >> 8;
    let answer: Uint8Array;
    try {
      answer = this.executeVstorOp(VstorOp.CREATE_SUB_CHANNELS, body, false, SUB_CHANNEL_TIMEOUT_NS);
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      this.devLog('err', e.code === 'ETIMEDOUT' ? 'Failed to create sub-channel: timed out' : `Failed to create sub-channel: err=${e.errno}`);
      return;
    }
    const a = new DataView(answer.buffer, answer.byteOffset, answer.byteLength);
    const op = a.getUint32(0, true);
    const sts = a.getUint32(VstorPacket.offsets.status, true) | 0;
    if (op !== VstorOp.COMPLETE_IO || sts !== 0) this.devLog('err', `Failed to create sub-channel: op=${op}, sts=${sts}`);
  }

  /** handle_sc_creation: open the sub-channel as the primary and give it its CPU. */
  private handleScCreation(sc: GuestChannel): void {
    if (this.destroy) return;
    const ringBytes = vmbusRingSize(STORVSC_RINGBUFFER_SIZE, this.vmbus.transport.memory.pageSize);
    try {
      sc.open({ sendRingBytes: ringBytes, recvRingBytes: ringBytes, userData: new Uint8Array(ChannelProperties.size), maxPacketSize: STORVSC_MAX_PKT_SIZE, onEvent: (ch) => this.onChannelCallback(ch) });
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      this.devLog('err', `Failed to open sub-channel: err=${e.errno}`);
      return;
    }
    this.subchannels.push(sc);
    this.setStorChn(sc.targetCpu, sc);
    this.allocedCpus.add(sc.targetCpu);
  }

  /** storvsc_device_configure (slave_configure) and storvsc_device_alloc's flags. */
  private configure(sdev: ScsiDevice): void {
    sdev.tryVpdPages = true;
    sdev.noReportOpcodes = true;
    sdev.noWriteSame = true;
    if (sdev.vendor.startsWith('Msft')) {
      // WIN8 and WIN8.1 hosts claim SPC-3 for Microsoft's devices; WIN10 and later allow WRITE SAME.
      if (this.version === VmstorVersion.WIN8 || this.version === VmstorVersion.WIN8_1) sdev.scsiLevel = 6;
      if (this.version >= VmstorVersion.WIN10) sdev.noWriteSame = false;
    }
  }

  // --- I/O --------------------------------------------------------------------------------------

  /** get_og_chn: a CPU with no channel of its own gets one of the allocated CPUs', by hash. */
  private getOgChn(qNum: number): GuestChannel {
    if (this.numSc === 0 || this.allocedCpus.size === 0) {
      this.setStorChn(qNum, this.channel);
      return this.channel;
    }
    const cpus = this.allocedSorted();
    const ch = this.storChns.get(cpus[qNum % cpus.length]!) ?? this.channel;
    this.setStorChn(qNum, ch);
    return ch;
  }

  /** stor_chns[cpu] = ch, in the Map and in its copy by CPU number (chnByCpu). */
  private setStorChn(cpu: number, ch: GuestChannel): void {
    this.storChns.set(cpu, ch);
    this.chnByCpu[cpu] = ch;
  }
  /** storChns as an array indexed by CPU number: selectChannel looks it up on every request. */
  private readonly chnByCpu: (GuestChannel | undefined)[] = [];

  /** alloced_cpus in ascending order (kept until a CPU joins). */
  private allocedSorted(): readonly number[] {
    if (this.allocedOrder.length !== this.allocedCpus.size) this.allocedOrder = [...this.allocedCpus].sort((a, b) => a - b);
    return this.allocedOrder;
  }
  private allocedOrder: number[] = [];

  /** hv_get_avail_to_write_percent of a channel's outbound ring. */
  private availPercent(ch: GuestChannel): number {
    return ch.availToWritePercent();
  }

  /** storvsc_do_io's choice of channel for an I/O issued on CPU `qNum`. */
  selectChannel(qNum: number): GuestChannel {
    const byCpu = this.chnByCpu;
    let out = byCpu[qNum];
    if (!out) return this.getOgChn(qNum);
    if (out.targetCpu !== qNum) return out;
    // Prefer another channel (on another CPU) with room, then this CPU's own, then any with room.
    // The others are tried from the next CPU up, wrapping around.
    const cpus = this.allocedSorted();
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < cpus.length; i++) {
        const cpu = cpus[i]!;
        if (pass === 0 ? cpu <= qNum : cpu >= qNum) continue;
        const ch = byCpu[cpu];
        if (ch && this.availPercent(ch) > RING_AVAIL_PERCENT_LOWATER) return ch;
      }
    }
    if (this.availPercent(out) > RING_AVAIL_PERCENT_LOWATER) return out;
    for (let i = 0; i < cpus.length; i++) {
      const ch = byCpu[cpus[i]!];
      if (ch && this.availPercent(ch) > RING_AVAIL_PERCENT_LOWATER) {
        out = ch;
        break;
      }
    }
    return out;
  }

  /** The buffer each request's packet is built in (one per device, grown to the largest packet). */
  private sendBuffer(bytes: number): Uint8Array {
    if (this.packetBuffer.length < bytes) {
      // Whole words: the vstor_packet, at a multiple of 8, is cleared a word at a time.
      this.packetBuffer = new Uint8Array(Math.ceil(Math.max(bytes, 2 * this.packetBuffer.length) / 4) * 4);
      this.packetWords = new Uint32Array(this.packetBuffer.buffer);
      this.packetParts = [];
    }
    return this.packetBuffer;
  }

  /** The first `length` bytes of the packet buffer as a packet's one part, made once per length. */
  private sendParts(length: number): readonly Uint8Array[] {
    return (this.packetParts[length] ??= [this.packetBuffer.subarray(0, length)]);
  }
  private packetParts: (readonly Uint8Array[])[] = [];
  /**
   * The GPA-direct header (descriptor, range count, the range's byte count and offset: the words
   * before the PFNs) of the last request queuecommand sent with a buffer, for its length and page
   * count; pfnCount -1: none yet.
   */
  private readonly directHeader = { words: new Uint32Array(GPA_DIRECT_PFNS_AT / 4), byteCount: -1, pfnCount: -1, length: 0 };
  /** The one GPA-direct range of the request being built (queuecommand): the buffer from its first byte. */
  private readonly directRange = { byteCount: 0, byteOffset: 0, pfnCount: 0 };

  /** blk_mq_get_tag: the lowest free tag of the hardware queue, or undefined when all canQueue are taken. */
  private allocTag(hwq: number, cmd: ScsiCmnd): number | undefined {
    let q = this.tags[hwq];
    if (!q) this.tags[hwq] = q = { cmds: [], lowestFree: 0 };
    for (let t = q.lowestFree; t < this.canQueue; t++) {
      if (q.cmds[t] === undefined) {
        q.cmds[t] = cmd;
        q.lowestFree = t + 1;
        return t;
      }
    }
    return undefined;
  }

  /** Frees the command's tag; cmd.tag keeps its number for the error report. */
  private freeTag(cmd: ScsiCmnd): void {
    const q = this.tags[cmd.hwq];
    if (!q || cmd.tag < 0 || q.cmds[cmd.tag] !== cmd) return;
    q.cmds[cmd.tag] = undefined;
    if (cmd.tag < q.lowestFree) q.lowestFree = cmd.tag;
  }

  /** scsi_host_find_tag for a transaction id (tag = id - 1, as blk_mq_unique_tag). */
  private findTag(id: bigint): ScsiCmnd | undefined {
    if (id < 1n || id > 0xffff_ffffn) return undefined;
    return this.findTagOf(Number(id));
  }

  /** findTag for an id of 1 to 2^32 - 1. */
  private findTagOf(id: number): ScsiCmnd | undefined {
    const unique = id - 1;
    return this.tags[unique >>> 16]?.cmds[unique & 0xffff];
  }

  /** storvsc_queuecommand + storvsc_do_io. */
  queuecommand(cmd: ScsiCmnd, cpu: number): 'ok' | 'busy' {
    const op = cmd.cdb[0]!;
    if (this.version <= VmstorVersion.WIN8 && (op === ScsiOp.WRITE_SAME || op === ScsiOp.SET_WINDOW)) {
      // storvsc_scsi_cmd_ok: legacy hosts do not handle these.
      cmd.hostByte = HostByte.DID_ERROR;
      this.host!.complete(cmd);
      return 'ok';
    }
    if (this.destroy) return 'busy';
    const hwq = cpu;
    const tag = this.allocTag(hwq, cmd);
    if (tag === undefined) return 'busy';
    cmd.hwq = hwq;
    cmd.tag = tag;
    const transId = ((hwq << 16) | tag) + 1;
    // The packet is built in the device's own buffer, field by field at the declared offsets:
    // the descriptor (and the one GPA-direct range of the buffer's pages), then the vstor_packet.
    const pfnCount = cmd.buffer && cmd.length > 0 ? Math.ceil(cmd.length / HV_HYP_PAGE_SIZE) : -1;
    const payloadAt = pfnCount >= 0 ? gpaDirectHeaderLength(pfnCount) : INBAND_PAYLOAD_AT;
    const out = this.sendBuffer(payloadAt + VstorPacket.size);
    let length: number;
    const header = this.directHeader;
    if (pfnCount >= 0 && LITTLE_ENDIAN && header.byteCount === cmd.length && header.pfnCount === pfnCount) {
      // The header putGpaDirectHeader wrote for the last request of this length and page count,
      // again (its words up to the PFNs, which are the request's own), with this request's id.
      const words = this.packetWords;
      const from = header.words;
      for (let i = 0; i < from.length; i++) words[i] = from[i]!;
      words[TRANS_ID_WORD] = transId;
      words[TRANS_ID_WORD + 1] = 0;
      length = header.length;
    } else if (pfnCount >= 0) {
      // The range's record is the device's own, filled in per request: no object made for each.
      const range = this.directRange;
      range.byteCount = cmd.length;
      range.pfnCount = pfnCount;
      length = putGpaDirectHeader(out, range, VstorPacket.size, transId);
      header.words.set(this.packetWords.subarray(0, header.words.length));
      header.byteCount = cmd.length;
      header.pfnCount = pfnCount;
      header.length = length;
    } else {
      length = putInbandHeader(out, VstorPacket.size, transId, true);
    }
    // The padding between the last PFN and the payload, if any, is zero (putGpaDirectHeader).
    if (pfnCount >= 0) {
      if (LITTLE_ENDIAN) putHvPfnWords(this.packetWords, GPA_DIRECT_PFNS_AT, cmd.buffer!, pfnCount, this.vmbus.transport.memory.pageSize);
      else putHvPfns(out, GPA_DIRECT_PFNS_AT, cmd.buffer!, pfnCount, this.vmbus.transport.memory.pageSize);
      for (let i = GPA_DIRECT_PFNS_AT + 8 * pfnCount; i < payloadAt; i++) out[i] = 0;
    }
    let srbFlags: number = SrbFlags.DISABLE_SYNCH_TRANSFER;
    // tagged_supported: the device said CmdQue in its INQUIRY data.
    const tagged = ((cmd.device.inquiry[7] ?? 0) & 0x02) !== 0;
    if (tagged) srbFlags |= SrbFlags.QUEUE_ACTION_ENABLE | SrbFlags.NO_QUEUE_FREEZE;
    let dataIn: number = StorvscRequestType.UNKNOWN_TYPE;
    if (cmd.direction === 'to-device') {
      dataIn = StorvscRequestType.WRITE_TYPE;
      srbFlags |= SrbFlags.DATA_OUT;
    } else if (cmd.direction === 'from-device') {
      dataIn = StorvscRequestType.READ_TYPE;
      srbFlags |= SrbFlags.DATA_IN;
    }
    // Word stores, not fill(): the method's lookup costs more than these 64 bytes (host.ts
    // complete), and 16 words cost less than 64 bytes. payloadAt is a multiple of 8.
    const words = this.packetWords;
    // The u8 fields take the low byte, as C's assignments do.
    const cdbLength = Math.min(cmd.cdb.length, STORVSC_MAX_CMD_LEN);
    if (LITTLE_ENDIAN) {
      // The fields alike in every request of its tagging and direction come as the words of a
      // template (srbTemplate); the request's own are ORed into their places: a store a word.
      const template = this.srbTemplate(tagged, dataIn, srbFlags);
      const first = payloadAt >>> 2;
      for (let i = 0; i < template.length; i++) words[first + i] = template[i]!;
      orLe(words, payloadAt + Vstor.pathId, cmd.device.channel & 0xff);
      orLe(words, payloadAt + Vstor.targetId, cmd.device.id & 0xff);
      orLe(words, payloadAt + Vstor.lun, cmd.device.lun & 0xff);
      orLe(words, payloadAt + Vstor.cdbLength, cdbLength);
      orLe(words, payloadAt + Vstor.dataTransferLength, cmd.length);
    } else {
      for (let i = payloadAt >>> 2; i < (payloadAt + VstorPacket.size) >>> 2; i++) words[i] = 0;
      put32(out, payloadAt + Vstor.operation, VstorOp.EXECUTE_SRB);
      put32(out, payloadAt + Vstor.flags, REQUEST_COMPLETION_FLAG);
      put16(out, payloadAt + Vstor.length, VmscsiRequest.size);
      put32(out, payloadAt + Vstor.timeOutValue, 60);
      if (tagged) {
        out[payloadAt + Vstor.queueTag] = SP_UNTAGGED;
        out[payloadAt + Vstor.queueAction] = SRB_SIMPLE_TAG_REQUEST;
      }
      out[payloadAt + Vstor.dataIn] = dataIn;
      put32(out, payloadAt + Vstor.srbFlags, srbFlags);
      out[payloadAt + Vstor.portNumber] = this.host!.hostNo & 0xff;
      out[payloadAt + Vstor.pathId] = cmd.device.channel & 0xff;
      out[payloadAt + Vstor.targetId] = cmd.device.id & 0xff;
      out[payloadAt + Vstor.lun] = cmd.device.lun & 0xff;
      out[payloadAt + Vstor.cdbLength] = cdbLength;
      out[payloadAt + Vstor.senseInfoLength] = STORVSC_SENSE_BUFFER_SIZE;
      put32(out, payloadAt + Vstor.dataTransferLength, cmd.length);
    }
    const cdb = cmd.cdb;
    for (let i = 0; i < cdbLength; i++) out[payloadAt + Vstor.payload + i] = cdb[i]!;
    const ch = this.selectChannel(cpu);
    let sent: boolean;
    try {
      sent = ch.sendPacket(this.sendParts(length));
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      this.freeTag(cmd);
      cmd.hostByte = HostByte.DID_NO_CONNECT;
      this.host!.complete(cmd);
      return 'ok';
    }
    if (!sent) {
      this.freeTag(cmd);
      return 'busy';
    }
    this.outstanding++;
    return 'ok';
  }

  /**
   * The words of a request's vstor_packet with only the fields that a request of this tagging,
   * data_in and srb_flags has alike with every other (little-endian hosts): operation, flags, the
   * request's length, timeout, queue tag and action, data_in, srb_flags, port and sense length;
   * zero elsewhere. Made once for each kind.
   */
  private srbTemplate(tagged: boolean, dataIn: number, srbFlags: number): Uint32Array {
    const key = (tagged ? 1 : 0) + 2 * dataIn;
    const cached = this.srbTemplates[key];
    if (cached && cached.srbFlags === srbFlags) return cached.words;
    const words = new Uint32Array(VstorPacket.size / 4);
    orLe(words, Vstor.operation, VstorOp.EXECUTE_SRB);
    orLe(words, Vstor.flags, REQUEST_COMPLETION_FLAG);
    orLe(words, Vstor.length, VmscsiRequest.size);
    orLe(words, Vstor.timeOutValue, 60);
    if (tagged) {
      orLe(words, Vstor.queueTag, SP_UNTAGGED);
      orLe(words, Vstor.queueAction, SRB_SIMPLE_TAG_REQUEST);
    }
    orLe(words, Vstor.dataIn, dataIn);
    orLe(words, Vstor.srbFlags, srbFlags);
    orLe(words, Vstor.portNumber, this.host!.hostNo & 0xff);
    orLe(words, Vstor.senseInfoLength, STORVSC_SENSE_BUFFER_SIZE);
    this.srbTemplates[key] = { srbFlags, words };
    return words;
  }
  private readonly srbTemplates: ({ readonly srbFlags: number; readonly words: Uint32Array } | undefined)[] = [];

  /** storvsc_on_channel_callback: every packet the host sent on `ch`. */
  private onChannelCallback(ch: GuestChannel): void {
    if (this.destroy && this.outstanding === 0) return;
    ch.receiveInPlace(this.inPlace);
  }

  /**
   * A packet as foreach_vmbus_pkt hands it out, in the channel's private buffer: a completion of
   * a request (a transaction id that is a tag's, a whole vstor_packet) is read there; anything
   * else goes to onPacket as a packet of its own. Same checks, same order, same outcome.
   */
  private readonly inPlace = (bytes: Uint8Array, head: PacketHead): void => {
    const at = head.payloadAt;
    const end = head.payloadEnd;
    if (head.transIdHigh !== 0 || head.transIdLow === 0 || end - at < VstorPacket.size) {
      this.onPacket({ type: head.type, flags: head.flags, transId: head.transId, completionRequested: head.completionRequested, payload: bytes.slice(at, end) });
      return;
    }
    const operation = le32(bytes, at + Vstor.operation);
    const cmd = this.findTagOf(head.transIdLow);
    if (!cmd) {
      this.badPackets++;
      this.devLog('err', 'Incorrect transaction ID');
      return;
    }
    if (operation === VstorOp.COMPLETE_IO) this.onIoCompletion(bytes, at, cmd);
    else this.onReceive(operation, bytes.slice(at, end), cmd);
  };

  private onPacket(p: ParsedPacket): void {
    const pktlen = p.payload.length;
    const rqstId = p.transId;
    const minlen = rqstId ? VstorPacket.size : 4;
    if (pktlen < minlen) {
      this.badPackets++;
      this.devLog('err', `Invalid pkt: id=${rqstId}, len=${pktlen}, minlen=${minlen}`);
      return;
    }
    const operation = le32(p.payload, Vstor.operation);
    if (rqstId === VMBUS_RQST_INIT || rqstId === VMBUS_RQST_RESET) {
      const req = rqstId === VMBUS_RQST_INIT ? this.initRequest : this.resetRequest;
      req.packet = p.payload.slice(0, VstorPacket.size);
      return;
    }
    if (rqstId === 0n) {
      // Hyper-V's unsolicited messages; a COMPLETE_IO or FCHBA_DATA with id 0 is bogus.
      if (operation === VstorOp.COMPLETE_IO || operation === VstorOp.FCHBA_DATA) {
        this.badPackets++;
        this.devLog('err', 'Invalid packet with ID of 0');
        return;
      }
      return this.onReceive(operation, p.payload, undefined);
    }
    const cmd = this.findTag(rqstId);
    if (!cmd) {
      this.badPackets++;
      this.devLog('err', 'Incorrect transaction ID');
      return;
    }
    this.onReceive(operation, p.payload, cmd);
  }

  /** storvsc_on_receive. */
  private onReceive(operation: number, payload: Uint8Array, cmd: ScsiCmnd | undefined): void {
    switch (operation) {
      case VstorOp.COMPLETE_IO:
        if (cmd) this.onIoCompletion(payload, 0, cmd);
        return;
      case VstorOp.REMOVE_DEVICE:
      case VstorOp.ENUMERATE_BUS:
        this.queueHostScan();
        return;
      case VstorOp.FCHBA_DATA:
        this.cacheWwn(payload);
        return;
      default:
        return;
    }
  }

  /** storvsc_on_io_completion + storvsc_command_completion. */
  private onIoCompletion(payload: Uint8Array, at: number, cmd: ScsiCmnd): void {
    // The completion (its vstor_packet at `at`) is the reader's private copy (vmbus.md §12): its
    // fields are read in place, all of them before the command completes.
    let scsiStatus = payload[at + Vstor.scsiStatus]!;
    let srbStatus = payload[at + Vstor.srbStatus]!;
    const status = le32(payload, at + Vstor.status);
    const op = cmd.cdb[0]!;
    if (scsiStatus !== 0 || srbStatus !== SrbStatus.SUCCESS) {
      // TEST UNIT READY errors are only warnings (logging_level 1 hides them).
      if (op !== ScsiOp.TEST_UNIT_READY) this.devLog('warn', `tag#${cmd.tag} cmd 0x${op.toString(16)} status: scsi 0x${scsiStatus.toString(16)} srb 0x${srbStatus.toString(16)} hv 0x${status.toString(16)}`);
    }
    // "The current SCSI handling on the host side does not correctly handle INQUIRY with page
    // 0x80 and MODE_SENSE with cmd[2] == 0x1c": storvsc makes every INQUIRY and MODE SENSE(6)
    // succeed, keeping the transfer length the host reported.
    if (op === ScsiOp.INQUIRY || op === ScsiOp.MODE_SENSE) {
      scsiStatus = 0;
      srbStatus = SrbStatus.SUCCESS;
    }
    const senseLen = Math.min(STORVSC_SENSE_BUFFER_SIZE, payload[at + Vstor.senseInfoLength]!);
    if (scsiStatus === ScsiStatus.CHECK_CONDITION && srbStatus & SrbStatus.AUTOSENSE_VALID) cmd.sense.set(payload.subarray(at + Vstor.payload, at + Vstor.payload + senseLen));
    let transferred = le32(payload, at + Vstor.dataTransferLength);
    cmd.status = scsiStatus;
    if (srbStatus !== SrbStatus.SUCCESS) {
      this.handleError(srbStatus, cmd);
      if (srbStatus !== SrbStatus.DATA_OVERRUN) transferred = 0;
    }
    if (transferred > cmd.length) transferred = cmd.length;
    cmd.resid = cmd.length - transferred;
    this.freeTag(cmd);
    this.outstanding--;
    this.host!.complete(cmd);
  }

  /** storvsc_handle_error: the SRB status as a host byte, and the work it calls for. */
  private handleError(srbStatus: number, cmd: ScsiCmnd): void {
    const sense = normalizeSense(cmd.sense);
    switch (srbStatusCode(srbStatus)) {
      case SrbStatus.ERROR:
      case SrbStatus.ABORTED:
      case SrbStatus.INVALID_REQUEST:
        if (srbStatus & SrbStatus.AUTOSENSE_VALID) {
          // A capacity change, or "operating parameters have changed": rescan the device, retry.
          if (sense && ((sense.asc === 0x2a && sense.ascq === 0x09) || (sense.asc === 0x3f && sense.ascq !== 0x03 && sense.ascq !== 0x0e))) {
            cmd.hostByte = HostByte.DID_REQUEUE;
            const sdev = cmd.device;
            this.queueWork(() => this.driver.rescanDevice?.(sdev));
          }
          return;
        }
        if (cmd.cdb[0] === ScsiOp.ATA_16 || cmd.cdb[0] === ScsiOp.ATA_12) cmd.hostByte = HostByte.DID_PASSTHROUGH;
        else if (cmd.cdb[0] !== ScsiOp.TEST_UNIT_READY) cmd.hostByte = HostByte.DID_ERROR;
        return;
      case SrbStatus.INVALID_LUN: {
        cmd.hostByte = HostByte.DID_NO_CONNECT;
        const { channel, id, lun } = cmd.device;
        const host = this.host!;
        // storvsc_remove_lun, on the host's error work queue.
        this.queueWork(() => {
          const sdev = host.device(channel, id, lun);
          if (sdev && !host.removed) this.driver.core.removeDevice(sdev);
        });
        return;
      }
    }
  }

  /** queue_work on handle_error_wq: items run one at a time, in order, in process context. */
  private queueWork(work: () => void): void {
    this.errorWq.push(work);
    if (this.errorWqRunning || this.errorWq.length > 1) return;
    this.services.scheduleDelayedWork(0, () => {
      if (this.errorWqRunning) return;
      this.errorWqRunning = true;
      try {
        for (let w = this.errorWq.shift(); w; w = this.errorWq.shift()) w();
      } finally {
        this.errorWqRunning = false;
      }
    });
  }

  /**
   * storvsc_host_scan (host_scan_work, queued at most once): TEST UNIT READY to every device,
   * whose failures queue their removal, then a scan of the host for new LUNs.
   */
  private queueHostScan(): void {
    const host = this.host;
    if (!host || this.scanQueued) return;
    this.scanQueued = true;
    this.queueWork(() => {
      this.scanQueued = false;
      if (host.removed) return;
      for (const d of [...host.devices]) this.driver.core.execute(d, { cdb: new Uint8Array(6), direction: 'none', retries: 1 });
      // Removals the TEST UNIT READYs queued run after this item, before the scan's new devices matter.
      this.driver.core.scanHost(host);
    });
  }

  /** storvsc_host_reset_handler: RESET_BUS under VMBUS_RQST_RESET, 5 s, then wait for the outstanding I/O. */
  hostReset(): 'SUCCESS' | 'FAILED' | 'TIMEOUT_ERROR' {
    if (this.destroy) return 'FAILED';
    try {
      this.executeVstorOp(VstorOp.RESET_BUS, undefined, false, VSTOR_OP_TIMEOUT_NS, this.resetRequest, VMBUS_RQST_RESET);
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      return e.code === 'ETIMEDOUT' ? 'TIMEOUT_ERROR' : 'FAILED';
    }
    // storvsc_wait_to_drain: Linux waits without bound; the model stops at the client's bound.
    this.vmbus.transport.waitUntil(() => this.outstanding === 0, this.vmbus.options.timeoutNs);
    return 'SUCCESS';
  }

  /** storvsc_remove: the SCSI host and its devices go, then storvsc_dev_remove. */
  remove(): void {
    if (this.host) this.driver.core.removeHost(this.host);
    this.destroy = true;
    this.vmbus.transport.waitUntil(() => this.outstanding === 0, this.vmbus.options.timeoutNs);
    this.channel.close();
  }
}

/** The hv_storvsc VMBus driver: SCSI, IDE and Fibre Channel controllers (id_table). */
export class StorvscDriver implements VmbusDriver {
  readonly name = 'hv_storvsc';
  readonly classIds = [DeviceClass.SCSI, DeviceClass.IDE, DeviceClass.SYNTHFC];
  readonly devices = new Map<GuestChannel, StorvscDevice>();
  /** storvsc_device_scan: set by sd to revalidate a device after a capacity change. */
  rescanDevice: ((sdev: ScsiDevice) => void) | undefined;

  constructor(
    readonly services: GuestServices,
    readonly vmbus: VmbusClient,
    readonly core: ScsiCore,
  ) {}

  probe(ch: GuestChannel): void {
    const dev = new StorvscDevice(this, ch);
    dev.probe();
    this.devices.set(ch, dev);
  }

  remove(ch: GuestChannel): void {
    this.devices.get(ch)?.remove();
    this.devices.delete(ch);
  }
}

/** The storage stack a guest module brings up: the SCSI core, sd and sr, and storvsc. */
export interface StorageStack {
  readonly core: ScsiCore;
  readonly driver: StorvscDriver;
}

/** Registers hv_storvsc with upper drivers `attachUpper` adds to the SCSI core. */
export function storvscModule(attachUpper: (core: ScsiCore, driver: StorvscDriver) => void): GuestModule & { stack: StorageStack | undefined } {
  const mod: GuestModule & { stack: StorageStack | undefined } = {
    name: 'hv_storvsc',
    stack: undefined,
    init(services, register, vmbus) {
      if (!vmbus) return;
      const core = new ScsiCore(services, vmbus.transport);
      const driver = new StorvscDriver(services, vmbus, core);
      attachUpper(core, driver);
      mod.stack = { core, driver };
      register(driver);
    },
  };
  return mod;
}
