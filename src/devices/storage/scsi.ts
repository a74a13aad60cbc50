// SCSI as storvsp's targets and Linux's SCSI layer speak it: operation codes, statuses, sense
// keys and additional sense codes (SPC-4, SBC-3, MMC-6; the values Linux's include/scsi/scsi_proto.h
// names), and fixed-format sense data. CDBs are parsed in cdb.ts.
import { FixedSense } from './wire.js';

/** Operation codes (include/scsi/scsi_proto.h). */
export const ScsiOp = {
  TEST_UNIT_READY: 0x00,
  REQUEST_SENSE: 0x03,
  READ_6: 0x08,
  WRITE_6: 0x0a,
  INQUIRY: 0x12,
  MODE_SELECT: 0x15,
  RESERVE: 0x16,
  RELEASE: 0x17,
  MODE_SENSE: 0x1a,
  START_STOP: 0x1b,
  SEND_DIAGNOSTIC: 0x1d,
  ALLOW_MEDIUM_REMOVAL: 0x1e,
  SET_WINDOW: 0x24,
  READ_CAPACITY: 0x25,
  READ_10: 0x28,
  WRITE_10: 0x2a,
  VERIFY: 0x2f,
  SYNCHRONIZE_CACHE: 0x35,
  WRITE_SAME: 0x41,
  UNMAP: 0x42,
  READ_TOC: 0x43,
  GET_CONFIGURATION: 0x46,
  GET_EVENT_STATUS_NOTIFICATION: 0x4a,
  READ_DISC_INFORMATION: 0x51,
  MODE_SELECT_10: 0x55,
  MODE_SENSE_10: 0x5a,
  ATA_16: 0x85,
  READ_16: 0x88,
  WRITE_16: 0x8a,
  VERIFY_16: 0x8f,
  SYNCHRONIZE_CACHE_16: 0x91,
  WRITE_SAME_16: 0x93,
  SERVICE_ACTION_IN_16: 0x9e,
  REPORT_LUNS: 0xa0,
  ATA_12: 0xa1,
  MAINTENANCE_IN: 0xa3,
  READ_12: 0xa8,
  WRITE_12: 0xaa,
  GET_PERFORMANCE: 0xac,
  READ_DVD_STRUCTURE: 0xad,
  SET_CD_SPEED: 0xbb,
  MECHANISM_STATUS: 0xbd,
} as const;

/** SERVICE ACTION IN(16) service actions. */
export const SAI_READ_CAPACITY_16 = 0x10;
export const SAI_GET_LBA_STATUS = 0x12;

/** SAM status codes. */
export const ScsiStatus = { GOOD: 0x00, CHECK_CONDITION: 0x02, CONDITION_MET: 0x04, BUSY: 0x08, RESERVATION_CONFLICT: 0x18, TASK_SET_FULL: 0x28, TASK_ABORTED: 0x40 } as const;

/** Sense keys. */
export const SenseKey = {
  NO_SENSE: 0x0,
  RECOVERED_ERROR: 0x1,
  NOT_READY: 0x2,
  MEDIUM_ERROR: 0x3,
  HARDWARE_ERROR: 0x4,
  ILLEGAL_REQUEST: 0x5,
  UNIT_ATTENTION: 0x6,
  DATA_PROTECT: 0x7,
  ABORTED_COMMAND: 0xb,
} as const;

/** Additional sense code and qualifier pairs hvkit's targets report (SPC-4 Annex D). */
export const Asc = {
  NO_ADDITIONAL_SENSE: [0x00, 0x00],
  UNRECOVERED_READ_ERROR: [0x11, 0x00],
  PARAMETER_LIST_LENGTH_ERROR: [0x1a, 0x00],
  INVALID_COMMAND_OPERATION_CODE: [0x20, 0x00],
  LBA_OUT_OF_RANGE: [0x21, 0x00],
  INVALID_FIELD_IN_CDB: [0x24, 0x00],
  LOGICAL_UNIT_NOT_SUPPORTED: [0x25, 0x00],
  INVALID_FIELD_IN_PARAMETER_LIST: [0x26, 0x00],
  WRITE_PROTECTED: [0x27, 0x00],
  NOT_READY_TO_READY_CHANGE: [0x28, 0x00],
  POWER_ON_RESET: [0x29, 0x00],
  CAPACITY_DATA_CHANGED: [0x2a, 0x09],
  MEDIUM_NOT_PRESENT: [0x3a, 0x00],
  MEDIUM_NOT_PRESENT_TRAY_CLOSED: [0x3a, 0x01],
  MEDIUM_NOT_PRESENT_TRAY_OPEN: [0x3a, 0x02],
  WRITE_ERROR: [0x0c, 0x00],
  MEDIUM_REMOVAL_PREVENTED: [0x53, 0x02],
} as const satisfies Record<string, readonly [number, number]>;
export type AscPair = (typeof Asc)[keyof typeof Asc];

/** Peripheral device types (INQUIRY byte 0, bits 4:0). */
export const DeviceType = { DISK: 0x00, CDROM: 0x05, NO_LUN: 0x1f } as const;
/** Peripheral qualifier 3 with type 0x1f: "not capable of supporting a device on this LUN" (0x7f). */
export const INQUIRY_NO_LUN = 0x7f;

/** Fixed-format sense, current error (response code 0x70), 18 bytes with additional length 10. */
export function fixedSense(key: number, [asc, ascq]: readonly [number, number]): Uint8Array {
  return FixedSense.encode({
    response_code: 0x70,
    obsolete: 0,
    sense_key: key & 0x0f,
    information: new Uint8Array(4),
    additional_length: FixedSense.size - FixedSense.offsets.command_specific,
    command_specific: new Uint8Array(4),
    asc,
    ascq,
    fru: 0,
    sense_key_specific: new Uint8Array(3),
  });
}

/** The parts of sense data Linux acts on (scsi_normalize_sense: fixed 0x70/0x71 or descriptor 0x72/0x73). */
export interface SenseHeader {
  readonly responseCode: number;
  readonly key: number;
  readonly asc: number;
  readonly ascq: number;
}

/** scsi_normalize_sense: undefined when the bytes are not valid sense data. */
export function normalizeSense(sense: Uint8Array): SenseHeader | undefined {
  if (sense.length < 2) return undefined;
  const responseCode = sense[0]! & 0x7f;
  if ((responseCode & 0x70) !== 0x70) return undefined;
  if (responseCode >= 0x72) {
    // Descriptor format: key, asc, ascq in bytes 1..3.
    return { responseCode, key: (sense[1] ?? 0) & 0x0f, asc: sense[2] ?? 0, ascq: sense[3] ?? 0 };
  }
  return { responseCode, key: (sense[2] ?? 0) & 0x0f, asc: sense.length > 12 ? sense[12]! : 0, ascq: sense.length > 13 ? sense[13]! : 0 };
}

/** Big-endian fields of CDBs and parameter data. */
export const be16 = (b: Uint8Array, at: number): number => ((b[at]! << 8) | b[at + 1]!) >>> 0;
export const be24 = (b: Uint8Array, at: number): number => ((b[at]! << 16) | (b[at + 1]! << 8) | b[at + 2]!) >>> 0;
export const be32 = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
/** A 64-bit big-endian value; LBAs beyond 2^53 come back as Infinity (no disk is that large). */
export const be64 = (b: Uint8Array, at: number): number => {
  const v = be32(b, at) * 2 ** 32 + be32(b, at + 4);
  return Number.isSafeInteger(v) ? v : Infinity;
};
export function putBe16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}
export function putBe32(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 24) & 0xff;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}
export function putBe64(b: Uint8Array, at: number, v: number): void {
  putBe32(b, at, Math.floor(v / 2 ** 32));
  putBe32(b, at + 4, v >>> 0);
}

/** The name Linux's scsi_device_type() prints for a peripheral type, padded to 17 columns. */
export function scsiDeviceTypeName(type: number): string {
  const names: Record<number, string> = {
    0x00: 'Direct-Access    ',
    0x01: 'Sequential-Access',
    0x02: 'Printer          ',
    0x03: 'Processor        ',
    0x04: 'WORM             ',
    0x05: 'CD-ROM           ',
    0x06: 'Scanner          ',
    0x07: 'Optical Device   ',
    0x08: 'Medium Changer   ',
    0x09: 'Communications   ',
    0x0c: 'RAID             ',
    0x0d: 'Enclosure        ',
    0x0e: 'Direct-Access-RBC',
    0x1e: 'Well-known LUN   ',
    0x1f: 'No Device        ',
  };
  return names[type] ?? 'Unknown          ';
}
