// Hyper-V sockets as Node streams (src/vm/hvsock-stream.ts): echo services both ways with
// checksums, a slow consumer that holds the writer back, errors as stream errors, a peer that
// destroys its stream mid-way, and the guest in a worker streaming to a host listener.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hvSockModule } from '../../src/devices/hvsock/guest.js';
import { Xorshift } from '../../src/devices/stream/frame.js';
import { connectToVm, guestConnect, guestListen, hostHvsock, listen, runUntilClosed, runWhile, type HvsockDuplex } from '../../src/vm/hvsock-stream.js';
import { Machine } from '../../src/vm/machine.js';
import { ThreadedMachine } from '../../src/vm/threaded/machine.js';
import type { HvsockArgs, HvsockResult } from '../../src/vm/threaded/workloads/hvsock.js';

// Workers run JavaScript: the guest side comes from the build (`npm test` builds first).
const HVSOCK_WORKLOAD = new URL('../../dist/vm/threaded/workloads/hvsock.js', import.meta.url);

function machine(release: 'ws2016' | 'ws2022' = 'ws2022'): Machine {
  const m = new Machine({ release, vps: 2, memory: 64 << 20, devices: [], kernel: { modules: [hvSockModule()] } });
  m.boot();
  return m;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function randomBytes(seed: number, n: number): Buffer {
  const r = new Xorshift(seed);
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = r.next() & 0xff;
  return out;
}

/** Writes `data` in chunks of random sizes, waiting for 'drain' when write() says so, then end(). */
async function writeAll(s: HvsockDuplex, data: Buffer, seed: number): Promise<number> {
  const r = new Xorshift(seed);
  let drains = 0;
  for (let at = 0; at < data.length; ) {
    const n = Math.min(data.length - at, 1 + (r.next() % 50_000));
    if (!s.write(data.subarray(at, at + n))) {
      drains++;
      await new Promise((resolve) => s.once('drain', resolve));
    }
    at += n;
  }
  s.end();
  return drains;
}

function collect(s: HvsockDuplex) {
  const st = { chunks: [] as Buffer[], ended: false, error: undefined as (Error & { code?: string }) | undefined };
  s.on('data', (b: Buffer) => st.chunks.push(b));
  s.on('end', () => (st.ended = true));
  s.on('error', (e) => (st.error = e));
  return { st, bytes: () => Buffer.concat(st.chunks) };
}

/** No channel left on either side. */
const released = (m: Machine) => m.vmbus!.server.channels.size === 0 && m.kernel.vmbus!.channels.length === 0;

describe('hv_sock Duplex streams in a Machine', () => {
  it.each(['ws2016', 'ws2022'] as const)('%s: a host echo service, the guest connects and streams 1 MiB through it', async (release) => {
    const m = machine(release);
    const served: HvsockDuplex[] = [];
    listen(m, 5000, (s) => {
      served.push(s);
      s.pipe(s);
    });
    const c = guestConnect(m, 5000);
    const got = collect(c);
    let connected = false;
    c.on('connect', () => (connected = true));
    const data = randomBytes(1, 1 << 20);
    const writing = writeAll(c, data, 2);
    expect(await runUntilClosed(m, [c, ...served], { maxNs: 30e9 })).toBe(true);
    expect(connected).toBe(true);
    expect(await writing).toBeGreaterThan(0);
    expect(got.st.ended).toBe(true);
    expect(got.bytes().length).toBe(data.length);
    expect(sha(got.bytes())).toBe(sha(data));
    expect(await runWhile(m, () => !released(m))).toBe(true);
  });

  it('a guest echo service, the host connects to it and streams both ways at once', async () => {
    const m = machine();
    guestListen(m, 6000, (s) => s.pipe(s), { ringBytes: 65536 });
    const h = connectToVm(m, 6000);
    const got = collect(h);
    const data = randomBytes(3, 700_000);
    const writing = writeAll(h, data, 4);
    expect(await runUntilClosed(m, [h])).toBe(true);
    await writing;
    expect(sha(got.bytes())).toBe(sha(data));
    expect(await runWhile(m, () => !released(m))).toBe(true);
  });

  it('a slow consumer: the reading socket pauses, the writer gets no drain until it reads again', async () => {
    const m = machine();
    let server: HvsockDuplex | undefined;
    listen(m, 5000, (s) => {
      server = s;
      s.pause();
    });
    const c = guestConnect(m, 5000);
    const data = randomBytes(5, 400_000);
    let drained = 0;
    c.on('drain', () => drained++);
    expect(c.write(data)).toBe(false);
    c.once('drain', () => c.end());
    expect(await runWhile(m, () => server === undefined)).toBe(true);
    // Virtual time passes; nothing is read, so the ring and the stream's buffer stay full.
    await runWhile(m, () => true, { maxNs: 50e6 });
    expect(drained).toBe(0);
    expect(server!.socket.paused).toBe(true);
    expect(server!.readableLength).toBeLessThanOrEqual(server!.readableHighWaterMark + 20_480);
    const got = collect(server!);
    server!.resume();
    expect(await runWhile(m, () => !got.st.ended)).toBe(true);
    expect(drained).toBe(1);
    expect(sha(got.bytes())).toBe(sha(data));
  });

  it('a connect nobody answers is an ETIMEDOUT error on the stream, either side', async () => {
    const m = machine();
    const g = guestConnect(m, 7000);
    const h = connectToVm(m, 7001);
    const ge = collect(g);
    const he = collect(h);
    expect(await runUntilClosed(m, [g, h], { maxNs: 5e9 })).toBe(true);
    expect(ge.st.error?.message).toMatch(/ETIMEDOUT/);
    expect(he.st.error?.message).toMatch(/ETIMEDOUT/);
  });

  it('the host destroys its stream mid-way: the guest reads what the ring took, then EOF, and closes; all is released', async () => {
    const m = machine();
    let server: HvsockDuplex | undefined;
    let writeError: (Error & { code?: string }) | null | undefined;
    listen(m, 5000, (s) => {
      server = s;
      s.write(randomBytes(6, 300_000), (e) => (writeError = e));
    });
    const c = guestConnect(m, 5000);
    const got = collect(c);
    // The guest does not read yet: the host's writes fill the ring and wait.
    c.pause();
    c.write(randomBytes(7, 10_000));
    expect(await runWhile(m, () => server === undefined)).toBe(true);
    await runWhile(m, () => true, { maxNs: 5e6 });
    expect(server!.writableLength).toBeGreaterThan(0);
    server!.destroy();
    c.resume();
    expect(await runUntilClosed(m, [c])).toBe(true);
    expect(got.st.ended).toBe(true);
    expect(got.st.error).toBeUndefined();
    const b = got.bytes();
    expect(b.length).toBeGreaterThan(0);
    expect(b.length).toBeLessThan(300_000);
    expect(sha(b)).toBe(sha(randomBytes(6, 300_000).subarray(0, b.length)));
    // The host's write the ring never fully took fails as cut off.
    expect(writeError?.code).toBe('ERR_STREAM_DESTROYED');
    expect(await runWhile(m, () => !released(m))).toBe(true);
  });

  it('the guest destroys its stream mid-way: the host gets EOF after the data, and its side ends too', async () => {
    const m = machine();
    let server: HvsockDuplex | undefined;
    let serverGot: ReturnType<typeof collect> | undefined;
    listen(m, 5000, (s) => {
      server = s;
      serverGot = collect(s);
    });
    const c = guestConnect(m, 5000);
    const data = randomBytes(8, 5000);
    c.write(data);
    expect(await runWhile(m, () => !serverGot?.st.chunks.length)).toBe(true);
    c.destroy();
    expect(await runUntilClosed(m, [c, server!])).toBe(true);
    expect(serverGot!.st.ended).toBe(true);
    expect(sha(serverGot!.bytes())).toBe(sha(data));
    expect(await runWhile(m, () => !released(m))).toBe(true);
  });
});

describe('hv_sock with the guest in a worker', () => {
  it('Linux in the worker connects to a host listener and streams 4 MiB in 4 KiB writes', async () => {
    const tm = new ThreadedMachine({ release: 'ws2022', vps: 2, memory: 64 << 20, devices: [], kernel: { modules: [] } });
    let bytes = 0;
    hostHvsock(tm).listen(5000, (s) => {
      s.on.data = (b) => void (bytes += b.length);
      s.on.end = () => s.end();
    });
    const args: HvsockArgs = { port: 5000, bytes: 4 << 20, writeBytes: 4096 };
    const r = await tm.run<HvsockResult>(HVSOCK_WORKLOAD, args, 60_000);
    expect(r.error).toBeUndefined();
    expect(r.result).toMatchObject({ connected: true, finished: true, written: 4 << 20, error: undefined });
    expect(bytes).toBe(4 << 20);
    // 1,024 writes of 4,096 bytes: Linux splits each into 4,088 + 8.
    expect(r.result!.packets).toBeGreaterThanOrEqual(2 * 1024 + 1);
  }, 90_000);

  it('untimed connections go first for warmupMs, each a whole transfer the host reads to its EOF', async () => {
    const tm = new ThreadedMachine({ release: 'ws2022', vps: 2, memory: 64 << 20, devices: [], kernel: { modules: [] } });
    const perConnection: number[] = [];
    hostHvsock(tm).listen(5000, (s) => {
      const i = perConnection.push(0) - 1;
      s.on.data = (b) => void (perConnection[i]! += b.length);
      s.on.end = () => s.end();
    });
    const bytes = 256 << 10;
    const r = await tm.run<HvsockResult>(HVSOCK_WORKLOAD, { port: 5000, bytes, writeBytes: 1000, warmupMs: 1 } satisfies HvsockArgs, 60_000);
    expect(r.error).toBeUndefined();
    expect(r.result).toMatchObject({ connected: true, finished: true, written: bytes });
    // At least one warm-up connection, then the timed one; each carried the whole transfer, its last write cut short.
    expect(perConnection.length).toBeGreaterThanOrEqual(2);
    expect(perConnection.every((n) => n === bytes)).toBe(true);
    expect(r.result!.warmedUp).toBe(bytes * (perConnection.length - 1));
  }, 90_000);
});
