// The mouse end to end: the SYNTHHID messages on the wire, absolute positions at the corners and
// the centre as the guest's input layer sees them, buttons and the wheel, reports the HID core
// pads or ignores, device info whose descriptors lie about their lengths, report descriptors the
// parser refuses, the SA-167 fix-up, and bad messages both ways.
import { describe, expect, it } from 'vitest';
import { ABS_X, ABS_Y, BTN_LEFT, BTN_MIDDLE, BTN_RIGHT, EV, REL_WHEEL } from '../../../src/devices/input/codes.js';
import { MOUSE_DEVICE_ID, MOUSE_REPORT_DESCRIPTOR, mouseReport } from '../../../src/devices/mouse/report-descriptor.js';
import { encodeDeviceInfo, encodeInputReport, encodeSynthhid, PIPE_HEADER, SynthhidDeviceInfo, SynthhidMsgType } from '../../../src/devices/mouse/wire.js';
import { guestInput } from '../../../src/vm/input.js';
import { bootInput, type InputVm } from './boot.js';

const events = (vm: InputVm) => guestInput(vm.m).core.recent.items.filter((e) => e.type !== EV.SYN).map((e) => [e.type, e.code, e.value]);
const settle = (vm: InputVm) => vm.until(() => vm.mouseModule.driver!.devices[0]!.reports === vm.ms.sent && guestInput(vm.m).core.queued === 0);
const DESC_AT = PIPE_HEADER + SynthhidDeviceInfo.offsets.hid_descriptor;

describe('mouse', () => {
  it('an input report on the wire: pipe DATA of 14, SYNTH_HID_INPUT_REPORT of 6, buttons, X, Y (little endian), wheel', () => {
    expect([...encodeInputReport(mouseReport(5, 0x1234, 0x7fff, -1))]).toEqual([1, 0, 0, 0, 14, 0, 0, 0, 4, 0, 0, 0, 6, 0, 0, 0, 5, 0x34, 0x12, 0xff, 0x7f, 0xff]);
    const info = encodeDeviceInfo({ ...MOUSE_DEVICE_ID, reportDescriptor: MOUSE_REPORT_DESCRIPTOR });
    // hv_input_dev_info (size 32, 045e:0621 v1), then bLength 9, HID_DT_HID, bcdHID 1.01, one HID_DT_REPORT descriptor.
    expect([...info.subarray(16, 24)]).toEqual([32, 0, 0, 0, 0x5e, 0x04, 0x21, 0x06]);
    expect([...info.subarray(DESC_AT, DESC_AT + 9)]).toEqual([9, 0x21, 0x01, 0x01, 0, 1, 0x22, MOUSE_REPORT_DESCRIPTOR.length, 0]);
    expect(info.length).toBe(DESC_AT + 9 + MOUSE_REPORT_DESCRIPTOR.length);
  });

  it('the corners and the centre, as the guest sees them (ABS_X, ABS_Y over 0..32767)', () => {
    const vm = bootInput();
    const core = guestInput(vm.m).core;
    const seen: [number, number][] = [];
    for (const [x, y] of [[0, 0], [32767, 0], [0, 32767], [32767, 32767], [16384, 16384]] as const) {
      vm.ms.move(x, y);
      settle(vm);
      seen.push([core.pointer!.x, core.pointer!.y]);
    }
    expect(seen).toEqual([[0, 0], [32767, 0], [0, 32767], [32767, 32767], [16384, 16384]]);
    // (0, 0) is where the axes start: only changes make events.
    expect(events(vm)).toEqual([[EV.ABS, ABS_X, 32767], [EV.ABS, ABS_X, 0], [EV.ABS, ABS_Y, 32767], [EV.ABS, ABS_X, 32767], [EV.ABS, ABS_X, 16384], [EV.ABS, ABS_Y, 16384]]);
    expect(guestInput(vm.m).state()!.input.pointer).toEqual({ x: 16384, y: 16384, device: 'Microsoft Vmbus HID-compliant Mouse' });
  });

  it('clicks and the wheel: BTN_LEFT/RIGHT/MIDDLE pressed and released, REL_WHEEL; the button is down in state() while held', () => {
    const vm = bootInput();
    vm.ms.click('left');
    vm.ms.click('right');
    vm.ms.click('middle');
    vm.ms.scroll(-2);
    settle(vm);
    expect(events(vm)).toEqual([[EV.KEY, BTN_LEFT, 1], [EV.KEY, BTN_LEFT, 0], [EV.KEY, BTN_RIGHT, 1], [EV.KEY, BTN_RIGHT, 0], [EV.KEY, BTN_MIDDLE, 1], [EV.KEY, BTN_MIDDLE, 0], [EV.REL, REL_WHEEL, -2]]);
    vm.ms.button('right', true);
    settle(vm);
    expect(guestInput(vm.m).state()!.input.buttons).toEqual([BTN_RIGHT]);
    // Mouse buttons are no keyboard keys: the tty saw nothing.
    expect(guestInput(vm.m).tty.screen()).toEqual(['root@hvkit:~# ']);
  });

  it('a short report is zero-padded, values outside the logical range are ignored, an over-long one is cut', () => {
    const vm = bootInput();
    const core = guestInput(vm.m).core;
    vm.ms.move(100, 200);
    settle(vm);
    vm.ms.sendRawReport(new Uint8Array([0x01]));
    vm.until(() => core.state().buttons.length === 1 && core.queued === 0);
    expect(core.pointer).toMatchObject({ x: 0, y: 0 });
    vm.ms.sendRawReport(new Uint8Array([0, 0xff, 0xff, 0x10, 0x00, 0, 9, 9, 9]));
    vm.until(() => core.pointer!.y === 16 && core.queued === 0);
    expect(core.pointer).toMatchObject({ x: 0, y: 16 });
    expect(core.state().buttons).toEqual([]);
  });

  const lies: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
    ['bLength 0', (b) => ((b[DESC_AT] = 0), b), /\(-12\)$/],
    ['wDescriptorLength 0', (b) => ((b[DESC_AT + 7] = 0), (b[DESC_AT + 8] = 0), b), /\(-22\)$/],
    ['wDescriptorLength past the message', (b) => ((b[DESC_AT + 7] = 0xff), (b[DESC_AT + 8] = 0x7f), b), /\(-22\)$/],
    ['bLength past the message', (b) => ((b[DESC_AT] = 0xff), b), /\(-22\)$/],
    ['a message shorter than synthhid_device_info', (b) => b.subarray(0, DESC_AT + 4), /\(-22\)$/],
  ];
  for (const [what, lie, errno] of lies) {
    it(`device info whose HID descriptor lies (${what}): the probe fails, nothing read past the message, no ack, the keyboard unaffected`, () => {
      const raw = lie(encodeDeviceInfo({ ...MOUSE_DEVICE_ID, reportDescriptor: MOUSE_REPORT_DESCRIPTOR }));
      const vm = bootInput({ mouse: { rawDeviceInfo: raw } });
      expect(vm.mouseModule.driver!.devices).toHaveLength(0);
      // The guest closed the channel without acknowledging the device info.
      expect(vm.ms.acks).toBe(0);
      expect(vm.ms.phase).toBe('offered');
      expect(vm.log().some((l) => l.startsWith(`hid_hyperv ${vm.ms.instanceId}: bad device info: `))).toBe(true);
      expect(vm.log().find((l) => l.startsWith(`hv_vmbus: probe failed for device ${vm.ms.instanceId}`))).toMatch(errno);
      expect(guestInput(vm.m).state()!.input.devices.map((d) => d.name)).toEqual(['AT Translated Set 2 keyboard']);
      vm.kb.typeText('echo ok\n');
      vm.until(() => guestInput(vm.m).tty.linesWritten >= 2);
      expect(guestInput(vm.m).tty.screen()[1]).toBe('ok');
    });
  }

  it('a report descriptor the HID parser refuses: hid-generic prints why and "parse failed"; no mouse', () => {
    const bad = new Uint8Array([0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, 0x09, 0x30, 0x75, 0x10, 0x95, 0x01, 0x81, 0x02]);
    const vm = bootInput({ mouse: { deviceInfo: { ...MOUSE_DEVICE_ID, reportDescriptor: bad } } });
    expect(vm.log()).toContain('hid-generic 0006:045E:0621.0001: unbalanced collection at end of report description');
    expect(vm.log()).toContain('hid-generic 0006:045E:0621.0001: parse failed');
    expect(vm.mouseModule.driver!.devices).toHaveLength(0);
    expect(vm.log()).toContain(`hv_vmbus: probe failed for device ${vm.ms.instanceId} (-22)`);
    // The guest acknowledged the device info before parsing it, as mousevsc does, then closed the channel.
    expect(vm.ms.phase).toBe('offered');
  });

  it('the SA-167 fix-up: Logical Maximum (0x25) at byte 14 is read as Usage Maximum, so all three buttons map', () => {
    const desc = MOUSE_REPORT_DESCRIPTOR.slice();
    expect(desc[14]).toBe(0x29);
    desc[14] = 0x25;
    const vm = bootInput({ mouse: { deviceInfo: { ...MOUSE_DEVICE_ID, reportDescriptor: desc } } });
    expect(vm.mouseModule.driver!.devices[0]!.reportDescriptor![14]).toBe(0x29);
    vm.ms.click('middle');
    settle(vm);
    expect(events(vm)).toEqual([[EV.KEY, BTN_MIDDLE, 1], [EV.KEY, BTN_MIDDLE, 0]]);
  });

  it('bad messages from the host: unknown types print Linux\'s line, other pipe types and oversize responses are dropped', () => {
    const vm = bootInput();
    const m = vm.mouseModule.driver!.devices[0]!;
    const ch = vm.ms.channel;
    ch.sendInband(encodeSynthhid(9, new Uint8Array(0)));
    ch.sendInband(new Uint8Array([2, 0, 0, 0, 8, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0])); // PIPE_MESSAGE_MAXIMUM
    ch.sendInband(encodeSynthhid(SynthhidMsgType.PROTOCOL_RESPONSE, new Uint8Array(200)));
    ch.sendInband(new Uint8Array(3)); // 8 bytes with padding: no room for a SYNTHHID header
    ch.sendInband(new Uint8Array(5000).fill(0xee)); // not PIPE_MESSAGE_DATA: ignored
    vm.until(() => m.bad >= 3);
    expect(vm.log()).toContain('unsupported hid msg type - type 9 len 0');
    expect(m.bad).toBe(3);
    vm.ms.move(5, 6);
    settle(vm);
    expect(guestInput(vm.m).core.pointer).toMatchObject({ x: 5, y: 6 });
  });

  it('bad messages from the guest are host violations', () => {
    const vm = bootInput();
    const ch = vm.mouseModule.driver!.devices[0]!.channel;
    ch.sendInband(new Uint8Array(4));
    ch.sendInband(new Uint8Array([0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0]));
    ch.sendInband(encodeSynthhid(SynthhidMsgType.INPUT_REPORT, new Uint8Array(4)));
    ch.sendInband(encodeSynthhid(SynthhidMsgType.INITIAL_DEVICE_INFO_ACK, new Uint8Array(1)));
    ch.sendInband(new Uint8Array(300)); // 304 with padding
    vm.until(() => vm.ms.violations.total === 5);
    expect(vm.ms.violations.items).toEqual([
      'pipe_prt_msg.length: 8 bytes is too short for a pipe and SYNTHHID header',
      'pipe_prt_msg.type: 0 is not PIPE_MESSAGE_DATA',
      'synthhid_msg_hdr.type: 4 is not a message the guest sends',
      'INITIAL_DEVICE_INFO_ACK without a device info to acknowledge',
      'pipe_prt_msg.length: 304 bytes is more than the 256 any guest message takes',
    ]);
    expect(vm.ms.phase).toBe('ready');
  });
});
