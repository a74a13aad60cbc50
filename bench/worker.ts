// Guest-in-a-worker figures, each against a baseline measured in the same run: a trap's round
// trip against an Atomics ping-pong between two spinning threads (the least a round trip
// between threads costs), and guest → host streaming with the stream device against the same
// stream in one thread. The sleeping ping-pong shows what waking a thread costs.
import { Worker } from 'node:worker_threads';
import { StreamDevice } from '../src/devices/stream/host.js';
import { STREAM_CLASS_ID } from '../src/devices/stream/frame.js';
import { StreamDriver } from '../src/devices/stream/guest.js';
import { Machine } from '../src/vm/machine.js';
import { ThreadedMachine } from '../src/vm/threaded/machine.js';
import type { StreamArgs, StreamResult } from '../src/vm/threaded/workloads/stream.js';
import type { Measurement, MeasurementGroup } from './index.js';
import { medianPair } from './stats.js';

const SPIN = 'baseline: Atomics spin ping-pong';
const SLEEP = 'baseline: Atomics ping-pong between sleeping threads';
const TRAP = 'worker guest: trap round trip';
/** Trap and spin ping-pong pairs measured in turns. */
const TRAP_PAIRS = 3;
const STREAM_IN_THREAD = 'in-thread guest → host streaming, stream device';
const STREAM_WORKER = 'worker guest → host streaming, stream device';
const PER_SIGNAL = 'worker guest → host: packets per guest signal';

/**
 * Round trips of a word between this thread and a worker, both spinning or both sleeping: the
 * fastest of `rounds` rounds, as for the traps (a busy machine only ever slows a round down).
 */
async function pingPongNs(count: number, spin: boolean, rounds: number): Promise<number> {
  const sab = new SharedArrayBuffer(8);
  const a = new Int32Array(sab);
  const w = new Worker(new URL('./pingpong-worker.js', import.meta.url), { workerData: { sab, spin } });
  await new Promise((r) => setTimeout(r, 100));
  const round = () => {
    Atomics.store(a, 0, 1);
    if (spin) while (Atomics.load(a, 0) === 1);
    else {
      Atomics.notify(a, 0);
      while (Atomics.load(a, 0) === 1) Atomics.wait(a, 0, 1, 50);
    }
  };
  for (let i = 0; i < count / 10; i++) round();
  let ns = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < count; i++) round();
    ns = Math.min(ns, ((performance.now() - t0) * 1e6) / count);
  }
  Atomics.store(a, 1, 1);
  Atomics.store(a, 0, 1);
  Atomics.notify(a, 0);
  await w.terminate();
  return ns;
}

async function trapNs(count: number, rounds: number): Promise<number> {
  const m = new ThreadedMachine({ vps: 1, memory: 64 << 20, speed: 4, vmbus: false });
  const r = await m.run<{ nsPerTrap: number }>(new URL('../src/vm/threaded/workloads/traps.js', import.meta.url), { count, rounds }, 120_000);
  if (r.error || !r.result) throw new Error(`trap timing failed: ${r.error ?? 'no result'}`);
  return r.result.nsPerTrap;
}

/** The stream both ways measure: frames of up to 4000 bytes guest → host over 256 KiB rings. */
const STREAM = { seed: 2, maxData: 4000, ringBytes: 256 * 1024 } as const;
const FRAMES = 40_000;

/** The stream in one thread: bytes the host received over the wall time from the open to both FINs. */
function streamInThread(frames: number): number {
  // A first, shorter stream warms the code up: the figure is the steady state.
  streamInThreadOnce(frames / 4);
  return streamInThreadOnce(frames);
}

function streamInThreadOnce(frames: number): number {
  const m = new Machine({ vps: 2, memory: 64 << 20, devices: [] });
  const dev = new StreamDevice({ seed: 1, maxData: STREAM.maxData, toGuest: false });
  m.vmbus!.server.offer({ classId: STREAM_CLASS_ID, instanceId: '00000001-0000-4000-8000-0000000000b1' }, dev);
  m.boot();
  const drv = new StreamDriver(STREAM);
  m.kernel.vmbus!.registerDriver(drv);
  const t0 = performance.now();
  m.waitUntil(() => drv.stats.framesOut >= frames, 600e9);
  drv.stop();
  if (!m.waitUntil(() => drv.finished(), 60e9) || dev.stats.errors.length) throw new Error(`in-thread streaming failed: ${dev.stats.errors[0] ?? 'did not finish'}`);
  return (dev.stats.bytesIn * 1e3) / (performance.now() - t0);
}

async function streamInWorker(frames: number): Promise<{ bytesPerSec: number; packetsPerSignal: number }> {
  const m = new ThreadedMachine({ vps: 2, memory: 64 << 20 });
  const dev = new StreamDevice({ seed: 1, maxData: STREAM.maxData, toGuest: false });
  m.vmbus!.server.offer({ classId: STREAM_CLASS_ID, instanceId: '00000001-0000-4000-8000-0000000000b1' }, dev);
  // The worker's code is compiled afresh: a quarter more frames go first, untimed.
  const args: StreamArgs = { ...STREAM, seconds: 60, frames: frames + frames / 4, warmupFrames: frames / 4 };
  const r = await m.run<StreamResult>(new URL('../src/vm/threaded/workloads/stream.js', import.meta.url), args, 90_000);
  if (r.error || !r.result?.finished || dev.stats.errors.length) throw new Error(`worker streaming failed: ${r.error ?? dev.stats.errors[0] ?? 'did not finish'}`);
  return { bytesPerSec: (r.result.bytes * 1e3) / r.result.ms, packetsPerSignal: r.result.stats.framesOut / Math.max(1, r.result.signals) };
}

export function workerGroup(): MeasurementGroup {
  return {
    names: [SPIN, SLEEP, TRAP, STREAM_IN_THREAD, STREAM_WORKER, PER_SIGNAL],
    async run(_perOpNs, wanted) {
      const out: Measurement[] = [];
      if ([SPIN, SLEEP, TRAP].some(wanted)) {
        // The trap and its baseline in turns, three pairs: the ratio is the median pair's (medianPair).
        const pairs: { figure: number; baseline: number }[] = [];
        for (let i = 0; i < TRAP_PAIRS; i++) pairs.push({ baseline: await pingPongNs(10_000, true, 4), figure: await trapNs(10_000, 4) });
        const { figure: trap, baseline: spin, ratio } = medianPair(pairs);
        const sleep = await pingPongNs(2_000, false, 10);
        out.push(
          { name: SPIN, value: spin, unit: 'ns' },
          { name: SLEEP, value: sleep, unit: 'ns' },
          { name: TRAP, value: trap, unit: 'ns', ratio, baseline: SPIN, goal: { of: 'ratio', atMost: 1.5, text: '≤ 1.5× the spin ping-pong' } },
        );
      }
      if ([STREAM_IN_THREAD, STREAM_WORKER, PER_SIGNAL].some(wanted)) {
        // The fastest of two streams each way (stats.ts fastest() says why).
        const inThread = Math.max(streamInThread(FRAMES), streamInThreadOnce(FRAMES));
        const runs = [await streamInWorker(FRAMES), await streamInWorker(FRAMES)];
        const s = runs[0]!.bytesPerSec >= runs[1]!.bytesPerSec ? runs[0]! : runs[1]!;
        out.push(
          { name: STREAM_IN_THREAD, value: inThread, unit: 'bytes/s' },
          { name: STREAM_WORKER, value: s.bytesPerSec, unit: 'bytes/s', ratio: s.bytesPerSec / inThread, baseline: STREAM_IN_THREAD, goal: { of: 'ratio', atLeast: 0.5, text: '≥ 0.5× in-thread' } },
          { name: PER_SIGNAL, value: s.packetsPerSignal, unit: 'packets' },
        );
      }
      return out;
    },
  };
}
