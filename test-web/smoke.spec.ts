import { expect, test } from '@playwright/test';

test('boots', async ({ page }) => {
  page.on('console', (m) => console.log('console:', m.text()));
  page.on('pageerror', (e) => console.log('pageerror:', e.message));
  await page.goto('/');
  await page.click('#boot');
  await expect(page.locator('#log')).toContainText('Vmbus version:5.3');
  await page.waitForTimeout(2000);
  await page.screenshot({ path: 'test-web-results/smoke.png', fullPage: true });
});
