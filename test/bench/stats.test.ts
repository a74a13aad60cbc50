// The bench's pairing of a figure with its baseline: the median pair by ratio, whole.
import { describe, expect, it } from 'vitest';
import { medianPair } from '../../bench/stats.js';

describe('medianPair', () => {
  it('gives the pair whose ratio is the median, with its own figure and baseline', () => {
    // A fast-state pair (150 ns baseline) and a slow one do not mix: the median pair is one pair.
    const pairs = [
      { figure: 460, baseline: 470, run: 1 },
      { figure: 300, baseline: 150, run: 2 },
      { figure: 480, baseline: 455, run: 3 },
    ];
    const m = medianPair(pairs);
    expect(m).toEqual({ figure: 480, baseline: 455, run: 3, ratio: 480 / 455 });
  });

  it('takes the upper middle of an even count, and leaves its input in order', () => {
    const pairs = [
      { figure: 4, baseline: 1 },
      { figure: 1, baseline: 1 },
      { figure: 3, baseline: 1 },
      { figure: 2, baseline: 1 },
    ];
    expect(medianPair(pairs).ratio).toBe(3);
    expect(pairs.map((p) => p.figure)).toEqual([4, 1, 3, 2]);
  });
});
