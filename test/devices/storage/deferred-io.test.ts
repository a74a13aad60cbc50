// storvsp runs the READs and WRITEs it reads in one go back to back, then sends their completions
// (host.ts deferDirect): what the guest sees must be what it would see had each run as it was read.
// Several requests go into the ring before the host runs; the tests check the order of their
// effects on the disk and in guest memory, the order and content of the completions, a back end
// that fails in the middle, and a guest that stops reading completions.
import { describe, expect, it } from 'vitest';
import { DiskIoError, MemoryDisk, type BlockBackend } from '../../../src/devices/storage/backend.js';
import { NtStatus, SrbStatus, StorvscRequestType, VstorOp, VstorPacket, VmstorVersion, REQUEST_COMPLETION_FLAG } from '../../../src/devices/storage/wire.js';
import { gpaDirect, inband, type GpaDirectRange } from '../../../src/vmbus/packet.js';
import { MIB, rangeAt, rawMachine, srb, srbOf } from './harness.js';

type Raw = ReturnType<typeof rawMachine>;

/** Puts a vstor packet in the ring without letting the host run (the harness's send runs it). */
function queue(r: Raw, transId: bigint, body: Uint8Array, ranges?: GpaDirectRange[], op: number = VstorOp.EXECUTE_SRB): bigint {
  const packet = new Uint8Array(VstorPacket.size);
  const dv = new DataView(packet.buffer);
  dv.setUint32(0, op, true);
  dv.setUint32(4, REQUEST_COMPLETION_FLAG, true);
  packet.set(body.subarray(0, packet.length - 12), 12);
  r.channel.sendPacket(ranges ? gpaDirect(ranges, packet, transId) : inband(packet, transId, true));
  return transId;
}

const read10 = (lba: number, blocks: number) => [0x28, 0, lba >>> 24, (lba >>> 16) & 0xff, (lba >>> 8) & 0xff, lba & 0xff, 0, blocks >> 8, blocks & 0xff, 0];
const write10 = (lba: number, blocks: number) => [0x2a, 0, lba >>> 24, (lba >>> 16) & 0xff, (lba >>> 8) & 0xff, lba & 0xff, 0, blocks >> 8, blocks & 0xff, 0];
const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

/** A memory disk whose reads of `badLba` fail, as a file's EIO does; it records the host→guest ring's write index at each I/O. */
class RecordingDisk implements BlockBackend {
  readonly inner = new MemoryDisk(MIB);
  readonly sectorSize = 512;
  readonly physicalSectorSize = 4096;
  readonly sectorCount = this.inner.sectorCount;
  readonly readOnly = false;
  readonly description = 'recording';
  /** [op, lba, where the host had written to in its ring to the guest then]. */
  readonly calls: [string, number, number][] = [];
  badLba = -1;
  outWriteIndex: () => number = () => -1;

  read(lba: number, out: Uint8Array): void {
    this.calls.push(['read', lba, this.outWriteIndex()]);
    if (lba === this.badLba) throw new DiskIoError(`block ${lba} cannot be read`);
    this.inner.read(lba, out);
  }
  write(lba: number, data: Uint8Array): void {
    this.calls.push(['write', lba, this.outWriteIndex()]);
    this.inner.write(lba, data);
  }
  flush(): void {}
}

function machine() {
  const disk = new RecordingDisk();
  const r = rawMachine({ disks: [{ lun: 0, backend: disk }] });
  r.init(VmstorVersion.WIN10);
  // Where the host stands in its ring to the guest: its completions move the write index.
  disk.outWriteIndex = () => r.host.primary.ringState()!.outgoing.writeIndex;
  return { r, disk };
}

describe('storvsp: requests read together', () => {
  it('run in the order they were sent: a READ after a WRITE of the same blocks reads what it wrote; completions in order', () => {
    const { r, disk } = machine();
    const src = r.alloc(8192);
    const dst = r.alloc(8192);
    const data = pattern(8192, 5);
    r.memory.write(src, data);
    const before = r.received.length;
    const ids = [
      queue(r, 11n, srb(read10(16, 16), { length: 8192 }), [rangeAt(dst, 8192)]),
      queue(r, 12n, srb(write10(16, 16), { length: 8192, dataIn: StorvscRequestType.WRITE_TYPE }), [rangeAt(src, 8192)]),
      queue(r, 13n, srb(read10(16, 16), { length: 8192 }), [rangeAt(dst, 8192)]),
    ];
    r.m.runFor(1e6);
    expect(disk.calls.map(([op, lba]) => [op, lba])).toEqual([
      ['read', 16],
      ['write', 16],
      ['read', 16],
    ]);
    expect(r.memory.read(dst, 8192)).toEqual(data);
    const answers = r.received.slice(before);
    expect(answers.map((p) => p.transId)).toEqual(ids);
    for (const a of answers) {
      expect(r.opStatus(a)).toEqual([VstorOp.COMPLETE_IO, 0]);
      expect([srbOf(a).srb_status, srbOf(a).scsi_status, srbOf(a).data_transfer_length]).toEqual([SrbStatus.SUCCESS, 0, 8192]);
    }
    expect([r.host.stats.bytesRead, r.host.stats.bytesWritten]).toEqual([16384, 8192]);
  });

  it('their I/O runs back to back, before any of their completions is written', () => {
    const { r, disk } = machine();
    const buffers = [r.alloc(4096), r.alloc(4096), r.alloc(4096), r.alloc(4096)];
    buffers.forEach((gpa, i) => queue(r, BigInt(20 + i), srb(read10(8 * i, 8), { length: 4096 }), [rangeAt(gpa, 4096)]));
    r.m.runFor(1e6);
    const at = disk.calls.map(([, , w]) => w);
    expect(at).toHaveLength(4);
    expect(new Set(at).size).toBe(1);
    expect(r.received.slice(-4).map((p) => p.transId)).toEqual([20n, 21n, 22n, 23n]);
  });

  it('a command that takes the general way (a buffer on pages apart, a TEST UNIT READY) runs after the I/O before it', () => {
    const { r, disk } = machine();
    const src = r.alloc(4096);
    const data = pattern(4096, 9);
    r.memory.write(src, data);
    // Two pages that do not follow each other: GpaData's two runs.
    const a = r.alloc(4096);
    r.alloc(4096);
    const b = r.alloc(4096);
    const split: GpaDirectRange = { byteCount: 4096, byteOffset: 2048, pfns: [a / 4096, b / 4096] };
    const before = r.received.length;
    queue(r, 31n, srb(write10(40, 8), { length: 4096, dataIn: StorvscRequestType.WRITE_TYPE }), [rangeAt(src, 4096)]);
    queue(r, 32n, srb([0, 0, 0, 0, 0, 0]));
    queue(r, 33n, srb(read10(40, 8), { length: 4096 }), [split]);
    r.m.runFor(1e6);
    // The general way reads the two halves on their pages apart: 4 blocks each.
    expect(disk.calls.map(([op, lba]) => [op, lba])).toEqual([
      ['write', 40],
      ['read', 40],
      ['read', 44],
    ]);
    expect(r.memory.read(a + 2048, 2048)).toEqual(data.subarray(0, 2048));
    expect(r.memory.read(b, 2048)).toEqual(data.subarray(2048));
    expect(r.received.slice(before).map((p) => [p.transId, r.opStatus(p)![1]])).toEqual([
      [31n, 0],
      [32n, 0],
      [33n, 0],
    ]);
  });

  it('a back end that fails one read among them: that request alone gets MEDIUM ERROR (sense 3/0x11), the others succeed, in order', () => {
    const { r, disk } = machine();
    disk.badLba = 8;
    const buffers = [r.alloc(4096), r.alloc(4096), r.alloc(4096)];
    const before = r.received.length;
    buffers.forEach((gpa, i) => queue(r, BigInt(40 + i), srb(read10(8 * i, 8), { length: 4096 }), [rangeAt(gpa, 4096)]));
    r.m.runFor(1e6);
    const answers = r.received.slice(before);
    expect(answers.map((p) => p.transId)).toEqual([40n, 41n, 42n]);
    expect(answers.map((p) => r.opStatus(p)![1])).toEqual([0, NtStatus.IO_DEVICE_ERROR, 0]);
    const bad = srbOf(answers[1]!);
    expect([bad.scsi_status, bad.srb_status, bad.payload[2], bad.payload[12], bad.data_transfer_length]).toEqual([2, SrbStatus.ERROR | SrbStatus.AUTOSENSE_VALID, 3, 0x11, 0]);
    expect(r.host.stats.errors).toBe(1);
  });
});

describe('storvsp: reads from a guest that stops reading completions', () => {
  it('every request the host ran has its completion sent or held; the rest stay in the ring; all finish when the guest reads again', () => {
    const disk = new MemoryDisk(MIB);
    const r = rawMachine({ disks: [{ lun: 0, backend: disk }], rings: [64 * 4096, 4 * 4096] });
    r.init(VmstorVersion.WIN10);
    r.setDeaf(true);
    const initial = r.host.stats.completions;
    const before = r.received.length;
    const gpa = r.alloc(4096);
    const sent: bigint[] = [];
    for (let i = 0; i < 600 && r.channel.writable() >= 200; i++) sent.push(queue(r, BigInt(100 + i), srb(read10(8 * (i % 64), 8), { length: 4096 }), [rangeAt(gpa, 4096)]));
    r.m.runFor(1e6);
    const [q] = r.host.queues();
    expect(q!.unsent).toBe(1);
    // Each request read and run was completed or holds the one completion that did not fit.
    expect(r.host.stats.srbs).toBe(r.host.stats.completions - initial + q!.unsent);
    expect(r.host.stats.srbs).toBeLessThan(sent.length);
    r.setDeaf(false);
    for (let i = 0; i < 100 && r.received.length - before < sent.length; i++) {
      r.m.runFor(1e6);
      r.setDeaf(false);
    }
    expect(r.received.slice(before).map((p) => p.transId)).toEqual(sent);
  });
});
