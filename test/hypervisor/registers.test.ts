// Synthetic MSRs (tlfs.md §2.1) and their arm64 twins, the VP registers (§3.1): reset values,
// access rules, reserved-bit faults, privilege gating, and one state behind both paths.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RELEASE_IDS } from '../../src/hypervisor/release.js';
import { HvCall } from '../../src/tlfs/hypercall-codes.js';
import { PrivLow, MiscX64 } from '../../src/tlfs/cpuid.js';
import { HvMsr, sintMsr, stimerConfigMsr, stimerCountMsr } from '../../src/tlfs/msr.js';
import { HvRegister, HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF, sintRegister } from '../../src/tlfs/registers.js';
import { HvStatus } from '../../src/tlfs/status.js';
import { PAGE, partition, status, repsCompleted, type TestGuest } from './harness.js';
import type { Arm64Port, X64Port } from '../../src/hypervisor/cpu.js';
import { fuzz, itFuzzEachRelease } from '../fuzz/fuzz.js';

const fault = (g: TestGuest, msr: number, v?: bigint) => {
  const cpu = g.cpu as X64Port;
  return v === undefined ? cpu.rdmsr(msr).fault : cpu.wrmsr(msr, v);
};

describe('synthetic MSRs: reset values and access rules', () => {
  it('reset values are those of tlfs.md 2.1 and 5.1', () => {
    const { guests } = partition({ vps: 3 });
    const g = guests[2]!;
    expect(g.rdmsr(HvMsr.VP_INDEX)).toBe(2n);
    expect(g.rdmsr(HvMsr.GUEST_OS_ID)).toBe(0n);
    expect(g.rdmsr(HvMsr.HYPERCALL)).toBe(0n);
    expect(g.rdmsr(HvMsr.SCONTROL)).toBe(0n);
    expect(g.rdmsr(HvMsr.SVERSION)).toBe(1n);
    expect(g.rdmsr(HvMsr.SIMP)).toBe(0n);
    expect(g.rdmsr(HvMsr.SIEFP)).toBe(0n);
    for (let s = 0; s < 16; s++) expect(g.rdmsr(sintMsr(s))).toBe(0x10000n);
    for (let t = 0; t < 4; t++) expect([g.rdmsr(stimerConfigMsr(t)), g.rdmsr(stimerCountMsr(t))]).toEqual([0n, 0n]);
    expect(g.rdmsr(HvMsr.VP_ASSIST_PAGE)).toBe(0n);
    expect(g.rdmsr(HvMsr.REFERENCE_TSC)).toBe(0n);
    expect(g.rdmsr(HvMsr.TIME_REF_COUNT)).toBe(0n);
    expect(g.rdmsr(HvMsr.CRASH_CTL)).toBe((1n << 63n) | (1n << 62n));
    expect(g.rdmsr(HvMsr.TSC_FREQUENCY)).toBe(2_500_000_000n);
    expect(g.rdmsr(HvMsr.APIC_FREQUENCY)).toBe(200_000_000n);
  });

  it('read-only registers fault on write, write-only ones on read; EOM reads 0', () => {
    const { guests } = partition();
    const g = guests[0]!;
    for (const m of [HvMsr.VP_INDEX, HvMsr.SVERSION, HvMsr.TIME_REF_COUNT, HvMsr.VP_RUNTIME, HvMsr.TSC_FREQUENCY, HvMsr.APIC_FREQUENCY, HvMsr.GUEST_IDLE]) {
      expect(fault(g, m, 0n), `write 0x${m.toString(16)}`).toBe('#GP');
    }
    expect(fault(g, HvMsr.EOI)).toBe('#GP');
    expect(g.rdmsr(HvMsr.EOM)).toBe(0n);
  });

  it('reserved bits fault and leave the register as it was', () => {
    const { guests } = partition({ release: 'ws2012' });
    const g = guests[0]!;
    const cases: [number, bigint][] = [
      [HvMsr.SCONTROL, 2n],
      [sintMsr(2), 0x1f3n | (1n << 8n)],
      [sintMsr(2), 0xf3n | (1n << 21n)],
      [sintMsr(2), 0xf3n | (1n << 19n)], // as_intercept: root partitions only
      [sintMsr(2), 0x0fn], // unmasked with a vector below 16
      [stimerConfigMsr(0), 1n << 13n],
      [stimerConfigMsr(0), 1n << 20n],
      [stimerConfigMsr(0), 1n | (1n << 12n)], // direct mode: WS2012 does not offer it
      [HvMsr.VP_ASSIST_PAGE, 0x1002n],
      [HvMsr.TPR, 0x100n],
      [HvMsr.HYPERCALL, 2n], // the lock bit: WS2012 does not offer it
    ];
    for (const [m, v] of cases) {
      const before = g.rdmsr(m);
      expect(fault(g, m, v), `0x${m.toString(16)} = 0x${v.toString(16)}`).toBe('#GP');
      expect(g.rdmsr(m)).toBe(before);
    }
    // CRASH_CTL takes only the bits it offers (WS2012 R2 on).
    const r2 = partition({ release: 'ws2012r2' }).guests[0]!;
    expect(fault(r2, HvMsr.CRASH_CTL, 1n)).toBe('#GP');
    // A vector below 16 is fine while masked (nested Hyper-V writes the default 0x10000).
    g.wrmsr(sintMsr(2), 0x10005n);
    // SIMP/SIEFP bits 11:1 are "preserved", not reserved: Linux writes them back.
    g.wrmsr(HvMsr.SIMP, BigInt(PAGE.simp(0)) | 0x1n | 0xffen);
    expect(g.rdmsr(HvMsr.SIMP)).toBe(BigInt(PAGE.simp(0)) | 0xfffn);
  });

  it('a page MSR pointing outside RAM faults', () => {
    const { p, guests } = partition();
    const beyond = BigInt(p.memory.size) | 1n;
    for (const m of [HvMsr.SIMP, HvMsr.SIEFP, HvMsr.VP_ASSIST_PAGE, HvMsr.REFERENCE_TSC]) expect(fault(guests[0]!, m, beyond)).toBe('#GP');
  });

  it('SIMP and SIEFP read as zero when enabled, and give the guest its page back when disabled', () => {
    const { p, guests } = partition();
    const g = guests[0]!;
    p.memory.fill(PAGE.simp(0), 4096, 0xee);
    g.wrmsr(HvMsr.SIMP, BigInt(PAGE.simp(0)) | 1n);
    expect(p.memory.read(PAGE.simp(0), 4096).every((b) => b === 0)).toBe(true);
    g.wrmsr(HvMsr.SIMP, BigInt(PAGE.simp(0)));
    expect(p.memory.read(PAGE.simp(0), 4096).every((b) => b === 0xee)).toBe(true);
  });

  it('the hypercall page needs a guest OS id, holds VMCALL (or VMMCALL) + RET, and goes with a zero OS id', () => {
    for (const vendor of ['intel', 'amd'] as const) {
      const { p, guests } = partition({ cpuVendor: vendor });
      const g = guests[0]!;
      g.wrmsr(HvMsr.HYPERCALL, BigInt(PAGE.hypercall) | 1n);
      expect(g.rdmsr(HvMsr.HYPERCALL)).toBe(0n); // ignored while the guest OS id is 0 (KVM)
      g.enableHypercalls();
      expect(g.rdmsr(HvMsr.HYPERCALL)).toBe(BigInt(PAGE.hypercall) | 1n);
      expect([...p.memory.read(PAGE.hypercall, 5)]).toEqual(vendor === 'intel' ? [0x0f, 0x01, 0xc1, 0xc3, 0xcc] : [0x0f, 0x01, 0xd9, 0xc3, 0xcc]);
      g.wrmsr(HvMsr.GUEST_OS_ID, 0n);
      expect(g.rdmsr(HvMsr.HYPERCALL) & 1n).toBe(0n);
      expect(p.memory.read8(PAGE.hypercall)).toBe(0);
    }
  });

  it('the hypercall MSR lock (WS2016 on) holds until reset', () => {
    const { p, guests } = partition({ release: 'ws2016', features: { privilegesLow: 0xffff } });
    const g = guests[0]!;
    g.enableHypercalls();
    g.wrmsr(HvMsr.HYPERCALL, BigInt(PAGE.hypercall) | 3n);
    expect(fault(g, HvMsr.HYPERCALL, 0n)).toBe('#GP');
    g.wrmsr(HvMsr.RESET, 1n);
    expect(p.resets).toBe(1);
    expect(g.rdmsr(HvMsr.HYPERCALL)).toBe(0n);
    g.enableHypercalls();
  });

  it('crash MSRs: CRASH_CTL with NOTIFY reports P0..P4, and with NOTIFY_MSG the message text', () => {
    const { p, guests } = partition();
    const g = guests[0]!;
    const text = 'Kernel panic - not syncing: test';
    p.memory.write(0x9000, new TextEncoder().encode(text));
    [0n, 0n, 0n, 0x9000n, BigInt(text.length)].forEach((v, i) => g.wrmsr(HvMsr.CRASH_P0 + i, v));
    g.wrmsr(HvMsr.CRASH_CTL, (1n << 63n) | (1n << 62n));
    expect(p.crashes).toHaveLength(1);
    expect(p.crashes[0]!.message).toBe(text);
    expect(p.crashes[0]!.params).toEqual([0n, 0n, 0n, 0x9000n, BigInt(text.length)]);
    // A message buffer outside RAM gives a report without text, not a fault.
    g.wrmsr(HvMsr.CRASH_P3, 1n << 50n);
    g.wrmsr(HvMsr.CRASH_CTL, (1n << 63n) | (1n << 62n));
    expect(p.crashes[1]!.message).toBeUndefined();
  });

  const msr = fc.oneof(fc.integer({ min: 0x40000000, max: 0x40000120 }), fc.integer({ min: 0x40001080, max: 0x400010a0 }), fc.integer({ min: 0, max: 0xffffffff }));
  for (const arch of ['x64', 'x86'] as const) {
    // Each case a fresh partition of the release: its features decide which MSRs exist.
    itFuzzEachRelease(
      `any MSR number and value on ${arch}: RDMSR/WRMSR answer a value or #GP, never throw`,
      `synthetic-msrs.${arch}`,
      (release) =>
        fc.property(fc.array(fc.tuple(fc.nat(1), msr, fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.boolean()), { maxLength: 200 }), (ops) => {
          const { guests } = partition({ arch, vps: 2, release, memory: 1 << 20 });
          for (const [vp, m, v, write] of ops) {
            const cpu = guests[vp]!.cpu as X64Port;
            const r = write ? cpu.wrmsr(m, v) : cpu.rdmsr(m).fault;
            expect(r === undefined || r === '#GP').toBe(true);
          }
        }),
      20,
    );
  }
});

// Which MSRs each privilege bit grants (tlfs.md 1.3), to check that every bit a release offers is
// implemented and every bit it withholds faults.
const GRANTS: [number, number[]][] = [
  [PrivLow.VP_RUNTIME, [HvMsr.VP_RUNTIME]],
  [PrivLow.TIME_REF_COUNT, [HvMsr.TIME_REF_COUNT]],
  [PrivLow.SYNIC, [HvMsr.SCONTROL, HvMsr.SVERSION, HvMsr.SIEFP, HvMsr.SIMP, HvMsr.EOM, sintMsr(0), sintMsr(15)]],
  [PrivLow.SYNTIMER, [stimerConfigMsr(0), stimerCountMsr(3)]],
  [PrivLow.APIC_ACCESS, [HvMsr.ICR, HvMsr.TPR, HvMsr.VP_ASSIST_PAGE]],
  [PrivLow.HYPERCALL, [HvMsr.GUEST_OS_ID, HvMsr.HYPERCALL]],
  [PrivLow.VP_INDEX, [HvMsr.VP_INDEX]],
  [PrivLow.RESET, [HvMsr.RESET]],
  [PrivLow.REFERENCE_TSC, [HvMsr.REFERENCE_TSC]],
  [PrivLow.GUEST_IDLE, [HvMsr.GUEST_IDLE]],
  [PrivLow.FREQUENCY_MSRS, [HvMsr.TSC_FREQUENCY, HvMsr.APIC_FREQUENCY]],
  [PrivLow.REENLIGHTENMENT, [HvMsr.REENLIGHTENMENT_CONTROL, HvMsr.TSC_EMULATION_CONTROL, HvMsr.TSC_EMULATION_STATUS]],
  [PrivLow.TSC_INVARIANT, [HvMsr.TSC_INVARIANT_CONTROL]],
];

describe('every offered privilege is implemented, every withheld one faults', () => {
  for (const release of RELEASE_IDS) {
    it(release, () => {
      const { guests } = partition({ release });
      const g = guests[0]!;
      const low = g.cpu.arch === 'arm64' ? 0 : (g.cpu as X64Port).cpuid(0x40000003).eax;
      const misc = (g.cpu as X64Port).cpuid(0x40000003).edx;
      for (const [bit, msrs] of GRANTS) {
        for (const m of msrs) expect(fault(g, m), `${release} MSR 0x${m.toString(16)}`).toBe(low & bit ? undefined : '#GP');
      }
      for (const m of [HvMsr.CRASH_P0, HvMsr.CRASH_CTL]) expect(fault(g, m)).toBe(misc & MiscX64.GUEST_CRASH_MSR ? undefined : '#GP');
      // Never offered to a guest: SIRBP, the synthetic debugger, the nested SynIC.
      for (const m of [HvMsr.SIRBP, HvMsr.SYNDBG_CONTROL, HvMsr.SYNDBG_OPTIONS, 0x40001080]) expect(fault(g, m)).toBe('#GP');
    });
  }
});

describe('arm64: the same registers through HvCallGetVpRegisters / HvCallSetVpRegisters', () => {
  /** hv_set_vpreg: a fast SetVpRegisters with rep count 1 (tlfs.md 3.2). */
  const setReg = (g: TestGuest, name: number, value: bigint, vpIndex = HV_VP_INDEX_SELF) => {
    const x = [0x46000001n, 0x51n | (1n << 16n) | (1n << 32n), HV_PARTITION_ID_SELF, BigInt(vpIndex), BigInt(name), 0n, value, 0n];
    expect((g.cpu as Arm64Port).hvc(0, { x })).toBeUndefined();
    return x[0]!;
  };
  /** hv_get_vpreg_128: the value comes back in X6 (low) and X7 (high). */
  const getReg = (g: TestGuest, name: number) => {
    const x = [0x46000001n, 0x50n | (1n << 16n) | (1n << 32n), HV_PARTITION_ID_SELF, BigInt(HV_VP_INDEX_SELF), BigInt(name)];
    (g.cpu as Arm64Port).hvc(0, { x });
    return { result: x[0]!, low: x[6]!, high: x[7]! };
  };

  it('reach the state the x86 MSRs reach, with per-element statuses', () => {
    const { p, guests } = partition({ arch: 'arm64', vps: 2 });
    const g = guests[1]!;
    expect(getReg(g, HvRegister.VP_INDEX).low).toBe(1n);
    expect(setReg(g, HvRegister.GUEST_OS_ID, 0x8100000601c00000n)).toBe(1n << 32n); // success, 1 rep
    expect(p.guestOsId).toBe(0x8100000601c00000n);
    expect(status(setReg(g, sintRegister(2), 0x10n | (1n << 17n)))).toBe(0);
    expect(p.vps[1]!.synic.sints[2]).toBe(0x10n | (1n << 17n));
    expect(getReg(g, sintRegister(2)).low).toBe(0x10n | (1n << 17n));
    // Reserved bits: INVALID_REGISTER_VALUE, zero reps completed, nothing changed.
    const r = setReg(g, HvRegister.SCONTROL, 2n);
    expect(status(r)).toBe(HvStatus.INVALID_REGISTER_VALUE);
    expect(repsCompleted(r)).toBe(0);
    expect(status(setReg(g, 0x12345, 0n))).toBe(HvStatus.INVALID_PARAMETER);
    expect(status(setReg(g, HvRegister.VP_INDEX, 0n))).toBe(HvStatus.INVALID_PARAMETER); // read-only
    expect(status(getReg(g, 0x12345).result)).toBe(HvStatus.INVALID_PARAMETER);
    // Another VP of the partition by index, and a VP that does not exist.
    expect(status(setReg(g, HvRegister.SCONTROL, 1n, 0))).toBe(0);
    expect(p.vps[0]!.synic.scontrol).toBe(1n);
    expect(status(setReg(g, HvRegister.SCONTROL, 1n, 7))).toBe(HvStatus.INVALID_VP_INDEX);
  });

  it('feature registers carry the CPUID dwords, with the arm64 misc numbering', () => {
    const { guests } = partition({ arch: 'arm64', release: 'ws2022' });
    const g = guests[0]!;
    const v = getReg(g, HvRegister.PRIVILEGES_AND_FEATURES_INFO);
    expect(Number(v.low & 0xffffffffn)).toBe(0xae7f);
    // WS2022 offers crash MSRs and direct-mode timers: arm64 bits 8 and 13.
    expect(Number(v.high & 0xffffffffn)).toBe((1 << 8) | (1 << 13));
    const ver = getReg(g, HvRegister.HYPERVISOR_VERSION);
    expect(Number(ver.low & 0xffffffffn)).toBe(20348);
    expect(ver.low >> 32n).toBe(0xa0000n);
  });

  it('every synthetic register the arm64 guest names is reachable and consistent with an SMCCC round trip', () => {
    const { guests } = partition({ arch: 'arm64' });
    const g = guests[0]!;
    fuzz(
      'synthetic-msrs.arm64-registers',
      fc.property(fc.constantFrom(...[0, 1, 2, 3, 15].map(sintRegister)), fc.integer({ min: 16, max: 255 }), fc.boolean(), (name, vector, masked) => {
        const value = BigInt(vector) | (masked ? 1n << 16n : 0n);
        expect(status(setReg(g, name, value))).toBe(0);
        expect(getReg(g, name).low).toBe(value);
      }),
      100,
    );
  });

  it('rep GetVpRegisters in memory form reads several registers in one call', () => {
    const { p, guests } = partition({ arch: 'arm64', vps: 2 });
    const g = guests[1]!;
    const input = PAGE.input(1);
    p.memory.write64(input, HV_PARTITION_ID_SELF);
    p.memory.write32(input + 8, HV_VP_INDEX_SELF);
    [HvRegister.VP_INDEX, HvRegister.SVERSION, sintRegister(5)].forEach((n, i) => p.memory.write32(input + 16 + 4 * i, n));
    const r = g.hypercall({ code: HvCall.GET_VP_REGISTERS, repCount: 3 }, BigInt(input), BigInt(PAGE.output(1)));
    expect(status(r)).toBe(0);
    expect(repsCompleted(r)).toBe(3);
    expect([p.memory.read64(PAGE.output(1)), p.memory.read64(PAGE.output(1) + 16), p.memory.read64(PAGE.output(1) + 32)]).toEqual([1n, 1n, 0x10000n]);
  });
});
