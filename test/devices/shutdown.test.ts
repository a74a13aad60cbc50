// The shutdown IC end to end over real VMBus on every release: what each release negotiates with
// Linux 6.1, what the guest answers to shut down, restart and hibernate and what it logs and does
// (hv_util.c shutdown_onchannelcallback), what the host reports; the request body byte for byte;
// and the guest's parser fed arbitrary packets.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hvUtilsModule, type UtilService } from '../../src/devices/ic/guest.js';
import { makeShutdownService, ShutdownService, shutdownService } from '../../src/devices/shutdown/guest.js';
import { attachShutdown, type ShutdownHost, type ShutdownResult } from '../../src/devices/shutdown/host.js';
import { encodeShutdownMessage } from '../../src/devices/shutdown/wire.js';
import { RELEASE_IDS, type ReleaseId } from '../../src/hypervisor/release.js';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';
import { Machine } from '../../src/vm/machine.js';
import { RUNS } from '../vmbus/fuzz-runs.js';
import { deafService, hostContext, HV_E_FAIL, stubServices, utilHarness, v } from './services.js';
import { fuzz } from '../fuzz/fuzz.js';

const INSTANCE = 'b6650ff7-33bc-4840-8048-e0676786f393';

/** The shutdown version each release negotiates with Linux 6.1 (versions.ts; Linux sd_versions 3.2, 3.1, 3.0, 1.0). */
const EXPECTED: Record<ReleaseId, string> = { ws2012: '3.0', ws2012r2: '3.0', ws2016: '3.1', ws2019: '3.1', ws2022: '3.2', ws2025: '3.2' };

const guestServices = (m: Machine) => stubServices(() => m.nowNs);

/** A machine with the shutdown IC offered, booted, hv_utils registered, and negotiation done. */
function start(release: ReleaseId, service: UtilService = shutdownService) {
  // No default device set and no built-in modules: only this test's device and driver.
  const m = new Machine({ release, vps: 2, devices: [], kernel: { vmbus: true, modules: [] } });
  const hostLog: string[] = [];
  const ctx = hostContext(m, hostLog);
  const sd = attachShutdown(ctx, INSTANCE);
  const early = sd.request('shutdown', false);
  m.boot();
  const guest = guestServices(m);
  hvUtilsModule([service]).init(guest.services, (d) => m.kernel.vmbus!.registerDriver(d));
  m.runFor(1e6);
  return { m, sd, hostLog, guest, early };
}

/** Makes a request and runs until it is settled. */
function ask(m: Machine, sd: ShutdownHost, ...args: Parameters<ShutdownHost['request']>): ShutdownResult | undefined {
  const r = sd.request(...args);
  m.waitUntil(() => r.result !== undefined, 1e9);
  return r.result;
}

describe.each(RELEASE_IDS)('shutdown on %s', (release) => {
  const version = EXPECTED[release];
  const has = (min: string) => v(version) >= v(min);

  it(`negotiates shutdown ${version}, and is not ready before`, async () => {
    const { sd, hostLog, guest, early } = start(release);
    expect(await early.done).toEqual({ outcome: 'not-ready' });
    expect(sd.phase).toBe('ready');
    expect(sd.negotiated).toEqual({ framework: v('3.0'), message: v(version) });
    expect(guest.lines).toEqual(['info: hv_utils: Registering HyperV Utility Driver', `info: hv_utils: Shutdown IC version ${version}`]);
    expect(hostLog).toEqual([`shutdown: IC version ${version} (framework 3.0)`]);
  });

  it('shut down: the guest answers S_OK, logs, and powers off; the host reports it', async () => {
    const { m, sd, hostLog, guest } = start(release);
    const r = sd.request('shutdown', false, 'planned maintenance');
    m.waitUntil(() => r.result !== undefined, 1e9);
    expect(await r.done).toEqual({ outcome: 'accepted' });
    expect(guest.lines.slice(2)).toEqual(['info: hv_utils: Shutdown request received - graceful shutdown initiated']);
    expect(guest.shutdowns).toEqual(['poweroff']);
    expect(hostLog.slice(1)).toEqual(['shutdown: asking the guest to shut down: planned maintenance', 'shutdown: the guest accepted the request to shut down']);
    // A forced one takes the same path (flags 1).
    expect(ask(m, sd, 'shutdown', true)).toEqual({ outcome: 'accepted' });
    expect(guest.shutdowns).toEqual(['poweroff', 'poweroff']);
  });

  it(`restart: ${has('3.1') ? 'accepted, the guest reboots' : 'not sent, version 3.1 is needed'}`, () => {
    const { m, sd, hostLog, guest } = start(release);
    const r = ask(m, sd, 'restart', true);
    if (has('3.1')) {
      expect(r).toEqual({ outcome: 'accepted' });
      expect(guest.lines.slice(2)).toEqual(['info: hv_utils: Restart request received - graceful restart initiated']);
      expect(guest.shutdowns).toEqual(['reboot']);
      expect(hostLog.slice(1)).toEqual(['shutdown: asking the guest to restart (forced)', 'shutdown: the guest accepted the request to restart']);
    } else {
      expect(r).toEqual({ outcome: 'unsupported', version: v(version) });
      expect(hostLog.slice(1)).toEqual([`shutdown: cannot ask the guest to restart: shutdown IC version ${version} has no such request`]);
      m.runFor(1e8);
      expect(guest.lines.length).toBe(2);
      expect(guest.shutdowns).toEqual([]);
    }
  });

  it(`hibernate: ${has('3.2') ? 'refused by a guest without ACPI S4, done by one with it' : 'not sent, version 3.2 is needed'}`, () => {
    const plain = start(release);
    const r = ask(plain.m, plain.sd, 'hibernate', false);
    if (!has('3.2')) {
      expect(r).toEqual({ outcome: 'unsupported', version: v(version) });
      expect(plain.guest.lines.length).toBe(2);
      return;
    }
    expect(r).toEqual({ outcome: 'refused', status: HV_E_FAIL });
    expect(plain.guest.lines.slice(2)).toEqual(['info: hv_utils: Hibernation request received']);
    expect(plain.guest.shutdowns).toEqual([]);
    expect(plain.hostLog.at(-1)).toBe('shutdown: the guest refused the request to hibernate: status 0x80004005');

    const able = start(release, makeShutdownService({ hibernationSupported: true }));
    expect(ask(able.m, able.sd, 'hibernate', false)).toEqual({ outcome: 'accepted' });
    expect(able.guest.lines.slice(2)).toEqual(['info: hv_utils: Hibernation request received', 'info: hv_utils: Sent hibernation uevent']);
    expect(able.guest.shutdowns).toEqual(['hibernate']);
  });

  it('one request at a time: a second one while the first waits is in progress', () => {
    const { m, sd } = start(release);
    const first = sd.request('shutdown', false);
    const second = sd.request('shutdown', true);
    expect(second.result).toEqual({ outcome: 'in-progress' });
    m.waitUntil(() => first.result !== undefined, 1e9);
    expect(first.result).toEqual({ outcome: 'accepted' });
    expect(sd.requests.map((r) => r.result?.outcome)).toEqual(['not-ready', 'accepted', 'in-progress']);
  });
});

describe('shutdown: a guest that does not answer, and an answer that is none', () => {
  it('no answer within 35 s: the request settles timeout and the next one is sent', () => {
    const deaf = deafService(shutdownService);
    const { m, sd, hostLog, guest } = start('ws2022', deaf.service);
    deaf.state.deaf = true;
    const r = sd.request('restart', false);
    m.runFor(35e9 - 1);
    expect(r.result).toBeUndefined();
    m.runFor(1e6);
    expect(r.result).toEqual({ outcome: 'timeout' });
    expect(hostLog.slice(-2)).toEqual(['shutdown: asking the guest to restart', 'shutdown: the request to restart: no answer within 35 s']);
    // The guest hears again: the old restart is answered (too late for the host) and carried out;
    // a new request is not refused as in progress.
    const next = sd.request('shutdown', false);
    // Its callback reads one packet per interrupt (hv_util.c shutdown_onchannelcallback), and
    // the host signals no ring that was not empty: run it once per waiting packet.
    deaf.hear();
    deaf.hear();
    m.waitUntil(() => next.result !== undefined, 1e9);
    expect(next.result).toEqual({ outcome: 'accepted' });
    expect(sd.violations.items).toEqual(['an answer with transaction id 1 to a request the host gave up on']);
    expect(guest.shutdowns).toEqual(['reboot', 'poweroff']);
  });

  it("an answer with the request's id and the wrong type settles bad-answer", () => {
    const { m, sd } = start('ws2022');
    const read = sd.onGuestPayload.bind(sd);
    sd.onGuestPayload = (p) => {
      const b = p.slice();
      b[12] = 1; // ICMSGTYPE_HEARTBEAT, not ICMSGTYPE_SHUTDOWN (3)
      read(b);
    };
    expect(ask(m, sd, 'shutdown', false)).toEqual({ outcome: 'bad-answer', reason: 'answer of type 1 to a request of type 3' });
  });
});

describe('shutdown: an older guest on a new host', () => {
  it('a guest that knows only 3.0 and 1.0 (Linux before 5.7) negotiates 3.0; the host then sends no restart', () => {
    const old: UtilService = { name: 'shutdown', classId: DeviceClass.SHUTDOWN, attach: (u) => new ShutdownService(u, { framework: [v('3.0'), v('1.0')], message: [v('3.0'), v('1.0')] }, false) };
    const { m, sd, guest } = start('ws2025', old);
    expect(sd.negotiated?.message).toBe(v('3.0'));
    expect(guest.lines).toContain('info: hv_utils: Shutdown IC version 3.0');
    expect(ask(m, sd, 'restart', false)).toEqual({ outcome: 'unsupported', version: v('3.0') });
  });
});

describe('shutdown request body (shutdown_msg_data)', () => {
  it('reason code, timeout, flags and the reason text, byte for byte', () => {
    const b = encodeShutdownMessage('restart', true, 'Hi');
    expect(b.length).toBe(2060);
    expect([...b.subarray(0, 18)]).toEqual([0x00, 0x00, 0x00, 0x80, 0, 0, 0, 0, 0x03, 0, 0, 0, 0x48, 0, 0x69, 0, 0, 0]);
    expect(b.subarray(18).every((x) => x === 0)).toBe(true);
    const flags = (kind: 'shutdown' | 'restart' | 'hibernate', force: boolean) => new DataView(encodeShutdownMessage(kind, force).buffer).getUint32(8, true);
    expect([flags('shutdown', false), flags('shutdown', true), flags('restart', false), flags('restart', true), flags('hibernate', false), flags('hibernate', true)]).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('a long reason is cut to 1023 UTF-16 units and a NUL, never inside a surrogate pair', () => {
    const b = encodeShutdownMessage('shutdown', false, 'x'.repeat(1022) + '😀' + 'y'.repeat(10));
    const dv = new DataView(b.buffer);
    expect(dv.getUint16(12 + 2 * 1021, true)).toBe(0x78);
    expect(dv.getUint16(12 + 2 * 1022, true)).toBe(0); // the pair did not fit: dropped whole
    expect(dv.getUint16(12 + 2 * 1023, true)).toBe(0);
  });
});

describe('shutdown guest service: packet by packet', () => {
  /** `service` bound by hv_utils, with `payloads` queued on its channel. */
  function fakeUtil(payloads: Uint8Array[], service: UtilService = shutdownService) {
    const h = utilHarness(service);
    h.push(...payloads);
    return h;
  }

  /** A shutdown request as vmbus.md §9.1/§9.5 lays it out (28 + 2060 bytes, padded to 8). */
  function request(flags: number, type = 3): Uint8Array {
    const b = new Uint8Array(2088);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, 1, true);
    dv.setUint32(4, 2080, true);
    dv.setUint16(12, type, true);
    dv.setUint16(18, 2060, true);
    b[25] = 3;
    dv.setUint32(28 + 8, flags >>> 0, true);
    return b;
  }
  const status = (b: Uint8Array) => new DataView(b.buffer).getUint32(20, true);

  it('reads one packet per interrupt and answers it before acting', () => {
    const f = fakeUtil([request(0), request(2)]);
    const s = f.instance;
    s.onChannelCallback();
    expect(f.sent.length).toBe(1);
    expect(f.left()).toBe(1);
    s.onChannelCallback();
    expect(f.sent.map((x) => [status(x.bytes), x.bytes[25], x.bytes.length, x.id])).toEqual([
      [0, 5, 2088, 1n],
      [0, 5, 2088, 2n],
    ]);
    expect(f.shutdowns).toEqual(['poweroff', 'reboot']);
  });

  it('Linux\'s table of flags: 0-3 accepted, 4-5 by hibernation support, anything else HV_E_FAIL', () => {
    for (const [hibernate, expected] of [
      [false, [0, 0, 0, 0, HV_E_FAIL, HV_E_FAIL, HV_E_FAIL, HV_E_FAIL, HV_E_FAIL]],
      [true, [0, 0, 0, 0, 0, 0, HV_E_FAIL, HV_E_FAIL, HV_E_FAIL]],
    ] as const) {
      const flags = [0, 1, 2, 3, 4, 5, 6, 8, 0xffffffff];
      const f = fakeUtil(
        flags.map((x) => request(x)),
        makeShutdownService({ hibernationSupported: hibernate }),
      );
      const s = f.instance;
      for (let i = 0; i < flags.length; i++) s.onChannelCallback();
      expect(f.sent.map((x) => status(x.bytes))).toEqual(expected);
      expect(f.shutdowns).toEqual(['poweroff', 'poweroff', 'reboot', 'reboot', ...(hibernate ? ['hibernate', 'hibernate'] : [])]);
      expect(f.lines.filter((l) => l.includes('Invalid request'))).toEqual(Array(3).fill('info: hv_utils: Shutdown request received - Invalid request'));
    }
  });

  it('short packets are logged and dropped unanswered; another message type is answered HV_E_FAIL', () => {
    const f = fakeUtil([new Uint8Array(20), request(0).subarray(0, 2080), request(0, 1)]);
    const s = f.instance;
    for (let i = 0; i < 3; i++) s.onChannelCallback();
    expect(f.lines).toEqual(['err: hv_utils: Shutdown request received. Packet length too small: 20', 'err: hv_utils: Invalid shutdown msg data. Packet length too small: 2080', 'err: hv_utils: Shutdown request received. Invalid msg type: 1']);
    expect(f.sent.map((x) => status(x.bytes))).toEqual([HV_E_FAIL]);
    expect(f.shutdowns).toEqual([]);
  });

  it('never throws on arbitrary packets; answers keep their length and acts only on S_OK', () => {
    fuzz(
      'shutdown.guest-driver',
      fc.property(fc.array(fc.oneof(fc.uint8Array({ maxLength: 2200 }), fc.integer({ min: 0, max: 0xffffffff }).map((x) => request(x))), { maxLength: 5 }), fc.boolean(), (payloads, hibernate) => {
        const f = fakeUtil(payloads, makeShutdownService({ hibernationSupported: hibernate }));
        const s = f.instance;
        for (let i = 0; i <= payloads.length; i++) s.onChannelCallback();
        for (const x of f.sent) {
          expect(x.bytes.length).toBe(payloads[Number(x.id) - 1]!.length);
          expect(x.bytes[25]).toBe(5);
        }
        expect(f.shutdowns.length).toBeLessThanOrEqual(f.sent.filter((x) => status(x.bytes) === 0).length);
      }),
      RUNS,
    );
  });
});
