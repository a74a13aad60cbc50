// The frames of hvkit's stream device: a diagnostic device (not a Hyper-V one) that pushes
// checksummed, numbered packets of random sizes through a channel in both directions, so that
// loss, reordering or corruption anywhere in the ring code shows up at once.
import { struct, u32 } from '../../tlfs/struct.js';
import { VMBUS_PKT_TRAILER } from '../../vmbus/wire/constants.js';
import { inbandPacketSize } from '../../vmbus/wire/packets.js';

/** hvkit's own class GUID for the stream device. */
export const STREAM_CLASS_ID = '6876686b-7374-4d00-8000-73747265616d';

/** Frame header; `length` bytes of data follow. A FIN frame carries the sender's frame count in `seq`. */
export const StreamFrame = struct('hvkit_stream_frame', { seq: u32, length: u32, checksum: u32, fin: u32 });

/**
 * FNV-1a, a 32-bit word at a time (then the tail bytes), seeded with the sequence number and
 * the length: a frame in the wrong place or of the wrong size fails too.
 */
export function checksum(seq: number, data: Uint8Array): number {
  let h = (0x811c9dc5 ^ seq ^ Math.imul(data.length, 0x9e3779b1)) >>> 0;
  const words = data.length >>> 2;
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i < words; i++) h = Math.imul(h ^ dv.getUint32(4 * i, true), 0x01000193);
  for (let i = 4 * words; i < data.length; i++) h = Math.imul(h ^ data[i]!, 0x01000193);
  return h >>> 0;
}

/** xorshift32: a small deterministic generator for sizes and contents. */
export class Xorshift {
  constructor(private s: number) {
    if (this.s === 0) this.s = 1;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
}

/** What one end of a stream has seen. */
export interface StreamStats {
  framesOut: number;
  bytesOut: number;
  framesIn: number;
  bytesIn: number;
  /** Frames out of sequence, with a bad checksum, or malformed. */
  errors: string[];
  /** The peer's FIN arrived, and its count matched what was received. */
  finReceived: boolean;
  finSent: boolean;
}

export const emptyStats = (): StreamStats => ({ framesOut: 0, bytesOut: 0, framesIn: 0, bytesIn: 0, errors: [], finReceived: false, finSent: false });

/**
 * One direction's generator and the other's checker, shared by the host and guest halves.
 * `write` returns false when the ring is full; the end then waits for room.
 */
export class StreamEnd {
  readonly stats = emptyStats();
  /** Stop generating; send FIN once there is room. */
  stopping = false;
  private readonly rng: Xorshift;
  private pending: Uint8Array | undefined;
  /** Random bytes that frames take their data from, at a random place each. */
  private readonly pool: Uint8Array;
  private readonly frameBuffer: Uint8Array;

  constructor(
    seed: number,
    /** Largest data size of one frame. */
    readonly maxData: number,
    /** Whether this end generates frames at all. */
    readonly sending: boolean,
  ) {
    this.rng = new Xorshift(seed);
    const words = new Uint32Array(Math.ceil((2 * maxData + 4096) / 4));
    for (let i = 0; i < words.length; i++) words[i] = this.rng.next();
    this.pool = new Uint8Array(words.buffer);
    this.frameBuffer = new Uint8Array(StreamFrame.size + maxData);
  }

  /** Writes frames until the ring is full or this end is done; `write` sends one packet payload. */
  pump(write: (payload: Uint8Array) => boolean): 'full' | 'done' {
    for (;;) {
      if (this.stats.finSent) return 'done';
      const frame = this.pending ?? (this.pending = this.nextFrame());
      if (!write(frame)) return 'full';
      this.pending = undefined;
      if (new DataView(frame.buffer, frame.byteOffset).getUint32(StreamFrame.offsets.fin, true)) {
        this.stats.finSent = true;
        return 'done';
      }
      this.stats.framesOut++;
      this.stats.bytesOut += frame.length - StreamFrame.size;
    }
  }

  /** Ring bytes the next frame needs: packet, trailer, and the byte that keeps the ring from full. */
  get nextNeed(): number {
    return inbandPacketSize((this.pending ?? (this.pending = this.nextFrame())).length) + 2 * VMBUS_PKT_TRAILER;
  }

  /**
   * Pumps into a ring; when it is full, asks the reader to signal once the next frame fits
   * (pending_send_sz), then looks again in case the reader made room in between.
   */
  pumpRing(ring: { write(payload: Uint8Array): boolean; setPending(bytes: number): void; room(): number }): void {
    for (;;) {
      if (this.pump((p) => ring.write(p)) === 'done') return ring.setPending(0);
      const need = this.nextNeed;
      ring.setPending(need);
      if (ring.room() + 2 * VMBUS_PKT_TRAILER < need) return;
    }
  }

  private nextFrame(): Uint8Array {
    if (!this.sending || this.stopping) return StreamFrame.encode({ seq: this.stats.framesOut, length: 0, checksum: 0, fin: 1 });
    const length = 1 + (this.rng.next() % this.maxData);
    const from = this.rng.next() % (this.pool.length - length);
    // One frame is pending at a time and the ring copies it: the buffer is reused.
    const frame = this.frameBuffer.subarray(0, StreamFrame.size + length);
    const data = frame.subarray(StreamFrame.size);
    data.set(this.pool.subarray(from, from + length));
    const seq = this.stats.framesOut;
    StreamFrame.encode({ seq, length, checksum: checksum(seq, data), fin: 0 }, frame);
    return frame;
  }

  /** Checks one received payload (padded to 8 bytes by the ring). */
  receive(payload: Uint8Array): void {
    const s = this.stats;
    if (payload.length < StreamFrame.size) return void s.errors.push(`frame ${s.framesIn}: ${payload.length} bytes, no header`);
    const h = StreamFrame.decode(payload);
    if (h.fin) {
      if (h.seq !== s.framesIn) s.errors.push(`FIN says ${h.seq} frames, ${s.framesIn} arrived`);
      s.finReceived = true;
      return;
    }
    if (h.seq !== s.framesIn) return void s.errors.push(`frame ${s.framesIn}: sequence ${h.seq}`);
    if (StreamFrame.size + h.length > payload.length) return void s.errors.push(`frame ${h.seq}: length ${h.length} exceeds the packet`);
    const data = payload.subarray(StreamFrame.size, StreamFrame.size + h.length);
    if (checksum(h.seq, data) !== h.checksum) return void s.errors.push(`frame ${h.seq}: bad checksum`);
    s.framesIn++;
    s.bytesIn += h.length;
  }
}
