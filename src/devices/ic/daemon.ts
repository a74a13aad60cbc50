// What the user-space daemons behind the util services (tools/hv/hv_kvp_daemon.c,
// hv_vss_daemon.c, hv_fcopy_daemon.c) have in common as processes of the model: libc's errno
// and strerror as their syslog lines print them, a single-threaded main loop, calls out to what
// the guest's user supplies (the VSS freeze and thaw hooks), and the life of the VSS and
// file-copy daemons around their device (start, kill, open and register).
import { GuestFileError, type GuestServices } from '../device.js';
import { Errno, type HvutilFile, type HvutilTransport } from './transport.js';

/** strerror(3) as glibc words them. */
const STRERROR: Readonly<Record<number, string>> = {
  [Errno.ENOENT]: 'No such file or directory',
  [Errno.EIO]: 'Input/output error',
  [Errno.EBADF]: 'Bad file descriptor',
  [Errno.EAGAIN]: 'Resource temporarily unavailable',
  [Errno.EACCES]: 'Permission denied',
  [Errno.EFAULT]: 'Bad address',
  [Errno.EBUSY]: 'Device or resource busy',
  [Errno.EEXIST]: 'File exists',
  [Errno.ENOTDIR]: 'Not a directory',
  [Errno.EISDIR]: 'Is a directory',
  [Errno.EINVAL]: 'Invalid argument',
  [Errno.ENOSPC]: 'No space left on device',
};

/** strerror(3). */
export const strerror = (errno: number): string => STRERROR[errno] ?? `Unknown error ${errno}`;

/** "%d %s" of errno and strerror(errno), as the daemons' messages print them. */
export const errText = (errno: number): string => `${errno} ${strerror(errno)}`;

/**
 * The errno a daemon's libc call sets when a GuestFiles operation fails. Anything but a
 * GuestFileError is a fault of the model, not of the guest's files, and is thrown on.
 */
export function errnoOf(e: unknown): number {
  if (!(e instanceof GuestFileError)) throw e;
  return Errno[e.errno];
}

/**
 * Runs a user-space process's steps one at a time: what is asked while a step runs (a wake-up
 * during its own write(), say) waits until that step is done, as a single-threaded daemon would.
 */
export class ProcessLoop {
  private running = false;
  private readonly queue: (() => void)[] = [];

  run(step: () => void): void {
    this.queue.push(step);
    if (this.running) return;
    this.running = true;
    try {
      for (let s = this.queue.shift(); s; s = this.queue.shift()) s();
    } finally {
      this.running = false;
    }
  }
}

/**
 * What a user-supplied hook returns: true or nothing for success; false for failure; 'hang' for a
 * call that never returns (an ioctl stuck in the kernel); or a promise of one of these.
 */
export type HookResult = boolean | void | 'hang' | PromiseLike<boolean | void | 'hang'>;

/** The errno of a hook's throw: a GuestFileError's own, anything else EIO. */
const hookErrno = (e: unknown): number => (e instanceof GuestFileError ? Errno[e.errno] : Errno.EIO);

/**
 * Calls a daemon's hook: done(true) on success; done(false, errno) on `false`, a throw or a
 * rejection; never for 'hang' or a promise that never settles (the process is stuck).
 */
export function callHook(hook: (() => HookResult) | undefined, done: (ok: boolean, errno: number) => void): void {
  let r: HookResult;
  try {
    r = hook?.();
  } catch (e) {
    return done(false, hookErrno(e));
  }
  if (r === 'hang') return;
  if (r !== null && typeof r === 'object' && typeof (r as PromiseLike<unknown>).then === 'function') {
    (r as PromiseLike<boolean | void | 'hang'>).then(
      (v) => {
        if (v !== 'hang') done(v !== false, Errno.EIO);
      },
      (e: unknown) => done(false, hookErrno(e)),
    );
    return;
  }
  done(r !== false, Errno.EIO);
}

/**
 * A daemon process around its /dev/vmbus/hv_* device (hv_vss_daemon, hv_fcopy_daemon): started
 * and killed from outside, one step at a time in its loop; each start is a new generation, and
 * what an older one left waiting (a hook returning late) is dropped.
 */
export abstract class HvutilDaemon {
  /** The process runs (until it exits or is killed). */
  running = false;
  protected fd: HvutilFile | undefined;
  /** Waiting for the kernel's answer to the registration. */
  protected inHandshake = true;
  /** Bumped when the process ends: continuations of an older process are dropped. */
  protected generation = 0;
  protected readonly loop = new ProcessLoop();

  constructor(
    protected readonly device: HvutilTransport,
    protected readonly services: GuestServices,
    /** openlog's ident: its syslog lines go to the guest's journal under it. */
    private readonly ident: string,
  ) {}

  /** The reopen label of main(): (re)open the device and register. */
  protected abstract reopen(gen: number): void;
  /** poll() and read() while the device has something, answering each message. */
  protected abstract pump(gen: number): void;
  /** What the process forgets when it starts or ends (a hook it was waiting for). */
  protected reset(): void {}

  protected syslog(level: 'err' | 'info', text: string): void {
    this.services.syslog(this.ident, level, text);
  }

  /** Starts the process: open the device and register. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.reset();
    const gen = ++this.generation;
    this.loop.run(() => this.reopen(gen));
  }

  /** kill -9: the device is closed (the kernel resets). */
  kill(): void {
    this.generation++;
    this.exit();
  }

  protected exit(): void {
    this.running = false;
    this.reset();
    this.closeDevice();
  }

  protected closeDevice(): void {
    this.fd?.close();
    this.fd = undefined;
  }

  /**
   * open("/dev/vmbus/hv_*") and write `registration`; false, after the daemon's line (`failed`
   * words a refused write) and its exit, if either fails.
   */
  protected register(gen: number, registration: Uint8Array, failed: (errno: number) => string): boolean {
    this.inHandshake = true;
    const fd = this.device.open(() => this.loop.run(() => this.pump(gen)));
    if (typeof fd === 'number') {
      this.syslog('err', `open /dev/${this.device.name} failed; error: ${errText(-fd)}`);
      this.exit();
      return false;
    }
    this.fd = fd;
    const w = fd.write(registration);
    if (w !== registration.length) {
      this.syslog('err', failed(w < 0 ? -w : Errno.EINVAL));
      this.exit();
      return false;
    }
    return true;
  }
}
