// `hvkit run`: the command line, its output formats, its errors, and the built command itself.
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

async function run(...args: string[]): Promise<{ code: number; lines: string[]; err: string }> {
  const lines: string[] = [];
  let err = '';
  const code = await main(['node', 'hvkit', ...args], { out: (l) => lines.push(l), err: (t) => (err += t) });
  return { code, lines, err };
}

describe('hvkit run', () => {
  it('boots WS2022 x64 with 2 VPs and prints the boot, exit 0', async () => {
    const { code, lines } = await run('run', '--release', 'ws2022', '--arch', 'x64', '--vps', '2', '--no-vmbus');
    expect(code).toBe(0);
    expect(lines).toContain('[    0.000000] Hypervisor detected: Microsoft Hyper-V');
    expect(lines.some((l) => l.endsWith('smp: Brought up 1 node, 2 CPUs'))).toBe(true);
    expect(lines.every((l) => /^\[ {0,4}\d+\.\d{6}\] \S/.test(l))).toBe(true);
    expect(lines.some((l) => l.includes('hvkit:'))).toBe(false); // step notes only with --verbose
  });

  it('--verbose adds pr_debug lines and hvkit step notes; --json prints JSON lines', async () => {
    const verbose = await run('run', '--no-vmbus', '--verbose', '--vps', '1');
    expect(verbose.lines).toContainEqual(expect.stringContaining('Hyper-V: max 1024 virtual processors, 1024 logical processors'));
    expect(verbose.lines).toContainEqual(expect.stringContaining('hvkit: hypercall page at 0x'));
    const json = await run('run', '--no-vmbus', '--json', '--release', 'ws2012', '--arch', 'x86');
    const records = json.lines.map((l) => JSON.parse(l) as { time: number; level: string; text: string });
    expect(records[0]).toEqual({ time: 0, level: 'info', text: 'Linux version 6.1.192 (hvkit guest model) #1 SMP' });
    expect(records.map((r) => r.text)).toContain('Hyper-V: Using enlightened APIC (xapic mode)');
  });

  it('--arch arm64 --page-size 64k, and --until SECONDS runs on after boot', async () => {
    const { code, lines } = await run('run', '--no-vmbus', '--arch', 'arm64', '--page-size', '64k', '--until', '0.5');
    expect(code).toBe(0);
    expect(lines).toContainEqual(expect.stringContaining('Hyper-V: privilege flags low 0xae7f'));
  });

  it('a bad option is an error naming it, exit 2', async () => {
    const bad = await run('run', '--no-vmbus', '--release', 'ws2030');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("option '--release <release>' argument 'ws2030' is invalid. expected one of ws2012");
    expect((await run('run', '--no-vmbus', '--vps', '0')).code).toBe(2);
    expect((await run('run', '--no-vmbus', '--page-size', '64k')).code).toBe(2); // x64 has 4 KiB pages only
    expect((await run('run', '--no-vmbus', '--release', 'ws2012', '--vps', '65')).code).toBe(2); // WS2012 allows 64
  });

  it('VMBus connects at the release\'s version unless --no-vmbus', async () => {
    const ws2012 = await run('run', '--release', 'ws2012', '--arch', 'x86');
    expect(ws2012.code).toBe(0);
    expect(ws2012.lines.filter((l) => l.includes('hv_vmbus: Vmbus')).map((l) => l.slice(15))).toEqual(['hv_vmbus: Vmbus version:2.4']);
    const off = await run('run', '--no-vmbus');
    expect(off.lines.some((l) => l.includes('hv_vmbus'))).toBe(false);
  });

  it('the built command runs as the README says (node bin/hvkit.js)', () => {
    const out = execFileSync(process.execPath, [resolve(root, 'bin/hvkit.js'), 'run', '--release', 'ws2022', '--arch', 'x64', '--vps', '2'], { encoding: 'utf8' });
    expect(out.split('\n')[1]).toBe('[    0.000000] Hypervisor detected: Microsoft Hyper-V');
    expect(out).toMatch(/\] hv_vmbus: Vmbus version:5\.3\n/);
    const bad = spawnSync(process.execPath, [resolve(root, 'bin/hvkit.js'), 'run', '--vps', 'many'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
  });
});
