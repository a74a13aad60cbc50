// The host end of the heartbeat IC: once negotiated it sends a heartbeat request every two
// seconds (the period a comment in Linux's hv_util.c heartbeat_onchannelcallback gives) with an
// increasing sequence number, records the numbers the guest answers (the request's plus
// one), and tells whether the guest is alive: 'no-contact' until a first valid answer (and again
// once the guest closes the channel), 'ok' while it answers, 'lost' when it stops.
//
// UNVERIFIED: how long Hyper-V waits before it reports "Lost Communication" is not documented;
// hvkit reports it when no valid answer came for three periods, checked as each heartbeat is due.
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { HostContext } from '../device.js';
import { IcHost, type IcResponse } from '../ic/host.js';
import { hostIcOffer, type IcVersionOffer } from '../ic/versions.js';
import { HV_S_OK, IcMsgType } from '../ic/wire.js';
import { HeartbeatApplicationState, HeartbeatMessage } from './wire.js';

export type HeartbeatState = 'ok' | 'no-contact' | 'lost';

/** The period Linux's comment states (hv_util.c heartbeat_onchannelcallback). */
export const HEARTBEAT_PERIOD_NS = 2e9;
/** Chosen (see above): three periods without a valid answer. */
export const HEARTBEAT_LOST_AFTER_NS = 3 * HEARTBEAT_PERIOD_NS;
/** Answered sequence numbers kept for inspection. */
const MAX_KEPT_ANSWERS = 1024;

export interface HeartbeatOptions {
  periodNs?: number;
  lostAfterNs?: number;
  /** Versions to offer instead of the release's (fault injection, tests). */
  offer?: IcVersionOffer;
}

export class HeartbeatHost extends IcHost {
  state: HeartbeatState = 'no-contact';
  /** The sequence numbers the guest answered, in order (the most recent ones). */
  readonly answered: bigint[] = [];
  /** Heartbeats sent since the channel opened. */
  sent = 0;
  /** When the last valid answer came, ns. */
  lastAnswerNs: number | undefined;
  readonly periodNs: number;
  readonly lostAfterNs: number;
  private nextSeq = 1n;
  private timer: { cancel(): void } | undefined;
  private ringFullLogged = false;

  constructor(ctx: HostContext, instanceId: string, options: HeartbeatOptions = {}) {
    super(ctx, { type: 'heartbeat', classId: DeviceClass.HEART_BEAT, instanceId, offer: options.offer ?? hostIcOffer(ctx.release, 'heartbeat') });
    this.periodNs = options.periodNs ?? HEARTBEAT_PERIOD_NS;
    this.lostAfterNs = options.lostAfterNs ?? HEARTBEAT_LOST_AFTER_NS;
  }

  protected onReady(): void {
    this.sent = 0;
    this.ringFullLogged = false;
    this.tick();
  }

  /** One period: notice a silent guest, then send the next heartbeat. */
  private tick(): void {
    this.timer = undefined;
    if (this.phase !== 'ready') return;
    const now = this.ctx.now();
    if (this.state === 'ok' && this.lastAnswerNs !== undefined && now - this.lastAnswerNs > this.lostAfterNs) {
      this.state = 'lost';
      this.log(`lost communication: no answer for ${((now - this.lastAnswerNs) / 1e9).toFixed(1)} s`);
    }
    const seq = this.nextSeq;
    const body = HeartbeatMessage.encode({ sequence_number: seq, application_state: HeartbeatApplicationState.UNKNOWN, reserved: new Uint8Array(4) });
    if (this.sendRequest(IcMsgType.HEARTBEAT, body, (r) => this.onAnswer(seq, r))) {
      this.nextSeq = (seq + 1n) & 0xffff_ffff_ffff_ffffn;
      this.sent++;
    } else if (!this.ringFullLogged) {
      this.ringFullLogged = true;
      this.log('heartbeat not sent: the ring is full');
    }
    this.timer = this.ctx.schedule(now + this.periodNs, () => this.tick());
  }

  private onAnswer(seq: bigint, r: IcResponse): void {
    if (r.header.status !== HV_S_OK) return this.violation(`heartbeat ${seq} answered with status 0x${r.header.status.toString(16)}`);
    if (r.body.length < HeartbeatMessage.size) return this.violation(`heartbeat ${seq} answered with ${r.body.length} bytes of body`);
    const got = HeartbeatMessage.decode(r.body).sequence_number;
    const want = (seq + 1n) & 0xffff_ffff_ffff_ffffn;
    if (got !== want) return this.violation(`heartbeat ${seq} answered with sequence ${got}, not ${want}`);
    this.answered.push(got);
    if (this.answered.length > MAX_KEPT_ANSWERS) this.answered.shift();
    this.lastAnswerNs = this.ctx.now();
    if (this.state !== 'ok') {
      this.log(this.state === 'lost' ? 'communication restored' : 'the guest answers: OK');
      this.state = 'ok';
    }
  }

  protected override onClosed(why: 'closed' | 'revoked' | 'disposed'): void {
    this.timer?.cancel();
    this.timer = undefined;
    if (this.state !== 'no-contact' && why !== 'disposed') this.log('the guest closed the channel: no contact');
    this.state = 'no-contact';
  }
}

/** The device registry's factory: offers a heartbeat IC on the host's VMBus. */
export function attachHeartbeat(ctx: HostContext, instanceId: string, options?: HeartbeatOptions): HeartbeatHost {
  return new HeartbeatHost(ctx, instanceId, options);
}
