// Guest physical memory: RAM at GPA 0, backed by a SharedArrayBuffer so that a second thread (the
// guest in a worker) sees the same bytes. All values are little-endian. With dynamic memory the
// backing reaches the configured maximum, and what lies above the present size is not present
// (any access is GpaOutOfRangeError, as an unmapped GPA is to Hyper-V) until hot add grows it.
import { GpaOutOfRangeError } from './errors.js';
import { HV_HYP_PAGE_SIZE, type GuestPageSize } from './pages.js';
import { OverlayTable } from './overlay.js';
import { setInto, subarrayOf } from './typed-arrays.js';

export interface GuestMemoryOptions {
  /** RAM size in bytes; a multiple of the guest page size. */
  size: number;
  /** The guest's own page size (4, 16 or 64 KiB). Hyper-V pages stay 4 KiB regardless. */
  pageSize?: GuestPageSize;
  /** Attach to RAM another thread created (its `buffer`) instead of allocating. */
  buffer?: SharedArrayBuffer;
  /**
   * Bytes of backing for memory hot add (dynamic memory's maximum): RAM starts at `size` and may
   * grow to this; what is above `size` is not present until added. Default `size`.
   */
  capacity?: number;
  /** The present-size cell another thread created (its `presentCell`), with `buffer`. */
  presentCell?: SharedArrayBuffer;
}

/**
 * The most RAM a VM can have: all of it is one SharedArrayBuffer that both threads view as one
 * Uint8Array, and Node 20's V8 caps a typed array at 2^32 elements.
 */
export const MAX_GUEST_MEMORY = 2 ** 32;

/** Zeros copied by fill(), and the shortest fill that copies them rather than filling. */
const ZEROS = new Uint8Array(64 * 1024);
const ZERO_COPY_MIN = 256;

export class GuestMemory {
  /** Bytes of backing: the most RAM can grow to by hot add. */
  readonly capacity: number;
  readonly pageSize: GuestPageSize;
  /** The present RAM size in 4 KiB frames, shared between threads (hot add moves it). */
  readonly presentCell: SharedArrayBuffer;
  private readonly present: Int32Array;
  private readonly growable: boolean;
  private readonly initialSize: number;
  readonly buffer: SharedArrayBuffer;
  /** The whole of RAM as bytes; `Atomics` works on it because it is shared. */
  readonly bytes: Uint8Array;
  readonly overlays: OverlayTable;
  private readonly dv: DataView;

  constructor(opts: GuestMemoryOptions) {
    const pageSize = opts.pageSize ?? HV_HYP_PAGE_SIZE;
    if (!Number.isSafeInteger(opts.size) || opts.size <= 0 || opts.size % pageSize !== 0) {
      throw new RangeError(`guest memory size ${opts.size} is not a positive multiple of the ${pageSize}-byte page`);
    }
    if (opts.size > MAX_GUEST_MEMORY) throw new RangeError(`guest memory size ${opts.size} is more than the ${MAX_GUEST_MEMORY}-byte maximum`);
    const capacity = opts.capacity ?? opts.size;
    if (!Number.isSafeInteger(capacity) || capacity < opts.size || capacity % pageSize !== 0 || capacity > MAX_GUEST_MEMORY) {
      throw new RangeError(`guest memory capacity ${capacity} is not a multiple of the ${pageSize}-byte page between ${opts.size} and ${MAX_GUEST_MEMORY}`);
    }
    if (opts.buffer && opts.buffer.byteLength !== capacity) {
      throw new RangeError(`shared buffer is ${opts.buffer.byteLength} bytes, expected ${capacity}`);
    }
    this.capacity = capacity;
    this.initialSize = opts.size;
    this.growable = capacity > opts.size;
    this.presentCell = opts.presentCell ?? new SharedArrayBuffer(4);
    this.present = new Int32Array(this.presentCell);
    if (!opts.presentCell) this.present[0] = opts.size / HV_HYP_PAGE_SIZE;
    this.pageSize = pageSize;
    this.buffer = opts.buffer ?? new SharedArrayBuffer(capacity);
    this.bytes = new Uint8Array(this.buffer);
    this.dv = new DataView(this.buffer);
    this.overlays = new OverlayTable(this.bytes);
  }

  /** Bytes of RAM present now: the boot size plus what hot add brought. */
  get size(): number {
    // Short, so that it inlines into hot callers cheaply (the hypercall trap asks on every call).
    return this.growable ? this.presentSize() : this.initialSize;
  }

  private presentSize(): number {
    return Atomics.load(this.present, 0) * HV_HYP_PAGE_SIZE;
  }

  /**
   * Memory hot add: RAM becomes present up to `bytes` (a page multiple within the capacity). The
   * backing above was never present, so it reads as zeros when it appears. Returns false if
   * `bytes` is not a valid new size.
   */
  grow(bytes: number): boolean {
    if (!Number.isSafeInteger(bytes) || bytes % this.pageSize !== 0 || bytes < this.size || bytes > this.capacity) return false;
    Atomics.store(this.present, 0, bytes / HV_HYP_PAGE_SIZE);
    return true;
  }

  /** True if [gpa, gpa + length) lies inside RAM. */
  contains(gpa: number, length = 1): boolean {
    return Number.isSafeInteger(gpa) && Number.isSafeInteger(length) && gpa >= 0 && length >= 0 && gpa + length <= this.size;
  }

  /** Throws GpaOutOfRangeError unless [gpa, gpa + length) lies inside RAM. */
  check(gpa: number, length: number): void {
    if (!this.contains(gpa, length)) throw new GpaOutOfRangeError(gpa, length, this.size);
  }

  read8(gpa: number): number {
    this.check(gpa, 1);
    return this.dv.getUint8(gpa);
  }
  read16(gpa: number): number {
    this.check(gpa, 2);
    return this.dv.getUint16(gpa, true);
  }
  read32(gpa: number): number {
    this.check(gpa, 4);
    return this.dv.getUint32(gpa, true);
  }
  read64(gpa: number): bigint {
    this.check(gpa, 8);
    return this.dv.getBigUint64(gpa, true);
  }
  write8(gpa: number, v: number): void {
    this.check(gpa, 1);
    this.dv.setUint8(gpa, v);
  }
  write16(gpa: number, v: number): void {
    this.check(gpa, 2);
    this.dv.setUint16(gpa, v, true);
  }
  write32(gpa: number, v: number): void {
    this.check(gpa, 4);
    this.dv.setUint32(gpa, v, true);
  }
  write64(gpa: number, v: bigint): void {
    this.check(gpa, 8);
    this.dv.setBigUint64(gpa, BigInt.asUintN(64, v), true);
  }

  /** A copy of [gpa, gpa + length). */
  read(gpa: number, length: number): Uint8Array {
    this.check(gpa, length);
    return this.bytes.slice(gpa, gpa + length);
  }

  /** Copies `src` into RAM at `gpa`. */
  write(gpa: number, src: Uint8Array): void {
    this.check(gpa, src.length);
    setInto(this.bytes, src, gpa);
  }

  fill(gpa: number, length: number, value = 0): void {
    this.check(gpa, length);
    if (value !== 0 || length < ZERO_COPY_MIN) {
      this.bytes.fill(value, gpa, gpa + length);
      return;
    }
    // Zeroing is a copy from a block of zeros: V8 fills a SharedArrayBuffer element by element,
    // several times slower than the copy (every page the guest allocates is zeroed).
    for (let at = gpa, end = gpa + length; at < end; at += ZEROS.length) this.bytes.set(end - at >= ZEROS.length ? ZEROS : ZEROS.subarray(0, end - at), at);
  }

  /**
   * Has the host back [gpa, gpa + length) with committed pages, changing no byte: an atomic add
   * of 0 to one word of each 4 KiB page. The first write to a page of a fresh buffer is a page
   * fault that the operating system serves by zeroing a page, and in bulk that is most of what
   * zeroing a new buffer costs; a caller that works in slices takes these faults ahead of time.
   */
  prefault(gpa: number, length: number): void {
    this.check(gpa, length);
    this.words ??= new Int32Array(this.buffer, 0, this.buffer.byteLength >>> 2);
    const end = gpa + length;
    for (let at = gpa - (gpa % HV_HYP_PAGE_SIZE); at < end; at += HV_HYP_PAGE_SIZE) Atomics.add(this.words, at >>> 2, 0);
  }

  private words: Int32Array | undefined;

  /** A live window on [gpa, gpa + length): no copy, writes go straight to RAM. */
  view(gpa: number, length: number): Uint8Array {
    this.check(gpa, length);
    return subarrayOf(this.bytes, gpa, gpa + length);
  }

  /** A DataView on [gpa, gpa + length), for structured access to a checked range. */
  dataView(gpa: number, length: number): DataView {
    this.check(gpa, length);
    return new DataView(this.buffer, gpa, length);
  }
}
