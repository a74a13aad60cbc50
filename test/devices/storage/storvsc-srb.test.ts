// The vmscsi_request of each EXECUTE_SRB storvsc sends, field by field as Linux 6.1's
// storvsc_queuecommand fills it: the host's copy of each request as it arrives (StorvspOptions.answer),
// for READ, WRITE and SYNCHRONIZE CACHE of a disk (tagged: CmdQue) and a READ of a DVD (untagged),
// issued in turns so that each kind of request follows the others.
import { describe, expect, it } from 'vitest';
import { MemoryDisk } from '../../../src/devices/storage/backend.js';
import { VstorOp, type VmscsiRequestValue } from '../../../src/devices/storage/wire.js';
import { guestMachine, memDisk, MIB, settleOn } from './harness.js';

/** SRB_FLAGS_* and the request types of storvsc_drv.c / vstorage.h, written out. */
const DISABLE_SYNCH_TRANSFER = 0x8;
const QUEUE_ACTION_ENABLE = 0x2;
const NO_QUEUE_FREEZE = 0x100;
const DATA_IN = 0x40;
const DATA_OUT = 0x80;
const WRITE_TYPE = 0;
const READ_TYPE = 1;
const UNKNOWN_TYPE = 2;

function machine() {
  const seen: VmscsiRequestValue[] = [];
  const g = guestMachine({
    disks: [memDisk(0), { lun: 1, backend: new MemoryDisk(4 * MIB), dvd: true }],
    storage: {
      answer: (op, r) => {
        if (op === VstorOp.EXECUTE_SRB && r) seen.push(r);
        return true;
      },
    },
  });
  return { g, seen };
}

/** What every request of storvsc has alike, and what depends on its kind. */
function expected(o: { lun: number; tagged: boolean; dataIn: number; length: number; cdb: number[] }) {
  const direction = o.dataIn === READ_TYPE ? DATA_IN : o.dataIn === WRITE_TYPE ? DATA_OUT : 0;
  return {
    length: 52,
    srb_status: 0,
    scsi_status: 0,
    port_number: 0,
    path_id: 0,
    target_id: 0,
    lun: o.lun,
    cdb_length: o.cdb.length,
    sense_info_length: 20,
    data_in: o.dataIn,
    reserved: 0,
    data_transfer_length: o.length,
    payload: Uint8Array.from([...o.cdb, ...new Array<number>(20 - o.cdb.length).fill(0)]),
    reserve: 0,
    queue_tag: o.tagged ? 0xff : 0,
    queue_action: o.tagged ? 0x20 : 0,
    srb_flags: DISABLE_SYNCH_TRANSFER | (o.tagged ? QUEUE_ACTION_ENABLE | NO_QUEUE_FREEZE : 0) | direction,
    time_out_value: 60,
    queue_sort_ey: 0,
  };
}

describe('storvsc: the vmscsi_request of each request', () => {
  it('READ, WRITE and SYNCHRONIZE CACHE of a disk and READ of a DVD, in turns: every field as storvsc_queuecommand sets it', () => {
    const { g, seen } = machine();
    const sda = g.storage.disks[0]!;
    const sr0 = g.storage.drives[0]!;
    const data = new Uint8Array(4096).fill(0x5a);
    const read10 = (lba: number, blocks: number) => [0x28, 0, lba >>> 24, (lba >>> 16) & 0xff, (lba >>> 8) & 0xff, lba & 0xff, 0, 0, blocks, 0];
    const write10 = (lba: number, blocks: number) => [0x2a, 0, lba >>> 24, (lba >>> 16) & 0xff, (lba >>> 8) & 0xff, lba & 0xff, 0, 0, blocks, 0];
    const want: ReturnType<typeof expected>[] = [];
    for (let round = 0; round < 2; round++) {
      const lba = 0x12345 + round * 8;
      seen.length = 0;
      want.length = 0;
      expect(settleOn(g, sda.read(lba, 8))?.ok).toBe(true);
      want.push(expected({ lun: 0, tagged: true, dataIn: READ_TYPE, length: 4096, cdb: read10(lba, 8) }));
      expect(settleOn(g, sda.write(lba, data))?.ok).toBe(true);
      want.push(expected({ lun: 0, tagged: true, dataIn: WRITE_TYPE, length: 4096, cdb: write10(lba, 8) }));
      expect(settleOn(g, sda.flush())?.ok).toBe(true);
      want.push(expected({ lun: 0, tagged: true, dataIn: UNKNOWN_TYPE, length: 0, cdb: [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0] }));
      // The DVD's 2048-byte blocks: one block of it.
      expect(settleOn(g, sr0.read(round, 1))?.ok).toBe(true);
      want.push(expected({ lun: 1, tagged: false, dataIn: READ_TYPE, length: 2048, cdb: read10(round, 1) }));
      expect(seen).toEqual(want);
    }
  });
});

describe('storvsc: the GPA-direct range of each request', () => {
  it('reads of lengths that change and repeat, into the reader\'s pages and into the kernel\'s, each bring their own blocks; the host sees no bad packet', () => {
    const disk = memDisk(0);
    const pattern = Uint8Array.from({ length: MIB }, (_, i) => (i * 7 + (i >> 12)) & 0xff);
    disk.backend.write(0, pattern);
    const g = guestMachine({ disks: [disk] });
    const sda = g.storage.disks[0]!;
    const mem = g.m.partition.memory;
    for (const [lba, blocks, direct] of [
      [0, 8, true],
      [64, 8, true],
      [8, 16, true],
      [200, 8, true],
      [3, 1, true],
      [512, 24, false],
      [17, 8, true],
      [900, 3, false],
      [33, 8, true],
    ] as const) {
      const bytes = blocks * 512;
      const into = direct ? mem.view(g.m.kernel.mm.allocContiguous(16384), bytes) : undefined;
      const r = settleOn(g, sda.read(lba, blocks, into ? { into } : {}));
      expect(r?.ok).toBe(true);
      const got = r?.ok ? r.data! : new Uint8Array(0);
      expect(got).toEqual(pattern.subarray(lba * 512, lba * 512 + bytes));
    }
    expect(g.host.violations).toEqual([]);
  });
});
