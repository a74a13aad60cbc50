// `npm test`'s last step: the browser tests (npm run test:web's Playwright run, the site already
// built) where a Chromium is installed, and a clear line saying they were skipped where not.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

const chromium = process.env.HVKIT_CHROMIUM ?? '/usr/bin/chromium';
try {
  accessSync(chromium, constants.X_OK);
} catch {
  console.log(`browser tests skipped: no Chromium at ${chromium} (apt-get install chromium, or set HVKIT_CHROMIUM)`);
  process.exit(0);
}
const r = spawnSync('npx', ['playwright', 'test'], { stdio: 'inherit', env: { ...process.env, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: '1' } });
process.exit(r.status ?? 1);
