// What storvsp asks of a SCSI target (a disk, a DVD): execute one command against a data buffer
// and answer with SAM status, the SRB status the host reports, the bytes moved and sense data.
// A target never throws for anything the guest sent: every failure is a CHECK CONDITION.
import { srbStatusForResult } from './srb.js';
import { fixedSense, ScsiStatus, SenseKey, type AscPair } from './scsi.js';
import { SrbStatus } from './wire.js';

/** A command's data buffer: the guest pages of its GPA-direct range, or a test's bytes. */
export interface ScsiData {
  /** Bytes in the buffer. */
  readonly length: number;
  /** May the target write into it (a transfer to the initiator)? */
  readonly writable: boolean;
  /** Copies `src` into the buffer at `offset` (to the initiator). Throws DataAccessError if not allowed. */
  write(offset: number, src: Uint8Array): void;
  /** A copy of [offset, offset + length) of the buffer (from the initiator). */
  read(offset: number, length: number): Uint8Array;
  /**
   * The buffer's bytes [offset, offset + length) as views into their memory, in order, so that a
   * back end can read or write them without a copy. Each view's length is a multiple of `align`
   * except where the memory itself is split; the caller copes with that.
   */
  views(offset: number, length: number): Uint8Array[];
}

/** The buffer cannot be used as the command needs (written when it may not be, or too short). */
export class DataAccessError extends Error {
  override readonly name = 'DataAccessError';
}

/** The outcome of one command. */
export interface ScsiResult {
  readonly scsiStatus: number;
  /** SRB status (without AUTOSENSE_VALID, which the host adds when sense is present). */
  readonly srbStatus: number;
  /** Bytes transferred. */
  readonly tx: number;
  readonly sense?: Uint8Array;
}

/** What the command asks of the target. */
export interface ScsiRequest {
  /** The 16 CDB bytes and how many of them are meant. */
  readonly cdb: Uint8Array;
  readonly cdbLength: number;
  readonly data: ScsiData;
}

/** One command of executeDirectMany: executeDirect's arguments, and its answer once run. */
export interface DirectCommand {
  readonly cdb: Uint8Array;
  readonly cdbLength: number;
  /** The buffer: `memory[gpa, gpa + length)`. */
  readonly gpa: number;
  readonly length: number;
  readonly writable: boolean;
  result: ScsiResult | undefined;
}

export interface ScsiTarget {
  /** Peripheral device type (INQUIRY byte 0): 0 disk, 5 CD/DVD. */
  readonly deviceType: number;
  execute(request: ScsiRequest): ScsiResult;
  /**
   * Whether executeDirect takes this command (a data command whose buffer is one run of
   * `length` bytes of guest RAM), from the command alone: nothing is done. While nothing else is
   * executed on the target, executeDirect then takes it.
   */
  takesDirect?(cdb: Uint8Array, cdbLength: number, length: number, writable: boolean): boolean;
  /**
   * execute() of a command takesDirect takes, whose buffer is `memory[at, at + length)` (guest RAM
   * the host reaches directly, nothing over it), with no ScsiRequest or ScsiData made for it: the
   * per-request path of a disk. Its answer and side effects are execute()'s. Undefined, having
   * done nothing, for a command takesDirect does not take.
   */
  executeDirect?(cdb: Uint8Array, cdbLength: number, memory: Uint8Array, at: number, length: number, writable: boolean): ScsiResult | undefined;
  /**
   * executeDirect of each of `cmds[from, to)` in order, its answer into its `result` (undefined for
   * one takesDirect does not take): the same answers and side effects as those calls one after the
   * other, so that a back end can do a run of reads back to back (storvsp's deferred I/O of a pump).
   */
  executeDirectMany?(cmds: readonly DirectCommand[], from: number, to: number, memory: Uint8Array): void;
  /** The target is detached or the VM stops: release what it holds (files). */
  close?(): void;
}

export const good = (tx: number): ScsiResult => ({ scsiStatus: ScsiStatus.GOOD, srbStatus: SrbStatus.SUCCESS, tx });

/** CHECK CONDITION with fixed sense; the SRB status follows OpenVMM's mapping (srb.ts). */
export function checkCondition(key: number, asc: AscPair, srbStatus = srbStatusForResult(key)): ScsiResult {
  return { scsiStatus: ScsiStatus.CHECK_CONDITION, srbStatus, tx: 0, sense: fixedSense(key, asc) };
}

export const illegalRequest = (asc: AscPair): ScsiResult => checkCondition(SenseKey.ILLEGAL_REQUEST, asc);

/** A data buffer over plain bytes (tests, the in-memory paths). */
export class ByteData implements ScsiData {
  constructor(
    readonly bytes: Uint8Array,
    readonly writable = true,
  ) {}

  get length(): number {
    return this.bytes.length;
  }

  write(offset: number, src: Uint8Array): void {
    if (!this.writable) throw new DataAccessError('the buffer is not writable');
    if (offset < 0 || offset + src.length > this.bytes.length) throw new DataAccessError(`write of ${src.length} bytes at ${offset} overruns the ${this.bytes.length}-byte buffer`);
    this.bytes.set(src, offset);
  }

  read(offset: number, length: number): Uint8Array {
    if (offset < 0 || length < 0 || offset + length > this.bytes.length) throw new DataAccessError(`read of ${length} bytes at ${offset} overruns the ${this.bytes.length}-byte buffer`);
    return this.bytes.slice(offset, offset + length);
  }

  views(offset: number, length: number): Uint8Array[] {
    if (offset < 0 || length < 0 || offset + length > this.bytes.length) throw new DataAccessError(`${length} bytes at ${offset} overrun the ${this.bytes.length}-byte buffer`);
    return [this.bytes.subarray(offset, offset + length)];
  }
}
