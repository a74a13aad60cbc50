// `npm run bench` (`-- --json` for machine-readable output, `-- --filter REGEX` for the figures
// whose names match, with the baselines they need). Each figure is reported with its ratio to a
// baseline measured in the same run, never as an absolute threshold: the machines are shared
// and noisy. Operations are timed in batches so that each sample is well above the timer's
// resolution.
import { Bench } from 'tinybench';
import { balloonGroup } from './balloon.js';
import { bootGroup } from './boot.js';
import { hypervisorCases } from './hypervisor.js';
import { hvsockGroup } from './hvsock.js';
import { inputGroup } from './input.js';
import { median } from './stats.js';
import { networkGroup } from './network.js';
import { storageGroup } from './storage.js';
import { ringCases, vmbusGroup } from './vmbus.js';
import { videoCases } from './video.js';
import { workerGroup } from './worker.js';

/** What a figure aims at: a bound on one of its numbers, and how the README says it. */
export interface Goal {
  readonly of: 'ratio' | 'throughputRatio' | 'value';
  readonly atLeast?: number;
  readonly atMost?: number;
  readonly text: string;
}

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
  readonly goal?: Goal;
}

export interface Measurement {
  name: string;
  value: number;
  unit: string;
  /** The baseline's name (a measurement or a case of the same run), and value / baseline. */
  baseline?: string;
  ratio?: number;
  goal?: Goal;
}

/** Figures measured once per run, by a function that makes all of them (they share a setup). */
export interface MeasurementGroup {
  /** The names it reports, so that --filter can skip the group. */
  readonly names: readonly string[];
  /** Cases whose figures it needs. */
  readonly needs?: readonly string[];
  /** `wanted` says which names --filter chose: a group may skip the work of the others. */
  run(perOpNs: ReadonlyMap<string, number>, wanted: (name: string) => boolean): Promise<Measurement[]> | Measurement[];
}

const BATCH = 1000;
const ROUNDS = 5;

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
  /** How many baseline operations fit in one of these (cost). */
  ratio: number;
  /** Baseline ns / this row's ns: 1 or more means as fast as the baseline. */
  throughputRatio: number;
  /** Half the range of the rounds, in % of the median. */
  spread: number;
  bytesPerSec?: number;
  goal?: string;
  met?: boolean;
}

/** Whether a figure meets its goal. */
export function meets(goal: Goal, values: { ratio?: number; throughputRatio?: number; value?: number }): boolean {
  const v = values[goal.of];
  if (v === undefined) return false;
  return (goal.atLeast === undefined || v >= goal.atLeast) && (goal.atMost === undefined || v <= goal.atMost);
}

function parseArgs(argv: string[]): { json: boolean; filter: RegExp | undefined } {
  const at = argv.indexOf('--filter');
  const pattern = at >= 0 ? argv[at + 1] : argv.find((a) => a.startsWith('--filter='))?.slice('--filter='.length);
  if (at >= 0 && pattern === undefined) throw new Error('--filter needs a regular expression');
  return { json: argv.includes('--json'), filter: pattern === undefined ? undefined : new RegExp(pattern) };
}

async function main(): Promise<void> {
  const { json, filter } = parseArgs(process.argv.slice(2));
  const wanted = (name: string) => !filter || filter.test(name);
  const groups: MeasurementGroup[] = [vmbusGroup(), workerGroup(), bootGroup(), hvsockGroup(), networkGroup(), storageGroup(), balloonGroup(), inputGroup()].filter((g) => g.names.some(wanted));
  const all = [...baselines(), ...hypervisorCases(BATCH), ...ringCases(), ...videoCases()];
  // A chosen case brings its baseline; a chosen group the cases it needs.
  const keep = new Set(all.filter((c) => wanted(c.name)).flatMap((c) => [c.name, c.baseline]));
  for (const g of groups) for (const n of g.needs ?? []) keep.add(n);
  for (const c of all) if (keep.has(c.name)) keep.add(c.baseline);
  const cases = all.filter((c) => keep.has(c.name));

  // Rounds of every case in turn, each figure the median of its rounds: a change in the load of
  // a shared machine then touches a row and its baseline alike.
  const rounds = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const bench = new Bench({ time: 400 / ROUNDS, warmup: round === 0 });
    for (const c of cases) bench.add(c.name, c.run);
    await bench.run();
    for (const c of cases) {
      const r = bench.getTask(c.name)?.result;
      if (!r || !('period' in r)) throw new Error(`benchmark ${c.name} did not complete`);
      rounds.get(c.name)!.push((r.period * 1e6) / c.batch);
    }
  }
  const perOp = new Map<string, { ns: number; spread: number }>();
  for (const [name, ns] of rounds) {
    const m = median(ns);
    perOp.set(name, { ns: m, spread: (100 * (Math.max(...ns) - Math.min(...ns))) / 2 / m });
  }
  const rows: Row[] = cases.map((c) => {
    const { ns, spread } = perOp.get(c.name)!;
    const base = perOp.get(c.baseline)!.ns;
    const ratios = { ratio: ns / base, throughputRatio: base / ns };
    return {
      name: c.name,
      unit: c.unit,
      nsPerOp: ns,
      opsPerSec: 1e9 / ns,
      baseline: c.baseline,
      ...ratios,
      spread,
      ...(c.bytes ? { bytesPerSec: (c.bytes * 1e9) / ns } : {}),
      ...(c.goal ? { goal: c.goal.text, met: meets(c.goal, ratios) } : {}),
    };
  });
  const perOpNs = new Map([...perOp].map(([k, v]) => [k, v.ns]));
  const measurements: (Measurement & { met?: boolean })[] = [];
  for (const g of groups) {
    // The chosen figures, and the ones they are taken against.
    const out = await g.run(perOpNs, wanted);
    const bases = new Set(out.filter((m) => wanted(m.name)).map((m) => m.baseline));
    for (const m of out) if (wanted(m.name) || bases.has(m.name)) measurements.push(m.goal ? { ...m, met: meets(m.goal, m) } : m);
  }
  if (json) {
    const goal = (g: Goal | undefined) => g?.text;
    process.stdout.write(JSON.stringify({ node: process.version, rows, measurements: measurements.map((m) => ({ ...m, goal: goal(m.goal) })) }, null, 1) + '\n');
    return;
  }
  const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const verdict = (met: boolean | undefined, goal: string | undefined) => (goal === undefined ? '' : `  [goal ${goal}: ${met ? 'met' : 'NOT met'}]`);
  console.log(`hvkit benchmarks (${process.version}); ratio = cost of one operation in baseline operations\n`);
  for (const r of rows) {
    const ratio = r.name.startsWith('baseline') ? '' : `  ${fmt(r.ratio, r.ratio < 10 ? 2 : 1)}x ${r.baseline.replace('baseline: ', '')} (throughput ${fmt(r.throughputRatio, 2)}x)`;
    const rate = r.bytesPerSec ? `  ${fmt(r.bytesPerSec / 2 ** 20)} MiB/s` : '';
    console.log(`${r.name.padEnd(60)} ${fmt(r.opsPerSec).padStart(14)} ${r.unit}s/s ${fmt(r.nsPerOp, 1).padStart(9)} ns ±${fmt(r.spread, 1)}%${ratio}${rate}${verdict(r.met, r.goal)}`);
  }
  if (measurements.length) console.log('\nmeasured once per run:');
  for (const m of measurements) {
    const value = m.unit === 'bytes/s' ? `${fmt(m.value / 1e6)} MB/s` : `${fmt(m.value, 2)} ${m.unit}`;
    console.log(`${m.name.padEnd(60)} ${value.padStart(16)}${m.ratio === undefined ? '' : `  ${fmt(m.ratio, m.ratio < 10 ? 3 : 0)}x ${m.baseline}`}${verdict(m.met, m.goal?.text)}`);
  }
}

await main();
