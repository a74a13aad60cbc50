// The guest's VSS service: Linux 6.1's kernel half (drivers/hv/hv_snapshot.c) and its user-space
// daemon (tools/hv/hv_vss_daemon.c), joined by the hv_utils character device
// (drivers/hv/hv_utils_transport.c, /dev/vmbus/hv_vss).
//
// Kernel: one transaction at a time (vss_transaction.state, enum hvutil_device_state). NEGOTIATE
// is answered at once ("VSS IC version 5.0"); FREEZE, THAW and HOT_BACKUP go to the daemon, with
// a delayed work that answers HV_E_FAIL if the daemon is silent for 15 min (FREEZE) or 30 s
// (HV_UTIL_TIMEOUT); until a daemon has registered they are answered HV_E_FAIL; every other
// operation is answered 0 at once (GET_DM_INFO with dm_info.flags = 0). While a transaction is
// open the channel callback reads nothing; when it ends the callback runs again (hv_poll_channel).
//
// Daemon: registers with VSS_OP_REGISTER1, then answers each message: FREEZE and THAW run
// FIFREEZE / FITHAW on the mounted file systems (here: the user's hooks, for the one file system
// hvkit's guest has, "/"); a failed FREEZE thaws again; HOT_BACKUP only logs. When the kernel
// refuses its answer (the transaction timed out meanwhile) the daemon closes and reopens the
// device, thawing first if it had frozen: that is how a freeze that outlives the timeout ends
// thawed. Daemon lines go to the guest log under its syslog ident, "Hyper-V VSS".
//
// A Linux 6.1 quirk kept here: the daemon answers by writing `error` over the message, and
// `error` overlays vss_hdr.operation (both at offset 0 of hv_vss_msg), so the kernel's test for a
// HOT_BACKUP answer never matches and VSS_HBU_NO_AUTO_RECOVERY is not set: the host gets its own
// flags back.
import { VmbusError } from '../../vmbus/client/errors.js';
import { VmbusVersion } from '../../vmbus/wire/constants.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { GuestServices } from '../device.js';
import { callHook, errText, HvutilDaemon, strerror, type HookResult } from '../ic/daemon.js';
import { trackedService, type UtilChannel, type UtilService } from '../ic/guest.js';
import { HvutilKernel } from '../ic/hvutil.js';
import { Errno, HvutilState, HV_UTIL_TIMEOUT_NS, type HvutilTransport } from '../ic/transport.js';
import { HV_E_FAIL, HV_S_OK, ICMSG_HDR, IcMsgType, LINUX_UTIL_VERSIONS } from '../ic/wire.js';
import { HvVssMsg, VssAt, VssOp, VSS_FREEZE_TIMEOUT_S, VSS_HBU_NO_AUTO_RECOVERY, VSS_MAX_PKT_SIZE, VSS_OP_REGISTER, VSS_OP_REGISTER1 } from './wire.js';

// --- The kernel half: hv_snapshot.c ------------------------------------------------------------

const FN = 'hv_vss_onchannelcallback';

export interface VssHooks {
  /** Where the daemon runs FIFREEZE: true or nothing = frozen; false or a throw = failed. */
  freeze?(): HookResult;
  /** Where the daemon runs FITHAW. */
  thaw?(): HookResult;
}

export interface VssServiceOptions {
  readonly hooks?: VssHooks;
  /** hv_vss_daemon runs (started when the device is probed, as systemd would). Default true. */
  readonly daemon?: boolean;
}

export class VssGuest extends HvutilKernel {
  /** dm_reg_value: the registration the daemon used. */
  daemonVersion: number | undefined;
  readonly daemon: VssDaemon;

  constructor(util: UtilChannel, versions: { readonly framework: readonly number[]; readonly message: readonly number[] }, options: VssServiceOptions) {
    // hv_vss_init: the service needs a host with VMBus 3.0 (VERSION_WIN8_1) or newer.
    if (util.vmbusVersion < VmbusVersion.WIN8_1) {
      util.log('warn', "Integration service 'Backup (volume snapshot)' not supported on this host version.");
      throw new VmbusError('ENODEV', 'VSS needs VMBus 3.0');
    }
    super(util, { fn: FN, label: 'VSS', icName: 'VSS', msgType: IcMsgType.VSS, device: 'vmbus/hv_vss', versions });
    // FREEZE requests carry LUN data beyond hv_vss_msg (vmbus.md §9.8).
    util.maxPacketSize = VSS_MAX_PKT_SIZE;
    this.daemon = new VssDaemon(this.device, util.services, options.hooks ?? {});
    if (options.daemon ?? true) this.daemon.start();
  }

  protected onRequest(recvlen: number): void {
    if (recvlen < ICMSG_HDR + HvVssMsg.size) return this.util.logRatelimited(FN, 'data', 'err', `Invalid VSS msg. Packet length too small: ${recvlen}`);
    // schedule_work(vss_handle_request): process context, here right away.
    this.handleRequest();
  }

  private get operation(): number {
    return this.util.buffer[ICMSG_HDR + VssAt.operation]!;
  }

  /** vss_handle_request. */
  private handleRequest(): void {
    const op = this.operation;
    switch (op) {
      case VssOp.THAW:
      case VssOp.FREEZE:
      case VssOp.HOT_BACKUP:
        if (this.state < HvutilState.READY) {
          this.util.services.note(`hv_utils: VSS: Not ready for request (op ${op}): no daemon has registered`);
          this.respond(HV_E_FAIL);
          return;
        }
        this.state = HvutilState.HOSTMSG_RECEIVED;
        this.sendOp();
        return;
      case VssOp.GET_DM_INFO:
        this.dv.setUint32(ICMSG_HDR + VssAt.flags, 0, true);
        break;
      default:
        break;
    }
    this.respond(HV_S_OK);
    this.pollChannel();
  }

  /** vss_send_op: the request to the daemon, under the timeout. */
  private sendOp(): void {
    const op = this.operation;
    if (this.state !== HvutilState.HOSTMSG_RECEIVED) return;
    const msg = new Uint8Array(HvVssMsg.size);
    msg[VssAt.operation] = op;
    this.state = HvutilState.USERSPACE_REQ;
    this.timeout.schedule(op === VssOp.FREEZE ? VSS_FREEZE_TIMEOUT_S * 1e9 : HV_UTIL_TIMEOUT_NS);
    const rc = this.device.send(msg);
    if (rc) {
      this.util.log('warn', `VSS: failed to communicate to the daemon: ${rc}`);
      if (this.timeout.cancel()) {
        this.respond(HV_E_FAIL);
        this.state = HvutilState.READY;
      }
    }
  }

  /** vss_timeout_func. */
  protected onTimeout(): void {
    this.util.log('warn', 'VSS: timeout waiting for daemon to reply');
    this.respond(HV_E_FAIL);
    this.pollChannel();
  }

  /** vss_on_msg: what the daemon writes. */
  protected onMsg(msg: Uint8Array): number {
    if (msg.length !== HvVssMsg.size) return -Errno.EINVAL;
    const op = msg[VssAt.operation]!;
    if (op === VSS_OP_REGISTER || op === VSS_OP_REGISTER1) {
      if (this.state > HvutilState.READY) return -Errno.EINVAL;
      return this.handshake(op);
    }
    if (this.state === HvutilState.USERSPACE_REQ) {
      this.state = HvutilState.USERSPACE_RECV;
      // Never true for hv_vss_daemon's answers (see the top of this file).
      if (op === VssOp.HOT_BACKUP) this.dv.setUint32(ICMSG_HDR + VssAt.flags, VSS_HBU_NO_AUTO_RECOVERY, true);
      if (this.timeout.cancel()) {
        this.respond(new DataView(msg.buffer, msg.byteOffset).getUint32(VssAt.error, true));
        this.pollChannel();
      }
      return 0;
    }
    // pr_debug("VSS: Transaction not active"): the transaction already ended (a timeout).
    this.util.services.note('hv_utils: VSS: Transaction not active: the daemon answered too late');
    return -Errno.EINVAL;
  }

  /** vss_handle_handshake. */
  private handshake(op: number): number {
    if (op === VSS_OP_REGISTER1) {
      // The daemon expects the kernel's own version back; once read, the channel is polled (vss_register_done).
      const ours = new Uint8Array(4);
      new DataView(ours.buffer).setUint32(0, VSS_OP_REGISTER1, true);
      if (this.device.send(ours, () => this.pollChannel())) return -Errno.EFAULT;
    }
    this.daemonVersion = op;
    this.util.log('info', `VSS: userspace daemon ver. ${op} connected`);
    return 0;
  }

  /** vss_on_reset: the daemon closed the device. */
  protected onReset(): void {
    if (this.timeout.cancel()) this.respond(HV_E_FAIL);
    this.state = HvutilState.DEVICE_INIT;
  }
}

// --- The daemon: hv_vss_daemon.c ----------------------------------------------------------------

/** FIFREEZE / FITHAW and the daemon's own view of them. */
type VssFsOp = typeof VssOp.FREEZE | typeof VssOp.THAW;

export class VssDaemon extends HvutilDaemon {
  /** fs_frozen. */
  frozen = false;
  /** Waiting for a hook to return. */
  busy = false;
  /** Every freeze and thaw it ran, in order, and how each ended (undefined: still running). */
  readonly operations: { op: 'freeze' | 'thaw'; ok: boolean | undefined }[] = [];

  constructor(
    device: HvutilTransport,
    services: GuestServices,
    private readonly hooks: VssHooks,
  ) {
    super(device, services, 'Hyper-V VSS');
  }

  protected override reset(): void {
    this.busy = false;
  }

  /** The reopen_vss_fd label of main(): close, thaw what this process froze, open, register. */
  protected reopen(gen: number): void {
    this.closeDevice();
    const afterThaw = (): void => {
      if (gen !== this.generation) return;
      const reg = new Uint8Array(HvVssMsg.size);
      reg[VssAt.operation] = VSS_OP_REGISTER1;
      if (this.register(gen, reg, (e) => `registration to kernel failed; error: ${errText(e)}`)) this.pump(gen);
    };
    if (!this.frozen) return afterThaw();
    this.busy = true;
    this.operate(VssOp.THAW, gen, (failed, errno) => {
      this.busy = false;
      if (failed || this.frozen) {
        this.syslog('err', `failed to thaw file system: err=${errno}`);
        return this.exit();
      }
      afterThaw();
    });
  }

  /** poll() and read() while a message waits and no hook is running, answering each. */
  protected pump(gen: number): void {
    for (;;) {
      const fd = this.fd;
      if (gen !== this.generation || !this.running || this.busy || !fd) return;
      const p = fd.poll();
      if (!p.readable && !p.hangup) return;
      const r = fd.read(HvVssMsg.size);
      if (this.inHandshake) {
        if (typeof r === 'number' || r.length !== 4) {
          this.syslog('err', 'invalid version negotiation');
          return this.exit();
        }
        this.inHandshake = false;
        this.syslog('info', `VSS: kernel module version: ${new DataView(r.buffer, r.byteOffset).getUint32(0, true)}`);
        continue;
      }
      if (typeof r === 'number' || r.length !== HvVssMsg.size) {
        const e = typeof r === 'number' ? -r : Errno.EINVAL;
        this.syslog('err', `read failed; error:${e} ${strerror(e)}`);
        this.reopen(gen);
        continue;
      }
      const msg = r;
      const op = msg[VssAt.operation]!;
      if (op === VssOp.FREEZE || op === VssOp.THAW) {
        this.busy = true;
        let inline = true;
        this.operate(op, gen, (failed) => {
          this.busy = false;
          this.syslog('info', `VSS: op=${op === VssOp.FREEZE ? 'FREEZE' : 'THAW'}: ${failed ? 'failed' : 'succeeded'}`);
          if (failed) {
            this.syslog('err', `op=${op} failed!`);
            this.syslog('err', 'report it with these files:');
            this.syslog('err', '/etc/fstab and /proc/mounts');
          }
          this.answer(gen, msg, failed ? HV_E_FAIL : HV_S_OK);
          // A hook that returned later: back to poll().
          if (!inline) this.pump(gen);
        });
        inline = false;
        continue;
      }
      if (op === VssOp.HOT_BACKUP) this.syslog('info', 'VSS: op=CHECK HOT BACKUP');
      else this.syslog('err', `Illegal op:${op}`);
      this.answer(gen, msg, HV_S_OK);
    }
  }

  /** vss_msg->error = error; write(): on failure, reopen the device. */
  private answer(gen: number, msg: Uint8Array, error: number): void {
    const fd = this.fd;
    if (gen !== this.generation || !this.running || !fd) return;
    // `error` is the union member over vss_hdr: it overwrites the operation byte.
    new DataView(msg.buffer, msg.byteOffset).setUint32(VssAt.error, error >>> 0, true);
    const w = fd.write(msg);
    if (w !== HvVssMsg.size) {
      const e = w < 0 ? -w : Errno.EINVAL;
      this.syslog('err', `write failed; error: ${e} ${strerror(e)}`);
      this.reopen(gen);
    }
  }

  /**
   * vss_operate on the guest's one file system, "/": FIFREEZE or FITHAW through the hooks. A
   * failed freeze thaws again and reports "FREEZE of / failed". `done` runs in the process loop,
   * also when a hook returns later.
   */
  private operate(op: VssFsOp, gen: number, done: (failed: boolean, errno: number) => void): void {
    const record: { op: 'freeze' | 'thaw'; ok: boolean | undefined } = { op: op === VssOp.FREEZE ? 'freeze' : 'thaw', ok: undefined };
    this.operations.push(record);
    const hook = op === VssOp.FREEZE ? this.hooks.freeze : this.hooks.thaw;
    let inline = true;
    callHook(hook && (() => hook.call(this.hooks)), (ok, errno) => {
      const k = (): void => {
        record.ok = ok;
        if (gen !== this.generation) return;
        if (op === VssOp.THAW) {
          if (ok) this.frozen = false;
          return done(!ok, errno);
        }
        if (ok) {
          this.frozen = true;
          return done(false, errno);
        }
        // The err: label: thaw everything, then name the file system that failed.
        this.operate(VssOp.THAW, gen, () => {
          this.frozen = false;
          this.syslog('err', `FREEZE of / failed; error:${errno} ${strerror(errno)}`);
          done(true, errno);
        });
      };
      if (inline) k();
      else this.loop.run(k);
    });
    inline = false;
  }
}

/** The VSS service with Linux 6.1's versions (vss_versions 5.0; fw_versions 3.0); `instances` are its channels, for inspection. */
export function makeVssService(options: VssServiceOptions = {}): UtilService & { readonly instances: readonly VssGuest[] } {
  return trackedService('vss', DeviceClass.VSS, (util) => new VssGuest(util, LINUX_UTIL_VERSIONS.vss, options));
}

/**
 * The VSS service of a guest running hv_vss_daemon with no hooks (freeze and thaw succeed). It
 * keeps nothing between VMs: one constant serves every guest.
 */
export const vssService: UtilService = {
  name: 'vss',
  classId: DeviceClass.VSS,
  attach: (util) => new VssGuest(util, LINUX_UTIL_VERSIONS.vss, {}),
};
