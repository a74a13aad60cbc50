// The VSS (backup) IC end to end over real VMBus on every release: what each release negotiates
// with Linux 6.1 (hv_snapshot.c offers 5.0 only and refuses hosts below VMBus 3.0), the hot-backup
// check, freeze and thaw through the daemon (hv_vss_daemon.c) with user hooks called in order, a
// failed freeze, a guest without its daemon, and a freeze that outlives the kernel's 15-minute
// timeout; the request and answer byte for byte; and both sides' parsers fed arbitrary bytes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestFileError } from '../../src/devices/device.js';
import { hvUtilsModule, type UtilService } from '../../src/devices/ic/guest.js';
import { makeVssService, VssGuest, type VssHooks } from '../../src/devices/vss/guest.js';
import { attachVss, VSS_FREEZE_HOST_TIMEOUT_NS, VSS_HOST_VERSIONS, type VssOptions, type VssResult } from '../../src/devices/vss/host.js';
import { encodeVssMessage, parseVssMessage } from '../../src/devices/vss/wire.js';
import { WireError } from '../../src/tlfs/struct.js';
import { RELEASE_IDS, type ReleaseId } from '../../src/hypervisor/release.js';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';
import { Machine } from '../../src/vm/machine.js';
import { RUNS } from '../vmbus/fuzz-runs.js';
import { deafService, hostContext, HV_E_FAIL, recordingServices, utilHarness, v } from './services.js';
import { fuzz, itFuzzEachRelease } from '../fuzz/fuzz.js';

const INSTANCE = '4f1a0e3c-9b7d-4e2a-8c61-2d5b7f90a1c4';
const S = 1e9;

/**
 * A machine with the VSS IC offered, booted, and hv_utils registered with the VSS service on the
 * kernel's own services (its clock and delayed work), what the service prints also collected.
 */
function start(release: ReleaseId, opts: { hooks?: VssHooks; daemon?: boolean; vss?: VssOptions; service?: UtilService; vps?: number } = {}) {
  const m = new Machine({ release, vps: opts.vps ?? 2, devices: [], kernel: { vmbus: true, modules: [] } });
  const hostLog: string[] = [];
  const vss = attachVss(hostContext(m, hostLog), INSTANCE, opts.vss);
  const early = vss.hotBackupCheck();
  m.boot();
  const guest = recordingServices(m.kernel.services);
  const service = opts.service ?? makeVssService({ hooks: opts.hooks, daemon: opts.daemon });
  hvUtilsModule([service]).init(guest.services, (d) => m.kernel.vmbus!.registerDriver(d));
  m.runFor(1e6);
  const instance = (service as { instances?: readonly VssGuest[] }).instances?.[0];
  return { m, vss, hostLog, guest, early, instance };
}

/** Sends a request and runs until it settles (or `limit` of virtual time has passed). */
function settle(m: Machine, r: { result: VssResult | undefined }, limit = 1e9): VssResult | undefined {
  m.waitUntil(() => r.result !== undefined, limit);
  return r.result;
}

/** The kernel log once hv_utils and the daemon are up; the daemon's own lines go to the journal. */
const BASE_LINES = ['info: hv_utils: Registering HyperV Utility Driver', 'info: hv_utils: VSS: userspace daemon ver. 129 connected', 'info: hv_utils: VSS IC version 5.0'];
const BASE_JOURNAL = ['info: Hyper-V VSS: VSS: kernel module version: 129'];

/** Records the hooks' calls; each answers with what `answers` says (true by default). */
function recordingHooks(answers: { freeze?: () => ReturnType<NonNullable<VssHooks['freeze']>>; thaw?: () => ReturnType<NonNullable<VssHooks['thaw']>> } = {}) {
  const calls: string[] = [];
  const hooks: VssHooks = {
    freeze: () => (calls.push('freeze'), answers.freeze ? answers.freeze() : true),
    thaw: () => (calls.push('thaw'), answers.thaw ? answers.thaw() : true),
  };
  return { calls, hooks };
}

describe.each(RELEASE_IDS)('VSS on %s', (release) => {
  if (release === 'ws2012') {
    it('Linux refuses VSS below VMBus 3.0: its warning, no channel opened, the host never ready', async () => {
      const { m, vss, guest, early, hostLog } = start(release);
      m.runFor(1e8);
      expect(guest.lines).toEqual(['info: hv_utils: Registering HyperV Utility Driver', "warn: hv_utils: Integration service 'Backup (volume snapshot)' not supported on this host version."]);
      expect(guest.journal).toEqual([]);
      expect(vss.phase).toBe('offered');
      expect(await early.done).toEqual({ outcome: 'not-ready' });
      expect(settle(m, vss.freeze())).toEqual({ outcome: 'not-ready' });
      expect(hostLog).toEqual([]);
    });
    return;
  }

  it('negotiates VSS 5.0 after the daemon registered, and is not ready before', async () => {
    const { vss, hostLog, guest, early, instance } = start(release);
    expect(await early.done).toEqual({ outcome: 'not-ready' });
    expect(vss.phase).toBe('ready');
    expect(vss.negotiated).toEqual({ framework: v('3.0'), message: v('5.0') });
    expect(guest.lines).toEqual(BASE_LINES);
    expect(guest.journal).toEqual(BASE_JOURNAL);
    expect(hostLog).toEqual(['vss: IC version 5.0 (framework 3.0)']);
    expect(instance!.daemonVersion).toBe(129);
  });

  it('hot-backup check: the daemon logs it, the host gets S_OK with its own flags back (the 6.1 overlay quirk)', () => {
    const { m, vss, hostLog, guest } = start(release);
    expect(settle(m, vss.hotBackupCheck())).toEqual({ outcome: 'succeeded', flags: 0 });
    expect(guest.lines.slice(BASE_LINES.length)).toEqual([]);
    expect(guest.journal.slice(BASE_JOURNAL.length)).toEqual(['info: Hyper-V VSS: VSS: op=CHECK HOT BACKUP']);
    expect(hostLog.slice(1)).toEqual(['vss: HOT_BACKUP requested', 'vss: HOT_BACKUP succeeded']);
  });

  it('freeze then thaw: the hooks run in that order, the daemon logs each, the host follows', () => {
    const { calls, hooks } = recordingHooks();
    const { m, vss, hostLog, guest, instance } = start(release, { hooks });
    expect(settle(m, vss.freeze())).toEqual({ outcome: 'succeeded', flags: 0 });
    expect(calls).toEqual(['freeze']);
    expect(instance!.daemon.frozen).toBe(true);
    expect(vss.guestFrozen).toBe(true);
    expect(settle(m, vss.thaw())).toEqual({ outcome: 'succeeded', flags: 0 });
    expect(calls).toEqual(['freeze', 'thaw']);
    expect(instance!.daemon.frozen).toBe(false);
    expect(vss.guestFrozen).toBe(false);
    expect(guest.lines.slice(BASE_LINES.length)).toEqual([]);
    expect(guest.journal.slice(BASE_JOURNAL.length)).toEqual(['info: Hyper-V VSS: VSS: op=FREEZE: succeeded', 'info: Hyper-V VSS: VSS: op=THAW: succeeded']);
    expect(hostLog.slice(1)).toEqual(['vss: FREEZE requested', 'vss: FREEZE succeeded', 'vss: THAW requested', 'vss: THAW succeeded']);
  });

  it('a freeze that fails: the daemon thaws again, logs why, and the host gets HV_E_FAIL', () => {
    const { calls, hooks } = recordingHooks({ freeze: () => false });
    const { m, vss, guest, instance } = start(release, { hooks });
    expect(settle(m, vss.freeze())).toEqual({ outcome: 'failed', status: HV_E_FAIL });
    expect(calls).toEqual(['freeze', 'thaw']);
    expect(instance!.daemon.frozen).toBe(false);
    expect(guest.lines.slice(BASE_LINES.length)).toEqual([]);
    expect(guest.journal.slice(BASE_JOURNAL.length)).toEqual([
      'err: Hyper-V VSS: FREEZE of / failed; error:5 Input/output error',
      'info: Hyper-V VSS: VSS: op=FREEZE: failed',
      'err: Hyper-V VSS: op=5 failed!',
      'err: Hyper-V VSS: report it with these files:',
      'err: Hyper-V VSS: /etc/fstab and /proc/mounts',
    ]);
    expect(vss.guestFrozen).toBe(false);
  });

  it('a freeze hook that throws fails with its errno (a GuestFileError), any other throw is EIO', () => {
    const { m, vss, guest } = start(release, {
      hooks: {
        freeze: () => {
          throw new GuestFileError('EACCES', '/', 'read-only');
        },
      },
    });
    expect(settle(m, vss.freeze())).toEqual({ outcome: 'failed', status: HV_E_FAIL });
    expect(guest.journal).toContain('err: Hyper-V VSS: FREEZE of / failed; error:13 Permission denied');
  });

  it('without the daemon: freeze, thaw and the hot-backup check fail at once, other operations succeed', () => {
    const { m, vss, guest, instance } = start(release, { daemon: false });
    expect(guest.lines).toEqual(['info: hv_utils: Registering HyperV Utility Driver', 'info: hv_utils: VSS IC version 5.0']);
    expect(guest.journal).toEqual([]);
    const t0 = m.nowNs;
    expect(settle(m, vss.freeze())).toEqual({ outcome: 'failed', status: HV_E_FAIL });
    expect(settle(m, vss.thaw())).toEqual({ outcome: 'failed', status: HV_E_FAIL });
    expect(settle(m, vss.hotBackupCheck())).toEqual({ outcome: 'failed', status: HV_E_FAIL });
    expect(m.nowNs - t0).toBeLessThan(1e8);
    // GET_DM_INFO (3) is answered 0 with dm_info.flags 0; BU_COMPLETE (4) and an unknown 200 with 0.
    expect(settle(m, vss.request(3, 0x1234))).toEqual({ outcome: 'succeeded', flags: 0 });
    expect(settle(m, vss.request(4, 7))).toEqual({ outcome: 'succeeded', flags: 7 });
    expect(settle(m, vss.request(200))).toEqual({ outcome: 'succeeded', flags: 0 });
    // Starting the daemon later makes the next freeze work.
    instance!.daemon.start();
    m.runFor(1e6);
    expect(settle(m, vss.freeze())).toEqual({ outcome: 'succeeded', flags: 0 });
  });

  it('one request at a time: a second one while the first waits is in progress', () => {
    const { m, vss } = start(release);
    const first = vss.freeze();
    expect(vss.thaw().result).toEqual({ outcome: 'in-progress' });
    expect(settle(m, first)).toEqual({ outcome: 'succeeded', flags: 0 });
    expect(vss.requests.map((r) => r.result?.outcome)).toEqual(['not-ready', 'succeeded', 'in-progress']);
  });
});

describe('VSS: a freeze that outlives the timeout', () => {
  it('the kernel answers HV_E_FAIL after 15 min; the late answer is refused, the daemon reopens, thaws and registers again', async () => {
    let release!: (ok: boolean) => void;
    let freezes = 0;
    // The first freeze takes as long as the test says; later ones return at once.
    const { calls, hooks } = recordingHooks({ freeze: () => (freezes++ === 0 ? new Promise<boolean>((r) => (release = r)) : true) });
    // One CPU: fifteen minutes of ticks go twice as fast.
    const { m, vss, guest, hostLog, instance } = start('ws2022', { hooks, vps: 1 });
    const t0 = m.nowNs;
    const req = vss.freeze();
    expect(settle(m, req, 899 * S)).toBeUndefined();
    expect(settle(m, req, 2 * S)).toEqual({ outcome: 'failed', status: HV_E_FAIL });
    expect(req.settledNs! - t0).toBeGreaterThanOrEqual(900 * S);
    expect(req.settledNs! - t0).toBeLessThan(901 * S);
    expect(guest.lines.slice(BASE_LINES.length)).toEqual(['warn: hv_utils: VSS: timeout waiting for daemon to reply']);
    expect(guest.journal.slice(BASE_JOURNAL.length)).toEqual([]);
    expect(hostLog.at(-1)).toBe('vss: FREEZE failed: status 0x80004005');
    // The freeze finishes now: the file system is frozen until the daemon notices its answer came too late.
    release(true);
    await new Promise((r) => setTimeout(r, 0));
    expect(calls).toEqual(['freeze', 'thaw']);
    expect(instance!.daemon.frozen).toBe(false);
    expect(guest.notes).toContain('hv_utils: VSS: Transaction not active: the daemon answered too late');
    expect(guest.lines.slice(BASE_LINES.length + 1)).toEqual(['info: hv_utils: VSS: userspace daemon ver. 129 connected']);
    expect(guest.journal.slice(BASE_JOURNAL.length)).toEqual([
      'info: Hyper-V VSS: VSS: op=FREEZE: succeeded',
      'err: Hyper-V VSS: write failed; error: 22 Invalid argument',
      'info: Hyper-V VSS: VSS: kernel module version: 129',
    ]);
    // Nothing more reaches the host, and the next backup works.
    m.runFor(1e8);
    expect(vss.violations.total).toBe(0);
    expect(settle(m, vss.freeze())).toEqual({ outcome: 'succeeded', flags: 0 });
    expect(settle(m, vss.thaw())).toEqual({ outcome: 'succeeded', flags: 0 });
    expect(calls).toEqual(['freeze', 'thaw', 'freeze', 'thaw']);
  });

  it("a hook that never returns: HV_E_FAIL after 15 min; the stuck daemon then misses a THAW (30 s) and the device is busy (-14)", () => {
    const { calls, hooks } = recordingHooks({ freeze: () => 'hang' });
    const { m, vss, guest, instance } = start('ws2025', { hooks, vps: 1 });
    const freeze = vss.freeze();
    expect(settle(m, freeze, 901 * S)).toEqual({ outcome: 'failed', status: HV_E_FAIL });
    const thaw = vss.thaw();
    expect(settle(m, thaw, 29 * S)).toBeUndefined();
    expect(settle(m, thaw, 2 * S)).toEqual({ outcome: 'failed', status: HV_E_FAIL });
    // The THAW is still unread: the next request cannot be handed over at all.
    const t = m.nowNs;
    expect(settle(m, vss.hotBackupCheck())).toEqual({ outcome: 'failed', status: HV_E_FAIL });
    expect(m.nowNs - t).toBeLessThan(1e8);
    expect(guest.lines.slice(BASE_LINES.length)).toEqual([
      'warn: hv_utils: VSS: timeout waiting for daemon to reply',
      'warn: hv_utils: VSS: timeout waiting for daemon to reply',
      'warn: hv_utils: VSS: failed to communicate to the daemon: -14',
    ]);
    expect(guest.journal.slice(BASE_JOURNAL.length)).toEqual([]);
    expect(calls).toEqual(['freeze']);
    expect(instance!.daemon.frozen).toBe(false);
    // Killing the daemon resets the kernel; a new one thaws nothing (it froze nothing) and serves again.
    instance!.daemon.kill();
    instance!.daemon.start();
    m.runFor(1e6);
    expect(settle(m, vss.thaw())).toEqual({ outcome: 'succeeded', flags: 0 });
    expect(calls).toEqual(['freeze', 'thaw']);
  });
});

describe("VSS in a VM: hv_utils loaded by the kernel, on the kernel's own services", () => {
  it("a freeze whose hook never returns fails on the kernel's 15-minute timer; the next backup works", () => {
    let freezes = 0;
    const service = makeVssService({ hooks: { freeze: () => (freezes++ === 0 ? 'hang' : true) } });
    const m = new Machine({ release: 'ws2022', vps: 1, devices: [], kernel: { vmbus: true, modules: [hvUtilsModule([service])] } });
    const vss = attachVss(hostContext(m), INSTANCE);
    m.boot();
    m.runFor(1e6);
    expect(vss.phase).toBe('ready');
    // hv_vss_init: max_pkt_size = VSS_MAX_PKT_SIZE (8192), taken by the open.
    expect(m.kernel.vmbus!.channels.find((c) => c.offer.instanceId === INSTANCE)!.maxPacketSize).toBe(8192);
    const t0 = m.kernel.services.uptimeNs();
    const req = vss.freeze();
    m.runFor(899 * S);
    expect(req.result).toBeUndefined();
    m.waitUntil(() => req.result !== undefined, 2 * S);
    expect(req.result).toEqual({ outcome: 'failed', status: HV_E_FAIL });
    const lines = m.kernel.log.records.filter((r) => /^(hv_utils|Hyper-V VSS): /.test(r.text));
    expect(lines.map((r) => `${r.level}: ${r.text}`)).toEqual([...BASE_LINES, 'warn: hv_utils: VSS: timeout waiting for daemon to reply']);
    const journal = m.kernel.journal.records.filter((r) => /^(hv_utils|Hyper-V VSS): /.test(r.text));
    expect(journal.map((r) => `${r.level}: ${r.text}`)).toEqual(BASE_JOURNAL);
    // Printed from the kernel's delayed work, at the first tick after the 900 s were up.
    const warned = lines.at(-1)!.ns - t0;
    expect(warned).toBeGreaterThanOrEqual(900 * S);
    expect(warned).toBeLessThanOrEqual(900 * S + 4e6);
    // The stuck daemon is killed and started again (it froze nothing): the next backup succeeds.
    service.instances[0]!.daemon.kill();
    service.instances[0]!.daemon.start();
    m.runFor(1e6);
    expect(settle(m, vss.freeze())).toEqual({ outcome: 'succeeded', flags: 0 });
    expect(settle(m, vss.thaw())).toEqual({ outcome: 'succeeded', flags: 0 });
  });
});

describe('VSS: answers that are none, and a guest that does not answer', () => {
  const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  const hex = (s: string) => s.replace(/\s+/g, '');

  it("an answer with the request's transaction id and the wrong type: the check settles as a bad answer, and the FREEZE after it is sent", () => {
    const { m, vss, hostLog } = start('ws2022');
    const toGuest: string[] = [];
    const send = vss.hostChannel.send.bind(vss.hostChannel);
    vss.hostChannel.send = (parts) => (toGuest.push(parts.map(toHex).join('')), send(parts));
    // The guest's first answer comes back as ICMSGTYPE_KVPEXCHANGE (2) instead of ICMSGTYPE_VSS (5).
    const read = vss.onGuestPayload.bind(vss);
    let answers = 0;
    vss.onGuestPayload = (p) => {
      const b = p.slice();
      if (answers++ === 0) b[12] = 2;
      read(b);
    };
    expect(settle(m, vss.hotBackupCheck())).toEqual({ outcome: 'bad-answer', reason: 'answer of type 2 to a request of type 5' });
    const freeze = vss.freeze();
    expect(freeze.sentNs).toBeDefined();
    expect(settle(m, freeze)).toEqual({ outcome: 'succeeded', flags: 0 });
    // HOT_BACKUP went out as transaction 1, FREEZE as transaction 2 (descriptor, pipe header, icmsg_hdr, hv_vss_msg).
    expect(toGuest).toEqual([
      hex('0600 0200 0700 0000 0000000000000000  01000000 20000000  0300 0000 0500 0500 0000 0c00 00000000 01 03 0000  02 00000000000000 00000000'),
      hex('0600 0200 0700 0000 0000000000000000  01000000 20000000  0300 0000 0500 0500 0000 0c00 00000000 02 03 0000  05 00000000000000 00000000'),
    ]);
    expect(hostLog.slice(1)).toEqual([
      'vss: HOT_BACKUP requested',
      'vss: protocol violation: answer of type 2 to a request of type 5',
      "vss: HOT_BACKUP: the guest's answer is no valid answer: answer of type 2 to a request of type 5",
      'vss: FREEZE requested',
      'vss: FREEZE succeeded',
    ]);
  });

  it('a guest that never answers: the request settles timeout after 35 s, and the next one is sent; a FREEZE would wait 15 min 5 s', () => {
    const deaf = deafService(makeVssService());
    const { m, vss, hostLog } = start('ws2022', { service: deaf.service });
    expect(vss.phase).toBe('ready');
    deaf.state.deaf = true;
    const check = vss.hotBackupCheck();
    expect(settle(m, check, 34.9 * S)).toBeUndefined();
    expect(settle(m, check, 0.2 * S)).toEqual({ outcome: 'timeout' });
    expect(check.settledNs! - check.sentNs!).toBe(35 * S);
    expect(hostLog.slice(1)).toEqual(['vss: HOT_BACKUP requested', 'vss: HOT_BACKUP: no answer within 35 s']);
    // The slot is free again; the guest hears again: it answers the old check first (too late: a
    // violation), then the THAW.
    const thaw = vss.thaw();
    deaf.hear();
    expect(settle(m, thaw)).toEqual({ outcome: 'succeeded', flags: 0 });
    expect(vss.violations.items).toEqual(['an answer with transaction id 1 to a request the host gave up on']);
    expect([vss.timeoutNs, vss.freezeTimeoutNs, VSS_FREEZE_HOST_TIMEOUT_NS]).toEqual([35 * S, 905 * S, 905 * S]);
  });

  it('dispose (the VM stopped): the request in flight settles closed, the IC is offered again, new requests are not-ready', () => {
    const deaf = deafService(makeVssService());
    const { m, vss } = start('ws2022', { service: deaf.service });
    deaf.state.deaf = true;
    const freeze = vss.freeze();
    m.runFor(1e9);
    vss.dispose();
    expect(freeze.result).toEqual({ outcome: 'closed' });
    expect(vss.phase).toBe('offered');
    expect(vss.thaw().result).toEqual({ outcome: 'not-ready' });
    m.runFor(40 * S);
    expect(vss.requests.map((r) => r.result?.outcome)).toEqual(['not-ready', 'closed', 'not-ready']);
  });
});

describe('VSS: versions', () => {
  it('every release lists 4.0, and 5.0 from WS2012 R2 on, oldest first', () => {
    for (const r of RELEASE_IDS) expect(VSS_HOST_VERSIONS[r]).toEqual(r === 'ws2012' ? [v('4.0')] : [v('4.0'), v('5.0')]);
  });

  it('a host offering only 4.0 finds no common version with Linux (5.0 only)', () => {
    const { vss, hostLog, guest } = start('ws2022', { vss: { offer: { framework: [v('3.0')], message: [v('4.0')] } } });
    expect(vss.phase).toBe('failed');
    expect(hostLog).toEqual(['vss: version negotiation failed: the guest supports none of the offered versions (it answered 0 framework and 0 message versions)']);
    expect(guest.lines).not.toContain('info: hv_utils: VSS IC version 5.0');
  });

  it('with 4.0 negotiated (an older guest) the host does not send FREEZE or THAW, but the check', () => {
    const old: UtilService = { name: 'vss', classId: DeviceClass.VSS, attach: (u) => new VssGuest(u, { framework: [v('3.0')], message: [v('4.0')] }, {}) };
    const { m, vss } = start('ws2022', { service: old });
    expect(vss.negotiated?.message).toBe(v('4.0'));
    expect(settle(m, vss.freeze())).toEqual({ outcome: 'unsupported', version: v('4.0') });
    expect(settle(m, vss.thaw())).toEqual({ outcome: 'unsupported', version: v('4.0') });
    expect(settle(m, vss.hotBackupCheck())).toEqual({ outcome: 'succeeded', flags: 0 });
  });
});

describe('VSS on the wire', () => {
  const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  const hex = (s: string) => s.replace(/\s+/g, '');

  it('hv_vss_msg: operation at 0, reserved 1..7, flags at 8', () => {
    expect(toHex(encodeVssMessage(5))).toBe(hex('05 00000000000000 00000000'));
    expect(toHex(encodeVssMessage(2, 0x05))).toBe(hex('02 00000000000000 05000000'));
    expect(parseVssMessage(Uint8Array.from([6, 1, 2, 3, 4, 5, 6, 7, 0x78, 0x56, 0x34, 0x12]))).toEqual({ operation: 6, flags: 0x12345678 });
  });

  it('a FREEZE and its answer, byte for byte (the guest answers its own receive buffer: status 0, icflags 5, the rest as sent)', () => {
    const { m, vss } = start('ws2022');
    const wire: [string, string][] = [];
    const send = vss.hostChannel.send.bind(vss.hostChannel);
    vss.hostChannel.send = (parts) => (wire.push(['to-guest', parts.map(toHex).join('')]), send(parts));
    const read = vss.onGuestPayload.bind(vss);
    vss.onGuestPayload = (p) => (wire.push(['to-host', toHex(p)]), read(p));
    settle(m, vss.freeze());
    // NEGOTIATE used transaction id 0: FREEZE is the second request (id 1). Pipe header DATA and
    // msgsize 20 + 12; framework 3.0, type 5, message 5.0, icmsgsize 12, flags TRANSACTION | REQUEST.
    expect(wire).toEqual([
      ['to-guest', hex('0600 0200 0700 0000 0000000000000000  01000000 20000000  0300 0000 0500 0500 0000 0c00 00000000 01 03 0000  05 00000000000000 00000000')],
      ['to-host', hex('01000000 20000000  0300 0000 0500 0500 0000 0c00 00000000 01 05 0000  05 00000000000000 00000000')],
    ]);
  });
});

describe('VSS guest service: packet by packet', () => {
  /** The VSS service bound by hv_utils on a stand-in channel; `fire` lets its longest timeout pass. */
  function fakeUtil(payloads: Uint8Array[], opts: { daemon?: boolean; hooks?: VssHooks } = {}) {
    // Packets arrive once the service is attached (its daemon registers during attach).
    const h = utilHarness<VssGuest>(makeVssService({ daemon: opts.daemon, hooks: opts.hooks }));
    h.push(...payloads);
    const fire = () => {
      h.advance(15 * 60 * S);
      h.runTimers();
    };
    return { ...h, fire };
  }

  /** A VSS request as vmbus.md §9.1/§9.8 lays it out (28 + 12 bytes, padded to 8: 40). */
  function request(op: number, opts: { type?: number; flags?: number; length?: number } = {}): Uint8Array {
    const b = new Uint8Array(opts.length ?? 40);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, 1, true);
    dv.setUint32(4, Math.max(0, b.length - 8), true);
    dv.setUint16(8, 3, true);
    dv.setUint16(12, opts.type ?? 5, true);
    dv.setUint16(14, 5, true);
    dv.setUint16(18, 12, true);
    b[25] = 3;
    if (b.length > 28) b[28] = op;
    if (b.length >= 40) dv.setUint32(36, opts.flags ?? 0, true);
    return b;
  }
  const status = (b: Uint8Array) => new DataView(b.buffer).getUint32(20, true);

  it('short packets and other message types are logged and not answered; a short VSS message too', () => {
    const f = fakeUtil([new Uint8Array(20), request(5, { length: 36 }), request(5, { type: 1 })]);
    for (let i = 0; i < 3; i++) f.instance.onChannelCallback();
    expect(f.journal.slice(1)).toEqual([]);
    expect(f.lines.slice(1)).toEqual(['err: hv_utils: VSS request received. Packet length too small: 20', 'err: hv_utils: Invalid VSS msg. Packet length too small: 36', 'err: hv_utils: VSS request received. Invalid msg type: 1']);
    expect(f.sent).toEqual([]);
  });

  it('while a transaction is open nothing is read; its end reads the next packet', () => {
    let finish!: (ok: boolean) => void;
    const f = fakeUtil([request(5), request(6)], { hooks: { freeze: () => new Promise<boolean>((r) => (finish = r)) } });
    f.instance.onChannelCallback();
    f.instance.onChannelCallback();
    expect(f.left()).toBe(1);
    expect(f.sent).toEqual([]);
    finish(true);
    return new Promise((r) => setTimeout(r, 0)).then(() => {
      // FREEZE answered 0, then the THAW read and answered at once.
      expect(f.sent.map((x) => [x.id, status(x.bytes), x.bytes[25], x.bytes.length])).toEqual([
        [1n, 0, 5, 40],
        [2n, 0, 5, 40],
      ]);
      expect(f.left()).toBe(0);
    });
  });

  it('the timeout answers HV_E_FAIL with the warning; a missing daemon is HV_E_FAIL without one', () => {
    const f = fakeUtil([request(2)], { hooks: { freeze: () => 'hang' } });
    f.instance.daemon.kill();
    f.instance.onChannelCallback();
    expect(f.sent.map((x) => status(x.bytes))).toEqual([HV_E_FAIL]);
    const g = fakeUtil([request(5)], { hooks: { freeze: () => 'hang' } });
    g.instance.onChannelCallback();
    expect(g.sent).toEqual([]);
    g.fire();
    expect(g.sent.map((x) => status(x.bytes))).toEqual([HV_E_FAIL]);
    expect(g.lines.at(-1)).toBe('warn: hv_utils: VSS: timeout waiting for daemon to reply');
  });

  it('the driver removed while frozen: the daemon finds the device gone, thaws, and exits', () => {
    const calls: string[] = [];
    const f = fakeUtil([request(5)], { hooks: { freeze: () => void calls.push('freeze'), thaw: () => void calls.push('thaw') } });
    f.instance.onChannelCallback();
    expect(f.sent.map((x) => status(x.bytes))).toEqual([0]);
    expect(f.instance.daemon.frozen).toBe(true);
    f.instance.deinit();
    expect(calls).toEqual(['freeze', 'thaw']);
    expect(f.instance.daemon.frozen).toBe(false);
    expect(f.instance.daemon.running).toBe(false);
    expect(f.journal.slice(-2)).toEqual(['err: Hyper-V VSS: read failed; error:9 Bad file descriptor', 'err: Hyper-V VSS: open /dev/vmbus/hv_vss failed; error: 2 No such file or directory']);
    expect(f.sent.length).toBe(1);
  });

  it('refuses the device below VMBus 3.0 (hv_vss_init): the probe fails and the channel is not opened', () => {
    expect(() => utilHarness(makeVssService(), { vmbusVersion: v('2.4') })).toThrow(/VMBus 3.0/);
    const ok = utilHarness(makeVssService(), { vmbusVersion: v('3.0') });
    expect(ok.opts()).toMatchObject({ maxPacketSize: 8192 });
  });

  it('never throws on arbitrary packets; every answer keeps its length, flags 5 and the request id', () => {
    fuzz(
      'vss.guest-driver',
      fc.property(
        fc.array(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 0xffffffff })).map(([op, flags]) => request(op, { flags }))), { maxLength: 6 }),
        fc.constantFrom<'ok' | 'fail' | 'hang'>('ok', 'fail', 'hang'),
        fc.boolean(),
        (payloads, hook, daemon) => {
          const answer = hook === 'ok' ? true : hook === 'fail' ? false : ('hang' as const);
          const f = fakeUtil(payloads, { daemon, hooks: { freeze: () => answer, thaw: () => answer } });
          for (let i = 0; i <= payloads.length; i++) {
            f.instance.onChannelCallback();
            f.fire();
          }
          for (const x of f.sent) {
            const p = payloads[Number(x.id) - 1]!;
            expect(x.bytes.length).toBe(p.length);
            expect(x.bytes[25]).toBe(5);
          }
          expect(new Set(f.sent.map((x) => x.id)).size).toBe(f.sent.length);
        },
      ),
      RUNS,
    );
  });
});

describe('VSS host against arbitrary answers', () => {
  it('parseVssMessage throws nothing but WireError', () => {
    fuzz(
      'vss.wire',
      fc.property(fc.uint8Array({ maxLength: 40 }), (b) => {
        try {
          const m = parseVssMessage(b);
          expect(b.length).toBeGreaterThanOrEqual(12);
          expect(m.operation).toBe(b[0]);
        } catch (e) {
          expect(e).toBeInstanceOf(WireError);
        }
      }),
      RUNS,
    );
  });

  itFuzzEachRelease(
    'never throws on what a guest sends, and a request waiting always settles once answered',
    'vss.host',
    (release) =>
      fc.property(fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 4 }), (payloads) => {
        const { m, vss } = start(release);
        const req = vss.freeze();
        for (const p of payloads) vss.onGuestPayload(p);
        m.waitUntil(() => req.result !== undefined, 1e8);
        expect(req.result).toBeDefined();
      }),
    Math.min(RUNS, 10),
  );
});
