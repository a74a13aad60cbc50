// Received frames gathered for a reader that takes them in batches, the way a packet socket with
// a receive ring (PACKET_RX_RING) or recvmmsg() hands user space many frames per wake-up: each
// frame is copied once into the batch's own buffer, with no object made per frame, and the
// reader walks offsets and lengths. The buffer is fixed; a full batch is delivered at once and
// refilled, so nothing the sender does grows it.
import { WordCopier } from '../../../memory/word-copy.js';
import type { RxMeta } from './netdev.js';

/** Frames per batch, and bytes of frames, by default: a poll's worth of full-sized frames. */
export const DEFAULT_BATCH_FRAMES = 1024;
export const DEFAULT_BATCH_BYTES = 2 << 20;

const CHECKSUM_VERIFIED = 1;
const HAS_HASH = 2;

export class FrameBatch {
  /** Frames in the batch: frame i is bytes[offsets[i], offsets[i] + lengths[i]). */
  count = 0;
  readonly bytes: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  /** The receive queue of each frame. */
  readonly queues: Uint16Array;
  private readonly flags: Uint8Array;
  private readonly hashes: Uint32Array;
  private used = 0;
  private readonly copier = new WordCopier();

  constructor(
    readonly maxFrames = DEFAULT_BATCH_FRAMES,
    maxBytes = DEFAULT_BATCH_BYTES,
  ) {
    this.bytes = new Uint8Array(maxBytes);
    this.offsets = new Uint32Array(maxFrames);
    this.lengths = new Uint32Array(maxFrames);
    this.queues = new Uint16Array(maxFrames);
    this.flags = new Uint8Array(maxFrames);
    this.hashes = new Uint32Array(maxFrames);
  }

  /** Whether a frame of `length` bytes still fits. */
  fits(length: number): boolean {
    return this.count < this.maxFrames && this.used + length <= this.bytes.length;
  }

  /** Copies the frame at bytes[at, at + length) in (the caller checked that it fits). */
  add(bytes: Uint8Array, at: number, length: number, meta: RxMeta): void {
    const i = this.count++;
    this.copier.copy(this.bytes, this.used, bytes, at, length);
    this.offsets[i] = this.used;
    this.lengths[i] = length;
    this.queues[i] = meta.queue;
    this.flags[i] = (meta.checksumVerified ? CHECKSUM_VERIFIED : 0) | (meta.hash !== undefined ? HAS_HASH : 0);
    this.hashes[i] = meta.hash ?? 0;
    // Each frame starts word-aligned, so that the next copy in goes word by word.
    this.used += (length + 3) & ~3;
  }

  /** Frame i, as a view of the batch's buffer (valid until the batch is refilled). */
  frame(i: number): Uint8Array {
    return this.bytes.subarray(this.offsets[i], this.offsets[i]! + this.lengths[i]!);
  }

  /** What the driver said of frame i. */
  meta(i: number): RxMeta {
    const f = this.flags[i]!;
    return { queue: this.queues[i]!, checksumVerified: (f & CHECKSUM_VERIFIED) !== 0, hash: f & HAS_HASH ? this.hashes[i] : undefined };
  }

  clear(): void {
    this.count = 0;
    this.used = 0;
  }
}
