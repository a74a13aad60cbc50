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

  it('--json: the lines as JSON, then the state', async () => {
    const { code, lines } = await run('run', '--guest', 'linux', '--json');
    expect(code).toBe(0);
    const records = lines.map((l) => JSON.parse(l) as { text?: string; state?: { vm: { guest: string }; vmbus: { connection: { version: string } } } });
    expect(records.some((r) => r.text === 'hv_vmbus: Vmbus version:5.3')).toBe(true);
    const state = records.at(-1)!.state!;
    expect(state.vm.guest).toBe('linux');
    expect(state.vmbus.connection.version).toBe('5.3');
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
