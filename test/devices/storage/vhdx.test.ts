// The VHDX format in memory: geometry of fixed, dynamic and differencing disks, reads and writes
// across block boundaries, BAT growth, sector bitmaps, headers and their sequence numbers, the log
// (a crash before and after the entry is whole, replay), and every damaged structure refused with
// its field named. Arbitrary damage never gets past open as anything but a typed error.
import fc from 'fast-check';
import { fuzz } from '../../fuzz/fuzz.js';
import { describe, expect, it } from 'vitest';
import { DiskIoError } from '../../../src/devices/storage/backend.js';
import {
  BatEntry,
  FileIdentifier,
  FileParameters,
  Header,
  HEADER1_OFFSET,
  HEADER2_OFFSET,
  LogDataSector,
  LogDescriptor,
  LogEntryHeader,
  MetadataTableEntry,
  MetadataTableHeader,
  ParentLocatorEntry,
  ParentLocatorHeader,
  PayloadState,
  REGION_TABLE1_OFFSET,
  REGION_TABLE2_OFFSET,
  RegionTableEntry,
  RegionTableHeader,
  seal,
} from '../../../src/devices/storage/vhdx/format.js';
import { encodeLogEntry } from '../../../src/devices/storage/vhdx/log.js';
import { createVhdx, VhdxCrash, VhdxDisk, VhdxFormatError, type CreateVhdxOptions, type VhdxOpenOptions } from '../../../src/devices/storage/vhdx/vhdx.js';
import { firstDifference } from './bytes.js';
import { MemoryFile } from './memory-file.js';

const MIB = 1 << 20;
const LOG_OFFSET = MIB;
const META_OFFSET = 2 * MIB;
const BAT_OFFSET = 3 * MIB;

function image(o: Partial<CreateVhdxOptions> = {}): MemoryFile {
  const f = new MemoryFile();
  createVhdx(f, { type: 'dynamic', size: 8 * MIB, blockSize: MIB, ...o });
  return f;
}

const open = (f: MemoryFile, o: Partial<VhdxOpenOptions> = {}) => VhdxDisk.open(f, { readOnly: false, ...o });

/** `n` bytes of a pattern that differs by position and seed. */
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return out;
}

function readAll(d: VhdxDisk): Uint8Array {
  const out = new Uint8Array(d.sectorCount * d.sectorSize);
  d.read(0, out);
  return out;
}

function formatError(f: () => unknown): VhdxFormatError {
  try {
    f();
  } catch (e) {
    if (e instanceof VhdxFormatError) return e;
    throw e;
  }
  throw new Error('no error');
}

/** Rewrites the checksum at `field` of the `length` bytes at `start`. */
function rechecksum(f: MemoryFile, start: number, length: number, field: number): void {
  const b = new Uint8Array(length);
  f.readAt(start, b);
  seal(b, field);
  f.writeAt(start, b);
}

function headerAt(f: MemoryFile, at: number) {
  const b = new Uint8Array(4096);
  f.readAt(at, b);
  return Header.decode(b);
}

function setHeader(f: MemoryFile, at: number, change: Partial<ReturnType<typeof Header.decode>>): void {
  const b = Header.encode({ ...headerAt(f, at), ...change, checksum: 0 });
  seal(b, Header.offsets.checksum);
  f.writeAt(at, b);
}

const u64At = (f: MemoryFile, at: number) => {
  const b = new Uint8Array(8);
  f.readAt(at, b);
  return new DataView(b.buffer).getBigUint64(0, true);
};

describe('the structures', () => {
  // Sizes and offsets as MS-VHDX 1.0 gives them (2.2.1 to 2.6.2.6, restated in qemu's block/vhdx.h).
  it.each(([
    [FileIdentifier, 520, { creator: 8 }],
    [Header, 4096, { sequence_number: 8, file_write_guid: 16, data_write_guid: 32, log_guid: 48, log_version: 64, version: 66, log_length: 68, log_offset: 72 }],
    [RegionTableHeader, 16, { entry_count: 8 }],
    [RegionTableEntry, 32, { file_offset: 16, length: 24, data_bits: 28 }],
    [LogEntryHeader, 64, { entry_length: 8, tail: 12, sequence_number: 16, descriptor_count: 24, log_guid: 32, flushed_file_offset: 48, last_file_offset: 56 }],
    [LogDescriptor, 32, { a: 4, b: 8, file_offset: 16, sequence_number: 24 }],
    [LogDataSector, 4096, { sequence_high: 4, data: 8, sequence_low: 4092 }],
    [MetadataTableHeader, 32, { entry_count: 10 }],
    [MetadataTableEntry, 32, { offset: 16, length: 20, data_bits: 24 }],
    [FileParameters, 8, { data_bits: 4 }],
    [ParentLocatorHeader, 20, { key_value_count: 18 }],
    [ParentLocatorEntry, 12, { value_offset: 4, key_length: 8, value_length: 10 }],
  ] as const).map(([layout, size, offsets]) => [layout.name, layout, size, offsets] as const))('%s', (_, layout, size, offsets) => {
    expect(layout.size).toBe(size);
    expect(Object.fromEntries(Object.keys(offsets).map((k) => [k, (layout.offsets as Record<string, number>)[k]]))).toEqual(offsets);
  });

  it('a BAT entry: state in bits 0-2, the offset in MiB from bit 20', () => {
    expect(BatEntry.encode({ state: 6, file_offset_mb: 5 })).toBe((5n << 20n) | 6n);
  });
});

describe('geometry', () => {
  it('a dynamic disk: the sizes it was made with, nothing allocated, zeros everywhere', () => {
    const f = image({ size: 10 * MIB + 4096, physicalSectorSize: 4096 });
    const d = open(f);
    expect([d.type, d.virtualSize, d.sectorSize, d.physicalSectorSize, d.sectorCount, d.blockSize, d.allocatedBlocks]).toEqual(['dynamic', 10 * MIB + 4096, 512, 4096, (10 * MIB + 4096) / 512, MIB, 0]);
    expect(f.size()).toBe(4 * MIB);
    expect(readAll(d).every((b) => b === 0)).toBe(true);
    expect(d.diskId).toHaveLength(16);
  });

  it('a fixed disk has every block allocated after the BAT, in order', () => {
    const f = image({ type: 'fixed', size: 3 * MIB });
    const d = open(f);
    expect([d.type, d.allocatedBlocks]).toEqual(['fixed', 3]);
    expect(f.size()).toBe(7 * MIB);
    expect([0, 1, 2].map((i) => u64At(f, BAT_OFFSET + 8 * i))).toEqual([0, 1, 2].map((i) => (BigInt(4 + i) << 20n) | BigInt(PayloadState.FULLY_PRESENT)));
  });

  it('4096-byte logical sectors', () => {
    const d = open(image({ logicalSectorSize: 4096, physicalSectorSize: 4096 }));
    expect([d.sectorSize, d.sectorCount]).toEqual([4096, 2048]);
    d.write(5, pattern(8192, 1));
    const out = new Uint8Array(8192);
    d.read(5, out);
    expect(out).toEqual(pattern(8192, 1));
  });

  it.each([
    [{ size: 0 }, 'size'],
    [{ size: 1000 }, 'size'],
    [{ blockSize: 3 * MIB }, 'block_size'],
    [{ blockSize: 512 * 1024 }, 'block_size'],
    [{ type: 'differencing' as const }, 'parent'],
  ])('creating with %j is refused naming %s', (o, field) => {
    expect(formatError(() => image(o)).field).toBe(field);
  });
});

describe('reads and writes', () => {
  it('a write across a block boundary allocates both blocks at the end of the file, 1 MiB aligned', () => {
    const f = image();
    const d = open(f);
    const data = pattern(3 * 512, 1);
    d.write(2047, data);
    expect(d.allocatedBlocks).toBe(2);
    expect(f.size()).toBe(6 * MIB);
    const out = new Uint8Array(4 * 512);
    d.read(2046, out);
    expect(out.subarray(0, 512).every((b) => b === 0)).toBe(true);
    expect(out.subarray(512)).toEqual(data);
    // The BAT on disk says so too, and a second open reads the same.
    const again = open(f.reopen(true), { readOnly: true });
    again.read(2046, out);
    expect(out.subarray(512)).toEqual(data);
  });

  it('rewriting an allocated block does not grow the file; the last block may be short', () => {
    const f = image({ size: 2 * MIB + 512 * 3 });
    const d = open(f);
    d.write(0, pattern(512, 1));
    const size = f.size();
    d.write(1, pattern(512, 2));
    expect(f.size()).toBe(size);
    const last = d.sectorCount - 3;
    d.write(last, pattern(3 * 512, 3));
    const out = new Uint8Array(3 * 512);
    d.read(last, out);
    expect(out).toEqual(pattern(3 * 512, 3));
    expect(() => d.read(last, new Uint8Array(4 * 512))).toThrow(DiskIoError);
    expect(() => d.write(0, new Uint8Array(100))).toThrow(DiskIoError);
  });

  it('unmap: whole blocks become ZERO, the rest is written with zeros; the range reads zeros', () => {
    const f = image();
    const d = open(f);
    d.write(0, pattern(3 * MIB, 4));
    d.unmap(1024, 2048 + 1024);
    expect(u64At(f, BAT_OFFSET + 8) & 7n).toBe(BigInt(PayloadState.ZERO));
    const out = readAll(d);
    expect(out.subarray(1024 * 512, 4096 * 512).every((b) => b === 0)).toBe(true);
    expect(firstDifference(out.subarray(0, 1024 * 512), pattern(3 * MIB, 4).subarray(0, 1024 * 512))).toBe(-1);
    expect(firstDifference(out.subarray(4096 * 512, 3 * MIB), pattern(3 * MIB, 4).subarray(4096 * 512))).toBe(-1);
    // A write to a ZERO block allocates it again.
    d.write(2048, pattern(512, 5));
    const one = new Uint8Array(1024);
    d.read(2048, one);
    expect(one.subarray(0, 512)).toEqual(pattern(512, 5));
    expect(one.subarray(512).every((b) => b === 0)).toBe(true);
  });

  it('read-only: writes, unmaps are refused', () => {
    const d = open(image(), { readOnly: true });
    expect(() => d.write(0, new Uint8Array(512))).toThrow('is open read-only');
    expect(() => d.unmap(0, 2048)).toThrow('is open read-only');
  });
});

describe('headers', () => {
  it('the first write of a session moves to the other header with the next sequence number and new write GUIDs; every log entry leaves the header clean', () => {
    const f = image();
    const h1 = headerAt(f, HEADER1_OFFSET);
    const h2 = headerAt(f, HEADER2_OFFSET);
    expect([h1.sequence_number, h2.sequence_number]).toEqual([1n, 2n]);
    expect(h1.data_write_guid).toBe(h2.data_write_guid);
    const d = open(f);
    expect(d.currentHeader.slot).toBe(1);
    d.write(0, pattern(512, 1));
    const now = d.currentHeader;
    expect(now.sequence_number).toBeGreaterThan(2n);
    expect(now.data_write_guid).not.toBe(h2.data_write_guid);
    expect(now.file_write_guid).not.toBe(h2.file_write_guid);
    expect(now.log_guid).toBe('00000000-0000-0000-0000-000000000000');
    const other = headerAt(f, now.slot === 0 ? HEADER2_OFFSET : HEADER1_OFFSET);
    expect(other.sequence_number).toBe(now.sequence_number - 1n);
    // A write to an allocated block changes no metadata: the header stays.
    d.write(1, pattern(512, 2));
    expect(d.currentHeader.sequence_number).toBe(now.sequence_number);
  });

  it('one damaged header: the other is used; both damaged: refused naming both', () => {
    const f = image();
    f.writeAt(HEADER2_OFFSET + 100, new Uint8Array([1]));
    expect(open(f.reopen(true), { readOnly: true }).currentHeader.slot).toBe(0);
    f.writeAt(HEADER1_OFFSET, new Uint8Array(4));
    const e = formatError(() => open(f, { readOnly: true }));
    expect(e.message).toBe('header: neither header is valid (header 1: no "head" signature; header 2: checksum mismatch)');
  });

  it('the valid header with the higher sequence number is current, whichever slot it is in', () => {
    const f = image();
    setHeader(f, HEADER1_OFFSET, { sequence_number: 9n });
    expect(open(f, { readOnly: true }).currentHeader.slot).toBe(0);
  });
});

describe('the log', () => {
  it('a crash after the entry is flushed: a read-only open refuses, a writable open replays, the write is there', () => {
    const f = image();
    const d = open(f, { crash: 'after-log' });
    expect(() => d.write(4096, pattern(4096, 7))).toThrow(VhdxCrash);
    const crashed = f.reopen();
    const dirty = headerAt(crashed, d.currentHeader.slot === 0 ? HEADER1_OFFSET : HEADER2_OFFSET);
    expect(dirty.log_guid).not.toBe('00000000-0000-0000-0000-000000000000');
    expect(formatError(() => open(crashed.reopen(true), { readOnly: true })).field).toBe('header.log_guid');
    const r = open(crashed);
    expect(r.replayed).toBe(true);
    expect(r.currentHeader.log_guid).toBe('00000000-0000-0000-0000-000000000000');
    const out = new Uint8Array(4096);
    r.read(4096, out);
    expect(out).toEqual(pattern(4096, 7));
    // Replayed once: the next open finds a clean header.
    expect(open(crashed.reopen(true), { readOnly: true }).replayed).toBe(false);
  });

  it('a crash mid-entry: the torn entry is not replayed, the image is as before the write', () => {
    const f = image();
    const d = open(f);
    d.write(0, pattern(512, 1));
    d.close();
    const g = f.reopen();
    const e = open(g, { crash: 'mid-log' });
    expect(() => e.write(4096, pattern(4096, 2))).toThrow(VhdxCrash);
    const r = open(g.reopen());
    expect(r.replayed).toBe(false);
    expect(r.allocatedBlocks).toBe(1);
    const out = new Uint8Array(512);
    r.read(0, out);
    expect(out).toEqual(pattern(512, 1));
    r.read(4096, out);
    expect(out.every((b) => b === 0)).toBe(true);
  });

  it('an entry whose checksum is wrong is not replayed', () => {
    const f = image();
    const d = open(f, { crash: 'after-log' });
    expect(() => d.write(4096, pattern(4096, 7))).toThrow(VhdxCrash);
    f.writeAt(LOG_OFFSET + 4096 + 10, new Uint8Array([0xee]));
    const r = open(f);
    expect(r.replayed).toBe(false);
    expect(r.allocatedBlocks).toBe(0);
  });

  it('a log entry that expects a longer file than there is: refused, the image was truncated', () => {
    const f = image();
    const d = open(f, { crash: 'after-log' });
    expect(() => d.write(4096, pattern(4096, 7))).toThrow(VhdxCrash);
    f.truncate(4 * MIB);
    expect(formatError(() => open(f)).field).toBe('log');
  });

  it('an entry naming a file far longer than this one is not replayed: the file does not grow', () => {
    const f = image();
    const sector = new Uint8Array(4096).fill(0xaa);
    const logGuid = '11111111-2222-4333-8444-555555555555';
    f.writeAt(LOG_OFFSET, encodeLogEntry([{ offset: 4 * MIB, data: sector }], { sequence: 1n, logGuid, tail: 0, flushedFileOffset: 4 * MIB, lastFileOffset: 2 ** 40 }));
    setHeader(f, HEADER2_OFFSET, { log_guid: logGuid });
    const r = open(f);
    expect([r.replayed, f.size()]).toEqual([false, 4 * MIB]);
    // The same entry naming the file's real length is replayed.
    const g = image();
    g.writeAt(LOG_OFFSET, encodeLogEntry([{ offset: 3 * MIB + 4096, data: sector }], { sequence: 1n, logGuid, tail: 0, flushedFileOffset: 4 * MIB, lastFileOffset: 4 * MIB }));
    setHeader(g, HEADER2_OFFSET, { log_guid: logGuid });
    expect(open(g).replayed).toBe(true);
    expect(u64At(g, 3 * MIB + 4096)).toBe(0xaaaaaaaaaaaaaaaan);
  });

  it('the entry is laid out as MS-VHDX says: "loge", one descriptor per 4 KiB sector, data sectors with the sequence split in two', () => {
    const f = image();
    const d = open(f, { crash: 'after-log' });
    expect(() => d.write(0, pattern(512, 1))).toThrow(VhdxCrash);
    const b = new Uint8Array(3 * 4096);
    f.readAt(LOG_OFFSET, b);
    const h = LogEntryHeader.decode(b);
    expect([h.entry_length, h.descriptor_count, h.tail]).toEqual([2 * 4096, 1, 0]);
    expect(String.fromCharCode(...b.subarray(0, 4), ...b.subarray(64, 68), ...b.subarray(4096, 4100))).toBe('logedescdata');
    expect(new DataView(b.buffer).getBigUint64(64 + 16, true)).toBe(BigInt(BAT_OFFSET));
  });
});

describe('differencing disks', () => {
  function chain() {
    const pf = image({ size: 4 * MIB });
    const parent = open(pf);
    parent.write(0, pattern(4 * MIB, 1));
    parent.close();
    const pdisk = open(pf.reopen(true), { readOnly: true });
    const cf = new MemoryFile('child.vhdx');
    createVhdx(cf, { type: 'differencing', blockSize: MIB, parent: { disk: pdisk, relativePath: '.\\parent.vhdx', absolutePath: 'C:\\parent.vhdx' } });
    const openChild = (f: MemoryFile, readOnly = false) => VhdxDisk.open(f, { readOnly, openParent: () => open(pf.reopen(true), { readOnly: true }) });
    return { pf, cf, openChild };
  }

  it('reads its parent until written; a partial write shadows only the sectors written (sector bitmap)', () => {
    const { cf, openChild } = chain();
    const c = openChild(cf);
    expect([c.type, c.virtualSize, c.blockSize]).toEqual(['differencing', 4 * MIB, MIB]);
    expect(c.parentLocator).toMatchObject({ relativePath: '.\\parent.vhdx', absoluteWin32Path: 'C:\\parent.vhdx' });
    expect(firstDifference(readAll(c), pattern(4 * MIB, 1))).toBe(-1);
    c.write(10, pattern(1024, 9));
    const expected = pattern(4 * MIB, 1);
    expected.set(pattern(1024, 9), 10 * 512);
    expect(firstDifference(readAll(c), expected)).toBe(-1);
    // Block 0 is partially present; its bitmap block is allocated; the whole-block write of block 1 is fully present.
    c.write(2048, pattern(MIB, 3));
    expected.set(pattern(MIB, 3), MIB);
    expect(u64At(cf, BAT_OFFSET) & 7n).toBe(BigInt(PayloadState.PARTIALLY_PRESENT));
    expect(u64At(cf, BAT_OFFSET + 8) & 7n).toBe(BigInt(PayloadState.FULLY_PRESENT));
    expect(firstDifference(readAll(openChild(cf.reopen(true), true)), expected)).toBe(-1);
  });

  it('unmap in a child reads zeros, not the parent', () => {
    const { cf, openChild } = chain();
    const c = openChild(cf);
    c.unmap(0, 4096);
    const out = readAll(c);
    expect(out.subarray(0, 2 * MIB).every((b) => b === 0)).toBe(true);
    expect(firstDifference(out.subarray(2 * MIB), pattern(4 * MIB, 1).subarray(2 * MIB))).toBe(-1);
  });

  it('a parent whose DataWriteGuid changed since the child was made is refused', () => {
    const { pf, cf } = chain();
    const p = open(pf);
    p.write(0, new Uint8Array(512));
    p.close();
    const e = formatError(() => VhdxDisk.open(cf, { readOnly: true, openParent: () => open(pf.reopen(true), { readOnly: true }) }));
    expect(e.field).toBe('metadata.parent_locator.parent_linkage');
  });

  it('without a way to open the parent: refused naming the locator', () => {
    const { cf } = chain();
    expect(formatError(() => VhdxDisk.open(cf, { readOnly: true })).field).toBe('metadata.parent_locator');
  });
});

describe('damage is refused naming the field', () => {
  const damaged: [string, (f: MemoryFile) => void, string][] = [
    ['not a VHDX', (f) => f.writeAt(0, new Uint8Array(8)), 'file_identifier.signature'],
    ['truncated to 2 MiB', (f) => f.truncate(2 * MIB), 'file'],
    ['both region tables', (f) => (f.writeAt(REGION_TABLE1_OFFSET + 20, new Uint8Array([9])), f.writeAt(REGION_TABLE2_OFFSET, new Uint8Array(4))), 'region_table'],
    ['a region past the end', (f) => (f.writeAt(REGION_TABLE1_OFFSET + RegionTableHeader.size + 16, new Uint8Array([0, 0, 0, 8])), rechecksum(f, REGION_TABLE1_OFFSET, 64 * 1024, 4)), 'region_table.entries[0].length'],
    ['a region inside the header section', (f) => (f.writeAt(REGION_TABLE1_OFFSET + RegionTableHeader.size + 16, new Uint8Array(8)), rechecksum(f, REGION_TABLE1_OFFSET, 64 * 1024, 4)), 'region_table.entries[0].file_offset'],
    ['the metadata signature', (f) => f.writeAt(META_OFFSET, new Uint8Array(8)), 'metadata.signature'],
    ['a metadata item outside its region', (f) => f.writeAt(META_OFFSET + MetadataTableHeader.size + 16, new Uint8Array([0, 0, 0x20, 0])), 'metadata.entries[0].offset'],
    ['a block size of 3 MiB', (f) => f.writeAt(META_OFFSET + 64 * 1024, new Uint8Array([0, 0, 0x30, 0])), 'metadata.file_parameters.block_size'],
    ['a logical sector size of 1024', (f) => f.writeAt(META_OFFSET + 64 * 1024 + 8 + 8 + 16, new Uint8Array([0, 4, 0, 0])), 'metadata.logical_sector_size'],
    ['no virtual size item', (f) => f.writeAt(META_OFFSET + MetadataTableHeader.size + MetadataTableEntry.size, new Uint8Array(MetadataTableEntry.size)), 'metadata.virtual_disk_size'],
    ['a BAT entry past the end of the file', (f) => f.writeAt(BAT_OFFSET + 8, new Uint8Array([6, 0, 0x40, 0])), 'bat[1].file_offset_mb'],
    ['a BAT entry in the header section', (f) => f.writeAt(BAT_OFFSET, new Uint8Array([6, 0, 0, 0])), 'bat[0].file_offset_mb'],
    ['a BAT state of 4', (f) => f.writeAt(BAT_OFFSET, new Uint8Array([4])), 'bat[0].state'],
    ['a partially present block without a parent', (f) => f.writeAt(BAT_OFFSET, new Uint8Array([7, 0, 0x30, 0])), 'bat[0].state'],
    ['a log that passes the end of the file', (f) => setHeader(f, HEADER2_OFFSET, { log_length: 64 * MIB }), 'header.log_length'],
    ['a log not 1 MiB aligned', (f) => setHeader(f, HEADER2_OFFSET, { log_offset: BigInt(MIB + 4096) }), 'header.log_offset'],
  ];
  it.each(damaged)('%s', (_, damage, field) => {
    const f = image();
    damage(f);
    expect(formatError(() => open(f, { readOnly: true })).field).toBe(field);
  });

  it('region table 1 damaged: table 2 is used', () => {
    const f = image();
    f.writeAt(REGION_TABLE1_OFFSET, new Uint8Array(4));
    expect(open(f, { readOnly: true }).virtualSize).toBe(8 * MIB);
  });

  it('arbitrary bytes anywhere in the first 4 MiB, with or without a dirty log: a typed error or a disk that reads', () => {
    const base = (() => {
      const f = image({ size: 4 * MIB });
      const d = open(f);
      d.write(0, pattern(8192, 1));
      const crash = open(f.reopen(), { crash: 'after-log' });
      expect(() => crash.write(4096, pattern(4096, 2))).toThrow(VhdxCrash);
      return f;
    })();
    fuzz(
      'storage.vhdx-open',
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 4 * MIB - 1 }), fc.uint8Array({ minLength: 1, maxLength: 64 })), { minLength: 1, maxLength: 8 }), fc.boolean(), (edits, fixSums) => {
        const f = base.reopen();
        for (const [at, bytes] of edits) f.writeAt(at, bytes.subarray(0, 4 * MIB - at));
        if (fixSums) {
          // Damage that checksums still vouch for reaches the parsers behind them.
          for (const h of [HEADER1_OFFSET, HEADER2_OFFSET]) rechecksum(f, h, 4096, 4);
          for (const r of [REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET]) rechecksum(f, r, 64 * 1024, 4);
        }
        let d: VhdxDisk;
        try {
          d = open(f);
        } catch (e) {
          expect(e).toBeInstanceOf(VhdxFormatError);
          return;
        }
        const out = new Uint8Array(d.sectorCount * d.sectorSize > 8 * MIB ? 4096 : d.sectorCount * d.sectorSize);
        try {
          d.read(0, out);
          d.write(0, pattern(512, 3));
        } catch (e) {
          expect(e).toBeInstanceOf(DiskIoError);
        }
      }),
      150,
    );
  });
});
