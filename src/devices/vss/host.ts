// The host end of the VSS IC: what Hyper-V's backup sends a guest around a checkpoint. A hot-backup
// check first (VSS_OP_HOT_BACKUP: can the guest take part?), then FREEZE before the snapshot and
// THAW after it; each request waits for the guest's answer, one at a time, and settles with the
// guest's status. FREEZE and THAW need message version 5.0 (include/uapi/linux/hyperv.h marks
// them as new in that version); with an older version the host does not send them.
//
// Each request waits at most a little longer than the guest kernel waits for its daemon
// (hv_snapshot.c: VSS_FREEZE_TIMEOUT, 15 min, for FREEZE; HV_UTIL_TIMEOUT, 30 s, for the rest)
// and then settles 'timeout', so a guest that answers nothing cannot hold the one request slot.
//
// UNVERIFIED: real hosts append LUN data to FREEZE (up to 6260 bytes: vmbus.md §9.8) that Linux
// ignores; hvkit sends the bare 12-byte hv_vss_msg with flags 0.
import type { ReleaseId } from '../../hypervisor/release.js';
import { WireError } from '../../tlfs/struct.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { HostContext } from '../device.js';
import { IC_ANSWER_MARGIN_NS, IcHost, IC_HOST_TIMEOUT_NS, InFlight, type IcResponse, type IcUnanswered } from '../ic/host.js';
import { icOffer, type IcVersionOffer } from '../ic/versions.js';
import { HV_S_OK, icVersion, IcMsgType } from '../ic/wire.js';
import { encodeVssMessage, parseVssMessage, VssOp, vssOpName, VSS_FREEZE_MIN_VERSION, VSS_FREEZE_TIMEOUT_S } from './wire.js';

/**
 * The VSS message versions each release lists in its NEGOTIATE, oldest first. Sources: Linux and
 * FreeBSD know only 5.0 (hv_snapshot.c VSS_MAJOR 5), and their header marks FREEZE/THAW as new in
 * 5.0, so older versions existed; Linux refuses VSS below VMBus 3.0 (hv_vss_init: WS2012 R2), the
 * release Microsoft names for Linux live backup.
 * UNVERIFIED: 4.0 as the version before 5.0, and WS2012 offering only it.
 */
export const VSS_HOST_VERSIONS: Readonly<Record<ReleaseId, readonly number[]>> = {
  ws2012: [icVersion(4, 0)],
  ws2012r2: [icVersion(4, 0), icVersion(5, 0)],
  ws2016: [icVersion(4, 0), icVersion(5, 0)],
  ws2019: [icVersion(4, 0), icVersion(5, 0)],
  ws2022: [icVersion(4, 0), icVersion(5, 0)],
  ws2025: [icVersion(4, 0), icVersion(5, 0)],
};

/** What became of a request. */
export type VssResult =
  /** The guest answered S_OK; `flags` is vss_cf.flags of its answer. */
  | { readonly outcome: 'succeeded'; readonly flags: number }
  /** The guest answered with a failure status (HV_E_FAIL: no daemon, a failed freeze, a timeout). */
  | { readonly outcome: 'failed'; readonly status: number }
  /** Not sent, or not answered in time or properly ('bad-answer' also when the body has no room for hv_vss_msg). */
  | IcUnanswered;

/** The host's wait for a FREEZE answer: the guest's VSS_FREEZE_TIMEOUT (15 min) plus the margin. */
export const VSS_FREEZE_HOST_TIMEOUT_NS = VSS_FREEZE_TIMEOUT_S * 1e9 + IC_ANSWER_MARGIN_NS;

export interface VssRequest {
  readonly operation: number;
  /** When it was sent (virtual ns), if it was. */
  sentNs: number | undefined;
  /** Set once settled, with the time. */
  result: VssResult | undefined;
  settledNs: number | undefined;
  readonly done: Promise<VssResult>;
}

export interface VssOptions {
  /** Versions to offer instead of the release's (fault injection, tests). */
  offer?: IcVersionOffer;
  /** How long a request other than FREEZE waits for its answer; IC_HOST_TIMEOUT_NS (35 s) by default, Infinity for no limit. */
  timeoutNs?: number;
  /** How long a FREEZE waits for its answer; VSS_FREEZE_HOST_TIMEOUT_NS (15 min 5 s) by default. */
  freezeTimeoutNs?: number;
}

export class VssHost extends IcHost {
  /** Every request made, in order. */
  readonly requests: VssRequest[] = [];
  /** The guest said its file systems are frozen (a FREEZE succeeded and no THAW since). */
  guestFrozen = false;
  readonly timeoutNs: number;
  readonly freezeTimeoutNs: number;
  private readonly outstanding = new InFlight<VssRequest, VssResult>();

  constructor(ctx: HostContext, instanceId: string, options: VssOptions = {}) {
    super(ctx, { type: 'vss', classId: DeviceClass.VSS, instanceId, offer: options.offer ?? icOffer(ctx.release, VSS_HOST_VERSIONS) });
    this.timeoutNs = options.timeoutNs ?? IC_HOST_TIMEOUT_NS;
    this.freezeTimeoutNs = options.freezeTimeoutNs ?? VSS_FREEZE_HOST_TIMEOUT_NS;
  }

  protected onReady(): void {}

  /** VSS_OP_HOT_BACKUP: asks whether the guest takes part in a backup. */
  hotBackupCheck(): VssRequest {
    return this.request(VssOp.HOT_BACKUP);
  }

  /** VSS_OP_FREEZE: the guest freezes its file systems before a snapshot. */
  freeze(): VssRequest {
    return this.request(VssOp.FREEZE);
  }

  /** VSS_OP_THAW: the snapshot is taken; the guest thaws. */
  thaw(): VssRequest {
    return this.request(VssOp.THAW);
  }

  /** Any operation (GET_DM_INFO, BU_COMPLETE, ...), with `flags` in vss_cf. */
  request(operation: number, flags = 0): VssRequest {
    let settle!: (r: VssResult) => void;
    const done = new Promise<VssResult>((resolve) => (settle = resolve));
    const req: VssRequest = { operation, sentNs: undefined, result: undefined, settledNs: undefined, done };
    this.requests.push(req);
    const finish = (r: VssResult): void => {
      req.result = r;
      req.settledNs = this.ctx.now();
      settle(r);
    };
    const name = vssOpName(operation);
    // FREEZE, THAW and AUTO_RECOVER exist from message version 5.0.
    const needs5 = operation === VssOp.FREEZE || operation === VssOp.THAW || operation === VssOp.AUTO_RECOVER;
    const sent = this.sendOne(this.outstanding, req, finish, {
      type: IcMsgType.VSS,
      minVersion: needs5 ? VSS_FREEZE_MIN_VERSION : 0,
      body: () => encodeVssMessage(operation, flags),
      unsupported: (version) => `cannot send ${name}: VSS IC version ${version} has no such operation`,
      onAnswer: (r) => this.onAnswer(r),
      name,
      timeoutNs: operation === VssOp.FREEZE ? this.freezeTimeoutNs : this.timeoutNs,
    });
    if (!sent) return req;
    req.sentNs = this.ctx.now();
    this.log(`${name} requested`);
    return req;
  }

  private onAnswer(r: IcResponse): void {
    const o = this.outstanding.take();
    if (!o) return;
    const name = vssOpName(o.request.operation);
    const status = r.header.status;
    if (status !== HV_S_OK) {
      this.log(`${name} failed: status 0x${status.toString(16).padStart(8, '0')}`);
      return o.settle({ outcome: 'failed', status });
    }
    let flags: number;
    try {
      flags = parseVssMessage(r.body).flags;
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      this.violation(`${name} answer: ${e.message}`);
      return o.settle({ outcome: 'bad-answer', reason: e.message });
    }
    if (o.request.operation === VssOp.FREEZE) this.guestFrozen = true;
    if (o.request.operation === VssOp.THAW) this.guestFrozen = false;
    this.log(`${name} succeeded${flags ? ` (flags 0x${flags.toString(16)})` : ''}`);
    o.settle({ outcome: 'succeeded', flags });
  }

  protected override onClosed(): void {
    this.outstanding.take()?.settle({ outcome: 'closed' });
  }
}

/** The device registry's factory: offers a VSS IC on the host's VMBus. */
export function attachVss(ctx: HostContext, instanceId: string, options?: VssOptions): VssHost {
  return new VssHost(ctx, instanceId, options);
}
