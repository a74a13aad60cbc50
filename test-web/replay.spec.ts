// Trace replay: a trace recorded by `hvkit run --trace` loads, the scrubber moves the channel
// table through time, the filters choose events as `hvkit trace` does; files that are not
// traces (garbage, cut short, empty, 100 MB) are refused with a visible message, and the page
// then still loads a good one.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { ARTIFACTS, collectErrors } from './page.js';

const dir = mkdtempSync(join(tmpdir(), 'hvkit-web-trace-'));
const TRACE = join(dir, 'boot.jsonl');

test.beforeAll(() => {
  // The built CLI (test:web builds it first), as a user records a trace.
  execFileSync(process.execPath, ['bin/hvkit.js', 'run', '--until', 'shutdown', '--trace', TRACE], { stdio: 'ignore' });
});

async function open(page: Page, file: string): Promise<void> {
  await page.click('#tab-replay');
  await page.setInputFiles('#trace-file', file);
}

const rows = (page: Page) => page.locator('#replay-channels-body tr');

test('a trace loads, and scrubbing changes the channel table', async ({ page }) => {
  const errors = collectErrors(page);
  await page.goto('/');
  await open(page, TRACE);
  await expect(page.locator('#trace-info')).toContainText('events');
  await expect(page.locator('#trace-error')).toBeHidden();
  const events = Number(await page.locator('#scrubber').getAttribute('max'));
  expect(events).toBeGreaterThan(100);
  // At the end, every default device was offered and opened.
  await expect(rows(page)).toHaveCount(11);
  await expect(page.locator('#replay-channels-body tr[data-class="kvp"]')).toHaveAttribute('data-state', 'open');
  const atEnd = await page.locator('#replay-channels-body').innerText();
  // Before anything happened, there are no channels.
  await page.locator('#scrubber').fill('0');
  await expect(rows(page)).toHaveCount(0);
  // Somewhere in the middle the table is another one.
  await page.locator('#scrubber').fill(String(Math.floor(events / 2)));
  await expect(page.locator('#scrub-time')).toContainText(`event ${Math.floor(events / 2)} of ${events}`);
  expect(await page.locator('#replay-channels-body').innerText()).not.toEqual(atEnd);
  await page.screenshot({ path: `${ARTIFACTS}/replay.png`, fullPage: true });
  expect(errors).toEqual([]);
});

test('the rings at the scrubbed moment: their fill from the ring indices the trace records, changing as the scrubber moves', async ({ page }) => {
  const errors = collectErrors(page);
  // From the file itself: a packet that left bytes waiting in its ring, and a later packet on the
  // same ring that left another amount (hv_get_bytes_to_read over the recorded indices).
  type Packet = { kind: string; dir: string; channel: number; readIndex?: number; writeIndex?: number; ringSize?: number };
  const events = readFileSync(TRACE, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Packet);
  const fillOf = (e: Packet): number => (e.writeIndex! >= e.readIndex! ? e.writeIndex! - e.readIndex! : e.ringSize! - e.readIndex! + e.writeIndex!);
  const later = (i: number): number => events.findIndex((x, k) => k > i && x.kind === 'packet' && x.channel === events[i]!.channel && x.dir === events[i]!.dir && fillOf(x) !== fillOf(events[i]!));
  const i = events.findIndex((e, k) => e.kind === 'packet' && e.ringSize !== undefined && fillOf(e) > 0 && later(k) > k);
  expect(i).toBeGreaterThan(0);
  const e = events[i]!;
  const j = later(i);
  await page.goto('/');
  await open(page, TRACE);
  const gauge = page.locator(`#replay-rings .ring-card[data-relid="${e.channel}"] .gauge[data-ring="${e.dir === 'to-host' ? 'out' : 'in'}"]`);
  await page.locator('#scrubber').fill(String(i + 1));
  await expect(gauge).toHaveAttribute('data-fill', String(fillOf(e)));
  await expect(gauge).toContainText(`${fillOf(e)}/${e.ringSize} B`);
  await page.screenshot({ path: `${ARTIFACTS}/replay-rings.png`, fullPage: true });
  await page.locator('#scrubber').fill(String(j + 1));
  await expect(gauge).toHaveAttribute('data-fill', String(fillOf(events[j]!)));
  // Before anything crossed, no ring is shown.
  await page.locator('#scrubber').fill('0');
  await expect(page.locator('#replay-rings .ring-card')).toHaveCount(0);
  expect(errors).toEqual([]);
});

test('filters by channel, kind and direction', async ({ page }) => {
  await page.goto('/');
  await open(page, TRACE);
  await page.fill('#f-channel', '8');
  await expect(rows(page)).toHaveCount(1);
  await expect(rows(page).first()).toHaveAttribute('data-relid', '8');
  await page.selectOption('#f-kind', 'packet');
  await page.selectOption('#f-dir', 'to-guest');
  const lines = (await page.locator('#replay-events').innerText()).split('\n').filter(Boolean);
  expect(lines.length).toBeGreaterThan(0);
  for (const l of lines) expect(l).toMatch(/^\s*\d+\.\d{6} ch8\s+to-guest /);
});

test('files that are not traces get a clear error, and the page keeps working', async ({ page }) => {
  const errors = collectErrors(page);
  await page.goto('/');
  const text = readFileSync(TRACE, 'utf8');
  const cases: [string, Buffer | 'sparse', RegExp][] = [
    ['garbage.jsonl', Buffer.from('this is not a trace\n'), /garbage\.jsonl: not a trace: line 1: not JSON/],
    ['binary.bin', Buffer.from([0xff, 0xfe, 0x00, 0x81, 0x92]), /binary\.bin: not a trace: the file is not UTF-8 text/],
    ['cut.jsonl', Buffer.from(text.slice(0, text.indexOf('\n', 5000) + 40)), /cut\.jsonl: not a trace: line \d+: not JSON.*cut short/],
    ['empty.jsonl', Buffer.alloc(0), /empty\.jsonl: the file is empty/],
    ['huge.jsonl', 'sparse', /huge\.jsonl: 100\.0 MiB is more than the 64\.0 MiB a page reads/],
  ];
  for (const [name, bytes, message] of cases) {
    const file = join(dir, name);
    if (bytes === 'sparse') {
      writeFileSync(file, '');
      truncateSync(file, 100 << 20);
    } else writeFileSync(file, bytes);
    await open(page, file);
    await expect(page.locator('#trace-error')).toBeVisible();
    await expect(page.locator('#trace-error')).toHaveText(message);
  }
  await page.screenshot({ path: `${ARTIFACTS}/replay-error.png` });
  // A good trace after all that: it loads, the error goes.
  await open(page, TRACE);
  await expect(page.locator('#trace-error')).toBeHidden();
  await expect(rows(page)).toHaveCount(11);
  expect(errors).toEqual([]);
});
