// The doorbell lane (dispatch.ts) must answer exactly as the general dispatcher does: the same
// result value, the same events, the same event flags and interrupts, for any control value and
// registers. Two identical partitions get the same call, one through a CPU port (which tries the
// lane first) and one through HypercallDispatcher.dispatch alone.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HypercallRequest } from '../../src/hypervisor/hypercall/dispatch.js';
import { hypercalls, HYPERCALLS } from '../../src/hypervisor/hypercall/index.js';
import type { X64Port } from '../../src/hypervisor/index.js';
import type { TraceEvent } from '../../src/hypervisor/trace.js';
import { encodeControl } from '../../src/tlfs/control.js';
import { HvCall } from '../../src/tlfs/hypercall-codes.js';
import { HvMsr, sintMsr } from '../../src/tlfs/msr.js';
import { HvStatus } from '../../src/tlfs/status.js';
import { fuzz } from '../fuzz/fuzz.js';
import { PAGE, partition } from './harness.js';

/** The general path's request: fast registers from an array, as a port would keep them. */
class ArrayRequest extends HypercallRequest {
  constructor(readonly regs: bigint[]) {
    super();
  }
  fastRegister(i: number): bigint {
    return this.regs[i] ?? 0n;
  }
  setFastRegister(i: number, v: bigint): void {
    this.regs[i] = v;
  }
}

function setup(arch: 'x64' | 'x86' | 'arm64', traced = true) {
  const r = partition({ arch, vps: 2, release: 'ws2025' });
  if (arch !== 'arm64') {
    for (const g of r.guests) {
      g.enableHypercalls();
      g.wrmsr(HvMsr.SIEFP, BigInt(PAGE.siefp(g.index)) | 1n);
      g.wrmsr(HvMsr.SCONTROL, 1n);
      g.wrmsr(sintMsr(2), 0x40n);
    }
  }
  const host: string[] = [];
  r.p.createPort(2, { type: 'host-event', flagCount: 3, handler: (flag, vp) => host.push(`${flag}@${vp}`) });
  r.p.connectPort(2, 2);
  r.p.createPort(3, { type: 'event', vp: 1, sint: 2, baseFlag: 5, flagCount: 4 });
  r.p.connectPort(3, 3);
  r.p.createPort(1, { type: 'host-message', handler: () => 0 });
  r.p.connectPort(1, 1);
  const events: TraceEvent[] = [];
  if (traced) r.p.events.on((e) => events.push(e));
  return { ...r, host, events };
}

/** What the call left behind, besides its result: flags in guest memory, interrupts, host calls, events. */
function effects(r: ReturnType<typeof setup>) {
  return {
    siefp: [...r.p.memory.view(PAGE.siefp(1), 4096)],
    pending: r.p.vps.map((vp) => vp.apic.deliverable()),
    host: [...r.host],
    // The port adds its trap event; the lone dispatcher has no registers to report.
    events: r.events.filter((e) => e.kind !== 'trap'),
  };
}

const U64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
/** Clean fast controls of every call, and the same with one stray field or bit. */
const control = fc.oneof(
  fc.record({ code: fc.oneof(fc.constantFrom(...HYPERCALLS.map((d) => d.code)), fc.nat(0xffff)), bit: fc.option(fc.nat(63), { nil: undefined }) }).map(({ code, bit }) => BigInt(code) | (1n << 16n) | (bit === undefined ? 0n : 1n << BigInt(bit))),
  U64,
);
/** Signal inputs naming the prepared ports, with any flag and reserved bits, or anything. */
const input = fc.oneof(
  fc.record({ conn: fc.constantFrom(1n, 2n, 3n, 4n), flag: fc.nat(0xffff), reserved: fc.constantFrom(0n, 1n << 24n, 1n << 48n) }).map(({ conn, flag, reserved }) => conn | (BigInt(flag) << 32n) | reserved),
  U64,
);

describe('hypercall doorbell lane', () => {
  for (const arch of ['x64', 'x86', 'arm64'] as const) {
    it(`answers as the general dispatcher does (${arch})`, () => {
      fuzz(
        `hypercall-doorbell.${arch}`,
        fc.property(control, input, U64, (ctl, r0, r1) => {
          const a = setup(arch);
          const b = setup(arch);
          const viaPort = a.guests[0]!.hypercallRaw(ctl, r0, r1);
          const req = new ArrayRequest([r0, r1]);
          req.control = ctl;
          req.inputGpa = r0;
          req.outputGpa = r1;
          // The registers each ABI offers (cpu.ts): x64 RDX, R8 and XMM0-5 on ws2025, x86 two pairs, arm64 X2-X17.
          req.fastCount = arch === 'x64' ? 14 : arch === 'x86' ? 2 : 16;
          req.fastOutput = arch !== 'x86';
          hypercalls.dispatch(b.p.vps[0]!, req);
          expect(viaPort).toBe(req.result);
          expect(effects(a)).toEqual(effects(b));
        }),
        300,
      );
    });
  }

  it('rings the host and sets the guest flag through the lane, and refuses what the general path refuses', () => {
    const a = setup('x64');
    const g = a.guests[0]!;
    expect(g.hypercall({ code: HvCall.SIGNAL_EVENT, fast: true }, 2n | (2n << 32n))).toBe(0n);
    expect(a.host).toEqual(['2@0']);
    expect(g.hypercall({ code: HvCall.SIGNAL_EVENT, fast: true }, 3n | (1n << 32n))).toBe(0n);
    // Flag 5 + 1 of SINT 2's event flags on VP 1 (tlfs.md §5.7).
    expect(a.p.memory.read8(PAGE.siefp(1) + 2 * 256 + 0)).toBe(1 << 6);
    expect(a.p.vps[1]!.apic.deliverable()).toBe(0x40);
    // Flag beyond the port's count, reserved input bits, an unknown connection.
    expect(g.hypercall({ code: HvCall.SIGNAL_EVENT, fast: true }, 2n | (3n << 32n)) & 0xffffn).toBe(BigInt(HvStatus.INVALID_PARAMETER));
    expect(g.hypercall({ code: HvCall.SIGNAL_EVENT, fast: true }, 2n | (1n << 24n)) & 0xffffn).toBe(BigInt(HvStatus.INVALID_HYPERCALL_INPUT));
    expect(g.hypercall({ code: HvCall.SIGNAL_EVENT, fast: true }, 9n) & 0xffffn).toBe(BigInt(HvStatus.INVALID_CONNECTION_ID));
  });
});

/** Signal inputs on the prepared ports with flags around their counts, where the checks decide. */
const signal = fc
  .record({ conn: fc.constantFrom(1n, 2n, 3n, 4n, 5n), flag: fc.nat(5), reserved: fc.constantFrom(0n, 0n, 0n, 1n << 24n, 1n << 48n) })
  .map(({ conn, flag, reserved }) => conn | (BigInt(flag) << 32n) | reserved);

describe('hypercall doorbell without a listener', () => {
  // signalEvent() handles a host port's signal itself only while no one traces, and hands
  // everything else to the general path: the answers and effects must not depend on which.
  for (const arch of ['x64', 'x86', 'arm64'] as const) {
    it(`answers and rings as it does while traced (${arch})`, () => {
      fuzz(
        `hypercall-doorbell-untraced.${arch}`,
        fc.property(fc.array(fc.oneof(signal, input), { minLength: 1, maxLength: 8 }), (inputs) => {
          const traced = setup(arch);
          const quiet = setup(arch, false);
          for (const r0 of inputs) {
            const ctl = encodeControl({ code: HvCall.SIGNAL_EVENT, fast: true });
            expect(quiet.guests[0]!.hypercallRaw(ctl, r0, 0n)).toBe(traced.guests[0]!.hypercallRaw(ctl, r0, 0n));
          }
          expect({ ...effects(quiet), events: [] }).toEqual({ ...effects(traced), events: [] });
        }),
        200,
      );
    });
  }
});

describe('CALL to a guest address', () => {
  // callAt (cpu.ts) compares the instruction bytes before it checks the address: what it finds
  // must be what the bounds-first order finds, for any address, RAM that can grow, and
  // instruction bytes straddling the end of RAM or lying above it.
  const INSTRUCTIONS = [
    [0x0f, 0x01, 0xc1], // VMCALL
    [0x0f, 0x01, 0xd9], // VMMCALL
    [0x0f, 0x01, 0xc2],
    [0x0f, 0x00, 0xc1],
    [0x0e, 0x01, 0xd9],
  ] as const;
  const SIZE = 1 << 20;
  const MAX = 2 << 20;

  it('is a hypercall where VMCALL or VMMCALL lies in present RAM, #UD elsewhere in RAM, #GP outside it', () => {
    fuzz(
      'hypercall-call-at',
      fc.property(
        fc.constantFrom(...INSTRUCTIONS),
        fc.oneof(
          fc.integer({ min: -4, max: 8 }).map((d) => SIZE - 3 + d), // the end of present RAM
          fc.integer({ min: -4, max: 8 }).map((d) => MAX - 3 + d), // the end of the backing
          fc.integer({ min: 0, max: MAX + 16 }),
          fc.constantFrom(-0, -1, 0.5, SIZE - 2.5, Number.NaN, Infinity, 2 ** 53, 2 ** 32),
        ),
        (bytes, gpa) => {
          const { p, guests } = partition({ arch: 'x64', vps: 1, memory: SIZE, memoryMaximum: MAX, release: 'ws2025' });
          guests[0]!.enableHypercalls();
          const cpu = guests[0]!.cpu as X64Port;
          // Straight into the backing: above the present size too, where the guest cannot write.
          if (Number.isInteger(gpa)) for (let i = 0; i < 3; i++) if (gpa + i >= 0 && gpa + i < MAX) p.memory.bytes[gpa + i] = bytes[i]!;
          const inRam = Number.isSafeInteger(gpa) && gpa >= 0 && gpa + 3 <= SIZE;
          const isCall = bytes[0] === 0x0f && bytes[1] === 0x01 && (bytes[2] === 0xc1 || bytes[2] === 0xd9);
          const regs = { rcx: encodeControl({ code: HvCall.SIGNAL_EVENT, fast: true }), rdx: 2n, r8: 0n, rax: 1n, xmm: [] as bigint[] };
          const fault = cpu.call(gpa, regs);
          expect(fault).toBe(!inRam ? '#GP' : isCall ? undefined : '#UD');
          // Only a hypercall answers in RAX.
          expect(regs.rax === 1n).toBe(fault !== undefined);
        },
      ),
      300,
    );
  });

  it('sees RAM that hot add brought', () => {
    const { p, guests } = partition({ arch: 'x64', vps: 1, memory: SIZE, memoryMaximum: MAX, release: 'ws2025' });
    guests[0]!.enableHypercalls();
    const cpu = guests[0]!.cpu as X64Port;
    p.memory.bytes.set([0x0f, 0x01, 0xc1], SIZE);
    const regs = { rcx: encodeControl({ code: HvCall.SIGNAL_EVENT, fast: true }), rdx: 2n, r8: 0n, rax: 1n, xmm: [] as bigint[] };
    expect(cpu.call(SIZE, regs)).toBe('#GP');
    expect(p.memory.grow(MAX)).toBe(true);
    expect(cpu.call(SIZE, regs)).toBeUndefined();
  });
});
