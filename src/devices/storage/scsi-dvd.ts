// A read-only SCSI DVD drive for ISO images: the MMC-6 subset Linux's sr and the cdrom layer send
// (TEST UNIT READY, INQUIRY, READ(10/12/16), READ CAPACITY, GET CONFIGURATION, GET EVENT STATUS
// NOTIFICATION, READ TOC, READ DISC INFORMATION, START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL,
// REQUEST SENSE), after OpenVMM's scsidvd (media states, 2048-byte sectors, NOT READY / MEDIUM NOT
// PRESENT without a disc). Identity from a real Hyper-V guest's dmesg: "CD-ROM Msft Virtual
// DVD-ROM 1.0 PQ: 0 ANSI: 0", and "[sr0] scsi-1 drive": the drive has no capabilities mode page
// (0x2a), so every MODE SENSE is refused.
import { DiskIoError, type BlockBackend } from './backend.js';
import { cdbBytes, parseCdb } from './cdb.js';
import { Asc, DeviceType, fixedSense, putBe16, putBe32, ScsiStatus, SenseKey } from './scsi.js';
import { transfer } from './scsi-disk.js';
import { checkCondition, DataAccessError, good, illegalRequest, type ScsiData, type ScsiRequest, type ScsiResult, type ScsiTarget } from './target.js';
import { SrbStatus } from './wire.js';

/** Per protocol an ISO's sector is 2048 bytes (OpenVMM scsidvd ISO_SECTOR_SIZE). */
export const DVD_SECTOR_SIZE = 2048;
/** MMC profiles: DVD-ROM, CD-ROM. */
const PROFILE_DVD_ROM = 0x0010;
const PROFILE_CD_ROM = 0x0008;
/** GET EVENT STATUS NOTIFICATION: the media class (bit 4) and its event codes (MMC-6 6.8.2.5). */
const EVENT_CLASS_MEDIA = 4;
const MediaEvent = { NO_CHANGE: 0, EJECT_REQUEST: 1, NEW_MEDIA: 2, MEDIA_REMOVAL: 3 } as const;

const ascii = (s: string, n: number): Uint8Array => {
  const out = new Uint8Array(n).fill(0x20);
  for (let i = 0; i < Math.min(n, s.length); i++) out[i] = s.charCodeAt(i) & 0x7f;
  return out;
};

function respond(data: ScsiData, allocation: number, content: Uint8Array): ScsiResult {
  const n = Math.min(allocation, content.length, data.length);
  if (n > 0) data.write(0, content.subarray(0, n));
  return good(n);
}

export class ScsiDvd implements ScsiTarget {
  readonly deviceType = DeviceType.CDROM;
  private media: BlockBackend | undefined;
  private pendingEvent: number = MediaEvent.NO_CHANGE;
  private prevent = false;
  private lastSense: Uint8Array | undefined;

  constructor(media?: BlockBackend) {
    this.media = media;
    if (media) this.pendingEvent = MediaEvent.NEW_MEDIA;
  }

  get loaded(): boolean {
    return this.media !== undefined;
  }

  /** Inserts a disc (host side: "Insert Disk"). */
  insert(media: BlockBackend): void {
    this.media?.close?.();
    this.media = media;
    this.pendingEvent = MediaEvent.NEW_MEDIA;
  }

  /** Removes the disc (host side), whatever the guest prevents. */
  eject(): void {
    this.media?.close?.();
    this.media = undefined;
    this.pendingEvent = MediaEvent.MEDIA_REMOVAL;
  }

  close(): void {
    this.media?.close?.();
    this.media = undefined;
  }

  /** 2048-byte sectors of the disc. */
  private get sectors(): number {
    const m = this.media;
    return m ? Math.floor((m.sectorCount * m.sectorSize) / DVD_SECTOR_SIZE) : 0;
  }

  execute(req: ScsiRequest): ScsiResult {
    let r: ScsiResult;
    try {
      r = this.run(req);
    } catch (e) {
      if (e instanceof DataAccessError) r = checkCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB, SrbStatus.INVALID_REQUEST);
      else if (e instanceof DiskIoError) r = checkCondition(SenseKey.MEDIUM_ERROR, Asc.UNRECOVERED_READ_ERROR, SrbStatus.ERROR);
      else throw e;
    }
    if (r.scsiStatus !== ScsiStatus.GOOD) this.lastSense = r.sense;
    else if (req.cdb[0] !== 0x03) this.lastSense = undefined;
    return r;
  }

  private notReady(): ScsiResult {
    return checkCondition(SenseKey.NOT_READY, Asc.MEDIUM_NOT_PRESENT_TRAY_CLOSED, SrbStatus.ERROR);
  }

  private run(req: ScsiRequest): ScsiResult {
    const c = parseCdb(cdbBytes(req.cdb), req.cdbLength);
    const data = req.data;
    switch (c.op) {
      case 'invalid':
        return illegalRequest(c.asc);
      case 'inquiry': {
        if (c.evpd) {
          if (c.page === 0x00) return respond(data, c.allocation, new Uint8Array([DeviceType.CDROM, 0x00, 0, 2, 0x00, 0x83]));
          if (c.page === 0x83) {
            const id = new Uint8Array([DeviceType.CDROM, 0x83, 0, 12, 0x02, 0x01, 0x00, 8, ...ascii('Msft', 8)]);
            return respond(data, c.allocation, id);
          }
          return illegalRequest(Asc.INVALID_FIELD_IN_CDB);
        }
        const d = new Uint8Array(36);
        d[0] = DeviceType.CDROM;
        d[1] = 0x80;
        d[2] = 0x00;
        d[3] = 0x02;
        d[4] = d.length - 5;
        d.set(ascii('Msft', 8), 8);
        d.set(ascii('Virtual DVD-ROM', 16), 16);
        d.set(ascii('1.0', 4), 32);
        return respond(data, c.allocation, d);
      }
      case 'test-unit-ready':
        return this.media ? good(0) : this.notReady();
      case 'request-sense': {
        const sense = this.lastSense ?? (this.media ? fixedSense(SenseKey.NO_SENSE, Asc.NO_ADDITIONAL_SENSE) : fixedSense(SenseKey.NOT_READY, Asc.MEDIUM_NOT_PRESENT_TRAY_CLOSED));
        this.lastSense = undefined;
        return respond(data, c.allocation, sense);
      }
      case 'read': {
        if (!this.media) return this.notReady();
        if (c.size === 6) return illegalRequest(Asc.INVALID_COMMAND_OPERATION_CODE);
        if (c.blocks === 0) return good(0);
        if (!Number.isSafeInteger(c.lba) || c.lba + c.blocks > this.sectors) return illegalRequest(Asc.LBA_OUT_OF_RANGE);
        const bytes = c.blocks * DVD_SECTOR_SIZE;
        if (bytes > data.length) return illegalRequest(Asc.LBA_OUT_OF_RANGE);
        if (!data.writable) throw new DataAccessError('READ into a buffer the host may not write');
        const m = this.media;
        const per = DVD_SECTOR_SIZE / m.sectorSize;
        transfer(data, bytes, m.sectorSize, (lba, view) => m.read(c.lba * per + lba, view), false);
        return good(bytes);
      }
      case 'read-capacity-10': {
        if (!this.media) return this.notReady();
        const out = new Uint8Array(8);
        putBe32(out, 0, Math.max(0, this.sectors - 1));
        putBe32(out, 4, DVD_SECTOR_SIZE);
        if (data.length < 8) return checkCondition(SenseKey.ILLEGAL_REQUEST, Asc.INVALID_FIELD_IN_CDB, SrbStatus.DATA_OVERRUN);
        data.write(0, out);
        return good(8);
      }
      case 'get-configuration':
        return respond(data, c.allocation, this.configuration(c.rt, c.start));
      case 'get-event-status': {
        // Asynchronous notification is not supported (OpenVMM scsidvd: only the polled form).
        if (!c.polled) return illegalRequest(Asc.INVALID_FIELD_IN_CDB);
        const out = new Uint8Array(8);
        out[3] = 1 << EVENT_CLASS_MEDIA;
        if (!(c.classes & (1 << EVENT_CLASS_MEDIA))) {
          // No event of a requested class is supported: NEA.
          out[2] = 0x80;
          return respond(data, c.allocation, out.subarray(0, 4));
        }
        putBe16(out, 0, 6);
        out[2] = EVENT_CLASS_MEDIA;
        out[4] = this.pendingEvent;
        out[5] = this.media ? 0x02 : 0x00;
        this.pendingEvent = MediaEvent.NO_CHANGE;
        return respond(data, c.allocation, out);
      }
      case 'read-toc': {
        if (!this.media) return this.notReady();
        if (c.format !== 0) return illegalRequest(Asc.INVALID_FIELD_IN_CDB);
        // One data track and the lead-out (MMC-6 6.39.2.2).
        const out = new Uint8Array(4 + 16);
        putBe16(out, 0, out.length - 2);
        out[2] = 1;
        out[3] = 1;
        const desc = (at: number, track: number, lba: number) => {
          out[at + 1] = 0x14;
          out[at + 2] = track;
          if (c.msf) {
            const f = lba + 150;
            out.set([0, Math.floor(f / 4500), Math.floor(f / 75) % 60, f % 75], at + 4);
          } else putBe32(out, at + 4, lba);
        };
        desc(4, 1, 0);
        desc(12, 0xaa, this.sectors);
        return respond(data, c.allocation, out);
      }
      case 'read-disc-information': {
        if (!this.media) return this.notReady();
        const out = new Uint8Array(34);
        putBe16(out, 0, 32);
        // A complete, finalized disc with one session and one track.
        out[2] = 0x0e;
        out[3] = 1;
        out[4] = 1;
        out[5] = 1;
        out[6] = 1;
        return respond(data, c.allocation, out);
      }
      case 'start-stop':
        if (c.loej && !c.start) {
          if (this.prevent) return illegalRequest(Asc.MEDIUM_REMOVAL_PREVENTED);
          if (this.media) this.eject();
        }
        return good(0);
      case 'prevent-allow':
        this.prevent = (c.prevent & 1) !== 0;
        return good(0);
      default:
        // MODE SENSE (no capabilities page on Hyper-V), writes and the rest: not supported.
        if (c.op === 'mode-sense') return illegalRequest(Asc.INVALID_FIELD_IN_CDB);
        return illegalRequest(Asc.INVALID_COMMAND_OPERATION_CODE);
    }
  }

  /** GET CONFIGURATION: the header with the current profile, then the features `rt` asks for from `start`. */
  private configuration(rt: number, start: number): Uint8Array {
    const current = this.media ? PROFILE_DVD_ROM : 0;
    const features: [number, Uint8Array][] = [
      // Profile list: DVD-ROM and CD-ROM, the current one marked.
      [0x0000, new Uint8Array([PROFILE_DVD_ROM >> 8, PROFILE_DVD_ROM & 0xff, current === PROFILE_DVD_ROM ? 1 : 0, 0, PROFILE_CD_ROM >> 8, PROFILE_CD_ROM & 0xff, 0, 0])],
      // Core: physical interface standard unspecified.
      [0x0001, new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0])],
      // Removable medium: tray loading, eject supported.
      [0x0003, new Uint8Array([0x29, 0, 0, 0])],
      // Random readable: 2048-byte blocks, blocking 1.
      [0x0010, new Uint8Array([0, 0, DVD_SECTOR_SIZE >> 8, 0, 0, 1, 0, 0])],
      // DVD read.
      [0x001f, new Uint8Array([0, 0, 0, 0])],
    ];
    const parts: Uint8Array[] = [];
    for (const [code, body] of features) {
      if (code < start) continue;
      if (rt === 2 && code !== start) continue;
      const isCurrent = code === 0x0000 || code === 0x0001 || code === 0x0003 || this.media !== undefined;
      if (rt === 1 && !isCurrent) continue;
      const f = new Uint8Array(4 + body.length);
      putBe16(f, 0, code);
      f[2] = (code === 0x0000 || code === 0x0001 ? 0x03 : 0x00) | (isCurrent ? 0x01 : 0);
      f[3] = body.length;
      f.set(body, 4);
      parts.push(f);
    }
    const len = parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(8 + len);
    putBe32(out, 0, out.length - 4);
    putBe16(out, 6, current);
    let at = 8;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}
