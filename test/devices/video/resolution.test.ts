// Mode changes from both sides, and the console's damage as dirty rectangles: fbset within the
// negotiated size (hvfb_check_var's limits), the host's default resolution (Set-VMVideo), and a
// one-line change reaching the host as that line only.
import { describe, expect, it } from 'vitest';
import { DEFAULT_DEVICES } from '../../../src/devices/catalog.js';
import { HVFB_ONDEMAND_THROTTLE_NS } from '../../../src/devices/video/guest.js';
import { HOST_RESOLUTIONS } from '../../../src/devices/video/host.js';
import { boot, guestFb } from './machine.js';

const settle = 3 * HVFB_ONDEMAND_THROTTLE_NS;

describe('guest-side mode change (fbset)', () => {
  it('800x600 within 1024x768: the host gets the situation (same pitch), the console lays out again', () => {
    const { m, video } = boot('ws2022');
    const fb = guestFb(m);
    const con = m.kernel.services.fbcon!;
    expect([con.cols, con.rows]).toEqual([128, 48]);
    const lastLine = con.text().filter(Boolean).pop()!;
    expect(fb.setMode(800, 600)).toBeUndefined();
    m.runFor(settle);
    // hvfb_set_par leaves fix.line_length at the largest mode's.
    expect(video.situation).toEqual({ width: 800, height: 600, depth: 32, stride: 4096, vramOffset: 0 });
    expect([con.cols, con.rows]).toEqual([100, 37]);
    expect(con.text()).toContain(lastLine.slice(0, 100));
    const frame = video.render()!;
    expect([frame.width, frame.height, frame.rgba.length]).toEqual([800, 600, 800 * 600 * 4]);
    // Back up to the largest mode is allowed; the screen follows.
    expect(fb.setMode(1024, 768)).toBeUndefined();
    m.runFor(settle);
    expect(video.situation?.width).toBe(1024);
    expect([con.cols, con.rows]).toEqual([128, 48]);
  });

  it('refuses modes beyond the negotiated size or below 640x480 (EINVAL), leaving the mode as it was', () => {
    const { m, video } = boot('ws2022');
    const fb = guestFb(m);
    for (const [w, h] of [[1152, 864], [1024, 769], [639, 480], [640, 479], [800.5, 600]] as const) expect(fb.setMode(w, h), `${w}x${h}`).toBe('EINVAL');
    m.runFor(settle);
    expect(video.situation).toMatchObject({ width: 1024, height: 768 });
  });
});

describe('host-side resolution (Set-VMVideo)', () => {
  const devices = (width: number, height: number) => DEFAULT_DEVICES.map((type) => (type === 'video' ? { type, video: { resolution: { width, height } } } : { type }));

  it('a 3.5 guest boots at the default the host lists', () => {
    const { m, video } = boot('ws2022', { devices: devices(1280, 1024) });
    expect(video.situation).toMatchObject({ width: 1280, height: 1024, stride: 5120 });
    expect([m.kernel.services.fbcon!.cols, m.kernel.services.fbcon!.rows]).toEqual([160, 64]);
    expect(guestFb(m).setMode(1024, 768)).toBeUndefined();
  });

  it('a 3.2 guest (2012 R2) asks no list and keeps the 1152x864 default', () => {
    const { video } = boot('ws2012r2', { devices: devices(1280, 1024) });
    expect(video.situation).toMatchObject({ width: 1152, height: 864 });
  });

  it('the host refuses a resolution it does not list', () => {
    const { video } = boot('ws2022');
    expect(() => video.setResolution({ width: 1000, height: 700 })).toThrow(/1000x700 is not one of 640x480/);
    video.setResolution(HOST_RESOLUTIONS[0]!);
    expect(video.resolution).toEqual({ width: 640, height: 480 });
  });
});

describe('the console and its dirty rectangles', () => {
  it('a line written reaches the host as that line only; a scroll as the whole screen', () => {
    const { m, video } = boot('ws2022');
    const con = m.kernel.services.fbcon!;
    // A fresh line below the shell's prompt.
    con.write('\n');
    m.runFor(settle);
    const row = con.row;
    const before = video.updates;
    con.write('hello');
    m.runFor(settle);
    expect(video.updates).toBe(before + 1);
    expect(video.lastDirt).toEqual([{ x1: 0, y1: row * 16, x2: 1024, y2: (row + 1) * 16 }]);
    expect(con.text()[row]).toBe('hello');
    // Backspace moves back, the next character overwrites; \r returns; \t goes to column 8.
    con.write('\b\bP!\rJ\tx');
    expect(con.text()[row]).toBe('JelP!   x');
    // Enough lines to scroll: the whole screen is damaged.
    con.write('\n'.repeat(60) + 'bottom');
    m.runFor(settle);
    expect(con.scrolls).toBeGreaterThan(0);
    expect(video.lastDirt).toEqual([{ x1: 0, y1: 0, x2: 1024, y2: 768 }]);
    expect(con.text()[47]).toBe('bottom');
    // Updates are throttled: many writes inside one period make one DIRT.
    const n = video.updates;
    for (let i = 0; i < 20; i++) con.write('.');
    m.runFor(settle);
    expect(video.updates).toBe(n + 1);
  });

  it('a viewer leaving (feature change without dirt) stops the updates; one attaching restarts them', () => {
    const { m, video } = boot('ws2022');
    const con = m.kernel.services.fbcon!;
    video.setViewer(false);
    m.runFor(settle);
    const n = video.updates;
    con.write('unseen');
    m.runFor(settle);
    expect(video.updates).toBe(n);
    const row = con.row;
    const line = (f: { rgba: Uint8Array }) => f.rgba.subarray(row * 16 * 1024 * 4, (row + 1) * 16 * 1024 * 4);
    const stale = line(video.render()!).slice();
    video.setViewer(true);
    m.runFor(settle);
    // hyperv_fb answers with its pointer and situation; the situation makes the host take the
    // whole screen again, 'unseen' included. The damage was used up while no one watched.
    expect(video.updates).toBe(n);
    const fresh = line(video.render()!);
    expect(fresh).not.toEqual(stale);
    const vram = m.partition.memory.bytes.subarray(video.vramGpa! + row * 16 * 4096, video.vramGpa! + (row + 1) * 16 * 4096);
    for (let i = 0; i < vram.length; i += 4) if (vram[i] !== fresh[i + 2]) throw new Error(`pixel ${i / 4} differs`);
    con.write('!');
    m.runFor(settle);
    expect(video.updates).toBe(n + 1);
  });

  it('new kernel log lines appear on the console as they are printed', () => {
    const { m } = boot('ws2022');
    m.kernel.log.info('hvkit: a line printed after boot');
    m.kernel.log.printk('debug', 'hvkit: a debug line stays off the console');
    const text = m.kernel.services.fbcon!.text();
    expect(text.some((l) => l.endsWith('] hvkit: a line printed after boot'))).toBe(true);
    expect(text.some((l) => l.includes('debug line'))).toBe(false);
  });

  it('a long line wraps at the last column', () => {
    const { m } = boot('ws2022');
    const con = m.kernel.services.fbcon!;
    con.write('\n' + 'a'.repeat(130));
    const t = con.text();
    expect(t[con.row - 1]).toBe('a'.repeat(128));
    expect(t[con.row]).toBe('aa');
  });
});
