// A booted machine with a keyboard and a mouse, and what the input tests look at.
import type { KeyboardOptions, KeyboardHost } from '../../../src/devices/keyboard/host.js';
import type { MouseHost, MouseOptions } from '../../../src/devices/mouse/host.js';
import type { ReleaseId } from '../../../src/hypervisor/release.js';
import { Machine } from '../../../src/vm/machine.js';
import { guestInput, hostKeyboard, hostMouse } from '../../../src/vm/input.js';
import type { KeyboardModule } from '../../../src/devices/keyboard/guest.js';
import type { MouseModule } from '../../../src/devices/mouse/guest.js';

export interface InputVm {
  m: Machine;
  kb: KeyboardHost;
  ms: MouseHost;
  /** The kernel log's lines. */
  log(): string[];
  /** Lets virtual time run until `done` (at most `s` seconds). */
  until(done: () => boolean, s?: number): boolean;
  kbdModule: KeyboardModule;
  mouseModule: MouseModule;
}

export function bootInput(opts: { release?: ReleaseId; keyboard?: KeyboardOptions; mouse?: MouseOptions; pageSize?: number } = {}): InputVm {
  const m = new Machine({
    release: opts.release ?? 'ws2022',
    vps: 1,
    devices: [{ type: 'keyboard', ...(opts.keyboard ? { keyboard: opts.keyboard } : {}) }, { type: 'mouse', ...(opts.mouse ? { mouse: opts.mouse } : {}) }, { type: 'shutdown' }],
  });
  m.boot();
  m.runFor(1e9);
  const mod = (name: string) => m.kernel.options.modules.find((x) => x.name === name);
  return {
    m,
    kb: hostKeyboard(m)!,
    ms: hostMouse(m)!,
    log: () => m.kernel.log.records.map((r) => r.text),
    until: (done, s = 10) => m.waitUntil(done, s * 1e9),
    kbdModule: mod('hyperv_keyboard') as KeyboardModule,
    mouseModule: mod('hid_hyperv') as MouseModule,
  };
}

/** The tty's screen of a booted input VM. */
export const screen = (vm: InputVm): string[] => guestInput(vm.m).tty.screen();
