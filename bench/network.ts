// Network throughput between two VMs on a virtual switch: VM a sends raw Ethernet frames of 64
// and 1,500 bytes to VM b as fast as its ring and send sections let it, VM b counts what its
// interface receives. In-thread (a lab: two deterministic machines in lockstep, wall time of the
// transfer) and with each guest in its own worker (two ThreadedMachines served by this thread).
// Each rate is reported against the ring's packet rate measured in the same run ("ring
// write+read, 64 B packets" of bench/vmbus.ts): one frame takes a handful of ring packets
// (the send, its completion, the transfer-page receive, its completion) plus the RNDIS work.
import { guestNetwork, hostNics } from '../src/vm/network.js';
import { Lab } from '../src/vm/lab.js';
import { VirtualSwitch } from '../src/devices/network/switch.js';
import { writeEth } from '../src/devices/network/ether.js';
import { ThreadedMachine } from '../src/vm/threaded/machine.js';
import type { NetArgs, NetResult } from '../src/vm/threaded/workloads/net.js';
import type { Measurement, MeasurementGroup } from './index.js';

const RING_CASE = 'ring write+read, 64 B packets';
const SIZES = [64, 1500] as const;
const mac = (n: number) => new Uint8Array([0x00, 0x15, 0x5d, 0, 0, n]);
/** Frames the sender offers back to back (netdev_xmit_more: netvsc packs up to 8 in a send section). */
const BURST = 32;
/**
 * Frames sent before timing starts: V8 tiers the path up over the first hundred thousand or so
 * (64 B frames in successive chunks of 25,000: 6.3, 1.5, 2.2, 1.5, then 0.9 µs each from there
 * on), and the figure is the steady state, as the other benches' untimed warm-ups give theirs.
 */
const WARMUP = 150_000;
/** The same for the guests in workers, in seconds of flooding before the counted ones. */
const WORKER_WARMUP_S = 1;
/** An EtherType no stack handles: the frames only count. */
const BENCH_ETHERTYPE = 0x88b5;

function frame(size: number): Uint8Array {
  const f = new Uint8Array(size);
  writeEth(f, mac(2), mac(1), BENCH_ETHERTYPE);
  return f;
}

/** Two in-thread VMs: `total` frames from a to b; returns frames/s and bytes/s of wall time. */
function inThread(size: number, total: number): { fps: number; bps: number; lost: number } {
  const lab = new Lab(20_000);
  const sw = lab.switch('lan');
  for (const [name, n] of [['a', 1], ['b', 2]] as const) lab.add(name, { vps: 2, memory: 128 << 20, devices: [{ type: 'network', nic: { backend: sw, mac: mac(n) } }], kernel: { network: { interfaces: [{ address: `10.0.0.${n}/24` }] } } });
  lab.boot();
  lab.runFor(50e6);
  const a = guestNetwork(lab.vm('a')!);
  const b = guestNetwork(lab.vm('b')!);
  let received = 0;
  // b reads in batches, as from a packet socket's receive ring (rawBatch): a frame costs a copy, no object.
  b.rawBatch('eth0', (batch) => void (received += batch.count));
  const tx = a.raw('eth0', () => undefined);
  const burst = Array.from({ length: BURST }, () => frame(size));
  // Sends `count` frames and runs the lab until they have all arrived (or a minute has passed).
  const transfer = (count: number) => {
    const goal = received + count;
    const start = performance.now();
    for (let sent = 0; received < goal && performance.now() - start < 60_000; lab.runFor(20_000)) {
      for (let n = BURST; sent < count && n === BURST; sent += n) n = tx.sendBatch(burst.slice(0, Math.min(BURST, count - sent)));
    }
  };
  transfer(WARMUP); // the JIT's turn, not measured
  const t0 = performance.now();
  received = 0;
  transfer(total);
  const s = (performance.now() - t0) / 1000;
  const dropped = hostNics(lab.vm('b')!)[0]!.stats.rxDropped.queueFull;
  return { fps: received / s, bps: (received * size) / s, lost: dropped };
}

/** Two guests in workers, this thread serving both hosts: a floods b for `seconds` of its clock; frames/s of what b received. */
async function inWorkers(size: number, seconds: number): Promise<{ fps: number; bps: number }> {
  const sw = new VirtualSwitch('lan');
  const make = (n: number) => new ThreadedMachine({ vps: 2, memory: 128 << 20, devices: [{ type: 'network', nic: { backend: sw, mac: mac(n) } }], kernel: { network: { interfaces: [{ address: `10.0.0.${n}/24` }] } } });
  const ma = make(1);
  const mb = make(2);
  const url = new URL('../src/vm/threaded/workloads/net.js', import.meta.url);
  const recv: NetArgs = { role: 'count', seconds, warmupSeconds: WORKER_WARMUP_S, size, peer: mac(1) };
  const send: NetArgs = { role: 'flood', seconds, warmupSeconds: WORKER_WARMUP_S, size, peer: mac(2) };
  const maxMs = (WORKER_WARMUP_S + seconds + 30) * 1000;
  const [, rb] = await Promise.all([ma.run<NetResult>(url, send, { maxMs }), mb.run<NetResult>(url, recv, { maxMs })]);
  // A worker guest's clock follows the wall clock (speed 1): the counted window is `seconds` of wall time too.
  const got = rb.result?.frames ?? 0;
  return { fps: got / seconds, bps: (got * size) / seconds };
}

const rowName = (mode: 'in-thread' | 'in workers', size: number, what: 'frames/s' | 'bytes/s') => `network, two ${mode === 'in-thread' ? 'in-thread VMs' : 'VMs in workers'}, ${size} B frames: ${what}`;

/** Issue 13's goal: at 64 B, a quarter of the ring's packet rate. */
const GOAL = { of: 'ratio', atLeast: 0.25, text: "≥ 0.25× the ring's 64 B packet rate" } as const;

export function networkGroup(): MeasurementGroup {
  const names = (['in-thread', 'in workers'] as const).flatMap((mode) => SIZES.flatMap((size) => [rowName(mode, size, 'frames/s'), rowName(mode, size, 'bytes/s')]));
  return { names, needs: [RING_CASE], run: (perOpNs, wanted) => networkMeasurements(perOpNs, wanted) };
}

async function networkMeasurements(perOpNs: ReadonlyMap<string, number>, wanted: (name: string) => boolean): Promise<Measurement[]> {
  const ringNs = perOpNs.get(RING_CASE);
  if (ringNs === undefined) throw new Error(`network bench needs the '${RING_CASE}' case`);
  const ringPps = 1e9 / ringNs;
  const out: Measurement[] = [];
  const want = (mode: 'in-thread' | 'in workers', size: number) => wanted(rowName(mode, size, 'frames/s')) || wanted(rowName(mode, size, 'bytes/s'));
  for (const size of SIZES) {
    if (!want('in-thread', size)) continue;
    const r = inThread(size, size === 64 ? 200_000 : 100_000);
    out.push({ name: rowName('in-thread', size, 'frames/s'), value: r.fps, unit: 'frames/s', ratio: r.fps / ringPps, baseline: RING_CASE, ...(size === 64 ? { goal: GOAL } : {}) });
    out.push({ name: rowName('in-thread', size, 'bytes/s'), value: r.bps, unit: 'bytes/s' });
  }
  for (const size of SIZES) {
    if (!want('in workers', size)) continue;
    const r = await inWorkers(size, 2);
    out.push({ name: rowName('in workers', size, 'frames/s'), value: r.fps, unit: 'frames/s', ratio: r.fps / ringPps, baseline: RING_CASE });
    out.push({ name: rowName('in workers', size, 'bytes/s'), value: r.bps, unit: 'bytes/s' });
  }
  return out;
}
