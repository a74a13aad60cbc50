// Ethernet, ARP, IPv4, ICMP, UDP and TCP as the frames on a virtual wire carry them, in network
// byte order: field offsets by name (IEEE 802.3, RFC 826, 791, 792, 768, 793), the Internet
// checksum (RFC 1071) and helpers to build and take apart the frames the guest stack, the switch
// and the host's offloads handle. Platform-neutral.

/** Ethernet II (IEEE 802.3 clause 3): destination, source, EtherType; 1500 bytes of payload at most. */
export const ETH_ALEN = 6;
export const ETH_HLEN = 14;
export const ETH_DATA_LEN = 1500;
export const ETH_ZLEN = 60;
export const Eth = { DST: 0, SRC: 6, TYPE: 12 } as const;
export const EtherType = { IPV4: 0x0800, ARP: 0x0806, VLAN: 0x8100, IPV6: 0x86dd } as const;

/** ARP for Ethernet and IPv4 (RFC 826): 28 bytes. */
export const Arp = { HTYPE: 0, PTYPE: 2, HLEN: 4, PLEN: 5, OPER: 6, SHA: 8, SPA: 14, THA: 18, TPA: 24, LEN: 28 } as const;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
export const ARP_HTYPE_ETHERNET = 1;

/** IPv4 header (RFC 791) without options: 20 bytes. */
export const Ip4 = { VER_IHL: 0, TOS: 1, TOTAL_LENGTH: 2, ID: 4, FLAGS_FRAG: 6, TTL: 8, PROTOCOL: 9, CHECKSUM: 10, SRC: 12, DST: 16, LEN: 20 } as const;
export const IpProto = { ICMP: 1, TCP: 6, UDP: 17 } as const;
/** Linux's default TTL (sysctl net.ipv4.ip_default_ttl). */
export const IP_DEFAULT_TTL = 64;
export const IP_DF = 0x4000;

/** ICMP echo (RFC 792): type, code, checksum, identifier, sequence. */
export const Icmp = { TYPE: 0, CODE: 1, CHECKSUM: 2, ID: 4, SEQ: 6, LEN: 8 } as const;
export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;

/** UDP (RFC 768). */
export const Udp = { SPORT: 0, DPORT: 2, LENGTH: 4, CHECKSUM: 6, LEN: 8 } as const;
/** TCP (RFC 793), fixed part. */
export const Tcp = { SPORT: 0, DPORT: 2, SEQ: 4, ACK: 8, DOFF: 12, FLAGS: 13, WINDOW: 14, CHECKSUM: 16, URG: 18, LEN: 20 } as const;

const be16 = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;
const be32 = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
const put16 = (b: Uint8Array, at: number, v: number): void => {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
};
const put32 = (b: Uint8Array, at: number, v: number): void => {
  b[at] = (v >>> 24) & 0xff;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
};
export { be16, be32, put16, put32 };

// --- Addresses ------------------------------------------------------------------------------

export type Mac = Uint8Array;

export const BROADCAST_MAC: Mac = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

/** "00:15:5d:01:02:03" (the form %pM prints). */
export function macString(b: Uint8Array, at = 0): string {
  let s = '';
  for (let i = 0; i < ETH_ALEN; i++) s += (i ? ':' : '') + b[at + i]!.toString(16).padStart(2, '0');
  return s;
}

const MAC_TEXT = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i;

/** Parses "00:15:5d:01:02:03" (or with dashes); undefined if it is not a MAC address. */
export function parseMac(text: string): Mac | undefined {
  if (!MAC_TEXT.test(text)) return undefined;
  return new Uint8Array(text.split(/[:-]/).map((h) => parseInt(h, 16)));
}

export const isBroadcast = (b: Uint8Array, at = 0): boolean => b[at] === 0xff && b[at + 1] === 0xff && b[at + 2] === 0xff && b[at + 3] === 0xff && b[at + 4] === 0xff && b[at + 5] === 0xff;
/** The group bit: multicast or broadcast. */
export const isMulticast = (b: Uint8Array, at = 0): boolean => (b[at]! & 1) === 1;
/** Written out, not a loop: asked per frame by the switch and the NIC's filter, where a loop of six costs several times as much. */
export const macEquals = (a: Uint8Array, ai: number, b: Uint8Array, bi = 0): boolean =>
  a[ai] === b[bi] && a[ai + 1] === b[bi + 1] && a[ai + 2] === b[bi + 2] && a[ai + 3] === b[bi + 3] && a[ai + 4] === b[bi + 4] && a[ai + 5] === b[bi + 5];
/** A 48-bit MAC as a number, for tables. */
export const macKey = (b: Uint8Array, at = 0): number => b[at]! * 2 ** 40 + b[at + 1]! * 2 ** 32 + ((b[at + 2]! << 24) >>> 0) + (b[at + 3]! << 16) + (b[at + 4]! << 8) + b[at + 5]!;

/** "10.0.0.2". */
export const ipString = (v: number): string => `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;

/** Parses a dotted quad; undefined if it is not one. */
export function parseIpv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

/** "10.0.0.2/24" → address and prefix length. */
export function parseCidr(text: string): { address: number; prefix: number } | undefined {
  const [a, p, extra] = text.split('/');
  if (extra !== undefined || a === undefined) return undefined;
  const address = parseIpv4(a);
  const prefix = p === undefined ? 24 : /^\d{1,2}$/.test(p) ? Number(p) : NaN;
  if (address === undefined || !(prefix >= 1 && prefix <= 32)) return undefined;
  return { address, prefix };
}

export const prefixMask = (prefix: number): number => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

// --- The Internet checksum (RFC 1071) ------------------------------------------------------

/** The 16-bit ones'-complement sum of b[start..end) added to `sum` (not folded, not inverted). */
export function sum16(b: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i < end) sum += b[i]! << 8;
  return sum;
}

/** Folds a sum to 16 bits and inverts it: the checksum to write. */
export function csumFinish(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** The IPv4 pseudo-header's sum for a transport segment of `length` bytes. */
export function pseudoSum(src: number, dst: number, proto: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + length;
}

// --- Frames -------------------------------------------------------------------------------

/** Writes the Ethernet header into `f`. */
export function writeEth(f: Uint8Array, dst: Uint8Array, src: Uint8Array, type: number): void {
  f.set(dst.subarray(0, ETH_ALEN), Eth.DST);
  f.set(src.subarray(0, ETH_ALEN), Eth.SRC);
  put16(f, Eth.TYPE, type);
}

/** Writes an IPv4 header (no options) at `at` and its checksum. */
export function writeIpv4(f: Uint8Array, at: number, o: { src: number; dst: number; protocol: number; payload: number; id: number; ttl?: number; df?: boolean }): void {
  f[at + Ip4.VER_IHL] = 0x45;
  f[at + Ip4.TOS] = 0;
  put16(f, at + Ip4.TOTAL_LENGTH, Ip4.LEN + o.payload);
  put16(f, at + Ip4.ID, o.id & 0xffff);
  put16(f, at + Ip4.FLAGS_FRAG, o.df ? IP_DF : 0);
  f[at + Ip4.TTL] = o.ttl ?? IP_DEFAULT_TTL;
  f[at + Ip4.PROTOCOL] = o.protocol;
  put16(f, at + Ip4.CHECKSUM, 0);
  put32(f, at + Ip4.SRC, o.src);
  put32(f, at + Ip4.DST, o.dst);
  put16(f, at + Ip4.CHECKSUM, csumFinish(sum16(f, at, at + Ip4.LEN)));
}

/** An ARP request or reply frame (60 bytes: the minimum Ethernet frame, padded). */
export function arpFrame(op: number, sha: Mac, spa: number, tha: Mac, tpa: number, dst: Mac): Uint8Array {
  const f = new Uint8Array(ETH_ZLEN);
  writeEth(f, dst, sha, EtherType.ARP);
  const a = ETH_HLEN;
  put16(f, a + Arp.HTYPE, ARP_HTYPE_ETHERNET);
  put16(f, a + Arp.PTYPE, EtherType.IPV4);
  f[a + Arp.HLEN] = ETH_ALEN;
  f[a + Arp.PLEN] = 4;
  put16(f, a + Arp.OPER, op);
  f.set(sha, a + Arp.SHA);
  put32(f, a + Arp.SPA, spa);
  f.set(tha, a + Arp.THA);
  put32(f, a + Arp.TPA, tpa);
  return f;
}

export interface UdpOptions {
  dstMac: Mac;
  srcMac: Mac;
  src: number;
  dst: number;
  sport: number;
  dport: number;
  id: number;
  /** Leave the UDP checksum to the NIC: write the pseudo-header sum (CHECKSUM_PARTIAL) instead of the checksum. */
  offload?: boolean;
}

/** A UDP datagram in an IPv4 frame; the checksum is computed unless offloaded. */
export function udpFrame(o: UdpOptions, payload: Uint8Array): Uint8Array {
  const ulen = Udp.LEN + payload.length;
  const f = new Uint8Array(Math.max(ETH_ZLEN, ETH_HLEN + Ip4.LEN + ulen));
  writeEth(f, o.dstMac, o.srcMac, EtherType.IPV4);
  const ip = ETH_HLEN;
  writeIpv4(f, ip, { src: o.src, dst: o.dst, protocol: IpProto.UDP, payload: ulen, id: o.id, df: true });
  const u = ip + Ip4.LEN;
  put16(f, u + Udp.SPORT, o.sport);
  put16(f, u + Udp.DPORT, o.dport);
  put16(f, u + Udp.LENGTH, ulen);
  f.set(payload, u + Udp.LEN);
  const pseudo = pseudoSum(o.src, o.dst, IpProto.UDP, ulen);
  if (o.offload) {
    // What the stack leaves for CHECKSUM_PARTIAL: the folded pseudo-header sum, not inverted.
    put16(f, u + Udp.CHECKSUM, ~csumFinish(pseudo) & 0xffff);
  } else {
    const c = csumFinish(sum16(f, u, u + ulen, pseudo));
    put16(f, u + Udp.CHECKSUM, c === 0 ? 0xffff : c);
  }
  return f;
}

/** An ICMP echo request or reply carrying `data`. */
export function icmpEchoFrame(o: { dstMac: Mac; srcMac: Mac; src: number; dst: number; type: number; ident: number; seq: number; ipId: number; ttl?: number }, data: Uint8Array): Uint8Array {
  const ilen = Icmp.LEN + data.length;
  const f = new Uint8Array(Math.max(ETH_ZLEN, ETH_HLEN + Ip4.LEN + ilen));
  writeEth(f, o.dstMac, o.srcMac, EtherType.IPV4);
  const ip = ETH_HLEN;
  writeIpv4(f, ip, { src: o.src, dst: o.dst, protocol: IpProto.ICMP, payload: ilen, id: o.ipId, df: true, ...(o.ttl !== undefined ? { ttl: o.ttl } : {}) });
  const i = ip + Ip4.LEN;
  f[i + Icmp.TYPE] = o.type;
  f[i + Icmp.CODE] = 0;
  put16(f, i + Icmp.ID, o.ident);
  put16(f, i + Icmp.SEQ, o.seq);
  f.set(data, i + Icmp.LEN);
  put16(f, i + Icmp.CHECKSUM, csumFinish(sum16(f, i, i + ilen)));
  return f;
}

/** An IPv4 frame's IP header, checked: version 4, a header length that fits, a total length that fits. */
export interface Ipv4View {
  readonly ihl: number;
  readonly totalLength: number;
  readonly protocol: number;
  readonly src: number;
  readonly dst: number;
  readonly ttl: number;
  /** Where the transport header starts in the frame. */
  readonly l4: number;
  readonly fragmented: boolean;
}

export function ipv4Of(f: Uint8Array, at = ETH_HLEN): Ipv4View | undefined {
  if (f.length < at + Ip4.LEN || f[at]! >> 4 !== 4) return undefined;
  const ihl = (f[at]! & 0xf) * 4;
  const totalLength = be16(f, at + Ip4.TOTAL_LENGTH);
  if (ihl < Ip4.LEN || totalLength < ihl || at + totalLength > f.length) return undefined;
  const frag = be16(f, at + Ip4.FLAGS_FRAG);
  return { ihl, totalLength, protocol: f[at + Ip4.PROTOCOL]!, src: be32(f, at + Ip4.SRC), dst: be32(f, at + Ip4.DST), ttl: f[at + Ip4.TTL]!, l4: at + ihl, fragmented: (frag & 0x3fff) !== 0 };
}

/** True if the IPv4 header checksum of the frame holds. */
export const ipv4ChecksumOk = (f: Uint8Array, ip: Ipv4View, at = ETH_HLEN): boolean => csumFinish(sum16(f, at, at + ip.ihl)) === 0;

/** True if the TCP or UDP checksum of the segment holds (a UDP checksum of 0 means "none"). */
export function l4ChecksumOk(f: Uint8Array, ip: Ipv4View): boolean {
  const len = ip.totalLength - ip.ihl;
  if (ip.protocol === IpProto.UDP && len >= Udp.LEN && be16(f, ip.l4 + Udp.CHECKSUM) === 0) return true;
  return csumFinish(sum16(f, ip.l4, ip.l4 + len, pseudoSum(ip.src, ip.dst, ip.protocol, len))) === 0;
}

/**
 * Completes a CHECKSUM_PARTIAL TCP or UDP checksum: the field holds the pseudo-header sum, and
 * the sum over the segment with it gives the checksum (what a NIC that offloads checksums does).
 */
export function completeL4Checksum(f: Uint8Array, ip: Ipv4View): boolean {
  const len = ip.totalLength - ip.ihl;
  const at = ip.protocol === IpProto.TCP ? Tcp.CHECKSUM : ip.protocol === IpProto.UDP ? Udp.CHECKSUM : -1;
  if (at < 0 || len < at + 2) return false;
  const c = csumFinish(sum16(f, ip.l4, ip.l4 + len));
  put16(f, ip.l4 + at, ip.protocol === IpProto.UDP && c === 0 ? 0xffff : c);
  return true;
}

/** The 4-tuple RSS hashes for TCP, or the 2-tuple for other IPv4 (NDIS_HASH_TCP_IPV4, NDIS_HASH_IPV4). */
export interface FlowTuple {
  readonly src: number;
  readonly dst: number;
  readonly sport?: number;
  readonly dport?: number;
}

/** The flow an IPv4 frame belongs to; ports only for unfragmented TCP (Linux's hash types cover TCP ports, not UDP's). */
export function flowOf(f: Uint8Array): FlowTuple | undefined {
  if (f.length < ETH_HLEN || be16(f, Eth.TYPE) !== EtherType.IPV4) return undefined;
  const ip = ipv4Of(f);
  if (!ip) return undefined;
  if (ip.protocol === IpProto.TCP && !ip.fragmented && ip.totalLength - ip.ihl >= Tcp.LEN) return { src: ip.src, dst: ip.dst, sport: be16(f, ip.l4 + Tcp.SPORT), dport: be16(f, ip.l4 + Tcp.DPORT) };
  return { src: ip.src, dst: ip.dst };
}
