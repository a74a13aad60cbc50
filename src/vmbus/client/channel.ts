// A channel as a Linux guest driver sees it (drivers/hv/channel.c, ring_buffer.c,
// include/linux/hyperv.h): the offer, the open/close sequences of vmbus.md §6.2–§6.3, GPADLs
// (§5), the two rings with Linux's hardened reader (§7.5), packet sending with the requestor
// (§8.6), signalling through HvSignalEvent or the monitor page (§4.1–§4.2), and MODIFYCHANNEL.
import { bufferPfns, gpadlMessages, ringPfns } from '../gpadl.js';
import { completion, gpaDirect, inband, readPackets, type GpaDirectRange } from '../packet.js';
import { contiguousRing, Ctl } from '../ring/memory.js';
import { initRing, RingCorruptError, RingReader, RingWriter } from '../ring/ring.js';
import { ChannelMessageType as T, MAX_USER_DEFINED_BYTES, PacketType, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, VMBUS_DEFAULT_MAX_PKT_SIZE, VMBUS_PKT_TRAILER, VmbusVersion } from '../wire/constants.js';
import { encodeChannelMessage, type ChannelMessage } from '../wire/messages.js';
import { MonitorPage, MonitorTriggerGroup, MONITORS_PER_GROUP, PacketDescriptor, PacketError, PacketHead, parsePacketHead, type ParsedPacket } from '../wire/packets.js';
import { VmbusError } from './errors.js';
import { Requestor } from './requestor.js';
import type { ChannelSnapshot, MonitorSnapshot } from './snapshot.js';
import { ringSnapshot } from '../ring/debuginfo.js';
import type { ClientTransport } from './transport.js';

/** The longest packet a descriptor can describe: len8 is 16 bits of 8-byte units. */
const MAX_PACKET_BYTES = 0xffff * 8;

/** Callback rounds one interrupt runs before it yields (a tasklet's budget). */
const CALLBACK_ROUNDS = 64;

/** What the guest learnt from OFFERCHANNEL. */
export interface OfferInfo {
  readonly relid: number;
  readonly classId: string;
  readonly instanceId: string;
  readonly subChannelIndex: number;
  readonly flags: number;
  readonly mmioMegabytes: number;
  readonly userDefined: Uint8Array;
  /** The connection id to signal (channel->sig_event). */
  readonly connectionId: number;
  readonly monitorId: number | undefined;
  readonly dedicatedInterrupt: boolean;
}

/**
 * Linux's vmbus_channel_state: `offer` just offered, `opening` an open in progress, `open` ready
 * to open (offered and closed), `opened` rings in use.
 */
export type GuestChannelState = 'offer' | 'opening' | 'open' | 'opened';

/** HV_CALL_BATCHED (mask, drain, unmask), HV_CALL_DIRECT, or HV_CALL_ISR (from the interrupt itself). */
export type CallbackMode = 'batched' | 'direct' | 'isr';

export interface OpenOptions {
  /** Outbound (guest→host) and inbound ring sizes in bytes, header page included; multiples of the page size. */
  sendRingBytes: number;
  recvRingBytes: number;
  /** OPENCHANNEL user data (≤ 120 bytes), e.g. hv_sock's or a pipe's. */
  userData?: Uint8Array;
  /** Receive buffer size: longer packets are truncated by the reader (vmbus.md §7.7). */
  maxPacketSize?: number;
  /** Requests that may be outstanding at once (the requestor, §8.6); 0 means trans ids are written as given. */
  requestorSize?: number;
  onEvent: (channel: GuestChannel) => void;
  callbackMode?: CallbackMode;
}

/** The client's services a channel uses. */
export interface ChannelOwner {
  readonly transport: ClientTransport;
  readonly version: number;
  /** vmbus_post_msg on the message connection (throws VmbusError). */
  post(message: Uint8Array): void;
  /**
   * Registers a waiter for the response `match` accepts, runs `send`, and waits. Returns the
   * response, or undefined if the channel was rescinded meanwhile.
   */
  request(channel: GuestChannel, match: (m: ChannelMessage) => boolean, send: () => void, what: string): ChannelMessage | undefined;
  nextGpadlHandle(): number;
  /** GPA of the child→parent monitor page, and of the legacy interrupt page's send half. */
  readonly monitorPage: number;
  readonly sendInterruptPage: number;
  /** hv_process_channel_removal: unmap and RELID_RELEASED (rescinded channels only). */
  remove(channel: GuestChannel): void;
  /** A perf channel moved CPUs: the spreading's bookkeeping follows (hv_update_allocated_cpus). */
  cpuMoved(channel: GuestChannel, from: number, to: number): void;
  /** The MNF state of a monitor id, read from the monitor pages. */
  monitorSnapshot(monitorId: number): MonitorSnapshot;
}

/** Linux's enum vmbus_channel_state values (include/linux/hyperv.h). */
export const LINUX_CHANNEL_STATE: Readonly<Record<GuestChannelState, number>> = { offer: 0, opening: 1, open: 2, opened: 3 };

interface Rings {
  gpa: number;
  bytes: number;
  gpadl: number;
  outbound: RingWriter;
  inbound: RingReader;
}

export class GuestChannel {
  state: GuestChannelState = 'offer';
  rescinded = false;
  /** The offer's work (device probe, or the primary's sub-channel callback) has finished. */
  probeDone = false;
  /** The rescind has been seen by the work that removes the channel (rescind_ref). */
  rescindHandled = false;
  /** The primary channel, for a sub-channel. */
  readonly primary: GuestChannel | undefined;
  readonly subchannels: GuestChannel[] = [];
  /**
   * chn_rescind_callback (vmbus_set_chn_rescind_callback): when set on a primary with a driver,
   * a rescind calls it and leaves the device registered (hv_sock).
   */
  onRescind: ((channel: GuestChannel) => void) | undefined;
  /** sc_creation_callback: a driver that wants sub-channels opens them here. */
  onSubchannel: ((sub: GuestChannel) => void) | undefined;
  /** The driver bound to this (primary) channel's device, if any. */
  driver: { name: string; remove?(channel: GuestChannel): void } | undefined;
  /** Bypass the monitor page and always signal with HvSignalEvent (low-latency mode). */
  lowLatency = false;
  targetCpu = 0;
  callbackMode: CallbackMode = 'batched';
  maxPacketSize = VMBUS_DEFAULT_MAX_PKT_SIZE;
  /** Counters as Linux keeps them (sysfs): interrupts taken, signals sent. */
  interrupts = 0;
  sigEvents = 0;
  /** Packets the reader dropped as unparseable, and the last reason. */
  badPackets = 0;
  lastBadPacket: string | undefined;
  /** Set when the host broke a ring; the channel is then left alone. */
  corrupt: string | undefined;
  private callback: ((channel: GuestChannel) => void) | undefined;
  private rings: Rings | undefined;
  private requestor: Requestor<unknown> | undefined;

  constructor(
    readonly offer: OfferInfo,
    private readonly owner: ChannelOwner,
    primary?: GuestChannel,
  ) {
    this.primary = primary;
  }

  get relid(): number {
    return this.offer.relid;
  }

  /** The device name Linux gives the channel's device: its instance GUID. */
  get deviceName(): string {
    return this.offer.instanceId;
  }

  get isOpen(): boolean {
    return this.state === 'opened';
  }

  /** vmbus_proto_version: the VMBus version the connection negotiated (drivers check it in their probe). */
  get vmbusVersion(): number {
    return this.owner.version;
  }

  // --- Open and close (vmbus.md §6.2, §6.3) ---------------------------------------------------

  /** vmbus_open: allocates the rings, shares them, sends OPENCHANNEL and waits for the result. */
  open(opts: OpenOptions): void {
    const t = this.owner.transport;
    const pageSize = t.memory.pageSize;
    if (this.state !== 'open') throw new VmbusError('EINVAL', `channel ${this.relid} is ${this.state}, not ready to open`);
    const { sendRingBytes: send, recvRingBytes: recv } = opts;
    // Each ring is a header page plus at least one data page, in whole guest pages.
    for (const size of [send, recv]) {
      if (!Number.isSafeInteger(size) || size % pageSize !== 0 || size < 2 * pageSize) throw new VmbusError('EINVAL', `ring size ${size} is not at least two ${pageSize}-byte pages`);
    }
    const userData = opts.userData ?? new Uint8Array(0);
    if (userData.length > MAX_USER_DEFINED_BYTES) throw new VmbusError('EINVAL', `user data of ${userData.length} bytes exceeds ${MAX_USER_DEFINED_BYTES}`);
    this.state = 'opening';
    this.callback = opts.onEvent;
    this.callbackMode = opts.callbackMode ?? 'batched';
    this.maxPacketSize = opts.maxPacketSize ?? VMBUS_DEFAULT_MAX_PKT_SIZE;
    const gpa = t.allocPages(send + recv);
    let gpadl = 0;
    try {
      const ring = ringPfns(gpa, send, recv, pageSize);
      gpadl = this.shareGpadl(ring.pfns, ring.byteCount);
      // Both control pages are set up after the GPADL exists and before OPENCHANNEL (hv_ringbuffer_init).
      const outMem = contiguousRing(t.memory, gpa, send, pageSize);
      const inMem = contiguousRing(t.memory, gpa + send, recv, pageSize);
      initRing(outMem);
      initRing(inMem);
      this.rings = { gpa, bytes: send + recv, gpadl, outbound: new RingWriter(outMem), inbound: new RingReader(inMem, { kind: 'linux', maxPacketSize: this.maxPacketSize }) };
      this.requestor = opts.requestorSize ? new Requestor(opts.requestorSize) : undefined;
      if (this.rescinded) throw new VmbusError('ENODEV', `channel ${this.relid} was rescinded`);
      const padded = new Uint8Array(MAX_USER_DEFINED_BYTES);
      padded.set(userData);
      const openMessage = encodeChannelMessage(T.OPENCHANNEL, {
        child_relid: this.relid,
        openid: this.relid,
        ringbuffer_gpadlhandle: gpadl,
        target_vp: t.vpIndex(this.targetCpu),
        downstream_ringbuffer_pageoffset: ring.downstreamOffset,
        userdata: padded,
      });
      const result = this.owner.request(this, (m) => m.type === T.OPENCHANNEL_RESULT && m.value.child_relid === this.relid && m.value.openid === this.relid, () => this.owner.post(openMessage), 'OPENCHANNEL_RESULT');
      if (!result) throw new VmbusError('ENODEV', `channel ${this.relid} was rescinded while opening`);
      if (result.type === T.OPENCHANNEL_RESULT && result.value.status !== 0) throw new VmbusError('EAGAIN', `host refused to open channel ${this.relid}: status 0x${result.value.status.toString(16)}`);
      this.state = 'opened';
    } catch (e) {
      // Back to "ready to open": the GPADL is torn down and the rings freed.
      this.callback = undefined;
      this.rings = undefined;
      this.state = 'open';
      if (gpadl) this.tryTeardown(gpadl);
      t.freePages(gpa, send + recv);
      throw e;
    }
  }

  /**
   * vmbus_close: for a primary, its sub-channels first (a rescinded one is removed once closed),
   * then itself: callbacks stop, CLOSECHANNEL, the ring GPADL torn down, the rings freed. A
   * sub-channel closes only with its primary (vmbus_disconnect_ring); closing it alone just
   * stops its callbacks (Linux would also free its rings, which the host is still using).
   */
  close(): void {
    if (this.primary) {
      this.callback = undefined;
      return;
    }
    for (const sub of [...this.subchannels]) {
      if (sub.closeInternal() && sub.rescinded) this.owner.remove(sub);
    }
    this.closeInternal();
  }

  /**
   * vmbus_close_internal; true if the channel was open and is now closed, its GPADL torn down.
   * If the host could not be told, the rings are kept (and leaked), as Linux does.
   */
  private closeInternal(): boolean {
    this.callback = undefined;
    const rings = this.rings;
    if (this.state !== 'opened' || !rings) return false;
    this.state = 'open';
    this.rings = undefined;
    this.requestor = undefined;
    try {
      this.owner.post(encodeChannelMessage(T.CLOSECHANNEL, { child_relid: this.relid }));
    } catch (e) {
      // Linux leaks the rings rather than free memory the host may still use.
      if (!(e instanceof VmbusError)) throw e;
      this.owner.transport.log('err', `Close failed: close post msg return is ${e.errno}`);
      return false;
    }
    if (!this.tryTeardown(rings.gpadl)) return false;
    this.owner.transport.freePages(rings.gpa, rings.bytes);
    return true;
  }

  /** Tears down a GPADL, logging instead of throwing; false if the host did not confirm. */
  private tryTeardown(handle: number): boolean {
    try {
      this.teardownGpadl(handle);
      return true;
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      this.owner.transport.log('err', `Close failed: teardown gpadl return ${e.errno}`);
      return false;
    }
  }

  // --- GPADLs (vmbus.md §5) ------------------------------------------------------------------

  /** vmbus_establish_gpadl for a buffer (BUFFER layout): returns the handle the host knows it by. */
  establishGpadl(gpa: number, size: number): number {
    const pageSize = this.owner.transport.memory.pageSize;
    if (gpa % pageSize !== 0 || size <= 0 || size % pageSize !== 0) throw new VmbusError('EINVAL', `buffer 0x${gpa.toString(16)}+${size} is not whole guest pages`);
    return this.shareGpadl(bufferPfns(gpa, size), size);
  }

  private shareGpadl(pfns: number[], byteCount: number): number {
    const handle = this.owner.nextGpadlHandle();
    const messages = gpadlMessages(this.relid, handle, pfns, byteCount);
    // Header then every body without waiting in between; the reply is matched by (relid, handle).
    const created = this.owner.request(
      this,
      (m) => m.type === T.GPADL_CREATED && m.value.child_relid === this.relid && m.value.gpadl === handle,
      () => messages.forEach((m) => this.owner.post(m)),
      'GPADL_CREATED',
    );
    if (!created) throw new VmbusError('ENODEV', `channel ${this.relid} was rescinded while its GPADL was set up`);
    if (created.type === T.GPADL_CREATED && created.value.creation_status !== 0) {
      this.owner.transport.log('err', `Failed to establish GPADL: err = 0x${created.value.creation_status.toString(16)}`);
      throw new VmbusError('EDQUOT', `GPADL 0x${handle.toString(16)} refused`);
    }
    return handle;
  }

  /**
   * vmbus_teardown_gpadl: GPADL_TEARDOWN and wait for GPADL_TORNDOWN. A rescinded channel's
   * GPADLs are already gone on the host, so nothing is sent (vmbus.md §5.5).
   */
  teardownGpadl(handle: number): void {
    if (this.rescinded) return;
    const done = this.owner.request(
      this,
      (m) => m.type === T.GPADL_TORNDOWN && m.value.gpadl === handle,
      () => this.owner.post(encodeChannelMessage(T.GPADL_TEARDOWN, { child_relid: this.relid, gpadl: handle })),
      'GPADL_TORNDOWN',
    );
    void done; // a rescind meanwhile also ends it
  }

  // --- Sending -----------------------------------------------------------------------------

  /**
   * Writes one packet and signals the host if the ring went from empty to non-empty and the
   * host has not masked interrupts. False (Linux -EAGAIN) if the ring has no room.
   */
  sendPacket(parts: readonly Uint8Array[]): boolean {
    const rings = this.rings;
    if (this.rescinded) throw new VmbusError('ENODEV', `channel ${this.relid} was rescinded`);
    // Like hv_ringbuffer_write, which checks only for a rescind: the rings exist from before
    // OPENCHANNEL, and a callback run while the open is in flight may answer the host at once.
    if (!rings || (this.state !== 'opened' && this.state !== 'opening')) throw new VmbusError('EINVAL', `channel ${this.relid} is not open`);
    if (this.corrupt) throw new VmbusError('EIO', `channel ${this.relid}: ${this.corrupt}`);
    let r: { written: boolean; signal: boolean };
    try {
      r = rings.outbound.write(parts);
    } catch (e) {
      throw this.broken(e);
    }
    if (r.signal) this.signal();
    return r.written;
  }

  /** vmbus_sendpacket with VM_PKT_DATA_INBAND. */
  sendInband(payload: Uint8Array, transId = 0n, completionRequested = false): boolean {
    return this.sendPacket(inband(payload, transId, completionRequested));
  }

  /**
   * An in-band request wanting a completion: its trans id comes from the requestor (1..size),
   * standing for `context`. Undefined if the ring is full or every id is in use.
   */
  sendRequest(payload: Uint8Array, context: unknown): bigint | undefined {
    const id = this.sendRequestOf(payload, context);
    return id === 0 ? undefined : BigInt(id);
  }

  /**
   * sendRequest() with the id as a number, 0 if the request was not sent; the packet is written
   * in place in the ring (the same bytes as inband() makes), with no BigInt, parts or descriptor made.
   */
  sendRequestOf(payload: Uint8Array, context: unknown): number {
    const rq = this.requestor;
    if (!rq) throw new VmbusError('EINVAL', `channel ${this.relid} was opened without a requestor`);
    const id = rq.allocateOf(context);
    if (id === 0) return 0;
    let sent = false;
    try {
      sent = this.writeRequest(payload, id);
    } finally {
      if (!sent) rq.takeOf(id, 0);
    }
    return sent ? id : 0;
  }

  /** sendPacket() of inband(payload, id, true), the packet filled in where the ring holds it. */
  private writeRequest(payload: Uint8Array, id: number): boolean {
    const rings = this.rings;
    if (this.rescinded) throw new VmbusError('ENODEV', `channel ${this.relid} was rescinded`);
    if (!rings || (this.state !== 'opened' && this.state !== 'opening')) throw new VmbusError('EINVAL', `channel ${this.relid} is not open`);
    if (this.corrupt) throw new VmbusError('EIO', `channel ${this.relid}: ${this.corrupt}`);
    // A packet too long for len8 is refused by inband() itself, as it always was.
    if (PacketDescriptor.size + payload.length > MAX_PACKET_BYTES) return this.sendPacket(inband(payload, BigInt(id), true));
    let signal: boolean;
    try {
      const batch = rings.outbound.batch();
      const space = batch.reserve(PacketDescriptor.size + payload.length);
      if (!space) return false;
      space.descriptorWords(PacketType.DATA_INBAND, PacketDescriptor.size / 8, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, id, 0);
      space.set(PacketDescriptor.size, payload);
      signal = batch.commit().signal;
    } catch (e) {
      throw this.broken(e);
    }
    if (signal) this.signal();
    return true;
  }

  /** vmbus_sendpacket_mpb_desc: a GPA-direct request over guest pages, with its in-band part. */
  sendGpaDirect(ranges: readonly GpaDirectRange[], payload: Uint8Array, context: unknown): bigint | undefined {
    return this.withRequestId(context, (id) => this.sendPacket(gpaDirect(ranges, payload, id)));
  }

  /** A VM_PKT_COMP echoing the host's trans id. */
  sendCompletion(transId: bigint, payload?: Uint8Array): boolean {
    return this.sendPacket(completion(transId, payload));
  }

  private withRequestId(context: unknown, send: (id: bigint) => boolean): bigint | undefined {
    const rq = this.requestor;
    if (!rq) throw new VmbusError('EINVAL', `channel ${this.relid} was opened without a requestor`);
    const id = rq.allocate(context);
    if (id === undefined) return undefined;
    let sent = false;
    try {
      sent = send(id);
    } finally {
      if (!sent) rq.take(id);
    }
    return sent ? id : undefined;
  }

  /** The context of a completed request (vmbus_request_addr); undefined for an id not outstanding. */
  completeRequest(transId: bigint): unknown {
    return this.requestor?.take(transId);
  }

  /** completeRequest() of the id whose low and high 32 bits these are (as PacketHead has them). */
  completeRequestOf(transIdLow: number, transIdHigh: number): unknown {
    return this.requestor?.takeOf(transIdLow, transIdHigh);
  }

  /**
   * hv_get_avail_to_write_percent (include/linux/hyperv.h) of the outbound ring: the share of its
   * data area free to write, from the indices as they stand, in whole percent; 0 without rings.
   * What snapshot().outbound gives, without building the snapshot.
   */
  availToWritePercent(): number {
    const mem = this.rings?.outbound.mem;
    if (!mem || mem.dataSize === 0) return 0;
    const w = Atomics.load(mem.control, Ctl.WRITE_INDEX);
    const r = Atomics.load(mem.control, Ctl.READ_INDEX);
    const size = mem.dataSize;
    const toRead = w >= r ? w - r : size - r + w;
    return Math.floor(((size - toRead) * 100) / size);
  }

  /** Room in the outbound ring for one packet, trailer excluded (0 once the ring is corrupt). */
  writable(): number {
    if (this.corrupt) return 0;
    try {
      return this.rings?.outbound.available() ?? 0;
    } catch (e) {
      this.broken(e);
      return 0;
    }
  }

  /**
   * Asks the host to signal once `bytes` are free in the outbound ring
   * (set_channel_pending_send_size). Returns true if they already are: the host may have made
   * room just before, and will not signal.
   */
  waitForSpace(bytes: number): boolean {
    this.rings?.outbound.setPendingSendSize(bytes);
    return bytes > 0 && this.writable() + 2 * VMBUS_PKT_TRAILER >= bytes;
  }

  /** vmbus_setevent: the monitor page for MNF channels, otherwise HvSignalEvent. */
  signal(): void {
    this.sigEvents++;
    const t = this.owner.transport;
    const o = this.offer;
    if (o.monitorId !== undefined && !this.lowLatency) {
      setBit(t, this.owner.sendInterruptPage, o.relid);
      const group = Math.floor(o.monitorId / MONITORS_PER_GROUP);
      const pending = this.owner.monitorPage + MonitorPage.offsets.trigger_group + group * MonitorTriggerGroup.size + MonitorTriggerGroup.offsets.pending;
      setBit(t, pending, o.monitorId % MONITORS_PER_GROUP);
      return;
    }
    if (!o.dedicatedInterrupt) setBit(t, this.owner.sendInterruptPage, o.relid);
    t.signalEvent(o.connectionId, 0);
  }

  // --- Receiving ---------------------------------------------------------------------------

  /**
   * Reads every waiting packet (the foreach_vmbus_pkt loop): each is a private, clamped copy,
   * parsed and handed to `onPacket`; one that does not parse is counted and skipped. Then the
   * read index is published and the host signalled if it was waiting for room. Returns the count.
   */
  receive(onPacket: (packet: ParsedPacket) => void): number {
    const rings = this.rings;
    if (!rings || this.corrupt) return 0;
    let n = 0;
    try {
      const batch = rings.inbound.batch();
      n = readPackets(batch, onPacket, (e) => {
        this.badPackets++;
        this.lastBadPacket = e.message;
      });
      if (batch.commit().signal) this.signal();
    } catch (e) {
      if (!(e instanceof RingCorruptError)) throw e;
      this.broken(e);
    }
    return n;
  }

  /**
   * receive() for a driver that is done with each packet when its callback returns, as Linux's
   * foreach_vmbus_pkt hands each one out in the channel's one private buffer (hv_pkt_iter_first):
   * the packet is copied there, its descriptor checked as parsePacket checks it, and `onPacket`
   * gets the buffer and the descriptor's fields, with nothing allocated. The buffer holds the
   * next packet once the callback returns; a packet that does not parse is counted and skipped
   * as receive() skips it.
   */
  receiveInPlace(onPacket: (bytes: Uint8Array, head: PacketHead) => void): number {
    const rings = this.rings;
    if (!rings || this.corrupt) return 0;
    let n = 0;
    try {
      const reader = rings.inbound;
      const batch = reader.batch();
      const buffer = reader.privateBuffer(reader.largestPacket);
      const head = this.head;
      for (let length = batch.readInto(buffer); length >= 0; length = batch.readInto(buffer)) {
        n++;
        try {
          parsePacketHead(buffer, length, head);
        } catch (e) {
          if (!(e instanceof PacketError)) throw e;
          this.badPackets++;
          this.lastBadPacket = e.message;
          continue;
        }
        onPacket(buffer, head);
      }
      if (batch.commit().signal) this.signal();
    } catch (e) {
      if (!(e instanceof RingCorruptError)) throw e;
      this.broken(e);
    }
    return n;
  }
  private readonly head = new PacketHead();

  /** Bytes waiting in the inbound ring. */
  readable(): number {
    try {
      return this.rings?.inbound.readable() ?? 0;
    } catch (e) {
      this.broken(e);
      return 0;
    }
  }

  /**
   * @internal The channel's interrupt (vmbus_chan_sched, then vmbus_on_event): in batched mode
   * the host is told not to signal while the callback drains, and the callback runs again if
   * a packet arrived as the mask came off. Returns true if packets are still waiting after
   * many rounds (a host that keeps the ring full): the caller runs it again later, as Linux
   * reschedules the tasklet, since no new signal will come for them.
   */
  interrupt(): boolean {
    const cb = this.callback;
    if (!cb || this.rescinded) return false;
    this.interrupts++;
    const inbound = this.rings?.inbound;
    try {
      if (this.callbackMode !== 'batched' || !inbound) {
        cb(this);
        return false;
      }
      inbound.mask();
      for (let rounds = 0; rounds < CALLBACK_ROUNDS; rounds++) {
        cb(this);
        if (this.callback !== cb || this.corrupt || !inbound.unmask()) return false;
        inbound.mask();
      }
      return inbound.unmask();
    } catch (e) {
      // What the host did to the rings is recorded; the interrupt path itself never throws.
      if (e instanceof RingCorruptError) this.broken(e);
      else if (e instanceof VmbusError) this.owner.transport.log('err', `channel ${this.relid}: callback failed: ${e.message}`);
      else throw e;
      if (!this.corrupt) inbound?.unmask();
      return false;
    }
  }

  // --- MODIFYCHANNEL (vmbus.md §6.5) --------------------------------------------------------

  /**
   * target_cpu_store (vmbus_drv.c), the sysfs write that retargets a channel: needs 4.1, an
   * online CPU and an opened channel (the host ignores MODIFYCHANNEL for others). From 5.3 the
   * host answers and a failure status is an error; before, the request goes unacknowledged and
   * interrupts may still arrive on the old CPU for a while.
   */
  setTargetCpu(cpu: number): void {
    const t = this.owner.transport;
    if (this.owner.version < VmbusVersion.WIN10_V4_1) throw new VmbusError('EIO', `MODIFYCHANNEL needs VMBus 4.1`);
    if (!Number.isInteger(cpu) || !t.onlineCpus().includes(cpu)) throw new VmbusError('EINVAL', `CPU ${cpu} is not online`);
    if (this.state !== 'opened') throw new VmbusError('EIO', `channel ${this.relid} is not open`);
    const origin = this.targetCpu;
    if (cpu === origin) return;
    const message = encodeChannelMessage(T.MODIFYCHANNEL, { child_relid: this.relid, target_vp: t.vpIndex(cpu) });
    if (this.owner.version >= VmbusVersion.WIN10_V5_3) {
      const r = this.owner.request(this, (m) => m.type === T.MODIFYCHANNEL_RESPONSE && m.value.child_relid === this.relid, () => this.owner.post(message), 'MODIFYCHANNEL_RESPONSE');
      if (!r) throw new VmbusError('ENODEV', `channel ${this.relid} was rescinded`);
      if (r.type === T.MODIFYCHANNEL_RESPONSE && r.value.status !== 0) throw new VmbusError('EIO', `host refused to retarget channel ${this.relid}: status 0x${r.value.status.toString(16)}`);
    } else {
      this.owner.post(message);
    }
    this.targetCpu = cpu;
    this.owner.cpuMoved(this, origin, cpu);
  }

  /** The channel as sysfs shows it (vmbus_drv.c channel and device attributes). */
  snapshot(): ChannelSnapshot {
    const t = this.owner.transport;
    const r = this.rings;
    const monitorId = this.offer.monitorId;
    return {
      relid: this.relid,
      state: this.state,
      subChannelIndex: this.offer.subChannelIndex,
      monitorId,
      targetCpu: this.targetCpu,
      targetVp: t.vpIndex(this.targetCpu),
      connectionId: this.offer.connectionId,
      interrupts: this.interrupts,
      sigEvents: this.sigEvents,
      rescinded: this.rescinded,
      outbound: r && ringSnapshot(r.outbound.mem),
      inbound: r && ringSnapshot(r.inbound.mem),
      monitor: monitorId === undefined ? undefined : this.owner.monitorSnapshot(monitorId),
    };
  }

  /** A corrupt ring: recorded, the channel left alone, and a VmbusError for the caller. */
  private broken(e: unknown): VmbusError {
    if (!(e instanceof RingCorruptError)) throw e;
    if (!this.corrupt) {
      this.corrupt = e.message;
      this.owner.transport.log('err', `channel ${this.relid}: ${e.message}`);
    }
    return new VmbusError('EIO', `channel ${this.relid}: ${e.message}`);
  }
}

/** sync_set_bit on guest memory: an atomic OR into the 32-bit word holding bit `bit` at `gpa`. */
function setBit(t: ClientTransport, gpa: number, bit: number): void {
  const word = gpa + 4 * (bit >>> 5);
  if (!t.memory.contains(word, 4) || word % 4 !== 0) return;
  Atomics.or(new Uint32Array(t.memory.buffer, word, 1), 0, 1 << (bit & 31));
}
