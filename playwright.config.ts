// The browser tests (test-web/): Debian's Chromium drives the built site as `hvkit web` serves
// it. Playwright's own browser downloads are not used (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD).
import { defineConfig } from '@playwright/test';

export const WEB_PORT = Number(process.env.HVKIT_WEB_PORT ?? 4517);
export const CHROMIUM = process.env.HVKIT_CHROMIUM ?? '/usr/bin/chromium';

export default defineConfig({
  testDir: 'test-web',
  // Builds the real Linux guest's module where the tools are (test-web/linux.spec.ts boots it).
  globalSetup: './test-web/global-setup.ts',
  outputDir: 'test-web-results/artifacts',
  // One browser at a time: the machine has two cores, and each page runs a VM.
  workers: 1,
  fullyParallel: false,
  timeout: 120_000,
  expect: { timeout: 60_000 },
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${WEB_PORT}/`,
    screenshot: 'only-on-failure',
    launchOptions: { executablePath: CHROMIUM, args: ['--no-sandbox'] },
  },
  webServer: {
    command: `node bin/hvkit.js web --port ${WEB_PORT}`,
    url: `http://127.0.0.1:${WEB_PORT}/`,
    reuseExistingServer: false,
    timeout: 30_000,
  },
});
