// The kernel half that the daemon-backed util services share (Linux 6.1 drivers/hv/hv_kvp.c,
// hv_snapshot.c, hv_fcopy.c): one transaction at a time, kept in hvutil_device_state; a channel
// callback that reads nothing while a transaction is open, answers NEGOTIATE itself and hands
// the service's own message type on; the daemon's device (/dev/vmbus/hv_*); a delayed work that
// fails the host's request when the daemon is too slow; X_respond_to_host, which sends the
// receive buffer back with a status and the received length; and hv_poll_channel, which runs
// the callback again once a transaction ends, so queued requests are taken one after the other.
import type { NegotiateOutcome } from './negotiate.js';
import { DelayedWork, type UtilChannel, type UtilServiceInstance } from './guest.js';
import { HvutilState, HvutilTransport } from './transport.js';
import { formatIcVersion, icField, ICMSG_HDR, IcMsgType, IC_RESPONSE_FLAGS } from './wire.js';

export interface HvutilConfig {
  /** The C callback, for its ratelimited lines ("hv_vss_onchannelcallback"). */
  readonly fn: string;
  /** How its lines name the service ("VSS request received. ..."): "KVP", "VSS", "Fcopy". */
  readonly label: string;
  /** How its NEGOTIATE line names it ("... IC version 5.0"): "KVP", "VSS", "FCopy". */
  readonly icName: string;
  /** The IC message type it serves (ICMSGTYPE_*). */
  readonly msgType: number;
  /** The daemon's device under /dev ("vmbus/hv_vss"). */
  readonly device: string;
  /** The framework and message versions it offers, in decreasing preference. */
  readonly versions: { readonly framework: readonly number[]; readonly message: readonly number[] };
}

export abstract class HvutilKernel implements UtilServiceInstance {
  /** X_transaction.state. */
  state: number = HvutilState.DEVICE_INIT;
  /** The message version the last NEGOTIATE chose. */
  version: number | undefined;
  /** The device node the daemon opens. */
  readonly device: HvutilTransport;
  /** X_timeout_work: fails the host's request when the daemon does not answer in time. */
  protected readonly timeout: DelayedWork;
  /** recvlen and requestid of the request being served: its answer goes back with them. */
  protected recvLen = 0;
  protected recvReqId = 0n;
  /** util_remove ran: the channel callback is gone and nothing more is sent. */
  protected removed = false;
  protected readonly dv: DataView;
  private inCallback = false;
  private again = false;

  constructor(
    protected readonly util: UtilChannel,
    protected readonly config: HvutilConfig,
  ) {
    this.dv = new DataView(util.buffer.buffer, util.buffer.byteOffset, util.buffer.byteLength);
    this.device = new HvutilTransport(
      config.device,
      (m) => this.onMsg(m),
      () => this.onReset(),
    );
    this.timeout = new DelayedWork(util.services, () => this.onTimeout());
  }

  /** The request read from the host, of the service's message type: its header checks passed. */
  protected abstract onRequest(recvlen: number): void;
  /** X_on_msg: what the daemon wrote; 0, or a negative errno its write() returns. */
  protected abstract onMsg(msg: Uint8Array): number;
  /** X_on_reset: the daemon closed the device. */
  protected abstract onReset(): void;
  /** X_timeout_func. */
  protected abstract onTimeout(): void;

  /** X_onchannelcallback; a call while it runs (a poll from inside, tasklet_schedule) makes it run again after. */
  onChannelCallback(): void {
    if (this.inCallback) {
      this.again = true;
      return;
    }
    this.inCallback = true;
    try {
      do {
        this.again = false;
        this.callbackOnce();
      } while (this.again && !this.removed);
    } finally {
      this.inCallback = false;
    }
  }

  /** One run of the callback: at most one packet is read, and only between transactions. */
  protected callbackOnce(): void {
    if (this.removed || this.state > HvutilState.READY) return;
    const u = this.util;
    const { fn, label, msgType } = this.config;
    const { recvlen, requestId } = u.recvpacket();
    if (!recvlen) return;
    if (recvlen < ICMSG_HDR) return u.logRatelimited(fn, 'short', 'err', `${label} request received. Packet length too small: ${recvlen}`);
    const type = this.dv.getUint16(icField('icmsgtype'), true);
    if (type === IcMsgType.NEGOTIATE) {
      this.onNegotiated(u.negotiate(recvlen, this.config.versions.framework, this.config.versions.message));
      this.dv.setUint8(icField('icflags'), IC_RESPONSE_FLAGS);
      u.sendpacket(recvlen, requestId);
      return this.afterNegotiate();
    }
    if (type !== msgType) return u.logRatelimited(fn, 'type', 'err', `${label} request received. Invalid msg type: ${type}`);
    this.recvLen = recvlen;
    this.recvReqId = requestId;
    this.onRequest(recvlen);
  }

  /** What a NEGOTIATE leaves behind: the version and "<name> IC version x.y" when it succeeded. */
  protected onNegotiated(r: NegotiateOutcome): void {
    if (!r.ok) return;
    this.version = r.message;
    this.util.log('info', `${this.config.icName} IC version ${formatIcVersion(r.message!)}`);
  }

  /** After the NEGOTIATE answer went out. */
  protected afterNegotiate(): void {}

  /** hv_poll_channel(channel, X_poll_wrapper): the transaction is over; read what waits. */
  protected pollChannel(): void {
    if (this.removed) return;
    this.state = HvutilState.READY;
    this.onChannelCallback();
  }

  /**
   * X_respond_to_host: the receive buffer goes back with `status` (and what `fill` writes over
   * the request), TRANSACTION | RESPONSE, the received length and the request's id.
   */
  protected respond(status: number, fill?: () => void): void {
    if (this.removed) return;
    this.dv.setUint32(icField('status'), status >>> 0, true);
    fill?.();
    this.dv.setUint8(icField('icflags'), IC_RESPONSE_FLAGS);
    this.util.sendpacket(this.recvLen, this.recvReqId);
  }

  /** X_deinit (util_remove): the timeout goes; a daemon holding the device sees a hang-up. */
  deinit(): void {
    this.removed = true;
    this.state = HvutilState.DEVICE_DYING;
    this.timeout.cancel();
    this.device.destroy();
  }
}
