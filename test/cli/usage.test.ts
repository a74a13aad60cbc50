// Bad usage of `hvkit run`: every input a new user may try gets one line, `hvkit run: …`, naming
// the option or the VM-file field and the limit, exit status 2, before anything boots.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const dir = mkdtempSync(join(tmpdir(), 'hvkit-usage-'));
const file = join(dir, 'a-file');
writeFileSync(file, 'not a directory');
const script = join(dir, 'steps.txt');
writeFileSync(script, 'heartbeat\n');
const vmFile = (name: string, json: unknown): string => {
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify(json));
  return p;
};

async function run(...args: string[]): Promise<{ code: number; out: string[]; err: string }> {
  const out: string[] = [];
  let err = '';
  const code = await main(['node', 'hvkit', ...args], { out: (l) => out.push(l), err: (t) => (err += t) });
  return { code, out, err };
}

const cases: [string, string[], string][] = [
  ['--memory 5G', ['--memory', '5G'], 'hvkit run: --memory: 5G is more than the 4G maximum (all of RAM is one SharedArrayBuffer, and Node 20 views at most 4 GiB of one)'],
  ['"memory": "8G" in a VM file', ['--config', vmFile('big.json', { memory: '8G' })], `hvkit run: ${join(dir, 'big.json')}: /memory: 8G is more than the 4G maximum (all of RAM is one SharedArrayBuffer, and Node 20 views at most 4 GiB of one)`],
  ['--memory 4K', ['--memory', '4K'], 'hvkit run: --memory: 4K is less than the 16M minimum'],
  ['--memory 1M', ['--memory', '1M'], 'hvkit run: --memory: 1M is less than the 16M minimum'],
  ['--arch arm64 --vps 321', ['--arch', 'arm64', '--vps', '321'], 'hvkit run: --vps: 321 exceeds the 320 virtual processors arm64 allows'],
  ['--vps 4 over a VM file with 2 APIC ids', ['--config', vmFile('apic.json', { cpus: 2, apicIds: [0, 2] }), '--vps', '4'], `hvkit run: ${join(dir, 'apic.json')}: /apicIds: must list one APIC id per CPU: 4, not 2`],
  ['--page-size 64k on x64', ['--page-size', '64k'], 'hvkit run: --page-size: 64k needs arch arm64'],
  ['a VM file with 2,048 devices', ['--config', vmFile('many.json', { devices: Array.from({ length: 2048 }, () => 'kvp') })], `hvkit run: ${join(dir, 'many.json')}: /devices: must have at most 2047 items`],
  ['--state naming a file', ['--state', file], `hvkit run: --state: ${file} is a file, not a directory`],
  ['--state in a missing directory', ['--state', join(dir, 'no/such/dir')], `hvkit run: --state: cannot write ${join(dir, 'no/such/dir')}: ${join(dir, 'no/such')} does not exist`],
  ['--state where nothing can be created', ['--state', '/proc/hvkit-state'], 'hvkit run: --state: cannot create /proc/hvkit-state: no such file or directory'],
  ['--trace in a missing directory', ['--trace', join(dir, 'nope/t.jsonl')], `hvkit run: --trace: cannot write ${join(dir, 'nope/t.jsonl')}: ${join(dir, 'nope')} does not exist`],
  ['--trace under a file', ['--trace', join(file, 't.jsonl')], `hvkit run: --trace: cannot write ${join(file, 't.jsonl')}: ${file} is not a directory`],
  ['--trace onto a directory', ['--trace', dir], `hvkit run: --trace: ${dir} is a directory, not a file`],
  ['--trace where nothing can be written', ['--trace', '/proc/hvkit.jsonl'], 'hvkit run: --trace: cannot write /proc/hvkit.jsonl: no such file or directory'],
  ['--sysfs naming a file', ['--sysfs', file], `hvkit run: --sysfs: ${file} is a file, not a directory`],
  ['--sysfs in a missing directory', ['--sysfs', join(dir, 'gone/sys')], `hvkit run: --sysfs: cannot write ${join(dir, 'gone/sys')}: ${join(dir, 'gone')} does not exist`],
  ['--no-vmbus --until shutdown', ['--no-vmbus', '--until', 'shutdown'], 'hvkit run: --until shutdown: the host asks through the shutdown IC, which needs VMBus; drop --no-vmbus'],
  ['--until beyond any sensible run', ['--until', '99999'], "hvkit run: option '--until <point>' argument '99999' is invalid. 99999 seconds is more than the 3600-second limit (as a script's wait)"],
  ['--page-size junk', ['--page-size', 'junk'], "hvkit run: option '--page-size <size>' argument 'junk' is invalid. expected 4k, 16k or 64k"],
  ['--threads with more VPs than the worker protocol carries', ['--threads', '--vps', '241'], 'hvkit run: --threads: at most 240 VPs with the guest in a worker, not 241'],
  ['--script naming a missing file', ['--script', join(dir, 'none.txt')], `hvkit run: --script: cannot read ${join(dir, 'none.txt')}: ENOENT`],
  ['--script with a line that is no step', ['--script', file], `hvkit run: ${file}:1: unknown step "not"; steps: wait, heartbeat, shutdown, kvp, copy-file, vss, timesync, hvsock, disk, net, memory, screenshot, key, mouse (hvkit help script)`],
  ['--script with --threads', ['--script', script, '--threads'], 'hvkit run: --script: script steps run with the guest in this thread; drop --threads'],
];

describe('hvkit run: bad usage is one line naming the option or field and its limit, exit 2, before boot', () => {
  it.each(cases)('%s', async (_, args, message) => {
    const r = await run('run', ...args);
    expect(r.err).toBe(`${message}\n`);
    expect(r.code).toBe(2);
    expect(r.out).toEqual([]); // refused before the boot log
  });

  it('--sysfs into a directory holding other files is refused; an earlier export is replaced, not mixed with', async () => {
    const foreign = join(dir, 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'notes.txt'), 'mine');
    const r = await run('run', '--no-vmbus', '--sysfs', foreign);
    expect(r.err).toBe(`hvkit run: --sysfs: ${foreign} holds files other than an earlier export's device folders; give an empty or new directory\n`);
    expect(r.code).toBe(2);
    expect(readdirSync(foreign)).toEqual(['notes.txt']);
    // An export of 11 devices, then one of 2: only the 2 remain.
    const sys = join(dir, 'sys');
    expect((await run('run', '--sysfs', sys)).code).toBe(0);
    expect(readdirSync(sys)).toHaveLength(11);
    expect((await run('run', '--sysfs', sys, '--config', vmFile('two.json', { devices: ['kvp', 'heartbeat'] }))).code).toBe(0);
    expect(readdirSync(sys)).toHaveLength(2);
  });

  it('every command says which it is: hvkit <command>: …', async () => {
    expect((await run('rnu')).err).toMatch(/^hvkit: unknown command 'rnu'\n/);
    expect((await run('decode', 'zz')).err).toBe("hvkit decode: cannot read 'zz': no such file, and it is not hex\n");
    expect((await run('trace', join(dir, 'missing.jsonl'))).err).toMatch(/^hvkit trace: cannot read '.*missing\.jsonl': ENOENT/);
    expect((await run('lsvmbus', '--vps', '0')).err).toBe("hvkit lsvmbus: option '--vps <n>' argument '0' is invalid. expected a positive integer\n");
    expect((await run('help', 'nope')).err).toMatch(/^hvkit help: no command or topic 'nope'/);
  });

  it('the built command prints no stack trace for any of them', () => {
    for (const args of [['--memory', '5G'], ['--trace', dir], ['--memory', '1M']]) {
      const r = spawnSync(process.execPath, [resolve(root, 'bin/hvkit.js'), 'run', ...args], { encoding: 'utf8' });
      expect(r.status).toBe(2);
      expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stdout).toBe('');
    }
  });
});
