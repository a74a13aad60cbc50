// The guest's hv_sock transport, as Linux 6.1 behaves (net/vmw_vsock/hyperv_transport.c with
// the AF_VSOCK core, net/vmw_vsock/af_vsock.c): one VMBus driver, "hv_sock", bound to every
// hv_sock offer; connect() sends TL_CONNECT_REQUEST and waits for the host's offer; listen()
// takes offers the host makes for a port. Each connection is one channel, opened in
// HV_CALL_DIRECT mode with rings sized from the socket's buffer size (vmbus.md §11.4); data goes
// in packets of at most 4088 bytes, always leaving room for the EOF packet; the host ends a
// connection by rescinding its channel, which Linux releases only once the socket is closed.
import { subarrayOf } from '../../memory/typed-arrays.js';
import type { GuestChannel } from '../../vmbus/client/channel.js';
import type { VmbusClient, VmbusDriver } from '../../vmbus/client/client.js';
import { VmbusError } from '../../vmbus/client/errors.js';
import { VMBUS_PKT_TRAILER, VmbusVersion, versionString } from '../../vmbus/wire/constants.js';
import type { ParsedPacket } from '../../vmbus/wire/packets.js';
import type { GuestModule, GuestServices } from '../device.js';
import { HvSocket, HvSocketError } from './socket.js';
import {
  HVS_CLOSE_TIMEOUT_NS,
  HVS_MAX_PKT_SIZE,
  HVS_SEND_BUF_SIZE,
  HvsockUserDefined,
  HvsockWireError,
  hvsPktLen,
  HvsPacketWriter,
  isVsockServiceId,
  LAST_RESERVED_PORT,
  parseHvsPayload,
  portOfServiceId,
  RINGBUFFER_HVS_MAX_SIZE,
  RINGBUFFER_HVS_SIZE,
  serviceIdOfPort,
  VMADDR_CID_ANY,
  VMADDR_CID_HOST,
  VMADDR_PORT_ANY,
  VSOCK_CONNECT_TIMEOUT_NS,
} from './wire.js';

const EMPTY = new Uint8Array(0);

/** A timer in the guest (schedule_delayed_work): runs `f` after `ns` of guest time. */
export type GuestDelay = (ns: number, f: () => void) => { cancel(): void };

export interface HvSockGuestOptions {
  /**
   * The timer for the connect timeout (2 s) and the close timeout (8 s): the kernel's delayed
   * work (services.scheduleDelayedWork) unless given. The callback must not block; it only
   * changes socket state.
   */
  delay?: GuestDelay;
  /** The first local port connect() tries (Linux starts at a random port above 1023). */
  firstEphemeralPort?: number;
  /** vsk->connect_timeout (SO_VM_SOCKETS_CONNECT_TIMEOUT); 2 s by default. */
  connectTimeoutNs?: number;
}

export interface GuestSocketOptions {
  /**
   * sk_sndbuf and sk_rcvbuf, which size the rings from VMBus 5.0: clamped to [24 KiB, 256 KiB]
   * and rounded up to 4 KiB. Below 5.0 the rings are always 24 KiB. Default 24 KiB (hvs_sock_init).
   */
  ringBytes?: number;
}

/**
 * hvs_open_connection's ring sizes, per direction, header page included: six 4 KiB pages before
 * VMBus 5.0 (older hosts require it), from 5.0 the socket buffer size clamped and 4 KiB-aligned.
 */
export function hvsockRingBytes(version: number, ringBytes: number = RINGBUFFER_HVS_SIZE): number {
  if (version < VmbusVersion.WIN10_V5) return RINGBUFFER_HVS_SIZE;
  const clamped = Math.min(Math.max(ringBytes, RINGBUFFER_HVS_SIZE), RINGBUFFER_HVS_MAX_SIZE);
  return Math.ceil(clamped / 4096) * 4096;
}

/** The connection's pending_send_sz, set once after the open: room for one full packet. */
const HVS_PENDING_SEND_SIZE = hvsPktLen(HVS_SEND_BUF_SIZE);
/** Byte of the offer's user-defined area Linux reads as "connection from the host". */
const CONN_FROM_HOST_AT = HvsockUserDefined.offsets.is_for_guest_accept;

/** A socket listening on a port for connections the host makes (listen/accept). */
export class GuestHvListener {
  /** Connections accepted, in order. */
  accepted = 0;
  closed = false;

  constructor(
    private readonly owner: HvSockGuest,
    readonly port: number,
    readonly ringBytes: number,
    readonly onConnection: (socket: GuestHvSocket) => void,
  ) {}

  get serviceId(): string {
    return serviceIdOfPort(this.port);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.owner.unbind(this.port, this);
  }
}

/** One hv_sock connection in the guest. */
export class GuestHvSocket extends HvSocket {
  /** getsockname / getpeername's context ids: hv_sock's guest is VMADDR_CID_ANY, its peer the host. */
  readonly localCid = VMADDR_CID_ANY;
  readonly remoteCid = VMADDR_CID_HOST;
  channel: GuestChannel | undefined;
  /** The host rescinded the channel (SOCK_DONE): it will take no more data. */
  rescinded = false;
  private closing = false;
  /** The close timeout fired before the rescind: the socket is gone, the channel not yet. */
  private abandoned = false;
  private connectTimer: { cancel(): void } | undefined;
  private closeTimer: { cancel(): void } | undefined;
  private readonly packets = new HvsPacketWriter();
  private badPacket: HvsockWireError | undefined;

  constructor(
    private readonly owner: HvSockGuest,
    readonly localPort: number,
    readonly remotePort: number,
    readonly ringBytes: number,
    /** Bound to localPort (a connecting socket); an accepted one shares its listener's port. */
    private readonly bound: boolean,
  ) {
    super(serviceIdOfPort(localPort), serviceIdOfPort(remotePort));
  }

  /** @internal vsock_connect: TL_CONNECT_REQUEST, then wait for the offer until the timeout. */
  startConnect(timeoutNs: number): void {
    try {
      this.owner.client.sendTlConnectRequest(this.localId, this.remoteId);
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      this.owner.defer(() => this.giveUp(new HvSocketError('ENODEV', `TL_CONNECT_REQUEST not sent: ${e.message}`)));
      return;
    }
    this.connectTimer = this.owner.delay(timeoutNs, () => {
      this.connectTimer = undefined;
      if (this.state === 'connecting') this.giveUp(new HvSocketError('ETIMEDOUT', `no connection to port ${this.remotePort} within ${timeoutNs / 1e9} s`));
    });
  }

  private giveUp(e: HvSocketError): void {
    if (this.state !== 'connecting') return;
    this.unbind();
    this.released(e);
  }

  /** @internal The channel is open: the connection is established (and an early end() takes effect). */
  attach(ch: GuestChannel): void {
    this.connectTimer?.cancel();
    this.connectTimer = undefined;
    this.channel = ch;
    this.state = 'open';
    this.trySendFin();
  }

  /** @internal hvs_channel_cb: data or EOF waiting wakes the reader; room wakes a writer. */
  onChannelEvent(): void {
    if (this.state !== 'open' || this.closing) return;
    this.deliver();
    if (this.channel && this.channel.writable() > 0) this.roomAvailable();
  }

  /**
   * @internal hvs_close_connection: the host is done. What it wrote is still in the ring and is
   * delivered before EOF; a closed socket now releases its channel.
   */
  onRescind(): void {
    this.rescinded = true;
    this.connectTimer?.cancel();
    if (this.closing) {
      this.closeTimer?.cancel();
      this.closeTimer = undefined;
      this.releaseChannel();
      this.unbind();
      this.released();
      return;
    }
    this.deliver();
  }

  /**
   * hvs_release: EOF unless already sent, then the socket waits for the host's rescind, at most
   * HVS_CLOSE_TIMEOUT; the channel itself goes only after the rescind. Data still arriving is
   * not read any more.
   */
  close(): void {
    if (this.state === 'closed' || this.closing) return;
    this.closing = true;
    this.connectTimer?.cancel();
    this.connectTimer = undefined;
    if (this.state === 'connecting' || !this.channel) {
      this.unbind();
      this.released();
      return;
    }
    this.endRequested = true;
    if (!this.finSent) {
      this.writeFin();
      this.finSent = true;
    }
    if (this.rescinded) {
      this.releaseChannel();
      this.unbind();
      this.released();
      return;
    }
    this.closeTimer = this.owner.delay(HVS_CLOSE_TIMEOUT_NS, () => {
      this.closeTimer = undefined;
      // hvs_close_timeout: the socket goes; vmbus_hvsock_device_unregister still waits for the rescind.
      this.abandoned = true;
      this.unbind();
      this.released();
    });
  }

  /** @internal Whether the channel may be unregistered when the rescind comes (the socket is gone). */
  get gone(): boolean {
    return this.abandoned;
  }

  /** @internal The rescind of an abandoned socket's channel: unregister it now. */
  releaseChannel(): void {
    const ch = this.channel;
    if (ch && this.owner.client.unregisterHvsockDevice(ch)) this.channel = undefined;
  }

  private unbind(): void {
    if (this.bound) this.owner.unbind(this.localPort, this);
  }

  // --- HvSocket ------------------------------------------------------------------------------

  /** hvs_stream_enqueue: packets of at most 4088 bytes while hvs_channel_writable_bytes allows. */
  protected writeRing(bytes: Uint8Array): number {
    const ch = this.channel!;
    if (ch.corrupt) throw new HvSocketError('EIO', `the host broke the ring: ${ch.corrupt}`);
    let done = 0;
    while (done < bytes.length) {
      const room = writableBytes(ch);
      if (room === 0) break;
      const n = Math.min(bytes.length - done, room, HVS_SEND_BUF_SIZE);
      let sent: boolean;
      try {
        // A write that fits one packet is sent as it is: no view made for it.
        sent = ch.sendPacket(this.packets.packet(n === bytes.length ? bytes : subarrayOf(bytes, done, done + n)));
      } catch (e) {
        if (!(e instanceof VmbusError)) throw e;
        if (done === 0) throw new HvSocketError(e.code === 'ENODEV' ? 'EPIPE' : 'EIO', e.message);
        break;
      }
      if (!sent) break;
      this.stats.packetsOut++;
      done += n;
    }
    return done;
  }

  /** hvs_shutdown_lock_held: the EOF packet always fits (writable bytes keep room for it); errors are ignored. */
  protected writeFin(): boolean {
    const ch = this.channel;
    if (!ch || this.rescinded) return true;
    try {
      if (ch.sendPacket(this.packets.packet(EMPTY))) this.stats.packetsOut++;
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
    }
    return true;
  }

  /**
   * Reads what the ring holds (hvs_stream_dequeue's checks in hvs_update_recv_data). Once the
   * host has rescinded and the ring is empty, that is EOF (peer_shutdown = SHUTDOWN_MASK).
   */
  protected pull(): boolean {
    const ch = this.channel;
    if (!ch || this.badPacket) return false;
    let got = false;
    ch.receive((p) => {
      got = true;
      this.onPacket(p);
    });
    if (!got && this.rescinded && !this.eofReceived) {
      this.eofReceived = true;
      return true;
    }
    return got;
  }

  private onPacket(p: ParsedPacket): void {
    if (this.badPacket) return;
    let data: Uint8Array;
    try {
      // Linux reads the header right after the descriptor and ignores pkt_type.
      data = parseHvsPayload(p.payload);
    } catch (e) {
      if (!(e instanceof HvsockWireError)) throw e;
      this.badPacket = e;
      return;
    }
    if (data.length === 0) this.receivedEof();
    else this.received(data);
  }

  /** A malformed packet or a broken ring: the reader gets EIO (recvmsg's -EIO) and the socket closes. */
  protected inputError(): HvSocketError | undefined {
    const e = this.badPacket;
    if (e) return new HvSocketError('EIO', `bad packet from the host: ${e.message}`);
    const corrupt = this.channel?.corrupt;
    return corrupt ? new HvSocketError('EIO', `the host broke the ring: ${corrupt}`) : undefined;
  }

  protected peerGone(): boolean {
    return this.rescinded;
  }

  /** Both EOFs passed: the host rescinds, and the socket's user closes it. */
  protected finished(): void {}
}

/** hvs_channel_writable_bytes: free space less one 1-byte packet and the EOF packet, rounded down to 8. */
function writableBytes(ch: GuestChannel): number {
  // GuestChannel.writable() leaves out two trailers; Linux counts the whole free space.
  const free = ch.writable() + 2 * VMBUS_PKT_TRAILER;
  const reserve = hvsPktLen(1) + hvsPktLen(0);
  return free <= reserve ? 0 : Math.floor((free - reserve) / 8) * 8;
}

/** The hv_sock transport of one guest: its driver, bound ports and sockets. */
export class HvSockGuest {
  readonly driver: VmbusDriver;
  private readonly bound = new Map<number, GuestHvSocket | GuestHvListener>();
  private nextPort: number;
  readonly delay: GuestDelay;
  private readonly connectTimeoutNs: number;
  /** Offers the driver took no socket for (no listener, or not in SYN_SENT), for inspection. */
  unmatchedOffers = 0;

  constructor(
    readonly client: VmbusClient,
    readonly services: GuestServices,
    options: HvSockGuestOptions = {},
  ) {
    if (client.version < VmbusVersion.WIN10) throw new HvSocketError('ENODEV', `hv_sock needs VMBus 4.0, connected at ${versionString(client.version)}`);
    this.delay = options.delay ?? ((ns, f) => services.scheduleDelayedWork(ns, f));
    this.connectTimeoutNs = options.connectTimeoutNs ?? VSOCK_CONNECT_TIMEOUT_NS;
    this.nextPort = options.firstEphemeralPort ?? LAST_RESERVED_PORT + 1;
    this.driver = {
      name: 'hv_sock',
      classIds: [],
      hvsock: true,
      probe: (ch) => this.openConnection(ch),
      // hvs_remove: vmbus_close.
      remove: (ch) => ch.close(),
    };
  }

  /**
   * connect(): auto-binds a local port, asks the host for its service (a port, or a service id
   * in the port template), and returns the socket, `connecting` until the host's offer is open.
   */
  connect(service: number | string, options: GuestSocketOptions = {}): GuestHvSocket {
    let remotePort: number;
    if (typeof service === 'number') remotePort = service;
    else if (isVsockServiceId(service)) remotePort = portOfServiceId(service);
    else throw new HvSocketError('EINVAL', `${service} is not an AF_VSOCK service id (port template ${serviceIdOfPort(0)})`);
    if (!Number.isInteger(remotePort) || remotePort < 0 || remotePort >= VMADDR_PORT_ANY) throw new HvSocketError('EINVAL', `port ${remotePort} cannot be connected to`);
    const port = this.ephemeralPort();
    const s = new GuestHvSocket(this, port, remotePort, options.ringBytes ?? RINGBUFFER_HVS_SIZE, true);
    this.bound.set(port, s);
    s.startConnect(this.connectTimeoutNs);
    return s;
  }

  /** bind + listen: the host's connections to `port` come to `onConnection`, already open. */
  listen(port: number, onConnection: (socket: GuestHvSocket) => void, options: GuestSocketOptions = {}): GuestHvListener {
    if (!Number.isInteger(port) || port < 0 || port >= VMADDR_PORT_ANY) throw new HvSocketError('EINVAL', `port ${port} cannot be bound`);
    if (this.bound.has(port)) throw new HvSocketError('EADDRINUSE', `port ${port} is already bound`);
    const l = new GuestHvListener(this, port, options.ringBytes ?? RINGBUFFER_HVS_SIZE, onConnection);
    this.bound.set(port, l);
    return l;
  }

  /** @internal */
  unbind(port: number, owner: GuestHvSocket | GuestHvListener): void {
    if (this.bound.get(port) === owner) this.bound.delete(port);
  }

  /** @internal Work for later, outside the caller's stack (a failed connect reports after connect() returns). */
  defer(f: () => void): void {
    this.delay(0, f);
  }

  /** __vsock_bind_connectible: the next free port above the reserved ones. */
  private ephemeralPort(): number {
    for (let i = 0; i < 1000; i++) {
      if (this.nextPort <= LAST_RESERVED_PORT || this.nextPort >= VMADDR_PORT_ANY) this.nextPort = LAST_RESERVED_PORT + 1;
      const port = this.nextPort++;
      if (!this.bound.has(port)) return port;
    }
    throw new HvSocketError('EADDRINUSE', 'no free local port');
  }

  /**
   * hvs_open_connection, the driver's probe: find the socket the offer is for (a listener on
   * port(if_type) for a host connection, the connecting socket on port(if_instance) otherwise),
   * open the channel, and establish the connection. Anything else leaves the channel unopened,
   * for the host to rescind.
   */
  private openConnection(ch: GuestChannel): void {
    const o = ch.offer;
    const fromHost = o.userDefined[CONN_FROM_HOST_AT] !== 0;
    if (!isVsockServiceId(o.classId)) return void this.unmatchedOffers++;
    const port = portOfServiceId(fromHost ? o.classId : o.instanceId);
    const bound = this.bound.get(port);
    let sock: GuestHvSocket;
    let listener: GuestHvListener | undefined;
    if (fromHost) {
      if (!(bound instanceof GuestHvListener)) return void this.unmatchedOffers++;
      listener = bound;
      // The child's remote port is the first four bytes of the host's endpoint id.
      sock = new GuestHvSocket(this, port, portOfServiceId(o.instanceId), bound.ringBytes, false);
    } else {
      if (!(bound instanceof GuestHvSocket) || bound.state !== 'connecting') return void this.unmatchedOffers++;
      sock = bound;
    }
    const ring = hvsockRingBytes(this.client.version, sock.ringBytes);
    try {
      ch.open({
        sendRingBytes: ring,
        recvRingBytes: ring,
        maxPacketSize: HVS_MAX_PKT_SIZE,
        callbackMode: 'direct',
        onEvent: () => sock.onChannelEvent(),
      });
    } catch (e) {
      // vmbus_open failed (a rescind, or ring sizes the guest's pages cannot hold): a connect
      // waits for its timeout, as in Linux.
      if (!(e instanceof VmbusError)) throw e;
      this.services.note(`hv_sock: channel ${ch.relid} not opened: ${e.message}`);
      return;
    }
    ch.onRescind = () => this.onRescind(sock);
    ch.waitForSpace(HVS_PENDING_SEND_SIZE);
    sock.attach(ch);
    if (listener) {
      listener.accepted++;
      listener.onConnection(sock);
    } else {
      sock.on.connect?.();
    }
    // Data the host wrote before the guest was ready raised no event yet.
    sock.onChannelEvent();
  }

  private onRescind(sock: GuestHvSocket): void {
    if (sock.gone) sock.releaseChannel();
    else sock.onRescind();
  }
}

/**
 * The hv_sock module (hvs_init): below VMBus 4.0 it does not load (-ENODEV); otherwise it
 * registers the driver. `instance` is the transport once loaded. Its timers are the kernel's
 * delayed work unless `options.delay` says otherwise (HvSockGuest's default).
 */
export function hvSockModule(options: HvSockGuestOptions = {}): GuestModule & { readonly instance: HvSockGuest | undefined } {
  let instance: HvSockGuest | undefined;
  return {
    name: 'hv_sock',
    get instance() {
      return instance;
    },
    init(services, register, c) {
      if (!c || c.version < VmbusVersion.WIN10) {
        services.note(`hv_sock: not loaded, VMBus ${c ? versionString(c.version) : 'is not connected'} (needs 4.0)`);
        return;
      }
      instance = new HvSockGuest(c, services, options);
      register(instance.driver);
    },
  };
}
