// What the browser tests share: booting a VM from the page's form, and where artifacts go.
import { expect, type Page } from '@playwright/test';

/** Screenshots and measured numbers (git-ignored). */
export const ARTIFACTS = 'test-web-results';

export async function boot(page: Page, opts: { worker?: boolean } = {}): Promise<void> {
  await page.goto('/');
  if (opts.worker) await page.check('#worker');
  await page.click('#boot');
  await expect(page.locator('#log')).toContainText('Vmbus version:5.3');
  await expect(page.locator('#status')).toHaveAttribute('data-state', 'running');
}

/** The page's uncaught errors: a test fails on any. */
export function collectErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return errors;
}
