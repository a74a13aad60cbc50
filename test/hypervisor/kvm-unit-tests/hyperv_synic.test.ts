// tlfs.md 8.1: the behaviours kvm-unit-tests x86/hyperv_synic.c asserts, one test per number.
import { describe, expect, it } from 'vitest';
import { HvMsr, sintMsr } from '../../../src/tlfs/msr.js';
import { PAGE, partition, type TestGuest } from '../harness.js';

const AUTO_EOI_SINTS = new Set([3, 8, 10, 14]);
const vectorOf = (sint: number) => 0xb0 + sint;

function setup(vps = 2) {
  const { p, guests } = partition({ vps });
  for (const g of guests) {
    g.wrmsr(HvMsr.SIMP, BigInt(PAGE.simp(g.index)) | 1n);
    g.wrmsr(HvMsr.SIEFP, BigInt(PAGE.siefp(g.index)) | 1n);
    g.wrmsr(HvMsr.SCONTROL, 1n);
    for (let s = 0; s < 16; s++) g.wrmsr(sintMsr(s), BigInt(vectorOf(s)) | (AUTO_EOI_SINTS.has(s) ? 1n << 17n : 0n));
    // Auto-EOI handlers do not EOI; the others do.
    g.handler = (v) => !AUTO_EOI_SINTS.has(v - 0xb0);
  }
  return { p, guests };
}

const total = (g: TestGuest) => [...g.taken.values()].reduce((a, b) => a + b, 0);

describe('hyperv_synic (tlfs.md 8.1)', () => {
  it('8.1.1 RDMSR of SVERSION, SIMP, SIEFP, SCONTROL and SINT0..15 does not fault on any vCPU', () => {
    const { guests } = partition({ vps: 2 });
    for (const g of guests) {
      expect(g.rdmsr(HvMsr.SVERSION)).toBe(1n);
      for (const m of [HvMsr.SIMP, HvMsr.SIEFP, HvMsr.SCONTROL]) g.rdmsr(m);
      for (let s = 0; s < 16; s++) expect(g.rdmsr(sintMsr(s))).toBe(0x10000n);
    }
  });

  it('8.1.2 RDMSR of EOM returns 0', () => {
    const { guests } = partition();
    expect(guests[0]!.rdmsr(HvMsr.EOM)).toBe(0n);
  });

  it('8.1.3 WRMSR SIMP = page | 1, SIEFP = page | 1, SCONTROL = 1 succeed', () => {
    const { guests } = setup();
    expect(guests[1]!.rdmsr(HvMsr.SIMP)).toBe(BigInt(PAGE.simp(1)) | 1n);
    expect(guests[1]!.rdmsr(HvMsr.SIEFP)).toBe(BigInt(PAGE.siefp(1)) | 1n);
    expect(guests[1]!.rdmsr(HvMsr.SCONTROL)).toBe(1n);
  });

  it('8.1.4 all 16 SINTs take distinct vectors 0xB0..0xBF, auto-EOI on 3, 8, 10 and 14', () => {
    const { guests } = setup();
    for (let s = 0; s < 16; s++) {
      const v = guests[0]!.rdmsr(sintMsr(s));
      expect(Number(v & 0xffn)).toBe(vectorOf(s));
      expect((v >> 17n) & 1n).toBe(AUTO_EOI_SINTS.has(s) ? 1n : 0n);
    }
  });

  it('8.1.5 each vCPU takes exactly 16 interrupts when another asserts all its SINTs (auto-EOI retires its vector)', () => {
    for (const vps of [1, 2, 4]) {
      const { p, guests } = setup(vps);
      // vCPU i asserts all 16 SINTs of vCPU n-1-i through the test device, all before anyone
      // runs: with one priority class (0xB), a missed auto-EOI would block the rest.
      for (let i = 0; i < vps; i++) for (let s = 0; s < 16; s++) p.vps[vps - 1 - i]!.synic.assertSint(s);
      for (const g of guests) {
        g.drain();
        expect(total(g)).toBe(16);
        for (let s = 0; s < 16; s++) expect(g.count(vectorOf(s))).toBe(1);
        expect(g.vp.apic.deliverable()).toBeUndefined();
      }
    }
  });

  it('8.1.6 the tear-down writes do not fault, and the counts stay at 16', () => {
    const { p, guests } = setup(2);
    for (const vp of p.vps) for (let s = 0; s < 16; s++) vp.synic.assertSint(s);
    for (const g of guests) g.drain();
    for (const g of guests) {
      for (let s = 0; s < 16; s++) g.wrmsr(sintMsr(s), 0x100ffn);
      g.wrmsr(HvMsr.SCONTROL, 0n);
      g.wrmsr(HvMsr.SIMP, 0n);
      g.wrmsr(HvMsr.SIEFP, 0n);
      // A masked SINT asserts nothing.
      p.vps[g.index]!.synic.assertSint(0);
      g.drain();
      expect(total(g)).toBe(16);
    }
  });
});
