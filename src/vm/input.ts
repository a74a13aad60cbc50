// The input devices of a machine, from code: the host's keyboard and mouse, and the guest's input
// layer (its input devices, events and tty).
import type { KeyboardHost } from '../devices/keyboard/host.js';
import type { KeyboardModule } from '../devices/keyboard/guest.js';
import type { MouseHost } from '../devices/mouse/host.js';
import { GuestInput } from '../guest/input/index.js';
import type { Machine } from './machine.js';

/** The guest's input layer; throws if the guest has none or has not loaded an input driver. */
export function guestInput(m: Machine): GuestInput {
  const mod = m.kernel.options.modules.find((x) => x.name === 'hyperv_keyboard' || x.name === 'hid_hyperv') as KeyboardModule | undefined;
  const input = mod?.input;
  if (!(input instanceof GuestInput) || !input.isStarted) throw new Error(m.kernel.vmbus?.status === 'connected' ? 'the guest has no input drivers' : 'the guest has no VMBus connection: boot the machine first');
  return input;
}

/** Keystrokes the guest's hyperv_keyboard driver has taken from its channels. */
export function guestKeystrokes(m: Machine): number {
  const mod = m.kernel.options.modules.find((x) => x.name === 'hyperv_keyboard') as KeyboardModule | undefined;
  return mod?.driver?.devices.reduce((n, d) => n + d.keystrokes, 0) ?? 0;
}

export const hostKeyboard = (m: Machine): KeyboardHost | undefined => m.host.device<KeyboardHost>('keyboard');
export const hostMouse = (m: Machine): MouseHost | undefined => m.host.device<MouseHost>('mouse');

/** Both sides' input state, for --json and the dashboard. */
export function inputState(m: Machine): { keyboard?: unknown; mouse?: unknown; guest?: unknown } {
  let guest: unknown;
  try {
    guest = guestInput(m).state();
  } catch {
    // no guest side
  }
  return { keyboard: hostKeyboard(m)?.state(), mouse: hostMouse(m)?.state(), guest };
}
