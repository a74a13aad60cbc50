// What a partition offers its guest, computed once from the release row, the architecture and
// the configuration; and the CPUID leaves (x86) and feature registers (arm64) that report it.
import {
  HyperVCpuid,
  HYPERV_CPUID_SIGNATURE_EAX,
  HYPERV_HYPERVISOR_PRESENT_BIT,
  HvIsolationType,
  Isolation,
  MiscArm64,
  MiscX64,
  PrivHigh,
  type CpuidResult,
} from '../tlfs/cpuid.js';
import { HV_MAXIMUM_PROCESSORS, HV_MAXIMUM_PROCESSORS_ARM64, HvRegister } from '../tlfs/registers.js';
import {
  ARM64_HINTS,
  MODELLED_HINTS,
  MODELLED_MISC,
  MODELLED_PRIVILEGES_HIGH,
  MODELLED_PRIVILEGES_LOW,
  type HypervisorVersion,
  type Release,
} from './release.js';

import type { Arch } from './cpu-interface.js';

export type { Arch };
export const ARCHES: readonly Arch[] = ['x64', 'x86', 'arm64'];

/** The most VPs a partition of this architecture can have, whatever the release allows. */
export const ARCH_MAX_VPS: Readonly<Record<Arch, number>> = { x64: HV_MAXIMUM_PROCESSORS, x86: HV_MAXIMUM_PROCESSORS, arm64: HV_MAXIMUM_PROCESSORS_ARM64 };

export interface IsolationConfig {
  type: 'vbs' | 'snp' | 'tdx';
  paravisor: boolean;
  /** vTOM: the shared alias of a page is its GPA + 2^bits (0 = no shared GPA boundary). */
  sharedGpaBoundaryBits: number;
}

/** Explicit CPUID dwords, replacing the release's (still limited to what hvkit models). */
export interface FeatureOverrides {
  privilegesLow?: number;
  privilegesHigh?: number;
  misc?: number;
  hints?: number;
  spinRetries?: number;
}

export interface Features {
  readonly arch: Arch;
  readonly version: HypervisorVersion;
  readonly maxLeaf: number;
  readonly privilegesLow: number;
  readonly privilegesHigh: number;
  /** Misc features in x86 numbering; `miscReported` is what the guest reads on its architecture. */
  readonly misc: number;
  readonly miscReported: number;
  readonly hints: number;
  readonly spinRetries: number;
  readonly physicalAddressBits: number;
  readonly maxVirtualProcessors: number;
  readonly maxLogicalProcessors: number;
  readonly hardwareFeatures: number;
  readonly isolation: IsolationConfig | undefined;
}

export function computeFeatures(r: Release, arch: Arch, o: FeatureOverrides = {}, isolation?: IsolationConfig): Features {
  let high = (o.privilegesHigh ?? r.privilegesHigh) & MODELLED_PRIVILEGES_HIGH;
  // arm64 reaches every synthetic register through Get/SetVpRegisters (tlfs.md §3).
  if (arch === 'arm64') high |= PrivHigh.ACCESS_VP_REGISTERS;
  if (isolation) high |= PrivHigh.ISOLATION;
  else high &= ~PrivHigh.ISOLATION;
  const misc = (o.misc ?? r.misc) & MODELLED_MISC;
  return {
    arch,
    version: r.version,
    maxLeaf: isolation ? Math.max(r.maxLeaf, HyperVCpuid.ISOLATION_CONFIG) : r.maxLeaf,
    privilegesLow: (o.privilegesLow ?? r.privilegesLow) & MODELLED_PRIVILEGES_LOW,
    privilegesHigh: high >>> 0,
    misc: misc >>> 0,
    miscReported: arch === 'arm64' ? arm64Misc(misc) : misc >>> 0,
    hints: (o.hints ?? (arch === 'arm64' ? ARM64_HINTS : r.hints)) & MODELLED_HINTS,
    spinRetries: o.spinRetries ?? r.spinRetries,
    physicalAddressBits: r.physicalAddressBits,
    maxVirtualProcessors: r.maxVirtualProcessors,
    maxLogicalProcessors: r.maxLogicalProcessors,
    hardwareFeatures: r.hardwareFeatures,
    isolation,
  };
}

/** The arm64 misc dword numbers the two bits it shares with x86 differently (tlfs.md §1.6). */
function arm64Misc(x86misc: number): number {
  let m = 0;
  if (x86misc & MiscX64.GUEST_CRASH_MSR) m |= MiscArm64.GUEST_CRASH_MSR;
  if (x86misc & MiscX64.STIMER_DIRECT_MODE) m |= MiscArm64.STIMER_DIRECT_MODE;
  return m;
}

const ZERO: CpuidResult = { eax: 0, ebx: 0, ecx: 0, edx: 0 };

/** The Hyper-V leaves 0x40000000..0x4000FFFF (tlfs.md §1.2). */
export function hypervisorLeaf(f: Features, leaf: number, maxLeaf = f.maxLeaf): CpuidResult {
  if (leaf > maxLeaf && leaf !== HyperVCpuid.VENDOR_AND_MAX_FUNCTIONS) return ZERO;
  const v = f.version;
  switch (leaf) {
    case HyperVCpuid.VENDOR_AND_MAX_FUNCTIONS:
      // "Microsoft Hv" in EBX, ECX, EDX.
      return { eax: f.maxLeaf, ebx: 0x7263694d, ecx: 0x666f736f, edx: 0x76482074 };
    case HyperVCpuid.INTERFACE:
      return { eax: HYPERV_CPUID_SIGNATURE_EAX, ebx: 0, ecx: 0, edx: 0 };
    case HyperVCpuid.VERSION:
      return {
        eax: v.build,
        ebx: ((v.major << 16) | v.minor) >>> 0,
        ecx: v.servicePack,
        edx: ((v.serviceBranch << 24) | (v.serviceNumber & 0xffffff)) >>> 0,
      };
    case HyperVCpuid.FEATURES:
      return { eax: f.privilegesLow, ebx: f.privilegesHigh, ecx: 0, edx: f.miscReported };
    case HyperVCpuid.ENLIGHTMENT_INFO:
      return { eax: f.hints, ebx: f.spinRetries >>> 0, ecx: f.physicalAddressBits & 0x7f, edx: 0 };
    case HyperVCpuid.IMPLEMENT_LIMITS:
      return { eax: f.maxVirtualProcessors, ebx: f.maxLogicalProcessors, ecx: 0, edx: 0 };
    case HyperVCpuid.HARDWARE_FEATURES:
      return { eax: f.hardwareFeatures, ebx: 0, ecx: 0, edx: 0 };
    case HyperVCpuid.ISOLATION_CONFIG: {
      const iso = f.isolation;
      if (!iso) return ZERO;
      const type = { vbs: HvIsolationType.VBS, snp: HvIsolationType.SNP, tdx: HvIsolationType.TDX }[iso.type];
      const bits = iso.sharedGpaBoundaryBits;
      const ebx = type | (bits ? Isolation.SHARED_GPA_BOUNDARY_ACTIVE | ((bits << Isolation.SHARED_GPA_BOUNDARY_BITS_SHIFT) & Isolation.SHARED_GPA_BOUNDARY_BITS_MASK) : 0);
      return { eax: iso.paravisor ? Isolation.PARAVISOR_PRESENT : 0, ebx, ecx: 0, edx: 0 };
    }
    default:
      // 0x40000007..0x4000000B: CPU management (root), SVM, skip-level, nested, IPT: none modelled.
      return ZERO;
  }
}

/**
 * The x86 CPUID instruction as a VP sees it. Only what the Hyper-V interface needs is modelled:
 * the hypervisor-present bit, the APIC id, x2APIC, and the invariant-TSC bit that
 * HV_X64_MSR_TSC_INVARIANT_CONTROL exposes.
 */
export function cpuidLeaf(
  f: Features,
  leaf: number,
  vp: { apicId: number; vendor: 'intel' | 'amd'; invariantTsc: boolean },
): CpuidResult {
  leaf >>>= 0;
  if (leaf >= 0x40000000 && leaf <= HyperVCpuid.MAX) return hypervisorLeaf(f, leaf);
  switch (leaf) {
    case 0: {
      const [b, d, c] = vp.vendor === 'amd' ? [0x68747541, 0x69746e65, 0x444d4163] : [0x756e6547, 0x49656e69, 0x6c65746e];
      return { eax: 1, ebx: b, ecx: c, edx: d };
    }
    case 1: {
      // ECX: bit 31 hypervisor present, bit 21 x2APIC (64-bit only). EDX: bit 4 TSC, bit 9 APIC.
      const ecx = (HYPERV_HYPERVISOR_PRESENT_BIT | (f.arch === 'x64' ? 1 << 21 : 0)) >>> 0;
      return { eax: 0x000806f8, ebx: ((vp.apicId & 0xff) << 24) >>> 0, ecx, edx: (1 << 4) | (1 << 9) };
    }
    case 0x80000000:
      return { eax: 0x80000007, ebx: 0, ecx: 0, edx: 0 };
    case 0x80000007:
      return { eax: 0, ebx: 0, ecx: 0, edx: vp.invariantTsc ? 1 << 8 : 0 };
    default:
      return ZERO;
  }
}

/** The CPUID leaf each feature-information VP register mirrors (tlfs.md §3.1). */
const FEATURE_REGISTER_LEAF: ReadonlyMap<number, number> = new Map([
  [HvRegister.HYPERVISOR_VERSION, HyperVCpuid.VERSION],
  [HvRegister.PRIVILEGES_AND_FEATURES_INFO, HyperVCpuid.FEATURES],
  [HvRegister.FEATURES_INFO, HyperVCpuid.ENLIGHTMENT_INFO],
  [HvRegister.IMPLEMENTATION_LIMITS_INFO, HyperVCpuid.IMPLEMENT_LIMITS],
  [HvRegister.HARDWARE_FEATURES_INFO, HyperVCpuid.HARDWARE_FEATURES],
  [HvRegister.CPU_MANAGEMENT_FEATURES_INFO, HyperVCpuid.CPU_MANAGEMENT_FEATURES],
  [HvRegister.SVM_FEATURES_INFO, HyperVCpuid.SVM_FEATURES],
  [HvRegister.SKIP_LEVEL_FEATURES_INFO, HyperVCpuid.SKIP_LEVEL_FEATURES],
  [HvRegister.NESTED_VIRT_FEATURES_INFO, HyperVCpuid.NESTED_FEATURES],
  [HvRegister.IPT_FEATURES_INFO, HyperVCpuid.IPT_FEATURES],
]);

/** Feature-information VP registers (tlfs.md §3.1): 128-bit images of the CPUID leaves. */
export function featureRegister(f: Features, name: number): bigint | undefined {
  const leaf = FEATURE_REGISTER_LEAF.get(name);
  if (leaf === undefined) return undefined;
  // Registers report the leaf even past the x86 max leaf: arm64 has no max leaf.
  const r = hypervisorLeaf(f, leaf, Math.max(f.maxLeaf, HyperVCpuid.IPT_FEATURES));
  // 0x200 packs low privileges, high privileges, then misc features in dword c (Linux arm64
  // hyperv_init reads as32.a, .b, .c); the other registers are the leaf's EAX..EDX in order.
  const [a, b, c, d] = name === HvRegister.PRIVILEGES_AND_FEATURES_INFO ? [r.eax, r.ebx, r.edx, 0] : [r.eax, r.ebx, r.ecx, r.edx];
  return BigInt(a >>> 0) | (BigInt(b >>> 0) << 32n) | (BigInt(c >>> 0) << 64n) | (BigInt(d >>> 0) << 96n);
}
