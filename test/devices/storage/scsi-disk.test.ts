// The host's SCSI disk: every command Linux's scan and sd send, with the bytes it answers and the
// sense it reports for each error (OpenVMM scsidisk's choices, SBC-3 and SPC-4 codes), and
// CHECK CONDITION / ILLEGAL REQUEST for everything else. Its CDB parser and the disk are fed
// arbitrary bytes: they never throw.
import fc from 'fast-check';
import { fuzz } from '../../fuzz/fuzz.js';
import { describe, expect, it } from 'vitest';
import { MemoryDisk } from '../../../src/devices/storage/backend.js';
import { parseCdb } from '../../../src/devices/storage/cdb.js';
import { ScsiController } from '../../../src/devices/storage/controller.js';
import { normalizeSense, ScsiStatus } from '../../../src/devices/storage/scsi.js';
import { ScsiDisk } from '../../../src/devices/storage/scsi-disk.js';
import { ScsiDvd } from '../../../src/devices/storage/scsi-dvd.js';
import { ByteData, type ScsiTarget } from '../../../src/devices/storage/target.js';
import { SrbStatus } from '../../../src/devices/storage/wire.js';
import { RUNS } from '../../vmbus/fuzz-runs.js';

const MIB = 1 << 20;

function run(t: ScsiTarget, cdb: number[], o: { length?: number; data?: Uint8Array; writable?: boolean } = {}) {
  const bytes = o.data ?? new Uint8Array(o.length ?? 0);
  const data = new ByteData(bytes, o.writable ?? o.data === undefined);
  const c = new Uint8Array(16);
  c.set(cdb);
  const r = t.execute({ cdb: c, cdbLength: cdb.length, data });
  return { ...r, out: bytes.subarray(0, r.tx), sense: r.sense && normalizeSense(r.sense) };
}

const good = (r: { scsiStatus: number; srbStatus: number }) => {
  expect(r.scsiStatus).toBe(ScsiStatus.GOOD);
  expect(r.srbStatus).toBe(SrbStatus.SUCCESS);
};
/** CHECK CONDITION with this sense key / ASC / ASCQ and SRB status. */
const check = (r: { scsiStatus: number; srbStatus: number; sense?: { key: number; asc: number; ascq: number } | undefined }, key: number, asc: number, ascq: number, srb: number) => {
  expect(r.scsiStatus).toBe(ScsiStatus.CHECK_CONDITION);
  expect(r.srbStatus).toBe(srb);
  expect(r.sense).toMatchObject({ key, asc, ascq });
};
const ILLEGAL = 5;
const ascii = (b: Uint8Array) => String.fromCharCode(...b);
const be32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at);

function disk(opts: { size?: number; readOnly?: boolean; sectorSize?: number } = {}) {
  const backend = new MemoryDisk(opts.size ?? 64 * MIB, { readOnly: opts.readOnly ?? false, sectorSize: opts.sectorSize ?? 512, diskId: Uint8Array.from({ length: 16 }, (_, i) => i + 1) });
  return { backend, disk: new ScsiDisk(backend) };
}

describe('ScsiDisk: what Hyper-V answers', () => {
  it('TEST UNIT READY: GOOD', () => good(run(disk().disk, [0, 0, 0, 0, 0, 0])));

  it('INQUIRY: 96 bytes, direct access, SPC-3, CmdQue, "Msft" "Virtual Disk" "1.0"; truncated to the allocation', () => {
    const { disk: d } = disk();
    const r = run(d, [0x12, 0, 0, 0, 96, 0], { length: 96 });
    good(r);
    expect(r.tx).toBe(96);
    expect([...r.out.subarray(0, 8)]).toEqual([0, 0, 5, 2, 91, 0, 0, 2]);
    expect(ascii(r.out.subarray(8, 36))).toBe('Msft    Virtual Disk    1.0 ');
    expect(run(d, [0x12, 0, 0, 0, 36, 0], { length: 36 }).tx).toBe(36);
  });

  it('INQUIRY: a page code without EVPD, CMDDT, an unknown VPD page, an allocation longer than the buffer: ILLEGAL REQUEST, INVALID FIELD IN CDB', () => {
    const { disk: d } = disk();
    check(run(d, [0x12, 0, 0x80, 0, 36, 0], { length: 36 }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
    check(run(d, [0x12, 2, 0, 0, 36, 0], { length: 36 }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
    check(run(d, [0x12, 1, 0x89, 0, 255, 0], { length: 255 }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
    check(run(d, [0x12, 0, 0, 0, 96, 0], { length: 36 }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
  });

  it('VPD 0x00 lists 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2; each of them answers', () => {
    const { disk: d } = disk();
    const r = run(d, [0x12, 1, 0, 0, 255, 0], { length: 255 });
    good(r);
    expect([...r.out]).toEqual([0, 0, 0, 6, 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
    for (const page of [0x80, 0x83, 0xb0, 0xb1, 0xb2]) {
      const p = run(d, [0x12, 1, page, 0, 255, 0], { length: 255 });
      good(p);
      expect(p.out[1]).toBe(page);
      expect(p.tx).toBe(4 + ((p.out[2]! << 8) | p.out[3]!));
    }
  });

  it('VPD 0x80 and 0x83: the serial and the identifiers come from the disk id (T10 vendor id, NAA 6 with OUI 00-22-48)', () => {
    const { disk: d } = disk();
    expect(ascii(run(d, [0x12, 1, 0x80, 0, 255, 0], { length: 255 }).out.subarray(4))).toBe('0102030405060708090a0b0c0d0e0f10');
    const ids = run(d, [0x12, 1, 0x83, 0, 255, 0], { length: 255 }).out;
    expect([...ids.subarray(4, 8)]).toEqual([1, 1, 0, 24]);
    expect(ascii(ids.subarray(8, 16))).toBe('Msft    ');
    expect([...ids.subarray(16, 32)]).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    expect([...ids.subarray(32, 52)]).toEqual([1, 3, 0, 16, 0x60, 0x02, 0x24, 0x80, 1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16]);
  });

  it('VPD 0xb0, 0xb1, 0xb2: unmap limits and granularity, non-rotating, thin with LBPU', () => {
    const backend = new MemoryDisk(64 * MIB);
    const d = new ScsiDisk(backend, { unmapGranularity: 2048 });
    const b0 = run(d, [0x12, 1, 0xb0, 0, 255, 0], { length: 255 }).out;
    expect(b0[3]).toBe(0x3c);
    expect(be32(b0, 20)).toBe(0xffffffff);
    expect(be32(b0, 24)).toBe(4096);
    expect(be32(b0, 28)).toBe(2048);
    expect(be32(b0, 32)).toBe(0x80000000);
    expect(be32(b0, 40)).toBe((8 * MIB) / 512);
    const b1 = run(d, [0x12, 1, 0xb1, 0, 255, 0], { length: 255 }).out;
    expect((b1[4]! << 8) | b1[5]!).toBe(1);
    expect([...run(d, [0x12, 1, 0xb2, 0, 255, 0], { length: 255 }).out]).toEqual([0, 0xb2, 0, 4, 1, 0x80, 2, 0]);
  });

  it('READ CAPACITY(10) and (16): last LBA, block size, physical exponent, LBPME', () => {
    const { disk: d } = disk();
    const r10 = run(d, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], { length: 8 });
    good(r10);
    expect([be32(r10.out, 0), be32(r10.out, 4)]).toEqual([(64 * MIB) / 512 - 1, 512]);
    const r16 = run(d, [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], { length: 32 });
    good(r16);
    expect([be32(r16.out, 0), be32(r16.out, 4), be32(r16.out, 8), r16.out[13], r16.out[14]]).toEqual([0, (64 * MIB) / 512 - 1, 512, 3, 0x80]);
    // A buffer too short for the data: DATA OVERRUN.
    check(run(d, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], { length: 4 }), ILLEGAL, 0x24, 0, SrbStatus.DATA_OVERRUN);
    // Another service action of SERVICE ACTION IN(16).
    check(run(d, [0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], { length: 32 }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
  });

  it('READ CAPACITY(10) of a disk beyond 2 TiB reports 0xffffffff', () => {
    const d = new ScsiDisk(new MemoryDisk(4 * 2 ** 40));
    expect(be32(run(d, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], { length: 8 }).out, 0)).toBe(0xffffffff);
  });

  it('MODE SENSE(6)/(10): a 12-byte caching page with WCE, no DPO/FUA; write protect on a read-only disk', () => {
    const { disk: d } = disk();
    expect([...run(d, [0x1a, 0, 0x3f, 0, 4, 0], { length: 4 }).out]).toEqual([0x0f, 0, 0, 0]);
    expect([...run(d, [0x1a, 0, 0x08, 0, 255, 0], { length: 255 }).out]).toEqual([0x0f, 0, 0, 0, 0x08, 0x0a, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect([...run(d, [0x5a, 0, 0x08, 0, 0, 0, 0, 0, 255, 0], { length: 255 }).out]).toEqual([0, 18, 0, 0, 0, 0, 0, 0, 0x08, 0x0a, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // The changeable values: nothing changes.
    expect(run(d, [0x1a, 0, 0x48, 0, 255, 0], { length: 255 }).out[6]).toBe(0);
    const ro = disk({ readOnly: true }).disk;
    expect([...run(ro, [0x1a, 0, 0x3f, 0, 4, 0], { length: 4 }).out]).toEqual([0x0f, 0, 0x80, 0]);
  });

  it('MODE SENSE: saved values, another page, a subpage: ILLEGAL REQUEST, INVALID FIELD IN CDB', () => {
    const { disk: d } = disk();
    check(run(d, [0x1a, 0, 0xc8, 0, 255, 0], { length: 255 }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
    check(run(d, [0x1a, 0, 0x01, 0, 255, 0], { length: 255 }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
    check(run(d, [0x1a, 0, 0x08, 1, 255, 0], { length: 255 }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
  });

  it('READ and WRITE (6), (10), (16): the bytes reach the disk and come back', () => {
    const { disk: d, backend } = disk();
    const data = Uint8Array.from({ length: 1024 }, (_, i) => (i * 7) & 0xff);
    good(run(d, [0x2a, 0, 0, 0, 0, 10, 0, 0, 2, 0], { data }));
    const back = new Uint8Array(1024);
    backend.read(10, back);
    expect(back).toEqual(data);
    expect(run(d, [0x28, 0, 0, 0, 0, 10, 0, 0, 2, 0], { length: 1024 }).out).toEqual(data);
    expect(run(d, [0x08, 0, 0, 10, 2, 0], { length: 1024 }).out).toEqual(data);
    expect(run(d, [0x88, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 2, 0, 0], { length: 1024 }).out).toEqual(data);
    good(run(d, [0x0a, 0, 0, 20, 2, 0], { data }));
    good(run(d, [0x8a, 0, 0, 0, 0, 0, 0, 0, 0, 30, 0, 0, 0, 2, 0, 0], { data }));
    backend.read(20, back);
    expect(back).toEqual(data);
    backend.read(30, back);
    expect(back).toEqual(data);
  });

  it('an LBA beyond the capacity, a transfer longer than the buffer: ILLEGAL REQUEST, LBA OUT OF RANGE', () => {
    const { disk: d } = disk();
    // LBA 0x20000 is the first past a 64 MiB disk.
    check(run(d, [0x28, 0, 0x00, 0x02, 0x00, 0x00, 0, 0, 1, 0], { length: 512 }), ILLEGAL, 0x21, 0, SrbStatus.INVALID_REQUEST);
    good(run(d, [0x28, 0, 0x00, 0x01, 0xff, 0xff, 0, 0, 1, 0], { length: 512 }));
    check(run(d, [0x88, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0], { length: 512 }), ILLEGAL, 0x21, 0, SrbStatus.INVALID_REQUEST);
    check(run(d, [0x28, 0, 0, 0, 0, 0, 0, 0, 4, 0], { length: 1024 }), ILLEGAL, 0x21, 0, SrbStatus.INVALID_REQUEST);
    // RELADR is obsolete: INVALID FIELD IN CDB.
    check(run(d, [0x28, 1, 0, 0, 0, 0, 0, 0, 1, 0], { length: 512 }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
  });

  it('a write to a read-only disk: DATA PROTECT, WRITE PROTECTED, and nothing is written', () => {
    const { disk: d, backend } = disk({ readOnly: true });
    check(run(d, [0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0], { data: new Uint8Array(512).fill(9) }), 7, 0x27, 0, SrbStatus.ERROR);
    check(run(d, [0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], { data: new Uint8Array(512) }), 7, 0x27, 0, SrbStatus.ERROR);
    const p = new Uint8Array(24);
    new DataView(p.buffer).setUint16(2, 16);
    new DataView(p.buffer).setUint32(20, 1);
    check(run(d, [0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], { data: p }), 7, 0x27, 0, SrbStatus.ERROR);
    const back = new Uint8Array(512);
    backend.read(0, back);
    expect(back.every((x) => x === 0)).toBe(true);
  });

  it('a READ whose buffer the host may not write (data_in WRITE_TYPE): ILLEGAL REQUEST, INVALID FIELD IN CDB', () => {
    const { disk: d } = disk();
    check(run(d, [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], { data: new Uint8Array(512), writable: false }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
  });

  it('SYNCHRONIZE CACHE (10) and (16) flush the back end; a range past the end is LBA OUT OF RANGE', () => {
    const { disk: d, backend } = disk();
    good(run(d, [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    good(run(d, [0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    expect(backend.flushes).toBe(2);
    check(run(d, [0x35, 0, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0]), ILLEGAL, 0x21, 0, SrbStatus.INVALID_REQUEST);
  });

  it('UNMAP: whole 64 KiB chunks of the memory disk are released; short lists, ragged descriptors and ranges past the end are refused with their codes', () => {
    const { disk: d, backend } = disk();
    backend.write(0, new Uint8Array(256 * 1024).fill(1));
    expect(backend.allocated).toBe(256 * 1024);
    const list = (descs: [number, number][], declared = descs.length * 16) => {
      const p = new Uint8Array(8 + 16 * descs.length);
      const dv = new DataView(p.buffer);
      dv.setUint16(0, 6 + declared);
      dv.setUint16(2, declared);
      descs.forEach(([lba, n], i) => {
        dv.setUint32(8 + 16 * i + 4, lba);
        dv.setUint32(8 + 16 * i + 8, n);
      });
      return p;
    };
    const unmap = (p: Uint8Array, len = p.length) => run(d, [0x42, 0, 0, 0, 0, 0, 0, len >> 8, len & 0xff, 0], { data: p });
    good(unmap(list([[0, 256]])));
    expect(backend.allocated).toBe(128 * 1024);
    good(unmap(new Uint8Array(0)));
    check(unmap(new Uint8Array(4)), ILLEGAL, 0x1a, 0, SrbStatus.INVALID_REQUEST);
    check(unmap(list([[0, 1]], 12)), ILLEGAL, 0x1a, 0, SrbStatus.INVALID_REQUEST);
    check(unmap(list([[(64 * MIB) / 512, 1]])), ILLEGAL, 0x21, 0, SrbStatus.INVALID_REQUEST);
    // ANCHOR is not supported.
    check(run(d, [0x42, 1, 0, 0, 0, 0, 0, 0, 24, 0], { data: list([[0, 1]]) }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
  });

  it('WRITE SAME(16): the block repeated; with UNMAP and zeros the range is released and reads zeros; NDOB; the 8 MiB limit', () => {
    const { disk: d, backend } = disk();
    const pattern = new Uint8Array(512).fill(0xab);
    good(run(d, [0x93, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 4, 0, 0], { data: pattern }));
    const back = new Uint8Array(2048);
    backend.read(8, back);
    expect(back.every((x) => x === 0xab)).toBe(true);
    backend.write(0, new Uint8Array(128 * 1024).fill(5));
    good(run(d, [0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 0, 0], { data: new Uint8Array(512) }));
    expect(backend.allocated).toBe(64 * 1024);
    const z = new Uint8Array(128 * 512);
    backend.read(0, z);
    expect(z.every((x) => x === 0)).toBe(true);
    good(run(d, [0x93, 0x09, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0]));
    // 16385 blocks: one more than the 8 MiB maximum.
    check(run(d, [0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 1, 0, 0], { data: pattern }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
    check(run(d, [0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], { data: new Uint8Array(100) }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
  });

  it('REQUEST SENSE returns the last failure once, then NO SENSE', () => {
    const { disk: d } = disk();
    run(d, [0x04, 0, 0, 0, 0, 0]);
    const r = run(d, [0x03, 0, 0, 0, 18, 0], { length: 18 });
    good(r);
    expect(normalizeSense(r.out)).toMatchObject({ key: ILLEGAL, asc: 0x20 });
    expect(normalizeSense(run(d, [0x03, 0, 0, 0, 18, 0], { length: 18 }).out)).toMatchObject({ key: 0, asc: 0 });
  });

  it('START STOP UNIT: stop flushes, IMMED is refused; PREVENT ALLOW, VERIFY', () => {
    const { disk: d, backend } = disk();
    good(run(d, [0x1b, 0, 0, 0, 0, 0]));
    expect(backend.flushes).toBe(1);
    check(run(d, [0x1b, 1, 0, 0, 1, 0]), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
    good(run(d, [0x1e, 0, 0, 0, 1, 0]));
    good(run(d, [0x2f, 0, 0, 0, 0, 0, 0, 0, 8, 0]));
  });

  it('any other command: CHECK CONDITION, ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE', () => {
    const { disk: d } = disk();
    for (const op of [0x04, 0x24, 0x3b, 0x4d, 0x85, 0xa3, 0xa1, 0xc0, 0xff]) check(run(d, [op, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), ILLEGAL, 0x20, 0, SrbStatus.INVALID_REQUEST);
  });
});

describe('ScsiController: the addresses with nothing attached', () => {
  it('INQUIRY of an empty LUN: peripheral qualifier 3; REPORT LUNS lists the attached LUNs; anything else is INVALID LUN', () => {
    const c = new ScsiController();
    c.attach({ path: 0, target: 0, lun: 3 }, disk().disk);
    c.attach({ path: 0, target: 0, lun: 1 }, disk().disk);
    const exec = (lun: number, cdb: number[], length: number) => {
      const bytes = new Uint8Array(length);
      const cb = new Uint8Array(16);
      cb.set(cdb);
      const r = c.execute({ path: 0, target: 0, lun }, { cdb: cb, cdbLength: cdb.length, data: new ByteData(bytes) });
      return { ...r, out: bytes.subarray(0, r.tx) };
    };
    const inq = exec(0, [0x12, 0, 0, 0, 36, 0], 36);
    expect(inq.out[0]).toBe(0x7f);
    expect(ascii(inq.out.subarray(8, 16))).toBe('Msft    ');
    expect(exec(2, [0x12, 0, 0, 0, 36, 0], 36).out.subarray(8, 16).every((x) => x === 0)).toBe(true);
    const luns = exec(0, [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], 256);
    expect([...luns.out]).toEqual([0, 0, 0, 16, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0]);
    const tur = exec(0, [0, 0, 0, 0, 0, 0], 0);
    expect([tur.scsiStatus, tur.srbStatus, tur.sense]).toEqual([ScsiStatus.CHECK_CONDITION, SrbStatus.INVALID_LUN, undefined]);
    expect(() => c.attach({ path: 0, target: 0, lun: 1 }, disk().disk)).toThrow(/in use/);
    expect(() => c.detach({ path: 0, target: 0, lun: 9 })).toThrow(/no target/);
  });
});

describe('ScsiDvd: the MMC subset sr uses', () => {
  const iso = () => {
    const b = new MemoryDisk(10 * 2048, { sectorSize: 2048, readOnly: true });
    return b;
  };

  it('INQUIRY: CD-ROM, removable, ANSI 0, "Msft" "Virtual DVD-ROM"', () => {
    const r = run(new ScsiDvd(iso()), [0x12, 0, 0, 0, 36, 0], { length: 36 });
    expect([r.out[0], r.out[1], r.out[2]]).toEqual([5, 0x80, 0]);
    expect(ascii(r.out.subarray(8, 36))).toBe('Msft    Virtual DVD-ROM 1.0 ');
  });

  it('without a disc: NOT READY, MEDIUM NOT PRESENT - TRAY CLOSED; with one: READ(10) of 2048-byte sectors, READ CAPACITY, TOC', () => {
    const dvd = new ScsiDvd();
    check(run(dvd, [0, 0, 0, 0, 0, 0]), 2, 0x3a, 1, SrbStatus.ERROR);
    check(run(dvd, [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], { length: 2048 }), 2, 0x3a, 1, SrbStatus.ERROR);
    const media = iso();
    const isoData = new Uint8Array(2048 * 10).map((_, i) => i & 0xff);
    const writable = new MemoryDisk(10 * 2048, { sectorSize: 2048 });
    writable.write(0, isoData);
    dvd.insert(writable);
    void media;
    good(run(dvd, [0, 0, 0, 0, 0, 0]));
    expect(run(dvd, [0x28, 0, 0, 0, 0, 3, 0, 0, 2, 0], { length: 4096 }).out).toEqual(isoData.subarray(3 * 2048, 5 * 2048));
    const cap = run(dvd, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], { length: 8 }).out;
    expect([be32(cap, 0), be32(cap, 4)]).toEqual([9, 2048]);
    check(run(dvd, [0x28, 0, 0, 0, 0, 9, 0, 0, 2, 0], { length: 4096 }), ILLEGAL, 0x21, 0, SrbStatus.INVALID_REQUEST);
    const toc = run(dvd, [0x43, 0, 0, 0, 0, 0, 1, 0, 20, 0], { length: 20 }).out;
    expect([toc[2], toc[3], toc[6], toc[14], be32(toc, 16)]).toEqual([1, 1, 1, 0xaa, 10]);
  });

  it('GET EVENT STATUS NOTIFICATION reports a new disc once; GET CONFIGURATION says DVD-ROM; writes and MODE SENSE are refused', () => {
    const dvd = new ScsiDvd(iso());
    const gesn = () => run(dvd, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0], { length: 8 }).out;
    expect([...gesn()]).toEqual([0, 6, 4, 0x10, 2, 2, 0, 0]);
    expect([...gesn()]).toEqual([0, 6, 4, 0x10, 0, 2, 0, 0]);
    check(run(dvd, [0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8, 0], { length: 8 }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
    const conf = run(dvd, [0x46, 0, 0, 0, 0, 0, 0, 0, 255, 0], { length: 255 }).out;
    expect((conf[6]! << 8) | conf[7]!).toBe(0x10);
    check(run(dvd, [0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0], { data: new Uint8Array(2048) }), ILLEGAL, 0x20, 0, SrbStatus.INVALID_REQUEST);
    check(run(dvd, [0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 128, 0], { length: 128 }), ILLEGAL, 0x24, 0, SrbStatus.INVALID_REQUEST);
  });

  it('START STOP UNIT ejects unless PREVENT ALLOW MEDIUM REMOVAL prevents it', () => {
    const dvd = new ScsiDvd(iso());
    good(run(dvd, [0x1e, 0, 0, 0, 1, 0]));
    check(run(dvd, [0x1b, 0, 0, 0, 2, 0]), ILLEGAL, 0x53, 2, SrbStatus.INVALID_REQUEST);
    good(run(dvd, [0x1e, 0, 0, 0, 0, 0]));
    good(run(dvd, [0x1b, 0, 0, 0, 2, 0]));
    expect(dvd.loaded).toBe(false);
  });
});

describe('parsers fed arbitrary bytes', () => {
  it('parseCdb never throws and every result is a command, unsupported, or a problem naming a field', () => {
    fuzz(
      'storage.cdb-parser',
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 20 }), fc.integer({ min: 0, max: 32 }), (bytes, len) => {
        const c = parseCdb(bytes, len);
        expect(typeof c.op).toBe('string');
        if (c.op === 'invalid') expect(c.field.length).toBeGreaterThan(0);
      }),
      RUNS,
    );
  });

  it('a disk and a DVD answer any CDB with any buffer without throwing, and a non-GOOD answer carries sense or an SRB error', () => {
    const d = disk({ size: MIB }).disk;
    const dvd = new ScsiDvd(new MemoryDisk(4 * 2048, { sectorSize: 2048 }));
    fuzz(
      'storage.scsi-targets',
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0, max: 4096 }), fc.boolean(), (cdb, len, buf, writable) => {
        for (const t of [d, dvd]) {
          const r = t.execute({ cdb, cdbLength: len, data: new ByteData(new Uint8Array(buf), writable) });
          expect(r.tx).toBeGreaterThanOrEqual(0);
          expect(r.tx).toBeLessThanOrEqual(buf);
          if (r.scsiStatus !== ScsiStatus.GOOD) expect(r.sense !== undefined || r.srbStatus !== SrbStatus.SUCCESS).toBe(true);
        }
      }),
      RUNS,
    );
  });
});
