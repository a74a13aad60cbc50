// Time sync IC constants against the Linux oracle: the ICTIMESYNCFLAG_* flags, WLTIMEDELTA, the
// message versions hv_util.c knows; and the bodies hvkit's host sends (OpenVMM's layouts, which
// the oracle cannot know) against Linux's ictimesync_data / ictimesync_ref_data, which it does.
import { describe, expect, it } from 'vitest';
import { flatten } from '../../src/tlfs/struct.js';
import { IcTimesyncData, IcTimesyncFlag, IcTimesyncRefData, TimesyncMessage, TimesyncMessageV4, TS_VERSION_1, TS_VERSION_3, TS_VERSION_4, WLTIMEDELTA } from '../../src/devices/timesync/wire.js';
import { loadOracle } from './oracle.js';

const { oracle, source } = loadOracle();
const macro = (name: string): bigint => {
  const m = oracle.macros[name];
  if (!m) throw new Error(`${name} is not in the oracle`);
  return BigInt(m.hex);
};

describe(`time sync constants against the Linux oracle (${source})`, () => {
  it('ICTIMESYNCFLAG_*: every Linux flag is declared with its value', () => {
    const linux = Object.keys(oracle.macros).filter((k) => k.startsWith('ICTIMESYNCFLAG_'));
    expect(linux.sort()).toEqual(['ICTIMESYNCFLAG_PROBE', 'ICTIMESYNCFLAG_SAMPLE', 'ICTIMESYNCFLAG_SYNC']);
    for (const k of linux) expect(BigInt((IcTimesyncFlag as Record<string, number>)[k.slice('ICTIMESYNCFLAG_'.length)] ?? -1), k).toBe(macro(k));
  });

  it('WLTIMEDELTA and the message versions (TS_VERSION_1, TS_VERSION_3, TS_VERSION)', () => {
    expect(WLTIMEDELTA).toBe(macro('WLTIMEDELTA'));
    expect(BigInt(TS_VERSION_1)).toBe(macro('TS_VERSION_1'));
    expect(BigInt(TS_VERSION_3)).toBe(macro('TS_VERSION_3'));
    expect(BigInt(TS_VERSION_4)).toBe(macro('TS_VERSION'));
  });

  it("the host's bodies hold every field Linux reads at Linux's offset and size, and are long enough", () => {
    const pairs = [
      [TimesyncMessage, IcTimesyncData, { parent_time: 'parenttime', child_time: 'childtime', round_trip_time: 'roundtriptime', flags: 'flags' }],
      [TimesyncMessageV4, IcTimesyncRefData, { parent_time: 'parenttime', vm_reference_time: 'vmreferencetime', flags: 'flags', leap_indicator: 'leapflags', stratum: 'stratum' }],
    ] as const;
    for (const [host, linux, names] of pairs) {
      const theirs = new Map(flatten(linux).map((f) => [f.name, f]));
      for (const [ours, their] of Object.entries(names)) {
        const a = flatten(host).find((f) => f.name === ours)!;
        const b = theirs.get(their)!;
        expect([a.offset, a.size], `${host.name}.${ours}`).toEqual([b.offset, b.size]);
      }
      // Linux's length check is ICMSG_HDR + sizeof its struct; the host's body must pass it.
      expect(host.size).toBeGreaterThanOrEqual(linux.size);
    }
    expect([TimesyncMessage.size, TimesyncMessageV4.size]).toEqual([28, 24]);
  });
});
