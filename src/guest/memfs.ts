// The guest's file tree kept in memory: what a VM without a state directory (tests, a browser)
// gives its daemons. Same semantics as the folder-backed tree in src/vm/dirfs.ts.
import { GuestFileError, normaliseGuestPath, type GuestFiles } from '../devices/device.js';

/** A file's bytes: the first `length` of `buf`, which has room to grow (writeAt doubles it). */
interface MemFile {
  buf: Uint8Array;
  length: number;
}

export class MemoryFiles implements GuestFiles {
  private readonly files = new Map<string, MemFile>();
  private readonly dirs = new Set<string>(['/']);

  private path(p: string): string {
    const n = normaliseGuestPath(p);
    if (n === undefined) throw new GuestFileError('EINVAL', p, 'not an absolute path inside the guest');
    return n;
  }

  private parentOf(p: string): string {
    return p.slice(0, p.lastIndexOf('/')) || '/';
  }

  read(path: string): Uint8Array | undefined {
    const p = this.path(path);
    if (this.dirs.has(p)) throw new GuestFileError('EISDIR', p, 'is a directory');
    const f = this.files.get(p);
    return f?.buf.slice(0, f.length);
  }

  write(path: string, data: Uint8Array, options: { exclusive?: boolean } = {}): void {
    const p = this.path(path);
    if (this.dirs.has(p)) throw new GuestFileError('EISDIR', p, 'is a directory');
    if (!this.dirs.has(this.parentOf(p))) throw new GuestFileError('ENOENT', p, 'no such directory');
    if (options.exclusive && this.files.has(p)) throw new GuestFileError('EEXIST', p, 'file exists');
    this.files.set(p, { buf: data.slice(), length: data.length });
  }

  writeAt(path: string, offset: number, data: Uint8Array): void {
    const p = this.path(path);
    if (this.dirs.has(p)) throw new GuestFileError('EISDIR', p, 'is a directory');
    const f = this.files.get(p);
    if (!f) throw new GuestFileError('ENOENT', p, 'no such file');
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(offset + data.length)) throw new GuestFileError('EINVAL', p, `offset ${offset} is not a file position`);
    // Writing nothing changes nothing, not even the length (pwrite of 0 bytes).
    if (data.length === 0) return;
    const end = offset + data.length;
    if (end > f.buf.length) {
      // Doubling keeps a file written fragment by fragment linear in its size.
      const grown = new Uint8Array(Math.max(end, 2 * f.buf.length, 4096));
      grown.set(f.buf.subarray(0, f.length));
      f.buf = grown;
    } else if (offset > f.length) {
      // The gap between the old end and the offset reads as zeros (pwrite), whatever the buffer held.
      f.buf.fill(0, f.length, offset);
    }
    f.buf.set(data, offset);
    f.length = Math.max(f.length, end);
  }

  remove(path: string): void {
    const p = this.path(path);
    if (!this.files.delete(p)) throw new GuestFileError('ENOENT', p, 'no such file');
  }

  exists(path: string): boolean {
    const p = this.path(path);
    return this.files.has(p) || this.dirs.has(p);
  }

  isDirectory(path: string): boolean {
    return this.dirs.has(this.path(path));
  }

  mkdirs(path: string): void {
    const p = this.path(path);
    let at = '';
    for (const part of p.split('/').filter(Boolean)) {
      at += `/${part}`;
      if (this.files.has(at)) throw new GuestFileError('ENOTDIR', at, 'is a file');
      this.dirs.add(at);
    }
  }

  list(path: string): string[] {
    const p = this.path(path);
    if (!this.dirs.has(p)) throw new GuestFileError('ENOENT', p, 'no such directory');
    const prefix = p === '/' ? '/' : `${p}/`;
    const names = new Set<string>();
    for (const k of [...this.files.keys(), ...this.dirs]) {
      if (k !== p && k.startsWith(prefix)) names.add(k.slice(prefix.length).split('/')[0]!);
    }
    return [...names].sort();
  }
}
