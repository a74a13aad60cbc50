// pcapng, the capture format Wireshark and tshark read (IETF draft-ietf-opsawg-pcapng): a
// Section Header Block, an Interface Description Block per capture point (Ethernet, nanosecond
// timestamps), then an Enhanced Packet Block per frame with its direction. Only the encoding
// lives here; where the bytes go (a file) is the caller's (src/vm).
import type { FrameTap } from './backend.js';

const SHB = 0x0a0d0d0a;
const IDB = 0x00000001;
const EPB = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
/** LINKTYPE_ETHERNET. */
const LINKTYPE_ETHERNET = 1;
/** Option codes: opt_comment, shb_userappl, if_name, if_tsresol, epb_flags. */
const OPT_COMMENT = 1;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_TSRESOL = 9;
const EPB_FLAGS = 2;
/** epb_flags bits 0-1: 01 inbound, 10 outbound. */
const INBOUND = 1;
const OUTBOUND = 2;
/** The longest frame kept whole (a 64 KiB LSO frame fits). */
export const PCAPNG_SNAPLEN = 262144;

const pad4 = (n: number) => (n + 3) & ~3;

function option(code: number, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + pad4(value.length));
  const dv = new DataView(out.buffer);
  dv.setUint16(0, code, true);
  dv.setUint16(2, value.length, true);
  out.set(value, 4);
  return out;
}

function block(type: number, body: Uint8Array[], options: Uint8Array[]): Uint8Array {
  const opts = options.length ? [...options, new Uint8Array(4) /* opt_endofopt */] : [];
  const len = 12 + body.reduce((n, b) => n + b.length, 0) + opts.reduce((n, b) => n + b.length, 0);
  const out = new Uint8Array(len);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, type, true);
  dv.setUint32(4, len, true);
  let at = 8;
  for (const b of [...body, ...opts]) {
    out.set(b, at);
    at += b.length;
  }
  dv.setUint32(len - 4, len, true);
  return out;
}

const utf8 = (s: string) => new TextEncoder().encode(s);

/** Writes a pcapng stream through `sink`, one block at a time. */
export class PcapngWriter {
  private readonly interfaces = new Map<string, number>();
  /** Frames written. */
  frames = 0;

  constructor(
    private readonly sink: (chunk: Uint8Array) => void,
    /** Wall-clock ns (UTC since 1970) at virtual time 0: timestamps are this plus the frame's virtual time. */
    private readonly epochNs: bigint,
    comment = 'hvkit capture',
  ) {
    const body = new Uint8Array(16);
    const dv = new DataView(body.buffer);
    dv.setUint32(0, BYTE_ORDER_MAGIC, true);
    dv.setUint16(4, 1, true); // major
    dv.setUint16(6, 0, true); // minor
    dv.setBigInt64(8, -1n, true); // section length not known
    sink(block(SHB, [body], [option(SHB_USERAPPL, utf8('hvkit')), option(OPT_COMMENT, utf8(comment))]));
  }

  /** The interface id for a capture point, described the first time it is named. */
  interfaceId(name: string): number {
    let id = this.interfaces.get(name);
    if (id !== undefined) return id;
    id = this.interfaces.size;
    this.interfaces.set(name, id);
    const body = new Uint8Array(8);
    const dv = new DataView(body.buffer);
    dv.setUint16(0, LINKTYPE_ETHERNET, true);
    dv.setUint32(4, PCAPNG_SNAPLEN, true);
    this.sink(block(IDB, [body], [option(IF_NAME, utf8(name)), option(IF_TSRESOL, new Uint8Array([9]))]));
    return id;
  }

  /** One frame seen at `ns` of virtual time on interface `name`, going `dir` (relative to that interface). */
  packet(name: string, ns: number, frame: Uint8Array, dir?: 'in' | 'out'): void {
    const id = this.interfaceId(name);
    const ts = this.epochNs + BigInt(Math.floor(ns));
    const captured = Math.min(frame.length, PCAPNG_SNAPLEN);
    const head = new Uint8Array(20);
    const dv = new DataView(head.buffer);
    dv.setUint32(0, id, true);
    dv.setUint32(4, Number(ts >> 32n), true);
    dv.setUint32(8, Number(ts & 0xffffffffn), true);
    dv.setUint32(12, captured, true);
    dv.setUint32(16, frame.length, true);
    const data = new Uint8Array(pad4(captured));
    data.set(frame.subarray(0, captured));
    const flags = new Uint8Array(4);
    if (dir) new DataView(flags.buffer).setUint32(0, dir === 'in' ? INBOUND : OUTBOUND, true);
    this.sink(block(EPB, [head, data], dir ? [option(EPB_FLAGS, flags)] : []));
    this.frames++;
  }

  /** A tap that writes every frame under one interface name (a switch's, or a NIC's). */
  tap(name: string): FrameTap {
    return { frame: (frame, ns, from) => this.packet(name, ns, frame, from === 'in' ? 'in' : from === 'out' ? 'out' : undefined) };
  }
}
