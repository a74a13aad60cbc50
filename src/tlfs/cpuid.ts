// CPUID leaves and feature bits of the Hyper-V interface (tlfs.md §1).
// Linux: include/hyperv/hvgdk_mini.h, include/hyperv/hvgdk.h (older
// arch/x86/include/asm/hyperv-tlfs.h); unnamed bits carry OpenVMM's hvdef names.

export const HyperVCpuid = {
  VENDOR_AND_MAX_FUNCTIONS: 0x40000000,
  INTERFACE: 0x40000001,
  VERSION: 0x40000002,
  FEATURES: 0x40000003,
  ENLIGHTMENT_INFO: 0x40000004,
  IMPLEMENT_LIMITS: 0x40000005,
  HARDWARE_FEATURES: 0x40000006,
  CPU_MANAGEMENT_FEATURES: 0x40000007,
  SVM_FEATURES: 0x40000008,
  SKIP_LEVEL_FEATURES: 0x40000009,
  NESTED_FEATURES: 0x4000000a,
  IPT_FEATURES: 0x4000000b,
  ISOLATION_CONFIG: 0x4000000c,
  VIRT_STACK_INTERFACE: 0x40000081,
  VIRT_STACK_PROPERTIES: 0x40000082,
  MIN: 0x40000005,
  MAX: 0x4000ffff,
} as const;

/** CPUID.1:ECX bit 31: a hypervisor is present. */
export const HYPERV_HYPERVISOR_PRESENT_BIT = 0x80000000;
/** "Hv#1" in 0x40000001.EAX. */
export const HYPERV_CPUID_SIGNATURE_EAX = 0x31237648;
/** "VS#1" in 0x40000081.EAX. */
export const HYPERV_VS_INTERFACE_EAX_SIGNATURE = 0x31235356;
export const HYPERV_VS_PROPERTIES_EAX_EXTENDED_IOAPIC_RTE = 0x4;

/** 0x40000003.EAX: partition privileges, low half (tlfs.md §1.3). */
export const PrivLow = {
  VP_RUNTIME: 1 << 0,
  TIME_REF_COUNT: 1 << 1,
  SYNIC: 1 << 2,
  SYNTIMER: 1 << 3,
  APIC_ACCESS: 1 << 4,
  HYPERCALL: 1 << 5,
  VP_INDEX: 1 << 6,
  RESET: 1 << 7,
  STAT_PAGES: 1 << 8,
  REFERENCE_TSC: 1 << 9,
  GUEST_IDLE: 1 << 10,
  FREQUENCY_MSRS: 1 << 11,
  DEBUG_MSRS: 1 << 12,
  REENLIGHTENMENT: 1 << 13,
  ROOT_SCHEDULER: 1 << 14,
  TSC_INVARIANT: 1 << 15,
} as const;

/** 0x40000003.EBX: partition privileges, high half (tlfs.md §1.4). */
export const PrivHigh = {
  CREATE_PARTITIONS: 1 << 0,
  ACCESS_PARTITION_ID: 1 << 1,
  ACCESS_MEMORY_POOL: 1 << 2,
  ADJUST_MESSAGE_BUFFERS: 1 << 3,
  POST_MESSAGES: 1 << 4,
  SIGNAL_EVENTS: 1 << 5,
  CREATE_PORT: 1 << 6,
  CONNECT_PORT: 1 << 7,
  ACCESS_STATS: 1 << 8,
  DEBUGGING: 1 << 11,
  CPU_MANAGEMENT: 1 << 12,
  ACCESS_VSM: 1 << 16,
  ACCESS_VP_REGISTERS: 1 << 17,
  FAST_HYPERCALL_OUTPUT: 1 << 19,
  ENABLE_EXTENDED_HYPERCALLS: 1 << 20,
  START_VIRTUAL_PROCESSOR: 1 << 21,
  ISOLATION: 1 << 22,
} as const;

/** 0x40000003.EDX on x86 (tlfs.md §1.6). */
export const MiscX64 = {
  MWAIT: 1 << 0,
  GUEST_DEBUGGING: 1 << 1,
  PERF_MONITOR: 1 << 2,
  CPU_DYNAMIC_PARTITIONING: 1 << 3,
  HYPERCALL_XMM_INPUT: 1 << 4,
  GUEST_IDLE_STATE: 1 << 5,
  FREQUENCY_MSRS: 1 << 8,
  GUEST_CRASH_MSR: 1 << 10,
  DEBUG_MSRS: 1 << 11,
  EXT_GVA_RANGES_FLUSH: 1 << 14,
  HYPERCALL_XMM_OUTPUT: 1 << 15,
  SINT_POLLING_MODE: 1 << 17,
  HYPERCALL_MSR_LOCK: 1 << 18,
  STIMER_DIRECT_MODE: 1 << 19,
} as const;

/** The same dword on arm64 numbers its bits differently (tlfs.md §1.6, arm64 hyperv-tlfs.h). */
export const MiscArm64 = {
  GUEST_CRASH_MSR: 1 << 8,
  STIMER_DIRECT_MODE: 1 << 13,
} as const;

/** 0x40000004.EAX: implementation recommendations (tlfs.md §1.7). */
export const Hints = {
  AS_SWITCH: 1 << 0,
  LOCAL_TLB_FLUSH: 1 << 1,
  REMOTE_TLB_FLUSH: 1 << 2,
  APIC_ACCESS: 1 << 3,
  SYSTEM_RESET: 1 << 4,
  RELAXED_TIMING: 1 << 5,
  DEPRECATING_AEOI: 1 << 9,
  CLUSTER_IPI: 1 << 10,
  EX_PROCESSOR_MASKS: 1 << 11,
  HYPERV_NESTED: 1 << 12,
  ENLIGHTENED_VMCS: 1 << 14,
  NO_NONARCH_CORESHARING: 1 << 18,
  USE_MMIO_HYPERCALLS: 1 << 21,
} as const;

/** 0x4000000C (tlfs.md §1.10). */
export const Isolation = {
  PARAVISOR_PRESENT: 0x1,
  TYPE_MASK: 0xf,
  SHARED_GPA_BOUNDARY_ACTIVE: 0x20,
  SHARED_GPA_BOUNDARY_BITS_MASK: 0xfc0,
  SHARED_GPA_BOUNDARY_BITS_SHIFT: 6,
} as const;

export const HvIsolationType = { NONE: 0, VBS: 1, SNP: 2, TDX: 3 } as const;

export interface CpuidResult {
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}
