// A VM file the schema refuses, and a page served without cross-origin isolation: each gets a
// visible message, and the page still boots a VM (in its own thread).
import { expect, test } from '@playwright/test';
import { ARTIFACTS } from './page.js';

test('a VM configuration the schema refuses is a visible error naming the field', async ({ page }) => {
  await page.goto('/');
  await page.click('summary');
  await page.fill('#vm-json', '{ "release": "ws1999", "cpus": 2 }');
  await page.click('#apply-json');
  await expect(page.locator('#config-error')).toBeVisible();
  await expect(page.locator('#config-error')).toContainText('vm.json: /release: must be one of ws2012');
  await page.fill('#vm-json', '{ "cpus": 2, ');
  await page.click('#apply-json');
  await expect(page.locator('#config-error')).toContainText('vm.json');
  // The form is checked by the same schema: a page size arm64 alone has.
  await page.selectOption('#page-size', '64k');
  await page.click('#boot');
  await expect(page.locator('#config-error')).toContainText('/pageSize');
  await expect(page.locator('#status')).toHaveAttribute('data-state', 'idle');
  // A good file then applies and boots.
  await page.fill('#vm-json', '{ "release": "ws2019", "cpus": 1, "devices": ["kvp", "heartbeat"] }');
  await page.click('#apply-json');
  await expect(page.locator('#config-error')).toBeHidden();
  await page.click('#boot');
  await expect(page.locator('#log')).toContainText('Vmbus version:5.');
  await expect(page.locator('#channels-body tr[data-class]')).toHaveCount(3);
});

test('without cross-origin isolation, the page says so and still runs the VM in its thread', async ({ page }) => {
  // The same site with the COOP and COEP headers taken off every response.
  await page.route('**/*', async (route) => {
    const response = await route.fetch();
    const headers = { ...response.headers() };
    delete headers['cross-origin-opener-policy'];
    delete headers['cross-origin-embedder-policy'];
    await route.fulfill({ response, headers });
  });
  await page.goto('/');
  expect(await page.evaluate(() => (globalThis as unknown as { crossOriginIsolated: boolean }).crossOriginIsolated)).toBe(false);
  await expect(page.locator('#isolation')).toBeVisible();
  await expect(page.locator('#isolation')).toContainText('not cross-origin isolated');
  await expect(page.locator('#worker')).toBeDisabled();
  await page.click('#boot');
  await expect(page.locator('#log')).toContainText('Vmbus version:5.3');
  await expect(page.locator('#status')).toContainText('running (in-thread)');
  await page.screenshot({ path: `${ARTIFACTS}/not-isolated.png` });
});

test('the VM file `hvkit web --config` serves as /vm.json sets up the machine; a bad one is a visible error', async ({ page }) => {
  let body = '{ "release": "ws2019", "cpus": 1, "devices": ["shutdown", "kvp"] }';
  await page.route('**/vm.json', (route) => route.fulfill({ status: 200, contentType: 'application/json', body }));
  await page.goto('/');
  await expect(page.locator('#release')).toHaveValue('ws2019');
  await expect(page.locator('#vps')).toHaveValue('1');
  await page.click('#boot');
  await expect(page.locator('#log')).toContainText('Vmbus version:5.');
  await expect(page.locator('#vps-body tr')).toHaveCount(1);
  await expect(page.locator('#channels-body tr[data-class="kvp"]')).toHaveCount(1);
  await expect(page.locator('#channels-body tr[data-class="heartbeat"]')).toHaveCount(0);
  body = '{ "cpus": "many" }';
  await page.reload();
  await expect(page.locator('#config-error')).toContainText('vm.json (from hvkit web --config): /cpus: must be');
});
