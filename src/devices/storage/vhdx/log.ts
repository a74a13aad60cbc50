// The VHDX log (MS-VHDX 2.3): metadata changes are first written as a log entry (a header, one
// descriptor per 4 KiB sector changed, the sectors themselves), flushed, then applied to their
// places in the file. An image whose header names a log GUID may hold entries not yet applied:
// opening it finds the newest complete sequence of valid entries and writes them again (replay).
import { DiskIoError, type BlockFile } from '../backend.js';
import { checksumValid, LOG_SECTOR, MAX_BLOCK_SIZE, LogDataSector, LogDescriptor, LogEntryHeader, MIB, seal, Signature, ZERO_GUID } from './format.js';

/** The header section (file identifier, headers, region tables) is never written through the log. */
const HEADER_SECTION = MIB;

/** A 4 KiB sector of metadata to write at a file offset (4 KiB aligned). */
export interface LogWrite {
  readonly offset: number;
  readonly data: Uint8Array;
}

/** The log region of the file and the state of writing to it. */
export interface LogRegion {
  readonly offset: number;
  readonly length: number;
}

/** Descriptors fit after the 64-byte header in the first sector, then fill whole sectors. */
const DESCRIPTORS_IN_FIRST = (LOG_SECTOR - LogEntryHeader.size) / LogDescriptor.size;
const DESCRIPTORS_PER_SECTOR = LOG_SECTOR / LogDescriptor.size;

const u32le = (b: Uint8Array, at: number) => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

/** Sectors the header and `n` descriptors take. */
export function descriptorSectors(n: number): number {
  if (n <= DESCRIPTORS_IN_FIRST) return 1;
  return 1 + Math.ceil((n - DESCRIPTORS_IN_FIRST) / DESCRIPTORS_PER_SECTOR);
}

/**
 * One log entry with data descriptors for `writes`, as bytes: its tail is itself (each entry is a
 * complete sequence), its checksum covers the whole entry.
 */
export function encodeLogEntry(writes: readonly LogWrite[], o: { sequence: bigint; logGuid: string; tail: number; flushedFileOffset: number; lastFileOffset: number }): Uint8Array {
  const head = descriptorSectors(writes.length);
  const entry = new Uint8Array((head + writes.length) * LOG_SECTOR);
  LogEntryHeader.encode(
    {
      signature: Signature.LOG_ENTRY,
      checksum: 0,
      entry_length: entry.length,
      tail: o.tail,
      sequence_number: o.sequence,
      descriptor_count: writes.length,
      reserved: 0,
      log_guid: o.logGuid,
      flushed_file_offset: BigInt(o.flushedFileOffset),
      last_file_offset: BigInt(o.lastFileOffset),
    },
    entry,
  );
  writes.forEach((w, i) => {
    if (w.data.length !== LOG_SECTOR || w.offset % LOG_SECTOR !== 0) throw new DiskIoError(`log write ${i} is not one aligned 4 KiB sector`);
    const at = i < DESCRIPTORS_IN_FIRST ? LogEntryHeader.size + i * LogDescriptor.size : LOG_SECTOR * (1 + Math.floor((i - DESCRIPTORS_IN_FIRST) / DESCRIPTORS_PER_SECTOR)) + ((i - DESCRIPTORS_IN_FIRST) % DESCRIPTORS_PER_SECTOR) * LogDescriptor.size;
    const dv = new DataView(w.data.buffer, w.data.byteOffset, w.data.byteLength);
    LogDescriptor.encode({ signature: Signature.DESCRIPTOR, a: dv.getUint32(LOG_SECTOR - 4, true), b: dv.getBigUint64(0, true), file_offset: BigInt(w.offset), sequence_number: o.sequence }, entry, at);
    LogDataSector.encode(
      { signature: Signature.DATA, sequence_high: Number(o.sequence >> 32n), data: w.data.subarray(8, LOG_SECTOR - 4), sequence_low: Number(o.sequence & 0xffffffffn) },
      entry,
      (head + i) * LOG_SECTOR,
    );
  });
  seal(entry, LogEntryHeader.offsets.checksum);
  return entry;
}

/** A valid entry found in the log, and what it writes. */
interface FoundEntry {
  readonly at: number;
  readonly length: number;
  readonly sequence: bigint;
  readonly tail: number;
  readonly flushedFileOffset: number;
  readonly lastFileOffset: number;
  readonly writes: readonly (LogWrite | { offset: number; zero: number })[];
}

/** Reads and validates the entry at log offset `at`; undefined when it is not a valid entry of `logGuid`. */
function readEntry(file: BlockFile, log: LogRegion, at: number, logGuid: string): FoundEntry | undefined {
  const first = new Uint8Array(LOG_SECTOR);
  file.readAt(log.offset + at, first);
  if (u32le(first, 0) !== Signature.LOG_ENTRY) return undefined;
  const h = LogEntryHeader.decode(first);
  if (h.log_guid !== logGuid || h.entry_length < LOG_SECTOR || h.entry_length % LOG_SECTOR !== 0 || at + h.entry_length > log.length) return undefined;
  if (h.tail % LOG_SECTOR !== 0 || h.tail >= log.length || h.sequence_number === 0n) return undefined;
  // A writer grows the file by at most one block before logging the change that uses it: an entry
  // naming a file much longer than this one is not this file's (and replaying it would grow the
  // file without bound).
  if (h.flushed_file_offset > h.last_file_offset || Number(h.last_file_offset) > file.size() + MAX_BLOCK_SIZE) return undefined;
  const entry = new Uint8Array(h.entry_length);
  file.readAt(log.offset + at, entry);
  if (!checksumValid(entry, LogEntryHeader.offsets.checksum)) return undefined;
  const head = descriptorSectors(h.descriptor_count);
  if (head * LOG_SECTOR > h.entry_length) return undefined;
  const writes: (LogWrite | { offset: number; zero: number })[] = [];
  let dataSector = head;
  for (let i = 0; i < h.descriptor_count; i++) {
    const pos = i < DESCRIPTORS_IN_FIRST ? LogEntryHeader.size + i * LogDescriptor.size : LOG_SECTOR * (1 + Math.floor((i - DESCRIPTORS_IN_FIRST) / DESCRIPTORS_PER_SECTOR)) + ((i - DESCRIPTORS_IN_FIRST) % DESCRIPTORS_PER_SECTOR) * LogDescriptor.size;
    const d = LogDescriptor.decode(entry, pos);
    if (d.sequence_number !== h.sequence_number) return undefined;
    const offset = Number(d.file_offset);
    // A write must land past the header section, 4 KiB aligned, inside the file the entry describes.
    if (offset % LOG_SECTOR !== 0 || offset < HEADER_SECTION || offset > Number(h.last_file_offset)) return undefined;
    if (d.signature === Signature.ZERO && (Number(d.b) % LOG_SECTOR !== 0 || offset + Number(d.b) > Number(h.last_file_offset))) return undefined;
    if (d.signature === Signature.ZERO) {
      writes.push({ offset, zero: Number(d.b) });
      continue;
    }
    if (d.signature !== Signature.DESCRIPTOR || (dataSector + 1) * LOG_SECTOR > h.entry_length) return undefined;
    const s = LogDataSector.decode(entry, dataSector * LOG_SECTOR);
    if (s.signature !== Signature.DATA || BigInt(s.sequence_high) !== h.sequence_number >> 32n || BigInt(s.sequence_low) !== (h.sequence_number & 0xffffffffn)) return undefined;
    const data = new Uint8Array(LOG_SECTOR);
    new DataView(data.buffer).setBigUint64(0, d.b, true);
    data.set(s.data, 8);
    new DataView(data.buffer).setUint32(LOG_SECTOR - 4, d.a, true);
    writes.push({ offset, data });
    dataSector++;
  }
  return { at, length: h.entry_length, sequence: h.sequence_number, tail: h.tail, flushedFileOffset: Number(h.flushed_file_offset), lastFileOffset: Number(h.last_file_offset), writes };
}

/**
 * The sequence to replay (MS-VHDX 2.3.3): the entry with the highest sequence number whose chain
 * from its tail is complete (each next entry follows the last, with the next sequence number).
 */
export function findSequence(file: BlockFile, log: LogRegion, logGuid: string): FoundEntry[] | undefined {
  if (logGuid === ZERO_GUID) return undefined;
  const found = new Map<number, FoundEntry>();
  for (let at = 0; at + LOG_SECTOR <= log.length; at += LOG_SECTOR) {
    const e = readEntry(file, log, at, logGuid);
    if (e) found.set(at, e);
  }
  let best: FoundEntry[] | undefined;
  for (const head of found.values()) {
    const chain: FoundEntry[] = [];
    let e = found.get(head.tail);
    let expected: bigint | undefined;
    for (let hops = 0; e && hops <= found.size; hops++) {
      if (expected !== undefined && e.sequence !== expected) break;
      chain.push(e);
      if (e === head) {
        if (!best || head.sequence > best[best.length - 1]!.sequence) best = [...chain];
        break;
      }
      expected = e.sequence + 1n;
      e = found.get((e.at + e.length) % log.length);
    }
  }
  return best;
}

/** Writes a sequence's sectors and zero ranges to their places, growing the file as its entries say. */
export function applySequence(file: BlockFile, sequence: readonly FoundEntry[]): void {
  const last = sequence[sequence.length - 1]!;
  // Everything an entry describes was flushed before the entry was written: a file shorter than
  // that has lost data, and replaying into it would invent the rest.
  if (file.size() < last.flushedFileOffset) throw new DiskIoError(`the log expects the file to be at least ${last.flushedFileOffset} bytes, it has ${file.size()}: the image was truncated`);
  if (file.size() < last.lastFileOffset) file.truncate(last.lastFileOffset);
  for (const e of sequence) {
    for (const w of e.writes) {
      if ('data' in w) file.writeAt(w.offset, w.data);
      else for (let done = 0; done < w.zero; done += MIB) file.writeAt(w.offset + done, new Uint8Array(Math.min(MIB, w.zero - done)));
    }
  }
  file.flush();
}
