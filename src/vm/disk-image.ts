// Disk images as files, for `hvkit disk`: making one (raw, or VHDX fixed, dynamic or differencing),
// saying what one is (qemu-img info's lines and more), and checking one (every structure valid,
// no two extents of the file overlapping, a dirty log reported, a child's parent found and
// unchanged).
import { existsSync, rmSync, statSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { createVhdx, VhdxDisk, VhdxFormatError, type VhdxType } from '../devices/storage/vhdx/vhdx.js';
import { DiskOpenError, NodeFile, openDisk } from './disk-file.js';

export type ImageFormat = 'raw' | 'vhdx';

export interface CreateImageOptions {
  readonly format: ImageFormat;
  /** Bytes; a differencing VHDX takes its parent's. */
  readonly size?: number;
  readonly type?: VhdxType;
  readonly blockSize?: number;
  readonly logicalSectorSize?: 512 | 4096;
  readonly physicalSectorSize?: 512 | 4096;
  /** A differencing VHDX's parent (a VHDX). */
  readonly parent?: string;
}

/** The format a path's extension names: .vhdx is VHDX, anything else raw. */
export const formatOf = (path: string): ImageFormat => (/\.vhdx$/i.test(path) ? 'vhdx' : 'raw');

/** The `hvkit disk create` argument or option behind each field createVhdx checks. */
const CREATE_OPTION: Readonly<Record<string, string>> = { size: 'size', block_size: '--block-size', parent: '--parent' };

/** Makes a new image; refuses a path that exists. Throws DiskOpenError naming the path. */
export function createImage(path: string, o: CreateImageOptions): void {
  if (existsSync(path)) throw new DiskOpenError(path, 'already exists (hvkit disk create does not overwrite)');
  const type = o.type ?? (o.parent ? 'differencing' : 'dynamic');
  if (o.format === 'raw' && (o.parent || o.type || o.blockSize)) throw new DiskOpenError(path, 'a raw image has no type, block size or parent (those are VHDX options)');
  if (type === 'differencing' && !o.parent) throw new DiskOpenError(path, 'a differencing disk needs --parent');
  if (o.parent && type !== 'differencing') throw new DiskOpenError(path, `a ${type} disk has no parent`);
  if (o.format === 'vhdx' && !o.parent && o.size === undefined) throw new DiskOpenError(path, 'needs a size');
  const file = new NodeFile(path, false, { create: true });
  try {
    if (o.format === 'raw') {
      if (o.size === undefined || o.size % 512 !== 0) throw new DiskOpenError(path, `a raw image's size must be whole 512-byte sectors, not ${o.size}`);
      file.truncate(o.size);
    } else {
      const parent = o.parent ? openParentForChild(path, o.parent) : undefined;
      try {
        createVhdx(file, {
          type,
          ...(o.size !== undefined && !parent ? { size: o.size } : {}),
          ...(o.blockSize !== undefined ? { blockSize: o.blockSize } : {}),
          ...(o.logicalSectorSize ? { logicalSectorSize: o.logicalSectorSize } : {}),
          ...(o.physicalSectorSize ? { physicalSectorSize: o.physicalSectorSize } : {}),
          ...(parent ? { parent: { disk: parent, relativePath: relative(dirname(resolve(path)), resolve(o.parent!)), absolutePath: resolve(o.parent!) } } : {}),
        });
      } finally {
        parent?.close();
      }
    }
    file.close();
  } catch (e) {
    file.close();
    rmSync(path, { force: true });
    if (e instanceof VhdxFormatError) throw new DiskOpenError(path, `cannot be made: ${CREATE_OPTION[e.field] ?? e.field} ${e.reason}`);
    throw e;
  }
}

function openParentForChild(child: string, parentPath: string): VhdxDisk {
  const parent = openDisk(parentPath, { readOnly: true });
  if (!(parent instanceof VhdxDisk)) {
    parent.close?.();
    throw new DiskOpenError(child, `its parent ${parentPath} is not a VHDX image`);
  }
  return parent;
}

/** What `hvkit disk info` reports. */
export interface ImageInfo {
  readonly image: string;
  readonly format: ImageFormat;
  readonly virtualSize: number;
  /** Bytes the file occupies on the host (its allocated blocks). */
  readonly diskSize: number;
  readonly logicalSectorSize: number;
  readonly physicalSectorSize: number;
  readonly vhdx?: {
    readonly type: VhdxType;
    readonly blockSize: number;
    readonly allocatedBlocks: number;
    readonly dataWriteGuid: string;
    readonly parent?: string;
  };
}

export function imageInfo(path: string): ImageInfo {
  const disk = openDisk(path, { readOnly: true });
  try {
    const common = {
      image: path,
      virtualSize: disk.sectorCount * disk.sectorSize,
      diskSize: allocatedBytes(path),
      logicalSectorSize: disk.sectorSize,
      physicalSectorSize: disk.physicalSectorSize,
    };
    if (!(disk instanceof VhdxDisk)) return { ...common, format: 'raw' };
    const parent = disk.parentLocator?.relativePath ?? disk.parentLocator?.absoluteWin32Path;
    return {
      ...common,
      format: 'vhdx',
      vhdx: { type: disk.type, blockSize: disk.blockSize, allocatedBlocks: disk.allocatedBlocks, dataWriteGuid: disk.currentHeader.data_write_guid, ...(parent !== undefined ? { parent } : {}) },
    };
  } finally {
    disk.close?.();
  }
}

/** The file's allocated bytes: st_blocks are 512-byte units on every POSIX system. */
function allocatedBytes(path: string): number {
  const st = statSync(path);
  return st.blocks !== undefined && st.blocks >= 0 ? st.blocks * 512 : st.size;
}

/** Bytes as qemu-img prints sizes (size_to_str: three significant digits, binary units). */
export function qemuSize(bytes: number): string {
  const units = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];
  let i = 0;
  // qemu switches to the next unit once the number would reach 1000 of this one.
  while (i < units.length - 1 && bytes * 1.024 >= 1024 ** (i + 1)) i++;
  return `${Number((bytes / 1024 ** i).toPrecision(3))} ${units[i]}B`;
}

/** qemu-img info's lines for the image, then hvkit's own. */
export function infoLines(i: ImageInfo): string[] {
  const lines = [`image: ${i.image}`, `file format: ${i.format}`, `virtual size: ${qemuSize(i.virtualSize)} (${i.virtualSize} bytes)`, `disk size: ${qemuSize(i.diskSize)}`];
  if (i.vhdx) {
    lines.push(`cluster_size: ${i.vhdx.blockSize}`, `type: ${i.vhdx.type}`, `allocated blocks: ${i.vhdx.allocatedBlocks}`, `data write GUID: {${i.vhdx.dataWriteGuid}}`);
    if (i.vhdx.parent !== undefined) lines.push(`backing file: ${i.vhdx.parent}`);
  }
  lines.push(`sector size: ${i.logicalSectorSize} logical, ${i.physicalSectorSize} physical`);
  return lines;
}

export interface CheckResult {
  readonly image: string;
  /** Every problem found, each naming the structure at fault. Empty: the image is sound. */
  readonly errors: string[];
}

/**
 * Checks an image without changing it: it opens (headers, region table, metadata, BAT, parent),
 * its log is clean, and no two of its extents (regions, payload blocks, sector bitmaps) overlap.
 */
export function checkImage(path: string): CheckResult {
  if (!existsSync(path)) throw new DiskOpenError(path, 'no such file');
  let disk;
  try {
    disk = openDisk(path, { readOnly: true });
  } catch (e) {
    if (!(e instanceof DiskOpenError)) throw e;
    return { image: path, errors: [e.path === path ? e.reason : e.message] };
  }
  try {
    if (!(disk instanceof VhdxDisk)) return { image: path, errors: [] };
    const errors: string[] = [];
    const extents = disk.extents().sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < extents.length; i++) {
      const a = extents[i - 1]!;
      const b = extents[i]!;
      if (a.offset + a.length > b.offset) errors.push(`${b.what} at ${b.offset} overlaps ${a.what} (${a.offset}..${a.offset + a.length - 1})`);
    }
    return { image: path, errors };
  } finally {
    disk.close?.();
  }
}
