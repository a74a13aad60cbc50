// Screenshots as files: `hvkit run --screenshot` and the script step `screenshot FILE`. The PNGs
// are read back with pngjs; their size is the guest's mode and their first text cell is the
// boot log's first character, '[' (font8x8: row 0 is 0x1e, pixels 1 to 4 lit).
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { parseScript } from '../../../src/vm/script.js';

async function run(...args: string[]): Promise<{ code: number; lines: string[]; err: string }> {
  const lines: string[] = [];
  let err = '';
  const code = await main(['node', 'hvkit', ...args], { out: (l) => lines.push(l), err: (t) => (err += t) });
  return { code, lines, err };
}

const pixel = (png: PNG, x: number, y: number): number[] => [...png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 4)];
const GREY = [0xaa, 0xaa, 0xaa, 255];
const BLACK = [0, 0, 0, 255];

describe('screenshots', () => {
  it('hvkit run --screenshot writes the booted screen as a PNG of the mode size', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hvkit-shot-'));
    const file = join(dir, 'boot.png');
    const r = await run('run', '--release', 'ws2012r2', '--screenshot', file);
    expect(r.code).toBe(0);
    const png = PNG.sync.read(readFileSync(file));
    expect([png.width, png.height]).toEqual([1152, 864]);
    expect(pixel(png, 0, 0)).toEqual(BLACK);
    for (const x of [1, 2, 3, 4]) expect(pixel(png, x, 0)).toEqual(GREY);
    expect(pixel(png, 5, 0)).toEqual(BLACK);
  });

  it('the script step writes one PNG per step', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hvkit-shot-'));
    const script = join(dir, 'steps');
    writeFileSync(script, `screenshot ${join(dir, 'a.png')}\nwait 1\nscreenshot "${join(dir, 'b.png')}"\n`);
    const r = await run('run', '--script', script, '--json');
    expect(r.code).toBe(0);
    const results = r.lines.map((l) => JSON.parse(l) as { script?: { step: string; status: string; values: { width: number } } }).filter((x) => x.script?.step === 'screenshot');
    expect(results.map((x) => [x.script!.status, x.script!.values.width])).toEqual([
      ['ok', 1024],
      ['ok', 1024],
    ]);
    for (const f of ['a.png', 'b.png']) expect([PNG.sync.read(readFileSync(join(dir, f))).width]).toEqual([1024]);
  });

  it('a screenshot path that cannot be written is a usage error before boot; so is a VM without video', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hvkit-shot-'));
    const r = await run('run', '--screenshot', join(dir, 'missing', 'x.png'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^hvkit run: --screenshot: cannot write .*x\.png: .*missing does not exist\n$/);
    expect(r.lines).toEqual([]);
    writeFileSync(join(dir, 'vm.json'), JSON.stringify({ devices: ['heartbeat'] }));
    const none = await run('run', '--config', join(dir, 'vm.json'), '--screenshot', join(dir, 'y.png'));
    expect(none.code).toBe(2);
    expect(none.err).toBe('hvkit run: --screenshot: the VM has no video device\n');
    expect(() => statSync(join(dir, 'y.png'))).toThrow();
    const novmbus = await run('run', '--no-vmbus', '--screenshot', join(dir, 'z.png'));
    expect([novmbus.code, novmbus.err]).toEqual([2, 'hvkit run: --screenshot: the video device needs VMBus; drop --no-vmbus\n']);
  });

  it('the step needs exactly one file', () => {
    expect(parseScript('screenshot a.png', 's')).toEqual([{ op: 'screenshot', line: 1, file: 'a.png' }]);
    expect(() => parseScript('screenshot', 's')).toThrow('s:1: screenshot: expected FILE (a PNG file to write)');
    expect(() => parseScript('screenshot a b', 's')).toThrow(/expected FILE/);
    expect(() => parseScript('screenshot a --x', 's')).toThrow('s:1: screenshot: unknown option --x');
  });
});
