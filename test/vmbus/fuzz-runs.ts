// How many cases each VMBus property test runs. `npm test` keeps the default small so the
// suite stays fast; `npm run fuzz` sets HVKIT_FUZZ_RUNS high for a long hunt.
const fromEnv = Number(process.env.HVKIT_FUZZ_RUNS);

export const RUNS = Number.isSafeInteger(fromEnv) && fromEnv > 0 ? fromEnv : 200;

/** For properties whose cases are long sequences: a fraction of RUNS, at least one. */
export const runs = (fraction: number): number => Math.max(1, Math.round(RUNS * fraction));
