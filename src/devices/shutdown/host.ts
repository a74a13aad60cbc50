// The host end of the shutdown IC: `request` asks the guest to shut down, restart or hibernate,
// and reports what the guest answered. One request at a time (OpenVMM shutdown.rs answers
// AlreadyInProgress to a second). Restart needs message version 3.1 and hibernate 3.2 (the Linux
// commits that added them: "updated protocol version that has restart support", and 3.2 "is
// required for the host to send the hibernation request"); with an older version the host does
// not send them.
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { HostContext } from '../device.js';
import { IcHost, type IcResponse } from '../ic/host.js';
import { hostIcOffer, type IcVersionOffer } from '../ic/versions.js';
import { formatIcVersion, HV_S_OK, icVersion, IcMsgType } from '../ic/wire.js';
import { encodeShutdownMessage, type ShutdownKind } from './wire.js';

export type { ShutdownKind } from './wire.js';

/** What became of a request. */
export type ShutdownResult =
  /** The guest answered S_OK: it is shutting down (or restarting, or hibernating). */
  | { readonly outcome: 'accepted' }
  /** The guest answered with a failure status (HV_E_FAIL: e.g. it cannot hibernate). */
  | { readonly outcome: 'refused'; readonly status: number }
  /** Not sent: the channel is not open and negotiated. */
  | { readonly outcome: 'not-ready' }
  /** Not sent: the negotiated version has no such request. */
  | { readonly outcome: 'unsupported'; readonly version: number }
  /** Not sent: an earlier request is still waiting for its answer. */
  | { readonly outcome: 'in-progress' }
  /** Not sent: the host→guest ring is full. */
  | { readonly outcome: 'ring-full' }
  /** Sent, but the channel closed before the guest answered. */
  | { readonly outcome: 'closed' };

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
}

const VERB: Readonly<Record<ShutdownKind, string>> = { shutdown: 'shut down', restart: 'restart', hibernate: 'hibernate' };

export class ShutdownHost extends IcHost {
  /** Every request made, in order. */
  readonly requests: ShutdownRequest[] = [];
  private outstanding: { request: ShutdownRequest; settle: (r: ShutdownResult) => void } | undefined;

  constructor(ctx: HostContext, instanceId: string, options: ShutdownOptions = {}) {
    super(ctx, { type: 'shutdown', classId: DeviceClass.SHUTDOWN, instanceId, offer: options.offer ?? hostIcOffer(ctx.release, 'shutdown') });
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
    const v = this.negotiated;
    if (this.phase !== 'ready' || !v) {
      finish({ outcome: 'not-ready' });
      return req;
    }
    if (this.outstanding) {
      finish({ outcome: 'in-progress' });
      return req;
    }
    if (v.message < SHUTDOWN_MIN_VERSION[kind]) {
      this.log(`cannot ask the guest to ${VERB[kind]}: shutdown IC version ${formatIcVersion(v.message)} has no such request`);
      finish({ outcome: 'unsupported', version: v.message });
      return req;
    }
    const body = encodeShutdownMessage(kind, force, reason);
    if (!this.sendRequest(IcMsgType.SHUTDOWN, body, (r) => this.onAnswer(r))) {
      finish({ outcome: 'ring-full' });
      return req;
    }
    this.outstanding = { request: req, settle: finish };
    this.log(`asking the guest to ${VERB[kind]}${force ? ' (forced)' : ''}${reason ? `: ${reason}` : ''}`);
    return req;
  }

  private onAnswer(r: IcResponse): void {
    const o = this.outstanding;
    this.outstanding = undefined;
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
    const o = this.outstanding;
    this.outstanding = undefined;
    o?.settle({ outcome: 'closed' });
  }
}

/** The device registry's factory: offers a shutdown IC on the host's VMBus. */
export function attachShutdown(ctx: HostContext, instanceId: string, options?: ShutdownOptions): ShutdownHost {
  return new ShutdownHost(ctx, instanceId, options);
}
