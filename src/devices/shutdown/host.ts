// The host end of the shutdown IC: `request` asks the guest to shut down, restart or hibernate,
// and reports what the guest answered. One request at a time (OpenVMM shutdown.rs answers
// AlreadyInProgress to a second). Restart needs message version 3.1 and hibernate 3.2 (the Linux
// commits that added them say the newer protocol versions are what carry the restart and the
// hibernate requests); with an older version the host does not send them.
//
// A Linux guest answers at once, from its channel callback, before the shutdown work runs
// (hv_util.c shutdown_onchannelcallback); the host still waits at most IC_HOST_TIMEOUT_NS (35 s,
// the bound the daemon-backed ICs use) so that a guest ignoring the channel cannot hold the one
// request slot: UNVERIFIED how long Hyper-V waits.
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { HostContext } from '../device.js';
import { IcHost, IC_HOST_TIMEOUT_NS, InFlight, type IcResponse, type IcUnanswered } from '../ic/host.js';
import { hostIcOffer, type IcVersionOffer } from '../ic/versions.js';
import { HV_S_OK, icVersion, IcMsgType } from '../ic/wire.js';
import { encodeShutdownMessage, type ShutdownKind } from './wire.js';

export type { ShutdownKind } from './wire.js';

/** What became of a request. */
export type ShutdownResult =
  /** The guest answered S_OK: it is shutting down (or restarting, or hibernating). */
  | { readonly outcome: 'accepted' }
  /** The guest answered with a failure status (HV_E_FAIL: e.g. it cannot hibernate). */
  | { readonly outcome: 'refused'; readonly status: number }
  /** Not sent, or not answered in time or properly: see IcUnanswered. */
  | IcUnanswered;

export interface ShutdownRequest {
  readonly kind: ShutdownKind;
  readonly force: boolean;
  readonly reason: string;
  /** Set once the request is settled. */
  result: ShutdownResult | undefined;
  readonly done: Promise<ShutdownResult>;
}

/** The lowest message version that carries each kind. */
export const SHUTDOWN_MIN_VERSION: Readonly<Record<ShutdownKind, number>> = {
  shutdown: icVersion(1, 0),
  restart: icVersion(3, 1),
  hibernate: icVersion(3, 2),
};

export interface ShutdownOptions {
  /** Versions to offer instead of the release's (fault injection, tests). */
  offer?: IcVersionOffer;
  /** How long a request waits for the guest's answer before it settles 'timeout'; IC_HOST_TIMEOUT_NS by default, Infinity for no limit. */
  timeoutNs?: number;
}

const VERB: Readonly<Record<ShutdownKind, string>> = { shutdown: 'shut down', restart: 'restart', hibernate: 'hibernate' };

export class ShutdownHost extends IcHost {
  /** Every request made, in order. */
  readonly requests: ShutdownRequest[] = [];
  readonly timeoutNs: number;
  private readonly outstanding = new InFlight<ShutdownRequest, ShutdownResult>();

  constructor(ctx: HostContext, instanceId: string, options: ShutdownOptions = {}) {
    super(ctx, { type: 'shutdown', classId: DeviceClass.SHUTDOWN, instanceId, offer: options.offer ?? hostIcOffer(ctx.release, 'shutdown') });
    this.timeoutNs = options.timeoutNs ?? IC_HOST_TIMEOUT_NS;
  }

  protected onReady(): void {}

  /** Asks the guest to shut down, restart or hibernate; `force` sets the FORCE flag. */
  request(kind: ShutdownKind, force: boolean, reason = ''): ShutdownRequest {
    let settle!: (r: ShutdownResult) => void;
    const done = new Promise<ShutdownResult>((resolve) => (settle = resolve));
    const req: ShutdownRequest = { kind, force, reason, result: undefined, done };
    this.requests.push(req);
    const finish = (r: ShutdownResult): void => {
      req.result = r;
      settle(r);
    };
    const sent = this.sendOne(this.outstanding, req, finish, {
      type: IcMsgType.SHUTDOWN,
      minVersion: SHUTDOWN_MIN_VERSION[kind],
      body: () => encodeShutdownMessage(kind, force, reason),
      unsupported: (version) => `cannot ask the guest to ${VERB[kind]}: shutdown IC version ${version} has no such request`,
      onAnswer: (r) => this.onAnswer(r),
      name: `the request to ${VERB[kind]}`,
      timeoutNs: this.timeoutNs,
    });
    if (sent) this.log(`asking the guest to ${VERB[kind]}${force ? ' (forced)' : ''}${reason ? `: ${reason}` : ''}`);
    return req;
  }

  private onAnswer(r: IcResponse): void {
    const o = this.outstanding.take();
    if (!o) return;
    const status = r.header.status;
    if (status === HV_S_OK) {
      this.log(`the guest accepted the request to ${VERB[o.request.kind]}`);
      o.settle({ outcome: 'accepted' });
    } else {
      this.log(`the guest refused the request to ${VERB[o.request.kind]}: status 0x${status.toString(16).padStart(8, '0')}`);
      o.settle({ outcome: 'refused', status });
    }
  }

  protected override onClosed(): void {
    this.outstanding.take()?.settle({ outcome: 'closed' });
  }
}

/** The device registry's factory: offers a shutdown IC on the host's VMBus. */
export function attachShutdown(ctx: HostContext, instanceId: string, options?: ShutdownOptions): ShutdownHost {
  return new ShutdownHost(ctx, instanceId, options);
}
