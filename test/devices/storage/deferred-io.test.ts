// storvsp runs the READs and WRITEs it reads in one go back to back, then sends their completions
// (host.ts deferDirect): what the guest sees must be what it would see had each run as it was read.
// Several requests go into the ring before the host runs; the tests check the order of their
// effects on the disk and in guest memory, the order and content of the completions, a back end
// that fails in the middle, and a guest that stops reading completions; and, fuzzed, any mix of
// requests sent together against the same requests sent one at a time, byte for byte.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzz } from '../../fuzz/fuzz.js';
import { DiskIoError, MemoryDisk, type BlockBackend, type ReadList } from '../../../src/devices/storage/backend.js';
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

/**
 * A RecordingDisk that also takes a run of reads at once (readIntoMany, as a raw file does): each
 * read recorded as read() records it, the run's first index noted, and a read of `badLba` fails.
 */
class BatchRecordingDisk extends RecordingDisk {
  /** [from, to) of each readIntoMany call. */
  readonly batches: [number, number][] = [];
  readIntoMany(dst: Uint8Array, reads: ReadList, from: number, to: number): number {
    this.batches.push([from, to]);
    for (let i = from; i < to; i++) {
      const lba = reads.lba[i]!;
      this.calls.push(['read', lba, this.outWriteIndex()]);
      if (lba === this.badLba) return i;
      this.inner.read(lba, dst.subarray(reads.at[i]!, reads.at[i]! + reads.bytes[i]!));
    }
    return to;
  }
}

function machine(batch = false) {
  const disk = batch ? new BatchRecordingDisk() : new RecordingDisk();
  const r = rawMachine({ disks: [{ lun: 0, backend: disk }] });
  r.init(VmstorVersion.WIN10);
  // Where the host stands in its ring to the guest: its completions move the write index.
  disk.outWriteIndex = () => r.host.primary.ringState()!.outgoing.writeIndex;
  return { r, disk };
}

describe.each([
  ['one by one', false],
  ['a run of reads at once (readIntoMany)', true],
])('storvsp: requests read together, the back end taking them %s', (_, batch) => {
  it('run in the order they were sent: a READ after a WRITE of the same blocks reads what it wrote; completions in order', () => {
    const { r, disk } = machine(batch);
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
    const { r, disk } = machine(batch);
    const buffers = [r.alloc(4096), r.alloc(4096), r.alloc(4096), r.alloc(4096)];
    buffers.forEach((gpa, i) => queue(r, BigInt(20 + i), srb(read10(8 * i, 8), { length: 4096 }), [rangeAt(gpa, 4096)]));
    r.m.runFor(1e6);
    const at = disk.calls.map(([, , w]) => w);
    expect(at).toHaveLength(4);
    expect(new Set(at).size).toBe(1);
    expect(r.received.slice(-4).map((p) => p.transId)).toEqual([20n, 21n, 22n, 23n]);
    // A back end that can takes the four reads in one call.
    if (disk instanceof BatchRecordingDisk) expect(disk.batches).toEqual([[0, 4]]);
  });

  it('their completions, written as one batch, are what writing each on its own gave: all in the ring, in order, the guest signalled once (hv_signal_on_write)', () => {
    const { r } = machine(batch);
    const buffers = Array.from({ length: 6 }, () => r.alloc(4096));
    const ring = () => r.host.primary.ringState()!.outgoing;
    const before = { signals: r.host.primary.signalsSent, sent: r.host.primary.packetsSent, write: ring().writeIndex };
    buffers.forEach((gpa, i) => queue(r, BigInt(40 + i), srb(read10(8 * i, 8), { length: 4096 }), [rangeAt(gpa, 4096)]));
    r.m.runFor(1e6);
    expect(r.received.slice(-6).map((p) => p.transId)).toEqual([40n, 41n, 42n, 43n, 44n, 45n]);
    expect(r.host.primary.packetsSent - before.sent).toBe(6);
    // Six completions of 16 + 64 bytes and a trailer each, published together.
    expect((ring().writeIndex - before.write + ring().dataSize) % ring().dataSize).toBe(6 * (16 + 64 + 8));
    expect(r.host.primary.signalsSent - before.signals).toBe(1);
  });

  it('each completion carries its own trans id, status and transfer length, alike or not to the one before', () => {
    const { r, disk } = machine(batch);
    disk.badLba = 40;
    // [trans id, first block, blocks]: lengths that repeat and change, a failure between.
    const reqs: [bigint, number, number][] = [
      [0x1_0000_0001n, 0, 8],
      [2n, 8, 8],
      [0xffff_fffen, 16, 16],
      [4n, 32, 1],
      [5n, 40, 8],
      [6n, 48, 8],
      [0x20_0000_0000_0007n, 56, 8],
    ];
    const buffers = reqs.map(() => r.alloc(8192));
    const before = r.received.length;
    reqs.forEach(([id, lba, n], i) => queue(r, id, srb(read10(lba, n), { length: n * 512 }), [rangeAt(buffers[i]!, n * 512)]));
    r.m.runFor(1e6);
    const answers = r.received.slice(before);
    expect(answers.map((p) => p.transId)).toEqual(reqs.map(([id]) => id));
    expect(answers.map((p) => r.opStatus(p))).toEqual(reqs.map(([, lba]) => [VstorOp.COMPLETE_IO, lba === 40 ? NtStatus.IO_DEVICE_ERROR : 0]));
    expect(answers.map((p) => [srbOf(p).srb_status, srbOf(p).scsi_status, srbOf(p).data_transfer_length])).toEqual(
      reqs.map(([, lba, n]) => (lba === 40 ? [SrbStatus.ERROR | SrbStatus.AUTOSENSE_VALID, 2, 0] : [SrbStatus.SUCCESS, 0, n * 512])),
    );
  });

  it('their completions echo any 64-bit transaction id, small or past 2^53, exactly', () => {
    const { r } = machine(batch);
    const ids = [1n, 0xffff_ffffn, 0x1_0000_0000n, (1n << 53n) - 1n, 1n << 53n, 0xffff_ffff_ffff_fff0n, 0x8000_0000_0000_0001n];
    const buffers = ids.map(() => r.alloc(4096));
    ids.forEach((id, i) => queue(r, id, srb(read10(8 * i, 8), { length: 4096 }), [rangeAt(buffers[i]!, 4096)]));
    r.m.runFor(1e6);
    const answers = r.received.slice(-ids.length);
    expect(answers.map((p) => p.transId)).toEqual(ids);
    for (const a of answers) expect(r.opStatus(a)).toEqual([VstorOp.COMPLETE_IO, 0]);
  });

  it('a command that takes the general way (a buffer on pages apart, a TEST UNIT READY) runs after the I/O before it', () => {
    const { r, disk } = machine(batch);
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
    const { r, disk } = machine(batch);
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
    // Every read was made, the failed one's neighbours into their buffers.
    expect(disk.calls.map(([op, lba]) => [op, lba])).toEqual([
      ['read', 0],
      ['read', 8],
      ['read', 16],
    ]);
    const want = new Uint8Array(4096);
    disk.inner.read(16, want);
    expect(r.memory.read(buffers[2]!, 4096)).toEqual(want);
    if (disk instanceof BatchRecordingDisk) expect(disk.batches).toEqual([
      [0, 3],
      [2, 3],
    ]);
  });

  it('the disk keeps the sense of the last of them (REQUEST SENSE): the failure\'s when it was last, none when a read after it succeeded', () => {
    for (const last of [true, false]) {
      const { r, disk } = machine(batch);
      disk.badLba = last ? 16 : 8;
      const buffers = [r.alloc(4096), r.alloc(4096), r.alloc(4096)];
      buffers.forEach((gpa, i) => queue(r, BigInt(60 + i), srb(read10(8 * i, 8), { length: 4096 }), [rangeAt(gpa, 4096)]));
      r.m.runFor(1e6);
      const sense = r.alloc(4096);
      const before = r.received.length;
      queue(r, 70n, srb([0x03, 0, 0, 0, 18, 0], { length: 18 }), [rangeAt(sense, 18)]);
      r.m.runFor(1e6);
      expect(r.received.slice(before).map((p) => r.opStatus(p)![1])).toEqual([0]);
      // Fixed sense: the key at byte 2, the ASC at byte 12 (MEDIUM ERROR 0x11, or NO SENSE 0).
      const got = r.memory.read(sense, 18);
      expect([got[2], got[12]]).toEqual(last ? [3, 0x11] : [0, 0]);
    }
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

/** One request of a fuzzed mix: a READ or WRITE (10 or 16), or a command that takes the general way. */
const request = fc.record({
  op: fc.constantFrom(0x28, 0x2a, 0x88, 0x8a, 0x00, 0x12),
  lba: fc.oneof(fc.integer({ min: 0, max: 2040 }), fc.integer({ min: 2040, max: 2100 })),
  blocks: fc.integer({ min: 0, max: 16 }),
  /** 0 to 3: a contiguous buffer; 4: two pages apart. */
  buffer: fc.integer({ min: 0, max: 4 }),
  offset: fc.constantFrom(0, 512, 100, 3584),
  /** The transfer length: the blocks', or another. */
  length: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 9000 })),
  write: fc.boolean(),
  reladr: fc.boolean(),
  cdbLength: fc.constantFrom(-1, 6, 9, 16),
});

/** The CDB of a fuzzed request. */
function cdbOf(q: { op: number; lba: number; blocks: number; reladr: boolean; cdbLength: number }): number[] {
  const c = new Array<number>(q.op === 0x88 || q.op === 0x8a ? 16 : q.op === 0x28 || q.op === 0x2a ? 10 : 6).fill(0);
  c[0] = q.op;
  if (q.op === 0x28 || q.op === 0x2a) {
    c.splice(0, 10, ...(q.op === 0x28 ? read10 : write10)(q.lba, q.blocks));
    if (q.reladr) c[1] = 1;
  } else if (q.op === 0x88 || q.op === 0x8a) {
    c[9] = q.lba & 0xff;
    c[8] = (q.lba >>> 8) & 0xff;
    c[13] = q.blocks;
  } else if (q.op === 0x12) c[4] = 36;
  return q.cdbLength < 0 ? c : c.concat(new Array<number>(16).fill(0)).slice(0, q.cdbLength);
}

/** A memory disk whose reads of a range holding `badLba` fail (DiskIoError), as a file's EIO does. */
class FailingDisk extends MemoryDisk {
  badLba = -1;
  override read(lba: number, out: Uint8Array): void {
    if (this.badLba >= lba && this.badLba < lba + out.length / 512) throw new DiskIoError(`block ${this.badLba} cannot be read`);
    super.read(lba, out);
  }
}

/** A FailingDisk that also takes a run of reads at once (readIntoMany), each as read() would. */
class FailingBatchDisk extends FailingDisk {
  readIntoMany(dst: Uint8Array, reads: ReadList, from: number, to: number): number {
    for (let i = from; i < to; i++) {
      try {
        this.read(reads.lba[i]!, dst.subarray(reads.at[i]!, reads.at[i]! + reads.bytes[i]!));
      } catch (e) {
        if (e instanceof DiskIoError) return i;
        throw e;
      }
    }
    return to;
  }
}

/** A machine with a 1 MiB disk of a pattern and five buffers of another: the same in every call. */
const DISK_PATTERN = pattern(MIB, 3);
function fuzzMachine(batch = false, badLba = -1) {
  const disk = batch ? new FailingBatchDisk(MIB) : new FailingDisk(MIB);
  disk.write(0, DISK_PATTERN);
  disk.badLba = badLba;
  const r = rawMachine({ disks: [{ lun: 0, backend: disk }] });
  r.init(VmstorVersion.WIN10);
  const contiguous = [0, 1, 2, 3].map(() => r.alloc(3 * 4096));
  const a = r.alloc(4096);
  r.alloc(4096);
  const b = r.alloc(4096);
  for (const gpa of [...contiguous, a, b]) r.memory.write(gpa, pattern(gpa === a || gpa === b ? 4096 : 3 * 4096, gpa & 0xff));
  return { r, disk, contiguous, split: [a, b] as const, before: r.received.length };
}

describe('storvsp: requests sent together, fuzzed', () => {
  it('answer, and leave disk and memory, byte for byte as the same requests sent one at a time (a back end that fails a block, or not)', () => {
    fuzz(
      'storage.storvsp-batched',
      fc.property(fc.array(request, { minLength: 1, maxLength: 12 }), fc.boolean(), fc.integer({ min: -1, max: 1000 }), (mix, batch, pick) => {
        // A block that fails: none, or one among those a request of the mix names.
        const badLba = pick < 0 ? -1 : mix[pick % mix.length]!.lba + (pick % 8);
        // Together: to a back end that takes a run of reads at once, or not; alone: one by one.
        const together = fuzzMachine(batch, badLba);
        const alone = fuzzMachine(false, badLba);
        for (const [m, oneByOne] of [
          [together, false],
          [alone, true],
        ] as const) {
          mix.forEach((q, i) => {
            const length = q.length < 0 ? q.blocks * 512 : q.length;
            const range: GpaDirectRange =
              q.buffer < 4 ? rangeAt(m.contiguous[q.buffer]! + q.offset, Math.max(1, length)) : { byteCount: Math.max(1, length), byteOffset: q.offset, pfns: [m.split[0] / 4096, m.split[1] / 4096] };
            queue(m.r, BigInt(500 + i), srb(cdbOf(q), { length, dataIn: q.write ? StorvscRequestType.WRITE_TYPE : StorvscRequestType.READ_TYPE }), length > 0 ? [range] : undefined);
            if (oneByOne) m.r.m.runFor(1e6);
          });
          m.r.m.runFor(1e6);
        }
        const answers = (m: typeof together) => m.r.received.slice(m.before).map((p) => [p.transId, Array.from(p.payload)]);
        expect(answers(together)).toEqual(answers(alone));
        // (A range whose PFNs do not fit its packet is no packet: it is skipped unanswered, in both.)
        const bytes = new Uint8Array(MIB);
        const other = new Uint8Array(MIB);
        // The disks' bytes as they lie (MemoryDisk's read: their read of a bad block fails).
        MemoryDisk.prototype.read.call(together.disk, 0, bytes);
        MemoryDisk.prototype.read.call(alone.disk, 0, other);
        // The first byte that differs (-1: none): toEqual walks a megabyte too slowly for a fuzz run.
        const firstDifference = (x: Uint8Array, y: Uint8Array) => x.findIndex((v, i) => v !== y[i]);
        expect(firstDifference(bytes, other)).toBe(-1);
        for (const gpa of [...together.contiguous, ...together.split]) {
          const n = 4096 * (together.split.includes(gpa) ? 1 : 3);
          expect(firstDifference(together.r.memory.read(gpa, n), alone.r.memory.read(gpa, n))).toBe(-1);
        }
        expect(together.r.host.stats).toEqual(alone.r.host.stats);
        expect(together.r.host.violations).toEqual(alone.r.host.violations);
      }),
      20,
    );
  });
});

/** A well-formed READ(10) or WRITE(10) of a few blocks near the start of the disk, into its own buffer. */
const directRequest = fc.record({
  write: fc.boolean(),
  lba: fc.integer({ min: 0, max: 48 }),
  blocks: fc.integer({ min: 1, max: 16 }),
  buffer: fc.integer({ min: 0, max: 3 }),
});

describe('storvsp: runs of reads to a back end that takes them at once, fuzzed', () => {
  it('answer, and leave disk, memory and the disk\'s sense, as the same requests sent one at a time to one that does not', () => {
    fuzz(
      'storage.storvsp-batched-reads',
      fc.property(fc.array(directRequest, { minLength: 1, maxLength: 10 }), fc.integer({ min: -1, max: 64 }), (mix, badLba) => {
        const together = fuzzMachine(true, badLba);
        const alone = fuzzMachine(false, badLba);
        for (const [m, oneByOne] of [
          [together, false],
          [alone, true],
        ] as const) {
          mix.forEach((q, i) => {
            const length = q.blocks * 512;
            const cdb = (q.write ? write10 : read10)(q.lba, q.blocks);
            queue(m.r, BigInt(700 + i), srb(cdb, { length, dataIn: q.write ? StorvscRequestType.WRITE_TYPE : StorvscRequestType.READ_TYPE }), [rangeAt(m.contiguous[q.buffer]!, length)]);
            if (oneByOne) m.r.m.runFor(1e6);
          });
          m.r.m.runFor(1e6);
          // REQUEST SENSE: the sense the disk kept from the last of them.
          queue(m.r, 800n, srb([0x03, 0, 0, 0, 18, 0], { length: 18 }), [rangeAt(m.split[0], 18)]);
          m.r.m.runFor(1e6);
        }
        const answers = (m: typeof together) => m.r.received.slice(m.before).map((p) => [p.transId, Array.from(p.payload)]);
        expect(answers(together)).toEqual(answers(alone));
        const bytes = new Uint8Array(64 * 512);
        const other = new Uint8Array(64 * 512);
        MemoryDisk.prototype.read.call(together.disk, 0, bytes);
        MemoryDisk.prototype.read.call(alone.disk, 0, other);
        expect(bytes).toEqual(other);
        for (const gpa of together.contiguous) expect(together.r.memory.read(gpa, 3 * 4096)).toEqual(alone.r.memory.read(gpa, 3 * 4096));
        expect(together.r.memory.read(together.split[0], 18)).toEqual(alone.r.memory.read(alone.split[0], 18));
        expect(together.r.host.stats).toEqual(alone.r.host.stats);
      }),
      20,
    );
  });
});
