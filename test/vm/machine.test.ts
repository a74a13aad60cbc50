// The machine's scheduler: virtual time moves only when the machine moves it, and can be paced
// to a wall clock for interactive runs.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/vm/machine.js';

describe('Machine', () => {
  it('is deterministic: two identical machines produce identical logs and tick counts', () => {
    const runOnce = () => {
      const m = new Machine({ release: 'ws2016', vps: 3, memory: 64 << 20 });
      m.boot();
      m.runFor(250_000_000);
      return { log: m.kernel.log.lines('debug'), ticks: m.kernel.cpus.map((c) => c.clockevent?.ticks), now: m.nowNs };
    };
    expect(runOnce()).toEqual(runOnce());
  });

  it('virtual time moves in whole nanoseconds, whatever the caller passes', () => {
    const m = new Machine({ vps: 1, memory: 64 << 20 });
    m.partition.clock.advance(1000.7);
    expect(m.nowNs).toBe(1000);
    expect(m.partition.referenceTime.now()).toBe(9n);
  });

  it('the hypervisor and the guest can be inspected as data at any moment', () => {
    const m = new Machine({ release: 'ws2012', arch: 'x86', vps: 2, memory: 64 << 20 });
    m.boot();
    m.runFor(10_000_000);
    const hv = JSON.parse(JSON.stringify(m.partition.state()));
    const guest = JSON.parse(JSON.stringify(m.kernel.state()));
    expect(hv.guestOsId).toBe('0x8100000601c00000');
    expect(hv.vps[1].sints[2]).toBe('0x200f3');
    expect(hv.vps[1].stimers[0].expirations).toBeGreaterThan(0);
    expect(guest.cpus[1]).toMatchObject({ cpu: 1, online: true, vpIndex: 1, clockevent: { mode: 'message' } });
    expect(BigInt(hv.vps[0].simp)).toBe(BigInt(guest.cpus[0].synic.messagePage) | 1n);
  });

  it('does not move virtual time on its own', () => {
    const m = new Machine({ vps: 1, memory: 64 << 20 });
    m.boot();
    const t = m.nowNs;
    const ticks = m.kernel.cpus[0]!.clockevent!.ticks;
    expect(m.nowNs).toBe(t);
    expect(m.kernel.cpus[0]!.clockevent!.ticks).toBe(ticks);
  });

  it('paced runs follow the wall clock (times the speed) and stop at the requested time', async () => {
    const m = new Machine({ vps: 1, memory: 64 << 20 });
    m.boot();
    const start = m.nowNs;
    let wall = 0;
    const seen: number[] = [];
    await m.runPaced(20_000_000, {
      speed: 2,
      now: () => wall,
      sleep: async () => {
        seen.push(m.nowNs - start);
        wall += 4; // 4 ms of wall time per wait = 8 ms of virtual time at speed 2
      },
    });
    expect(seen).toEqual([0, 8_000_000, 16_000_000]);
    expect(m.nowNs - start).toBe(20_000_000);
  });
});
