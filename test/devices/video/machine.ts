// A booted machine whose last drawing reached the host, and its video pieces, for the video tests.
import { HVFB_ONDEMAND_THROTTLE_NS, type HvfbDevice, type HypervFbModule } from '../../../src/devices/video/guest.js';
import type { SynthvidHost } from '../../../src/devices/video/host.js';
import type { ReleaseId } from '../../../src/hypervisor/release.js';
import { Machine, type MachineConfig } from '../../../src/vm/machine.js';
import BitmapFont from 'simple-bitmap-font';

export function boot(release: ReleaseId, extra: MachineConfig = {}): { m: Machine; video: SynthvidHost } {
  const m = new Machine({ release, vps: 2, memory: 64 << 20, ...extra });
  m.boot();
  // Past the guest's update throttle, so its last drawing reached the host.
  m.runFor(3 * HVFB_ONDEMAND_THROTTLE_NS);
  const video = m.devices.find((d) => d.type === 'video') as SynthvidHost;
  return { m, video };
}


/** The guest's hyperv_fb device (fb0). */
export function guestFb(m: Machine): HvfbDevice {
  return (m.kernel.options.modules.find((x) => x.name === 'hyperv_fb') as HypervFbModule).driver!.devices[0]!;
}

/** The reference: grey-on-black 8x16 cells (each 8x8 glyph row twice), an underline cursor. */
export function reference(lines: readonly string[], width: number, height: number, cursor: { row: number; col: number }): Uint8Array {
  const font = new BitmapFont();
  const img = new Uint8Array(width * height * 4);
  for (let i = 3; i < img.length; i += 4) img[i] = 255;
  const set = (x: number, y: number) => {
    const o = (y * width + x) * 4;
    img[o] = img[o + 1] = img[o + 2] = 0xaa;
  };
  lines.forEach((line, row) => {
    [...line].forEach((ch, col) => {
      const rows = font.font8x8_allChars[font.getIndexForLetter(ch)]!;
      for (let y = 0; y < 16; y++) for (let x = 0; x < 8; x++) if (rows[y >> 1]! & (1 << x)) set(col * 8 + x, row * 16 + y);
    });
  });
  for (let y = 14; y < 16; y++) for (let x = 0; x < 8; x++) set(cursor.col * 8 + x, cursor.row * 16 + y);
  return img;
}

/**
 * The console's text for these log lines and then `tail` (what a tty wrote after them, lines
 * split at newlines): wrapped at `cols`, the last `rows` rows (the cursor's own row last).
 */
export function screenText(logLines: readonly string[], cols: number, rows: number, tail = ''): { lines: string[]; cursor: { row: number; col: number } } {
  const all: string[] = [];
  const wrap = (l: string) => {
    for (let i = 0; i < Math.max(1, l.length); i += cols) all.push(l.slice(i, i + cols));
  };
  for (const l of logLines) wrap(l);
  const tty = tail.split('\n');
  for (const l of tty.slice(0, -1)) wrap(l);
  const last = tty.at(-1)!;
  all.push(last.slice(Math.floor(last.length / cols) * cols));
  const shown = all.slice(-rows);
  return { lines: shown, cursor: { row: shown.length - 1, col: last.length % cols } };
}
