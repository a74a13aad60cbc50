// A VHDX image as a disk back end (MS-VHDX 1.0): fixed, dynamic and differencing disks. Opening
// validates both headers (the current one is the valid one with the higher sequence number), the
// region table, the metadata and the BAT, and replays a dirty log. Writes allocate 1 MiB-aligned
// blocks at the end of the file; every change to the BAT or a sector bitmap goes through the log
// (header marked dirty, entry written and flushed, applied, header clean again), after the data it
// describes is flushed, so that a crash leaves either the old image or the new one. A child reads
// what its sector bitmaps do not claim from its read-only parent.
import { checkRange, DiskIoError, type BlockBackend, type BlockFile } from '../backend.js';
import {
  BatEntry,
  BitmapState,
  checksumValid,
  FILE_ID_OFFSET,
  FileIdentifier,
  FileParameters,
  fromUtf16,
  Guid,
  Header,
  HEADER1_OFFSET,
  HEADER2_OFFSET,
  HEADER_SIZE,
  KIB,
  LOG_SECTOR,
  MAX_BLOCK_SIZE,
  MAX_DISK_SIZE,
  MAX_METADATA_ENTRIES,
  MAX_REGION_ENTRIES,
  METADATA_TABLE_SIZE,
  MetadataTableEntry,
  MetadataTableHeader,
  MIB,
  MIN_BLOCK_SIZE,
  ParentLocatorEntry,
  ParentLocatorHeader,
  PayloadState,
  randomGuid,
  REGION_TABLE1_OFFSET,
  REGION_TABLE2_OFFSET,
  REGION_TABLE_SIZE,
  RegionTableEntry,
  RegionTableHeader,
  SECTORS_PER_BITMAP,
  seal,
  Signature,
  utf16,
  ZERO_GUID,
  type HeaderValue,
} from './format.js';
import { applySequence, descriptorSectors, encodeLogEntry, findSequence, type LogWrite } from './log.js';

/** An image that is not a usable VHDX: `field` names the structure or field at fault. */
export class VhdxFormatError extends Error {
  override readonly name = 'VhdxFormatError';
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

export type VhdxType = 'fixed' | 'dynamic' | 'differencing';

/** The parent locator's keys (MS-VHDX 2.6.2.6.1). */
export interface ParentLocator {
  readonly linkage: string | undefined;
  readonly linkage2: string | undefined;
  readonly relativePath: string | undefined;
  readonly volumePath: string | undefined;
  readonly absoluteWin32Path: string | undefined;
}

/** Where a test makes the writer stop, as a crash would: before the log entry is whole, or after it is flushed. */
export type CrashPoint = 'mid-log' | 'after-log';

export class VhdxCrash extends Error {
  override readonly name = 'VhdxCrash';
}

export interface VhdxOpenOptions {
  readonly readOnly: boolean;
  /** Opens the parent a differencing disk names (read-only). */
  readonly openParent?: (locator: ParentLocator) => BlockBackend;
  /** Test only: stop the next metadata update at this point. */
  crash?: CrashPoint | undefined;
}

interface Region {
  readonly offset: number;
  readonly length: number;
}

const guidBraced = (g: string) => `{${g}}`;
const stripBraces = (s: string) => s.replace(/[{}]/g, '').toLowerCase();
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;
const state = (e: bigint) => BatEntry.get(e, 'state');
const offsetMb = (e: bigint) => BatEntry.get(e, 'file_offset_mb');
const entry = (st: number, mb: number) => BatEntry.encode({ state: st, file_offset_mb: mb });

/** How a header reads at `offset`: valid (signature, checksum, version 1), or why not. */
function readHeader(file: BlockFile, offset: number): HeaderValue | string {
  const b = new Uint8Array(HEADER_SIZE);
  file.readAt(offset, b);
  const h = Header.decode(b);
  if (h.signature !== Signature.HEADER) return 'no "head" signature';
  if (!checksumValid(b, Header.offsets.checksum)) return 'checksum mismatch';
  if (h.version !== 1) return `version ${h.version}, not 1`;
  return h;
}

/** The region table at `offset`, or why it is not valid. */
function readRegionTable(file: BlockFile, offset: number): { guid: string; offset: number; length: number; required: boolean }[] | string {
  const b = new Uint8Array(REGION_TABLE_SIZE);
  file.readAt(offset, b);
  const h = RegionTableHeader.decode(b);
  if (h.signature !== Signature.REGION) return 'no "regi" signature';
  if (!checksumValid(b, RegionTableHeader.offsets.checksum)) return 'checksum mismatch';
  if (h.entry_count > MAX_REGION_ENTRIES) return `${h.entry_count} entries, more than ${MAX_REGION_ENTRIES}`;
  return Array.from({ length: h.entry_count }, (_, i) => {
    const e = RegionTableEntry.decode(b, RegionTableHeader.size + i * RegionTableEntry.size);
    return { guid: e.guid, offset: Number(e.file_offset), length: e.length, required: e.data_bits.required === 1 };
  });
}

export class VhdxDisk implements BlockBackend {
  readonly sectorSize: number;
  readonly physicalSectorSize: number;
  readonly sectorCount: number;
  readonly diskId: Uint8Array;
  readonly virtualSize: number;
  readonly blockSize: number;
  readonly type: VhdxType;
  readonly parentLocator: ParentLocator | undefined;
  parent: BlockBackend | undefined;
  /** Set when opening replayed a log. */
  readonly replayed: boolean;
  private header: HeaderValue;
  /** Which header slot is current: 0 (64 KiB) or 1 (128 KiB). */
  private current: 0 | 1;
  /** The BAT as the file holds it (little-endian entries), and a view to read and change entries. */
  private readonly batBytes: Uint8Array;
  private readonly batView: DataView;
  private readonly batEntries: number;
  private readonly batRegion: Region;
  private readonly metadataRegion: Region;
  private readonly logRegion: Region;
  private readonly chunkRatio: number;
  private readonly dataBlocks: number;
  private writing = false;
  private logSequence = 1n;
  private closed = false;

  private constructor(
    readonly file: BlockFile,
    private readonly options: VhdxOpenOptions,
  ) {
    // --- The file identifier and the headers.
    const id = new Uint8Array(FileIdentifier.size);
    file.readAt(FILE_ID_OFFSET, id);
    if (FileIdentifier.decode(id).signature !== Signature.FILE) throw new VhdxFormatError('file_identifier.signature', 'not "vhdxfile": not a VHDX image');
    if (file.size() < 4 * MIB) throw new VhdxFormatError('file', `${file.size()} bytes is shorter than the 4 MiB a VHDX takes before its data (header section, log and metadata regions): the image is truncated`);
    const h1 = readHeader(file, HEADER1_OFFSET);
    const h2 = readHeader(file, HEADER2_OFFSET);
    if (typeof h1 === 'string' && typeof h2 === 'string') throw new VhdxFormatError('header', `neither header is valid (header 1: ${h1}; header 2: ${h2})`);
    this.current = typeof h1 === 'string' ? 1 : typeof h2 === 'string' ? 0 : h2.sequence_number > h1.sequence_number ? 1 : 0;
    this.header = (this.current === 0 ? h1 : h2) as HeaderValue;
    const h = this.header;
    if (h.log_length % MIB !== 0 || Number(h.log_offset) % MIB !== 0 || h.log_length === 0) throw new VhdxFormatError('header.log_offset', `log of ${h.log_length} bytes at ${h.log_offset} is not 1 MiB-aligned`);
    if (Number(h.log_offset) + h.log_length > file.size()) throw new VhdxFormatError('header.log_length', 'the log passes the end of the file: the image is truncated');
    this.logRegion = { offset: Number(h.log_offset), length: h.log_length };

    // --- A dirty log is replayed (which needs write access) before anything else is read.
    let replayed = false;
    if (h.log_guid !== ZERO_GUID) {
      const seq = findSequence(file, this.logRegion, h.log_guid);
      if (seq) {
        if (options.readOnly) throw new VhdxFormatError('header.log_guid', 'the log holds changes not yet applied; open the image writable to replay them');
        try {
          applySequence(file, seq);
        } catch (e) {
          if (e instanceof DiskIoError) throw new VhdxFormatError('log', e.message);
          throw e;
        }
        replayed = true;
        this.logSequence = seq[seq.length - 1]!.sequence + 1n;
      }
      if (!options.readOnly) this.updateHeader({ log_guid: ZERO_GUID });
    }
    this.replayed = replayed;

    // --- The region table: table 1, or table 2 when table 1 is damaged.
    let regions = readRegionTable(file, REGION_TABLE1_OFFSET);
    if (typeof regions === 'string') {
      const second = readRegionTable(file, REGION_TABLE2_OFFSET);
      if (typeof second === 'string') throw new VhdxFormatError('region_table', `neither region table is valid (table 1: ${regions}; table 2: ${second})`);
      regions = second;
    }
    let bat: Region | undefined;
    let meta: Region | undefined;
    for (const [i, r] of regions.entries()) {
      if (r.offset % MIB !== 0 || r.offset < MIB) throw new VhdxFormatError(`region_table.entries[${i}].file_offset`, `${r.offset} is not a 1 MiB-aligned offset past the header section`);
      if (r.offset + r.length > file.size()) throw new VhdxFormatError(`region_table.entries[${i}].length`, 'the region passes the end of the file: the image is truncated');
      if (r.guid === Guid.BAT_REGION) bat = r;
      else if (r.guid === Guid.METADATA_REGION) meta = r;
      else if (r.required) throw new VhdxFormatError(`region_table.entries[${i}].guid`, `required region ${r.guid} is not one hvkit knows`);
    }
    if (!bat) throw new VhdxFormatError('region_table', 'no BAT region');
    if (!meta) throw new VhdxFormatError('region_table', 'no metadata region');
    this.batRegion = bat;
    this.metadataRegion = meta;

    // --- The metadata.
    const m = this.readMetadata(meta);
    this.blockSize = m.blockSize;
    this.virtualSize = m.virtualSize;
    this.sectorSize = m.logicalSectorSize;
    this.physicalSectorSize = m.physicalSectorSize;
    this.sectorCount = m.virtualSize / m.logicalSectorSize;
    this.diskId = m.page83;
    this.parentLocator = m.parent;
    this.type = m.hasParent ? 'differencing' : m.leaveAllocated ? 'fixed' : 'dynamic';
    this.chunkRatio = (SECTORS_PER_BITMAP * m.logicalSectorSize) / m.blockSize;
    this.dataBlocks = Math.ceil(m.virtualSize / m.blockSize);

    // --- The BAT: read whole, every allocated entry inside the file.
    const entries = this.batEntryCount();
    if (entries * 8 > bat.length) throw new VhdxFormatError('region_table.bat.length', `${bat.length} bytes hold fewer than the ${entries} BAT entries a ${m.virtualSize}-byte disk needs`);
    const raw = new Uint8Array(entries * 8);
    file.readAt(bat.offset, raw);
    this.batBytes = raw;
    this.batView = new DataView(raw.buffer);
    this.batEntries = entries;
    const end = file.size();
    for (let i = 0; i < entries; i++) {
      const e = this.getBat(i);
      const st = state(e);
      const isBitmap = (i + 1) % (this.chunkRatio + 1) === 0;
      const allocated = isBitmap ? st === BitmapState.PRESENT : st === PayloadState.FULLY_PRESENT || st === PayloadState.PARTIALLY_PRESENT;
      if (!isBitmap && ![0, 1, 2, 3, 5, 6, 7].includes(st)) throw new VhdxFormatError(`bat[${i}].state`, `${st} is no payload block state`);
      if (isBitmap && st !== BitmapState.PRESENT && st !== BitmapState.NOT_PRESENT) throw new VhdxFormatError(`bat[${i}].state`, `${st} is no sector bitmap state`);
      if (!m.hasParent && (st === PayloadState.PARTIALLY_PRESENT || (isBitmap && allocated))) throw new VhdxFormatError(`bat[${i}].state`, 'partially present blocks and sector bitmaps need a parent');
      if (!allocated) continue;
      const at = offsetMb(e) * MIB;
      const len = isBitmap ? MIB : this.blockSize;
      if (at < MIB || at + len > end) throw new VhdxFormatError(`bat[${i}].file_offset_mb`, `block at ${at} (${len} bytes) is outside the ${end}-byte file: the image is truncated or corrupt`);
    }

    // --- A differencing disk's parent, checked against the linkage.
    if (m.hasParent) {
      if (!options.openParent) throw new VhdxFormatError('metadata.parent_locator', 'a differencing disk needs its parent, and no way to open it was given');
      const parent = options.openParent(m.parent!);
      if (parent instanceof VhdxDisk) {
        const linkage = stripBraces(m.parent!.linkage ?? '');
        const ok = parent.header.data_write_guid === linkage || parent.header.data_write_guid === stripBraces(m.parent!.linkage2 ?? '');
        if (!ok) {
          parent.close();
          throw new VhdxFormatError('metadata.parent_locator.parent_linkage', `${m.parent!.linkage} is not the parent's DataWriteGuid {${parent.header.data_write_guid}}: the parent changed since the child was made`);
        }
      }
      if (parent.sectorSize !== this.sectorSize || parent.sectorCount * parent.sectorSize !== this.virtualSize) {
        parent.close?.();
        throw new VhdxFormatError('metadata.virtual_disk_size', `the parent is ${parent.sectorCount * parent.sectorSize} bytes of ${parent.sectorSize}-byte sectors, the child ${this.virtualSize} of ${this.sectorSize}`);
      }
      this.parent = parent;
    }
  }

  /** Opens a VHDX; throws VhdxFormatError naming what is wrong. */
  static open(file: BlockFile, options: VhdxOpenOptions): VhdxDisk {
    return new VhdxDisk(file, options);
  }

  get readOnly(): boolean {
    return this.options.readOnly;
  }

  get description(): string {
    return `VHDX ${this.type} ${this.file.path}`;
  }

  /** The header in use, for inspection. */
  get currentHeader(): HeaderValue & { slot: 0 | 1 } {
    return { ...this.header, slot: this.current };
  }

  private batEntryCount(): number {
    if (this.type === 'differencing') return Math.ceil(this.dataBlocks / this.chunkRatio) * (this.chunkRatio + 1);
    return this.dataBlocks + Math.floor((this.dataBlocks - 1) / this.chunkRatio);
  }

  private readMetadata(meta: Region) {
    const table = new Uint8Array(METADATA_TABLE_SIZE);
    this.file.readAt(meta.offset, table);
    const h = MetadataTableHeader.decode(table);
    if (h.signature !== Signature.METADATA) throw new VhdxFormatError('metadata.signature', 'not "metadata"');
    if (h.entry_count > MAX_METADATA_ENTRIES) throw new VhdxFormatError('metadata.entry_count', `${h.entry_count} entries, more than ${MAX_METADATA_ENTRIES}`);
    const items = new Map<string, Uint8Array>();
    for (let i = 0; i < h.entry_count; i++) {
      const e = MetadataTableEntry.decode(table, MetadataTableHeader.size + i * MetadataTableEntry.size);
      if (e.length === 0) continue;
      if (e.offset < METADATA_TABLE_SIZE || e.length > MIB || e.offset + e.length > meta.length) throw new VhdxFormatError(`metadata.entries[${i}].offset`, `item of ${e.length} bytes at ${e.offset} is outside the metadata region`);
      const known = (Object.values(Guid) as string[]).includes(e.item_id);
      if (!known && e.data_bits.is_required) throw new VhdxFormatError(`metadata.entries[${i}].item_id`, `required item ${e.item_id} is not one hvkit knows`);
      // Only the items hvkit uses are read, so that a table of 2047 entries costs nothing.
      if (!known) continue;
      const b = new Uint8Array(e.length);
      this.file.readAt(meta.offset + e.offset, b);
      items.set(e.item_id, b);
    }
    const need = (g: string, name: string, size: number): DataView => {
      const b = items.get(g);
      if (!b || b.length < size) throw new VhdxFormatError(`metadata.${name}`, 'missing');
      return new DataView(b.buffer, b.byteOffset, b.byteLength);
    };
    const fp = FileParameters.decode(new Uint8Array(need(Guid.FILE_PARAMETERS, 'file_parameters', 8).buffer));
    const blockSize = fp.block_size;
    if (blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) throw new VhdxFormatError('metadata.file_parameters.block_size', `${blockSize} is not a power of two from 1 MiB to 256 MiB`);
    const virtualSize = Number(need(Guid.VIRTUAL_DISK_SIZE, 'virtual_disk_size', 8).getBigUint64(0, true));
    const logicalSectorSize = need(Guid.LOGICAL_SECTOR_SIZE, 'logical_sector_size', 4).getUint32(0, true);
    const physicalSectorSize = need(Guid.PHYSICAL_SECTOR_SIZE, 'physical_sector_size', 4).getUint32(0, true);
    if (logicalSectorSize !== 512 && logicalSectorSize !== 4096) throw new VhdxFormatError('metadata.logical_sector_size', `${logicalSectorSize} is not 512 or 4096`);
    if (physicalSectorSize !== 512 && physicalSectorSize !== 4096) throw new VhdxFormatError('metadata.physical_sector_size', `${physicalSectorSize} is not 512 or 4096`);
    if (!Number.isSafeInteger(virtualSize) || virtualSize <= 0 || virtualSize > MAX_DISK_SIZE || virtualSize % logicalSectorSize !== 0) throw new VhdxFormatError('metadata.virtual_disk_size', `${virtualSize} is not a multiple of ${logicalSectorSize} up to 64 TiB`);
    const p83 = need(Guid.PAGE83_DATA, 'page_83_data', 16);
    const page83 = new Uint8Array(p83.buffer, p83.byteOffset, 16).slice();
    const hasParent = fp.data_bits.has_parent === 1;
    let parent: ParentLocator | undefined;
    if (hasParent) parent = parseParentLocator(items.get(Guid.PARENT_LOCATOR));
    return { blockSize, virtualSize, logicalSectorSize, physicalSectorSize, page83, hasParent, leaveAllocated: fp.data_bits.leave_blocks_allocated === 1, parent };
  }

  // --- Headers and the log ----------------------------------------------------------------------

  /** Writes the other header slot with `change` and the next sequence number, flushes, and makes it current. */
  private updateHeader(change: Partial<HeaderValue>): void {
    const next: HeaderValue = { ...this.header, ...change, sequence_number: this.header.sequence_number + 1n, checksum: 0 };
    const b = Header.encode(next);
    seal(b, Header.offsets.checksum);
    const slot = this.current === 0 ? 1 : 0;
    this.file.writeAt(slot === 0 ? HEADER1_OFFSET : HEADER2_OFFSET, b);
    this.file.flush();
    this.header = Header.decode(b);
    this.current = slot;
  }

  /** Before the first change of a session, the header gets new write GUIDs (MS-VHDX 2.2.2). */
  private beginWriting(): void {
    if (this.writing) return;
    if (this.readOnly) throw new DiskIoError(`${this.file.path} is open read-only`);
    this.updateHeader({ file_write_guid: randomGuid(), data_write_guid: randomGuid() });
    this.writing = true;
  }

  /**
   * A metadata change through the log: the header names a fresh log GUID, the entry is written
   * and flushed, the sectors are written in place and flushed, the header is clean again.
   */
  private commit(writes: LogWrite[]): void {
    if (writes.length === 0) return;
    // One entry must fit the log: a header sector, its descriptors, the data sectors.
    const perEntry = Math.floor(this.logRegion.length / LOG_SECTOR) - descriptorSectors(Math.floor(this.logRegion.length / LOG_SECTOR)) - 1;
    for (let i = 0; i < writes.length; i += perEntry) {
      const part = writes.slice(i, i + perEntry);
      const logGuid = randomGuid();
      this.updateHeader({ log_guid: logGuid });
      const size = this.file.size();
      const entry = encodeLogEntry(part, { sequence: this.logSequence++, logGuid, tail: 0, flushedFileOffset: size, lastFileOffset: size });
      const crash = this.options.crash;
      if (crash === 'mid-log') {
        this.options.crash = undefined;
        this.file.writeAt(this.logRegion.offset, entry.subarray(0, entry.length / 2));
        this.file.flush();
        throw new VhdxCrash('stopped while writing the log entry');
      }
      this.file.writeAt(this.logRegion.offset, entry);
      this.file.flush();
      if (crash === 'after-log') {
        this.options.crash = undefined;
        throw new VhdxCrash('stopped after the log entry, before applying it');
      }
      for (const w of part) this.file.writeAt(w.offset, w.data);
      this.file.flush();
      this.updateHeader({ log_guid: ZERO_GUID });
    }
  }

  /** The 4 KiB BAT sectors holding entries `indexes`, as they are in memory now. */
  private batSectors(indexes: Iterable<number>): LogWrite[] {
    const sectors = new Set<number>();
    for (const i of indexes) sectors.add(Math.floor((i * 8) / LOG_SECTOR));
    const raw = this.batBytes;
    return [...sectors].sort((a, b) => a - b).map((s) => {
      const data = new Uint8Array(LOG_SECTOR);
      data.set(raw.subarray(s * LOG_SECTOR, Math.min(raw.length, (s + 1) * LOG_SECTOR)));
      // The BAT region may hold bytes past the last entry in this sector: keep them.
      const have = Math.max(0, Math.min(raw.length - s * LOG_SECTOR, LOG_SECTOR));
      if (have < LOG_SECTOR) {
        const tail = new Uint8Array(LOG_SECTOR - have);
        this.file.readAt(this.batRegion.offset + s * LOG_SECTOR + have, tail);
        data.set(tail, have);
      }
      return { offset: this.batRegion.offset + s * LOG_SECTOR, data };
    });
  }

  // --- Addressing -----------------------------------------------------------------------------

  private getBat(i: number): bigint {
    return this.batView.getBigUint64(i * 8, true);
  }

  private setBat(i: number, e: bigint): void {
    this.batView.setBigUint64(i * 8, e, true);
  }

  private payloadIndex(block: number): number {
    return block + Math.floor(block / this.chunkRatio);
  }

  private bitmapIndex(block: number): number {
    const chunk = Math.floor(block / this.chunkRatio);
    return chunk * (this.chunkRatio + 1) + this.chunkRatio;
  }

  /** The next 1 MiB-aligned free place at the end of the file; the file grows to hold `bytes` there. */
  private allocate(bytes: number): number {
    const at = alignUp(this.file.size(), MIB);
    this.file.truncate(at + bytes);
    return at;
  }

  /** Whether sector `s` of payload block `block` is present in this file (its sector bitmap bit). */
  private sectorPresent(bitmap: Uint8Array, block: number, s: number): boolean {
    const bit = (block % this.chunkRatio) * (this.blockSize / this.sectorSize) + s;
    return ((bitmap[bit >> 3]! >> (bit & 7)) & 1) === 1;
  }

  private readBitmap(block: number): Uint8Array {
    const e = this.getBat(this.bitmapIndex(block));
    const sectorsPerBlock = this.blockSize / this.sectorSize;
    const out = new Uint8Array(SECTORS_PER_BITMAP / 8);
    if (state(e) !== BitmapState.PRESENT) return out;
    // Only the part of the bitmap that covers this block.
    const from = ((block % this.chunkRatio) * sectorsPerBlock) / 8;
    const part = new Uint8Array(sectorsPerBlock / 8);
    this.file.readAt(offsetMb(e) * MIB + from, part);
    out.set(part, from);
    return out;
  }

  // --- I/O ------------------------------------------------------------------------------------

  /** Visits the block runs of [byte, byte + length): block index, offset in it, length, position in the buffer. */
  private runs(byte: number, length: number, f: (block: number, within: number, n: number, pos: number) => void): void {
    for (let pos = 0; pos < length; ) {
      const at = byte + pos;
      const block = Math.floor(at / this.blockSize);
      const within = at % this.blockSize;
      const n = Math.min(length - pos, this.blockSize - within);
      f(block, within, n, pos);
      pos += n;
    }
  }

  read(lba: number, out: Uint8Array): void {
    this.ensureOpen();
    checkRange(this, lba, out.length);
    this.runs(lba * this.sectorSize, out.length, (block, within, n, pos) => this.readRun(block, within, out.subarray(pos, pos + n)));
  }

  private readRun(block: number, within: number, out: Uint8Array): void {
    const e = this.getBat(this.payloadIndex(block));
    const st = state(e);
    const lba = (block * this.blockSize + within) / this.sectorSize;
    if (st === PayloadState.FULLY_PRESENT) return this.file.readAt(offsetMb(e) * MIB + within, out);
    if (st === PayloadState.PARTIALLY_PRESENT) {
      const bitmap = this.readBitmap(block);
      const ss = this.sectorSize;
      for (let s = 0; s < out.length / ss; ) {
        const present = this.sectorPresent(bitmap, block, within / ss + s);
        let run = 1;
        while (s + run < out.length / ss && this.sectorPresent(bitmap, block, within / ss + s + run) === present) run++;
        const part = out.subarray(s * ss, (s + run) * ss);
        if (present) this.file.readAt(offsetMb(e) * MIB + within + s * ss, part);
        else this.parent!.read(lba + s, part);
        s += run;
      }
      return;
    }
    // Not present: the parent's data in a child (UNDEFINED too, conservatively), zeros otherwise.
    if (this.parent && (st === PayloadState.NOT_PRESENT || st === PayloadState.UNDEFINED)) return this.parent.read(lba, out);
    out.fill(0);
  }

  write(lba: number, data: Uint8Array, fua = false): void {
    this.ensureOpen();
    checkRange(this, lba, data.length);
    if (this.readOnly) throw new DiskIoError(`${this.file.path} is open read-only`);
    this.beginWriting();
    const changed = new Set<number>();
    const bitmaps: { block: number; from: number; count: number }[] = [];
    let grew = false;
    this.runs(lba * this.sectorSize, data.length, (block, within, n, pos) => {
      const i = this.payloadIndex(block);
      let e = this.getBat(i);
      let st = state(e);
      if (st !== PayloadState.FULLY_PRESENT && st !== PayloadState.PARTIALLY_PRESENT) {
        // A new block: the child's shadows its parent sector by sector unless written whole.
        const at = this.allocate(this.blockSize);
        grew = true;
        const whole = within === 0 && n === this.blockSize;
        st = this.parent && !whole && (st === PayloadState.NOT_PRESENT || st === PayloadState.UNDEFINED) ? PayloadState.PARTIALLY_PRESENT : PayloadState.FULLY_PRESENT;
        e = entry(st, at / MIB);
        this.setBat(i, e);
        changed.add(i);
      }
      this.file.writeAt(offsetMb(e) * MIB + within, data.subarray(pos, pos + n));
      if (st === PayloadState.PARTIALLY_PRESENT) bitmaps.push({ block, from: within / this.sectorSize, count: n / this.sectorSize });
    });
    const bitmapWrites = this.markPresent(bitmaps, changed);
    if (changed.size || bitmapWrites.length) {
      // The data first, then the metadata that points at it.
      this.file.flush();
      this.commit([...bitmapWrites, ...this.batSectors(changed)]);
    } else if (fua || grew) {
      this.file.flush();
    }
  }

  /** Sets the sector bitmap bits of written sectors; returns the bitmap sectors to log (allocating bitmaps). */
  private markPresent(runs: { block: number; from: number; count: number }[], changed: Set<number>): LogWrite[] {
    const sectors = new Map<number, Uint8Array>();
    for (const r of runs) {
      const bi = this.bitmapIndex(r.block);
      let be = this.getBat(bi);
      if (state(be) !== BitmapState.PRESENT) {
        be = entry(BitmapState.PRESENT, this.allocate(MIB) / MIB);
        this.setBat(bi, be);
        changed.add(bi);
      }
      const base = offsetMb(be) * MIB;
      const first = (r.block % this.chunkRatio) * (this.blockSize / this.sectorSize) + r.from;
      for (let bit = first; bit < first + r.count; bit++) {
        const at = base + Math.floor(bit / 8 / LOG_SECTOR) * LOG_SECTOR;
        let s = sectors.get(at);
        if (!s) {
          s = new Uint8Array(LOG_SECTOR);
          this.file.readAt(at, s);
          sectors.set(at, s);
        }
        const byte = (bit >> 3) % LOG_SECTOR;
        s[byte] = s[byte]! | (1 << (bit & 7));
      }
    }
    return [...sectors].map(([offset, data]) => ({ offset, data }));
  }

  flush(): void {
    this.ensureOpen();
    if (!this.readOnly) this.file.flush();
  }

  /**
   * Deallocates: blocks wholly inside the range become ZERO (their space is not reused, as until
   * Hyper-V compacts an image); the rest of the range is written with zeros. A fixed disk keeps
   * its blocks and is zeroed.
   */
  unmap(lba: number, count: number): void {
    this.ensureOpen();
    checkRange(this, lba, count * this.sectorSize);
    if (this.readOnly) throw new DiskIoError(`${this.file.path} is open read-only`);
    const changed = new Set<number>();
    const partial: [number, number][] = [];
    this.runs(lba * this.sectorSize, count * this.sectorSize, (block, within, n) => {
      const i = this.payloadIndex(block);
      const st = state(this.getBat(i));
      const whole = within === 0 && (n === this.blockSize || block * this.blockSize + n === this.virtualSize);
      if (whole && this.type !== 'fixed') {
        if (st !== PayloadState.ZERO) {
          this.beginWriting();
          this.setBat(i, entry(PayloadState.ZERO, 0));
          changed.add(i);
        }
        return;
      }
      // Already zeros with nothing to shadow: nothing to do.
      if (!this.parent && st !== PayloadState.FULLY_PRESENT && st !== PayloadState.PARTIALLY_PRESENT) return;
      if (st === PayloadState.ZERO) return;
      partial.push([(block * this.blockSize + within) / this.sectorSize, n]);
    });
    this.commit(this.batSectors(changed));
    for (const [at, n] of partial) {
      for (let done = 0; done < n; done += MIB) this.write(at + done / this.sectorSize, new Uint8Array(Math.min(MIB, n - done)));
    }
  }

  private ensureOpen(): void {
    if (this.closed) throw new DiskIoError(`${this.file.path} is closed`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.parent?.close?.();
    this.file.close();
  }

  /** Payload blocks allocated in this file (fully or partially present). */
  get allocatedBlocks(): number {
    let n = 0;
    for (let b = 0; b < this.dataBlocks; b++) {
      const st = state(this.getBat(this.payloadIndex(b)));
      if (st === PayloadState.FULLY_PRESENT || st === PayloadState.PARTIALLY_PRESENT) n++;
    }
    return n;
  }

  /** Every allocated extent (regions, payload blocks, bitmaps), for the checker. */
  extents(): { what: string; offset: number; length: number }[] {
    const out: { what: string; offset: number; length: number }[] = [
      { what: 'header section', offset: 0, length: MIB },
      { what: 'log', offset: this.logRegion.offset, length: this.logRegion.length },
      { what: 'metadata', offset: this.metadataRegion.offset, length: this.metadataRegion.length },
      { what: 'BAT', offset: this.batRegion.offset, length: this.batRegion.length },
    ];
    for (let i = 0; i < this.batEntries; i++) {
      const e = this.getBat(i);
      const isBitmap = (i + 1) % (this.chunkRatio + 1) === 0;
      const st = state(e);
      if (isBitmap ? st === BitmapState.PRESENT : st === PayloadState.FULLY_PRESENT || st === PayloadState.PARTIALLY_PRESENT) out.push({ what: `bat[${i}]`, offset: offsetMb(e) * MIB, length: isBitmap ? MIB : this.blockSize });
    }
    return out;
  }
}

/** The parent locator item: its type, then key/value pairs in UTF-16 (MS-VHDX 2.6.2.6). */
function parseParentLocator(b: Uint8Array | undefined): ParentLocator {
  if (!b || b.length < ParentLocatorHeader.size) throw new VhdxFormatError('metadata.parent_locator', 'missing');
  const h = ParentLocatorHeader.decode(b);
  if (h.locator_type !== Guid.PARENT_LOCATOR_TYPE) throw new VhdxFormatError('metadata.parent_locator.locator_type', `${h.locator_type} is not the VHDX parent locator type`);
  if (ParentLocatorHeader.size + h.key_value_count * ParentLocatorEntry.size > b.length) throw new VhdxFormatError('metadata.parent_locator.key_value_count', `${h.key_value_count} entries do not fit the item`);
  const kv = new Map<string, string>();
  for (let i = 0; i < h.key_value_count; i++) {
    const e = ParentLocatorEntry.decode(b, ParentLocatorHeader.size + i * ParentLocatorEntry.size);
    if (e.key_offset + e.key_length > b.length || e.value_offset + e.value_length > b.length) throw new VhdxFormatError(`metadata.parent_locator.entries[${i}]`, 'key or value outside the item');
    kv.set(fromUtf16(b.subarray(e.key_offset, e.key_offset + e.key_length)), fromUtf16(b.subarray(e.value_offset, e.value_offset + e.value_length)));
  }
  if (!kv.has('parent_linkage')) throw new VhdxFormatError('metadata.parent_locator.parent_linkage', 'missing');
  return { linkage: kv.get('parent_linkage'), linkage2: kv.get('parent_linkage2'), relativePath: kv.get('relative_path'), volumePath: kv.get('volume_path'), absoluteWin32Path: kv.get('absolute_win32_path') };
}

// --- Creating an image ----------------------------------------------------------------------------

export interface CreateVhdxOptions {
  readonly type: VhdxType;
  /** Virtual size in bytes (a differencing disk takes its parent's). */
  readonly size?: number;
  /** Block size: 32 MiB for fixed and dynamic, 2 MiB for differencing by default (Hyper-V's). */
  readonly blockSize?: number;
  readonly logicalSectorSize?: 512 | 4096;
  readonly physicalSectorSize?: 512 | 4096;
  /** A differencing disk's parent: open, and the paths to record. */
  readonly parent?: { readonly disk: VhdxDisk; readonly relativePath: string; readonly absolutePath: string };
  /** The file identifier's creator string. */
  readonly creator?: string;
}

/** Hyper-V's default block sizes (the Linux commit "scsi: storvsc: Handle BlockSize change in Hyper-V VHD/VHDX file"). */
export const DEFAULT_BLOCK_SIZE = 32 * MIB;
export const DEFAULT_DIFF_BLOCK_SIZE = 2 * MIB;

/**
 * Writes a new image into the empty `file`: the file identifier, both headers (sequence 1 and 2),
 * both region tables, a 1 MiB log at 1 MiB, the metadata at 2 MiB, the BAT at 3 MiB, and for a
 * fixed disk every block after it.
 */
export function createVhdx(file: BlockFile, o: CreateVhdxOptions): void {
  const parent = o.parent?.disk;
  const logical = parent ? parent.sectorSize : (o.logicalSectorSize ?? 512);
  const physical = parent ? parent.physicalSectorSize : (o.physicalSectorSize ?? 4096);
  const size = parent ? parent.virtualSize : (o.size ?? 0);
  const blockSize = o.blockSize ?? (o.type === 'differencing' ? DEFAULT_DIFF_BLOCK_SIZE : DEFAULT_BLOCK_SIZE);
  if (o.type === 'differencing' && !parent) throw new VhdxFormatError('parent', 'a differencing disk needs a parent');
  if (!Number.isSafeInteger(size) || size <= 0 || size % logical !== 0 || size > MAX_DISK_SIZE) throw new VhdxFormatError('size', `${size} is not a multiple of ${logical} from ${logical} to 64 TiB`);
  if (blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) throw new VhdxFormatError('block_size', `${blockSize} is not a power of two from 1 MiB to 256 MiB`);
  const chunkRatio = (SECTORS_PER_BITMAP * logical) / blockSize;
  const dataBlocks = Math.ceil(size / blockSize);
  const entries = o.type === 'differencing' ? Math.ceil(dataBlocks / chunkRatio) * (chunkRatio + 1) : dataBlocks + Math.floor((dataBlocks - 1) / chunkRatio);
  const logOffset = MIB;
  const logLength = MIB;
  const metaOffset = 2 * MIB;
  const metaLength = MIB;
  const batOffset = 3 * MIB;
  const batLength = alignUp(entries * 8, MIB);
  const payload = batOffset + batLength;

  // The file identifier.
  const id = FileIdentifier.encode({ signature: Signature.FILE, creator: utf16(o.creator ?? 'hvkit') });
  file.writeAt(FILE_ID_OFFSET, id);

  // The region table, twice.
  const rt = new Uint8Array(REGION_TABLE_SIZE);
  RegionTableHeader.encode({ signature: Signature.REGION, checksum: 0, entry_count: 2, reserved: 0 }, rt);
  RegionTableEntry.encode({ guid: Guid.BAT_REGION, file_offset: BigInt(batOffset), length: batLength, data_bits: { required: 1, reserved: 0 } }, rt, RegionTableHeader.size);
  RegionTableEntry.encode({ guid: Guid.METADATA_REGION, file_offset: BigInt(metaOffset), length: metaLength, data_bits: { required: 1, reserved: 0 } }, rt, RegionTableHeader.size + RegionTableEntry.size);
  seal(rt, RegionTableHeader.offsets.checksum);
  file.writeAt(REGION_TABLE1_OFFSET, rt);
  file.writeAt(REGION_TABLE2_OFFSET, rt);

  // The metadata: the table, then the items from 64 KiB on.
  const meta = new Uint8Array(METADATA_TABLE_SIZE + 64 * KIB);
  const items: { guid: string; data: Uint8Array; virtualDisk: boolean }[] = [];
  const fp = FileParameters.encode({ block_size: blockSize, data_bits: { leave_blocks_allocated: o.type === 'fixed' ? 1 : 0, has_parent: o.type === 'differencing' ? 1 : 0, reserved: 0 } });
  items.push({ guid: Guid.FILE_PARAMETERS, data: fp, virtualDisk: false });
  const vs = new Uint8Array(8);
  new DataView(vs.buffer).setBigUint64(0, BigInt(size), true);
  items.push({ guid: Guid.VIRTUAL_DISK_SIZE, data: vs, virtualDisk: true });
  const page83 = new Uint8Array(16);
  globalThis.crypto.getRandomValues(page83);
  items.push({ guid: Guid.PAGE83_DATA, data: page83, virtualDisk: true });
  const u32 = (v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    return b;
  };
  items.push({ guid: Guid.LOGICAL_SECTOR_SIZE, data: u32(logical), virtualDisk: true });
  items.push({ guid: Guid.PHYSICAL_SECTOR_SIZE, data: u32(physical), virtualDisk: true });
  if (o.type === 'differencing') items.push({ guid: Guid.PARENT_LOCATOR, data: encodeParentLocator(parent!, o.parent!), virtualDisk: false });
  MetadataTableHeader.encode({ signature: Signature.METADATA, reserved: 0, entry_count: items.length, reserved2: new Uint8Array(20) }, meta);
  let at = METADATA_TABLE_SIZE;
  items.forEach((it, i) => {
    MetadataTableEntry.encode({ item_id: it.guid, offset: at, length: it.data.length, data_bits: { is_user: 0, is_virtual_disk: it.virtualDisk ? 1 : 0, is_required: 1, reserved: 0 }, reserved2: 0 }, meta, MetadataTableHeader.size + i * MetadataTableEntry.size);
    meta.set(it.data, at);
    at += alignUp(it.data.length, 8);
  });
  file.writeAt(metaOffset, meta);

  // The BAT: a fixed disk's blocks all present, one after the other.
  const bat = new Uint8Array(entries * 8);
  if (o.type === 'fixed') {
    const view = new DataView(bat.buffer);
    for (let b = 0; b < dataBlocks; b++) view.setBigUint64((b + Math.floor(b / chunkRatio)) * 8, entry(PayloadState.FULLY_PRESENT, (payload + b * blockSize) / MIB), true);
  }
  file.writeAt(batOffset, bat);
  file.truncate(o.type === 'fixed' ? payload + dataBlocks * blockSize : payload);

  // Both headers last, so that a half-made file has none valid.
  const fileWriteGuid = randomGuid();
  const dataWriteGuid = randomGuid();
  [1n, 2n].forEach((seq, i) => {
    const b = Header.encode({ signature: Signature.HEADER, checksum: 0, sequence_number: seq, file_write_guid: fileWriteGuid, data_write_guid: dataWriteGuid, log_guid: ZERO_GUID, log_version: 0, version: 1, log_length: logLength, log_offset: BigInt(logOffset), reserved: new Uint8Array(4016) });
    seal(b, Header.offsets.checksum);
    file.writeAt(i === 0 ? HEADER1_OFFSET : HEADER2_OFFSET, b);
  });
  file.flush();
}

/** The parent locator a child records: the parent's DataWriteGuid and where to find it. */
function encodeParentLocator(parent: VhdxDisk, paths: { relativePath: string; absolutePath: string }): Uint8Array {
  const kv: [string, string][] = [
    ['parent_linkage', guidBraced(parent.currentHeader.data_write_guid)],
    ['relative_path', paths.relativePath],
    ['absolute_win32_path', paths.absolutePath],
  ];
  const keys = kv.map(([k, v]) => [utf16(k), utf16(v)] as const);
  const size = ParentLocatorHeader.size + kv.length * ParentLocatorEntry.size + keys.reduce((n, [k, v]) => n + k.length + v.length, 0);
  const out = new Uint8Array(size);
  ParentLocatorHeader.encode({ locator_type: Guid.PARENT_LOCATOR_TYPE, reserved: 0, key_value_count: kv.length }, out);
  let at = ParentLocatorHeader.size + kv.length * ParentLocatorEntry.size;
  keys.forEach(([k, v], i) => {
    ParentLocatorEntry.encode({ key_offset: at, value_offset: at + k.length, key_length: k.length, value_length: v.length }, out, ParentLocatorHeader.size + i * ParentLocatorEntry.size);
    out.set(k, at);
    out.set(v, at + k.length);
    at += k.length + v.length;
  });
  return out;
}
