// Linux 6.1's real VMBus drivers (the module `npm run build:linux` makes, served by `hvkit web`
// from the build cache) booted in the page's thread: Linux's own printk lines in the boot log,
// Linux's own channel list in the table with hv_utils bound to the integration services, the
// heartbeat answering, and the shutdown button powering Linux off through hv_utils.
import { existsSync } from 'node:fs';
import { expect, test, type Page } from '@playwright/test';
import { linuxToolsMissing, WASM } from '../scripts/linux/build.js';
import { collectErrors } from './page.js';

/** Why the module is not there (test-web/global-setup.ts builds it where the tools are). */
function missing(): string | undefined {
  if (existsSync(WASM)) return undefined;
  return `no Linux module at ${WASM}: ${linuxToolsMissing() ?? 'the build did not leave it'}; build it with npm run build:linux`;
}

test('the real Linux guest boots in the page, lists its channels with hv_utils bound, answers heartbeats and powers off from the shutdown button', async ({ page }) => {
  const why = missing();
  test.skip(why !== undefined, why ?? '');
  const errors = collectErrors(page);
  await page.goto('/');
  const linux = page.locator('#guest-linux');
  await expect(linux).toBeEnabled();
  await expect(page.locator('#linux-note')).toHaveAttribute('data-available', 'true');
  await linux.check();
  // The machine's shape is Linux's: the fields it fixes, and the worker, are disabled.
  await expect(page.locator('#vps')).toBeDisabled();
  await expect(page.locator('#worker')).toBeDisabled();
  await page.click('#boot');
  // Linux's own line from vmbus_connect (drivers/hv/connection.c), at the version ws2022 offers.
  await expect(page.locator('#log')).toContainText('hv_vmbus: Vmbus version:5.3');
  await expect(page.locator('#log')).toContainText('hv_utils: Heartbeat IC version 3.0');
  await expect(page.locator('#status')).toHaveAttribute('data-state', 'running');
  await expect(page.locator('#status')).toContainText("Linux 6.1's real drivers");
  // The table is Linux's channel list: the integration services bound to hv_utils and opened by it.
  const table = page.locator('#channels-body');
  for (const ic of ['shutdown', 'timesync', 'heartbeat', 'kvp']) {
    await expect(table.locator(`tr[data-class="${ic} (hv_utils)"]`)).toHaveAttribute('data-state', 'open / guest opened');
  }
  // Panels this guest has no use for are replaced by the reasons.
  await expect(page.locator('#screen')).toBeHidden();
  await expect(page.locator('#hvsock')).toBeHidden();
  await expect(page.locator('#unsupported')).toContainText('hv_sock echo');
  // hv_utils' heartbeat_onchannelcallback answers the host's heartbeats.
  await expect(page.locator('#heartbeat')).toContainText(/, [1-9]\d* answers/);
  await page.click('#shutdown');
  await expect(page.locator('#log')).toContainText('hv_utils: Shutdown request received - graceful shutdown initiated');
  await expect(page.locator('#status')).toHaveAttribute('data-state', 'off');
  await expect(page.locator('#status')).toContainText('the guest powered off');
  expect(errors).toEqual([]);
});

async function bootLinux(page: Page): Promise<void> {
  await page.goto('/');
  await page.locator('#guest-linux').check();
  await page.click('#boot');
  await expect(page.locator('#log')).toContainText('hv_vmbus: Vmbus version:5.3');
  await expect(page.locator('#status')).toHaveAttribute('data-state', 'running');
}

test('a KVP value set in the page is read back through Linux\'s hv_kvp and its daemon; the restart button boots Linux again', async ({ page }) => {
  const why = missing();
  test.skip(why !== undefined, why ?? '');
  const errors = collectErrors(page);
  await bootLinux(page);
  await page.selectOption('#kvp-pool', { label: 'EXTERNAL' });
  await page.fill('#kvp-key', 'hvkit-web');
  await page.fill('#kvp-value', 'set in a browser tab, read from Linux');
  await page.click('#kvp-set');
  await expect(page.locator('#kvp-body tr[data-key="hvkit-web"]')).toContainText('set in a browser tab, read from Linux');
  await expect(page.locator('#kvp-status')).toContainText('read from the guest');
  // orderly_reboot: the page boots the same guest again, a new machine.
  await page.evaluate(() => ((globalThis as unknown as { hvkit: { session: { marker?: number } } }).hvkit.session.marker = 1));
  await page.click('#restart');
  // Another session (no marker), running.
  await expect.poll(() => page.evaluate(() => {
    const s = (globalThis as unknown as { hvkit: { session?: { marker?: number; state: string } } }).hvkit.session;
    return s && s.marker === undefined ? s.state : 'the first session';
  })).toBe('running');
  await expect(page.locator('#log')).toContainText('hv_vmbus: Vmbus version:5.3');
  await expect(page.locator('#status')).toContainText("Linux 6.1's real drivers");
  expect(errors).toEqual([]);
});

test('without the module the Linux choice is disabled with a line saying how to build it', async ({ page }) => {
  // The server answers 404 for the module here: the page must say so rather than offer the guest.
  await page.route('**/hvlinux.wasm', (route) => route.fulfill({ status: 404, body: 'not found\n' }));
  await page.goto('/');
  await expect(page.locator('#linux-note')).toHaveAttribute('data-available', 'false');
  await expect(page.locator('#linux-note')).toContainText('npm run build:linux');
  await expect(page.locator('#guest-linux')).toBeDisabled();
});
