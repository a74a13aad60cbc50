// Small statistics for figures measured on a shared, noisy machine.

export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * The least of `runs` times (ms) of `f`: other work on the machine only ever makes a run slower,
 * so the fastest run is the one that says what the code costs.
 */
export async function fastest(runs: number, f: () => number | Promise<number>): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < runs; i++) best = Math.min(best, await f());
  return best;
}
