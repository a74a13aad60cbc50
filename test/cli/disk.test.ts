// `hvkit disk create|info|check`: the images it makes are what qemu-img says they are, info's first
// lines are qemu-img info's, check passes sound images and names what is wrong in damaged ones, and
// bad usage is one line with exit 2.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { openDisk } from '../../src/vm/disk-file.js';
import { qemuSize } from '../../src/vm/disk-image.js';

const MIB = 1 << 20;
const dir = () => mkdtempSync(join(tmpdir(), 'hvkit-disk-cli-'));
const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { encoding: 'utf8' });

async function hvkit(...args: string[]): Promise<{ code: number; out: string[]; err: string }> {
  const out: string[] = [];
  let err = '';
  const code = await main(['node', 'hvkit', ...args], { out: (l) => out.push(l), err: (t) => (err += t) });
  return { code, out, err };
}

describe('hvkit disk create', () => {
  it.each([
    [['64M'], 'dynamic', 32 * MIB, 64 * MIB],
    [['10M', '--type', 'fixed', '--block-size', '1M'], 'fixed', MIB, 10 * MIB],
    [['1G', '--block-size', '256M'], 'dynamic', 256 * MIB, 1 << 30],
  ])('a.vhdx %j: a %s VHDX qemu-img agrees on', async (args, type, blockSize, size) => {
    const p = join(dir(), 'a.vhdx');
    const r = await hvkit('disk', 'create', p, ...args);
    expect([r.code, r.err, r.out]).toEqual([0, '', [`created ${p}: VHDX ${type}, ${qemuSize(blockSize)} blocks, ${qemuSize(size)} (${size} bytes)`]]);
    expect(JSON.parse(qemuImg('info', '--output=json', p))).toMatchObject({ format: 'vhdx', 'virtual-size': size, 'cluster-size': blockSize });
    expect(qemuImg('check', p)).toBe('No errors were found on the image.\n');
  });

  it('a raw image is its size in zeros; a differencing disk takes its parent\'s size and names it', async () => {
    const d = dir();
    expect((await hvkit('disk', 'create', join(d, 'r.img'), '3M')).out).toEqual([`created ${join(d, 'r.img')}: raw, 3 MiB (3145728 bytes)`]);
    expect(readFileSync(join(d, 'r.img')).length).toBe(3 * MIB);
    await hvkit('disk', 'create', join(d, 'base.vhdx'), '8M');
    const r = await hvkit('disk', 'create', join(d, 'child.vhdx'), '--parent', join(d, 'base.vhdx'));
    expect(r.out).toEqual([`created ${join(d, 'child.vhdx')}: VHDX differencing, 2 MiB blocks, 8 MiB (8388608 bytes)`]);
    const info = await hvkit('disk', 'info', join(d, 'child.vhdx'));
    expect(info.out).toContain('backing file: base.vhdx');
    expect(info.out).toContain('type: differencing');
  });

  it.each([
    [['x.vhdx'], 'hvkit disk create: X/x.vhdx: needs a size'],
    [['x.vhdx', '4M', '--block-size', '3M'], 'hvkit disk create: X/x.vhdx: cannot be made: --block-size 3145728 is not a power of two from 1 MiB to 256 MiB'],
    [['x.vhdx', '100T'], 'hvkit disk create: X/x.vhdx: cannot be made: size 109951162777600 is not a multiple of 512 from 512 to 64 TiB'],
    [['x.vhdx', '4M', '--sector-size', '1024'], "hvkit disk create: option '--sector-size <bytes>' argument '1024' is invalid. expected 512 or 4096"],
    [['x.vhdx', '4M', '--type', 'sparse'], "hvkit disk create: option '--type <type>' argument 'sparse' is invalid. expected one of dynamic, fixed, differencing"],
    [['x.img', '4M', '--type', 'fixed'], 'hvkit disk create: X/x.img: a raw image has no type, block size or parent (those are VHDX options)'],
    [['x.vhdx', '--type', 'differencing'], 'hvkit disk create: X/x.vhdx: a differencing disk needs --parent'],
    [['x.vhdx', '--parent', 'X/none.vhdx'], 'hvkit disk create: X/none.vhdx: no such file'],
    [['x.img', 'lots'], "hvkit disk create: command-argument value 'lots' is invalid for argument 'size'. expected a size such as 256M or 1G"],
  ])('%j: exit 2, %s, nothing left behind', async (args, message) => {
    const d = dir();
    const r = await hvkit('disk', 'create', ...args.map((a) => (a.includes('.') ? join(d, a.replace('X/', '')) : a)));
    expect([r.code, r.err]).toEqual([2, `${message.replaceAll('X/', `${d}/`)}\n`]);
    expect(existsSync(join(d, 'x.vhdx')) || existsSync(join(d, 'x.img'))).toBe(false);
  });

  it('does not overwrite', async () => {
    const d = dir();
    writeFileSync(join(d, 'a.img'), 'keep');
    expect((await hvkit('disk', 'create', join(d, 'a.img'), '1M')).err).toBe(`hvkit disk create: ${join(d, 'a.img')}: already exists (hvkit disk create does not overwrite)\n`);
    expect(readFileSync(join(d, 'a.img'), 'utf8')).toBe('keep');
  });
});

describe('hvkit disk info', () => {
  it("its first lines are qemu-img info's, for hvkit's and qemu's images alike", async () => {
    const d = dir();
    await hvkit('disk', 'create', join(d, 'a.vhdx'), '64M');
    qemuImg('create', '-f', 'vhdx', join(d, 'q.vhdx'), '100M');
    qemuImg('create', '-f', 'raw', join(d, 'r.img'), '5M');
    for (const name of ['a.vhdx', 'q.vhdx', 'r.img']) {
      const p = join(d, name);
      const qemu = qemuImg('info', p).trimEnd().split('\n');
      const r = await hvkit('disk', 'info', p);
      expect(r.out.slice(0, qemu.length)).toEqual(qemu);
    }
    const json = JSON.parse((await hvkit('disk', 'info', '--json', join(d, 'a.vhdx'))).out.join('\n'));
    expect(json).toMatchObject({ format: 'vhdx', virtualSize: 64 * MIB, logicalSectorSize: 512, physicalSectorSize: 4096, vhdx: { type: 'dynamic', blockSize: 32 * MIB, allocatedBlocks: 0 } });
  });

  it('a missing file or a damaged image: exit 2 naming the path and the field', async () => {
    const d = dir();
    expect(await hvkit('disk', 'info', join(d, 'none.vhdx'))).toMatchObject({ code: 2, err: `hvkit disk info: ${join(d, 'none.vhdx')}: no such file\n` });
    await hvkit('disk', 'create', join(d, 'a.vhdx'), '4M');
    const bytes = readFileSync(join(d, 'a.vhdx'));
    bytes[2 * MIB] = 0;
    writeFileSync(join(d, 'a.vhdx'), bytes);
    expect((await hvkit('disk', 'info', join(d, 'a.vhdx'))).err).toBe(`hvkit disk info: ${join(d, 'a.vhdx')}: is not a usable VHDX image: metadata.signature: not "metadata"\n`);
  });
});

describe('hvkit disk check', () => {
  it("a sound image: qemu-img's line, exit 0; --json has no errors", async () => {
    const d = dir();
    await hvkit('disk', 'create', join(d, 'a.vhdx'), '8M', '--block-size', '1M');
    const w = openDisk(join(d, 'a.vhdx'));
    w.write(0, new Uint8Array(4 * MIB).fill(1));
    w.close!();
    expect(await hvkit('disk', 'check', join(d, 'a.vhdx'))).toEqual({ code: 0, out: ['No errors were found on the image.'], err: '' });
    expect(JSON.parse((await hvkit('disk', 'check', '--json', join(d, 'a.vhdx'))).out.join('\n'))).toEqual({ image: join(d, 'a.vhdx'), errors: [] });
  });

  it('two blocks at one place in the file, and a damaged header pair: each error named, exit 1', async () => {
    const d = dir();
    const p = join(d, 'a.vhdx');
    await hvkit('disk', 'create', p, '8M', '--block-size', '1M');
    const w = openDisk(p);
    w.write(0, new Uint8Array(2 * MIB).fill(1));
    w.close!();
    const bytes = readFileSync(p);
    // BAT entry 1 made to point where entry 0 does.
    bytes.copy(bytes, 3 * MIB + 8, 3 * MIB, 3 * MIB + 8);
    writeFileSync(p, bytes);
    const r = await hvkit('disk', 'check', p);
    expect(r).toEqual({ code: 1, out: ['ERROR bat[1] at 4194304 overlaps bat[0] (4194304..5242879)', '', '1 error was found on the image.'], err: `hvkit disk check: ${p}: 1 error found\n` });
    bytes.fill(0, 64 * 1024, 192 * 1024);
    writeFileSync(p, bytes);
    expect((await hvkit('disk', 'check', p)).out[0]).toBe('ERROR is not a usable VHDX image: header: neither header is valid (header 1: no "head" signature; header 2: no "head" signature)');
  });
});
