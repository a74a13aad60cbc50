// The character device a util driver shares with its user-space daemon (Linux 6.1
// drivers/hv/hv_utils_transport.c, in its chardev mode: /dev/vmbus/hv_kvp, hv_vss, hv_fcopy), and
// the kernel-side state those drivers keep about it (drivers/hv/hyperv_vmbus.h). The kernel
// queues one message at a time for the daemon to read; the daemon's writes go straight to the
// driver's on_msg; closing the device resets the driver (on_reset). The netlink mode of old
// daemons is not modelled.

/** errno values the device and the daemons' file operations report (asm-generic/errno-base.h). */
export const Errno = { ENOENT: 2, EIO: 5, EBADF: 9, EAGAIN: 11, EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENOSPC: 28 } as const;

/** enum hvutil_device_state: where a daemon-backed service's one transaction is; compared by order. */
export const HvutilState = { DEVICE_INIT: 0, READY: 1, HOSTMSG_RECEIVED: 2, USERSPACE_REQ: 3, USERSPACE_RECV: 4, DEVICE_DYING: 5 } as const;

/** HV_UTIL_TIMEOUT: how long the kernel waits for a daemon's answer before failing the host's request. */
export const HV_UTIL_TIMEOUT_NS = 30e9;
/** HV_UTIL_NEGO_TIMEOUT: KVP's one re-poll of a channel the host spoke on before a daemon came. */
export const HV_UTIL_NEGO_TIMEOUT_NS = 55e9;

/** HVUTIL_TRANSPORT_INIT (nobody has it open), _CHARDEV (a daemon has), _DESTROY (the driver is going). */
export type HvutilMode = 'init' | 'chardev' | 'destroy';

export class HvutilTransport {
  mode: HvutilMode = 'init';
  private outmsg: Uint8Array | undefined;
  private onRead: (() => void) | undefined;
  private opener: HvutilFile | undefined;

  constructor(
    /** The device name under /dev ("vmbus/hv_kvp"). */
    readonly name: string,
    /** The driver's on_msg: 0, or a negative errno the daemon's write() returns. */
    private readonly onMsg: (msg: Uint8Array) => number,
    /** The driver's on_reset, run when the daemon closes the device. */
    private readonly onReset: () => void,
  ) {}

  /** A message is waiting for the daemon. */
  get pending(): boolean {
    return this.outmsg !== undefined;
  }

  /**
   * hvutil_transport_send: queues `msg` for the daemon (waking it); `onRead` runs once it has
   * read it. -EINVAL if no daemon has the device open, -EFAULT if the previous message is unread.
   */
  send(msg: Uint8Array, onRead?: () => void): number {
    if (this.mode !== 'chardev') return -Errno.EINVAL;
    if (this.outmsg) return -Errno.EFAULT;
    this.outmsg = msg.slice();
    this.onRead = onRead;
    this.opener?.wake();
    return 0;
  }

  /** hvutil_transport_destroy: the driver is removed; a daemon still holding the device sees it hang up. */
  destroy(): void {
    this.mode = 'destroy';
    this.opener?.wake();
  }

  /** hvt_op_open: the daemon's handle, or -EBUSY if another has it, -ENOENT once the device is gone. */
  open(wake: () => void): HvutilFile | number {
    if (this.mode === 'destroy') return -Errno.ENOENT;
    if (this.mode === 'chardev') return -Errno.EBUSY;
    this.mode = 'chardev';
    this.opener = new HvutilFile(this, wake);
    return this.opener;
  }

  /** hvt_op_poll: readable, or hung up (the device is being destroyed). */
  poll(): { readable: boolean; hangup: boolean } {
    return { readable: this.outmsg !== undefined, hangup: this.mode === 'destroy' };
  }

  /** hvt_op_read. */
  read(count: number): Uint8Array | number {
    if (this.mode === 'destroy') return -Errno.EBADF;
    const m = this.outmsg;
    if (!m) return -Errno.EAGAIN;
    if (count < m.length) return -Errno.EINVAL;
    const onRead = this.onRead;
    this.outmsg = undefined;
    this.onRead = undefined;
    onRead?.();
    return m;
  }

  /** hvt_op_write: the byte count, or a negative errno from the driver. */
  write(buf: Uint8Array): number {
    if (this.mode === 'destroy') return -Errno.EBADF;
    const ret = this.onMsg(buf.slice());
    return ret ? ret : buf.length;
  }

  /** hvt_op_release: back to INIT (unless destroyed), the unread message dropped, the driver reset. */
  release(file: HvutilFile): void {
    if (this.opener !== file) return;
    this.opener = undefined;
    if (this.mode !== 'destroy') this.mode = 'init';
    this.outmsg = undefined;
    this.onRead = undefined;
    this.onReset();
  }
}

/**
 * An open /dev/vmbus/hv_* as a daemon uses it: poll(2), read(2), write(2), close(2). The model's
 * device (HvutilFile) and the real Linux module's (src/guest/linux/chardev.ts) both give one.
 */
export interface HvutilFd {
  poll(): { readable: boolean; hangup: boolean };
  /** The message, or a negative errno. */
  read(count: number): Uint8Array | number;
  /** The byte count, or a negative errno. */
  write(buf: Uint8Array): number;
  close(): void;
}

/** An open /dev/vmbus/hv_*: the daemon's file descriptor. */
export class HvutilFile implements HvutilFd {
  private closed = false;

  constructor(
    private readonly hvt: HvutilTransport,
    /** Wakes the process polling this file (wake_up_interruptible on outmsg_q). */
    readonly wake: () => void,
  ) {}

  poll(): { readable: boolean; hangup: boolean } {
    return this.closed ? { readable: false, hangup: true } : this.hvt.poll();
  }

  read(count: number): Uint8Array | number {
    return this.closed ? -Errno.EBADF : this.hvt.read(count);
  }

  write(buf: Uint8Array): number {
    return this.closed ? -Errno.EBADF : this.hvt.write(buf);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.hvt.release(this);
  }
}
