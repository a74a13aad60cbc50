// The console keyboard handler (Linux drivers/tty/vt/keyboard.c with the US defkeymap): key
// events become characters for the tty, with Shift, Caps Lock, Ctrl and Alt applied; the cursor
// and editing keys send the VT100 sequences the console sends; Ctrl+Alt+Del is K_BOOT, which
// calls ctrl_alt_del(): with the kernel's default (C_A_D on), the machine restarts at once
// (kernel_restart, "reboot: Restarting system"), from a work item as deferred_cad runs.
import { EV, KEY } from '../../devices/input/codes.js';
import type { InputDevice, InputEvent } from './core.js';

/** KEY_* → [plain, shifted] for the printable keys, from the US layout. */
const ROWS: readonly [number, string, string][] = [
  [2, '1234567890-=', '!@#$%^&*()_+'],
  [16, 'qwertyuiop[]', 'QWERTYUIOP{}'],
  [30, "asdfghjkl;'`", 'ASDFGHJKL:"~'],
  [43, '\\zxcvbnm,./', '|ZXCVBNM<>?'],
];

export const US_KEYMAP: ReadonlyMap<number, readonly [string, string]> = (() => {
  const m = new Map<number, readonly [string, string]>();
  for (const [first, plain, shifted] of ROWS) [...plain].forEach((c, i) => m.set(first + i, [c, shifted[i]!]));
  m.set(KEY.SPACE, [' ', ' ']);
  m.set(KEY.KPASTERISK, ['*', '*']);
  m.set(KEY.KPSLASH, ['/', '/']);
  return m;
})();

/** Keys that send a fixed string (the console's K_ENTER, K_BACKSPACE (DEL), cursor keys). */
const SPECIAL: ReadonlyMap<number, string> = new Map([
  [KEY.ENTER, '\r'],
  [KEY.KPENTER, '\r'],
  [KEY.BACKSPACE, '\x7f'],
  [KEY.TAB, '\t'],
  [KEY.ESC, '\x1b'],
  [KEY.UP, '\x1b[A'],
  [KEY.DOWN, '\x1b[B'],
  [KEY.RIGHT, '\x1b[C'],
  [KEY.LEFT, '\x1b[D'],
  [KEY.HOME, '\x1b[1~'],
  [KEY.INSERT, '\x1b[2~'],
  [KEY.DELETE, '\x1b[3~'],
  [KEY.END, '\x1b[4~'],
  [KEY.PAGEUP, '\x1b[5~'],
  [KEY.PAGEDOWN, '\x1b[6~'],
  ...Array.from({ length: 5 }, (_, i): [number, string] => [KEY.F1 + i, `\x1b[[${String.fromCharCode(65 + i)}`]),
]);

export interface KeyboardHandlerActions {
  /** Characters for the tty. */
  chars(text: string): void;
  /** ctrl_alt_del(). */
  ctrlAltDel(): void;
}

const MODIFIERS: ReadonlySet<number> = new Set([KEY.LEFTSHIFT, KEY.RIGHTSHIFT, KEY.LEFTCTRL, KEY.RIGHTCTRL, KEY.LEFTALT, KEY.RIGHTALT]);

export class ConsoleKeyboard {
  private capsLock = false;
  /** Modifiers down as the events seen so far say (kbd's shift_state), not the device's state now. */
  private readonly held = new Set<number>();
  /** Ctrl+Alt+Del presses seen. */
  cad = 0;

  constructor(private readonly actions: KeyboardHandlerActions) {}

  /** kbd_event: a key event of a keyboard device; others are not the console's. */
  event(_dev: InputDevice, ev: InputEvent): void {
    if (ev.type !== EV.KEY) return;
    if (MODIFIERS.has(ev.code)) {
      if (ev.value === 0) this.held.delete(ev.code);
      else this.held.add(ev.code);
      return;
    }
    if (ev.value === 0) return;
    const down = this.held;
    const shift = down.has(KEY.LEFTSHIFT) || down.has(KEY.RIGHTSHIFT);
    const ctrl = down.has(KEY.LEFTCTRL) || down.has(KEY.RIGHTCTRL);
    const alt = down.has(KEY.LEFTALT) || down.has(KEY.RIGHTALT);
    if (ev.code === KEY.CAPSLOCK) {
      if (ev.value === 1) this.capsLock = !this.capsLock;
      return;
    }
    // defkeymap: Ctrl+Alt+Del and Ctrl+Alt+KP_Period are Boot.
    if (ctrl && alt && (ev.code === KEY.DELETE || ev.code === KEY.KPDOT)) {
      this.cad++;
      return this.actions.ctrlAltDel();
    }
    const special = SPECIAL.get(ev.code);
    if (special !== undefined) return this.actions.chars(alt ? `\x1b${special}` : special);
    const pair = US_KEYMAP.get(ev.code);
    if (!pair) return;
    let c = pair[shift ? 1 : 0];
    if (this.capsLock && /^[a-z]$/i.test(c)) c = shift ? c.toLowerCase() : c.toUpperCase();
    // Ctrl folds @, letters and [\]^_ onto the control characters.
    if (ctrl) {
      const code = c.toUpperCase().charCodeAt(0);
      if (code >= 0x40 && code <= 0x5f) c = String.fromCharCode(code & 0x1f);
      else if (c === ' ') c = '\0';
    }
    this.actions.chars(alt ? `\x1b${c}` : c);
  }
}
