// The VHDX on-disk format (MS-VHDX 1.0), one declaration per structure: the file identifier, the
// two headers, the region table, the log's entry header, descriptors and data sectors, the
// metadata table and its items, and the BAT entry. The facts come from the specification as qemu's
// block/vhdx.h restates it (offsets, signatures, flags, states, the chunk ratio) and from OpenVMM's
// storage crates; no code of either is used. Every checksum is CRC-32C over the structure with its
// checksum field zero.
import { crc32c } from '../crc.js';
import { bits, bytes, guid, struct, u16, u32, u64 } from '../../../tlfs/struct.js';

export const KIB = 1024;
export const MIB = 1024 * 1024;

/** The first 1 MiB: file identifier, header 1, header 2, region table 1, region table 2, each 64 KiB apart. */
export const FILE_ID_OFFSET = 0;
export const HEADER1_OFFSET = 64 * KIB;
export const HEADER2_OFFSET = 128 * KIB;
export const REGION_TABLE1_OFFSET = 192 * KIB;
export const REGION_TABLE2_OFFSET = 256 * KIB;
/** A header's checksum covers 4 KiB; a region table's 64 KiB. */
export const HEADER_SIZE = 4 * KIB;
export const REGION_TABLE_SIZE = 64 * KIB;

/** "vhdxfile" (a u64), "head", "regi", "loge", "desc", "zero", "data" (u32s), "metadata" (a u64), little-endian. */
export const Signature = {
  FILE: 0x656c6966_78646876n,
  HEADER: 0x64616568,
  REGION: 0x69676572,
  LOG_ENTRY: 0x65676f6c,
  DESCRIPTOR: 0x63736564,
  ZERO: 0x6f72657a,
  DATA: 0x61746164,
  METADATA: 0x61746164_6174656dn,
} as const;

export const FileIdentifier = struct('vhdx_file_identifier', { signature: u64, creator: bytes(512) });

export const Header = struct('vhdx_header', {
  signature: u32,
  checksum: u32,
  sequence_number: u64,
  file_write_guid: guid,
  data_write_guid: guid,
  log_guid: guid,
  log_version: u16,
  version: u16,
  log_length: u32,
  log_offset: u64,
  reserved: bytes(4016),
});
export type HeaderValue = ReturnType<typeof Header.decode>;

export const RegionTableHeader = struct('vhdx_region_table_header', { signature: u32, checksum: u32, entry_count: u32, reserved: u32 });
export const RegionTableEntry = struct('vhdx_region_table_entry', {
  guid,
  file_offset: u64,
  length: u32,
  data_bits: bits('vhdx_region_flags', 'u32', { required: 1, reserved: 31 }),
});
/** At most 2047 entries follow the header in the 64 KiB table. */
export const MAX_REGION_ENTRIES = 2047;

export const LogEntryHeader = struct('vhdx_log_entry_header', {
  signature: u32,
  checksum: u32,
  entry_length: u32,
  tail: u32,
  sequence_number: u64,
  descriptor_count: u32,
  reserved: u32,
  log_guid: guid,
  flushed_file_offset: u64,
  last_file_offset: u64,
});
/** Data and zero descriptors share a layout: `a` is trailing_bytes (data) or reserved (zero), `b` leading_bytes or zero_length. */
export const LogDescriptor = struct('vhdx_log_descriptor', { signature: u32, a: u32, b: u64, file_offset: u64, sequence_number: u64 });
export const LogDataSector = struct('vhdx_log_data_sector', { signature: u32, sequence_high: u32, data: bytes(4084), sequence_low: u32 });
/** Log entries and data sectors are 4 KiB sectors; a log is a multiple of 1 MiB. */
export const LOG_SECTOR = 4 * KIB;

export const MetadataTableHeader = struct('vhdx_metadata_table_header', { signature: u64, reserved: u16, entry_count: u16, reserved2: bytes(20) });
export const MetadataTableEntry = struct('vhdx_metadata_table_entry', {
  item_id: guid,
  offset: u32,
  length: u32,
  data_bits: bits('vhdx_metadata_flags', 'u32', { is_user: 1, is_virtual_disk: 1, is_required: 1, reserved: 29 }),
  reserved2: u32,
});
/** The metadata table is the first 64 KiB of its region, items follow; at most 2047 entries. */
export const METADATA_TABLE_SIZE = 64 * KIB;
export const MAX_METADATA_ENTRIES = 2047;

export const FileParameters = struct('vhdx_file_parameters', {
  block_size: u32,
  data_bits: bits('vhdx_file_parameter_flags', 'u32', { leave_blocks_allocated: 1, has_parent: 1, reserved: 30 }),
});
export const ParentLocatorHeader = struct('vhdx_parent_locator_header', { locator_type: guid, reserved: u16, key_value_count: u16 });
export const ParentLocatorEntry = struct('vhdx_parent_locator_entry', { key_offset: u32, value_offset: u32, key_length: u16, value_length: u16 });

/** A BAT entry: a state, and where the block is in 1 MiB units. */
export const BatEntry = bits('vhdx_bat_entry', 'u64', { state: 3, reserved: 17, file_offset_mb: 44 });

/** Payload block states (MS-VHDX 2.5.1.1; qemu names UNMAPPED 5, hvkit never writes it). */
export const PayloadState = { NOT_PRESENT: 0, UNDEFINED: 1, ZERO: 2, UNMAPPED: 3, UNMAPPED_QEMU: 5, FULLY_PRESENT: 6, PARTIALLY_PRESENT: 7 } as const;
/** Sector bitmap block states. */
export const BitmapState = { NOT_PRESENT: 0, PRESENT: 6 } as const;

/** The well-known GUIDs: the two required regions, the metadata items, the parent locator type. */
export const Guid = {
  BAT_REGION: '2dc27766-f623-4200-9d64-115e9bfd4a08',
  METADATA_REGION: '8b7ca206-4790-4b9a-b8fe-575f050f886e',
  FILE_PARAMETERS: 'caa16737-fa36-4d43-b3b6-33f0aa44e76b',
  VIRTUAL_DISK_SIZE: '2fa54224-cd1b-4876-b211-5dbed83bf4b8',
  PAGE83_DATA: 'beca12ab-b2e6-4523-93ef-c309e000c746',
  LOGICAL_SECTOR_SIZE: '8141bf1d-a96f-4709-ba47-f233a8faab5f',
  PHYSICAL_SECTOR_SIZE: 'cda348c7-445d-4471-9cc9-e9885251c556',
  PARENT_LOCATOR: 'a8d35f2d-b30b-454d-abf7-d3d84834ab0c',
  PARENT_LOCATOR_TYPE: 'b04aefb7-d19e-4a81-b789-25b8e9445913',
} as const;
export const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

/** The limits of MS-VHDX: blocks of 1 to 256 MiB (a power of two), disks up to 64 TiB, 512 or 4096-byte sectors. */
export const MIN_BLOCK_SIZE = MIB;
export const MAX_BLOCK_SIZE = 256 * MIB;
export const MAX_DISK_SIZE = 64 * 1024 * 1024 * MIB;
/** Sectors one sector bitmap block covers: 2^23 (one bit each in 1 MiB). */
export const SECTORS_PER_BITMAP = 2 ** 23;

/** The CRC-32C of `b` with its u32 checksum field at `at` taken as zero (every VHDX checksum is so). */
export function checksumOf(b: Uint8Array, at: number): number {
  const copy = b.slice();
  copy.fill(0, at, at + 4);
  return crc32c(copy);
}

/** Whether `b`'s checksum field at `at` holds its checksum. */
export function checksumValid(b: Uint8Array, at: number): boolean {
  return checksumOf(b, at) === new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);
}

/** Fills in `b`'s checksum field at `at`. */
export function seal(b: Uint8Array, at: number): void {
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(at, checksumOf(b, at), true);
}

/** A fresh random GUID (RFC 4122 version 4) from the platform's crypto. */
export function randomGuid(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** UTF-16LE, as the file identifier's creator and the parent locator's keys and values are. */
export function utf16(s: string): Uint8Array {
  const out = new Uint8Array(s.length * 2);
  for (let i = 0; i < s.length; i++) {
    out[2 * i] = s.charCodeAt(i) & 0xff;
    out[2 * i + 1] = s.charCodeAt(i) >> 8;
  }
  return out;
}

export function fromUtf16(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i + 1 < b.length; i += 2) s += String.fromCharCode(b[i]! | (b[i + 1]! << 8));
  return s;
}
