// Small copies between two byte arrays (guest memory, a send section, a private buffer) on the
// per-frame paths. TypedArray.prototype.set needs a view of the source range when that range is
// part of a larger buffer, and a view plus the call cost several times a 64-byte copy; a copy of
// 32-bit words through views of each buffer made once costs about as much as the bytes. So a
// small copy whose ends are both word-aligned goes word by word; anything else in one move.
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

  /** This view, made to be that of `bytes`. */
  of(bytes: Uint8Array): this {
    if (bytes !== this.bytes) {
      this.bytes = bytes;
      this.words = new Uint32Array(bytes.buffer, 0, bytes.buffer.byteLength >>> 2);
      this.base = bytes.byteOffset;
    }
    return this;
  }
}

/**
 * A copier for one path, with the word views of the last source and destination arrays it saw
 * (a path copies between the same two arrays, guest memory for instance, frame after frame).
 */
export class WordCopier {
  private readonly src = new WordView();
  private readonly dst = new WordView();

  /** dst[dstAt, dstAt + length) = src[srcAt, srcAt + length). Both ranges must lie inside their arrays. */
  copy(dst: Uint8Array, dstAt: number, src: Uint8Array, srcAt: number, length: number): void {
    const dv = this.dst.of(dst);
    const sv = this.src.of(src);
    const d = dv.base + dstAt;
    const s = sv.base + srcAt;
    if (length <= WORD_COPY_MAX && ((d | s) & 3) === 0) {
      const words = length >>> 2;
      moveWords(dv.words, d >>> 2, sv.words, s >>> 2, words);
      for (let i = words << 2; i < length; i++) dst[dstAt + i] = src[srcAt + i]!;
      return;
    }
    setInto(dst, srcAt === 0 && length === src.length ? src : subarrayOf(src, srcAt, srcAt + length), dstAt);
  }
}
