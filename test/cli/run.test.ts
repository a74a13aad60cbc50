// `hvkit run`: the command line, its output formats, its errors, and the built command itself.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { SCRIPT_STEPS } from '../../src/vm/script.js';

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
    expect(bad.err).toBe("hvkit run: option '--release <release>' argument 'ws2030' is invalid. Allowed choices are ws2012, ws2012r2, ws2016, ws2019, ws2022, ws2025.\n");
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

  it('with no options: WS2022 x64, 2 VPs, the default devices bound and the ICs negotiated', async () => {
    const { code, lines } = await run('run');
    expect(code).toBe(0);
    const text = lines.map((l) => l.slice(15));
    expect(text).toContain('smp: Brought up 1 node, 2 CPUs');
    expect(text).toContain('hv_vmbus: Vmbus version:5.3');
    for (const d of ['hv_storvsc', 'hv_netvsc', 'hyperv_keyboard', 'hid_hyperv', 'hyperv_fb', 'hv_balloon', 'hv_utils']) expect(text).toContain(`hv_vmbus: registering driver ${d}`);
    expect(text).toContain('hv_utils: Heartbeat IC version 3.0');
    expect(text).toContain('hv_utils: Shutdown IC version 3.2');
  });

  it('--until shutdown: the host asks through the shutdown IC, the guest powers off, exit 0', async () => {
    const r = await run('run', '--until', 'shutdown', '--release', 'ws2016');
    expect(r.code).toBe(0);
    const text = r.lines.map((l) => l.slice(15));
    expect(text).toContain('hv_utils: Shutdown request received - graceful shutdown initiated');
    expect(text.at(-1)).toBe('reboot: Power down');
    // Without a shutdown device there is nobody to ask.
    const dir = mkdtempSync(join(tmpdir(), 'hvkit-'));
    writeFileSync(join(dir, 'vm.json'), JSON.stringify({ devices: ['heartbeat'] }));
    const none = await run('run', '--until', 'shutdown', '--config', join(dir, 'vm.json'));
    expect(none.code).toBe(2);
    expect(none.err).toBe('hvkit run: --until shutdown: the VM has no shutdown device\n');
  });

  it('--json prints the log as JSON lines, then the state: CPUs, channels with target CPU and rings', async () => {
    const r = await run('run', '--json', '--vps', '2');
    const last = JSON.parse(r.lines.at(-1)!) as { state: { stage: string; cpus: { cpu: number }[]; vmbus: { version: string; devices: { classId: string; channels: { targetCpu: number; inbound?: { dataSize: number } }[] }[] } } };
    expect(last.state.stage).toBe('booted');
    expect(last.state.cpus).toHaveLength(2);
    expect(last.state.vmbus.version).toBe('5.3');
    const nic = last.state.vmbus.devices.find((d) => d.classId === 'f8615163-df3e-46c5-913f-f2d2f965ed0e')!;
    expect(nic.channels[0]!.targetCpu).toBe(1);
    expect(nic.channels[0]!.inbound!.dataSize).toBe(512 * 1024);
  });

  it('--config: a VM file sets release, CPUs and devices; flags given explicitly override it; a bad file names the field, exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hvkit-'));
    const file = join(dir, 'vm.json');
    writeFileSync(file, JSON.stringify({ release: 'ws2019', cpus: 3, devices: ['scsi', { type: 'network', instance: '00000000-0000-4000-8000-0000000000aa' }] }));
    const r = await run('run', '--config', file, '--json');
    const state = (JSON.parse(r.lines.at(-1)!) as { state: { cpus: unknown[]; vmbus: { version: string; devices: { instanceId: string }[] } } }).state;
    expect([state.cpus.length, state.vmbus.version, state.vmbus.devices.length]).toEqual([3, '5.2', 2]);
    expect(state.vmbus.devices[1]!.instanceId).toBe('00000000-0000-4000-8000-0000000000aa');
    const over = await run('run', '--config', file, '--release', 'ws2022', '--json');
    expect((JSON.parse(over.lines.at(-1)!) as { state: { vmbus: { version: string } } }).state.vmbus.version).toBe('5.3');
    writeFileSync(file, JSON.stringify({ cpus: 0 }));
    const bad = await run('run', '--config', file);
    expect(bad.code).toBe(2);
    expect(bad.err).toBe(`hvkit run: ${file}: /cpus: must be an integer >= 1\n`);
  });

  it('--sysfs DIR writes one folder per device with Linux attribute files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hvkit-sysfs-'));
    const r = await run('run', '--sysfs', dir);
    expect(r.code).toBe(0);
    const devices = readdirSync(dir);
    expect(devices).toHaveLength(11);
    const nic = devices.find((d) => readFileSync(join(dir, d, 'class_id'), 'utf8') === '{f8615163-df3e-46c5-913f-f2d2f965ed0e}\n')!;
    expect(readFileSync(join(dir, nic, 'channel_vp_mapping'), 'utf8')).toMatch(/^\d+:1\n$/);
    expect(readFileSync(join(dir, nic, 'vendor'), 'utf8')).toBe('0x1414\n');
    expect(readFileSync(join(dir, nic, 'device'), 'utf8')).toBe('0x3\n');
  });

  it('--threads boots the guest in a worker with the same devices', async () => {
    const r = await run('run', '--threads', '--release', 'ws2019');
    expect(r.code).toBe(0);
    const text = r.lines.map((l) => l.slice(15));
    expect(text).toContain('hv_vmbus: Vmbus version:5.2');
    expect(text).toContain('hv_vmbus: registering driver hv_utils');
  }, 60_000);

  it('--threads reports the NIC in --json and --sysfs as the in-thread run does', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'hvkit-sysfs-')), 'sys');
    const r = await run('run', '--threads', '--json', '--sysfs', dir);
    expect(r.code).toBe(0);
    const state = JSON.parse(r.lines.at(-1)!).state;
    expect(state.network).toHaveLength(1);
    expect(state.network[0].guest.name).toBe('eth0');
    expect(state.network[0].host.mac).toBe(state.network[0].guest.mac);
    const nic = readdirSync(dir).find((d) => readFileSync(join(dir, d, 'class_id'), 'utf8') === '{f8615163-df3e-46c5-913f-f2d2f965ed0e}\n')!;
    expect(readFileSync(join(dir, nic, 'net', 'eth0', 'address'), 'utf8')).toBe(`${state.network[0].guest.mac}\n`);
  }, 60_000);
});

describe('hvkit run --script and --state', () => {
  it("a script's KVP set lands in the guest daemon's pool file inside the state directory", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hvkit-state-'));
    const script = join(dir, 'steps.txt');
    writeFileSync(script, 'kvp set 0 Owner "hvkit test"\nshutdown\n');
    const r = await run('run', '--state', join(dir, 'vm'), '--script', script);
    expect(r.code).toBe(0);
    expect(r.lines).toContain('hvkit script: line 1: kvp set 0 "Owner": ok');
    expect(r.lines).toContain('hvkit script: line 2: shutdown: accepted, the guest powered off');
    // hv_kvp_daemon's record: a 512-byte key then a 2048-byte value, NUL-padded UTF-8.
    const pool = readFileSync(join(dir, 'vm/var/lib/hyperv/.kvp_pool_0'));
    expect(pool.length).toBe(2560);
    expect(pool.subarray(0, 6).toString('utf8')).toBe('Owner\0');
    expect(pool.subarray(512, 523).toString('utf8')).toBe('hvkit test\0');
    const bad = await run('run', '--script', join(dir, 'missing.txt'));
    expect(bad.code).toBe(2);
  });
});

describe('hvkit run: why a guest daemon failed, without --verbose', () => {
  it('the journal\'s warnings and errors are shown; the step that needed the daemon says where to look', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hvkit-state-'));
    // hv_kvp_daemon keeps its pools in /var/lib/hyperv; a file there stops it at start.
    mkdirSync(join(dir, 'vm/var/lib'), { recursive: true });
    writeFileSync(join(dir, 'vm/var/lib/hyperv'), '');
    const script = join(dir, 'steps.txt');
    writeFileSync(script, 'kvp set 0 a b\nkvp enumerate 0\n');
    const r = await run('run', '--state', join(dir, 'vm'), '--script', script);
    expect(r.lines.some((l) => l.endsWith('journal: KVP: Failed to initialize the pools'))).toBe(true);
    expect(r.lines.filter((l) => l.startsWith('hvkit script:'))).toEqual([
      'hvkit script: line 1: FAILED: kvp set 0 "a": not sent: the KVP channel is not open and negotiated (a guest daemon that failed to start says why in the journal)',
      'hvkit script: line 2: kvp enumerate 0: skipped after the failed step above (--keep-going runs it)',
    ]);
    expect(r.code).toBe(1);
    // The journal's informational lines stay behind --verbose.
    expect(r.lines.some((l) => l.includes('journal: KVP: KVP starting'))).toBe(false);
  });
});

describe('hvkit run --trace, read back with hvkit trace', () => {
  it('records the boot from the first CPUID; trace FILE decodes it, filtered by kind and channel', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hvkit-trace-'));
    const file = join(dir, 'boot.jsonl');
    expect((await run('run', '--trace', file)).code).toBe(0);
    // Linux looks at CPUID 1's hypervisor bit first, then at the hypervisor leaves.
    const [first, second] = readFileSync(file, 'utf8').split('\n').slice(0, 2).map((l) => JSON.parse(l) as { kind: string; what: string; leaf: number });
    expect([first!.kind, first!.what, first!.leaf, second!.leaf]).toEqual(['trap', 'cpuid', 1, 0x40000000]);
    const messages = await run('trace', file, '--kind', 'message');
    expect(messages.code).toBe(0);
    expect(messages.lines.find((l) => l.includes('INITIATE_CONTACT'))).toContain('to-host');
    expect(messages.lines.some((l) => l.includes('VERSION_RESPONSE'))).toBe(true);
    expect(messages.lines.every((l) => !l.includes('cpuid'))).toBe(true);
    // The NIC is relid 11 in the default set: its offer, open and GPADL, and nothing of relid 10.
    const nic = await run('trace', file, '--channel', '11', '--kind', 'message');
    expect(nic.lines.some((l) => l.includes('OPENCHANNEL '))).toBe(true);
    expect(nic.lines.some((l) => /child_relid=10\b/.test(l))).toBe(false);
  });
});

describe('hvkit lsvmbus', () => {
  it("lists the default devices as Linux's lsvmbus does, -v and -vv adding detail", async () => {
    const plain = await run('lsvmbus');
    expect(plain.code).toBe(0);
    // tools/hv/lsvmbus: "VMBUS ID %2s: <description>", sorted by relid.
    expect(plain.lines[0]).toBe('VMBUS ID  1: [Dynamic Memory]');
    expect(plain.lines).toHaveLength(11);
    expect(plain.lines).toContain('VMBUS ID 11: Synthetic network adapter');
    const v = await run('lsvmbus', '-v');
    expect(v.lines).toContain('VMBUS ID 11: Class_ID = {f8615163-df3e-46c5-913f-f2d2f965ed0e} - Synthetic network adapter');
    expect(v.lines).toContain('\tRel_ID=11, target_cpu=1');
    const vv = await run('lsvmbus', '-vv', '--vps', '4');
    expect(vv.lines.filter((l) => l.startsWith('\tSysfs path: /sys/bus/vmbus/devices/'))).toHaveLength(11);
    expect(vv.lines.filter((l) => l.startsWith('\tDevice_ID = {'))).toHaveLength(11);
  });
});

describe('--json carries data, and --help says what there is', () => {
  it('the final state names the VM (release, arch, VPs, memory, page size) and each channel state', async () => {
    const r = await run('run', '--json', '--release', 'ws2019', '--vps', '3', '--memory', '128M');
    const { state } = JSON.parse(r.lines.at(-1)!) as { state: { vm: unknown; vmbus: { devices: { channels: { state: string }[] }[] } } };
    expect(state.vm).toEqual({ release: 'ws2019', arch: 'x64', vps: 3, memory: 128 << 20, pageSize: 4096, devices: ['balloon', 'keyboard', 'video', 'mouse', 'shutdown', 'timesync', 'heartbeat', 'kvp', 'vss', 'scsi', 'network'] });
    expect(new Set(state.vmbus.devices.flatMap((d) => d.channels.map((c) => c.state)))).toEqual(new Set(['opened']));
  });

  it('lsvmbus --json: the devices and their channels', async () => {
    const r = await run('lsvmbus', '--json');
    expect(r.code).toBe(0);
    const snapshot = JSON.parse(r.lines.join('\n')) as { version: string; devices: { id: number; classId: string; channels: { relid: number; state: string }[] }[] };
    expect(snapshot.version).toBe('5.3');
    expect(snapshot.devices.map((d) => d.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(snapshot.devices[10]!.channels[0]).toMatchObject({ relid: 11, state: 'opened' });
  });

  it('--help lists the releases, the defaults as 256M and 4k, and the exit codes; help script has every step', async () => {
    const help = (await run('run', '--help')).lines.join('\n').replace(/\s+/g, ' ');
    expect(help).toContain('choices: "ws2012", "ws2012r2", "ws2016", "ws2019", "ws2022", "ws2025", default: "ws2022"');
    expect(help).toContain('(default: 256M)');
    expect(help).toContain('(default: 4k)');
    expect(help).toContain('130 interrupted (Ctrl-C)');
    expect(help).not.toMatch(/src\/vm\/script\.ts/); // no pointer into sources the package does not ship
    const grammar = (await run('help', 'script')).lines.join('\n');
    for (const step of SCRIPT_STEPS) expect(grammar).toMatch(new RegExp(`^  ${step}\\b`, 'm'));
    expect(grammar).toContain('--keep-going');
  });
});
