// A VM booted in the page: its boot log, its channels, rings under the stream workload, the
// shutdown button, KVP set from the page and read back from the guest, and the guest in a Web
// Worker. The frame rate under load is measured in the page and written to the artifacts.
import { writeFileSync } from 'node:fs';
import { expect, test } from '@playwright/test';
import { DEFAULT_DEVICES } from '../src/devices/catalog.js';
import { ARTIFACTS, boot, collectErrors } from './page.js';

test('the boot log shows VMBus connected at 5.3 and the channel table lists the default devices', async ({ page }) => {
  const errors = collectErrors(page);
  await boot(page);
  await expect(page.locator('#status')).toContainText('in-thread');
  const table = page.locator('#channels-body');
  for (const type of DEFAULT_DEVICES) await expect(table.locator(`tr[data-class="${type}"]`)).toHaveCount(1);
  // The guest opened them: the host's state and the guest's both say so.
  await expect(table.locator('tr[data-class="kvp"]')).toContainText('open / guest opened');
  await expect(page.locator('#vps-body tr')).toHaveCount(2);
  await expect(page.locator('#sequence svg g[data-name="OPENCHANNEL_RESULT"]').first()).toBeAttached();
  expect(errors).toEqual([]);
});

test('the page keeps animating while the VM boots in its thread (the boot runs in slices)', async ({ page }) => {
  const errors = collectErrors(page);
  await page.goto('/');
  // Every animation frame's time and how much boot log the page showed then, from just before
  // the click until the VM runs.
  await page.evaluate(() => {
    const g = globalThis as unknown as {
      frames: { t: number; log: number }[];
      recording: boolean;
      requestAnimationFrame(f: (t: number) => void): number;
      document: { querySelector(selector: string): { textContent: string | null } | null };
    };
    g.frames = [];
    g.recording = true;
    const tick = (t: number): void => {
      g.frames.push({ t, log: g.document.querySelector('#log')?.textContent?.length ?? 0 });
      if (g.recording) g.requestAnimationFrame(tick);
    };
    g.requestAnimationFrame(tick);
  });
  // From when the page handles the click on Boot (the machine is made then, and the boot begins).
  await page.locator('#boot').evaluate((button) => {
    const g = globalThis as unknown as { clickedAt: number };
    button.addEventListener('click', () => (g.clickedAt = performance.now()), { capture: true });
  });
  await page.click('#boot');
  await expect(page.locator('#status')).toHaveAttribute('data-state', 'running');
  const frames = await page.evaluate(() => {
    const g = globalThis as unknown as { frames: { t: number; log: number }[]; recording: boolean };
    g.recording = false;
    return g.frames.filter((f) => f.t >= (globalThis as unknown as { clickedAt: number }).clickedAt);
  });
  await expect(page.locator('#log')).toContainText('Vmbus version:5.3');
  const gaps = frames.slice(1).map((f, i) => f.t - frames[i]!.t);
  const logStates = new Set(frames.map((f) => f.log));
  // The gaps are a measurement for the artifacts, not a test: the machines are shared and noisy.
  const report = { bootWallMs: frames.at(-1)!.t - frames[0]!.t, frames: frames.length, logStatesDrawn: logStates.size, longestGapMs: Math.max(...gaps), gapsOver50Ms: gaps.filter((g) => g > 50).length };
  writeFileSync(`${ARTIFACTS}/boot-frames.json`, JSON.stringify(report, null, 2));
  test.info().annotations.push({ type: 'boot frames', description: JSON.stringify(report) });
  // The boot was not one task: the page drew frames all along it, showing the log as it grew
  // (a boot that blocked the page would let it draw only before and after).
  expect(frames.length).toBeGreaterThan(10);
  expect(logStates.size).toBeGreaterThanOrEqual(4);
  expect(errors).toEqual([]);
});

test('the rings fill and drain under the stream workload, and the page keeps drawing', async ({ page }) => {
  const errors = collectErrors(page);
  await boot(page);
  type Hvkit = { fps: number[]; renderMs: number; session: { slices?: number; busyMs?: number } };
  const fpsCount = () => page.evaluate(() => (globalThis as unknown as { hvkit: Hvkit }).hvkit.fps.length);
  const lastFps = (n: number) => page.evaluate((n) => (globalThis as unknown as { hvkit: Hvkit }).hvkit.fps.slice(-n), n);
  // The baseline, in the same run: the page with the VM running idle.
  const idleFrom = await fpsCount();
  await expect.poll(fpsCount, { timeout: 30_000 }).toBeGreaterThanOrEqual(idleFrom + 3);
  const idle = await lastFps(3);
  await page.click('#stream-start');
  const card = page.locator('.ring-card[data-relid]', { hasText: 'stream' });
  await expect(card).toBeVisible();
  // Gauge levels, sampled while the stream runs: they must move.
  const seen = new Set<string>();
  await expect
    .poll(
      async () => {
        for (const g of await card.locator('.gauge').all()) seen.add(`${await g.getAttribute('data-ring')}:${await g.getAttribute('data-fill')}`);
        return seen.size;
      },
      { intervals: [100] },
    )
    .toBeGreaterThan(4);
  await expect(page.locator('#stream-status')).not.toContainText('frames out 0,');
  // Frames per second under load, as the page counts them (one figure per second of wall time).
  const probe = () => page.evaluate(() => {
    const h = (globalThis as unknown as { hvkit: Hvkit }).hvkit;
    return { n: h.fps.length, renderMs: h.renderMs, slices: h.session.slices ?? 0, busyMs: h.session.busyMs ?? 0, at: performance.now() };
  });
  const start = await probe();
  await expect.poll(fpsCount, { timeout: 30_000 }).toBeGreaterThanOrEqual(start.n + 5);
  const fps = await lastFps(5);
  expect(fps.length).toBe(5);
  const end = await probe();
  const wall = end.at - start.at;
  const streamed = await page.locator('#stream-status').textContent();
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const report = { fps, mean: mean(fps), idle: { fps: idle, mean: mean(idle) }, ratio: mean(fps) / mean(idle), stream: streamed, share: { vm: (end.busyMs - start.busyMs) / wall, views: (end.renderMs - start.renderMs) / wall, slices: end.slices - start.slices, wallMs: wall } };
  writeFileSync(`${ARTIFACTS}/fps-under-load.json`, JSON.stringify(report, null, 2));
  test.info().annotations.push({ type: 'fps under load', description: fps.map((f) => f.toFixed(1)).join(', ') });
  await page.screenshot({ path: `${ARTIFACTS}/stream.png`, fullPage: true });
  // The README's picture (docs/images/web.png is a copy): the run, the tables and the rings.
  await page.screenshot({ path: `${ARTIFACTS}/web.png`, fullPage: true, clip: { x: 0, y: 270, width: 1280, height: 1440 } });
  await page.click('#stream-stop');
  await expect(page.locator('#stream-status')).toContainText('errors 0');
  expect(errors).toEqual([]);
});

test('the shutdown button powers the VM off', async ({ page }) => {
  await boot(page);
  await page.click('#shutdown');
  await expect(page.locator('#status')).toHaveAttribute('data-state', 'off');
  await expect(page.locator('#status')).toContainText('the guest powered off');
  await expect(page.locator('#log')).toContainText('reboot: Power down');
  await expect(page.locator('#shutdown')).toBeDisabled();
});

test('the restart button reboots the guest; pause holds virtual time and resume moves it again', async ({ page }) => {
  await boot(page);
  const clock = () => page.locator('#clock').innerText();
  await page.click('#pause');
  await expect(page.locator('#status')).toHaveAttribute('data-state', 'paused');
  const held = await clock();
  await page.waitForTimeout(500);
  expect(await clock()).toBe(held);
  await page.click('#resume');
  await expect(page.locator('#status')).toHaveAttribute('data-state', 'running');
  await expect.poll(clock).not.toBe(held);
  // A marker on this session: the machine booted again after the restart is another one.
  await page.evaluate(() => ((globalThis as unknown as { hvkit: { session: { marker?: number } } }).hvkit.session.marker = 1));
  await page.click('#restart');
  await expect.poll(() => page.evaluate(() => (globalThis as unknown as { hvkit: { session: { marker?: number; state: string } } }).hvkit.session.marker)).toBeUndefined();
  await expect(page.locator('#log')).toContainText('Vmbus version:5.3');
  await expect(page.locator('#status')).toHaveAttribute('data-state', 'running');
});

test('a KVP value set in the page is read back from the guest', async ({ page }) => {
  await boot(page);
  await page.selectOption('#kvp-pool', { label: 'EXTERNAL' });
  await page.fill('#kvp-key', 'hvkit-web');
  await page.fill('#kvp-value', 'set in a browser tab');
  await page.click('#kvp-set');
  const row = page.locator('#kvp-body tr[data-key="hvkit-web"]');
  await expect(row).toContainText('set in a browser tab');
  await expect(page.locator('#kvp-status')).toContainText('read from the guest');
});

test('the hv_sock echo box gets back what it sent', async ({ page }) => {
  await boot(page);
  await page.fill('#hvsock-port', '5001');
  await page.fill('#hvsock-text', 'ping from a browser tab');
  await page.click('#hvsock-send');
  await expect(page.locator('#hvsock-result')).toHaveAttribute('data-outcome', 'echoed');
  await expect(page.locator('#hvsock-result')).toContainText('got "ping from a browser tab" back');
});

test('with cross-origin isolation, the guest boots in a Web Worker', async ({ page }) => {
  const errors = collectErrors(page);
  await page.goto('/');
  await expect(page.locator('#isolation')).toBeHidden();
  expect(await page.evaluate(() => (globalThis as unknown as { crossOriginIsolated: boolean }).crossOriginIsolated)).toBe(true);
  await boot(page, { worker: true });
  await expect(page.locator('#status')).toContainText('worker');
  await expect(page.locator('#channels-body tr[data-class="kvp"]')).toContainText('open');
  // The rings, read through the host's mapping, move under the stream the guest runs in its worker.
  await page.click('#stream-start');
  const card = page.locator('.ring-card[data-relid]', { hasText: 'stream' });
  const fills = new Set<string>();
  await expect
    .poll(
      async () => {
        for (const g of await card.locator('.gauge').all()) fills.add(`${await g.getAttribute('data-ring')}:${await g.getAttribute('data-fill')}`);
        return fills.size;
      },
      { intervals: [100] },
    )
    .toBeGreaterThan(4);
  await page.screenshot({ path: `${ARTIFACTS}/worker.png`, fullPage: true });
  await page.click('#shutdown');
  await expect(page.locator('#status')).toContainText('the guest powered off');
  expect(errors).toEqual([]);
});

test("with the guest in a Web Worker, the channel table shows each channel's target CPU and the hv_sock echo box answers", async ({ page }) => {
  const errors = collectErrors(page);
  await boot(page, { worker: true });
  await expect(page.locator('#status')).toContainText('(worker)');
  // The guest's view, as the worker posts it: its state of the channel and the CPU it targets.
  const kvp = page.locator('#channels-body tr[data-class="kvp"]');
  await expect(kvp).toContainText('open / guest opened');
  const cells = kvp.locator('td');
  // Columns: relid, class, instance, sub, state, target CPU, target VP.
  await expect(cells.nth(5)).toHaveText(/^\d+$/);
  // Linux numbers its CPUs in APIC id order and targets each channel's CPU by its VP index.
  const cpus = await page.locator('#channels-body tr[data-class]').evaluateAll((rows) => rows.map((r) => [r.children[5]!.textContent, r.children[6]!.textContent]));
  expect(cpus.length).toBeGreaterThan(5);
  for (const [cpu, vp] of cpus) expect(cpu).toBe(vp);
  await page.fill('#hvsock-port', '5002');
  await page.fill('#hvsock-text', 'ping from the page to a guest in a worker');
  await page.click('#hvsock-send');
  await expect(page.locator('#hvsock-result')).toHaveAttribute('data-outcome', 'echoed');
  await expect(page.locator('#hvsock-result')).toContainText('got "ping from the page to a guest in a worker" back');
  // Again on the same port: the guest's listener is still there.
  await page.fill('#hvsock-text', 'and once more');
  await page.click('#hvsock-send');
  await expect(page.locator('#hvsock-result')).toContainText('got "and once more" back');
  await page.screenshot({ path: `${ARTIFACTS}/worker-channels.png`, fullPage: true });
  expect(errors).toEqual([]);
});
