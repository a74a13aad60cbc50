// `hvkit web`: serves the browser app (dist-web/, built by `npm run build:web` and shipped in the
// package) on a local port with the headers that make it cross-origin isolated (COOP, COEP), so
// that the guest can run in a Web Worker over SharedArrayBuffer. With --config, the VM file —
// validated here as `hvkit run --config` validates it — is served as /vm.json for the page to use.
// The real Linux guest's module (GPL-2.0, never packed) is served as /hvlinux.wasm from the
// checkout's build cache when `npm run build:linux` made it; the page offers that guest then.
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { loadVmConfig } from '../vm/config.js';
import { RunFailure, UsageError } from './errors.js';
import { LINUX_WASM_PATH } from './linux-wasm.js';
import type { Io } from './main.js';

/** dist/cli/web.js and src/cli/web.ts both sit two levels below the package root. */
export const SITE_DIR = fileURLToPath(new URL('../../dist-web/', import.meta.url));

/** What makes a page cross-origin isolated (web/vite.config.ts sends the same in development). */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.wasm': 'application/wasm',
  '.map': 'application/json; charset=utf-8',
};

export interface SiteOptions {
  /** The built site's folder. */
  root: string;
  /** The VM file's text, served as /vm.json. */
  vmJson?: string;
  /**
   * Files outside the site served at fixed paths (e.g. /hvlinux.wasm from the build cache): only
   * these exact paths, read at each request (404 while the file does not exist).
   */
  extraFiles?: Readonly<Record<string, string>>;
}

/** What `hvkit web` serves beside the site: the real Linux guest's module, where it was built. */
export const LINUX_WASM_URL = '/hvlinux.wasm';

/** A server for the site: GET and HEAD of its files, / as index.html, nothing outside `root`. */
export function siteServer(o: SiteOptions): Server {
  const root = resolve(o.root);
  return createServer((req, res) => {
    const send = (code: number, type: string, body: string | Buffer): void => {
      res.writeHead(code, { ...ISOLATION_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-cache' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    void (async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'only GET and HEAD\n');
      let path: string;
      try {
        path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
      } catch {
        return send(400, 'text/plain', 'bad path\n');
      }
      if (path === '/vm.json' && o.vmJson !== undefined) return send(200, TYPES['.json']!, o.vmJson);
      const extra = o.extraFiles !== undefined && Object.hasOwn(o.extraFiles, path) ? o.extraFiles[path] : undefined;
      const file = extra ?? resolve(root, `.${path.endsWith('/') ? `${path}index.html` : path}`);
      if (extra === undefined && file !== root && !file.startsWith(root + sep)) return send(404, 'text/plain', 'not found\n');
      try {
        if (!(await stat(file)).isFile()) return send(404, 'text/plain', 'not found\n');
        return send(200, TYPES[extname(file)] ?? 'application/octet-stream', await readFile(file));
      } catch {
        return send(404, 'text/plain', 'not found\n');
      }
    })().catch(() => res.destroy());
  });
}

interface WebOptions {
  port: number;
  host: string;
  config?: string;
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw new UsageError(`--port: '${v}' is not a port number (0 to 65535; 0 picks a free one)`);
  return n;
}

export function registerWeb(program: Command, io: Io): void {
  program
    .command('web')
    .description('serve the browser app (a live VM, its channels and rings, and trace replay) on a local port, cross-origin isolated')
    .option('--port <n>', 'the port to listen on (0: any free port)', parsePort, 8080)
    .option('--host <address>', 'the address to listen on', '127.0.0.1')
    .option('--config <vm.json>', 'a VM file (as `hvkit run --config`) the page starts from')
    .action(async (o: WebOptions) => {
      if (!existsSync(join(SITE_DIR, 'index.html'))) throw new RunFailure(`the browser app is not built (no ${join(SITE_DIR, 'index.html')}): run \`npm run build:web\``);
      let vmJson: string | undefined;
      if (o.config !== undefined) {
        loadVmConfig(o.config);
        vmJson = await readFile(o.config, 'utf8');
      }
      const server = siteServer({ root: SITE_DIR, extraFiles: { [LINUX_WASM_URL]: LINUX_WASM_PATH }, ...(vmJson === undefined ? {} : { vmJson }) });
      await new Promise<void>((ok, fail) => {
        server.once('error', (e: NodeJS.ErrnoException) => fail(e.code === 'EADDRINUSE' ? new RunFailure(`--port ${o.port}: the port is in use`) : e.code === 'EACCES' ? new RunFailure(`--port ${o.port}: not allowed to listen there`) : e));
        server.listen(o.port, o.host, ok);
      });
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : o.port;
      io.out(`hvkit web: serving http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}/ (Ctrl-C stops)`);
      await new Promise<void>((done) => {
        const stop = io.interrupts?.listen(() => server.close(() => done()));
        server.once('close', () => {
          stop?.();
          done();
        });
      });
    });
}
