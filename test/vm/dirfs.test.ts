// The guest's file tree in a host folder (src/vm/dirfs.ts): guest /a/b is <root>/a/b; the same
// answers as the in-memory tree for the same calls; writeAt as pwrite(2) behaves; and nothing
// reaches outside the root — not "..", not a relative or NUL-bearing path, not a symbolic link
// (to a file, a directory, dangling, relative, through a linked directory, a loop), not a FIFO,
// not even a link or FIFO put in place between dirfs's checks and its open.
import { execFileSync } from 'node:child_process';
import type * as NodeFs from 'node:fs';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GuestFileError, type GuestFiles } from '../../src/devices/device.js';
import { MemoryFiles } from '../../src/guest/memfs.js';
import { Machine } from '../../src/vm/machine.js';
import { DirectoryFiles } from '../../src/vm/dirfs.js';
import { runs } from '../vmbus/fuzz-runs.js';

/** Runs once, just before dirfs's next openSync: a test's way to swap what is at the path. */
const race = vi.hoisted(() => ({ beforeOpen: undefined as ((path: string) => void) | undefined }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof NodeFs>();
  const openSync = (...args: Parameters<typeof fs.openSync>): number => {
    const hook = race.beforeOpen;
    race.beforeOpen = undefined;
    hook?.(String(args[0]));
    return fs.openSync(...args);
  };
  return { ...fs, openSync, default: { ...fs, openSync } };
});

let base: string;
let root: string;
let outside: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'hvkit-dirfs-'));
  root = join(base, 'vm');
  outside = join(base, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret'), 'top secret');
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

const bytes = (s: string) => new Uint8Array(Buffer.from(s));
/** The errno a call fails with, or 'ok' / its value. */
function outcome(f: () => unknown): unknown {
  try {
    const r = f();
    return r instanceof Uint8Array ? Buffer.from(r).toString() : (r ?? 'ok');
  } catch (e) {
    if (e instanceof GuestFileError) return e.errno;
    throw e;
  }
}
/** Every file and folder outside the root, with contents: what must never change. */
function outsideState(): string {
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? [`${e.name}/`, ...walk(join(d, e.name)).map((x) => `${e.name}/${x}`)] : [`${e.name}=${readFileSync(join(d, e.name), 'utf8')}`]));
  return walk(outside).sort().join('\n');
}

describe('DirectoryFiles: the guest tree in a folder', () => {
  it('creates the root; guest /a/b is <root>/a/b, byte for byte', () => {
    const fs = new DirectoryFiles(root);
    fs.mkdirs('/var/lib/hyperv');
    fs.write('/var/lib/hyperv/.kvp_pool_0', Uint8Array.from([0, 1, 2, 255]));
    expect([...readFileSync(join(root, 'var/lib/hyperv/.kvp_pool_0'))]).toEqual([0, 1, 2, 255]);
    writeFileSync(join(root, 'var/lib/hyperv/.kvp_pool_1'), 'from the host');
    expect(outcome(() => fs.read('/var/lib/hyperv/.kvp_pool_1'))).toBe('from the host');
    expect(fs.list('/var/lib/hyperv')).toEqual(['.kvp_pool_0', '.kvp_pool_1']);
  });

  it('answers as the in-memory tree does for the same calls', () => {
    const calls: [string, (f: GuestFiles) => unknown][] = [
      ['read missing', (f) => f.read('/nope')],
      ['write without parent', (f) => f.write('/a/b', bytes('x'))],
      ['mkdirs', (f) => f.mkdirs('/a/b/c')],
      ['write', (f) => f.write('/a/b/file', bytes('one'))],
      ['write exclusive, exists', (f) => f.write('/a/b/file', bytes('two'), { exclusive: true })],
      ['write exclusive, new', (f) => f.write('/a/b/new', bytes('n'), { exclusive: true })],
      ['writeAt inside', (f) => f.writeAt('/a/b/file', 1, bytes('NE'))],
      ['read after writeAt', (f) => f.read('/a/b/file')],
      ['writeAt past the end', (f) => f.writeAt('/a/b/file', 5, bytes('!'))],
      ['writeAt of nothing past the end', (f) => f.writeAt('/a/b/file', 100, bytes(''))],
      ['writeAt a missing file', (f) => f.writeAt('/a/b/nofile', 0, bytes('x'))],
      ['writeAt a directory', (f) => f.writeAt('/a/b/c', 0, bytes('x'))],
      ['writeAt a negative offset', (f) => f.writeAt('/a/b/file', -1, bytes('x'))],
      ['writeAt a fractional offset', (f) => f.writeAt('/a/b/file', 0.5, bytes('x'))],
      ['read', (f) => f.read('/a/b/file')],
      ['read a directory', (f) => f.read('/a/b')],
      ['write over a directory', (f) => f.write('/a/b/c', bytes('x'))],
      ['mkdirs through a file', (f) => f.mkdirs('/a/b/file/d')],
      ['exists', (f) => [f.exists('/a/b/file'), f.exists('/a/b/c'), f.exists('/zz')]],
      ['isDirectory', (f) => [f.isDirectory('/a/b/file'), f.isDirectory('/a/b/c'), f.isDirectory('/'), f.isDirectory('/zz')]],
      ['list', (f) => f.list('/a/b')],
      ['list root', (f) => f.list('/')],
      ['list missing', (f) => f.list('/zz')],
      ['remove', (f) => f.remove('/a/b/new')],
      ['remove missing', (f) => f.remove('/a/b/new')],
      ['normalised', (f) => f.read('/a/./b//c/../file')],
      ['climbing', (f) => f.read('/a/../../etc/passwd')],
      ['relative', (f) => f.read('a/b/file')],
      ['NUL', (f) => f.write('/a/b/x\0y', bytes('x'))],
    ];
    const mem = new MemoryFiles();
    const dir = new DirectoryFiles(root);
    for (const [what, call] of calls) expect(outcome(() => call(dir)), what).toEqual(outcome(() => call(mem)));
  });

  it('"..", absolute host paths and NUL never leave the root', () => {
    const fs = new DirectoryFiles(root);
    const before = outsideState();
    for (const p of ['/../outside/secret', '/../../etc/passwd', '/a/../../outside/x', '..', `${outside}/secret`.slice(1), 'outside', '/\0/x']) {
      expect([p, outcome(() => fs.read(p))]).not.toEqual([p, 'top secret']);
      outcome(() => fs.write(p, bytes('pwned')));
      outcome(() => fs.mkdirs(p));
      outcome(() => fs.remove(p));
    }
    // An absolute host path is just a name under the root.
    fs.mkdirs(outside);
    fs.write(`${outside}/secret`, bytes('inside'));
    expect(readFileSync(join(root, outside, 'secret'), 'utf8')).toBe('inside');
    expect(outsideState()).toBe(before);
  });

  it('symbolic links that lead out are refused (EACCES); links inside are followed', () => {
    mkdirSync(join(root, 'd'), { recursive: true });
    writeFileSync(join(root, 'd/real'), 'inner');
    symlinkSync(join(outside, 'secret'), join(root, 'to-file'));
    symlinkSync(outside, join(root, 'to-dir'));
    symlinkSync('../outside', join(root, 'relative-out'));
    symlinkSync(join(outside, 'not-yet'), join(root, 'dangling-out'));
    symlinkSync('to-dir/made-through', join(root, 'dangling-via-dir'));
    symlinkSync('loop-b', join(root, 'loop-a'));
    symlinkSync('loop-a', join(root, 'loop-b'));
    symlinkSync('d/real', join(root, 'inner-file'));
    symlinkSync('d', join(root, 'inner-dir'));
    symlinkSync('d/later', join(root, 'dangling-in'));
    const fs = new DirectoryFiles(root);
    const before = outsideState();
    const escaping = ['/to-file', '/to-dir/secret', '/to-dir', '/relative-out/secret', '/dangling-out', '/dangling-via-dir', '/loop-a'];
    for (const p of escaping) {
      expect([p, outcome(() => fs.read(p))]).toEqual([p, 'EACCES']);
      expect([p, outcome(() => fs.write(p, bytes('pwned')))]).toEqual([p, 'EACCES']);
      expect([p, outcome(() => fs.writeAt(p, 0, bytes('pwned')))]).toEqual([p, 'EACCES']);
      expect([p, outcome(() => fs.exists(p))]).toEqual([p, 'EACCES']);
      expect([p, outcome(() => fs.remove(p))]).toEqual([p, 'EACCES']);
    }
    expect(outcome(() => fs.mkdirs('/to-dir/sub'))).toBe('EACCES');
    expect(outcome(() => fs.list('/to-dir'))).toBe('EACCES');
    expect(outsideState()).toBe(before);
    expect(existsSync(join(outside, 'not-yet'))).toBe(false);
    expect(existsSync(join(outside, 'made-through'))).toBe(false);
    // Inside the root: followed.
    expect(outcome(() => fs.read('/inner-file'))).toBe('inner');
    expect(outcome(() => fs.read('/inner-dir/real'))).toBe('inner');
    expect(fs.list('/inner-dir')).toEqual(['real']);
    fs.write('/dangling-in', bytes('created'));
    expect(readFileSync(join(root, 'd/later'), 'utf8')).toBe('created');
  });

  it('a root reached through a symbolic link works, and its links are judged by the real root', () => {
    mkdirSync(root);
    symlinkSync(root, join(base, 'alias'));
    const fs = new DirectoryFiles(join(base, 'alias'));
    fs.write('/f', bytes('x'));
    expect(readFileSync(join(root, 'f'), 'utf8')).toBe('x');
    symlinkSync(join(base, 'alias', 'f'), join(root, 'via-alias'));
    expect(outcome(() => fs.read('/via-alias'))).toBe('x');
  });

  it('a FIFO is refused at once, not read (EACCES)', () => {
    mkdirSync(root);
    execFileSync('mkfifo', [join(root, 'pipe')]);
    const fs = new DirectoryFiles(root);
    expect(outcome(() => fs.read('/pipe'))).toBe('EACCES');
    expect(outcome(() => fs.write('/pipe', bytes('x')))).toBe('EACCES');
    expect(outcome(() => fs.exists('/pipe'))).toBe('EACCES');
  });

  it('writeAt is pwrite: bytes replaced in place, the file grown with zeros past its end, nothing else touched', () => {
    const fs = new DirectoryFiles(root);
    fs.write('/f', bytes('hello'));
    fs.writeAt('/f', 1, bytes('EL'));
    expect(readFileSync(join(root, 'f'), 'utf8')).toBe('hELlo');
    fs.writeAt('/f', 8, bytes('!'));
    expect([...readFileSync(join(root, 'f'))]).toEqual([0x68, 0x45, 0x4c, 0x6c, 0x6f, 0, 0, 0, 0x21]);
    fs.writeAt('/f', 20, new Uint8Array(0));
    expect(readFileSync(join(root, 'f')).length).toBe(9);
    fs.writeAt('/f', 0, bytes('H'));
    expect([...fs.read('/f')!]).toEqual([0x48, 0x45, 0x4c, 0x6c, 0x6f, 0, 0, 0, 0x21]);
    expect(outcome(() => fs.writeAt('/g', 0, bytes('x')))).toBe('ENOENT');
    expect(existsSync(join(root, 'g'))).toBe(false);
  });

  it('writeAt on both trees matches a plain model of pwrite for arbitrary writes', () => {
    mkdirSync(root);
    const write = fc.record({ offset: fc.integer({ min: 0, max: 20000 }), data: fc.uint8Array({ maxLength: 3000 }) });
    let n = 0;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.array(write, { maxLength: 12 }), (initial, writes) => {
        const path = `/w${n++}`;
        const trees = [new MemoryFiles(), new DirectoryFiles(root)];
        let model = Uint8Array.from(initial);
        for (const t of trees) t.write(path, initial);
        for (const { offset, data } of writes) {
          for (const t of trees) t.writeAt(path, offset, data);
          if (data.length === 0) continue;
          const next = new Uint8Array(Math.max(model.length, offset + data.length));
          next.set(model);
          next.set(data, offset);
          model = next;
        }
        for (const t of trees) expect([...t.read(path)!]).toEqual([...model]);
      }),
      { numRuns: runs(0.3) },
    );
  });

  it('a link or FIFO swapped in after the checks: write and writeAt refuse it (EACCES) without blocking or following it', () => {
    mkdirSync(root);
    const fs = new DirectoryFiles(root);
    const before = outsideState();
    const toLink = (p: string) => {
      rmSync(p, { force: true });
      symlinkSync(join(outside, 'secret'), p);
    };
    const toFifo = (p: string) => {
      rmSync(p, { force: true });
      execFileSync('mkfifo', [p]);
    };
    const calls: [string, (p: string) => void][] = [
      ['write', (p) => fs.write(p, bytes('pwned'))],
      ['write exclusive', (p) => fs.write(p, bytes('pwned'), { exclusive: true })],
      ['writeAt', (p) => fs.writeAt(p, 0, bytes('pwned'))],
    ];
    for (const [swap, make] of [
      ['link', toLink],
      ['FIFO', toFifo],
    ] as const) {
      for (const [what, call] of calls) {
        // An existing file (a new one for the exclusive write) that becomes a link or a FIFO.
        const guest = `/${swap}-${what.replace(' ', '-')}`;
        const host = join(fs.root, guest.slice(1));
        if (what !== 'write exclusive') writeFileSync(host, 'inside');
        race.beforeOpen = (opened) => {
          expect(opened).toBe(host);
          make(host);
        };
        expect([swap, what, outcome(() => call(guest))]).toEqual([swap, what, what === 'write exclusive' ? 'EEXIST' : 'EACCES']);
        expect(race.beforeOpen).toBeUndefined();
        unlinkSync(host);
      }
    }
    // A new file whose name becomes a link: O_CREAT does not follow it either.
    race.beforeOpen = (opened) => symlinkSync(join(outside, 'new-outside'), opened);
    expect(outcome(() => fs.write('/fresh', bytes('pwned')))).toBe('EACCES');
    expect(existsSync(join(outside, 'new-outside'))).toBe(false);
    expect(outsideState()).toBe(before);
  });

  it('for arbitrary paths made of "..", ".", links and names: only GuestFileError, and nothing outside changes', () => {
    mkdirSync(join(root, 'a'), { recursive: true });
    symlinkSync(outside, join(root, 'out'));
    symlinkSync('..', join(root, 'a', 'up'));
    symlinkSync('../../outside', join(root, 'a', 'up2'));
    const before = outsideState();
    const segment = fc.constantFrom('..', '.', '', 'a', 'b', 'out', 'up', 'up2', 'secret', 'x\0', '...', 'vm', 'outside');
    const path = fc.tuple(fc.boolean(), fc.array(segment, { maxLength: 6 })).map(([abs, s]) => (abs ? '/' : '') + s.join('/'));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 7 }), path), { maxLength: 10 }), (ops) => {
        const fs = new DirectoryFiles(root);
        for (const [op, p] of ops) {
          try {
            if (op === 0) fs.read(p);
            else if (op === 1) fs.write(p, bytes('w'));
            else if (op === 2) fs.writeAt(p, 3, bytes('a'));
            else if (op === 3) fs.mkdirs(p);
            else if (op === 4) fs.remove(p);
            else if (op === 5) fs.list(p);
            else if (op === 6) fs.exists(p);
            else fs.isDirectory(p);
          } catch (e) {
            expect(e).toBeInstanceOf(GuestFileError);
          }
        }
        expect(outsideState()).toBe(before);
      }),
      { numRuns: runs(0.5) },
    );
  });
});

describe('a VM with a state directory', () => {
  it("the guest's files land in the folder, in-thread", () => {
    const root = mkdtempSync(join(tmpdir(), 'hvkit-state-'));
    const m = new Machine({ vps: 1, memory: 64 << 20, devices: [], files: new DirectoryFiles(root) });
    m.boot();
    m.kernel.services.files.mkdirs('/var/lib/hyperv');
    m.kernel.services.files.write('/var/lib/hyperv/x', new TextEncoder().encode('hi'));
    expect(readFileSync(join(root, 'var/lib/hyperv/x'), 'utf8')).toBe('hi');
  });
});
