// The time sync IC end to end over real VMBus on every release: what each release negotiates with
// Linux 6.1, the SYNC that steps the guest's clock to the host's time (with version 4.0's
// correction for the time the message waited in the ring, and without it on 3.0), the SAMPLEs
// that only move the PTP clock (hv_util.c adj_guesttime, hv_get_adj_host_time); one SYNC byte for
// byte; the guest's checks packet by packet; and every parser fed arbitrary bytes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HostContext } from '../../src/devices/device.js';
import { hvUtilsModule, type HvUtilsDriver, type UtilService } from '../../src/devices/ic/guest.js';
import { prepNegotiateResp } from '../../src/devices/ic/negotiate.js';
import { makeTimesyncService, timesyncOf, type TimesyncService } from '../../src/devices/timesync/guest.js';
import { attachTimesync, TIMESYNC_VERSIONS, type TimesyncHost, type TimesyncOptions } from '../../src/devices/timesync/host.js';
import { decodeTimesyncMessage, encodeTimesyncMessage, IcTimesyncData, IcTimesyncRefData, parentTimeFromUnixNs, TimesyncMessage, TimesyncMessageV4, unixNsFromParentTime } from '../../src/devices/timesync/wire.js';
import { RELEASE_IDS, type ReleaseId } from '../../src/hypervisor/release.js';
import { WireError } from '../../src/tlfs/struct.js';
import type { GuestChannel } from '../../src/vmbus/client/channel.js';
import type { ChannelHandler, HostChannel } from '../../src/vmbus/server/channel.js';
import type { VmbusServer } from '../../src/vmbus/server/server.js';
import { Machine } from '../../src/vm/machine.js';
import { RUNS } from '../vmbus/fuzz-runs.js';
import { hostContext, HV_E_FAIL, stubServices, utilHarness, v } from './services.js';
import { fuzz, itFuzzEachRelease } from '../fuzz/fuzz.js';

const INSTANCE = '2dd1ce17-079e-403c-b352-a1921ee207ee';
const hex = (s: string) => s.replace(/\s+/g, '');
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
/** include/linux/hyperv.h WLTIMEDELTA, written out here rather than imported. */
const DELTA = 116_444_736_000_000_000n;
const U64_MAX = (1n << 64n) - 1n;

/** What each release negotiates with Linux 6.1 (ts_versions 4.0, 3.0, 1.0): 3.0 before WS2016, 4.0 from it on. */
const EXPECTED: Record<ReleaseId, string> = { ws2012: '3.0', ws2012r2: '3.0', ws2016: '4.0', ws2019: '4.0', ws2022: '4.0', ws2025: '4.0' };

/** The host's clock in these tests: 2030-06-15T12:00:00Z plus virtual time, far from the guest's 2026 RTC. */
const HOST_EPOCH = BigInt(Date.UTC(2030, 5, 15, 12)) * 1_000_000n;
/** The stub guest's CLOCK_REALTIME before anyone sets it (test/devices/services.ts). */
const GUEST_RTC = 1_767_225_600_000_000_000n;

/** A guest service that can be held: while held its callback does nothing, and `release` runs it. */
function holdable(inner: UtilService) {
  const state = { hold: false, missed: 0 };
  let run: (() => void) | undefined;
  const service: UtilService = {
    name: inner.name,
    classId: inner.classId,
    attach(util) {
      const i = inner.attach(util);
      run = () => i.onChannelCallback();
      return {
        onChannelCallback() {
          if (state.hold) state.missed++;
          else i.onChannelCallback();
        },
        deinit: () => i.deinit?.(),
      };
    },
  };
  return {
    state,
    service,
    release() {
      state.hold = false;
      run?.();
    },
  };
}

/**
 * A machine with the time sync IC offered, booted, hv_utils registered, negotiation done and the
 * first SYNC handled. The host reads the partition's reference counter; the guest reads it
 * through its own CPU (as hv_read_reference_counter does), and each read is recorded.
 */
function start(release: ReleaseId, opts: { host?: TimesyncOptions; spy?: (ts: TimesyncHost) => void } = {}) {
  const m = new Machine({ release, vps: 2, devices: [], kernel: { vmbus: true, modules: [] } });
  const hostLog: string[] = [];
  const hostClock = { offset: 0n };
  const ctx = hostContext(m, hostLog);
  const ts = attachTimesync(ctx, INSTANCE, { wallClockNs: () => HOST_EPOCH + hostClock.offset + BigInt(m.nowNs), referenceTime: () => m.partition.referenceTime.now(), ...opts.host });
  opts.spy?.(ts);
  m.boot();
  const guest = stubServices(() => m.nowNs);
  const reads: bigint[] = [];
  const h = holdable(
    makeTimesyncService({
      referenceCounter: () => {
        const r = m.kernel.refClock.read(m.kernel.bsp.ops);
        reads.push(r);
        return r;
      },
    }),
  );
  let driver: HvUtilsDriver | undefined;
  hvUtilsModule([h.service]).init(guest.services, (d) => {
    driver = d as HvUtilsDriver;
    m.kernel.vmbus!.registerDriver(d);
  });
  m.runFor(1e6);
  const util = () => [...driver!.channels.values()][0]!;
  const svc = (): TimesyncService => timesyncOf(util())!;
  return { m, ts, hostLog, guest, reads, hold: h, driver: driver!, util, svc, hostClock };
}

/** Within the rounding of two 100 ns readings (the host's clock and the reference counter). */
function expectNear(got: bigint, want: bigint): void {
  expect(got - want).toBeGreaterThanOrEqual(-200n);
  expect(got - want).toBeLessThanOrEqual(200n);
}

/** Linux's arithmetic (adj_guesttime then hv_get_adj_host_time at the same reference time `cur`): the ns it steps to. */
function linuxHostTimeNs(parentTime: bigint, vmReferenceTime: bigint | undefined, cur: bigint): bigint {
  const hostTime = parentTime + (vmReferenceTime === undefined ? 0n : cur - vmReferenceTime);
  return (hostTime - DELTA) * 100n;
}

describe.each(RELEASE_IDS)('time sync on %s', (release) => {
  const version = EXPECTED[release];
  const v4 = version === '4.0';

  it(`negotiates ${version}; the first SYNC steps the guest's clock to the host's time`, () => {
    const { m, ts, hostLog, guest, reads, svc } = start(release);
    expect(ts.phase).toBe('ready');
    expect(ts.negotiated).toEqual({ framework: v('3.0'), message: v(version) });
    expect(guest.lines).toEqual(['info: hv_utils: Registering HyperV Utility Driver', `info: hv_utils: TimeSync IC version ${version}`]);
    expect(svc().version).toBe(v(version));
    const sync = ts.sent[0]!;
    expect([sync.kind, sync.flags, sync.version, ts.sent.length]).toEqual(['sync', 1, v(version), 1]);
    expect(hostLog).toEqual([`timesync: IC version ${version} (framework 3.0)`, `timesync: sent time sync: ${new Date(Number(sync.wallClockNs / 1_000_000n)).toISOString()}`]);
    // parenttime: the host's clock in 100 ns since 1601; v4 adds the partition's reference time.
    expect(sync.parentTime).toBe((HOST_EPOCH + BigInt(sync.atNs)) / 100n + DELTA);
    expect(sync.vmReferenceTime).toBe(v4 ? m.partition.referenceTime.ticksAt(sync.atNs) : undefined);
    expect(sync.body.length).toBe(v4 ? 24 : 28);
    // The guest read the counter in adj_guesttime (v3: once more for the reference time the host
    // did not send) and again in the work item, all at the same moment.
    expect(reads.length).toBe(v4 ? 2 : 3);
    expect(new Set(reads).size).toBe(1);
    const want = linuxHostTimeNs(sync.parentTime, sync.vmReferenceTime, reads[0]!);
    expect(guest.services.realtimeNs()).toBe(want);
    expect(svc().steps).toBe(1);
    expect(want - GUEST_RTC).toBeGreaterThan(4n * 365n * 86_400n * 1_000_000_000n);
    // The guest answered: the body echoed, status S_OK.
    expect(sync.answer).toMatchObject({ status: 0, echoed: true });
    expect(ts.violations.items).toEqual([]);
  });

  it(`a SYNC that waited 3 s in the ring: ${v4 ? 'v4 adds the reference time it waited' : 'v3 has no reference time, the clock is 3 s behind'}`, () => {
    const { m, ts, guest, reads, hold } = start(release);
    hold.state.hold = true;
    const s = ts.sendSync()!;
    const before = guest.services.realtimeNs();
    m.runFor(3e9);
    expect(hold.state.missed).toBeGreaterThan(0);
    expect(s.answer).toBeUndefined();
    expect(guest.services.realtimeNs()).toBe(before);
    const readAt = m.nowNs;
    const n = reads.length;
    hold.release();
    m.runFor(1e6);
    expect(s.answer).toMatchObject({ status: 0, echoed: true });
    // One read in adj_guesttime (v3: one more for the missing reference time), one in the work.
    const cur = reads.at(-1)!;
    expect(reads.length).toBe(n + (v4 ? 2 : 3));
    expect(cur).toBe(m.partition.referenceTime.ticksAt(readAt));
    const got = guest.services.realtimeNs();
    expect(got).toBe(linuxHostTimeNs(s.parentTime, s.vmReferenceTime, cur));
    const hostNow = HOST_EPOCH + BigInt(readAt);
    if (v4) {
      // The host's clock at the moment the guest read the message.
      expectNear(got, hostNow);
    } else {
      expect(got).toBe(((HOST_EPOCH + BigInt(s.atNs)) / 100n) * 100n);
      expect(hostNow - got).toBeGreaterThanOrEqual(3_000_000_000n);
    }
  });

  it('SAMPLEs every 5 s update the PTP clock and never step CLOCK_REALTIME', () => {
    const { m, ts, guest, svc, hostClock } = start(release);
    const moved = 42_000_000_000n;
    guest.services.setRealtimeNs(moved);
    const t0 = ts.sent[0]!.atNs;
    m.runFor(11e9);
    expect(ts.sent.map((s) => [s.kind, s.atNs - t0])).toEqual([
      ['sync', 0],
      ['sample', 5e9],
      ['sample', 10e9],
    ]);
    expect(ts.sent.every((s) => s.answer?.status === 0 && s.answer.echoed)).toBe(true);
    expect(guest.services.realtimeNs()).toBe(moved);
    expect(svc().steps).toBe(1);
    // hv_ptp_gettime: the last sample moved on by the reference time since it was taken.
    const last = ts.sent.at(-1)!;
    const cur = m.partition.referenceTime.now();
    const ptp = svc().ptpGettime()!;
    expect(ptp.error).toBeUndefined();
    if (v4) expect(ptp.ns).toBe((last.parentTime + cur - last.vmReferenceTime! - DELTA) * 100n);
    expectNear(ptp.ns, HOST_EPOCH + BigInt(m.nowNs));
    // The host's clock jumps an hour: a SAMPLE moves the PTP clock only, a SYNC then steps the guest.
    hostClock.offset = 3_600_000_000_000n;
    ts.sendSample();
    m.runFor(1e6);
    expect(guest.services.realtimeNs()).toBe(moved);
    expectNear(svc().ptpTimeNs()!, HOST_EPOCH + hostClock.offset + BigInt(m.nowNs));
    ts.sendSync();
    m.runFor(1e6);
    // The stub's CLOCK_REALTIME stands still once set: compare with the host's clock when the guest read the SYNC.
    expectNear(guest.services.realtimeNs(), HOST_EPOCH + hostClock.offset + BigInt(ts.sent.at(-1)!.atNs));
    expect(svc().steps).toBe(2);
  });

  it(`offers ${TIMESYNC_VERSIONS[release].map((x) => `${x >>> 16}.${x & 0xffff}`).join(', ')} with frameworks 1.0 and 3.0`, () => {
    const { ts } = start(release);
    expect(ts.offer).toEqual({ framework: [v('1.0'), v('3.0')], message: (v4 ? ['1.0', '3.0', '4.0'] : ['1.0', '3.0']).map(v) });
  });
});

describe('time sync on the wire', () => {
  it('one v4 SYNC and its answer, byte for byte', () => {
    const wire: [string, string][] = [];
    start('ws2022', {
      // 2026-01-01T00:00:00.000000123Z and a reference time with every byte different.
      host: { wallClockNs: () => 1_767_225_600_000_000_123n, referenceTime: () => 0x0123456789abcdefn },
      spy: (ts) => {
        const send = ts.hostChannel.send.bind(ts.hostChannel);
        ts.hostChannel.send = (parts) => (wire.push(['to-guest', parts.map(toHex).join('')]), send(parts));
        const read = ts.onGuestPayload.bind(ts);
        ts.onGuestPayload = (p) => (wire.push(['to-host', toHex(p)]), read(p));
      },
    });
    // parenttime = 1767225600000000123 / 100 + WLTIMEDELTA = 134116992000000001 = 0x01dc7ab192810001.
    expect(wire.slice(2)).toEqual([
      // Descriptor: in-band (6), offset8 2, len8 9 (16 + 52 padded to 56), no completion, trans id 0.
      // Pipe: DATA, msgsize 44; icmsg_hdr: framework 3.0, type 4, message 4.0, icmsgsize 24, transaction 1, flags 3.
      // Body: parent_time, vm_reference_time, flags SYNC, leap 0, stratum 0, reserved[5] (the ring then pads 4 bytes).
      ['to-guest', hex('0600 0200 0900 0000 0000000000000000  01000000 2c000000  03000000 0400 04000000 1800 00000000 01 03 0000  01008192b17adc01 efcdab8967452301 01 00 00 0000000000')],
      // Linux echoes the whole received payload (padding too) with icflags TRANSACTION | RESPONSE.
      ['to-host', hex('01000000 2c000000  03000000 0400 04000000 1800 00000000 01 05 0000  01008192b17adc01 efcdab8967452301 01 00 00 0000000000  00000000')],
    ]);
  });

  it('a host offering only 1.0 and 3.0 sends the 28-byte body without reference time', () => {
    const { ts, guest } = start('ws2022', { host: { offer: { framework: [v('1.0'), v('3.0')], message: [v('1.0'), v('3.0')] } } });
    expect(guest.lines[1]).toBe('info: hv_utils: TimeSync IC version 3.0');
    const s = ts.sent[0]!;
    expect(s.vmReferenceTime).toBeUndefined();
    expect(s.body.length).toBe(28);
    expect(toHex(s.body.subarray(8))).toBe('00'.repeat(16) + '01000000');
    expect(guest.services.realtimeNs()).toBe(((HOST_EPOCH + BigInt(s.atNs)) / 100n) * 100n);
  });
});

describe('time sync host', () => {
  it('while the guest does not answer, periods send nothing (one message waits at a time)', () => {
    const { m, ts, hold } = start('ws2022');
    m.runFor(5e9 - 2e6);
    expect(ts.sent.length).toBe(1);
    hold.state.hold = true;
    m.runFor(5e9); // the SAMPLE at 5 s goes out, unanswered
    expect(ts.sent.map((s) => s.kind)).toEqual(['sync', 'sample']);
    m.runFor(10e9); // periods at 10 s and 15 s find it unanswered
    expect(ts.sent.length).toBe(2);
    expect(ts.skipped).toBe(2);
    hold.release();
    m.runFor(5e9);
    expect(ts.sent.length).toBe(3);
    expect(ts.sent.every((s) => s.answer?.status === 0)).toBe(true);
  });

  it('a message the guest never answers is given up on after 35 s, and the next period samples again', () => {
    const { m, ts, hold, hostLog } = start('ws2022');
    m.runFor(5e9 - 2e6);
    hold.state.hold = true;
    m.runFor(5e9); // the SAMPLE at 5 s goes out, unanswered
    const sample = ts.sent[1]!;
    expect(sample.kind).toBe('sample');
    m.runFor(sample.atNs + 35e9 - 1e6 - m.nowNs); // up to just before its 35 s are over: only skipped periods
    expect([ts.sent.length, sample.unanswered]).toEqual([2, undefined]);
    m.runFor(5e9 + 2e6); // the timeout, then a period that sends again
    expect(sample.unanswered).toEqual({ outcome: 'timeout' });
    expect(ts.sent.map((x) => x.kind)).toEqual(['sync', 'sample', 'sample']);
    expect(hostLog.filter((l) => l.includes('no answer within'))).toEqual([`timesync: time sample sent at ${new Date(Number((HOST_EPOCH + BigInt(sample.atNs)) / 1_000_000n)).toISOString()}: no answer within 35 s (further ones are not logged)`]);
  });

  it("a reply with the message's transaction id and the wrong type ends the wait for it at once", () => {
    const { m, ts } = start('ws2022');
    const read = ts.onGuestPayload.bind(ts);
    ts.onGuestPayload = (p) => {
      const b = p.slice();
      b[12] = 1; // ICMSGTYPE_HEARTBEAT, not ICMSGTYPE_TIMESYNC (4)
      read(b);
    };
    m.runFor(5e9);
    const sample = ts.sent.at(-1)!;
    expect(sample.unanswered).toEqual({ outcome: 'bad-answer', reason: 'answer of type 1 to a request of type 4' });
    m.runFor(5e9);
    expect(ts.skipped).toBe(0);
  });

  it('a one-off message before negotiation is not sent; after the guest closes, nothing more is sent', () => {
    const m = new Machine({ release: 'ws2022', vps: 2, devices: [], kernel: { vmbus: true, modules: [] } });
    const ctx = hostContext(m);
    const ts = attachTimesync(ctx, INSTANCE);
    expect(ts.sendSync()).toBeUndefined();
    const r = start('ws2022');
    const svc = r.svc();
    const ch = r.util().channel as GuestChannel;
    r.driver.remove(ch);
    r.m.runFor(1e6);
    expect(r.ts.phase).toBe('offered');
    const n = r.ts.sent.length;
    r.m.runFor(20e9);
    expect(r.ts.sent.length).toBe(n);
    expect(r.ts.sendSample()).toBeUndefined();
    // util_deinit unregistered the PTP clock.
    expect(svc.ptpGettime()).toBeUndefined();
  });

  it("by default the host reads the VM's clocks: ctx.wallClockNs and ctx.referenceTime", () => {
    const m = new Machine({ release: 'ws2016', vps: 2, devices: [], kernel: { vmbus: true, modules: [] } });
    const ctx = hostContext(m, [], { wallClockNs: () => HOST_EPOCH + BigInt(m.nowNs), referenceTime: () => 77n });
    const ts = attachTimesync(ctx, INSTANCE);
    m.runFor(1_234_567);
    expect(ts.wallClockNs()).toBe(HOST_EPOCH + 1_234_567n);
    m.boot();
    hvUtilsModule([makeTimesyncService()]).init(stubServices(() => m.nowNs).services, (d) => m.kernel.vmbus!.registerDriver(d));
    m.runFor(1e6);
    // Version 4.0 on WS2016: the SYNC carries the context's reference time.
    expect(ts.sent[0]?.vmReferenceTime).toBe(77n);
  });

  itFuzzEachRelease(
    'never throws on what a guest sends, in any phase',
    'timesync.host',
    (release) => {
      return fc.property(fc.array(fc.uint8Array({ maxLength: 120 }), { maxLength: 8 }), fc.boolean(), (payloads, negotiate) => {
        const h = hostHarness(release);
        h.host.open(h.ch);
        if (negotiate) h.host.onGuestPayload(linuxNegotiateAnswer(h.sent[0]!));
        for (const p of payloads) h.host.onGuestPayload(p);
        // Answers that pass the header checks, with arbitrary bodies and statuses.
        for (const [i, p] of payloads.entries()) {
          const req = h.sent.at(-1)!;
          const b = new Uint8Array(Math.max(req.length, 28 + p.length));
          b.set(req.subarray(0, 28));
          b.set(p, 28);
          const dv = new DataView(b.buffer);
          dv.setUint32(4, b.length - 8, true);
          dv.setUint16(18, Math.min(p.length, b.length - 28), true);
          dv.setUint32(20, i * 0x1234567, true);
          b[25] = 5;
          h.host.onGuestPayload(b);
        }
        if (h.host.phase === 'ready') expect(h.host.sendSample()).toBeDefined();
      });
    },
    RUNS,
  );
});

// --- The guest service, packet by packet ----------------------------------------------------------

/** The time sync service bound by hv_utils, reading the reference counter from `ref`, with `payloads` queued. */
function fakeUtil(payloads: Uint8Array[], ref: { now: bigint }) {
  const h = utilHarness<TimesyncService>(makeTimesyncService({ referenceCounter: () => ref.now }));
  h.push(...payloads);
  return { ...h, svc: h.instance, stub: h };
}

/** An IC message as vmbus.md §9.1 lays it out: type, message version, body. */
function message(type: number, version: string, body: Uint8Array): Uint8Array {
  const b = new Uint8Array(28 + body.length);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 1, true);
  dv.setUint32(4, b.length - 8, true);
  dv.setUint16(8, 3, true);
  dv.setUint16(12, type, true);
  dv.setUint16(14, v(version) >>> 16, true);
  dv.setUint16(18, body.length, true);
  b[25] = 3;
  b.set(body, 28);
  return b;
}

/** A NEGOTIATE offering framework 3.0 and these message versions. */
function negotiate(...versions: string[]): Uint8Array {
  const body = new Uint8Array(8 + 4 * (1 + versions.length));
  const dv = new DataView(body.buffer);
  dv.setUint16(0, 1, true);
  dv.setUint16(2, versions.length, true);
  dv.setUint16(8, 3, true);
  versions.forEach((x, i) => {
    dv.setUint16(12 + 4 * i, v(x) >>> 16, true);
    dv.setUint16(14 + 4 * i, v(x) & 0xffff, true);
  });
  return message(0, '0.0', body);
}

/** A v4 body as vmbus.md §9.6 lays it out, cut or zero-padded to `size` bytes. */
function v4Body(parent: bigint, ref: bigint, flags: number, size = 24): Uint8Array {
  const b = new Uint8Array(Math.max(size, 22));
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, parent, true);
  dv.setBigUint64(8, ref, true);
  b[16] = flags;
  return b.slice(0, size);
}

/** A v1/v3 body, cut or zero-padded to `size` bytes. */
function v3Body(parent: bigint, flags: number, size = 28): Uint8Array {
  const b = new Uint8Array(Math.max(size, 25));
  new DataView(b.buffer).setBigUint64(0, parent, true);
  b[24] = flags;
  return b.slice(0, size);
}

const T = (unixNs: bigint) => unixNs / 100n + DELTA;

describe('time sync guest service: packet by packet', () => {
  it('v4: the sample moves on by (reference now − vmreferencetime); SYNC steps, SAMPLE and PROBE do not', () => {
    const ref = { now: 10_000_000n };
    const f = fakeUtil([negotiate('1.0', '3.0', '4.0')], ref);
    f.svc.onChannelCallback();
    expect(f.lines).toEqual(['info: hv_utils: TimeSync IC version 4.0']);
    const host = 1_900_000_000_000_000_000n;
    // Taken 2.5 s (25 000 000 ticks) before the guest reads it.
    f.push(message(4, '4.0', v4Body(T(host), ref.now - 25_000_000n, 2)));
    f.svc.onChannelCallback();
    expect(f.stub.services.realtimeNs()).toBe(GUEST_RTC);
    expect(f.svc.ptpTimeNs()).toBe(host + 2_500_000_000n);
    ref.now += 10_000n; // 1 ms later
    expect(f.svc.ptpTimeNs()).toBe(host + 2_501_000_000n);
    f.push(message(4, '4.0', v4Body(T(host), ref.now, 0)));
    f.svc.onChannelCallback();
    expect(f.stub.services.realtimeNs()).toBe(GUEST_RTC);
    expect(f.svc.ptpTimeNs()).toBe(host);
    f.push(message(4, '4.0', v4Body(T(host), ref.now - 7n, 1)));
    f.svc.onChannelCallback();
    expect(f.stub.services.realtimeNs()).toBe(host + 700n);
    expect(f.svc.steps).toBe(1);
    // Every message answered as received, with TRANSACTION | RESPONSE and the request's id.
    expect(f.sent.map((s) => [s.bytes.length, s.bytes[25], s.id])).toEqual([
      [52, 5, 1n],
      [52, 5, 2n],
      [52, 5, 3n],
      [52, 5, 4n],
    ]);
  });

  it('several SYNCs drained in one callback: each answered, the newest sample wins, one step', () => {
    const ref = { now: 5n };
    const f = fakeUtil([negotiate('4.0'), message(4, '4.0', v4Body(T(2_000_000_000_000_000_000n), 5n, 1)), message(4, '4.0', v4Body(T(2_000_000_100_000_000_000n), 5n, 1))], ref);
    f.svc.onChannelCallback();
    expect(f.sent.length).toBe(3);
    expect(f.stub.services.realtimeNs()).toBe(2_000_000_100_000_000_000n);
    expect(f.svc.steps).toBe(1);
  });

  it('v3 and v1: no reference time, the sample counts as taken when read', () => {
    for (const ver of ['3.0', '1.0']) {
      const ref = { now: 99_999n };
      const f = fakeUtil([negotiate(ver), message(4, ver, v3Body(T(1_800_000_000_000_000_000n), 1, 25))], ref);
      f.svc.onChannelCallback();
      expect(f.lines).toEqual([`info: hv_utils: TimeSync IC version ${ver}`]);
      expect(f.stub.services.realtimeNs()).toBe(1_800_000_000_000_000_000n);
      ref.now += 1n;
      expect(f.svc.ptpTimeNs()).toBe(1_800_000_000_000_000_100n);
    }
  });

  it('bad sizes are logged as Linux does and end the loop unanswered; an unknown type gets HV_E_FAIL', () => {
    const ref = { now: 0n };
    const f = fakeUtil([new Uint8Array(27), message(4, '3.0', v3Body(1n, 1, 24))], ref);
    f.svc.onChannelCallback();
    expect(f.lines).toEqual(['err: hv_utils: Timesync request received. Packet length too small: 27']);
    expect(f.sent).toEqual([]);
    // Before any NEGOTIATE ts_srv_version is 0: the 25-byte format, and 28 + 24 is one byte short.
    f.svc.onChannelCallback();
    expect(f.lines[1]).toBe('err: hv_utils: Invalid ictimesync data. Length too small: 52');
    f.push(negotiate('4.0'), message(4, '4.0', v4Body(1n, 0n, 1, 21)), message(9, '4.0', v4Body(1n, 0n, 1)));
    f.svc.onChannelCallback();
    expect(f.lines.slice(2)).toEqual(['info: hv_utils: TimeSync IC version 4.0', 'err: hv_utils: Invalid ictimesync ref data. Length too small: 49']);
    expect(f.left()).toBe(1);
    f.svc.onChannelCallback();
    expect(f.lines.slice(4)).toEqual(['err: hv_utils: Timesync request received. Invalid msg type: 9']);
    expect(f.sent.map((s) => new DataView(s.bytes.buffer).getUint32(20, true))).toEqual([0, HV_E_FAIL]);
    expect(f.stub.services.realtimeNs()).toBe(GUEST_RTC);
  });

  it('a failed NEGOTIATE leaves the count << 16 in ts_srv_version, compared as a C int', () => {
    // 0x8000 versions cannot fit: Linux stores 0x8000 << 16, negative as an int, so the 25-byte format follows.
    const ref = { now: 0n };
    const bad = message(0, '0.0', new Uint8Array(8));
    new DataView(bad.buffer).setUint16(30, 0x8000, true);
    const f = fakeUtil([bad, message(4, '4.0', v3Body(T(1_700_000_000_000_000_000n), 1, 25))], ref);
    f.svc.onChannelCallback();
    expect(f.svc.version).toBe(0x80000000);
    expect(f.stub.services.realtimeNs()).toBe(1_700_000_000_000_000_000n);
    expect(f.lines).toEqual(['err: hv_vmbus: Invalid icmsg negotiate - icframe_major: 0, icmsg_major: 32768']);
  });

  it('a sample older than 600 s is stale: the PTP read fails with ESTALE, warned once, and a SYNC does not step', () => {
    const ref = { now: 1_000n };
    const f = fakeUtil([negotiate('4.0'), message(4, '4.0', v4Body(T(1_900_000_000_000_000_000n), 1_000n, 2))], ref);
    f.svc.onChannelCallback();
    ref.now += 6_000_000_000n; // exactly 600 s: not yet stale
    expect(f.svc.ptpGettime()).toEqual({ ns: 1_900_000_600_000_000_000n });
    ref.now += 1n;
    expect(f.svc.ptpGettime()).toEqual({ ns: 1_900_000_600_000_000_100n, error: 'ESTALE' });
    ref.now += 1n;
    expect(f.svc.ptpGettime()!.error).toBe('ESTALE');
    expect(f.lines.slice(1)).toEqual(['warn: hv_utils: TIMESYNC IC: Stale time stamp, 600000000100 nsecs old']);
    // Staleness counts from when the guest took the sample: a SYNC the host read 700 s ago still steps.
    f.push(message(4, '4.0', v4Body(T(1_950_000_000_000_000_000n), ref.now - 7_000_000_000n, 1)));
    f.svc.onChannelCallback();
    expect(f.stub.services.realtimeNs()).toBe(1_950_000_700_000_000_000n);
  });

  it('a SYNC to a time settimeofday refuses (before 1970, or past 2232) does not step', () => {
    const ref = { now: 0n };
    const f = fakeUtil([negotiate('4.0'), message(4, '4.0', v4Body(0n, 0n, 1)), message(4, '4.0', v4Body(DELTA + 8_277_292_036n * 10_000_000n, 0n, 1))], ref);
    f.svc.onChannelCallback();
    expect(f.stub.services.realtimeNs()).toBe(GUEST_RTC);
    expect(f.sent.length).toBe(3);
    // One second earlier is accepted.
    f.push(message(4, '4.0', v4Body(DELTA + 8_277_292_035n * 10_000_000n, 0n, 1)));
    f.svc.onChannelCallback();
    expect(f.stub.services.realtimeNs()).toBe(8_277_292_035n * 1_000_000_000n);
  });

  it('without a reference counter it counts sched_clock in 100 ns ticks', () => {
    const h = utilHarness(makeTimesyncService(), { uptime: () => 1_000_000_000 });
    h.deliver(negotiate('4.0'), message(4, '4.0', v4Body(T(1_900_000_000_000_000_000n), 9_000_000n, 1)));
    // 1 s of sched_clock = 10 000 000 ticks; the sample was taken at 9 000 000: 0.1 s ago.
    expect(h.services.realtimeNs()).toBe(1_900_000_000_100_000_000n);
  });

  it('never throws on arbitrary packets; every answer has the length it was received with and flags 5', () => {
    const anyMessage = fc.oneof(
      fc.uint8Array({ maxLength: 120 }),
      fc.tuple(fc.bigInt({ min: 0n, max: U64_MAX }), fc.bigInt({ min: 0n, max: U64_MAX }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 30 })).map(([p, r, fl, n]) => message(4, '4.0', v4Body(p, r, fl, n))),
      fc.tuple(fc.bigInt({ min: 0n, max: U64_MAX }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 30 })).map(([p, fl, n]) => message(4, '3.0', v3Body(p, fl, n))),
      fc.constantFrom(negotiate('4.0'), negotiate('3.0'), negotiate('1.0'), negotiate('2.0')),
    );
    fuzz(
      'timesync.guest-driver',
      fc.property(fc.array(anyMessage, { maxLength: 8 }), fc.bigInt({ min: 0n, max: U64_MAX }), (payloads, now) => {
        const ref = { now };
        const f = fakeUtil(payloads, ref);
        f.svc.onChannelCallback();
        f.svc.onChannelCallback();
        for (const s of f.sent) {
          expect(s.bytes.length).toBe(payloads[Number(s.id) - 1]!.length);
          expect(s.bytes[25]).toBe(5);
        }
        const t = f.stub.services.realtimeNs();
        expect(t === GUEST_RTC || (t >= 0n && t < 8_277_292_036n * 1_000_000_000n)).toBe(true);
        const p = f.svc.ptpGettime()!;
        expect(p.ns).toBeGreaterThanOrEqual(-(1n << 63n));
        expect(p.ns).toBeLessThan(1n << 63n);
      }),
      RUNS,
    );
  });
});

describe('time sync wire format', () => {
  it('Linux reads the host bodies at the offsets it declares', () => {
    const body4 = encodeTimesyncMessage(v('4.0'), { parentTime: 0x1122334455667788n, vmReferenceTime: 0x99aabbccddeeff00n, flags: 2 });
    expect(body4.length).toBe(TimesyncMessageV4.size);
    expect(IcTimesyncRefData.decode(body4)).toMatchObject({ parenttime: 0x1122334455667788n, vmreferencetime: 0x99aabbccddeeff00n, flags: 2 });
    const body3 = encodeTimesyncMessage(v('3.0'), { parentTime: 0x0102030405060708n, flags: 1 });
    expect(body3.length).toBe(TimesyncMessage.size);
    expect(IcTimesyncData.decode(body3)).toMatchObject({ parenttime: 0x0102030405060708n, childtime: 0n, roundtriptime: 0n, flags: 1 });
  });

  it('FILETIME conversions: 1970 is WLTIMEDELTA, 1601 is 0, rounding down to 100 ns', () => {
    expect(parentTimeFromUnixNs(0n)).toBe(DELTA);
    expect(parentTimeFromUnixNs(-DELTA * 100n)).toBe(0n);
    expect(parentTimeFromUnixNs(199n)).toBe(DELTA + 1n);
    expect(parentTimeFromUnixNs(-1n)).toBe(DELTA - 1n);
    expect(unixNsFromParentTime(DELTA + 3n)).toBe(300n);
  });

  it('decoders throw nothing but WireError on arbitrary bytes, and read what the encoder wrote', () => {
    fuzz(
      'timesync.wire',
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.constantFrom(v('1.0'), v('3.0'), v('4.0'), 0, 0x80000000), (b, ver) => {
        try {
          const m = decodeTimesyncMessage(ver, b);
          expect(b.length).toBeGreaterThanOrEqual(ver === v('4.0') ? 22 : 25);
          expect(m.parentTime).toBe(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
        } catch (e) {
          expect(e).toBeInstanceOf(WireError);
        }
      }),
      RUNS,
    );
    fuzz(
      'timesync.wire-round-trip',
      fc.property(fc.bigInt({ min: 0n, max: U64_MAX }), fc.bigInt({ min: 0n, max: U64_MAX }), fc.integer({ min: 0, max: 255 }), fc.constantFrom(v('1.0'), v('3.0'), v('4.0')), (p, r, fl, ver) => {
        const m = decodeTimesyncMessage(ver, encodeTimesyncMessage(ver, { parentTime: p, vmReferenceTime: r, flags: fl }));
        expect(m).toEqual(ver === v('4.0') ? { parentTime: p, vmReferenceTime: r, flags: fl } : { parentTime: p, flags: fl });
      }),
      RUNS,
    );
  });
});

// --- A host over a recording channel (for the fuzzing above) -------------------------------------

function hostHarness(release: ReleaseId = 'ws2022') {
  const sent: Uint8Array[] = [];
  let t = 0;
  const ch = { sendInband: (b: Uint8Array) => (sent.push(b.slice()), true), receive: () => 0 } as unknown as HostChannel;
  const server = { offer: (_s: unknown, _h: ChannelHandler) => ch } as unknown as VmbusServer;
  const ctx: HostContext = { server, release, now: () => (t += 1000), schedule: () => ({ cancel() {} }), log: () => {}, wallClockNs: () => HOST_EPOCH + BigInt(t), referenceTime: () => BigInt(Math.floor(t / 100)) };
  const host = attachTimesync(ctx, INSTANCE);
  return { host, sent, ch };
}

/** Linux's answer to the host's NEGOTIATE (the time sync versions), as the guest would send it. */
function linuxNegotiateAnswer(request: Uint8Array): Uint8Array {
  const len = Math.ceil(request.length / 8) * 8;
  const buf = new Uint8Array(4096);
  buf.set(request);
  prepNegotiateResp(buf, len, [v('3.0'), v('1.0')], [v('4.0'), v('3.0'), v('1.0')]);
  buf[25] = 5;
  return buf.slice(0, len);
}
