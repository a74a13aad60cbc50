// Ring buffers (vmbus.md §7): lock-free single-producer single-consumer queues in shared memory.
// Both ends use a two-phase API, as OpenVMM's vmbus_ring does: a batch of writes (or reads),
// then one commit that publishes the index and says whether the other end must be signalled,
// by Linux's rules (drivers/hv/ring_buffer.c hv_signal_on_write, hv_pkt_iter_close).
//
// Ordering: every control word is accessed with Atomics, which are sequentially consistent in
// JavaScript; packet bytes are written before the write_index store that publishes them and
// read after the write_index load that revealed them (vmbus.md §7.8).
//
// This is the data plane, so it runs at memory speed: layout constants are plain numbers,
// descriptors and trailers are 32-bit stores, small packets are copied out as word moves and
// larger ones with one TypedArray.set per contiguous piece, and the fast calls make nothing per
// packet (but the view a large copy out of shared memory needs):
// - writing: WriteBatch.reserve() hands out a packet's room in the ring, filled in place;
// - reading: ReadBatch.view() shows the host the packet where it lies; ReadBatch.readInto()
//   copies it into the caller's buffer.
// Where hvkit is the guest (Linux's reader), every packet is first copied out of the ring and
// its lengths checked and rewritten in the copy, as hv_pkt_iter_first does: the guest acts only
// on bytes the host can no longer change (vmbus.md §12). Only the strict (host) reader's view
// lies in the ring.
// test/vmbus/reference-ring.ts keeps the plain implementation this one matches byte for byte.
import { WireError } from '../../tlfs/struct.js';
import { VMBUS_PKT_TRAILER } from '../wire/constants.js';
import { PacketDescriptor } from '../wire/packets.js';
import { Ctl, type RingMemory } from './memory.js';
import { setInto, subarrayOf } from '../../memory/typed-arrays.js';
import { moveWords } from '../../memory/word-copy.js';

/** The other end broke the ring: an index out of range or unaligned, or a packet that cannot be. */
export class RingCorruptError extends WireError {
  constructor(field: string, reason: string) {
    super('ring', field, reason);
  }
}

const FEAT_PENDING_SEND_SZ = 1;
const ARENA_BYTES = 64 * 1024;

// Layout, read once from the declarations.
const DESC = PacketDescriptor.size;
const TRAILER = VMBUS_PKT_TRAILER;
/** A read batch's default budget: every complete packet (a small integer, as the count stays). */
const ALL_PACKETS = 0x3fffffff;
const D_TYPE = PacketDescriptor.offsets.type;
const D_OFF8 = PacketDescriptor.offsets.offset8;
const D_LEN8 = PacketDescriptor.offsets.len8;
const D_FLAGS = PacketDescriptor.offsets.flags;
const D_TRANS = PacketDescriptor.offsets.trans_id;
// The word stores below pack the descriptor as vmpacket_descriptor lays it out.
if (D_TYPE !== 0 || D_OFF8 !== 2 || D_LEN8 !== 4 || D_FLAGS !== 6 || D_TRANS !== 8 || DESC !== 16) throw new Error('vmpacket_descriptor is not the 16-byte layout the ring packs');
const WRITE_INDEX = Ctl.WRITE_INDEX;
const READ_INDEX = Ctl.READ_INDEX;
const INTERRUPT_MASK = Ctl.INTERRUPT_MASK;
const PENDING_SEND_SZ = Ctl.PENDING_SEND_SZ;
const FEATURE_BITS = Ctl.FEATURE_BITS;

/** Bytes readable between a read and a write index. */
const readable = (w: number, r: number, size: number): number => (w >= r ? w - r : size - r + w);
/** Bytes writable as Linux counts them (an empty ring reports the whole data area). */
const writable = (w: number, r: number, size: number): number => size - readable(w, r, size);
const pad8 = (n: number): number => Math.ceil(n / 8) * 8;

function checkIndex(v: number, size: number, field: string): number {
  if (v >= size || v % 8 !== 0) throw new RingCorruptError(field, `${v} is not an 8-byte aligned offset below ${size}`);
  return v;
}

/** A little-endian u16 into `b` at `at`, each byte only if it lies below `limit`. */
function putU16(b: Uint8Array, at: number, v: number, limit: number): void {
  if (at < limit) b[at] = v & 0xff;
  if (at + 1 < limit) b[at + 1] = v >>> 8;
}

/** 64-bit values become two 32-bit halves through these views: cheaper than BigInt arithmetic. */
const U64 = new BigUint64Array(1);
const U64_HALVES = new Uint32Array(U64.buffer);
/** Word views read and write little-endian fields in one access, on a little-endian machine. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

abstract class RingEnd {
  /** The control page's words: every access goes through Atomics. */
  protected readonly control: Uint32Array;
  /** Size of the data area. */
  protected readonly size: number;
  /** The data area when it is one array (the fast path); otherwise copies go through `mem`. */
  protected readonly data: Uint8Array | undefined;
  /** The same as 32-bit words, for descriptors and trailers (8-byte aligned, so never split). */
  protected readonly words: Uint32Array | undefined;

  constructor(readonly mem: RingMemory) {
    if (mem.dataSize % 8 !== 0 || mem.dataSize < 16) throw new RangeError(`ring data size ${mem.dataSize} is not a multiple of 8 of at least 16`);
    this.control = mem.control;
    this.size = mem.dataSize;
    const data = (this.data = mem.window);
    this.words = data && LITTLE_ENDIAN && data.byteOffset % 4 === 0 ? new Uint32Array(data.buffer, data.byteOffset, data.length / 4) : undefined;
  }

  protected load(word: number): number {
    return Atomics.load(this.control, word);
  }
  protected store(word: number, v: number): void {
    Atomics.store(this.control, word, v >>> 0);
  }

  /** The peer's index, checked: out of range or unaligned means a corrupt ring. */
  protected peerIndex(word: number, field: string): number {
    return checkIndex(this.load(word), this.size, field);
  }

  /** Sets bit 0 of feature_bits: this end honours and sets pending_send_sz (vmbus.md §7.1). */
  setFeaturePendingSendSize(on = true): void {
    const f = this.load(FEATURE_BITS);
    this.store(FEATURE_BITS, on ? f | FEAT_PENDING_SEND_SZ : f & ~FEAT_PENDING_SEND_SZ);
  }

  /** @internal Copies `src` into the data area at `at`, splitting at the end; returns the offset after it. */
  copyIn(at: number, src: Uint8Array): number {
    const n = src.length;
    const first = this.size - at;
    const data = this.data;
    if (data === undefined) this.mem.write(at, src);
    else if (n <= SMALL_COPY && n <= first && this.copyWordsIn(at, src, n)) {
      // Copied a word at a time.
    } else if (n <= first) setInto(data, src, at);
    else {
      data.set(src.subarray(0, first), at);
      data.set(src.subarray(first), 0);
    }
    return n < first ? at + n : n - first;
  }

  /**
   * A small copy in as a loop of word moves, as copyWords copies out: a sender writes each packet
   * from the same few arrays of its own (a buffer's view per length), whose words are remembered.
   * False if either side is not word aligned.
   */
  private copyWordsIn(at: number, src: Uint8Array, n: number): boolean {
    const words = this.words;
    if (words === undefined || at % 4 !== 0) return false;
    // An array seen for the first time goes the usual way: a sender of a new array each time (a
    // frame's view) makes no word view it would not use again.
    if (src !== this.lastSrc) {
      this.lastSrc = src;
      this.lastSrcWords = undefined;
      return false;
    }
    this.lastSrcWords ??= src.byteOffset % 4 === 0 ? new Uint32Array(src.buffer, src.byteOffset, src.length >>> 2) : NO_WORDS;
    const srcWords = this.lastSrcWords;
    if (srcWords === NO_WORDS) return false;
    const whole = n >>> 2;
    const into = at >>> 2;
    moveWords(words, into, srcWords, 0, whole);
    const data = this.data!;
    for (let i = whole * 4; i < n; i++) data[at + i] = src[i]!;
    return true;
  }
  private lastSrc: Uint8Array | undefined;
  private lastSrcWords: Uint32Array | undefined;

  /**
   * @internal Copies `n` bytes from the data area at `at` into `dst` at `to`, splitting at the
   * end. `dstWords`, when given, is `dst` as 32-bit words, for small copies.
   */
  copyOut(at: number, dst: Uint8Array, to: number, n: number, dstWords?: Uint32Array): void {
    const data = this.data;
    const first = this.size - at;
    if (data === undefined) this.mem.read(at, dst.subarray(to, to + n));
    else if (n <= SMALL_COPY && n <= first && dstWords !== undefined && to + n <= dst.length && this.copyWords(at, dst, dstWords, to, n)) return;
    else if (n <= first) dst.set(data.subarray(at, at + n), to);
    else {
      dst.set(data.subarray(at, this.size), to);
      dst.set(data.subarray(0, n - first), to + first);
    }
  }

  /**
   * A small copy out as a loop of word moves: cheaper than the view a TypedArray.set of part of
   * a SharedArrayBuffer needs. False if either side is not word aligned.
   */
  private copyWords(at: number, dst: Uint8Array, dstWords: Uint32Array, to: number, n: number): boolean {
    const words = this.words;
    if (words === undefined || to % 4 !== 0 || at % 4 !== 0) return false;
    const whole = n >>> 2;
    const from = at >>> 2;
    const into = to >>> 2;
    moveWords(dstWords, into, words, from, whole);
    for (let i = whole * 4; i < n; i++) dst[to + i] = this.data![at + i]!;
    return true;
  }
}

/** Copies out up to this size move words; larger ones are one TypedArray.set. */
const SMALL_COPY = 320;

const ONE_BYTE = new Uint8Array(1);
/** copyWordsIn's mark for an array that is not word aligned. */
const NO_WORDS = new Uint32Array(0);
const NO_BYTES = new Uint8Array(0);
/** The first 8 bytes of a descriptor, read from a ring that is not one array. */
const HEAD = new Uint8Array(8);
const ZEROS = new Uint8Array(8);
const TRAILER_BYTES = new Uint8Array(TRAILER);

/** What RingWriter.write returns: shared constants, so that a send allocates nothing. */
const NOT_WRITTEN = Object.freeze({ written: false, signal: false });
const WRITTEN = Object.freeze({ written: true, signal: false });
const WRITTEN_SIGNAL = Object.freeze({ written: true, signal: true });

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
    return writable(this.start, this.readIndex, this.writer.dataSize) - this.written - TRAILER;
  }

  /**
   * Appends one packet made of `parts` (descriptor first), zero-padded to 8 bytes, then its
   * trailer. Returns false, writing nothing, if it does not fit.
   */
  write(parts: readonly Uint8Array[]): boolean {
    let len = 0;
    for (let i = 0; i < parts.length; i++) len += parts[i]!.length;
    const padded = pad8(len);
    if (padded + TRAILER > this.free) return false;
    this.at = this.writer.place(this.at, parts, len, padded);
    this.written += padded + TRAILER;
    return true;
  }

  /**
   * Reserves room for one packet of `length` bytes (descriptor included) and returns it, to be
   * filled in place before commit: every byte of [0, length) must be written, as the ring's
   * old contents are there. Padding and trailer are written now. Undefined if it does not fit.
   * The space is the writer's one object: valid until the next reserve.
   */
  reserve(length: number): PacketSpace | undefined {
    const padded = pad8(length);
    if (!(length >= 0) || padded + TRAILER > this.free) return undefined;
    const w = this.writer;
    const space = w.space;
    space.start = this.at;
    space.length = length;
    this.at = w.finish(this.at, length, padded);
    this.written += padded + TRAILER;
    return space;
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
    return { signal: this.writer.publish(this.at, this.start), bytes: this.written };
  }
}

/**
 * The room of one reserved packet in the ring, filled in place. Offsets are from the packet's
 * first byte; the packet may wrap around the end of the data area, which the stores handle.
 */
export class PacketSpace {
  /** @internal Ring offset of the packet's first byte. */
  start = 0;
  /** Packet length, descriptor included, padding excluded. */
  length = 0;

  constructor(
    private readonly size: number,
    private readonly data: Uint8Array | undefined,
    private readonly words: Uint32Array | undefined,
    private readonly mem: RingMemory,
  ) {}

  /** Ring offset of `n` bytes at packet byte `offset`, which must lie inside the packet. */
  private at(offset: number, n: number): number {
    if (!(offset >= 0 && offset + n <= this.length)) throw new RangeError(`${n} bytes at ${offset} exceed the ${this.length}-byte packet`);
    const at = this.start + offset;
    return at >= this.size ? at - this.size : at;
  }

  /** Copies `src` to byte `offset` of the packet. */
  set(offset: number, src: Uint8Array): void {
    const at = this.at(offset, src.length);
    const first = this.size - at;
    const data = this.data;
    if (data === undefined) this.mem.write(at, src);
    else if (src.length <= first) data.set(src, at);
    else {
      data.set(src.subarray(0, first), at);
      data.set(src.subarray(first), 0);
    }
  }

  /** Little-endian stores at byte `offset` of the packet. */
  setU16(offset: number, v: number): void {
    this.bytes(this.at(offset, 2), 2, v);
  }
  setU32(offset: number, v: number): void {
    this.bytes(this.at(offset, 4), 4, v);
  }
  setU64(offset: number, v: bigint): void {
    U64[0] = v;
    this.bytes(this.at(offset, 8), 4, U64_HALVES[0]!);
    this.bytes(this.at(offset + 4, 4), 4, U64_HALVES[1]!);
  }

  /**
   * The 16-byte descriptor (vmbus.md §8.1), len8 from the packet's length: type, offset8 (the
   * payload's offset in 8-byte units), flags and the transaction id.
   */
  descriptor(type: number, offset8: number, flags: number, transId: bigint): void {
    U64[0] = transId;
    this.descriptorWords(type, offset8, flags, U64_HALVES[0]!, U64_HALVES[1]!);
  }

  /** descriptor() with the transaction id as its low and high 32 bits (no BigInt made). */
  descriptorWords(type: number, offset8: number, flags: number, transIdLow: number, transIdHigh: number): void {
    const len8 = pad8(this.length) / 8;
    if (len8 > 0xffff) throw new RangeError(`a ${this.length}-byte packet does not fit len8`);
    const at = this.at(0, DESC);
    const first = (type & 0xffff) | ((offset8 & 0xffff) << 16);
    const second = len8 | ((flags & 0xffff) << 16);
    const words = this.words;
    // The packet starts 8-byte aligned: the words are aligned, and only the halves can wrap.
    if (words !== undefined && at + DESC <= this.size) {
      const i = at >> 2;
      words[i] = first;
      words[i + 1] = second;
      words[i + 2] = transIdLow;
      words[i + 3] = transIdHigh;
      return;
    }
    this.bytes(at, 4, first);
    this.bytes(this.at(D_LEN8, 4), 4, second);
    this.bytes(this.at(D_TRANS, 4), 4, transIdLow);
    this.bytes(this.at(D_TRANS + 4, 4), 4, transIdHigh);
  }

  /** `n` (≤ 4) little-endian bytes of `v` at ring offset `at`, split at the end of the data area if need be. */
  private bytes(at: number, n: number, v: number): void {
    const data = this.data;
    for (let i = 0; i < n; i++) {
      const b = (v >>> (8 * i)) & 0xff;
      if (data !== undefined) data[at] = b;
      else {
        ONE_BYTE[0] = b;
        this.mem.write(at, ONE_BYTE);
      }
      at = at + 1 === this.size ? 0 : at + 1;
    }
  }
}

/**
 * The producing end of a ring (vmbus.md §7): `write()` places a packet (descriptor included) and
 * says whether the reader must be signalled, by Linux's rules. Its reader is RingReader.
 *
 * @example
 * ```ts
 * import { initRing, RingReader, RingWriter, windowRing } from 'hvkit';
 *
 * // A ring in plain memory: its 4 KiB control page, then a 4 KiB data area.
 * const buffer = new SharedArrayBuffer(8192);
 * const mem = windowRing(new Uint32Array(buffer, 0, 1024), new Uint8Array(buffer, 4096));
 * initRing(mem);
 * const writer = new RingWriter(mem);
 * const reader = new RingReader(mem);
 *
 * // An in-band packet: the 16-byte descriptor (type 6, payload at 2 × 8 bytes, 3 × 8 bytes long,
 * // no flags, transaction id 7), then 8 bytes of payload.
 * const packet = new Uint8Array(24);
 * const d = new DataView(packet.buffer);
 * d.setUint16(0, 6, true);
 * d.setUint16(2, 2, true);
 * d.setUint16(4, 3, true);
 * d.setBigUint64(8, 7n, true);
 * packet.set(new TextEncoder().encode('hello!!!'), 16);
 *
 * // The ring was empty, so the writer must signal the reader.
 * console.log(writer.write([packet])); // → { written: true, signal: true }
 * const batch = reader.batch();
 * const p = batch.next()!;
 * console.log(new TextDecoder().decode(p.bytes.subarray(p.offset))); // → hello!!!
 * batch.commit();
 * console.log(reader.readable()); // → 0
 * ```
 */
export class RingWriter extends RingEnd {
  /** @internal The space reserve() hands out, one per writer. */
  readonly space: PacketSpace;

  constructor(mem: RingMemory) {
    super(mem);
    this.space = new PacketSpace(this.size, this.data, this.words, mem);
  }

  get dataSize(): number {
    return this.size;
  }

  /** Starts a batch at the published write index. Throws RingCorruptError if the reader's index is bad. */
  batch(): WriteBatch {
    const w = checkIndex(this.load(WRITE_INDEX), this.size, 'write_index');
    return new WriteBatch(this, w, this.peerIndex(READ_INDEX, 'read_index'));
  }

  /** One packet in its own batch: what batch(), write() and commit() would do, with no objects made. */
  write(parts: readonly Uint8Array[]): Readonly<{ written: boolean; signal: boolean }> {
    const size = this.size;
    const w = checkIndex(this.load(WRITE_INDEX), size, 'write_index');
    const r = this.peerIndex(READ_INDEX, 'read_index');
    let len = 0;
    for (let i = 0; i < parts.length; i++) len += parts[i]!.length;
    const padded = pad8(len);
    if (padded + TRAILER > writable(w, r, size) - TRAILER) return NOT_WRITTEN;
    return this.publish(this.place(w, parts, len, padded), w) ? WRITTEN_SIGNAL : WRITTEN;
  }

  /** @internal Copies a packet's parts at `at`, then its padding and trailer; returns the offset after. */
  place(at: number, parts: readonly Uint8Array[], len: number, padded: number): number {
    const begin = at;
    for (let i = 0; i < parts.length; i++) at = this.copyIn(at, parts[i]!);
    return this.finish(begin, len, padded);
  }

  /**
   * @internal Zero padding after the packet's `len` bytes at `begin`, then the trailer: the
   * packet's start offset in the upper 32 bits (Linux prev_indices). Returns the offset after.
   */
  finish(begin: number, len: number, padded: number): number {
    const size = this.size;
    let at = begin + len;
    if (at >= size) at -= size;
    const data = this.data;
    const words = this.words;
    // The padding ends on an 8-byte boundary, so it never wraps; nor does the aligned trailer.
    if (data !== undefined && words !== undefined) {
      for (let i = len; i < padded; i++) data[at++] = 0;
      if (at === size) at = 0;
      words[at >> 2] = 0;
      words[(at >> 2) + 1] = begin;
    } else if (data !== undefined) {
      for (let i = len; i < padded; i++) data[at++] = 0;
      if (at === size) at = 0;
      data.fill(0, at, at + 4);
      data[at + 4] = begin & 0xff;
      data[at + 5] = (begin >>> 8) & 0xff;
      data[at + 6] = (begin >>> 16) & 0xff;
      data[at + 7] = begin >>> 24;
    } else {
      if (padded > len) this.mem.write(at, ZEROS.subarray(0, padded - len));
      at += padded - len;
      if (at === size) at = 0;
      TRAILER_BYTES[4] = begin & 0xff;
      TRAILER_BYTES[5] = (begin >>> 8) & 0xff;
      TRAILER_BYTES[6] = (begin >>> 16) & 0xff;
      TRAILER_BYTES[7] = begin >>> 24;
      this.mem.write(at, TRAILER_BYTES);
    }
    at += TRAILER;
    return at === size ? 0 : at;
  }

  /**
   * @internal Stores the new write index and decides the signal (hv_signal_on_write): none if
   * the reader masks interrupts, else only if it had read everything up to `start`.
   */
  publish(index: number, start: number): boolean {
    this.store(WRITE_INDEX, index);
    if (this.load(INTERRUPT_MASK) !== 0) return false;
    return this.peerIndex(READ_INDEX, 'read_index') === start;
  }

  /** Bytes a packet could use now, trailer excluded (0 if none fits). */
  available(): number {
    const w = this.load(WRITE_INDEX);
    const r = this.peerIndex(READ_INDEX, 'read_index');
    return Math.max(0, writable(w, r, this.size) - 2 * TRAILER);
  }

  /**
   * Asks the reader to signal once `bytes` are free (0: not blocked). Rounded up to 8 and at most
   * the data size less a trailer, as OpenVMM accepts.
   */
  setPendingSendSize(bytes: number): void {
    const v = Math.min(pad8(Math.max(0, bytes)), this.size - TRAILER);
    this.store(PENDING_SEND_SZ, v);
  }
}

/** A packet read from a ring: a private copy, so the writer cannot change it afterwards. */
export interface RingPacket {
  /** Descriptor and payload (len8 · 8 bytes, or fewer if clamped). */
  readonly bytes: Uint8Array;
  /** Offset of the payload in `bytes` (offset8 · 8, clamped). */
  readonly offset: number;
}

/**
 * A packet where it lies: bytes [at, at + length) of `bytes`, descriptor first, its payload at
 * `offset` from the packet's start. Valid until the batch moves on. `length` and `offset` are
 * the values the reader checked (and, Linux's way, clamped): use them, never len8 and offset8
 * from the bytes, which a writer sharing the ring may change at any time.
 */
export interface RingView {
  readonly bytes: Uint8Array;
  readonly at: number;
  readonly length: number;
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
  /** The packet found by locate(): its (checked, clamped) length and payload offset. */
  private len = 0;
  private offset = 0;

  constructor(
    private readonly reader: RingReader,
    /** read_index when the batch began. */
    readonly start: number,
    /** The writer's index, loaded once: the packets this batch may see. */
    private readonly writeIndex: number,
    /** Packets this batch takes at most (RingReader.batch's budget). */
    private left: number,
  ) {
    this.at = start;
  }

  /** Bytes not yet consumed by this batch. */
  get available(): number {
    return readable(this.writeIndex, this.at, this.reader.dataSize);
  }

  /**
   * Finds the next packet: false if none is complete. Sets `len` and `offset`, read once from the
   * descriptor and checked (strict: RingCorruptError) or clamped (Linux's hv_pkt_iter_first).
   */
  private locate(): boolean {
    if (this.left === 0) return false;
    const r = this.reader;
    const available = this.available;
    if (available < DESC) {
      // Fewer bytes than a descriptor can never become a packet (OpenVMM calls it invalid data
      // available); Linux just sees no packet, and so does its reader here.
      if (available > 0 && r.strict) throw new RingCorruptError('write_index', `${available} bytes readable, less than a descriptor`);
      return false;
    }
    const { len8, offset8 } = r.lengths(this.at);
    let len = len8 * 8;
    let offset = offset8 * 8;
    if (r.strict) {
      if (len < DESC || len + TRAILER > available) throw new RingCorruptError('len8', `${len} bytes do not fit the ${available} readable`);
      if (offset < DESC || offset > len) throw new RingCorruptError('offset8', `${offset} is not within [16, ${len}]`);
    } else {
      // hv_pkt_iter_first: clamp to what is readable and to the receive buffer, then the offset.
      const limit = Math.min(available, r.maxPacketSize);
      if (len < DESC || len > limit) len = limit;
      if (offset < DESC || offset > len) offset = DESC;
    }
    this.len = len;
    this.offset = offset;
    this.left--;
    return true;
  }

  /**
   * Copies the located packet into `dst` at `to` and writes the checked values into the copy's
   * len8 and offset8 (Linux rewrites its copy the same way), then moves past it.
   */
  private copyPacket(dst: Uint8Array, to: number, dstWords: Uint32Array | undefined): void {
    const len = this.len;
    this.reader.copyOut(this.at, dst, to, len, dstWords);
    putU16(dst, to + D_LEN8, len / 8, to + len);
    putU16(dst, to + D_OFF8, this.offset / 8, to + len);
    this.advance();
  }

  /**
   * Past the packet and its trailer, by the (possibly clamped) length. Linux adds the trailer
   * even when a hostile writer left no room for it, moving its read index past the write index;
   * stopping at the write index keeps this reader's ring consistent.
   */
  private advance(): void {
    const step = Math.min(this.len + TRAILER, this.available);
    const size = this.reader.dataSize;
    this.at = this.at + step >= size ? this.at + step - size : this.at + step;
    this.consumed += step;
  }

  /** The next packet as a private copy of its own, or undefined if none is complete. Throws RingCorruptError in strict mode. */
  next(): RingPacket | undefined {
    const bytes = this.nextBytes();
    // The payload offset locate() checked, which moving past the packet leaves as it was.
    return bytes && { bytes, offset: this.offset };
  }

  /** next()'s private copy alone, with no RingPacket made (its offset8 holds the checked offset). */
  nextBytes(): Uint8Array | undefined {
    if (!this.locate()) return undefined;
    const len = this.len;
    const r = this.reader;
    if (len > ARENA_BYTES / 4) {
      const bytes = new Uint8Array(len);
      this.copyPacket(bytes, 0, undefined);
      return bytes;
    }
    const to = r.allocate(len);
    const arena = r.arena;
    this.copyPacket(arena, to, r.arenaWords);
    return subarrayOf(arena, to, to + len);
  }

  /**
   * nextBytes() without the view made: the packet's private copy is `copyBytes` from `copyAt`
   * (valid as nextBytes' is); returns its length, or -1 if none is complete.
   */
  nextCopy(): number {
    if (!this.locate()) return -1;
    const len = this.len;
    const r = this.reader;
    if (len > ARENA_BYTES / 4) {
      const bytes = new Uint8Array(len);
      this.copyPacket(bytes, 0, undefined);
      this.copyBytes = bytes;
      this.copyAt = 0;
      return len;
    }
    const to = r.allocate(len);
    const arena = r.arena;
    this.copyPacket(arena, to, r.arenaWords);
    this.copyBytes = arena;
    this.copyAt = to;
    return len;
  }
  /** Where nextCopy() put the packet. */
  copyBytes: Uint8Array = NO_BYTES;
  copyAt = 0;

  /**
   * The next packet into `dst` (from index 0), which must hold the largest packet this reader
   * takes (RangeError otherwise, whatever the ring holds). Returns the packet's length (its
   * payload offset is in the copy's offset8), or -1 if none is complete.
   */
  readInto(dst: Uint8Array): number {
    if (dst.length < this.reader.largestPacket) throw new RangeError(`a ${dst.length}-byte buffer cannot hold this reader's ${this.reader.largestPacket}-byte packets`);
    if (!this.locate()) return -1;
    const len = this.len;
    this.copyPacket(dst, 0, this.reader.wordsOf(dst));
    return len;
  }

  /**
   * The next packet, allocating nothing. The host's (strict) reader shows it where it lies in
   * the ring when it does not wrap, so the host copies only what it keeps. Linux's reader (the
   * guest) always copies it into its private buffer first, as hv_pkt_iter_first does: the guest
   * acts only on bytes the host can no longer change (vmbus.md §12).
   */
  view(): RingView | undefined {
    if (!this.locate()) return undefined;
    const r = this.reader;
    const v = r.current;
    v.length = this.len;
    v.offset = this.offset;
    const window = r.window;
    if (r.strict && window !== undefined && this.at + this.len <= r.dataSize) {
      v.bytes = window;
      v.at = this.at;
      this.advance();
    } else {
      v.bytes = r.privateBuffer(this.len);
      v.at = 0;
      this.copyPacket(v.bytes, 0, r.privateWords);
    }
    return v;
  }

  /**
   * Publishes the new read index and says whether to signal the writer: only if it declared
   * itself blocked (pending_send_sz) and this batch took the free space from "not enough" to
   * "enough" (hv_pkt_iter_close). The interrupt mask plays no part in this signal.
   */
  commit(): { signal: boolean; bytes: number } {
    const bytes = this.consumed;
    if (bytes === 0) return { signal: false, bytes: 0 };
    return { signal: this.reader.publish(this.at, bytes), bytes };
  }
}

/** The view ReadBatch.view() fills in, one per reader. */
class MutableView implements RingView {
  bytes: Uint8Array = new Uint8Array(0);
  at = 0;
  length = 0;
  offset = 0;
}

/** The consuming end of a ring. */
export class RingReader extends RingEnd {
  /** @internal OpenVMM's reader (true) or Linux's, which clamps to max_pkt_size. */
  readonly strict: boolean;
  /** @internal Linux's max_pkt_size (the strict reader has none). */
  readonly maxPacketSize: number;
  /** @internal The largest packet this reader hands out. */
  readonly largestPacket: number;
  /** @internal The view ReadBatch.view() fills in. */
  readonly current = new MutableView();
  /** @internal The block next() carves its packets' copies from, and it as words. */
  arena = new Uint8Array(0);
  arenaWords = new Uint32Array(0);
  private arenaAt = 0;
  private privateCopy = new Uint8Array(0);
  /** @internal The private buffer as words. */
  privateWords = new Uint32Array(0);
  private lastDst: Uint8Array | undefined;
  private lastDstWords: Uint32Array | undefined;

  constructor(
    mem: RingMemory,
    readonly mode: ReaderMode = { kind: 'strict' },
  ) {
    super(mem);
    this.strict = mode.kind === 'strict';
    this.maxPacketSize = mode.kind === 'linux' ? mode.maxPacketSize : this.size;
    this.largestPacket = mode.kind === 'linux' ? Math.min(mode.maxPacketSize, this.size) : this.size - TRAILER;
  }

  get dataSize(): number {
    return this.size;
  }

  /** @internal The data area as one array, if it is one. */
  get window(): Uint8Array | undefined {
    return this.data;
  }

  /**
   * @internal Room for one packet's private copy in the arena: its offset there. Copies are
   * carved from a shared block, never reused: allocating each typed array on its own costs far
   * more than the copy. Each starts word aligned, for the small-copy loop.
   */
  allocate(len: number): number {
    if (this.arenaAt + len > this.arena.length) {
      this.arena = new Uint8Array(ARENA_BYTES);
      this.arenaWords = new Uint32Array(this.arena.buffer);
      this.arenaAt = 0;
    }
    const at = this.arenaAt;
    this.arenaAt += pad8(len);
    return at;
  }

  /** @internal The reader's private buffer (Linux's per-channel copy), at least `len` bytes, reused. */
  privateBuffer(len: number): Uint8Array {
    if (this.privateCopy.length < len) {
      this.privateCopy = new Uint8Array(Math.max(len, this.largestPacket));
      this.privateWords = new Uint32Array(this.privateCopy.buffer, 0, this.privateCopy.length >>> 2);
    }
    return this.privateCopy;
  }

  /** @internal A caller's buffer as words (the last one is remembered), if it is word aligned. */
  wordsOf(dst: Uint8Array): Uint32Array | undefined {
    if (dst !== this.lastDst) {
      this.lastDst = dst;
      this.lastDstWords = dst.byteOffset % 4 === 0 ? new Uint32Array(dst.buffer, dst.byteOffset, dst.length >>> 2) : undefined;
    }
    return this.lastDstWords;
  }

  /**
   * @internal len8 and offset8 of the descriptor at `at`, read once. At an 8-byte aligned index
   * they never wrap; Linux's reader can be moved off alignment by a packet it truncated.
   */
  lengths(at: number): { len8: number; offset8: number } {
    const l = this.found;
    const words = this.words;
    if (words !== undefined && at % 8 === 0) {
      const i = at >> 2;
      l.offset8 = words[i]! >>> 16;
      l.len8 = words[i + 1]! & 0xffff;
    } else {
      this.mem.read(at, HEAD);
      l.offset8 = HEAD[D_OFF8]! | (HEAD[D_OFF8 + 1]! << 8);
      l.len8 = HEAD[D_LEN8]! | (HEAD[D_LEN8 + 1]! << 8);
    }
    return l;
  }
  private readonly found = { len8: 0, offset8: 0 };

  /**
   * Starts a batch of at most `budget` packets (all that are complete by default); the next
   * batch goes on where it stopped. Throws RingCorruptError if an index is bad.
   */
  batch(budget = ALL_PACKETS): ReadBatch {
    const r = checkIndex(this.load(READ_INDEX), this.size, 'read_index');
    return new ReadBatch(this, r, this.peerIndex(WRITE_INDEX, 'write_index'), budget);
  }

  /** Bytes waiting. */
  readable(): number {
    const r = checkIndex(this.load(READ_INDEX), this.size, 'read_index');
    return readable(this.peerIndex(WRITE_INDEX, 'write_index'), r, this.size);
  }

  /** interrupt_mask = 1: the writer need not signal while this end drains the ring. */
  mask(): void {
    this.store(INTERRUPT_MASK, 1);
  }

  /**
   * interrupt_mask = 0, then a fresh look: a packet written while masked raised no signal, so
   * the caller must drain again if this returns true (hv_end_read). Fewer bytes than a
   * descriptor are no packet: Linux would reschedule forever on them, this says no.
   */
  unmask(): boolean {
    this.store(INTERRUPT_MASK, 0);
    return this.readable() >= DESC;
  }

  /**
   * @internal Stores the new read index after a batch that consumed `bytes`, and decides the
   * signal (hv_pkt_iter_close): only if the writer set the feature bit and pending_send_sz, and
   * the free space went from at most pending_send_sz to more than it.
   */
  publish(index: number, bytes: number): boolean {
    this.store(READ_INDEX, index);
    if (!(this.load(FEATURE_BITS) & FEAT_PENDING_SEND_SZ)) return false;
    const pending = this.load(PENDING_SEND_SZ);
    if (pending === 0) return false;
    const now = writable(this.peerIndex(WRITE_INDEX, 'write_index'), index, this.size);
    if (now - bytes > pending) return false; // there was room before this batch
    return now > pending; // still not enough otherwise (full is never allowed)
  }
}

/** Sets up a fresh ring's control page as Linux's hv_ringbuffer_init does: zero, feature bit on. */
export function initRing(mem: RingMemory): void {
  mem.control.fill(0);
  Atomics.store(mem.control, Ctl.FEATURE_BITS, FEAT_PENDING_SEND_SZ);
}
