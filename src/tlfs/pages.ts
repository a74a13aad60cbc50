// MSR images that place overlay pages, and the VP assist page (tlfs.md §2.3–§2.5).
import { bits, bytes, struct, u32, u64, u8 } from './struct.js';

export const HypercallMsr = bits('hv_x64_msr_hypercall_contents', 'u64', {
  enable: 1,
  reserved: 11,
  guest_physical_address: 52,
});
/** Bit 1 of the HYPERCALL MSR: locked (only if 0x40000003.EDX bit 18; tlfs.md §2.3). */
export const HV_X64_MSR_HYPERCALL_LOCKED = 1n << 1n;

export const VpAssistMsr = bits('hv_vp_assist_msr_contents', 'u64', { enable: 1, reserved: 11, pfn: 52 });

/**
 * `struct hv_vp_assist_page` as Linux 6.1 declares it (the first 56 bytes of the 4 KiB page; later
 * kernels name more of the page, tlfs.md §2.5). The model uses only `apic_assist` (lazy EOI).
 */
export const VpAssistPage = struct('hv_vp_assist_page', {
  apic_assist: u32,
  reserved1: u32,
  vtl_control: bytes(24),
  nested_control: bytes(8),
  enlighten_vmentry: u8,
  reserved2: bytes(7),
  current_nested_vmcs: u64,
});

/** Guest OS ID, open-source encoding (bit 63 = 1; tlfs.md §2.2). */
export const GuestOsId = bits('hv_guest_os_id', 'u64', {
  build_number: 16,
  kernel_version: 32,
  os_id: 8,
  os_type: 7,
  open_source: 1,
});
export const HV_LINUX_VENDOR_ID = 0x8100;
export const GuestOsType = { UNDEFINED: 0, LINUX: 1, FREEBSD: 2, XEN: 3, ILLUMOS: 4 } as const;

/** Linux hv_generate_guest_id(): HV_LINUX_VENDOR_ID << 48 | LINUX_VERSION_CODE << 16. */
export function linuxGuestOsId(major: number, minor: number, sublevel: number): bigint {
  const code = (major << 16) | (minor << 8) | Math.min(sublevel, 255);
  return (BigInt(HV_LINUX_VENDOR_ID) << 48n) | (BigInt(code) << 16n);
}
