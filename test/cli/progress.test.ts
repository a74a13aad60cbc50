// The progress line: on a terminal only, never in --json or a pipe; it shows virtual time, wall
// time and packets per second, and every log line still arrives, in order, above it.
import { describe, expect, it } from 'vitest';
import { main, type Io } from '../../src/cli/main.js';

/** A terminal that keeps what is written to it. */
function terminal(): { stream: { isTTY: boolean; columns: number; write: (s: string) => boolean }; text: () => string } {
  const chunks: string[] = [];
  return { stream: { isTTY: true, columns: 120, write: (s) => (chunks.push(s), true) }, text: () => chunks.join('') };
}

async function run(io: Partial<Io>, ...args: string[]): Promise<{ code: number; out: string[] }> {
  const out: string[] = [];
  const code = await main(['node', 'hvkit', 'run', ...args], { out: (l) => out.push(l), err: () => undefined, ...io });
  return { code, out };
}

// The cursor and line-erasing sequences a terminal interprets, as line breaks.
const ESCAPES = new RegExp(`${String.fromCharCode(27)}(\\[[0-9;?]*[A-Za-z]|[78])`, 'g');
const plain = (s: string): string => s.replace(ESCAPES, '\n');

describe('progress on a terminal', () => {
  it('shows virtual time, wall time and packets per second; the log goes above it, whole and in order', async () => {
    const tty = terminal();
    const { code, out } = await run({ progress: { stream: tty.stream, delayMs: 0 } }, '--until', '2');
    expect(code).toBe(0);
    const drawn = plain(tty.text());
    expect(drawn).toMatch(/\d+\.\d s virtual of 2\.0 · \d+\.\d s wall · \d+ packets\/s/);
    // Log lines printed while the line was up went through the terminal, the rest straight out.
    const logged = [...out, ...drawn.split('\n')].filter((l) => /^\[ *\d+\.\d{6}\] /.test(l));
    expect(logged[0]).toBe('[    0.000000] Linux version 6.1.192 (hvkit guest model) #1 SMP');
    expect(logged.some((l) => l.endsWith('hv_vmbus: registering driver hv_sock'))).toBe(true);
    expect(new Set(logged).size).toBe(logged.length);
  });

  it('nothing of it in --json, nor before its delay', async () => {
    const json = terminal();
    await run({ progress: { stream: json.stream, delayMs: 0 } }, '--until', '1', '--json');
    expect(json.text()).toBe('');
    const late = terminal();
    await run({ progress: { stream: late.stream, delayMs: 3_600_000 } }, '--until', '1');
    expect(late.text()).toBe('');
  });
});
