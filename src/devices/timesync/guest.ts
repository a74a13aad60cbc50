// The guest's time sync service (Linux 6.1 drivers/hv/hv_util.c timesync_onchannelcallback,
// adj_guesttime, hv_get_adj_host_time, hv_set_host_time, and the "hyperv" PTP clock):
//  - drain the ring; NEGOTIATE is answered with Linux's versions (4.0, 3.0, 1.0) and the one
//    chosen printed; a time message is checked for length, then kept as the last host sample;
//    any other type is answered with HV_E_FAIL. Every answer is the received packet, with
//    TRANSACTION | RESPONSE; a packet that is too short is logged and ends the loop unanswered.
//  - the sample kept is the host's time "now": parenttime, plus for version 4.0 the reference time
//    elapsed since the host read its clock (reference counter now − vmreferencetime), all in u64
//    arithmetic; with the reference counter at that moment.
//  - SYNC steps CLOCK_REALTIME (do_settimeofday64 from a work item, run once after the drain, so
//    the newest sample wins). SAMPLE and PROBE only update the sample: in 6.1 the kernel does not
//    discipline the clock itself (the timesync_implicit parameter came later, in 2024); chronyd
//    reads the PTP clock, whose time is the sample advanced by the reference time since.
//  - a reading more than 600 s past its sample is stale: the PTP read fails with ESTALE, a SYNC
//    work does not step, and "TIMESYNC IC: Stale time stamp" is printed once.
//
// The reference counter: Linux reads it with hv_read_reference_counter(); the service reads it
// through GuestServices.referenceCounter(), the partition's counter as the guest sees it, which
// the host's vmreferencetime is comparable with. An option can replace it (fault injection, tests).
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { GuestServices } from '../device.js';
import type { UtilChannel, UtilService, UtilServiceInstance } from '../ic/guest.js';
import { formatIcVersion, HV_E_FAIL, icField, ICMSG_HDR, IcMsgType, IC_RESPONSE_FLAGS, LINUX_UTIL_VERSIONS } from '../ic/wire.js';
import { carriesReferenceTime, IcTimesyncData, IcTimesyncFlag, IcTimesyncRefData, WLTIMEDELTA } from './wire.js';

const FN = 'timesync_onchannelcallback';

/** HOST_TIMESYNC_DELAY_THRESH: a sample older than 600 s is stale. */
export const HOST_TIMESYNC_DELAY_THRESH_NS = 600n * 1_000_000_000n;

/** include/linux/time64.h: KTIME_SEC_MAX − TIME_UPTIME_SEC_MAX, the last second settimeofday accepts (exclusive). */
const KTIME_SEC_MAX = ((1n << 63n) - 1n) / 1_000_000_000n;
const TIME_SETTOD_SEC_MAX = KTIME_SEC_MAX - 30n * 365n * 24n * 3600n;

const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);

export interface TimesyncServiceOptions {
  /** hv_read_reference_counter() instead of GuestServices.referenceCounter(): 100 ns ticks (see above). */
  readonly referenceCounter?: () => bigint;
}

/** What a PTP read (hv_ptp_gettime) gives: the time, and ESTALE when the sample is too old. */
export interface PtpReading {
  /** ns since the Unix epoch (ns_to_timespec64 of the computed value). */
  readonly ns: bigint;
  readonly error?: 'ESTALE';
}

export class TimesyncService implements UtilServiceInstance {
  /** ts_srv_version: 0 until a NEGOTIATE, then what it left there (Linux sets it even when negotiation fails). */
  version = 0;
  /** host_ts: the last sample, as the host's time (FILETIME units) at reference time `refTime`. */
  hostTime = 0n;
  refTime = 0n;
  /** Clock steps made (hv_set_host_time that reached do_settimeofday64), for inspection. */
  steps = 0;
  /** The PTP clock is registered (hv_timesync_init) until util_deinit. */
  ptpRegistered = true;
  private workPending = false;
  private staleWarned = false;

  constructor(
    private readonly util: UtilChannel,
    private readonly versions: { readonly framework: readonly number[]; readonly message: readonly number[] },
    private readonly readReferenceCounter: () => bigint,
  ) {}

  onChannelCallback(): void {
    const u = this.util;
    const buf = u.buffer;
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (;;) {
      const { recvlen, requestId } = u.recvpacket();
      if (!recvlen) break;
      if (recvlen < ICMSG_HDR) {
        u.logRatelimited(FN, 'short', 'err', `Timesync request received. Packet length too small: ${recvlen}`);
        break;
      }
      const type = dv.getUint16(icField('icmsgtype'), true);
      if (type === IcMsgType.NEGOTIATE) {
        const r = u.negotiate(recvlen, this.versions.framework, this.versions.message);
        if (r.message !== undefined) this.version = r.message;
        if (r.ok) u.log('info', `TimeSync IC version ${formatIcVersion(r.message!)}`);
      } else if (type === IcMsgType.TIMESYNC) {
        if (carriesReferenceTime(this.version)) {
          if (recvlen < ICMSG_HDR + IcTimesyncRefData.size) {
            u.logRatelimited(FN, 'refdata', 'err', `Invalid ictimesync ref data. Length too small: ${recvlen}`);
            break;
          }
          const d = IcTimesyncRefData.decode(buf, ICMSG_HDR);
          this.adjGuesttime(d.parenttime, d.vmreferencetime, d.flags);
        } else {
          if (recvlen < ICMSG_HDR + IcTimesyncData.size) {
            u.logRatelimited(FN, 'data', 'err', `Invalid ictimesync data. Length too small: ${recvlen}`);
            break;
          }
          const d = IcTimesyncData.decode(buf, ICMSG_HDR);
          // Older hosts send no reference time: the sample counts as taken now.
          this.adjGuesttime(d.parenttime, this.readReferenceCounter(), d.flags);
        }
      } else {
        dv.setUint32(icField('status'), HV_E_FAIL, true);
        u.logRatelimited(FN, 'type', 'err', `Timesync request received. Invalid msg type: ${type}`);
      }
      dv.setUint8(icField('icflags'), IC_RESPONSE_FLAGS);
      u.sendpacket(recvlen, requestId);
    }
    // adj_time_work: queued by any SYNC above (queuing it twice runs it once), run after the callback.
    if (this.workPending) {
      this.workPending = false;
      this.setHostTime();
    }
  }

  /** adj_guesttime: keep the sample, moved on by the reference time since `reftime`; SYNC queues the step. */
  private adjGuesttime(hosttime: bigint, reftime: bigint, flags: number): void {
    const cur = u64(this.readReferenceCounter());
    this.refTime = cur;
    this.hostTime = u64(hosttime + u64(cur - reftime));
    if (flags & IcTimesyncFlag.SYNC) this.workPending = true;
  }

  /** hv_get_adj_host_time: the sample advanced to the reference counter now. */
  private adjHostTime(): PtpReading {
    const now = u64(this.readReferenceCounter());
    const diff = u64(now - this.refTime);
    let error: 'ESTALE' | undefined;
    if (u64(diff * 100n) > HOST_TIMESYNC_DELAY_THRESH_NS) {
      if (!this.staleWarned) {
        this.staleWarned = true;
        this.util.log('warn', `TIMESYNC IC: Stale time stamp, ${u64(diff * 100n)} nsecs old`);
      }
      error = 'ESTALE';
    }
    const newtime = u64(this.hostTime + diff);
    // reftime_to_ns is u64; ns_to_timespec64 takes it as s64.
    const ns = BigInt.asIntN(64, u64((newtime - WLTIMEDELTA) * 100n));
    return error ? { ns, error } : { ns };
  }

  /** hv_set_host_time: step CLOCK_REALTIME unless the sample is stale or settimeofday refuses the time. */
  private setHostTime(): void {
    const r = this.adjHostTime();
    if (r.error) return;
    // do_settimeofday64 → timespec64_valid_settod: no negative time, nothing past TIME_SETTOD_SEC_MAX.
    const sec = r.ns >= 0n ? r.ns / 1_000_000_000n : -1n;
    if (sec < 0n || sec >= TIME_SETTOD_SEC_MAX) {
      this.util.services.note(`timesync: do_settimeofday64 refused ${r.ns} ns (EINVAL)`);
      return;
    }
    this.util.services.setRealtimeNs(r.ns);
    this.steps++;
    this.util.services.note(`timesync: CLOCK_REALTIME set to ${r.ns} ns from the host's time`);
  }

  /** hv_ptp_gettime (the "hyperv" PTP clock chronyd reads); undefined once the clock is unregistered. */
  ptpGettime(): PtpReading | undefined {
    return this.ptpRegistered ? this.adjHostTime() : undefined;
  }

  /** The PTP clock's time in ns since the Unix epoch, as a read returns it (stale or not). */
  ptpTimeNs(): bigint | undefined {
    return this.ptpGettime()?.ns;
  }

  /** hv_timesync_deinit: unregister the PTP clock and cancel the work. */
  deinit(): void {
    this.ptpRegistered = false;
    this.workPending = false;
  }
}

/** The time sync state of each opened channel, for inspection (Linux keeps it module-wide). */
const instances = new WeakMap<UtilChannel, TimesyncService>();

/** The time sync service running on `util`, if that channel is a time sync one. */
export function timesyncOf(util: UtilChannel): TimesyncService | undefined {
  return instances.get(util);
}

/** hv_read_reference_counter: the option's, else the kernel's (GuestServices.referenceCounter). */
function referenceCounter(services: GuestServices, option: (() => bigint) | undefined): () => bigint {
  if (option) return option;
  return () => services.referenceCounter();
}

/** The time sync service with Linux 6.1's versions (ts_versions 4.0, 3.0, 1.0; fw 3.0, 1.0). */
export function makeTimesyncService(options: TimesyncServiceOptions = {}): UtilService {
  return {
    name: 'timesync',
    classId: DeviceClass.TS,
    attach(util) {
      // hv_timesync_init: the work item and the PTP clock (ptp_clock_register prints nothing when it works).
      const s = new TimesyncService(util, LINUX_UTIL_VERSIONS.timesync, referenceCounter(util.services, options.referenceCounter));
      instances.set(util, s);
      return s;
    },
  };
}

/** The time sync service reading the kernel's reference counter (GuestServices.referenceCounter). */
export const timesyncService: UtilService = makeTimesyncService();
