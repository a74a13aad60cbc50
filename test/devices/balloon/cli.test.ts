// Dynamic memory from the command line and the VM file: `hvkit run --dynamic-memory` and
// `dynamicMemory`, their one-line errors naming the field and the limit, the `memory demand` and
// `memory status` script steps, and the guest's MemTotal/MemFree in `--json`'s final state.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { parseScript, type ScriptError } from '../../../src/vm/script.js';
import { parseVmConfig } from '../../../src/vm/config.js';

async function run(...args: string[]): Promise<{ code: number; lines: string[]; err: string }> {
  const lines: string[] = [];
  let err = '';
  const code = await main(['node', 'hvkit', ...args], { out: (l) => lines.push(l), err: (t) => (err += t) });
  return { code, lines, err };
}

const dir = mkdtempSync(join(tmpdir(), 'hvkit-balloon-'));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('--dynamic-memory and dynamicMemory', () => {
  const cases: [string[], string][] = [
    [['--dynamic-memory', 'min=512M'], 'hvkit run: --dynamic-memory: min: 512M is more than the 256M startup memory\n'],
    [['--dynamic-memory', 'max=128M'], 'hvkit run: --dynamic-memory: max: 128M is less than the 256M startup memory\n'],
    [['--dynamic-memory', 'max=8G'], 'hvkit run: --dynamic-memory: max: 8G is more than the 4G maximum\n'],
    [['--dynamic-memory', 'min=8M'], 'hvkit run: --dynamic-memory: min: 8M is less than the 16M minimum\n'],
    [['--dynamic-memory', 'min=101M'], "hvkit run: --dynamic-memory: min: 101M is not a multiple of 2M (Hyper-V's dynamic memory step)\n"],
    [['--dynamic-memory', 'buffer=4'], 'hvkit run: --dynamic-memory: buffer: must be an integer from 5 to 2000\n'],
    [['--dynamic-memory', 'buffer=2001'], 'hvkit run: --dynamic-memory: buffer: must be an integer from 5 to 2000\n'],
    [['--dynamic-memory', 'max=512M', '--memory', '200M'], 'hvkit run: --memory: 200M is not a multiple of 128M: hv_balloon hot adds 128 MiB blocks above the startup memory, and dynamicMemory max 512M needs hot add\n'],
    [['--dynamic-memory', 'max=512M', '--arch', 'arm64'], 'hvkit run: --dynamic-memory: max: 512M is more than the startup memory, which needs hot add, and hv_balloon does not hot add on arm64\n'],
    [['--dynamic-memory', 'size=1G'], "hvkit run: option '--dynamic-memory <min=SIZE,max=SIZE,buffer=PERCENT>' argument 'size=1G' is invalid. unknown key 'size'; keys: min, max, buffer\n"],
    [['--dynamic-memory', 'min=1G,min=2G'], "hvkit run: option '--dynamic-memory <min=SIZE,max=SIZE,buffer=PERCENT>' argument 'min=1G,min=2G' is invalid. min given twice\n"],
    [['--dynamic-memory', 'buffer=lots'], "hvkit run: option '--dynamic-memory <min=SIZE,max=SIZE,buffer=PERCENT>' argument 'buffer=lots' is invalid. buffer=lots is not a whole percentage\n"],
  ];
  for (const [args, message] of cases) {
    it(`${args.join(' ')}: one line, exit 2`, async () => {
      const r = await run('run', '--no-vmbus', ...args);
      expect(r.code).toBe(2);
      expect(r.err).toBe(message);
    });
  }

  it('the VM file: the same checks, naming the file and the field', async () => {
    const bad = await run('run', '--config', file('bad.json', '{"memory": "256M", "dynamicMemory": {"min": "512M"}}'));
    expect(bad.err).toBe(`hvkit run: ${join(dir, 'bad.json')}: /dynamicMemory/min: 512M is more than the 256M startup memory\n`);
    const noBalloon = await run('run', '--config', file('nob.json', '{"devices": ["shutdown"], "dynamicMemory": {}}'));
    expect(noBalloon.err).toBe(`hvkit run: ${join(dir, 'nob.json')}: /dynamicMemory: the VM has no balloon device\n`);
    const extra = await run('run', '--config', file('extra.json', '{"dynamicMemory": {"maximum": "1G"}}'));
    expect(extra.code).toBe(2);
    expect(extra.err).toContain('/dynamicMemory');
    expect(parseVmConfig({ memory: '256M', dynamicMemory: { min: '128M', max: '1G' } }).dynamicMemory).toEqual({ minimum: 128 << 20, maximum: 1 << 30, buffer: 20 });
    expect(parseVmConfig({ memory: 512 << 20, dynamicMemory: { buffer: 50 } }).dynamicMemory).toEqual({ minimum: 512 << 20, maximum: 512 << 20, buffer: 50 });
  });
});

describe('memory script steps', () => {
  it('parse errors name the step and what it expects', () => {
    const err = (text: string) => {
      try {
        parseScript(text, 's');
      } catch (e) {
        return (e as ScriptError).message;
      }
      return undefined;
    };
    expect(err('memory')).toBe('s:1: memory: expected demand SIZE or status');
    expect(err('memory demand')).toBe('s:1: memory: expected demand SIZE or status');
    expect(err('memory demand lots')).toBe('s:1: memory demand: lots: expected a size such as 256M or 1G');
    expect(err('memory status now')).toBe('s:1: memory: expected demand SIZE or status');
    expect(parseScript('memory demand 0\nmemory demand 64M\nmemory status', 's').map((s) => (s.op === 'memory' ? s.memory : undefined))).toEqual([
      { action: 'demand', bytes: 0 },
      { action: 'demand', bytes: 64 << 20 },
      { action: 'status' },
    ]);
  });

  it('the host balloons an idle guest down to its minimum and gives memory back when a workload wants it; --json shows meminfo', async () => {
    const script = file('mem.txt', 'memory status\nwait 50\nmemory status\nmemory demand 400M\nmemory status\nmemory demand 0\n');
    const r = await run('run', '--json', '--dynamic-memory', 'min=128M,max=1G,buffer=20', '--script', script);
    expect(r.code).toBe(0);
    const records = r.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const steps = records.flatMap((x) => (x['script'] ? [x['script'] as { line: number; status: string; text: string; values: Record<string, number> }] : []));
    expect(steps.map((s) => s.status)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
    // Before the first status report (pressure_report_delay is 45 s) the host has done nothing.
    // MemTotal: 256 MiB less the kernel's 16 MiB and the VMBus MMIO window's 8 MiB (memory/layout.ts).
    expect(steps[0]!.text).toBe('memory status: MemTotal 237568 kB, MemFree 216852 kB; host: ballooned 0 MiB, hot-added 0 MiB, no status report yet');
    // Idle, the guest is ballooned down to the 128 MiB minimum: 128 MiB less the kernel's 16 MiB
    // and the MMIO window's 8 MiB.
    expect(steps[2]!.values).toMatchObject({ memTotalKiB: 104 * 1024, balloonedPages: 32768, hotAddedPages: 0, targetPages: 32768, currentPages: 32768 });
    expect(steps[3]!.text).toBe('memory demand 400M: the guest holds 400M of 400M');
    // To hold 400 MiB the guest got its ballooned pages back and RAM hot added past its startup 256 MiB.
    const high = steps[4]!.values;
    expect(high['balloonedPages']).toBe(0);
    expect(high['hotAddedPages']).toBeGreaterThan(0);
    expect(high['memTotalKiB']).toBe((high['currentPages']! - 4096 - 2048) * 4);
    const state = (records.at(-1) as { state: { vm: Record<string, unknown>; meminfo: { MemTotal: number; MemFree: number } } }).state;
    expect(state.vm['dynamicMemory']).toEqual({ minimum: 128 << 20, maximum: 1 << 30, buffer: 20 });
    expect(state.meminfo.MemTotal).toBe(high['memTotalKiB']);
    expect(state.meminfo.MemFree).toBeGreaterThan(400 * 1024);
  });
});
