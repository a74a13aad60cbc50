// The host's heap stays bounded under attack: each hostile scenario runs 10^5 steps, and the heap
// after a full GC grows by less than a fixed margin, while a control that keeps a few bytes per
// step (what an unbounded record does) grows far beyond it. Needs --expose-gc (vitest.config.ts).
import { describe, expect, it } from 'vitest';
import { DEFECTS, SCENARIOS, type Scenario } from './scenarios.js';

const STEPS = 100_000;
const WARM_UP = 5_000;
/** What 10^5 steps may add: well under one 16-byte record per step. */
const MARGIN = 1 << 20;

const gc = (globalThis as { gc?: () => void }).gc;

function heapAfterGc(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

/** Heap growth over STEPS steps of `scenario`, after a warm-up; `each` runs after every step. */
function growth(scenario: Scenario, each: (i: number) => void = () => undefined): { bytes: number; sizes: Record<string, number> } {
  const a = scenario.setup(7);
  let i = 0;
  for (; i < WARM_UP; i++) a.step(i);
  const before = heapAfterGc();
  for (; i < WARM_UP + STEPS; i++) {
    a.step(i);
    each(i);
  }
  const bytes = heapAfterGc() - before;
  return { bytes, sizes: a.sizes() };
}

describe.runIf(gc)('the host heap under 10^5 hostile steps', () => {
  it.each([...SCENARIOS, ...DEFECTS].map((s) => [s.name, s] as const))('%s: grows less than 1 MiB', (name, scenario) => {
    const { bytes, sizes } = growth(scenario);
    console.log(`heap: ${name}: ${(bytes / 1024).toFixed(0)} KiB per ${STEPS} steps ${JSON.stringify(sizes)}`);
    expect(bytes).toBeLessThan(MARGIN);
  }, 300_000);

  it('the control: a record of 16 bytes per step, kept, shows as growth far beyond the margin', () => {
    const kept: { step: number; at: number }[] = [];
    const { bytes } = growth(SCENARIOS[0]!, (i) => void kept.push({ step: i, at: i }));
    console.log(`heap: control: ${(bytes / 1024).toFixed(0)} KiB per ${STEPS} steps`);
    expect(kept).toHaveLength(STEPS);
    expect(bytes).toBeGreaterThan(2 * MARGIN);
  }, 300_000);
});

it('runs with --expose-gc', () => {
  expect(gc, 'vitest.config.ts passes --expose-gc to the test workers').toBeTypeOf('function');
});
