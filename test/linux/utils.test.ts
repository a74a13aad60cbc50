// Milestone (c) of issue 17: Linux 6.1's hv_utils probes the integration services hvkit's host
// offers, opens their channels through Linux's own GPADL and open code, negotiates each IC, and
// answers the host: heartbeat sequence numbers, a shutdown request, the time samples.
import { beforeAll, describe, expect, it } from 'vitest';
import { RELEASE_IDS } from '../../src/hypervisor/release.js';
import { LinuxMachine } from '../../src/vm/linux-machine.js';
import type { WasmModule } from '../../src/guest/linux/wasm.js';
import type { HeartbeatHost } from '../../src/devices/heartbeat/host.js';
import type { ShutdownHost } from '../../src/devices/shutdown/host.js';
import { HEARTBEAT_PERIOD_NS } from '../../src/devices/heartbeat/host.js';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';
import { BUILD_TIMEOUT_MS, linuxMissing, linuxModule, linuxSuite } from './linux-module.js';

const texts = (m: LinuxMachine): string[] => m.guest.log.records.map((r) => r.text);

describe.skipIf(linuxMissing !== undefined)(linuxSuite('hv_utils, Linux’s own, against hvkit’s IC back ends'), () => {
  let mod: WasmModule;
  beforeAll(async () => {
    mod = await linuxModule();
  }, BUILD_TIMEOUT_MS);

  it.each(RELEASE_IDS)('%s: probes shutdown, time sync, heartbeat and VSS (from 2012 R2), each channel opened over Linux’s GPADL', (id) => {
    const m = new LinuxMachine(mod, { release: id });
    expect(m.boot()).toBe(0);
    // The host starts each IC's negotiation once its channel is open.
    m.runFor(1e9);
    const t = texts(m);
    expect(t).toContain('hv_vmbus: registering driver hv_utils');
    // hv_snapshot.c's vss_init refuses hosts before VMBus 3.0 (Windows Server 2012 R2).
    const ics = id === 'ws2012' ? ['shutdown', 'timesync', 'heartbeat'] : ['shutdown', 'timesync', 'heartbeat', 'vss'];
    if (id === 'ws2012') {
      expect(t).toContain('hv_utils: Integration service \'Backup (volume snapshot)\' not supported on this host version.');
      expect(m.host.device<HeartbeatHost>('vss')!.phase).toBe('offered');
    }
    for (const ic of ics) {
      const host = m.host.device<HeartbeatHost>(ic)!;
      expect(host.phase, ic).toBe('ready');
      const v = host.negotiated!.message;
      const name = { shutdown: 'Shutdown', timesync: 'TimeSync', heartbeat: 'Heartbeat', vss: 'VSS' }[ic];
      expect(t).toContain(`hv_utils: ${name} IC version ${v >>> 16}.${v & 0xffff}`);
    }
    const state = m.vmbus!.server.state();
    const open = state.channels.filter((c) => c.state === 'open').map((c) => c.class);
    const classes = { shutdown: DeviceClass.SHUTDOWN, timesync: DeviceClass.TS, heartbeat: DeviceClass.HEART_BEAT, vss: DeviceClass.VSS } as Record<string, string>;
    expect(open).toEqual(expect.arrayContaining(ics.map((ic) => classes[ic])));
    // One ring GPADL per opened channel, made by vmbus_establish_gpadl.
    expect(state.gpadls).toBe(open.length);
    expect(state.violations).toBe(0);
  });

  it('answers every heartbeat with its sequence number plus one', () => {
    const m = new LinuxMachine(mod, { release: 'ws2022' });
    m.boot();
    m.runFor(5 * HEARTBEAT_PERIOD_NS);
    const hb = m.host.device<HeartbeatHost>('heartbeat')!;
    expect(hb.sent).toBeGreaterThanOrEqual(5);
    expect(hb.answered.slice(0, 5)).toEqual([2n, 3n, 4n, 5n, 6n]);
    expect(hb.state).toBe('ok');
    expect(hb.violations.items).toEqual([]);
  });

  it('accepts the host’s shutdown request and powers off (orderly_poweroff)', async () => {
    const m = new LinuxMachine(mod, { release: 'ws2022' });
    m.boot();
    m.runFor(1e9);
    const sd = m.host.device<ShutdownHost>('shutdown')!;
    const req = sd.request('shutdown', false, 'test');
    m.runFor(1e9);
    expect(req.result).toEqual({ outcome: 'accepted' });
    expect(texts(m)).toContain('hv_utils: Shutdown request received - graceful shutdown initiated');
    expect(m.guest.events.items).toContain('poweroff');
  });

  it('sets its clock from the host’s time sync samples', () => {
    const m = new LinuxMachine(mod, { release: 'ws2022' });
    m.boot();
    m.runFor(1e9);
    const set = m.guest.events.items.filter((e) => e.startsWith('settime '));
    expect(set.length).toBeGreaterThan(0);
    const [sec] = set[0]!.slice('settime '.length).split('.');
    expect(BigInt(sec!)).toBe(m.host.wallClockStartNs / 1_000_000_000n);
  });
});

describe.skipIf(linuxMissing !== undefined)(linuxSuite('Linux’s ring code over the single mapping (the shim’s wrap-aware copy)'), () => {
  it('hundreds of heartbeats: both rings wrap many times and every answer is right', async () => {
    const mod = await linuxModule();
    const m = new LinuxMachine(mod, { release: 'ws2022' });
    m.boot();
    // hv_util.c's rings hold 3 pages of data each way (VMBUS_RING_SIZE(3 * HV_HYP_PAGE_SIZE));
    // a heartbeat packet with its descriptor, IC headers and trailer is over 40 bytes, so 1000
    // of them wrap each ring more than three times.
    const n = 1000;
    m.runFor(n * HEARTBEAT_PERIOD_NS);
    const hb = m.host.device<HeartbeatHost>('heartbeat')!;
    expect(hb.sent).toBeGreaterThanOrEqual(n - 1);
    expect(hb.sent * 40).toBeGreaterThan(3 * 3 * 4096);
    expect(hb.answered.length).toBe(hb.sent);
    expect(hb.answered.every((seq, i) => seq === BigInt(i + 2))).toBe(true);
    expect(hb.violations.items).toEqual([]);
    expect(hb.state).toBe('ok');
  }, BUILD_TIMEOUT_MS);
});
