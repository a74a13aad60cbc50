// Exit statuses a script can trust: a failed script step is 1 after every result is printed,
// Ctrl-C is 130 with the log printed and the trace file complete, in-thread and with the guest
// in a worker, whose log streams as it is printed.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { EXIT } from '../../src/cli/errors.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const dir = mkdtempSync(join(tmpdir(), 'hvkit-exit-'));

async function run(...args: string[]): Promise<{ code: number; out: string[]; err: string }> {
  const out: string[] = [];
  let err = '';
  const code = await main(['node', 'hvkit', ...args], { out: (l) => out.push(l), err: (t) => (err += t) });
  return { code, out, err };
}

function scriptFile(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/**
 * Runs the built command, sends SIGINT once a stdout line matches `ready`, and resolves with its
 * exit status and output. It waits on that line (an event), not on the clock.
 */
function interruptWhen(args: string[], ready: RegExp): Promise<{ status: number | null; lines: string[]; stderr: string; sawReady: boolean }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [resolve(root, 'bin/hvkit.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    let sawReady = false;
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString('utf8');
      if (!sawReady && out.split('\n').some((l) => ready.test(l))) {
        sawReady = true;
        child.kill('SIGINT');
      }
    });
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    child.on('error', fail);
    child.on('close', (status) => done({ status, lines: out.split('\n').filter(Boolean), stderr, sawReady }));
  });
}

describe('exit statuses', () => {
  it('a failed script step: exit 1 after every result; the steps after it are skipped, or run with --keep-going', async () => {
    const steps = scriptFile('fail.txt', 'kvp set 0 k v\nkvp delete 0 absent\nheartbeat\n');
    const r = await run('run', '--script', steps);
    expect(r.out.filter((l) => l.startsWith('hvkit script:'))).toEqual([
      'hvkit script: line 1: kvp set 0 "k": ok',
      'hvkit script: line 2: FAILED: kvp delete 0 "absent": no such key',
      'hvkit script: line 3: heartbeat: skipped after the failed step above (--keep-going runs it)',
    ]);
    expect(r.err).toBe('hvkit run: 1 of 3 script steps failed (line 2)\n');
    expect(r.code).toBe(EXIT.failure);
    const going = await run('run', '--script', steps, '--keep-going');
    expect(going.out.filter((l) => l.startsWith('hvkit script:'))[2]).toMatch(/^hvkit script: line 3: heartbeat: ok; /);
    expect(going.code).toBe(EXIT.failure);
  });

  it('a step the VM cannot do, a refusal, a guest that halted: each fails the run', async () => {
    const noDevice = await run('run', '--script', scriptFile('nodev.txt', 'copy-file /etc/hostname /tmp/\n'));
    expect(noDevice.out.at(-1)).toBe('hvkit script: line 1: FAILED: copy-file: the VM has no file copy device (add "fcopy" to its devices)');
    expect(noDevice.code).toBe(EXIT.failure);
    const refused = await run('run', '--script', scriptFile('long.txt', `kvp set 0 k ${'x'.repeat(1500)}\n`));
    expect(refused.out.at(-1)).toBe('hvkit script: line 1: FAILED: kvp set 0 "k": refused: the value is 3002 bytes in UTF-16 with its terminator; Linux\'s limit is 2048');
    expect(refused.code).toBe(EXIT.failure);
    const halted = await run('run', '--script', scriptFile('halted.txt', 'shutdown\nheartbeat\n'));
    expect(halted.out.slice(-2)).toEqual(['hvkit script: line 1: shutdown: accepted, the guest powered off', 'hvkit script: line 2: FAILED: heartbeat: not run, the guest is halted']);
    expect(halted.code).toBe(EXIT.failure);
    // A script that ends by shutting the guest down has done what it was asked.
    expect((await run('run', '--script', scriptFile('ends.txt', 'heartbeat\nshutdown\n'))).code).toBe(EXIT.ok);
  });

  it('--json: each script result is data (step, status, values)', async () => {
    const r = await run('run', '--json', '--script', scriptFile('json.txt', 'kvp set 0 Greeting hi\nkvp enumerate 0\n'));
    const results = r.out.map((l) => JSON.parse(l) as { script?: unknown }).filter((x) => x.script).map((x) => x.script);
    expect(results).toEqual([
      { line: 1, step: 'kvp', status: 'ok', values: { outcome: 'ok' }, text: 'kvp set 0 "Greeting": ok' },
      { line: 2, step: 'kvp', status: 'ok', values: { outcome: 'ok', entries: [{ key: 'Greeting', value: 'hi' }] }, text: 'kvp enumerate 0: 1 entry\n  "Greeting" = "hi"' },
    ]);
  });

  it('Ctrl-C in-thread: exit 130, the log printed, the trace file whole', async () => {
    const trace = join(dir, 'interrupted.jsonl');
    const r = await interruptWhen(['run', '--until', '3600', '--trace', trace], /registering driver hv_sock/);
    expect(r.sawReady).toBe(true);
    expect(r.status).toBe(EXIT.interrupted);
    expect(r.lines[0]).toBe('[    0.000000] Linux version 6.1.192 (hvkit guest model) #1 SMP');
    expect(r.stderr).toBe('');
    const text = readFileSync(trace, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    const events = text.trimEnd().split('\n').map((l) => JSON.parse(l) as { ns: number });
    expect(events.length).toBeGreaterThan(1000);
  }, 60_000);

  it('--threads streams the guest log as it is printed; Ctrl-C ends it with 130', async () => {
    // The run would last 3600 s; the boot lines arrive long before, or the signal is never sent.
    const r = await interruptWhen(['run', '--threads', '--until', '3600'], /hv_vmbus: Vmbus version:5\.3/);
    expect(r.sawReady).toBe(true);
    expect(r.status).toBe(EXIT.interrupted);
    expect(r.lines[0]).toBe('[    0.000000] Linux version 6.1.192 (hvkit guest model) #1 SMP');
    expect(r.stderr).toBe('');
  }, 60_000);
});
