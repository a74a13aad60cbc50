// storvsp: the host end of a synthetic SCSI (or Fibre Channel) controller. A protocol state
// machine over a ScsiController, in the manner of OpenVMM's storvsp (vm/devices/storage/storvsp
// lib.rs): BEGIN_INITIALIZATION, QUERY_PROTOCOL_VERSION until the guest names a version this
// release accepts, QUERY_PROPERTIES, (FCHBA_DATA on Fibre Channel), END_INITIALIZATION; then
// EXECUTE_SRB with the data in one GPA-direct range, CREATE_SUB_CHANNELS, and the resets (no-ops
// that succeed, as OpenVMM's are). A packet out of order is completed with
// STATUS_INVALID_DEVICE_STATE. A hot add or remove sends ENUMERATE_BUS (protocol 4.2 and later).
//
// Completions are as long as the request the guest sent (header plus at most the 52-byte SRB):
// "this is what Hyper-V does, and Linux 6.1 relies on this behavior during protocol
// initialization" (storvsp lib.rs parse_packet).
//
// Nothing the guest does grows without bound: each channel executes at most `queueDepth` requests
// at once and keeps at most one ring's worth of read packets waiting; completions that do not fit
// the ring wait (one per outstanding request) until the guest makes room. A packet that does not
// make sense is a recorded violation and, when it asked for one, an error completion.
import type { HostChannel } from '../../vmbus/server/channel.js';
import { OfferError } from '../../vmbus/server/server.js';
import { PacketType } from '../../vmbus/wire/constants.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import { firstGpaRange, GpaRangeAt, parsePacket, pfnAt, PacketHead, type ParsedRange } from '../../vmbus/wire/packets.js';
import { subarrayOf } from '../../memory/typed-arrays.js';
import { WordCopier } from '../../memory/word-copy.js';
import { HV_HYP_PAGE_SIZE } from '../../memory/pages.js';
import type { HostContext, HostDevice } from '../device.js';
import { ScsiController, type ScsiAddress } from './controller.js';
import { GpaData, RangeProblem } from './gpa-data.js';
import { Asc, fixedSense, ScsiStatus, SenseKey } from './scsi.js';
import { ntStatusForSrb } from './srb.js';
import { le32, put16, put32, Vstor } from './srb-fields.js';
import { COMPLETION_PAYLOAD_AT, putCompletionHeader } from '../../vmbus/packet.js';
import { ByteData, type DirectCommand, type ScsiResult, type ScsiTarget } from './target.js';
import { HOST_MAX_TRANSFER_BYTES, HOST_VMSTOR_VERSIONS, hostSubChannels, multiChannel } from './versions.js';
import {
  ChannelProperties,
  FcWwnPacket,
  NtStatus,
  ProtocolVersion,
  STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL,
  SrbStatus,
  StorvscRequestType,
  STORVSC_MAX_CMD_LEN,
  STORVSC_SENSE_BUFFER_SIZE,
  VmscsiRequest,
  vmscsiRequestSize,
  VmstorVersion,
  vmstorVersionString,
  VstorOp,
  VSTOR_OP_NAMES,
  VSTOR_PACKET_HEADER,
  VstorPacket,
  type VmscsiRequestValue,
} from './wire.js';

export type StorvspKind = 'scsi' | 'ide' | 'fc';

export interface StorvspOptions {
  /** SCSI controller (default), IDE accelerator channel, or Fibre Channel host adapter. */
  readonly kind?: StorvspKind;
  /** Protocol versions accepted (default: the release's, versions.ts). */
  readonly versions?: readonly number[];
  /** Sub-channels offered (default: one per 4 VPs beyond the first). */
  readonly maxSubChannels?: number;
  readonly maxTransferBytes?: number;
  /** Virtual time between a request and its completion; 0 completes it as it is read. */
  readonly latencyNs?: number;
  /** Requests a channel executes at once (OpenVMM's io_queue_depth). */
  readonly queueDepth?: number;
  /** A Fibre Channel adapter's port and node names (default: derived from the instance GUID). */
  readonly wwn?: { readonly port: bigint; readonly node: bigint };
  /** Fault injection: return false to leave a request unanswered (a host that never answers); `transId` is the request's. */
  readonly answer?: (op: number, request: VmscsiRequestValue | undefined, transId: bigint) => boolean;
}

export type StorvspState = 'begin' | 'query-version' | 'query-properties' | 'end-init' | 'ready';

/** Requests one channel executes at once unless told otherwise. */
export const DEFAULT_QUEUE_DEPTH = 256;
/** Violations kept for inspection; the rest are only counted. */
const MAX_KEPT_VIOLATIONS = 100;
/** Bytes a completion needs in the ring: descriptor, 64-byte packet, trailer. */
const COMPLETION_RING_BYTES = 16 + VstorPacket.size + 8;
/** Packet slots kept for reuse at most (a ring holds a few hundred requests). */
const MAX_FREE_PACKETS = 1024;
const NO_BYTES = new Uint8Array(0);
/** The word of a vstor_packet where the CDB starts (vmscsi_request.payload is word aligned). */
const CDB_WORD = Vstor.payload / 4;
if (!Number.isInteger(CDB_WORD) || STORVSC_MAX_CMD_LEN % 4 !== 0) throw new Error('storvsp: the CDB is not whole words of the vstor_packet');

/** Direct requests one pump defers at most before it runs them. */
const MAX_DEFERRED = 256;

/** A deferred direct request (StorvspHost.deferDirect): a slot reused from pump to pump. */
class DeferredIo implements DirectCommand {
  sc: StorChannel | undefined;
  /** The request's transaction id: a number when it is a safe integer (no BigInt made per request). */
  transId: bigint | number = 0;
  requestSize = 0;
  target: ScsiTarget | undefined;
  /** The request's own CDB: the host's packet buffer is the next packet's by the time it runs. */
  readonly cdb = new Uint8Array(STORVSC_MAX_CMD_LEN);
  readonly cdbWords = new Uint32Array(this.cdb.buffer);
  cdbLength = 0;
  gpa = 0;
  length = 0;
  writable = false;
  result: ScsiResult | undefined;
}

/**
 * A packet read from the ring, where the reader copied it (HostChannel.receiveInPlace: the host's
 * private copy, which the guest cannot change): its descriptor's fields, its place in `bytes`. A
 * slot reused from packet to packet (StorvspHost.freePackets).
 */
class HostPacket extends PacketHead {
  bytes: Uint8Array = new Uint8Array(0);
  at = 0;
  length = 0;

  /** transId as a number when it is a safe integer (below 2^53), else as the BigInt. */
  get transIdValue(): bigint | number {
    return this.transIdHigh < 2 ** 21 ? this.transIdHigh * 2 ** 32 + this.transIdLow : this.transId;
  }

  get payloadLength(): number {
    return this.payloadEnd - this.payloadAt;
  }

  /** The GPA ranges as parsePacket gives them (undefined for a packet of another type). */
  ranges(): ParsedRange[] | undefined {
    return this.type === PacketType.DATA_USING_GPA_DIRECT ? parsePacket(subarrayOf(this.bytes, this.at, this.at + this.length)).ranges : undefined;
  }
}

interface StorChannel {
  readonly index: number;
  readonly channel: HostChannel;
  /** Requests being executed (with latency, until their completion is sent). */
  outstanding: number;
  /** Packets read from the ring, not yet handled (at most a ring's worth). */
  readonly backlog: HostPacket[];
  /** Completions that did not fit the ring, in order. */
  readonly unsent: { transId: bigint; payload: Uint8Array; counted: boolean }[];
  /** Bumped at close: completions of an earlier open are dropped. */
  generation: number;
  timers: Set<{ cancel(): void }>;
}

/** Counts of what the host did, for inspection and tests. */
export interface StorvspStats {
  packets: number;
  srbs: number;
  completions: number;
  errors: number;
  resets: number;
  enumerates: number;
  bytesRead: number;
  bytesWritten: number;
}

/** A stable 64-bit number from the instance GUID, for default WWNs. */
function hash64(text: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const c of text) h = BigInt.asUintN(64, (h ^ BigInt(c.charCodeAt(0))) * 0x100000001b3n);
  return h;
}

/**
 * Default WWNs: Hyper-V's virtual Fibre Channel ports use Microsoft's C0:03:FF prefix (Hyper-V
 * Manager's "World Wide Names" defaults); the low 40 bits come from the instance GUID.
 */
export function defaultWwn(instanceId: string): { port: bigint; node: bigint } {
  const low = hash64(instanceId) & 0xff_ffff_ffffn;
  return { port: 0xc003ff0000000000n | low, node: 0xc003ff0000000000n | (low ^ 0x80_0000_0000n) };
}

const be64Bytes = (v: bigint): Uint8Array => {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, v, false);
  return out;
};

export class StorvspHost implements HostDevice {
  readonly type: string;
  readonly controller = new ScsiController();
  readonly kind: StorvspKind;
  readonly versions: readonly number[];
  readonly maxSubChannels: number;
  readonly maxTransferBytes: number;
  readonly queueDepth: number;
  readonly wwn: { port: bigint; node: bigint };
  private readonly latencyNs: number;
  private readonly answer: StorvspOptions['answer'];
  state: StorvspState = 'begin';
  /** The negotiated protocol version, once QUERY_PROTOCOL_VERSION succeeded. */
  version: number | undefined;
  /** Sub-channels the guest asked for and the host offered. */
  subChannelCount = 0;
  readonly primary: HostChannel;
  readonly subChannels: HostChannel[] = [];
  readonly violations: string[] = [];
  violationCount = 0;
  readonly stats: StorvspStats = { packets: 0, srbs: 0, completions: 0, errors: 0, resets: 0, enumerates: 0, bytesRead: 0, bytesWritten: 0 };
  private readonly channels = new Map<HostChannel, StorChannel>();
  private rescanPending = false;
  private disposed = false;
  /** The packet being handled (zero-extended), the SRB of its completion, and the completion being sent. */
  private readonly request = new Uint8Array(VstorPacket.size);
  /** The request as words, for copying its CDB (deferDirect). */
  private readonly requestWords = new Uint32Array(this.request.buffer);
  /** The request's union (its vmscsi_request or other body), a view made once. */
  private readonly union = this.request.subarray(VSTOR_PACKET_HEADER);
  /** Packet slots handed back after handle() (hostPacket takes them again), and the range deferDirect reads. */
  private readonly freePackets: HostPacket[] = [];
  private readonly rangeAt = new GpaRangeAt();
  /** Deferred direct I/O (deferDirect): the first `pendingDirect` slots, all of one channel. */
  private readonly pending: DeferredIo[] = [];
  private pendingDirect = 0;
  /** Ring room left for the deferred completions. */
  private directRoom = 0;
  /** The request's CDB bytes, a view made once: what a target's takesDirect reads (and keeps nothing of). */
  private readonly cdb = this.request.subarray(Vstor.payload, Vstor.payload + STORVSC_MAX_CMD_LEN);
  private readonly response = new Uint8Array(VmscsiRequest.size);
  private readonly completionBuffer = new Uint8Array(COMPLETION_PAYLOAD_AT + VstorPacket.size);
  private readonly completionPartsByLength: (readonly Uint8Array[])[] = [];
  /** The completion buffer's words, for clearing it a word at a time. */
  private readonly completionWords = new Uint32Array(this.completionBuffer.buffer);
  /** Copies of a request out of the ring reader's copy into `request` (handle): the same two arrays, packet after packet. */
  private readonly copier = new WordCopier();

  constructor(
    private readonly ctx: HostContext,
    readonly instanceId: string,
    readonly options: StorvspOptions = {},
  ) {
    this.kind = options.kind ?? 'scsi';
    this.type = this.kind;
    this.versions = options.versions ?? HOST_VMSTOR_VERSIONS[ctx.release];
    // The IDE accelerator has no sub-channels (OpenVMM build_ide: max_sub_channel_count 0).
    this.maxSubChannels = options.maxSubChannels ?? (this.kind === 'ide' ? 0 : hostSubChannels(ctx.server.io.vpCount));
    this.maxTransferBytes = options.maxTransferBytes ?? HOST_MAX_TRANSFER_BYTES;
    this.queueDepth = Math.max(1, options.queueDepth ?? DEFAULT_QUEUE_DEPTH);
    this.wwn = options.wwn ?? defaultWwn(instanceId);
    // Read once: the options object is the caller's, of whatever shape, and these are per request.
    this.latencyNs = options.latencyNs ?? 0;
    this.answer = options.answer;
    this.primary = this.offerChannel(0);
    this.controller.onChange = () => this.enumerateBus();
  }

  /** Guest RAM as the host's VMBus server reaches it. */
  private get memory() {
    return this.ctx.server.io.memory;
  }

  get classId(): string {
    return this.kind === 'fc' ? DeviceClass.SYNTHFC : this.kind === 'ide' ? DeviceClass.IDE : DeviceClass.SCSI;
  }

  // --- Disks ----------------------------------------------------------------------------------

  /** Hot-adds a target (a disk, a DVD) at `address`; the guest is told to rescan. */
  attach(address: ScsiAddress, target: ScsiTarget): void {
    this.controller.attach(address, target);
  }

  /** Hot-removes the target at `address` and closes it; the guest is told to rescan. */
  detach(address: ScsiAddress): ScsiTarget {
    const t = this.controller.detach(address);
    t.close?.();
    return t;
  }

  /** Tells the guest the bus changed (ENUMERATE_BUS, from protocol 4.2: storvsp lib.rs). */
  enumerateBus(): void {
    if (this.state !== 'ready' || this.version === undefined || this.version < VmstorVersion.WIN7) return;
    const sc = this.channels.get(this.primary);
    if (!sc) return;
    this.flushDirect();
    const payload = this.packet(VstorOp.ENUMERATE_BUS, NtStatus.SUCCESS, undefined, vmscsiRequestSize(this.version));
    if (this.primary.sendInband(payload, 0n, false)) {
      this.stats.enumerates++;
      this.rescanPending = false;
    } else {
      // The ring is full: sent once the guest makes room.
      this.rescanPending = true;
      this.primary.waitForSpace(COMPLETION_RING_BYTES);
    }
  }

  /** The VM stops: timers end and every target's back end is closed. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const sc of this.channels.values()) this.stop(sc);
    for (const t of this.controller.list()) t.target.close?.();
  }

  // --- Channels -------------------------------------------------------------------------------

  private offerChannel(index: number): HostChannel {
    let sc: StorChannel | undefined;
    const ch = this.ctx.server.offer(
      { classId: this.classId, instanceId: this.instanceId, subChannelIndex: index, monitor: true },
      {
        open: (channel) => {
          sc = { index, channel, outstanding: 0, backlog: [], unsent: [], generation: (sc?.generation ?? 0) + 1, timers: new Set() };
          this.channels.set(channel, sc);
          return 0;
        },
        close: (channel) => {
          const c = this.channels.get(channel);
          if (c) this.stop(c);
          this.channels.delete(channel);
          if (index === 0) this.primaryClosed();
        },
        signal: (channel) => {
          const c = this.channels.get(channel);
          if (c) this.pump(c);
        },
        revoked: (channel) => {
          const c = this.channels.get(channel);
          if (c) this.stop(c);
          this.channels.delete(channel);
        },
      },
    );
    return ch;
  }

  private stop(sc: StorChannel): void {
    this.flushDirect();
    sc.generation++;
    for (const t of sc.timers) t.cancel();
    sc.timers.clear();
    sc.backlog.length = 0;
    sc.unsent.length = 0;
    sc.outstanding = 0;
  }

  /** The guest closed the primary: the protocol starts over, and its sub-channels go (OpenVMM close). */
  private primaryClosed(): void {
    this.state = 'begin';
    this.version = undefined;
    for (const sub of this.subChannels) this.ctx.server.revoke(sub);
    this.subChannels.length = 0;
    this.subChannelCount = 0;
  }

  /**
   * Moves a channel forward: waiting completions first, then waiting packets up to the queue
   * depth, then more packets from the ring while there is room for them.
   */
  private pump(sc: StorChannel): void {
    const ch = sc.channel;
    for (let rounds = 0; rounds < 64; rounds++) {
      if (!this.flushUnsent(sc)) return;
      if (sc.index === 0 && this.rescanPending) this.enumerateBus();
      while (sc.backlog.length > 0 && sc.unsent.length === 0 && sc.outstanding < this.queueDepth) {
        const p = sc.backlog.shift()!;
        this.handle(sc, p);
        // Nothing keeps the slot (deferDirect copies what it needs): the next packet may take it.
        p.bytes = NO_BYTES;
        if (this.freePackets.length < MAX_FREE_PACKETS) this.freePackets.push(p);
      }
      this.flushDirect();
      // Read more only when what was read has been taken up: the ring holds the rest.
      if (sc.backlog.length > 0 || !ch.isOpen) return;
      if (ch.receiveInPlace((bytes, at, length, head) => sc.backlog.push(this.hostPacket(bytes, at, length, head))) === 0) return;
    }
  }

  /** Sends what waited for room; false if the ring is still full. */
  private flushUnsent(sc: StorChannel): boolean {
    while (sc.unsent.length > 0) {
      const c = sc.unsent[0]!;
      if (!sc.channel.sendCompletion(c.transId, c.payload)) {
        if (sc.channel.waitForSpace(COMPLETION_RING_BYTES)) continue;
        return false;
      }
      sc.unsent.shift();
      this.stats.completions++;
      if (c.counted) sc.outstanding--;
    }
    return true;
  }

  // --- Packets --------------------------------------------------------------------------------

  private violation(what: string): void {
    this.violationCount++;
    this.violations.push(what);
    if (this.violations.length > MAX_KEPT_VIOLATIONS) this.violations.shift();
    if (this.violationCount <= 10) this.ctx.log(`storvsp ${this.instanceId}: ${what}`);
  }

  /** A vstor_packet of `operation` and `status` with `body` in its union, `requestSize` long after the header. */
  private packet(operation: number, status: number, body: Uint8Array | undefined, requestSize: number): Uint8Array {
    const out = new Uint8Array(VSTOR_PACKET_HEADER + requestSize);
    const dv = new DataView(out.buffer);
    dv.setUint32(VstorPacket.offsets.operation, operation, true);
    dv.setUint32(VstorPacket.offsets.status, status >>> 0, true);
    if (body) out.set(body.subarray(0, requestSize), VSTOR_PACKET_HEADER);
    return out;
  }

  /** Completes a request, now or once the ring has room; `counted` requests leave the outstanding count. */
  private complete(sc: StorChannel, transId: bigint, status: number, body: Uint8Array | undefined, requestSize: number, counted = false): void {
    if (sc.unsent.length === 0) {
      // The whole completion (descriptor and vstor_packet, what sendCompletion would send) is built
      // in the host's own buffer and written to the ring in one piece.
      const out = this.completionBuffer;
      const length = putCompletionHeader(out, VSTOR_PACKET_HEADER + requestSize, transId);
      const at = COMPLETION_PAYLOAD_AT;
      // Loops rather than TypedArray methods for these few bytes: a method looked up on a typed
      // array is a generic property load in optimized code here, dearer than the loop.
      for (let i = at; i < length; i++) out[i] = 0;
      put32(out, at + Vstor.operation, VstorOp.COMPLETE_IO);
      put32(out, at + Vstor.status, status >>> 0);
      if (body) for (let i = 0; i < requestSize; i++) out[at + VSTOR_PACKET_HEADER + i] = body[i]!;
      if (sc.channel.send(this.completionParts(length))) {
        this.stats.completions++;
        if (counted) sc.outstanding--;
        return;
      }
    }
    sc.unsent.push({ transId, payload: this.packet(VstorOp.COMPLETE_IO, status, body, requestSize), counted });
    sc.channel.waitForSpace(COMPLETION_RING_BYTES);
  }

  /**
   * complete() with srbResponse's body, which is written straight into the completion buffer: of
   * the whole 52-byte body only the first `requestSize` bytes go out, as complete() copies them.
   */
  private completeSrb(sc: StorChannel, transId: bigint | number, status: number, result: ScsiResult, requestSize: number): void {
    if (sc.unsent.length > 0) return this.complete(sc, BigInt(transId), status, this.srbResponse(result, this.response), requestSize);
    if (sc.channel.send(this.srbCompletion(transId, status, result, requestSize))) {
      this.stats.completions++;
      return;
    }
    sc.unsent.push({ transId: BigInt(transId), payload: this.packet(VstorOp.COMPLETE_IO, status, this.srbResponse(result, this.response), requestSize), counted: false });
    sc.channel.waitForSpace(COMPLETION_RING_BYTES);
  }

  /** An SRB's whole completion (descriptor, vstor_packet, srbResponse's body) in the completion buffer, as its one part. */
  private srbCompletion(transId: bigint | number, status: number, result: ScsiResult, requestSize: number): readonly Uint8Array[] {
    const out = this.completionBuffer;
    const length = putCompletionHeader(out, VSTOR_PACKET_HEADER + requestSize, transId);
    const at = COMPLETION_PAYLOAD_AT;
    // The vstor_packet and its vmscsi_request cleared a word at a time (both start on a word; the
    // request's 52 bytes are whole words), then the fields written as putSrbResponse writes them.
    const words = this.completionWords;
    for (let i = at >>> 2; i < (at + VSTOR_PACKET_HEADER + VmscsiRequest.size) >>> 2; i++) words[i] = 0;
    put32(out, at + Vstor.operation, VstorOp.COMPLETE_IO);
    put32(out, at + Vstor.status, status >>> 0);
    this.putSrbFields(result, out, at + VSTOR_PACKET_HEADER);
    return this.completionParts(length);
  }

  /** The first `length` bytes of the completion buffer as a packet's one part, made once per length. */
  private completionParts(length: number): readonly Uint8Array[] {
    return (this.completionPartsByLength[length] ??= [this.completionBuffer.subarray(0, length)]);
  }

  /** A slot for a packet receiveInPlace read (the head's fields copied: the head is the next packet's). */
  private hostPacket(bytes: Uint8Array, at: number, length: number, head: PacketHead): HostPacket {
    const p = this.freePackets.pop() ?? new HostPacket();
    p.bytes = bytes;
    p.at = at;
    p.length = length;
    return p.copyOf(head);
  }

  private handle(sc: StorChannel, p: HostPacket): void {
    this.stats.packets++;
    // Anything but an EXECUTE_SRB, which may be deferred itself, runs after the deferred I/O.
    if (this.pendingDirect > 0 && !this.mayDefer(p)) this.flushDirect();
    if (p.type === PacketType.COMP) return this.violation(`channel ${sc.index}: a completion packet (trans id ${p.transId}) from the guest`);
    if (!p.completionRequested) return this.violation(`channel ${sc.index}: packet ${p.transId} asks for no completion; storvsp answers only transactions`);
    const payloadLength = p.payloadLength;
    const requestSize = Math.max(0, Math.min(payloadLength - VSTOR_PACKET_HEADER, VmscsiRequest.size));
    if (payloadLength < VSTOR_PACKET_HEADER) {
      this.violation(`channel ${sc.index}: packet ${p.transId} of ${payloadLength} bytes is shorter than the 12-byte vstor_packet header`);
      return this.complete(sc, p.transId, NtStatus.INVALID_PARAMETER, undefined, 0);
    }
    const bytes = p.bytes;
    const at = p.payloadAt;
    const op = le32(bytes, at + Vstor.operation);
    // The packet as the guest sent it, its union zero-extended to the largest member (OpenVMM reads
    // min(len, 52) bytes): the host's own copy, read in place while this packet is handled. At most
    // 64 bytes, a word at a time where both ends are aligned (a payload starts on 8 bytes), where a
    // view and a bulk copy cost more than the loop.
    const request = this.request;
    const copied = VSTOR_PACKET_HEADER + requestSize;
    this.copier.copy(request, 0, bytes, at, copied);
    for (let i = copied; i < request.length; i++) request[i] = 0;
    const union = this.union;
    if (this.answer && !this.answer(op, op === VstorOp.EXECUTE_SRB ? VmscsiRequest.decode(union) : undefined, p.transId)) return;
    if (sc.index !== 0 && this.state !== 'ready') return this.complete(sc, p.transId, NtStatus.INVALID_DEVICE_STATE, undefined, requestSize);
    switch (this.state) {
      case 'begin':
        if (op !== VstorOp.BEGIN_INITIALIZATION) return this.wrongOrder(sc, p.transId, op, requestSize);
        this.state = 'query-version';
        return this.complete(sc, p.transId, NtStatus.SUCCESS, undefined, requestSize);
      case 'query-version': {
        if (op !== VstorOp.QUERY_PROTOCOL_VERSION) return this.wrongOrder(sc, p.transId, op, requestSize);
        const asked = ProtocolVersion.decode(union).major_minor;
        const body = ProtocolVersion.encode({ major_minor: asked, revision: 0 });
        if (!this.versions.includes(asked)) return this.complete(sc, p.transId, NtStatus.REVISION_MISMATCH, body, requestSize);
        this.version = asked;
        this.state = 'query-properties';
        this.ctx.log(`storvsp ${this.instanceId}: protocol ${vmstorVersionString(asked)} negotiated`);
        return this.complete(sc, p.transId, NtStatus.SUCCESS, body, requestSize);
      }
      case 'query-properties': {
        if (op !== VstorOp.QUERY_PROPERTIES) return this.wrongOrder(sc, p.transId, op, requestSize);
        const multi = multiChannel(this.version!);
        const body = ChannelProperties.encode({
          reserved: 0,
          max_channel_cnt: multi ? this.maxSubChannels : 0,
          reserved1: 0,
          flags: multi ? STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL : 0,
          max_transfer_bytes: this.maxTransferBytes,
          reserved2: new Uint8Array(8),
        });
        this.state = 'end-init';
        return this.complete(sc, p.transId, NtStatus.SUCCESS, body, requestSize);
      }
      case 'end-init':
        if (op === VstorOp.FCHBA_DATA && this.kind === 'fc') return this.complete(sc, p.transId, NtStatus.SUCCESS, this.wwnPacket(), requestSize);
        if (op === VstorOp.CREATE_SUB_CHANNELS) return this.createSubChannels(sc, p.transId, union, requestSize);
        if (op !== VstorOp.END_INITIALIZATION) return this.wrongOrder(sc, p.transId, op, requestSize);
        this.state = 'ready';
        this.rescanPending = false;
        return this.complete(sc, p.transId, NtStatus.SUCCESS, undefined, requestSize);
      case 'ready':
        switch (op) {
          case VstorOp.EXECUTE_SRB:
            return this.executeSrb(sc, p, request, requestSize);
          case VstorOp.RESET_LUN:
          case VstorOp.RESET_BUS:
          case VstorOp.RESET_ADAPTER:
            // Resets have always been no-ops that succeed; outstanding I/O completes normally.
            this.stats.resets++;
            return this.complete(sc, p.transId, NtStatus.SUCCESS, undefined, requestSize);
          case VstorOp.CREATE_SUB_CHANNELS:
            if (sc.index !== 0) return this.wrongOrder(sc, p.transId, op, requestSize);
            return this.createSubChannels(sc, p.transId, union, requestSize);
          case VstorOp.FCHBA_DATA:
            if (this.kind === 'fc') return this.complete(sc, p.transId, NtStatus.SUCCESS, this.wwnPacket(), requestSize);
            return this.wrongOrder(sc, p.transId, op, requestSize);
          default:
            return this.wrongOrder(sc, p.transId, op, requestSize);
        }
    }
  }

  /** Whether handle() takes `p` as an EXECUTE_SRB of the ready state, with no fault injection first. */
  private mayDefer(p: HostPacket): boolean {
    return this.state === 'ready' && this.answer === undefined && p.type !== PacketType.COMP && p.completionRequested && p.payloadLength >= VSTOR_PACKET_HEADER && le32(p.bytes, p.payloadAt + Vstor.operation) === VstorOp.EXECUTE_SRB;
  }

  /** A packet the protocol state does not take: a violation, and STATUS_INVALID_DEVICE_STATE. */
  private wrongOrder(sc: StorChannel, transId: bigint, op: number, requestSize: number): void {
    this.violation(`channel ${sc.index}: ${VSTOR_OP_NAMES[op] ?? `operation ${op}`} in state ${this.state}`);
    this.complete(sc, transId, NtStatus.INVALID_DEVICE_STATE, undefined, requestSize);
  }

  private wwnPacket(): Uint8Array {
    return FcWwnPacket.encode({
      primary_active: 1,
      reserved1: new Uint8Array(3),
      primary_port_wwn: be64Bytes(this.wwn.port),
      primary_node_wwn: be64Bytes(this.wwn.node),
      secondary_port_wwn: new Uint8Array(8),
      secondary_node_wwn: new Uint8Array(8),
    });
  }

  /** CREATE_SUB_CHANNELS: offers sub-channels 1..count (beyond those offered already), up to the host's maximum. */
  private createSubChannels(sc: StorChannel, transId: bigint, union: Uint8Array, requestSize: number): void {
    const count = union[0]! | (union[1]! << 8);
    if (!multiChannel(this.version ?? 0) || count > this.maxSubChannels) {
      this.violation(`CREATE_SUB_CHANNELS: ${count} sub-channels, the host offers at most ${multiChannel(this.version ?? 0) ? this.maxSubChannels : 0}`);
      return this.complete(sc, transId, NtStatus.INVALID_PARAMETER, undefined, requestSize);
    }
    // With the VM's channels used up (its budget), fewer are offered and the answer says so.
    for (let i = this.subChannels.length + 1; i <= count; i++) {
      try {
        this.subChannels.push(this.offerChannel(i));
      } catch (e) {
        if (!(e instanceof OfferError)) throw e;
        this.violation(`CREATE_SUB_CHANNELS: sub-channel ${i} of ${count} not offered: ${e.message}`);
        break;
      }
    }
    this.subChannelCount = Math.max(this.subChannelCount, this.subChannels.length);
    this.complete(sc, transId, this.subChannels.length >= count ? NtStatus.SUCCESS : NtStatus.UNSUCCESSFUL, undefined, requestSize);
  }

  // --- SRBs -----------------------------------------------------------------------------------

  /** Refuses an SRB the host cannot execute: ILLEGAL REQUEST, INVALID FIELD IN CDB, STATUS_INVALID_PARAMETER. */
  private refuseSrb(sc: StorChannel, transId: bigint, requestSize: number, why: string): void {
    this.violation(`channel ${sc.index}: EXECUTE_SRB ${transId}: ${why}`);
    this.stats.errors++;
    const result: ScsiResult = { scsiStatus: ScsiStatus.CHECK_CONDITION, srbStatus: SrbStatus.INVALID_REQUEST, tx: 0, sense: fixedSense(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB) };
    this.complete(sc, transId, NtStatus.INVALID_PARAMETER, this.srbResponse(result, this.response), requestSize);
  }

  /** EXECUTE_SRB: `r` is the whole vstor_packet (the host's zero-extended copy), read at the declared offsets. */
  private executeSrb(sc: StorChannel, p: HostPacket, r: Uint8Array, requestSize: number): void {
    this.stats.srbs++;
    const length = le32(r, Vstor.dataTransferLength);
    const cdbLength = r[Vstor.cdbLength]!;
    // The usual I/O waits to run with the rest of this pump's (deferDirect); anything else runs
    // after the I/O deferred before it, in order. Its one range is read where the packet lies.
    if (p.type === PacketType.DATA_USING_GPA_DIRECT) {
      const range = this.rangeAt;
      firstGpaRange(p.bytes, p.at, range);
      if (range.rangeCount === 1 && this.deferDirect(sc, p, r, requestSize, cdbLength, length, range)) return;
    }
    this.flushDirect();
    const ranges = p.ranges();
    if (cdbLength > STORVSC_MAX_CMD_LEN) return this.refuseSrb(sc, p.transId, requestSize, `cdb_length ${cdbLength} exceeds ${STORVSC_MAX_CMD_LEN}`);
    if (length > this.maxTransferBytes) return this.refuseSrb(sc, p.transId, requestSize, `data_transfer_length ${length} exceeds the ${this.maxTransferBytes}-byte maximum transfer`);
    const rangeCount = ranges ? ranges.length : 0;
    if (rangeCount > 1) return this.refuseSrb(sc, p.transId, requestSize, `${rangeCount} GPA ranges; storvsp takes one`);
    if (length > 0 && rangeCount === 0) return this.refuseSrb(sc, p.transId, requestSize, `data_transfer_length ${length} without a GPA range`);
    // data_in READ_TYPE or UNKNOWN_TYPE lets the host write the buffer (OpenVMM: is_write = data_in != 0).
    const writable = r[Vstor.dataIn] !== StorvscRequestType.WRITE_TYPE;
    let data;
    try {
      data = rangeCount ? new GpaData(this.memory, ranges![0]!, length, writable) : new ByteData(new Uint8Array(0), writable);
    } catch (e) {
      if (!(e instanceof RangeProblem)) throw e;
      return this.refuseSrb(sc, p.transId, requestSize, e.message);
    }
    // A copy: the request buffer is reused by the next packet, and a target may keep what it is given.
    const cdb = new Uint8Array(STORVSC_MAX_CMD_LEN);
    for (let i = 0; i < STORVSC_MAX_CMD_LEN; i++) cdb[i] = r[Vstor.payload + i]!;
    const result = this.controller.executeAt(this.pathOf(r), r[Vstor.targetId]!, r[Vstor.lun]!, { cdb, cdbLength, data });
    this.srbDone(sc, p.transId, result, writable, requestSize);
  }

  /** The SRB's path id, which the IDE accelerator forces to 0: guests do not set it reliably (storvsp lib.rs force_path_id). */
  private pathOf(r: Uint8Array): number {
    return this.kind === 'ide' ? 0 : r[Vstor.pathId]!;
  }

  /**
   * Defers a READ or WRITE that the target takes directly (ScsiTarget.takesDirect) into one run
   * of RAM: its I/O runs with the others read in the same pump (flushDirect), back to back, and
   * their completions follow in order. The guest sees what it would have seen had each run as it
   * was read: nothing runs on the host between (every other packet, and the end of the pump,
   * flushes first), and a completion is deferred only while the ring has room for it and for
   * every one before it, so that none waits (which would have held the packets after it back).
   * False, having done nothing, for any other request, or with a latency.
   */
  private deferDirect(sc: StorChannel, p: HostPacket, r: Uint8Array, requestSize: number, cdbLength: number, length: number, range: GpaRangeAt): boolean {
    if (this.latencyNs > 0 || cdbLength > STORVSC_MAX_CMD_LEN || length === 0 || length > this.maxTransferBytes || sc.unsent.length > 0) return false;
    const gpa = this.directGpa(p.bytes, range, length);
    if (gpa < 0) return false;
    // data_in READ_TYPE or UNKNOWN_TYPE lets the host write the buffer (OpenVMM: is_write = data_in != 0).
    const writable = r[Vstor.dataIn] !== StorvscRequestType.WRITE_TYPE;
    const target = this.controller.directTarget(this.pathOf(r), r[Vstor.targetId]!, r[Vstor.lun]!, this.cdb, cdbLength, length, writable);
    if (!target) return false;
    const n = this.pendingDirect;
    if (n > 0 && this.pending[0]!.sc !== sc) return false;
    if (n === 0) this.directRoom = sc.channel.corrupt === undefined ? sc.channel.writable() : 0;
    if (this.directRoom < COMPLETION_RING_BYTES || n === MAX_DEFERRED) return false;
    this.directRoom -= COMPLETION_RING_BYTES;
    const slot = (this.pending[n] ??= new DeferredIo());
    slot.sc = sc;
    slot.transId = p.transIdValue;
    slot.requestSize = requestSize;
    slot.target = target;
    slot.cdbLength = cdbLength;
    if (r === this.request) {
      // The CDB's four words from the request's copy (both word aligned: CDB_WORD).
      const from = this.requestWords;
      const to = slot.cdbWords;
      for (let i = 0; i < STORVSC_MAX_CMD_LEN / 4; i++) to[i] = from[CDB_WORD + i]!;
    } else {
      for (let i = 0; i < STORVSC_MAX_CMD_LEN; i++) slot.cdb[i] = r[Vstor.payload + i]!;
    }
    slot.gpa = gpa;
    slot.length = length;
    slot.writable = writable;
    this.pendingDirect = n + 1;
    return true;
  }

  /** Runs the deferred I/O in order, back to back, then sends their completions in order. */
  private flushDirect(): void {
    const n = this.pendingDirect;
    if (n === 0) return;
    // Taken first: what the completions set off (a close, a revoke) finds nothing left to flush.
    this.pendingDirect = 0;
    const pending = this.pending;
    const memory = this.memory.bytes;
    for (let i = 0; i < n; ) {
      const target = pending[i]!.target!;
      // A run of requests to one target goes to it at once where it can take them so (its reads
      // back to back), else one by one; the same order either way.
      let end = i + 1;
      if (target.executeDirectMany) {
        while (end < n && pending[end]!.target === target) end++;
        target.executeDirectMany(pending, i, end, memory);
      } else {
        const d = pending[i]!;
        d.result = target.executeDirect!(d.cdb, d.cdbLength, memory, d.gpa, d.length, d.writable);
      }
      // takesDirect said yes and nothing has run on the target since: it cannot say no now.
      for (; i < end; i++) if (!pending[i]!.result) throw new Error('storvsp: a target refused the direct command it took');
    }
    // Their completions, in order, in one batch of the ring (one write_index store, one signal
    // decision: hv_signal_on_write of the batch); deferDirect kept room for all of them. Any that
    // did not go (a ring gone, or corrupt) take srbDone's way, as each did on its own.
    const sc = pending[0]!.sc!;
    const sent = sc.unsent.length === 0 ? sc.channel.sendMany(n, this.deferredCompletion) : 0;
    for (let i = 0; i < n; i++) {
      const d = pending[i]!;
      if (i < sent) {
        this.countSrb(d.result!, d.writable);
        this.stats.completions++;
      } else {
        this.srbDone(d.sc!, d.transId, d.result!, d.writable, d.requestSize);
      }
      d.sc = undefined;
      d.target = undefined;
      d.result = undefined;
    }
  }

  /** The completion of deferred request `i` (flushDirect's batch). */
  private readonly deferredCompletion = (i: number): readonly Uint8Array[] => {
    const d = this.pending[i]!;
    return this.srbCompletion(d.transId, ntStatusForSrb(d.result!.srbStatus), d.result!, d.requestSize);
  };

  /**
   * [gpa, gpa + length) when `range` holds `length` bytes on consecutive pages that lie in RAM with
   * no overlay page among them (GpaData would make one run of them, and hostViews one view); -1
   * for any other range, which GpaData takes (and refuses, if it must).
   */
  private directGpa(bytes: Uint8Array, range: GpaRangeAt, length: number): number {
    if (range.byteCount < length) return -1;
    const pages = Math.ceil((range.byteOffset + length) / HV_HYP_PAGE_SIZE);
    if (range.pfnCount < pages) return -1;
    const first = pfnAt(bytes, range.pfnsAt);
    for (let i = 1; i < pages; i++) if (pfnAt(bytes, range.pfnsAt + 8 * i) !== first + i) return -1;
    const gpa = first * HV_HYP_PAGE_SIZE + range.byteOffset;
    const memory = this.memory;
    if (!Number.isSafeInteger(gpa) || !memory.contains(gpa, length) || memory.overlays.overlaps(gpa, length)) return -1;
    return gpa;
  }

  /** An executed SRB: counted, then completed now or after the host's latency. */
  private srbDone(sc: StorChannel, transId: bigint | number, result: ScsiResult, writable: boolean, requestSize: number): void {
    this.countSrb(result, writable);
    const status = ntStatusForSrb(result.srbStatus);
    const latency = this.latencyNs;
    if (latency <= 0) return this.completeSrb(sc, transId, status, result, requestSize);
    const id = BigInt(transId);
    const body = this.srbResponse(result, new Uint8Array(VmscsiRequest.size));
    // The request stays outstanding until its completion is sent (and counted out in complete).
    sc.outstanding++;
    const generation = sc.generation;
    const timer = this.ctx.schedule(this.ctx.now() + latency, () => {
      sc.timers.delete(timer);
      if (sc.generation !== generation) return;
      this.complete(sc, id, status, body, requestSize, true);
      this.pump(sc);
    });
    sc.timers.add(timer);
  }

  /** An executed SRB in the stats: an error, or the bytes it moved. */
  private countSrb(result: ScsiResult, writable: boolean): void {
    if (result.scsiStatus !== ScsiStatus.GOOD) this.stats.errors++;
    else if (writable) this.stats.bytesRead += result.tx;
    else this.stats.bytesWritten += result.tx;
  }

  /** The vmscsi_request of a completion (storvsp lib.rs handle_completion), into `out` (52 bytes). */
  private srbResponse(result: ScsiResult, out: Uint8Array): Uint8Array {
    this.putSrbResponse(result, out, 0);
    return out;
  }

  /** srbResponse's 52 bytes into `out` from `base`. */
  private putSrbResponse(result: ScsiResult, out: Uint8Array, base: number): void {
    // Offsets in the request itself: the Vstor offsets less the packet header.
    for (let i = base; i < base + VmscsiRequest.size; i++) out[i] = 0;
    this.putSrbFields(result, out, base);
  }

  /** putSrbResponse's fields, into 52 bytes at `base` of `out` that are zero. */
  private putSrbFields(result: ScsiResult, out: Uint8Array, base: number): void {
    const at = base - VSTOR_PACKET_HEADER;
    put16(out, at + Vstor.length, VmscsiRequest.size);
    out[at + Vstor.srbStatus] = result.srbStatus | (result.sense ? SrbStatus.AUTOSENSE_VALID : 0);
    out[at + Vstor.scsiStatus] = result.scsiStatus;
    out[at + Vstor.cdbLength] = STORVSC_MAX_CMD_LEN;
    out[at + Vstor.senseInfoLength] = STORVSC_SENSE_BUFFER_SIZE;
    put32(out, at + Vstor.dataTransferLength, result.tx);
    if (result.sense) out.set(result.sense.subarray(0, STORVSC_SENSE_BUFFER_SIZE), at + Vstor.payload);
  }

  /** Each open channel's queues: packets read and waiting, completions waiting for room, requests executing. */
  queues(): { index: number; backlog: number; unsent: number; outstanding: number; unread: number }[] {
    return [...this.channels.values()].map((c) => ({ index: c.index, backlog: c.backlog.length, unsent: c.unsent.length, outstanding: c.outstanding, unread: c.channel.readable() }));
  }

  /** The host's state, for inspection. */
  snapshot(): { type: string; state: StorvspState; version: string | undefined; subChannels: number; targets: string[]; stats: StorvspStats; violations: number } {
    return {
      type: this.type,
      state: this.state,
      version: this.version === undefined ? undefined : vmstorVersionString(this.version),
      subChannels: this.subChannelCount,
      targets: this.controller.list().map((t) => `${t.address.path}:${t.address.target}:${t.address.lun}`),
      stats: { ...this.stats },
      violations: this.violationCount,
    };
  }
}

/** The device registry's factory. */
export function attachStorvsp(ctx: HostContext, instanceId: string, options?: StorvspOptions): StorvspHost {
  return new StorvspHost(ctx, instanceId, options);
}
