// The guest's file tree kept in a folder of the host: the VM's state directory, where guest path
// /a/b is <root>/a/b. Same semantics as the in-memory tree (src/guest/memfs.ts); synchronous,
// as the daemons that use it are.
//
// Nothing may escape the root. Guest paths are normalised first (normaliseGuestPath: no "..",
// no NUL, absolute); then every component that exists on the host is checked: a symbolic link
// is followed only if where it leads (its realpath, or for a dangling one the target it names)
// is inside the root, else EACCES; anything but a regular file or a directory (a FIFO, a
// device, a socket) is refused with EACCES, so a read or write never blocks or touches hardware.
// Files are opened with O_NOFOLLOW and O_NONBLOCK and checked with fstat after the open, so a
// link or a FIFO put in place after the checks is refused too. The
// guest cannot make links itself (GuestFiles has no such call); the checks guard against a
// state directory prepared, or changed, by someone else. Hard links to files outside the root
// cannot be told apart from files and are not guarded against.
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { GuestFileError, normaliseGuestPath, type FileErrno, type GuestFiles } from '../devices/device.js';

/** Node's error codes as the errno a Linux daemon would see. */
const ERRNO: Readonly<Record<string, FileErrno>> = {
  ENOENT: 'ENOENT',
  EEXIST: 'EEXIST',
  EISDIR: 'EISDIR',
  ENOTDIR: 'ENOTDIR',
  EACCES: 'EACCES',
  EPERM: 'EACCES',
  EROFS: 'EACCES',
  ELOOP: 'EACCES',
  // A FIFO with no reader, opened O_NONBLOCK for writing.
  ENXIO: 'EACCES',
  EINVAL: 'EINVAL',
  ENAMETOOLONG: 'EINVAL',
  ENOSPC: 'ENOSPC',
  EDQUOT: 'ENOSPC',
  EFBIG: 'ENOSPC',
};

export class DirectoryFiles implements GuestFiles {
  /** The root's real path (symbolic links in it resolved). */
  readonly root: string;

  /** `root` is created if it does not exist. */
  constructor(root: string) {
    const abs = resolve(root);
    try {
      mkdirSync(abs, { recursive: true });
      this.root = realpathSync(abs);
      if (!statSync(this.root).isDirectory()) throw new GuestFileError('ENOTDIR', '/', `${abs} is not a directory`);
    } catch (e) {
      throw this.error(e, '/');
    }
  }

  /** Maps a failure to GuestFileError (what is one already stays as it is). */
  private error(e: unknown, path: string): GuestFileError {
    if (e instanceof GuestFileError) return e;
    const code = (e as NodeJS.ErrnoException | undefined)?.code;
    if (typeof code !== 'string') throw e;
    return new GuestFileError(ERRNO[code] ?? 'EIO', path, `${code} from the host file system`);
  }

  private inside(hostPath: string): boolean {
    const r = relative(this.root, hostPath);
    return r === '' || (!r.startsWith('..') && !isAbsolute(r) && r.split(sep)[0] !== '..');
  }

  /**
   * The host path of a guest path, after checking each existing component: links must stay
   * inside the root, everything must be a directory or (last) a regular file. Returns the
   * resolved host path (links followed) and the final component's kind.
   */
  private resolve(path: string): { guest: string; host: string; kind: 'file' | 'dir' | 'none' } {
    const guest = normaliseGuestPath(path);
    if (guest === undefined) throw new GuestFileError('EINVAL', path, 'not an absolute path inside the guest');
    const parts = guest.split('/').filter(Boolean);
    let at = this.root;
    for (let i = 0; i < parts.length; i++) {
      const next = join(at, parts[i]!);
      let st: Stats;
      try {
        st = lstatSync(next);
      } catch (e) {
        const err = this.error(e, guest);
        if (err.errno !== 'ENOENT') throw err;
        // The rest does not exist: it would be created under `at`, which is inside the root.
        return { guest, host: join(next, ...parts.slice(i + 1)), kind: 'none' };
      }
      let target = next;
      if (st.isSymbolicLink()) {
        target = this.followLink(next, guest);
        try {
          st = statSync(target);
        } catch (e) {
          const err = this.error(e, guest);
          if (err.errno !== 'ENOENT') throw err;
          // A dangling link that names a place inside the root: writing creates its target.
          return { guest, host: join(target, ...parts.slice(i + 1)), kind: 'none' };
        }
      }
      const last = i === parts.length - 1;
      if (st.isDirectory()) {
        at = target;
        if (last) return { guest, host: target, kind: 'dir' };
        continue;
      }
      if (!st.isFile()) throw new GuestFileError('EACCES', guest, 'not a regular file or a directory');
      if (!last) throw new GuestFileError('ENOTDIR', guest, `${parts.slice(0, i + 1).join('/')} is a file`);
      return { guest, host: target, kind: 'file' };
    }
    return { guest, host: this.root, kind: 'dir' };
  }

  /** Where a link leads, if that is inside the root; EACCES otherwise. */
  private followLink(link: string, guest: string): string {
    let target: string;
    try {
      target = realpathSync(link);
    } catch (e) {
      const err = this.error(e, guest);
      if (err.errno !== 'ENOENT') throw new GuestFileError('EACCES', guest, 'a symbolic link that cannot be resolved');
      // Dangling: judge it by what it names, with the links in the part that exists resolved.
      target = this.realPrefix(resolve(realpathSync(dirname(link)), readlinkSync(link)));
    }
    if (!this.inside(target)) throw new GuestFileError('EACCES', guest, 'a symbolic link that leads out of the VM directory');
    return target;
  }

  /** The real path of `p`'s longest existing prefix, with the rest (which does not exist) appended. */
  private realPrefix(p: string): string {
    const tail: string[] = [];
    for (let at = p; ; at = dirname(at)) {
      try {
        return join(realpathSync(at), ...tail);
      } catch {
        if (dirname(at) === at) return p;
        tail.unshift(basename(at));
      }
    }
  }

  read(path: string): Uint8Array | undefined {
    const r = this.resolve(path);
    if (r.kind === 'none') return undefined;
    if (r.kind === 'dir') throw new GuestFileError('EISDIR', r.guest, 'is a directory');
    try {
      // O_NOFOLLOW and a check of what was opened: the file cannot turn into a link or a FIFO in between.
      const fd = openSync(r.host, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0));
      try {
        if (!fstatSync(fd).isFile()) throw new GuestFileError('EACCES', r.guest, 'not a regular file');
        return new Uint8Array(readFileSync(fd));
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      throw this.error(e, r.guest);
    }
  }

  write(path: string, data: Uint8Array, options: { exclusive?: boolean } = {}): void {
    const r = this.resolve(path);
    if (r.kind === 'dir') throw new GuestFileError('EISDIR', r.guest, 'is a directory');
    if (options.exclusive && r.kind === 'file') throw new GuestFileError('EEXIST', r.guest, 'file exists');
    this.checkParent(r);
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | (options.exclusive ? constants.O_EXCL : 0);
    this.withOpenFile(r.guest, r.host, flags, (fd) => writeAll(fd, data, 0, r.guest));
  }

  writeAt(path: string, offset: number, data: Uint8Array): void {
    const r = this.resolve(path);
    if (r.kind === 'dir') throw new GuestFileError('EISDIR', r.guest, 'is a directory');
    if (r.kind === 'none') throw new GuestFileError('ENOENT', r.guest, 'no such file');
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(offset + data.length)) throw new GuestFileError('EINVAL', r.guest, `offset ${offset} is not a file position`);
    // pwrite: past the end the file grows, the gap reading as zeros.
    this.withOpenFile(r.guest, r.host, constants.O_WRONLY, (fd) => writeAll(fd, data, offset, r.guest));
  }

  /**
   * Opens `host` with `flags` plus O_NOFOLLOW and O_NONBLOCK, checks that what was opened is a
   * regular file (a link or FIFO swapped in after resolve() is refused, and never waited on), and
   * runs `use` on it.
   */
  private withOpenFile(guest: string, host: string, flags: number, use: (fd: number) => void): void {
    try {
      const fd = openSync(host, flags | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0));
      try {
        if (!fstatSync(fd).isFile()) throw new GuestFileError('EACCES', guest, 'not a regular file');
        use(fd);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      throw this.error(e, guest);
    }
  }

  /** The directory a new file would go in must exist (parents are not created, as in memfs). */
  private checkParent(r: { guest: string; host: string; kind: string }): void {
    if (r.kind !== 'none') return;
    const parent = this.resolve(r.guest.slice(0, r.guest.lastIndexOf('/')) || '/');
    if (parent.kind === 'none') throw new GuestFileError('ENOENT', r.guest, 'no such directory');
    if (parent.kind === 'file') throw new GuestFileError('ENOTDIR', r.guest, 'the parent is a file');
  }

  remove(path: string): void {
    const r = this.resolve(path);
    if (r.kind === 'none') throw new GuestFileError('ENOENT', r.guest, 'no such file');
    if (r.kind === 'dir') throw new GuestFileError('EISDIR', r.guest, 'is a directory');
    try {
      // The name itself goes (for a link: the link, not what it leads to).
      unlinkSync(join(this.root, ...r.guest.split('/').filter(Boolean)));
    } catch (e) {
      throw this.error(e, r.guest);
    }
  }

  exists(path: string): boolean {
    return this.resolve(path).kind !== 'none';
  }

  isDirectory(path: string): boolean {
    return this.resolve(path).kind === 'dir';
  }

  mkdirs(path: string): void {
    const guest = normaliseGuestPath(path);
    if (guest === undefined) throw new GuestFileError('EINVAL', path, 'not an absolute path inside the guest');
    let at = '';
    for (const part of guest.split('/').filter(Boolean)) {
      at += `/${part}`;
      const r = this.resolve(at);
      if (r.kind === 'file') throw new GuestFileError('ENOTDIR', at, 'is a file');
      if (r.kind === 'dir') continue;
      try {
        mkdirSync(r.host);
      } catch (e) {
        throw this.error(e, at);
      }
    }
  }

  list(path: string): string[] {
    const r = this.resolve(path);
    if (r.kind !== 'dir') throw new GuestFileError(r.kind === 'file' ? 'ENOTDIR' : 'ENOENT', r.guest, 'no such directory');
    try {
      return readdirSync(r.host).sort();
    } catch (e) {
      throw this.error(e, r.guest);
    }
  }
}

/** writeSync until every byte of `data` is at `position` on: a write may take fewer. */
function writeAll(fd: number, data: Uint8Array, position: number, guest: string): void {
  for (let done = 0; done < data.length; ) {
    const n = writeSync(fd, data, done, data.length - done, position + done);
    if (n <= 0) throw new GuestFileError('EIO', guest, 'the host file system wrote nothing');
    done += n;
  }
}
