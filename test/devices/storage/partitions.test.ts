// The strings of sd's capacity line against real captures (string_get_size), and the partition
// scan on an MBR (primaries and logicals), a GPT (with its CRCs), and garbage.
import fc from 'fast-check';
import { fuzz } from '../../fuzz/fuzz.js';
import { describe, expect, it } from 'vitest';
import { crc32 } from '../../../src/devices/storage/crc.js';
import { scanPartitions } from '../../../src/devices/storage/storvsc/partitions.js';
import { stringGetSize } from '../../../src/devices/storage/storvsc/strings.js';
import { sdDiskName } from '../../../src/devices/storage/storvsc/sd.js';
import { RUNS } from '../../vmbus/fuzz-runs.js';

describe('string_get_size', () => {
  it.each([
    // A local Hyper-V guest's, an Azure guest's and the lines.
    [266338304, '136 GB', '127 GiB'],
    [314572800, '161 GB', '150 GiB'],
    [1073741824, '550 GB', '512 GiB'],
    [2097152, '1.07 GB', '1.00 GiB'],
    [16384, '8.39 MB', '8.00 MiB'],
    [1, '512 B', '512 B'],
  ])('%i 512-byte blocks: (%s/%s)', (blocks, si, bin) => {
    expect(stringGetSize(blocks, 512, 'si')).toBe(si);
    expect(stringGetSize(blocks, 512, 'binary')).toBe(bin);
  });
});

describe('sd names', () => {
  it('sda..sdz, then sdaa (sd_format_disk_name)', () => {
    expect([0, 1, 25, 26, 27, 701, 702].map(sdDiskName)).toEqual(['sda', 'sdb', 'sdz', 'sdaa', 'sdab', 'sdzz', 'sdaaa']);
  });
});

function image(sectors: number) {
  const disk = new Uint8Array(sectors * 512);
  const read = (s: number, n: number) => (s + n <= sectors ? disk.slice(s * 512, (s + n) * 512) : undefined);
  return { disk, read };
}

describe('the partition scan', () => {
  it('an MBR with an extended partition: " sda: sda1 sda2 < sda5 sda6 >"', () => {
    const { disk, read } = image(4096);
    const dv = new DataView(disk.buffer);
    const entry = (sector: number, i: number, type: number, start: number, size: number) => {
      dv.setUint8(sector * 512 + 446 + 16 * i + 4, type);
      dv.setUint32(sector * 512 + 446 + 16 * i + 8, start, true);
      dv.setUint32(sector * 512 + 446 + 16 * i + 12, size, true);
    };
    const sig = (sector: number) => disk.set([0x55, 0xaa], sector * 512 + 510);
    entry(0, 0, 0x83, 64, 512);
    entry(0, 1, 0x05, 1024, 2048);
    sig(0);
    entry(1024, 0, 0x83, 16, 100);
    entry(1024, 1, 0x05, 512, 600);
    sig(1024);
    entry(1536, 0, 0x82, 16, 100);
    sig(1536);
    expect(scanPartitions('sda', 4096, read)?.line).toBe(' sda: sda1 sda2 < sda5 sda6 >');
  });

  it('a GPT behind a protective MBR; a bad header CRC means no GPT', () => {
    const { disk, read } = image(4096);
    const dv = new DataView(disk.buffer);
    disk[446 + 4] = 0xee;
    dv.setUint32(446 + 8, 1, true);
    dv.setUint32(446 + 12, 4095, true);
    disk.set([0x55, 0xaa], 510);
    const h = 512;
    disk.set(new TextEncoder().encode('EFI PART'), h);
    dv.setUint32(h + 8, 0x00010000, true);
    dv.setUint32(h + 12, 92, true);
    dv.setUint32(h + 24, 1, true);
    dv.setUint32(h + 32, 4095, true);
    dv.setUint32(h + 40, 34, true);
    dv.setUint32(h + 48, 4062, true);
    dv.setUint32(h + 72, 2, true);
    dv.setUint32(h + 80, 128, true);
    dv.setUint32(h + 84, 128, true);
    const e = 1024;
    for (const [i, start, end] of [[0, 2048, 2099], [2, 3000, 3999]] as const) {
      disk[e + i * 128] = 0xaf;
      dv.setUint32(e + i * 128 + 32, start, true);
      dv.setUint32(e + i * 128 + 40, end, true);
    }
    dv.setUint32(h + 88, crc32(disk.subarray(e, e + 128 * 128)), true);
    dv.setUint32(h + 16, crc32(disk.subarray(h, h + 92)), true);
    const gpt = scanPartitions('sda', 4096, read)!;
    expect([gpt.type, gpt.line]).toEqual(['gpt', ' sda: sda1 sda3']);
    disk[h + 40] = 35;
    // The header no longer matches its CRC: not a GPT; a protective MBR is no DOS table either.
    expect(scanPartitions('sda', 4096, read)).toBeUndefined();
  });

  it.each([512, 4096])('a GPT on a disk of %i-byte logical blocks: LBAs count in blocks, extents come out in 512-byte sectors', (bs) => {
    const blocks = 1024;
    const { disk, read } = image((blocks * bs) / 512);
    const dv = new DataView(disk.buffer);
    disk[446 + 4] = 0xee;
    dv.setUint32(446 + 8, 1, true);
    dv.setUint32(446 + 12, blocks - 1, true);
    disk.set([0x55, 0xaa], 510);
    // The primary header in LBA 1, its 128 entries from LBA 2 (efi.c reads both by logical block).
    const h = bs;
    const e = 2 * bs;
    disk.set(new TextEncoder().encode('EFI PART'), h);
    dv.setUint32(h + 12, 92, true);
    dv.setUint32(h + 24, 1, true);
    dv.setUint32(h + 32, blocks - 1, true);
    dv.setUint32(h + 40, 40, true);
    dv.setUint32(h + 48, blocks - 40, true);
    dv.setUint32(h + 72, 2, true);
    dv.setUint32(h + 80, 128, true);
    dv.setUint32(h + 84, 128, true);
    disk[e] = 0xaf;
    dv.setUint32(e + 32, 256, true);
    dv.setUint32(e + 40, 511, true);
    dv.setUint32(h + 88, crc32(disk.subarray(e, e + 128 * 128)), true);
    dv.setUint32(h + 16, crc32(disk.subarray(h, h + 92)), true);
    const gpt = scanPartitions('sda', (blocks * bs) / 512, read, bs)!;
    expect(gpt.line).toBe(' sda: sda1');
    expect(gpt.partitions).toEqual([{ number: 1, start: (256 * bs) / 512, sectors: (256 * bs) / 512 }]);
  });

  it('an MBR on a 4Kn disk: starts and sizes are in 4 KiB blocks; the extended partition shows as one block', () => {
    const { disk, read } = image(8 * 1024);
    const dv = new DataView(disk.buffer);
    const entry = (at: number, i: number, type: number, start: number, size: number) => {
      dv.setUint8(at + 446 + 16 * i + 4, type);
      dv.setUint32(at + 446 + 16 * i + 8, start, true);
      dv.setUint32(at + 446 + 16 * i + 12, size, true);
    };
    entry(0, 0, 0x83, 8, 100);
    entry(0, 1, 0x05, 200, 300);
    disk.set([0x55, 0xaa], 510);
    // The first EBR, at block 200: one logical partition 4 blocks into it.
    entry(200 * 4096, 0, 0x83, 4, 50);
    disk.set([0x55, 0xaa], 200 * 4096 + 510);
    const t = scanPartitions('sda', 8 * 1024, read, 4096)!;
    expect(t.line).toBe(' sda: sda1 sda2 < sda5 >');
    expect(t.partitions).toEqual([
      { number: 1, start: 64, sectors: 800 },
      { number: 2, start: 1600, sectors: 8 },
      { number: 5, start: 1632, sectors: 400 },
    ]);
  });

  it('no signature: no table and no line; arbitrary sectors never throw', () => {
    expect(scanPartitions('sda', 64, image(64).read)).toBeUndefined();
    fuzz(
      'storage.partition-table',
      fc.property(fc.uint8Array({ minLength: 512 * 8, maxLength: 512 * 8 }), (bytes) => {
        bytes[510] = 0x55;
        bytes[511] = 0xaa;
        const read = (s: number, n: number) => (s + n <= 8 ? bytes.slice(s * 512, (s + n) * 512) : undefined);
        scanPartitions('sda', 8, read);
      }),
      RUNS,
    );
  });
});
