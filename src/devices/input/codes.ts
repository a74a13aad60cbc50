// Linux input event codes (include/uapi/linux/input-event-codes.h): the event types, and the
// key, button and axis codes the guest's keyboard and mouse produce.

export const EV = { SYN: 0x00, KEY: 0x01, REL: 0x02, ABS: 0x03 } as const;
export const SYN_REPORT = 0;

export const ABS_X = 0x00;
export const ABS_Y = 0x01;
export const REL_X = 0x00;
export const REL_Y = 0x01;
export const REL_HWHEEL = 0x06;
export const REL_WHEEL = 0x08;

export const BTN_MOUSE = 0x110;
export const BTN_LEFT = 0x110;
export const BTN_RIGHT = 0x111;
export const BTN_MIDDLE = 0x112;

/** The KEY_* codes of the keys the model's keymap and tests name (a US 105-key keyboard). */
export const KEY = {
  ESC: 1,
  BACKSPACE: 14,
  TAB: 15,
  ENTER: 28,
  LEFTCTRL: 29,
  LEFTSHIFT: 42,
  RIGHTSHIFT: 54,
  KPASTERISK: 55,
  LEFTALT: 56,
  SPACE: 57,
  CAPSLOCK: 58,
  F1: 59,
  F10: 68,
  NUMLOCK: 69,
  SCROLLLOCK: 70,
  KPDOT: 83,
  KEY_102ND: 86,
  F11: 87,
  F12: 88,
  KPENTER: 96,
  RIGHTCTRL: 97,
  KPSLASH: 98,
  SYSRQ: 99,
  RIGHTALT: 100,
  HOME: 102,
  UP: 103,
  PAGEUP: 104,
  LEFT: 105,
  RIGHT: 106,
  END: 107,
  DOWN: 108,
  PAGEDOWN: 109,
  INSERT: 110,
  DELETE: 111,
  PAUSE: 119,
  LEFTMETA: 125,
  RIGHTMETA: 126,
  COMPOSE: 127,
} as const;

/** Names of the event types, for state() and logs. */
export const EV_NAMES: Readonly<Record<number, string>> = { 0: 'EV_SYN', 1: 'EV_KEY', 2: 'EV_REL', 3: 'EV_ABS' };
