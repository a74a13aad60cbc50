// The guest half of the stream device: a driver that opens the channel, streams frames to the
// host and checks the host's. Call stop() to send FIN; finished() says when both FINs passed.
import type { GuestChannel } from '../../vmbus/client/channel.js';
import type { VmbusDriver } from '../../vmbus/client/client.js';
import { PacketType } from '../../vmbus/wire/constants.js';
import { STREAM_CLASS_ID, StreamEnd } from './frame.js';

export interface StreamDriverOptions {
  seed: number;
  maxData: number;
  /** Ring sizes, each direction (header page included). */
  ringBytes: number;
}

export class StreamDriver implements VmbusDriver {
  readonly name = 'hvkit_stream';
  readonly classIds = [STREAM_CLASS_ID];
  readonly end: StreamEnd;
  channel: GuestChannel | undefined;

  constructor(readonly options: StreamDriverOptions) {
    this.end = new StreamEnd(options.seed, options.maxData, true);
  }

  get stats() {
    return this.end.stats;
  }

  probe(ch: GuestChannel): void {
    this.channel = ch;
    ch.open({
      sendRingBytes: this.options.ringBytes,
      recvRingBytes: this.options.ringBytes,
      // Room for the largest frame: the reader truncates anything longer (vmbus.md §7.7).
      maxPacketSize: this.options.maxData + 64,
      onEvent: (c) => this.onEvent(c),
    });
    this.pump();
  }

  remove(ch: GuestChannel): void {
    ch.close();
  }

  /** Stops generating: FIN goes out as soon as there is room. */
  stop(): void {
    this.end.stopping = true;
    this.pump();
  }

  finished(): boolean {
    return this.end.stats.finSent && this.end.stats.finReceived;
  }

  private onEvent(ch: GuestChannel): void {
    ch.receive((p) => {
      if (p.type !== PacketType.DATA_INBAND) return void this.end.stats.errors.push(`packet type ${p.type}`);
      this.end.receive(p.payload);
    });
    this.pump();
  }

  /** Writes until full; then asks the host to signal when the next frame fits. */
  pump(): void {
    const ch = this.channel;
    if (!ch?.isOpen) return;
    this.end.pumpRing({ write: (p) => ch.sendInband(p), setPending: (n) => ch.waitForSpace(n), room: () => ch.writable() });
  }
}
