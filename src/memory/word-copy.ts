// Copies between byte arrays on the per-frame paths (guest memory, a send or receive section, a
// private buffer). Two costs of TypedArray.prototype.set decide how a copy goes (Node 20):
// - a source range inside a larger buffer needs a view made first, and a view plus the call
//   cost several times a 64-byte copy;
// - when either side is a SharedArrayBuffer, V8 copies with relaxed atomics, 8 bytes at a time
//   only if the two addresses agree modulo 8, else byte by byte: a frame after a 44-byte RNDIS
//   header (4 modulo 8) copied from an array at 0 takes 2.4 times as long at 64 bytes, and
//   six times at 1,500.
// So a copy whose ends are both word-aligned goes as 32-bit word moves through views of each
// whole buffer made once when it is small; a larger one that set() would take byte by byte goes
// through a private buffer placed at the shared side's alignment (two set()s at full speed);
// anything else is one set(). (An ArrayBuffer's bytes start 8-aligned, so an array's address
// modulo 8 is its byteOffset's.)
import { setInto, subarrayOf } from './typed-arrays.js';

/**
 * dst[di, di + count) = src[si, si + count), in 32-bit words. Four moves per turn: V8 does not
 * unroll loops, and for a 64-byte frame the loop's own work is most of the cost (16 single
 * moves about 23 ns, four turns of four about 13 ns, Node 20). Both ranges must lie inside
 * their arrays, and must not overlap.
 */
export function moveWords(dst: Uint32Array<ArrayBufferLike>, di: number, src: Uint32Array<ArrayBufferLike>, si: number, count: number): void {
  let i = 0;
  for (; i + 4 <= count; i += 4) {
    dst[di + i] = src[si + i]!;
    dst[di + i + 1] = src[si + i + 1]!;
    dst[di + i + 2] = src[si + i + 2]!;
    dst[di + i + 3] = src[si + i + 3]!;
  }
  for (; i < count; i++) dst[di + i] = src[si + i]!;
}

/** Copies up to this many bytes word by word; larger ones go in one move, which is faster there. */
const WORD_COPY_MAX = 256;

/**
 * The words of one array's whole buffer and where the array starts in it, kept while the same
 * array comes back (an identity check: the buffer and byteOffset getters are not free per copy).
 */
export class WordView {
  bytes: Uint8Array | undefined = undefined;
  words: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
  /** bytes.byteOffset. */
  base = 0;
  /** Whether bytes is a view of a SharedArrayBuffer. */
  shared = false;

  /** This view, made to be that of `bytes`. */
  of(bytes: Uint8Array): this {
    if (bytes !== this.bytes) {
      this.bytes = bytes;
      this.words = new Uint32Array(bytes.buffer, 0, bytes.buffer.byteLength >>> 2);
      this.base = bytes.byteOffset;
      this.shared = typeof SharedArrayBuffer !== 'undefined' && bytes.buffer instanceof SharedArrayBuffer;
    }
    return this;
  }
}

/**
 * Above this many bytes, a copy between shared and private memory whose addresses disagree
 * modulo 8 goes through the copier's private buffer at the shared side's alignment (two set()s
 * at full speed) rather than as word moves.
 */
const BOUNCE_MIN = 384;
/** The same for copyFrom, whose source needs no view made (below this, set() byte by byte costs as much). */
const BOUNCE_FROM_MIN = 192;

/**
 * A copier for one path, with the word views of the last source and destination arrays it saw
 * (a path copies between the same two arrays, guest memory for instance, frame after frame).
 */
export class WordCopier {
  private readonly src = new WordView();
  private readonly dst = new WordView();

  /** dst[dstAt, dstAt + length) = src[srcAt, srcAt + length); a range outside its array throws a RangeError, as set() does. */
  copy(dst: Uint8Array, dstAt: number, src: Uint8Array, srcAt: number, length: number): void {
    const dv = this.dst.of(dst);
    const sv = this.src.of(src);
    const d = dv.base + dstAt;
    const s = sv.base + srcAt;
    const slow = ((d ^ s) & 7) !== 0 && (dv.shared || sv.shared); // set() would go byte by byte
    // The word views span whole buffers: a range outside its array goes to set(), which throws.
    const inside = dstAt >= 0 && srcAt >= 0 && dstAt + length <= dst.length && srcAt + length <= src.length;
    if (inside && ((d | s) & 3) === 0 && (length <= WORD_COPY_MAX || (slow && (length < BOUNCE_MIN || dv.shared === sv.shared)))) {
      const words = length >>> 2;
      moveWords(dv.words, d >>> 2, sv.words, s >>> 2, words);
      for (let i = words << 2; i < length; i++) dst[dstAt + i] = src[srcAt + i]!;
      return;
    }
    const from = srcAt === 0 && length === src.length ? src : subarrayOf(src, srcAt, srcAt + length);
    if (slow && length >= BOUNCE_MIN && dv.shared !== sv.shared) return this.bounce(dst, dstAt, from, dv.shared ? d & 7 : s & 7);
    setInto(dst, from, dstAt);
  }

  /**
   * dst[dstAt, dstAt + src.length) = src, for a source that may be a new array each time (a
   * frame the caller hands in): no view of it is made. Into shared memory at an address that
   * disagrees with the source's modulo 8, more than a few words go through the copier's private
   * buffer (1,500 bytes: 130 ns instead of 470).
   */
  copyFrom(dst: Uint8Array, dstAt: number, src: Uint8Array): void {
    const dv = this.dst.of(dst);
    const d = dv.base + dstAt;
    const n = src.length;
    if (!dv.shared || n < BOUNCE_FROM_MIN || ((d - src.byteOffset) & 7) === 0 || dstAt + n > dst.length) return setInto(dst, src, dstAt);
    this.bounce(dst, dstAt, src, d & 7);
  }

  /** dst[dstAt, ...) = src through the private buffer at offset `k`, the shared side's address modulo 8. */
  private bounce(dst: Uint8Array, dstAt: number, src: Uint8Array, k: number): void {
    const n = src.length;
    this.room(k + n);
    setInto(this.scratch, src, k);
    setInto(dst, subarrayOf(this.scratch, k, k + n), dstAt);
  }

  private room(n: number): void {
    if (this.scratch.length >= n) return;
    this.scratch = new Uint8Array(Math.max(n + 8, 2 * this.scratch.length) & ~7);
  }

  /** The private buffer: an ArrayBuffer of its own, so its bytes start 8-aligned. */
  private scratch = new Uint8Array(2048);
}
