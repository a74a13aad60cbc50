// tlfs.md 8.4: the behaviours kvm-unit-tests x86/hyperv_clock.c asserts, one test per number.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HvMsr } from '../../../src/tlfs/msr.js';
import { TscPage } from '../../../src/tlfs/time.js';
import { PAGE, partition, type TestGuest } from '../harness.js';
import { fuzz } from '../../fuzz/fuzz.js';

/** A consistent snapshot of the TSC page, retrying while the sequence changes (hv_read_tsc_page). */
function snapshot(g: TestGuest) {
  for (;;) {
    const seq = g.p.memory.read32(PAGE.tsc);
    const page = TscPage.decode(g.p.memory.read(PAGE.tsc, TscPage.size));
    if (g.p.memory.read32(PAGE.tsc) === seq) return page;
  }
}

/** Reference time from the page: high64(RDTSC × scale) + offset. */
function pageTime(g: TestGuest): bigint {
  const s = snapshot(g);
  const tsc = (g.cpu as { rdtsc(): bigint }).rdtsc();
  return BigInt.asUintN(64, ((tsc * s.tsc_scale) >> 64n) + BigInt.asIntN(64, s.tsc_offset));
}

describe('hyperv_clock (tlfs.md 8.4)', () => {
  it('8.4.1 WRMSR REFERENCE_TSC = page | 1 reads back exactly', () => {
    const { guests } = partition();
    guests[0]!.wrmsr(HvMsr.REFERENCE_TSC, BigInt(PAGE.tsc) | 1n);
    expect(guests[0]!.rdmsr(HvMsr.REFERENCE_TSC)).toBe(BigInt(PAGE.tsc) | 1n);
  });

  it('8.4.2 right after enabling, a consistent snapshot has a sequence other than 0 and 0xFFFFFFFF', () => {
    const { guests } = partition();
    guests[0]!.wrmsr(HvMsr.REFERENCE_TSC, BigInt(PAGE.tsc) | 1n);
    const s = snapshot(guests[0]!);
    expect(s.tsc_sequence).not.toBe(0);
    expect(s.tsc_sequence).not.toBe(0xffffffff);
    expect(s.tsc_scale).toBeGreaterThan(0n);
  });

  it('8.4.3 TIME_REF_COUNT advances with virtual time, in 100 ns units', () => {
    const { p, guests } = partition();
    const t0 = guests[0]!.rdmsr(HvMsr.TIME_REF_COUNT);
    p.clock.advance(2_000_000_000);
    const t1 = guests[0]!.rdmsr(HvMsr.TIME_REF_COUNT);
    expect(t1 - t0).toBeGreaterThanOrEqual(19_999_990n);
    expect(t1 - t0).toBeLessThanOrEqual(20_000_000n);
  });

  it('8.4.4 on every vCPU, page time before ≤ MSR ≤ page time after, and nothing steps back', () => {
    fuzz(
      'tsc-page.monotonic',
      fc.property(fc.array(fc.tuple(fc.nat(3), fc.nat(5000), fc.nat(5000)), { minLength: 50, maxLength: 400 }), fc.integer({ min: 10_000_001, max: 5_000_000_000 }), (steps, tscHz) => {
        const { p, guests } = partition({ vps: 4, tscHz });
        guests[0]!.wrmsr(HvMsr.REFERENCE_TSC, BigInt(PAGE.tsc) | 1n);
        const last = guests.map(() => ({ t1: 0n, msr: 0n }));
        for (const [vp, d1, d2] of steps) {
          const g = guests[vp]!;
          const t1 = pageTime(g);
          p.clock.advance(d1);
          const msr = g.rdmsr(HvMsr.TIME_REF_COUNT);
          p.clock.advance(d2);
          const t2 = pageTime(g);
          expect(t1 <= msr && msr <= t2).toBe(true);
          expect(msr >= last[vp]!.msr).toBe(true);
          expect(t1 >= last[vp]!.t1).toBe(true);
          last[vp] = { t1, msr };
        }
      }),
      40,
    );
  });

  it('8.4.5 the throughput loop: a million-tick run of back-to-back page reads never steps back', () => {
    const { p, guests } = partition();
    const g = guests[0]!;
    g.wrmsr(HvMsr.REFERENCE_TSC, BigInt(PAGE.tsc) | 1n);
    let prev = 0n;
    for (let i = 0; i < 20_000; i++) {
      p.clock.advance(5_000);
      const t = pageTime(g);
      expect(t >= prev).toBe(true);
      prev = t;
    }
    expect(prev).toBeGreaterThanOrEqual(999_990n);
  });

  it('8.4.6 WRMSR REFERENCE_TSC = 0 reads back 0, and the guest page is its own again', () => {
    const { p, guests } = partition();
    p.memory.write32(PAGE.tsc, 0xabcdef);
    guests[0]!.wrmsr(HvMsr.REFERENCE_TSC, BigInt(PAGE.tsc) | 1n);
    expect(p.memory.read32(PAGE.tsc)).not.toBe(0xabcdef);
    guests[0]!.wrmsr(HvMsr.REFERENCE_TSC, 0n);
    expect(guests[0]!.rdmsr(HvMsr.REFERENCE_TSC)).toBe(0n);
    expect(p.memory.read32(PAGE.tsc)).toBe(0xabcdef);
  });
});
