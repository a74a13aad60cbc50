// sr, Linux 6.1's SCSI CD-ROM driver (drivers/scsi/sr.c with drivers/cdrom/cdrom.c): the probe
// (get_sectorsize by READ CAPACITY, get_capabilities by MODE SENSE(10) of page 0x2a, which a
// Hyper-V DVD refuses: "scsi-1 drive"; the cdrom layer's banner on its first registration;
// "Attached scsi CD-ROM sr0"), and reads of 2048-byte blocks. The device is read-only.
import { ScsiOp } from '../scsi.js';
import { intoTooSmall, newRequest, settle, type BlockDevice, type BlockIoOptions, type BlockRequest } from './block.js';
import { SD_MAX_RETRIES, type ScsiCore, type ScsiDevice } from './scsi-core.js';
import { describeFailure } from './sd.js';

/** drivers/cdrom/cdrom.c REVISION. */
export const CDROM_REVISION = 'Revision: 3.20';

export class SrDrive implements BlockDevice {
  readonly name: string;
  readonly logicalBlockSize = 2048;
  readonly physicalBlockSize = 2048;
  readonly readOnly = true;
  capacity = 0;
  /** "scsi3-mmc" when the drive had a capabilities page, "scsi-1" otherwise. */
  kind: 'scsi-1' | 'scsi3-mmc' = 'scsi-1';
  private removed = false;

  constructor(
    readonly core: ScsiCore,
    readonly sdev: ScsiDevice,
    readonly index: number,
  ) {
    this.name = `sr${index}`;
  }

  get present(): boolean {
    return !this.removed && this.sdev.state === 'running';
  }

  get maxTransferBlocks(): number {
    return Math.max(1, Math.floor((this.sdev.host.maxSectors * 512) / this.logicalBlockSize));
  }

  /** sr_probe. */
  probe(): void {
    this.sdev.diskName = this.name;
    this.readCapacity();
    // get_capabilities: MODE SENSE(10) of the MM capabilities page (ms_len 128).
    const r = this.core.execute(this.sdev, { cdb: new Uint8Array([ScsiOp.MODE_SENSE_10, 0, 0x2a, 0, 0, 0, 0, 0, 128, 0]), direction: 'from-device', length: 128, retries: 3 });
    this.kind = r.disposition.ok && r.data.length >= 8 ? 'scsi3-mmc' : 'scsi-1';
    if (this.kind === 'scsi-1') this.core.log('info', `sr ${this.sdev.name}: [${this.name}] scsi-1 drive`);
    else this.core.log('info', `sr ${this.sdev.name}: [${this.name}] scsi3-mmc drive: 0x/0x caddy`);
    if (!this.core.cdromRegistered) {
      this.core.cdromRegistered = true;
      this.core.log('info', `cdrom: Uniform CD-ROM driver ${CDROM_REVISION}`);
    }
    this.core.log('debug', `sr ${this.sdev.name}: Attached scsi CD-ROM ${this.name}`);
  }

  /** get_sectorsize: READ CAPACITY(10); without a disc the capacity is 0. */
  readCapacity(): void {
    const r = this.core.execute(this.sdev, { cdb: new Uint8Array([ScsiOp.READ_CAPACITY, 0, 0, 0, 0, 0, 0, 0, 0, 0]), direction: 'from-device', length: 8, retries: 3 });
    if (!r.disposition.ok || r.data.length < 8) {
      this.capacity = 0;
      return;
    }
    const dv = new DataView(r.data.buffer, r.data.byteOffset, 8);
    this.capacity = dv.getUint32(0) + 1;
  }

  read(lba: number, blocks: number, o: BlockIoOptions = {}): BlockRequest {
    const req = newRequest('read', lba, blocks);
    if (!Number.isSafeInteger(lba) || lba < 0 || !Number.isSafeInteger(blocks) || blocks < 0) {
      settle(req, { ok: false, errno: 'EINVAL', message: `LBA ${lba} and ${blocks} blocks are not a block range` });
      return req;
    }
    const small = intoTooSmall(o, blocks * this.logicalBlockSize);
    if (small) {
      settle(req, small);
      return req;
    }
    if (blocks === 0) {
      settle(req, { ok: true, data: o.into ? o.into.subarray(0, 0) : new Uint8Array(0) });
      return req;
    }
    const c = new Uint8Array(10);
    const dv = new DataView(c.buffer);
    c[0] = ScsiOp.READ_10;
    dv.setUint32(2, lba);
    dv.setUint16(7, Math.min(blocks, 0xffff));
    const cmd = this.core.newCommand(this.sdev, { cdb: c, direction: 'from-device', length: blocks * this.logicalBlockSize, retries: SD_MAX_RETRIES });
    this.core.submit(cmd, o.cpu ?? 0, (d) => {
      if (d.ok && o.into) {
        this.core.receiveInto(cmd, o.into, 0);
        settle(req, { ok: true, data: o.into.subarray(0, this.core.receivedLength(cmd)) });
      } else if (d.ok) settle(req, { ok: true, data: this.core.received(cmd) });
      else {
        if (cmd.issued) this.core.printIoError(cmd, 'sr', lba * 4, 'READ');
        settle(req, { ok: false, errno: d.errno, message: describeFailure(cmd) });
      }
      this.core.freeBuffer(cmd);
    });
    return req;
  }

  /** A CD-ROM is opened read-only: a write fails as the open for writing would. */
  write(lba: number, data: Uint8Array): BlockRequest {
    const req = newRequest('write', lba, data.length / this.logicalBlockSize);
    settle(req, { ok: false, errno: 'EROFS', message: `${this.name} is read-only` });
    return req;
  }

  flush(): BlockRequest {
    const req = newRequest('flush', 0, 0);
    settle(req, { ok: true });
    return req;
  }

  discard(lba: number, blocks: number): BlockRequest {
    const req = newRequest('discard', lba, blocks);
    settle(req, { ok: false, errno: 'EOPNOTSUPP', message: `${this.name} does not support discard` });
    return req;
  }

  writeZeroes(lba: number, blocks: number): BlockRequest {
    const req = newRequest('write-zeroes', lba, blocks);
    settle(req, { ok: false, errno: 'EROFS', message: `${this.name} is read-only` });
    return req;
  }

  remove(): void {
    this.removed = true;
    this.core.freeSrIndex(this.index);
  }
}

/** The sr upper driver: binds every CD/DVD the scan finds. */
export function attachSr(core: ScsiCore, drives: SrDrive[]): void {
  core.upper.set(5, (sdev) => {
    const drive = new SrDrive(core, sdev, core.allocSrIndex());
    drives.push(drive);
    sdev.onRemove = () => {
      drive.remove();
      const i = drives.indexOf(drive);
      if (i >= 0) drives.splice(i, 1);
    };
    drive.probe();
  });
}
