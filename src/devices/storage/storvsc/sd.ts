// sd, the SCSI disk driver of Linux 6.1 (drivers/scsi/sd.c), with the block layer's part of each
// request (block/blk-core.c bio_check_eod and bio_check_ro, splitting at max_sectors): the probe
// (a name from sd_index_ida, sd_revalidate_disk, the partition scan, "Attached SCSI disk"), the
// commands it builds (sd_setup_read_write_cmnd, sd_setup_flush_cmnd, sd_setup_unmap_cmnd, zeroing
// by plain writes where WRITE SAME is off), and removal ("Synchronizing SCSI cache").
import { ScsiOp, SenseKey } from '../scsi.js';
import { intoTooSmall, newRequest, settle, type BlockDevice, type BlockIoOptions, type BlockOp, type BlockRequest, type BlockResult } from './block.js';
import { scanPartitions, type PartitionTable } from './partitions.js';
import { SD_MAX_RETRIES, type Disposition, type ScsiCmnd, type ScsiCore, type ScsiDevice } from './scsi-core.js';
import { hexBytes, stringGetSize } from './strings.js';

/** SD_MAX_WS10_BLOCKS, SD_MAX_WS16_BLOCKS (sd.h). */
const SD_MAX_WS10_BLOCKS = 0xffff;
const SD_MAX_WS16_BLOCKS = 0x7fffff;
/** RC16_LEN and the MODE SENSE lengths sd uses. */
const RC16_LEN = 32;
const SD_BUF_SIZE = 512;

/** sd_format_disk_name("sd", index): a..z, aa..zz, aaa... */
export function sdDiskName(index: number): string {
  let s = '';
  let i = index;
  do {
    s = String.fromCharCode(0x61 + (i % 26)) + s;
    i = Math.floor(i / 26) - 1;
  } while (i >= 0);
  return `sd${s}`;
}

const be32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at);
const be64 = (b: Uint8Array, at: number): number => {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return dv.getUint32(at) * 2 ** 32 + dv.getUint32(at + 4);
};

/** Big-endian stores into a CDB (the low 32 or 16 bits of `v`, as DataView's setters take them). */
function putBe32(c: Uint8Array, at: number, v: number): void {
  const x = v >>> 0;
  c[at] = x >>> 24;
  c[at + 1] = (x >>> 16) & 0xff;
  c[at + 2] = (x >>> 8) & 0xff;
  c[at + 3] = x & 0xff;
}

/** A 10-byte CDB of `op` for `blocks` blocks from `lba`, into the zeroed `c`. */
function putCdb10(c: Uint8Array, op: number, lba: number, blocks: number): Uint8Array {
  c[0] = op;
  putBe32(c, 2, lba);
  c[7] = (blocks >>> 8) & 0xff;
  c[8] = blocks & 0xff;
  return c;
}

/** A 16-byte CDB of `op` for `blocks` blocks from `lba`, into the zeroed `c`. */
function putCdb16(c: Uint8Array, op: number, lba: number, blocks: number): Uint8Array {
  c[0] = op;
  putBe32(c, 2, Math.floor(lba / 2 ** 32));
  putBe32(c, 6, lba >>> 0);
  putBe32(c, 10, blocks);
  return c;
}

const cdb10 = (op: number, lba: number, blocks: number): Uint8Array => putCdb10(new Uint8Array(10), op, lba, blocks);
const cdb16 = (op: number, lba: number, blocks: number): Uint8Array => putCdb16(new Uint8Array(16), op, lba, blocks);

export class SdDisk implements BlockDevice {
  readonly name: string;
  capacity = 0;
  logicalBlockSize = 512;
  physicalBlockSize = 512;
  writeProtect = false;
  /** The caching page: write cache enabled, read cache disabled; DPO/FUA support. */
  wce = false;
  rcd = false;
  dpofua = false;
  /** Logical block provisioning (READ CAPACITY(16), VPD B0 and B2). */
  lbpme = false;
  lbprz = false;
  lbpu = false;
  lbpws = false;
  lbpws10 = false;
  maxUnmapBlocks = 0;
  unmapGranularity = 0;
  maxWsBlocks = 0;
  maxXferBlocks = 0;
  /** provisioning_mode and zeroing_mode of sd_config_discard / sd_config_write_same. */
  provisioning: 'full' | 'unmap' | 'ws16' | 'ws10' | 'zero' | 'disabled' = 'full';
  zeroing: 'write' | 'ws' | 'ws16-unmap' | 'ws10-unmap' = 'write';
  rotational = true;
  use16ForRw = false;
  partitions: PartitionTable | undefined;
  private firstScan = true;
  private removed = false;

  constructor(
    readonly core: ScsiCore,
    readonly sdev: ScsiDevice,
    readonly index: number,
  ) {
    this.name = sdDiskName(index);
  }

  get readOnly(): boolean {
    return this.writeProtect;
  }

  get present(): boolean {
    return !this.removed && this.sdev.state === 'running';
  }

  get maxTransferBlocks(): number {
    let sectors = this.sdev.host.maxSectors;
    if (this.maxXferBlocks) sectors = Math.min(sectors, (this.maxXferBlocks * this.logicalBlockSize) / 512);
    return Math.max(1, Math.floor((sectors * 512) / this.logicalBlockSize));
  }

  private log(level: 'err' | 'warn' | 'notice' | 'info' | 'debug', text: string): void {
    this.core.log(level, `sd ${this.sdev.name}: [${this.name}] ${text}`);
  }

  private exec(cdb: Uint8Array, direction: 'none' | 'from-device' | 'to-device', length = 0, data?: Uint8Array, pm = false) {
    return this.core.execute(this.sdev, { cdb, direction, ...(data ? { data } : { length }), retries: SD_MAX_RETRIES, pm });
  }

  // --- Probe and revalidation -------------------------------------------------------------------

  /** sd_probe: revalidate, read the partitions, announce the disk. */
  probe(): void {
    this.sdev.diskName = this.name;
    this.revalidate();
    if (this.capacity > 0) this.readPartitions();
    this.log('notice', `Attached SCSI ${this.sdev.removable ? 'removable ' : ''}disk`);
    this.firstScan = false;
  }

  /** sd_revalidate_disk. */
  revalidate(): void {
    this.spinUp();
    const old = this.capacity;
    this.readCapacity();
    if (this.sdev.scsiLevel >= 5 || this.sdev.tryVpdPages) {
      this.readBlockProvisioning();
      this.readBlockLimits();
      this.readBlockCharacteristics();
    }
    this.printCapacity(old);
    this.readWriteProtectFlag();
    this.readCacheType();
    // sd_read_write_same: REPORT SUPPORTED OPERATION CODES is off (storvsc), so without an ATA
    // information page (0x89) WRITE SAME is disabled for the disk.
    if (this.sdev.noReportOpcodes && !this.sdev.vpd.has(0x89)) this.sdev.noWriteSame = true;
    this.configWriteSame();
  }

  /** sd_spinup_disk: TEST UNIT READY until the disk is ready (a Hyper-V disk is at once). */
  private spinUp(): void {
    for (let i = 0; i < 3; i++) {
      const r = this.exec(new Uint8Array(6), 'none');
      if (r.disposition.ok || r.timedOut) return;
      const s = r.cmd.senseHeader;
      if (!s || s.key !== SenseKey.UNIT_ATTENTION) return;
    }
  }

  /** sd_read_capacity: READ CAPACITY(16) first on SPC-3 devices, else (10); (16) when (10) overflows. */
  private readCapacity(): void {
    const tryRc16 = this.sdev.scsiLevel > 5;
    let ok = false;
    if (tryRc16) ok = this.readCapacity16();
    if (!ok) {
      const r = this.exec(new Uint8Array([ScsiOp.READ_CAPACITY, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 'from-device', 8);
      if (r.disposition.ok && r.data.length >= 8) {
        const lba = be32(r.data, 0);
        if (lba === 0xffffffff) ok = this.readCapacity16();
        else {
          this.setCapacity(lba + 1, be32(r.data, 4), 0);
          ok = true;
        }
      } else {
        this.printResult('Read Capacity(10) failed', r.cmd);
      }
    }
    if (!ok) this.capacity = 0;
    if (this.capacity > 0xffffffff) this.use16ForRw = true;
  }

  private readCapacity16(): boolean {
    const cdb = new Uint8Array(16);
    cdb[0] = ScsiOp.SERVICE_ACTION_IN_16;
    cdb[1] = 0x10;
    cdb[13] = RC16_LEN;
    const r = this.exec(cdb, 'from-device', RC16_LEN);
    if (!r.disposition.ok || r.data.length < 14) {
      const s = r.cmd.senseHeader;
      // An initiator that does not know READ CAPACITY(16) falls back silently.
      if (!(s && s.key === SenseKey.ILLEGAL_REQUEST)) this.printResult('Read Capacity(16) failed', r.cmd);
      return false;
    }
    const d = r.data;
    this.lbpme = (d[14]! & 0x80) !== 0;
    this.lbprz = (d[14]! & 0x40) !== 0;
    this.setCapacity(be64(d, 0) + 1, be32(d, 8), d[13]! & 0x0f);
    return true;
  }

  private setCapacity(blocks: number, sectorSize: number, physShift: number): void {
    let size = sectorSize;
    if (size === 0) {
      size = 512;
      this.log('notice', 'Sector size 0 reported, assuming 512.');
    }
    if (![512, 1024, 2048, 4096].includes(size)) {
      this.log('notice', `Unsupported sector size ${size}.`);
      this.capacity = 0;
      size = 512;
    } else {
      this.capacity = blocks;
    }
    this.logicalBlockSize = size;
    this.physicalBlockSize = size << physShift;
  }

  private printCapacity(old: number): void {
    if (!this.firstScan && old === this.capacity) return;
    const bytes = this.capacity;
    this.log('notice', `${bytes} ${this.logicalBlockSize}-byte logical blocks: (${stringGetSize(bytes, this.logicalBlockSize, 'si')}/${stringGetSize(bytes, this.logicalBlockSize, 'binary')})`);
    if (this.physicalBlockSize !== this.logicalBlockSize) this.log('notice', `${this.physicalBlockSize}-byte physical blocks`);
  }

  private readBlockProvisioning(): void {
    if (!this.lbpme) return;
    const b2 = this.sdev.vpd.get(0xb2);
    if (!b2 || b2.length < 6) return;
    this.lbpu = (b2[5]! & 0x80) !== 0;
    this.lbpws = (b2[5]! & 0x40) !== 0;
    this.lbpws10 = (b2[5]! & 0x20) !== 0;
  }

  /** sd_read_block_limits, and the discard mode it picks. */
  private readBlockLimits(): void {
    const b0 = this.sdev.vpd.get(0xb0);
    if (!b0 || b0.length < 16) return;
    this.maxXferBlocks = be32(b0, 8);
    if (b0[3] === 0x3c && b0.length >= 44) {
      this.maxWsBlocks = Math.min(be64(b0, 36), 0xffffffff);
      if (this.lbpme) {
        const lbaCount = be32(b0, 20);
        const descCount = be32(b0, 24);
        if (lbaCount && descCount) this.maxUnmapBlocks = lbaCount;
        this.unmapGranularity = be32(b0, 28);
        if (this.sdev.vpd.has(0xb2)) {
          if (this.lbpu && this.maxUnmapBlocks) this.provisioning = 'unmap';
          else if (this.lbpws) this.provisioning = 'ws16';
          else if (this.lbpws10) this.provisioning = 'ws10';
          else this.provisioning = 'disabled';
        } else {
          this.provisioning = this.maxUnmapBlocks ? 'unmap' : 'ws16';
        }
      }
    }
  }

  private readBlockCharacteristics(): void {
    const b1 = this.sdev.vpd.get(0xb1);
    if (!b1 || b1.length < 6) return;
    // A medium rotation rate of 1 is a non-rotating medium (SSD).
    if (((b1[4]! << 8) | b1[5]!) === 1) this.rotational = false;
  }

  /** scsi_mode_sense with MODE SENSE(6): header fields, or undefined when it failed. */
  private modeSense(dbd: boolean, page: number, length: number): { data: Uint8Array; length: number; deviceSpecific: number; bdl: number } | undefined {
    const r = this.exec(new Uint8Array([ScsiOp.MODE_SENSE, dbd ? 0x08 : 0, page & 0x3f, 0, length, 0]), 'from-device', length);
    if (!r.disposition.ok) return undefined;
    // The buffer is zeroed before the command (scsi_mode_sense), so a short answer reads as zeros.
    const data = new Uint8Array(length);
    data.set(r.data.subarray(0, length));
    return { data, length: data[0]! + 1, deviceSpecific: data[2]!, bdl: data[3]! };
  }

  /** sd_read_write_protect_flag: MODE SENSE(6) of all pages, 4 bytes (then page 0, then 255 bytes). */
  private readWriteProtectFlag(): void {
    const old = this.writeProtect;
    const ms = this.modeSense(false, 0x3f, 4) ?? this.modeSense(false, 0, 4) ?? this.modeSense(false, 0x3f, 255);
    if (!ms) {
      this.log('warn', 'Test WP failed, assume Write Enabled');
      return;
    }
    this.writeProtect = (ms.deviceSpecific & 0x80) !== 0;
    if (this.firstScan || old !== this.writeProtect) {
      this.log('notice', `Write Protect is ${this.writeProtect ? 'on' : 'off'}`);
      this.log('debug', `Mode Sense: ${hexBytes(ms.data.subarray(0, 4))}`);
    }
  }

  /** sd_read_cache_type: the caching page (8), 4 bytes first, then as many as the header says. */
  private readCacheType(): void {
    const old = [this.wce, this.rcd, this.dpofua].join();
    const first = this.modeSense(false, 8, 4);
    const defaults = () => {
      this.log('err', 'Assuming drive cache: write through');
      this.wce = false;
      this.rcd = false;
      this.dpofua = false;
    };
    if (!first) return defaults();
    let len = first.length;
    if (len < 3) return defaults();
    len = Math.min(len, SD_BUF_SIZE, 255);
    const full = len > 4 ? this.modeSense(false, 8, len) : first;
    if (!full) return defaults();
    let offset = 4 + full.bdl;
    let found = -1;
    while (offset < len) {
      const code = full.data[offset]! & 0x3f;
      if (code === 8) {
        if (len - offset <= 2) {
          this.log('err', 'Incomplete mode parameter data');
          return defaults();
        }
        found = offset;
        break;
      }
      if (len - offset > 1) offset += 2 + full.data[offset + 1]!;
      else {
        this.log('err', 'Incomplete mode parameter data');
        return defaults();
      }
    }
    if (found < 0) {
      this.log('err', 'No Caching mode page found');
      return defaults();
    }
    this.wce = (full.data[found + 2]! & 0x04) !== 0;
    this.rcd = (full.data[found + 2]! & 0x01) !== 0;
    this.dpofua = (full.deviceSpecific & 0x10) !== 0;
    // No cache flush allowed for write protected devices.
    if (this.wce && this.writeProtect) this.wce = false;
    if (this.firstScan || old !== [this.wce, this.rcd, this.dpofua].join()) {
      this.log('notice', `Write cache: ${this.wce ? 'enabled' : 'disabled'}, read cache: ${this.rcd ? 'disabled' : 'enabled'}, ${this.dpofua ? 'supports DPO and FUA' : "doesn't support DPO or FUA"}`);
    }
  }

  /** sd_config_write_same: how write-zeroes requests are carried out. */
  private configWriteSame(): void {
    if (this.sdev.noWriteSame) this.maxWsBlocks = 0;
    else if (this.maxWsBlocks > SD_MAX_WS10_BLOCKS) this.maxWsBlocks = Math.min(this.maxWsBlocks, SD_MAX_WS16_BLOCKS);
    else this.maxWsBlocks = Math.min(this.maxWsBlocks || SD_MAX_WS10_BLOCKS, SD_MAX_WS10_BLOCKS);
    if (this.lbprz && this.lbpws) this.zeroing = 'ws16-unmap';
    else if (this.lbprz && this.lbpws10) this.zeroing = 'ws10-unmap';
    else if (this.maxWsBlocks) this.zeroing = 'ws';
    else this.zeroing = 'write';
  }

  private printResult(msg: string, cmd: ScsiCmnd): void {
    const names: Record<number, string> = { 0: 'DID_OK', 1: 'DID_NO_CONNECT', 3: 'DID_TIME_OUT', 4: 'DID_BAD_TARGET', 7: 'DID_ERROR', 0x0d: 'DID_REQUEUE' };
    const hb = names[cmd.hostByte];
    this.log('info', hb ? `${msg}: Result: hostbyte=${hb} driverbyte=DRIVER_OK` : `${msg}: Result: hostbyte=0x${cmd.hostByte.toString(16).padStart(2, '0')} driverbyte=DRIVER_OK`);
  }

  /** The partition scan of add_disk, through the disk's own reads (4 KiB pages, as the page cache reads). */
  private readPartitions(): void {
    const sectors = (this.capacity * this.logicalBlockSize) / 512;
    const read = (sector: number, count: number): Uint8Array | undefined => {
      const first = Math.floor((sector * 512) / this.logicalBlockSize);
      const last = Math.floor(((sector + count) * 512 - 1) / this.logicalBlockSize);
      if (last >= this.capacity) return undefined;
      const req = this.read(first, last - first + 1);
      const r = this.waitFor(req);
      if (!r?.ok || !r.data) return undefined;
      const at = sector * 512 - first * this.logicalBlockSize;
      return r.data.subarray(at, at + count * 512);
    };
    this.partitions = scanPartitions(this.name, sectors, read, this.logicalBlockSize);
    if (this.partitions) this.core.log('info', this.partitions.line);
  }

  /** Runs the guest's clock until `req` completes (or the model's bound passes). */
  waitFor(req: BlockRequest, boundNs = 60e9): BlockResult | undefined {
    this.core.transport.waitUntil(() => req.result !== undefined, boundNs);
    return req.result;
  }

  // --- The block device ---------------------------------------------------------------------------

  read(lba: number, blocks: number, o: BlockIoOptions = {}): BlockRequest {
    const small = intoTooSmall(o, blocks * this.logicalBlockSize);
    if (small) {
      const req = newRequest('read', lba, blocks);
      settle(req, small);
      return req;
    }
    return this.submitRw('read', lba, blocks, undefined, o);
  }

  write(lba: number, data: Uint8Array, o: BlockIoOptions = {}): BlockRequest {
    if (data.length % this.logicalBlockSize !== 0) {
      const req = newRequest('write', lba, 0);
      settle(req, { ok: false, errno: 'EINVAL', message: `${data.length} bytes is not a whole number of ${this.logicalBlockSize}-byte blocks` });
      return req;
    }
    return this.submitRw('write', lba, data.length / this.logicalBlockSize, data, o);
  }

  flush(o: BlockIoOptions = {}): BlockRequest {
    const req = newRequest('flush', 0, 0);
    // Without a volatile write cache the block layer completes a flush at once.
    if (!this.wce) {
      settle(req, { ok: true });
      return req;
    }
    this.issue(req, [{ cdb: cdb10(ScsiOp.SYNCHRONIZE_CACHE, 0, 0), direction: 'none', lba: 0 }], o);
    return req;
  }

  discard(lba: number, blocks: number, o: BlockIoOptions = {}): BlockRequest {
    const req = newRequest('discard', lba, blocks);
    if (this.provisioning === 'full' || this.provisioning === 'disabled' || this.provisioning === 'zero') {
      settle(req, { ok: false, errno: 'EOPNOTSUPP', message: `${this.name} does not support discard` });
      return req;
    }
    if (!this.checkEod(req, lba, blocks, o)) return req;
    const cmds: Piece[] = [];
    const max = this.provisioning === 'unmap' ? Math.min(this.maxUnmapBlocks || SD_MAX_WS16_BLOCKS, SD_MAX_WS16_BLOCKS) : this.provisioning === 'ws16' ? SD_MAX_WS16_BLOCKS : SD_MAX_WS10_BLOCKS;
    for (let done = 0; done < blocks; ) {
      const n = Math.min(max, blocks - done);
      const at = lba + done;
      if (this.provisioning === 'unmap') {
        // sd_setup_unmap_cmnd: an 8-byte header and one 16-byte descriptor.
        const p = new Uint8Array(24);
        const dv = new DataView(p.buffer);
        dv.setUint16(0, 6 + 16);
        dv.setUint16(2, 16);
        dv.setUint32(8, Math.floor(at / 2 ** 32));
        dv.setUint32(12, at >>> 0);
        dv.setUint32(16, n);
        const c = new Uint8Array(10);
        c[0] = ScsiOp.UNMAP;
        c[8] = 24;
        cmds.push({ cdb: c, direction: 'to-device', data: p, lba: at });
      } else {
        const c = this.provisioning === 'ws16' ? cdb16(ScsiOp.WRITE_SAME_16, at, n) : cdb10(ScsiOp.WRITE_SAME, at, n);
        c[1] = 0x08;
        cmds.push({ cdb: c, direction: 'to-device', data: new Uint8Array(this.logicalBlockSize), lba: at });
      }
      done += n;
    }
    this.issue(req, cmds, o);
    return req;
  }

  writeZeroes(lba: number, blocks: number, o: BlockIoOptions = {}): BlockRequest {
    if (this.zeroing === 'write') {
      // blkdev_issue_zeroout falls back to writing zero pages (__blkdev_issue_zero_pages).
      const req = this.submitRw('write', lba, blocks, new Uint8Array(blocks * this.logicalBlockSize), o);
      return Object.assign(req, { op: 'write-zeroes' as BlockOp });
    }
    const req = newRequest('write-zeroes', lba, blocks);
    if (!this.checkEod(req, lba, blocks, o)) return req;
    const cmds: Piece[] = [];
    const unmap = this.zeroing === 'ws16-unmap' || this.zeroing === 'ws10-unmap';
    for (let done = 0; done < blocks; ) {
      const n = Math.min(this.maxWsBlocks || SD_MAX_WS10_BLOCKS, blocks - done);
      const at = lba + done;
      const ws16 = this.zeroing === 'ws16-unmap' || at + n > 0xffffffff || n > 0xffff;
      const c = ws16 ? cdb16(ScsiOp.WRITE_SAME_16, at, n) : cdb10(ScsiOp.WRITE_SAME, at, n);
      if (unmap) c[1] = 0x08;
      cmds.push({ cdb: c, direction: 'to-device', data: new Uint8Array(this.logicalBlockSize), lba: at });
      done += n;
    }
    this.issue(req, cmds, o);
    return req;
  }

  /** bio_check_eod: a request past the end fails before any command, with two lines. */
  private checkEod(req: BlockRequest, lba: number, blocks: number, o: BlockIoOptions): boolean {
    const per = this.logicalBlockSize / 512;
    const maxsector = this.capacity * per;
    const nr = blocks * per;
    if (!Number.isSafeInteger(lba) || lba < 0 || !Number.isSafeInteger(blocks) || blocks < 0) {
      settle(req, { ok: false, errno: 'EINVAL', message: `LBA ${lba} and ${blocks} blocks are not a block range` });
      return false;
    }
    if (nr && maxsector && (nr > maxsector || lba * per > maxsector - nr)) {
      const rw = req.op === 'read' ? 0 : 1;
      this.core.log('info', `${o.comm ?? 'hvkit'}: attempt to access beyond end of device`);
      this.core.log('info', `${this.name}: rw=${rw}, sector=${lba * per}, nr_sectors = ${nr} limit=${maxsector}`);
      settle(req, { ok: false, errno: 'EIO', message: `blocks ${lba}..${lba + blocks - 1} are beyond the end of the ${this.capacity}-block device` });
      return false;
    }
    return true;
  }

  private submitRw(op: 'read' | 'write', lba: number, blocks: number, data: Uint8Array | undefined, o: BlockIoOptions): BlockRequest {
    const req = newRequest(op, lba, blocks);
    if (!this.checkEod(req, lba, blocks, o)) return req;
    if (blocks === 0) {
      settle(req, { ok: true, ...(op === 'read' ? { data: o.into ? o.into.subarray(0, 0) : new Uint8Array(0) } : {}) });
      return req;
    }
    if (op === 'write' && this.writeProtect) this.core.log('warn', `Trying to write to read-only block-device ${this.name}`);
    const max = this.maxTransferBlocks;
    // One piece (most requests): issued as issue() issues a one-piece list, with no list made.
    if (blocks <= max) return this.issueSingle(req, op, lba, blocks, data, o);
    // Of its final size: an empty array's first push reserves room for 17 pieces (most requests have one).
    const pieces: Piece[] = new Array<Piece>(Math.ceil(blocks / max));
    for (let done = 0, i = 0; done < blocks; i++) {
      const n = Math.min(max, blocks - done);
      const at = lba + done;
      // sd_setup_read_write_cmnd: (16) for large disks or counts, else (10) (use_10_for_rw). The
      // CDB is written into the command's own when it is made (issue).
      const rwOp = this.rwOpcode(op, n);
      const bytes = n * this.logicalBlockSize;
      pieces[i] = op === 'read' ? { rwOp, blocks: n, direction: 'from-device', length: bytes, lba: at } : { rwOp, blocks: n, direction: 'to-device', data: data!.subarray(done * this.logicalBlockSize, done * this.logicalBlockSize + bytes), lba: at };
      done += n;
    }
    this.issue(req, pieces, o);
    return req;
  }

  /** sd_setup_read_write_cmnd's opcode: (16) for large disks or counts, else (10) (use_10_for_rw). */
  private rwOpcode(op: 'read' | 'write', blocks: number): number {
    return this.use16ForRw || blocks > 0xffff ? (op === 'read' ? ScsiOp.READ_16 : ScsiOp.WRITE_16) : op === 'read' ? ScsiOp.READ_10 : ScsiOp.WRITE_10;
  }

  /**
   * A READ or WRITE of one piece (at most maxTransferBlocks), `blocks` > 0: what issue() does with
   * the one piece submitRw would make, with no piece or list made.
   */
  private issueSingle(req: BlockRequest, op: 'read' | 'write', lba: number, blocks: number, data: Uint8Array | undefined, o: BlockIoOptions): BlockRequest {
    const bytes = blocks * this.logicalBlockSize;
    const into = o.into;
    let out: Uint8Array | undefined;
    let direct: number | undefined;
    if (op === 'read') {
      out = into ? (into.length === bytes ? into : into.subarray(0, bytes)) : new Uint8Array(bytes);
      // directGpa of a one-piece list: no piece but the last to check.
      if (into) direct = this.directGpaOf(out);
    }
    const io = this.takeIo(req, out, direct, this.logicalBlockSize / 512, 1);
    const rwOp = this.rwOpcode(op, blocks);
    // A write's piece has its data and no length (issue() reads its length as 0), as submitRw makes it.
    if (op === 'read') this.issueRw(io, rwOp, blocks, 'from-device', undefined, bytes, lba, 0, o.cpu ?? 0);
    else this.issueRw(io, rwOp, blocks, 'to-device', data!.subarray(0, bytes), 0, lba, 0, o.cpu ?? 0);
    return req;
  }

  /**
   * Sends one READ or WRITE piece of `io` (issue): a command of the pool (blk-mq's request of a tag,
   * given back in pieceDone once this piece is done), its CDB written into the command's own.
   */
  private issueRw(io: SdIo, rwOp: number, blocks: number, direction: 'from-device' | 'to-device', data: Uint8Array | undefined, length: number, lba: number, offset: number, cpu: number): void {
    let cmd: ScsiCmnd;
    try {
      const sixteen = rwOp === ScsiOp.READ_16 || rwOp === ScsiOp.WRITE_16;
      cmd = this.core.ioCommand(this.sdev, sixteen ? 16 : 10, direction, data ? data.length : length, data, io.direct === undefined ? -1 : io.direct + offset, SD_MAX_RETRIES);
      if (sixteen) putCdb16(cmd.cdb, rwOp, lba, blocks);
      else putCdb10(cmd.cdb, rwOp, lba, blocks);
    } catch (e) {
      this.pieceFailed(io, e);
      return;
    }
    this.submitPiece(io, cmd, offset, lba, length, cpu);
  }

  /**
   * No pages for the buffer (the transport's OutOfMemoryError): the piece fails with ENOMEM rather
   * than the guest falling over; the request completes once its other pieces have.
   */
  private pieceFailed(io: SdIo, e: unknown): void {
    if (!(e instanceof Error && e.name === 'OutOfMemoryError')) throw e;
    io.failure ??= { ok: false, errno: 'ENOMEM', message: e.message };
    if (--io.left > 0) return;
    const req = io.req!;
    const failure = io.failure;
    this.releaseIo(io);
    settle(req, failure);
  }

  private submitPiece(io: SdIo, cmd: ScsiCmnd, offset: number, lba: number, length: number, cpu: number): void {
    cmd.upper = io;
    cmd.upperOffset = offset;
    cmd.upperLba = lba;
    cmd.upperLength = length;
    this.core.submit(cmd, cpu, this.pieceDone);
  }

  /**
   * Sends the pieces of a request; it completes when all have, with the first failure. A read's
   * pieces are copied out of their pages straight into the one buffer the request returns.
   */
  private issue(req: BlockRequest, pieces: Piece[], o: BlockIoOptions): void {
    const per = this.logicalBlockSize / 512;
    let total = 0;
    for (let i = 0; i < pieces.length; i++) total += pieces[i]!.length ?? 0;
    // A read into a buffer of just its size gets that buffer back (a view of all of it).
    const out = req.op !== 'read' ? undefined : o.into ? (o.into.length === total ? o.into : o.into.subarray(0, total)) : new Uint8Array(total);
    // A read into the guest's own RAM, page by page: the device fills those pages (an O_DIRECT
    // read's bio takes the user's pages), with no pages of the kernel's between and no copy out.
    const direct = out && o.into ? this.directGpa(out, pieces) : undefined;
    // What the pieces share (sd's part of the struct request), read back by pieceDone through
    // each command: no closure per piece.
    const io = this.takeIo(req, out, direct, per, pieces.length);
    const cpu = o.cpu ?? 0;
    let at = 0;
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      const offset = at;
      at += p.length ?? 0;
      if (p.rwOp !== undefined) {
        this.issueRw(io, p.rwOp, p.blocks!, p.direction as 'from-device' | 'to-device', p.data, p.length ?? 0, p.lba, offset, cpu);
        continue;
      }
      let cmd: ScsiCmnd;
      try {
        // The options as one literal: an object spread here costs more than the rest of the request.
        // Each piece's CDB is made for it alone: the command takes it without a copy.
        const pages = direct === undefined ? undefined : pageRun(direct + offset, p.length ?? 0, this.core.memory.pageSize);
        cmd = this.core.newCommand(this.sdev, p.data ? { cdb: p.cdb!, direction: p.direction, data: p.data, retries: SD_MAX_RETRIES } : { cdb: p.cdb!, direction: p.direction, length: p.length ?? 0, retries: SD_MAX_RETRIES }, true, pages);
      } catch (e) {
        this.pieceFailed(io, e);
        continue;
      }
      this.submitPiece(io, cmd, offset, p.lba, p.length ?? 0, cpu);
    }
  }

  /** A piece of a request (issue) is final: its data, its failure, and the request once all are. */
  private readonly pieceDone = (d: Disposition, cmd: ScsiCmnd): void => {
    const io = cmd.upper as SdIo;
    const req = io.req!;
    if (d.ok) {
      if (cmd.direction === 'from-device') {
        // A short transfer is an error for a read (the block layer's resid handling).
        const n = this.core.receivedLength(cmd);
        if (n < cmd.upperLength) io.failure ??= { ok: false, errno: 'EIO', message: `short read: ${n} of ${cmd.upperLength} bytes` };
        else if (io.out && !io.failure && io.direct === undefined) this.core.receiveInto(cmd, io.out, cmd.upperOffset);
      }
    } else {
      // A command the mid layer refused (a removed device) never reached the host: no report.
      if (cmd.issued) this.core.printIoError(cmd, 'sd', cmd.upperLba * io.per, req.op === 'read' ? 'READ' : req.op === 'flush' ? 'FLUSH' : req.op === 'discard' ? 'DISCARD' : 'WRITE');
      io.failure ??= { ok: false, errno: d.errno, message: describeFailure(cmd) };
    }
    this.core.freeBuffer(cmd);
    // Nothing reads the command after this: it goes back to the pool (if it came from it).
    this.core.recycle(cmd);
    if (--io.left > 0) return;
    // The request is final: its record goes back to the pool before the caller hears of it (and
    // may issue the next request, which can take it).
    const failure = io.failure;
    const out = io.out;
    this.releaseIo(io);
    if (failure) return settle(req, failure);
    if (req.op !== 'read') return settle(req, { ok: true });
    settle(req, { ok: true, data: out! });
  };

  /** A request's record (SdIo), from the pool when it has one: requests in flight are few, each gives its record back when final. */
  private takeIo(req: BlockRequest, out: Uint8Array | undefined, direct: number | undefined, per: number, left: number): SdIo {
    const io = this.ioPool.pop() ?? new SdIo();
    io.req = req;
    io.out = out;
    io.direct = direct;
    io.per = per;
    io.left = left;
    io.failure = undefined;
    return io;
  }

  /** Gives a final request's record back (it keeps nothing of the request). */
  private releaseIo(io: SdIo): void {
    io.req = undefined;
    io.out = undefined;
    io.failure = undefined;
    if (this.ioPool.length < IO_POOL_MAX) this.ioPool.push(io);
  }
  private readonly ioPool: SdIo[] = [];

  /**
   * The GPA of `out` when it is a view of the guest's RAM that starts on a page and every piece
   * but the last is whole pages (so each piece starts on a page): the pages can be the commands'
   * buffers. Undefined otherwise (the read goes through pages of the kernel's, then a copy).
   */
  private directGpa(out: Uint8Array, pieces: readonly Piece[]): number | undefined {
    const gpa = this.directGpaOf(out);
    if (gpa === undefined) return undefined;
    const page = this.core.memory.pageSize;
    for (let i = 0; i < pieces.length - 1; i++) if ((pieces[i]!.length ?? 0) % page !== 0) return undefined;
    return gpa;
  }

  /** The GPA of `out` when it is a non-empty view of the guest's RAM that starts on a page. */
  private directGpaOf(out: Uint8Array): number | undefined {
    const mem = this.core.memory;
    // RAM's buffer as GuestMemory keeps it: a typed array's buffer getter costs tens of nanoseconds
    // in Node 20, on a path taken per request.
    if (out.length === 0 || out.buffer !== mem.buffer) return undefined;
    const gpa = out.byteOffset - mem.bytes.byteOffset;
    if (gpa % mem.pageSize !== 0 || !mem.contains(gpa, out.length)) return undefined;
    return gpa;
  }

  /** sd_remove → sd_shutdown: a disk with a write cache is flushed; the name is freed. */
  remove(): void {
    if (this.removed) return;
    if (this.wce) {
      this.log('notice', 'Synchronizing SCSI cache');
      // sd_sync_cache sends it as a PM request: it passes while the device is being removed.
      const r = this.exec(cdb10(ScsiOp.SYNCHRONIZE_CACHE, 0, 0), 'none', 0, undefined, true);
      if (!r.disposition.ok && !r.timedOut) this.printResult('Synchronize Cache(10) failed', r.cmd);
    }
    this.removed = true;
    this.core.freeSdIndex(this.index);
  }
}

/** One block request in flight: what its pieces share (the closure each piece's callback had). A record of SdDisk's pool. */
class SdIo {
  req: BlockRequest | undefined = undefined;
  out: Uint8Array | undefined = undefined;
  direct: number | undefined = undefined;
  per = 1;
  /** Pieces not final yet. */
  left = 0;
  failure: BlockResult | undefined = undefined;
}

/** SdIo records a disk keeps for reuse at most (more are in flight only with that many requests). */
const IO_POOL_MAX = 64;

interface Piece {
  /** The CDB of a command of its own (flush, discard, write-zeroes), or for a READ or WRITE: */
  readonly cdb?: Uint8Array;
  /** its opcode and block count, the CDB being written when the command is made. */
  readonly rwOp?: number;
  readonly blocks?: number;
  readonly direction: 'none' | 'from-device' | 'to-device';
  readonly data?: Uint8Array;
  readonly length?: number;
  readonly lba: number;
}

/** The GPAs of the pages holding `bytes` bytes from the page at `gpa`. */
function pageRun(gpa: number, bytes: number, page: number): number[] {
  const pages = new Array<number>(Math.ceil(bytes / page));
  for (let i = 0; i < pages.length; i++) pages[i] = gpa + i * page;
  return pages;
}

/** A failed command in words: host byte, status, sense. */
export function describeFailure(cmd: ScsiCmnd): string {
  const s = cmd.senseHeader;
  const parts = [`host byte 0x${cmd.hostByte.toString(16)}`, `status 0x${cmd.status.toString(16)}`];
  if (s) parts.push(`sense key 0x${s.key.toString(16)} asc 0x${s.asc.toString(16)} ascq 0x${s.ascq.toString(16)}`);
  return parts.join(', ');
}

/** The sd upper driver: binds every disk the scan finds. */
export function attachSd(core: ScsiCore, disks: SdDisk[]): void {
  core.upper.set(0, (sdev) => {
    const disk = new SdDisk(core, sdev, core.allocSdIndex());
    disks.push(disk);
    sdev.onRemove = () => {
      disk.remove();
      const i = disks.indexOf(disk);
      if (i >= 0) disks.splice(i, 1);
    };
    disk.probe();
  });
}
