// The SynIC against a model (fast-check model-based commands): whatever a guest does with its
// SynIC registers, slots and EOM while another VP posts to it and the hypervisor queues its own
// messages, every HvCallPostMessage and HvCallSignalEvent gets the status the model predicts
// (tlfs.md §5.4, §5.8), and every message accepted arrives exactly once, in order, intact.
import fc from 'fast-check';
import { expect } from 'vitest';
import type { ReleaseId } from '../../src/hypervisor/release.js';
import { HvCall } from '../../src/tlfs/hypercall-codes.js';
import { HvMsr, sintMsr } from '../../src/tlfs/msr.js';
import { HvStatus } from '../../src/tlfs/status.js';
import { HV_MESSAGE_SIZE } from '../../src/tlfs/synic.js';
import { itFuzzEachRelease } from '../fuzz/fuzz.js';
import { PAGE, partition, status, type TestGuest } from './harness.js';

const SINTS = [2, 3] as const;
type Sint = (typeof SINTS)[number];
/** Connection ids of the guest's ports: messages into VP 1's SINT2 and SINT3, events into SINT2. */
const CONN = { 2: 10, 3: 11, event: 12, none: 99 } as const;
const VECTOR = { 2: 0x50, 3: 0x51 } as const;
const DEPTH = 16;
/** Where VP 1 may put its SIMP. */
const SIMP_AT = [PAGE.simp(1), PAGE.output(1)] as const;

interface Message {
  type: number;
  payload: Uint8Array;
  /** Hypervisor-generated: not counted against the queue's bound. */
  internal?: boolean;
}
interface Model {
  scontrol: boolean;
  masked: Record<Sint, boolean>;
  simp: number;
  /** Accepted and not yet taken from the slot, per SINT, in order. */
  waiting: Record<Sint, Message[]>;
}
interface Real {
  p: ReturnType<typeof partition>['p'];
  sender: TestGuest;
  receiver: TestGuest;
}

const deliverable = (m: Model, s: Sint) => m.scontrol && !m.masked[s];

abstract class Command implements fc.Command<Model, Real> {
  check(): boolean {
    return true;
  }
  abstract run(m: Model, r: Real): void;
  abstract toString(): string;
}

class Post extends Command {
  constructor(
    readonly to: Sint | 'none',
    readonly msg: Message,
  ) {
    super();
  }
  run(m: Model, r: Real): void {
    const at = PAGE.input(0);
    r.p.memory.fill(at, 256);
    r.p.memory.write32(at, CONN[this.to]);
    r.p.memory.write32(at + 8, this.msg.type);
    r.p.memory.write32(at + 12, this.msg.payload.length);
    r.p.memory.write(at + 16, this.msg.payload);
    const st = status(r.sender.hypercall({ code: HvCall.POST_MESSAGE }, BigInt(at)));
    if (this.to === 'none') return void expect(st).toBe(HvStatus.INVALID_CONNECTION_ID);
    const waiting = m.waiting[this.to];
    if (!deliverable(m, this.to)) return void expect(st).toBe(HvStatus.INVALID_SYNIC_STATE);
    // DEPTH posted messages queued behind the slot at most: the slot's and the hypervisor's own
    // do not count (the model does not know whether the oldest is in the slot yet).
    const posted = waiting.filter((w) => !w.internal).length;
    if (posted <= DEPTH - 1) expect(st).toBe(HvStatus.SUCCESS);
    else if (posted > DEPTH) expect(st).toBe(HvStatus.INSUFFICIENT_BUFFERS);
    else expect([HvStatus.SUCCESS, HvStatus.INSUFFICIENT_BUFFERS]).toContain(st);
    if (st === HvStatus.SUCCESS) waiting.push(this.msg);
  }
  toString(): string {
    return `post ${this.msg.type}/${this.msg.payload.length} to ${this.to}`;
  }
}

/** A sender that does not wait: up to 24 posts in a row, so the queue's bound is met. */
class Burst extends Command {
  constructor(
    readonly to: Sint,
    readonly msgs: readonly Message[],
  ) {
    super();
  }
  run(m: Model, r: Real): void {
    for (const msg of this.msgs) new Post(this.to, msg).run(m, r);
  }
  toString(): string {
    return `${this.msgs.length} posts to ${this.to}`;
  }
}

class HypervisorMessage extends Command {
  constructor(
    readonly sint: Sint,
    readonly payload: Uint8Array,
  ) {
    super();
  }
  run(m: Model, r: Real): void {
    const msg = { type: 0x80000010, payload: this.payload, internal: true };
    r.p.vps[1]!.synic.enqueue(this.sint, msg);
    m.waiting[this.sint].push(msg);
  }
  toString(): string {
    return `hypervisor message to ${this.sint}`;
  }
}

/** VP 1 takes its interrupts and, if the slot holds a message, checks it is the next one, frees it and EOMs. */
class Take extends Command {
  constructor(readonly sint: Sint) {
    super();
  }
  run(m: Model, r: Real): void {
    r.receiver.drain();
    const base = m.simp + this.sint * HV_MESSAGE_SIZE;
    const mem = r.p.memory;
    const type = mem.read32(base);
    if (type === 0) return;
    const want = m.waiting[this.sint].shift();
    expect(want, `a message in SINT${this.sint} nobody sent`).toBeDefined();
    expect([type, mem.read8(base + 4)]).toEqual([want!.type >>> 0, want!.payload.length]);
    expect(mem.read(base + 16, want!.payload.length)).toEqual(want!.payload);
    mem.write32(base, 0);
    r.receiver.wrmsr(HvMsr.EOM, 0n);
  }
  toString(): string {
    return `take ${this.sint}`;
  }
}

class SetSint extends Command {
  constructor(
    readonly sint: Sint,
    readonly masked: boolean,
  ) {
    super();
  }
  run(m: Model, r: Real): void {
    r.receiver.wrmsr(sintMsr(this.sint), BigInt(VECTOR[this.sint]) | (this.masked ? 1n << 16n : 0n));
    m.masked[this.sint] = this.masked;
  }
  toString(): string {
    return `SINT${this.sint} ${this.masked ? 'masked' : 'unmasked'}`;
  }
}

class SetScontrol extends Command {
  constructor(readonly on: boolean) {
    super();
  }
  run(m: Model, r: Real): void {
    r.receiver.wrmsr(HvMsr.SCONTROL, this.on ? 1n : 0n);
    m.scontrol = this.on;
  }
  toString(): string {
    return `SCONTROL ${this.on ? 'on' : 'off'}`;
  }
}

/** The SIMP moves, enabled all along: its slots move with it (the overlay keeps its contents). */
class MoveSimp extends Command {
  constructor(readonly to: number) {
    super();
  }
  run(m: Model, r: Real): void {
    r.receiver.wrmsr(HvMsr.SIMP, BigInt(this.to) | 1n);
    m.simp = this.to;
  }
  toString(): string {
    return `SIMP to 0x${this.to.toString(16)}`;
  }
}

class Signal extends Command {
  constructor(readonly flag: number) {
    super();
  }
  run(m: Model, r: Real): void {
    const st = status(r.sender.hypercall({ code: HvCall.SIGNAL_EVENT, fast: true }, BigInt(CONN.event) | (BigInt(this.flag) << 32n)));
    // The port's flags are 0–3 (flag 5–8 of the SINT); then the receiver's state decides.
    const want = this.flag >= 4 ? HvStatus.INVALID_PARAMETER : deliverable(m, 2) ? HvStatus.SUCCESS : HvStatus.INVALID_SYNIC_STATE;
    expect(st).toBe(want);
    const bit = 5 + this.flag;
    if (st === HvStatus.SUCCESS) expect(r.p.memory.read8(PAGE.siefp(1) + 2 * 256 + (bit >> 3)) & (1 << (bit & 7))).not.toBe(0);
  }
  toString(): string {
    return `signal flag ${this.flag}`;
  }
}

const sint = fc.constantFrom(...SINTS);
const message = fc.record({ type: fc.integer({ min: 1, max: 0x7fffffff }), payload: fc.uint8Array({ maxLength: 240 }) });
const commands = fc.commands(
  [
    fc.tuple(fc.oneof({ weight: 8, arbitrary: sint }, fc.constant('none' as const)), message).map(([to, m]) => new Post(to, m)),
    fc.tuple(fc.oneof({ weight: 8, arbitrary: sint }, fc.constant('none' as const)), message).map(([to, m]) => new Post(to, m)),
    fc.tuple(sint, fc.array(message, { minLength: 8, maxLength: 24 })).map(([s, ms]) => new Burst(s, ms)),
    fc.tuple(sint, fc.uint8Array({ maxLength: 240 })).map(([s, p]) => new HypervisorMessage(s, p)),
    sint.map((s) => new Take(s)),
    sint.map((s) => new Take(s)),
    fc.tuple(sint, fc.boolean()).map(([s, m]) => new SetSint(s, m)),
    fc.boolean().map((on) => new SetScontrol(on)),
    fc.constantFrom(...SIMP_AT).map((at) => new MoveSimp(at)),
    fc.nat(5).map((f) => new Signal(f)),
  ],
  { maxCommands: 120, size: 'large' },
);

function setup(release: ReleaseId): { model: Model; real: Real } {
  const { p, guests } = partition({ release, vps: 2, memory: 1 << 20 });
  const [sender, receiver] = guests as [TestGuest, TestGuest];
  sender.enableHypercalls();
  receiver.wrmsr(HvMsr.SIMP, BigInt(PAGE.simp(1)) | 1n);
  receiver.wrmsr(HvMsr.SIEFP, BigInt(PAGE.siefp(1)) | 1n);
  for (const s of SINTS) receiver.wrmsr(sintMsr(s), BigInt(VECTOR[s]));
  receiver.wrmsr(HvMsr.SCONTROL, 1n);
  for (const s of SINTS) {
    p.createPort(CONN[s], { type: 'message', vp: 1, sint: s });
    p.connectPort(CONN[s], CONN[s]);
  }
  p.createPort(CONN.event, { type: 'event', vp: 1, sint: 2, baseFlag: 5, flagCount: 4 });
  p.connectPort(CONN.event, CONN.event);
  return { model: { scontrol: true, masked: { 2: false, 3: false }, simp: PAGE.simp(1), waiting: { 2: [], 3: [] } }, real: { p, sender, receiver } };
}

itFuzzEachRelease(
  'any use of the SynIC: PostMessage and SignalEvent statuses as the model says, every accepted message delivered once, in order',
  'synic.model',
  (release) =>
    fc.property(commands, (cmds) => {
      const s = setup(release);
      fc.modelRun(() => s, cmds);
      // Then the guest enables everything and takes what is left: nothing accepted was lost.
      new SetScontrol(true).run(s.model, s.real);
      for (const n of SINTS) new SetSint(n, false).run(s.model, s.real);
      for (let i = 0; i < 2 * (DEPTH + 200) && (s.model.waiting[2].length > 0 || s.model.waiting[3].length > 0); i++) for (const n of SINTS) new Take(n).run(s.model, s.real);
      expect([s.model.waiting[2].length, s.model.waiting[3].length]).toEqual([0, 0]);
    }),
  30,
);
