// The browser app's build: a static site in dist-web/ that runs a Machine in the page. Both the
// dev server and the preview send COOP and COEP, so that the page is cross-origin isolated and
// may share memory with the guest's worker (SharedArrayBuffer). The dev server also serves the
// real Linux guest's module from the build cache, as `hvkit web` does; the build never copies it.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

/** The headers that make a page cross-origin isolated (src/cli/web.ts sends the same). */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

/** scripts/linux/build.ts's output (src/cli/linux-wasm.ts names the same file). */
const LINUX_WASM = fileURLToPath(new URL('../.cache/linux-6.1/hvlinux.wasm', import.meta.url));

/** /hvlinux.wasm in development, read at each request; 404 while it is not built. */
function linuxModule(): Plugin {
  return {
    name: 'hvkit-linux-module',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        if (new URL(req.url ?? '/', 'http://localhost').pathname !== '/hvlinux.wasm') return next();
        readFile(LINUX_WASM).then(
          (bytes) => {
            res.writeHead(200, { ...ISOLATION_HEADERS, 'Content-Type': 'application/wasm', 'Content-Length': bytes.length, 'Cache-Control': 'no-cache' });
            res.end(req.method === 'HEAD' ? undefined : bytes);
          },
          () => {
            res.writeHead(404, { ...ISOLATION_HEADERS, 'Content-Type': 'text/plain' });
            res.end('not built: npm run build:linux\n');
          },
        );
      });
    },
  };
}

export default defineConfig({
  plugins: [linuxModule()],
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  build: {
    outDir: fileURLToPath(new URL('../dist-web', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 4096,
  },
  worker: { format: 'es' },
  server: { headers: ISOLATION_HEADERS },
  preview: { headers: ISOLATION_HEADERS },
});
