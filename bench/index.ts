// `npm run bench` (`-- --json` for machine-readable output). Each figure is reported with its
// ratio to a baseline measured in the same run, never as an absolute threshold: the machines
// are shared and noisy. Operations are timed in batches so that each sample is well above the
// timer's resolution.
import { Bench } from 'tinybench';
import { bootMeasurements } from './boot.js';
import { hypervisorCases } from './hypervisor.js';
import { hvsockMeasurements } from './hvsock.js';
import { storageMeasurements } from './storage.js';
import { copyBaseline, ringCases, vmbusMeasurements } from './vmbus.js';
import { workerMeasurements } from './worker.js';

export interface Case {
  readonly name: string;
  /** Which baseline the ratio is taken against. */
  readonly baseline: string;
  /** Operations one call of `run` performs. */
  readonly batch: number;
  readonly run: () => void;
  /** What one operation is, for the report. */
  readonly unit: string;
  /** Payload bytes one operation moves, for a bytes/s column. */
  readonly bytes?: number;
}

const BATCH = 1000;

/** The baselines: a plain function call, and a plain copy of 256 bytes (one SynIC slot). */
function baselines(): Case[] {
  let sink = 0;
  const add = (x: number) => (sink = (sink + x) | 0);
  const src = new Uint8Array(256).map((_, i) => i);
  const dst = new Uint8Array(256);
  return [
    {
      name: 'baseline: function call',
      baseline: 'baseline: function call',
      batch: BATCH,
      unit: 'call',
      run: () => {
        for (let i = 0; i < BATCH; i++) add(i);
      },
    },
    {
      name: 'baseline: 256-byte copy',
      baseline: 'baseline: 256-byte copy',
      batch: BATCH,
      unit: 'copy',
      run: () => {
        for (let i = 0; i < BATCH; i++) {
          src[0] = i;
          dst.set(src);
        }
      },
    },
  ];
}

interface Row {
  name: string;
  unit: string;
  nsPerOp: number;
  opsPerSec: number;
  baseline: string;
  /** How many baseline operations fit in one of these. */
  ratio: number;
  rme: number;
  bytesPerSec?: number;
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const cases = [...baselines(), ...hypervisorCases(BATCH), ...ringCases()];
  const bench = new Bench({ time: 400, warmup: true });
  for (const c of cases) bench.add(c.name, c.run);
  await bench.run();
  const perOp = new Map<string, { ns: number; rme: number }>();
  for (const c of cases) {
    const r = bench.getTask(c.name)?.result;
    if (!r || !('period' in r)) throw new Error(`benchmark ${c.name} did not complete`);
    perOp.set(c.name, { ns: (r.period * 1e6) / c.batch, rme: r.latency.rme });
  }
  const rows: Row[] = cases.map((c) => {
    const { ns, rme } = perOp.get(c.name)!;
    return { name: c.name, unit: c.unit, nsPerOp: ns, opsPerSec: 1e9 / ns, baseline: c.baseline, ratio: ns / perOp.get(c.baseline)!.ns, rme, ...(c.bytes ? { bytesPerSec: (c.bytes * 1e9) / ns } : {}) };
  });
  const perOpNs = new Map([...perOp].map(([k, v]) => [k, v.ns]));
  const measurements = [...vmbusMeasurements(perOpNs), ...(await workerMeasurements((4096 / perOpNs.get(copyBaseline(4096))!) * 1e9)), ...(await bootMeasurements()), ...(await hvsockMeasurements(perOpNs)), ...storageMeasurements(perOpNs)];
  if (json) {
    process.stdout.write(JSON.stringify({ node: process.version, rows, measurements }, null, 1) + '\n');
    return;
  }
  const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  console.log(`hvkit benchmarks (${process.version}); ratio = cost of one operation in baseline operations\n`);
  for (const r of rows) {
    const ratio = r.name.startsWith('baseline') ? '' : `  ${fmt(r.ratio, 1)}x ${r.baseline.replace('baseline: ', '')}`;
    const rate = r.bytesPerSec ? `  ${fmt(r.bytesPerSec / 2 ** 20)} MiB/s` : '';
    console.log(`${r.name.padEnd(52)} ${fmt(r.opsPerSec).padStart(14)} ${r.unit}s/s ${fmt(r.nsPerOp, 1).padStart(9)} ns ±${fmt(r.rme, 1)}%${ratio}${rate}`);
  }
  console.log('\nmeasured once per run:');
  for (const m of measurements) {
    const value = m.unit === 'bytes/s' ? `${fmt(m.value / 2 ** 20)} MiB/s` : `${fmt(m.value, 2)} ${m.unit}`;
    console.log(`${m.name.padEnd(52)} ${value.padStart(16)}${m.ratio === undefined ? '' : `  ${fmt(m.ratio, m.ratio < 10 ? 3 : 0)}x ${m.baseline}`}`);
  }
}

await main();
