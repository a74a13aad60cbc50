// The guest's file-copy service: Linux 6.1's kernel half (drivers/hv/hv_fcopy.c, in hv_utils
// until a later kernel moved the protocol to uio_hv_generic, believed 6.10: UNVERIFIED) and its
// user-space daemon (tools/hv/hv_fcopy_daemon.c), joined by the hv_utils character device
// /dev/vmbus/hv_fcopy (drivers/hv/hv_utils_transport.c). The daemon writes into the guest's file
// tree (GuestServices.files).
//
// Kernel: NEGOTIATE is answered at once ("FCopy IC version 1.1"); every FCOPY message goes to the
// daemon under a 30 s timeout (HV_UTIL_TIMEOUT, answered HV_E_FAIL without a log line), and is
// answered HV_E_FAIL while no daemon has registered. START_FILE_COPY reaches the daemon with its
// names converted to UTF-8, at most W_MAX_PATH - 1 bytes each (fs/nls as 6.1.192 has it: the
// conversion stops at a character that no longer fits); WRITE_TO_FILE as the whole hv_do_fcopy
// taken from the receive buffer; the others as received.
//
// Daemon (its rules, hv_start_fcopy / hv_copy_data / hv_copy_finished / hv_copy_cancel): the
// target is "<path>/<name>"; each missing directory of the path (up to its last '/') is created
// with CREATE_PATH, else the copy fails ("Invalid path"); an existing file without OVER_WRITE is
// HV_ERROR_ALREADY_EXISTS; the file is created or truncated; fragments are written at their
// offsets (ENOSPC: HV_ERROR_DISK_FULL, other errors HV_E_FAIL); COMPLETE closes it; CANCEL closes
// and removes it. Its lines go to the guest log under its syslog ident, "HV_FCOPY".
//
// hvkit is stricter than hv_fcopy_daemon, which only joins path and name: the destination must be
// an absolute path that stays inside the guest's tree, and the file name one path component (not
// empty, ".", "..", nor containing "/"). Otherwise the copy is refused with HV_E_FAIL and an error
// line before anything is created, so a host cannot place a file outside the directory it named.
// Likewise a WRITE_TO_FILE size beyond DATA_FRAGMENT (Linux would read past the daemon's buffer)
// fails with EFAULT, and files end at `maxFileBytes` (ENOSPC), since the tree is in memory.
import { DeviceClass } from '../../vmbus/wire/guids.js';
import { normaliseGuestPath, type GuestFiles, type GuestServices } from '../device.js';
import { errnoOf, HvutilDaemon, strerror } from '../ic/daemon.js';
import { trackedService, type UtilChannel, type UtilService } from '../ic/guest.js';
import { HvutilKernel } from '../ic/hvutil.js';
import { cString, fromUtf8, utf16sToUtf8s } from '../ic/nls.js';
import { Errno, HvutilState, HV_UTIL_TIMEOUT_NS, type HvutilTransport } from '../ic/transport.js';
import { HV_E_FAIL, HV_ERROR_ALREADY_EXISTS, HV_ERROR_DISK_FULL, HV_S_OK, ICMSG_HDR, IcMsgType, LINUX_UTIL_VERSIONS } from '../ic/wire.js';
import { CREATE_PATH, DATA_FRAGMENT, FcopyOp, FCOPY_CURRENT_VERSION, FCOPY_MAX_PKT_SIZE, FCOPY_VERSION_0, FCOPY_VERSION_1, HvDoFcopy, HvFcopyHdr, HvStartFcopy, OVER_WRITE, W_MAX_PATH } from './wire.js';

const FN = 'hv_fcopy_onchannelcallback';

/** The largest file the daemon writes (an hvkit limit: the tree may live in memory). */
export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024;

export interface FcopyServiceOptions {
  /** hv_fcopy_daemon runs (started when the device is probed, as systemd would). Default true. */
  readonly daemon?: boolean;
  /** Writes that would make a file longer fail with ENOSPC (HV_ERROR_DISK_FULL). */
  readonly maxFileBytes?: number;
}

// --- The kernel half: hv_fcopy.c ---------------------------------------------------------------

export class FcopyGuest extends HvutilKernel {
  /** dm_reg_value: the registration version the daemon used. */
  daemonVersion: number | undefined;
  readonly daemon: FcopyDaemon;

  constructor(util: UtilChannel, versions: { readonly framework: readonly number[]; readonly message: readonly number[] }, options: FcopyServiceOptions) {
    super(util, { fn: FN, label: 'Fcopy', icName: 'FCopy', msgType: IcMsgType.FCOPY, device: 'vmbus/hv_fcopy', versions });
    // hv_fcopy_init: WRITE_TO_FILE packets are 6224 bytes, more than the default page.
    util.maxPacketSize = FCOPY_MAX_PKT_SIZE;
    this.daemon = new FcopyDaemon(this.device, util.services, options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES);
    if (options.daemon ?? true) this.daemon.start();
  }

  protected onRequest(recvlen: number): void {
    if (recvlen < ICMSG_HDR + HvFcopyHdr.size) return this.util.logRatelimited(FN, 'hdr', 'err', `Invalid Fcopy hdr. Packet length too small: ${recvlen}`);
    if (this.state < HvutilState.READY) {
      // No daemon has registered.
      this.respond(HV_E_FAIL);
      return;
    }
    this.state = HvutilState.HOSTMSG_RECEIVED;
    // schedule_work(fcopy_send_data) and the timeout; the work runs here, after both.
    this.timeout.schedule(HV_UTIL_TIMEOUT_NS);
    this.sendData();
  }

  /** fcopy_send_data: what the daemon reads. */
  private sendData(): void {
    const buf = this.util.buffer;
    const at = ICMSG_HDR;
    const operation = this.dv.getUint32(at + HvFcopyHdr.offsets.operation, true);
    let out: Uint8Array;
    if (operation === FcopyOp.START_FILE_COPY) {
      // The names become UTF-8 in the same (zeroed) structure, at most W_MAX_PATH - 1 bytes each.
      out = new Uint8Array(HvStartFcopy.size);
      const o = new DataView(out.buffer);
      o.setUint32(HvStartFcopy.offsets.hdr + HvFcopyHdr.offsets.operation, operation, true);
      out.set(utf16sToUtf8s(buf, at + HvStartFcopy.offsets.file_name, W_MAX_PATH, W_MAX_PATH - 1), HvStartFcopy.offsets.file_name);
      out.set(utf16sToUtf8s(buf, at + HvStartFcopy.offsets.path_name, W_MAX_PATH, W_MAX_PATH - 1), HvStartFcopy.offsets.path_name);
      o.setUint32(HvStartFcopy.offsets.copy_flags, this.dv.getUint32(at + HvStartFcopy.offsets.copy_flags, true), true);
      o.setBigUint64(HvStartFcopy.offsets.file_size, this.dv.getBigUint64(at + HvStartFcopy.offsets.file_size, true), true);
    } else if (operation === FcopyOp.WRITE_TO_FILE) {
      // sizeof(struct hv_do_fcopy) from the buffer, whatever the host sent of it.
      out = buf.slice(at, at + HvDoFcopy.size);
    } else {
      out = buf.slice(at, at + this.recvLen);
    }
    this.state = HvutilState.USERSPACE_REQ;
    const rc = this.device.send(out);
    if (rc) {
      this.util.services.note(`hv_utils: FCP: failed to communicate to the daemon: ${rc}`);
      if (this.timeout.cancel()) {
        this.respond(HV_E_FAIL);
        this.state = HvutilState.READY;
      }
    }
  }

  /** fcopy_timeout_func: Linux prints nothing. */
  protected onTimeout(): void {
    this.util.services.note('hv_utils: FCP: the daemon did not answer within 30 s: HV_E_FAIL');
    this.respond(HV_E_FAIL);
    this.pollChannel();
  }

  /** fcopy_on_msg: the daemon writes one int. */
  protected onMsg(msg: Uint8Array): number {
    if (msg.length !== 4) return -Errno.EINVAL;
    const val = new DataView(msg.buffer, msg.byteOffset).getInt32(0, true);
    if (this.state === HvutilState.DEVICE_INIT) return this.handshake(val);
    if (this.state !== HvutilState.USERSPACE_REQ) return -Errno.EINVAL;
    if (this.timeout.cancel()) {
      this.state = HvutilState.USERSPACE_RECV;
      this.respond(val);
      this.pollChannel();
    }
    return 0;
  }

  /** fcopy_handle_handshake. */
  private handshake(version: number): number {
    if (version === FCOPY_VERSION_1) {
      const ours = new Uint8Array(4);
      new DataView(ours.buffer).setUint32(0, FCOPY_CURRENT_VERSION, true);
      if (this.device.send(ours, () => this.pollChannel())) return -Errno.EFAULT;
    } else if (version !== FCOPY_VERSION_0) {
      return -Errno.EINVAL;
    }
    this.daemonVersion = version;
    this.util.services.note(`hv_utils: FCP: userspace daemon ver. ${version} connected`);
    return 0;
  }

  /** fcopy_on_reset: the daemon closed the device. */
  protected onReset(): void {
    this.state = HvutilState.DEVICE_INIT;
    if (this.timeout.cancel()) this.respond(HV_E_FAIL);
  }
}

// --- The daemon: hv_fcopy_daemon.c --------------------------------------------------------------

/** Its read buffer: the union of hv_fcopy_hdr, hv_start_fcopy, hv_do_fcopy and a u32. */
const DAEMON_BUFFER = Math.max(HvFcopyHdr.size, HvStartFcopy.size, HvDoFcopy.size, 4);

export class FcopyDaemon extends HvutilDaemon {
  /** Stopped by stop() (SIGSTOP). */
  stopped = false;
  /** target_fname: the file being copied ('' when none). */
  target = '';
  /** What target_fd refers to: the file open for writing, if any. */
  private fdPath: string | undefined;
  /** filesize: the bytes written since the last START. */
  written = 0n;
  /** The union buffer persists across reads: a short message leaves the rest as it was. */
  private readonly buffer = new Uint8Array(DAEMON_BUFFER);
  private readonly dv = new DataView(this.buffer.buffer);

  constructor(
    device: HvutilTransport,
    services: GuestServices,
    private readonly maxFileBytes: number,
  ) {
    super(device, services, 'HV_FCOPY');
  }

  private get files(): GuestFiles {
    return this.services.files;
  }

  /** SIGSTOP: the process reads nothing until cont(); the kernel's timeout runs meanwhile. */
  stop(): void {
    this.stopped = true;
  }

  /** SIGCONT: it goes on with what waits. */
  cont(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const gen = this.generation;
    this.loop.run(() => this.pump(gen));
  }

  /** The reopen_fcopy_fd label: close, drop a partial copy, open, register. */
  protected reopen(gen: number): void {
    this.closeDevice();
    this.copyCancel();
    const version = new Uint8Array(4);
    new DataView(version.buffer).setInt32(0, FCOPY_CURRENT_VERSION, true);
    if (this.register(gen, version, (e) => `Registration failed: ${strerror(e)}`)) this.pump(gen);
  }

  protected pump(gen: number): void {
    for (;;) {
      const fd = this.fd;
      if (gen !== this.generation || !this.running || this.stopped || !fd) return;
      const p = fd.poll();
      if (!p.readable && !p.hangup) return;
      const r = fd.read(DAEMON_BUFFER);
      if (typeof r === 'number') {
        this.syslog('err', `pread failed: ${strerror(-r)}`);
        this.reopen(gen);
        continue;
      }
      this.buffer.set(r);
      if (this.inHandshake) {
        if (r.length !== 4) {
          this.syslog('err', 'invalid version negotiation');
          return this.exit();
        }
        this.inHandshake = false;
        this.syslog('info', `kernel module version: ${this.dv.getUint32(0, true)}`);
        continue;
      }
      const op = this.dv.getUint32(HvFcopyHdr.offsets.operation, true);
      let error: number;
      switch (op) {
        case FcopyOp.START_FILE_COPY:
          error = this.startCopy();
          break;
        case FcopyOp.WRITE_TO_FILE:
          error = this.copyData();
          break;
        case FcopyOp.COMPLETE_FCOPY:
          error = this.copyFinished();
          break;
        case FcopyOp.CANCEL_FCOPY:
          error = this.copyCancel();
          break;
        default:
          error = HV_E_FAIL;
          this.syslog('err', `Unknown operation: ${op}`);
      }
      const answer = new Uint8Array(4);
      new DataView(answer.buffer).setUint32(0, error >>> 0, true);
      const w = fd.write(answer);
      if (w !== 4) {
        this.syslog('err', `pwrite failed: ${strerror(w < 0 ? -w : Errno.EINVAL)}`);
        this.reopen(gen);
      }
    }
  }

  /** access(path, F_OK). */
  private access(path: string): boolean {
    try {
      return this.files.exists(path);
    } catch {
      return false;
    }
  }

  /** hv_start_fcopy. */
  private startCopy(): number {
    this.written = 0n;
    const path = fromUtf8(cString(this.buffer, HvStartFcopy.offsets.path_name, HvStartFcopy.offsets.path_name + 2 * W_MAX_PATH));
    const name = fromUtf8(cString(this.buffer, HvStartFcopy.offsets.file_name, HvStartFcopy.offsets.file_name + 2 * W_MAX_PATH));
    const flags = this.dv.getUint32(HvStartFcopy.offsets.copy_flags, true);
    const target = `${path}/${name}`;
    this.syslog('info', `Target file name: ${target}`);
    const fail = (error: number): number => {
      this.target = '';
      return error;
    };
    const refusal = escapeReason(path, name);
    if (refusal) {
      this.syslog('err', `hvkit: refusing ${target}: ${refusal}`);
      return fail(HV_E_FAIL);
    }
    // Each directory of the path up to its last '/', created with CREATE_PATH.
    for (let p = 0, q = path.indexOf('/'); q >= 0; q = path.indexOf('/', p)) {
      if (q === p) {
        p++;
        continue;
      }
      const dir = path.slice(0, q);
      if (!this.access(dir)) {
        if (!(flags & CREATE_PATH)) {
          this.syslog('err', `Invalid path: ${dir}`);
          return fail(HV_E_FAIL);
        }
        try {
          this.files.mkdirs(dir);
        } catch {
          this.syslog('err', `Failed to create ${dir}`);
          return fail(HV_E_FAIL);
        }
      }
      p = q + 1;
    }
    if (this.access(target)) {
      this.syslog('info', `File: ${target} exists`);
      if (!(flags & OVER_WRITE)) return fail(HV_ERROR_ALREADY_EXISTS);
    }
    // open(O_RDWR | O_CREAT | O_TRUNC).
    let errno = 0;
    try {
      if (this.files.isDirectory(target)) errno = Errno.EISDIR;
      else this.files.write(target, new Uint8Array(0));
    } catch (e) {
      errno = errnoOf(e);
    }
    if (errno) {
      this.syslog('info', `Open Failed: ${strerror(errno)}`);
      return fail(HV_E_FAIL);
    }
    this.fdPath = target;
    this.target = target;
    return HV_S_OK;
  }

  /** hv_copy_data: pwrite(target_fd, data, size, offset). */
  private copyData(): number {
    const offset = this.dv.getBigUint64(HvDoFcopy.offsets.offset, true);
    const size = this.dv.getUint32(HvDoFcopy.offsets.size, true);
    this.written = (this.written + BigInt(size)) & 0xffff_ffff_ffff_ffffn;
    const errno = this.pwrite(offset, size);
    if (errno === 0) return HV_S_OK;
    this.syslog('err', `pwrite failed to write ${this.written} bytes: -1 (${strerror(errno)})`);
    return errno === Errno.ENOSPC ? HV_ERROR_DISK_FULL : HV_E_FAIL;
  }

  /** The errno of the write, or 0. */
  private pwrite(offset: bigint, size: number): number {
    const path = this.fdPath;
    if (path === undefined) return Errno.EBADF;
    // hvkit: the data must lie inside hv_do_fcopy (Linux would read past the daemon's buffer).
    if (size > DATA_FRAGMENT) return Errno.EFAULT;
    // An off_t is signed: a negative offset is EINVAL.
    if (offset >= 1n << 63n) return Errno.EINVAL;
    if (size === 0) return 0;
    const end = offset + BigInt(size);
    if (end > BigInt(this.maxFileBytes)) return Errno.ENOSPC;
    try {
      // The end is within maxFileBytes (checked above), so the offset is a safe integer.
      this.files.writeAt(path, Number(offset), this.buffer.subarray(HvDoFcopy.offsets.data, HvDoFcopy.offsets.data + size));
    } catch (e) {
      return errnoOf(e);
    }
    return 0;
  }

  /** hv_copy_finished: close the file. */
  private copyFinished(): number {
    this.fdPath = undefined;
    this.target = '';
    return HV_S_OK;
  }

  /** hv_copy_cancel: close the file and remove what was copied. */
  private copyCancel(): number {
    this.fdPath = undefined;
    if (this.target) {
      try {
        this.files.remove(this.target);
      } catch {
        // unlink's error is ignored.
      }
      this.target = '';
    }
    return HV_S_OK;
  }
}

/**
 * Why hvkit refuses a destination Linux's daemon would use, or undefined. The file name must be
 * one component so that "<path>/<name>" is a file directly inside <path>; the path must be
 * absolute and stay inside the guest's tree.
 */
export function escapeReason(path: string, name: string): string | undefined {
  if (!path.startsWith('/')) return 'the destination path is not absolute';
  const dir = normaliseGuestPath(path);
  if (dir === undefined) return 'the destination path climbs above /';
  if (name === '' || name === '.' || name === '..' || name.includes('/')) return `the file name "${name}" does not name a file inside ${dir}`;
  return undefined;
}

/** The file-copy service with Linux 6.1's versions (fcopy_versions 1.1; fw_versions 3.0); `instances` are its channels, for inspection. */
export function makeFcopyService(options: FcopyServiceOptions = {}): UtilService & { readonly instances: readonly FcopyGuest[] } {
  return trackedService('fcopy', DeviceClass.FCOPY, (util) => new FcopyGuest(util, LINUX_UTIL_VERSIONS.fcopy, options));
}

/** The file-copy service of a guest running hv_fcopy_daemon; it keeps nothing between VMs. */
export const fcopyService: UtilService = {
  name: 'fcopy',
  classId: DeviceClass.FCOPY,
  attach: (util) => new FcopyGuest(util, LINUX_UTIL_VERSIONS.fcopy, {}),
};
