// The one way a parser or state machine is fuzzed (fast-check). Under `npm test` a property runs
// the few cases its test gives, after replaying every counterexample saved for it under
// fuzz/regressions/. Under `npm run fuzz` (scripts/fuzz.ts sets HVKIT_FUZZ=1) it runs
// HVKIT_FUZZ_RUNS cases (10^6 by default) or for HVKIT_FUZZ_SECONDS, reports how many it ran,
// and saves a failure's seed and path for the replay. A property builds its state (a machine, a
// partition) inside each run: runs are independent, so a saved path replays just that case.
import fc from 'fast-check';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { it } from 'vitest';
import { RELEASE_IDS, type ReleaseId } from '../../src/hypervisor/release.js';

const env = process.env;
/** Set by `npm run fuzz`: run at volume. */
export const FUZZING = env.HVKIT_FUZZ === '1';
const positive = (v: string | undefined): number | undefined => {
  const n = Number(v);
  return v !== undefined && Number.isFinite(n) && n > 0 ? n : undefined;
};
const RUNS = positive(env.HVKIT_FUZZ_RUNS) ?? 1_000_000;
const SECONDS = positive(env.HVKIT_FUZZ_SECONDS);
/** `npm run fuzz -- NAME…`: only the targets whose name matches. */
const ONLY = env.HVKIT_FUZZ_ONLY ? new RegExp(env.HVKIT_FUZZ_ONLY) : undefined;

export const REGRESSIONS = new URL('../../fuzz/regressions/', import.meta.url);

/** A counterexample `npm run fuzz` found: enough for fast-check to replay exactly that case. */
export interface Regression {
  readonly property: string;
  readonly seed: number;
  readonly path: string;
  readonly counterexample: string;
  readonly error: string;
  readonly found: string;
}

let saved: Regression[] | undefined;
function regressions(): Regression[] {
  if (!saved) {
    let files: string[] = [];
    try {
      files = readdirSync(REGRESSIONS).filter((f) => f.endsWith('.json'));
    } catch {
      // No folder: nothing saved yet.
    }
    saved = files.map((f) => JSON.parse(readFileSync(new URL(f, REGRESSIONS), 'utf8')) as Regression);
  }
  return saved;
}

/** The file a regression is saved in: the property's name, made safe, and the seed. */
export const regressionFile = (property: string, seed: number): string => `${property.replace(/[^A-Za-z0-9@._-]+/g, '_')}.${seed >>> 0}.json`;

// A property of any arity: fast-check's own parameter type.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Property = fc.IRawProperty<any, false>;

/**
 * Runs `property` as the fuzz target `name`: its saved regressions first, then `testRuns` cases
 * (under `npm run fuzz`, the fuzzing volume). Throws fast-check's report on a failure.
 */
export function fuzz(name: string, property: Property, testRuns: number): void {
  if (FUZZING && ONLY && !ONLY.test(name)) return;
  for (const r of regressions()) {
    if (r.property === name) fc.assert(property, { seed: r.seed, path: r.path, endOnFailure: true });
  }
  const started = performance.now();
  if (!FUZZING) {
    const details = fc.check(property, { numRuns: testRuns });
    if (details.failed) throw new Error(`${name}: ${fc.defaultReportMessage(details) ?? 'failed'}\nCaused by: ${String(details.errorInstance)}`);
    return;
  }
  // At volume, in rounds with the memory looked at in between (relieveMemory): each case builds
  // its own partition or machine, whose guest RAM V8 frees only when it collects. A failing
  // round's own seed and path are what replays its case.
  const deadline = SECONDS ? started + SECONDS * 1000 : Infinity;
  let runs = 0;
  let details: fc.RunDetails<unknown>;
  do {
    const left = deadline - performance.now();
    details = fc.check(property, { numRuns: RUNS - runs, interruptAfterTimeLimit: Math.max(1, Math.min(ROUND_MS, left)), markInterruptAsFailure: false });
    runs += details.numRuns;
    relieveMemory();
  } while (!details.failed && runs < RUNS && performance.now() < deadline);
  const ms = performance.now() - started;
  if (details.failed) save(name, details);
  if (env.HVKIT_FUZZ_REPORT) appendFileSync(env.HVKIT_FUZZ_REPORT, `${JSON.stringify({ name, runs, ms, failed: details.failed })}\n`);
  if (details.failed) throw new Error(`${name}: ${fc.defaultReportMessage(details) ?? 'failed'}\nCaused by: ${String(details.errorInstance)}`);
}

/** Wall time of a round at volume. */
const ROUND_MS = 1000;
/**
 * The process's resident memory above which a round ends with a full collection. Guest RAM is
 * SharedArrayBuffers that V8 counts little towards its collections: a fuzz file building a
 * partition per case grew past 6 GB in 3 s, and a 15 s run of all targets past 24 GB.
 */
const RSS_LIMIT = 3 << 30;

/** A full collection when memory is high (scripts/fuzz.ts exposes gc() to the workers). */
function relieveMemory(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc && process.memoryUsage.rss() > RSS_LIMIT) gc();
}

function save(name: string, details: fc.RunDetails<unknown>): void {
  const r: Regression = {
    property: name,
    seed: details.seed,
    path: details.counterexamplePath ?? '',
    counterexample: fc.stringify(details.counterexample),
    error: String(details.errorInstance),
    found: new Date().toISOString(),
  };
  mkdirSync(REGRESSIONS, { recursive: true });
  writeFileSync(new URL(regressionFile(name, r.seed), REGRESSIONS), `${JSON.stringify(r, null, 2)}\n`);
}

/** An `it` that fuzzes `property` as `name`. */
export function itFuzz(title: string, name: string, property: () => Property, testRuns: number): void {
  it(title, () => fuzz(name, property(), testRuns));
}

/** One `it` per Hyper-V release (those that have the thing fuzzed): `propertyFor(release)` fuzzed as `name@release`. */
export function itFuzzEachRelease(title: string, name: string, propertyFor: (release: ReleaseId) => Property, testRuns: number, releases: readonly ReleaseId[] = RELEASE_IDS): void {
  for (const release of releases) it(`${title} (${release})`, () => fuzz(`${name}@${release}`, propertyFor(release), testRuns));
}
