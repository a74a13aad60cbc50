// What the host's keyboard sends for text and key names: IBM PC scancode set 1 (the XT set that
// Hyper-V's synthetic keyboard carries, as Linux's hyperv-keyboard.c feeds it to atkbd as an
// 8042 in translated mode), US layout. Make codes from the IBM PC/AT Technical Reference; the
// E0-prefixed keys are those of the 101-key keyboard.

/** A key as the keyboard sends it: its make code and whether it is E0-prefixed. */
export interface ScanKey {
  readonly code: number;
  readonly e0: boolean;
}

const key = (code: number, e0 = false): ScanKey => ({ code, e0 });

/** Set-1 make codes of the printable keys, unshifted and shifted, row by row. */
const ROWS: readonly [number, string, string][] = [
  [0x02, '1234567890-=', '!@#$%^&*()_+'],
  [0x10, 'qwertyuiop[]', 'QWERTYUIOP{}'],
  [0x1e, "asdfghjkl;'`", 'ASDFGHJKL:"~'],
  [0x2b, '\\zxcvbnm,./', '|ZXCVBNM<>?'],
];

/** ASCII → its key and whether Shift is held for it. */
export const ASCII_KEYS: ReadonlyMap<string, { key: ScanKey; shift: boolean }> = (() => {
  const m = new Map<string, { key: ScanKey; shift: boolean }>();
  for (const [first, plain, shifted] of ROWS) {
    [...plain].forEach((c, i) => m.set(c, { key: key(first + i), shift: false }));
    [...shifted].forEach((c, i) => m.set(c, { key: key(first + i), shift: true }));
  }
  m.set(' ', { key: key(0x39), shift: false });
  m.set('\n', { key: key(0x1c), shift: false });
  m.set('\t', { key: key(0x0f), shift: false });
  m.set('\b', { key: key(0x0e), shift: false });
  m.set('\x1b', { key: key(0x01), shift: false });
  return m;
})();

/** Modifier keys by the names a combo uses. */
export const MODIFIER_KEYS: Readonly<Record<string, ScanKey>> = {
  CTRL: key(0x1d),
  LCTRL: key(0x1d),
  RCTRL: key(0x1d, true),
  SHIFT: key(0x2a),
  LSHIFT: key(0x2a),
  RSHIFT: key(0x36),
  ALT: key(0x38),
  LALT: key(0x38),
  RALT: key(0x38, true),
  ALTGR: key(0x38, true),
  META: key(0x5b, true),
  WIN: key(0x5b, true),
  SUPER: key(0x5b, true),
};

/** Named keys a combo may end with (besides a letter, digit or printable character). */
export const NAMED_KEYS: Readonly<Record<string, ScanKey>> = {
  ESC: key(0x01),
  ESCAPE: key(0x01),
  BACKSPACE: key(0x0e),
  TAB: key(0x0f),
  ENTER: key(0x1c),
  RETURN: key(0x1c),
  SPACE: key(0x39),
  CAPSLOCK: key(0x3a),
  ...Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`F${i + 1}`, key(0x3b + i)])),
  F11: key(0x57),
  F12: key(0x58),
  NUMLOCK: key(0x45),
  SCROLLLOCK: key(0x46),
  HOME: key(0x47, true),
  UP: key(0x48, true),
  PAGEUP: key(0x49, true),
  PGUP: key(0x49, true),
  LEFT: key(0x4b, true),
  RIGHT: key(0x4d, true),
  END: key(0x4f, true),
  DOWN: key(0x50, true),
  PAGEDOWN: key(0x51, true),
  PGDN: key(0x51, true),
  INSERT: key(0x52, true),
  INS: key(0x52, true),
  DELETE: key(0x53, true),
  DEL: key(0x53, true),
  MENU: key(0x5d, true),
};

/** A combo as keys: the modifiers (pressed in order, released in reverse), then the key. */
export interface Combo {
  readonly modifiers: readonly ScanKey[];
  readonly key: ScanKey;
}

/**
 * Parses "CTRL+ALT+DEL", "SHIFT+F1", "ctrl+c", "ENTER": names are case-insensitive, joined by
 * '+'; every part but the last is a modifier. Returns a reason string when it is not a combo.
 */
export function parseCombo(text: string): Combo | string {
  const parts = text.split('+').map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => p === '')) return `"${text}" is not a key combination (NAME+NAME+…)`;
  const last = parts.pop()!;
  const modifiers: ScanKey[] = [];
  for (const p of parts) {
    const m = MODIFIER_KEYS[p.toUpperCase()];
    if (!m) return `"${p}" is not a modifier (CTRL, SHIFT, ALT, ALTGR, META and their L/R forms)`;
    modifiers.push(m);
  }
  const upper = last.toUpperCase();
  const k = NAMED_KEYS[upper] ?? MODIFIER_KEYS[upper] ?? (last.length === 1 ? ASCII_KEYS.get(last.toLowerCase())?.key : undefined);
  if (!k) return `"${last}" is not a key name (a letter, a digit, ENTER, ESC, TAB, F1..F12, UP, DOWN, LEFT, RIGHT, HOME, END, DEL, …)`;
  return { modifiers, key: k };
}
