// Disks from the command line and the VM file: --disk and `devices[].disks` (with the errors each
// bad value gets), raw images opened and locked (a second writer is refused, a stale lock taken
// over), the script's disk steps down to the bytes in the image, and the SCSI host in --sysfs.
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { sysfsFiles } from '../../src/cli/sysfs.js';
import { parseVmConfig } from '../../src/vm/config.js';
import { ReadList } from '../../src/devices/storage/backend.js';
import { DiskOpenError, NodeFile, openDisk, RawDisk } from '../../src/vm/disk-file.js';
import { Machine } from '../../src/vm/machine.js';
import { openVmDevices } from '../../src/vm/disks.js';
import { parseScript, runScript, ScriptError, type StepResult } from '../../src/vm/script.js';
import { storageSnapshot } from '../../src/vm/storage.js';

const MIB = 1 << 20;

function dir(): string {
  return mkdtempSync(join(tmpdir(), 'hvkit-disks-'));
}

function image(at: string, name: string, bytes: number): string {
  const p = join(at, name);
  writeFileSync(p, new Uint8Array(bytes));
  return p;
}

async function run(...args: string[]): Promise<{ code: number; lines: string[]; err: string }> {
  const lines: string[] = [];
  let err = '';
  const code = await main(['node', 'hvkit', ...args], { out: (l) => lines.push(l), err: (t) => (err += t) });
  return { code, lines, err };
}

describe('devices[].disks in the VM file', () => {
  it('LUNs are the ones given, else the lowest free; readOnly and dvd default to false', () => {
    const vm = parseVmConfig({ devices: [{ type: 'scsi', disks: [{ path: 'a', lun: 0 }, { path: 'b' }, { path: 'c', lun: 1, readOnly: true }, { path: 'd', dvd: true }] }] });
    expect(vm.devices[0]!.disks!.map((d) => [d.path, d.lun, d.readOnly, d.dvd])).toEqual([
      ['a', 0, false, false],
      ['b', 2, false, false],
      ['c', 1, true, false],
      ['d', 3, false, true],
    ]);
  });

  it.each([
    [{ devices: [{ type: 'network', disks: [{ path: 'a' }] }] }, '/devices/0/disks: only a storage controller (scsi, ide, fc) has disks, not network'],
    [{ devices: [{ type: 'scsi', disks: [{ path: 'a', lun: 2 }, { path: 'b', lun: 2 }] }] }, '/devices/0/disks/1: LUN 2 duplicates the LUN of disk 0'],
    [{ devices: [{ type: 'scsi', disks: [{ path: 'a', lun: 64 }] }] }, '/devices/0/disks/0/lun: must be an integer from 0 to 63'],
    [{ devices: [{ type: 'scsi', disks: [{ lun: 1 }] }] }, '/devices/0/disks/0/path: required field missing'],
    [{ devices: [{ type: 'scsi', disks: [{ path: 'a', cache: true }] }] }, '/devices/0/disks/0/cache: unknown field'],
    [{ devices: [{ type: 'scsi', disks: [{ path: '' }] }] }, '/devices/0/disks/0/path: must not be empty'],
  ])('%j: %s', (json, message) => {
    expect(() => parseVmConfig(json, 'vm.json')).toThrow(`vm.json: ${message}`);
  });

  it('a relative path starts at the VM file\'s folder; an image that cannot be opened names its field', async () => {
    const d = dir();
    image(d, 'disk.img', MIB);
    writeFileSync(join(d, 'vm.json'), JSON.stringify({ devices: [{ type: 'scsi', disks: [{ path: 'disk.img' }, { path: 'missing.img' }] }] }));
    const r = await run('lsvmbus', '--config', join(d, 'vm.json'));
    expect(r.code).toBe(2);
    expect(r.err).toBe(`hvkit lsvmbus: ${join(d, 'vm.json')}: /devices/0/disks/1: ${join(d, 'missing.img')}: no such file\n`);
    // The image opened first was closed again: its lock is gone.
    expect(readdirSync(d).sort()).toEqual(['disk.img', 'vm.json']);
  });
});

describe('--disk', () => {
  it('attaches to the first SCSI controller; lsvmbus --json shows the host and its disks', async () => {
    const d = dir();
    const a = image(d, 'a.img', 4 * MIB);
    const iso = image(d, 'b.iso', MIB);
    const r = await run('lsvmbus', '--json', '--disk', `${a},lun=2`, '--disk', `${iso},dvd`);
    expect(r.code).toBe(0);
    const scsi = (JSON.parse(r.lines.join('\n')) as { scsi: { host: number; devices: { address: string; model: string; block?: { name: string; sectors: number; readOnly: boolean } }[] }[] }).scsi;
    expect(scsi[0]!.devices.map((x) => [x.address, x.model.trim(), x.block?.name, x.block?.sectors, x.block?.readOnly])).toEqual([
      ['0:0:0:0', 'Virtual DVD-ROM', 'sr0', 2048, true],
      ['0:0:0:2', 'Virtual Disk', 'sda', 8192, false],
    ]);
    expect(existsSync(`${a}.lock`)).toBe(false);
  });

  it.each([
    [['--disk', 'x.img,lun=64'], "hvkit run: option '--disk <path[,ro][,lun=N][,dvd]>' argument 'x.img,lun=64' is invalid. lun=64 is more than 63 (a controller has LUNs 0 to 63)"],
    [['--disk', 'x.img,cache'], "hvkit run: option '--disk <path[,ro][,lun=N][,dvd]>' argument 'x.img,cache' is invalid. unknown disk option 'cache'; options: ro, lun=N, dvd"],
    [['--disk', '/nonexistent/x.img'], 'hvkit run: --disk /nonexistent/x.img: /nonexistent/x.img: no such file'],
  ])('%j: exit 2, %s', async (args, message) => {
    const r = await run('run', ...args);
    expect([r.code, r.err]).toEqual([2, `${message}\n`]);
  });

  it('two --disk at one LUN, and one image written twice, are refused before boot', async () => {
    const d = dir();
    const a = image(d, 'a.img', MIB);
    const b = image(d, 'b.img', MIB);
    expect((await run('run', '--disk', `${a},lun=1`, '--disk', `${b},lun=1`)).err).toBe(`hvkit run: --disk ${b},lun=1: LUN 1 duplicates the LUN of disk 0\n`);
    expect((await run('run', '--disk', a, '--disk', a)).err).toBe(`hvkit run: --disk ${a}: ${a}: is already open for writing by this VM (a second writer is refused)\n`);
    // Read-only twice is fine: no writer.
    expect((await run('run', '--disk', `${a},ro`, '--disk', `${a},ro`)).code).toBe(0);
  });
});

describe('images on the host', () => {
  it('a second writer in another process is refused; a stale lock (its process gone) is taken over', () => {
    const d = dir();
    const a = image(d, 'a.img', MIB);
    writeFileSync(`${a}.lock`, '1\n');
    expect(() => openDisk(a)).toThrow(new DiskOpenError(a, `is open for writing by process 1 (a second writer is refused; its lock is ${a}.lock)`));
    writeFileSync(`${a}.lock`, '999999999\n');
    const disk = openDisk(a);
    expect(readFileSync(`${a}.lock`, 'utf8')).toBe(`${process.pid}\n`);
    disk.close!();
    expect(existsSync(`${a}.lock`)).toBe(false);
  });

  it('a raw image must be whole sectors and not empty; an ISO has 2048-byte sectors', () => {
    const d = dir();
    expect(() => openDisk(image(d, 'odd.img', 1000))).toThrow('1000 bytes is not a whole number of 512-byte sectors');
    expect(() => openDisk(image(d, 'empty.img', 0))).toThrow('is empty');
    const iso = openDisk(image(d, 'x.iso', 4096), { dvd: true });
    expect([iso.sectorSize, iso.sectorCount, iso.readOnly]).toEqual([2048, 2, true]);
    iso.close!();
    const raw = new RawDisk(new NodeFile(image(d, 'r.img', 4096), false));
    raw.write(1, new Uint8Array(512).fill(3), true);
    raw.close();
    expect(readFileSync(join(d, 'r.img'))[512]).toBe(3);
  });

  it('a vectored read fills each buffer in turn as reads of each would; past the end of the file is zeros', () => {
    const d = dir();
    const p = join(d, 'v.img');
    const bytes = Uint8Array.from({ length: 64 * 1024 }, (_, i) => (i * 7 + (i >> 10)) & 0xff);
    writeFileSync(p, bytes);
    const raw = new RawDisk(new NodeFile(p, true));
    const outs = [4096, 512, 8192, 1024].map((n) => new Uint8Array(n).fill(0xee));
    raw.readv(3, outs);
    let at = 3 * 512;
    for (const out of outs) {
      expect(out).toEqual(bytes.subarray(at, at + out.length));
      at += out.length;
    }
    expect(() => raw.readv(120, [new Uint8Array(4096), new Uint8Array(512)])).toThrow('pass the end');
    expect(() => raw.readv(0, [new Uint8Array(100)])).toThrow('whole number');
    // The file itself reads zeros past its end, in the buffer it ends in and those after it.
    const file = new NodeFile(p, true);
    const tail = [new Uint8Array(3000).fill(1), new Uint8Array(2000).fill(1), new Uint8Array(10).fill(1)];
    file.readvAt(64 * 1024 - 4000, tail);
    expect(tail[0]).toEqual(bytes.subarray(64 * 1024 - 4000, 64 * 1024 - 1000));
    expect(tail[1]!.subarray(0, 1000)).toEqual(bytes.subarray(64 * 1024 - 1000));
    expect(tail[1]!.subarray(1000).every((x) => x === 0)).toBe(true);
    expect(tail[2]!.every((x) => x === 0)).toBe(true);
    file.close();
    raw.close();
  });

  it('a read into part of a larger buffer (readInto) fills just that part, as read() of a view would; past the end of the file is zeros', () => {
    const d = dir();
    const p = join(d, 'i.img');
    const bytes = Uint8Array.from({ length: 64 * 1024 }, (_, i) => (i * 11 + (i >> 9)) & 0xff);
    writeFileSync(p, bytes);
    const raw = new RawDisk(new NodeFile(p, true));
    const dst = new Uint8Array(3 * 4096).fill(0xee);
    raw.readInto(5, dst, 4096, 4096);
    expect(dst.subarray(4096, 8192)).toEqual(bytes.subarray(5 * 512, 5 * 512 + 4096));
    expect(dst.subarray(0, 4096).every((x) => x === 0xee) && dst.subarray(8192).every((x) => x === 0xee)).toBe(true);
    const viaRead = new Uint8Array(4096);
    raw.read(5, viaRead);
    expect(dst.subarray(4096, 8192)).toEqual(viaRead);
    expect(() => raw.readInto(127, dst, 0, 1024)).toThrow('pass the end');
    expect(() => raw.readInto(0, dst, 0, 100)).toThrow('whole number');
    const file = new NodeFile(p, true);
    const tail = new Uint8Array(6000).fill(1);
    file.readInto(64 * 1024 - 1000, tail, 1000, 3000);
    expect(tail.subarray(1000, 2000)).toEqual(bytes.subarray(64 * 1024 - 1000));
    expect(tail.subarray(2000, 4000).every((x) => x === 0)).toBe(true);
    expect(tail.subarray(0, 1000).every((x) => x === 1) && tail.subarray(4000).every((x) => x === 1)).toBe(true);
    file.close();
    raw.close();
  });
});

describe('a raw file\'s run of reads (readIntoMany)', () => {
  it('each read lands where readInto would put it; a read past the disk stops the run at it, the reads before it made; past the end of the file is zeros', () => {
    const d = dir();
    const p = join(d, 'm.img');
    const bytes = Uint8Array.from({ length: 64 * 1024 }, (_, i) => (i * 13 + (i >> 9)) & 0xff);
    writeFileSync(p, bytes);
    const raw = new RawDisk(new NodeFile(p, true));
    const reads = new ReadList();
    reads.reserve(4);
    // Blocks 5 (8), 0 (1), 120 (8: the last ones), 127 (8: past the end).
    [
      [5, 0, 4096],
      [0, 8192, 512],
      [120, 12288, 4096],
      [127, 16384, 4096],
    ].forEach(([lba, at, n], i) => {
      reads.lba[i] = lba!;
      reads.at[i] = at!;
      reads.bytes[i] = n!;
    });
    const dst = new Uint8Array(24 * 1024).fill(0xee);
    expect(raw.readIntoMany(dst, reads, 0, 4)).toBe(3);
    const one = new Uint8Array(24 * 1024).fill(0xee);
    raw.readInto(5, one, 0, 4096);
    raw.readInto(0, one, 8192, 512);
    raw.readInto(120, one, 12288, 4096);
    expect(dst).toEqual(one);
    expect(dst.subarray(16384).every((x) => x === 0xee)).toBe(true);
    // From an index on: only those.
    const again = new Uint8Array(24 * 1024).fill(0xee);
    expect(raw.readIntoMany(again, reads, 1, 3)).toBe(3);
    expect(again.subarray(0, 4096).every((x) => x === 0xee)).toBe(true);
    expect(again.subarray(8192)).toEqual(one.subarray(8192));
    // The file itself: bytes past its end read as zeros, as readInto gives them.
    const file = new NodeFile(p, true);
    const tail = new Uint8Array(6000).fill(1);
    expect(file.readIntoMany(tail, Float64Array.of(64 * 1024 - 1000, 0), Float64Array.of(1000, 5000), Float64Array.of(3000, 1000), 0, 2)).toBe(2);
    expect(tail.subarray(1000, 2000)).toEqual(bytes.subarray(64 * 1024 - 1000));
    expect(tail.subarray(2000, 4000).every((x) => x === 0)).toBe(true);
    expect(tail.subarray(4000, 5000).every((x) => x === 1)).toBe(true);
    expect(tail.subarray(5000)).toEqual(bytes.subarray(0, 1000));
    // A closed file fails its first read.
    file.close();
    expect(file.readIntoMany(tail, Float64Array.of(0), Float64Array.of(0), Float64Array.of(512), 0, 1)).toBe(0);
    raw.close();
  });
});

describe('script disk steps', () => {
  it.each([
    ['disk', 's:1: disk: expected write LUN LBA FILE, read LUN LBA COUNT [FILE], add PATH [--lun N] [--ro] [--dvd] or remove LUN'],
    ['disk write 0 0', 's:1: disk write: expected LUN LBA FILE'],
    ['disk read 64 0 1', 's:1: disk read: LUN must be a whole number from 0 to 63'],
    ['disk read 0 0 999999999', 's:1: disk read: COUNT must be a whole number from 0 to 131072'],
    ['disk add a.img --lun', 's:1: disk add: --lun must be a whole number from 0 to 63'],
    ['disk add a.img --fast', 's:1: disk add: unknown option --fast'],
    ['disk remove x', 's:1: disk remove: LUN must be a whole number from 0 to 63'],
  ])('%j is refused: %s', (text, message) => {
    expect(() => parseScript(text, 's')).toThrow(ScriptError);
    expect(() => parseScript(text, 's')).toThrow(message);
  });

  it('disk add reads --lun with the word after it, wherever the options stand', () => {
    for (const text of ['disk add a.img --lun 3 --ro', 'disk add --lun 3 a.img --ro', 'disk add --ro --lun=3 a.img']) {
      expect(parseScript(text, 's')[0], text).toMatchObject({ op: 'disk', action: 'add', path: 'a.img', lun: 3, readOnly: true, dvd: false });
    }
  });

  it('write, read into a file, add, read, remove: the bytes land in the images', async () => {
    const d = dir();
    const a = image(d, 'a.img', 4 * MIB);
    const b = image(d, 'b.img', 2 * MIB);
    writeFileSync(join(d, 'in.bin'), new TextEncoder().encode('hello, disk'));
    writeFileSync(join(b), new Uint8Array(2 * MIB).fill(0x42));
    const m = new Machine({ devices: [{ type: 'scsi', disks: [{ lun: 0, backend: openDisk(a) }] }] });
    m.boot();
    const results: StepResult[] = [];
    const host = { readFile: (p: string) => readFileSync(p), writeFile: (p: string, data: Uint8Array) => writeFileSync(p, data), openDisk: (p: string, o: { readOnly: boolean; dvd: boolean }) => openDisk(p, o) };
    const steps = parseScript([`disk write 0 9 ${join(d, 'in.bin')}`, `disk read 0 9 1 ${join(d, 'out.bin')}`, `disk add ${b} --lun 3 --ro`, 'disk read 3 0 1', 'disk remove 3', 'disk read 3 0 1'].join('\n'));
    await runScript(m, steps, (r) => results.push(r), { host, keepGoing: true });
    expect(results.map((r) => [r.status, r.text])).toEqual([
      ['ok', `disk write 0 9 ${join(d, 'in.bin')}: 11 bytes to sda (1 block of 512 bytes from 9), flushed`],
      ['ok', `disk read 0 9 1 ${join(d, 'out.bin')}: 512 bytes from sda, written to ${join(d, 'out.bin')}`],
      ['ok', `disk add ${b} --lun 3 --ro: LUN 3, the guest's sdb`],
      ['ok', expect.stringMatching(/^disk read 3 0 1: 512 bytes from sdb \(sha256 [0-9a-f]{64}\): (42){32}\.\.\.$/)],
      ['ok', "disk remove 3: LUN 3; the guest let sdb go"],
      ['failed', 'disk read 3 0 1: the guest has no disk at LUN 3'],
    ]);
    expect(results[3]!.values).toMatchObject({ outcome: 'read', device: 'sdb', bytes: 512, hex: '42'.repeat(512) });
    expect(new TextDecoder().decode(readFileSync(a).subarray(9 * 512, 9 * 512 + 11))).toBe('hello, disk');
    expect(readFileSync(join(d, 'out.bin')).subarray(0, 12)).toEqual(Buffer.from('hello, disk\0'));
    m.host.dispose();
    expect(readdirSync(d).filter((f) => f.endsWith('.lock'))).toEqual([]);
  });

  it('a VM without a SCSI controller, and a guest write the disk refuses', async () => {
    const m0 = new Machine({ devices: [] });
    m0.boot();
    const r0: StepResult[] = [];
    await runScript(m0, parseScript('disk read 0 0 1'), (r) => r0.push(r));
    expect(r0[0]!.text).toBe('disk read 0 0 1: the VM has no SCSI controller');
    const d = dir();
    const a = image(d, 'a.img', MIB);
    writeFileSync(join(d, 'x'), 'x');
    const m = new Machine({ devices: openVmDevices(parseVmConfig({ devices: [{ type: 'scsi', disks: [{ path: a, readOnly: true }] }] })) });
    m.boot();
    const r: StepResult[] = [];
    await runScript(m, parseScript(`disk write 0 0 ${join(d, 'x')}`), (x) => r.push(x), { host: { readFile: (p) => readFileSync(p) } });
    expect(r[0]).toMatchObject({ status: 'failed', values: { outcome: 'error', errno: 'EIO', device: 'sda' } });
    m.host.dispose();
  });
});

describe('--sysfs: the SCSI host and its disks below the controller', () => {
  it("host0's attributes, the disk's vendor, model and block device, an FC host's WWNs", () => {
    const d = dir();
    const m = new Machine({ vps: 2, devices: openVmDevices(parseVmConfig({ devices: [{ type: 'scsi', disks: [{ path: image(d, 'a.img', 2 * MIB) }] }, 'fc'] })) });
    m.boot();
    const files = sysfsFiles(m.kernel.vmbus!.snapshot(), { storage: storageSnapshot(m) });
    const scsi = storageSnapshot(m)[0]!.instanceId;
    const at = `${scsi}/host0/target0:0:0/0:0:0:0`;
    expect([files.get(`${scsi}/host0/scsi_host/host0/proc_name`), files.get(`${at}/vendor`), files.get(`${at}/model`), files.get(`${at}/rev`), files.get(`${at}/type`)]).toEqual(['storvsc_host\n', 'Msft    \n', 'Virtual Disk    \n', '1.0 \n', '0\n']);
    expect([files.get(`${at}/block/sda/size`), files.get(`${at}/block/sda/ro`), files.get(`${at}/block/sda/queue/logical_block_size`), files.get(`${at}/block/sda/queue/max_hw_sectors_kb`)]).toEqual(['4096\n', '0\n', '512\n', '256\n']);
    const fcHost = storageSnapshot(m)[1]!;
    expect(fcHost.fc!.portName).toMatch(/^0xc003ff[0-9a-f]{10}$/);
    expect(files.get(`${fcHost.instanceId}/host1/fc_host/host1/port_name`)).toBe(`${fcHost.fc!.portName}\n`);
    m.host.dispose();
  });
});
