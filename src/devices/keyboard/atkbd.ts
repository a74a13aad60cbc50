// The AT keyboard driver on a serio port in translated mode (Linux drivers/input/keyboard/
// atkbd.c), as it binds to hyperv-keyboard's port (SERIO_8042_XL): bytes are scancode set 1;
// 0xE0 marks the next code as extended, 0xE1 swallows the code after it and extends the one after
// that (Pause), bit 7 is the release. Each code maps through the keycode table to a KEY_* code and
// becomes input_report_key + input_sync. A code the table does not know prints atkbd's two lines.
// The port has no write method, so atkbd sends no commands and assumes set 2 with id 0xab00.
import type { GuestServices } from '../device.js';
import { EV, KEY } from '../input/codes.js';
import { BUS_I8042, type InputDeviceHandle, type InputLayer } from '../input/layer.js';

/** The scancodes with the top bit set in the table below are the E0-prefixed ones. */
const E0 = 0x80;

/**
 * Set-1 code (E0 codes | 0x80) → KEY_*. Codes 0x01..0x53 and 0x56..0x58 are their own key codes
 * in input-event-codes.h (KEY_ESC = 1 … KEY_KPDOT = 83, KEY_102ND = 86, KEY_F11 = 87,
 * KEY_F12 = 88); the extended keys are the 101-key keyboard's.
 */
export const ATKBD_KEYCODES: ReadonlyMap<number, number> = new Map<number, number>([
  ...Array.from({ length: 0x53 }, (_, i): [number, number] => [i + 1, i + 1]),
  [0x54, KEY.SYSRQ],
  [0x56, KEY.KEY_102ND],
  [0x57, KEY.F11],
  [0x58, KEY.F12],
  [E0 | 0x1c, KEY.KPENTER],
  [E0 | 0x1d, KEY.RIGHTCTRL],
  [E0 | 0x35, KEY.KPSLASH],
  [E0 | 0x37, KEY.SYSRQ],
  [E0 | 0x38, KEY.RIGHTALT],
  [E0 | 0x45, KEY.PAUSE],
  [E0 | 0x47, KEY.HOME],
  [E0 | 0x48, KEY.UP],
  [E0 | 0x49, KEY.PAGEUP],
  [E0 | 0x4b, KEY.LEFT],
  [E0 | 0x4d, KEY.RIGHT],
  [E0 | 0x4f, KEY.END],
  [E0 | 0x50, KEY.DOWN],
  [E0 | 0x51, KEY.PAGEDOWN],
  [E0 | 0x52, KEY.INSERT],
  [E0 | 0x53, KEY.DELETE],
  [E0 | 0x5b, KEY.LEFTMETA],
  [E0 | 0x5c, KEY.RIGHTMETA],
  [E0 | 0x5d, KEY.COMPOSE],
]);

/** The name atkbd gives a keyboard behind a translating 8042 ("AT %s Set %d keyboard"). */
export const ATKBD_NAME = 'AT Translated Set 2 keyboard';

export class Atkbd {
  readonly dev: InputDeviceHandle | undefined;
  /** Prefix state: 1 after E0, 2 after E1 (atkbd->emul). */
  private emul = 0;
  /** Codes no key is mapped to. */
  unknown = 0;
  /** Bytes taken from the port. */
  bytes = 0;

  constructor(
    input: InputLayer,
    private readonly services: GuestServices,
    /** The serio port's sysfs path and its phys ("<vmbus device>" for hyperv-keyboard). */
    readonly serio: { readonly path: string; readonly name: string; readonly phys: string },
  ) {
    this.dev = input.register({ name: ATKBD_NAME, parent: serio.path, phys: `${serio.phys}/input0`, id: { bustype: BUS_I8042, vendor: 0x0001, product: 0x0001, version: 0xab00 } });
  }

  /** atkbd_interrupt: one byte from the port. */
  interrupt(byte: number): void {
    this.bytes++;
    const b = byte & 0xff;
    if (b === 0xe0) {
      this.emul = 1;
      return;
    }
    if (b === 0xe1) {
      this.emul = 2;
      return;
    }
    // ATKBD_RET_ERR and ATKBD_RET_ERR2: the controller's overrun codes.
    if (b === 0xff || b === 0x00) {
      this.services.log('warn', `atkbd ${this.serio.name}: Keyboard on ${this.serio.phys} reports too many keys pressed.`);
      this.emul = 0;
      return;
    }
    if (this.emul === 2) {
      this.emul = 1;
      return;
    }
    const release = (b & 0x80) !== 0;
    const code = (b & 0x7f) | (this.emul === 1 ? E0 : 0);
    this.emul = 0;
    const keycode = ATKBD_KEYCODES.get(code);
    if (keycode === undefined) {
      this.unknown++;
      this.services.log('warn', `atkbd ${this.serio.name}: Unknown key ${release ? 'released' : 'pressed'} (translated set 2, code 0x${code.toString(16)} on ${this.serio.phys}).`);
      this.services.log('warn', `atkbd ${this.serio.name}: Use 'setkeycodes ${code & E0 ? 'e0' : ''}${(code & 0x7f).toString(16).padStart(2, '0')} <keycode>' to make it known.`);
      return;
    }
    // A make while the key is down is an autorepeat (value 2), as atkbd reports it.
    this.dev?.event(EV.KEY, keycode, release ? 0 : this.dev.keysDown.has(keycode) ? 2 : 1);
    this.dev?.sync();
  }
}
