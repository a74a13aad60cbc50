// The guest's block-device API: what other guest code (and the host's script, through the guest)
// uses to read, write, flush and discard a disk by logical block. Each call returns a request
// whose `result` is set when it completes, and calls `onComplete` then. `waitFor` runs the
// guest's clock until a request completes (wait_for_completion with the model's bound).
import type { BlockErrno } from './scsi-core.js';

export type BlockOp = 'read' | 'write' | 'flush' | 'discard' | 'write-zeroes';

export type BlockResult = { readonly ok: true; readonly data?: Uint8Array } | { readonly ok: false; readonly errno: BlockErrno; readonly message: string };

export interface BlockRequest {
  readonly op: BlockOp;
  readonly lba: number;
  readonly blocks: number;
  /** Set once the request completed. */
  result: BlockResult | undefined;
  onComplete: ((r: BlockResult) => void) | undefined;
}

export interface BlockIoOptions {
  /** The CPU issuing the request (its hardware queue and channel); default 0. */
  readonly cpu?: number;
  /** The process named in "attempt to access beyond end of device" lines. */
  readonly comm?: string;
  /**
   * read(): the buffer the data goes to instead of a new one, as read(2) fills its caller's (at
   * least blocks × logicalBlockSize bytes, else EINVAL); the result's data is a view of its start.
   * What it holds after a failed read is unspecified. A disk (sd) has the device fill a buffer in
   * the guest's own RAM (a view of its memory starting on a page, as a process's buffer would be)
   * directly, as an O_DIRECT read's bio takes the user's pages; any other buffer is filled by a
   * copy from the pages the kernel read into.
   */
  readonly into?: Uint8Array;
}

/** A read's `into` buffer that cannot hold `bytes`: the failure to settle with, else undefined. */
export function intoTooSmall(o: BlockIoOptions, bytes: number): BlockResult | undefined {
  if (!o.into || !(o.into.length < bytes)) return undefined;
  return { ok: false, errno: 'EINVAL', message: `the ${o.into.length}-byte buffer cannot hold the ${bytes} bytes read` };
}

export interface BlockDevice {
  /** "sda", "sr0". */
  readonly name: string;
  readonly logicalBlockSize: number;
  readonly physicalBlockSize: number;
  /** Capacity in logical blocks. */
  readonly capacity: number;
  readonly readOnly: boolean;
  /** Largest request in logical blocks before the block layer splits it (max_sectors). */
  readonly maxTransferBlocks: number;
  /** Whether the device is still there (false once removed). */
  readonly present: boolean;
  read(lba: number, blocks: number, options?: BlockIoOptions): BlockRequest;
  write(lba: number, data: Uint8Array, options?: BlockIoOptions): BlockRequest;
  flush(options?: BlockIoOptions): BlockRequest;
  /** Deallocate (REQ_OP_DISCARD); EOPNOTSUPP where the device cannot. */
  discard(lba: number, blocks: number, options?: BlockIoOptions): BlockRequest;
  /** Zero a range (REQ_OP_WRITE_ZEROES, or zero pages where the device has no such command). */
  writeZeroes(lba: number, blocks: number, options?: BlockIoOptions): BlockRequest;
}

export function newRequest(op: BlockOp, lba: number, blocks: number): BlockRequest {
  return { op, lba, blocks, result: undefined, onComplete: undefined };
}

export function settle(req: BlockRequest, r: BlockResult): void {
  if (req.result) return;
  req.result = r;
  req.onComplete?.(r);
}
