// A BlockFile in memory, for format tests that need no file system: it grows as written, reads
// zeros past its end, and counts flushes so that ordering can be asserted.
import type { BlockFile } from '../../../src/devices/storage/backend.js';

export class MemoryFile implements BlockFile {
  private bytes: Uint8Array;
  private length: number;
  flushes = 0;
  closed = false;

  constructor(
    readonly path = 'memory.vhdx',
    readonly readOnly = false,
    from?: Uint8Array,
  ) {
    this.bytes = from ? from.slice() : new Uint8Array(0);
    this.length = this.bytes.length;
  }

  /** A copy of the file as it is now. */
  contents(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }

  /** The same bytes, opened again (read-only or not). */
  reopen(readOnly = false): MemoryFile {
    return new MemoryFile(this.path, readOnly, this.contents());
  }

  size(): number {
    return this.length;
  }

  readAt(offset: number, out: Uint8Array): void {
    out.fill(0);
    if (offset < this.length) out.set(this.bytes.subarray(offset, Math.min(this.length, offset + out.length)));
  }

  writeAt(offset: number, data: Uint8Array): void {
    if (this.readOnly) throw new Error(`${this.path} is read-only`);
    if (offset + data.length > this.length) this.truncate(offset + data.length);
    this.bytes.set(data, offset);
  }

  truncate(bytes: number): void {
    if (bytes > this.bytes.length) {
      const grown = new Uint8Array(Math.max(bytes, this.bytes.length * 2));
      grown.set(this.bytes.subarray(0, this.length));
      this.bytes = grown;
    } else if (bytes < this.length) {
      this.bytes.fill(0, bytes, this.length);
    }
    this.length = bytes;
  }

  flush(): void {
    this.flushes++;
  }

  close(): void {
    this.closed = true;
  }
}
