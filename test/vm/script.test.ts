// `--script`: the parser (every bad line a ScriptError naming file and line, never anything else)
// and steps run against a VM.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/vm/machine.js';
import { parseScript, runScript, ScriptError, type StepResult } from '../../src/vm/script.js';

/** Collects results as `line N: text`, the statuses apart. */
function collect(): { lines: string[]; statuses: string[]; results: StepResult[]; report: (r: StepResult) => void } {
  const c = { lines: [] as string[], statuses: [] as string[], results: [] as StepResult[], report: (r: StepResult) => {
    c.lines.push(`line ${r.line}: ${r.text}`);
    c.statuses.push(r.status);
    c.results.push(r);
  } };
  return c;
}

describe('script parser', () => {
  it('reads steps, quotes and comments', () => {
    expect(parseScript('# boot then stop\nwait 1.5\n\n  heartbeat   # how is it\nshutdown restart --force\n')).toEqual([
      { op: 'wait', line: 2, seconds: 1.5 },
      { op: 'heartbeat', line: 4 },
      { op: 'shutdown', line: 5, kind: 'restart', force: true },
    ]);
  });

  it.each([
    ['fly away', 'vm.txt:1: unknown step "fly"'],
    ['wait', 'vm.txt:1: wait: expected one number of seconds up to 3600'],
    ['wait -1', 'vm.txt:1: wait: expected one number of seconds up to 3600'],
    ['\nshutdown sideways', 'vm.txt:2: shutdown: expected [restart|hibernate] [--force]'],
    ['shutdown --now', 'vm.txt:1: shutdown: unknown option --now'],
    ['heartbeat "oops', 'vm.txt:1: unterminated " quote'],
  ])('%j is refused: %s', (text, message) => {
    expect(() => parseScript(text, 'vm.txt')).toThrow(ScriptError);
    expect(() => parseScript(text, 'vm.txt')).toThrow(message);
  });

  it('any text: steps or a ScriptError, nothing else', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => {
        try {
          parseScript(text);
        } catch (e) {
          expect(e).toBeInstanceOf(ScriptError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('script steps against a VM', () => {
  it('heartbeat shows the host side; shutdown powers the guest off; a step after that fails', async () => {
    const m = new Machine({ release: 'ws2022', vps: 2, memory: 64 << 20 });
    m.boot();
    const c = collect();
    await runScript(m, parseScript('wait 5\nheartbeat\nshutdown\nheartbeat'), c.report);
    expect(c.lines[0]).toBe('line 1: waited 5 s');
    // A heartbeat every 2 s since the IC came up: 3 sent in 5 s, each answered with seq + 1.
    expect(c.lines[1]).toMatch(/^line 2: heartbeat: ok; 3 heartbeats sent, the last answered with sequence number \d+$/);
    expect(c.results[1]!.values).toEqual({ state: 'ok', sent: 3, lastAnswer: expect.any(Number) });
    expect(c.lines[2]).toBe('line 3: shutdown: accepted, the guest powered off');
    expect(c.lines[3]).toBe('line 4: heartbeat: not run, the guest is halted');
    expect(c.statuses).toEqual(['ok', 'ok', 'ok', 'failed']);
    expect(m.exit?.kind).toBe('poweroff');
  });

  it('restart: the guest restarts; a VM without the device says so', async () => {
    const m = new Machine({ release: 'ws2016', vps: 1, memory: 64 << 20 });
    m.boot();
    const c = collect();
    await runScript(m, parseScript('shutdown restart --force'), c.report);
    expect(c.lines).toEqual(['line 1: shutdown restart --force: accepted, the guest restarted']);
    expect(c.results[0]!.values).toEqual({ kind: 'restart', force: true, outcome: 'accepted', guest: 'restarted' });
    expect(m.exit?.kind).toBe('reboot');
    const bare = new Machine({ vps: 1, memory: 64 << 20, devices: [] });
    bare.boot();
    const stopped = collect();
    await runScript(bare, parseScript('shutdown\nheartbeat'), stopped.report);
    expect(stopped.lines).toEqual(['line 1: shutdown: the VM has no shutdown device', 'line 2: heartbeat: skipped after the failed step above (--keep-going runs it)']);
    expect(stopped.statuses).toEqual(['failed', 'skipped']);
    const going = collect();
    await runScript(bare, parseScript('shutdown\nheartbeat'), going.report, { keepGoing: true });
    expect(going.lines).toEqual(['line 1: shutdown: the VM has no shutdown device', 'line 2: heartbeat: the VM has no heartbeat device']);
    expect(going.statuses).toEqual(['failed', 'failed']);
  });
});

describe('script steps for every integration service and hv_sock', () => {
  it('kvp set, get, enumerate and delete in the external pool; the guest daemon keeps them in its pool file', async () => {
    const m = new Machine({ release: 'ws2022', vps: 2, memory: 64 << 20 });
    m.boot();
    const c = collect();
    await runScript(m, parseScript('kvp set 0 Greeting "hello world"\nkvp get 0 Greeting\nkvp enumerate 0\nkvp delete 0 Greeting\nkvp enumerate 0'), c.report);
    expect(c.lines[0]).toBe('line 1: kvp set 0 "Greeting": ok');
    // Linux 6.1 answers a GET of an existing key with an empty value (the kernel passes value_size 0 to the daemon).
    expect(c.lines[1]).toBe('line 2: kvp get 0 "Greeting": "" (Linux 6.1 answers a get with an empty value; "kvp enumerate 0" reads it)');
    expect(c.lines[2]).toBe('line 3: kvp enumerate 0: 1 entry\n  "Greeting" = "hello world"');
    expect(c.results[2]!.values).toEqual({ outcome: 'ok', entries: [{ key: 'Greeting', value: 'hello world' }] });
    expect(c.lines[3]).toBe('line 4: kvp delete 0 "Greeting": ok');
    expect(c.lines[4]).toBe('line 5: kvp enumerate 0: 0 entries');
    expect(c.statuses).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(m.kernel.services.files.exists('/var/lib/hyperv/.kvp_pool_0')).toBe(true);
  });

  it('copy-file copies a host file into the guest tree (fcopy must be in the device set)', async () => {
    const m = new Machine({ release: 'ws2022', vps: 2, memory: 64 << 20, devices: [{ type: 'shutdown' }, { type: 'fcopy' }] });
    m.boot();
    const data = new Uint8Array(20_000).map((_, i) => (i * 7) & 0xff);
    const c = collect();
    await runScript(m, parseScript('copy-file /host/data.bin /tmp/in/ --create-path\ncopy-file /host/data.bin /tmp/in/\ncopy-file /host/data.bin /tmp/in/ --overwrite'), c.report, { keepGoing: true, host: { readFile: () => data } });
    expect(c.lines[0]).toBe('line 1: copy-file /host/data.bin -> /tmp/in/ data.bin: copied 20000 bytes');
    expect(m.kernel.services.files.read('/tmp/in/data.bin')).toEqual(data);
    // Without --overwrite an existing file is refused at START_FILE_COPY.
    expect(c.lines[1]).toMatch(/^line 2: copy-file \/host\/data\.bin -> \/tmp\/in\/ data\.bin: the guest failed start with HV_ERROR_ALREADY_EXISTS \(0x80070050\)$/);
    expect(c.lines[2]).toBe('line 3: copy-file /host/data.bin -> /tmp/in/ data.bin: copied 20000 bytes');
    expect(c.statuses).toEqual(['ok', 'failed', 'ok']);
    const none = new Machine({ vps: 1, memory: 64 << 20 });
    none.boot();
    await runScript(none, parseScript('copy-file a /tmp/'), c.report, { host: { readFile: () => data } });
    expect(c.lines[3]).toBe('line 1: copy-file: the VM has no file copy device (add "fcopy" to its devices)');
  });

  it('vss check, freeze and thaw; timesync sync brings the guest clock to the host clock', async () => {
    const m = new Machine({ release: 'ws2022', vps: 2, memory: 64 << 20 });
    m.boot();
    // Put the guest's clock 5 minutes off.
    m.kernel.services.adjustRealtimeNs(-300_000_000_000n);
    const c = collect();
    await runScript(m, parseScript('vss check\nvss freeze\nvss thaw\ntimesync sync'), c.report);
    expect(c.lines.slice(0, 3)).toEqual(['line 1: vss check: succeeded', 'line 2: vss freeze: succeeded', 'line 3: vss thaw: succeeded']);
    const skew = BigInt(/is (-?\d+) ns off/.exec(c.lines[3]!)![1]!);
    expect(c.results[3]!.values.guestSkewNs).toBe(Number(skew));
    expect(skew < 0n ? -skew : skew).toBeLessThan(50_000_000n);
  });

  it('hvsock echo: a guest listener echoes what the host sends; before VMBus 4.0 there is no hv_sock', async () => {
    const m = new Machine({ release: 'ws2022', vps: 2, memory: 64 << 20 });
    m.boot();
    const c = collect();
    await runScript(m, parseScript('hvsock echo 5000 "ping over hv_sock"'), c.report);
    expect(c.lines).toEqual(['line 1: hvsock echo 5000: sent 17 bytes, got "ping over hv_sock" back']);
    const old = new Machine({ release: 'ws2012r2', vps: 1, memory: 64 << 20 });
    old.boot();
    await runScript(old, parseScript('hvsock echo 5000 x'), c.report);
    expect(c.lines[1]).toMatch(/^line 1: hvsock echo 5000: the guest has no hv_sock/);
    expect(c.statuses).toEqual(['ok', 'failed']);
  });
});
