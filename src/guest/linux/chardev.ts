// User space's side of the Linux module's misc character devices (linux/shim/chardev.c): open(2),
// read(2), write(2), poll(2) and close(2) on /dev/<name>, as a daemon makes them. The shim calls
// the device's own file_operations (hv_utils_transport.c's hvt_op_* for /dev/vmbus/hv_kvp), so
// a daemon talking through this is talking to Linux's real driver. User buffers live in guest
// RAM, taken from the module's allocator for the call and given back after it.
import type { HvutilFd } from '../../devices/ic/transport.js';
import type { RamAllocator } from './ram-allocator.js';

/** poll(2)'s event bits (include/uapi/linux/eventpoll.h). */
export const Epoll = { IN: 0x1, ERR: 0x8, HUP: 0x10 } as const;

/** ENOMEM (asm-generic/errno-base.h): no RAM left for the user buffer. */
const ENOMEM = 12;

/** The shim's entry points for user space (linux/shim/chardev.c). */
export interface ChardevExports {
  hvkit_chardev_open(name: number): number;
  hvkit_chardev_read(file: number, buf: number, count: number): number;
  hvkit_chardev_write(file: number, buf: number, count: number): number;
  hvkit_chardev_poll(file: number): number;
  hvkit_chardev_release(file: number): void;
}

export interface ChardevHost {
  readonly exports: ChardevExports;
  readonly ram: RamAllocator;
  readonly bytes: Uint8Array;
}

/** A user buffer of `n` bytes in guest RAM for the length of `f`; `f` gets 0 when there is no RAM left. */
function withBuffer<T>(host: ChardevHost, n: number, f: (at: number) => T): T {
  const at = host.ram.alloc(Math.max(1, n), 8);
  try {
    return f(at);
  } finally {
    if (at) host.ram.release(at);
  }
}

/** An open file of the module's: the daemon's descriptor. */
export class LinuxCharFile implements HvutilFd {
  private closed = false;

  constructor(
    private readonly host: ChardevHost,
    private readonly file: number,
    /** Wakes the process that holds it (a wait queue of the device was woken). */
    readonly wake: () => void,
    private readonly onClose: (f: LinuxCharFile) => void,
  ) {}

  poll(): { readable: boolean; hangup: boolean } {
    if (this.closed) return { readable: false, hangup: true };
    const ev = this.host.exports.hvkit_chardev_poll(this.file) >>> 0;
    return { readable: (ev & Epoll.IN) !== 0, hangup: (ev & (Epoll.HUP | Epoll.ERR)) !== 0 };
  }

  read(count: number): Uint8Array | number {
    if (this.closed) return -9; // EBADF
    return withBuffer(this.host, count, (at) => {
      if (!at) return -ENOMEM;
      const n = this.host.exports.hvkit_chardev_read(this.file, at, count);
      if (n < 0) return n;
      return this.host.bytes.slice(at, at + Math.min(n, count));
    });
  }

  write(buf: Uint8Array): number {
    if (this.closed) return -9; // EBADF
    return withBuffer(this.host, buf.length, (at) => {
      if (!at) return -ENOMEM;
      this.host.bytes.set(buf, at);
      return this.host.exports.hvkit_chardev_write(this.file, at, buf.length);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this);
    this.host.exports.hvkit_chardev_release(this.file);
  }
}

/** The open files of the module's misc devices, and the wake-ups the kernel sends them. */
export class LinuxCharDevices {
  private readonly open = new Set<LinuxCharFile>();
  /** /dev names of the misc devices registered now ("vmbus/hv_kvp"). */
  readonly registered = new Set<string>();
  private wakePending = false;

  constructor(private readonly host: ChardevHost) {}

  /** The shim's "registered /dev/<name>" and "deregistered /dev/<name>" events (chardev.c). */
  noteEvent(text: string): void {
    const m = /^(registered|deregistered) \/dev\/(.+)$/.exec(text);
    if (!m) return;
    if (m[1] === 'registered') this.registered.add(m[2]!);
    else this.registered.delete(m[2]!);
  }

  /** open("/dev/<name>"): the file, or a negative errno (-ENOENT when no such device is registered). */
  openFile(name: string, wake: () => void): LinuxCharFile | number {
    const bytes = new TextEncoder().encode(name);
    const r = withBuffer(this.host, bytes.length + 1, (at) => {
      if (!at) return -ENOMEM;
      this.host.bytes.set(bytes, at);
      this.host.bytes[at + bytes.length] = 0;
      return this.host.exports.hvkit_chardev_open(at);
    });
    if (r < 0) return r;
    const f = new LinuxCharFile(this.host, r >>> 0, wake, (x) => this.open.delete(x));
    this.open.add(f);
    return f;
  }

  /** The kernel woke a wait queue: user space looks at its files once the kernel has returned. */
  noteWake(): void {
    this.wakePending = true;
  }

  /** Runs the woken processes (each polls its file); returns how many were woken. */
  runUserSpace(): number {
    if (!this.wakePending) return 0;
    this.wakePending = false;
    const files = [...this.open];
    for (const f of files) f.wake();
    return files.length;
  }
}
