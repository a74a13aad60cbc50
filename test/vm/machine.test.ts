// The machine's scheduler: virtual time moves only when the machine moves it, and can be paced
// to a wall clock for interactive runs.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/vm/machine.js';
import { DEFAULT_DEVICES } from '../../src/devices/catalog.js';
import { encodeEvent } from '../../src/trace/codec.js';

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

  it('a paced machine follows the wall clock (times the speed) from the first step of its boot', () => {
    let wall = 0;
    const ahead: number[] = [];
    const box: { m?: Machine } = {};
    let start: number | undefined;
    const pace = {
      speed: 2,
      now: () => {
        const m = box.m;
        if (m) {
          start ??= m.nowNs;
          // Virtual time never runs ahead of the wall clock times the speed.
          if (m.nowNs - start > wall * 1e6 * 2) ahead.push(m.nowNs);
        }
        return wall;
      },
      sleep: (ms: number) => void (wall += ms),
    };
    const m = (box.m = new Machine({ vps: 1, memory: 64 << 20, devices: [{ type: 'shutdown' }], pace }));
    m.boot();
    const booted = m.nowNs;
    expect(booted).toBeGreaterThan(100_000_000); // the boot itself takes virtual time
    expect(wall).toBeCloseTo(booted / 1e6 / 2, 3); // and as much wall time at speed 2
    m.runFor(20_000_000);
    expect(wall).toBeCloseTo((booted + 20_000_000) / 1e6 / 2, 3);
    expect(m.host.shutdownGuest()).toBe(true);
    m.waitUntil(() => m.kernel.stage === 'halted', 60e9);
    expect(m.kernel.stage).toBe('halted');
    expect(wall).toBeCloseTo(m.nowNs / 1e6 / 2, 3); // the shutdown is paced too
    expect(ahead).toEqual([]);
  });

  it('runs in slices that yield to the event loop, and stops when told', async () => {
    const m = new Machine({ vps: 1, memory: 64 << 20 });
    m.boot();
    const start = m.nowNs;
    const stop = new AbortController();
    // Aborted from the event loop: without yielding, this would run only after the whole hour.
    setImmediate(() => stop.abort());
    await m.runForAsync(3600e9, { signal: stop.signal, sliceMs: 1 });
    expect(m.nowNs - start).toBeGreaterThan(0);
    expect(m.nowNs - start).toBeLessThan(3600e9);
    await m.runForAsync(1e9);
    expect(m.nowNs).toBeGreaterThan(start);
  });

  it('boots in slices that yield to the event loop: the same boot as boot(), event for event and byte for byte', async () => {
    const make = () => {
      const m = new Machine({ release: 'ws2022', vps: 2, memory: 64 << 20, devices: DEFAULT_DEVICES.map((type) => ({ type })) });
      const events: string[] = [];
      m.partition.events.on((e) => events.push(encodeEvent(e)));
      return { m, events };
    };
    const whole = make();
    whole.m.boot();
    const sliced = make();
    let yields = 0;
    let stepping = true;
    // Counts the turns the event loop had while the boot ran: each is a slice boundary.
    const count = (): void => {
      yields++;
      if (stepping) setImmediate(count);
    };
    setImmediate(count);
    await sliced.m.bootAsync({ sliceMs: 0 });
    stepping = false;
    expect(sliced.m.kernel.stage).toBe('booted');
    expect(yields).toBeGreaterThan(10);
    expect(sliced.m.nowNs).toBe(whole.m.nowNs);
    expect(sliced.m.kernel.log.lines('debug')).toEqual(whole.m.kernel.log.lines('debug'));
    expect(sliced.events.length).toBe(whole.events.length);
    expect(sliced.events).toEqual(whole.events);
    expect(Buffer.compare(Buffer.from(sliced.m.partition.memory.bytes), Buffer.from(whole.m.partition.memory.bytes))).toBe(0);
  });

  it('a sliced boot stops between two steps once aborted', async () => {
    const m = new Machine({ vps: 1, memory: 64 << 20 });
    const stop = new AbortController();
    // Aborted from the event loop once the boot has begun.
    const watch = (): void => void (m.kernel.stage === 'booting' ? stop.abort() : setImmediate(watch));
    setImmediate(watch);
    await m.bootAsync({ signal: stop.signal, sliceMs: 0 });
    expect(stop.signal.aborted).toBe(true);
    expect(m.kernel.stage).toBe('booting');
    expect(m.kernel.vmbus).toBeUndefined();
  });
});
