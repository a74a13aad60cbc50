// A channel as the host's device sees it (vmbus.md §6–§8): its offer, its state, and once the
// guest has opened it, the two rings: the host reads the guest→host ring and writes the
// host→guest one, signalling the guest by Linux's rules.
import { traceHex, type TraceDirection, type TraceEmitter } from '../../hypervisor/trace.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { hostRing } from './gpa-map.js';
import { Ctl } from '../ring/memory.js';
import { ringSnapshot, type RingSnapshot } from '../ring/debuginfo.js';
import { RingCorruptError, RingReader, RingWriter, type ReadBatch } from '../ring/ring.js';
import { completion, inband, readInband, readPackets } from '../packet.js';
import { PacketType, VMBUS_PKT_TRAILER } from '../wire/constants.js';
import { PacketDescriptor, PacketError, PacketHead, parsePacketHeadAt, type ParsedPacket } from '../wire/packets.js';
import { subarrayOf } from '../../memory/typed-arrays.js';
import type { Gpadl } from '../gpadl.js';

/** What a device offers (vmbus.md §2.3). */
export interface OfferSpec {
  /** Interface (class) GUID; for hv_sock, the service id. */
  classId: string;
  /** Instance GUID, shared by a device's sub-channels. */
  instanceId: string;
  subChannelIndex?: number;
  /** chn_flags (ChannelFlags). */
  flags?: number;
  mmioMegabytes?: number;
  /** The offer's 120-byte user-defined area. */
  userDefined?: Uint8Array;
  /** Signal through the MNF monitor page instead of HvSignalEvent. */
  monitor?: boolean;
}

export interface OpenRequest {
  readonly openId: number;
  readonly targetVp: number;
  readonly userData: Uint8Array;
}

/** What a device does when the guest opens, closes or signals its channel. */
export interface ChannelHandler {
  /** Returns 0 to accept the open, or a failure status. */
  open?(channel: HostChannel, request: OpenRequest): number;
  close?(channel: HostChannel): void;
  /**
   * The guest signalled: packets (or space) may be waiting. Without it, packets go to `packet`.
   * It should read what is waiting (receive): the guest signals again only when it writes into
   * an empty ring.
   */
  signal?(channel: HostChannel): void;
  /** Each packet the guest sent, when the device leaves reading to the server (no `signal`). */
  packet?(channel: HostChannel, packet: ParsedPacket): void;
  /** The host revoked the channel (RESCIND sent). */
  revoked?(channel: HostChannel): void;
}

export type HostChannelState = 'unoffered' | 'offered' | 'open' | 'revoked' | 'released';

export interface HostChannelContext {
  readonly memory: GuestMemory;
  signalGuest(channel: HostChannel): void;
  violation(channel: HostChannel, what: string): void;
  gpadl(channel: HostChannel, handle: number): Gpadl | undefined;
  /** Runs the device's signal handler again soon, as if the guest had signalled. */
  kick(channel: HostChannel): void;
  /** A polled ring's batch was committed (ServerOptions.onPolledBatch). */
  readonly polledBatch?: (() => void) | undefined;
  /** The event stream the channel's packets go to (ServerIo.events). */
  readonly events?: TraceEmitter | undefined;
}

/** Batches one receive() reads before it yields to other channels. */
const RECEIVE_ROUNDS = 16;
/**
 * Packets a polled ring's batch takes before it commits: NAPI's default poll weight
 * (NAPI_POLL_WEIGHT, include/linux/netdevice.h), which netvsc_poll reads before hv_pkt_iter_close.
 */
const POLL_BUDGET = 64;

/** The host's end of one channel. */
export class HostChannel {
  state: HostChannelState = 'unoffered';
  /** VP that receives this channel's interrupts (0xFFFFFFFF: none). */
  targetVp = 0;
  openId = 0;
  ringGpadl: number | undefined;
  monitorId: number | undefined;
  /** Set when the guest broke a ring of this channel; the channel is then left alone. */
  corrupt: string | undefined;
  private reader: RingReader | undefined;
  private writer: RingWriter | undefined;
  /** The rings' frames, and the overlay generation they were mapped at (gpa-map.ts). */
  private rings: { incoming: readonly number[]; outgoing: readonly number[]; generation: number } | undefined;
  /** Signals sent to the guest, and received from it, for inspection and benchmarks. */
  signalsSent = 0;
  signalsReceived = 0;
  /** Packets read from the guest and written to it. */
  packetsReceived = 0;
  packetsSent = 0;
  /** @internal The device's signal handler is due to run: more signals change nothing. */
  signalPending = false;
  /**
   * @internal The server polls the guest→host ring (ServerOptions.pollNs): its interrupt_mask
   * stays set, so that receive() leaves it set. `lastActive` is when the device last ran (-1:
   * not yet); `seenWrite` where the guest's writes stood when it began, `consumed` whether it read.
   */
  polling = false;
  lastActive = -1;
  seenWrite = -1;
  consumed = false;

  constructor(
    readonly relid: number,
    readonly offer: Required<Omit<OfferSpec, 'userDefined'>> & { userDefined: Uint8Array },
    /** The connection id the guest signals this channel on. */
    readonly connectionId: number,
    readonly handler: ChannelHandler,
    private readonly ctx: HostChannelContext,
  ) {}

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** @internal Maps the rings of an accepted open: fresh rings, a fresh start. */
  attachRings(incoming: readonly number[], outgoing: readonly number[]): void {
    this.corrupt = undefined;
    this.signalPending = false;
    this.polling = false;
    this.mapRings(incoming, outgoing);
    // The host honours pending_send_sz on the ring it writes (OpenVMM sets the bit there).
    this.writer!.setFeaturePendingSendSize(true);
  }

  /** Maps the rings through the GPA map as it is now (an overlay the guest moves changes it). */
  private mapRings(incoming: readonly number[], outgoing: readonly number[]): void {
    const mem = this.ctx.memory;
    this.rings = { incoming, outgoing, generation: mem.overlays.generation };
    this.reader = new RingReader(hostRing(mem, incoming), { kind: 'strict' });
    this.writer = new RingWriter(hostRing(mem, outgoing));
  }

  /** Maps the rings again if an overlay was mapped or unmapped since (a rare, guest-made event). */
  private remapIfMoved(): void {
    const r = this.rings;
    if (r && r.generation !== this.ctx.memory.overlays.generation) this.mapRings(r.incoming, r.outgoing);
  }

  /** @internal */
  detachRings(): void {
    this.reader = undefined;
    this.writer = undefined;
    this.rings = undefined;
  }

  /**
   * @internal Sets the guest→host ring's interrupt_mask from a signal until the device has run:
   * the guest need not signal again for data the device is about to read anyway.
   */
  maskIncoming(): void {
    this.guard(() => this.reader?.mask());
  }

  /** @internal Clears the mask if the device's handler did not (it did not call receive). */
  unmaskIncoming(): void {
    this.guard(() => this.reader?.unmask());
  }

  /**
   * @internal The guest→host ring's write and read indices as they stand, unchecked (-1 without
   * rings): polling only compares them with earlier values, to see that something moved.
   */
  incomingWriteIndex(): number {
    return this.reader ? Atomics.load(this.reader.mem.control, Ctl.WRITE_INDEX) : -1;
  }
  incomingReadIndex(): number {
    return this.reader ? Atomics.load(this.reader.mem.control, Ctl.READ_INDEX) : -1;
  }

  /** Both rings as their control pages stand (hv_ringbuffer_get_debuginfo's fields), while open. */
  ringState(): { incoming: RingSnapshot; outgoing: RingSnapshot } | undefined {
    this.remapIfMoved();
    if (!this.reader || !this.writer) return undefined;
    return { incoming: ringSnapshot(this.reader.mem), outgoing: ringSnapshot(this.writer.mem) };
  }

  /** Bytes waiting in the guest→host ring. */
  readable(): number {
    return this.guard(() => this.reader?.readable() ?? 0) ?? 0;
  }

  /**
   * Reads every waiting packet, in batches, handing each to `onPacket`; after each batch the
   * guest is signalled if it was blocked waiting for space. Returns the number read. A packet
   * that does not parse is reported and skipped; a corrupt ring stops the channel.
   *
   * While it reads, the ring's interrupt_mask tells the guest not to signal. The ring is looked
   * at again after each commit and after unmasking: a packet written meanwhile raised no signal
   * (hv_signal_on_write), so stopping there could leave it unread. A ring that never drains is
   * handed back to the device as a fresh signal after a few rounds, so one channel cannot
   * starve the rest. While the server polls the ring, the mask stays set and the poll comes back.
   */
  receive(onPacket: (p: ParsedPacket) => void): number {
    return this.receiveWith((batch, trace) => readPackets(batch, onPacket, this.badPacket, trace));
  }

  /**
   * receive() for a device that reads each packet where the reader copied it (its private copy,
   * which stays as it is: the host keeps what it likes of it): `onPacket` gets the bytes, the
   * packet's offset and length there, and its descriptor as parsePacket checks it, in a head that
   * is reused for the next packet. Nothing is made per packet. The same packets, checks,
   * violations, commits and signals as receive().
   */
  receiveInPlace(onPacket: (bytes: Uint8Array, at: number, length: number, head: PacketHead) => void): number {
    const head = this.head;
    return this.receiveWith((batch, trace) => {
      let n = 0;
      for (let length = batch.nextCopy(); length >= 0; length = batch.nextCopy()) {
        n++;
        const bytes = batch.copyBytes;
        const at = batch.copyAt;
        trace?.(subarrayOf(bytes, at, at + length));
        try {
          parsePacketHeadAt(bytes, at, length, head);
        } catch (e) {
          if (!(e instanceof PacketError)) throw e;
          this.badPacket(e);
          continue;
        }
        onPacket(bytes, at, length, head);
      }
      return n;
    });
  }
  private readonly head = new PacketHead();

  /**
   * receive() for a device that takes in-band data where it lies (packet.ts readInband): each
   * in-band packet without flags goes to `onInband` as its in-band part [start, end) of `bytes`,
   * valid during the call only; any other packet, parsed, to `onPacket`. The same batches,
   * checks, violations, signals and trace as receive(), without a copy or an object per packet.
   */
  receiveInband(onInband: (bytes: Uint8Array, start: number, end: number) => void, onPacket: (p: ParsedPacket) => void): number {
    return this.receiveWith((batch, trace) => readInband(batch, onInband, onPacket, this.badPacket, trace));
  }

  private readonly badPacket = (e: PacketError): void => this.ctx.violation(this, `packet: ${e.message}`);

  /** receive()'s rounds, each batch read by `read` (which returns how many packets it took; given the batch's tracer, if tracing). */
  private receiveWith(read: (batch: ReadBatch, trace: ((bytes: Uint8Array) => void) | undefined) => number): number {
    this.remapIfMoved();
    const reader = this.reader;
    if (!reader || this.corrupt) return 0;
    let n = 0;
    this.guard(() => {
      reader.mask();
      for (let round = 0; round < RECEIVE_ROUNDS; round++) {
        // Polled, a batch takes a NAPI budget of packets: the read index (and the writer's
        // pending_send_sz signal) moves while the rest is read, as each netvsc_poll commits.
        const batch = this.polling ? reader.batch(POLL_BUDGET) : reader.batch();
        const events = this.ctx.events;
        const trace = events?.active && events.wants?.('packet') !== false ? this.readTracer(events, reader, batch) : undefined;
        const taken = read(batch, trace);
        n += taken;
        this.packetsReceived += taken;
        if (batch.commit().signal) this.signal();
        if (this.reader !== reader) return;
        if (this.polling) {
          this.ctx.polledBatch?.();
          if (reader.readable() === 0) return;
          continue;
        }
        if (reader.readable() === 0 && !reader.unmask()) return;
        reader.mask();
      }
      if (this.polling) return;
      reader.unmask();
      this.ctx.kick(this);
    });
    return n;
  }

  /**
   * Traces each packet a read batch takes, with the guest→host ring's indices once it is past
   * it: the read index the batch has reached (published when it commits) and the write index the
   * guest has published now.
   */
  private readTracer(events: TraceEmitter, reader: RingReader, batch: ReadBatch): (bytes: Uint8Array) => void {
    const size = reader.mem.dataSize;
    let at = batch.start;
    let left = batch.available;
    return (bytes) => {
      // `available` counts down from the batch's start as it moves past each packet and trailer.
      const now = batch.available;
      at = (at + left - now) % size;
      left = now;
      this.tracePacket(events, 'to-host', bytes, { readIndex: at, writeIndex: Atomics.load(reader.mem.control, Ctl.WRITE_INDEX), ringSize: size });
    };
  }

  private tracePacket(events: TraceEmitter, dir: TraceDirection, bytes: Uint8Array, ring: { readIndex: number; writeIndex: number; ringSize: number }): void {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const whole = bytes.length >= PacketDescriptor.size;
    events.emit({
      kind: 'packet',
      dir,
      channel: this.relid,
      type: whole ? dv.getUint16(PacketDescriptor.offsets.type, true) : 0,
      transId: whole ? dv.getBigUint64(PacketDescriptor.offsets.trans_id, true) : 0n,
      length: bytes.length,
      bytes: traceHex(bytes),
      ...ring,
    });
  }

  /** Writes one packet; signals the guest if its ring went from empty to non-empty. False if full. */
  send(parts: readonly Uint8Array[]): boolean {
    this.remapIfMoved();
    const writer = this.writer;
    if (!writer || this.corrupt) return false;
    // What guard() does, without a closure made per packet.
    try {
      const r = writer.write(parts);
      const events = this.ctx.events;
      // Traced before the signal it may raise, which follows it in the trace.
      if (r.written) this.packetsSent++;
      if (r.written && events?.active && events.wants?.('packet') !== false) {
        // The host→guest ring as it stands with the packet in: its write index, the guest's read index.
        const ring = ringSnapshot(writer.mem);
        this.tracePacket(events, 'to-guest', padded(parts), { readIndex: ring.readIndex, writeIndex: ring.writeIndex, ringSize: ring.dataSize });
      }
      if (r.signal) this.signal();
      return r.written;
    } catch (e) {
      this.corrupted(e);
      return false;
    }
  }

  /**
   * Writes up to `count` packets, packet `i` being what `packet(i)` returns (called in order, each
   * written before the next is asked for), in one batch: one write_index store and one signal
   * decision for all (hv_signal_on_write for the batch: the guest had read everything before it).
   * Stops at the first packet that does not fit; returns how many were written. While packets are
   * traced, each is sent on its own, as send() sends it, so that each trace shows its ring.
   */
  sendMany(count: number, packet: (i: number) => readonly Uint8Array[]): number {
    const events = this.ctx.events;
    if (events?.active && events.wants?.('packet') !== false) {
      let n = 0;
      while (n < count && this.send(packet(n))) n++;
      return n;
    }
    this.remapIfMoved();
    const writer = this.writer;
    if (!writer || this.corrupt || count <= 0) return 0;
    let n = 0;
    try {
      const batch = writer.batch();
      while (n < count && batch.write(packet(n))) n++;
      this.packetsSent += n;
      if (batch.commit().signal) this.signal();
    } catch (e) {
      this.corrupted(e);
      return 0;
    }
    return n;
  }

  sendInband(payload: Uint8Array, transId = 0n, completionRequested = false): boolean {
    return this.send(inband(payload, transId, completionRequested));
  }

  sendCompletion(transId: bigint, payload?: Uint8Array): boolean {
    return this.send(completion(transId, payload));
  }

  /**
   * sendCompletion() for a trans id given as its low and high 32 bits (as PacketHead has it):
   * the same packet, written in place in the ring, with no BigInt, parts or descriptor made.
   */
  sendCompletionOf(transIdLow: number, transIdHigh: number, payload: Uint8Array): boolean {
    const events = this.ctx.events;
    if (events?.active && events.wants?.('packet') !== false) return this.sendCompletion((BigInt(transIdHigh >>> 0) << 32n) | BigInt(transIdLow >>> 0), payload);
    this.remapIfMoved();
    const writer = this.writer;
    if (!writer || this.corrupt) return false;
    try {
      const batch = writer.batch();
      const space = batch.reserve(PacketDescriptor.size + payload.length);
      if (!space) return false;
      space.descriptorWords(PacketType.COMP, PacketDescriptor.size / 8, 0, transIdLow, transIdHigh);
      if (payload.length) space.set(PacketDescriptor.size, payload);
      this.packetsSent++;
      if (batch.commit().signal) this.signal();
      return true;
    } catch (e) {
      this.corrupted(e);
      return false;
    }
  }

  /** Room for one packet in the host→guest ring, trailer excluded. */
  writable(): number {
    return this.guard(() => this.writer?.available() ?? 0) ?? 0;
  }

  /**
   * Asks the guest to signal once `bytes` are free in the host→guest ring (0 clears it). Returns
   * true if they already are: the guest may have made room just before, and will not signal.
   */
  waitForSpace(bytes: number): boolean {
    this.guard(() => this.writer?.setPendingSendSize(bytes));
    return bytes > 0 && this.writable() + 2 * VMBUS_PKT_TRAILER >= bytes;
  }

  /** A GPADL the guest created on this channel (device buffers, GPA-direct data). */
  gpadl(handle: number): Gpadl | undefined {
    return this.ctx.gpadl(this, handle);
  }

  private signal(): void {
    // Until OPENCHANNEL_RESULT is out, the guest may not be interrupted (vmbus.md §6.2).
    if (this.holdSignals) {
      this.heldSignal = true;
      return;
    }
    this.signalsSent++;
    this.ctx.signalGuest(this);
  }

  /** @internal While the device's open handler runs, signals wait for the open's result. */
  holdSignals = false;
  private heldSignal = false;

  /** @internal Sends the signal the open handler's writes raised, once the result is out. */
  releaseSignals(): void {
    this.holdSignals = false;
    if (this.heldSignal) {
      this.heldSignal = false;
      this.signal();
    }
  }

  /** Runs a ring operation; a corrupt ring marks the channel and is reported, not thrown. */
  private guard<T>(f: () => T): T | undefined {
    this.remapIfMoved();
    try {
      return f();
    } catch (e) {
      this.corrupted(e);
      return undefined;
    }
  }

  /** A corrupt ring stops the channel and is a violation; anything else is rethrown. */
  private corrupted(e: unknown): void {
    if (!(e instanceof RingCorruptError)) throw e;
    this.corrupt = e.message;
    this.ctx.violation(this, e.message);
  }
}

/** The packet `parts` make in the ring: concatenated and zero-padded to 8 bytes (RingWriter). */
function padded(parts: readonly Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(Math.ceil(len / 8) * 8);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
