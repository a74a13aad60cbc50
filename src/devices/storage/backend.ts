// The disk back ends a SCSI target reads and writes: an interface by logical block, an
// in-memory disk, and the file interface that the Node-side back ends (raw and VHDX files,
// src/vm/disk-file.ts) implement, so that formats such as VHDX stay platform-neutral.

/** A back end failed: an I/O error of the file, a corrupt image. The target reports a medium error. */
export class DiskIoError extends Error {
  override readonly name = 'DiskIoError';
}

/** A virtual disk by logical block. Calls are synchronous: the host runs on the VM's virtual time. */
export interface BlockBackend {
  /** Logical block size in bytes (512 or 4096). */
  readonly sectorSize: number;
  /** Physical block size the disk reports (READ CAPACITY(16), the VHDX metadata). */
  readonly physicalSectorSize: number;
  /** Capacity in logical blocks. */
  readonly sectorCount: number;
  readonly readOnly: boolean;
  /** A stable 16-byte identity (VHDX page 83 data), for VPD page 0x83 and the serial number. */
  readonly diskId?: Uint8Array;
  /** Reads out.length bytes (whole blocks) from `lba` into `out`. Throws DiskIoError. */
  read(lba: number, out: Uint8Array): void;
  /**
   * Reads consecutive blocks from `lba` into each of `outs` in turn (each whole blocks): what
   * read() of each would do, in one request where the back end can (a guest buffer's scattered
   * pages, as a host's preadv fills them). Throws DiskIoError.
   */
  readv?(lba: number, outs: readonly Uint8Array[]): void;
  /**
   * read() into `dst[at, at + bytes)` (whole blocks) without a view of it made: a request's buffer
   * in guest RAM, read straight from where it lies. Throws DiskIoError.
   */
  readInto?(lba: number, dst: Uint8Array, at: number, bytes: number): void;
  /**
   * readInto() of each of `reads`' entries [from, to) in turn, back to back (the deferred reads of
   * one pump of the host: no other work between them). Stops at the first that fails as readInto
   * would throw DiskIoError, having done what readInto would have before throwing; returns its
   * index, or `to` when all were read.
   */
  readIntoMany?(dst: Uint8Array, reads: ReadList, from: number, to: number): number;
  /** Writes data (whole blocks) at `lba`; `fua` asks for it to be durable on return. Throws DiskIoError. */
  write(lba: number, data: Uint8Array, fua?: boolean): void;
  /** Makes every completed write durable. */
  flush(): void;
  /**
   * Deallocates [lba, lba + count) where the format can (whole allocation units) and zeroes the
   * rest: afterwards the range reads as zeros. The disk still reports LBPRZ 0, as Hyper-V does.
   */
  unmap?(lba: number, count: number): void;
  /** Releases the back end (its file, its lock). */
  close?(): void;
  /** What the back end is, for logs: "raw file a.img", "VHDX dynamic b.vhdx", "memory". */
  readonly description: string;
}

/** A file as a disk format needs it: positioned reads and writes, size, flush. Implemented in src/vm. */
export interface BlockFile {
  readonly path: string;
  readonly readOnly: boolean;
  /** Current length in bytes. */
  size(): number;
  /** Reads exactly out.length bytes at `offset`; bytes past the end read as zeros. */
  readAt(offset: number, out: Uint8Array): void;
  /** readAt of consecutive bytes into each of `outs` in turn, in as few calls as it can (preadv). */
  readvAt?(offset: number, outs: readonly Uint8Array[]): void;
  /** readAt into `dst[at, at + length)`, with no view of it made. */
  readInto?(offset: number, dst: Uint8Array, at: number, length: number): void;
  /**
   * readInto of each i in [from, to): `lengths[i]` bytes at `offsets[i]` into `dst` at `ats[i]`, in
   * turn. Stops at the first that fails as readInto would throw; returns its index, or `to`.
   */
  readIntoMany?(dst: Uint8Array, offsets: Float64Array, ats: Float64Array, lengths: Float64Array, from: number, to: number): number;
  writeAt(offset: number, data: Uint8Array): void;
  /** Grows (or shrinks) the file to `bytes`. */
  truncate(bytes: number): void;
  /** fdatasync. */
  flush(): void;
  close(): void;
}

/**
 * A list of reads by logical block (readIntoMany): the i-th reads `bytes[i]` bytes from block
 * `lba[i]` into the destination at `at[i]`. Arrays of numbers, grown as needed and reused.
 */
export class ReadList {
  lba = new Float64Array(0);
  at = new Float64Array(0);
  bytes = new Float64Array(0);

  /** Room for `n` reads (what was stored may be lost). */
  reserve(n: number): void {
    if (this.lba.length >= n) return;
    const size = Math.max(n, 2 * this.lba.length, 16);
    this.lba = new Float64Array(size);
    this.at = new Float64Array(size);
    this.bytes = new Float64Array(size);
  }
}

/** Checks that [lba, lba + bytes/sectorSize) lies on the disk and `bytes` is whole blocks. */
export function checkRange(disk: { sectorSize: number; sectorCount: number }, lba: number, bytes: number): void {
  if (!Number.isSafeInteger(lba) || lba < 0) throw new DiskIoError(`LBA ${lba} is not a block address`);
  if (bytes % disk.sectorSize !== 0) throw new DiskIoError(`${bytes} bytes is not a whole number of ${disk.sectorSize}-byte blocks`);
  if (lba + bytes / disk.sectorSize > disk.sectorCount) throw new DiskIoError(`blocks ${lba}..${lba + bytes / disk.sectorSize - 1} pass the end of the ${disk.sectorCount}-block disk`);
}

/** Whether checkRange passes, with no error made (a check per read of a batch). */
export function inRange(disk: { sectorSize: number; sectorCount: number }, lba: number, bytes: number): boolean {
  return Number.isSafeInteger(lba) && lba >= 0 && bytes % disk.sectorSize === 0 && lba + bytes / disk.sectorSize <= disk.sectorCount;
}

/** Chunks of an in-memory disk are allocated on first write, so a large empty disk costs nothing. */
const CHUNK = 64 * 1024;

/** A disk in memory: sparse, zero where never written. */
export class MemoryDisk implements BlockBackend {
  readonly physicalSectorSize: number;
  readonly sectorCount: number;
  readonly diskId: Uint8Array | undefined;
  private readonly chunks = new Map<number, Uint8Array>();
  flushes = 0;

  constructor(
    readonly sizeBytes: number,
    readonly options: { sectorSize?: number; physicalSectorSize?: number; readOnly?: boolean; diskId?: Uint8Array } = {},
  ) {
    const s = options.sectorSize ?? 512;
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % s !== 0) throw new RangeError(`disk size ${sizeBytes} is not a positive multiple of ${s}`);
    this.sectorCount = sizeBytes / s;
    this.physicalSectorSize = options.physicalSectorSize ?? 4096;
    this.diskId = options.diskId;
  }

  get sectorSize(): number {
    return this.options.sectorSize ?? 512;
  }

  get readOnly(): boolean {
    return this.options.readOnly ?? false;
  }

  get description(): string {
    return `memory (${this.sizeBytes} bytes)`;
  }

  read(lba: number, out: Uint8Array): void {
    checkRange(this, lba, out.length);
    this.copy(lba * this.sectorSize, out.length, (chunk, at, pos, n) => {
      if (chunk) out.set(chunk.subarray(at, at + n), pos);
      else out.fill(0, pos, pos + n);
    });
  }

  write(lba: number, data: Uint8Array): void {
    checkRange(this, lba, data.length);
    if (this.readOnly) throw new DiskIoError('the disk is read-only');
    this.copy(lba * this.sectorSize, data.length, (_chunk, at, pos, n, index) => {
      let c = this.chunks.get(index);
      if (!c) this.chunks.set(index, (c = new Uint8Array(CHUNK)));
      c.set(data.subarray(pos, pos + n), at);
    });
  }

  flush(): void {
    this.flushes++;
  }

  unmap(lba: number, count: number): void {
    checkRange(this, lba, count * this.sectorSize);
    if (this.readOnly) throw new DiskIoError('the disk is read-only');
    // Whole chunks are dropped; the part of a chunk in the range is zeroed.
    this.copy(lba * this.sectorSize, count * this.sectorSize, (chunk, at, _pos, n, index) => {
      if (at === 0 && n === CHUNK) this.chunks.delete(index);
      else chunk?.fill(0, at, at + n);
    });
  }

  /** Bytes of memory the disk holds. */
  get allocated(): number {
    return this.chunks.size * CHUNK;
  }

  private copy(offset: number, length: number, f: (chunk: Uint8Array | undefined, at: number, pos: number, n: number, index: number) => void): void {
    for (let pos = 0; pos < length; ) {
      const index = Math.floor((offset + pos) / CHUNK);
      const at = (offset + pos) % CHUNK;
      const n = Math.min(CHUNK - at, length - pos);
      f(this.chunks.get(index), at, pos, n, index);
      pos += n;
    }
  }
}
