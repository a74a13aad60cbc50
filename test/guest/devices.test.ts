// Boot over VMBus with Hyper-V's default device set (issue [3/4]): on every release, architecture
// and page size the guest connects, asks for offers, binds its drivers by class, opens each
// channel with its Linux driver's ring sizes in whole guest pages (GPADL frames in 4 KiB units),
// spreads the perf devices' interrupts, and shows all of it as data.
import { describe, expect, it } from 'vitest';
import { RELEASE_IDS, release as releaseInfo } from '../../src/hypervisor/release.js';
import type { Arch } from '../../src/hypervisor/features.js';
import type { GuestPageSize } from '../../src/memory/pages.js';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';
import { Machine } from '../../src/vm/machine.js';

/** The default set's classes in offer order (src/devices/catalog.ts DEFAULT_DEVICES). */
const DEFAULT_CLASSES = [DeviceClass.DM, DeviceClass.KBD, DeviceClass.SYNTHVID, DeviceClass.MOUSE, DeviceClass.SHUTDOWN, DeviceClass.TS, DeviceClass.HEART_BEAT, DeviceClass.KVP, DeviceClass.VSS, DeviceClass.SCSI, DeviceClass.NIC];

/**
 * Ring bytes per direction: Linux's VMBUS_RING_SIZE(payload) = PAGE_ALIGN(sizeof(struct
 * hv_ring_buffer) + payload), the header being one guest page (reserved2[PAGE_SIZE - 68]), with
 * storvsc 128 KiB, netvsc 128 × 4 KiB, keyboard and HID 36 KiB, balloon 16 KiB payloads, and
 * hyperv_fb's fixed 256 KiB; worked out by hand for each page size.
 */
const RING_KIB: Record<GuestPageSize, Record<string, number>> = {
  4096: { hv_storvsc: 132, hv_netvsc: 516, hyperv_keyboard: 40, hid_hyperv: 40, hyperv_fb: 256, hv_balloon: 20 },
  16384: { hv_storvsc: 144, hv_netvsc: 528, hyperv_keyboard: 64, hid_hyperv: 64, hyperv_fb: 256, hv_balloon: 32 },
  65536: { hv_storvsc: 192, hv_netvsc: 576, hyperv_keyboard: 128, hid_hyperv: 128, hyperv_fb: 256, hv_balloon: 128 },
};

const configs: { release: (typeof RELEASE_IDS)[number]; arch: Arch; pageSize: GuestPageSize }[] = [];
for (const release of RELEASE_IDS) {
  for (const arch of ['x64', 'x86'] as const) configs.push({ release, arch, pageSize: 4096 });
  for (const pageSize of [4096, 16384, 65536] as const) configs.push({ release, arch: 'arm64', pageSize });
}

describe('boot over VMBus with the default devices, every release × arch × page size', () => {
  for (const { release, arch, pageSize } of configs) {
    it(`${release} ${arch} ${pageSize / 1024}k`, () => {
      const m = new Machine({ release, arch, vps: 2, pageSize, memory: 64 << 20 });
      m.boot();
      m.runFor(10_000_000);
      expect(m.kernel.stage).toBe('booted');
      const v = releaseInfo(release).vmbusVersion;
      const lines = m.kernel.log.lines().map((l) => l.slice(15));
      expect(lines).toContain(`hv_vmbus: Vmbus version:${v.major}.${v.minor}`);
      const snap = m.kernel.vmbus!.snapshot();
      expect(snap.devices.map((d) => d.classId)).toEqual(DEFAULT_CLASSES);
      expect(snap.devices.map((d) => d.id)).toEqual(DEFAULT_CLASSES.map((_, i) => i + 1));
      for (const d of snap.devices.filter((x) => x.driver && RING_KIB[pageSize][x.driver] !== undefined)) {
        const ch = d.channels[0]!;
        const bytes = RING_KIB[pageSize][d.driver!]! * 1024;
        expect(lines, d.driver).toContain(`hv_vmbus: registering driver ${d.driver}`);
        expect(ch.state, d.driver).toBe('opened');
        // The guest's header is a whole guest page; the data follows it.
        expect([ch.outbound!.dataSize, ch.inbound!.dataSize], d.driver).toEqual([bytes - pageSize, bytes - pageSize]);
        // The host maps each ring through 4 KiB frames: a 4 KiB header (the rest of a larger
        // guest page is skipped, hv_gpadl_hvpfn), then the data.
        const host = m.vmbus!.server.channels.get(ch.relid)!;
        const ranges = host.gpadl(host.ringGpadl!)!.ranges;
        expect(ranges[0]!.pfns.length, d.driver).toBe((2 * (bytes - pageSize + 4096)) / 4096);
      }
      // Perf devices spread: SCSI on CPU0, the NIC on CPU1; the rest on VMBUS_CONNECT_CPU.
      const target = (cls: string) => snap.devices.find((d) => d.classId === cls)!.channels[0]!.targetCpu;
      expect([target(DeviceClass.SCSI), target(DeviceClass.NIC), target(DeviceClass.KBD)]).toEqual([0, 1, 0]);
      // Storage and network are monitored (MNF); the others signal with HvSignalEvent.
      expect(snap.devices.filter((d) => d.channels[0]!.monitorId !== undefined).map((d) => d.classId)).toEqual([DeviceClass.SCSI, DeviceClass.NIC]);
    });
  }
});

describe('the state as data', () => {
  it('counts interrupts and signals per channel and shows the ring indices move', () => {
    const m = new Machine({ release: 'ws2022', vps: 2, memory: 64 << 20 });
    m.boot();
    m.runFor(10_000_000);
    const client = m.kernel.vmbus!;
    const nic = client.channels.find((c) => c.offer.classId === DeviceClass.NIC)!;
    const before = nic.snapshot();
    m.vmbus!.server.channels.get(nic.relid)!.sendInband(new Uint8Array(100));
    m.runFor(1_000_000);
    nic.sendInband(new Uint8Array(40));
    m.runFor(1_000_000);
    const after = nic.snapshot();
    expect(after.interrupts).toBe(before.interrupts + 1);
    expect(after.sigEvents).toBe(before.sigEvents + 1);
    // 16-byte descriptor + 104 bytes of payload padded to 8 + the 8-byte trailer; read by the driver.
    expect(after.inbound!.writeIndex - before.inbound!.writeIndex).toBe(16 + 104 + 8);
    expect(after.inbound!.readIndex).toBe(after.inbound!.writeIndex);
    expect(after.outbound!.writeIndex - before.outbound!.writeIndex).toBe(16 + 40 + 8);
    const state = m.kernel.state();
    expect(state.cpus.map((c) => [c.cpu, c.vpIndex, c.online])).toEqual([
      [0, 0, true],
      [1, 1, true],
    ]);
    expect(state.vmbus!.devices.find((d) => d.classId === DeviceClass.NIC)!.channels[0]!.targetCpu).toBe(1);
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
  });
});
