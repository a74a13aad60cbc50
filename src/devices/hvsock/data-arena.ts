// Copies of received data that their receiver keeps: carved from a shared block and never reused
// (as the ring reader's arena, ring.ts RingReader.allocate), since allocating a typed array of
// its own per packet costs far more than a small write's copy. A small copy moves 32-bit words
// when both sides are word aligned, as packets in a ring are (a word copy keeps the bytes in
// their order on any host): cheaper than the view a TypedArray.set of part of a
// SharedArrayBuffer needs.
import { sliceOf, subarrayOf } from '../../memory/typed-arrays.js';

/** Bytes per block; a copy of more than a quarter of it gets an array of its own. */
const BLOCK_BYTES = 64 * 1024;
/** Copies up to this size move words (or bytes); larger ones are one TypedArray.set. */
const SMALL_COPY = 512;

export class DataArena {
  private block = new Uint8Array(0);
  private blockWords = new Uint32Array(0);
  private at = 0;
  /** The last source and it as words (undefined: not word aligned): a reader copies from its ring again and again. */
  private src: Uint8Array | undefined;
  private srcWords: Uint32Array | undefined;

  /** A copy of `bytes` [from, from + n) of its own. */
  copy(bytes: Uint8Array, from: number, n: number): Uint8Array {
    if (n > BLOCK_BYTES / 4) return sliceOf(bytes, from, from + n);
    if (this.at + n > this.block.length) {
      this.block = new Uint8Array(BLOCK_BYTES);
      this.blockWords = new Uint32Array(this.block.buffer);
      this.at = 0;
    }
    const to = this.at;
    // Each copy starts word aligned, for the word loop.
    this.at = to + ((n + 3) & ~3);
    const block = this.block;
    if (n > SMALL_COPY) {
      block.set(subarrayOf(bytes, from, from + n), to);
    } else {
      const words = this.wordsOf(bytes);
      let i = 0;
      if (words !== undefined && from % 4 === 0) {
        const whole = n >>> 2;
        const src = from >>> 2;
        const dst = to >>> 2;
        const out = this.blockWords;
        for (; i < whole; i++) out[dst + i] = words[src + i]!;
        i = whole * 4;
      }
      for (; i < n; i++) block[to + i] = bytes[from + i]!;
    }
    return subarrayOf(block, to, to + n);
  }

  private wordsOf(bytes: Uint8Array): Uint32Array | undefined {
    if (bytes !== this.src) {
      this.src = bytes;
      this.srcWords = bytes.byteOffset % 4 === 0 ? new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2) : undefined;
    }
    return this.srcWords;
  }
}
