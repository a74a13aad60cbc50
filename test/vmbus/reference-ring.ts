// The ring as it was before the fast path (kept verbatim as a plain reference implementation):
// test/vmbus/ring-equivalence.test.ts runs it and src/vmbus/ring/ring.ts on the same random
// sequences and asserts that both leave the same bytes, indices, signal decisions and errors.
//
// Ring buffers (vmbus.md §7): lock-free single-producer single-consumer queues in shared memory.
// Both ends use a two-phase API, as OpenVMM's vmbus_ring does: a batch of writes (or reads),
// then one commit that publishes the index and says whether the other end must be signalled,
// by Linux's rules (drivers/hv/ring_buffer.c hv_signal_on_write, hv_pkt_iter_close).
//
// Ordering: every control word is accessed with Atomics, which are sequentially consistent in
// JavaScript; packet bytes are written before the write_index store that publishes them and
// read after the write_index load that revealed them (vmbus.md §7.8).
import { VMBUS_PKT_TRAILER } from '../../src/vmbus/wire/constants.js';
import { PacketDescriptor, PacketTrailer } from '../../src/vmbus/wire/packets.js';
import { Ctl, type RingMemory } from '../../src/vmbus/ring/memory.js';
import { RingCorruptError } from '../../src/vmbus/ring/ring.js';

const FEAT_PENDING_SEND_SZ = 1;
const ARENA_BYTES = 64 * 1024;

const setU16 = (b: Uint8Array, at: number, v: number): void => {
  b[at] = v & 0xff;
  b[at + 1] = v >>> 8;
};
const D_OFF8 = PacketDescriptor.offsets.offset8;
const D_LEN8 = PacketDescriptor.offsets.len8;

/** Bytes readable between a read and a write index. */
const readable = (w: number, r: number, size: number): number => (w >= r ? w - r : size - r + w);
/** Bytes writable as Linux counts them (an empty ring reports the whole data area). */
const writable = (w: number, r: number, size: number): number => size - readable(w, r, size);

function checkIndex(v: number, size: number, field: string): number {
  if (v >= size || v % 8 !== 0) throw new RingCorruptError(field, `${v} is not an 8-byte aligned offset below ${size}`);
  return v;
}

abstract class RingEnd {
  constructor(readonly mem: RingMemory) {
    if (mem.dataSize % 8 !== 0 || mem.dataSize < 16) throw new RangeError(`ring data size ${mem.dataSize} is not a multiple of 8 of at least 16`);
  }

  protected load(word: number): number {
    return Atomics.load(this.mem.control, word);
  }
  protected store(word: number, v: number): void {
    Atomics.store(this.mem.control, word, v >>> 0);
  }

  /** The peer's index, checked: out of range or unaligned means a corrupt ring. */
  protected peerIndex(word: number, field: string): number {
    return checkIndex(this.load(word), this.mem.dataSize, field);
  }

  /** Sets bit 0 of feature_bits: this end honours and sets pending_send_sz (vmbus.md §7.1). */
  setFeaturePendingSendSize(on = true): void {
    const f = this.load(Ctl.FEATURE_BITS);
    this.store(Ctl.FEATURE_BITS, on ? f | FEAT_PENDING_SEND_SZ : f & ~FEAT_PENDING_SEND_SZ);
  }
}

/** One write batch: packets appended after the published index, invisible until commit. */
export class WriteBatch {
  private at: number;
  private written = 0;

  constructor(
    private readonly writer: RingWriter,
    /** write_index when the batch began. */
    readonly start: number,
    /** The reader's index when the batch began. */
    private readonly readIndex: number,
  ) {
    this.at = start;
  }

  /** Room left for packets, trailers included: the ring may never become completely full. */
  get free(): number {
    return writable(this.start, this.readIndex, this.writer.mem.dataSize) - this.written - VMBUS_PKT_TRAILER;
  }

  /**
   * Appends one packet made of `parts` (descriptor first), zero-padded to 8 bytes, then its
   * trailer. Returns false, writing nothing, if it does not fit.
   */
  write(parts: readonly Uint8Array[]): boolean {
    let len = 0;
    for (const p of parts) len += p.length;
    const padded = Math.ceil(len / 8) * 8;
    const total = padded + VMBUS_PKT_TRAILER;
    if (total > this.free) return false;
    const mem = this.writer.mem;
    const size = mem.dataSize;
    const begin = this.at;
    let at = begin;
    for (const p of parts) {
      mem.write(at, p);
      at = (at + p.length) % size;
    }
    if (padded > len) {
      mem.write(at, ZEROS.subarray(0, padded - len));
      at = (at + padded - len) % size;
    }
    // Trailer: the packet's start offset in the upper 32 bits (Linux prev_indices).
    PacketTrailer.encode({ reserved: 0, start_offset: begin }, TRAILER);
    mem.write(at, TRAILER);
    this.at = (at + VMBUS_PKT_TRAILER) % size;
    this.written += total;
    return true;
  }

  /** Bytes appended so far. */
  get length(): number {
    return this.written;
  }

  /**
   * Publishes the batch with one write_index store and says whether to signal the reader: only
   * if it is not masking interrupts and had read everything before this batch, i.e. the ring
   * went from empty to non-empty (hv_signal_on_write).
   */
  commit(): { signal: boolean; bytes: number } {
    if (this.written === 0) return { signal: false, bytes: 0 };
    const w = this.writer;
    w.publish(this.at);
    if (w.peerMasked()) return { signal: false, bytes: this.written };
    return { signal: w.peerReadIndex() === this.start, bytes: this.written };
  }
}

const ZEROS = new Uint8Array(8);
const TRAILER = new Uint8Array(VMBUS_PKT_TRAILER);

/** The producing end of a ring. */
export class RingWriter extends RingEnd {
  /** Starts a batch at the published write index. Throws RingCorruptError if the reader's index is bad. */
  batch(): WriteBatch {
    const w = checkIndex(this.load(Ctl.WRITE_INDEX), this.mem.dataSize, 'write_index');
    return new WriteBatch(this, w, this.peerIndex(Ctl.READ_INDEX, 'read_index'));
  }

  /** Convenience: one packet in its own batch. */
  write(parts: readonly Uint8Array[]): { written: boolean; signal: boolean } {
    const b = this.batch();
    if (!b.write(parts)) return { written: false, signal: false };
    return { written: true, signal: b.commit().signal };
  }

  /** @internal */
  publish(index: number): void {
    this.store(Ctl.WRITE_INDEX, index);
  }
  /** @internal */
  peerMasked(): boolean {
    return this.load(Ctl.INTERRUPT_MASK) !== 0;
  }
  /** @internal */
  peerReadIndex(): number {
    return this.peerIndex(Ctl.READ_INDEX, 'read_index');
  }

  /** Bytes a packet could use now, trailer excluded (0 if none fits). */
  available(): number {
    const w = this.load(Ctl.WRITE_INDEX);
    const r = this.peerIndex(Ctl.READ_INDEX, 'read_index');
    return Math.max(0, writable(w, r, this.mem.dataSize) - 2 * VMBUS_PKT_TRAILER);
  }

  /**
   * Asks the reader to signal once `bytes` are free (0: not blocked). Rounded up to 8 and at most
   * the data size less a trailer, as OpenVMM accepts.
   */
  setPendingSendSize(bytes: number): void {
    const v = Math.min(Math.ceil(Math.max(0, bytes) / 8) * 8, this.mem.dataSize - VMBUS_PKT_TRAILER);
    this.store(Ctl.PENDING_SEND_SZ, v);
  }
}

/** A packet read from a ring: a private copy, so the writer cannot change it afterwards. */
export interface RingPacket {
  /** Descriptor and payload (len8 · 8 bytes, or fewer if clamped). */
  readonly bytes: Uint8Array;
  /** Offset of the payload in `bytes` (offset8 · 8, clamped). */
  readonly offset: number;
}

export type ReaderMode =
  /** Linux's hardened reader: clamp len8/offset8 and truncate to max_pkt_size (vmbus.md §7.5). */
  | { kind: 'linux'; maxPacketSize: number }
  /** OpenVMM's reader: a packet that does not fit is a corrupt ring. */
  | { kind: 'strict' };

/** One read batch: packets after the published read index; consumed only on commit. */
export class ReadBatch {
  private at: number;
  private consumed = 0;

  constructor(
    private readonly reader: RingReader,
    /** read_index when the batch began. */
    readonly start: number,
    /** The writer's index, loaded once: the packets this batch may see. */
    private readonly writeIndex: number,
  ) {
    this.at = start;
  }

  /** Bytes not yet consumed by this batch. */
  get available(): number {
    return readable(this.writeIndex, this.at, this.reader.mem.dataSize);
  }

  /** The next packet, or undefined if none is complete. Throws RingCorruptError in strict mode. */
  next(): RingPacket | undefined {
    const mem = this.reader.mem;
    const size = mem.dataSize;
    const available = this.available;
    if (available < PacketDescriptor.size) {
      // Fewer bytes than a descriptor can never become a packet (OpenVMM calls it invalid data
      // available); Linux just sees no packet, and so does its reader here.
      if (available > 0 && this.reader.mode.kind === 'strict') throw new RingCorruptError('write_index', `${available} bytes readable, less than a descriptor`);
      return undefined;
    }
    mem.read(this.at, this.reader.scratch);
    const dv = this.reader.scratchView;
    let len = dv.getUint16(D_LEN8, true) * 8;
    let offset = dv.getUint16(D_OFF8, true) * 8;
    const mode = this.reader.mode;
    if (mode.kind === 'strict') {
      if (len < PacketDescriptor.size || len + VMBUS_PKT_TRAILER > available) throw new RingCorruptError('len8', `${len} bytes do not fit the ${available} readable`);
      if (offset < PacketDescriptor.size || offset > len) throw new RingCorruptError('offset8', `${offset} is not within [16, ${len}]`);
    } else {
      // hv_pkt_iter_first: clamp to what is readable and to the receive buffer, then the offset.
      const limit = Math.min(available, mode.maxPacketSize);
      if (len < PacketDescriptor.size || len > limit) len = limit;
      if (offset < PacketDescriptor.size || offset > len) offset = PacketDescriptor.size;
    }
    const bytes = this.reader.allocate(len);
    mem.read(this.at, bytes);
    // The copy carries the values the reader acts on (Linux rewrites len8/offset8 in its copy).
    // Byte stores, not a DataView: asking a fresh small array for its buffer is slow in V8.
    setU16(bytes, D_LEN8, len / 8);
    setU16(bytes, D_OFF8, offset / 8);
    // Advance past the packet and its trailer, by the (possibly clamped) length. Linux adds the
    // trailer even when a hostile writer left no room for it, moving its read index past the
    // write index; stopping at the write index keeps this reader's ring consistent.
    const step = Math.min(len + VMBUS_PKT_TRAILER, available);
    this.at = (this.at + step) % size;
    this.consumed += step;
    return { bytes, offset };
  }

  /**
   * Publishes the new read index and says whether to signal the writer: only if it declared
   * itself blocked (pending_send_sz) and this batch took the free space from "not enough" to
   * "enough" (hv_pkt_iter_close). The interrupt mask plays no part in this signal.
   */
  commit(): { signal: boolean; bytes: number } {
    const r = this.reader;
    if (this.consumed === 0) return { signal: false, bytes: 0 };
    r.publish(this.at);
    const bytes = this.consumed;
    if (!(r.writerFeatures() & FEAT_PENDING_SEND_SZ)) return { signal: false, bytes };
    const pending = r.pendingSendSize();
    if (pending === 0) return { signal: false, bytes };
    const now = writable(r.writerIndex(), this.at, r.mem.dataSize);
    if (now - bytes > pending) return { signal: false, bytes }; // there was room before this batch
    if (now <= pending) return { signal: false, bytes }; // still not enough (full is never allowed)
    return { signal: true, bytes };
  }
}

/** The consuming end of a ring. */
export class RingReader extends RingEnd {
  /** @internal A descriptor-sized scratch buffer, and a view of it. */
  readonly scratch = new Uint8Array(PacketDescriptor.size);
  readonly scratchView = new DataView(this.scratch.buffer);
  private arena = new Uint8Array(0);
  private arenaAt = 0;

  /**
   * @internal Memory for one packet's private copy. Small copies are carved from a shared
   * block, never reused: allocating each typed array on its own costs far more than the copy.
   */
  allocate(len: number): Uint8Array {
    if (len > ARENA_BYTES / 4) return new Uint8Array(len);
    if (this.arenaAt + len > this.arena.length) {
      this.arena = new Uint8Array(ARENA_BYTES);
      this.arenaAt = 0;
    }
    const bytes = this.arena.subarray(this.arenaAt, this.arenaAt + len);
    this.arenaAt += len;
    return bytes;
  }

  constructor(
    mem: RingMemory,
    readonly mode: ReaderMode = { kind: 'strict' },
  ) {
    super(mem);
  }

  /** Starts a batch. Throws RingCorruptError if an index is bad. */
  batch(): ReadBatch {
    const r = checkIndex(this.load(Ctl.READ_INDEX), this.mem.dataSize, 'read_index');
    return new ReadBatch(this, r, this.peerIndex(Ctl.WRITE_INDEX, 'write_index'));
  }

  /** Bytes waiting. */
  readable(): number {
    const r = checkIndex(this.load(Ctl.READ_INDEX), this.mem.dataSize, 'read_index');
    return readable(this.peerIndex(Ctl.WRITE_INDEX, 'write_index'), r, this.mem.dataSize);
  }

  /** interrupt_mask = 1: the writer need not signal while this end drains the ring. */
  mask(): void {
    this.store(Ctl.INTERRUPT_MASK, 1);
  }

  /**
   * interrupt_mask = 0, then a fresh look: a packet written while masked raised no signal, so
   * the caller must drain again if this returns true (hv_end_read). Fewer bytes than a
   * descriptor are no packet: Linux would reschedule forever on them, this says no.
   */
  unmask(): boolean {
    this.store(Ctl.INTERRUPT_MASK, 0);
    return this.readable() >= PacketDescriptor.size;
  }

  /** @internal */
  publish(index: number): void {
    this.store(Ctl.READ_INDEX, index);
  }
  /** @internal The writer's index, checked. */
  writerIndex(): number {
    return this.peerIndex(Ctl.WRITE_INDEX, 'write_index');
  }
  /** @internal */
  writerFeatures(): number {
    return this.load(Ctl.FEATURE_BITS);
  }
  /** @internal */
  pendingSendSize(): number {
    return this.load(Ctl.PENDING_SEND_SZ);
  }
}

/** Sets up a fresh ring's control page as Linux's hv_ringbuffer_init does: zero, feature bit on. */
export function initRing(mem: RingMemory): void {
  mem.control.fill(0);
  Atomics.store(mem.control, Ctl.FEATURE_BITS, FEAT_PENDING_SEND_SZ);
}
