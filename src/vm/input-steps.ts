// The script's input steps (`key type`, `key press`, `mouse move`, `mouse click`): the host's
// keyboard or mouse acts, virtual time runs until the guest has taken it in, and the step reports
// what the guest shows: the tty's lines for keys, the pointer position and button events the
// guest's input layer saw for the mouse.
import { parseCombo } from '../devices/keyboard/keymap.js';
import { BTN_LEFT, BTN_MIDDLE, BTN_RIGHT, EV } from '../devices/input/codes.js';
import { MOUSE_ABS_MAX, type MouseButton } from '../devices/mouse/report-descriptor.js';
import { guestInput, guestKeystrokes, hostKeyboard, hostMouse } from './input.js';
import type { Machine } from './machine.js';

export type InputStep =
  | { readonly device: 'key'; readonly action: 'type'; readonly text: string }
  | { readonly device: 'key'; readonly action: 'press'; readonly combo: string }
  | { readonly device: 'mouse'; readonly action: 'move'; readonly x: number; readonly y: number }
  | { readonly device: 'mouse'; readonly action: 'click'; readonly button: MouseButton };

export interface InputOutcome {
  readonly ok: boolean;
  readonly values: Record<string, unknown>;
  readonly text: string;
}

/** How a step waits: the machine's own clock, or a lab's. */
export type Settle = (done: () => boolean, limitS: number) => Promise<boolean>;

/** Characters one `key type` may send (each is a few keystrokes in the host's bounded queue). */
export const MAX_TYPED = 1024;
/** How long an input step waits for the guest, virtual seconds. */
const INPUT_WAIT_S = 10;

const ESCAPES: Readonly<Record<string, string>> = { n: '\n', r: '\n', t: '\t', b: '\b', e: '\x1b', '\\': '\\', '"': '"', "'": "'" };

/** `key type` text with its escapes (\n or \r Enter, \t Tab, \b Backspace, \e Escape, \\) resolved, or a reason. */
export function unescapeTyped(text: string): string | { error: string } {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = ESCAPES[text[++i] ?? ''];
    if (e === undefined) return { error: `key type: unknown escape \\${text[i] ?? ''} (\\n, \\t, \\b, \\e, \\\\)` };
    out += e;
  }
  return out;
}

/** Printable ASCII, Enter, Tab, Backspace and Escape: what the US keymap types. */
const typable = (c: string): boolean => {
  const code = c.codePointAt(0)!;
  return (code >= 0x20 && code <= 0x7e) || c === '\n' || c === '\t' || c === '\b' || c === '\x1b';
};

const BUTTON_CODES: Readonly<Record<MouseButton, number>> = { left: BTN_LEFT, right: BTN_RIGHT, middle: BTN_MIDDLE };

/** Parses `key …` or `mouse …` (`device` is the first word); a string is the reason it is not a step. */
export function parseInputStep(device: 'key' | 'mouse', args: readonly string[]): InputStep | string {
  const [action, ...rest] = args;
  if (device === 'key') {
    if (action === 'type') {
      if (rest.length !== 1) return 'key type: expected one TEXT (quote it)';
      const text = unescapeTyped(rest[0]!);
      if (typeof text !== 'string') return text.error;
      if ([...text].length > MAX_TYPED) return `key type: TEXT is at most ${MAX_TYPED} characters`;
      const bad = [...text].find((c) => !typable(c));
      if (bad !== undefined) return `key type: ${JSON.stringify(bad)} is not on a US keyboard (printable ASCII and the escapes only)`;
      return { device, action, text };
    }
    if (action === 'press') {
      if (rest.length !== 1) return 'key press: expected one COMBO (CTRL+ALT+DEL, ENTER, SHIFT+F1, …)';
      const c = parseCombo(rest[0]!);
      if (typeof c === 'string') return `key press: ${c}`;
      return { device, action, combo: rest[0]!.toUpperCase() };
    }
    return 'key: expected type TEXT or press COMBO';
  }
  if (action === 'move') {
    const [x, y, extra] = rest;
    const ok = (v: string | undefined) => v !== undefined && /^\d{1,5}$/.test(v) && Number(v) <= MOUSE_ABS_MAX;
    if (!ok(x) || !ok(y) || extra !== undefined) return `mouse move: expected X Y, each 0 to ${MOUSE_ABS_MAX} (the device's absolute units)`;
    return { device, action, x: Number(x), y: Number(y) };
  }
  if (action === 'click') {
    const [b = 'left', extra] = rest;
    if ((b !== 'left' && b !== 'right' && b !== 'middle') || extra !== undefined) return 'mouse click: expected left, right or middle';
    return { device, action, button: b };
  }
  return 'mouse: expected move X Y or click [left|right|middle]';
}

/** The step as written. */
export function inputStepTitle(s: InputStep): string {
  if (s.device === 'key') return s.action === 'type' ? `key type ${JSON.stringify(s.text)}` : `key press ${s.combo}`;
  return s.action === 'move' ? `mouse move ${s.x} ${s.y}` : `mouse click ${s.button}`;
}

/** Runs an input step on `m`. */
export async function runInputStep(m: Machine, step: InputStep, settle: Settle): Promise<InputOutcome> {
  const what = inputStepTitle(step);
  let guest;
  try {
    guest = guestInput(m);
  } catch (e) {
    return { ok: false, values: { outcome: 'no-guest-input' }, text: `${what}: ${(e as Error).message}` };
  }
  if (step.device === 'key') {
    const kb = hostKeyboard(m);
    if (!kb) return { ok: false, values: { outcome: 'no-device' }, text: `${what}: the VM has no keyboard` };
    await settle(() => kb.phase !== 'offered', INPUT_WAIT_S);
    if (kb.phase !== 'ready') return { ok: false, values: { outcome: 'not-ready', phase: kb.phase }, text: `${what}: the keyboard is ${kb.phase}` };
    let output = '';
    const linesBefore = guest.tty.linesWritten;
    const stop = guest.tty.addSink((t) => void (output += t));
    const before = kb.sent + kb.queued;
    const taken = guestKeystrokes(m);
    try {
      if (step.action === 'type') kb.typeText(step.text);
      else kb.pressCombo(step.combo);
      // Sent, taken by the guest and handed to the tty (or the guest went away).
      const queued = kb.sent + kb.queued - before;
      await settle(() => m.kernel.stage !== 'booted' || (guestKeystrokes(m) - taken >= queued && guest.core.queued === 0), INPUT_WAIT_S);
    } finally {
      stop();
    }
    const keystrokes = kb.sent - before;

    if (m.kernel.stage !== 'booted') {
      await settle(() => m.kernel.stage === 'halted', 60);
      const how = m.kernel.haltedBy === 'reboot' ? 'restarted' : m.kernel.haltedBy === 'poweroff' ? 'powered off' : m.kernel.stage;
      return { ok: true, values: { outcome: 'guest-halted', guest: how, keystrokes }, text: `${what}: ${keystrokes} keystrokes; the guest ${how}` };
    }
    const lines = guest.tty.screen().slice(-(guest.tty.linesWritten - linesBefore + 1));
    const values = { outcome: 'shown', keystrokes, output, screen: lines, dropped: guest.core.dropped };
    return { ok: true, values, text: [`${what}: ${keystrokes} keystrokes; the tty shows:`, ...lines.map((l) => `  ${l}`)].join('\n') };
  }
  const mouse = hostMouse(m);
  if (!mouse) return { ok: false, values: { outcome: 'no-device' }, text: `${what}: the VM has no mouse` };
  await settle(() => mouse.phase === 'ready' || mouse.phase === 'refused', INPUT_WAIT_S);
  if (mouse.phase !== 'ready') return { ok: false, values: { outcome: 'not-ready', phase: mouse.phase }, text: `${what}: the mouse is ${mouse.phase}` };
  if (step.action === 'move') {
    mouse.move(step.x, step.y);
    const seen = await settle(() => guest.core.pointer?.x === step.x && guest.core.pointer.y === step.y && guest.core.queued === 0, INPUT_WAIT_S);
    const p = guest.core.pointer;
    const values = { outcome: seen ? 'seen' : 'not-seen', x: p?.x ?? null, y: p?.y ?? null };
    return { ok: seen, values, text: seen ? `${what}: the guest's pointer is at ${p!.x} ${p!.y}` : `${what}: the guest's pointer is ${p ? `at ${p.x} ${p.y}` : 'unknown'} after ${INPUT_WAIT_S} s` };
  }
  const code = BUTTON_CODES[step.button];
  const from = guest.core.recent.total;
  mouse.click(step.button);
  const events = () => guest.core.recent.items.slice(-(guest.core.recent.total - from)).filter((e) => e.type === EV.KEY && e.code === code);
  const seen = await settle(() => events().some((e) => e.value === 0) && guest.core.queued === 0, INPUT_WAIT_S);
  const p = guest.core.pointer;
  const values = { outcome: seen ? 'clicked' : 'not-seen', button: step.button, code, events: events().map((e) => e.value), x: p?.x ?? null, y: p?.y ?? null };
  return { ok: seen, values, text: seen ? `${what}: the guest saw BTN_${step.button.toUpperCase()} (0x${code.toString(16)}) pressed and released at ${p?.x ?? '?'} ${p?.y ?? '?'}` : `${what}: the guest did not see the click within ${INPUT_WAIT_S} s` };
}
