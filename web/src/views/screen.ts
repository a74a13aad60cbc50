// The VM's screen and keyboard: a canvas showing the host's copy of the guest's screen (the
// synthvid back end's frame), redrawn at an animation frame only when the guest sent an update,
// and the page's keys and pointer sent to the guest through the synthetic keyboard and mouse.
// The devices' hosts live in the page in both modes (in-thread and guest in a worker).
import type { KeyboardHost } from '../../../src/devices/keyboard/host.js';
import { ASCII_KEYS, MODIFIER_KEYS, NAMED_KEYS, type ScanKey } from '../../../src/devices/keyboard/keymap.js';
import type { MouseHost } from '../../../src/devices/mouse/host.js';
import { MOUSE_ABS_MAX, type MouseButton } from '../../../src/devices/mouse/report-descriptor.js';
import type { ScreenDamage, ScreenRect, SynthvidHost } from '../../../src/devices/video/host.js';
import { setText } from './dom.js';

/** The host ends the panel drives; any may be missing (a VM without that device). */
export interface ScreenDevices {
  readonly video: SynthvidHost | undefined;
  readonly keyboard: KeyboardHost | undefined;
  readonly mouse: MouseHost | undefined;
}

/** KeyboardEvent.code of a modifier → its key in scancode set 1 (keymap.ts's names). */
const MODIFIER_CODES: Readonly<Record<string, ScanKey>> = {
  ShiftLeft: MODIFIER_KEYS.LSHIFT!,
  ShiftRight: MODIFIER_KEYS.RSHIFT!,
  ControlLeft: MODIFIER_KEYS.LCTRL!,
  ControlRight: MODIFIER_KEYS.RCTRL!,
  AltLeft: MODIFIER_KEYS.LALT!,
  AltRight: MODIFIER_KEYS.RALT!,
};

/** KeyboardEvent.key of a non-printing key → its name in keymap.ts's NAMED_KEYS. */
const KEY_NAMES: Readonly<Record<string, string>> = {
  Enter: 'ENTER',
  Backspace: 'BACKSPACE',
  Tab: 'TAB',
  Escape: 'ESC',
  ArrowUp: 'UP',
  ArrowDown: 'DOWN',
  ArrowLeft: 'LEFT',
  ArrowRight: 'RIGHT',
  Home: 'HOME',
  End: 'END',
  PageUp: 'PAGEUP',
  PageDown: 'PAGEDOWN',
  Insert: 'INSERT',
  Delete: 'DELETE',
  ...Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`F${i + 1}`, `F${i + 1}`])),
};

/** PointerEvent.button → the synthetic mouse's button. */
const BUTTONS: readonly (MouseButton | undefined)[] = ['left', 'middle', 'right'];

export class ScreenPanel {
  private devices: ScreenDevices | undefined;
  private readonly ctx: CanvasRenderingContext2D;
  /** The video host the canvas shows, what changed in its screen since the last draw, and the pixels drawn (kept from draw to draw). */
  private shown: { video: SynthvidHost; damage: ScreenDamage } | undefined;
  private image: ImageData | undefined;
  /** Modifiers held down on the guest's keyboard, by KeyboardEvent.code. */
  private readonly held = new Set<string>();
  /** Draws (each the damaged rectangles converted into the kept ImageData and put on the canvas), and the wall time they took. */
  draws = 0;
  drawMs = 0;
  /** Pixels converted and put on the canvas, in all (a whole frame is width × height). */
  pixels = 0;

  constructor(
    readonly canvas: HTMLCanvasElement,
    private readonly status: HTMLElement,
    ctrlAltDel: HTMLButtonElement,
  ) {
    this.ctx = canvas.getContext('2d')!;
    canvas.addEventListener('keydown', (e) => this.onKey(e, true));
    canvas.addEventListener('keyup', (e) => this.onKey(e, false));
    // Keys still held when the canvas loses focus are released, or the guest would see them stuck.
    canvas.addEventListener('blur', () => this.releaseModifiers());
    canvas.addEventListener('pointermove', (e) => this.onPointer(e));
    canvas.addEventListener('pointerdown', (e) => {
      canvas.focus();
      this.onPointer(e, true);
    });
    canvas.addEventListener('pointerup', (e) => this.onPointer(e, false));
    canvas.addEventListener('contextmenu', (e) => e.preventDefault());
    canvas.addEventListener(
      'wheel',
      (e) => {
        if (!this.devices?.mouse || e.deltaY === 0) return;
        e.preventDefault();
        // DOM deltaY > 0 scrolls down; the wheel's positive detents are away from the user.
        this.devices.mouse.scroll(-Math.sign(e.deltaY));
      },
      { passive: false },
    );
    ctrlAltDel.addEventListener('click', () => {
      this.devices?.keyboard?.pressCombo('CTRL+ALT+DEL');
      canvas.focus();
    });
  }

  /** A new session's devices (or none): the canvas is cleared until the guest sets a mode. */
  attach(devices: ScreenDevices | undefined): void {
    this.held.clear();
    this.devices = devices;
    if (this.shown) this.shown.video.unwatch(this.shown.damage);
    this.shown = devices?.video ? { video: devices.video, damage: devices.video.watch() } : undefined;
    this.image = undefined;
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
  }

  /**
   * Called at every animation frame: redraws only when the guest's screen changed since, and
   * then only the rectangles that changed, into one ImageData kept from draw to draw.
   */
  render(): void {
    const d = this.devices;
    const video = d?.video;
    const s = video?.situation;
    const shown = this.shown;
    if (shown && s && shown.damage.pending) {
      const t0 = performance.now();
      let image = this.image;
      let rects = shown.damage.take(s.width, s.height);
      if (!image || image.width !== s.width || image.height !== s.height) {
        if (this.canvas.width !== s.width || this.canvas.height !== s.height) {
          this.canvas.width = s.width;
          this.canvas.height = s.height;
        }
        image = this.image = new ImageData(s.width, s.height);
        rects = 'all';
      }
      const todo: ScreenRect[] = rects === 'all' ? [{ x1: 0, y1: 0, x2: s.width, y2: s.height }] : rects;
      for (const r of todo) {
        shown.video.renderRect(image.data, r);
        this.ctx.putImageData(image, 0, 0, r.x1, r.y1, r.x2 - r.x1, r.y2 - r.y1);
        this.pixels += (r.x2 - r.x1) * (r.y2 - r.y1);
      }
      this.draws++;
      this.drawMs += performance.now() - t0;
      this.canvas.dataset.updates = String(video.updates);
    }
    const kb = d?.keyboard;
    const mouse = d?.mouse;
    setText(
      this.status,
      !d
        ? 'not booted'
        : [
            video ? (s ? `screen ${s.width}×${s.height}, ${video.updates} updates` : 'screen: no mode set yet') : 'no video device',
            kb ? `keyboard ${kb.phase}, ${kb.sent} keystrokes sent` : 'no keyboard',
            mouse ? `mouse ${mouse.phase}` : 'no mouse',
          ].join(' · '),
    );
  }

  private onKey(e: KeyboardEvent, down: boolean): void {
    const kb = this.devices?.keyboard;
    if (!kb) return;
    const mod = MODIFIER_CODES[e.code];
    if (mod) {
      e.preventDefault();
      if (down === this.held.has(e.code)) return;
      if (down) this.held.add(e.code);
      else this.held.delete(e.code);
      kb.press(mod.code, { e0: mod.e0, break: !down });
      return;
    }
    // Other keys go as a make and break at each keydown (a repeat is another keystroke, as a
    // typematic key's repeated make would be); their keyup has nothing left to send.
    const named = KEY_NAMES[e.key];
    const k = named ? NAMED_KEYS[named] : undefined;
    const ascii = !k && e.key.length === 1 ? ASCII_KEYS.get(e.key) : undefined;
    if (!k && !ascii) return;
    e.preventDefault();
    if (!down) return;
    if (k) {
      kb.tap(k);
      return;
    }
    // The character's own Shift state, whatever Shift the page's layout needed for it.
    const shiftHeld = this.held.has('ShiftLeft') || this.held.has('ShiftRight');
    const shift = MODIFIER_KEYS.LSHIFT!;
    if (ascii!.shift && !shiftHeld) kb.press(shift.code);
    if (!ascii!.shift && shiftHeld) this.setShift(false);
    kb.tap(ascii!.key);
    if (ascii!.shift && !shiftHeld) kb.press(shift.code, { break: true });
    if (!ascii!.shift && shiftHeld) this.setShift(true);
  }

  /** Releases or presses again the Shift keys the page holds down. */
  private setShift(down: boolean): void {
    for (const code of ['ShiftLeft', 'ShiftRight']) {
      if (this.held.has(code)) this.devices!.keyboard!.press(MODIFIER_CODES[code]!.code, { break: !down });
    }
  }

  private releaseModifiers(): void {
    const kb = this.devices?.keyboard;
    for (const code of this.held) kb?.press(MODIFIER_CODES[code]!.code, { e0: MODIFIER_CODES[code]!.e0, break: true });
    this.held.clear();
  }

  private onPointer(e: PointerEvent, down?: boolean): void {
    const mouse = this.devices?.mouse;
    if (!mouse) return;
    // The canvas is scaled to fit the panel: its box, not its pixels, spans the device's range.
    const r = this.canvas.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0) return;
    const x = ((e.clientX - r.left) / r.width) * MOUSE_ABS_MAX;
    const y = ((e.clientY - r.top) / r.height) * MOUSE_ABS_MAX;
    if (mouse.x !== Math.round(x) || mouse.y !== Math.round(y)) mouse.move(x, y);
    const b = BUTTONS[e.button];
    if (down !== undefined && b) {
      e.preventDefault();
      mouse.button(b, down);
    }
  }
}
