// Parsing a CDB into a typed command: the field layouts of SBC-3 (block commands), SPC-4 (primary
// commands) and MMC-6 (the multimedia subset Linux's sr uses). The parser never throws: a CDB it
// cannot take is a CdbProblem naming the field, which a target answers with CHECK CONDITION,
// ILLEGAL REQUEST (OpenVMM scsidisk lib.rs validates the same fields the same way).
import { Asc, be16, be24, be32, be64, SAI_READ_CAPACITY_16, ScsiOp, type AscPair } from './scsi.js';

export type Cdb =
  | { readonly op: 'test-unit-ready' }
  | { readonly op: 'request-sense'; readonly allocation: number; readonly desc: boolean }
  | { readonly op: 'inquiry'; readonly evpd: boolean; readonly page: number; readonly allocation: number }
  | { readonly op: 'read' | 'write'; readonly lba: number; readonly blocks: number; readonly fua: boolean; readonly size: 6 | 10 | 12 | 16 }
  | { readonly op: 'verify'; readonly lba: number; readonly blocks: number; readonly bytchk: number }
  | { readonly op: 'read-capacity-10' }
  | { readonly op: 'read-capacity-16'; readonly allocation: number }
  | { readonly op: 'mode-sense'; readonly ten: boolean; readonly dbd: boolean; readonly pc: number; readonly page: number; readonly subpage: number; readonly allocation: number }
  | { readonly op: 'mode-select'; readonly ten: boolean; readonly pf: boolean; readonly sp: boolean; readonly length: number }
  | { readonly op: 'sync-cache'; readonly lba: number; readonly blocks: number; readonly immed: boolean }
  | { readonly op: 'unmap'; readonly anchor: boolean; readonly length: number }
  | { readonly op: 'write-same'; readonly lba: number; readonly blocks: number; readonly unmap: boolean; readonly anchor: boolean; readonly ndob: boolean; readonly size: 10 | 16 }
  | { readonly op: 'report-luns'; readonly select: number; readonly allocation: number }
  | { readonly op: 'start-stop'; readonly immed: boolean; readonly start: boolean; readonly loej: boolean; readonly powerCondition: number }
  | { readonly op: 'prevent-allow'; readonly prevent: number }
  | { readonly op: 'read-toc'; readonly msf: boolean; readonly format: number; readonly track: number; readonly allocation: number }
  | { readonly op: 'get-configuration'; readonly rt: number; readonly start: number; readonly allocation: number }
  | { readonly op: 'get-event-status'; readonly polled: boolean; readonly classes: number; readonly allocation: number }
  | { readonly op: 'read-disc-information'; readonly type: number; readonly allocation: number }
  /** An operation code no hvkit target implements. */
  | { readonly op: 'unsupported'; readonly opcode: number };

export interface CdbProblem {
  readonly op: 'invalid';
  readonly opcode: number;
  /** The CDB field at fault. */
  readonly field: string;
  readonly asc: AscPair;
}

/** Bytes each group of operation codes occupies (SPC-4 4.2.5.1: group code = opcode bits 7:5). */
export function cdbLength(opcode: number): number {
  switch (opcode >> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return 16;
  }
}

const invalid = (opcode: number, field: string, asc: AscPair = Asc.INVALID_FIELD_IN_CDB): CdbProblem => ({ op: 'invalid', opcode, field, asc });

/** A request's CDB as parseCdb takes it: at most its first 16 bytes (no view made when it has no more). */
export const cdbBytes = (cdb: Uint8Array): Uint8Array => (cdb.length > 16 ? cdb.subarray(0, 16) : cdb);

/**
 * Parses `cdb` (the request's 16 CDB bytes, of which `length` are meant). A CDB shorter than its
 * operation code's group is invalid; unknown operation codes are `unsupported`.
 */
export function parseCdb(cdb: Uint8Array, length = cdb.length): Cdb | CdbProblem {
  if (cdb.length === 0 || length === 0) return invalid(0, 'operation code');
  const op = cdb[0]!;
  if (length > cdb.length || length > 16) return invalid(op, 'cdb_length');
  const need = cdbLength(op);
  if (length < need || cdb.length < need) return invalid(op, 'cdb_length');
  const b = cdb;
  switch (op) {
    case ScsiOp.TEST_UNIT_READY:
      return { op: 'test-unit-ready' };
    case ScsiOp.REQUEST_SENSE:
      return { op: 'request-sense', desc: (b[1]! & 1) !== 0, allocation: b[4]! };
    case ScsiOp.INQUIRY: {
      // CMDDT (bit 1) is obsolete; a page code without EVPD is invalid (SPC-4 6.6.1).
      if (b[1]! & 0x02) return invalid(op, 'cmddt');
      const evpd = (b[1]! & 0x01) !== 0;
      if (!evpd && b[2] !== 0) return invalid(op, 'page code');
      return { op: 'inquiry', evpd, page: b[2]!, allocation: be16(b, 3) };
    }
    case ScsiOp.READ_6:
    case ScsiOp.WRITE_6:
      // SBC-3 5.15: READ(6)/WRITE(6) have a 21-bit LBA; a transfer length of 0 means 256 blocks.
      return { op: op === ScsiOp.READ_6 ? 'read' : 'write', lba: be24(b, 1) & 0x1fffff, blocks: b[4] === 0 ? 256 : b[4]!, fua: false, size: 6 };
    case ScsiOp.READ_10:
    case ScsiOp.WRITE_10:
      if (b[1]! & 0x01) return invalid(op, 'reladr');
      return { op: op === ScsiOp.READ_10 ? 'read' : 'write', lba: be32(b, 2), blocks: be16(b, 7), fua: (b[1]! & 0x08) !== 0, size: 10 };
    case ScsiOp.READ_12:
    case ScsiOp.WRITE_12:
      if (b[1]! & 0x01) return invalid(op, 'reladr');
      return { op: op === ScsiOp.READ_12 ? 'read' : 'write', lba: be32(b, 2), blocks: be32(b, 6), fua: (b[1]! & 0x08) !== 0, size: 12 };
    case ScsiOp.READ_16:
    case ScsiOp.WRITE_16:
      return { op: op === ScsiOp.READ_16 ? 'read' : 'write', lba: be64(b, 2), blocks: be32(b, 10), fua: (b[1]! & 0x08) !== 0, size: 16 };
    case ScsiOp.VERIFY:
      return { op: 'verify', lba: be32(b, 2), blocks: be16(b, 7), bytchk: (b[1]! >> 1) & 3 };
    case ScsiOp.VERIFY_16:
      return { op: 'verify', lba: be64(b, 2), blocks: be32(b, 10), bytchk: (b[1]! >> 1) & 3 };
    case ScsiOp.READ_CAPACITY:
      return { op: 'read-capacity-10' };
    case ScsiOp.SERVICE_ACTION_IN_16:
      if ((b[1]! & 0x1f) !== SAI_READ_CAPACITY_16) return invalid(op, 'service action');
      return { op: 'read-capacity-16', allocation: be32(b, 10) };
    case ScsiOp.MODE_SENSE:
      return { op: 'mode-sense', ten: false, dbd: (b[1]! & 0x08) !== 0, pc: b[2]! >> 6, page: b[2]! & 0x3f, subpage: b[3]!, allocation: b[4]! };
    case ScsiOp.MODE_SENSE_10:
      return { op: 'mode-sense', ten: true, dbd: (b[1]! & 0x08) !== 0, pc: b[2]! >> 6, page: b[2]! & 0x3f, subpage: b[3]!, allocation: be16(b, 7) };
    case ScsiOp.MODE_SELECT:
      return { op: 'mode-select', ten: false, pf: (b[1]! & 0x10) !== 0, sp: (b[1]! & 0x01) !== 0, length: b[4]! };
    case ScsiOp.MODE_SELECT_10:
      return { op: 'mode-select', ten: true, pf: (b[1]! & 0x10) !== 0, sp: (b[1]! & 0x01) !== 0, length: be16(b, 7) };
    case ScsiOp.SYNCHRONIZE_CACHE:
      return { op: 'sync-cache', lba: be32(b, 2), blocks: be16(b, 7), immed: (b[1]! & 0x02) !== 0 };
    case ScsiOp.SYNCHRONIZE_CACHE_16:
      return { op: 'sync-cache', lba: be64(b, 2), blocks: be32(b, 10), immed: (b[1]! & 0x02) !== 0 };
    case ScsiOp.UNMAP:
      return { op: 'unmap', anchor: (b[1]! & 0x01) !== 0, length: be16(b, 7) };
    case ScsiOp.WRITE_SAME:
      return { op: 'write-same', lba: be32(b, 2), blocks: be16(b, 7), unmap: (b[1]! & 0x08) !== 0, anchor: (b[1]! & 0x10) !== 0, ndob: false, size: 10 };
    case ScsiOp.WRITE_SAME_16:
      return { op: 'write-same', lba: be64(b, 2), blocks: be32(b, 10), unmap: (b[1]! & 0x08) !== 0, anchor: (b[1]! & 0x10) !== 0, ndob: (b[1]! & 0x01) !== 0, size: 16 };
    case ScsiOp.REPORT_LUNS:
      return { op: 'report-luns', select: b[2]!, allocation: be32(b, 6) };
    case ScsiOp.START_STOP:
      return { op: 'start-stop', immed: (b[1]! & 0x01) !== 0, start: (b[4]! & 0x01) !== 0, loej: (b[4]! & 0x02) !== 0, powerCondition: b[4]! >> 4 };
    case ScsiOp.ALLOW_MEDIUM_REMOVAL:
      return { op: 'prevent-allow', prevent: b[4]! & 0x03 };
    case ScsiOp.READ_TOC:
      return { op: 'read-toc', msf: (b[1]! & 0x02) !== 0, format: b[2]! & 0x0f, track: b[6]!, allocation: be16(b, 7) };
    case ScsiOp.GET_CONFIGURATION:
      return { op: 'get-configuration', rt: b[1]! & 0x03, start: be16(b, 2), allocation: be16(b, 7) };
    case ScsiOp.GET_EVENT_STATUS_NOTIFICATION:
      return { op: 'get-event-status', polled: (b[1]! & 0x01) !== 0, classes: b[4]!, allocation: be16(b, 7) };
    case ScsiOp.READ_DISC_INFORMATION:
      return { op: 'read-disc-information', type: b[1]! & 0x07, allocation: be16(b, 7) };
    default:
      return { op: 'unsupported', opcode: op };
  }
}
