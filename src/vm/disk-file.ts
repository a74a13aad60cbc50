// Disk images on the host's file system: the BlockFile the device layer's formats use, raw images,
// and opening an image by what it is (a VHDX by its signature, anything else raw). A writer holds
// the image exclusively, as Hyper-V does: a second writer, in this process or another, is refused.
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, readSync, readvSync, realpathSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { checkRange, DiskIoError, inRange, type BlockBackend, type BlockFile, type ReadList } from '../devices/storage/backend.js';
import { VhdxDisk, VhdxFormatError, type ParentLocator } from '../devices/storage/vhdx/vhdx.js';
import { subarrayOf } from '../memory/typed-arrays.js';

/** An image cannot be used as asked: names the path and why. */
export class DiskOpenError extends Error {
  override readonly name = 'DiskOpenError';
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

/** Buffers one preadv takes at most (Linux's IOV_MAX). */
const IOV_MAX = 1024;

/** Images this process holds open for writing, by real path. */
const writers = new Set<string>();

/** Whether a process with this id exists (a stale lock's owner is gone). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * An exclusive writer's lock: `<image>.lock` created exclusively with our pid. A lock whose
 * process is gone is stale and taken over. Node has no OFD or flock locks, so a lock file it is.
 */
function lockForWriting(path: string): () => void {
  const real = realpathSync(path);
  if (writers.has(real)) throw new DiskOpenError(path, 'is already open for writing by this VM (a second writer is refused)');
  const lock = `${real}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, `${process.pid}\n`, { flag: 'wx' });
      writers.add(real);
      return () => {
        writers.delete(real);
        try {
          unlinkSync(lock);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new DiskOpenError(path, `cannot create its lock ${lock}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      let owner: number;
      try {
        owner = Number.parseInt(readFileSync(lock, 'utf8'), 10);
      } catch {
        // Released between our try and this read: the next attempt takes it.
        continue;
      }
      if (Number.isSafeInteger(owner) && owner > 0 && alive(owner)) throw new DiskOpenError(path, `is open for writing by process ${owner} (a second writer is refused; its lock is ${lock})`);
      try {
        unlinkSync(lock);
      } catch {
        // Gone already: the next attempt takes it.
      }
    }
  }
  throw new DiskOpenError(path, `cannot take its lock ${lock}`);
}

/** The DiskIoError a failed file operation becomes (one already is passes as it is). */
function ioError(path: string, what: string, e: unknown): DiskIoError {
  if (e instanceof DiskIoError) return e;
  return new DiskIoError(`${path}: ${what} failed: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
}

/** A file opened for positioned I/O. */
export class NodeFile implements BlockFile {
  private fd: number | undefined;
  private unlock: (() => void) | undefined;

  constructor(
    readonly path: string,
    readonly readOnly: boolean,
    options: { create?: boolean } = {},
  ) {
    if (!options.create && !existsSync(path)) throw new DiskOpenError(path, 'no such file');
    if (!readOnly && !options.create) this.unlock = lockForWriting(path);
    try {
      this.fd = openSync(path, readOnly ? 'r' : options.create ? 'wx+' : 'r+');
    } catch (e) {
      this.unlock?.();
      throw new DiskOpenError(path, `cannot open: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    if (options.create && !readOnly) {
      try {
        this.unlock = lockForWriting(path);
      } catch (e) {
        // The file was just created: it goes again with its descriptor.
        closeSync(this.fd);
        this.fd = undefined;
        unlinkSync(path);
        throw e;
      }
    }
  }

  private get handle(): number {
    if (this.fd === undefined) throw new DiskIoError(`${this.path} is closed`);
    return this.fd;
  }

  size(): number {
    return this.io('stat', () => fstatSync(this.handle).size);
  }

  /** Runs a file operation; the host's I/O errors (EIO, ENOSPC) become DiskIoError, which the target reports as a medium error. */
  private io<T>(what: string, f: () => T): T {
    try {
      return f();
    } catch (e) {
      throw ioError(this.path, what, e);
    }
  }

  readAt(offset: number, out: Uint8Array): void {
    this.readInto(offset, out, 0, out.length);
  }

  readInto(offset: number, dst: Uint8Array, at: number, length: number): void {
    // io() written out: no closure made for each read of the data path.
    try {
      let done = 0;
      while (done < length) {
        const n = readSync(this.handle, dst, at + done, length - done, offset + done);
        if (n === 0) {
          // Past the end of the file: zeros.
          dst.fill(0, at + done, at + length);
          return;
        }
        done += n;
      }
    } catch (e) {
      throw ioError(this.path, 'read', e);
    }
  }

  readIntoMany(dst: Uint8Array, offsets: Float64Array, ats: Float64Array, lengths: Float64Array, from: number, to: number): number {
    // readInto's loop for each read, back to back: nothing else runs between the reads.
    for (let i = from; i < to; i++) {
      try {
        const fd = this.handle;
        const offset = offsets[i]!;
        const at = ats[i]!;
        const length = lengths[i]!;
        let done = 0;
        while (done < length) {
          const n = readSync(fd, dst, at + done, length - done, offset + done);
          if (n === 0) {
            dst.fill(0, at + done, at + length);
            break;
          }
          done += n;
        }
      } catch {
        // The error readInto would have thrown (ioError) tells nothing more to a caller that
        // only learns which read failed.
        return i;
      }
    }
    return to;
  }

  readvAt(offset: number, outs: readonly Uint8Array[]): void {
    this.io('read', () => {
      let at = offset;
      for (let first = 0; first < outs.length; ) {
        // One preadv for the buffers left (at most IOV_MAX of them); a short read finishes the
        // buffer it stopped in with readAt, which also zeroes what lies past the end of the file.
        const batch = first === 0 && outs.length <= IOV_MAX ? outs : outs.slice(first, first + IOV_MAX);
        let n = readvSync(this.handle, batch as Uint8Array[], at);
        for (const out of batch) {
          if (n >= out.length) {
            n -= out.length;
          } else {
            this.readAt(at + n, out.subarray(n));
            n = 0;
          }
          at += out.length;
          first++;
        }
      }
    });
  }

  writeAt(offset: number, data: Uint8Array): void {
    if (this.readOnly) throw new DiskIoError(`${this.path} is open read-only`);
    this.io('write', () => {
      let done = 0;
      while (done < data.length) done += writeSync(this.handle, data, done, data.length - done, offset + done);
    });
  }

  truncate(bytes: number): void {
    this.io('truncate', () => ftruncateSync(this.handle, bytes));
  }

  flush(): void {
    this.io('flush', () => fsyncSync(this.handle));
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
    this.unlock?.();
    this.unlock = undefined;
  }
}

/** A raw image: block n at byte n × sector size. A raw file cannot deallocate, so it does not unmap. */
export class RawDisk implements BlockBackend {
  readonly sectorCount: number;
  readonly physicalSectorSize: number;

  constructor(
    readonly file: BlockFile,
    readonly sectorSize = 512,
  ) {
    const size = file.size();
    if (size % sectorSize !== 0) throw new DiskOpenError(file.path, `${size} bytes is not a whole number of ${sectorSize}-byte sectors`);
    if (size === 0) throw new DiskOpenError(file.path, 'is empty');
    this.sectorCount = size / sectorSize;
    this.physicalSectorSize = sectorSize;
  }

  get readOnly(): boolean {
    return this.file.readOnly;
  }

  get description(): string {
    return `raw ${this.file.path}`;
  }

  read(lba: number, out: Uint8Array): void {
    checkRange(this, lba, out.length);
    this.file.readAt(lba * this.sectorSize, out);
  }

  readInto(lba: number, dst: Uint8Array, at: number, bytes: number): void {
    checkRange(this, lba, bytes);
    const file = this.file;
    if (file.readInto) file.readInto(lba * this.sectorSize, dst, at, bytes);
    else file.readAt(lba * this.sectorSize, subarrayOf(dst, at, at + bytes));
  }

  readIntoMany(dst: Uint8Array, reads: ReadList, from: number, to: number): number {
    // readInto's range check of each first (it has no effect): the reads before the first that
    // fails it are made, then that one fails.
    let end = to;
    for (let i = from; i < to; i++) {
      if (!inRange(this, reads.lba[i]!, reads.bytes[i]!)) {
        end = i;
        break;
      }
    }
    const file = this.file;
    const offsets = (this.offsets = this.offsets.length >= to ? this.offsets : new Float64Array(Math.max(to, 2 * this.offsets.length)));
    for (let i = from; i < end; i++) offsets[i] = reads.lba[i]! * this.sectorSize;
    if (file.readIntoMany) {
      const stop = file.readIntoMany(dst, offsets, reads.at, reads.bytes, from, end);
      if (stop < end) return stop;
    } else {
      for (let i = from; i < end; i++) {
        try {
          this.readInto(reads.lba[i]!, dst, reads.at[i]!, reads.bytes[i]!);
        } catch (e) {
          if (e instanceof DiskIoError) return i;
          throw e;
        }
      }
    }
    return end;
  }
  /** File offsets of readIntoMany's reads, reused. */
  private offsets = new Float64Array(0);

  readv(lba: number, outs: readonly Uint8Array[]): void {
    let bytes = 0;
    for (const out of outs) bytes += out.length;
    checkRange(this, lba, bytes);
    for (const out of outs) if (out.length % this.sectorSize !== 0) throw new DiskIoError(`${out.length} bytes is not a whole number of ${this.sectorSize}-byte blocks`);
    if (this.file.readvAt) return this.file.readvAt(lba * this.sectorSize, outs);
    let at = lba * this.sectorSize;
    for (const out of outs) {
      this.file.readAt(at, out);
      at += out.length;
    }
  }

  write(lba: number, data: Uint8Array, fua = false): void {
    checkRange(this, lba, data.length);
    this.file.writeAt(lba * this.sectorSize, data);
    if (fua) this.file.flush();
  }

  flush(): void {
    if (!this.file.readOnly) this.file.flush();
  }

  close(): void {
    this.file.close();
  }
}

/** What to open an image as. */
export interface OpenDiskOptions {
  readonly readOnly?: boolean;
  /** A DVD's disc: read-only, 2048-byte sectors for a raw ISO. */
  readonly dvd?: boolean;
  /** Where a relative path starts (a VM file's folder). */
  readonly relativeTo?: string;
}

/** The VHDX file identifier's signature at offset 0 ("vhdxfile", MS-VHDX 2.2.1). */
const VHDX_SIGNATURE = 'vhdxfile';

/** How many differencing disks a chain may stack: a bound, so that a loop of parents ends. */
export const MAX_PARENT_CHAIN = 16;

/**
 * Where a differencing disk's parent is: its relative_path from the child's folder, else its
 * absolute_win32_path, with Windows separators read as '/' (Hyper-V writes ".\\parent.vhdx").
 */
export function parentPath(childPath: string, locator: ParentLocator): string {
  const posix = (p: string) => p.replace(/\\/g, '/');
  const candidates: string[] = [];
  if (locator.relativePath) candidates.push(resolve(dirname(childPath), posix(locator.relativePath)));
  if (locator.absoluteWin32Path) candidates.push(posix(locator.absoluteWin32Path));
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new DiskOpenError(childPath, `its parent is not found (relative_path ${JSON.stringify(locator.relativePath ?? '')}, absolute_win32_path ${JSON.stringify(locator.absoluteWin32Path ?? '')})`);
  return found;
}

function openVhdx(file: NodeFile, readOnly: boolean, depth: number): VhdxDisk {
  try {
    return VhdxDisk.open(file, {
      readOnly,
      openParent: (locator) => {
        if (depth + 1 >= MAX_PARENT_CHAIN) throw new DiskOpenError(file.path, `its chain of parents is longer than ${MAX_PARENT_CHAIN}`);
        const parentFile = new NodeFile(parentPath(file.path, locator), true);
        try {
          return openImage(parentFile, { readOnly: true }, depth + 1);
        } catch (e) {
          parentFile.close();
          throw e;
        }
      },
    });
  } catch (e) {
    if (e instanceof VhdxFormatError || e instanceof DiskIoError) throw new DiskOpenError(file.path, `is not a usable VHDX image: ${e.message}`);
    throw e;
  }
}

function isVhdx(file: BlockFile): boolean {
  const head = new Uint8Array(8);
  file.readAt(0, head);
  return String.fromCharCode(...head) === VHDX_SIGNATURE;
}

function openImage(file: NodeFile, options: OpenDiskOptions, depth: number): BlockBackend {
  const readOnly = options.readOnly === true || options.dvd === true;
  if (isVhdx(file)) {
    if (options.dvd) throw new DiskOpenError(file.path, 'is a VHDX image; a DVD drive takes an ISO (raw) image');
    return openVhdx(file, readOnly, depth);
  }
  return new RawDisk(file, options.dvd ? 2048 : 512);
}

/** Opens an image by its content: VHDX when it says so, raw otherwise. Throws DiskOpenError. */
export function openDisk(path: string, options: OpenDiskOptions = {}): BlockBackend {
  const full = options.relativeTo && !isAbsolute(path) ? resolve(options.relativeTo, path) : path;
  const file = new NodeFile(full, options.readOnly === true || options.dvd === true);
  try {
    return openImage(file, options, 0);
  } catch (e) {
    file.close();
    throw e;
  }
}

/** The folder a VM file's relative disk paths start from. */
export const configFolder = (configPath: string): string => dirname(resolve(configPath));
