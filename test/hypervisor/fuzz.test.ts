// Whatever a guest can put in registers and memory gets a TLFS answer (a status, or a fault),
// never an exception escaping the hypervisor and never broken state (tlfs.md §4.9; issue
// "Bad input"). Runs on every hypercall ABI.
import fc from 'fast-check';
import { describe, expect } from 'vitest';
import type { Arm64Port, X64Port, X86_32Port } from '../../src/hypervisor/cpu.js';
import { HYPERCALLS } from '../../src/hypervisor/hypercall/index.js';
import { HvCall } from '../../src/tlfs/hypercall-codes.js';
import { HvMsr, sintMsr } from '../../src/tlfs/msr.js';
import { HvStatus } from '../../src/tlfs/status.js';
import type { ReleaseId } from '../../src/hypervisor/release.js';
import { itFuzzEachRelease } from '../fuzz/fuzz.js';
import { PAGE, partition } from './harness.js';

const U64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const STATUSES = new Set<number>(Object.values(HvStatus));
const CODES = HYPERCALLS.map((d) => d.code);

/** Control values near the valid ones: real codes, small rep/varhead fields, sometimes reserved bits. */
const control = fc.oneof(
  U64,
  fc
    .record({
      code: fc.oneof(fc.constantFrom(...CODES), fc.integer({ min: 0, max: 0xffff })),
      fast: fc.boolean(),
      varHead: fc.oneof(fc.nat(3), fc.nat(0x3ff)),
      repCount: fc.oneof(fc.nat(6), fc.nat(0xfff)),
      repStart: fc.oneof(fc.constant(0), fc.nat(6), fc.nat(0xfff)),
      reserved: fc.oneof({ weight: 5, arbitrary: fc.constant(0n) }, { weight: 1, arbitrary: fc.constantFrom(1n << 27n, 1n << 31n, 1n << 45n, 1n << 62n) }),
    })
    .map((c) => BigInt(c.code) | (c.fast ? 1n << 16n : 0n) | (BigInt(c.varHead) << 17n) | (BigInt(c.repCount) << 32n) | (BigInt(c.repStart) << 48n) | c.reserved),
);

/** GPAs: the prepared input page, aligned or not, anywhere in RAM, or any 64-bit value. */
const gpa = fc.oneof(
  fc.constantFrom(BigInt(PAGE.input(0)), BigInt(PAGE.output(0)), BigInt(PAGE.hypercall), BigInt(PAGE.simp(0))),
  fc.bigInt({ min: 0n, max: 4n * 1024n * 1024n }),
  U64,
);

function setup(arch: 'x64' | 'x86' | 'arm64', release: ReleaseId) {
  const r = partition({ arch, vps: 2, release, repQuantum: 3, isolation: { type: 'snp', paravisor: true, sharedGpaBoundaryBits: 0 } });
  for (const g of r.guests) {
    if (arch !== 'arm64') {
      g.enableHypercalls();
      g.wrmsr(HvMsr.SIMP, BigInt(PAGE.simp(g.index)) | 1n);
      g.wrmsr(HvMsr.SIEFP, BigInt(PAGE.siefp(g.index)) | 1n);
      g.wrmsr(HvMsr.SCONTROL, 1n);
      g.wrmsr(sintMsr(2), 0x40n);
    }
  }
  const host: number[] = [];
  r.p.createPort(1, { type: 'host-message', handler: (m) => (host.push(m.type), 0) });
  r.p.connectPort(1, 1);
  r.p.createPort(2, { type: 'message', vp: 1, sint: 2 });
  r.p.connectPort(2, 2);
  r.p.createPort(3, { type: 'event', vp: 1, sint: 2, baseFlag: 5, flagCount: 4 });
  r.p.connectPort(3, 3);
  r.p.deviceInterrupts.set(1n, undefined);
  return { ...r, host };
}

function checkResult(result: bigint, ctl: bigint): void {
  const st = Number(result & 0xffffn);
  expect(STATUSES.has(st), `status 0x${st.toString(16)}`).toBe(true);
  expect(result >> 44n, 'reserved result bits').toBe(0n);
  expect((result >> 16n) & 0xffffn, 'reserved result bits').toBe(0n);
  expect(Number((result >> 32n) & 0xfffn)).toBeLessThanOrEqual(Math.max(Number((ctl >> 32n) & 0xfffn), 0));
}

/** After any storm of calls the partition still works: a valid PostMessage reaches the host. */
function stillWorks(r: ReturnType<typeof setup>) {
  const g = r.guests[0]!;
  const at = PAGE.input(0);
  r.p.memory.fill(at, 256);
  r.p.memory.write32(at, 1);
  r.p.memory.write32(at + 8, 0x77);
  const before = r.host.length;
  expect(Number(g.hypercall({ code: HvCall.POST_MESSAGE }, BigInt(at)) & 0xffffn)).toBe(0);
  expect(r.host.slice(before)).toEqual([0x77]);
}

describe('any hypercall input gets a status, on every ABI', () => {
  // Each case is a fresh partition, and ends by checking that it still works (stillWorks).
  itFuzzEachRelease(
    'x64: any RCX, RDX, R8, XMM0-5 and input bytes',
    'hypercall-abi.x64',
    (release) =>
      fc.property(control, gpa, gpa, fc.array(U64, { minLength: 12, maxLength: 12 }), fc.uint8Array({ minLength: 64, maxLength: 64 }), (rcx, rdx, r8, xmm, bytes) => {
        const r = setup('x64', release);
        r.p.memory.write(PAGE.input(0), bytes);
        const regs = { rcx, rdx, r8, rax: 0n, xmm: [...xmm] };
        expect((r.guests[0]!.cpu as X64Port).vmcall(regs)).toBeUndefined();
        checkResult(regs.rax, rcx);
        stillWorks(r);
      }),
    200,
  );

  itFuzzEachRelease(
    'x86-32: any EDX:EAX, EBX:ECX, EDI:ESI',
    'hypercall-abi.x86',
    (release) =>
      fc.property(control, gpa, gpa, fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.nat(1), (ctl, input, output, bytes, vp) => {
        const r = setup('x86', release);
        r.p.memory.write(PAGE.input(0), bytes);
        const lo = (v: bigint) => Number(v & 0xffffffffn);
        const hi = (v: bigint) => Number((v >> 32n) & 0xffffffffn);
        const regs = { edx: hi(ctl), eax: lo(ctl), ebx: hi(input), ecx: lo(input), edi: hi(output), esi: lo(output) };
        expect((r.guests[vp]!.cpu as X86_32Port).vmcall(regs)).toBeUndefined();
        checkResult((BigInt(regs.edx >>> 0) << 32n) | BigInt(regs.eax >>> 0), ctl);
        stillWorks(r);
      }),
    150,
  );

  itFuzzEachRelease(
    'arm64: any X0..X17 through HVC #0',
    'hypercall-abi.arm64',
    (release) =>
      fc.property(fc.oneof(fc.constant(0x46000001n), U64), control, gpa, gpa, fc.array(U64, { minLength: 14, maxLength: 14 }), (f, ctl, a, b, rest) => {
        const r = setup('arm64', release);
        const x = [f, ctl, a, b, ...rest];
        expect((r.guests[0]!.cpu as Arm64Port).hvc(0, { x })).toBeUndefined();
        expect(x).toHaveLength(18);
        if (Number(f & 0xffffffffn) === 0x46000001) checkResult(x[0]!, ctl);
      }),
    150,
  );

  itFuzzEachRelease('any sequence of host and guest port operations leaves the ports consistent', 'hypercall-abi.ports', (release) =>
    fc.property(fc.array(fc.tuple(fc.nat(4), fc.integer({ min: -1, max: 0x1000000 }), fc.nat(8)), { maxLength: 40 }), (ops) => {
      const r = setup('x64', release);
      const g = r.guests[0]!;
        for (const [op, id, other] of ops) {
          const st = [
            () => r.p.createPort(id, { type: 'event', vp: other % 3, sint: other, baseFlag: other * 100, flagCount: other }),
            () => r.p.deletePort(id),
            () => r.p.connectPort(id, other),
            () => r.p.disconnectPort(id),
            () => Number(g.hypercall({ code: HvCall.SIGNAL_EVENT, fast: true }, BigInt(Math.max(id, 0)) | (BigInt(other) << 32n)) & 0xffffn),
          ][op]!();
          expect(STATUSES.has(st)).toBe(true);
        }
      }), 100);
});
