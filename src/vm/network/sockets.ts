// NIC back ends over real sockets, framed as QEMU frames them so that a QEMU VM (or another hvkit
// process) can be the peer: `-netdev dgram` carries one Ethernet frame per UDP datagram,
// `-netdev stream` puts a 4-byte big-endian length before each frame on a TCP connection
// (QEMU net/dgram.c, net/stream.c). Frames arrive from the event loop; the VM takes them
// between its slices. Nothing a peer sends can make these grow without bound: an oversized
// length ends the stream connection, and datagrams from anyone but the peer are dropped.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { NetBackend, NetEndpoint, NetLink } from '../../devices/network/backend.js';
import type { HostPort } from './nic-config.js';

/** The largest frame either framing carries (QEMU's NET_BUFSIZE: 4096 + 65536). */
export const MAX_SOCKET_FRAME = 4096 + 65536;
/** Bytes a stream may hold unsent for a peer that does not read before frames are dropped. */
export const MAX_STREAM_BACKLOG = 4 << 20;

export interface SocketStats {
  sent: number;
  received: number;
  /** Datagrams from someone else than the peer, frames too big, and frames with no NIC to take them. */
  dropped: number;
}

/** One frame per datagram between `local` and `peer`. */
export class UdpBackend implements NetBackend {
  readonly kind = 'udp';
  readonly stats: SocketStats = { sent: 0, received: 0, dropped: 0 };
  private readonly socket: UdpSocket;
  private endpoint: NetEndpoint | undefined;
  private peerAddress: string | undefined;

  constructor(
    readonly local: HostPort,
    readonly peer: HostPort,
  ) {
    this.socket = createSocket('udp4');
  }

  get description(): string {
    return `udp ${this.local.host}:${this.local.port} <-> ${this.peer.host}:${this.peer.port}`;
  }

  /** Resolves the peer and binds the local address; rejects with the error (ENOTFOUND, EADDRINUSE, EADDRNOTAVAIL). */
  async open(): Promise<void> {
    // The peer's numeric address, so that datagrams can be matched to it (localhost → 127.0.0.1).
    this.peerAddress = (await lookup(this.peer.host, { family: 4 })).address;
    await new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(this.local.port, this.local.host, () => {
        this.socket.off('error', reject);
        this.socket.on('error', () => undefined);
        this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address, rinfo.port));
        resolve();
      });
    });
  }

  private onMessage(msg: Buffer, address: string, port: number): void {
    const fromPeer = port === this.peer.port && address === this.peerAddress;
    if (!fromPeer || msg.length > MAX_SOCKET_FRAME || !this.endpoint) {
      this.stats.dropped++;
      return;
    }
    this.stats.received++;
    this.endpoint.deliver(new Uint8Array(msg.buffer, msg.byteOffset, msg.length));
  }

  connect(endpoint: NetEndpoint): NetLink {
    this.endpoint = endpoint;
    return {
      transmit: (frame) => {
        if (frame.length > MAX_SOCKET_FRAME) return void this.stats.dropped++;
        this.stats.sent++;
        // A copy: the frame is the NIC's (a guest send section it reuses once this returns), and
        // dgram sends on a later tick.
        this.socket.send(Buffer.from(frame), this.peer.port, this.peerAddress ?? this.peer.host);
      },
      close: () => this.close(),
    };
  }

  close(): void {
    this.endpoint = undefined;
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}

/** Frames on a TCP stream, each after a 4-byte big-endian length; one connection at a time. */
export class StreamBackend implements NetBackend {
  readonly kind = 'stream';
  readonly stats: SocketStats = { sent: 0, received: 0, dropped: 0 };
  private server: Server | undefined;
  private conn: Socket | undefined;
  private endpoint: NetEndpoint | undefined;
  private chunks: Buffer[] = [];
  private chunked = 0;
  private closed = false;

  constructor(
    readonly addr: HostPort,
    readonly isServer: boolean,
  ) {}

  get description(): string {
    return `stream ${this.isServer ? 'listening on' : 'to'} ${this.addr.host}:${this.addr.port}`;
  }

  /** Listens, or connects (retrying for `connectMs` while the peer is not up yet). */
  open(connectMs = 10_000): Promise<void> {
    if (this.isServer) {
      return new Promise((resolve, reject) => {
        const server = createServer((s) => this.attach(s));
        server.once('error', reject);
        server.listen(this.addr.port, this.addr.host, () => {
          server.off('error', reject);
          this.server = server;
          resolve();
        });
      });
    }
    const deadline = Date.now() + connectMs;
    return new Promise((resolve, reject) => {
      const attempt = () => {
        const s = createConnection({ host: this.addr.host, port: this.addr.port }, () => {
          s.off('error', retry);
          this.attach(s);
          resolve();
        });
        const retry = (e: Error) => {
          s.destroy();
          if (Date.now() > deadline || this.closed) reject(e);
          else setTimeout(attempt, 100);
        };
        s.once('error', retry);
      };
      attempt();
    });
  }

  private attach(s: Socket): void {
    if (this.conn || this.closed) {
      s.destroy();
      return;
    }
    this.conn = s;
    s.setNoDelay(true);
    s.on('data', (chunk) => this.onData(chunk));
    s.on('error', () => undefined);
    s.on('close', () => {
      if (this.conn === s) this.conn = undefined;
      this.chunks = [];
      this.chunked = 0;
    });
  }

  private onData(chunk: Buffer): void {
    // Bytes of a frame not yet whole are kept as chunks and joined once it is: a peer that
    // trickles bytes costs one copy per frame, not one per chunk.
    this.chunks.push(chunk);
    this.chunked += chunk.length;
    if (this.chunked < 4) return;
    const head = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks.slice(0, 4), Math.min(this.chunked, 4));
    const first = head.readUInt32BE(0);
    if (first <= MAX_SOCKET_FRAME && this.chunked < 4 + first) return;
    const buf = this.chunks.length === 1 ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length) : new Uint8Array(Buffer.concat(this.chunks, this.chunked));
    this.chunks = [];
    this.chunked = 0;
    let at = 0;
    while (buf.length - at >= 4) {
      const len = ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
      if (len > MAX_SOCKET_FRAME) {
        // Not a frame length: the peer does not speak this framing. The connection ends.
        this.stats.dropped++;
        this.conn?.destroy();
        this.chunks = [];
        this.chunked = 0;
        return;
      }
      if (buf.length - at - 4 < len) break;
      const frame = buf.subarray(at + 4, at + 4 + len);
      at += 4 + len;
      if (!this.endpoint) {
        this.stats.dropped++;
        continue;
      }
      this.stats.received++;
      this.endpoint.deliver(frame);
    }
    if (at < buf.length) {
      const rest = Buffer.from(buf.slice(at));
      this.chunks = [rest];
      this.chunked = rest.length;
    }
  }

  connect(endpoint: NetEndpoint): NetLink {
    this.endpoint = endpoint;
    return {
      transmit: (frame) => {
        const c = this.conn;
        if (!c || frame.length > MAX_SOCKET_FRAME) return void this.stats.dropped++;
        // A peer that stops reading may not make this side buffer without end: drop, and count.
        if (c.writableLength > MAX_STREAM_BACKLOG) return void this.stats.dropped++;
        const out = Buffer.allocUnsafe(4 + frame.length);
        out.writeUInt32BE(frame.length, 0);
        out.set(frame, 4);
        this.stats.sent++;
        c.write(out);
      },
      close: () => this.close(),
    };
  }

  close(): void {
    this.closed = true;
    this.endpoint = undefined;
    this.conn?.destroy();
    this.server?.close();
  }
}
