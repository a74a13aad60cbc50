// `hvkit web`: the site's files with the headers that make the page cross-origin isolated, the
// VM file as /vm.json once the schema accepts it, nothing outside the site, and the command's
// errors as one line with exit 2.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { LINUX_WASM_PATH } from '../../src/cli/linux-wasm.js';
import { ISOLATION_HEADERS, LINUX_WASM_URL, siteServer } from '../../src/cli/web.js';
import type { Server } from 'node:http';

const dir = mkdtempSync(join(tmpdir(), 'hvkit-web-'));
const site = join(dir, 'site');
mkdirSync(join(site, 'assets'), { recursive: true });
writeFileSync(join(site, 'index.html'), '<!doctype html><title>hvkit</title>');
writeFileSync(join(site, 'assets/app.js'), 'export {};');
writeFileSync(join(dir, 'secret.txt'), 'outside the site');

/** A raw GET (the path as given: no URL normalization on the way). */
function get(port: number, path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string; bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const bytes = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: bytes.toString('utf8'), bytes });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the site server', () => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    server = siteServer({ root: site, vmJson: '{"cpus":1}' });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('serves / as index.html and the assets with their types, cross-origin isolated', async () => {
    const index = await get(port, '/');
    expect(index.status).toBe(200);
    expect(index.body).toContain('<title>hvkit</title>');
    expect(index.headers['content-type']).toBe('text/html; charset=utf-8');
    for (const [k, v] of Object.entries(ISOLATION_HEADERS)) expect(index.headers[k.toLowerCase()]).toBe(v);
    const js = await get(port, '/assets/app.js');
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.headers['cross-origin-embedder-policy']).toBe('require-corp');
    const vm = await get(port, '/vm.json');
    expect(vm.body).toBe('{"cpus":1}');
    expect(vm.headers['content-type']).toMatch(/^application\/json/);
  });

  it('serves nothing outside the site, answers only GET and HEAD, and refuses a path that does not decode', async () => {
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/%2e%2e/%2e%2e/secret.txt', '/nothing.js', '/assets']) {
      const r = await get(port, path);
      expect(r.status, path).toBe(404);
      expect(r.body).not.toContain('outside the site');
    }
    expect((await get(port, '/%E0%A4%A')).status).toBe(400);
    expect((await get(port, '/', 'POST')).status).toBe(405);
    const head = await get(port, '/', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
  });
});

describe('the Linux module beside the site', () => {
  // A stand-in for the build cache: the server reads the file at each request.
  const cache = join(dir, 'cache');
  const module = join(cache, 'hvlinux.wasm');
  mkdirSync(cache, { recursive: true });
  writeFileSync(join(cache, 'other.wasm'), 'not to be served');
  let server: Server;
  let port: number;
  beforeAll(async () => {
    server = siteServer({ root: site, extraFiles: { [LINUX_WASM_URL]: module } });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('serves /hvlinux.wasm from the cache as application/wasm, cross-origin isolated, while it exists, and 404 once it does not', async () => {
    expect((await get(port, '/hvlinux.wasm')).status).toBe(404);
    const bytes = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
    writeFileSync(module, bytes);
    const r = await get(port, '/hvlinux.wasm');
    expect(r.status).toBe(200);
    expect(r.bytes.equals(bytes)).toBe(true);
    expect(r.headers['content-type']).toBe('application/wasm');
    expect(r.headers['cross-origin-embedder-policy']).toBe('require-corp');
    expect((await get(port, '/hvlinux.wasm', 'HEAD')).status).toBe(200);
    rmSync(module);
    expect((await get(port, '/hvlinux.wasm')).status).toBe(404);
  });

  it('serves nothing else of the cache or outside the site', async () => {
    writeFileSync(module, 'module');
    for (const path of ['/other.wasm', '/hvlinux.wasm/../other.wasm', '/hvlinux.wasm/', '/HVLINUX.WASM', '/cache/other.wasm', '/../cache/other.wasm', '/%2e%2e/cache/other.wasm', '/../secret.txt', '/constructor', '/__proto__', '/toString']) {
      const r = await get(port, path);
      expect(r.status, path).toBe(404);
      expect(r.body).not.toContain('not to be served');
      expect(r.body).not.toContain('outside the site');
    }
    expect((await get(port, '/assets/app.js')).status).toBe(200);
  });
});

describe('hvkit web', () => {
  async function run(...args: string[]): Promise<{ code: number; out: string[]; err: string }> {
    const out: string[] = [];
    let err = '';
    const code = await main(['node', 'hvkit', 'web', ...args], { out: (l) => out.push(l), err: (t) => (err += t) });
    return { code, out, err };
  }

  it('refuses a VM file the schema refuses, a bad port and a missing file, each in one line with exit 2', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ "release": "ws1999" }');
    const r = await run('--config', bad, '--port', '0');
    expect(r.code).toBe(2);
    expect(r.err).toBe(`hvkit web: ${bad}: /release: must be one of ws2012, ws2012r2, ws2016, ws2019, ws2022, ws2025\n`);
    expect(await run('--port', '70000')).toMatchObject({ code: 2, err: "hvkit web: --port: '70000' is not a port number (0 to 65535; 0 picks a free one)\n" });
    expect((await run('--config', join(dir, 'none.json'))).err).toMatch(/^hvkit web: .*none\.json: cannot read: /);
  });

  it('serves the built site and the VM file until interrupted', async () => {
    const good = join(dir, 'vm.json');
    writeFileSync(good, '{ "release": "ws2019", "cpus": 1 }');
    const out: string[] = [];
    let stop: (() => void) | undefined;
    const done = main(['node', 'hvkit', 'web', '--port', '0', '--config', good], {
      out: (l) => out.push(l),
      err: () => undefined,
      interrupts: { listen: (h) => ((stop = h), () => undefined) },
    });
    await expect.poll(() => out.length).toBe(1);
    const url = /serving (http:\/\/\S+)/.exec(out[0]!)![1]!;
    const port = Number(new URL(url).port);
    const index = await get(port, '/');
    expect(index.status).toBe(200);
    expect(index.body).toContain('hvkit in the browser');
    expect(index.headers['cross-origin-opener-policy']).toBe('same-origin');
    expect((await get(port, '/vm.json')).body).toBe('{ "release": "ws2019", "cpus": 1 }');
    // The Linux module from the checkout's build cache where `npm run build:linux` made it.
    const linux = await get(port, '/hvlinux.wasm');
    if (existsSync(LINUX_WASM_PATH)) expect(linux.bytes.equals(readFileSync(LINUX_WASM_PATH))).toBe(true);
    else expect(linux.status).toBe(404);
    stop!();
    expect(await done).toBe(0);
  });
});
