// The time sync IC's message bodies (ICMSGTYPE_TIMESYNC, vmbus.md §9.6). Two formats, chosen by
// the negotiated message version: up to 3.0 the host's wall-clock time alone, from 4.0 on also
// the partition reference time at which the host read its clock, so that the guest can add the
// time the message spent on the way.
//
// Linux (include/linux/hyperv.h) declares both __packed: ictimesync_data 25 bytes and
// ictimesync_ref_data 22 bytes, and requires that many after the headers (hv_util.c). OpenVMM
// declares what the host sends (vm/devices/hyperv_ic_protocol/src/timesync.rs TimesyncMessage,
// TimesyncMessageV4), with the trailing reserved bytes of a naturally aligned C struct: 28 and 24
// bytes. Both put every field Linux reads at the same offset; hvkit's host sends OpenVMM's.
import { bytes, struct, u64, u8 } from '../../tlfs/struct.js';
import { icVersion } from '../ic/wire.js';

// --- Linux's view (the guest side) -------------------------------------------------------------

/** Versions up to 3.0. Linux reads parenttime and flags. */
export const IcTimesyncData = struct('ictimesync_data', {
  parenttime: u64,
  childtime: u64,
  roundtriptime: u64,
  flags: u8,
});

/** Version 4.0. Linux reads parenttime, vmreferencetime and flags; leapflags and stratum are signed chars it ignores. */
export const IcTimesyncRefData = struct('ictimesync_ref_data', {
  parenttime: u64,
  vmreferencetime: u64,
  flags: u8,
  leapflags: u8,
  stratum: u8,
  reserved: bytes(3),
});

// --- What the host sends (OpenVMM's, sized as Hyper-V's C structs are) -------------------------

export const TimesyncMessage = struct('ic_timesync_message', {
  parent_time: u64,
  child_time: u64,
  round_trip_time: u64,
  flags: u8,
  reserved: bytes(3),
});

export const TimesyncMessageV4 = struct('ic_timesync_message_v4', {
  parent_time: u64,
  vm_reference_time: u64,
  flags: u8,
  leap_indicator: u8,
  stratum: u8,
  reserved: bytes(5),
});

// --- Constants ---------------------------------------------------------------------------------

/**
 * ICTIMESYNCFLAG_*: SYNC asks the guest to step its clock (sent when the VM starts or resumes),
 * SAMPLE is a periodic hint the guest may use; PROBE (no bit) carries neither request.
 */
export const IcTimesyncFlag = { PROBE: 0, SYNC: 1, SAMPLE: 2 } as const;

/** WLTIMEDELTA: 1601-01-01 to 1970-01-01 in 100 ns units (Windows FILETIME epoch to the Unix epoch). */
export const WLTIMEDELTA = 116_444_736_000_000_000n;

/** The message versions (hv_util.c TS_VERSION_1, TS_VERSION_3, TS_VERSION). */
export const TS_VERSION_1 = icVersion(1, 0);
export const TS_VERSION_3 = icVersion(3, 0);
export const TS_VERSION_4 = icVersion(4, 0);

const U64 = (1n << 64n) - 1n;

/**
 * Whether messages of `version` carry the reference time: Linux's test is `ts_srv_version >
 * TS_VERSION_3` on a C int, so a leftover from a failed negotiation (count << 16) with the top bit
 * set counts as negative and selects the old format.
 */
export const carriesReferenceTime = (version: number): boolean => (version | 0) > TS_VERSION_3;

/** A FILETIME-based `parenttime` (100 ns since 1601, as a u64) for a Unix time in ns, rounded down. */
export function parentTimeFromUnixNs(unixNs: bigint): bigint {
  const ticks = unixNs >= 0n ? unixNs / 100n : -((-unixNs + 99n) / 100n);
  return (ticks + WLTIMEDELTA) & U64;
}

/** The Unix time in ns a `parenttime` stands for (exact; it may be before 1970). */
export function unixNsFromParentTime(parentTime: bigint): bigint {
  return (parentTime - WLTIMEDELTA) * 100n;
}

/** One time message from the host, whatever its format. */
export interface TimesyncFields {
  readonly parentTime: bigint;
  /** Only in version 4.0 messages. */
  readonly vmReferenceTime?: bigint;
  readonly flags: number;
}

/** The body the host sends for `version`: TimesyncMessageV4 for 4.0 (and above), TimesyncMessage before. */
export function encodeTimesyncMessage(version: number, m: TimesyncFields): Uint8Array {
  if (carriesReferenceTime(version)) {
    return TimesyncMessageV4.encode({ parent_time: m.parentTime & U64, vm_reference_time: (m.vmReferenceTime ?? 0n) & U64, flags: m.flags & 0xff, leap_indicator: 0, stratum: 0, reserved: new Uint8Array(5) });
  }
  // UNVERIFIED: what Hyper-V puts in child_time and round_trip_time; Linux ignores both, hvkit sends 0.
  return TimesyncMessage.encode({ parent_time: m.parentTime & U64, child_time: 0n, round_trip_time: 0n, flags: m.flags & 0xff, reserved: new Uint8Array(3) });
}

/**
 * Reads a time message body the way the guest does for `version` (ictimesync_ref_data above 3.0,
 * ictimesync_data otherwise). Throws WireError if the body is too short for it.
 */
export function decodeTimesyncMessage(version: number, body: Uint8Array): TimesyncFields {
  if (carriesReferenceTime(version)) {
    const d = IcTimesyncRefData.decode(body);
    return { parentTime: d.parenttime, vmReferenceTime: d.vmreferencetime, flags: d.flags };
  }
  const d = IcTimesyncData.decode(body);
  return { parentTime: d.parenttime, flags: d.flags };
}

/** The layouts the oracle checks (Linux's); the host's are checked against them in timesync-constants. */
export const TIMESYNC_LAYOUTS = [IcTimesyncData, IcTimesyncRefData];
