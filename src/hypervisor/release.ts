// The Hyper-V releases hvkit can emulate, as data (DESIGN.md principle 5). Each row holds what
// a guest on that release reads: CPUID 0x40000002..6 (x86) or VP registers 0x100..0x202 (arm64),
// and the VMBus version the host offers. The guest negotiates from these; nothing reads a
// build number to decide.
//
// Sources: Linux dmesg captured on real hosts (lines "Hyper-V: privilege flags low ..., high
// ..., hints ..., misc ..." and "Hyper-V Host Build:..."), Microsoft's Hyper-V scalability
// pages for the limits, include/linux/hyperv.h for the VMBus versions; see each row. Values no
// capture shows are marked "inferred".
import { Hints, MiscX64, PrivHigh, PrivLow } from '../tlfs/cpuid.js';

export type ReleaseId = 'ws2012' | 'ws2012r2' | 'ws2016' | 'ws2019' | 'ws2022' | 'ws2025';
export const RELEASE_IDS: readonly ReleaseId[] = ['ws2012', 'ws2012r2', 'ws2016', 'ws2019', 'ws2022', 'ws2025'];

export interface HypervisorVersion {
  build: number;
  major: number;
  minor: number;
  servicePack: number;
  serviceBranch: number;
  serviceNumber: number;
}

export interface Release {
  readonly id: ReleaseId;
  readonly name: string;
  /** CPUID 0x40000002 / register 0x100. */
  readonly version: HypervisorVersion;
  /** CPUID 0x40000000.EAX: the highest hypervisor leaf. */
  readonly maxLeaf: number;
  /** 0x40000003 EAX, EBX and EDX as real hosts of this release report them (x86 numbering). */
  readonly privilegesLow: number;
  readonly privilegesHigh: number;
  readonly misc: number;
  /** 0x40000004: EAX recommendations, EBX spin-wait retry count, ECX physical address bits. */
  readonly hints: number;
  readonly spinRetries: number;
  readonly physicalAddressBits: number;
  /** 0x40000005 EAX/EBX: maximum virtual and logical processors. */
  readonly maxVirtualProcessors: number;
  readonly maxLogicalProcessors: number;
  /** 0x40000006.EAX: hardware features in use. */
  readonly hardwareFeatures: number;
  /** Highest VMBus protocol version the host accepts (include/linux/hyperv.h VERSION_WIN*). */
  readonly vmbusVersion: { readonly major: number; readonly minor: number };
  /** Local APIC timer frequency (HV_X64_MSR_APIC_FREQUENCY), Hz. */
  readonly apicFrequency: number;
  /** Where the values come from. */
  readonly sources: string;
}

/** Captures show the APIC timer at 200 MHz on every release (LAPIC Timer Frequency × HZ). */
const APIC_HZ = 200_000_000;

export const RELEASES: Readonly<Record<ReleaseId, Release>> = {
  ws2012: {
    id: 'ws2012',
    name: 'Windows Server 2012',
    version: { build: 9200, major: 6, minor: 2, servicePack: 0, serviceBranch: 0, serviceNumber: 0 },
    maxLeaf: 0x40000006,
    privilegesLow: 0xe7f,
    privilegesHigh: 0x30,
    misc: 0x130,
    hints: 0x2c,
    spinRetries: 0xfff,
    physicalAddressBits: 46,
    maxVirtualProcessors: 64,
    maxLogicalProcessors: 320,
    hardwareFeatures: 0xf,
    vmbusVersion: { major: 2, minor: 4 },
    apicFrequency: APIC_HZ,
    sources:
      'features 0xe7f, hints 0x2c: dmesg of a RHEL guest on WS2012 (linux-mm, 2014); build 6.2.9200 is the release build; ' +
      'high 0x30 and misc 0x130 inferred from the bits Windows 6.2 headers define; limits: Microsoft "Hyper-V scalability in Windows Server 2012"',
  },
  ws2012r2: {
    id: 'ws2012r2',
    name: 'Windows Server 2012 R2',
    version: { build: 9600, major: 6, minor: 3, servicePack: 0, serviceBranch: 0, serviceNumber: 0 },
    maxLeaf: 0x40000006,
    privilegesLow: 0xe7f,
    privilegesHigh: 0x30,
    misc: 0x530,
    hints: 0x2c,
    spinRetries: 0xfff,
    physicalAddressBits: 46,
    maxVirtualProcessors: 64,
    maxLogicalProcessors: 320,
    hardwareFeatures: 0xf,
    vmbusVersion: { major: 3, minor: 0 },
    apicFrequency: APIC_HZ,
    sources: 'no capture found: privileges and hints as WS2012, crash MSRs (misc bit 10) added (inferred); build 6.3.9600 is the release build',
  },
  ws2016: {
    id: 'ws2016',
    name: 'Windows Server 2016',
    version: { build: 14393, major: 10, minor: 0, servicePack: 0, serviceBranch: 0, serviceNumber: 576 },
    maxLeaf: 0x40000006,
    privilegesLow: 0x2e7f,
    privilegesHigh: 0x388030,
    misc: 0xbed7b2,
    hints: 0xc2c,
    spinRetries: 0xfff,
    physicalAddressBits: 46,
    maxVirtualProcessors: 240,
    maxLogicalProcessors: 512,
    hardwareFeatures: 0xf,
    vmbusVersion: { major: 4, minor: 0 },
    apicFrequency: APIC_HZ,
    sources:
      'features 0x2e7f, hints 0x4c2c (eVMCS bit dropped: not nested), "Host Build:14393-10.0-0-0.576; Vmbus version:4.0": dmesg on WS2016 hosts; ' +
      'high and misc inferred from the WS2019 capture',
  },
  ws2019: {
    id: 'ws2019',
    name: 'Windows Server 2019',
    version: { build: 17763, major: 10, minor: 0, servicePack: 0, serviceBranch: 0, serviceNumber: 737 },
    maxLeaf: 0x40000006,
    privilegesLow: 0x2e7f,
    privilegesHigh: 0x3880b0,
    misc: 0xbed7b2,
    hints: 0x60e24,
    spinRetries: 0xfff,
    physicalAddressBits: 46,
    maxVirtualProcessors: 240,
    maxLogicalProcessors: 512,
    hardwareFeatures: 0xf,
    vmbusVersion: { major: 5, minor: 2 },
    apicFrequency: APIC_HZ,
    sources:
      '"features 0x2e7f, hints 0x60e24, misc 0xbed7b2", "Host Build:17763-10.0-0-0.737": dmesg on WS2019; high 0x3880b0 from a build 18343 CPUID dump (inferred)',
  },
  ws2022: {
    id: 'ws2022',
    name: 'Windows Server 2022',
    version: { build: 20348, major: 10, minor: 0, servicePack: 2, serviceBranch: 0, serviceNumber: 2762 },
    maxLeaf: 0x4000000a,
    privilegesLow: 0xae7f,
    privilegesHigh: 0x388030,
    misc: 0xc0bed7b2,
    hints: 0x140c2c,
    spinRetries: 0xfff,
    physicalAddressBits: 46,
    maxVirtualProcessors: 1024,
    maxLogicalProcessors: 1024,
    hardwareFeatures: 0xf,
    vmbusVersion: { major: 5, minor: 3 },
    apicFrequency: APIC_HZ,
    sources: '"privilege flags low 0xae7f, high 0x388030, hints 0x140c2c, misc 0xc0bed7b2", "Host Build:20348-10.0-2-0.2762": dmesg on WS2022 (Azure)',
  },
  ws2025: {
    id: 'ws2025',
    name: 'Windows Server 2025',
    version: { build: 26100, major: 10, minor: 0, servicePack: 2, serviceBranch: 0, serviceNumber: 2605 },
    maxLeaf: 0x4000000a,
    privilegesLow: 0xae7f,
    privilegesHigh: 0x3b8030,
    misc: 0xe0bed7b6,
    hints: 0x902c2c,
    spinRetries: 0xfff,
    physicalAddressBits: 46,
    maxVirtualProcessors: 2048,
    maxLogicalProcessors: 2048,
    hardwareFeatures: 0xf,
    vmbusVersion: { major: 5, minor: 3 },
    apicFrequency: APIC_HZ,
    sources:
      '"privilege flags low 0xae7f, high 0x3b8030, hints 0x902c2c, misc 0xe0bed7b6", "Host Build:26100-10.0-2-0.2605": dmesg on build 26100 (Windows 11 24H2, the same hypervisor build)',
  },
};

export function release(id: string): Release {
  const r = (RELEASES as Record<string, Release>)[id];
  if (!r) throw new RangeError(`unknown release '${id}' (expected one of ${RELEASE_IDS.join(', ')})`);
  return r;
}

// What hvkit implements. A bit a real host reports but hvkit does not model is not offered:
// every offered bit obliges the hypervisor to implement its MSR or hypercall (tlfs.md §1.12).

export const MODELLED_PRIVILEGES_LOW =
  PrivLow.VP_RUNTIME |
  PrivLow.TIME_REF_COUNT |
  PrivLow.SYNIC |
  PrivLow.SYNTIMER |
  PrivLow.APIC_ACCESS |
  PrivLow.HYPERCALL |
  PrivLow.VP_INDEX |
  PrivLow.RESET |
  PrivLow.REFERENCE_TSC |
  PrivLow.GUEST_IDLE |
  PrivLow.FREQUENCY_MSRS |
  PrivLow.REENLIGHTENMENT |
  PrivLow.TSC_INVARIANT;

/** Bit 15 is OpenVMM's enable_extended_gva_ranges_flush_va_list: flush lists may use the extended format. */
export const MODELLED_PRIVILEGES_HIGH =
  PrivHigh.ACCESS_PARTITION_ID |
  PrivHigh.POST_MESSAGES |
  PrivHigh.SIGNAL_EVENTS |
  (1 << 15) |
  PrivHigh.ACCESS_VP_REGISTERS |
  PrivHigh.FAST_HYPERCALL_OUTPUT |
  PrivHigh.ENABLE_EXTENDED_HYPERCALLS |
  PrivHigh.ISOLATION;

export const MODELLED_MISC =
  MiscX64.HYPERCALL_XMM_INPUT |
  MiscX64.GUEST_IDLE_STATE |
  MiscX64.FREQUENCY_MSRS |
  MiscX64.GUEST_CRASH_MSR |
  MiscX64.EXT_GVA_RANGES_FLUSH |
  MiscX64.HYPERCALL_XMM_OUTPUT |
  MiscX64.SINT_POLLING_MODE |
  MiscX64.HYPERCALL_MSR_LOCK |
  MiscX64.STIMER_DIRECT_MODE;

export const MODELLED_HINTS =
  Hints.LOCAL_TLB_FLUSH |
  Hints.REMOTE_TLB_FLUSH |
  Hints.APIC_ACCESS |
  Hints.SYSTEM_RESET |
  Hints.RELAXED_TIMING |
  Hints.DEPRECATING_AEOI |
  Hints.CLUSTER_IPI |
  Hints.EX_PROCESSOR_MASKS |
  Hints.NO_NONARCH_CORESHARING;

/** arm64 hints from a Windows build 22000 arm64 capture ("hints 0xe"). */
export const ARM64_HINTS = 0xe;
