// Where `npm run build:linux` leaves the real Linux guest's module (scripts/linux/build.ts's
// WASM), from src/cli or dist/cli: the checkout's build cache. GPL-2.0 and built from the
// kernel's sources, so the package never carries it; `hvkit run --guest linux` loads it from
// here and `hvkit web` serves it to the page.
import { fileURLToPath } from 'node:url';

export const LINUX_WASM_PATH = fileURLToPath(new URL('../../.cache/linux-6.1/hvlinux.wasm', import.meta.url));
