// The guest's KVP service: Linux 6.1 drivers/hv/hv_kvp.c (the kernel half, a util service of
// hv_utils, on the shared kernel half ../ic/hvutil.ts) with its daemon (daemon.ts) behind
// /dev/vmbus/hv_kvp (../ic/transport.ts).
//
// The kernel half holds one transaction at a time (kvp_transaction.state: DEVICE_INIT until a
// daemon registers, READY, HOSTMSG_RECEIVED, USERSPACE_REQ, USERSPACE_RECV). Until the daemon
// has registered it does not read its ring at all, so even the NEGOTIATE waits. A KVP request
// is stashed in the receive buffer, converted for the daemon (UTF-16 → UTF-8, numbers to
// decimal text) and queued on the device; the daemon's answer is converted back into the same
// buffer, which goes back to the host with the received length. If the daemon does not answer
// within HV_UTIL_TIMEOUT (30 s), or cannot be reached, or closes the device meanwhile, the host
// gets HV_E_FAIL. After every answer the channel is polled again (hv_poll_channel), so queued
// requests are taken one after the other.
//
// Nothing in a request is length-checked beyond the 28 header bytes (hv_kvp.c leaves such checks
// to the driver's users, and none makes them): a short request is read with whatever the
// receive buffer held past it; a key or value's size is taken as a UTF-16 unit count, bounded
// only by a NUL and the UTF-8 room (511 and 2047 bytes), lone surrogates are dropped. Answers to
// ENUMERATE are cut to 254 and 1022 UTF-16 units. GET answers an empty value for a key that
// exists: the kernel leaves value_size 0 in the daemon's request, so the daemon copies nothing,
// and reads the answer's value from the enumerate layout — what Linux 6.1 does, and why
// Hyper-V reads guest pools by ENUMERATE.
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { GuestServices } from '../device.js';
import { DelayedWork, type UtilChannel, type UtilService } from '../ic/guest.js';
import { HvutilKernel } from '../ic/hvutil.js';
import type { NegotiateOutcome } from '../ic/negotiate.js';
import { cInt, cStrlen, putUnits, utf16sToUtf8s, utf8, utf8sToUtf16s } from '../ic/nls.js';
import { Errno, HvutilState, HV_UTIL_NEGO_TIMEOUT_NS, HV_UTIL_TIMEOUT_NS, type HvutilFile } from '../ic/transport.js';
import { HV_E_FAIL, HV_S_CONT, icField, ICMSG_HDR, IcMsgType, LINUX_UTIL_VERSIONS } from '../ic/wire.js';
import { KvpDaemon, type SyslogLine } from './daemon.js';
import {
  HV_KVP_EXCHANGE_MAX_KEY_SIZE,
  HV_KVP_EXCHANGE_MAX_VALUE_SIZE,
  HvKvpMsg,
  type HvKvpIpaddrValue,
  KvpAt,
  KvpOp,
  KVP_MAX_PKT_SIZE,
  KVP_OP_REGISTER,
  KVP_OP_REGISTER1,
  MAX_ADAPTER_ID_SIZE,
  MAX_GATEWAY_SIZE,
  MAX_IP_ADDR_SIZE,
  RegType,
} from './wire.js';

/** HV_DRV_VERSION: what the kernel tells the daemon at registration (its IntegrationServicesVersion). */
export const HV_DRV_VERSION = '3.1';

/** The kernel half on one channel (hv_kvp.c's static state lives here). */
export class KvpKernel extends HvutilKernel {
  /** dm_reg_value: the registration the daemon made. */
  daemonProtocol: number | undefined;
  private hostNegotiated: 'not-started' | 'in-progress' | 'finished' = 'not-started';
  /** kvp_host_handshake_work: the one re-poll while no daemon has registered. */
  private readonly handshake: DelayedWork;

  constructor(util: UtilChannel, versions: { readonly framework: readonly number[]; readonly message: readonly number[] }) {
    super(util, { fn: 'hv_kvp_onchannelcallback', label: 'KVP', icName: 'KVP', msgType: IcMsgType.KVPEXCHANGE, device: 'vmbus/hv_kvp', versions });
    // hv_kvp_init: requests carry up to four pages (the IP-info ones are 7458 bytes).
    util.maxPacketSize = KVP_MAX_PKT_SIZE;
    this.handshake = new DelayedWork(util.services, () => this.onChannelCallback());
  }

  private get buf(): Uint8Array {
    return this.util.buffer;
  }

  // --- The channel ---------------------------------------------------------------------------

  /** hv_kvp_onchannelcallback: until a daemon has registered it leaves the ring alone. */
  protected override callbackOnce(): void {
    if (this.removed) return;
    if (this.state < HvutilState.READY) {
      // The re-poll finds the same state; only a registration (kvp_register_done) gets the channel read.
      if (this.hostNegotiated === 'not-started') {
        this.hostNegotiated = 'in-progress';
        this.handshake.schedule(HV_UTIL_NEGO_TIMEOUT_NS);
      }
      return;
    }
    super.callbackOnce();
  }

  /** kvp_srv_version keeps what vmbus_prep_negotiate_resp left, even when it failed. */
  protected override onNegotiated(r: NegotiateOutcome): void {
    super.onNegotiated(r);
    if (r.message !== undefined) this.version = r.message;
  }

  protected override afterNegotiate(): void {
    this.hostNegotiated = 'finished';
    this.pollChannel();
  }

  protected onRequest(): void {
    this.state = HvutilState.HOSTMSG_RECEIVED;
    // The timeout is armed in the callback; kvp_send_key runs from a work item (here: at once).
    this.timeout.schedule(HV_UTIL_TIMEOUT_NS);
    this.sendKey();
  }

  // --- Towards the daemon ----------------------------------------------------------------------

  /** kvp_send_key: the host's request converted into an hv_kvp_msg for the daemon. */
  private sendKey(): void {
    if (this.state !== HvutilState.HOSTMSG_RECEIVED) return;
    const inAt = ICMSG_HDR;
    const buf = this.buf;
    const dv = this.dv;
    const op = buf[inAt + KvpAt.operation]!;
    const pool = buf[inAt + KvpAt.pool]!;
    const msg = new Uint8Array(HvKvpMsg.size);
    const out = new DataView(msg.buffer);
    msg[KvpAt.operation] = op;
    msg[KvpAt.pool] = pool;
    const in32 = (at: number) => dv.getUint32(inAt + at, true);
    /** utf16s_to_utf8s from the host's area into the message; returns the byte count. */
    const toUtf8 = (from: number, units: number, to: number, maxout: number): number => {
      const b = utf16sToUtf8s(buf, inAt + from, cInt(units), maxout);
      msg.set(b, to);
      return b.length;
    };
    switch (op) {
      case KvpOp.SET_IP_INFO:
      case KvpOp.GET_IP_INFO: {
        // process_ib_ipinfo: from hv_kvp_ip_msg (settings at 2) to hv_kvp_msg (at 4), as UTF-8.
        if (op === KvpOp.SET_IP_INFO) {
          toUtf8(KvpAt.ipMsg('ip_addr'), MAX_IP_ADDR_SIZE, KvpAt.ipVal('ip_addr'), MAX_IP_ADDR_SIZE);
          toUtf8(KvpAt.ipMsg('sub_net'), MAX_IP_ADDR_SIZE, KvpAt.ipVal('sub_net'), MAX_IP_ADDR_SIZE);
          toUtf8(KvpAt.ipMsg('gate_way'), MAX_GATEWAY_SIZE, KvpAt.ipVal('gate_way'), MAX_GATEWAY_SIZE);
          toUtf8(KvpAt.ipMsg('dns_addr'), MAX_IP_ADDR_SIZE, KvpAt.ipVal('dns_addr'), MAX_IP_ADDR_SIZE);
          msg[KvpAt.ipVal('dhcp_enabled')] = buf[inAt + KvpAt.ipMsg('dhcp_enabled')]!;
        }
        toUtf8(KvpAt.ipMsg('adapter_id'), MAX_ADAPTER_ID_SIZE, KvpAt.ipVal('adapter_id'), MAX_ADAPTER_ID_SIZE);
        msg[KvpAt.ipVal('addr_family')] = buf[inAt + KvpAt.ipMsg('addr_family')]!;
        break;
      }
      case KvpOp.SET: {
        let valueSize = 0;
        switch (in32(KvpAt.set('value_type'))) {
          case RegType.SZ:
            valueSize = toUtf8(KvpAt.set('value'), in32(KvpAt.set('value_size')), KvpAt.set('value'), HV_KVP_EXCHANGE_MAX_VALUE_SIZE - 1) + 1;
            break;
          case RegType.U32:
            valueSize = this.putDecimal(msg, KvpAt.set('value'), BigInt(in32(KvpAt.set('value'))));
            break;
          case RegType.U64:
            valueSize = this.putDecimal(msg, KvpAt.set('value'), dv.getBigUint64(inAt + KvpAt.set('value'), true));
            break;
        }
        out.setUint32(KvpAt.set('value_size'), valueSize, true);
        out.setUint32(KvpAt.set('key_size'), toUtf8(KvpAt.set('key'), in32(KvpAt.set('key_size')), KvpAt.set('key'), HV_KVP_EXCHANGE_MAX_KEY_SIZE - 1) + 1, true);
        break;
      }
      case KvpOp.GET:
        out.setUint32(KvpAt.get('key_size'), toUtf8(KvpAt.get('key'), in32(KvpAt.get('key_size')), KvpAt.get('key'), HV_KVP_EXCHANGE_MAX_KEY_SIZE - 1) + 1, true);
        break;
      case KvpOp.DELETE:
        out.setUint32(KvpAt.deleteKeySize, toUtf8(KvpAt.deleteKey, in32(KvpAt.deleteKeySize), KvpAt.deleteKey, HV_KVP_EXCHANGE_MAX_KEY_SIZE - 1) + 1, true);
        break;
      case KvpOp.ENUMERATE:
        out.setUint32(KvpAt.enumIndex, in32(KvpAt.enumIndex), true);
        break;
    }
    this.state = HvutilState.USERSPACE_REQ;
    const rc = this.device.send(msg);
    if (rc) {
      this.util.log('debug', `KVP: failed to communicate to the daemon: ${rc}`);
      if (this.timeout.cancel()) {
        this.respondToHost(msg, HV_E_FAIL);
        this.state = HvutilState.READY;
      }
    }
  }

  /** sprintf("%u" / "%llu") into the message; returns the length with the NUL. */
  private putDecimal(msg: Uint8Array, at: number, v: bigint): number {
    const b = utf8(v.toString());
    msg.set(b, at);
    return b.length + 1;
  }

  /** kvp_on_msg: what the daemon wrote. 0, or a negative errno its write() returns. */
  protected onMsg(msg: Uint8Array): number {
    if (msg.length < HvKvpMsg.size) return -Errno.EINVAL;
    if (this.state < HvutilState.READY) return this.handleHandshake(msg);
    // Nothing was sent to the daemon: the answer is spurious.
    if (this.state < HvutilState.USERSPACE_REQ) return -Errno.EINVAL;
    this.state = HvutilState.USERSPACE_RECV;
    const dv = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
    let error = 0;
    if (this.daemonProtocol === KVP_OP_REGISTER) error = msg[KvpAt.enum('key')] === 0 ? HV_S_CONT : 0;
    else if (this.daemonProtocol === KVP_OP_REGISTER1) error = dv.getUint32(KvpAt.error, true);
    if (this.timeout.cancel()) {
      this.respondToHost(msg, error);
      this.pollChannel();
    }
    return 0;
  }

  /** kvp_handle_handshake. */
  private handleHandshake(msg: Uint8Array): number {
    const u = this.util;
    const op = msg[KvpAt.operation]!;
    switch (op) {
      case KVP_OP_REGISTER:
        this.daemonProtocol = KVP_OP_REGISTER;
        u.log('info', 'KVP: IP injection functionality not available');
        u.log('info', 'KVP: Upgrade the KVP daemon');
        break;
      case KVP_OP_REGISTER1:
        this.daemonProtocol = KVP_OP_REGISTER1;
        break;
      default:
        u.log('info', 'KVP: incompatible daemon');
        u.log('info', `KVP: KVP version: ${KVP_OP_REGISTER1}, Daemon version: ${op}`);
        return -Errno.EINVAL;
    }
    u.log('debug', `KVP: userspace daemon ver. ${op} connected`);
    // kvp_register: the kernel's answer carries HV_DRV_VERSION; once read, the channel is polled.
    const reg = new Uint8Array(HvKvpMsg.size);
    reg[KvpAt.operation] = this.daemonProtocol;
    reg.set(utf8(HV_DRV_VERSION), KvpAt.register);
    return this.device.send(reg, () => this.registerDone());
  }

  /** kvp_register_done. */
  private registerDone(): void {
    this.util.log('debug', 'KVP: userspace daemon registered');
    this.handshake.cancel();
    this.pollChannel();
  }

  /** kvp_timeout_func: the daemon did not answer in time. */
  protected onTimeout(): void {
    this.respondToHost(undefined, HV_E_FAIL);
    this.pollChannel();
  }

  /** kvp_on_reset: the daemon closed the device. */
  protected onReset(): void {
    if (this.timeout.cancel()) this.respondToHost(undefined, HV_E_FAIL);
    this.state = HvutilState.DEVICE_INIT;
  }

  // --- Towards the host ------------------------------------------------------------------------

  /** kvp_respond_to_host: the daemon's answer (when it succeeded) written over the request, and sent. */
  private respondToHost(fromDaemon: Uint8Array | undefined, error: number): void {
    this.respond(error, !error && fromDaemon ? () => this.fillAnswer(fromDaemon, this.dv) : undefined);
  }

  private fillAnswer(d: Uint8Array, dv: DataView): void {
    const buf = this.buf;
    const at = ICMSG_HDR;
    /** utf8s_to_utf16s of the daemon's C string at `from` into the buffer; returns its result. */
    const toUtf16 = (from: number, to: number, maxout: number): number => {
      const r = utf8sToUtf16s(d, from, cStrlen(d, from), maxout);
      putUnits(buf, at + to, r.units);
      return r.ret;
    };
    let keylen = 0;
    let recordAt: (f: 'key' | 'value' | 'key_size' | 'value_size' | 'value_type') => number;
    switch (buf[at + KvpAt.operation]) {
      case KvpOp.GET_IP_INFO: {
        // process_ob_ipinfo: each string back to UTF-16; a failure fails the answer.
        const fields: [keyof typeof HvKvpIpaddrValue.offsets, number][] = [
          ['ip_addr', MAX_IP_ADDR_SIZE],
          ['sub_net', MAX_IP_ADDR_SIZE],
          ['gate_way', MAX_GATEWAY_SIZE],
          ['dns_addr', MAX_IP_ADDR_SIZE],
          ['adapter_id', MAX_ADAPTER_ID_SIZE],
        ];
        for (const [f, max] of fields) {
          if (toUtf16(KvpAt.ipVal(f), KvpAt.ipMsg(f), max) < 0) {
            dv.setUint32(icField('status'), HV_E_FAIL, true);
            return;
          }
        }
        buf[at + KvpAt.ipMsg('dhcp_enabled')] = d[KvpAt.ipVal('dhcp_enabled')]!;
        buf[at + KvpAt.ipMsg('addr_family')] = d[KvpAt.ipVal('addr_family')]!;
        return;
      }
      case KvpOp.SET_IP_INFO:
      case KvpOp.SET:
      case KvpOp.DELETE:
        return;
      case KvpOp.GET:
        recordAt = KvpAt.get;
        break;
      default: {
        // ENUMERATE, and any other operation: the key and value of the enumerate layout.
        recordAt = KvpAt.enum;
        keylen = toUtf16(KvpAt.enum('key'), recordAt('key'), HV_KVP_EXCHANGE_MAX_KEY_SIZE / 2 - 2);
        dv.setUint32(at + recordAt('key_size'), (2 * (keylen + 1)) >>> 0, true);
      }
    }
    // The value always comes from the enumerate layout of the daemon's message.
    const valuelen = toUtf16(KvpAt.enum('value'), recordAt('value'), HV_KVP_EXCHANGE_MAX_VALUE_SIZE / 2 - 2);
    dv.setUint32(at + recordAt('value_size'), (2 * (valuelen + 1)) >>> 0, true);
    if (keylen < 0 || valuelen < 0) dv.setUint32(icField('status'), HV_E_FAIL, true);
    dv.setUint32(at + recordAt('value_type'), RegType.SZ, true);
  }

  /** hv_kvp_deinit (util_remove): the device goes; a daemon holding it sees a hang-up. */
  override deinit(): void {
    this.handshake.cancel();
    super.deinit();
  }
}

/** How the guest's daemon runs. */
export interface KvpServiceOptions {
  /**
   * 'boot' (default): systemd starts hv_kvp_daemon once the device exists; the model starts it
   * when the channel first interrupts (the host's NEGOTIATE), as it would be by then. 'manual':
   * only startDaemon() starts it (a guest without the daemon installed never answers).
   */
  readonly daemon?: 'boot' | 'manual';
  /** The daemon's pid (its first syslog line). */
  readonly pid?: number;
  /** Where the daemon's syslog lines go besides its own record. */
  readonly syslog?: (line: SyslogLine) => void;
}

/** The KVP service of one guest: hv_kvp's util service, and the daemon process. */
export interface KvpService extends UtilService {
  /** The kernel half on the channel bound last (hv_kvp keeps one transaction state). */
  readonly kernel: KvpKernel | undefined;
  /** The daemon, once the guest has a KVP device (created with the guest's services). */
  readonly daemon: KvpDaemon | undefined;
  /** systemctl start: starts the daemon; false if it exited (no device, pool files unusable, ...). */
  startDaemon(): boolean;
}

/** Linux 6.1's KVP service (kvp_versions 4.0, 3.0, 1.0; fw_versions 3.0, 1.0) and its daemon. */
export function makeKvpService(options: KvpServiceOptions = {}): KvpService {
  let kernel: KvpKernel | undefined;
  let daemon: KvpDaemon | undefined;
  const mode = options.daemon ?? 'boot';
  const ensureDaemon = (services: GuestServices): KvpDaemon =>
    (daemon ??= new KvpDaemon(
      {
        files: services.files,
        system: services.system,
        open: (wake: () => void): HvutilFile | number => (kernel ? kernel.device.open(wake) : -Errno.ENOENT),
        // openlog("KVP", 0, LOG_USER): the lines go to the guest's journal.
        syslog: options.syslog ?? ((line: SyslogLine) => services.syslog('KVP', line.priority, line.message)),
      },
      options.pid,
    ));
  return {
    name: 'kvp',
    classId: DeviceClass.KVP,
    get kernel() {
      return kernel;
    },
    get daemon() {
      return daemon;
    },
    attach(util) {
      const k = new KvpKernel(util, LINUX_UTIL_VERSIONS.kvp);
      kernel = k;
      const d = ensureDaemon(util.services);
      if (mode === 'manual') return k;
      let first = true;
      return {
        onChannelCallback() {
          // systemd has started the daemon by the time the host's first message is looked at.
          if (first && d.status !== 'running' && kernel === k) {
            first = false;
            d.start();
          }
          first = false;
          k.onChannelCallback();
        },
        deinit: () => k.deinit(),
      };
    },
    startDaemon() {
      if (!daemon) throw new Error('kvp: the guest has no KVP device yet, so no daemon to start');
      return daemon.start();
    },
  };
}
