// The keyboard end to end: keystrokes on the wire as hyperv-keyboard.c reads them, set-1 codes
// through atkbd into key events, the console keymap and the tty's line discipline and shell,
// Ctrl+Alt+Del, unknown scancodes, bad messages both ways and a flood.
import { describe, expect, it } from 'vitest';
import { SynthKbdKeystroke, encodeKeystroke, KbdInfo, SynthKbdMsgType } from '../../../src/devices/keyboard/wire.js';
import { EV, KEY } from '../../../src/devices/input/codes.js';
import { INPUT_QUEUE_LIMIT } from '../../../src/guest/input/core.js';
import { KEYBOARD_PENDING_LIMIT } from '../../../src/devices/keyboard/host.js';
import { guestInput } from '../../../src/vm/input.js';
import { bootInput, screen } from './boot.js';

describe('keyboard', () => {
  it('a keystroke is a 12-byte synth_kbd_keystroke: type 3, the make code, IS_BREAK / IS_E0 / IS_E1 / IS_UNICODE in info', () => {
    const b = encodeKeystroke({ makeCode: 0x53, break: true, e0: true, e1: false, unicode: false });
    expect([...b]).toEqual([3, 0, 0, 0, 0x53, 0, 0, 0, KbdInfo.BREAK | KbdInfo.E0, 0, 0, 0]);
    expect(SynthKbdKeystroke.decode(encodeKeystroke({ makeCode: 0x20ac, break: false, e0: false, e1: true, unicode: true }))).toEqual({ header: { type: SynthKbdMsgType.EVENT }, make_code: 0x20ac, reserved0: 0, info: KbdInfo.E1 | KbdInfo.UNICODE });
  });

  it('typing "uname\\n": the tty shows the prompt with the echoed command, then uname\'s output and a new prompt', () => {
    const vm = bootInput();
    expect(screen(vm)).toEqual(['root@hvkit:~# ']);
    vm.kb.typeText('uname\n');
    expect(vm.until(() => screen(vm).length === 3)).toBe(true);
    expect(screen(vm)).toEqual(['root@hvkit:~# uname', 'Linux', 'root@hvkit:~# ']);
    vm.kb.typeText('uname -a\n');
    vm.until(() => screen(vm).length === 5);
    expect(screen(vm).slice(-2)).toEqual(['Linux hvkit 6.1.192-hvkit #1 SMP x86_64 GNU/Linux', 'root@hvkit:~# ']);
  });

  it('Shift for capitals and symbols, Backspace erasing, Ctrl+U killing the line, Ctrl+C abandoning it', () => {
    const vm = bootInput();
    const tty = guestInput(vm.m).tty;
    vm.kb.typeText('echo Hello, World! ~{x}\n');
    vm.until(() => tty.linesWritten >= 2);
    expect(screen(vm).slice(-3)).toEqual(['root@hvkit:~# echo Hello, World! ~{x}', 'Hello, World! ~{x}', 'root@hvkit:~# ']);
    vm.kb.typeText('ecxx\b\bho ok\n');
    vm.until(() => tty.linesWritten >= 4);
    expect(screen(vm).slice(-3)).toEqual(['root@hvkit:~# echo ok', 'ok', 'root@hvkit:~# ']);
    vm.kb.typeText('junk');
    vm.kb.pressCombo('CTRL+U');
    vm.kb.typeText('help');
    vm.kb.pressCombo('CTRL+C');
    vm.until(() => tty.linesWritten >= 5);
    expect(screen(vm).slice(-2)).toEqual(['root@hvkit:~# help^C', 'root@hvkit:~# ']);
    expect(tty.history).toEqual(['echo Hello, World! ~{x}', 'echo ok']);
  });

  it('E0 keys: the cursor keys reach the tty as VT100 sequences (echoed ^[[A); right Ctrl works as Ctrl', () => {
    const vm = bootInput();
    const input = guestInput(vm.m);
    vm.kb.pressCombo('UP');
    vm.kb.pressCombo('RCTRL+C');
    vm.until(() => input.tty.linesWritten >= 1);
    expect(screen(vm)).toEqual(['root@hvkit:~# ^[[A^C', 'root@hvkit:~# ']);
    const keys = input.core.recent.items.filter((e) => e.type === EV.KEY).map((e) => [e.code, e.value]);
    expect(keys).toEqual([[KEY.UP, 1], [KEY.UP, 0], [KEY.RIGHTCTRL, 1], [46, 1], [46, 0], [KEY.RIGHTCTRL, 0]]);
  });

  it('key state: a held key is in keysDown, a second make is an autorepeat (value 2), the break releases it', () => {
    const vm = bootInput();
    const core = guestInput(vm.m).core;
    vm.kb.press(0x1e);
    vm.kb.press(0x1e);
    vm.until(() => core.state().keysDown.length === 1 && core.queued === 0);
    expect(core.state().keysDown).toEqual([30]);
    vm.kb.press(0x1e, { break: true });
    vm.until(() => core.state().keysDown.length === 0 && core.queued === 0);
    expect(core.recent.items.filter((e) => e.type === EV.KEY).map((e) => e.value)).toEqual([1, 2, 0]);
    expect(screen(vm)).toEqual(['root@hvkit:~# aa']);
  });

  it('CTRL+ALT+DEL restarts the guest as Linux does by default ("reboot: Restarting system")', () => {
    const vm = bootInput();
    vm.kb.pressCombo('CTRL+ALT+DEL');
    expect(vm.until(() => vm.m.kernel.stage === 'halted')).toBe(true);
    expect(vm.m.kernel.haltedBy).toBe('reboot');
    expect(vm.m.exit?.kind).toBe('reboot');
    expect(vm.log()).toContain('reboot: Restarting system');
    expect(guestInput(vm.m).console!.cad).toBe(1);
  });

  it('poweroff at the prompt powers the guest down in order', () => {
    const vm = bootInput();
    vm.kb.typeText('poweroff\n');
    expect(vm.until(() => vm.m.kernel.stage === 'halted')).toBe(true);
    expect(vm.m.kernel.haltedBy).toBe('poweroff');
    expect(vm.log()).toContain('reboot: Power down');
  });

  it('free and lsvmbus report the guest\'s own numbers', () => {
    const vm = bootInput();
    const tty = guestInput(vm.m).tty;
    // A sink (as the framebuffer console will be) sees the output unwrapped.
    let out = '';
    tty.addSink((t) => void (out += t));
    vm.kb.typeText('free\nlsvmbus\n');
    vm.until(() => out.endsWith('lsvmbus\n') === false && out.split('\n').length >= 10);
    const s = out.split('\n');
    const mem = s.find((l) => l.startsWith('Mem:'))!.trim().split(/\s+/).slice(1).map(Number);
    // free(1) reads /proc/meminfo: total is MemTotal, free is MemFree.
    const info = vm.m.kernel.meminfo();
    expect(mem[0]).toBe(info.MemTotal);
    expect(mem[1]! + mem[2]!).toBe(info.MemTotal);
    expect(mem[2]).toBe(info.MemFree);
    const ids = vm.m.kernel.vmbus!.snapshot().devices.map((d) => d.id).sort((a, b) => a - b);
    expect(s.filter((l) => l.startsWith('VMBUS ID')).length).toBe(ids.length);
    const kbdId = vm.m.kernel.vmbus!.snapshot().devices.find((d) => d.instanceId === vm.kb.instanceId)!.id;
    expect(s).toContain(`VMBUS ID ${String(kbdId).padStart(2)}: Class_ID = {f912ad6d-2b17-48ea-bd65-f927a61c7684} - Synthetic keyboard`);
  });

  it('an unknown scancode prints atkbd\'s two lines and makes no key event', () => {
    const vm = bootInput();
    const core = guestInput(vm.m).core;
    vm.kb.press(0x59);
    vm.kb.press(0x6f, { e0: true, break: true });
    vm.until(() => vm.kbdModule.driver!.devices[0]!.keystrokes === 2);
    const lines = vm.log();
    expect(lines).toContain('atkbd serio0: Unknown key pressed (translated set 2, code 0x59 on ' + vm.kb.instanceId + ').');
    expect(lines).toContain("atkbd serio0: Use 'setkeycodes 59 <keycode>' to make it known.");
    expect(lines).toContain("atkbd serio0: Use 'setkeycodes e06f <keycode>' to make it known.");
    expect(core.passed).toBe(0);
    expect(vm.kbdModule.driver!.devices[0]!.atkbd!.unknown).toBe(2);
  });

  it('bad messages from the host: Linux\'s lines, dropped, the keyboard keeps working', () => {
    const vm = bootInput();
    const kbd = vm.kbdModule.driver!.devices[0]!;
    const ch = vm.kb.channel;
    ch.sendInband(new Uint8Array(0)); // not even a header
    ch.sendInband(new Uint8Array([3, 0, 0, 0, 0x1e, 0, 0, 0])); // a keystroke cut short
    ch.sendInband(new Uint8Array([9, 0, 0, 0, 1, 2, 3, 4])); // unknown type
    ch.sendInband(new Uint8Array(4000).fill(0xff)); // oversize garbage
    vm.until(() => kbd.bad === 4);
    const errs = vm.log().filter((l) => l.startsWith(`hyperv_keyboard ${vm.kb.instanceId}: `));
    expect(errs.map((l) => l.slice(l.indexOf(': ') + 2))).toEqual(['Illegal packet (type: 6, tid: 0, size: 0)', 'Illegal keyboard event packet (len: 8)', 'unhandled message type 9', 'unhandled message type 4294967295']);
    vm.kb.typeText('echo ok\n');
    vm.until(() => screen(vm).length === 3);
    expect(screen(vm)[1]).toBe('ok');
  });

  it('bad messages from the guest are host violations, nothing else', () => {
    const vm = bootInput();
    const ch = vm.kbdModule.driver!.devices[0]!.channel;
    ch.sendInband(new Uint8Array([3, 0, 0, 0, 0, 0, 0, 0]));
    ch.sendInband(new Uint8Array(1000));
    ch.sendInband(new Uint8Array([1, 0])); // padded to a PROTOCOL_REQUEST for version 0
    vm.until(() => vm.kb.violations.total === 3);
    expect(vm.kb.violations.items).toEqual([
      'synth_kbd_msg_hdr.type: 3 is not a message the guest sends',
      'synth_kbd_msg.length: 1000 bytes is more than HK_MAXIMUM_MESSAGE_SIZE (256)',
      'PROTOCOL_REQUEST after the protocol was negotiated',
    ]);
    expect(vm.kb.version).toBe(0x10000);
    expect(vm.kb.phase).toBe('ready');
  });

  it('a flood: the host queues at most KEYBOARD_PENDING_LIMIT, the guest\'s input queue at most INPUT_QUEUE_LIMIT; both count what they drop', () => {
    const vm = bootInput();
    const core = guestInput(vm.m).core;
    let queued = 0;
    for (let i = 0; i < KEYBOARD_PENDING_LIMIT + 1000; i++) queued += Number(vm.kb.press(0x1e, { break: i % 2 === 1 }));
    expect(vm.kb.queued + vm.kb.sent).toBe(queued);
    expect(vm.kb.refused).toBe(KEYBOARD_PENDING_LIMIT + 1000 - queued);
    expect(vm.kb.refused).toBeGreaterThan(0);
    let maxQueued = 0;
    vm.until(() => {
      maxQueued = Math.max(maxQueued, core.queued);
      return vm.kb.queued === 0 && vm.kbdModule.driver!.devices[0]!.keystrokes === vm.kb.sent && core.queued === 0;
    }, 60);
    expect(vm.kbdModule.driver!.devices[0]!.keystrokes).toBe(queued);
    expect(maxQueued).toBeLessThanOrEqual(INPUT_QUEUE_LIMIT);
    // Every keystroke is two events (the key and SYN_REPORT): what was not passed on was dropped.
    expect(core.passed + core.dropped).toBe(2 * queued);
    expect(core.dropped).toBeGreaterThan(0);
    // The device state saw every keystroke, dropped or not: the key is down iff the last one was a make.
    expect(core.state().keysDown).toEqual(queued % 2 === 1 ? [30] : []);
    vm.kb.press(0x1e, { break: true });
    const tty = guestInput(vm.m).tty;
    vm.kb.typeText('\necho still here\n');
    vm.until(() => screen(vm).at(-2) === 'still here');
    expect(screen(vm).at(-2)).toBe('still here');
    expect(tty.state().line).toBe('');
  });
});
