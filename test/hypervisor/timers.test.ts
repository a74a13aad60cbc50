// Synthetic timer and SynIC rules beyond kvm-unit-tests (tlfs.md §5.4, §5.7, §6.3): the table
// of §6.3 row by row, polling mode, EOM on an idle slot, and the TSC page's invalid state.
import { describe, expect, it } from 'vitest';
import { HvMsr, sintMsr, stimerConfigMsr, stimerCountMsr } from '../../src/tlfs/msr.js';
import { HvMessageType } from '../../src/tlfs/synic.js';
import { StimerConfig, TimerMessagePayload } from '../../src/tlfs/time.js';
import { ReferenceClock } from '../../src/guest/hyperv/timer.js';
import { X64Ops } from '../../src/guest/arch.js';
import { KernelLog } from '../../src/guest/klog.js';
import type { X64Port } from '../../src/hypervisor/cpu.js';
import { PAGE, partition, run, type TestGuest } from './harness.js';

function messageMode() {
  const { p, guests } = partition({ vps: 1 });
  const g = guests[0]!;
  g.wrmsr(HvMsr.SIMP, BigInt(PAGE.simp(0)) | 1n);
  g.wrmsr(HvMsr.SCONTROL, 1n);
  g.wrmsr(sintMsr(2), 0x40n | (1n << 17n));
  g.handler = () => false;
  return { p, g, guests };
}
const now = (g: TestGuest) => g.rdmsr(HvMsr.TIME_REF_COUNT);
const oneshot = StimerConfig.encode({ enable: 1, sintx: 2 });
const slot2 = PAGE.simp(0) + 2 * 256;

describe('synthetic timers (tlfs.md 6.3)', () => {
  it('COUNT = 0 disables the timer and cancels its expiry', () => {
    const { p, g, guests } = messageMode();
    g.wrmsr(stimerCountMsr(0), now(g) + 1000n);
    g.wrmsr(stimerConfigMsr(0), oneshot);
    g.wrmsr(stimerCountMsr(0), 0n);
    expect(g.rdmsr(stimerConfigMsr(0)) & 1n).toBe(0n);
    run(p, guests, 1_000_000);
    expect(g.vp.stimers[0]!.expirations).toBe(0);
  });

  it('COUNT with auto_enable arms the timer; without it, only stores the count', () => {
    const { p, g, guests } = messageMode();
    g.wrmsr(stimerConfigMsr(1), StimerConfig.encode({ sintx: 2 })); // disabled, no auto-enable
    g.wrmsr(stimerCountMsr(1), now(g) + 1000n);
    run(p, guests, 1_000_000);
    expect(g.vp.stimers[1]!.expirations).toBe(0);
    g.wrmsr(stimerConfigMsr(1), StimerConfig.encode({ sintx: 2, auto_enable: 1 }));
    g.wrmsr(stimerCountMsr(1), now(g) + 1000n);
    expect(g.rdmsr(stimerConfigMsr(1)) & 1n).toBe(1n);
    run(p, guests, 1_000_000);
    expect(g.vp.stimers[1]!.expirations).toBe(1);
  });

  it('CONFIG.enable with COUNT = 0 leaves the timer enabled but inert (what Linux does before set_next_event)', () => {
    const { p, g, guests } = messageMode();
    g.wrmsr(stimerConfigMsr(0), StimerConfig.encode({ enable: 1, auto_enable: 1, sintx: 2 }));
    expect(g.rdmsr(stimerConfigMsr(0)) & 1n).toBe(1n);
    run(p, guests, 10_000_000);
    expect(g.vp.stimers[0]!.expirations).toBe(0);
    expect(p.memory.read32(slot2)).toBe(HvMessageType.NONE);
  });

  it('a one-shot stays enabled until its message is delivered; stopping it drops a message still queued', () => {
    const { p, g } = messageMode();
    p.memory.write32(slot2, 0x77); // the slot is busy
    g.wrmsr(stimerCountMsr(0), now(g) + 100n);
    g.wrmsr(stimerConfigMsr(0), oneshot);
    p.clock.advance(100_000);
    expect(g.vp.stimers[0]!.expirations).toBe(1);
    expect(g.rdmsr(stimerConfigMsr(0)) & 1n).toBe(1n);
    g.wrmsr(stimerCountMsr(0), 0n); // stop
    p.memory.write32(slot2, 0);
    g.wrmsr(HvMsr.EOM, 0n);
    expect(p.memory.read32(slot2)).toBe(HvMessageType.NONE);
    // Delivered normally, the one-shot disables itself.
    g.wrmsr(stimerCountMsr(0), now(g) + 100n);
    g.wrmsr(stimerConfigMsr(0), oneshot);
    p.clock.advance(100_000);
    expect(p.memory.read32(slot2)).toBe(HvMessageType.TIMER_EXPIRED);
    expect(g.rdmsr(stimerConfigMsr(0)) & 1n).toBe(0n);
  });

  it('a one-shot armed in the past fires at once, during the write', () => {
    const { p, g } = messageMode();
    p.clock.advance(10_000_000);
    g.wrmsr(stimerCountMsr(0), 5n);
    g.wrmsr(stimerConfigMsr(0), oneshot);
    expect(g.vp.stimers[0]!.expirations).toBe(1);
    expect(p.memory.read32(slot2)).toBe(HvMessageType.TIMER_EXPIRED);
  });

  it('a message-mode timer that was enabled is disabled by a config naming SINT 0 (KVM)', () => {
    const { g } = messageMode();
    g.wrmsr(stimerCountMsr(0), now(g) + 100_000n);
    g.wrmsr(stimerConfigMsr(0), oneshot);
    g.wrmsr(stimerConfigMsr(0), StimerConfig.encode({ enable: 1 }));
    expect(g.rdmsr(stimerConfigMsr(0)) & 1n).toBe(0n);
  });

  it('a late periodic timer skips to the next point of its original grid', () => {
    const { p, g } = messageMode();
    g.wrmsr(stimerCountMsr(0), 1000n);
    g.wrmsr(stimerConfigMsr(0), StimerConfig.encode({ enable: 1, periodic: 1, sintx: 2 }));
    const t0 = g.vp.stimers[0]!.deadline!;
    // Nobody takes the messages: the first lands, the second waits behind it in the queue, and
    // the ticks after that find a message still undelivered and are lost.
    p.clock.advance(2_550_000);
    expect(g.vp.stimers[0]!.expirations).toBe(3);
    expect(g.vp.synic.queueDepth(2)).toBe(1);
    // Free the slot: the waiting message lands and the timer resumes on its grid (t0 + k * 1000).
    p.memory.write32(slot2, 0);
    g.wrmsr(HvMsr.EOM, 0n);
    expect(g.vp.synic.queueDepth(2)).toBe(0);
    const next = g.vp.stimers[0]!.deadline!;
    expect((next - t0) % 1000n).toBe(0n);
    expect(next).toBeGreaterThan(now(g));
    expect(next - now(g)).toBeLessThanOrEqual(1000n);
  });

  it('a one-shot that expires while its previous message waits is kept, and delivered after it', () => {
    const { p, g } = messageMode();
    for (let i = 0; i < 2; i++) {
      g.wrmsr(stimerCountMsr(0), now(g) + 100n);
      g.wrmsr(stimerConfigMsr(0), oneshot);
      p.clock.advance(20_000);
    }
    expect(g.vp.stimers[0]!.expirations).toBe(2);
    const first = TimerMessagePayload.decode(p.memory.read(slot2 + 16, 24)).expiration_time;
    expect(p.memory.read8(slot2 + 5) & 1).toBe(1); // the second waits behind the first
    p.memory.write32(slot2, 0);
    g.wrmsr(HvMsr.EOM, 0n);
    const second = TimerMessagePayload.decode(p.memory.read(slot2 + 16, 24)).expiration_time;
    expect(second).toBeGreaterThan(first);
  });

  it('a timer message waits while the SIMP is off and arrives once it is back', () => {
    const { p, g } = messageMode();
    g.wrmsr(HvMsr.SIMP, BigInt(PAGE.simp(0)));
    g.wrmsr(stimerCountMsr(0), now(g) + 100n);
    g.wrmsr(stimerConfigMsr(0), oneshot);
    p.clock.advance(100_000);
    expect(g.vp.synic.queueDepth(2)).toBe(1);
    g.wrmsr(HvMsr.SIMP, BigInt(PAGE.simp(0)) | 1n);
    expect(p.memory.read32(slot2)).toBe(HvMessageType.TIMER_EXPIRED);
  });
});

describe('SynIC details (tlfs.md 5.4, 5.7)', () => {
  it('a polling SINT gets its messages but no interrupt', () => {
    const { p, g } = messageMode();
    g.wrmsr(sintMsr(2), 0x40n | (1n << 18n));
    p.createPort(9, { type: 'message', vp: 0, sint: 2 });
    p.connectPort(9, 9);
    expect(p.postMessage(9, 5, new Uint8Array([1]), 0)).toBe(0);
    expect(p.memory.read32(slot2)).toBe(5);
    expect(g.vp.apic.isPending(0x40)).toBe(false);
  });

  it('polling is refused where the release does not offer it (WS2012)', () => {
    const { guests } = partition({ release: 'ws2012', vps: 1 });
    expect((guests[0]!.cpu as X64Port).wrmsr(sintMsr(2), 0x40n | (1n << 18n))).toBe('#GP');
  });

  it('EOM with nothing queued changes nothing; a guest message in the slot is left alone', () => {
    const { p, g } = messageMode();
    p.memory.write32(slot2, 0x1234);
    g.wrmsr(HvMsr.EOM, 0n);
    expect(p.memory.read32(slot2)).toBe(0x1234);
    expect(p.memory.read8(slot2 + 5)).toBe(0);
  });

  it('auto-EOI follows the SINT configuration at acceptance, whoever raised the vector (KVM)', () => {
    const { p, g } = messageMode(); // SINT2: vector 0x40, auto-EOI
    // An IPI on the same vector is retired at acceptance too: nothing stays in service.
    p.vps[0]!.apic.raise(0x40);
    g.drain();
    expect(g.vp.apic.inService(0x40)).toBe(false);
    // Without auto-EOI the vector goes in service until the guest EOIs.
    g.wrmsr(sintMsr(2), 0x40n);
    p.vps[0]!.apic.raise(0x40);
    g.handler = () => false;
    g.drain();
    expect(g.vp.apic.inService(0x40)).toBe(true);
  });

  it("the host's assertion of a masked SINT raises nothing; unmasking it does not replay it", () => {
    const { g } = messageMode();
    g.wrmsr(sintMsr(3), 0x10050n);
    g.vp.synic.assertSint(3);
    g.wrmsr(sintMsr(3), 0x50n);
    expect(g.vp.apic.isPending(0x50)).toBe(false);
  });
});

describe('reference TSC page validity (tlfs.md 6.2)', () => {
  it('sequence 0 sends the guest to TIME_REF_COUNT, and both agree', () => {
    const { p, guests } = partition({ vps: 1 });
    const g = guests[0]!;
    const ops = new X64Ops(g.cpu as X64Port, new KernelLog(() => 0));
    const clock = new ReferenceClock(p.memory);
    clock.enableTscPage(ops, PAGE.tsc);
    p.clock.advance(1_000_000);
    const seen: string[] = [];
    p.events.on((e) => seen.push(e.kind === 'trap' ? e.what : e.kind));
    const fromPage = clock.read(ops);
    expect(seen).not.toContain('rdmsr');
    p.invalidateTscPage();
    const fromMsr = clock.read(ops);
    expect(seen).toContain('rdmsr');
    expect(fromMsr).toBeGreaterThanOrEqual(fromPage);
    // Re-publishing gives a new sequence, never 0 or 0xFFFFFFFF.
    p.publishTscPage();
    expect(p.memory.read32(PAGE.tsc)).not.toBe(0);
  });
});
