// Every layout and constant hvkit declares, checked against the layouts of a real Linux kernel
// (../shared/oracle/linux-hv-layouts.json): sizes, field offsets, bit positions, enum values and
// compiled #define values.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as ctl from '../../src/tlfs/control.js';
import { Hints, HyperVCpuid, HYPERV_HYPERVISOR_PRESENT_BIT, HYPERV_VS_INTERFACE_EAX_SIGNATURE, HYPERV_VS_PROPERTIES_EAX_EXTENDED_IOAPIC_RTE, HvIsolationType, MiscX64, PrivHigh, PrivLow } from '../../src/tlfs/cpuid.js';
import { HvCall, HvExtCall } from '../../src/tlfs/hypercall-codes.js';
import * as inputs from '../../src/tlfs/hypercall-inputs.js';
import { HV_CRASH_CTL_CRASH_NOTIFY, HV_CRASH_CTL_CRASH_NOTIFY_MSG, HV_CRASH_PARAMS, HvMsr } from '../../src/tlfs/msr.js';
import { HV_LINUX_VENDOR_ID, linuxGuestOsId } from '../../src/tlfs/pages.js';
import { HV_PARTITION_ID_SELF, HV_VP_INDEX_SELF } from '../../src/tlfs/registers.js';
import { HvStatus } from '../../src/tlfs/status.js';
import { flatten } from '../../src/tlfs/struct.js';
import * as synic from '../../src/tlfs/synic.js';
import { HV_CLOCK_HZ, HV_MAX_MAX_DELTA_TICKS, HV_MIN_DELTA_TICKS } from '../../src/tlfs/time.js';
import { HV_HYP_PAGE_SHIFT, HV_HYP_PAGE_SIZE } from '../../src/memory/pages.js';
import { extractSubset, fullOracle, LAYOUTS, loadOracle, SUBSET_PATH, type OracleField } from './oracle.js';

const { oracle, source } = loadOracle();

/** Layouts Linux 6.1 does not have, and why each is still right. */
const NOT_IN_ORACLE: Record<string, string> = {
  hv_hypercall_input: 'Linux 6.1 has only HV_HYPERCALL_* masks; checked against them below',
  hv_hypercall_output: 'Linux 6.1 has only HV_HYPERCALL_RESULT_MASK and hv_repcomp(); checked below',
  hv_guest_os_id: 'Linux builds it with hv_generate_guest_id(); checked against HV_LINUX_VENDOR_ID below',
  hv_input_signal_event: 'Linux 6.1 issues SignalEvent as a fast call with a bare u64 (tlfs.md 4.12.2)',
  hv_vp_registers_header: "an anonymous member in Linux; checked as hv_get_vp_registers_input's header",
  hv_register_assoc: 'not in Linux 6.1 (tlfs.md 4.12.6)',
  hv_get_vp_index_from_apic_id_input: 'newer than Linux 6.1 (tlfs.md 4.12.9)',
  hv_notify_long_spin_wait: 'no Linux caller (tlfs.md 7.7)',
  vmbus_version_response2: "OpenVMM's VersionResponse2 for 6.0 (vmbus.md 2.16); Linux reads the first 16 bytes",
  vmbus_tl_connect_result: "OpenVMM's TL_CONNECT_RESULT (vmbus.md 2.17); Linux has no handler",
  'vmbus_channel_offer.u.pipe': "the pipe view of the offer's user area; Linux's u.pipe starts at the same place",
  vmdata_gpadl: 'DATA_USING_GPADL has no Linux struct; checked against vmbus.md 8.2 in vmbus-constants',
  vmbus_packet_trailer: 'Linux writes it as a bare u64 (prev_indices); checked by the ring tests against vmbus.md 13',
  scsi_fixed_sense_data: 'SPC-4 4.5.3 fixed-format sense data, which Linux parses into scsi_sense_hdr; checked in storage-constants',
  ic_heartbeat_message: "OpenVMM's HeartbeatMessage, the body the host sends; Linux reads only its first 8 bytes as heartbeat_msg_data.seq_num (checked in ic-constants)",
};

/** Leaves Linux names differently or 6.1 does not name yet: our name → the oracle's (or null). */
const RENAMES: Record<string, Record<string, string | null>> = {
  hv_synic_sint: {
    // Named in later kernels (hvgdk_mini.h); 6.1 still calls bits 19..63 reserved2.
    as_intercept: null,
    proxy: null,
    reserved2: null,
  },
  hv_message: { payload: 'u.payload' },
  hv_message_page: Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`sint_message[${i}].payload`, `sint_message[${i}].u.payload`])),
  hv_connection_id: { id: 'u.id', reserved: 'u.reserved' },
  hv_port_id: { id: 'u.id', reserved: 'u.reserved' },
  hv_input_post_message: { 'connectionid.id': 'connectionid.u.id', 'connectionid.reserved': 'connectionid.u.reserved' },
  // 6.1 calls msg_vtl and the reserved u16 padding1 (3 bytes), and feature_flags padding2.
  vmbus_channel_initiate_contact: { msg_vtl: null, reserved: null, feature_flags: 'padding2' },
  // Linux's view of feature_bits is a union with `value`; the other 31 bits are unnamed.
  hv_ring_buffer: { 'feature_bits.reserved': null },
  // Padding and the unnamed high bits of the network structures (hyperv_net.h leaves them unnamed).
  nvsp_2_vsc_capability: { reserved: null },
  nvsp_2_send_ndis_config: { 'capability.reserved': null },
  // The Packet Direct unions are declared as their common part and opaque bytes.
  nvsp_6_pd_api_req: { u: null },
  nvsp_6_pd_api_comp: { u: null },
  ndis_offload_params: { pad1: null, pad2: null },
  ndis_ipsecv2_offload: { pad1: null },
  ndis_offload: { 'ipsecv2.pad1': null, pad1: null },
  ndis_recv_scale_param: { pad1: null, pad2: null },
  ndis_tcp_ip_checksum_info: { 'transmit.reserved2': null, 'receive.reserved': null },
  // The union of cdb[16], sense_data[20] and reserved_array[20]: declared once at its full size.
  vmscsi_request: { payload: 'reserved_array' },
};

function oracleField(fields: OracleField[], name: string): OracleField | undefined {
  return fields.find((f) => f.name === name);
}

describe(`wire layouts against the Linux oracle (${source})`, () => {
  it('the vendored subset is exactly what the full oracle yields', () => {
    const full = fullOracle();
    if (!full) return; // only the subset is available here: nothing to compare it with
    expect(JSON.parse(readFileSync(SUBSET_PATH, 'utf8'))).toEqual(JSON.parse(JSON.stringify(extractSubset(full))));
  });

  it('every declared layout is in the oracle or has a recorded reason', () => {
    const absent = [...new Set(LAYOUTS.map((l) => l.name))].filter((n) => !oracle.structs[n]);
    expect(absent.sort()).toEqual(Object.keys(NOT_IN_ORACLE).sort());
  });

  for (const layout of LAYOUTS) {
    const o = oracle.structs[layout.name];
    if (!o) continue;
    it(`${layout.name}: size and every field offset match Linux`, () => {
      expect(layout.size).toBe(o.size);
      const theirs = o.flat ?? o.fields;
      const renames = RENAMES[layout.name] ?? {};
      let checked = 0;
      for (const f of flatten(layout)) {
        const alias = f.name in renames ? renames[f.name] : f.name;
        if (alias === null) continue;
        const t = oracleField(theirs, alias!);
        expect(t, `${layout.name}.${f.name} has no Linux counterpart`).toBeDefined();
        expect(t!.offset_bytes, `${layout.name}.${f.name} offset`).toBe(f.offset);
        if (f.bitOffset !== undefined) {
          expect(t!.bit_offset, `${layout.name}.${f.name} bit offset`).toBe(f.bitOffset);
          expect(t!.bit_size, `${layout.name}.${f.name} bit size`).toBe(f.bitSize);
        } else {
          expect(t!.size_bytes, `${layout.name}.${f.name} size`).toBe(f.size);
        }
        checked++;
      }
      expect(checked).toBeGreaterThan(0);
    });
  }
});

const macro = (name: string): bigint => {
  const m = oracle.macros[name];
  if (!m) throw new Error(`${name} is not in the oracle`);
  return BigInt(m.hex);
};
const enumValues = (name: string): Map<string, bigint> => new Map(oracle.enums[name]!.values.map((v) => [v.name, BigInt(v.value)]));

describe(`constants against the Linux oracle (${source})`, () => {
  const families: [string, Record<string, number>, string][] = [
    ['status codes', HvStatus, 'HV_STATUS_'],
    ['hypercall codes', HvCall, 'HVCALL_'],
    ['extended hypercall codes', HvExtCall, 'HV_EXT_CALL_'],
  ];
  for (const [what, table, prefix] of families) {
    it(`${what}: every Linux ${prefix}* is declared with its value, and every declared one Linux has agrees`, () => {
      const linux = Object.keys(oracle.macros).filter((k) => k.startsWith(prefix));
      expect(linux.length).toBeGreaterThan(1);
      for (const k of linux) expect(BigInt(table[k.slice(prefix.length)] ?? -1), k).toBe(macro(k));
    });
  }

  it('MSR numbers: every Linux HV_X64_MSR_* register number is declared with its value', () => {
    const linux = Object.keys(oracle.macros).filter((k) => k.startsWith('HV_X64_MSR_') && macro(k) >= 0x40000000n && macro(k) < 0x40010000n);
    expect(linux.length).toBeGreaterThan(30);
    for (const k of linux) expect(BigInt((HvMsr as Record<string, number>)[k.slice('HV_X64_MSR_'.length)] ?? -1), k).toBe(macro(k));
  });

  it('CPUID leaves', () => {
    const linux = Object.keys(oracle.macros).filter((k) => k.startsWith('HYPERV_CPUID_'));
    for (const k of linux) expect(BigInt((HyperVCpuid as Record<string, number>)[k.slice('HYPERV_CPUID_'.length)] ?? -1), k).toBe(macro(k));
    expect(BigInt(HYPERV_HYPERVISOR_PRESENT_BIT)).toBe(macro('HYPERV_HYPERVISOR_PRESENT_BIT'));
    expect(BigInt(HYPERV_VS_INTERFACE_EAX_SIGNATURE)).toBe(macro('HYPERV_VS_INTERFACE_EAX_SIGNATURE'));
    expect(BigInt(HYPERV_VS_PROPERTIES_EAX_EXTENDED_IOAPIC_RTE)).toBe(macro('HYPERV_VS_PROPERTIES_EAX_EXTENDED_IOAPIC_RTE'));
  });

  it('feature, privilege and recommendation bits', () => {
    const pairs: [number, string][] = [
      [PrivLow.VP_RUNTIME, 'HV_MSR_VP_RUNTIME_AVAILABLE'],
      [PrivLow.TIME_REF_COUNT, 'HV_MSR_TIME_REF_COUNT_AVAILABLE'],
      [PrivLow.SYNIC, 'HV_MSR_SYNIC_AVAILABLE'],
      [PrivLow.SYNTIMER, 'HV_MSR_SYNTIMER_AVAILABLE'],
      [PrivLow.APIC_ACCESS, 'HV_MSR_APIC_ACCESS_AVAILABLE'],
      [PrivLow.HYPERCALL, 'HV_MSR_HYPERCALL_AVAILABLE'],
      [PrivLow.VP_INDEX, 'HV_MSR_VP_INDEX_AVAILABLE'],
      [PrivLow.RESET, 'HV_MSR_RESET_AVAILABLE'],
      [PrivLow.STAT_PAGES, 'HV_MSR_STAT_PAGES_AVAILABLE'],
      [PrivLow.REFERENCE_TSC, 'HV_MSR_REFERENCE_TSC_AVAILABLE'],
      [PrivLow.GUEST_IDLE, 'HV_MSR_GUEST_IDLE_AVAILABLE'],
      [PrivLow.FREQUENCY_MSRS, 'HV_ACCESS_FREQUENCY_MSRS'],
      [PrivLow.REENLIGHTENMENT, 'HV_ACCESS_REENLIGHTENMENT'],
      [PrivLow.TSC_INVARIANT, 'HV_ACCESS_TSC_INVARIANT'],
      [PrivHigh.CREATE_PARTITIONS, 'HV_CREATE_PARTITIONS'],
      [PrivHigh.ACCESS_PARTITION_ID, 'HV_ACCESS_PARTITION_ID'],
      [PrivHigh.ACCESS_MEMORY_POOL, 'HV_ACCESS_MEMORY_POOL'],
      [PrivHigh.ADJUST_MESSAGE_BUFFERS, 'HV_ADJUST_MESSAGE_BUFFERS'],
      [PrivHigh.POST_MESSAGES, 'HV_POST_MESSAGES'],
      [PrivHigh.SIGNAL_EVENTS, 'HV_SIGNAL_EVENTS'],
      [PrivHigh.CREATE_PORT, 'HV_CREATE_PORT'],
      [PrivHigh.CONNECT_PORT, 'HV_CONNECT_PORT'],
      [PrivHigh.ACCESS_STATS, 'HV_ACCESS_STATS'],
      [PrivHigh.DEBUGGING, 'HV_DEBUGGING'],
      [PrivHigh.CPU_MANAGEMENT, 'HV_CPU_MANAGEMENT'],
      [PrivHigh.ENABLE_EXTENDED_HYPERCALLS, 'HV_ENABLE_EXTENDED_HYPERCALLS'],
      [PrivHigh.ISOLATION, 'HV_ISOLATION'],
      [MiscX64.MWAIT, 'HV_X64_MWAIT_AVAILABLE'],
      [MiscX64.GUEST_DEBUGGING, 'HV_X64_GUEST_DEBUGGING_AVAILABLE'],
      [MiscX64.PERF_MONITOR, 'HV_X64_PERF_MONITOR_AVAILABLE'],
      [MiscX64.CPU_DYNAMIC_PARTITIONING, 'HV_X64_CPU_DYNAMIC_PARTITIONING_AVAILABLE'],
      [MiscX64.HYPERCALL_XMM_INPUT, 'HV_X64_HYPERCALL_XMM_INPUT_AVAILABLE'],
      [MiscX64.GUEST_IDLE_STATE, 'HV_X64_GUEST_IDLE_STATE_AVAILABLE'],
      [MiscX64.FREQUENCY_MSRS, 'HV_FEATURE_FREQUENCY_MSRS_AVAILABLE'],
      [MiscX64.GUEST_CRASH_MSR, 'HV_FEATURE_GUEST_CRASH_MSR_AVAILABLE'],
      [MiscX64.DEBUG_MSRS, 'HV_FEATURE_DEBUG_MSRS_AVAILABLE'],
      [MiscX64.HYPERCALL_XMM_OUTPUT, 'HV_X64_HYPERCALL_XMM_OUTPUT_AVAILABLE'],
      [MiscX64.STIMER_DIRECT_MODE, 'HV_STIMER_DIRECT_MODE_AVAILABLE'],
      [Hints.AS_SWITCH, 'HV_X64_AS_SWITCH_RECOMMENDED'],
      [Hints.LOCAL_TLB_FLUSH, 'HV_X64_LOCAL_TLB_FLUSH_RECOMMENDED'],
      [Hints.REMOTE_TLB_FLUSH, 'HV_X64_REMOTE_TLB_FLUSH_RECOMMENDED'],
      [Hints.APIC_ACCESS, 'HV_X64_APIC_ACCESS_RECOMMENDED'],
      [Hints.SYSTEM_RESET, 'HV_X64_SYSTEM_RESET_RECOMMENDED'],
      [Hints.RELAXED_TIMING, 'HV_X64_RELAXED_TIMING_RECOMMENDED'],
      [Hints.DEPRECATING_AEOI, 'HV_DEPRECATING_AEOI_RECOMMENDED'],
      [Hints.CLUSTER_IPI, 'HV_X64_CLUSTER_IPI_RECOMMENDED'],
      [Hints.EX_PROCESSOR_MASKS, 'HV_X64_EX_PROCESSOR_MASKS_RECOMMENDED'],
      [Hints.ENLIGHTENED_VMCS, 'HV_X64_ENLIGHTENED_VMCS_RECOMMENDED'],
      [Hints.NO_NONARCH_CORESHARING, 'HV_X64_NO_NONARCH_CORESHARING'],
    ];
    for (const [ours, name] of pairs) expect(BigInt(ours), name).toBe(macro(name));
  });

  it('hypercall control and result values', () => {
    expect(ctl.HV_HYPERCALL_FAST_BIT).toBe(macro('HV_HYPERCALL_FAST_BIT'));
    expect(BigInt(ctl.HV_HYPERCALL_VARHEAD_OFFSET)).toBe(macro('HV_HYPERCALL_VARHEAD_OFFSET'));
    expect(ctl.HV_HYPERCALL_VARHEAD_MASK).toBe(macro('HV_HYPERCALL_VARHEAD_MASK'));
    expect(BigInt(ctl.HV_HYPERCALL_REP_COMP_OFFSET)).toBe(macro('HV_HYPERCALL_REP_COMP_OFFSET'));
    expect(ctl.HV_HYPERCALL_REP_COMP_1).toBe(macro('HV_HYPERCALL_REP_COMP_1'));
    expect(ctl.HV_HYPERCALL_REP_COMP_MASK).toBe(macro('HV_HYPERCALL_REP_COMP_MASK'));
    expect(BigInt(ctl.HV_HYPERCALL_REP_START_OFFSET)).toBe(macro('HV_HYPERCALL_REP_START_OFFSET'));
    expect(ctl.HV_HYPERCALL_REP_START_MASK).toBe(macro('HV_HYPERCALL_REP_START_MASK'));
    expect(ctl.HV_HYPERCALL_RESULT_MASK).toBe(macro('HV_HYPERCALL_RESULT_MASK'));
    expect(ctl.HV_HYPERCALL_RSVD0_MASK).toBe(macro('HV_HYPERCALL_RSVD0_MASK'));
    expect(ctl.HV_HYPERCALL_RSVD1_MASK).toBe(macro('HV_HYPERCALL_RSVD1_MASK'));
    expect(ctl.HV_HYPERCALL_RSVD2_MASK).toBe(macro('HV_HYPERCALL_RSVD2_MASK'));
    expect(ctl.HV_HYPERCALL_RSVD_MASK).toBe(macro('HV_HYPERCALL_RSVD_MASK'));
    expect(BigInt(ctl.HV_HYPERCALL_PARAM_ALIGN)).toBe(macro('HV_HYPERCALL_PARAM_ALIGN'));
    expect(BigInt(ctl.HV_HYPERCALL_MAX_XMM_REGISTERS)).toBe(macro('HV_HYPERCALL_MAX_XMM_REGISTERS'));
    // The bit-field declaration agrees with the masks.
    const C = ctl.HypercallControl.byName;
    expect(BigInt(1 << C.fast.shift)).toBe(macro('HV_HYPERCALL_FAST_BIT'));
    expect(C.var_header_size.mask).toBe(macro('HV_HYPERCALL_VARHEAD_MASK'));
    expect(C.rep_count.mask).toBe(macro('HV_HYPERCALL_REP_COMP_MASK'));
    expect(C.rep_start.mask).toBe(macro('HV_HYPERCALL_REP_START_MASK'));
    expect(C.reserved0.mask | C.nested.mask | C.reserved1.mask | C.reserved2.mask).toBe(macro('HV_HYPERCALL_RSVD_MASK'));
    expect(ctl.HypercallResult.byName.status.mask).toBe(macro('HV_HYPERCALL_RESULT_MASK'));
    expect(ctl.HypercallResult.byName.reps_completed.mask >> 32n).toBe(0xfffn); // hv_repcomp()
  });

  it('SynIC, timer, page and crash constants', () => {
    const pairs: [number | bigint, string][] = [
      [synic.HV_SYNIC_SINT_COUNT, 'HV_SYNIC_SINT_COUNT'],
      [synic.HV_SYNIC_STIMER_COUNT, 'HV_SYNIC_STIMER_COUNT'],
      [synic.HV_SYNIC_VERSION_1, 'HV_SYNIC_VERSION_1'],
      [synic.HV_SYNIC_FIRST_VALID_VECTOR, 'HV_SYNIC_FIRST_VALID_VECTOR'],
      [synic.HV_SYNIC_SINT_MASKED, 'HV_SYNIC_SINT_MASKED'],
      [synic.HV_SYNIC_SINT_AUTO_EOI, 'HV_SYNIC_SINT_AUTO_EOI'],
      [synic.SintRegister.byName.vector.mask, 'HV_SYNIC_SINT_VECTOR_MASK'],
      [synic.ScontrolRegister.byName.enable.mask, 'HV_SYNIC_CONTROL_ENABLE'],
      [synic.SimpRegister.byName.simp_enabled.mask, 'HV_SYNIC_SIMP_ENABLE'],
      [synic.SiefpRegister.byName.siefp_enabled.mask, 'HV_SYNIC_SIEFP_ENABLE'],
      [synic.HV_MESSAGE_SIZE, 'HV_MESSAGE_SIZE'],
      [synic.HV_MESSAGE_PAYLOAD_BYTE_COUNT, 'HV_MESSAGE_PAYLOAD_BYTE_COUNT'],
      [synic.HV_MESSAGE_PAYLOAD_QWORD_COUNT, 'HV_MESSAGE_PAYLOAD_QWORD_COUNT'],
      [synic.HV_EVENT_FLAGS_COUNT, 'HV_EVENT_FLAGS_COUNT'],
      [HV_CLOCK_HZ, 'HV_CLOCK_HZ'],
      [HV_MIN_DELTA_TICKS, 'HV_MIN_DELTA_TICKS'],
      [HV_MAX_MAX_DELTA_TICKS, 'HV_MAX_MAX_DELTA_TICKS'],
      [HV_HYP_PAGE_SIZE, 'HV_HYP_PAGE_SIZE'],
      [HV_HYP_PAGE_SHIFT, 'HV_HYP_PAGE_SHIFT'],
      [HV_LINUX_VENDOR_ID, 'HV_LINUX_VENDOR_ID'],
      [HV_PARTITION_ID_SELF, 'HV_PARTITION_ID_SELF'],
      [HV_VP_INDEX_SELF, 'HV_VP_INDEX_SELF'],
      [inputs.HV_IPI_LOW_VECTOR, 'HV_IPI_LOW_VECTOR'],
      [inputs.HV_IPI_HIGH_VECTOR, 'HV_IPI_HIGH_VECTOR'],
      [inputs.HV_MAX_MODIFY_GPA_REP_COUNT, 'HV_MAX_MODIFY_GPA_REP_COUNT'],
      [inputs.HV_MAX_FLUSH_REP_COUNT, 'HV_MAX_FLUSH_REP_COUNT'],
      [inputs.HV_MAX_FLUSH_PAGES, 'HV_MAX_FLUSH_PAGES'],
      [inputs.HvFlush.ALL_PROCESSORS, 'HV_FLUSH_ALL_PROCESSORS'],
      [inputs.HvFlush.ALL_VIRTUAL_ADDRESS_SPACES, 'HV_FLUSH_ALL_VIRTUAL_ADDRESS_SPACES'],
      [inputs.HvFlush.NON_GLOBAL_MAPPINGS_ONLY, 'HV_FLUSH_NON_GLOBAL_MAPPINGS_ONLY'],
      [inputs.HvFlush.USE_EXTENDED_RANGE_FORMAT, 'HV_FLUSH_USE_EXTENDED_RANGE_FORMAT'],
      [inputs.HvDeviceInterruptTargetFlags.MULTICAST, 'HV_DEVICE_INTERRUPT_TARGET_MULTICAST'],
      [inputs.HvDeviceInterruptTargetFlags.PROCESSOR_SET, 'HV_DEVICE_INTERRUPT_TARGET_PROCESSOR_SET'],
      [HV_CRASH_CTL_CRASH_NOTIFY, 'HV_CRASH_CTL_CRASH_NOTIFY'],
      [HV_CRASH_CTL_CRASH_NOTIFY_MSG, 'HV_CRASH_CTL_CRASH_NOTIFY_MSG'],
      [HV_CRASH_PARAMS, 'HV_X64_MSR_CRASH_PARAMS'],
    ];
    for (const [ours, name] of pairs) expect(BigInt(ours), name).toBe(macro(name));
    // hv_generate_guest_id(): vendor 0x8100 in [63:48], LINUX_VERSION_CODE in [47:16].
    expect(linuxGuestOsId(6, 1, 192) >> 48n).toBe(macro('HV_LINUX_VENDOR_ID'));
    expect(linuxGuestOsId(6, 8, 0)).toBe(0x8100000608000000n);
  });

  it('enums: message types, VP set formats, interrupt sources, visibility, isolation types', () => {
    const msg = enumValues('hv_message_type');
    for (const [name, v] of msg) expect(BigInt((synic.HvMessageType as Record<string, number>)[name.slice('HVMSG_'.length)] ?? -1), name).toBe(v);
    const sets = enumValues('HV_GENERIC_SET_FORMAT');
    expect(BigInt(inputs.HvGenericSetFormat.SPARSE_4K)).toBe(sets.get('HV_GENERIC_SET_SPARSE_4K'));
    expect(BigInt(inputs.HvGenericSetFormat.ALL)).toBe(sets.get('HV_GENERIC_SET_ALL'));
    const src = enumValues('hv_interrupt_source');
    expect(BigInt(inputs.HvInterruptSource.MSI)).toBe(src.get('HV_INTERRUPT_SOURCE_MSI'));
    expect(BigInt(inputs.HvInterruptSource.IOAPIC)).toBe(src.get('HV_INTERRUPT_SOURCE_IOAPIC'));
    const vis = enumValues('hv_mem_host_visibility');
    expect(BigInt(inputs.HvMemHostVisibility.NOT_VISIBLE)).toBe(vis.get('VMBUS_PAGE_NOT_VISIBLE'));
    expect(BigInt(inputs.HvMemHostVisibility.READ_ONLY)).toBe(vis.get('VMBUS_PAGE_VISIBLE_READ_ONLY'));
    expect(BigInt(inputs.HvMemHostVisibility.READ_WRITE)).toBe(vis.get('VMBUS_PAGE_VISIBLE_READ_WRITE'));
    for (const [name, v] of enumValues('hv_isolation_type')) {
      expect(BigInt((HvIsolationType as Record<string, number>)[name.slice('HV_ISOLATION_TYPE_'.length)] ?? -1), name).toBe(v);
    }
  });
});
