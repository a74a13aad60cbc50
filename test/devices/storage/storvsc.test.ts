// hvkit's Linux 6.1 storvsc, SCSI scan, sd and sr against storvsp, end to end: a boot per release
// with a disk and a DVD (the version each negotiates, the sub-channels, the log lines of a real
// Hyper-V guest), the block-device API down to the bytes on the disk, the per-CPU channel choice,
// the errors as Linux reports them, hot add and remove (with I/O in flight), a host that never
// answers, and the guest's completion handling fed arbitrary packets.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzz } from '../../fuzz/fuzz.js';
import { MemoryDisk } from '../../../src/devices/storage/backend.js';
import { ScsiDisk } from '../../../src/devices/storage/scsi-disk.js';
import { VmstorVersion, vmstorVersionString, VstorOp, VstorPacket } from '../../../src/devices/storage/wire.js';
import { RELEASE_IDS, type ReleaseId } from '../../../src/hypervisor/release.js';
import { RUNS } from '../../vmbus/fuzz-runs.js';
import { Machine } from '../../../src/vm/machine.js';
import { guestStorage } from '../../../src/vm/storage.js';
import { firstDifference } from './bytes.js';
import { guestMachine, memDisk, MIB, settleOn } from './harness.js';

/** What each release negotiates with Linux 6.1 (versions.ts; storvsc tries 6.2, 6.0, 5.1). */
const NEGOTIATED: Record<ReleaseId, number> = { ws2012: VmstorVersion.WIN8, ws2012r2: VmstorVersion.WIN8_1, ws2016: VmstorVersion.WIN10, ws2019: VmstorVersion.WIN10, ws2022: VmstorVersion.WIN10, ws2025: VmstorVersion.WIN10 };

const stripTime = (l: string) => l.replace(/^\[\s*\d+\.\d+\] /, '');
const storageLines = (lines: string[]) => lines.map(stripTime).filter((l) => /^(scsi|sd |sr |cdrom|hv_storvsc| sd)/.test(l));

describe.each(RELEASE_IDS)('a boot on %s with a disk and a DVD', (release) => {
  it('negotiates its version and prints what a Hyper-V guest prints', () => {
    const iso = new MemoryDisk(4 * MIB, { sectorSize: 2048, readOnly: true });
    const g = guestMachine({ release, disks: [memDisk(0, 1 << 30), { lun: 1, backend: iso, dvd: true }] });
    expect(g.host.version).toBe(NEGOTIATED[release]);
    expect(g.lines().some((l) => l.endsWith(`storage protocol ${vmstorVersionString(NEGOTIATED[release])}`))).toBe(true);
    const lines = storageLines(g.lines());
    const tagline = lines.find((l) => l.startsWith('hv_storvsc '));
    expect(lines.filter((l) => l !== tagline && !l.startsWith('hv_storvsc '))).toEqual([
      'scsi host0: storvsc_host_t',
      'scsi 0:0:0:0: Direct-Access     Msft     Virtual Disk     1.0  PQ: 0 ANSI: 5',
      'scsi 0:0:0:1: CD-ROM            Msft     Virtual DVD-ROM  1.0  PQ: 0 ANSI: 0',
      'sd 0:0:0:0: [sda] 2097152 512-byte logical blocks: (1.07 GB/1.00 GiB)',
      'sd 0:0:0:0: [sda] 4096-byte physical blocks',
      'sd 0:0:0:0: [sda] Write Protect is off',
      'sd 0:0:0:0: [sda] Mode Sense: 0f 00 00 00',
      "sd 0:0:0:0: [sda] Write cache: enabled, read cache: enabled, doesn't support DPO or FUA",
      'sd 0:0:0:0: [sda] Attached SCSI disk',
      'sr 0:0:0:1: [sr0] scsi-1 drive',
      'cdrom: Uniform CD-ROM driver Revision: 3.20',
      'sr 0:0:0:1: Attached scsi CD-ROM sr0',
    ]);
    // The DVD's refused MODE SENSE(10) page 0x2a is an error storvsc logs (logging_level 1).
    expect(tagline).toMatch(/^hv_storvsc [0-9a-f-]{36}: tag#\d+ cmd 0x5a status: scsi 0x2 srb 0x86 hv 0xc0000185$/);
    expect(g.storage.disks.map((d) => [d.name, d.capacity])).toEqual([['sda', 2097152]]);
    expect(g.storage.drives.map((d) => [d.name, d.capacity])).toEqual([['sr0', 2048]]);
  });
});

describe('sub-channels: Linux asks min(online CPUs - 1, the host count); the host offers one per 4 VPs', () => {
  it.each([
    [2, 0],
    [5, 1],
    [9, 2],
    [16, 3],
  ])('%i VPs: %i sub-channels, each opened on its own CPU', (vps, subs) => {
    const g = guestMachine({ vps, disks: [memDisk(0)] });
    const dev = [...g.storage.driver.devices.values()][0]!;
    expect(g.host.subChannelCount).toBe(subs);
    expect(dev.subchannels.length).toBe(subs);
    expect(dev.subchannels.every((c) => c.isOpen)).toBe(true);
    const cpus = [dev.channel.targetCpu, ...dev.subchannels.map((c) => c.targetCpu)];
    expect(new Set(cpus).size).toBe(subs + 1);
  });

  it('ws2012 negotiates 5.1, which has multi-channel; 4.2 and 2.0 hosts have none', () => {
    expect(guestMachine({ release: 'ws2012', vps: 5, disks: [memDisk(0)] }).host.subChannelCount).toBe(1);
    const old = guestMachine({ vps: 5, disks: [memDisk(0)], storage: { versions: [VmstorVersion.WIN6, VmstorVersion.WIN7] } });
    // Linux 6.1 knows no version older than 5.1: the probe fails.
    expect(old.lines().some((l) => /hv_storvsc [0-9a-f-]+: Obsolete Hyper-V version/.test(l))).toBe(true);
    expect(old.lines().some((l) => /hv_vmbus: probe failed for device [0-9a-f-]+ \(-22\)/.test(l))).toBe(true);
  });

  it('I/O goes out on the channel of the issuing CPU where it has one, else on one of the allocated CPUs (get_og_chn)', () => {
    const g = guestMachine({ vps: 9, disks: [memDisk(0)] });
    const dev = [...g.storage.driver.devices.values()][0]!;
    const own = dev.subchannels[0]!;
    // A CPU with its own channel prefers another allocated CPU's channel with room (storvsc_do_io).
    expect(dev.selectChannel(own.targetCpu)).not.toBe(own);
    // A CPU without one gets a channel of the allocated CPUs by hash, and keeps it.
    const lonely = [0, 1, 2, 3, 4, 5, 6, 7, 8].find((c) => !dev.allocedCpus.has(c))!;
    const picked = dev.selectChannel(lonely);
    expect([dev.channel, ...dev.subchannels]).toContain(picked);
    expect(dev.storChns.get(lonely)).toBe(picked);
    const before = g.host.subChannels.map((c) => c.packetsReceived);
    const disk = g.storage.disks[0]!;
    for (let i = 0; i < 4; i++) expect(settleOn(g, disk.read(i, 1, { cpu: lonely }))?.ok).toBe(true);
    const after = g.host.subChannels.map((c) => c.packetsReceived);
    const onPrimary = g.host.primary.packetsReceived;
    expect(after.reduce((a, b) => a + b, 0) - before.reduce((a, b) => a + b, 0) + onPrimary).toBeGreaterThanOrEqual(4);
  });
});

describe('the block device', () => {
  it('write, read, flush, discard and write-zeroes reach the disk as Linux sends them', () => {
    const d = memDisk(0, 64 * MIB);
    const g = guestMachine({ disks: [d] });
    const sda = g.storage.disks[0]!;
    const data = Uint8Array.from({ length: 8192 }, (_, i) => (i * 31) & 0xff);
    expect(settleOn(g, sda.write(100, data))?.ok).toBe(true);
    const back = new Uint8Array(8192);
    d.backend.read(100, back);
    expect(back).toEqual(data);
    const r = settleOn(g, sda.read(100, 16));
    expect(r?.ok && r.data).toEqual(data);
    const flushes = d.backend.flushes;
    expect(settleOn(g, sda.flush())?.ok).toBe(true);
    expect(d.backend.flushes).toBe(flushes + 1);
    // Discard uses UNMAP (LBPU and the block limits page); whole 64 KiB chunks are freed.
    d.backend.write(1024, new Uint8Array(256 * 1024).fill(7));
    const allocated = d.backend.allocated;
    expect(settleOn(g, sda.discard(1024, 512))?.ok).toBe(true);
    expect(d.backend.allocated).toBe(allocated - 256 * 1024);
    // WRITE SAME is off for a disk without an ATA information VPD page: zeroes are written.
    const srbs = g.host.stats.srbs;
    expect(settleOn(g, sda.writeZeroes(100, 16))?.ok).toBe(true);
    d.backend.read(100, back);
    expect(back.every((x) => x === 0)).toBe(true);
    expect(g.host.stats.srbs).toBe(srbs + 1);
  });

  it("a read into the caller's buffer: the same bytes, in a view of it; one too small is EINVAL before any command", () => {
    const d = memDisk(0, 64 * MIB);
    const iso = new MemoryDisk(64 * 2048, { sectorSize: 2048 });
    const g = guestMachine({ disks: [d, { lun: 1, backend: iso, dvd: true }] });
    const sda = g.storage.disks[0]!;
    // 1 MiB + 4 KiB from an odd block: five commands (split at max_sectors), each copied to its place.
    const data = Uint8Array.from({ length: MIB + 4096 }, (_, i) => (i * 7 + (i >> 9)) & 0xff);
    d.backend.write(333, data);
    const into = new Uint8Array(MIB + 8192).fill(0xee);
    const r = settleOn(g, sda.read(333, (MIB + 4096) / 512, { into }));
    expect(r?.ok && r.data).toEqual(data);
    expect(r?.ok && r.data?.buffer).toBe(into.buffer);
    expect(into.subarray(MIB + 4096).every((x) => x === 0xee)).toBe(true);
    const empty = settleOn(g, sda.read(0, 0, { into }));
    expect(empty?.ok && empty.data?.length).toBe(0);
    const srbs = g.host.stats.srbs;
    expect(settleOn(g, sda.read(0, 9, { into: new Uint8Array(4096) }))).toMatchObject({ ok: false, errno: 'EINVAL' });
    expect(g.host.stats.srbs).toBe(srbs);
    // The DVD's reads too.
    const disc = Uint8Array.from({ length: 4 * 2048 }, (_, i) => (i * 13) & 0xff);
    iso.write(10, disc);
    const sr0 = g.storage.drives[0]!;
    const dst = new Uint8Array(5 * 2048);
    const rr = settleOn(g, sr0.read(10, 4, { into: dst }));
    expect(rr?.ok && rr.data).toEqual(disc);
    expect(rr?.ok && rr.data?.buffer).toBe(dst.buffer);
    expect(settleOn(g, sr0.read(10, 4, { into: new Uint8Array(2048) }))).toMatchObject({ ok: false, errno: 'EINVAL' });
  });

  it('a 1 MiB request is split at max_sectors (256 KiB) into four READ(10)s', () => {
    const g = guestMachine({ disks: [memDisk(0, 64 * MIB)] });
    const sda = g.storage.disks[0]!;
    expect(sda.maxTransferBlocks).toBe(512);
    const srbs = g.host.stats.srbs;
    const r = settleOn(g, sda.read(0, 2048));
    expect(r?.ok && r.data?.length).toBe(MIB);
    expect(g.host.stats.srbs - srbs).toBe(4);
  });

  it("more I/O than the guest has RAM: each command's pages are freed for the next", () => {
    const d = memDisk(0, 64 * MIB);
    const m = new Machine({ release: 'ws2022', vps: 2, memory: 16 << 20, devices: [{ type: 'scsi', disks: [d] }] });
    m.boot();
    const sda = guestStorage(m)!.disks[0]!;
    const chunk = new Uint8Array(MIB).map((_, i) => (i >> 9) & 0xff);
    for (let at = 0; at < 48 * MIB; at += MIB) expect(settleOn({ m }, sda.write(at / 512, chunk))?.ok).toBe(true);
    for (let at = 0; at < 48 * MIB; at += 8 * MIB) expect(settleOn({ m }, sda.read(at / 512, 2048))?.ok).toBe(true);
    const back = new Uint8Array(MIB);
    d.backend.read((47 * MIB) / 512, back);
    expect(firstDifference(back, chunk)).toBe(-1);
    // More in flight at once than there are free pages: those without pages fail with ENOMEM,
    // the rest complete, and the disk works on.
    const burst = Array.from({ length: 64 }, (_, i) => sda.write(i * 512, chunk.subarray(0, 256 * 1024)));
    m.waitUntil(() => burst.every((r) => r.result), 1e9);
    const errnos = new Set(burst.map((r) => (r.result!.ok ? 'ok' : r.result!.errno)));
    expect(errnos).toEqual(new Set(['ok', 'ENOMEM']));
    expect(settleOn({ m }, sda.read(0, 2048))?.ok).toBe(true);
  });

  it('64 KiB guest pages (arm64): each page is sixteen 4 KiB Hyper-V pages in the PFN list, in order', () => {
    const d = memDisk(0, 16 * MIB);
    const m = new Machine({ release: 'ws2022', arch: 'arm64', vps: 2, pageSize: 65536, memory: 64 << 20, devices: [{ type: 'scsi', disks: [d] }] });
    m.boot();
    const sda = guestStorage(m)!.disks[0]!;
    const data = new Uint8Array(256 * 1024).map((_, i) => (i * 13 + (i >> 12)) & 0xff);
    expect(settleOn({ m }, sda.write(8, data))?.ok).toBe(true);
    const back = new Uint8Array(data.length);
    d.backend.read(8, back);
    expect(firstDifference(back, data)).toBe(-1);
    const r = settleOn({ m }, sda.read(8, 512));
    expect(firstDifference(r?.ok ? r.data! : new Uint8Array(), data)).toBe(-1);
  });

  it('past the end: two lines, EIO, and no command reaches the host', () => {
    const g = guestMachine({ disks: [memDisk(0, MIB)] });
    const srbs = g.host.stats.srbs;
    const r = settleOn(g, g.storage.disks[0]!.read(2047, 2, { comm: 'dd' }));
    expect(r).toMatchObject({ ok: false, errno: 'EIO' });
    expect(g.host.stats.srbs).toBe(srbs);
    expect(storageLines(g.lines()).length).toBeGreaterThan(0);
    expect(g.lines().map(stripTime).slice(-2)).toEqual(['dd: attempt to access beyond end of device', 'sda: rw=0, sector=2047, nr_sectors = 2 limit=2048']);
  });

  it('a read-only disk: Write Protect is on, no write cache; a write fails with EIO and the sense Linux prints', () => {
    const d = memDisk(0, MIB, { readOnly: true });
    const g = guestMachine({ disks: [d] });
    expect(storageLines(g.lines())).toContain('sd 0:0:0:0: [sda] Write Protect is on');
    expect(storageLines(g.lines())).toContain("sd 0:0:0:0: [sda] Write cache: disabled, read cache: enabled, doesn't support DPO or FUA");
    const sda = g.storage.disks[0]!;
    expect(sda.readOnly).toBe(true);
    const mark = g.lines().length;
    expect(settleOn(g, sda.write(8, new Uint8Array(512).fill(1)))).toMatchObject({ ok: false, errno: 'EIO' });
    const lines = g.lines().slice(mark).map(stripTime);
    expect(lines[0]).toBe('Trying to write to read-only block-device sda');
    expect(lines[1]).toMatch(/^hv_storvsc [0-9a-f-]+: tag#\d+ cmd 0x2a status: scsi 0x2 srb 0x84 hv 0xc0000185$/);
    expect(lines.slice(2)).toEqual([
      expect.stringMatching(/^sd 0:0:0:0: \[sda\] tag#\d+ FAILED Result: hostbyte=DID_OK driverbyte=DRIVER_OK cmd_age=0s$/),
      expect.stringMatching(/^sd 0:0:0:0: \[sda\] tag#\d+ Sense Key : Data Protect \[current\] $/),
      expect.stringMatching(/^sd 0:0:0:0: \[sda\] tag#\d+ Add. Sense: Write protected$/),
      expect.stringMatching(/^sd 0:0:0:0: \[sda\] tag#\d+ CDB: Write\(10\) 2a 00 00 00 00 08 00 00 01 00$/),
      'I/O error, dev sda, sector 8 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 2',
    ]);
    const back = new Uint8Array(512);
    d.backend.read(8, back);
    expect(back.every((x) => x === 0)).toBe(true);
  });

  it('SG_IO-style commands: the host sense becomes the errno Linux reports', () => {
    const g = guestMachine({ disks: [memDisk(0, MIB)] });
    const sdev = g.storage.disks[0]!.sdev;
    // LBA out of range: ILLEGAL REQUEST, 0x21 → EIO; invalid opcode (0x20) → EREMOTEIO.
    const oor = g.storage.core.execute(sdev, { cdb: new Uint8Array([0x28, 0, 0, 0, 0x10, 0, 0, 0, 1, 0]), direction: 'from-device', length: 512 });
    expect(oor.disposition).toEqual({ ok: false, errno: 'EIO' });
    expect(oor.cmd.senseHeader).toMatchObject({ key: 5, asc: 0x21 });
    const bad = g.storage.core.execute(sdev, { cdb: new Uint8Array([0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), direction: 'none' });
    expect(bad.disposition).toEqual({ ok: false, errno: 'EREMOTEIO' });
    // WRITE SAME(16) with UNMAP on a WIN10 host.
    const ws = g.storage.core.execute(sdev, { cdb: new Uint8Array([0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]), direction: 'to-device', data: new Uint8Array(512) });
    expect(ws.disposition.ok).toBe(true);
  });

  it('the DVD: sr reads 2048-byte blocks of the ISO; writes are EROFS', () => {
    const iso = new MemoryDisk(64 * 2048, { sectorSize: 2048 });
    const content = Uint8Array.from({ length: 4 * 2048 }, (_, i) => (i >> 3) & 0xff);
    iso.write(10, content);
    const g = guestMachine({ disks: [{ lun: 0, backend: iso, dvd: true }] });
    const sr0 = g.storage.drives[0]!;
    const r = settleOn(g, sr0.read(10, 4));
    expect(r?.ok && r.data).toEqual(content);
    expect(settleOn(g, sr0.write(0, new Uint8Array(2048)))).toMatchObject({ ok: false, errno: 'EROFS' });
  });

  it('the partition scan at attach: an MBR with two partitions', () => {
    const mbr = new MemoryDisk(16 * MIB);
    const s0 = new Uint8Array(512);
    const entry = (i: number, type: number, start: number, size: number) => {
      const dv = new DataView(s0.buffer, 446 + 16 * i);
      dv.setUint8(4, type);
      dv.setUint32(8, start, true);
      dv.setUint32(12, size, true);
    };
    entry(0, 0x83, 2048, 8192);
    entry(1, 0x83, 10240, 8192);
    s0[510] = 0x55;
    s0[511] = 0xaa;
    mbr.write(0, s0);
    const g = guestMachine({ disks: [{ lun: 0, backend: mbr }] });
    expect(storageLines(g.lines())).toContain(' sda: sda1 sda2');
    expect(g.storage.disks[0]!.partitions?.partitions.map((p) => [p.number, p.start])).toEqual([
      [1, 2048],
      [2, 10240],
    ]);
  });
});

describe('hot add and remove', () => {
  it('a disk added while the VM runs appears as sdb; removed, it is flushed and gone', () => {
    const g = guestMachine({ disks: [memDisk(0)] });
    const mark = g.lines().length;
    g.host.attach({ path: 0, target: 0, lun: 1 }, new ScsiDisk(new MemoryDisk(8 * MIB)));
    g.m.runFor(50e6);
    expect(g.lines().slice(mark).map(stripTime)).toEqual(
      expect.arrayContaining(['scsi 0:0:0:1: Direct-Access     Msft     Virtual Disk     1.0  PQ: 0 ANSI: 5', 'sd 0:0:0:1: [sdb] 16384 512-byte logical blocks: (8.39 MB/8.00 MiB)', 'sd 0:0:0:1: [sdb] Attached SCSI disk']),
    );
    expect(g.storage.disks.map((d) => d.name)).toEqual(['sda', 'sdb']);
    const mark2 = g.lines().length;
    g.host.detach({ path: 0, target: 0, lun: 1 });
    g.m.runFor(50e6);
    expect(g.lines().slice(mark2).map(stripTime)).toEqual([
      'sd 0:0:0:1: [sdb] Synchronizing SCSI cache',
      expect.stringMatching(/^hv_storvsc [0-9a-f-]+: tag#\d+ cmd 0x35 status: scsi 0x2 srb 0x20 hv 0xc00000c0$/),
      'sd 0:0:0:1: [sdb] Synchronize Cache(10) failed: Result: hostbyte=DID_NO_CONNECT driverbyte=DRIVER_OK',
    ]);
    expect(g.storage.disks.map((d) => d.name)).toEqual(['sda']);
    // The name is free again: the next disk is sdb once more.
    g.host.attach({ path: 0, target: 0, lun: 2 }, new ScsiDisk(new MemoryDisk(8 * MIB)));
    g.m.runFor(50e6);
    expect(g.storage.disks.map((d) => d.name)).toEqual(['sda', 'sdb']);
  });

  it('removed with I/O in flight: what the host took completes; later I/O fails, the device goes, nothing hangs', () => {
    const d1 = memDisk(1, 8 * MIB);
    d1.backend.write(0, new Uint8Array(4096).fill(0x5a));
    const g = guestMachine({ disks: [memDisk(0), d1], storage: { latencyNs: 5e6 } });
    const sdb = g.storage.disks.find((d) => d.sdev.lun === 1)!;
    const inflight = [0, 1, 2, 3].map((i) => sdb.read(i, 1));
    g.m.runFor(1e6);
    expect(inflight.every((r) => r.result === undefined)).toBe(true);
    g.host.detach({ path: 0, target: 0, lun: 1 });
    const late = sdb.read(4, 1);
    g.m.runFor(100e6);
    for (const r of inflight) expect(r.result).toMatchObject({ ok: true, data: new Uint8Array(512).fill(0x5a) });
    expect(late.result).toMatchObject({ ok: false });
    expect(g.storage.disks.map((d) => d.name)).toEqual(['sda']);
    expect(sdb.present).toBe(false);
    const after = sdb.read(0, 1);
    expect(after.result).toMatchObject({ ok: false, errno: 'EIO' });
    expect(g.lines().some((l) => l.endsWith('sd 0:0:0:1: [sdb] rejecting I/O to dead device'))).toBe(true);
  });
});

describe('a host that does not answer', () => {
  it('at initialisation: storvsc gives up after 5 s and the probe fails with -ETIMEDOUT', () => {
    const g = guestMachine({ disks: [memDisk(0)], storage: { answer: (op) => op !== VstorOp.QUERY_PROPERTIES } });
    expect(g.lines().some((l) => /hv_vmbus: probe failed for device [0-9a-f-]+ \(-110\)/.test(l))).toBe(true);
    expect(g.storage.disks).toEqual([]);
  });

  it('an I/O it never completes stays outstanding (Linux resets the timer); a host reset succeeds and nothing is lost twice', () => {
    let silent = false;
    const g = guestMachine({ disks: [memDisk(0)], storage: { answer: (op, r) => !(silent && op === VstorOp.EXECUTE_SRB && r?.payload[0] === 0x28) } });
    silent = true;
    const sda = g.storage.disks[0]!;
    const req = sda.read(0, 8);
    // Past storvsc_timeout (180 s): the SCSI layer only resets the timer.
    g.m.runFor(200e9);
    expect(req.result).toBeUndefined();
    const dev = [...g.storage.driver.devices.values()][0]!;
    expect(dev.outstanding).toBe(1);
    expect(g.m.kernel.stage).toBe('booted');
    silent = false;
    // RESET_BUS is answered; the drain waits (bounded in the model) for the lost request.
    expect(dev.hostReset()).toBe('SUCCESS');
    expect(g.host.stats.resets).toBe(1);
    // Other I/O still works.
    expect(settleOn(g, sda.read(8, 8))?.ok).toBe(true);
  });
});

describe("the guest's completion handling fed arbitrary packets", () => {
  it('never throws; bad packets are logged as Linux logs them and counted; the disk still works', () => {
    const g = guestMachine({ disks: [memDisk(0)] });
    const dev = [...g.storage.driver.devices.values()][0]!;
    const ch = g.host.primary;
    fuzz(
      'storage.storvsc-completions',
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 96 }), fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(1n, 2n, 0xffff_ffff_ffff_fffdn)), fc.boolean(), (payload, id, comp) => {
        if (comp) ch.sendCompletion(id, payload);
        else ch.sendInband(payload, id, false);
        g.m.runFor(1e5);
      }),
      RUNS,
    );
    expect(dev.badPackets).toBeGreaterThan(0);
    expect(g.lines().some((l) => /hv_storvsc [0-9a-f-]+: (Invalid pkt: id=\d+, len=\d+, minlen=(64|4)|Incorrect transaction ID|Invalid packet with ID of 0)$/.test(l))).toBe(true);
    expect(settleOn(g, g.storage.disks[0]!.read(0, 1))?.ok).toBe(true);
    void VstorPacket;
  });
});
