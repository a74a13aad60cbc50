// A SCSI disk over a block back end, answering what Linux's SCSI scan and sd send the way
// Hyper-V's virtual disk does. What Hyper-V answers comes from OpenVMM's scsidisk (lib.rs,
// inquiry.rs: the INQUIRY template "Msft"/"Virtual Disk"/"1.0", SPC-3, the VPD pages, the
// validation of each CDB and the sense it reports) and from dmesg of real guests (a local
// Hyper-V: "Mode Sense: 0f 00 00 00", i.e. a 12-byte caching page and no DPO/FUA; an Azure one,
// Microsoft's azacsnap documentation: the same layout with DPOFUA set). Any command not listed
// here gets CHECK CONDITION, ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE.
import { DiskIoError, ReadList, type BlockBackend } from './backend.js';
import { cdbBytes, parseCdb, type Cdb } from './cdb.js';
import { Asc, be16, be32, be64, DeviceType, fixedSense, putBe16, putBe32, putBe64, ScsiOp, ScsiStatus, SenseKey, type AscPair } from './scsi.js';
import { checkCondition, DataAccessError, good, illegalRequest, type DirectCommand, type ScsiData, type ScsiRequest, type ScsiResult, type ScsiTarget } from './target.js';
import { SrbStatus } from './wire.js';
import { subarrayOf } from '../../memory/typed-arrays.js';

/** The INQUIRY identity of a disk (8, 16 and 4 ASCII bytes, space-padded). */
export interface ScsiIdentity {
  readonly vendor: string;
  readonly product: string;
  readonly revision: string;
}
export const HYPERV_DISK_IDENTITY: ScsiIdentity = { vendor: 'Msft', product: 'Virtual Disk', revision: '1.0' };

export interface ScsiDiskOptions {
  readonly identity?: ScsiIdentity;
  /** Report write cache enabled (WCE) in the caching page; Hyper-V's local disks do. */
  readonly writeCache?: boolean;
  /** Report DPO/FUA support (Azure's disks do, a local Hyper-V's do not). */
  readonly fua?: boolean;
  /** Sectors of the unmap granularity (VPD B0): a VHDX block, 1 otherwise. */
  readonly unmapGranularity?: number;
}

/** SPC-3 (INQUIRY byte 2) and its response data format (byte 3): OpenVMM T10_VERSION_SPC3, T10_RESPONSE_DATA_SPC3. */
const T10_VERSION_SPC3 = 0x05;
const T10_RESPONSE_DATA_SPC3 = 0x02;
/** Standard INQUIRY data is 96 bytes (the SPC layout up to the version descriptors and their padding). */
const INQUIRY_DATA_SIZE = 96;
/** INQUIRY byte 7: CmdQue. */
const INQUIRY_CMDQUE = 0x02;

export const VpdPage = { SUPPORTED: 0x00, SERIAL: 0x80, DEVICE_ID: 0x83, BLOCK_LIMITS: 0xb0, BLOCK_CHARACTERISTICS: 0xb1, LOGICAL_BLOCK_PROVISIONING: 0xb2 } as const;

/** OpenVMM scsidisk: UNMAP_RANGE_DESCRIPTOR_COUNT_MAX and VHDMP_MAX_WRITE_SAME_LENGTH_BYTES. */
export const UNMAP_MAX_DESCRIPTORS = 4096;
export const MAX_WRITE_SAME_BYTES = 8 * 1024 * 1024;
/** The caching mode page: code 8, 10 bytes of parameters (the 12-byte page a real Hyper-V returns). */
export const MODE_PAGE_CACHING = 0x08;
export const MODE_PAGE_ALL = 0x3f;
const CACHING_PAGE_SIZE = 12;
const MODE_CACHING_WCE = 0x04;
/** Mode parameter header device-specific parameter bits (SBC-3 6.4.1). */
const MODE_DSP_WRITE_PROTECT = 0x80;
const MODE_DSP_DPOFUA = 0x10;
/** READ CAPACITY(16) byte 14: logical block provisioning management enabled. */
const READ_CAPACITY16_LBPME = 0x80;
/** VPD B2 provisioning type: thin (SBC-3 6.6.6). */
const PROVISIONING_TYPE_THIN = 0x02;
/** NAA 6 with Microsoft's OUI 00-22-48 (OpenVMM inquiry.rs: 0x60, 0x02, 0x24, 0x80). */
const NAA_MSFT = [0x60, 0x02, 0x24, 0x80];

const ascii = (s: string, n: number): Uint8Array => {
  const out = new Uint8Array(n).fill(0x20);
  for (let i = 0; i < Math.min(n, s.length); i++) out[i] = s.charCodeAt(i) & 0x7f;
  return out;
};

/** Copies at most `allocation` bytes of `content` to the initiator; the buffer must hold `allocation` (OpenVMM inquiry.rs). */
function respond(data: ScsiData, allocation: number, content: Uint8Array): ScsiResult {
  if (allocation > data.length) return checkCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB, SrbStatus.INVALID_REQUEST);
  const n = Math.min(allocation, content.length);
  if (n > 0) data.write(0, content.subarray(0, n));
  return good(n);
}

export class ScsiDisk implements ScsiTarget {
  readonly deviceType = DeviceType.DISK;
  readonly identity: ScsiIdentity;
  /** Sense of the last failed command, returned (and cleared) by REQUEST SENSE. */
  private lastSense: Uint8Array | undefined;
  /** Commands executed, by result, for inspection. */
  commands = 0;
  failures = 0;

  constructor(
    readonly backend: BlockBackend,
    readonly options: ScsiDiskOptions = {},
  ) {
    this.identity = options.identity ?? HYPERV_DISK_IDENTITY;
  }

  get canUnmap(): boolean {
    return this.backend.unmap !== undefined && !this.backend.readOnly;
  }

  execute(req: ScsiRequest): ScsiResult {
    this.commands++;
    let r: ScsiResult;
    try {
      r = this.run(parseCdb(cdbBytes(req.cdb), req.cdbLength), req.data);
    } catch (e) {
      if (e instanceof DataAccessError) r = checkCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB, SrbStatus.INVALID_REQUEST);
      else if (e instanceof DiskIoError) r = checkCondition(SenseKey.MEDIUM_ERROR, req.cdb[0] === 0x28 || req.cdb[0] === 0x88 || req.cdb[0] === 0x08 || req.cdb[0] === 0xa8 ? Asc.UNRECOVERED_READ_ERROR : Asc.WRITE_ERROR, SrbStatus.ERROR);
      else throw e;
    }
    if (r.scsiStatus !== ScsiStatus.GOOD) {
      this.failures++;
      this.lastSense = r.sense;
    } else if (req.cdb[0] !== 0x03) {
      this.lastSense = undefined;
    }
    return r;
  }

  /** What directCommand decoded: the command's LBA and blocks. */
  private directLba = 0;
  private directBlocks = 0;

  /**
   * READ (1) or WRITE (2), (10) or (16), as parseCdb reads it, that readWrite would execute with
   * one view of the buffer: nothing refused, nothing of zero length (0 for anything else, which
   * execute() answers). Sets directLba and directBlocks.
   */
  private directCommand(cdb: Uint8Array, cdbLength: number, length: number, writable: boolean): number {
    const op = cdb[0]!;
    // parseCdb: a (10) needs 10 CDB bytes and RELADR clear; a (16) needs all 16.
    if ((op === ScsiOp.READ_10 || op === ScsiOp.WRITE_10) && cdbLength >= 10 && cdbLength <= 16 && (cdb[1]! & 0x01) === 0) {
      this.directLba = be32(cdb, 2);
      this.directBlocks = be16(cdb, 7);
    } else if ((op === ScsiOp.READ_16 || op === ScsiOp.WRITE_16) && cdbLength === 16) {
      this.directLba = be64(cdb, 2);
      this.directBlocks = be32(cdb, 10);
    } else return 0;
    const read = op === ScsiOp.READ_10 || op === ScsiOp.READ_16;
    const blocks = this.directBlocks;
    // readWrite's refusals (and its zero-length transfer) go the general way.
    if (blocks === 0 || !this.inRange(this.directLba, blocks) || blocks * this.backend.sectorSize > length || (read ? !writable : this.backend.readOnly)) return 0;
    return read ? 1 : 2;
  }

  takesDirect(cdb: Uint8Array, cdbLength: number, length: number, writable: boolean): boolean {
    return this.directCommand(cdb, cdbLength, length, writable) !== 0;
  }

  /** READ and WRITE (10) and (16) as execute() does them (readWrite with one view, execute()'s medium error). */
  executeDirect(cdb: Uint8Array, cdbLength: number, memory: Uint8Array, at: number, length: number, writable: boolean): ScsiResult | undefined {
    const kind = this.directCommand(cdb, cdbLength, length, writable);
    if (kind === 0) return undefined;
    const b = this.backend;
    const bytes = this.directBlocks * b.sectorSize;
    this.commands++;
    try {
      if (kind === 2) b.write(this.directLba, subarrayOf(memory, at, at + bytes), (cdb[1]! & 0x08) !== 0);
      else if (b.readInto) b.readInto(this.directLba, memory, at, bytes);
      else b.read(this.directLba, subarrayOf(memory, at, at + bytes));
    } catch (e) {
      if (!(e instanceof DiskIoError)) throw e;
      const r = checkCondition(SenseKey.MEDIUM_ERROR, kind === 1 ? Asc.UNRECOVERED_READ_ERROR : Asc.WRITE_ERROR, SrbStatus.ERROR);
      this.failures++;
      this.lastSense = r.sense;
      return r;
    }
    this.lastSense = undefined;
    // A GOOD result is read-only: the last one is given again for the same length (most I/O is of
    // one size), rather than an object made per command.
    const last = this.directGood;
    if (last !== undefined && last.tx === bytes) return last;
    return (this.directGood = good(bytes));
  }
  private directGood: ScsiResult | undefined;

  /**
   * executeDirect of each command in turn, but that a run of reads goes to the back end's
   * readIntoMany in one call (no other work between its reads), where it has one. The same
   * answers, counts and sense as the calls one by one: each read that fails is the medium error
   * executeDirect gives, and the reads after it are still made.
   */
  executeDirectMany(cmds: readonly DirectCommand[], from: number, to: number, memory: Uint8Array): void {
    const b = this.backend;
    if (!b.readIntoMany) {
      for (let i = from; i < to; i++) {
        const c = cmds[i]!;
        c.result = this.executeDirect(c.cdb, c.cdbLength, memory, c.gpa, c.length, c.writable);
      }
      return;
    }
    const reads = this.reads;
    reads.reserve(to - from);
    for (let i = from; i < to; ) {
      // The run of reads from i: each decoded as executeDirect decodes it.
      let n = 0;
      let end = i;
      while (end < to) {
        const c = cmds[end]!;
        if (this.directCommand(c.cdb, c.cdbLength, c.length, c.writable) !== 1) break;
        reads.lba[n] = this.directLba;
        reads.at[n] = c.gpa;
        reads.bytes[n] = this.directBlocks * b.sectorSize;
        n++;
        end++;
      }
      if (n === 0) {
        // Anything else (a write, a command not taken) as executeDirect does it.
        const c = cmds[i]!;
        c.result = this.executeDirect(c.cdb, c.cdbLength, memory, c.gpa, c.length, c.writable);
        i++;
        continue;
      }
      for (let k = 0; k < n; ) {
        const stop = b.readIntoMany(memory, reads, k, n);
        for (; k < stop; k++) cmds[i + k]!.result = this.directReadDone(reads.bytes[k]!);
        if (k < n) {
          // executeDirect's medium error for the read that failed.
          this.commands++;
          const r = checkCondition(SenseKey.MEDIUM_ERROR, Asc.UNRECOVERED_READ_ERROR, SrbStatus.ERROR);
          this.failures++;
          this.lastSense = r.sense;
          cmds[i + k]!.result = r;
          k++;
        }
      }
      i = end;
    }
  }
  private readonly reads = new ReadList();

  /** executeDirect's count, sense and GOOD answer for a read of `bytes` that was made. */
  private directReadDone(bytes: number): ScsiResult {
    this.commands++;
    this.lastSense = undefined;
    const last = this.directGood;
    if (last !== undefined && last.tx === bytes) return last;
    return (this.directGood = good(bytes));
  }

  close(): void {
    this.backend.close?.();
  }

  private run(c: Cdb | { op: 'invalid'; asc: AscPair }, data: ScsiData): ScsiResult {
    const b = this.backend;
    switch (c.op) {
      case 'invalid':
        return illegalRequest(c.asc);
      case 'unsupported':
        return illegalRequest(Asc.INVALID_COMMAND_OPERATION_CODE);
      case 'test-unit-ready':
      case 'prevent-allow':
        return good(0);
      case 'request-sense': {
        const sense = this.lastSense ?? fixedSense(SenseKey.NO_SENSE, Asc.NO_ADDITIONAL_SENSE);
        this.lastSense = undefined;
        return respond(data, c.allocation, sense);
      }
      case 'inquiry': {
        const content = c.evpd ? this.vpdPage(c.page) : this.standardInquiry();
        if (!content) return illegalRequest(Asc.INVALID_FIELD_IN_CDB);
        return respond(data, c.allocation, content);
      }
      case 'read-capacity-10': {
        const out = new Uint8Array(8);
        // A disk too large for 32 bits reports 0xFFFFFFFF, which sends the initiator to READ CAPACITY(16).
        putBe32(out, 0, Math.min(b.sectorCount - 1, 0xffffffff));
        putBe32(out, 4, b.sectorSize);
        if (data.length < out.length) return checkCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB, SrbStatus.DATA_OVERRUN);
        data.write(0, out);
        return good(out.length);
      }
      case 'read-capacity-16': {
        const out = new Uint8Array(32);
        putBe64(out, 0, b.sectorCount - 1);
        putBe32(out, 8, b.sectorSize);
        out[13] = Math.max(0, Math.log2(Math.max(b.physicalSectorSize, b.sectorSize) / b.sectorSize)) & 0x0f;
        if (this.canUnmap) out[14] = READ_CAPACITY16_LBPME;
        if (data.length < 12) return checkCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB, SrbStatus.DATA_OVERRUN);
        const n = Math.min(out.length, c.allocation, data.length);
        data.write(0, out.subarray(0, n));
        return good(n);
      }
      case 'mode-sense':
        return this.modeSense(c, data);
      case 'mode-select':
        return this.modeSelect(c, data);
      case 'read':
      case 'write':
        return this.readWrite(c, data);
      case 'verify':
        return this.inRange(c.lba, c.blocks) ? good(0) : illegalRequest(Asc.LBA_OUT_OF_RANGE);
      case 'sync-cache':
        if (c.blocks !== 0 && !this.inRange(c.lba, c.blocks)) return illegalRequest(Asc.LBA_OUT_OF_RANGE);
        if (c.lba > b.sectorCount) return illegalRequest(Asc.LBA_OUT_OF_RANGE);
        b.flush();
        return good(0);
      case 'unmap':
        return this.unmap(c, data);
      case 'write-same':
        return this.writeSame(c, data);
      case 'start-stop':
        if (c.immed) return illegalRequest(Asc.INVALID_FIELD_IN_CDB);
        if (!c.start) b.flush();
        return good(0);
      case 'report-luns':
        // The controller answers REPORT LUNS (storvsp lib.rs); a target asked directly lists itself.
        return respond(data, c.allocation, new Uint8Array([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
      default:
        // MMC commands (READ TOC, GET CONFIGURATION, ...) are the DVD's.
        return illegalRequest(Asc.INVALID_COMMAND_OPERATION_CODE);
    }
  }

  private inRange(lba: number, blocks: number): boolean {
    return Number.isSafeInteger(lba) && lba >= 0 && blocks >= 0 && lba + blocks <= this.backend.sectorCount;
  }

  /** The 96 bytes of standard INQUIRY data (OpenVMM INQUIRY_DATA_TEMPLATE, misc = CmdQue). */
  standardInquiry(): Uint8Array {
    const d = new Uint8Array(INQUIRY_DATA_SIZE);
    d[0] = DeviceType.DISK;
    d[2] = T10_VERSION_SPC3;
    d[3] = T10_RESPONSE_DATA_SPC3;
    d[4] = INQUIRY_DATA_SIZE - 5;
    d[7] = INQUIRY_CMDQUE;
    d.set(ascii(this.identity.vendor, 8), 8);
    d.set(ascii(this.identity.product, 16), 16);
    d.set(ascii(this.identity.revision, 4), 32);
    return d;
  }

  /** The 16-byte identity of the disk: the back end's, else one derived from its description. */
  get diskId(): Uint8Array {
    if (this.backend.diskId?.length === 16) return this.backend.diskId;
    const id = new Uint8Array(16);
    let h = 0x811c9dc5;
    for (const ch of this.backend.description) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
    for (let i = 0; i < 16; i++) {
      h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
      id[i] = h & 0xff;
    }
    return id;
  }

  /** A VPD page with its 4-byte header, or undefined for a page the disk does not have. */
  vpdPage(page: number): Uint8Array | undefined {
    const b = this.backend;
    let body: Uint8Array;
    switch (page) {
      case VpdPage.SUPPORTED:
        body = new Uint8Array([VpdPage.SUPPORTED, VpdPage.SERIAL, VpdPage.DEVICE_ID, VpdPage.BLOCK_LIMITS, VpdPage.BLOCK_CHARACTERISTICS, VpdPage.LOGICAL_BLOCK_PROVISIONING]);
        break;
      case VpdPage.SERIAL:
        // Hyper-V's serial number is not documented; hvkit reports the disk id in hex.
        body = ascii([...this.diskId].map((x) => x.toString(16).padStart(2, '0')).join(''), 32);
        break;
      case VpdPage.DEVICE_ID: {
        // A T10 vendor id (binary code set, association: logical unit) with the disk GUID, then an
        // NAA 6 name with Microsoft's OUI and 12 bytes of that GUID (OpenVMM inquiry.rs).
        const id = this.diskId;
        body = new Uint8Array(4 + 24 + 4 + 16);
        body.set([0x01, 0x01, 0x00, 24], 0);
        body.set(ascii(this.identity.vendor, 8), 4);
        body.set(id, 12);
        body.set([0x01, 0x03, 0x00, 16], 28);
        body.set(NAA_MSFT, 32);
        body.set(id.subarray(0, 6), 36);
        body.set(id.subarray(10, 16), 42);
        break;
      }
      case VpdPage.BLOCK_LIMITS: {
        body = new Uint8Array(0x3c);
        if (this.canUnmap) {
          putBe32(body, 16, 0xffffffff);
          putBe32(body, 20, UNMAP_MAX_DESCRIPTORS);
          putBe32(body, 24, Math.max(1, this.options.unmapGranularity ?? 1));
          putBe32(body, 28, 0x80000000);
        }
        putBe64(body, 32, MAX_WRITE_SAME_BYTES / b.sectorSize);
        break;
      }
      case VpdPage.BLOCK_CHARACTERISTICS:
        body = new Uint8Array(0x3c);
        // Medium rotation rate 1: non-rotating (OpenVMM's default).
        putBe16(body, 0, 1);
        break;
      case VpdPage.LOGICAL_BLOCK_PROVISIONING: {
        body = new Uint8Array(4);
        // Threshold exponent: the smallest e >= 1 with capacity / 2^e < 2^32 (OpenVMM inquiry.rs).
        let e = 1;
        while (b.sectorCount / 2 ** e >= 2 ** 32) e++;
        body[0] = e;
        body[1] = this.canUnmap ? 0x80 : 0;
        body[2] = PROVISIONING_TYPE_THIN;
        break;
      }
      default:
        return undefined;
    }
    const out = new Uint8Array(4 + body.length);
    out[0] = DeviceType.DISK;
    out[1] = page;
    putBe16(out, 2, body.length);
    out.set(body, 4);
    return out;
  }

  private modeSense(c: Extract<Cdb, { op: 'mode-sense' }>, data: ScsiData): ScsiResult {
    if (c.allocation === 0) return good(0);
    const header = c.ten ? 8 : 4;
    if (c.allocation > data.length) return illegalRequest(Asc.INVALID_FIELD_IN_CDB);
    // Saved values are not supported, nor pages other than caching (OpenVMM handle_mode_sense).
    if (c.pc === 3 || (c.page !== MODE_PAGE_CACHING && c.page !== MODE_PAGE_ALL) || c.subpage !== 0) return illegalRequest(Asc.INVALID_FIELD_IN_CDB);
    const out = new Uint8Array(header + CACHING_PAGE_SIZE);
    let dsp = 0;
    if (this.backend.readOnly) dsp |= MODE_DSP_WRITE_PROTECT;
    if (this.options.fua) dsp |= MODE_DSP_DPOFUA;
    if (c.ten) {
      putBe16(out, 0, out.length - 2);
      out[3] = dsp;
    } else {
      out[0] = out.length - 1;
      out[2] = dsp;
    }
    out[header] = MODE_PAGE_CACHING;
    out[header + 1] = CACHING_PAGE_SIZE - 2;
    // Current and default values say the cache is on; the changeable mask says nothing changes.
    if (c.pc !== 1 && (this.options.writeCache ?? true)) out[header + 2] = MODE_CACHING_WCE;
    const n = Math.min(c.allocation, out.length);
    data.write(0, out.subarray(0, n));
    return good(n);
  }

  /** MODE SELECT may only restate the caching page as it is (OpenVMM handle_mode_select). */
  private modeSelect(c: Extract<Cdb, { op: 'mode-select' }>, data: ScsiData): ScsiResult {
    if (c.length === 0) return good(0);
    const header = c.ten ? 8 : 4;
    if (c.length !== data.length || c.length < header + CACHING_PAGE_SIZE) return illegalRequest(Asc.PARAMETER_LIST_LENGTH_ERROR);
    if (c.sp) return illegalRequest(Asc.INVALID_FIELD_IN_CDB);
    const p = data.read(0, c.length);
    const bdl = c.ten ? be16(p, 6) : p[3]!;
    const at = header + bdl;
    if (c.length < at + CACHING_PAGE_SIZE) return illegalRequest(Asc.PARAMETER_LIST_LENGTH_ERROR);
    const wce = (p[at + 2]! & MODE_CACHING_WCE) !== 0;
    if ((p[at]! & 0x3f) !== MODE_PAGE_CACHING || p[at + 1]! < CACHING_PAGE_SIZE - 2 || wce !== (this.options.writeCache ?? true)) return illegalRequest(Asc.INVALID_FIELD_IN_PARAMETER_LIST);
    return good(c.length);
  }

  private readWrite(c: Extract<Cdb, { op: 'read' | 'write' }>, data: ScsiData): ScsiResult {
    const b = this.backend;
    const bytes = c.blocks * b.sectorSize;
    // A transfer of 0 blocks (10, 12 and 16-byte CDBs) moves nothing and is not an error (SBC-3 5.11).
    if (c.blocks === 0) return this.inRange(c.lba, 0) || c.lba === b.sectorCount ? good(0) : illegalRequest(Asc.LBA_OUT_OF_RANGE);
    if (!this.inRange(c.lba, c.blocks)) return illegalRequest(Asc.LBA_OUT_OF_RANGE);
    // The buffer must hold the whole transfer (OpenVMM: ILLEGAL_BLOCK when it does not).
    if (bytes > data.length) return illegalRequest(Asc.LBA_OUT_OF_RANGE);
    if (c.op === 'write') {
      if (b.readOnly) return checkCondition(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED, SrbStatus.ERROR);
      const views = data.views(0, bytes);
      // The usual buffer, one run of memory: straight to the back end (what transfer does first).
      if (views.length === 1 && views[0]!.length % b.sectorSize === 0) b.write(c.lba, views[0]!, c.fua);
      else transferViews(views, b.sectorSize, (lba, view) => b.write(c.lba + lba, view, c.fua), true);
    } else {
      if (!data.writable) throw new DataAccessError('READ into a buffer the host may not write');
      const views = data.views(0, bytes);
      if (views.length === 1 && views[0]!.length % b.sectorSize === 0) b.read(c.lba, views[0]!);
      else transferViews(views, b.sectorSize, (lba, view) => b.read(c.lba + lba, view), false, b.readv && ((lba, views) => b.readv!(c.lba + lba, views)));
    }
    return good(bytes);
  }

  private unmap(c: Extract<Cdb, { op: 'unmap' }>, data: ScsiData): ScsiResult {
    if (c.length === 0) return good(0);
    if (c.length < 8 || c.length > data.length) return illegalRequest(Asc.PARAMETER_LIST_LENGTH_ERROR);
    if (c.anchor) return illegalRequest(Asc.INVALID_FIELD_IN_CDB);
    const p = data.read(0, c.length);
    const descBytes = Math.min(be16(p, 2), c.length - 8);
    if (descBytes % 16 !== 0) return illegalRequest(Asc.PARAMETER_LIST_LENGTH_ERROR);
    const n = descBytes / 16;
    if (n > UNMAP_MAX_DESCRIPTORS) return illegalRequest(Asc.INVALID_FIELD_IN_PARAMETER_LIST);
    const ranges: [number, number][] = [];
    for (let i = 0; i < n; i++) {
      const lba = be64(p, 8 + 16 * i);
      const count = be32(p, 8 + 16 * i + 8);
      if (!this.inRange(lba, count)) return illegalRequest(Asc.LBA_OUT_OF_RANGE);
      ranges.push([lba, count]);
    }
    if (this.backend.readOnly) return checkCondition(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED, SrbStatus.ERROR);
    for (const [lba, count] of ranges) if (count > 0) this.backend.unmap?.(lba, count);
    return good(0);
  }

  private writeSame(c: Extract<Cdb, { op: 'write-same' }>, data: ScsiData): ScsiResult {
    const b = this.backend;
    if (!this.inRange(c.lba, c.blocks)) return illegalRequest(Asc.LBA_OUT_OF_RANGE);
    if (b.readOnly) return checkCondition(SenseKey.DATA_PROTECT, Asc.WRITE_PROTECTED, SrbStatus.ERROR);
    // 0 blocks means "to the end" in SBC-3; Hyper-V bounds every WRITE SAME by its maximum length.
    const blocks = c.blocks === 0 ? b.sectorCount - c.lba : c.blocks;
    if (blocks * b.sectorSize > MAX_WRITE_SAME_BYTES) return illegalRequest(Asc.INVALID_FIELD_IN_CDB);
    let pattern: Uint8Array;
    if (c.ndob) pattern = new Uint8Array(b.sectorSize);
    else {
      if (data.length < b.sectorSize) return illegalRequest(Asc.INVALID_FIELD_IN_CDB);
      pattern = data.read(0, b.sectorSize);
    }
    // UNMAP with a block of zeros deallocates the range (which then reads zeros, backend.ts).
    if (c.unmap && b.unmap && pattern.every((x) => x === 0)) {
      b.unmap(c.lba, blocks);
      return good(c.ndob ? 0 : b.sectorSize);
    }
    const chunk = new Uint8Array(Math.min(blocks, 256) * b.sectorSize);
    for (let i = 0; i < chunk.length; i += b.sectorSize) chunk.set(pattern, i);
    for (let done = 0; done < blocks; ) {
      const n = Math.min(blocks - done, chunk.length / b.sectorSize);
      b.write(c.lba + done, chunk.subarray(0, n * b.sectorSize));
      done += n;
    }
    return good(c.ndob ? 0 : b.sectorSize);
  }
}

/**
 * Moves `bytes` between the buffer and the disk block by block run: each view of the buffer's
 * memory goes to the back end directly when it holds whole blocks, through a bounce buffer where
 * a page boundary splits a block. `ioMany`, when given, takes all the views at once if each holds
 * whole blocks (a vectored read of scattered guest pages).
 */
export function transfer(data: ScsiData, bytes: number, sectorSize: number, io: (lba: number, view: Uint8Array) => void, toDisk: boolean, ioMany?: (lba: number, views: readonly Uint8Array[]) => void): void {
  transferViews(data.views(0, bytes), sectorSize, io, toDisk, ioMany);
}

/** transfer() of a buffer's views (data.views(0, bytes)). */
function transferViews(views: Uint8Array[], sectorSize: number, io: (lba: number, view: Uint8Array) => void, toDisk: boolean, ioMany?: (lba: number, views: readonly Uint8Array[]) => void): void {
  // The usual case, a buffer in one run of memory: one call on the whole of it.
  if (views.length === 1 && views[0]!.length % sectorSize === 0) {
    if (views[0]!.length > 0) io(0, views[0]!);
    return;
  }
  // Pages scattered in memory, each whole blocks: one vectored call where the back end has one.
  if (ioMany && views.length > 1 && views.every((v) => v.length % sectorSize === 0)) {
    ioMany(0, views);
    return;
  }
  let lba = 0;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flushPending = () => {
    if (pendingBytes === 0) return;
    const bounce = new Uint8Array(pendingBytes);
    if (toDisk) {
      let at = 0;
      for (const v of pending) {
        bounce.set(v, at);
        at += v.length;
      }
      io(lba, bounce);
    } else {
      io(lba, bounce);
      let at = 0;
      for (const v of pending) {
        v.set(bounce.subarray(at, at + v.length));
        at += v.length;
      }
    }
    lba += pendingBytes / sectorSize;
    pending = [];
    pendingBytes = 0;
  };
  for (const view of views) {
    let v = view;
    if (pendingBytes > 0) {
      // Complete the split block first.
      const need = sectorSize - (pendingBytes % sectorSize);
      const take = Math.min(need, v.length);
      pending.push(v.subarray(0, take));
      pendingBytes += take;
      v = v.subarray(take);
      if (pendingBytes % sectorSize === 0) flushPending();
      if (v.length === 0) continue;
    }
    const whole = v.length - (v.length % sectorSize);
    if (whole > 0) {
      io(lba, v.subarray(0, whole));
      lba += whole / sectorSize;
    }
    if (whole < v.length) {
      pending.push(v.subarray(whole));
      pendingBytes += v.length - whole;
    }
  }
  flushPending();
}
