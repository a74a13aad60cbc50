// SynIC registers, message slots and event flags (tlfs.md §5).
// Linux: include/hyperv/hvgdk_mini.h (hv_message*, hv_synic_*, HV_SYNIC_*).
import { bits, bytes, struct, u16, u32, u64, u8, array } from './struct.js';

export const HV_SYNIC_SINT_COUNT = 16;
export const HV_SYNIC_STIMER_COUNT = 4;
export const HV_SYNIC_VERSION_1 = 1;
export const HV_SYNIC_FIRST_VALID_VECTOR = 16;
export const HV_MESSAGE_SIZE = 256;
export const HV_MESSAGE_PAYLOAD_BYTE_COUNT = 240;
export const HV_MESSAGE_PAYLOAD_QWORD_COUNT = 30;
export const HV_EVENT_FLAGS_COUNT = 256 * 8;
export const HV_EVENT_FLAGS_BYTE_COUNT = 256;

/** Statically assigned SINTs (HV_SYNIC_*_SINT_INDEX; tlfs.md §5.1). */
export const SintIndex = { INTERCEPTION: 0, IOMMU_FAULT: 1, VMBUS: 2, FIRST_UNUSED: 5 } as const;

/** SINTx register. Bits 19 (as_intercept) and 20 (proxy) are newer than Linux 6.1, which calls them reserved. */
export const SintRegister = bits('hv_synic_sint', 'u64', {
  vector: 8,
  reserved1: 8,
  masked: 1,
  auto_eoi: 1,
  polling: 1,
  as_intercept: 1,
  proxy: 1,
  reserved2: 43,
});
export const HV_SYNIC_SINT_MASKED = 1n << 16n;
export const HV_SYNIC_SINT_AUTO_EOI = 1n << 17n;
export const HV_SYNIC_SINT_POLLING = 1n << 18n;
export const HV_SYNIC_SINT_AS_INTERCEPT = 1n << 19n;
export const HV_SYNIC_SINT_PROXY = 1n << 20n;
/** The reset value of every SINT: masked, vector 0. */
export const HV_SYNIC_SINT_RESET = HV_SYNIC_SINT_MASKED;

export const ScontrolRegister = bits('hv_synic_scontrol', 'u64', { enable: 1, reserved: 63 });
export const SimpRegister = bits('hv_synic_simp', 'u64', { simp_enabled: 1, preserved: 11, base_simp_gpa: 52 });
export const SiefpRegister = bits('hv_synic_siefp', 'u64', { siefp_enabled: 1, preserved: 11, base_siefp_gpa: 52 });

/** `union hv_message_flags`. */
export const MessageFlags = bits('hv_message_flags', 'u8', { msg_pending: 1, reserved: 7 });

export const HvMessageHeader = struct('hv_message_header', {
  message_type: u32,
  payload_size: u8,
  message_flags: MessageFlags,
  reserved: u16,
  /** The sender, or the port id for port messages (`union { sender; port }`). */
  sender: u64,
});

export const HvMessage = struct('hv_message', {
  header: HvMessageHeader,
  payload: bytes(HV_MESSAGE_PAYLOAD_BYTE_COUNT),
});

/** The SIMP page: one 256-byte slot per SINT. */
export const HvMessagePage = struct('hv_message_page', {
  sint_message: array(HvMessage, HV_SYNIC_SINT_COUNT),
});

/** Message types (enum hv_message_type; tlfs.md §5.3). Hypervisor messages have bit 31 set. */
export const HvMessageType = {
  NONE: 0x00000000,
  UNMAPPED_GPA: 0x80000000,
  GPA_INTERCEPT: 0x80000001,
  UNACCEPTED_GPA: 0x80000003,
  GPA_ATTRIBUTE_INTERCEPT: 0x80000004,
  TIMER_EXPIRED: 0x80000010,
  INVALID_VP_REGISTER_VALUE: 0x80000020,
  UNRECOVERABLE_EXCEPTION: 0x80000021,
  UNSUPPORTED_FEATURE: 0x80000022,
  OPAQUE_INTERCEPT: 0x8000003f,
  EVENTLOG_BUFFERCOMPLETE: 0x80000040,
  HYPERCALL_INTERCEPT: 0x80000050,
  SYNIC_EVENT_INTERCEPT: 0x80000060,
  SYNIC_SINT_INTERCEPT: 0x80000061,
  SYNIC_SINT_DELIVERABLE: 0x80000062,
  ASYNC_CALL_COMPLETION: 0x80000070,
  SCHEDULER_VP_SIGNAL_BITSET: 0x80000100,
  SCHEDULER_VP_SIGNAL_PAIR: 0x80000101,
  X64_IOPORT_INTERCEPT: 0x80010000,
  X64_MSR_INTERCEPT: 0x80010001,
  X64_CPUID_INTERCEPT: 0x80010002,
  X64_EXCEPTION_INTERCEPT: 0x80010003,
  X64_APIC_EOI: 0x80010004,
  X64_LEGACY_FP_ERROR: 0x80010005,
  X64_IOMMU_PRQ: 0x80010006,
  X64_HALT: 0x80010007,
  X64_INTERRUPTION_DELIVERABLE: 0x80010008,
  X64_SIPI_INTERCEPT: 0x80010009,
} as const;

/** `union hv_port_id` / `union hv_connection_id`: a 24-bit id, upper byte reserved. */
export const PortId = bits('hv_port_id', 'u32', { id: 24, reserved: 8 });
export const ConnectionId = bits('hv_connection_id', 'u32', { id: 24, reserved: 8 });
export const HV_PORT_ID_MASK = 0xffffff;

/** Port types (enum hv_port_type; tlfs.md §5.8). */
export const HvPortType = { MESSAGE: 1, EVENT: 2, MONITOR: 3, DOORBELL: 4 } as const;
export type HvPortTypeValue = (typeof HvPortType)[keyof typeof HvPortType];
