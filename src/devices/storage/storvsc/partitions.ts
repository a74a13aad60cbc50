// The partition scan a new disk gets (block/partitions/check.c with efi.c before msdos.c): a GPT
// behind a protective MBR, else an MBR with its primary and logical partitions. The line it
// prints is " sda: sda1 sda2" (" sda: sda1 sda2 < sda5 sda6 >" with logicals); nothing when
// there is no table.
import { crc32 } from '../crc.js';

/** A sector reader: `count` 512-byte sectors from `sector`, or undefined on an I/O error. */
export type SectorReader = (sector: number, count: number) => Uint8Array | undefined;

const le32 = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
const le64 = (b: Uint8Array, at: number): number => le32(b, at) + le32(b, at + 4) * 2 ** 32;

/** EFI_PMBR_OSTYPE_EFI_GPT and the extended partition types msdos.c follows. */
const GPT_PROTECTIVE = 0xee;
const EXTENDED = new Set([0x05, 0x0f, 0x85]);

export interface PartitionTable {
  readonly type: 'gpt' | 'msdos';
  /** Partition numbers and their extents, in 512-byte sectors. */
  readonly partitions: readonly { readonly number: number; readonly start: number; readonly sectors: number }[];
  /** The line check_partition prints. */
  readonly line: string;
}

/**
 * Scans a disk of `sectors` 512-byte sectors named `name`, whose logical blocks are `blockSize`
 * bytes: both tables count in logical blocks (a 4Kn disk's LBA 1 is byte 4096), and Linux turns
 * them into 512-byte sectors (efi.c and msdos.c multiply by logical_block_size / 512).
 */
export function scanPartitions(name: string, sectors: number, read: SectorReader, blockSize = 512): PartitionTable | undefined {
  const ssz = blockSize / 512;
  const mbr = read(0, 1);
  if (!mbr) return undefined;
  const hasSig = mbr[510] === 0x55 && mbr[511] === 0xaa;
  if (hasSig && [0, 1, 2, 3].some((i) => mbr[446 + 16 * i + 4] === GPT_PROTECTIVE)) {
    const gpt = scanGpt(name, sectors, read, ssz);
    if (gpt) return gpt;
  }
  if (!hasSig) return undefined;
  return scanMsdos(name, sectors, mbr, read, ssz);
}

/** efi.c is_gpt_valid for the primary header at LBA 1, then its entries. */
function scanGpt(name: string, sectors: number, read: SectorReader, ssz: number): PartitionTable | undefined {
  const lastLba = Math.floor(sectors / ssz) - 1;
  const h = read(ssz, 1);
  if (!h || String.fromCharCode(...h.subarray(0, 8)) !== 'EFI PART') return undefined;
  const headerSize = le32(h, 12);
  if (headerSize < 92 || headerSize > 512 * ssz) return undefined;
  const copy = h.slice(0, headerSize);
  copy.fill(0, 16, 20);
  if (crc32(copy) !== le32(h, 16)) return undefined;
  if (le64(h, 24) !== 1) return undefined;
  const firstUsable = le64(h, 40);
  const lastUsable = le64(h, 48);
  if (lastUsable > lastLba || firstUsable > lastUsable) return undefined;
  const entriesLba = le64(h, 72);
  const count = le32(h, 80);
  const entrySize = le32(h, 84);
  if (entrySize < 128 || entrySize > 4096 || count === 0 || count > 4096) return undefined;
  const bytes = count * entrySize;
  const entries = read(entriesLba * ssz, Math.ceil(bytes / 512));
  if (!entries || crc32(entries.subarray(0, bytes)) !== le32(h, 88)) return undefined;
  const partitions: { number: number; start: number; sectors: number }[] = [];
  for (let i = 0; i < count; i++) {
    const e = entries.subarray(i * entrySize, (i + 1) * entrySize);
    if (e.subarray(0, 16).every((x) => x === 0)) continue;
    const start = le64(e, 32);
    const end = le64(e, 40);
    if (start > end || end > lastUsable || start < firstUsable) continue;
    partitions.push({ number: i + 1, start: start * ssz, sectors: (end - start + 1) * ssz });
  }
  return { type: 'gpt', partitions, line: ` ${name}:${partitions.map((p) => ` ${partName(name, p.number)}`).join('')}` };
}

/** msdos.c: the four primaries (boot indicators 0 or 0x80), then the chain of an extended one. */
function scanMsdos(name: string, sectors: number, mbr: Uint8Array, read: SectorReader, ssz: number): PartitionTable | undefined {
  for (let i = 0; i < 4; i++) {
    const boot = mbr[446 + 16 * i]!;
    if (boot !== 0 && boot !== 0x80) return undefined;
    // A protective MBR is the EFI parser's: msdos.c leaves it alone.
    if (mbr[446 + 16 * i + 4] === GPT_PROTECTIVE) return undefined;
  }
  const partitions: { number: number; start: number; sectors: number }[] = [];
  let line = ` ${name}:`;
  let next = 5;
  for (let slot = 1; slot <= 4; slot++) {
    const p = mbr.subarray(446 + 16 * (slot - 1), 446 + 16 * slot);
    const type = p[4]!;
    const start = le32(p, 8) * ssz;
    const size = le32(p, 12) * ssz;
    if (size === 0) continue;
    if (start >= sectors) continue;
    if (EXTENDED.has(type)) {
      // The extended partition itself is shown as two sectors, or one logical block (msdos.c), its logicals inside < >.
      partitions.push({ number: slot, start, sectors: Math.min(size, Math.max(ssz, 2)) });
      line += ` ${partName(name, slot)} <`;
      let ebr = start;
      for (let hops = 0; hops < 128 && ebr < sectors; hops++) {
        const b = read(ebr, 1);
        if (!b || b[510] !== 0x55 || b[511] !== 0xaa) break;
        const l = b.subarray(446, 462);
        const lsize = le32(l, 12) * ssz;
        if (lsize > 0 && l[4] !== 0 && !EXTENDED.has(l[4]!)) {
          partitions.push({ number: next, start: ebr + le32(l, 8) * ssz, sectors: lsize });
          line += ` ${partName(name, next)}`;
          next++;
        }
        const link = b.subarray(462, 478);
        if (!EXTENDED.has(link[4]!) || le32(link, 12) === 0) break;
        ebr = start + le32(link, 8) * ssz;
      }
      line += ' >';
      continue;
    }
    partitions.push({ number: slot, start, sectors: size });
    line += ` ${partName(name, slot)}`;
  }
  // A valid signature with no entries is still a (empty) DOS table: " sda:" alone.
  return { type: 'msdos', partitions, line };
}

/** disk_name(): a digit after a name ending in a digit gets a "p" ("nvme0n1p1"); sda → sda1. */
export const partName = (disk: string, n: number): string => (/\d$/.test(disk) ? `${disk}p${n}` : `${disk}${n}`);
