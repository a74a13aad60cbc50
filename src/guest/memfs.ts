// The guest's file tree kept in memory: what a VM without a state directory (tests, a browser)
// gives its daemons. Same semantics as the folder-backed tree in src/vm/dirfs.ts.
import { appendByRewrite, GuestFileError, normaliseGuestPath, type GuestFiles } from '../devices/device.js';

export class MemoryFiles implements GuestFiles {
  private readonly files = new Map<string, Uint8Array>();
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
    return this.files.get(p)?.slice();
  }

  write(path: string, data: Uint8Array, options: { exclusive?: boolean } = {}): void {
    const p = this.path(path);
    if (this.dirs.has(p)) throw new GuestFileError('EISDIR', p, 'is a directory');
    if (!this.dirs.has(this.parentOf(p))) throw new GuestFileError('ENOENT', p, 'no such directory');
    if (options.exclusive && this.files.has(p)) throw new GuestFileError('EEXIST', p, 'file exists');
    this.files.set(p, data.slice());
  }

  append(path: string, data: Uint8Array): void {
    appendByRewrite(this, path, data);
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
