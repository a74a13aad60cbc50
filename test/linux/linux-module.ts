// The Linux VMBus module for the tests in this folder: built (or taken from the cache) once per
// test file by scripts/linux/build.ts. Where clang, wasm-ld or the kernel source package are
// missing the tests say which and skip; CI installs them (.ci/run).
import { readFileSync } from 'node:fs';
import { buildLinux, linuxToolsMissing } from '../../scripts/linux/build.js';
import { wasm, type WasmModule } from '../../src/guest/linux/wasm.js';

/** Why the Linux tests cannot run here, or undefined. */
export const linuxMissing: string | undefined = linuxToolsMissing();

/** How the skipped suites name themselves. */
export const linuxSuite = (title: string): string => (linuxMissing ? `${title} (skipped: ${linuxMissing})` : title);

/** Generous: a cold build extracts the source package and compiles on a loaded 2-core machine. */
export const BUILD_TIMEOUT_MS = 10 * 60_000;

let cached: WasmModule | undefined;

export async function linuxModule(): Promise<WasmModule> {
  if (!cached) cached = new wasm.Module(readFileSync(await buildLinux()));
  return cached;
}
