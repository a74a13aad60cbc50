// `hvkit run --guest linux`: the real Linux VMBus code boots in place of the model and its own
// printk lines are the log.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { BUILD_TIMEOUT_MS, linuxMissing, linuxModule, linuxSuite } from './linux-module.js';

async function run(...args: string[]): Promise<{ code: number; lines: string[]; err: string }> {
  const lines: string[] = [];
  let err = '';
  const code = await main(['node', 'hvkit', ...args], { out: (l) => lines.push(l), err: (t) => (err += t) });
  return { code, lines, err };
}

describe.skipIf(linuxMissing !== undefined)(linuxSuite('hvkit run --guest linux'), () => {
  beforeAll(async () => {
    await linuxModule();
  }, BUILD_TIMEOUT_MS);

  it('boots, prints Linux’s own lines, and powers off when the host asks', async () => {
    const { code, lines, err } = await run('run', '--guest', 'linux', '--release', 'ws2019', '--until', 'shutdown');
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(lines.some((l) => l.endsWith('] hv_vmbus: Vmbus version:5.2'))).toBe(true);
    expect(lines.some((l) => l.endsWith('] hv_utils: Heartbeat IC version 3.0'))).toBe(true);
    expect(lines.some((l) => l.endsWith('] hv_utils: Shutdown request received - graceful shutdown initiated'))).toBe(true);
  });

  it('--json: the lines as JSON, then the state, whose vmbus is Linux’s own channel list (the host’s view beside it)', async () => {
    const { code, lines } = await run('run', '--guest', 'linux', '--json');
    expect(code).toBe(0);
    type Snap = { state: string; version: string; devices: { id: number; classId: string; instanceId: string; driver?: string; channels: { relid: number; state: string }[] }[] };
    const records = lines.map((l) => JSON.parse(l) as { text?: string; state?: { vm: { guest: string }; vmbus: Snap; host: { vmbus: { connection: { version: string }; channels: { relid: number; class: string; state: string }[] } } } });
    expect(records.some((r) => r.text === 'hv_vmbus: Vmbus version:5.3')).toBe(true);
    const state = records.at(-1)!.state!;
    expect(state.vm.guest).toBe('linux');
    expect(state.vmbus.state).toBe('connected');
    expect(state.vmbus.version).toBe('5.3');
    expect(state.host.vmbus.connection.version).toBe('5.3');
    // Linux's list has every channel the host offered, under the same relid and class;
    // the ones hv_utils opened are opened in Linux's own state, with hv_utils as their driver.
    const linux = state.vmbus.devices.map((d) => `${d.id} ${d.classId}`).sort();
    const host = state.host.vmbus.channels.map((c) => `${c.relid} ${c.class}`).sort();
    expect(linux).toEqual(host);
    const open = new Set(state.host.vmbus.channels.filter((c) => c.state === 'open').map((c) => c.relid));
    expect(open.size).toBeGreaterThan(3);
    for (const d of state.vmbus.devices) {
      // vmbus_add_channel_work leaves a registered channel in CHANNEL_OPEN_STATE; vmbus_open makes it OPENED.
      expect(d.channels[0]!.state).toBe(open.has(d.id) ? 'opened' : 'open');
      expect(d.driver).toBe(open.has(d.id) ? 'hv_utils' : undefined);
    }
  });

  it('lsvmbus --guest linux -vv: Linux’s own channel list in lsvmbus’s lines, the same as the model’s for the same one-VP x86 VM', async () => {
    const linux = await run('lsvmbus', '--guest', 'linux', '-vv');
    const model = await run('lsvmbus', '--arch', 'x86', '--vps', '1', '-vv');
    expect(linux.code).toBe(0);
    expect(linux.lines.length).toBeGreaterThan(20);
    expect(linux.lines).toEqual(model.lines);
  });

  const script = (text: string): string => {
    const f = join(mkdtempSync(join(tmpdir(), 'hvkit-linux-script-')), 'steps.txt');
    writeFileSync(f, text);
    return f;
  };

  it('--script: heartbeat, KVP through Linux’s hv_kvp and the daemon, time sync, then a shutdown that powers Linux off', async () => {
    const f = script(['wait 1', 'heartbeat', 'kvp set 0 greeting hello', 'kvp enumerate 0', 'kvp get 0 greeting', 'kvp delete 0 greeting', 'timesync sync', 'shutdown'].join('\n'));
    const { code, lines, err } = await run('run', '--guest', 'linux', '--release', 'ws2022', '--script', f);
    expect(err).toBe('');
    expect(code).toBe(0);
    const results = lines.filter((l) => l.startsWith('hvkit script: '));
    expect(results.map((l) => l.replace(/^hvkit script: line \d+: /, '').split('\n')[0])).toEqual([
      'waited 1 s',
      expect.stringMatching(/^heartbeat: ok; \d+ heartbeats? sent, the last answered with sequence number \d+$/),
      'kvp set 0 "greeting": ok',
      'kvp enumerate 0: 1 entry',
      'kvp get 0 "greeting": "" (Linux 6.1 answers a get with an empty value; "kvp enumerate 0" reads it)',
      'kvp delete 0 "greeting": ok',
      expect.stringMatching(/^timesync sync: sent \S+; the guest's clock is -?\d+ ns off the host's$/),
      'shutdown: accepted, the guest powered off',
    ]);
    expect(results[3]).toContain('"greeting" = "hello"');
    // hv_kvp_daemon's syslog lines are info: only --verbose shows them, as with the model.
    expect(lines.some((l) => l.includes('journal: KVP:'))).toBe(false);
    const verbose = await run('run', '--guest', 'linux', '--release', 'ws2022', '--verbose', '--until', '1');
    expect(verbose.lines.filter((l) => l.includes('journal: ')).map((l) => l.replace(/^\[[ .\d]+\] /, ''))).toEqual(['journal: KVP: KVP starting; pid is:1234', 'journal: KVP: KVP LIC Version: 3.1']);
  });

  it('--script refuses a step the Linux guest does not run, naming it, exit 2', async () => {
    const f = script('heartbeat\ndisk read 0 0 1\n');
    const { code, err } = await run('run', '--guest', 'linux', '--script', f);
    expect(code).toBe(2);
    expect(err.trim()).toBe('hvkit run: --script: line 2: step "disk" is not supported with the real Linux guest (it runs wait, heartbeat, shutdown, kvp, timesync)');
  });

  it('refuses what the Linux guest cannot do yet, in one line, exit 2', async () => {
    const { code, err } = await run('run', '--guest', 'linux', '--threads');
    expect(code).toBe(2);
    expect(err.trim()).toBe('hvkit run: --guest linux: --threads is not supported with the real Linux guest yet');
  });
});
