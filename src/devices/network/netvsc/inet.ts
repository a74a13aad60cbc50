// A small IPv4 stack for one guest interface, enough to show traffic end to end: ARP (RFC 826)
// with a bounded neighbour table and Linux's retry rules, IPv4 (RFC 791) without options or
// fragments, ICMP echo (RFC 792) in both directions, and UDP (RFC 768) sockets. It checks what it
// receives as Linux's ip_rcv, udp_rcv and icmp_rcv do (header checksum, lengths, the UDP checksum
// unless the host verified it) and counts what it drops; every table and queue is bounded.
import type { GuestServices } from '../../device.js';
import {
  Arp,
  ARP_REPLY,
  ARP_REQUEST,
  arpFrame,
  be16,
  be32,
  BROADCAST_MAC,
  csumFinish,
  ETH_HLEN,
  Eth,
  EtherType,
  Icmp,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  icmpEchoFrame,
  ipString,
  ipv4ChecksumOk,
  ipv4Of,
  IpProto,
  l4ChecksumOk,
  macEquals,
  prefixMask,
  sum16,
  Udp,
  udpFrame,
  type Mac,
} from '../ether.js';
import type { NetDevice, RxMeta } from './netdev.js';
import { sliceOf } from '../../../memory/typed-arrays.js';

export interface InetAddress {
  readonly address: number;
  readonly prefix: number;
  readonly gateway?: number;
}

/** Neighbour table size, frames queued per unresolved neighbour, ARP tries (neigh defaults: gc_thresh3 scaled down, unres_qlen, mcast_solicit). */
const MAX_NEIGHBOURS = 256;
const MAX_UNRESOLVED = 64;
const UNRES_QLEN = 16;
const ARP_TRIES = 3;
/** retrans_time: 1 s between ARP requests. */
const ARP_RETRANS_NS = 1e9;
/** Datagrams a UDP socket holds before it drops (a bounded sk_rcvbuf). */
const UDP_QUEUE = 256;
/** The UDP echo service's port (RFC 862). */
export const ECHO_PORT = 7;

export interface InetStats {
  ipInReceives: number;
  ipInHdrErrors: number;
  ipInAddrErrors: number;
  ipOutRequests: number;
  ipOutNoRoutes: number;
  icmpInEchos: number;
  icmpInEchoReps: number;
  icmpOutEchos: number;
  icmpOutEchoReps: number;
  icmpInErrors: number;
  udpInDatagrams: number;
  udpNoPorts: number;
  udpInErrors: number;
  udpOutDatagrams: number;
  udpRcvbufErrors: number;
  arpIn: number;
  arpUnresolved: number;
}

export interface UdpSocket {
  readonly port: number;
  /** Datagrams received and not yet read (bounded). */
  readonly queue: { src: number; sport: number; data: Uint8Array }[];
  onMessage: ((src: number, sport: number, data: Uint8Array) => void) | undefined;
  close(): void;
}

interface Pending {
  readonly frames: { build: (mac: Mac) => Uint8Array; meta: Parameters<NetDevice['xmit']>[1] }[];
  tries: number;
  timer: { cancel(): boolean } | undefined;
}

/** An echo reply as the stack saw it. */
export interface EchoReply {
  readonly from: number;
  readonly ident: number;
  readonly seq: number;
  readonly ttl: number;
  /** ICMP bytes (header and data), as ping reports them. */
  readonly bytes: number;
  readonly atNs: number;
}

export class Inet {
  address: InetAddress | undefined;
  readonly stats: InetStats = {
    ipInReceives: 0,
    ipInHdrErrors: 0,
    ipInAddrErrors: 0,
    ipOutRequests: 0,
    ipOutNoRoutes: 0,
    icmpInEchos: 0,
    icmpInEchoReps: 0,
    icmpOutEchos: 0,
    icmpOutEchoReps: 0,
    icmpInErrors: 0,
    udpInDatagrams: 0,
    udpNoPorts: 0,
    udpInErrors: 0,
    udpOutDatagrams: 0,
    udpRcvbufErrors: 0,
    arpIn: 0,
    arpUnresolved: 0,
  };
  private readonly neighbours = new Map<number, Mac>();
  private readonly unresolved = new Map<number, Pending>();
  private readonly sockets = new Map<number, UdpSocket>();
  /** Echo replies go to whoever pings with that identifier. */
  private readonly pingers = new Map<number, (r: EchoReply) => void>();
  private ipId = 1;

  constructor(
    readonly dev: NetDevice,
    private readonly services: GuestServices,
  ) {
    // The stack keeps what it handles (a frame it may queue or answer from): its own copy and meta.
    dev.rx = (bytes, at, length, meta) => {
      if (length < ETH_HLEN) return;
      const type = be16(bytes, at + Eth.TYPE);
      if (type === EtherType.ARP || type === EtherType.IPV4) this.receive(sliceOf(bytes, at, at + length), { queue: meta.queue, checksumVerified: meta.checksumVerified, hash: meta.hash });
    };
    dev.watchers.add((_d, event) => {
      if (event === 'notify-peers' || event === 'carrier-on') this.gratuitousArp();
    });
  }

  /** ip addr add ADDRESS/PREFIX dev ethN (and a default route through the gateway). */
  configure(a: InetAddress): void {
    this.address = a;
    this.gratuitousArp();
  }

  get neighbourCount(): number {
    return this.neighbours.size;
  }

  // --- Receive ------------------------------------------------------------------------------

  /** Frames from the interface (netif_receive_skb, then the protocol handlers). */
  receive(frame: Uint8Array, meta: RxMeta): void {
    if (frame.length < ETH_HLEN) return;
    const type = be16(frame, Eth.TYPE);
    if (type === EtherType.ARP) return this.arpRcv(frame);
    if (type === EtherType.IPV4) return this.ipRcv(frame, meta);
  }

  private arpRcv(f: Uint8Array): void {
    const a = ETH_HLEN;
    if (f.length < a + Arp.LEN || be16(f, a + Arp.PTYPE) !== EtherType.IPV4 || f[a + Arp.HLEN] !== 6 || f[a + Arp.PLEN] !== 4) return;
    this.stats.arpIn++;
    const op = be16(f, a + Arp.OPER);
    const sha = f.slice(a + Arp.SHA, a + Arp.SHA + 6);
    const spa = be32(f, a + Arp.SPA);
    const tpa = be32(f, a + Arp.TPA);
    const me = this.address?.address;
    // Learn the sender if it is about us or already known (arp_process).
    if (tpa === me || this.neighbours.has(spa)) this.learn(spa, sha);
    if (op === ARP_REQUEST && me !== undefined && tpa === me) this.send(arpFrame(ARP_REPLY, this.dev.addr, me, sha, spa, sha));
  }

  private learn(ip: number, mac: Mac): void {
    if (!this.neighbours.has(ip) && this.neighbours.size >= MAX_NEIGHBOURS) {
      const oldest = this.neighbours.keys().next().value;
      if (oldest !== undefined) this.neighbours.delete(oldest);
    }
    this.neighbours.delete(ip);
    this.neighbours.set(ip, mac);
    const p = this.unresolved.get(ip);
    if (p) {
      this.unresolved.delete(ip);
      p.timer?.cancel();
      for (const w of p.frames) this.send(w.build(mac), w.meta);
    }
  }

  /** ip_rcv: version, header length and checksum, total length; then to us or dropped. */
  private ipRcv(f: Uint8Array, meta: RxMeta): void {
    this.stats.ipInReceives++;
    const ip = ipv4Of(f);
    if (!ip || !ipv4ChecksumOk(f, ip)) {
      this.stats.ipInHdrErrors++;
      return;
    }
    const me = this.address;
    const bcast = me ? (me.address | ~prefixMask(me.prefix)) >>> 0 : 0xffffffff;
    if (!me || (ip.dst !== me.address && ip.dst !== 0xffffffff && ip.dst !== bcast)) {
      this.stats.ipInAddrErrors++;
      return;
    }
    if (ip.fragmented) {
      this.stats.ipInHdrErrors++; // reassembly is not modelled
      return;
    }
    // Replies go straight back to the sender's MAC: the frame tells us who it is.
    if (!this.neighbours.has(ip.src) && (ip.src & prefixMask(me.prefix)) === (me.address & prefixMask(me.prefix))) this.learn(ip.src, f.slice(Eth.SRC, Eth.SRC + 6));
    if (ip.protocol === IpProto.ICMP) return this.icmpRcv(f, ip.l4, ip.totalLength - ip.ihl, ip.src, ip.ttl);
    if (ip.protocol === IpProto.UDP) return this.udpRcv(f, ip, meta);
  }

  private icmpRcv(f: Uint8Array, at: number, len: number, src: number, ttl: number): void {
    if (len < Icmp.LEN || csumFinish(sum16(f, at, at + len)) !== 0) {
      this.stats.icmpInErrors++;
      return;
    }
    const type = f[at + Icmp.TYPE];
    const ident = be16(f, at + Icmp.ID);
    const seq = be16(f, at + Icmp.SEQ);
    if (type === ICMP_ECHO_REQUEST) {
      this.stats.icmpInEchos++;
      this.stats.icmpOutEchoReps++;
      const data = f.slice(at + Icmp.LEN, at + len);
      this.sendIp(src, (mac) => icmpEchoFrame({ dstMac: mac, srcMac: this.dev.addr, src: this.address!.address, dst: src, type: ICMP_ECHO_REPLY, ident, seq, ipId: this.nextId() }, data));
    } else if (type === ICMP_ECHO_REPLY) {
      this.stats.icmpInEchoReps++;
      this.pingers.get(ident)?.({ from: src, ident, seq, ttl, bytes: len, atNs: this.services.uptimeNs() });
    }
  }

  /** udp_rcv: lengths, the checksum unless the host verified it, then the socket bound to the port. */
  private udpRcv(f: Uint8Array, ip: NonNullable<ReturnType<typeof ipv4Of>>, meta: RxMeta): void {
    const at = ip.l4;
    const len = ip.totalLength - ip.ihl;
    if (len < Udp.LEN || be16(f, at + Udp.LENGTH) > len || be16(f, at + Udp.LENGTH) < Udp.LEN) {
      this.stats.udpInErrors++;
      return;
    }
    if (!meta.checksumVerified && !l4ChecksumOk(f, ip)) {
      this.stats.udpInErrors++;
      return;
    }
    const dport = be16(f, at + Udp.DPORT);
    const s = this.sockets.get(dport);
    if (!s) {
      this.stats.udpNoPorts++;
      return;
    }
    const data = f.slice(at + Udp.LEN, at + be16(f, at + Udp.LENGTH));
    const sport = be16(f, at + Udp.SPORT);
    this.stats.udpInDatagrams++;
    if (s.onMessage) return s.onMessage(ip.src, sport, data);
    if (s.queue.length >= UDP_QUEUE) {
      this.stats.udpRcvbufErrors++;
      return;
    }
    s.queue.push({ src: ip.src, sport, data });
  }

  // --- Send ---------------------------------------------------------------------------------

  private nextId(): number {
    const id = this.ipId;
    this.ipId = (this.ipId + 1) & 0xffff || 1;
    return id;
  }

  private send(frame: Uint8Array, meta: Parameters<NetDevice['xmit']>[1] = {}): boolean {
    return this.dev.xmit(frame, meta) === 'ok';
  }

  /**
   * ip_route_output then the neighbour: on the subnet the destination itself, else the gateway;
   * `build` makes the frame once the next hop's MAC is known. Unresolved next hops are asked for
   * with ARP (three tries a second apart) while a few frames wait.
   */
  sendIp(dst: number, build: (mac: Mac) => Uint8Array, meta: Parameters<NetDevice['xmit']>[1] = {}): boolean {
    const me = this.address;
    if (!me) {
      this.stats.ipOutNoRoutes++;
      return false;
    }
    this.stats.ipOutRequests++;
    const mask = prefixMask(me.prefix);
    const bcast = (me.address | ~mask) >>> 0;
    if (dst === 0xffffffff || dst === bcast) return this.send(build(BROADCAST_MAC), meta);
    const onLink = (dst & mask) === (me.address & mask);
    const hop = onLink ? dst : me.gateway;
    if (hop === undefined) {
      this.stats.ipOutNoRoutes++;
      return false;
    }
    const mac = this.neighbours.get(hop);
    if (mac) return this.send(build(mac), meta);
    let p = this.unresolved.get(hop);
    if (!p) {
      if (this.unresolved.size >= MAX_UNRESOLVED) {
        this.stats.arpUnresolved++;
        return false;
      }
      p = { frames: [], tries: 0, timer: undefined };
      this.unresolved.set(hop, p);
      this.solicit(hop, p);
    }
    if (p.frames.length >= UNRES_QLEN) {
      this.stats.arpUnresolved++;
      return false;
    }
    p.frames.push({ build, meta });
    return true;
  }

  private solicit(hop: number, p: Pending): void {
    if (p.tries >= ARP_TRIES) {
      this.unresolved.delete(hop);
      this.stats.arpUnresolved += p.frames.length;
      return;
    }
    p.tries++;
    this.send(arpFrame(ARP_REQUEST, this.dev.addr, this.address!.address, new Uint8Array(6), hop, BROADCAST_MAC));
    p.timer = this.services.scheduleDelayedWork(ARP_RETRANS_NS, () => {
      if (this.unresolved.get(hop) === p) this.solicit(hop, p);
    });
  }

  /** Announces our address (a gratuitous ARP request: sender and target both us). */
  gratuitousArp(): void {
    const me = this.address;
    if (!me || !this.dev.up || !this.dev.carrier) return;
    this.send(arpFrame(ARP_REQUEST, this.dev.addr, me.address, new Uint8Array(6), me.address, BROADCAST_MAC));
  }

  /** An echo request; replies with `ident` go to the handler registered with onEcho. */
  sendEcho(dst: number, ident: number, seq: number, data: Uint8Array): boolean {
    const me = this.address;
    if (!me) return false;
    this.stats.icmpOutEchos++;
    return this.sendIp(dst, (mac) => icmpEchoFrame({ dstMac: mac, srcMac: this.dev.addr, src: me.address, dst, type: ICMP_ECHO_REQUEST, ident, seq, ipId: this.nextId() }, data));
  }

  onEcho(ident: number, handler: ((r: EchoReply) => void) | undefined): void {
    if (handler) this.pingers.set(ident, handler);
    else this.pingers.delete(ident);
  }

  /** bind(): a UDP socket on `port`; EADDRINUSE is an Error. */
  bindUdp(port: number, onMessage?: (src: number, sport: number, data: Uint8Array) => void): UdpSocket {
    if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw new RangeError(`UDP port ${port} is not 1 to 65535`);
    if (this.sockets.has(port)) throw new Error(`UDP port ${port} is in use (EADDRINUSE)`);
    const s: UdpSocket = {
      port,
      queue: [],
      onMessage,
      close: () => {
        if (this.sockets.get(port) === s) this.sockets.delete(port);
      },
    };
    this.sockets.set(port, s);
    return s;
  }

  /** An ephemeral port (ip_local_port_range starts at 32768). */
  ephemeralPort(): number {
    for (let p = 32768; p < 61000; p++) if (!this.sockets.has(p)) return p;
    throw new Error('no ephemeral UDP port left');
  }

  /** sendto(): a datagram; the checksum is left to the NIC when it offloads UDP checksums. */
  sendUdp(dst: number, sport: number, dport: number, data: Uint8Array): boolean {
    const me = this.address;
    if (!me || data.length > this.dev.mtu - 28) return false;
    this.stats.udpOutDatagrams++;
    const offload = this.dev.features.txCsumUdp4;
    return this.sendIp(dst, (mac) => udpFrame({ dstMac: mac, srcMac: this.dev.addr, src: me.address, dst, sport, dport, id: this.nextId(), offload }, data), offload ? { checksumPartial: true, transportOffset: ETH_HLEN + 20 } : {});
  }

  /** The UDP echo service (RFC 862) on `port`: every datagram goes back to its sender. */
  startEcho(port = ECHO_PORT): UdpSocket {
    return this.bindUdp(port, (src, sport, data) => void this.sendUdp(src, port, sport, data));
  }

  /** For logs and state. */
  describe(): Record<string, unknown> {
    const a = this.address;
    return { address: a && `${ipString(a.address)}/${a.prefix}`, gateway: a?.gateway === undefined ? undefined : ipString(a.gateway), neighbours: this.neighbours.size, stats: this.stats };
  }

  /** Whether `mac` is ours (for tests that build frames). */
  isOurs(mac: Uint8Array): boolean {
    return macEquals(mac, 0, this.dev.addr);
  }
}
