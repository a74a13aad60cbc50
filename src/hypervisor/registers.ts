// Every synthetic register, declared once (tlfs.md §2.1, §3.1): its x86 MSR number, its VP
// register name, the privilege that gates it, and how it reads and writes. The x86 RDMSR/WRMSR
// path and the HvCallGetVpRegisters/HvCallSetVpRegisters path (the only one on arm64) both
// dispatch through this table, so the two architectures reach the same state.
import { MiscX64, PrivLow } from '../tlfs/cpuid.js';
import { HvMsr, sintMsr, stimerConfigMsr, stimerCountMsr } from '../tlfs/msr.js';
import { HvRegister, sintRegister, stimerConfigRegister, stimerCountRegister } from '../tlfs/registers.js';
import { HV_SYNIC_SINT_COUNT, HV_SYNIC_STIMER_COUNT, HV_SYNIC_VERSION_1 } from '../tlfs/synic.js';
import { bits } from '../tlfs/struct.js';
import type { Features } from './features.js';
import type { WriteFault } from './synic.js';
import type { Vp } from './vp.js';

export interface SyntheticRegister {
  /** The name after HV_X64_MSR_ / HV_REGISTER_. */
  readonly name: string;
  readonly msr?: number;
  readonly reg?: number;
  /** Whether the partition's privileges grant access (otherwise #GP / INVALID_PARAMETER). */
  readonly gate: (f: Features) => boolean;
  /** Absent: write-only (reads fault). */
  readonly read?: (vp: Vp) => bigint;
  /** Absent: read-only (writes fault). Returns a fault reason for reserved bits or bad values. */
  readonly write?: (vp: Vp, v: bigint) => WriteFault;
}

const low = (bit: number) => (f: Features) => (f.privilegesLow & bit) !== 0;
const misc = (bit: number) => (f: Features) => (f.misc & bit) !== 0;
/** The frequency MSRs need the privilege and the misc "available" bit (tlfs.md 2.1). */
const frequency = (f: Features): boolean => (f.privilegesLow & PrivLow.FREQUENCY_MSRS) !== 0 && (f.misc & MiscX64.FREQUENCY_MSRS) !== 0;

/** HV_X64_MSR_REENLIGHTENMENT_CONTROL (tlfs.md §2.8; Linux hv_reenlightenment_control). */
export const ReenlightenmentControl = bits('hv_reenlightenment_control', 'u64', {
  vector: 8,
  reserved1: 8,
  enabled: 1,
  reserved2: 15,
  target_vp: 32,
});
/** HV_X64_MSR_TSC_EMULATION_CONTROL / _STATUS (Linux hv_tsc_emulation_control / _status). */
export const TscEmulationControl = bits('hv_tsc_emulation_control', 'u64', { enabled: 1, reserved: 63 });
export const TscEmulationStatus = bits('hv_tsc_emulation_status', 'u64', { inprogress: 1, reserved: 63 });

const store = (mask: bigint, what: string, set: (vp: Vp, v: bigint) => void) => (vp: Vp, v: bigint): WriteFault => {
  if (v & ~mask) return `${what} reserved bits`;
  set(vp, v);
  return undefined;
};

const table: SyntheticRegister[] = [
  {
    name: 'GUEST_OS_ID',
    msr: HvMsr.GUEST_OS_ID,
    reg: HvRegister.GUEST_OS_ID,
    gate: low(PrivLow.HYPERCALL),
    read: (vp) => vp.partition.guestOsId,
    write: (vp, v) => vp.partition.writeGuestOsId(v),
  },
  {
    name: 'HYPERCALL',
    msr: HvMsr.HYPERCALL,
    gate: low(PrivLow.HYPERCALL),
    read: (vp) => vp.partition.hypercallMsr,
    write: (vp, v) => vp.partition.writeHypercallMsr(v),
  },
  { name: 'VP_INDEX', msr: HvMsr.VP_INDEX, reg: HvRegister.VP_INDEX, gate: low(PrivLow.VP_INDEX), read: (vp) => BigInt(vp.index) },
  {
    name: 'RESET',
    msr: HvMsr.RESET,
    gate: low(PrivLow.RESET),
    read: () => 0n,
    write: (vp, v) => {
      if (v & ~1n) return 'RESET reserved bits';
      if (v & 1n) vp.partition.reset();
      return undefined;
    },
  },
  // The model's VPs never halt outside GUEST_IDLE, so run time is the partition's reference time.
  { name: 'VP_RUNTIME', msr: HvMsr.VP_RUNTIME, reg: HvRegister.VP_RUNTIME, gate: low(PrivLow.VP_RUNTIME), read: (vp) => vp.partition.referenceTime.now() },
  {
    name: 'TIME_REF_COUNT',
    msr: HvMsr.TIME_REF_COUNT,
    reg: HvRegister.TIME_REF_COUNT,
    gate: low(PrivLow.TIME_REF_COUNT),
    read: (vp) => vp.partition.referenceTime.now(),
  },
  {
    name: 'REFERENCE_TSC',
    msr: HvMsr.REFERENCE_TSC,
    reg: HvRegister.REFERENCE_TSC,
    gate: low(PrivLow.REFERENCE_TSC),
    read: (vp) => vp.partition.referenceTscMsr,
    write: (vp, v) => vp.partition.writeReferenceTsc(v),
  },
  { name: 'TSC_FREQUENCY', msr: HvMsr.TSC_FREQUENCY, gate: frequency, read: (vp) => BigInt(vp.partition.referenceTime.tscHz) },
  { name: 'APIC_FREQUENCY', msr: HvMsr.APIC_FREQUENCY, gate: frequency, read: (vp) => BigInt(vp.partition.release.apicFrequency) },
  {
    name: 'EOI',
    msr: HvMsr.EOI,
    gate: low(PrivLow.APIC_ACCESS),
    write: (vp) => {
      vp.apic.eoi();
      return undefined;
    },
  },
  {
    name: 'ICR',
    msr: HvMsr.ICR,
    gate: low(PrivLow.APIC_ACCESS),
    read: (vp) => vp.icr,
    // xAPIC image: destination in [63:56] (tlfs.md §2.1).
    write: (vp, v) => sendIcr(vp, v, Number((v >> 56n) & 0xffn)),
  },
  {
    name: 'TPR',
    msr: HvMsr.TPR,
    gate: low(PrivLow.APIC_ACCESS),
    read: (vp) => BigInt(vp.apic.tpr),
    write: store(0xffn, 'TPR', (vp, v) => {
      vp.apic.tpr = Number(v);
    }),
  },
  {
    name: 'VP_ASSIST_PAGE',
    msr: HvMsr.VP_ASSIST_PAGE,
    reg: HvRegister.VP_ASSIST_PAGE,
    gate: low(PrivLow.APIC_ACCESS),
    read: (vp) => vp.vpAssist,
    write: (vp, v) => vp.writeVpAssist(v),
  },
  {
    name: 'SCONTROL',
    msr: HvMsr.SCONTROL,
    reg: HvRegister.SCONTROL,
    gate: low(PrivLow.SYNIC),
    read: (vp) => vp.synic.scontrol,
    write: (vp, v) => vp.synic.writeScontrol(v),
  },
  { name: 'SVERSION', msr: HvMsr.SVERSION, reg: HvRegister.SVERSION, gate: low(PrivLow.SYNIC), read: () => BigInt(HV_SYNIC_VERSION_1) },
  {
    name: 'SIEFP',
    msr: HvMsr.SIEFP,
    reg: HvRegister.SIEFP,
    gate: low(PrivLow.SYNIC),
    read: (vp) => vp.synic.siefp,
    write: (vp, v) => vp.synic.writeSiefp(v),
  },
  {
    name: 'SIMP',
    msr: HvMsr.SIMP,
    reg: HvRegister.SIMP,
    gate: low(PrivLow.SYNIC),
    read: (vp) => vp.synic.simp,
    write: (vp, v) => vp.synic.writeSimp(v),
  },
  {
    name: 'EOM',
    msr: HvMsr.EOM,
    reg: HvRegister.EOM,
    gate: low(PrivLow.SYNIC),
    // Reads return 0 (kvm-unit-tests hyperv_synic, tlfs.md §8.1).
    read: () => 0n,
    write: (vp) => {
      vp.synic.eom();
      return undefined;
    },
  },
  ...Array.from({ length: HV_SYNIC_SINT_COUNT }, (_, n): SyntheticRegister => ({
    name: `SINT${n}`,
    msr: sintMsr(n),
    reg: sintRegister(n),
    gate: low(PrivLow.SYNIC),
    read: (vp) => vp.synic.sints[n]!,
    write: (vp, v) => vp.synic.writeSint(n, v),
  })),
  ...Array.from({ length: HV_SYNIC_STIMER_COUNT }, (_, n): SyntheticRegister[] => [
    {
      name: `STIMER${n}_CONFIG`,
      msr: stimerConfigMsr(n),
      reg: stimerConfigRegister(n),
      gate: low(PrivLow.SYNTIMER),
      read: (vp) => vp.stimers[n]!.config,
      write: (vp, v) => vp.stimers[n]!.writeConfig(v),
    },
    {
      name: `STIMER${n}_COUNT`,
      msr: stimerCountMsr(n),
      reg: stimerCountRegister(n),
      gate: low(PrivLow.SYNTIMER),
      read: (vp) => vp.stimers[n]!.count,
      write: (vp, v) => {
        vp.stimers[n]!.writeCount(v);
        return undefined;
      },
    },
  ]).flat(),
  {
    name: 'GUEST_IDLE',
    msr: HvMsr.GUEST_IDLE,
    gate: low(PrivLow.GUEST_IDLE),
    // The VP idles until an interrupt is pending; the runner that schedules VPs honours it.
    read: (vp) => {
      vp.idleRequests++;
      if (vp.partition.events.active) vp.partition.events.emit({ kind: 'guest-idle', vp: vp.index });
      return 0n;
    },
  },
  ...Array.from({ length: 5 }, (_, n): SyntheticRegister => ({
    name: `CRASH_P${n}`,
    msr: HvMsr.CRASH_P0 + n,
    reg: HvRegister.GUEST_CRASH_P0 + n,
    gate: misc(MiscX64.GUEST_CRASH_MSR),
    read: (vp) => vp.partition.crashParams[n]!,
    write: (vp, v) => {
      vp.partition.crashParams[n] = v;
      return undefined;
    },
  })),
  {
    name: 'CRASH_CTL',
    msr: HvMsr.CRASH_CTL,
    reg: HvRegister.GUEST_CRASH_CTL,
    gate: misc(MiscX64.GUEST_CRASH_MSR),
    read: (vp) => vp.partition.crashCapabilities,
    write: (vp, v) => vp.partition.writeCrashCtl(v),
  },
  {
    name: 'REENLIGHTENMENT_CONTROL',
    msr: HvMsr.REENLIGHTENMENT_CONTROL,
    gate: low(PrivLow.REENLIGHTENMENT),
    read: (vp) => vp.partition.reenlightenmentControl,
    write: store(~ReenlightenmentControl.reservedMask & 0xffff_ffff_ffff_ffffn, 'REENLIGHTENMENT_CONTROL', (vp, v) => {
      vp.partition.reenlightenmentControl = v;
    }),
  },
  {
    name: 'TSC_EMULATION_CONTROL',
    msr: HvMsr.TSC_EMULATION_CONTROL,
    gate: low(PrivLow.REENLIGHTENMENT),
    read: (vp) => vp.partition.tscEmulationControl,
    write: store(1n, 'TSC_EMULATION_CONTROL', (vp, v) => {
      vp.partition.tscEmulationControl = v;
    }),
  },
  {
    name: 'TSC_EMULATION_STATUS',
    msr: HvMsr.TSC_EMULATION_STATUS,
    gate: low(PrivLow.REENLIGHTENMENT),
    read: (vp) => vp.partition.tscEmulationStatus,
    write: store(1n, 'TSC_EMULATION_STATUS', (vp, v) => {
      vp.partition.tscEmulationStatus = v;
    }),
  },
  {
    name: 'TSC_INVARIANT_CONTROL',
    msr: HvMsr.TSC_INVARIANT_CONTROL,
    gate: low(PrivLow.TSC_INVARIANT),
    read: (vp) => vp.partition.tscInvariantControl,
    write: store(1n, 'TSC_INVARIANT_CONTROL', (vp, v) => {
      vp.partition.tscInvariantControl = v;
    }),
  },
  // Without VSM every VP runs in VTL 0 with no VTL enabled (tlfs.md §3.1).
  { name: 'VSM_VP_STATUS', reg: HvRegister.VSM_VP_STATUS, gate: () => true, read: () => 0n },
];

/** Sends the IPI an ICR image describes: fixed delivery, physical destination or a shorthand. */
export function sendIcr(vp: Vp, v: bigint, destination: number): WriteFault {
  vp.icr = v & ~(1n << 12n); // delivery status reads idle
  const vector = Number(v & 0xffn);
  const deliveryMode = Number((v >> 8n) & 7n);
  const logical = (v >> 11n) & 1n;
  const shorthand = Number((v >> 18n) & 3n);
  // Only fixed interrupts are modelled; INIT/SIPI/NMI and logical destinations are ignored.
  if (deliveryMode !== 0 || vector < 16) return undefined;
  const p = vp.partition;
  let targets: Vp[];
  if (shorthand === 1) targets = [vp];
  else if (shorthand === 2) targets = [...p.vps];
  else if (shorthand === 3) targets = p.vps.filter((t) => t !== vp);
  else if (logical) targets = [];
  else targets = [p.vpByApicId(destination)].filter((t): t is Vp => t !== undefined);
  for (const t of targets) {
    if (p.events.active) p.events.emit({ kind: 'ipi', from: vp.index, to: t.index, vector });
    t.apic.raise(vector);
  }
  return undefined;
}

export const SYNTHETIC_REGISTERS: readonly SyntheticRegister[] = table;
export const registerByMsr: ReadonlyMap<number, SyntheticRegister> = new Map(table.filter((r) => r.msr !== undefined).map((r) => [r.msr!, r]));
export const registerByName: ReadonlyMap<number, SyntheticRegister> = new Map(table.filter((r) => r.reg !== undefined).map((r) => [r.reg!, r]));
