// The real Linux guest's module, as `hvkit web` (and `npm run web`) serve it from the checkout's
// build cache: GPL-2.0 and built from the kernel's sources, so it is never part of the site.
// The page asks whether it is there before offering the guest, and compiles it once.

/** Where the servers put it (src/cli/web.ts LINUX_WASM_URL, web/vite.config.ts), relative to the page. */
export const LINUX_WASM_URL = './hvlinux.wasm';

/** Why the guest cannot be offered, in one line; undefined when it can. */
export async function linuxUnavailable(isolated: boolean): Promise<string | undefined> {
  // The module imports a shared memory (it is linked with --shared-memory): SharedArrayBuffer.
  if (!isolated) return 'needs a cross-origin isolated page (shared wasm memory): serve it with hvkit web or npm run web';
  let res: Response;
  try {
    res = await fetch(LINUX_WASM_URL, { method: 'HEAD', cache: 'no-store' });
  } catch (e) {
    return `cannot ask the server for ${LINUX_WASM_URL}: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (res.ok && (res.headers.get('content-type') ?? '').startsWith('application/wasm')) return undefined;
  return "not built: build it with npm run build:linux (needs Debian's clang, lld and linux-source-6.1), then reload";
}

let compiled: Promise<WebAssembly.Module> | undefined;

/** The module, fetched and compiled once (asynchronously: Chromium refuses to compile a large module synchronously in the page). */
export function linuxModule(): Promise<WebAssembly.Module> {
  compiled ??= (async () => {
    const res = await fetch(LINUX_WASM_URL, { cache: 'no-store' });
    if (!res.ok) throw new Error(`${LINUX_WASM_URL}: ${res.status} ${res.statusText}`);
    return WebAssembly.compile(await res.arrayBuffer());
  })();
  // A failed fetch is tried again at the next boot.
  compiled.catch(() => (compiled = undefined));
  return compiled;
}
