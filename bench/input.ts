// The input devices' cost per event, end to end in-thread: a keystroke from the host's
// typeText through the ring, hyperv_keyboard, atkbd, the input core and the console keymap into
// the tty (echo included), and an absolute mouse report through the ring, hid_hyperv and the HID
// field decoding into the input core. Each against the run's 256-byte copy (one SynIC slot).
import { guestInput, guestKeystrokes, hostKeyboard, hostMouse } from '../src/vm/input.js';
import { Machine } from '../src/vm/machine.js';
import type { Measurement, MeasurementGroup } from './index.js';
import { median } from './stats.js';

const NAMES = ['input: one keystroke, host to the guest tty, in-thread', 'input: one absolute mouse report, host to the guest input layer, in-thread'] as const;
const BASELINE = 'baseline: 256-byte copy';

export function inputGroup(): MeasurementGroup {
  return { names: NAMES, needs: [BASELINE], run: (perOp) => inputMeasurements(perOp.get(BASELINE)!) };
}

function boot(): Machine {
  const m = new Machine({ vps: 1, devices: [{ type: 'keyboard' }, { type: 'mouse' }] });
  m.boot();
  m.runFor(1e8);
  return m;
}

function keystrokeNs(m: Machine, chars: number): number {
  const kb = hostKeyboard(m)!;
  const before = guestKeystrokes(m);
  const t0 = performance.now();
  // "echo " and letters: each character is a make and a break; Enter ends the line.
  const sent = kb.typeText(`echo ${'a'.repeat(chars - 6)}\n`);
  m.waitUntil(() => guestKeystrokes(m) - before >= sent && guestInput(m).core.queued === 0, 10e9);
  return ((performance.now() - t0) * 1e6) / sent;
}

function reportNs(m: Machine, reports: number): number {
  const ms = hostMouse(m)!;
  const core = guestInput(m).core;
  const t0 = performance.now();
  for (let i = 0; i < reports; i++) ms.move((i * 97) % 32768, (i * 31) % 32768);
  const want = { x: ((reports - 1) * 97) % 32768, y: ((reports - 1) * 31) % 32768 };
  m.waitUntil(() => core.pointer?.x === want.x && core.pointer.y === want.y && core.queued === 0, 10e9);
  return ((performance.now() - t0) * 1e6) / reports;
}

function inputMeasurements(copyNs: number): Measurement[] {
  const m = boot();
  const keys: number[] = [];
  const reports: number[] = [];
  for (let i = 0; i < 7; i++) {
    keys.push(keystrokeNs(m, 200));
    reports.push(reportNs(m, 400));
  }
  const k = median(keys);
  const r = median(reports);
  return [
    { name: NAMES[0], value: k, unit: 'ns', ratio: k / copyNs, baseline: BASELINE },
    { name: NAMES[1], value: r, unit: 'ns', ratio: r / copyNs, baseline: BASELINE },
  ];
}
