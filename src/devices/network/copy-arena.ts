// Private copies of frames, carved from large blocks: a frame handed up the stack (an skb, what
// a raw socket reads) must be its receiver's own bytes, and allocating each copy as a typed array
// of its own costs far more than the copy (past 64 bytes V8 gives each its own off-heap buffer).
// A block is never reused: it is freed once no frame carved from it is referenced (the ring
// reader's arena does the same for packets, src/vmbus/ring/ring.ts).
import { setInto, sliceOf } from '../../memory/typed-arrays.js';

/** Bytes per block: a few hundred MTU-sized frames. */
const BLOCK_BYTES = 256 * 1024;
/** V8 keeps typed arrays of up to 64 bytes in its heap (typed_array_max_size_in_heap). */
const SMALL = 64;

export class CopyArena {
  private block = new Uint8Array(0);
  private at = 0;

  /** A copy of src[start, end) that shares nothing with `src` (its `buffer` is a block of the arena). */
  copy(src: Uint8Array, start: number, end: number): Uint8Array {
    const n = end - start;
    // Small arrays live in V8's heap: as cheap as a view, and the copy's own. slice() makes one
    // in a single call; a byte loop into a new array costs about three times as much.
    if (n <= SMALL) return sliceOf(src, start, end);
    if (n > BLOCK_BYTES / 8) return sliceOf(src, start, end);
    if (this.at + n > this.block.length) {
      this.block = new Uint8Array(BLOCK_BYTES);
      this.at = 0;
    }
    // A view made by the constructor: subarray() looks up a species constructor each call.
    const out = new Uint8Array(this.block.buffer, this.at, n);
    setInto(out, src.byteOffset === 0 && start === 0 && end === src.length ? src : new Uint8Array(src.buffer, src.byteOffset + start, n), 0);
    // Each copy starts 8-byte aligned, for readers that view it as words.
    this.at += (n + 7) & ~7;
    return out;
  }
}
