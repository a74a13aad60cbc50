// The host end of the time sync IC. Once negotiated it sends a SYNC message (the guest should step
// its clock: Hyper-V sends one when the VM starts or resumes, OpenVMM right after negotiation),
// then a SAMPLE every five seconds (OpenVMM hyperv_ic/src/timesync.rs SAMPLE_PERIOD; UNVERIFIED
// for Hyper-V itself, which documents no period). Each message carries the host's wall-clock time
// as a FILETIME (`parenttime`); version 4.0 adds the partition reference time at which the host
// read that clock (`vm_reference_time`), so that the guest can add the time the message waited.
// Requests are transactions, as OpenVMM notes Windows guests ignore any other; the guest echoes
// each one and the host records the answers.
//
// Like OpenVMM, at most one scheduled message is waiting for its answer: a period that finds the
// previous one unanswered sends nothing (hvkit's choice: OpenVMM instead waits for the answer and
// then five more seconds, so a guest that never answers stops its samples for good). hvkit gives
// up on a message after IC_HOST_TIMEOUT_NS (35 s; Linux answers from its channel callback at
// once) or once the guest's reply to it is no valid answer, and the next period sends again.
import type { ReleaseId } from '../../hypervisor/release.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { HostContext } from '../device.js';
import { IcHost, IC_HOST_TIMEOUT_NS, type IcResponse } from '../ic/host.js';
import { icOffer, type IcVersionOffer } from '../ic/versions.js';
import { HV_S_OK, IcMsgType } from '../ic/wire.js';
import { carriesReferenceTime, encodeTimesyncMessage, IcTimesyncFlag, parentTimeFromUnixNs, TS_VERSION_1, TS_VERSION_3, TS_VERSION_4 } from './wire.js';

/**
 * Message versions each release offers, oldest first. Sources: Linux before 4.11 chose the
 * version from the VMBus version (hv_util.c util_probe: 1.0 on WS2008, 3.0 on Windows 7, 8 and
 * 8.1 hosts, 4.0 from VERSION_WIN10, i.e. WS2016 on); guests on WS2016 and later hosts log
 * "TimeSync IC version 4.0"; OpenVMM offers 4.0 only (TIMESYNC_VERSIONS).
 */
export const TIMESYNC_VERSIONS: Readonly<Record<ReleaseId, readonly number[]>> = {
  // UNVERIFIED: inferred from Linux's pre-4.11 mapping of Windows 8 and 8.1 hosts to 3.0.
  ws2012: [TS_VERSION_1, TS_VERSION_3],
  ws2012r2: [TS_VERSION_1, TS_VERSION_3],
  // UNVERIFIED: that 2016 and later still list 1.0 and 3.0 (for old guests), as they do for the other ICs.
  ws2016: [TS_VERSION_1, TS_VERSION_3, TS_VERSION_4],
  ws2019: [TS_VERSION_1, TS_VERSION_3, TS_VERSION_4],
  ws2022: [TS_VERSION_1, TS_VERSION_3, TS_VERSION_4],
  ws2025: [TS_VERSION_1, TS_VERSION_3, TS_VERSION_4],
};

/** OpenVMM's SAMPLE_PERIOD. */
export const TIMESYNC_SAMPLE_PERIOD_NS = 5e9;

/** Messages kept for inspection. */
const MAX_KEPT = 1024;

export type TimesyncKind = 'sync' | 'sample' | 'probe';

const FLAGS: Readonly<Record<TimesyncKind, number>> = { sync: IcTimesyncFlag.SYNC, sample: IcTimesyncFlag.SAMPLE, probe: IcTimesyncFlag.PROBE };

/** The guest's answer to one message. */
export interface TimesyncAnswer {
  /** Virtual time it arrived, ns. */
  readonly atNs: number;
  readonly status: number;
  /** The body came back as it was sent (Linux echoes it unchanged). */
  readonly echoed: boolean;
}

/** One message the host sent. */
export interface TimesyncSent {
  readonly kind: TimesyncKind;
  /** The ICTIMESYNCFLAG_* value in the body. */
  readonly flags: number;
  /** The message version it was sent with (it decides the body's format). */
  readonly version: number;
  /** Virtual time it was sent, ns. */
  readonly atNs: number;
  /** The host's wall clock it carries, ns since the Unix epoch. */
  readonly wallClockNs: bigint;
  readonly parentTime: bigint;
  /** The partition reference time it carries (version 4.0 only). */
  readonly vmReferenceTime: bigint | undefined;
  /** The body as sent. */
  readonly body: Uint8Array;
  /** Set when the guest answers. */
  answer: TimesyncAnswer | undefined;
  /** Set when the host gave up on it: no answer in time, or a reply that was no valid answer. */
  unanswered: { readonly outcome: 'timeout' } | { readonly outcome: 'bad-answer'; readonly reason: string } | undefined;
}

export interface TimesyncOptions {
  /** Period of the SAMPLE messages; OpenVMM's five seconds by default. */
  periodNs?: number;
  /** The host's UTC wall clock, ns since the Unix epoch, instead of the VM's (ctx.wallClockNs). */
  wallClockNs?: () => bigint;
  /**
   * The partition's reference counter now, in 100 ns ticks (TIME_REF_COUNT as the guest reads
   * it), instead of the partition's own (ctx.referenceTime): fault injection, tests.
   */
  referenceTime?: () => bigint;
  /** Versions to offer instead of the release's (fault injection, tests). */
  offer?: IcVersionOffer;
  /** How long the host waits for the answer to a scheduled message; IC_HOST_TIMEOUT_NS (35 s) by default, Infinity for no limit. */
  timeoutNs?: number;
}

/** ISO text of a Unix time in ns, or the number where Date cannot show it. */
function isoTime(ns: bigint): string {
  const ms = ns / 1_000_000n;
  if (ms > 8_640_000_000_000_000n || ms < -8_640_000_000_000_000n) return `${ns} ns since 1970`;
  return new Date(Number(ms)).toISOString();
}

export class TimesyncHost extends IcHost {
  /** What was sent (the most recent ones), each with the guest's answer once it came. */
  readonly sent: TimesyncSent[] = [];
  /** Messages sent since the channel opened, and answers received. */
  sentCount = 0;
  answeredCount = 0;
  /** Periods that sent nothing because the previous message was unanswered. */
  skipped = 0;
  readonly periodNs: number;
  readonly timeoutNs: number;
  private readonly wallClock: () => bigint;
  private readonly refTime: () => bigint;
  private timer: { cancel(): void } | undefined;
  /** The last scheduled message (SYNC or SAMPLE), while unanswered. */
  private outstanding: TimesyncSent | undefined;
  private ringFullLogged = false;
  private timeoutLogged = false;

  constructor(ctx: HostContext, instanceId: string, options: TimesyncOptions = {}) {
    super(ctx, { type: 'timesync', classId: DeviceClass.TS, instanceId, offer: options.offer ?? icOffer(ctx.release, TIMESYNC_VERSIONS) });
    this.periodNs = options.periodNs ?? TIMESYNC_SAMPLE_PERIOD_NS;
    this.timeoutNs = options.timeoutNs ?? IC_HOST_TIMEOUT_NS;
    this.wallClock = options.wallClockNs ?? (() => ctx.wallClockNs());
    this.refTime = options.referenceTime ?? (() => ctx.referenceTime());
  }

  /** The host's wall clock now, ns since the Unix epoch. */
  wallClockNs(): bigint {
    return this.wallClock();
  }

  protected onReady(): void {
    this.sentCount = 0;
    this.answeredCount = 0;
    this.skipped = 0;
    this.ringFullLogged = false;
    this.timeoutLogged = false;
    this.outstanding = undefined;
    // The initial time, as on start or resume.
    this.scheduled('sync');
    this.timer = this.ctx.schedule(this.ctx.now() + this.periodNs, () => this.tick());
  }

  private tick(): void {
    this.timer = undefined;
    if (this.phase !== 'ready') return;
    if (this.outstanding && !this.outstanding.answer && !this.outstanding.unanswered) this.skipped++;
    else this.scheduled('sample');
    this.timer = this.ctx.schedule(this.ctx.now() + this.periodNs, () => this.tick());
  }

  private scheduled(kind: TimesyncKind): void {
    const s = this.sendTime(kind);
    if (s) this.outstanding = s;
    else if (this.phase === 'ready' && !this.ringFullLogged) {
      this.ringFullLogged = true;
      this.log(`time ${kind} not sent: the ring is full`);
    }
  }

  /**
   * Sends one message now, outside the schedule (tests, scripting): `sync` asks the guest to step
   * its clock, `sample` and `probe` only inform it. Undefined if the IC is not ready or the ring is full.
   */
  sendTime(kind: TimesyncKind): TimesyncSent | undefined {
    const v = this.negotiated;
    if (this.phase !== 'ready' || !v) return undefined;
    // Read the clocks as late as possible, together (OpenVMM samples them just before writing).
    const wall = this.wallClock();
    const parentTime = parentTimeFromUnixNs(wall);
    const vmReferenceTime = carriesReferenceTime(v.message) ? BigInt.asUintN(64, this.refTime()) : undefined;
    const flags = FLAGS[kind];
    const body = encodeTimesyncMessage(v.message, { parentTime, vmReferenceTime, flags });
    const record: TimesyncSent = { kind, flags, version: v.message, atNs: this.ctx.now(), wallClockNs: wall, parentTime, vmReferenceTime, body, answer: undefined, unanswered: undefined };
    const sent = this.sendRequest(IcMsgType.TIMESYNC, body, {
      answer: (r) => this.onAnswer(record, r),
      bad: (reason) => (record.unanswered = { outcome: 'bad-answer', reason }),
      timeout: {
        ns: this.timeoutNs,
        expired: () => {
          record.unanswered = { outcome: 'timeout' };
          if (this.timeoutLogged) return;
          this.timeoutLogged = true;
          this.log(`time ${kind} sent at ${isoTime(wall)}: no answer within ${this.timeoutNs / 1e9} s (further ones are not logged)`);
        },
      },
    });
    if (!sent) return undefined;
    this.sentCount++;
    this.sent.push(record);
    if (this.sent.length > MAX_KEPT) this.sent.shift();
    if (kind === 'sync') this.log(`sent time sync: ${isoTime(wall)}`);
    return record;
  }

  sendSync(): TimesyncSent | undefined {
    return this.sendTime('sync');
  }

  sendSample(): TimesyncSent | undefined {
    return this.sendTime('sample');
  }

  private onAnswer(record: TimesyncSent, r: IcResponse): void {
    const body = r.body;
    const echoed = body.length === record.body.length && body.every((b, i) => b === record.body[i]);
    record.answer = { atNs: this.ctx.now(), status: r.header.status, echoed };
    this.answeredCount++;
    if (r.header.status !== HV_S_OK) this.violation(`time ${record.kind} answered with status 0x${r.header.status.toString(16).padStart(8, '0')}`);
  }

  protected override onClosed(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.outstanding = undefined;
  }
}

/** The device registry's factory: offers a time sync IC on the host's VMBus. */
export function attachTimesync(ctx: HostContext, instanceId: string, options?: TimesyncOptions): TimesyncHost {
  return new TimesyncHost(ctx, instanceId, options);
}
