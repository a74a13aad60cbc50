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

/**
 * A figure and its baseline measured in turns, as pairs: the pair whose ratio (figure ÷ baseline)
 * is the median of all pairs'. The machine changes state from time to time (this 2-core VM's two
 * CPUs sometimes share a core: a spin ping-pong then takes 150 ns instead of 460, and memory
 * copies run at twice or half the speed), and a figure and a baseline taken apart, or each the
 * best of its own runs, can come from different states; the two of one pair rarely do.
 */
export function medianPair<T extends { figure: number; baseline: number }>(pairs: readonly T[]): T & { ratio: number } {
  const rated = pairs.map((p) => ({ ...p, ratio: p.figure / p.baseline }));
  rated.sort((a, b) => a.ratio - b.ratio);
  return rated[Math.floor(rated.length / 2)]!;
}
