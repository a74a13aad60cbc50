// The host half of the stream device: checks what the guest sends and, if asked, streams back.
// When its ring is full it sets pending_send_sz and resumes when the guest signals room.
import type { ChannelHandler, HostChannel } from '../../vmbus/server/channel.js';
import type { ParsedPacket } from '../../vmbus/wire/packets.js';
import { PacketType } from '../../vmbus/wire/constants.js';
import { StreamEnd } from './frame.js';

export interface StreamOptions {
  seed: number;
  maxData: number;
  /** Stream to the guest too (both directions). */
  toGuest: boolean;
}

export class StreamDevice implements ChannelHandler {
  readonly end: StreamEnd;

  constructor(readonly options: StreamOptions) {
    this.end = new StreamEnd(options.seed, options.maxData, options.toGuest);
  }

  get stats() {
    return this.end.stats;
  }

  open(ch: HostChannel): number {
    this.pump(ch);
    return 0;
  }

  signal(ch: HostChannel): void {
    // Frames are checked where they lie in the ring, and kept by no one: a private copy of each
    // would cost fresh memory (hvsock/data-arena.ts says what that costs with a worker running).
    ch.receiveInband(this.takeInband, this.takePacket);
    this.pump(ch);
  }

  private readonly takeInband = (bytes: Uint8Array, start: number, end: number): void => this.take(bytes.subarray(start, end));
  private readonly takePacket = (p: ParsedPacket): void => {
    if (p.type !== PacketType.DATA_INBAND) return void this.end.stats.errors.push(`packet type ${p.type}`);
    this.take(p.payload);
  };

  private take(payload: Uint8Array): void {
    this.end.receive(payload);
    // The guest's FIN ends this direction; the host then finishes its own.
    if (this.end.stats.finReceived) this.end.stopping = true;
  }

  private pump(ch: HostChannel): void {
    if (!this.end.sending && !this.end.stopping) return;
    this.end.pumpRing({ write: (p) => ch.sendInband(p), setPending: (n) => ch.waitForSpace(n), room: () => ch.writable() });
  }
}
