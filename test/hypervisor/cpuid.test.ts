// CPUID as a guest of each release sees it (tlfs.md §1), against the values real hosts report.
import { describe, expect, it } from 'vitest';
import { RELEASE_IDS } from '../../src/hypervisor/release.js';
import { partition } from './harness.js';
import type { X64Port } from '../../src/hypervisor/cpu.js';

const ascii = (...regs: number[]) => Buffer.from(new Uint32Array(regs).buffer).toString('latin1');

/**
 * What real hosts print in "Hyper-V: privilege flags low ..., high ..., hints ..., misc ..." and
 * "Host Build" (captured dmesg, see src/hypervisor/release.ts). hvkit offers these bits where it
 * implements them: the rest must be withheld, never invented.
 */
const CAPTURES: Record<string, { build: number; version: [number, number]; low: number; hints: number; misc?: number; high?: number }> = {
  ws2012: { build: 9200, version: [6, 2], low: 0xe7f, hints: 0x2c },
  ws2016: { build: 14393, version: [10, 0], low: 0x2e7f, hints: 0x4c2c },
  ws2019: { build: 17763, version: [10, 0], low: 0x2e7f, hints: 0x60e24, misc: 0xbed7b2 },
  ws2022: { build: 20348, version: [10, 0], low: 0xae7f, hints: 0x140c2c, misc: 0xc0bed7b2, high: 0x388030 },
  ws2025: { build: 26100, version: [10, 0], low: 0xae7f, hints: 0x902c2c, misc: 0xe0bed7b6, high: 0x3b8030 },
};

describe('CPUID', () => {
  for (const release of RELEASE_IDS) {
    it(`${release}: vendor, interface, version, features, limits`, () => {
      const { guests } = partition({ release });
      const cpu = guests[0]!.cpu as X64Port;
      expect((cpu.cpuid(1).ecx >>> 31) & 1).toBe(1);
      const v = cpu.cpuid(0x40000000);
      expect(ascii(v.ebx, v.ecx, v.edx)).toBe('Microsoft Hv');
      expect(v.eax).toBeGreaterThanOrEqual(0x40000005);
      expect(ascii(cpu.cpuid(0x40000001).eax)).toBe('Hv#1');
      const f = cpu.cpuid(0x40000003);
      const h = cpu.cpuid(0x40000004);
      const cap = CAPTURES[release];
      if (cap) {
        const ver = cpu.cpuid(0x40000002);
        expect(ver.eax).toBe(cap.build);
        expect([ver.ebx >>> 16, ver.ebx & 0xffff]).toEqual(cap.version);
        // Offered bits are a subset of what the real host offers.
        expect(f.eax & ~cap.low).toBe(0);
        expect(h.eax & ~cap.hints).toBe(0);
        if (cap.misc !== undefined) expect(f.edx & ~cap.misc).toBe(0);
        if (cap.high !== undefined) expect(f.ebx & ~cap.high).toBe(0);
        // The whole low privilege word of every capture is modelled.
        expect(f.eax).toBe(cap.low);
      }
      // Everything Linux needs to take the enlightened paths (tlfs.md 1.12).
      expect(f.eax & 0x26e).toBe(0x26e);
      expect(f.ebx & 0x30).toBe(0x30);
      const lim = cpu.cpuid(0x40000005);
      expect(lim.eax).toBeGreaterThanOrEqual(64);
      expect(cpu.cpuid(0x40000082)).toEqual({ eax: 0, ebx: 0, ecx: 0, edx: 0 });
      expect(cpu.cpuid(v.eax + 1)).toEqual({ eax: 0, ebx: 0, ecx: 0, edx: 0 });
    });
  }

  it('the isolation leaf appears with the isolation privilege', () => {
    const { guests } = partition({ isolation: { type: 'snp', paravisor: true, sharedGpaBoundaryBits: 46 } });
    const cpu = guests[0]!.cpu as X64Port;
    expect((cpu.cpuid(0x40000003).ebx >>> 22) & 1).toBe(1);
    expect(cpu.cpuid(0x40000000).eax).toBeGreaterThanOrEqual(0x4000000c);
    const iso = cpu.cpuid(0x4000000c);
    expect(iso.eax & 1).toBe(1);
    expect(iso.ebx & 0xf).toBe(2);
    expect((iso.ebx >>> 5) & 1).toBe(1);
    expect((iso.ebx >>> 6) & 0x3f).toBe(46);
    const plain = partition().guests[0]!.cpu as X64Port;
    expect((plain.cpuid(0x40000003).ebx >>> 22) & 1).toBe(0);
  });

  it('leaf 1 names the VP APIC id, and the invariant-TSC bit follows TSC_INVARIANT_CONTROL', () => {
    const { guests } = partition({ vps: 2, apicIds: [4, 6] });
    const cpu = guests[1]!.cpu as X64Port;
    expect(cpu.cpuid(1).ebx >>> 24).toBe(6);
    expect((cpu.cpuid(0x80000007).edx >>> 8) & 1).toBe(0);
    guests[1]!.wrmsr(0x40000118, 1n);
    expect((cpu.cpuid(0x80000007).edx >>> 8) & 1).toBe(1);
  });
});
