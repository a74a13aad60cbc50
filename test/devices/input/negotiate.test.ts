// Version negotiation of the keyboard (synth_kbd) and the mouse (SYNTHHID) on every release, the
// lines the guest prints when its input devices register, and what a refused version does.
import { describe, expect, it } from 'vitest';
import { RELEASE_IDS } from '../../../src/hypervisor/release.js';
import { guestInput } from '../../../src/vm/input.js';
import { bootInput } from './boot.js';

describe('keyboard and mouse negotiation', () => {
  for (const release of RELEASE_IDS) {
    it(`${release}: synth_kbd 1.0 and SYNTHHID 2.0 on both sides`, () => {
      const vm = bootInput({ release });
      expect(vm.kb.phase).toBe('ready');
      expect(vm.kb.version).toBe(0x10000);
      expect(vm.kbdModule.driver!.devices[0]!.version).toBe(0x10000);
      expect(vm.ms.phase).toBe('ready');
      expect(vm.ms.version).toBe(0x20000);
      expect(vm.mouseModule.driver!.devices[0]!.version).toBe(0x20000);
    });
  }

  it('the guest registers "AT Translated Set 2 keyboard" under its VMBus device and the HID mouse as Linux prints them', () => {
    const vm = bootInput();
    const kbdId = vm.kb.instanceId;
    const lines = vm.log();
    expect(lines).toContain(`input: AT Translated Set 2 keyboard as /devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0004:00/VMBUS:00/${kbdId}/serio0/input/input0`);
    expect(lines).toContain('input: Microsoft Vmbus HID-compliant Mouse as /devices/0006:045E:0621.0001/input/input1');
    expect(lines).toContain('hid-generic 0006:045E:0621.0001: input: <UNKNOWN> HID v0.01 Mouse [Microsoft Vmbus HID-compliant Mouse] on ');
    const devs = guestInput(vm.m).state()!.input.devices;
    expect(devs.map((d) => [d.name, d.id.bustype, d.id.vendor, d.id.product, d.id.version])).toEqual([
      ['AT Translated Set 2 keyboard', 0x11, 1, 1, 0xab00],
      ['Microsoft Vmbus HID-compliant Mouse', 6, 0x045e, 0x0621, 1],
    ]);
  });

  it('a host that refuses synth_kbd 1.0: the guest prints Linux\'s line and has no keyboard; the mouse still works', () => {
    const vm = bootInput({ keyboard: { versions: [0x20000] } });
    expect(vm.kb.phase).toBe('refused');
    expect(vm.log().some((l) => l.endsWith('synth_kbd protocol request failed (version 65536)'))).toBe(true);
    expect(vm.kbdModule.driver!.devices).toHaveLength(0);
    expect(guestInput(vm.m).state()!.input.devices.map((d) => d.name)).toEqual(['Microsoft Vmbus HID-compliant Mouse']);
    expect(vm.kb.typeText('x')).toBe(0);
    expect(vm.kb.refused).toBe(2);
  });

  it('a host that refuses SYNTHHID 2.0: "synthhid protocol request failed", no device info sent, no mouse', () => {
    const vm = bootInput({ mouse: { versions: [0x10000] } });
    expect(vm.ms.phase).toBe('refused');
    expect(vm.log()).toContain('synthhid protocol request failed (version 131072)');
    expect(vm.mouseModule.driver!.devices).toHaveLength(0);
    expect(vm.ms.move(1, 1)).toBe(false);
  });
});
