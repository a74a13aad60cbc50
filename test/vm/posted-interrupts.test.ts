// Worker mode's posted interrupts (vm/threaded/protocol.ts Offer): the host offers the vector a
// CPU would accept next and the guest takes it without an ACCEPT trap. Likewise the counter the
// host publishes (protocol.ts COUNTER_SEQ), read without an RDTSC trap. Both sides run here in
// one thread over one control block, the guest's traps answered in place, so that each
// interleaving of host changes and guest takes is exactly the one the test wrote. What the guest
// takes is checked against a CPU port that accepts synchronously (the in-thread machine's).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HostHvSocket } from '../../src/devices/hvsock/host.js';
import { cpuPort } from '../../src/hypervisor/cpu.js';
import type { X64Cpu } from '../../src/hypervisor/cpu-interface.js';
import { Partition } from '../../src/hypervisor/partition.js';
import { HvMsr } from '../../src/tlfs/msr.js';
import { hostHvsock } from '../../src/vm/hvsock-stream.js';
import { ThreadedMachine } from '../../src/vm/threaded/machine.js';
import { ControlBlock, controlBytes, Offer, Op, W } from '../../src/vm/threaded/protocol.js';
import type { HvsockArgs, HvsockResult } from '../../src/vm/threaded/workloads/hvsock.js';
import { remoteCpu } from '../../src/vm/threaded/remote-cpu.js';
import { TrapServer } from '../../src/vm/threaded/trap-server.js';

/** One x64 VP served through a control block, its guest CPU in the same thread. */
function rig() {
  const p = new Partition({ memory: 4 << 20, vps: 1, arch: 'x64' });
  const vp = p.vps[0]!;
  const block = new ControlBlock(new SharedArrayBuffer(controlBytes(1)), 1);
  const server = new TrapServer(block, [{ vp, port: cpuPort(vp) }]);
  const cpu = remoteCpu('x64', block, 0, () => server.serveAll()) as X64Cpu;
  cpu.interruptsEnabled = true;
  const offer = () => Atomics.load(block.header, W.OFFER);
  return { p, vp, server, cpu, offer, acceptTraps: () => server.byOp[Op.ACCEPT]! };
}

const inService = (vp: Partition['vps'][number]): boolean => Array.from({ length: 256 }, (_, v) => v).some((v) => vp.apic.inService(v));

describe('posted interrupts in worker mode', () => {
  it('an offered interrupt is taken without a trap; the host then accepts it as ACCEPT would', () => {
    const { vp, server, cpu, offer } = rig();
    vp.apic.raise(0x40);
    expect(offer()).toBe(Offer.OFFERED | 0x40);
    expect(cpu.interruptPending()).toBe(true);
    expect(cpu.acceptInterrupt()).toBe(0x40);
    expect(server.served).toBe(0);
    expect(offer()).toBe(Offer.TAKEN | 0x40);
    // Taken, not yet settled: nothing more for the guest, and no trap to find that out.
    expect(cpu.interruptPending()).toBe(false);
    expect(cpu.acceptInterrupt()).toBeUndefined();
    expect(vp.apic.isPending(0x40)).toBe(true);
    server.publishInterrupts();
    expect(vp.apic.isPending(0x40)).toBe(false);
    expect(vp.apic.inService(0x40)).toBe(true);
    expect(vp.apic.accepted[0x40]).toBe(1);
    expect(server.posted).toBe(1);
    expect(offer()).toBe(0);
    expect(server.served).toBe(0);
  });

  it('a higher vector raised between the offer and the take is the one taken; the lower one waits for its EOI', () => {
    const { vp, server, cpu, acceptTraps } = rig();
    vp.apic.raise(0x40);
    vp.apic.raise(0x80);
    expect(cpu.acceptInterrupt()).toBe(0x80);
    expect(cpu.acceptInterrupt()).toBeUndefined();
    // The EOI is a trap: the host settles the take first, so the EOI retires 0x80.
    expect(cpu.wrmsr(HvMsr.EOI, 0n)).toBeUndefined();
    expect(vp.apic.inService(0x80)).toBe(false);
    expect(cpu.acceptInterrupt()).toBe(0x40);
    expect(acceptTraps()).toBe(0);
    server.publishInterrupts();
    expect([vp.apic.accepted[0x80], vp.apic.accepted[0x40]]).toEqual([1, 1]);
  });

  it('the taken vector raised again before the host settles is taken a second time, not lost', () => {
    const { vp, server, cpu } = rig();
    vp.apic.raise(0x40);
    expect(cpu.acceptInterrupt()).toBe(0x40);
    vp.apic.raise(0x40);
    // Settled before the raise: in service, and pending again behind itself.
    expect(vp.apic.inService(0x40)).toBe(true);
    expect(vp.apic.isPending(0x40)).toBe(true);
    expect(cpu.acceptInterrupt()).toBeUndefined();
    expect(cpu.wrmsr(HvMsr.EOI, 0n)).toBeUndefined();
    expect(cpu.acceptInterrupt()).toBe(0x40);
    server.publishInterrupts();
    expect(vp.apic.accepted[0x40]).toBe(2);
    expect(server.posted).toBe(2);
  });

  it('a take the host never offered (the guest wrote the word itself) is refused: nothing accepted, counted, the host goes on', () => {
    const { vp, server, offer } = rig();
    vp.apic.raise(0x40);
    expect(offer()).toBe(Offer.OFFERED | 0x40);
    // A forged take of another vector, then one with nothing pending at all.
    Atomics.store(server.block.header, W.OFFER, Offer.TAKEN | 0x90);
    expect(() => server.publishInterrupts()).not.toThrow();
    expect(server.forgedTakes).toBe(1);
    expect(vp.apic.isPending(0x40)).toBe(true);
    expect(inService(vp)).toBe(false);
    expect(offer()).toBe(Offer.OFFERED | 0x40);
    Atomics.store(server.block.header, W.OFFER, Offer.TAKEN | 0x40);
    vp.apic.acknowledge(); // the real 0x40 went another way meanwhile: the take no longer matches
    expect(() => server.serveAll()).not.toThrow();
    server.publishInterrupts();
    expect(server.forgedTakes).toBe(2);
    expect(vp.apic.accepted[0x40]).toBe(1);
    expect(server.posted).toBe(0);
  });

  it('follows the TPR and interrupt enable as a synchronous ACCEPT does', () => {
    const { vp, cpu, offer } = rig();
    cpu.apicWrite(0x80, 0x50);
    vp.apic.raise(0x40);
    expect(offer()).toBe(0);
    expect(cpu.acceptInterrupt()).toBeUndefined();
    cpu.apicWrite(0x80, 0);
    expect(offer()).toBe(Offer.OFFERED | 0x40);
    cpu.interruptsEnabled = false;
    expect(cpu.acceptInterrupt()).toBeUndefined();
    expect(offer()).toBe(Offer.OFFERED | 0x40);
    cpu.interruptsEnabled = true;
    expect(cpu.acceptInterrupt()).toBe(0x40);
  });

  it('an auto-EOI vector with messages queued behind its SINT is accepted by a trap, which delivers the next one', () => {
    const { p, vp, cpu, offer, acceptTraps } = rig();
    const SIMP = 0x20000;
    const VECTOR = 0x50;
    for (const [msr, v] of [
      [HvMsr.SCONTROL, 1n],
      [HvMsr.SIMP, BigInt(SIMP) | 1n],
      [HvMsr.SINT0, BigInt(VECTOR) | (1n << 17n)],
    ] as const)
      expect(cpu.wrmsr(msr, v)).toBeUndefined();
    const msg = (b: number) => ({ type: 1, payload: new Uint8Array([b]) });
    expect(vp.synic.post(0, msg(1))).toBe(0);
    // The slot is busy until the guest frees it: the second message waits in the queue.
    expect(vp.synic.post(0, msg(2))).toBe(0);
    expect(offer()).toBe(0);
    expect(cpu.interruptPending()).toBe(true);
    // Linux's ISR frees the slot; the acceptance's auto-EOI would otherwise wait for EOM.
    p.memory.write32(SIMP, 0);
    expect(cpu.acceptInterrupt()).toBe(VECTOR);
    expect(acceptTraps()).toBe(1);
    // The trap's auto-EOI delivered the queued message before the guest ran its handler.
    expect(p.memory.read32(SIMP)).toBe(1);
    expect(p.memory.read8(SIMP + 16)).toBe(2);
  });

  it('a SINT write that makes the offered vector auto-EOI with a message queued withdraws the offer', () => {
    const { p, vp, server, cpu, offer, acceptTraps } = rig();
    const SIMP = 0x20000;
    const VECTOR = 0x50;
    expect(cpu.wrmsr(HvMsr.SCONTROL, 1n)).toBeUndefined();
    expect(cpu.wrmsr(HvMsr.SIMP, BigInt(SIMP) | 1n)).toBeUndefined();
    expect(cpu.wrmsr(HvMsr.SINT0, BigInt(VECTOR))).toBeUndefined();
    expect(vp.synic.post(0, { type: 1, payload: new Uint8Array([1]) })).toBe(0);
    expect(vp.synic.post(0, { type: 1, payload: new Uint8Array([2]) })).toBe(0);
    // Not auto-EOI: its acceptance is only IRR → ISR, so the host's next round offers it.
    server.publishInterrupts();
    expect(offer()).toBe(Offer.OFFERED | VECTOR);
    expect(cpu.wrmsr(HvMsr.SINT0, BigInt(VECTOR) | (1n << 17n))).toBeUndefined();
    expect(offer()).toBe(0);
    p.memory.write32(SIMP, 0);
    expect(cpu.acceptInterrupt()).toBe(VECTOR);
    expect(acceptTraps()).toBe(1);
    expect(p.memory.read8(SIMP + 16)).toBe(2);
  });

  it('random raises, takes, EOIs, TPR writes and host rounds: the same vectors in the same order as synchronous ACCEPT, none lost or taken twice, no ACCEPT trap', () => {
    type Step =
      | { op: 'raise'; vector: number }
      | { op: 'accept' }
      | { op: 'eoi' }
      | { op: 'tpr'; value: number }
      | { op: 'round' }
      | { op: 'enable'; on: boolean };
    const vector = fc.integer({ min: 16, max: 255 });
    const step: fc.Arbitrary<Step> = fc.oneof(
      { weight: 4, arbitrary: vector.map((v) => ({ op: 'raise' as const, vector: v })) },
      { weight: 5, arbitrary: fc.constant({ op: 'accept' as const }) },
      { weight: 3, arbitrary: fc.constant({ op: 'eoi' as const }) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }).map((v) => ({ op: 'tpr' as const, value: v })) },
      { weight: 2, arbitrary: fc.constant({ op: 'round' as const }) },
      { weight: 1, arbitrary: fc.boolean().map((on) => ({ op: 'enable' as const, on })) },
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 120 }), (steps) => {
        const b = rig();
        const refP = new Partition({ memory: 4 << 20, vps: 1, arch: 'x64' });
        const refVp = refP.vps[0]!;
        const ref = cpuPort(refVp) as X64Cpu;
        ref.interruptsEnabled = true;
        const takenB: number[] = [];
        const takenRef: number[] = [];
        const accept = (): void => {
          const v = b.cpu.acceptInterrupt();
          if (v !== undefined) {
            takenB.push(v);
            const r = ref.acceptInterrupt();
            expect(r).toBe(v);
            takenRef.push(r!);
          } else if (!(b.offer() & Offer.TAKEN)) {
            // Only a take the host has yet to settle may hold the next one back.
            expect(ref.acceptInterrupt()).toBeUndefined();
          }
        };
        for (const s of steps) {
          switch (s.op) {
            case 'raise':
              b.vp.apic.raise(s.vector);
              refVp.apic.raise(s.vector);
              break;
            case 'accept':
              accept();
              break;
            case 'eoi':
              b.cpu.wrmsr(HvMsr.EOI, 0n);
              ref.wrmsr(HvMsr.EOI, 0n);
              break;
            case 'tpr':
              b.cpu.apicWrite(0x80, s.value);
              ref.apicWrite(0x80, s.value);
              break;
            case 'round':
              b.server.publishInterrupts();
              break;
            case 'enable':
              b.cpu.interruptsEnabled = s.on;
              ref.interruptsEnabled = s.on;
              break;
          }
        }
        // Drain both: every raise is taken once the CPU lets it through.
        b.cpu.apicWrite(0x80, 0);
        ref.apicWrite(0x80, 0);
        b.cpu.interruptsEnabled = true;
        ref.interruptsEnabled = true;
        // At most one vector a round (an EOI after each take); 256 rounds then retire everything.
        for (let i = 0; i < 300; i++) {
          b.server.publishInterrupts();
          const before = takenRef.length;
          accept();
          b.cpu.wrmsr(HvMsr.EOI, 0n);
          ref.wrmsr(HvMsr.EOI, 0n);
          if (takenRef.length === before && refVp.apic.deliverable() === undefined && !inService(refVp)) break;
        }
        b.server.publishInterrupts();
        expect(takenB).toEqual(takenRef);
        for (let v = 0; v < 256; v++) {
          expect(b.vp.apic.isPending(v), `IRR ${v}`).toBe(refVp.apic.isPending(v));
          expect(b.vp.apic.inService(v), `ISR ${v}`).toBe(refVp.apic.inService(v));
          expect(b.vp.apic.isPending(v)).toBe(false);
        }
        expect([...b.vp.apic.accepted]).toEqual([...refVp.apic.accepted]);
        expect(b.acceptTraps()).toBe(0);
        expect(b.server.posted).toBe(takenB.length);
      }),
      { numRuns: 200 },
    );
  });
});

describe('the published counter in worker mode', () => {
  it('reads what an RDTSC trap would read, with no trap, except while time moves', () => {
    const { p, server, cpu } = rig();
    const rdtscTraps = () => server.byOp[Op.RDTSC]!;
    // Nothing published yet: the read traps.
    p.clock.advanceTo(1_000_000);
    expect(cpu.rdtsc()).toBe(p.referenceTime.tsc());
    expect(rdtscTraps()).toBe(1);
    server.timeMoving();
    p.clock.advanceTo(5_000_000);
    server.timeMoved();
    expect(cpu.rdtsc()).toBe(p.referenceTime.tsc());
    expect(cpu.rdtsc()).toBe(p.referenceTime.tsc());
    expect(rdtscTraps()).toBe(1);
    // While time moves the published value is withdrawn: a read traps and gets the time as it
    // stands when the host answers.
    server.timeMoving();
    p.clock.advanceTo(9_000_000);
    expect(cpu.rdtsc()).toBe(p.referenceTime.tsc());
    expect(rdtscTraps()).toBe(2);
    server.timeMoved();
    expect(cpu.rdtsc()).toBe(p.referenceTime.tsc());
    expect(rdtscTraps()).toBe(2);
  });

  it('a timer interrupt taken while time moves is followed by a counter read no earlier than its expiry', () => {
    const { p, vp, server, cpu } = rig();
    server.timeMoving();
    p.clock.advanceTo(1_000);
    server.timeMoved();
    let seen: bigint | undefined;
    let expiry: bigint | undefined;
    p.clock.schedule(3_000_000, () => {
      vp.apic.raise(0xed);
      // The guest, running meanwhile, takes the timer interrupt and reads the clock.
      expiry = p.referenceTime.tsc();
      expect(cpu.acceptInterrupt()).toBe(0xed);
      seen = cpu.rdtsc();
    });
    server.timeMoving();
    p.clock.advanceTo(8_000_000);
    server.timeMoved();
    expect(seen).toBeDefined();
    expect(seen! >= expiry!).toBe(true);
  });
});

// Workers run JavaScript: the guest side comes from the build (`npm test` builds first).
const HVSOCK = new URL('../../dist/vm/threaded/workloads/hvsock.js', import.meta.url);

describe('posted interrupts with the guest in a worker', () => {
  it('an hv_sock transfer: every byte arrives, and the guest takes its interrupts from offers', async () => {
    const m = new ThreadedMachine({ release: 'ws2022', vps: 2, memory: 64 << 20, devices: [], kernel: { modules: [] } });
    let bytes = 0;
    hostHvsock(m).listen(5000, (s: HostHvSocket) => {
      s.on.data = (b) => void (bytes += b.length);
      s.on.end = () => s.end();
    });
    const args: HvsockArgs = { port: 5000, bytes: 4 << 20, writeBytes: 4096 };
    const r = await m.run<HvsockResult>(HVSOCK, args, 60_000);
    expect(r.error).toBeUndefined();
    expect(r.result!.finished).toBe(true);
    expect(bytes).toBe(4 << 20);
    // The guest waited for ring space many times; each wait ended with an interrupt it took,
    // from an offer or by an ACCEPT trap that found one.
    const channelInterrupts = r.result!.interrupts;
    expect(channelInterrupts).toBeGreaterThan(10);
    expect(r.postedAccepts).toBeGreaterThan(0);
    expect(r.postedAccepts + (r.trapsByOp.ACCEPT ?? 0) - r.idleAccepts).toBeGreaterThanOrEqual(channelInterrupts);
  }, 90_000);
});
