// Fuzz targets of the input devices (npm run fuzz runs them at volume): every parser on both
// sides (synth_kbd, SYNTHHID, the HID report-descriptor parser), atkbd's byte stream, the tty's
// line discipline, the script's input steps, and a booted guest fed arbitrary host messages.
import fc from 'fast-check';
import { describe, expect } from 'vitest';
import { Atkbd } from '../../../src/devices/keyboard/atkbd.js';
import * as kbd from '../../../src/devices/keyboard/wire.js';
import { parseCombo } from '../../../src/devices/keyboard/keymap.js';
import type { GuestServices } from '../../../src/devices/device.js';
import type { InputDeviceSpec, InputLayer } from '../../../src/devices/input/layer.js';
import { fieldValue, HID_MAX_REPORT_BYTES, HidParseError, parseReportDescriptor } from '../../../src/devices/mouse/hid-parser.js';
import { MOUSE_DEVICE_ID, MOUSE_REPORT_DESCRIPTOR } from '../../../src/devices/mouse/report-descriptor.js';
import * as hid from '../../../src/devices/mouse/wire.js';
import { InputCore } from '../../../src/guest/input/core.js';
import { N_TTY_BUF_SIZE, SCREEN_LINES, Tty } from '../../../src/guest/tty.js';
import { WireError } from '../../../src/tlfs/struct.js';
import { parseInputStep } from '../../../src/vm/input-steps.js';
import { guestInput } from '../../../src/vm/input.js';
import { itFuzz } from '../../fuzz/fuzz.js';
import { RUNS, runs } from '../../vmbus/fuzz-runs.js';
import { bootInput } from './boot.js';

const wireOrNothing = (f: () => unknown): void => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(WireError);
  }
};

/** Kernel services that count log lines and run delayed work at once. */
function stubServices(): GuestServices & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    log: (_l, t) => void lines.push(t),
    note: () => {},
    syslog: () => {},
    realtimeNs: () => 0n,
    setRealtimeNs: () => {},
    adjustRealtimeNs: () => {},
    uptimeNs: () => 0,
    referenceCounter: () => 0n,
    scheduleDelayedWork: (_d, w) => (w(), { cancel: () => false }),
    requestShutdown: () => {},
    system: { hostname: 'fuzz', osName: 'hvkit', osVersion: '6.1', kernelRelease: '6.1.0', arch: 'x86_64' },
    files: undefined as never,
  };
}

const deviceInfo = hid.encodeDeviceInfo({ ...MOUSE_DEVICE_ID, reportDescriptor: MOUSE_REPORT_DESCRIPTOR });
/** A valid device info with some bytes changed and maybe cut: the lies that matter. */
const mutatedInfo = fc
  .tuple(fc.array(fc.tuple(fc.nat(deviceInfo.length - 1), fc.nat(255)), { maxLength: 6 }), fc.nat(deviceInfo.length + 8))
  .map(([edits, cut]) => {
    const b = new Uint8Array(Math.max(cut, 1));
    b.set(deviceInfo.subarray(0, Math.min(cut, deviceInfo.length)));
    for (const [at, v] of edits) if (at < b.length) b[at] = v;
    return b;
  });
const mutatedDescriptor = fc
  .tuple(fc.array(fc.tuple(fc.nat(MOUSE_REPORT_DESCRIPTOR.length - 1), fc.nat(255)), { maxLength: 4 }), fc.nat(MOUSE_REPORT_DESCRIPTOR.length))
  .map(([edits, cut]) => {
    const b = MOUSE_REPORT_DESCRIPTOR.slice(0, cut);
    for (const [at, v] of edits) if (at < b.length) b[at] = v;
    return b;
  });

describe('input fuzz targets', () => {
  itFuzz('synth_kbd, guest side: any message is understood or a WireError', 'input-kbd.guest-parse', () => fc.property(fc.uint8Array({ maxLength: 300 }), (b) => wireOrNothing(() => kbd.parseHostMessage(b))), RUNS);
  itFuzz('synth_kbd, host side: any message is a PROTOCOL_REQUEST or a WireError', 'input-kbd.host-parse', () => fc.property(fc.uint8Array({ maxLength: 300 }), (b) => wireOrNothing(() => kbd.parseGuestMessage(b))), RUNS);
  itFuzz(
    'synth_kbd keystrokes parse back to what was encoded',
    'input-kbd.round-trip',
    () =>
      fc.property(fc.nat(0xffff), fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), (makeCode, brk, e0, e1, unicode) => {
        const k = { makeCode, break: brk, e0, e1, unicode };
        expect(kbd.parseHostMessage(kbd.encodeKeystroke(k))).toEqual({ type: 'keystroke', ...k });
      }),
    RUNS,
  );

  itFuzz(
    'SYNTHHID, guest side: any message (and any lie in a device info) is understood within its bytes, or a WireError',
    'input-hid.guest-parse',
    () =>
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutatedInfo), (b) =>
        wireOrNothing(() => {
          const m = hid.parseHostMessage(b);
          if (m.type === 'device-info') expect(hid.PIPE_HEADER + hid.SynthhidDeviceInfo.offsets.hid_descriptor + m.hidDescriptor.length + m.reportDescriptor.length).toBeLessThanOrEqual(b.length);
          if (m.type === 'input-report') expect(m.report.length).toBeLessThanOrEqual(b.length);
        }),
      ),
    RUNS,
  );
  itFuzz('SYNTHHID, host side: any message is understood or a WireError', 'input-hid.host-parse', () => fc.property(fc.uint8Array({ maxLength: 300 }), (b) => wireOrNothing(() => hid.parseGuestMessage(b))), RUNS);

  itFuzz(
    'the HID report-descriptor parser: a bounded description whose fields lie inside their reports, or HidParseError',
    'input-hid.report-descriptor',
    () =>
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), mutatedDescriptor), fc.uint8Array({ maxLength: 16 }), (desc, report) => {
        let parsed;
        try {
          parsed = parseReportDescriptor(desc);
        } catch (e) {
          expect(e).toBeInstanceOf(HidParseError);
          return;
        }
        for (const r of parsed.reports) {
          expect(r.size).toBeLessThanOrEqual(HID_MAX_REPORT_BYTES * 8);
          for (const f of r.fields) {
            expect(f.offset + f.reportSize * f.reportCount).toBeLessThanOrEqual(r.size);
            for (let n = 0; n < Math.min(f.reportCount, 8); n++) expect(Number.isFinite(fieldValue(report, f, n))).toBe(true);
          }
        }
      }),
    RUNS,
  );

  itFuzz(
    'atkbd: any byte stream makes only mapped key events, and the input queue stays bounded',
    'input-atkbd.bytes',
    () =>
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const services = stubServices();
        const core = new InputCore(services);
        const layer: InputLayer = { start: () => {}, register: (s: InputDeviceSpec) => core.register(s), unregister: () => {} };
        const a = new Atkbd(layer, services, { path: '/x/serio0', name: 'serio0', phys: 'x' });
        for (const b of bytes) a.interrupt(b);
        expect(core.queued).toBeLessThanOrEqual(256);
        for (const k of a.dev!.keysDown) expect(k).toBeGreaterThan(0);
      }),
    RUNS,
  );

  itFuzz(
    'the tty: any input keeps the line and the screen bounded',
    'input-tty.chars',
    () =>
      fc.property(fc.array(fc.string({ maxLength: 300 }), { maxLength: 20 }), (chunks) => {
        const tty = new Tty({ system: { hostname: 'h', kernelRelease: 'r', arch: 'a' }, meminfo: () => undefined, vmbus: () => undefined, poweroff: () => {} });
        tty.start();
        for (const c of chunks) tty.input(c);
        const s = tty.state();
        expect(s.screen.length).toBeLessThanOrEqual(SCREEN_LINES + 1);
        expect(s.line.length).toBeLessThan(N_TTY_BUF_SIZE);
      }),
    RUNS,
  );

  itFuzz(
    'script input steps and key combos: a step or a reason, never a throw',
    'input-steps.parse',
    () =>
      fc.property(fc.constantFrom('key' as const, 'mouse' as const), fc.array(fc.string({ maxLength: 20 }), { maxLength: 4 }), (device, words) => {
        const r = parseInputStep(device, words);
        expect(typeof r === 'string' || r.device === device).toBe(true);
        for (const w of words) {
          const c = parseCombo(w);
          expect(typeof c === 'string' || c.key.code > 0).toBe(true);
        }
      }),
    RUNS,
  );

  itFuzz(
    'a booted guest takes arbitrary keyboard and mouse messages from its host and keeps working',
    'input.guest-machine',
    () =>
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.oneof(fc.uint8Array({ maxLength: 64 }), mutatedInfo)), { maxLength: 12 }), (msgs) => {
        const vm = bootInput();
        for (const [toKbd, b] of msgs) (toKbd ? vm.kb.channel : vm.ms.channel).sendInband(b);
        vm.m.runFor(1e8);
        expect(vm.m.kernel.stage === 'booted' || vm.m.kernel.stage === 'halted').toBe(true);
        if (vm.m.kernel.stage !== 'booted') return;
        // Its keyboard still takes keystrokes (what they type depends on the modifiers the noise left down).
        const kbd = vm.kbdModule.driver!.devices[0]!;
        const before = kbd.keystrokes;
        const typed = vm.kb.typeText('echo alive\n');
        vm.until(() => kbd.keystrokes >= before + typed);
        expect(kbd.keystrokes - before).toBeGreaterThanOrEqual(typed);
        expect(guestInput(vm.m).core.queued).toBeLessThanOrEqual(256);
      }),
    runs(0.02),
  );
});
