// Before the browser tests: the real Linux guest's module, built (or found fresh in the cache) by
// scripts/linux/build.ts where Debian's clang, lld and linux-source-6.1 are installed, so that
// test-web/linux.spec.ts runs whether or not the vitest run of test/linux came first. Where they
// are missing nothing is built, and that spec says why it skips.
import { buildLinux, linuxToolsMissing } from '../scripts/linux/build.js';

export default async function globalSetup(): Promise<void> {
  const missing = linuxToolsMissing();
  if (missing) return void console.log(`test-web/linux.spec.ts will skip where the module is not built: ${missing}`);
  await buildLinux({ log: (line) => console.log(line) });
}
