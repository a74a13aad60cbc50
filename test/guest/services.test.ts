// What the kernel lends its drivers: delayed work on the guest's clock, the reference counter,
// and the wall clock from the RTC.
import { describe, expect, it } from 'vitest';
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
