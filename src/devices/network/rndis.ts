// Building and reading RNDIS messages, for both ends. Readers apply the checks of their side:
// the guest those of rndis_filter.c (rndis_filter_receive, rndis_filter_receive_data,
// rndis_get_ppi), the host those of OpenVMM's netvsp (handle_rndis_packet_message); a message
// that fails them is refused with an RndisError naming the field, never read out of bounds.
import { WireError, type FieldSpec, type Struct, type StructValue } from '../../tlfs/struct.js';
import { PpiType, RNDIS_HEADER_SIZE, RndisMessage, RndisMsg, RndisPacket, RndisPerPacketInfo } from './wire/rndis.js';
import { setInto } from '../../memory/typed-arrays.js';
import { WordView } from '../../memory/word-copy.js';

export class RndisError extends WireError {
  constructor(field: string, reason: string) {
    super('rndis_message', field, reason);
  }
}

const P = RndisPacket.offsets;
const PPI = RndisPerPacketInfo.offsets;
const u32At = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
const setU32 = (b: Uint8Array, at: number, v: number): void => {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
};

/** Word loads read the little-endian fields as they are only on a little-endian machine. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * The little-endian u32 fields of one array at a time: a word-aligned field in one load, any
 * other byte by byte. A field of shared guest memory costs a load per byte otherwise, so each
 * data path keeps a reader for the array it reads (guest memory, its private copy), whose words
 * are then made once.
 */
export class FieldReader {
  private readonly view = new WordView();
  private bytes: Uint8Array = new Uint8Array(0);

  /** This reader, reading `bytes`. */
  of(bytes: Uint8Array): this {
    if (bytes !== this.bytes) {
      this.bytes = bytes;
      this.view.of(bytes);
    }
    return this;
  }

  u32(at: number): number {
    const a = this.view.base + at;
    if (LITTLE_ENDIAN && (a & 3) === 0 && at >= 0 && at + 4 <= this.bytes.length) return this.view.words[a >>> 2]!;
    return u32At(this.bytes, at);
  }
}

/** The reader of the parse functions when the caller has none of its own. */
const ANY = new FieldReader();

export interface RndisHeader {
  readonly type: number;
  /** msg_len: the whole message, header included; checked against what holds it. */
  readonly length: number;
}

/**
 * The header of the message at `buf[at..end)` (those bytes hold it; the whole of `buf` by
 * default): msg_len must be at least the header and at most what holds it (rndis_filter_receive).
 */
export function rndisHeader(buf: Uint8Array, at = 0, end = buf.length): RndisHeader {
  return { type: u32At(buf, at + RndisMessage.offsets.ndis_msg_type), length: rndisMessageLength(buf, at, end) };
}

/** The checked msg_len of the message at `buf[at..end)`, for the data paths that need no header object. */
export function rndisMessageLength(buf: Uint8Array, at: number, end: number, r: FieldReader = ANY): number {
  const room = end - at;
  if (room < RNDIS_HEADER_SIZE) throw new RndisError('', `needs ${RNDIS_HEADER_SIZE} bytes, have ${room}`);
  const length = r.of(buf).u32(at + RndisMessage.offsets.msg_len);
  if (length < RNDIS_HEADER_SIZE || length > room) throw new RndisError('msg_len', `${length} is not within [${RNDIS_HEADER_SIZE}, ${room}]`);
  return length;
}

/** The ndis_msg_type of the message at `buf[at..]` (its header checked already). */
export const rndisMessageType = (buf: Uint8Array, at: number, r: FieldReader = ANY): number => r.of(buf).u32(at + RndisMessage.offsets.ndis_msg_type);

/** A body after the header, checked to fit the message's `length` (each side's `msg_len - RNDIS_HEADER_SIZE < sizeof` checks). */
export function rndisBody<F extends FieldSpec>(S: Struct<F>, buf: Uint8Array, length: number): StructValue<F> {
  if (length - RNDIS_HEADER_SIZE < S.size) throw new RndisError(`msg.${S.name}`, `needs ${RNDIS_HEADER_SIZE + S.size} bytes, msg_len is ${length}`);
  return S.decode(buf, RNDIS_HEADER_SIZE);
}

/**
 * The information buffer a completion or request points at (info_buf_offset counts from the
 * body, after the header): it must lie inside the message and start after the fixed part.
 */
export function rndisInfo(buf: Uint8Array, length: number, bodySize: number, offset: number, len: number, field: string): Uint8Array {
  if (offset < bodySize) throw new RndisError(`${field}_offset`, `${offset} points into the fixed part (${bodySize} bytes)`);
  if (length - RNDIS_HEADER_SIZE < offset || length - RNDIS_HEADER_SIZE - offset < len) throw new RndisError(`${field}len`, `${len} bytes at ${offset} leave the ${length}-byte message`);
  return buf.subarray(RNDIS_HEADER_SIZE + offset, RNDIS_HEADER_SIZE + offset + len);
}

// --- Per-packet info ----------------------------------------------------------------------

export interface Ppi {
  readonly type: number;
  readonly internal: boolean;
  /** The element's value: from ppi_offset to the end of the element (a view). */
  readonly value: Uint8Array;
}

/** The little-endian u32 a PPI carries (every PPI netvsc uses is one u32). */
export function ppiU32(p: Ppi): number {
  return p.value.length >= 4 ? u32At(p.value, 0) : 0;
}

export interface ParsedRndisPacket {
  /** Where the frame starts in the buffer, and its length. */
  readonly dataOffset: number;
  readonly dataLength: number;
  readonly ppis: readonly Ppi[];
  /** Set when the per-packet info was not valid and was ignored (the guest's view; the host refuses such packets). */
  readonly ppiError?: RndisError;
}

/**
 * Where a reader reports what it found in a data packet: each PPI element (its value is
 * buf[valueAt, valueEnd)) as the walk meets it, then the frame's place. The data paths fill one
 * reused object; the parse functions below collect a list. The checks are the same code.
 */
export interface RndisPacketSink {
  ppi(type: number, internal: boolean, buf: Uint8Array, valueAt: number, valueEnd: number): void;
  dataOffset: number;
  dataLength: number;
  /** The guest's reader: why the PPIs were ignored, if they were. */
  ppiError: RndisError | undefined;
}

/**
 * Walks `len` bytes of PPI elements at `at`; each element needs a size of at least its header
 * that fits what is left, and a value offset inside it. Linux's rndis_get_ppi loops forever on
 * a size of zero or too large (it neither advances nor stops); the model stops instead. Returns
 * the error that stopped it (the elements before it were reported).
 */
function walkPpis(buf: Uint8Array, at: number, len: number, sink: RndisPacketSink, r: FieldReader): RndisError | undefined {
  let i = 0;
  while (len > 0) {
    if (len < RndisPerPacketInfo.size) return new RndisError(`ppi[${i}]`, `${len} bytes left, less than a PPI header`);
    const size = r.u32(at + PPI.size);
    const word = r.u32(at + PPI._type);
    const offset = r.u32(at + PPI.ppi_offset);
    if (size < RndisPerPacketInfo.size || size > len) return new RndisError(`ppi[${i}].size`, `${size} is not within [${RndisPerPacketInfo.size}, ${len}]`);
    if (offset >= size || offset < RndisPerPacketInfo.size) return new RndisError(`ppi[${i}].ppi_offset`, `${offset} is not within [${RndisPerPacketInfo.size}, ${size})`);
    sink.ppi(word & 0x7fffffff, word >>> 31 === 1, buf, at + offset, at + size);
    at += size;
    len -= size;
    i++;
  }
  return undefined;
}

/**
 * The guest's reading of an RNDIS_MSG_PACKET in `buf[0..len)` (a transfer-page range of `len`
 * bytes; the header already checked): the data offset must lie inside the range and the data
 * fit after it (rndis_filter_receive_data); PPIs are read if their offset and length fit the
 * packet (rndis_get_ppi), and ignored otherwise (sink.ppiError says why). Throws RndisError
 * when the packet is refused.
 */
export function readRndisPacketGuest(buf: Uint8Array, len: number, sink: RndisPacketSink, r: FieldReader = ANY): void {
  r.of(buf);
  if (len < RNDIS_HEADER_SIZE + RndisPacket.size) throw new RndisError('msg.pkt', `data_buflen ${len} is too small`);
  const b = RNDIS_HEADER_SIZE;
  const dataOffsetField = r.u32(b + P.data_offset);
  const dataLen = r.u32(b + P.data_len);
  if (dataOffsetField >= len - RNDIS_HEADER_SIZE) throw new RndisError('msg.pkt.data_offset', `${dataOffsetField} is not inside the ${len}-byte buffer`);
  const dataOffset = RNDIS_HEADER_SIZE + dataOffsetField;
  if (len - dataOffset < dataLen) throw new RndisError('msg.pkt.data_len', `${dataLen} bytes do not fit the ${len - dataOffset} after the data offset`);
  sink.dataOffset = dataOffset;
  sink.dataLength = dataLen;
  sink.ppiError = undefined;
  const rpktLen = len - RNDIS_HEADER_SIZE;
  const ppiOffset = r.u32(b + P.per_pkt_info_offset);
  const ppiLen = r.u32(b + P.per_pkt_info_len);
  if (ppiOffset === 0) return;
  if (ppiOffset < RndisPacket.size || ppiOffset > rpktLen) return void (sink.ppiError = new RndisError('msg.pkt.per_pkt_info_offset', `${ppiOffset} is invalid`));
  if (ppiLen < RndisPerPacketInfo.size || ppiLen > rpktLen - ppiOffset) return void (sink.ppiError = new RndisError('msg.pkt.per_pkt_info_len', `${ppiLen} is invalid`));
  sink.ppiError = walkPpis(buf, b + ppiOffset, ppiLen, sink, r);
}

/**
 * The host's reading of one RNDIS_MSG_PACKET of `length` bytes at `buf[at..]` (OpenVMM
 * handle_rndis_packet_message): no out-of-band data or VC handle, data of at least one byte
 * inside the message, and PPIs that lie inside it; anything else refuses the packet (RndisError).
 * The frame's offset is from `at`.
 */
export function readRndisPacketHost(buf: Uint8Array, at: number, length: number, sink: RndisPacketSink, r: FieldReader = ANY): void {
  r.of(buf);
  if (length - RNDIS_HEADER_SIZE < RndisPacket.size) throw new RndisError('msg.pkt', `msg_len ${length} is too small for the packet header`);
  const b = at + RNDIS_HEADER_SIZE;
  if (r.u32(b + P.num_oob_data_elements) !== 0 || r.u32(b + P.oob_data_len) !== 0 || r.u32(b + P.oob_data_offset) !== 0) throw new RndisError('msg.pkt.oob_data_offset', 'out-of-band data is not supported');
  if (r.u32(b + P.vc_handle) !== 0) throw new RndisError('msg.pkt.vc_handle', 'must be zero');
  const body = length - RNDIS_HEADER_SIZE;
  const dataOffsetField = r.u32(b + P.data_offset);
  const dataLen = r.u32(b + P.data_len);
  if (dataOffsetField > body || body - dataOffsetField < dataLen || dataLen === 0) throw new RndisError('msg.pkt.data_len', `${dataLen} bytes at offset ${dataOffsetField} do not fit the ${body}-byte packet`);
  const ppiOffset = r.u32(b + P.per_pkt_info_offset);
  const ppiLen = r.u32(b + P.per_pkt_info_len);
  sink.ppiError = undefined;
  if (ppiLen !== 0) {
    if (ppiOffset > body || body - ppiOffset < ppiLen) throw new RndisError('msg.pkt.per_pkt_info_offset', `${ppiLen} bytes at ${ppiOffset} leave the ${body}-byte packet`);
    const error = walkPpis(buf, b + ppiOffset, ppiLen, sink, r);
    if (error) throw error;
  }
  sink.dataOffset = RNDIS_HEADER_SIZE + dataOffsetField;
  sink.dataLength = dataLen;
}

/** What readPacketWords found: the frame's place (from the message's start) and the u32 PPIs netvsc acts on. */
export interface PacketWords {
  dataOffset: number;
  dataLength: number;
  csum: number | undefined;
  hash: number | undefined;
}

/** Each header field's word, from the declared layouts. */
const W = {
  type: RndisMessage.offsets.ndis_msg_type >>> 2,
  len: RndisMessage.offsets.msg_len >>> 2,
  dataOffset: (RNDIS_HEADER_SIZE + P.data_offset) >>> 2,
  dataLen: (RNDIS_HEADER_SIZE + P.data_len) >>> 2,
  oobOffset: (RNDIS_HEADER_SIZE + P.oob_data_offset) >>> 2,
  oobLen: (RNDIS_HEADER_SIZE + P.oob_data_len) >>> 2,
  oobCount: (RNDIS_HEADER_SIZE + P.num_oob_data_elements) >>> 2,
  ppiOffset: (RNDIS_HEADER_SIZE + P.per_pkt_info_offset) >>> 2,
  ppiLen: (RNDIS_HEADER_SIZE + P.per_pkt_info_len) >>> 2,
  vc: (RNDIS_HEADER_SIZE + P.vc_handle) >>> 2,
  reserved: (RNDIS_HEADER_SIZE + P.reserved) >>> 2,
  ppiSize: PPI.size >>> 2,
  ppiType: PPI._type >>> 2,
  ppiValueOffset: PPI.ppi_offset >>> 2,
  ppiValue: RndisPerPacketInfo.size >>> 2,
} as const;
/** A PPI element whose value is one u32: its size, and where the value starts. */
const U32_PPI_SIZE = RndisPerPacketInfo.size + 4;
const PACKET_FIXED = RNDIS_HEADER_SIZE + RndisPacket.size;
const RNDIS_MSG_PACKET = RndisMsg.PACKET;
/** The type words of the two PPIs it takes: not internal (bit 31 clear), so the word is the type. */
const PPI_CHECKSUM = PpiType.TCPIP_CHKSUM;
const PPI_HASH = PpiType.NBL_HASH_VALUE;

/**
 * The guest's reading of the usual received message in one pass over the words it lies in (guest
 * memory): the `len`-byte message at word `w` of `words`, each field read once, so that what was
 * checked is what is used although the host may write the buffer meanwhile (the general path
 * copies the message first for that). It takes only a message that rndisMessageLength and
 * readRndisPacketGuest accept with nothing to report: an RNDIS_MSG_PACKET with a frame of at
 * least one byte, whose PPIs, if any, are word-aligned TCPIP_CHKSUM or NBL_HASH_VALUE elements
 * of one u32 each (what a host attaches). It fills `out` as they would fill their sink and
 * returns true; anything else returns false, and the caller reads the message the general way.
 */
export function readPacketWords(words: Uint32Array<ArrayBufferLike>, w: number, len: number, out: PacketWords): boolean {
  if (!LITTLE_ENDIAN || len < PACKET_FIXED || w + (PACKET_FIXED >>> 2) > words.length) return false;
  const msgLen = words[w + W.len]!;
  if (words[w + W.type] !== RNDIS_MSG_PACKET || msgLen < RNDIS_HEADER_SIZE || msgLen > len) return false;
  const dataOffsetField = words[w + W.dataOffset]!;
  const dataLen = words[w + W.dataLen]!;
  if (dataOffsetField >= len - RNDIS_HEADER_SIZE || dataLen === 0 || len - RNDIS_HEADER_SIZE - dataOffsetField < dataLen) return false;
  const ppiOffset = words[w + W.ppiOffset]!;
  let ppiLen = words[w + W.ppiLen]!;
  let csum: number | undefined;
  let hash: number | undefined;
  if (ppiOffset !== 0) {
    const rpktLen = len - RNDIS_HEADER_SIZE;
    if (ppiOffset < RndisPacket.size || ppiOffset > rpktLen || ppiLen < RndisPerPacketInfo.size || ppiLen > rpktLen - ppiOffset || (ppiOffset & 3) !== 0) return false;
    for (let e = w + ((RNDIS_HEADER_SIZE + ppiOffset) >>> 2); ppiLen > 0; e += U32_PPI_SIZE >>> 2, ppiLen -= U32_PPI_SIZE) {
      if (ppiLen < U32_PPI_SIZE || words[e + W.ppiSize] !== U32_PPI_SIZE || words[e + W.ppiValueOffset] !== RndisPerPacketInfo.size) return false;
      const type = words[e + W.ppiType];
      if (type === PPI_CHECKSUM) csum = words[e + W.ppiValue];
      else if (type === PPI_HASH) hash = words[e + W.ppiValue];
      else return false;
    }
  }
  out.dataOffset = RNDIS_HEADER_SIZE + dataOffsetField;
  out.dataLength = dataLen;
  out.csum = csum;
  out.hash = hash;
  return true;
}

/** What readPlainPacketWords found: the message's length, and its frame's place from the message's start. */
export interface PlainPacketWords {
  msgLength: number;
  dataOffset: number;
  dataLength: number;
}

/**
 * The host's reading of the usual message a guest sends, in one pass over the words it lies in
 * (guest memory, in the send section), each field read once: the message at word `w`, `room`
 * bytes before the end of what holds it. It takes only what rndisMessageLength and
 * readRndisPacketHost accept: an RNDIS_MSG_PACKET with no out-of-band data and no VC handle and a
 * frame of at least one byte inside it; and of those only a packet without PPIs (no offload asked
 * for). It fills `out` and returns true; anything else returns false, and the caller reads the
 * message the general way.
 */
export function readPlainPacketWords(words: Uint32Array<ArrayBufferLike>, w: number, room: number, out: PlainPacketWords): boolean {
  if (!LITTLE_ENDIAN || room < PACKET_FIXED || w + (PACKET_FIXED >>> 2) > words.length) return false;
  const length = words[w + W.len]!;
  if (words[w + W.type] !== RNDIS_MSG_PACKET || length < PACKET_FIXED || length > room) return false;
  if (words[w + W.oobCount] !== 0 || words[w + W.oobLen] !== 0 || words[w + W.oobOffset] !== 0 || words[w + W.vc] !== 0 || words[w + W.ppiLen] !== 0) return false;
  const body = length - RNDIS_HEADER_SIZE;
  const dataOffsetField = words[w + W.dataOffset]!;
  const dataLen = words[w + W.dataLen]!;
  if (dataOffsetField > body || body - dataOffsetField < dataLen || dataLen === 0) return false;
  out.msgLength = length;
  out.dataOffset = RNDIS_HEADER_SIZE + dataOffsetField;
  out.dataLength = dataLen;
  return true;
}

/** A sink that keeps every PPI as a Ppi (a view of its value). `clear` makes it ready for the next packet. */
export class PpiList implements RndisPacketSink {
  readonly ppis: Ppi[] = [];
  dataOffset = 0;
  dataLength = 0;
  ppiError: RndisError | undefined = undefined;
  ppi(type: number, internal: boolean, buf: Uint8Array, valueAt: number, valueEnd: number): void {
    this.ppis.push({ type, internal, value: buf.subarray(valueAt, valueEnd) });
  }
  clear(): this {
    if (this.ppis.length) this.ppis.length = 0;
    return this;
  }
}

/** The guest's reading of an RNDIS_MSG_PACKET filling all of `buf` (see readRndisPacketGuest), as an object. */
export function parseRndisPacketGuest(buf: Uint8Array): ParsedRndisPacket {
  const s = new PpiList();
  readRndisPacketGuest(buf, buf.length, s);
  return s.ppiError ? { dataOffset: s.dataOffset, dataLength: s.dataLength, ppis: s.ppis, ppiError: s.ppiError } : { dataOffset: s.dataOffset, dataLength: s.dataLength, ppis: s.ppis };
}

/** The host's reading of one RNDIS_MSG_PACKET of `length` bytes at `buf[0..]` (see readRndisPacketHost), as an object. */
export function parseRndisPacketHost(buf: Uint8Array, length: number): ParsedRndisPacket {
  const s = new PpiList();
  readRndisPacketHost(buf, 0, length, s);
  return { dataOffset: s.dataOffset, dataLength: s.dataLength, ppis: s.ppis };
}

// --- Building -----------------------------------------------------------------------------

export interface PpiValue {
  readonly type: number;
  readonly internal?: boolean;
  readonly value: number;
}

/** Bytes the PPIs of `ppis` take: a header and one u32 each (NDIS_*_PPI_SIZE). */
export const ppiBytes = (count: number): number => count * (RndisPerPacketInfo.size + 4);

/** PPIs a packet header is built for without allocating (netvsc and netvsp send at most two). */
const MAX_KEPT_PPIS = 4;
const PACKET_HEADER = RNDIS_HEADER_SIZE + RndisPacket.size;
/**
 * Where headers are built: plain (unshared) memory, then copied into the section in one move.
 * Stores byte by byte into shared guest memory cost several times more than one copy. Fields
 * never written stay zero; those written are rewritten for every header.
 */
const HEADER = new Uint8Array(PACKET_HEADER + ppiBytes(MAX_KEPT_PPIS));
const HEADER_VIEWS = Array.from({ length: MAX_KEPT_PPIS + 1 }, (_, n) => HEADER.subarray(0, PACKET_HEADER + ppiBytes(n)));

/**
 * The header of an RNDIS_MSG_PACKET for a `frameLength`-byte frame, with `ppis` after the packet
 * header and the frame to follow them (netvsc_xmit and init_ppi_data). msg_len covers the frame.
 * The bytes are valid until the next call.
 */
export function rndisPacketHeader(frameLength: number, ppis: readonly PpiValue[]): Uint8Array {
  const ppiLen = ppiBytes(ppis.length);
  const out = ppis.length <= MAX_KEPT_PPIS ? HEADER_VIEWS[ppis.length]! : new Uint8Array(PACKET_HEADER + ppiLen);
  setU32(out, RndisMessage.offsets.ndis_msg_type, 1 /* RNDIS_MSG_PACKET */);
  setU32(out, RndisMessage.offsets.msg_len, out.length + frameLength);
  const b = RNDIS_HEADER_SIZE;
  setU32(out, b + P.data_offset, RndisPacket.size + ppiLen);
  setU32(out, b + P.data_len, frameLength);
  setU32(out, b + P.per_pkt_info_offset, RndisPacket.size);
  setU32(out, b + P.per_pkt_info_len, ppiLen);
  let p = PACKET_HEADER;
  for (let i = 0; i < ppis.length; i++) {
    const ppi = ppis[i]!;
    setU32(out, p + PPI.size, RndisPerPacketInfo.size + 4);
    setU32(out, p + PPI._type, ((ppi.type & 0x7fffffff) | (ppi.internal ? 0x80000000 : 0)) >>> 0);
    setU32(out, p + PPI.ppi_offset, RndisPerPacketInfo.size);
    setU32(out, p + RndisPerPacketInfo.size, ppi.value >>> 0);
    p += RndisPerPacketInfo.size + 4;
  }
  return out;
}

/**
 * Writes the header of an RNDIS_MSG_PACKET (see rndisPacketHeader) at `out[at..]`. Returns the
 * header's length; the frame goes right after it.
 */
export function writeRndisPacketHeader(out: Uint8Array, at: number, frameLength: number, ppis: readonly PpiValue[]): number {
  const h = rndisPacketHeader(frameLength, ppis);
  setInto(out, h, at);
  return h.length;
}

/**
 * writeRndisPacketHeader through `view` (out's words): one store per
 * field, every field written, when out[at] is word-aligned on a little-endian machine; otherwise
 * the header is built and copied. The per-frame paths write into shared guest memory, where a
 * header built elsewhere and copied costs twice the stores. `msgLength` is the msg_len to write
 * when it is not the header and the frame (netvsc pads a packet that more will follow in its
 * send section to pkt_align).
 */
export function writeRndisPacketHeaderWords(out: Uint8Array, view: WordView, at: number, frameLength: number, ppis: readonly PpiValue[], msgLength?: number): number {
  const abs = view.of(out).base + at;
  const words = view.words;
  if (!LITTLE_ENDIAN || (abs & 3) !== 0) {
    const n = writeRndisPacketHeader(out, at, frameLength, ppis);
    if (msgLength !== undefined) setRndisMessageLength(out, at, msgLength);
    return n;
  }
  const w = abs >>> 2;
  const ppiLen = ppiBytes(ppis.length);
  const headerLen = PACKET_HEADER + ppiLen;
  words[w + W.type] = 1; // RNDIS_MSG_PACKET
  words[w + W.len] = msgLength ?? headerLen + frameLength;
  words[w + W.dataOffset] = RndisPacket.size + ppiLen;
  words[w + W.dataLen] = frameLength;
  words[w + W.oobOffset] = 0;
  words[w + W.oobLen] = 0;
  words[w + W.oobCount] = 0;
  words[w + W.ppiOffset] = RndisPacket.size;
  words[w + W.ppiLen] = ppiLen;
  words[w + W.vc] = 0;
  words[w + W.reserved] = 0;
  let p = w + (PACKET_HEADER >>> 2);
  for (let i = 0; i < ppis.length; i++) {
    const ppi = ppis[i]!;
    words[p + W.ppiSize] = RndisPerPacketInfo.size + 4;
    words[p + W.ppiType] = ((ppi.type & 0x7fffffff) | (ppi.internal ? 0x80000000 : 0)) >>> 0;
    words[p + W.ppiValueOffset] = RndisPerPacketInfo.size;
    words[p + W.ppiValue] = ppi.value >>> 0;
    p += (RndisPerPacketInfo.size + 4) >>> 2;
  }
  return headerLen;
}

/** Rewrites the msg_len of the RNDIS message at `at` (netvsc pads a batched packet to pkt_align). */
export function setRndisMessageLength(out: Uint8Array, at: number, length: number): void {
  setU32(out, at + RndisMessage.offsets.msg_len, length);
}

/**
 * A control message: the header, `S` encoded, then `info` (an information buffer whose offset
 * the body names as S.size, the usual place).
 */
export function rndisControl<F extends FieldSpec>(type: number, S: Struct<F>, body: StructValue<F>, info: Uint8Array = new Uint8Array(0)): Uint8Array {
  const len = RNDIS_HEADER_SIZE + S.size + info.length;
  const out = new Uint8Array(len);
  setU32(out, RndisMessage.offsets.ndis_msg_type, type);
  setU32(out, RndisMessage.offsets.msg_len, len);
  S.encode(body, out, RNDIS_HEADER_SIZE);
  out.set(info, RNDIS_HEADER_SIZE + S.size);
  return out;
}
