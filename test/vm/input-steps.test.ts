// The script's key and mouse steps: their grammar and refusals, and what each prints when run
// against a booted VM (the tty's lines, where the guest sees the pointer, the click).
import { describe, expect, it } from 'vitest';
import { parseInputStep, unescapeTyped } from '../../src/vm/input-steps.js';
import { Machine } from '../../src/vm/machine.js';
import type { ScriptError} from '../../src/vm/script.js';
import { parseScript, runScript, type StepResult } from '../../src/vm/script.js';

describe('input steps: parsing', () => {
  it('key type resolves its escapes; key press takes combos; mouse move takes 0..32767; click names a button', () => {
    expect(unescapeTyped('a\\nb\\tc\\\\d\\e')).toBe('a\nb\tc\\d\x1b');
    expect(parseScript('key type "ls\\n"\nkey press ctrl+alt+del\nmouse move 0 32767\nmouse click\nmouse click middle').map((s) => ('input' in s ? s.input : s))).toEqual([
      { device: 'key', action: 'type', text: 'ls\n' },
      { device: 'key', action: 'press', combo: 'CTRL+ALT+DEL' },
      { device: 'mouse', action: 'move', x: 0, y: 32767 },
      { device: 'mouse', action: 'click', button: 'left' },
      { device: 'mouse', action: 'click', button: 'middle' },
    ]);
  });

  it('refuses what it cannot do, naming the limit', () => {
    const reason = (line: string) => {
      try {
        parseScript(line);
      } catch (e) {
        return (e as ScriptError).reason;
      }
      return undefined;
    };
    expect(reason('key type "é"')).toBe('key type: "é" is not on a US keyboard (printable ASCII and the escapes only)');
    expect(reason('key type "a\\q"')).toBe('key type: unknown escape \\q (\\n, \\t, \\b, \\e, \\\\)');
    expect(reason(`key type "${'x'.repeat(1025)}"`)).toBe('key type: TEXT is at most 1024 characters');
    expect(reason('key press CTRL+HYPER+X')).toBe('key press: "HYPER" is not a modifier (CTRL, SHIFT, ALT, ALTGR, META and their L/R forms)');
    expect(reason('key press CTRL+')).toMatch(/^key press: "CTRL\+" is not a key combination/);
    expect(reason('mouse move 32768 0')).toBe('mouse move: expected X Y, each 0 to 32767 (the device\'s absolute units)');
    expect(reason('mouse click thumb')).toBe('mouse click: expected left, right or middle');
    expect(reason('mouse wiggle')).toBe('mouse: expected move X Y or click [left|right|middle]');
    expect(parseInputStep('key', ['press', 'F13'])).toMatch(/"F13" is not a key name/);
  });
});

describe('input steps: running', () => {
  it('each step prints what the guest shows', async () => {
    const m = new Machine({ release: 'ws2022', vps: 1 });
    m.boot();
    const results: StepResult[] = [];
    await runScript(m, parseScript('key type "uname\\n"\nmouse move 32767 0\nmouse move 16384 16384\nmouse click right\nkey press CTRL+ALT+DEL\nwait 1'), (r) => results.push(r));
    expect(results.map((r) => [r.status, r.text])).toEqual([
      ['ok', 'key type "uname\\n": 12 keystrokes; the tty shows:\n  root@hvkit:~# uname\n  Linux\n  root@hvkit:~# '],
      ['ok', "mouse move 32767 0: the guest's pointer is at 32767 0"],
      ['ok', "mouse move 16384 16384: the guest's pointer is at 16384 16384"],
      ['ok', 'mouse click right: the guest saw BTN_RIGHT (0x111) pressed and released at 16384 16384'],
      ['ok', 'key press CTRL+ALT+DEL: 6 keystrokes; the guest restarted'],
      ['failed', 'wait 1: not run, the guest is halted'],
    ]);
    expect(results[0]!.values).toMatchObject({ outcome: 'shown', keystrokes: 12, screen: ['root@hvkit:~# uname', 'Linux', 'root@hvkit:~# '] });
  });

  it('a VM without a mouse: the step fails saying so', async () => {
    const m = new Machine({ release: 'ws2022', vps: 1, devices: [{ type: 'keyboard' }] });
    m.boot();
    const results: StepResult[] = [];
    await runScript(m, parseScript('mouse move 1 1'), (r) => results.push(r));
    expect(results[0]).toMatchObject({ status: 'failed', text: 'mouse move 1 1: the VM has no mouse' });
  });
});
