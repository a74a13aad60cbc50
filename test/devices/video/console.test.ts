// The guest's console end to end: keystrokes from the host's synthetic keyboard reach the tty on
// tty1, whose shell answers; the framebuffer console draws the boot log and then the tty, and the
// host's screenshot (a PNG read back with pngjs) has exactly the pixels of a reference this test
// renders itself from the same text with the font package.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { formatRecord } from '../../../src/guest/klog.js';
import { hostKeyboard, guestInput } from '../../../src/vm/input.js';
import { encodePng, SCREEN_SETTLE_NS, videoHost } from '../../../src/vm/screenshot.js';
import { boot, reference, screenText } from './machine.js';

describe('typing on the console', () => {
  it('"uname" typed on the keyboard shows on the tty and, pixel for pixel, in the screenshot', () => {
    const { m, video } = boot('ws2022');
    const bootRecords = m.kernel.log.records.length;
    const prompt = `root@${m.kernel.options.hostname}:~# `;
    hostKeyboard(m)!.typeText('uname\n');
    const tty = guestInput(m).tty;
    expect(m.waitUntil(() => tty.state().screen.at(-1) === prompt && tty.state().screen.length >= 3, 10e9)).toBe(true);
    // The tty's last lines: the echo of what was typed, the shell's answer, a new prompt.
    expect(tty.state().screen.slice(-3)).toEqual([`${prompt}uname`, 'Linux', prompt]);
    m.runFor(SCREEN_SETTLE_NS);
    // Nothing else reached the console since boot: the screen is the boot log, then the tty.
    const onConsole = (r: (typeof m.kernel.log.records)[number]) => r.level !== 'debug' && !r.annotation;
    expect(m.kernel.log.records.slice(bootRecords).filter(onConsole)).toEqual([]);
    const records = m.kernel.log.records.filter(onConsole).map(formatRecord);
    const frame = videoHost(m.devices)!.render()!;
    const { lines, cursor } = screenText(records, frame.width / 8, frame.height / 16, `${prompt}uname\nLinux\n${prompt}`);
    expect(lines.slice(-3)).toEqual([`${prompt}uname`, 'Linux', prompt]);
    const file = join(mkdtempSync(join(tmpdir(), 'hvkit-console-')), 'screen.png');
    writeFileSync(file, encodePng(frame));
    const png = PNG.sync.read(readFileSync(file));
    expect([png.width, png.height]).toEqual([1024, 768]);
    const ref = reference(lines, png.width, png.height, cursor);
    let differ = 0;
    for (let i = 0; i < ref.length; i++) if (ref[i] !== png.data[i]) differ++;
    expect(differ).toBe(0);
    expect(video.violationCount).toBe(0);
  });
});
