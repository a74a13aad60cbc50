// The virtual TSC computed with numbers (the fast path a trap takes) is exactly the BigInt
// formula ⌊ns · tscHz / 10^9⌋, for any frequency and any time.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/hypervisor/clock.js';
import { ReferenceTime } from '../../src/hypervisor/reference-time.js';

describe('reference time', () => {
  it('tscAt equals ⌊ns · tscHz / 10^9⌋ exactly', () => {
    const hz = fc.oneof(
      fc.constantFrom(25_000_000, 2_500_000_000, 2_394_567_000, 3_000_000_001, 10_000_001, 4_294_967_297),
      fc.integer({ min: 10_000_001, max: 2 ** 40 }),
    );
    const ns = fc.oneof(fc.integer({ min: 0, max: 1e12 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(0, 1, 999_999_999, 1e9, 2 ** 53 - 1));
    fc.assert(
      fc.property(hz, ns, (tscHz, at) => {
        const t = new ReferenceTime(new VirtualClock(), tscHz);
        expect(t.tscAt(at)).toBe((BigInt(at) * BigInt(tscHz)) / 1_000_000_000n);
      }),
      { numRuns: 2000 },
    );
  });

  it('tsc() and now() follow the clock, read again at one instant or after it moves', () => {
    const steps = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1e9 })), { minLength: 1, maxLength: 30 });
    fc.assert(
      fc.property(fc.constantFrom(2_394_567_000, 3_000_000_001, 25_000_000), steps, (tscHz, deltas) => {
        const clock = new VirtualClock();
        const t = new ReferenceTime(clock, tscHz);
        for (const d of deltas) {
          clock.advance(d);
          const want = (BigInt(clock.nowNs) * BigInt(tscHz)) / 1_000_000_000n;
          expect(t.tsc()).toBe(want);
          expect(t.tsc()).toBe(want);
          expect(t.now()).toBe(t.ticksAtTsc(want));
        }
      }),
      { numRuns: 300 },
    );
  });
});
