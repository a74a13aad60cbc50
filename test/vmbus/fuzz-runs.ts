// How many cases a property test runs under `npm test` (200, or HVKIT_FUZZ_RUNS): few, so the suite
// stays fast. `npm run fuzz` runs the fuzz targets at its own volume (test/fuzz/fuzz.ts).
const fromEnv = Number(process.env.HVKIT_FUZZ_RUNS);

export const RUNS = Number.isSafeInteger(fromEnv) && fromEnv > 0 ? fromEnv : 200;

/** For properties whose cases are long sequences: a fraction of RUNS, at least one. */
export const runs = (fraction: number): number => Math.max(1, Math.round(RUNS * fraction));
