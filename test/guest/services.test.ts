// What the kernel lends its drivers: delayed work on the guest's clock, the reference counter,
// and the wall clock from the RTC.
import { describe, expect, it } from 'vitest';
import { TscPage } from '../../src/tlfs/time.js';
import { Machine } from '../../src/vm/machine.js';

describe('kernel services', () => {
  it('delayed work runs at the first tick after it falls due, once; cancel says whether it had run', () => {
    const m = new Machine({ vps: 1, memory: 64 << 20, devices: [] });
    m.boot();
    const s = m.kernel.services;
    const ran: number[] = [];
    const start = s.uptimeNs();
    s.scheduleDelayedWork(30_000_000, () => ran.push(s.uptimeNs() - start));
    const cancelled = s.scheduleDelayedWork(30_000_000, () => ran.push(-1));
    m.runFor(20_000_000);
    expect(ran).toEqual([]);
    expect(cancelled.cancel()).toBe(true);
    m.runFor(20_000_000);
    expect(ran).toHaveLength(1);
    // HZ=250: a tick every 4 ms.
    expect(ran[0]).toBeGreaterThanOrEqual(30_000_000);
    expect(ran[0]).toBeLessThan(34_000_001);
    expect(cancelled.cancel()).toBe(false);
  });

  it('uptime is the reference time since sched_clock started, read again at one instant, after the clock moves, and after the TSC page changes', () => {
    const m = new Machine({ vps: 1, memory: 64 << 20, devices: [] });
    m.boot();
    const s = m.kernel.services;
    const ref = () => m.partition.referenceTime.now();
    const base = ref() - BigInt(s.uptimeNs() / 100);
    for (const step of [0, 1, 99, 100, 12_345, 0, 4_000_000]) {
      m.runFor(step);
      expect(s.uptimeNs()).toBe(Number(ref() - base) * 100);
      expect(s.uptimeNs()).toBe(Number(ref() - base) * 100);
    }
    // The TSC page's offset moved (as the hypervisor moves it across a save and restore): the
    // guest's clock reads the page again, at the same TSC.
    const page = m.kernel.refClock.tscPage!;
    const before = s.uptimeNs();
    const offsetAt = page + TscPage.offsets.tsc_offset;
    m.partition.memory.write64(offsetAt, m.partition.memory.read64(offsetAt) + 1000n);
    expect(s.uptimeNs()).toBe(before + 1000 * 100);
  });

  it('the reference counter is the partition reference time; the wall clock starts at the host clock', () => {
    const m = new Machine({ vps: 1, memory: 64 << 20, devices: [], wallClockStartNs: 1_800_000_000_000_000_000n });
    m.boot();
    const ref = m.kernel.services.referenceCounter();
    expect(ref).toBe(m.partition.referenceTime.now());
    // RTC read at boot: the host clock then, plus the guest's uptime since sched_clock started.
    const drift = m.kernel.services.realtimeNs() - m.host.wallClockNs();
    expect(drift < 0n ? -drift : drift).toBeLessThan(1_000_000_000n);
  });
});

describe('delayed work without a tick, and a panicked kernel', () => {
  it('arm64 with no devices (no stimer tick, no host timers): delayed work still runs when due', () => {
    const m = new Machine({ arch: 'arm64', vps: 1, memory: 64 << 20, devices: [] });
    m.boot();
    const s = m.kernel.services;
    let ranAt: number | undefined;
    const start = m.nowNs;
    s.scheduleDelayedWork(2_000_000_000, () => (ranAt = m.nowNs - start));
    expect(m.waitUntil(() => ranAt !== undefined, 60e9)).toBe(true);
    expect(ranAt).toBeGreaterThanOrEqual(2_000_000_000);
    expect(ranAt).toBeLessThan(2_001_000_000);
  });

  it('after panic the kernel takes no interrupts and runs no work', () => {
    const m = new Machine({ vps: 2, memory: 64 << 20, devices: [] });
    m.boot();
    let ran = false;
    m.kernel.services.scheduleDelayedWork(1_000_000, () => (ran = true));
    m.kernel.panic('stop', { kdump: false });
    const irqs = () => m.kernel.cpus.map((c) => [...c.irqs.values()].reduce((a, b) => a + b, 0));
    const before = irqs();
    m.runFor(1_000_000_000);
    expect(irqs()).toEqual(before);
    expect(ran).toBe(false);
  });
});
