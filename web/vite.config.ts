// The browser app's build: a static site in dist-web/ that runs a Machine in the page. Both the
// dev server and the preview send COOP and COEP, so that the page is cross-origin isolated and
// may share memory with the guest's worker (SharedArrayBuffer).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/** The headers that make a page cross-origin isolated (src/cli/web.ts sends the same). */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
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
