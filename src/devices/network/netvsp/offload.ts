// What the host does for the guest's transmit offloads before a frame leaves: completes the
// IPv4 header and TCP/UDP checksums the checksum PPI asks for, and cuts a large-send (LSO v2)
// TCP segment into MSS-sized frames with their own headers and checksums, as a NIC (or the
// vSwitch) would. Frames it cannot make sense of are refused with a reason, never half-built.
import { be16, be32, csumFinish, ETH_HLEN, Eth, EtherType, Ip4, IpProto, ipv4Of, put16, put32, sum16, pseudoSum, Tcp, completeL4Checksum, type Ipv4View } from '../ether.js';
import { ppiU32, type Ppi } from '../rndis.js';
import { CsumInfoTransmit, LsoV2Transmit, NDIS_TCP_LARGE_SEND_OFFLOAD_IPV4 } from '../wire/ndis.js';
import { PpiType } from '../wire/rndis.js';

/** The LSO v2 limits the host advertises (OpenVMM rndisprot.rs, "the same as vmswitch"). */
export const LSO_MAX_OFFLOAD_SIZE = 0xf53c;
export const LSO_MIN_SEGMENT_COUNT = 2;

const TX = CsumInfoTransmit.fields.transmit;
const LSO = LsoV2Transmit.fields.lso_v2_transmit;

export type OffloadResult = { frames: Uint8Array[]; checksummed: boolean; segmented: boolean } | { error: string };

const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

/**
 * Applies the transmit PPIs of one frame. `frame` is the guest's (a view of its send buffer):
 * it is copied before anything is written. Without offload PPIs the frame goes out as it is.
 */
export function applyTxOffloads(frame: Uint8Array, ppis: readonly Ppi[], mtuFrame: number): OffloadResult {
  let csum: number | undefined;
  let lso: number | undefined;
  for (const p of ppis) {
    if (p.internal) continue;
    if (p.type === PpiType.TCPIP_CHKSUM) csum = ppiU32(p);
    else if (p.type === PpiType.TCP_LARGESEND) lso = ppiU32(p);
  }
  if (lso !== undefined) return segment(frame, lso, mtuFrame);
  if (csum === undefined) return { frames: [frame], checksummed: false, segmented: false };
  const t = TX.decode(BigInt(csum));
  if (!t.is_ipv4) return { frames: [frame], checksummed: false, segmented: false };
  if (frame.length < ETH_HLEN || be16(frame, Eth.TYPE) !== EtherType.IPV4) return { error: 'checksum PPI on a frame that is not IPv4' };
  const copy = frame.slice();
  const ip = ipv4Of(copy);
  if (!ip) return { error: 'checksum PPI on a malformed IPv4 header' };
  if (t.ip_header_checksum) ipHeaderChecksum(copy, ip);
  if ((t.tcp_checksum && ip.protocol === IpProto.TCP) || (t.udp_checksum && ip.protocol === IpProto.UDP)) {
    if (!completeL4Checksum(copy, ip)) return { error: 'checksum PPI on a truncated transport header' };
  }
  return { frames: [copy], checksummed: true, segmented: false };
}

function ipHeaderChecksum(f: Uint8Array, ip: Ipv4View): void {
  put16(f, ETH_HLEN + Ip4.CHECKSUM, 0);
  put16(f, ETH_HLEN + Ip4.CHECKSUM, csumFinish(sum16(f, ETH_HLEN, ETH_HLEN + ip.ihl)));
}

/**
 * LSO v2 for IPv4/TCP: the guest sent one big segment (IP total length 0 as Linux writes it,
 * the TCP checksum seeded with the pseudo-header sum); the host sends MSS-sized segments.
 */
function segment(frame: Uint8Array, word: number, mtuFrame: number): OffloadResult {
  const l = LSO.decode(BigInt(word));
  if (l.ip_version !== NDIS_TCP_LARGE_SEND_OFFLOAD_IPV4) return { error: 'LSO over IPv6 is not modelled' };
  if (frame.length < ETH_HLEN + Ip4.LEN || be16(frame, Eth.TYPE) !== EtherType.IPV4 || frame[ETH_HLEN]! >> 4 !== 4) return { error: 'LSO PPI on a frame that is not IPv4' };
  const ihl = (frame[ETH_HLEN]! & 0xf) * 4;
  const tcp = ETH_HLEN + ihl;
  if (ihl < Ip4.LEN || frame[ETH_HLEN + Ip4.PROTOCOL] !== IpProto.TCP || l.tcp_header_offset !== tcp || frame.length < tcp + Tcp.LEN) return { error: 'LSO PPI whose TCP header offset does not match the frame' };
  const thl = (frame[tcp + Tcp.DOFF]! >> 4) * 4;
  const hdr = tcp + thl;
  if (thl < Tcp.LEN || frame.length < hdr) return { error: 'LSO PPI on a truncated TCP header' };
  const mss = l.mss;
  if (mss === 0 || hdr + mss > mtuFrame) return { error: `LSO MSS ${mss} does not fit the ${mtuFrame}-byte frame limit` };
  const payload = frame.length - hdr;
  if (payload > LSO_MAX_OFFLOAD_SIZE) return { error: `LSO payload of ${payload} bytes exceeds ${LSO_MAX_OFFLOAD_SIZE}` };
  const src = be32(frame, ETH_HLEN + Ip4.SRC);
  const dst = be32(frame, ETH_HLEN + Ip4.DST);
  const id0 = be16(frame, ETH_HLEN + Ip4.ID);
  const seq0 = be32(frame, tcp + Tcp.SEQ);
  const flags = frame[tcp + Tcp.FLAGS]!;
  const frames: Uint8Array[] = [];
  const count = Math.max(1, Math.ceil(payload / mss));
  for (let i = 0; i < count; i++) {
    const n = Math.min(mss, payload - i * mss);
    const f = new Uint8Array(hdr + n);
    f.set(frame.subarray(0, hdr));
    f.set(frame.subarray(hdr + i * mss, hdr + i * mss + n), hdr);
    put16(f, ETH_HLEN + Ip4.TOTAL_LENGTH, ihl + thl + n);
    put16(f, ETH_HLEN + Ip4.ID, (id0 + i) & 0xffff);
    put16(f, ETH_HLEN + Ip4.CHECKSUM, 0);
    put16(f, ETH_HLEN + Ip4.CHECKSUM, csumFinish(sum16(f, ETH_HLEN, ETH_HLEN + ihl)));
    put32(f, tcp + Tcp.SEQ, (seq0 + i * mss) >>> 0);
    // FIN and PSH only on the last segment, CWR only on the first (RFC 3168 and common NIC behaviour).
    let fl = flags;
    if (i !== count - 1) fl &= ~(TCP_FIN | TCP_PSH);
    if (i !== 0) fl &= ~TCP_CWR;
    f[tcp + Tcp.FLAGS] = fl;
    put16(f, tcp + Tcp.CHECKSUM, 0);
    put16(f, tcp + Tcp.CHECKSUM, csumFinish(sum16(f, tcp, tcp + thl + n, pseudoSum(src, dst, IpProto.TCP, thl + n))));
    frames.push(f);
  }
  return { frames, checksummed: true, segmented: true };
}
