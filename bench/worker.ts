// Guest-in-a-worker figures, against an Atomics ping-pong between two threads measured in the
// same run: a trap's round trip, and streaming from the guest worker to the host (bytes/s,
// against the in-thread copy).
import { Worker } from 'node:worker_threads';
import { StreamDevice } from '../src/devices/stream/host.js';
import { STREAM_CLASS_ID } from '../src/devices/stream/frame.js';
import { ThreadedMachine } from '../src/vm/threaded/machine.js';
import type { StreamArgs, StreamResult } from '../src/vm/threaded/workloads/stream.js';
import type { Measurement } from './vmbus.js';

/** Round trips of a word between this thread and a worker, sleeping in Atomics.wait between. */
async function pingPongNs(count: number): Promise<number> {
  const sab = new SharedArrayBuffer(8);
  const a = new Int32Array(sab);
  const w = new Worker(new URL('./pingpong-worker.js', import.meta.url), { workerData: sab });
  await new Promise((r) => setTimeout(r, 100));
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    Atomics.store(a, 0, 1);
    Atomics.notify(a, 0);
    while (Atomics.load(a, 0) === 1) Atomics.wait(a, 0, 1, 50);
  }
  const ns = ((performance.now() - t0) * 1e6) / count;
  Atomics.store(a, 1, 1);
  Atomics.store(a, 0, 1);
  Atomics.notify(a, 0);
  await w.terminate();
  return ns;
}

async function trapNs(count: number): Promise<number> {
  const m = new ThreadedMachine({ vps: 1, memory: 64 << 20, speed: 4, vmbus: false });
  const r = await m.run<{ nsPerTrap: number }>(new URL('../src/vm/threaded/workloads/traps.js', import.meta.url), { count }, 60_000);
  if (r.error || !r.result) throw new Error(`trap timing failed: ${r.error ?? 'no result'}`);
  return r.result.nsPerTrap;
}

async function streaming(seconds: number): Promise<{ bytesPerSec: number; packetsPerSignal: number }> {
  const m = new ThreadedMachine({ vps: 2, memory: 64 << 20 });
  const dev = new StreamDevice({ seed: 1, maxData: 4000, toGuest: false });
  m.vmbus!.server.offer({ classId: STREAM_CLASS_ID, instanceId: '00000001-0000-4000-8000-0000000000b1' }, dev);
  const args: StreamArgs = { seed: 2, maxData: 4000, ringBytes: 256 * 1024, seconds };
  const r = await m.run<StreamResult>(new URL('../src/vm/threaded/workloads/stream.js', import.meta.url), args, 60_000);
  if (r.error || !r.result?.finished || dev.stats.errors.length) throw new Error(`worker streaming failed: ${r.error ?? dev.stats.errors[0] ?? 'did not finish'}`);
  return { bytesPerSec: dev.stats.bytesIn / seconds, packetsPerSignal: r.result.stats.framesOut / Math.max(1, r.result.signals) };
}

export async function workerMeasurements(copyBytesPerSec: number): Promise<Measurement[]> {
  const pingPong = await pingPongNs(20_000);
  const trap = await trapNs(20_000);
  const s = await streaming(2);
  return [
    { name: 'baseline: Atomics ping-pong between threads', value: pingPong / 1000, unit: 'µs' },
    { name: 'worker guest: trap round trip (counter read)', value: trap / 1000, unit: 'µs', ratio: trap / pingPong, baseline: 'Atomics ping-pong' },
    { name: 'worker guest → host streaming', value: s.bytesPerSec, unit: 'bytes/s', ratio: s.bytesPerSec / copyBytesPerSec, baseline: 'in-thread 4 KiB copy bytes/s' },
    { name: 'worker guest → host: packets per guest signal', value: s.packetsPerSignal, unit: 'packets' },
  ];
}
