// The SCSI controller behind one storvsp device: its targets by address (path, target, LUN), hot
// add and remove, and the commands the controller answers itself, as OpenVMM's storvsp
// (lib.rs ScsiCommandQueue::execute_scsi) says Hyper-V does: REPORT LUNS lists the LUNs of the
// addressed path and target; INQUIRY of an empty address returns peripheral qualifier 3 (0x7f),
// which makes Linux's scan ask REPORT LUNS; anything else there is SRB_STATUS_INVALID_LUN.
import { cdbBytes, parseCdb } from './cdb.js';
import { Asc, INQUIRY_NO_LUN, putBe16, putBe32, ScsiOp, ScsiStatus, SenseKey } from './scsi.js';
import { checkCondition, DataAccessError, good, illegalRequest, type ScsiRequest, type ScsiResult, type ScsiTarget } from './target.js';
import { SrbStatus } from './wire.js';

/** A target's address on the controller. */
export interface ScsiAddress {
  readonly path: number;
  readonly target: number;
  readonly lun: number;
}

/** Hyper-V attaches at most 64 disks to a SCSI controller, as LUNs 0 to 63 of target 0. */
export const HYPERV_MAX_LUNS = 64;

const key = (a: ScsiAddress): number => (a.path << 16) | (a.target << 8) | a.lun;
export const formatAddress = (a: ScsiAddress): string => `${a.path}:${a.target}:${a.lun}`;

export class ScsiController {
  private readonly targets = new Map<number, { address: ScsiAddress; target: ScsiTarget }>();
  /** Called after every attach and detach (the host then asks the guest to rescan). */
  onChange: (() => void) | undefined;

  /** The attached targets, by address. */
  list(): { address: ScsiAddress; target: ScsiTarget }[] {
    return [...this.targets.values()].sort((a, b) => key(a.address) - key(b.address));
  }

  get(a: ScsiAddress): ScsiTarget | undefined {
    return this.targets.get(key(a))?.target;
  }

  /** The target at (path, target, lun), without an address object (the data path's lookup). */
  private at(path: number, target: number, lun: number): ScsiTarget | undefined {
    const k = (path << 16) | (target << 8) | lun;
    // The last address asked for, remembered until the next attach or detach: a channel's I/O
    // goes to one disk request after request.
    if (k === this.lastKey) return this.lastTarget;
    const t = this.targets.get(k)?.target;
    this.lastKey = k;
    this.lastTarget = t;
    return t;
  }
  private lastKey = -1;
  private lastTarget: ScsiTarget | undefined;

  /** Attaches `target`; throws RangeError if the address is taken or out of range. */
  attach(address: ScsiAddress, target: ScsiTarget): void {
    for (const [name, v, max] of [['path', address.path, 255], ['target', address.target, 255], ['lun', address.lun, 255]] as const) {
      if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${name} ${v} is not 0 to ${max}`);
    }
    if (this.targets.has(key(address))) throw new RangeError(`SCSI address ${formatAddress(address)} is in use`);
    this.targets.set(key(address), { address, target });
    this.lastKey = -1;
    this.onChange?.();
  }

  /** Detaches and returns the target at `address`; throws RangeError if there is none. */
  detach(address: ScsiAddress): ScsiTarget {
    const t = this.targets.get(key(address));
    if (!t) throw new RangeError(`no target at SCSI address ${formatAddress(address)}`);
    this.targets.delete(key(address));
    this.lastKey = -1;
    this.onChange?.();
    return t.target;
  }

  /** Executes one command for `address`: the target's answer, or the controller's own. */
  execute(address: ScsiAddress, req: ScsiRequest): ScsiResult {
    return this.executeAt(address.path, address.target, address.lun, req);
  }

  /** execute() for the address (path, target, lun). */
  executeAt(path: number, target: number, lun: number, req: ScsiRequest): ScsiResult {
    // The controller answers REPORT LUNS, and INQUIRY where nothing is attached; only those two
    // operation codes can parse as either, so any other command goes to its target unparsed
    // (the target parses it).
    const opcode = req.cdb.length > 0 && req.cdbLength > 0 ? req.cdb[0] : undefined;
    const found = this.at(path, target, lun);
    const c = opcode === ScsiOp.REPORT_LUNS || (opcode === ScsiOp.INQUIRY && !found) ? parseCdb(cdbBytes(req.cdb), req.cdbLength) : undefined;
    try {
      if (c?.op === 'report-luns') return this.reportLuns({ path, target, lun }, c.allocation, req);
      if (found) return found.execute(req);
      if (c?.op === 'inquiry') return this.absentInquiry({ path, target, lun }, c.evpd, c.allocation, req);
    } catch (e) {
      if (!(e instanceof DataAccessError)) throw e;
      return checkCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB, SrbStatus.INVALID_REQUEST);
    }
    return { scsiStatus: ScsiStatus.CHECK_CONDITION, srbStatus: SrbStatus.INVALID_LUN, tx: 0 };
  }

  /**
   * The target at (path, target, lun) if it takes this command directly (ScsiTarget.takesDirect),
   * else undefined. REPORT LUNS and INQUIRY, the controller's own, never go to a target this way.
   */
  directTarget(path: number, target: number, lun: number, cdb: Uint8Array, cdbLength: number, length: number, writable: boolean): ScsiTarget | undefined {
    const op = cdb[0];
    if (cdbLength === 0 || op === ScsiOp.REPORT_LUNS || op === ScsiOp.INQUIRY) return undefined;
    const found = this.at(path, target, lun);
    return found?.takesDirect?.(cdb, cdbLength, length, writable) ? found : undefined;
  }

  /** REPORT LUNS: an 8-byte header, then each LUN in single-level format (SAM-5 4.7.3). */
  private reportLuns(address: ScsiAddress, allocation: number, req: ScsiRequest): ScsiResult {
    const luns = this.list()
      .filter((t) => t.address.path === address.path && t.address.target === address.target)
      .map((t) => t.address.lun);
    const out = new Uint8Array(8 + 8 * luns.length);
    putBe32(out, 0, 8 * luns.length);
    luns.forEach((lun, i) => putBe16(out, 8 + 8 * i, lun));
    // A buffer too small for the header gets nothing, and no error (storvsp lib.rs).
    if (req.data.length < 8) return good(0);
    const n = Math.min(out.length, req.data.length, allocation);
    req.data.write(0, out.subarray(0, n));
    return good(n);
  }

  /** INQUIRY where nothing is attached: standard data with qualifier 3, no VPD pages. */
  private absentInquiry(address: ScsiAddress, evpd: boolean, allocation: number, req: ScsiRequest): ScsiResult {
    if (req.data.length < allocation || allocation < 5 || evpd) return illegalRequest(Asc.INVALID_FIELD_IN_CDB);
    const d = new Uint8Array(96);
    d[0] = INQUIRY_NO_LUN;
    d[2] = 0x05;
    d[3] = 0x02;
    d[4] = 91;
    // Vendor, product and revision are given only for LUN 0.
    if (address.lun === 0) {
      d.set(new TextEncoder().encode('Msft    Virtual Disk    1.0 '), 8);
    }
    const n = Math.min(allocation, d.length);
    req.data.write(0, d.subarray(0, n));
    return good(n);
  }
}
