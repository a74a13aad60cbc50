// The screen and keyboard panel: the guest's screen on a canvas, keys typed into the canvas
// reaching the guest's tty through the synthetic keyboard, and what the shell answers drawn back
// on the canvas; with the guest in the page and in a Web Worker. The text is read from the
// canvas's own pixels (screen-text.ts), so it went guest → VRAM → synthvid host → canvas.
import { mkdirSync, writeFileSync } from 'node:fs';
import { expect, test, type Page } from '@playwright/test';
import { ARTIFACTS, boot, collectErrors } from './page.js';
import { screenText } from './screen-text.js';

const PROMPT = 'root@hvkit:~# ';
/** fbcon's underline cursor after the prompt reads as the glyph it looks like. */
const CURSOR = '_';

/** The canvas as PNG bytes (its own pixels, whatever size it is shown at). */
async function canvasPng(page: Page): Promise<Uint8Array> {
  const url = await page.locator('#screen-canvas').evaluate((c) => (c as unknown as { toDataURL(type: string): string }).toDataURL('image/png'));
  return new Uint8Array(Buffer.from(url.slice(url.indexOf(',') + 1), 'base64'));
}

/** The panel's draws and the video host's updates (DIRT messages taken), as the page counts them. */
const counts = (page: Page) =>
  page.evaluate(() => {
    const h = (globalThis as unknown as { hvkit: { screen: { draws: number; drawMs: number; pixels: number; canvas: { width: number; height: number } }; session: { screen: { video: { updates: number } } } } }).hvkit;
    return { draws: h.screen.draws, drawMs: h.screen.drawMs, pixels: h.screen.pixels, frame: h.screen.canvas.width * h.screen.canvas.height, updates: h.session.screen.video.updates };
  });

const lastLines = async (page: Page, n: number) => (await screenText(await canvasPng(page))).filter((l) => l !== '').slice(-n);

for (const worker of [false, true]) {
  const mode = worker ? 'worker' : 'in-thread';
  test(`typing "uname" into the canvas: the shell's answer shows on it (${mode})`, async ({ page }) => {
    const errors = collectErrors(page);
    await boot(page, { worker });
    await expect(page.locator('#status')).toContainText(`(${mode})`);
    await expect(page.locator('#screen-status')).toContainText('keyboard ready');
    // The tty's prompt, on the canvas, after the boot log.
    await expect.poll(() => lastLines(page, 1), { timeout: 30_000 }).toEqual([`${PROMPT}${CURSOR}`]);
    const before = await counts(page);

    // A click focuses the canvas and moves the synthetic mouse to where it was clicked.
    const canvas = page.locator('#screen-canvas');
    const box = (await canvas.boundingBox())!;
    await canvas.click({ position: { x: box.width / 4, y: box.height / 2 } });
    await expect(canvas).toBeFocused();
    const mouse = await page.evaluate(() => {
      const m = (globalThis as unknown as { hvkit: { session: { screen: { mouse: { x: number; y: number; sent: number; buttons: number } } } } }).hvkit.session.screen.mouse;
      return { x: m.x, y: m.y, sent: m.sent, buttons: m.buttons };
    });
    // A move, a press and a release; the position within a CSS pixel of the click's.
    expect(mouse.sent).toBeGreaterThanOrEqual(3);
    expect(mouse.buttons).toBe(0);
    expect(Math.abs(mouse.x - 32767 / 4)).toBeLessThanOrEqual(32767 / box.width);
    expect(Math.abs(mouse.y - 32767 / 2)).toBeLessThanOrEqual(32767 / box.height);

    await page.keyboard.type('uname');
    await page.keyboard.press('Enter');
    await expect.poll(() => lastLines(page, 3), { timeout: 30_000 }).toEqual([`${PROMPT}uname`, 'Linux', `${PROMPT}${CURSOR}`]);
    // Each character a make and a break: 5 letters and Enter.
    await expect(page.locator('#screen-status')).toContainText('12 keystrokes sent');
    // The canvas is redrawn only for an update from the guest: never more draws than updates.
    const after = await counts(page);
    expect(after.draws - before.draws).toBeGreaterThan(0);
    expect(after.draws - before.draws).toBeLessThanOrEqual(after.updates - before.updates);
    // And only the rectangles the guest said were dirty: less than a whole frame a draw.
    expect(after.pixels - before.pixels).toBeGreaterThan(0);
    expect(after.pixels - before.pixels).toBeLessThan((after.draws - before.draws) * after.frame);

    mkdirSync(ARTIFACTS, { recursive: true });
    const draws = { draws: after.draws, updates: after.updates, meanDrawMs: after.drawMs / after.draws, typed: { draws: after.draws - before.draws, updates: after.updates - before.updates, meanDrawMs: (after.drawMs - before.drawMs) / (after.draws - before.draws), pixels: after.pixels - before.pixels, framePixels: after.frame } };
    writeFileSync(`${ARTIFACTS}/screen-draws-${mode}.json`, JSON.stringify(draws, null, 2));
    test.info().annotations.push({ type: 'screen draws', description: JSON.stringify(draws) });
    writeFileSync(`${ARTIFACTS}/screen-${mode}.png`, await canvasPng(page));
    // The README's picture of the panel (docs/images/web-screen.png is a copy of the in-thread one).
    await page.locator('#screen').screenshot({ path: `${ARTIFACTS}/screen-panel-${mode}.png` });
    expect(errors).toEqual([]);
  });
}

test('shifted characters and Backspace reach the shell as typed; Ctrl+Alt+Del restarts the guest', async ({ page }) => {
  const errors = collectErrors(page);
  await boot(page);
  await expect.poll(() => lastLines(page, 1), { timeout: 30_000 }).toEqual([`${PROMPT}${CURSOR}`]);
  await page.locator('#screen-canvas').focus();
  // Shift held on the page's keyboard for the capitals and symbols; one character too many, erased.
  await page.keyboard.type('echo Hi, {X}!~');
  await page.keyboard.press('Backspace');
  await page.keyboard.press('Enter');
  await expect.poll(() => lastLines(page, 3), { timeout: 30_000 }).toEqual([`${PROMPT}echo Hi, {X}!`, 'Hi, {X}!', `${PROMPT}${CURSOR}`]);

  // The button sends the combo; the guest's keyboard handler calls ctrl_alt_del() and the page boots it again.
  await page.evaluate(() => {
    const g = globalThis as unknown as { hvkit: { session: unknown }; firstSession: unknown };
    g.firstSession = g.hvkit.session;
  });
  await page.click('#ctrl-alt-del');
  await expect.poll(() => page.evaluate(() => (globalThis as unknown as { firstSession: { reason: string } }).firstSession.reason)).toBe('the guest restarts');
  await expect(page.locator('#status')).toHaveAttribute('data-state', 'running');
  await expect(page.locator('#log')).toContainText('Vmbus version:5.3');
  expect(await page.evaluate(() => (globalThis as unknown as { hvkit: { session: unknown }; firstSession: unknown }).hvkit.session !== (globalThis as unknown as { firstSession: unknown }).firstSession)).toBe(true);
  expect(errors).toEqual([]);
});
