// VP register names used by HvCallGetVpRegisters / HvCallSetVpRegisters (tlfs.md §3.1).
// Linux: include/hyperv/hvgdk_mini.h enum hv_register_name (older
// arch/arm64/include/asm/hyperv-tlfs.h); OpenVMM vm/hv1/hvdef/src/lib.rs HvRegisterName.
// On arm64 these are the only way to reach the synthetic registers.

export const HvRegister = {
  EXPLICIT_SUSPEND: 0x00000000,
  INTERCEPT_SUSPEND: 0x00000001,
  DISPATCH_SUSPEND: 0x00000003,
  HYPERVISOR_VERSION: 0x00000100,
  PRIVILEGES_AND_FEATURES_INFO: 0x00000200,
  FEATURES_INFO: 0x00000201,
  IMPLEMENTATION_LIMITS_INFO: 0x00000202,
  HARDWARE_FEATURES_INFO: 0x00000203,
  CPU_MANAGEMENT_FEATURES_INFO: 0x00000204,
  SVM_FEATURES_INFO: 0x00000205,
  SKIP_LEVEL_FEATURES_INFO: 0x00000206,
  NESTED_VIRT_FEATURES_INFO: 0x00000207,
  IPT_FEATURES_INFO: 0x00000208,
  GUEST_CRASH_P0: 0x00000210,
  GUEST_CRASH_P1: 0x00000211,
  GUEST_CRASH_P2: 0x00000212,
  GUEST_CRASH_P3: 0x00000213,
  GUEST_CRASH_P4: 0x00000214,
  GUEST_CRASH_CTL: 0x00000215,
  VP_RUNTIME: 0x00090000,
  GUEST_OS_ID: 0x00090002,
  VP_INDEX: 0x00090003,
  TIME_REF_COUNT: 0x00090004,
  CPU_MANAGEMENT_VERSION: 0x00090007,
  VP_ASSIST_PAGE: 0x00090013,
  VP_ROOT_SIGNAL_COUNT: 0x00090014,
  REFERENCE_TSC: 0x00090017,
  REFERENCE_TSC_SEQUENCE: 0x0009001a,
  SINT0: 0x000a0000,
  SINT15: 0x000a000f,
  SCONTROL: 0x000a0010,
  SVERSION: 0x000a0011,
  SIEFP: 0x000a0012,
  SIMP: 0x000a0013,
  EOM: 0x000a0014,
  SIRBP: 0x000a0015,
  STIMER0_CONFIG: 0x000b0000,
  STIMER0_COUNT: 0x000b0001,
  VSM_VP_STATUS: 0x000d0003,
} as const;

export const sintRegister = (n: number): number => HvRegister.SINT0 + n;
export const stimerConfigRegister = (n: number): number => HvRegister.STIMER0_CONFIG + 2 * n;
export const stimerCountRegister = (n: number): number => HvRegister.STIMER0_COUNT + 2 * n;

const regNames = new Map<number, string>(Object.entries(HvRegister).map(([k, v]) => [v, `HV_REGISTER_${k}`]));
export const registerName = (name: number): string => regNames.get(name) ?? `HV_REGISTER_0x${name.toString(16)}`;

/** HV_PARTITION_ID_SELF and the VP index sentinels (tlfs.md §4.12.6). */
export const HV_PARTITION_ID_SELF = 0xffff_ffff_ffff_ffffn;
export const HV_VP_INDEX_SELF = 0xfffffffe;

/** HV_MAXIMUM_PROCESSORS: the most VPs a partition can have, x86 and arm64 (tlfs.md §7.3). */
export const HV_MAXIMUM_PROCESSORS = 2048;
export const HV_MAXIMUM_PROCESSORS_ARM64 = 320;
export const HV_ANY_VP = 0xffffffff;
/** Linux's marker for a CPU whose VP index is not yet known (hv_vp_index[]). */
export const VP_INVAL = 0xffffffff;

/** arm64 SMCCC function ID of every Hyper-V hypercall (tlfs.md §3.2). */
export const HV_FUNC_ID = 0x46000001;
/** SMCCC "vendor hypervisor UID" of Hyper-V, X0..X3 (tlfs.md §3.3). */
export const HV_SMCCC_UID = [0x4d32ba58, 0xcd244764, 0x8eef6c75, 0x16597024] as const;
export const ARM_SMCCC_VENDOR_HYP_CALL_UID_FUNC_ID = 0x8600ff01;
