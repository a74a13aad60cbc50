// The Toeplitz hash RSS uses to pick a receive queue (Microsoft's "RSS hashing functions"): each
// set bit of the input, most significant first, XORs in the 32 key bits starting at that bit's
// position. The input is the source and destination IPv4 addresses, then for TCP the source and
// destination ports, all in network byte order.
import type { FlowTuple } from './ether.js';

/** Toeplitz over `input` with `key` (at least input.length + 4 bytes). */
export function toeplitz(key: Uint8Array, input: Uint8Array): number {
  let result = 0;
  // The 32-bit window of the key at the current bit, and the key bit that comes in next.
  let window = ((key[0]! << 24) | (key[1]! << 16) | (key[2]! << 8) | key[3]!) >>> 0;
  for (let i = 0; i < input.length; i++) {
    const next = key[i + 4] ?? 0;
    for (let bit = 7; bit >= 0; bit--) {
      if ((input[i]! >> bit) & 1) result = (result ^ window) >>> 0;
      window = ((window << 1) | ((next >> bit) & 1)) >>> 0;
    }
  }
  return result;
}

/** The RSS hash of a flow: 4-tuple when it has ports (NDIS_HASH_TCP_IPV4), else 2-tuple (NDIS_HASH_IPV4). */
export function rssHash(key: Uint8Array, flow: FlowTuple): number {
  const withPorts = flow.sport !== undefined && flow.dport !== undefined;
  const input = new Uint8Array(withPorts ? 12 : 8);
  const dv = new DataView(input.buffer);
  dv.setUint32(0, flow.src);
  dv.setUint32(4, flow.dst);
  if (withPorts) {
    dv.setUint16(8, flow.sport!);
    dv.setUint16(10, flow.dport!);
  }
  return toeplitz(key, input);
}
