// The host's hv_sock provider, after OpenVMM's (vm/devices/vmbus/vmbus_server/src/hvsock.rs,
// vmbus_async pipe.rs, vmbus_channel offer.rs): a guest's TL_CONNECT_REQUEST for a service the
// host listens on becomes an offer (if_type = the service, if_instance = the guest's endpoint);
// a host connect() offers a channel the guest's listener accepts (is_for_guest_accept = 1). Once
// the guest opens the channel it is a byte pipe: 2 KiB packets from the host, EOF as an empty
// packet, and the channel rescinded when both EOFs have passed or the host closes.
//
// UNVERIFIED: what a Windows host writes as the hv_sock parameters' version; hvkit follows the
// enum's names: PRE_RS5 (0) before Windows Server 2019 (RS5), RS5 (1) from it.
import { subarrayOf } from '../../memory/typed-arrays.js';
import type { ReleaseId } from '../../hypervisor/release.js';
import type { HostChannel } from '../../vmbus/server/channel.js';
import { OfferError, STATUS_UNSUCCESSFUL } from '../../vmbus/server/server.js';
import { PacketType, VmbusVersion, versionString } from '../../vmbus/wire/constants.js';
import type { ParsedPacket } from '../../vmbus/wire/packets.js';
import type { HostContext, HostDevice } from '../device.js';
import { HvSocket, HvSocketError } from './socket.js';
import { DataArena } from './data-arena.js';
import { HVS_MTU_SIZE, HVSOCK_OFFER_FLAGS, HvsockParamsVersion, HvsockWireError, hvsockUserDefined, hvsDataSize, HvsPacketWriter, hvsPktLen, parseHvsPayload, serviceId, VmpipeProtoHeader } from './wire.js';

const EMPTY = new Uint8Array(0);

/** Ring reads when the guest closes the channel, after which what is left in the ring is dropped. */
const CLOSE_PULLS = 4;
/** OpenVMM's byte pipe writes at most this much per packet, so the reader can free room as it reads. */
export const HOST_CHUNK_BYTES = 2048;
/** OpenVMM gives a guest that asked for a connection this long to open the offered channel. */
export const ACCEPT_TIMEOUT_NS = 5e9;
/** OpenVMM's hybrid-vsock relay waits this long for the guest to accept a host connection. */
export const CONNECT_TIMEOUT_NS = 2e9;
/**
 * Guest connections one host service takes at once, offered or open (hvkit's bound: OpenVMM has
 * none of its own but the relids; this leaves most of them to other services and devices).
 */
export const DEFAULT_HVSOCK_CONNECTIONS_PER_SERVICE = 256;

export interface HvsockHostOptions {
  /** Data bytes per packet the host writes, up to HVS_MTU_SIZE (2048: OpenVMM). */
  chunkBytes?: number;
  /** How long a guest that asked for a connection has to open its channel (5 s: OpenVMM). */
  acceptTimeoutNs?: number;
  /** How long a host connect() waits for the guest to accept (2 s: OpenVMM). */
  connectTimeoutNs?: number;
  /** Seeds the endpoint ids of host connections (Hyper-V makes them random). */
  seed?: number;
  /** Guest connections one service takes at once; more are refused (DEFAULT_HVSOCK_CONNECTIONS_PER_SERVICE). */
  connectionsPerService?: number;
}

/** The hv_sock parameters' version a release's host writes (see the note above). */
const paramsVersion = (release: ReleaseId): number => (release === 'ws2012' || release === 'ws2012r2' || release === 'ws2016' ? HvsockParamsVersion.PRE_RS5 : HvsockParamsVersion.RS5);

/** A service the host listens on (bind + listen on SOCKADDR_HV {VmId, ServiceId}). */
export class HostHvListener {
  accepted = 0;
  closed = false;

  constructor(
    private readonly host: HvsockHost,
    readonly serviceId: string,
    readonly onConnection: (socket: HostHvSocket) => void,
  ) {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.host.unlisten(this);
  }
}

/** One hv_sock connection on the host: the channel's handler and the stream over it. */
export class HostHvSocket extends HvSocket {
  channel: HostChannel | undefined;
  private timer: { cancel(): void } | undefined;
  private revoking = false;
  /** Inside the server's close handler: a rescind must wait until it has returned. */
  private inGuestClose = false;
  /** Ring bytes the next packet needs (pending_send_sz asked of the guest), 0 when not blocked. */
  private need = 0;
  private readonly packets = new HvsPacketWriter();
  private bad: HvSocketError | undefined;
  /** Whether the current pull() found a packet, and its readers (made once, not per pull). */
  private got = false;
  private readonly takeInband = (bytes: Uint8Array, start: number, end: number): void => {
    this.got = true;
    this.onInband(bytes, start, end);
  };
  private readonly takePacket = (p: ParsedPacket): void => {
    this.got = true;
    this.onPacket(p);
  };
  /**
   * The host thread serves the whole VM: a guest in a worker streaming without end must not keep
   * it in one delivery (a pull reads what the ring holds, up to a ring's worth).
   */
  protected override readonly pullsPerDelivery = 16;
  /** Where received data is copied (DataArena): the socket user's to keep, unless lent. */
  private readonly kept = new DataArena();

  /**
   * Lend received data rather than give it: `data` then gets views into a buffer the socket
   * reuses once they have all been delivered, so a handler may look at its bytes only until it
   * returns (and copies what it keeps). A streaming reader that keeps nothing saves an
   * allocation per 64 KiB received, which costs more than the copy (DataArena says how much).
   */
  get lend(): boolean {
    return this.kept.lends;
  }
  set lend(on: boolean) {
    this.kept.lends = on;
  }

  constructor(
    private readonly host: HvsockHost,
    /** The service the connection is for: the host's (guest connect) or the guest's (host connect). */
    readonly serviceId: string,
    /** The endpoint: the guest's (guest connect) or the host's own (host connect). */
    readonly endpointId: string,
    /** The host connected (true), or accepted a guest's request (false). */
    readonly fromHost: boolean,
    private readonly listener: HostHvListener | undefined,
  ) {
    super(fromHost ? endpointId : serviceId, fromHost ? serviceId : endpointId);
  }

  /** @internal Offers the connection's channel and waits for the guest to open it; OfferError when no relid is free. */
  offer(timeoutNs: number): void {
    const ctx = this.host.ctx;
    this.channel = ctx.server.offer(
      { classId: this.serviceId, instanceId: this.endpointId, flags: HVSOCK_OFFER_FLAGS, userDefined: hvsockUserDefined(this.fromHost, paramsVersion(ctx.release)) },
      {
        open: () => this.onOpen(),
        close: () => this.onGuestClose(),
        signal: () => this.onSignal(),
      },
    );
    this.timer = ctx.schedule(ctx.now() + timeoutNs, () => {
      this.timer = undefined;
      if (this.state !== 'connecting') return;
      this.host.log(`${this.describe()}: the guest did not open the channel within ${timeoutNs / 1e9} s; rescinded`);
      this.revoke();
      this.released(this.fromHost ? new HvSocketError('ETIMEDOUT', `the guest did not accept a connection to ${this.serviceId}`) : undefined);
    });
  }

  private describe(): string {
    return `hvsock ${this.serviceId} ${this.fromHost ? 'to' : 'from'} ${this.endpointId}`;
  }

  /** The guest opened the channel: the connection is up; the user hears of it after the open completes. */
  private onOpen(): number {
    if (this.state !== 'connecting') return STATUS_UNSUCCESSFUL;
    this.timer?.cancel();
    this.timer = undefined;
    this.state = 'open';
    this.host.later(() => {
      if (this.state !== 'open') return;
      // A listener closed meanwhile takes no more connections.
      if (this.listener?.closed) return this.close();
      if (this.listener) {
        this.listener.accepted++;
        this.listener.onConnection(this);
      } else {
        this.on.connect?.();
      }
      this.trySendFin();
      this.onSignal();
    });
    return 0;
  }

  /**
   * CLOSECHANNEL from the guest without a rescind (Linux never does this; another guest may):
   * what is left in the ring is read before the rings go, then the channel is rescinded. A
   * connection without the guest's EOF ends with ECONNRESET.
   */
  private onGuestClose(): void {
    if (this.revoking || this.state !== 'open') return;
    this.inGuestClose = true;
    try {
      // What the ring holds now takes one pull; a guest in a worker that goes on writing while
      // its close is handled gets a few more, not a host thread that reads for as long as it writes.
      for (let i = 0; i < CLOSE_PULLS && this.pull(); i++);
      this.deliver();
    } finally {
      this.inGuestClose = false;
    }
    const reset = !this.ended ? new HvSocketError('ECONNRESET', 'the guest closed the channel') : undefined;
    this.host.later(() => {
      this.revoke();
      this.released(reset);
    });
  }

  /** The guest signalled: data to read, or room it made for a blocked writer. */
  private onSignal(): void {
    if (this.state !== 'open') return;
    this.deliver();
    if (this.state !== 'open') return;
    if (this.need && !this.room(this.need)) return;
    this.need = 0;
    this.channel?.waitForSpace(0);
    this.roomAvailable();
  }

  /** Whether `bytes` are free in the host→guest ring; if not, asks the guest to signal when they are. */
  private room(bytes: number): boolean {
    return this.channel?.waitForSpace(bytes) ?? false;
  }

  /** Rescinds the channel (the connection is over); the guest then releases the relid. */
  private revoke(): void {
    const ch = this.channel;
    if (!ch || this.revoking) return;
    this.revoking = true;
    this.host.forget(this);
    if (this.inGuestClose) this.host.later(() => this.host.ctx.server.revoke(ch));
    else this.host.ctx.server.revoke(ch);
  }

  /** @internal A connect that cannot be made. */
  refuse(e: HvSocketError): void {
    this.released(e);
  }

  /** Closes at once: EOF if it fits, then the rescind. Data the ring did not take is dropped. */
  close(): void {
    if (this.state === 'closed') return;
    this.timer?.cancel();
    this.timer = undefined;
    if (this.state === 'open' && !this.finSent) {
      this.endRequested = true;
      this.finSent = this.writeFin();
    }
    this.revoke();
    this.released();
  }

  // --- HvSocket ------------------------------------------------------------------------------

  /** OpenVMM try_write_bytes: chunks while they fit; then the guest is asked to signal room for the next. */
  protected writeRing(bytes: Uint8Array): number {
    const ch = this.channel!;
    const chunk = this.host.chunkBytes;
    let done = 0;
    while (done < bytes.length) {
      const n = Math.min(chunk, bytes.length - done);
      if (ch.send(this.packets.packet(n === bytes.length ? bytes : subarrayOf(bytes, done, done + n)))) {
        this.stats.packetsOut++;
        done += n;
        continue;
      }
      if (ch.corrupt) {
        this.host.later(() => this.fail(new HvSocketError('EIO', `the guest broke the ring: ${ch.corrupt}`)));
        break;
      }
      // The ring needs the packet and its trailer free, plus the byte that keeps it from full.
      this.need = hvsPktLen(n) + 8;
      if (!this.room(this.need)) break;
      this.need = 0;
    }
    if (done === bytes.length && !this.need) ch.waitForSpace(0);
    return done;
  }

  /** OpenVMM try_shutdown_writes: an empty data packet, which needs room like any other. */
  protected writeFin(): boolean {
    const ch = this.channel;
    if (!ch?.isOpen) return true;
    for (;;) {
      if (ch.send(this.packets.packet(EMPTY))) {
        this.stats.packetsOut++;
        return true;
      }
      if (ch.corrupt) return true;
      this.need = hvsPktLen(0) + 8;
      if (!this.room(this.need)) return false;
      this.need = 0;
    }
  }

  protected override drained(): void {
    if (this.kept.lends) this.kept.rewind();
  }

  /** Reads the ring: in-band packets with a DATA pipe header only (OpenVMM's pipe reader). */
  protected pull(): boolean {
    // Also while the guest's CLOSECHANNEL is handled: the rings are still mapped then.
    const ch = this.channel;
    if (!ch || this.revoking || this.bad) return false;
    this.got = false;
    // In-band data where it lies in the ring, copied once into what the socket keeps (a small
    // write's packet costs no object and no copy of its headers); anything else parsed as before.
    ch.receiveInband(this.takeInband, this.takePacket);
    if (ch.corrupt && !this.bad) this.bad = new HvSocketError('EIO', `the guest broke the ring: ${ch.corrupt}`);
    return this.got && !this.bad;
  }

  /** onPacket() for an in-band packet without flags, on its payload [start, end) of `bytes`, where it lies. */
  private onInband(bytes: Uint8Array, start: number, end: number): void {
    if (this.bad) return;
    let size: number;
    try {
      size = hvsDataSize(bytes, start, end, true);
    } catch (e) {
      if (!(e instanceof HvsockWireError)) throw e;
      this.bad = new HvSocketError('EIO', `bad packet from the guest: ${e.message}`);
      return;
    }
    if (size === 0) this.receivedEof();
    else this.received(this.kept.copy(bytes, start + VmpipeProtoHeader.size, size));
  }

  private onPacket(p: ParsedPacket): void {
    if (this.bad) return;
    if (p.type !== PacketType.DATA_INBAND) {
      this.bad = new HvSocketError('EIO', `packet type ${p.type} on an hv_sock channel`);
      return;
    }
    let data: Uint8Array;
    try {
      data = parseHvsPayload(p.payload, true);
    } catch (e) {
      if (!(e instanceof HvsockWireError)) throw e;
      this.bad = new HvSocketError('EIO', `bad packet from the guest: ${e.message}`);
      return;
    }
    if (data.length === 0) this.receivedEof();
    else this.received(data);
  }

  protected peerGone(): boolean {
    return !this.channel?.isOpen;
  }

  protected inputError(): HvSocketError | undefined {
    return this.bad;
  }

  /** Both EOFs have passed: the relay is done and the channel is rescinded (OpenVMM drops the offer). */
  protected finished(): void {
    this.host.later(() => {
      if (this.state !== 'open') return;
      this.revoke();
      this.released();
    });
  }

  /** A malformed packet or a broken ring: reported, then the channel is rescinded. */
  protected override fail(error: HvSocketError): void {
    if (this.state === 'closed' || this.error) return;
    this.host.log(`${this.describe()}: ${error.message}`);
    super.fail(error);
  }
}

/** The host's hv_sock provider for one VM. */
export class HvsockHost implements HostDevice {
  readonly type = 'hvsock';
  readonly chunkBytes: number;
  private readonly acceptTimeoutNs: number;
  private readonly connectTimeoutNs: number;
  private readonly connectionsPerService: number;
  private readonly listeners = new Map<string, HostHvListener>();
  /** Connections whose channel is offered or open. */
  readonly connections = new Set<HostHvSocket>();
  private seed: number;

  constructor(
    readonly ctx: HostContext,
    /** The VM's id, by which host applications address it (SOCKADDR_HV.VmId); never sent over VMBus. */
    readonly instanceId: string,
    options: HvsockHostOptions = {},
  ) {
    const chunk = options.chunkBytes ?? HOST_CHUNK_BYTES;
    if (!Number.isInteger(chunk) || chunk < 1 || chunk > HVS_MTU_SIZE) throw new RangeError(`chunkBytes ${chunk} is not within [1, ${HVS_MTU_SIZE}]`);
    this.chunkBytes = chunk;
    this.acceptTimeoutNs = options.acceptTimeoutNs ?? ACCEPT_TIMEOUT_NS;
    this.connectTimeoutNs = options.connectTimeoutNs ?? CONNECT_TIMEOUT_NS;
    this.connectionsPerService = options.connectionsPerService ?? DEFAULT_HVSOCK_CONNECTIONS_PER_SERVICE;
    this.seed = (options.seed ?? 0x68767363) >>> 0 || 1;
    ctx.server.tlConnect = (endpoint, service) => this.onTlConnect(endpoint, service);
  }

  get vmId(): string {
    return this.instanceId;
  }

  /** Listens on a service (a GUID, or an AF_VSOCK port in the template); guests' connections come to `onConnection`, open. */
  listen(service: string | number, onConnection: (socket: HostHvSocket) => void): HostHvListener {
    const id = serviceId(service);
    if (this.listeners.has(id)) throw new HvSocketError('EADDRINUSE', `the host already listens on ${id}`);
    const l = new HostHvListener(this, id, onConnection);
    this.listeners.set(id, l);
    return l;
  }

  /**
   * Connects to a service the guest listens on: offers a channel with a fresh endpoint id. The
   * socket is `connecting` until the guest opens it; ETIMEDOUT if it does not within the timeout.
   */
  connect(service: string | number): HostHvSocket {
    const sock = new HostHvSocket(this, serviceId(service), this.newEndpointId(), true, undefined);
    const version = this.ctx.server.connection?.version ?? 0;
    if (version < VmbusVersion.WIN10) {
      const why = this.ctx.server.connection ? `VMBus ${versionString(version)} has no hv_sock (needs 4.0)` : 'the guest has not connected to VMBus';
      this.later(() => sock.refuse(new HvSocketError('ECONNREFUSED', why)));
      return sock;
    }
    if (!this.start(sock, this.connectTimeoutNs)) this.later(() => sock.refuse(new HvSocketError('ECONNREFUSED', 'no relid is free for the channel')));
    return sock;
  }

  /** Offers a connection's channel; false (and nothing kept) when the server has no relid left. */
  private start(sock: HostHvSocket, timeoutNs: number): boolean {
    try {
      sock.offer(timeoutNs);
    } catch (e) {
      if (!(e instanceof OfferError)) throw e;
      return false;
    }
    this.connections.add(sock);
    return true;
  }

  /** Stops listening and closes every connection. */
  dispose(): void {
    for (const l of [...this.listeners.values()]) l.close();
    for (const s of [...this.connections]) s.close();
    if (this.ctx.server.tlConnect) this.ctx.server.tlConnect = undefined;
  }

  /** TL_CONNECT_REQUEST: accepted (an offer follows) if someone listens on the service. */
  private onTlConnect(endpoint: string, service: string): boolean {
    // A refusal is a TL_CONNECT_RESULT with STATUS_CONNECTION_REFUSED (the server sends it from
    // 4.1), as OpenVMM's relay answers a request it cannot serve (hvsock.rs, channels.rs).
    const refuse = (why: string) => {
      this.log(`hvsock: connection from ${endpoint} to ${service} refused: ${why}`);
      return false;
    };
    const l = this.listeners.get(service.toLowerCase());
    if (!l) return refuse('nothing listens there');
    let taken = 0;
    for (const s of this.connections) {
      if (s.fromHost || s.serviceId !== service.toLowerCase()) continue;
      taken++;
      // The same pair again would be a second channel with the same GUIDs, which the guest drops.
      if (s.endpointId === endpoint.toLowerCase()) return refuse('that endpoint is already connected');
    }
    if (taken >= this.connectionsPerService) return refuse(`the service has ${taken} connections already`);
    const sock = new HostHvSocket(this, service.toLowerCase(), endpoint.toLowerCase(), false, l);
    return this.start(sock, this.acceptTimeoutNs) || refuse('no relid is free for the channel');
  }

  /** @internal */
  unlisten(l: HostHvListener): void {
    if (this.listeners.get(l.serviceId) === l) this.listeners.delete(l.serviceId);
  }

  /** @internal */
  forget(s: HostHvSocket): void {
    this.connections.delete(s);
  }

  /** @internal Runs `f` on the host's time, after whatever is running now. */
  later(f: () => void): void {
    this.ctx.schedule(this.ctx.now(), f);
  }

  /** @internal */
  log(text: string): void {
    this.ctx.log(text);
  }

  /** A random-looking version-4 GUID, reproducible from the seed (xorshift32). */
  private newEndpointId(): string {
    const b = new Uint8Array(16);
    for (let i = 0; i < 16; i += 4) {
      let x = this.seed;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.seed = x >>> 0;
      new DataView(b.buffer).setUint32(i, this.seed);
    }
    b[6] = (b[6]! & 0x0f) | 0x40;
    b[8] = (b[8]! & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
}

/** The device registry's factory: the host's hv_sock provider for the VM `instanceId` names. */
export function attachHvsock(ctx: HostContext, instanceId: string, options?: HvsockHostOptions): HvsockHost {
  return new HvsockHost(ctx, instanceId, options);
}
