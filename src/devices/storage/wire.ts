// The synthetic storage protocol between storvsc and storvsp: one 64-byte vstor_packet per
// request, in-band or with its data in GPA-direct ranges. Linux 6.1 drivers/scsi/storvsc_drv.c
// (struct vstor_packet, vmscsi_request, vmstorage_channel_properties,
// vmstorage_protocol_version, hv_fc_wwn_packet, the VSTOR_/SRB_/STORVSC_ constants) and OpenVMM
// vm/devices/storage/storvsp_protocol (NtStatus, what the host sends). Every layout is checked
// against the oracle (test/oracle/storage-constants.test.ts).
import { bytes, struct, u16, u32, u8 } from '../../tlfs/struct.js';

// --- Layouts ---------------------------------------------------------------------------------

/**
 * struct vmscsi_request (52 bytes). `payload` is the C union of cdb[16], sense_data[20] and
 * reserved_array[20]: the request carries the CDB there, the completion the sense data. The
 * fields from `reserve` on are the Windows 8 extension: before protocol 5.1 the structure ends
 * at `reserve` (Linux's old vmscsi_size_delta, OpenVMM SCSI_REQUEST_LEN_V1 = 0x24).
 */
export const VmscsiRequest = struct('vmscsi_request', {
  length: u16,
  srb_status: u8,
  scsi_status: u8,
  port_number: u8,
  path_id: u8,
  target_id: u8,
  lun: u8,
  cdb_length: u8,
  sense_info_length: u8,
  data_in: u8,
  reserved: u8,
  data_transfer_length: u32,
  payload: bytes(20),
  reserve: u16,
  queue_tag: u8,
  queue_action: u8,
  srb_flags: u32,
  time_out_value: u32,
  queue_sort_ey: u32,
});
export type VmscsiRequestValue = ReturnType<typeof VmscsiRequest.decode>;

/** The request's size before the Windows 8 extension (protocols 2.0 and 4.2). */
export const VMSCSI_REQUEST_SIZE_PRE_WIN8 = VmscsiRequest.offsets.reserve;
/** STORVSC_MAX_CMD_LEN: the CDB bytes of `payload`. */
export const STORVSC_MAX_CMD_LEN = 16;
/** STORVSC_SENSE_BUFFER_SIZE (the same since Windows 8) and STORVSC_MAX_BUF_LEN_WITH_PADDING. */
export const STORVSC_SENSE_BUFFER_SIZE = 20;
export const STORVSC_MAX_BUF_LEN_WITH_PADDING = 20;

/** struct vmstorage_channel_properties: the answer to QUERY_PROPERTIES. */
export const ChannelProperties = struct('vmstorage_channel_properties', {
  reserved: u32,
  max_channel_cnt: u16,
  reserved1: u16,
  flags: u32,
  max_transfer_bytes: u32,
  reserved2: bytes(8),
});

/** struct vmstorage_protocol_version: major in the high byte, minor in the low; revision is Windows-only. */
export const ProtocolVersion = struct('vmstorage_protocol_version', { major_minor: u16, revision: u16 });

/** struct hv_fc_wwn_packet: a Fibre Channel host's port and node names (FCHBA_DATA). */
export const FcWwnPacket = struct('hv_fc_wwn_packet', {
  primary_active: u8,
  reserved1: bytes(3),
  primary_port_wwn: bytes(8),
  primary_node_wwn: bytes(8),
  secondary_port_wwn: bytes(8),
  secondary_node_wwn: bytes(8),
});

/**
 * struct vstor_packet (64 bytes): operation, flags, status, then a 52-byte union (`buffer`) that
 * holds one of the structures above, or CREATE_SUB_CHANNELS' u16 sub_channel_count. Before
 * protocol 5.1 a packet is 16 bytes shorter (the request without its Windows 8 extension).
 */
export const VstorPacket = struct('vstor_packet', { operation: u32, flags: u32, status: u32, buffer: bytes(52) });
export const VSTOR_PACKET_HEADER = VstorPacket.offsets.buffer;
/** What a packet of protocol 2.0 or 4.2 carries: the header and the short request. */
export const VSTOR_PACKET_SIZE_PRE_WIN8 = VSTOR_PACKET_HEADER + VMSCSI_REQUEST_SIZE_PRE_WIN8;

/**
 * Fixed-format sense data (SPC-4 4.5.3, 18 bytes), which storvsp puts in `payload` after a CHECK
 * CONDITION. Not a Linux structure: Linux parses sense into scsi_sense_hdr.
 */
export const FixedSense = struct('scsi_fixed_sense_data', {
  response_code: u8,
  obsolete: u8,
  sense_key: u8,
  information: bytes(4),
  additional_length: u8,
  command_specific: bytes(4),
  asc: u8,
  ascq: u8,
  fru: u8,
  sense_key_specific: bytes(3),
});

export const STORAGE_LAYOUTS = [VmscsiRequest, ChannelProperties, ProtocolVersion, FcWwnPacket, VstorPacket, FixedSense];

// --- Constants -------------------------------------------------------------------------------

/** enum vstor_packet_operation; EVENT_NOTIFICATION is OpenVMM's and past Linux's VSTOR_OPERATION_MAXIMUM. */
export const VstorOp = {
  COMPLETE_IO: 1,
  REMOVE_DEVICE: 2,
  EXECUTE_SRB: 3,
  RESET_LUN: 4,
  RESET_ADAPTER: 5,
  RESET_BUS: 6,
  BEGIN_INITIALIZATION: 7,
  END_INITIALIZATION: 8,
  QUERY_PROTOCOL_VERSION: 9,
  QUERY_PROPERTIES: 10,
  ENUMERATE_BUS: 11,
  FCHBA_DATA: 12,
  CREATE_SUB_CHANNELS: 13,
  MAXIMUM: 13,
} as const;

export const VSTOR_OP_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(VstorOp)
    .filter(([k]) => k !== 'MAXIMUM')
    .map(([k, v]) => [v, k]),
);

/** vstor_packet.flags: the server should send back a completion. */
export const REQUEST_COMPLETION_FLAG = 0x1;

/** VMSTOR_PROTO_VERSION(major, minor). */
export const vmstorVersion = (major: number, minor: number): number => ((major & 0xff) << 8) | (minor & 0xff);
export const VmstorVersion = {
  WIN6: vmstorVersion(2, 0),
  WIN7: vmstorVersion(4, 2),
  WIN8: vmstorVersion(5, 1),
  WIN8_1: vmstorVersion(6, 0),
  WIN10: vmstorVersion(6, 2),
} as const;
export const vmstorVersionString = (v: number): string => `${(v >> 8) & 0xff}.${v & 0xff}`;

/** Linux 6.1's protocol_version[], in the order it asks. */
export const LINUX_6_1_VMSTOR_VERSIONS: readonly number[] = [VmstorVersion.WIN10, VmstorVersion.WIN8_1, VmstorVersion.WIN8];
/** What Linux asked before 5.x dropped them (vmstor_protocols[] with WIN7 and WIN6 at the end). */
export const LEGACY_VMSTOR_VERSIONS: readonly number[] = [...LINUX_6_1_VMSTOR_VERSIONS, VmstorVersion.WIN7, VmstorVersion.WIN6];

/** The request's size for a protocol version: the Windows 8 extension exists from 5.1. */
export const vmscsiRequestSize = (version: number): number => (version >= VmstorVersion.WIN8 ? VmscsiRequest.size : VMSCSI_REQUEST_SIZE_PRE_WIN8);
export const vstorPacketSize = (version: number): number => VSTOR_PACKET_HEADER + vmscsiRequestSize(version);

/** vmstorage_channel_properties.flags. */
export const STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL = 0x1;
/** Channel property flags of the offer (Windows' old IDE drivers). */
export const STORAGE_CHANNEL_REMOVABLE_FLAG = 0x1;
export const STORAGE_CHANNEL_EMULATED_IDE_FLAG = 0x2;

/** vmscsi_request.data_in: enum storvsc_request_type ("matches Windows-end"). */
export const StorvscRequestType = { WRITE_TYPE: 0, READ_TYPE: 1, UNKNOWN_TYPE: 2 } as const;

/** SRB_FLAGS_* (srb_flags). */
export const SrbFlags = {
  QUEUE_ACTION_ENABLE: 0x00000002,
  DISABLE_DISCONNECT: 0x00000004,
  DISABLE_SYNCH_TRANSFER: 0x00000008,
  BYPASS_FROZEN_QUEUE: 0x00000010,
  DISABLE_AUTOSENSE: 0x00000020,
  DATA_IN: 0x00000040,
  DATA_OUT: 0x00000080,
  NO_DATA_TRANSFER: 0x00000000,
  UNSPECIFIED_DIRECTION: 0x000000c0,
  NO_QUEUE_FREEZE: 0x00000100,
  ADAPTER_CACHE_ENABLE: 0x00000200,
  FREE_SENSE_BUFFER: 0x00000400,
  D3_PROCESSING: 0x00000800,
  IS_ACTIVE: 0x00010000,
  ALLOCATED_FROM_ZONE: 0x00020000,
  SGLIST_FROM_POOL: 0x00040000,
  BYPASS_LOCKED_QUEUE: 0x00080000,
  NO_KEEP_AWAKE: 0x00100000,
  PORT_DRIVER_ALLOCSENSE: 0x00200000,
  PORT_DRIVER_SENSEHASPORT: 0x00400000,
  DONT_START_NEXT_PACKET: 0x00800000,
  PORT_DRIVER_RESERVED: 0x0f000000,
  CLASS_DRIVER_RESERVED: 0xf0000000,
} as const;

/** queue_tag and queue_action of a tagged request (SP_UNTAGGED, SRB_SIMPLE_TAG_REQUEST). */
export const SP_UNTAGGED = 0xff;
export const SRB_SIMPLE_TAG_REQUEST = 0x20;

/**
 * srb_status: the two high bits are flags, the rest an integer status (the subset Linux tests
 * for, and the ones OpenVMM's host sends).
 */
export const SrbStatus = {
  PENDING: 0x00,
  SUCCESS: 0x01,
  ABORTED: 0x02,
  ERROR: 0x04,
  INVALID_REQUEST: 0x06,
  DATA_OVERRUN: 0x12,
  INVALID_LUN: 0x20,
  QUEUE_FROZEN: 0x40,
  AUTOSENSE_VALID: 0x80,
} as const;
/** SRB_STATUS(): the integer status without the two flag bits. */
export const srbStatusCode = (s: number): number => s & ~(SrbStatus.AUTOSENSE_VALID | SrbStatus.QUEUE_FROZEN) & 0xff;

/** vstor_packet.status in a completion: an NTSTATUS (OpenVMM storvsp_protocol NtStatus). */
export const NtStatus = {
  SUCCESS: 0x00000000,
  BUFFER_OVERFLOW: 0x80000005,
  DEVICE_BUSY: 0x80000011,
  UNSUCCESSFUL: 0xc0000001,
  INVALID_PARAMETER: 0xc000000d,
  INVALID_DEVICE_REQUEST: 0xc0000010,
  REVISION_MISMATCH: 0xc0000059,
  DEVICE_NOT_CONNECTED: 0xc000009d,
  IO_TIMEOUT: 0xc00000b5,
  DEVICE_DOES_NOT_EXIST: 0xc00000c0,
  CANCELLED: 0xc0000120,
  INVALID_DEVICE_STATE: 0xc0000184,
  IO_DEVICE_ERROR: 0xc0000185,
} as const;

/** Addressing and channel limits Linux sets per controller type (storvsc_probe). */
export const STORVSC_MAX_LUNS_PER_TARGET = 255;
export const STORVSC_MAX_TARGETS = 2;
export const STORVSC_MAX_CHANNELS = 8;
export const STORVSC_FC_MAX_LUNS_PER_TARGET = 255;
export const STORVSC_FC_MAX_TARGETS = 128;
export const STORVSC_FC_MAX_CHANNELS = 8;
export const STORVSC_FC_MAX_XFER_SIZE = 512 * 1024;
export const STORVSC_IDE_MAX_LUNS_PER_TARGET = 64;
export const STORVSC_IDE_MAX_TARGETS = 1;
export const STORVSC_IDE_MAX_CHANNELS = 1;
/** STORVSC_MAX_PKT_SIZE: the channel's max_pkt_size, a descriptor and one vstor_packet. */
export const STORVSC_MAX_PKT_SIZE = 16 + VstorPacket.size;

/** The transaction ids storvsc uses for its own requests (include/linux/hyperv.h: U64_MAX - 2 and - 3). */
export const VMBUS_RQST_INIT = 0xffff_ffff_ffff_fffdn;
export const VMBUS_RQST_RESET = 0xffff_ffff_ffff_fffcn;
