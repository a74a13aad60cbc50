// One end of an hv_sock connection as a platform-neutral byte stream, the same on the host and
// in the guest: write() takes what the ring accepts now and says so; the rest waits for the
// `writable` event. Received data goes to `data` while the socket flows; a paused socket leaves
// it in the ring, so the peer's writer blocks on pending_send_sz (back-pressure end to end).
// `end` follows the peer's EOF once all its data has been delivered; `close` once the connection
// is released. The host and guest halves (host.ts, guest.ts) supply the ring work.

/** What went wrong, as the errno a socket user would see. */
export type HvSocketErrno =
  /** No connection within the connect timeout. */
  | 'ETIMEDOUT'
  /** Nobody listens on that service, or the VM cannot take hv_sock connections. */
  | 'ECONNREFUSED'
  /** The peer tore the connection down without EOF. */
  | 'ECONNRESET'
  /** Writing after end() or after the peer closed. */
  | 'EPIPE'
  /** A malformed packet from the peer. */
  | 'EIO'
  | 'EADDRINUSE'
  | 'EINVAL'
  /** No VMBus connection that can carry hv_sock (version below 4.0). */
  | 'ENODEV';

export class HvSocketError extends Error {
  override readonly name = 'HvSocketError';
  constructor(
    readonly code: HvSocketErrno,
    message: string,
  ) {
    super(`${message} (${code})`);
  }
}

export interface HvSocketEvents {
  /** The connection is up (for a socket that connected; an accepted one is up when handed out). */
  connect?(): void;
  /** Received bytes, in order. The array is the handler's to keep, unless a host socket lends it (HostHvSocket.lend). */
  data?(bytes: Uint8Array): void;
  /** The peer's EOF, after all its data. */
  end?(): void;
  /** Room again after write() accepted less than it was given. */
  writable?(): void;
  error?(e: HvSocketError): void;
  /** The connection is released; no more events follow. */
  close?(hadError: boolean): void;
}

/** `connecting` until the channel is open; `closed` once released (or given up). */
export type HvSocketState = 'connecting' | 'open' | 'closed';

export interface HvSocketStats {
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  /** Data that came after the peer's EOF, which both ends drop (OpenVMM's reader stops at EOF). */
  droppedAfterEof: number;
}

export abstract class HvSocket {
  state: HvSocketState = 'connecting';
  /** The event handlers; assign before data can flow. */
  on: HvSocketEvents = {};
  readonly stats: HvSocketStats = { bytesIn: 0, bytesOut: 0, packetsIn: 0, packetsOut: 0, droppedAfterEof: 0 };
  /** The error that ended the socket, if any. */
  error: HvSocketError | undefined;
  /** end() was called: EOF goes out once the ring has room. */
  protected endRequested = false;
  /** EOF is in the ring (or could not be sent: the connection is gone). */
  finSent = false;
  /** The peer's EOF has been read from the ring (delivery may wait for a paused reader). */
  eofReceived = false;
  /** `end` has been delivered. */
  ended = false;
  /**
   * Received data not yet delivered: queue[head..]. Delivery moves `head` instead of shifting
   * the array (a pull queues a ring's worth of small packets, and each shift would move the
   * rest); the array is emptied once all of it has gone.
   */
  private readonly queue: (Uint8Array | undefined)[] = [];
  private head = 0;
  private flowing = true;
  private delivering = false;
  private wantWritable = false;

  constructor(
    /** This end's service id: the guest's port GUID, or the host's service or endpoint id. */
    readonly localId: string,
    readonly remoteId: string,
  ) {}

  /** Bytes received and not yet delivered (a paused reader's backlog, at most about one ring). */
  get buffered(): number {
    let n = 0;
    for (let i = this.head; i < this.queue.length; i++) n += this.queue[i]!.length;
    return n;
  }

  get paused(): boolean {
    return !this.flowing;
  }

  /**
   * Writes what fits now and returns how many bytes were taken; fewer than given means the ring
   * is full, and `writable` follows when there is room. Throws HvSocketError EPIPE after end()
   * or once the peer is gone, EINVAL before the connection is up.
   */
  write(bytes: Uint8Array): number {
    if (this.endRequested || this.state === 'closed') throw new HvSocketError('EPIPE', 'the socket is not writable');
    if (this.state !== 'open') throw new HvSocketError('EINVAL', 'the socket is not connected');
    if (this.peerGone()) throw new HvSocketError('EPIPE', 'the peer closed the connection');
    const n = bytes.length === 0 ? 0 : this.writeRing(bytes);
    this.stats.bytesOut += n;
    if (n < bytes.length) this.wantWritable = true;
    return n;
  }

  /** shutdown(SHUT_WR): EOF to the peer, after what was written. Reading goes on. */
  end(): void {
    if (this.endRequested || this.state === 'closed') return;
    this.endRequested = true;
    if (this.state === 'open') this.trySendFin();
  }

  /** Stops `data`: what arrives stays in the ring, and the peer's writer eventually blocks. */
  pause(): void {
    this.flowing = false;
  }

  resume(): void {
    if (this.flowing) return;
    this.flowing = true;
    this.deliver();
  }

  /** Closes both directions; what the ring has not accepted is dropped. */
  abstract close(): void;

  // --- For the host and guest halves -------------------------------------------------------

  /** Writes as much of `bytes` as fits; returns the count. */
  protected abstract writeRing(bytes: Uint8Array): number;
  /** Puts EOF in the ring; false if it does not fit yet (retry on room). */
  protected abstract writeFin(): boolean;
  /** Reads what is waiting in the ring into the socket (received / receivedEof); true if anything came. */
  protected abstract pull(): boolean;
  /** The peer can take no more data (it closed, or the channel is gone). */
  protected abstract peerGone(): boolean;
  /** Both EOFs have passed: the connection is finished. */
  protected abstract finished(): void;
  /** A malformed packet or a broken ring the last pull ran into, if any. */
  protected abstract inputError(): HvSocketError | undefined;

  protected trySendFin(): void {
    if (this.finSent || !this.endRequested) return;
    if (!this.writeFin()) return;
    this.finSent = true;
    this.checkFinished();
  }

  protected received(data: Uint8Array): void {
    this.stats.packetsIn++;
    if (this.eofReceived) {
      this.stats.droppedAfterEof += data.length;
      return;
    }
    this.stats.bytesIn += data.length;
    this.queue.push(data);
  }

  protected receivedEof(): void {
    this.stats.packetsIn++;
    this.eofReceived = true;
  }

  /** The ring has room again: tells a blocked writer, and sends a waiting EOF. */
  protected roomAvailable(): void {
    this.trySendFin();
    if (this.wantWritable && this.state === 'open' && !this.endRequested) {
      this.wantWritable = false;
      this.on.writable?.();
    }
  }

  /**
   * Hands queued data to `data` while flowing, reading more from the ring as the queue empties,
   * then `end` once the EOF is reached. Re-entrant calls (from a handler) return at once. Bad
   * input ends the connection after the data that came before it.
   */
  protected deliver(): void {
    if (this.delivering) return;
    this.delivering = true;
    try {
      this.deliverQueued();
    } finally {
      this.delivering = false;
    }
    const e = this.inputError();
    if (e) this.fail(e);
  }

  /**
   * Ring reads one delivery makes at most before it returns: a peer that writes as fast as this
   * end reads (a guest in a worker, concurrently) would otherwise keep it inside one delivery for
   * as long as it writes. What is left is read at the next signal or poll.
   */
  protected readonly pullsPerDelivery: number = Infinity;

  private deliverQueued(): void {
    for (let pulls = 0; ; pulls++) {
      while (this.flowing && this.head < this.queue.length && this.state !== 'closed') {
        const data = this.queue[this.head]!;
        // Dropped from the queue before the handler runs, which may pause, close or deliver.
        this.queue[this.head++] = undefined;
        this.on.data?.(data);
      }
      if (this.head === this.queue.length) this.clearQueue();
      if (!this.flowing || this.state === 'closed') return;
      if (this.eofReceived || pulls === this.pullsPerDelivery) break;
      // What a pull queued is delivered even when it also ran into bad input.
      if (!this.pull() && this.head === this.queue.length) break;
    }
    if (this.eofReceived && !this.ended && this.head === this.queue.length) {
      this.ended = true;
      this.on.end?.();
      this.checkFinished();
    }
  }

  private clearQueue(): void {
    this.queue.length = 0;
    this.head = 0;
    this.drained();
  }

  /** Everything received has been delivered (or dropped): no handler looks at it any more. */
  protected drained(): void {}

  protected checkFinished(): void {
    if (this.finSent && this.ended && this.state === 'open') this.finished();
  }

  /** Marks the socket released and says so, once. */
  protected released(error?: HvSocketError): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.clearQueue();
    if (error && !this.error) {
      this.error = error;
      this.on.error?.(error);
    }
    this.on.close?.(this.error !== undefined);
  }

  /** An error that ends the connection: reported, then the half's close. */
  protected fail(error: HvSocketError): void {
    if (this.state === 'closed' || this.error) return;
    this.error = error;
    this.on.error?.(error);
    this.close();
  }
}
