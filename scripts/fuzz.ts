// npm run fuzz: every fuzz target (test/fuzz/fuzz.ts) at volume, on every release, the test files
// spread over worker threads. HVKIT_FUZZ_RUNS cases per property (10^6 by default), or at most
// HVKIT_FUZZ_SECONDS each; HVKIT_FUZZ_THREADS workers (all cores by default). Prints the inputs
// each property ran and how fast; a failure's seed and path are saved under fuzz/regressions/,
// which `npm test` replays. Arguments: fuzz target names (regular expressions: `synic vmbus-`)
// pick targets; test files (`test/….test.ts`) and options (`-t …`) go to vitest.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const threads = Number(process.env.HVKIT_FUZZ_THREADS) || availableParallelism();

/** Test files that fuzz: those using test/fuzz/fuzz.ts. */
function fuzzFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return fuzzFiles(path);
    return name.endsWith('.test.ts') && /from '(\.\.\/)+fuzz\/fuzz\.js'|from '\.\/fuzz\.js'/.test(readFileSync(path, 'utf8')) ? [relative(root, path)] : [];
  });
}

/** vitest options that take the next word as their value (`-t NAME`): that word is no target name. */
const VALUE_OPTIONS = new Set(['-t', '--testNamePattern', '--reporter', '--project', '--outputFile']);
const argv = process.argv.slice(2);
const only: string[] = [];
const args: string[] = [];
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]!;
  if (VALUE_OPTIONS.has(a)) args.push(a, ...argv.slice(i + 1, ++i + 1));
  else if (a.startsWith('-') || a.endsWith('.ts') || /^\d/.test(a)) args.push(a);
  else only.push(a);
}
const files = args.some((a) => a.endsWith('.ts')) ? [] : fuzzFiles(join(root, 'test'));
const work = mkdtempSync(join(tmpdir(), 'hvkit-fuzz-'));
const report = join(work, 'report.jsonl');
const runs = process.env.HVKIT_FUZZ_RUNS ?? '1000000';
const seconds = process.env.HVKIT_FUZZ_SECONDS;
console.log(`hvkit fuzz: ${runs} inputs per property${seconds ? `, at most ${seconds} s each` : ''}, ${threads} worker threads, ${files.length || 'the given'} files`);

const started = Date.now();
const vitest = spawnSync('npx', ['vitest', 'run', '--pool=threads', `--maxWorkers=${threads}`, '--testTimeout=0', '--reporter=dot', ...files, ...args], {
  cwd: root,
  stdio: 'inherit',
  // gc() in the workers: test/fuzz/fuzz.ts collects between rounds when memory runs high.
  env: { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --expose-gc`.trim(), HVKIT_FUZZ: '1', HVKIT_FUZZ_RUNS: runs, HVKIT_FUZZ_REPORT: report, ...(only.length ? { HVKIT_FUZZ_ONLY: only.join('|') } : {}) },
});

interface Row {
  name: string;
  runs: number;
  ms: number;
  failed: boolean;
}
let rows: Row[] = [];
try {
  rows = readFileSync(report, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row);
} catch {
  // No property ran.
}
rmSync(work, { recursive: true, force: true });

rows.sort((a, b) => a.name.localeCompare(b.name));
const width = Math.max(8, ...rows.map((r) => r.name.length));
const num = (n: number) => Math.round(n).toLocaleString('en-US');
console.log(`\n${'property'.padEnd(width)}  ${'inputs'.padStart(11)}  ${'seconds'.padStart(8)}  ${'inputs/s'.padStart(9)}  result`);
for (const r of rows) {
  console.log(`${r.name.padEnd(width)}  ${num(r.runs).padStart(11)}  ${(r.ms / 1000).toFixed(1).padStart(8)}  ${num(r.runs / (r.ms / 1000)).padStart(9)}  ${r.failed ? 'FAILED (saved in fuzz/regressions/)' : 'ok'}`);
}
const total = rows.reduce((n, r) => n + r.runs, 0);
const failed = rows.filter((r) => r.failed).length;
console.log(`\n${rows.length} properties, ${num(total)} inputs in ${((Date.now() - started) / 1000).toFixed(0)} s of wall time, ${failed} failed`);
process.exit(vitest.status ?? 1);
