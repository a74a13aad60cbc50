// `--script`: the parser (every bad line a ScriptError naming file and line, never anything else)
// and steps run against a VM.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/vm/machine.js';
import { parseScript, runScript, ScriptError } from '../../src/vm/script.js';

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
  it('heartbeat shows the host side; shutdown powers the guest off; later steps are skipped', async () => {
    const m = new Machine({ release: 'ws2022', vps: 2, memory: 64 << 20 });
    m.boot();
    const lines: string[] = [];
    await runScript(m, parseScript('wait 5\nheartbeat\nshutdown\nheartbeat'), (l) => lines.push(l));
    expect(lines[0]).toBe('line 1: waited 5 s');
    // A heartbeat every 2 s since the IC came up: 3 sent in 5 s, each answered with seq + 1.
    expect(lines[1]).toMatch(/^line 2: heartbeat: ok, 3 sent, last answer \d+$/);
    expect(lines[2]).toBe('line 3: shutdown shutdown: accepted, the guest powered off');
    expect(lines[3]).toBe('line 4: heartbeat: skipped, the guest is halted');
    expect(m.exit?.kind).toBe('poweroff');
  });

  it('restart: the guest restarts; a VM without the device says so', async () => {
    const m = new Machine({ release: 'ws2016', vps: 1, memory: 64 << 20 });
    m.boot();
    const lines: string[] = [];
    await runScript(m, parseScript('shutdown restart --force'), (l) => lines.push(l));
    expect(lines).toEqual(['line 1: shutdown restart --force: accepted, the guest restarted']);
    expect(m.exit?.kind).toBe('reboot');
    const bare = new Machine({ vps: 1, memory: 64 << 20, devices: [] });
    bare.boot();
    await runScript(bare, parseScript('shutdown\nheartbeat'), (l) => lines.push(l));
    expect(lines.slice(1)).toEqual(['line 1: shutdown: the VM has no shutdown device', 'line 2: heartbeat: the VM has no heartbeat device']);
  });
});

describe('script steps for every integration service and hv_sock', () => {
  it('kvp set, get, enumerate and delete in the external pool; the guest daemon keeps them in its pool file', async () => {
    const m = new Machine({ release: 'ws2022', vps: 2, memory: 64 << 20 });
    m.boot();
    const lines: string[] = [];
    await runScript(m, parseScript('kvp set 0 Greeting "hello world"\nkvp get 0 Greeting\nkvp enumerate 0\nkvp delete 0 Greeting\nkvp enumerate 0'), (l) => lines.push(l));
    expect(lines[0]).toBe('line 1: kvp set 0 "Greeting": ok');
    // Linux 6.1 answers a GET of an existing key with an empty value (the kernel passes value_size 0 to the daemon).
    expect(lines[1]).toBe('line 2: kvp get 0 "Greeting": ok ""');
    expect(lines[2]).toBe('line 3: kvp enumerate 0: ok, 1 entries\n  "Greeting" = "hello world"');
    expect(lines[3]).toBe('line 4: kvp delete 0 "Greeting": ok');
    expect(lines[4]).toBe('line 5: kvp enumerate 0: ok, 0 entries');
    expect(m.kernel.services.files.exists('/var/lib/hyperv/.kvp_pool_0')).toBe(true);
  });

  it('copy-file copies a host file into the guest tree (fcopy must be in the device set)', async () => {
    const m = new Machine({ release: 'ws2022', vps: 2, memory: 64 << 20, devices: [{ type: 'shutdown' }, { type: 'fcopy' }] });
    m.boot();
    const data = new Uint8Array(20_000).map((_, i) => (i * 7) & 0xff);
    const lines: string[] = [];
    await runScript(m, parseScript('copy-file /host/data.bin /tmp/in/ --create-path\ncopy-file /host/data.bin /tmp/in/\ncopy-file /host/data.bin /tmp/in/ --overwrite'), (l) => lines.push(l), { readFile: () => data });
    expect(lines[0]).toBe('line 1: copy-file /host/data.bin -> /tmp/in/ data.bin: copied (20000 bytes)');
    expect(m.kernel.services.files.read('/tmp/in/data.bin')).toEqual(data);
    // Without --overwrite an existing file is refused at START_FILE_COPY.
    expect(lines[1]).toMatch(/^line 2: copy-file \/host\/data\.bin -> \/tmp\/in\/ data\.bin: failed at start \(status 0x[0-9a-f]+\) \(20000 bytes\)$/);
    expect(lines[2]).toBe('line 3: copy-file /host/data.bin -> /tmp/in/ data.bin: copied (20000 bytes)');
    const none = new Machine({ vps: 1, memory: 64 << 20 });
    none.boot();
    await runScript(none, parseScript('copy-file a /tmp/'), (l) => lines.push(l), { readFile: () => data });
    expect(lines[3]).toBe('line 1: copy-file: the VM has no file copy device (add "fcopy" to its devices)');
  });

  it('vss check, freeze and thaw; timesync sync brings the guest clock to the host clock', async () => {
    const m = new Machine({ release: 'ws2022', vps: 2, memory: 64 << 20 });
    m.boot();
    // Put the guest's clock 5 minutes off.
    m.kernel.services.adjustRealtimeNs(-300_000_000_000n);
    const lines: string[] = [];
    await runScript(m, parseScript('vss check\nvss freeze\nvss thaw\ntimesync sync'), (l) => lines.push(l));
    expect(lines.slice(0, 3)).toEqual(['line 1: vss check: succeeded', 'line 2: vss freeze: succeeded', 'line 3: vss thaw: succeeded']);
    const skew = BigInt(/is (-?\d+) ns off/.exec(lines[3]!)![1]!);
    expect(skew < 0n ? -skew : skew).toBeLessThan(50_000_000n);
  });

  it('hvsock echo: a guest listener echoes what the host sends; before VMBus 4.0 there is no hv_sock', async () => {
    const m = new Machine({ release: 'ws2022', vps: 2, memory: 64 << 20 });
    m.boot();
    const lines: string[] = [];
    await runScript(m, parseScript('hvsock echo 5000 "ping over hv_sock"'), (l) => lines.push(l));
    expect(lines).toEqual(['line 1: hvsock echo 5000: sent 17 bytes, got "ping over hv_sock" back']);
    const old = new Machine({ release: 'ws2012r2', vps: 1, memory: 64 << 20 });
    old.boot();
    await runScript(old, parseScript('hvsock echo 5000 x'), (l) => lines.push(l));
    expect(lines[1]).toMatch(/^line 1: hvsock echo 5000: the guest has no hv_sock/);
  });
});
