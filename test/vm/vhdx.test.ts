// VHDX images on the host against qemu-img, the independent implementation: what the guest writes
// through storvsc into hvkit's images passes `qemu-img check` and converts to the same bytes;
// images qemu-img makes (fixed, dynamic, several block sizes, zero block state on or off) open and
// read; each side replays the other's log; differencing chains through openDisk; a second writer
// and damaged files refused. CI installs qemu-utils (.ci/run).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Header, HEADER1_OFFSET, HEADER2_OFFSET, LogEntryHeader, seal, Signature } from '../../src/devices/storage/vhdx/format.js';
import { VhdxCrash, VhdxDisk } from '../../src/devices/storage/vhdx/vhdx.js';
import { DiskOpenError, NodeFile, openDisk } from '../../src/vm/disk-file.js';
import { checkImage, createImage, type CreateImageOptions } from '../../src/vm/disk-image.js';
import { guestStorage } from '../../src/vm/storage.js';
import { Machine } from '../../src/vm/machine.js';
import { firstDifference } from '../devices/storage/bytes.js';
import { settleOn } from '../devices/storage/harness.js';

const MIB = 1 << 20;

const dir = () => mkdtempSync(join(tmpdir(), 'hvkit-vhdx-'));
const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { encoding: 'utf8' });

/** Deterministic bytes that differ by seed and position. */
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** The image as qemu reads it, converted to raw. */
function qemuRaw(path: string): Uint8Array {
  const raw = `${path}.raw`;
  qemuImg('convert', '-O', 'raw', path, raw);
  return readFileSync(raw);
}

function image(d: string, name: string, o: CreateImageOptions): string {
  const p = join(d, name);
  createImage(p, o);
  return p;
}

/** A VM with the image at LUN 0; the guest's sda. */
function vmWith(path: string) {
  const m = new Machine({ release: 'ws2022', devices: [{ type: 'scsi', disks: [{ lun: 0, backend: openDisk(path) }] }] });
  m.boot();
  const sda = guestStorage(m)!.disks[0]!;
  return { m, sda, done: () => m.host.dispose() };
}

describe('what the guest writes lands in the image as qemu reads it', () => {
  it.each([
    ['dynamic, 1 MiB blocks', { type: 'dynamic', blockSize: MIB }],
    ['dynamic, 32 MiB blocks (the default)', { type: 'dynamic' }],
    ['fixed, 2 MiB blocks', { type: 'fixed', blockSize: 2 * MIB }],
  ] as const)('%s: qemu-img check finds no errors, convert -O raw equals the guest\'s writes', (_, o) => {
    const d = dir();
    const p = image(d, 'disk.vhdx', { format: 'vhdx', size: 8 * MIB, ...o });
    const { m, sda, done } = vmWith(p);
    const ss = sda.logicalBlockSize;
    const expected = new Uint8Array(8 * MIB);
    const write = (byte: number, bytes: number, seed: number) => {
      const data = pattern(bytes, seed);
      expect(settleOn({ m }, sda.write(byte / ss, data))?.ok).toBe(true);
      expected.set(data, byte);
    };
    write(0, 4 * ss, 1);
    // Across the 1 MiB and 2 MiB block boundaries, and up to the last sector.
    write(MIB - 2 * ss, 4 * ss, 2);
    write(2 * MIB - 64 * 1024, 128 * 1024, 3);
    write(5 * MIB + 3 * ss, 256 * 1024, 4);
    write(8 * MIB - ss, ss, 5);
    write(MIB - 2 * ss, ss, 6);
    expect(settleOn({ m }, sda.flush())?.ok).toBe(true);
    done();
    expect(qemuImg('check', p)).toBe('No errors were found on the image.\n');
    expect(firstDifference(qemuRaw(p), expected)).toBe(-1);
  });

  it('4096-byte logical sectors (qemu 7.2 opens only 512: block/vhdx.c): hvkit\'s check and a second open agree', () => {
    const d = dir();
    const p = image(d, 'disk.vhdx', { format: 'vhdx', size: 8 * MIB, type: 'dynamic', blockSize: MIB, logicalSectorSize: 4096 });
    const { m, sda, done } = vmWith(p);
    expect([sda.logicalBlockSize, sda.capacity]).toEqual([4096, 2048]);
    expect(settleOn({ m }, sda.write(255, pattern(8192, 1)))?.ok).toBe(true);
    done();
    expect(checkImage(p).errors).toEqual([]);
    const disk = openDisk(p, { readOnly: true });
    const out = new Uint8Array(8 * MIB);
    disk.read(0, out);
    disk.close!();
    const expected = new Uint8Array(8 * MIB);
    expected.set(pattern(8192, 1), 255 * 4096);
    expect(firstDifference(out, expected)).toBe(-1);
  });

  it('a discard of whole blocks leaves them reading zeros in qemu, and the image checks clean', () => {
    const d = dir();
    const p = image(d, 'disk.vhdx', { format: 'vhdx', size: 4 * MIB, type: 'dynamic', blockSize: MIB });
    const { m, sda, done } = vmWith(p);
    expect(settleOn({ m }, sda.write(0, pattern(4 * MIB - 512 * 1024, 7).subarray(0, 256 * 1024)))?.ok).toBe(true);
    expect(settleOn({ m }, sda.write(2048, pattern(256 * 1024, 8)))?.ok).toBe(true);
    expect(settleOn({ m }, sda.discard(2048, 2048))?.ok).toBe(true);
    done();
    expect(qemuImg('check', p)).toBe('No errors were found on the image.\n');
    const raw = qemuRaw(p);
    expect(firstDifference(raw.subarray(0, 256 * 1024), pattern(4 * MIB - 512 * 1024, 7).subarray(0, 256 * 1024))).toBe(-1);
    expect(raw.subarray(MIB, 2 * MIB).every((b) => b === 0)).toBe(true);
  });
});

describe("qemu-img's images open and read", () => {
  /** 12 MiB with data in some places and zeros in others, so that qemu leaves blocks unallocated. */
  function source(d: string): { path: string; bytes: Uint8Array } {
    const bytes = new Uint8Array(12 * MIB);
    for (let at = 0; at < bytes.length; at += 3 * 512 * 1024) bytes.set(pattern(4096, at), at);
    bytes.set(pattern(MIB, 99), 9 * MIB);
    const path = join(d, 'src.raw');
    writeFileSync(path, bytes);
    return { path, bytes };
  }

  it.each([
    ['dynamic, 1 MiB blocks', 'subformat=dynamic,block_size=1M', 'dynamic'],
    ['dynamic, 8 MiB blocks, zero state off', 'subformat=dynamic,block_size=8M,block_state_zero=off', 'dynamic'],
    ['dynamic, the default blocks, a 2 MiB log', 'subformat=dynamic,log_size=2M', 'dynamic'],
    ['fixed', 'subformat=fixed', 'fixed'],
  ])('%s (qemu-img convert -o %s)', (_, options, type) => {
    const d = dir();
    const src = source(d);
    const p = join(d, 'q.vhdx');
    qemuImg('convert', '-f', 'raw', '-O', 'vhdx', '-o', options, src.path, p);
    const disk = openDisk(p, { readOnly: true }) as VhdxDisk;
    expect(disk.type).toBe(type);
    const out = new Uint8Array(12 * MIB);
    disk.read(0, out);
    disk.close();
    expect(firstDifference(out, src.bytes)).toBe(-1);
  });

  it('an empty image from qemu-img create: the guest reads zeros, writes, and qemu reads the write back', () => {
    const d = dir();
    const p = join(d, 'e.vhdx');
    qemuImg('create', '-f', 'vhdx', '-o', 'block_size=1M', p, '16M');
    const { m, sda, done } = vmWith(p);
    expect(sda.capacity).toBe(32768);
    const r = settleOn({ m }, sda.read(0, 64));
    expect(r?.ok && r.data!.every((b) => b === 0)).toBe(true);
    expect(settleOn({ m }, sda.write(4095, pattern(1024, 3)))?.ok).toBe(true);
    done();
    expect(qemuImg('check', p)).toBe('No errors were found on the image.\n');
    expect(firstDifference(qemuRaw(p).subarray(4095 * 512, 4097 * 512), pattern(1024, 3))).toBe(-1);
  });
});

describe('logs: each side replays the other', () => {
  /** Makes the current header name a log GUID again, as if the writer had stopped before clearing it. */
  function markDirty(p: string, logGuid: string): void {
    const f = new NodeFile(p, false);
    const heads = [HEADER1_OFFSET, HEADER2_OFFSET].map((at) => {
      const b = new Uint8Array(4096);
      f.readAt(at, b);
      return { at, h: Header.decode(b) };
    });
    const cur = heads[0]!.h.sequence_number > heads[1]!.h.sequence_number ? heads[0]! : heads[1]!;
    const b = Header.encode({ ...cur.h, log_guid: logGuid, checksum: 0 });
    seal(b, Header.offsets.checksum);
    f.writeAt(cur.at, b);
    f.close();
  }

  it("qemu's log, made dirty again: hvkit finds qemu's newest entry, replays it, and reads the same bytes", () => {
    const d = dir();
    const src = join(d, 'src.raw');
    const bytes = new Uint8Array(6 * MIB);
    bytes.set(pattern(3 * MIB, 5), MIB);
    writeFileSync(src, bytes);
    const p = join(d, 'q.vhdx');
    qemuImg('convert', '-f', 'raw', '-O', 'vhdx', '-o', 'subformat=dynamic,block_size=1M', src, p);
    // qemu writes one entry per metadata change, each with a log GUID of its own: take the newest.
    const f = new NodeFile(p, true);
    let newest = { seq: 0n, guid: '' };
    for (let at = MIB; at < 2 * MIB; at += 4096) {
      const b = new Uint8Array(64);
      f.readAt(at, b);
      const e = LogEntryHeader.decode(b);
      if (e.signature === Signature.LOG_ENTRY && e.sequence_number > newest.seq) newest = { seq: e.sequence_number, guid: e.log_guid };
    }
    f.close();
    expect(newest.seq).toBeGreaterThan(0n);
    markDirty(p, newest.guid);
    expect(() => openDisk(p, { readOnly: true })).toThrow('the log holds changes not yet applied');
    const disk = openDisk(p) as VhdxDisk;
    expect(disk.replayed).toBe(true);
    const out = new Uint8Array(6 * MIB);
    disk.read(0, out);
    disk.close();
    expect(firstDifference(out, bytes)).toBe(-1);
    expect(qemuImg('check', p)).toBe('No errors were found on the image.\n');
  });

  it("hvkit's log after a crash: qemu-img check -r all replays it, and so does hvkit; both read the write", () => {
    const d = dir();
    const p = image(d, 'c.vhdx', { format: 'vhdx', size: 8 * MIB, type: 'dynamic', blockSize: MIB });
    const f = new NodeFile(p, false);
    const disk = VhdxDisk.open(f, { readOnly: false, crash: 'after-log' });
    expect(() => disk.write(4096, pattern(8192, 9))).toThrow(VhdxCrash);
    f.close();
    const copy = join(d, 'copy.vhdx');
    copyFileSync(p, copy);
    // qemu refuses to open it read-only, as hvkit does, and replays it when asked to repair.
    expect(() => qemuImg('check', p)).toThrow(/contains a log that needs to be replayed/);
    qemuImg('check', '-r', 'all', p);
    expect(firstDifference(qemuRaw(p).subarray(4096 * 512, 4112 * 512), pattern(8192, 9))).toBe(-1);
    const ours = openDisk(copy) as VhdxDisk;
    expect(ours.replayed).toBe(true);
    ours.close();
    expect(qemuImg('check', copy)).toBe('No errors were found on the image.\n');
    expect(firstDifference(qemuRaw(copy).subarray(4096 * 512, 4112 * 512), pattern(8192, 9))).toBe(-1);
  });
});

describe('differencing disks on the host', () => {
  it('a child reads its parent and takes the guest\'s writes; the parent is untouched', () => {
    const d = dir();
    const parent = image(d, 'base.vhdx', { format: 'vhdx', size: 4 * MIB, type: 'dynamic', blockSize: MIB });
    const pd = openDisk(parent);
    pd.write(0, pattern(4 * MIB, 1));
    pd.close!();
    const child = image(d, 'child.vhdx', { format: 'vhdx', parent });
    const { m, sda, done } = vmWith(child);
    const r = settleOn({ m }, sda.read(2040, 16));
    expect(firstDifference(r?.ok ? r.data! : new Uint8Array(), pattern(4 * MIB, 1).subarray(2040 * 512, 2056 * 512))).toBe(-1);
    expect(settleOn({ m }, sda.write(2047, pattern(1024, 2)))?.ok).toBe(true);
    done();
    const expected = pattern(4 * MIB, 1);
    expected.set(pattern(1024, 2), 2047 * 512);
    const c = openDisk(child, { readOnly: true });
    const out = new Uint8Array(4 * MIB);
    c.read(0, out);
    c.close!();
    expect(firstDifference(out, expected)).toBe(-1);
    expect(firstDifference(qemuRaw(parent), pattern(4 * MIB, 1))).toBe(-1);
  });

  it('a missing parent, a parent written since, a parent chain that loops: refused naming why', () => {
    const d = dir();
    const parent = image(d, 'base.vhdx', { format: 'vhdx', size: 4 * MIB });
    const child = image(d, 'child.vhdx', { format: 'vhdx', parent });
    const moved = join(d, 'moved.vhdx');
    copyFileSync(parent, moved);
    rmSync(parent);
    expect(() => openDisk(child)).toThrow(new DiskOpenError(child, 'its parent is not found (relative_path "base.vhdx", absolute_win32_path ' + JSON.stringify(parent) + ')'));
    copyFileSync(moved, parent);
    const w = openDisk(parent);
    w.write(0, new Uint8Array(512));
    w.close!();
    expect(() => openDisk(child)).toThrow(/parent_linkage: .* is not the parent's DataWriteGuid/);
    // A child named as its own parent would open itself forever: the chain has a bound.
    const loop = join(d, 'loop.vhdx');
    copyFileSync(child, loop);
    copyFileSync(loop, parent);
    expect(() => openDisk(loop, { readOnly: true })).toThrow('its chain of parents is longer than 16');
  });
});

describe('opening', () => {
  it('a second writer is refused; readers are not', () => {
    const d = dir();
    const p = image(d, 'a.vhdx', { format: 'vhdx', size: 4 * MIB });
    const w = openDisk(p);
    expect(() => openDisk(p)).toThrow(new DiskOpenError(p, 'is already open for writing by this VM (a second writer is refused)'));
    const r = openDisk(p, { readOnly: true });
    r.close!();
    w.close!();
  });

  it('a truncated image and a VHDX given as a DVD are refused with the reason', () => {
    const d = dir();
    const p = image(d, 'a.vhdx', { format: 'vhdx', size: 4 * MIB });
    expect(() => openDisk(p, { dvd: true })).toThrow(new DiskOpenError(p, 'is a VHDX image; a DVD drive takes an ISO (raw) image'));
    writeFileSync(p, readFileSync(p).subarray(0, 2 * MIB));
    expect(() => openDisk(p)).toThrow(new DiskOpenError(p, 'is not a usable VHDX image: file: 2097152 bytes is shorter than the 4 MiB a VHDX takes before its data (header section, log and metadata regions): the image is truncated'));
  });
});
