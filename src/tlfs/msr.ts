// Synthetic MSR numbers (tlfs.md §2.1). Linux: include/hyperv/hvgdk_mini.h
// (older arch/x86/include/asm/hyperv-tlfs.h), names HV_X64_MSR_*.

export const HvMsr = {
  GUEST_OS_ID: 0x40000000,
  HYPERCALL: 0x40000001,
  VP_INDEX: 0x40000002,
  RESET: 0x40000003,
  VP_RUNTIME: 0x40000010,
  TIME_REF_COUNT: 0x40000020,
  REFERENCE_TSC: 0x40000021,
  TSC_FREQUENCY: 0x40000022,
  APIC_FREQUENCY: 0x40000023,
  EOI: 0x40000070,
  ICR: 0x40000071,
  TPR: 0x40000072,
  VP_ASSIST_PAGE: 0x40000073,
  SCONTROL: 0x40000080,
  SVERSION: 0x40000081,
  SIEFP: 0x40000082,
  SIMP: 0x40000083,
  EOM: 0x40000084,
  SIRBP: 0x40000085,
  SINT0: 0x40000090,
  SINT15: 0x4000009f,
  STIMER0_CONFIG: 0x400000b0,
  STIMER0_COUNT: 0x400000b1,
  STIMER1_CONFIG: 0x400000b2,
  STIMER1_COUNT: 0x400000b3,
  STIMER2_CONFIG: 0x400000b4,
  STIMER2_COUNT: 0x400000b5,
  STIMER3_CONFIG: 0x400000b6,
  STIMER3_COUNT: 0x400000b7,
  GUEST_IDLE: 0x400000f0,
  SYNDBG_CONTROL: 0x400000f1,
  SYNDBG_STATUS: 0x400000f2,
  SYNDBG_SEND_BUFFER: 0x400000f3,
  SYNDBG_RECV_BUFFER: 0x400000f4,
  SYNDBG_PENDING_BUFFER: 0x400000f5,
  SYNDBG_OPTIONS: 0x400000ff,
  CRASH_P0: 0x40000100,
  CRASH_P1: 0x40000101,
  CRASH_P2: 0x40000102,
  CRASH_P3: 0x40000103,
  CRASH_P4: 0x40000104,
  CRASH_CTL: 0x40000105,
  REENLIGHTENMENT_CONTROL: 0x40000106,
  TSC_EMULATION_CONTROL: 0x40000107,
  TSC_EMULATION_STATUS: 0x40000108,
  TSC_INVARIANT_CONTROL: 0x40000118,
} as const;

export const sintMsr = (n: number): number => HvMsr.SINT0 + n;
export const stimerConfigMsr = (n: number): number => HvMsr.STIMER0_CONFIG + 2 * n;
export const stimerCountMsr = (n: number): number => HvMsr.STIMER0_COUNT + 2 * n;

/** Crash control bits (HV_CRASH_CTL_*; tlfs.md §2.7). */
export const HV_CRASH_CTL_CRASH_NOTIFY = 1n << 63n;
export const HV_CRASH_CTL_CRASH_NOTIFY_MSG = 1n << 62n;
export const HV_CRASH_CTL_NO_CRASH_DUMP = 1n << 61n;
/** Number of crash parameter MSRs P0..P4 (HV_X64_MSR_CRASH_PARAMS). */
export const HV_CRASH_PARAMS = 5;

/** HV_X64_MSR_TSC_INVARIANT_CONTROL bit 0. */
export const HV_EXPOSE_INVARIANT_TSC = 1n;

const msrNames = new Map<number, string>(Object.entries(HvMsr).map(([k, v]) => [v, `HV_X64_MSR_${k}`]));
for (let i = 1; i < 15; i++) msrNames.set(HvMsr.SINT0 + i, `HV_X64_MSR_SINT${i}`);

export function msrName(msr: number): string {
  return msrNames.get(msr) ?? `MSR_0x${msr.toString(16)}`;
}
