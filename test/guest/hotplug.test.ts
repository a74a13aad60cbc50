// CPU management (tlfs.md §7.3, vmbus.md §6.5): Linux's spreading of perf channels over CPUs
// (init_vp_index), and CPU offline refused by hv_synic_cleanup while VMBus or a channel needs the
// CPU, allowed once MODIFYCHANNEL moved the channel away — which only 4.1 hosts take, and only
// 5.3 hosts answer — and the CPU coming back.
import { describe, expect, it } from 'vitest';
import { RELEASE_IDS, type ReleaseId } from '../../src/hypervisor/release.js';
import type { TraceEvent } from '../../src/hypervisor/trace.js';
import { VmbusError } from '../../src/vmbus/client/errors.js';
import { ChannelMessageType as T } from '../../src/vmbus/wire/constants.js';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';
import { Machine } from '../../src/vm/machine.js';
import type { DeviceSpec } from '../../src/devices/registry.js';

/** VMBus version each release speaks (vmbus.md §3.1; the table). */
const VERSION: Record<ReleaseId, number> = { ws2012: 2.4, ws2012r2: 3.0, ws2016: 4.0, ws2019: 5.2, ws2022: 5.3, ws2025: 5.3 };

function boot(release: ReleaseId, vps: number, devices?: DeviceSpec[]) {
  const m = new Machine({ release, vps, memory: 64 << 20, ...(devices ? { devices } : {}) });
  const events: TraceEvent[] = [];
  m.partition.events.on((e) => void events.push(e));
  m.boot();
  m.runFor(50_000_000);
  const client = m.kernel.vmbus!;
  /** Channel message types the host posted to the guest, in order. */
  const toGuest = () => events.filter((e) => e.kind === 'message' && e.dir === 'to-guest').map((e) => Number.parseInt((e as { payload: string }).payload.slice(0, 8).match(/../g)!.reverse().join(''), 16));
  return { m, client, events, toGuest };
}

describe('channel interrupts spread as Linux spreads them (init_vp_index)', () => {
  it('perf devices go round-robin over the online CPUs; every other device interrupts CPU0', () => {
    const { client } = boot('ws2022', 4, [{ type: 'kvp' }, { type: 'scsi' }, { type: 'scsi' }, { type: 'network' }, { type: 'heartbeat' }, { type: 'network' }, { type: 'ide' }]);
    const targets = client.channels.map((c) => [c.offer.classId, c.targetCpu]);
    expect(targets).toEqual([
      [DeviceClass.KVP, 0],
      [DeviceClass.SCSI, 0],
      [DeviceClass.SCSI, 1],
      [DeviceClass.NIC, 2],
      [DeviceClass.HEART_BEAT, 0],
      [DeviceClass.NIC, 3],
      // Every CPU had one: the round starts again.
      [DeviceClass.IDE, 0],
    ]);
  });

  it("a perf device's sub-channels avoid the CPUs its other channels use, until there are more channels than CPUs", () => {
    const m = new Machine({ release: 'ws2022', vps: 3, memory: 64 << 20, devices: [] });
    const instanceId = '11111111-2222-4333-8444-555555555555';
    const server = m.vmbus!.server;
    server.offer({ classId: DeviceClass.SCSI, instanceId: '99999999-2222-4333-8444-555555555555' }, {});
    server.offer({ classId: DeviceClass.NIC, instanceId }, {});
    for (const i of [1, 2, 3]) server.offer({ classId: DeviceClass.NIC, instanceId, subChannelIndex: i }, {});
    m.boot();
    m.runFor(50_000_000);
    const nic = m.kernel.vmbus!.channels[1]!;
    // SCSI took CPU0 and the NIC's primary CPU1; sub-channel 1 skips nothing (CPU2 is free), sub-channel
    // 2 finds the round exhausted and restarts at CPU0, sub-channel 3 (index >= 3 CPUs) takes the next.
    expect([nic.targetCpu, ...nic.subchannels.map((s) => s.targetCpu)]).toEqual([1, 2, 0, 1]);
  });

  it('the target CPU goes to the host as a VP index, which need not be the CPU number', () => {
    // APIC ids [1, 0]: VP 1 is Linux's CPU0.
    const m = new Machine({ release: 'ws2022', vps: 2, apicIds: [1, 0], memory: 64 << 20, devices: [{ type: 'scsi' }, { type: 'network' }] });
    m.boot();
    m.runFor(50_000_000);
    const nic = m.kernel.vmbus!.channels[1]!;
    expect(nic.targetCpu).toBe(1);
    expect(m.kernel.cpus[1]!.vpIndex).toBe(0);
    expect(m.vmbus!.server.channels.get(nic.relid)!.targetVp).toBe(0);
  });
});

describe('CPU offline and online (hv_synic_cleanup, MODIFYCHANNEL)', () => {
  it('CPU0 never goes offline while VMBus is connected', () => {
    const { m } = boot('ws2022', 2);
    expect(m.kernel.cpuDown(0)).toEqual({ ok: false, errno: 'EBUSY', reason: 'VMBus is connected through CPU0' });
    expect(m.kernel.cpus[0]!.online).toBe(true);
  });

  for (const release of RELEASE_IDS) {
    const version = VERSION[release];
    it(`${release} (VMBus ${version.toFixed(1)}): offline refused while the NIC interrupts CPU1; ${version >= 4.1 ? 'allowed after MODIFYCHANNEL' : 'MODIFYCHANNEL refused, so it stays refused'}; online again`, () => {
      const { m, client, toGuest } = boot(release, 2);
      const nic = client.channels.find((c) => c.offer.classId === DeviceClass.NIC)!;
      expect(nic.targetCpu).toBe(1);
      const down = m.kernel.cpuDown(1);
      expect(down).toEqual({ ok: false, errno: 'EBUSY', reason: `channel ${nic.relid} interrupts CPU1` });
      expect(m.partition.vps[1]!.synic.simpEnabled).toBe(true);

      const before = toGuest().length;
      if (version < 4.1) {
        expect(() => nic.setTargetCpu(0)).toThrow(VmbusError);
        expect(m.kernel.cpuDown(1).ok).toBe(false);
        return;
      }
      nic.setTargetCpu(0);
      m.runFor(1_000_000);
      // The host moved the channel's interrupts; it answers only from 5.3.
      expect(m.vmbus!.server.channels.get(nic.relid)!.targetVp).toBe(m.kernel.cpus[0]!.vpIndex);
      expect(toGuest().slice(before)).toEqual(version >= 5.3 ? [T.MODIFYCHANNEL_RESPONSE] : []);

      expect(m.kernel.cpuDown(1)).toEqual({ ok: true });
      expect(m.kernel.log.lines().at(-1)).toMatch(/smpboot: CPU 1 is now offline$/);
      const vp1 = m.partition.vps[1]!;
      expect([vp1.synic.simpEnabled, vp1.synic.siefpEnabled, vp1.synic.enabled, vp1.synic.masked(2)]).toEqual([false, false, false, true]);
      expect(vp1.vpAssist & 1n).toBe(0n);
      // An offline CPU is no target.
      expect(() => nic.setTargetCpu(1)).toThrow(/CPU 1 is not online/);

      expect(m.kernel.cpuUp(1)).toEqual({ ok: true });
      expect(m.kernel.log.lines().find((l) => l.includes('Booting Node 0 Processor 1'))).toMatch(/smpboot: Booting Node 0 Processor 1 APIC 0x1$/);
      expect([vp1.synic.simpEnabled, vp1.synic.siefpEnabled, vp1.synic.enabled, vp1.synic.masked(2)]).toEqual([true, true, true, false]);
      expect(vp1.vpAssist & 1n).toBe(1n);
      // Back on CPU1, the channel interrupts it there.
      nic.setTargetCpu(1);
      const irqs = () => [...m.kernel.cpus[1]!.irqs.values()].reduce((a, b) => a + b, 0);
      const n = irqs();
      m.vmbus!.server.channels.get(nic.relid)!.sendInband(new Uint8Array(8));
      m.runFor(1_000_000);
      expect(irqs()).toBeGreaterThan(n);
    });
  }

  it('offline is refused while channel events are still pending on the CPU (4.1 and later)', () => {
    const { m, client } = boot('ws2022', 2);
    const nic = client.channels.find((c) => c.offer.classId === DeviceClass.NIC)!;
    nic.setTargetCpu(0);
    // A flag the CPU cannot take (interrupts off) stays set through hv_synic_event_pending's retries.
    const cpu1 = m.kernel.cpus[1]!;
    cpu1.ops.cpu.interruptsEnabled = false;
    m.partition.vps[1]!.synic.signalFlag(2, nic.relid);
    expect(m.kernel.cpuDown(1)).toEqual({ ok: false, errno: 'EBUSY', reason: 'channel events still pending on CPU1' });
    cpu1.ops.cpu.interruptsEnabled = true;
    expect(m.kernel.cpuDown(1).ok).toBe(true);
  });
});
