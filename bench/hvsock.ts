// hv_sock throughput, guest → host: a fixed transfer in write() calls of 128 B, 4 KiB and 64 KiB,
// with Linux's default 24 KiB rings and with 64 KiB rings (a 64 KiB socket buffer, VMBus 5.3),
// in-thread (the deterministic Machine: wall time of the transfer) and with the guest in a
// worker (ThreadedMachine). Each figure is reported against the in-thread ring throughput of
// 4 KiB packets measured in the same run ("ring write+read, 4 KiB packets" of bench/vmbus.ts):
// hv_sock moves its data in packets of at most 4088 bytes. The 64 KiB writes over 64 KiB rings
// are also the hv_sock streaming pair: the worker's figure over the in-thread one.
//
// The host reads as a streaming service that keeps nothing would: its socket lends each chunk
// (HostHvSocket.lend). The streaming pair is also measured with the host keeping every chunk,
// which costs an allocation per 64 KiB (DataArena says how much that is with a worker running).
//
// Linux's published anchor (hv_sock ring sizing patch, Sunil Muthuswamy, 2019): about 470 MB/s
// with the default rings, about 2,085 MB/s with 32 KiB send buffers at 64 KiB messages. Those
// are the goals, in bytes/s (MB = 10^6 bytes); 128 B writes aim at 100 MB/s.
import { HvSockGuest } from '../src/devices/hvsock/guest.js';
import type { HostHvSocket } from '../src/devices/hvsock/host.js';
import { Machine } from '../src/vm/machine.js';
import { hostHvsock } from '../src/vm/hvsock-stream.js';
import { ThreadedMachine } from '../src/vm/threaded/machine.js';
import type { HvsockArgs, HvsockResult } from '../src/vm/threaded/workloads/hvsock.js';
import type { Goal, Measurement, MeasurementGroup } from './index.js';
import { fastest } from './stats.js';
import { label } from './vmbus.js';

/** The baseline: bench/vmbus.ts's ring case for the packet size hv_sock sends. */
const RING_CASE = 'ring write+read, 4 KiB packets';
const WRITES = [128, 4096, 65536] as const;
const RINGS = [{ label: 'default rings', bytes: 24576 }, { label: '64 KiB rings', bytes: 65536 }] as const;
const PORT = 5000;


/** A host service that counts what arrives and answers EOF with its own; it borrows each chunk unless it keeps them. */
function sink(keep: boolean) {
  const st = { bytes: 0 };
  return {
    st,
    accept: (s: HostHvSocket) => {
      s.lend = !keep;
      s.on.data = (b) => void (st.bytes += b.length);
      s.on.end = () => s.end();
    },
  };
}

/** The transfer in one thread: the guest's writer refills the ring from its channel callback. */
function inThread(total: number, writeBytes: number, ringBytes: number, keep = false): number {
  const m = new Machine({ release: 'ws2022', vps: 2, memory: 64 << 20, devices: [], kernel: { modules: [] } });
  m.boot();
  const counter = sink(keep);
  hostHvsock(m).listen(PORT, counter.accept);
  const guest = new HvSockGuest(m.kernel.vmbus!, m.kernel.services);
  m.kernel.vmbus!.registerDriver(guest.driver);
  const s = guest.connect(PORT, { ringBytes });
  if (!m.waitUntil(() => s.state === 'open', 1e9)) throw new Error('hv_sock bench: no connection');
  const chunk = new Uint8Array(writeBytes).map((_, i) => i);
  let written = 0;
  let pos = 0;
  let eof = false;
  const pump = () => {
    while (written < total) {
      const size = Math.min(writeBytes, total - (written - pos));
      const n = s.write(chunk.subarray(pos, size));
      written += n;
      pos += n;
      if (pos < size) return;
      pos = 0;
    }
    s.end();
  };
  s.on.writable = pump;
  s.on.end = () => void (eof = true);
  const t0 = performance.now();
  pump();
  if (!m.waitUntil(() => eof, 600e9) || counter.st.bytes !== total) throw new Error(`hv_sock bench: ${counter.st.bytes} of ${total} bytes arrived`);
  return performance.now() - t0;
}

/** The same with the guest in a worker; the host's clock follows the wall clock. */
async function inWorker(total: number, writeBytes: number, ringBytes: number, keep = false): Promise<number> {
  const tm = new ThreadedMachine({ release: 'ws2022', vps: 2, memory: 64 << 20, devices: [], kernel: { modules: [] } });
  const counter = sink(keep);
  let last: HostHvSocket | undefined;
  hostHvsock(tm).listen(PORT, (s) => {
    last = s;
    counter.accept(s);
  });
  // The worker's code is compiled afresh: an untimed warm-up goes first (WARMUP says why).
  const args: HvsockArgs = { port: PORT, bytes: total, writeBytes, ringBytes, warmupMs: WORKER_WARMUP_MS };
  const r = await tm.run<HvsockResult>(new URL('../src/vm/threaded/workloads/hvsock.js', import.meta.url), args, 120_000);
  const expected = total + (r.result?.warmedUp ?? 0);
  if (r.error || !r.result?.finished || counter.st.bytes !== expected) {
    // Where the last connection stood on both sides: what a stall needs to be told apart.
    const host = last && { state: last.state, eofReceived: last.eofReceived, ended: last.ended, finSent: last.finSent, stats: last.stats, rings: last.channel?.ringState(), polling: last.channel?.polling };
    const guest = r.state.vmbus?.devices.at(-1)?.channels;
    const where = JSON.stringify({ case: { writeBytes, ringBytes, keep }, host, guest, hostFaults: tm.partition.hostFaults.items });
    throw new Error(`hv_sock worker bench failed: ${r.error?.split('\n')[0] ?? r.result?.error ?? `${counter.st.bytes} of ${expected} bytes`}; ${where}`);
  }
  return r.result.ms;
}

/**
 * WARMUP: the code reaches its steady state only after some 50 MiB have gone through it (V8
 * tiers it up as it runs): 4 KiB writes over the default rings in-thread ran 84, 192, 349,
 * 1,046, 1,656 … 1,800 MB/s in successive 16 MiB transfers, and the worker's 64 KiB writes
 * doubled with 32 MiB first instead of 8. A quarter transfer first left the figures on the
 * climb, anywhere from 376 to 1,854 MB/s for the same case between runs.
 */
const IN_THREAD_WARMUPS = 3;
/**
 * A worker's guest code starts cold in every worker, and each new connection partly cold again:
 * 128 B writes over the default rings ran 20, 40-70, 50-120 … then 300-400 MB/s in successive
 * 2 MiB of one worker's first connection, settling after about 20 MiB; in 4 MiB connections one
 * after another, the fifth was the first at full speed, and the EOF handshake went from 1.4-3.7
 * ms to about 0.5. Untimed connections of the timed transfer's size go first for this long
 * (4 KiB and 64 KiB writes took about as long to settle).
 */
const WORKER_WARMUP_MS = 500;

/**
 * Bytes moved per case: enough for the timing to be well above the noise (and the EOF handshake,
 * about 0.5 ms in a worker, a small part of it), small writes cost more per byte. The same in
 * both modes, as is the number of timed transfers: the pair compares one stream, and a shorter
 * transfer more often fits between the scheduler's interruptions of a shared machine (in-thread
 * moved 16 MiB in 3 transfers against the worker's 32 MiB in 2).
 */
const totalFor = (writeBytes: number) => (writeBytes < 1024 ? 8 : 32) << 20;
/** Timed transfers per case, the fastest taken (fastest() says why). */
const TIMED_RUNS = 3;

const rowName = (mode: string, writeBytes: number, ring: string) => `hv_sock ${mode} guest → host, ${label(writeBytes)} writes, ${ring}`;
const STREAM_IN_THREAD = 'in-thread guest → host streaming, hv_sock 64 KiB writes';
const STREAM_WORKER = 'worker guest → host streaming, hv_sock 64 KiB writes';
const KEPT = ', the host keeping every chunk';
const MODES = ['in-thread', 'worker'] as const;

/**
 * Linux's figures as goals (bytes/s): 470 MB/s with the default rings and 100 MB/s at 128 B,
 * and the 2,085 MB/s of 64 KiB rings at 64 KiB kept in-thread (where it was reached; the
 * worker's figure is held to half the in-thread one instead).
 */
function goalFor(writeBytes: number, ring: (typeof RINGS)[number], mode: (typeof MODES)[number]): Goal | undefined {
  if (writeBytes === 128) return { of: 'value', atLeast: 100e6, text: '≥ 100 MB/s' };
  if (ring.bytes === 65536 && writeBytes === 65536) return mode === 'in-thread' ? { of: 'value', atLeast: 2085e6, text: '≥ 2,085 MB/s (Linux)' } : undefined;
  if (ring.bytes === 24576) return { of: 'value', atLeast: 470e6, text: '≥ 470 MB/s (Linux)' };
  return undefined;
}

export function hvsockGroup(): MeasurementGroup {
  const names = [STREAM_IN_THREAD, STREAM_WORKER, STREAM_IN_THREAD + KEPT, STREAM_WORKER + KEPT, ...MODES.flatMap((mode) => RINGS.flatMap((ring) => WRITES.map((w) => rowName(mode, w, ring.label))))];
  return { names, needs: [RING_CASE], run: (perOpNs, wanted) => hvsockMeasurements(perOpNs, wanted) };
}

async function hvsockMeasurements(perOpNs: ReadonlyMap<string, number>, wanted: (name: string) => boolean): Promise<Measurement[]> {
  const ringNs = perOpNs.get(RING_CASE);
  if (ringNs === undefined) throw new Error(`hv_sock bench needs the '${RING_CASE}' case`);
  const ringBytesPerSec = (4096 * 1e9) / ringNs;
  const out: Measurement[] = [];
  const streaming: Partial<Record<(typeof MODES)[number], number>> = {};
  const wantStreaming = wanted(STREAM_IN_THREAD) || wanted(STREAM_WORKER);
  for (const mode of MODES) {
    for (const ring of RINGS) {
      for (const w of WRITES) {
        const isStreaming = w === 65536 && ring.bytes === 65536;
        if (!wanted(rowName(mode, w, ring.label)) && !(isStreaming && wantStreaming)) continue;
        const total = totalFor(w);
        // In-thread, first transfers warm the code up (WARMUP): the figure is the steady state.
        if (mode === 'in-thread') for (let i = 0; i < IN_THREAD_WARMUPS; i++) inThread(total, w, ring.bytes);
        const ms = mode === 'worker' ? await fastest(TIMED_RUNS, () => inWorker(total, w, ring.bytes)) : await fastest(TIMED_RUNS, () => inThread(total, w, ring.bytes));
        const bytesPerSec = (total * 1e3) / ms;
        const goal = goalFor(w, ring, mode);
        out.push({ name: rowName(mode, w, ring.label), value: bytesPerSec, unit: 'bytes/s', ratio: bytesPerSec / ringBytesPerSec, baseline: RING_CASE, ...(goal ? { goal } : {}) });
        if (isStreaming) streaming[mode] = bytesPerSec;
      }
    }
  }
  const kept: Measurement[] = [];
  if (wanted(STREAM_IN_THREAD + KEPT) || wanted(STREAM_WORKER + KEPT)) {
    const total = totalFor(65536);
    for (let i = 0; i < IN_THREAD_WARMUPS; i++) inThread(total, 65536, 65536, true);
    const inThreadKept = (total * 1e3) / (await fastest(TIMED_RUNS, () => inThread(total, 65536, 65536, true)));
    const workerKept = (total * 1e3) / (await fastest(TIMED_RUNS, () => inWorker(total, 65536, 65536, true)));
    kept.push(
      { name: STREAM_IN_THREAD + KEPT, value: inThreadKept, unit: 'bytes/s' },
      { name: STREAM_WORKER + KEPT, value: workerKept, unit: 'bytes/s', ratio: workerKept / inThreadKept, baseline: STREAM_IN_THREAD + KEPT },
    );
  }
  const inThreadRate = streaming['in-thread'];
  const workerRate = streaming.worker;
  if (inThreadRate === undefined || workerRate === undefined) return [...kept, ...out];
  return [
    { name: STREAM_IN_THREAD, value: inThreadRate, unit: 'bytes/s' },
    { name: STREAM_WORKER, value: workerRate, unit: 'bytes/s', ratio: workerRate / inThreadRate, baseline: STREAM_IN_THREAD, goal: { of: 'ratio', atLeast: 0.5, text: '≥ 0.5× in-thread' } },
    ...kept,
    ...out,
  ];
}
