// tlfs.md 8.2: the behaviours kvm-unit-tests x86/hyperv_stimer.c asserts, in message mode and
// in direct mode, one test per number.
import { describe, expect, it } from 'vitest';
import { HvMsr, sintMsr, stimerConfigMsr, stimerCountMsr } from '../../../src/tlfs/msr.js';
import { HvMessageType } from '../../../src/tlfs/synic.js';
import { StimerConfig, TimerMessagePayload } from '../../../src/tlfs/time.js';
import { PAGE, partition, run, type TestGuest } from '../harness.js';

const PERIOD = 10_000n; // 1 ms in 100 ns ticks
const MSG_VECTOR = [0xf1, 0xf2];
const DIRECT_VECTOR = [0xf3, 0xf4];

interface Timers {
  fires: number[];
  violations: string[];
}

/** The message-mode handler: scans all 16 slots as hyperv_stimer.c does (8.2.6). */
function messageHandler(g: TestGuest, t: Timers) {
  return (vector: number): boolean => {
    const mem = g.p.memory;
    for (let s = 0; s < 16; s++) {
      const slot = PAGE.simp(g.index) + s * 256;
      const type = mem.read32(slot);
      if (type === HvMessageType.NONE) continue;
      if (type !== HvMessageType.TIMER_EXPIRED) {
        t.violations.push(`slot ${s} holds type 0x${type.toString(16)}`);
        continue;
      }
      const size = mem.read8(slot + 4);
      const payload = TimerMessagePayload.decode(mem.read(slot + 16, 24));
      if (size < 24) t.violations.push(`payload_size ${size}`);
      if (payload.timer_index >= 4) t.violations.push(`timer_index ${payload.timer_index}`);
      else if (g.vp.stimers[payload.timer_index]!.direct) t.violations.push('message from a direct-mode timer');
      else t.fires[payload.timer_index]!++;
      const pending = mem.read8(slot + 5) & 1;
      mem.write32(slot, HvMessageType.NONE); // clear, then (a full barrier, then) EOM if pending
      if (pending) g.wrmsr(HvMsr.EOM, 0n);
    }
    return vector === MSG_VECTOR[0]; // SINT2's handler EOIs, SINT3 is auto-EOI
  };
}

function directHandler(t: Timers) {
  return (vector: number): boolean => {
    const i = DIRECT_VECTOR.indexOf(vector);
    if (i < 0) t.violations.push(`unexpected vector 0x${vector.toString(16)}`);
    else t.fires[i]!++;
    return true;
  };
}

function setup(direct: boolean) {
  const { p, guests } = partition({ vps: 2 });
  const timers = guests.map((): Timers => ({ fires: [0, 0, 0, 0], violations: [] }));
  for (const g of guests) {
    const t = timers[g.index]!;
    if (direct) {
      // Direct mode touches no SynIC MSR at all.
      g.handler = directHandler(t);
    } else {
      g.wrmsr(HvMsr.SIMP, BigInt(PAGE.simp(g.index)) | 1n);
      g.wrmsr(HvMsr.SCONTROL, 1n);
      g.wrmsr(sintMsr(2), BigInt(MSG_VECTOR[0]!));
      g.wrmsr(sintMsr(3), BigInt(MSG_VECTOR[1]!) | (1n << 17n));
      g.handler = messageHandler(g, t);
    }
  }
  const config = (timer: number, o: { periodic?: boolean; autoEnable?: boolean; enable?: boolean }) =>
    StimerConfig.encode({
      enable: o.enable ?? true,
      periodic: o.periodic ?? false,
      auto_enable: o.autoEnable ?? false,
      ...(direct ? { direct_mode: 1, apic_vector: DIRECT_VECTOR[timer]! } : { sintx: timer + 2 }),
    });
  return { p, guests, timers, config };
}

const now = (g: TestGuest) => g.rdmsr(HvMsr.TIME_REF_COUNT);

for (const direct of [false, true]) {
  describe(`hyperv_stimer, ${direct ? 'direct' : 'message'} mode (tlfs.md 8.2)`, () => {
    it('8.2.1 periodic timers 0 and 1 with a 1 ms period each fire at least 1000 times, then stop', () => {
      const { p, guests, timers, config } = setup(direct);
      for (const g of guests) {
        for (const i of [0, 1]) {
          g.wrmsr(stimerCountMsr(i), PERIOD);
          g.wrmsr(stimerConfigMsr(i), config(i, { periodic: true }));
        }
      }
      run(p, guests, 1_200_000_000, 100_000, () => timers.every((t) => t.fires[0]! >= 1000 && t.fires[1]! >= 1000));
      for (const t of timers) {
        expect(t.fires[0]).toBeGreaterThanOrEqual(1000);
        expect(t.fires[1]).toBeGreaterThanOrEqual(1000);
        expect(t.violations).toEqual([]);
      }
      for (const g of guests) for (const i of [0, 1]) g.wrmsr(stimerConfigMsr(i), 0n);
      const before = timers.map((t) => [...t.fires]);
      run(p, guests, 50_000_000);
      expect(timers.map((t) => t.fires)).toEqual(before);
    });

    it('8.2.2 a one-shot timer (COUNT = now + 1 ms, then CONFIG) fires once and disables itself', () => {
      const { p, guests, timers, config } = setup(direct);
      const g = guests[0]!;
      g.wrmsr(stimerCountMsr(0), now(g) + PERIOD);
      g.wrmsr(stimerConfigMsr(0), config(0, {}));
      run(p, guests, 500_000);
      expect(timers[0]!.fires[0]).toBe(0);
      run(p, guests, 1_000_000);
      expect(timers[0]!.fires[0]).toBe(1);
      expect(g.rdmsr(stimerConfigMsr(0)) & 1n).toBe(0n);
      run(p, guests, 10_000_000);
      expect(timers[0]!.fires[0]).toBe(1);
    });

    it('8.2.3 auto-enable one-shot: CONFIG over a past COUNT, then COUNT = now + 1 ms, fires', () => {
      const { p, guests, timers, config } = setup(direct);
      const g = guests[0]!;
      run(p, guests, 5_000_000); // reference time is now well past 10000
      g.wrmsr(stimerCountMsr(1), PERIOD);
      g.wrmsr(stimerConfigMsr(1), config(1, { autoEnable: true }));
      g.wrmsr(stimerCountMsr(1), now(g) + PERIOD);
      run(p, guests, 2_000_000);
      expect(timers[0]!.fires[1]).toBeGreaterThanOrEqual(1);
      expect(timers[0]!.violations).toEqual([]);
    });

    it('8.2.4 auto-enable periodic: the new 1 ms period written to COUNT takes effect at once', () => {
      const { p, guests, timers, config } = setup(direct);
      const g = guests[0]!;
      g.wrmsr(stimerCountMsr(0), now(g) + 1_000_000_000n); // an old absolute one-shot value
      g.wrmsr(stimerConfigMsr(0), config(0, { periodic: true, autoEnable: true }));
      g.wrmsr(stimerCountMsr(0), PERIOD);
      run(p, guests, 1_100_000_000, 100_000, () => timers[0]!.fires[0]! >= 1000);
      expect(timers[0]!.fires[0]).toBeGreaterThanOrEqual(1000);
    });

    if (!direct) {
      it('8.2.5 a busy slot: msg_pending is set, no interrupt, and the message arrives after NONE + EOM', () => {
        const { p, guests, timers, config } = setup(false);
        const g = guests[0]!;
        const slot = PAGE.simp(0) + 2 * 256;
        p.memory.write32(slot, HvMessageType.TIMER_EXPIRED); // the guest fakes a message in SINT2's slot
        g.handler = () => {
          timers[0]!.fires[0]!++;
          return true;
        };
        g.wrmsr(stimerCountMsr(0), now(g) + PERIOD);
        g.wrmsr(stimerConfigMsr(0), config(0, {}));
        run(p, guests, 3_000_000);
        expect(g.vp.stimers[0]!.expirations).toBe(1);
        expect(p.memory.read8(slot + 5) & 1).toBe(1); // 8.2.5a
        expect(timers[0]!.fires[0]).toBe(0); // 8.2.5b
        p.memory.write32(slot, HvMessageType.NONE); // 8.2.5c
        g.wrmsr(HvMsr.EOM, 0n);
        g.drain();
        expect(timers[0]!.fires[0]).toBeGreaterThanOrEqual(1);
        expect(p.memory.read32(slot)).toBe(HvMessageType.TIMER_EXPIRED);
        expect(TimerMessagePayload.decode(p.memory.read(slot + 16, 24)).timer_index).toBe(0);
      });

      it('8.2.6 every message-mode interrupt finds only NONE or valid TIMER_EXPIRED slots', () => {
        const { p, guests, timers, config } = setup(false);
        for (const g of guests) {
          g.wrmsr(stimerCountMsr(0), PERIOD);
          g.wrmsr(stimerConfigMsr(0), config(0, { periodic: true }));
          g.wrmsr(stimerCountMsr(1), now(g) + 3n * PERIOD);
          g.wrmsr(stimerConfigMsr(1), config(1, {}));
        }
        run(p, guests, 20_000_000);
        for (const t of timers) {
          expect(t.violations).toEqual([]);
          expect(t.fires[0]).toBeGreaterThan(10);
          expect(t.fires[1]).toBe(1);
        }
        // The payload carries the due time and the (later or equal) delivery time.
        const g = guests[0]!;
        g.handler = () => true;
        g.wrmsr(stimerConfigMsr(0), 0n);
        g.wrmsr(stimerCountMsr(1), now(g) + PERIOD);
        g.wrmsr(stimerConfigMsr(1), config(1, {}));
        run(p, [], 2_000_000);
        const msg = TimerMessagePayload.decode(p.memory.read(PAGE.simp(0) + 3 * 256 + 16, 24));
        expect(msg.timer_index).toBe(1);
        expect(msg.delivery_time).toBeGreaterThanOrEqual(msg.expiration_time);
      });
    } else {
      it('8.2.7 direct mode: expirations arrive only as the configured vectors, with no message and no SynIC', () => {
        const { p, guests, timers, config } = setup(true);
        const g = guests[0]!;
        expect(g.rdmsr(HvMsr.SCONTROL)).toBe(0n);
        g.wrmsr(stimerCountMsr(0), PERIOD);
        g.wrmsr(stimerConfigMsr(0), config(0, { periodic: true }));
        run(p, guests, 10_500_000);
        expect(timers[0]!.fires[0]).toBe(10);
        expect(timers[0]!.violations).toEqual([]);
        expect(p.memory.read(PAGE.simp(0), 4096).every((b) => b === 0)).toBe(true);
      });
    }

    it('8.2.8 the clean-up writes do not fault', () => {
      const { guests } = setup(direct);
      for (const g of guests) {
        for (let i = 0; i < 4; i++) g.wrmsr(stimerConfigMsr(i), 0n);
        if (!direct) {
          g.wrmsr(sintMsr(2), 0x100ffn);
          g.wrmsr(sintMsr(3), 0x100ffn);
        }
        g.wrmsr(HvMsr.SCONTROL, 0n);
        g.wrmsr(HvMsr.SIMP, 0n);
        g.wrmsr(HvMsr.SIEFP, 0n);
      }
    });
  });
}
