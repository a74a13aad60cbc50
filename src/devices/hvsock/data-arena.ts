// Copies of received data that their receiver keeps: carved from a shared block and never reused
// (as the ring reader's arena, ring.ts RingReader.allocate), since allocating a typed array of
// its own per packet costs far more than a small write's copy. A small copy moves 32-bit words
// when both sides are word aligned, as packets in a ring are (a word copy keeps the bytes in
// their order on any host): cheaper than the view a TypedArray.set of part of a
// SharedArrayBuffer needs.
//
// A receiver that only looks at its data while a handler runs lets the arena rewind() once all
// of it has been handed out: the same block then takes the next copies. Fresh memory is the
// dearest part of a streaming read: with the guest running in a worker, one fresh 64 KiB block
// in five to nine took over 20 µs to allocate (160-170 µs on average), and host reads of 64 KiB
// hv_sock writes ran at 0.7-1.2 GB/s against 2.8-3.9 GB/s into a reused block (a 2-CPU VM).
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
  /** Bytes carved since the last rewind, across blocks: what the block must hold to be reused whole. */
  private carved = 0;
  private lending = false;

  /** Copies are lent (rewind() is used): a large one then goes in the block too, which is reused. */
  get lends(): boolean {
    return this.lending;
  }
  set lends(on: boolean) {
    // Copies given before are their receiver's: lending starts in a block of its own.
    if (on && !this.lending) this.newBlock(0);
    this.lending = on;
    this.carved = 0;
  }

  /** A copy of `bytes` [from, from + n): the caller's to keep, or until rewind() when lending. */
  copy(bytes: Uint8Array, from: number, n: number): Uint8Array {
    if (!this.lending && n > BLOCK_BYTES / 4) return sliceOf(bytes, from, from + n);
    if (this.at + n > this.block.length) this.newBlock(Math.max(BLOCK_BYTES, n));
    const to = this.at;
    // Each copy starts word aligned, for the word loop.
    const step = (n + 3) & ~3;
    this.at = to + step;
    if (this.lending) this.carved += step;
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

  /**
   * Every copy made so far has been handed out and is no longer looked at: the next copies reuse
   * the block from its start. A block outgrown since the last rewind is replaced by one that
   * holds as much, so that a steady stream settles on one block.
   */
  rewind(): void {
    if (this.carved > this.block.length) this.newBlock(2 ** Math.ceil(Math.log2(this.carved)));
    this.at = 0;
    this.carved = 0;
  }

  private newBlock(bytes: number): void {
    this.block = new Uint8Array(bytes);
    this.blockWords = new Uint32Array(this.block.buffer);
    this.at = 0;
  }

  private wordsOf(bytes: Uint8Array): Uint32Array | undefined {
    if (bytes !== this.src) {
      this.src = bytes;
      this.srcWords = bytes.byteOffset % 4 === 0 ? new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2) : undefined;
    }
    return this.srcWords;
  }
}
