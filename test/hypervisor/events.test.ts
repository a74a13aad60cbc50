// The partition's event stream (src/hypervisor/trace.ts): any number of listeners, the time
// stamped once, nothing built without a listener, and exactly one event per crossing of the
// boundary: a trap, a message or a flag each way, plus what the hypervisor does on its own.
import { describe, expect, it } from 'vitest';
import type { X64Port } from '../../src/hypervisor/cpu.js';
import { EventBus, type TraceEvent } from '../../src/hypervisor/trace.js';
import { HvCall } from '../../src/tlfs/hypercall-codes.js';
import { HvInputPostMessage } from '../../src/tlfs/hypercall-inputs.js';
import { HvMsr, sintMsr } from '../../src/tlfs/msr.js';
import { HvStatus } from '../../src/tlfs/status.js';
import { PAGE, partition, status, type TestGuest } from './harness.js';

describe('EventBus', () => {
  it('any number of listeners, each gets every event in order, the same stamped object', () => {
    let now = 5;
    const bus = new EventBus(() => now);
    expect(bus.active).toBe(false);
    bus.emit({ kind: 'reset' }); // nobody listens: nothing happens
    const a: TraceEvent[] = [];
    const b: TraceEvent[] = [];
    const offA = bus.on((e) => a.push(e));
    const offB = bus.on((e) => b.push(e));
    expect(bus.active).toBe(true);
    bus.emit({ kind: 'guest-idle', vp: 1 });
    now = 7;
    bus.emit({ kind: 'reset' });
    expect(a).toEqual([
      { ns: 5, kind: 'guest-idle', vp: 1 },
      { ns: 7, kind: 'reset' },
    ]);
    expect(b[0]).toBe(a[0]);
    offA();
    offA(); // once is enough; b stays
    bus.emit({ kind: 'reset' });
    expect(a.length).toBe(2);
    expect(b.length).toBe(3);
    offB();
    expect(bus.active).toBe(false);
  });

  it('a listener that leaves during an emit does not make another miss it; one subscribed twice gets it twice', () => {
    const bus = new EventBus(() => 0);
    const got: string[] = [];
    const offFirst = bus.on(() => (got.push('first'), offFirst()));
    bus.on(() => got.push('second'));
    const twice = () => got.push('twice');
    const off1 = bus.on(twice);
    bus.on(twice);
    bus.emit({ kind: 'reset' });
    expect(got).toEqual(['first', 'second', 'twice', 'twice']);
    got.length = 0;
    off1();
    bus.emit({ kind: 'reset' });
    expect(got).toEqual(['second', 'twice']);
  });
});

describe('EventBus subscriptions by kind', () => {
  it('a listener that names kinds gets only those; wants() says whether anyone takes a kind', () => {
    const bus = new EventBus(() => 3);
    const got: TraceEvent[] = [];
    const off = bus.on((e) => got.push(e), { kinds: ['reset', 'crash'] });
    expect(bus.active).toBe(true);
    expect(bus.wants('reset')).toBe(true);
    expect(bus.wants('packet')).toBe(false);
    bus.emit({ kind: 'guest-idle', vp: 0 });
    bus.emit({ kind: 'reset' });
    expect(got).toEqual([{ ns: 3, kind: 'reset' }]);
    const all: TraceEvent[] = [];
    const offAll = bus.on((e) => all.push(e));
    expect(bus.wants('packet')).toBe(true);
    bus.emit({ kind: 'guest-idle', vp: 1 });
    expect(all).toEqual([{ ns: 3, kind: 'guest-idle', vp: 1 }]);
    expect(got.length).toBe(1);
    offAll();
    off();
    expect(bus.wants('reset')).toBe(false);
    expect(bus.active).toBe(false);
  });
});

describe('one event per crossing', () => {
  function ready() {
    const r = partition({ release: 'ws2025', vps: 2 });
    for (const g of r.guests) g.enableHypercalls();
    const g1 = r.guests[1]!;
    g1.wrmsr(HvMsr.SIMP, BigInt(PAGE.simp(1)) | 1n);
    g1.wrmsr(HvMsr.SIEFP, BigInt(PAGE.siefp(1)) | 1n);
    g1.wrmsr(HvMsr.SCONTROL, 1n);
    g1.wrmsr(sintMsr(2), 0x50n);
    const events: TraceEvent[] = [];
    r.p.events.on((e) => events.push(e));
    /** What the next action emits, one word each. */
    const next = (act: () => void): string[] => {
      const from = events.length;
      act();
      return events.slice(from).map((e) => (e.kind === 'trap' ? e.what : 'dir' in e ? `${e.kind} ${e.dir}` : e.kind));
    };
    return { ...r, g0: r.guests[0]!, events, next };
  }

  const post = (g: TestGuest, conn: number, payload: number[]): number => {
    const at = PAGE.input(g.index);
    g.p.memory.write(at, HvInputPostMessage.encode({ connectionid: { id: conn, reserved: 0 }, reserved: 0, message_type: 1, payload_size: payload.length, payload: new Uint8Array(payload) }));
    return status(g.hypercall({ code: HvCall.POST_MESSAGE }, BigInt(at)));
  };
  const signal = (g: TestGuest, conn: number): number => status(g.hypercall({ code: HvCall.SIGNAL_EVENT, fast: true }, BigInt(conn)));

  it('CPUID, RDMSR, WRMSR: one trap each', () => {
    const { g0, next } = ready();
    expect(next(() => (g0.cpu as X64Port).cpuid(0x40000000))).toEqual(['cpuid']);
    expect(next(() => g0.rdmsr(HvMsr.VP_INDEX))).toEqual(['rdmsr']);
    expect(next(() => g0.wrmsr(HvMsr.GUEST_OS_ID, 0x8100000601c00000n))).toEqual(['wrmsr']);
  });

  it('a post to the host: the message with its port, then the hypercall trap with its status', () => {
    const { p, g0, events, next } = ready();
    p.createPort(0x1, { type: 'host-message', handler: () => HvStatus.SUCCESS });
    p.connectPort(0x4, 0x1);
    expect(next(() => post(g0, 4, [9, 8, 7]))).toEqual(['message to-host', 'hypercall']);
    expect(events.at(-2)).toMatchObject({ kind: 'message', dir: 'to-host', vp: 0, connection: 4, port: 1, type: 1, payload: '090807' });
    expect(events.at(-1)).toMatchObject({ kind: 'trap', what: 'hypercall', code: HvCall.POST_MESSAGE, status: HvStatus.SUCCESS });
    // A connection that leads nowhere: the message still crossed, with no port.
    expect(next(() => post(g0, 0x77, [1]))).toEqual(['message to-host', 'hypercall']);
    expect(events.at(-2)).not.toHaveProperty('port');
    expect(events.at(-1)).toMatchObject({ status: HvStatus.INVALID_CONNECTION_ID });
  });

  it('a post to another VP: the message in, queued, written into the slot, the SINT asserted, then the trap', () => {
    const { p, g0, events, next } = ready();
    p.createPort(0x40, { type: 'message', vp: 1, sint: 2 });
    p.connectPort(0x41, 0x40);
    expect(next(() => post(g0, 0x41, [1, 2]))).toEqual(['message to-host', 'message-queued', 'message to-guest', 'sint-asserted', 'hypercall']);
    expect(events.at(-3)).toMatchObject({ kind: 'message', dir: 'to-guest', vp: 1, sint: 2, type: 1, payload: '0102' });
    expect(events.at(-2)).toMatchObject({ kind: 'sint-asserted', vp: 1, sint: 2, vector: 0x50 });
  });

  it('a signal: to the host once; to a guest flag once, coalesced the second time (and no second interrupt)', () => {
    const { p, g0, events, next } = ready();
    p.createPort(0x2, { type: 'host-event', flagCount: 1, handler: () => undefined });
    p.connectPort(0x2, 0x2);
    expect(next(() => signal(g0, 0x2))).toEqual(['signal to-host', 'hypercall']);
    expect(events.at(-2)).toMatchObject({ kind: 'signal', dir: 'to-host', vp: 0, connection: 2, port: 2, flag: 0 });
    p.createPort(0x50, { type: 'event', vp: 1, sint: 2, baseFlag: 10, flagCount: 1 });
    p.connectPort(0x51, 0x50);
    expect(next(() => signal(g0, 0x51))).toEqual(['signal to-host', 'signal to-guest', 'sint-asserted', 'hypercall']);
    expect(events.at(-3)).toMatchObject({ kind: 'signal', dir: 'to-guest', vp: 1, sint: 2, flag: 10, coalesced: false });
    expect(next(() => signal(g0, 0x51))).toEqual(['signal to-host', 'signal to-guest', 'hypercall']);
    expect(events.at(-2)).toMatchObject({ coalesced: true });
  });

  it('a hypercall with the page off is one trap, its fault #UD', () => {
    const { g0, events, next } = ready();
    g0.wrmsr(HvMsr.HYPERCALL, 0n);
    const regs = { rcx: BigInt(HvCall.POST_MESSAGE), rdx: 0n, r8: 0n, rax: 0n, xmm: [] as bigint[] };
    expect(next(() => (g0.cpu as X64Port).vmcall(regs))).toEqual(['hypercall']);
    expect(events.at(-1)).toMatchObject({ kind: 'trap', what: 'hypercall', fault: '#UD' });
  });
});
