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
