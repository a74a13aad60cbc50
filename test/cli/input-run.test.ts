// `hvkit run --script` with key and mouse steps: their result lines, and the input state --json
// ends with (both sides' devices, the guest's pointer and the tty's screen).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

async function run(...args: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await main(['node', 'hvkit', ...args], { out: (l) => lines.push(l), err: (l) => lines.push(l) });
  return { code, lines };
}

describe('hvkit run with key and mouse steps', () => {
  it('prints what the guest shows, and --json ends with the input state', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hvkit-input-'));
    const script = join(dir, 'steps.txt');
    writeFileSync(script, 'key type "echo hi\\n"\nmouse move 100 200\n');
    const r = await run('run', '--script', script);
    expect(r.code).toBe(0);
    expect(r.lines).toContain('hvkit script: line 1: key type "echo hi\\n": 16 keystrokes; the tty shows:\n  root@hvkit:~# echo hi\n  hi\n  root@hvkit:~# ');
    expect(r.lines).toContain("hvkit script: line 2: mouse move 100 200: the guest's pointer is at 100 200");
    const j = await run('run', '--script', script, '--json');
    const state = JSON.parse(j.lines.at(-1)!).state;
    expect(state.input.keyboard).toMatchObject({ phase: 'ready', version: '1.0', sent: 16 });
    expect(state.input.mouse).toMatchObject({ phase: 'ready', version: '2.0', x: 100, y: 200 });
    expect(state.input.guest.input.pointer).toEqual({ x: 100, y: 200, device: 'Microsoft Vmbus HID-compliant Mouse' });
    expect(state.input.guest.tty.screen).toEqual(['root@hvkit:~# echo hi', 'hi', 'root@hvkit:~# ']);
  });
});
