// A viewer that keeps its pixels from draw to draw: the host records, for each viewer, the
// rectangles it copied from VRAM since the viewer last drew, and converts only those. Drawing the
// damage into a kept buffer gives the same pixels as rendering the whole screen afresh.
import { describe, expect, it } from 'vitest';
import { hostKeyboard, guestInput } from '../../../src/vm/input.js';
import { SCREEN_SETTLE_NS } from '../../../src/vm/screenshot.js';
import { ScreenDamage, type ScreenRect } from '../../../src/devices/video/host.js';
import { boot } from './machine.js';

describe('screen damage', () => {
  it('a viewer redraws only the dirty rectangles, and its kept pixels equal a fresh render()', () => {
    const { m, video } = boot('ws2022');
    const damage = video.watch();
    const s = video.situation!;
    const kept = new Uint8ClampedArray(s.width * s.height * 4);
    const draw = (): ScreenRect[] | 'all' => {
      const rects = damage.take(s.width, s.height);
      for (const r of rects === 'all' ? [{ x1: 0, y1: 0, x2: s.width, y2: s.height }] : rects) expect(video.renderRect(kept, r)).toBe(true);
      return rects;
    };
    // A new viewer has the whole screen to draw first.
    expect(damage.pending).toBe(true);
    expect(draw()).toBe('all');
    expect(Buffer.from(kept).equals(Buffer.from(video.render()!.rgba))).toBe(true);
    expect(damage.pending).toBe(false);

    const prompt = `root@${m.kernel.options.hostname}:~# `;
    const tty = guestInput(m).tty;
    hostKeyboard(m)!.typeText('uname\n');
    expect(m.waitUntil(() => tty.state().screen.at(-1) === prompt && tty.state().screen.length >= 3, 10e9)).toBe(true);
    m.runFor(SCREEN_SETTLE_NS);
    expect(damage.pending).toBe(true);
    const rects = draw();
    expect(rects).not.toBe('all');
    const area = (rects as ScreenRect[]).reduce((n, r) => n + (r.x2 - r.x1) * (r.y2 - r.y1), 0);
    // The typing changed part of the screen: less than the whole of it was converted.
    expect(area).toBeGreaterThan(0);
    expect(area).toBeLessThan(s.width * s.height);
    expect(Buffer.from(kept).equals(Buffer.from(video.render()!.rgba))).toBe(true);

    // A viewer that left records nothing more; a buffer of another size is refused.
    video.unwatch(damage);
    hostKeyboard(m)!.typeText('x');
    m.runFor(SCREEN_SETTLE_NS);
    expect(damage.pending).toBe(false);
    expect(video.renderRect(new Uint8ClampedArray(16), { x1: 0, y1: 0, x2: 2, y2: 2 })).toBe(false);
  });

  it('keeps at most a few rectangles apart, then their bounding box', () => {
    const d = new ScreenDamage();
    expect(d.take(100, 100)).toBe('all');
    for (let i = 0; i < 40; i++) d.add({ x1: i, y1: i, x2: i + 2, y2: i + 1 });
    const rects = d.take(30, 100) as ScreenRect[];
    expect(rects.length).toBeLessThanOrEqual(16);
    // Every damaged pixel (clipped to the screen) lies in some rectangle taken.
    for (let i = 0; i < 40; i++) for (let x = i; x < Math.min(i + 2, 30); x++) expect(rects.some((r) => x >= r.x1 && x < r.x2 && i >= r.y1 && i < r.y2)).toBe(true);
    expect(d.pending).toBe(false);
    expect(d.take(30, 100)).toEqual([]);
  });
});
