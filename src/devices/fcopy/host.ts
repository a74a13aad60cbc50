// The host end of the file-copy IC (Hyper-V's "Guest services", Copy-VMFile): `copyFile` sends
// START_FILE_COPY (destination directory, file name, flags, size), then the data in
// WRITE_TO_FILE fragments of at most DATA_FRAGMENT bytes with their offsets, then
// COMPLETE_FCOPY, each step waiting for the guest's answer; `cancel` ends a copy with
// CANCEL_FCOPY after the step in flight. The result lists the guest's status for every step.
// Not in Hyper-V's default device set: "Guest services" is off until enabled per VM.
//
// UNVERIFIED (Hyper-V's own sequence is not documented): after a failed WRITE_TO_FILE the host
// sends CANCEL_FCOPY so the guest drops the partial file; after a failed START nothing follows;
// the service ids in hv_fcopy_hdr are zero.
//
// Each step waits at most IC_HOST_TIMEOUT_NS (35 s: the guest fails a step its daemon has not
// answered in HV_UTIL_TIMEOUT, 30 s, hv_fcopy.c) and the copy then ends 'timeout'; a reply that is
// no valid answer ends it 'bad-answer'. Either way nothing more is sent for that copy, so the next
// one can start.
import type { ReleaseId } from '../../hypervisor/release.js';
import { WireError } from '../../tlfs/struct.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { HostContext } from '../device.js';
import { IcHost, IC_HOST_TIMEOUT_NS, type IcResponse } from '../ic/host.js';
import { icOffer, type IcVersionOffer } from '../ic/versions.js';
import { HV_S_OK, IcMsgType } from '../ic/wire.js';
import { CREATE_PATH, DATA_FRAGMENT, encodeDoFcopy, encodeFcopyHdr, encodeStartFcopy, FcopyOp, FCOPY_VERSION, OVER_WRITE, W_MAX_PATH } from './wire.js';

/**
 * The file-copy message versions each release lists. Linux knows only 1.1 (hv_fcopy.c
 * WIN8_SRV_VERSION); Copy-VMFile came with Windows Server 2012 R2.
 * UNVERIFIED: that every release lists 1.1 alone; WS2012 has no Guest Services component, and
 * hvkit offers the same as WS2012 R2 when a configuration asks for it there.
 */
export const FCOPY_HOST_VERSIONS: Readonly<Record<ReleaseId, readonly number[]>> = {
  ws2012: [FCOPY_VERSION],
  ws2012r2: [FCOPY_VERSION],
  ws2016: [FCOPY_VERSION],
  ws2019: [FCOPY_VERSION],
  ws2022: [FCOPY_VERSION],
  ws2025: [FCOPY_VERSION],
};

/** The first release with Guest Services (Copy-VMFile). */
export const FCOPY_FIRST_RELEASE: ReleaseId = 'ws2012r2';

export type FcopyStepName = 'start' | 'write' | 'complete' | 'cancel';

/** One request of a copy and the guest's answer. */
export interface FcopyStep {
  readonly op: FcopyStepName;
  /** WRITE_TO_FILE: where the fragment goes and how long it is. */
  readonly offset?: number;
  readonly size?: number;
  /** The guest's status (HV_S_OK, HV_E_FAIL, HV_ERROR_ALREADY_EXISTS, HV_ERROR_DISK_FULL, ...). */
  readonly status: number;
}

export type CopyResult =
  /** Every step answered S_OK. */
  | { readonly outcome: 'copied'; readonly steps: readonly FcopyStep[] }
  /** The guest failed `step` with `status` (after a failed write the host cancelled: see `steps`). */
  | { readonly outcome: 'failed'; readonly step: FcopyStepName; readonly status: number; readonly steps: readonly FcopyStep[] }
  /** cancel() ended it with CANCEL_FCOPY. */
  | { readonly outcome: 'cancelled'; readonly steps: readonly FcopyStep[] }
  /** Not sent: a name or path does not fit W_MAX_PATH. */
  | { readonly outcome: 'invalid'; readonly reason: string }
  /** Not sent: the channel is not open and negotiated. */
  | { readonly outcome: 'not-ready' }
  /** Not sent: another copy is under way. */
  | { readonly outcome: 'in-progress' }
  /** A request could not be sent: the host→guest ring is full. */
  | { readonly outcome: 'ring-full'; readonly steps: readonly FcopyStep[] }
  /** The channel closed (or the VM stopped) before the copy ended. */
  | { readonly outcome: 'closed'; readonly steps: readonly FcopyStep[] }
  /** The guest did not answer `step` within the host's timeout. */
  | { readonly outcome: 'timeout'; readonly step: FcopyStepName; readonly steps: readonly FcopyStep[] }
  /** The guest's reply to `step` was no valid answer; `reason` says why. */
  | { readonly outcome: 'bad-answer'; readonly step: FcopyStepName; readonly reason: string; readonly steps: readonly FcopyStep[] };

export interface CopyOptions {
  /** OVER_WRITE: replace an existing file. */
  readonly overwrite?: boolean;
  /** CREATE_PATH: create missing directories of the destination. */
  readonly createPath?: boolean;
}

export interface FcopyTransfer {
  readonly destPath: string;
  readonly fileName: string;
  readonly size: number;
  /** The steps answered so far. */
  readonly steps: FcopyStep[];
  result: CopyResult | undefined;
  readonly done: Promise<CopyResult>;
}

export interface FcopyOptions {
  /** Versions to offer instead of the release's (fault injection, tests). */
  offer?: IcVersionOffer;
  /** Data bytes per WRITE_TO_FILE, at most DATA_FRAGMENT (the default). */
  fragmentBytes?: number;
  /** How long each step waits for the guest's answer; IC_HOST_TIMEOUT_NS (35 s) by default, Infinity for no limit. */
  timeoutNs?: number;
}

interface Active {
  readonly transfer: FcopyTransfer;
  readonly data: Uint8Array;
  readonly settle: (r: CopyResult) => void;
  /** Bytes sent so far. */
  next: number;
  cancelRequested: boolean;
}

export class FcopyHost extends IcHost {
  /** Every copy asked for, in order. */
  readonly transfers: FcopyTransfer[] = [];
  readonly fragmentBytes: number;
  readonly timeoutNs: number;
  private active: Active | undefined;

  constructor(ctx: HostContext, instanceId: string, options: FcopyOptions = {}) {
    super(ctx, { type: 'fcopy', classId: DeviceClass.FCOPY, instanceId, offer: options.offer ?? icOffer(ctx.release, FCOPY_HOST_VERSIONS) });
    const f = options.fragmentBytes ?? DATA_FRAGMENT;
    if (!Number.isInteger(f) || f < 1 || f > DATA_FRAGMENT) throw new RangeError(`fragmentBytes must be 1..${DATA_FRAGMENT}, not ${f}`);
    this.fragmentBytes = f;
    this.timeoutNs = options.timeoutNs ?? IC_HOST_TIMEOUT_NS;
  }

  protected onReady(): void {}

  /** Copies `data` to `destPath`/`fileName` in the guest. */
  copyFile(destPath: string, fileName: string, data: Uint8Array, options: CopyOptions = {}): FcopyTransfer {
    let settle!: (r: CopyResult) => void;
    const done = new Promise<CopyResult>((resolve) => (settle = resolve));
    const transfer: FcopyTransfer = { destPath, fileName, size: data.length, steps: [], result: undefined, done };
    this.transfers.push(transfer);
    const finish = (r: CopyResult): void => {
      transfer.result = r;
      settle(r);
    };
    for (const [what, s] of [
      ['destination path', destPath],
      ['file name', fileName],
    ] as const) {
      if (s.length >= W_MAX_PATH) {
        finish({ outcome: 'invalid', reason: `the ${what} has ${s.length} UTF-16 units; at most ${W_MAX_PATH - 1} fit` });
        return transfer;
      }
    }
    if (this.phase !== 'ready') {
      finish({ outcome: 'not-ready' });
      return transfer;
    }
    if (this.active) {
      finish({ outcome: 'in-progress' });
      return transfer;
    }
    const flags = (options.overwrite ? OVER_WRITE : 0) | (options.createPath ? CREATE_PATH : 0);
    const a: Active = { transfer, data: data.slice(), settle: finish, next: 0, cancelRequested: false };
    this.active = a;
    this.log(`copying ${data.length} bytes to ${destPath} as ${fileName}${flags & OVER_WRITE ? ', overwriting' : ''}${flags & CREATE_PATH ? ', creating the path' : ''}`);
    this.step(a, 'start', encodeStartFcopy(destPath, fileName, flags, BigInt(data.length)));
    return transfer;
  }

  /** Ends the copy under way with CANCEL_FCOPY once the step in flight is answered. False if none is. */
  cancel(): boolean {
    const a = this.active;
    if (!a || a.cancelRequested) return false;
    a.cancelRequested = true;
    return true;
  }

  /** Sends one request of the copy; its answer decides the next. */
  private step(a: Active, op: FcopyStepName, body: Uint8Array, fragment?: { offset: number; size: number }): void {
    const name = a.transfer.fileName;
    const sent = this.sendRequest(IcMsgType.FCOPY, body, {
      answer: (r) => this.onAnswer(a, op, r, fragment),
      bad: (reason) => {
        if (this.active !== a) return;
        this.log(`copy of ${name} failed at ${op}: the guest's answer is no valid answer: ${reason}`);
        this.end(a, { outcome: 'bad-answer', step: op, reason, steps: a.transfer.steps });
      },
      timeout: {
        ns: this.timeoutNs,
        expired: () => {
          if (this.active !== a) return;
          this.log(`copy of ${name} failed at ${op}: no answer within ${this.timeoutNs / 1e9} s`);
          this.end(a, { outcome: 'timeout', step: op, steps: a.transfer.steps });
        },
      },
    });
    if (!sent) this.end(a, { outcome: 'ring-full', steps: a.transfer.steps });
  }

  private onAnswer(a: Active, op: FcopyStepName, r: IcResponse, fragment?: { offset: number; size: number }): void {
    if (this.active !== a) return;
    const status = r.header.status;
    a.transfer.steps.push({ op, ...fragment, status });
    const steps = a.transfer.steps;
    const hex = `0x${status.toString(16).padStart(8, '0')}`;
    if (op === 'cancel') {
      const failed = steps.find((s) => s.status !== HV_S_OK && s.op !== 'cancel');
      if (failed) {
        this.log(`copy of ${a.transfer.fileName} failed at ${failed.op}: status 0x${failed.status.toString(16).padStart(8, '0')}`);
        return this.end(a, { outcome: 'failed', step: failed.op, status: failed.status, steps });
      }
      this.log(`copy of ${a.transfer.fileName} cancelled`);
      return this.end(a, { outcome: 'cancelled', steps });
    }
    if (status !== HV_S_OK) {
      // A failed write leaves a partial file: cancel so the guest removes it.
      if (op === 'write') return this.step(a, 'cancel', encodeFcopyHdr(FcopyOp.CANCEL_FCOPY));
      this.log(`copy of ${a.transfer.fileName} failed at ${op}: status ${hex}`);
      return this.end(a, { outcome: 'failed', step: op, status, steps });
    }
    if (op === 'complete') {
      this.log(`copied ${a.data.length} bytes to ${a.transfer.destPath} as ${a.transfer.fileName}`);
      return this.end(a, { outcome: 'copied', steps });
    }
    if (a.cancelRequested) return this.step(a, 'cancel', encodeFcopyHdr(FcopyOp.CANCEL_FCOPY));
    if (a.next < a.data.length) {
      const offset = a.next;
      const chunk = a.data.subarray(offset, offset + this.fragmentBytes);
      a.next += chunk.length;
      let body: Uint8Array;
      try {
        body = encodeDoFcopy(BigInt(offset), chunk);
      } catch (e) {
        // Cannot happen: fragments are at most DATA_FRAGMENT.
        if (!(e instanceof WireError)) throw e;
        return this.end(a, { outcome: 'invalid', reason: e.message });
      }
      return this.step(a, 'write', body, { offset, size: chunk.length });
    }
    this.step(a, 'complete', encodeFcopyHdr(FcopyOp.COMPLETE_FCOPY));
  }

  private end(a: Active, r: CopyResult): void {
    if (this.active === a) this.active = undefined;
    a.settle(r);
  }

  protected override onClosed(): void {
    const a = this.active;
    this.active = undefined;
    a?.settle({ outcome: 'closed', steps: a.transfer.steps });
  }
}

/** The device registry's factory: offers a file-copy IC on the host's VMBus. */
export function attachFcopy(ctx: HostContext, instanceId: string, options?: FcopyOptions): FcopyHost {
  return new FcopyHost(ctx, instanceId, options);
}
