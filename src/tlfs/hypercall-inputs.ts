// Input and output blocks of the hypercalls a Linux guest issues (tlfs.md §4.12).
// Linux: include/hyperv/hvgdk_mini.h, include/hyperv/hvhdk_mini.h (older asm-generic/hyperv-tlfs.h).
import { ConnectionId, HV_MESSAGE_PAYLOAD_BYTE_COUNT } from './synic.js';
import { bits, bytes, flex, struct, u32, u64, u8 } from './struct.js';

/** HvCallPostMessage input (256 bytes; tlfs.md §4.12.1). */
export const HvInputPostMessage = struct('hv_input_post_message', {
  connectionid: ConnectionId,
  reserved: u32,
  message_type: u32,
  payload_size: u32,
  payload: bytes(HV_MESSAGE_PAYLOAD_BYTE_COUNT),
});

/**
 * HvCallSignalEvent input (tlfs.md §4.12.2). Linux 6.1 has no struct for it (it passes the
 * qword in a fast call), so the name is the TLFS one and the oracle cannot check it.
 */
export const HvInputSignalEvent = bits('hv_input_signal_event', 'u64', {
  connection_id: 24,
  reserved_conn: 8,
  flag_number: 16,
  reserved: 16,
});

/** `struct hv_vpset` (tlfs.md §4.12.4); the bank qwords are the hypercall's variable header. */
export const HvVpSet = struct('hv_vpset', {
  format: u64,
  valid_bank_mask: u64,
  bank_contents: flex(u64),
});
export const HvGenericSetFormat = { SPARSE_4K: 0, ALL: 1 } as const;
export const HV_VCPUS_PER_SPARSE_BANK = 64;
export const HV_MAX_SPARSE_VCPU_BANKS = 64;

export const HvTlbFlush = struct('hv_tlb_flush', {
  address_space: u64,
  flags: u64,
  processor_mask: u64,
  gva_list: flex(u64),
});

export const HvTlbFlushEx = struct('hv_tlb_flush_ex', {
  address_space: u64,
  flags: u64,
  hv_vp_set: HvVpSet,
  gva_list: flex(u64),
});

/** HV_FLUSH_* flags of the flush hypercalls. */
export const HvFlush = {
  ALL_PROCESSORS: 1n << 0n,
  ALL_VIRTUAL_ADDRESS_SPACES: 1n << 1n,
  NON_GLOBAL_MAPPINGS_ONLY: 1n << 2n,
  USE_EXTENDED_RANGE_FORMAT: 1n << 3n,
} as const;
/** Flag bits a flush accepts: the four above plus the VTL selectors (bits 4, 8, 9; OpenVMM hvdef). */
export const HV_FLUSH_VALID_FLAGS = 0xfn | (1n << 4n) | (1n << 8n) | (1n << 9n);
export const HV_MAX_FLUSH_PAGES = 2048;
export const HV_MAX_FLUSH_REP_COUNT = 510;

export const HvSendIpi = struct('hv_send_ipi', {
  vector: u32,
  reserved: u32,
  cpu_mask: u64,
});

export const HvSendIpiEx = struct('hv_send_ipi_ex', {
  vector: u32,
  reserved: u32,
  vp_set: HvVpSet,
});
export const HV_IPI_LOW_VECTOR = 0x10;
export const HV_IPI_HIGH_VECTOR = 0xff;

/** The fixed header shared by HvCallGetVpRegisters and HvCallSetVpRegisters (tlfs.md §4.12.6). */
export const HvVpRegistersHeader = struct('hv_vp_registers_header', {
  partitionid: u64,
  vpindex: u32,
  inputvtl: u8,
  padding: bytes(3),
});

/** Rep elements are u32 register names (Linux packs them as `struct input { name0; name1; }`). */
export const HvGetVpRegistersInput = struct('hv_get_vp_registers_input', {
  header: HvVpRegistersHeader,
  element: flex(u32),
});

/** One 16-byte register value, the output element of HvCallGetVpRegisters. */
export const HvRegisterValue = struct('hv_get_vp_registers_output', {
  as64: struct('hv_register_value_u64', { low: u64, high: u64 }),
});

/** `struct hv_register_assoc`, the rep element of HvCallSetVpRegisters (32 bytes). */
export const HvRegisterAssoc = struct('hv_register_assoc', {
  name: u32,
  reserved1: u32,
  reserved2: u64,
  value: HvRegisterValue,
});

export const HvSetVpRegistersInput = struct('hv_set_vp_registers_input', {
  header: HvVpRegistersHeader,
  element: flex(HvRegisterAssoc),
});

/** HvCallModifySparseGpaPageHostVisibility input (tlfs.md §4.12.7). */
export const HV_MAX_MODIFY_GPA_REP_COUNT = 510;
export const HvGpaRangeForVisibility = struct('hv_gpa_range_for_visibility', {
  partition_id: u64,
  _visibility: bits('host_visibility', 'u32', { host_visibility: 2, reserved0: 30 }),
  reserved1: u32,
  gpa_page_list: bytes(8 * HV_MAX_MODIFY_GPA_REP_COUNT),
});
export const HvMemHostVisibility = { NOT_VISIBLE: 0, READ_ONLY: 1, READ_WRITE: 3 } as const;

/** MSI address and data as the x86 interrupt entry carries them. */
export const HvMsiEntry = struct('hv_msi_entry', {
  address: bits('hv_msi_address_register', 'u32', {
    reserved1: 2,
    destination_mode: 1,
    redirection_hint: 1,
    reserved2: 8,
    destination_id: 8,
    msi_base: 12,
  }),
  data: bits('hv_msi_data_register', 'u32', {
    vector: 8,
    delivery_mode: 3,
    reserved1: 3,
    level_assert: 1,
    trigger_mode: 1,
    reserved2: 16,
  }),
});

export const HvInterruptEntry = struct('hv_interrupt_entry', {
  source: u32,
  reserved1: u32,
  msi_entry: HvMsiEntry,
});
export const HvInterruptSource = { MSI: 1, IOAPIC: 2 } as const;

export const HvDeviceInterruptTarget = struct('hv_device_interrupt_target', {
  vector: u32,
  flags: u32,
  /** `vp_mask` without PROCESSOR_SET, a `hv_vpset` with it (a C union). */
  vp_set: HvVpSet,
});
export const HvDeviceInterruptTargetFlags = { MULTICAST: 1, PROCESSOR_SET: 2 } as const;

/** HvCallRetargetDeviceInterrupt input, x86 layout (tlfs.md §4.12.8). */
export const HvRetargetDeviceInterrupt = struct('hv_retarget_device_interrupt', {
  partition_id: u64,
  device_id: u64,
  int_entry: HvInterruptEntry,
  reserved2: u64,
  int_target: HvDeviceInterruptTarget,
});

/** HvCallGetVpIndexFromApicId input header (tlfs.md §4.12.9); rep elements are u32 APIC ids. */
export const HvGetVpIndexFromApicIdInput = struct('hv_get_vp_index_from_apic_id_input', {
  partition_id: u64,
  target_vtl: u8,
  reserved: bytes(7),
  apic_ids: flex(u32),
});

export const HvGetPartitionIdOutput = struct('hv_get_partition_id', { partition_id: u64 });

/** HvCallNotifyLongSpinWait input: one u64 spin count (tlfs.md §7.7). */
export const HvNotifyLongSpinWait = struct('hv_notify_long_spin_wait', { spin_count: u64 });
