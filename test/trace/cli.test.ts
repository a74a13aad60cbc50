// `hvkit trace FILE`: a recorded session printed whole, filtered, as JSON; bad files and bad
// options refused with the exit statuses of the other commands.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { TraceEvent } from '../../src/hypervisor/trace.js';
import { parseTraceLine } from '../../src/trace/reader.js';
import { attachTrace } from '../../src/trace/attach.js';
import { openTraceFile } from '../../src/trace/writer.js';
import { EchoDriver, offerEcho, text, VmbusRig } from '../vmbus/harness.js';

const tmp = mkdtempSync(join(tmpdir(), 'hvkit-trace-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function run(...args: string[]): Promise<{ code: number; lines: string[]; err: string }> {
  const lines: string[] = [];
  let err = '';
  const code = await main(['node', 'hvkit', 'trace', ...args], { out: (l) => lines.push(l), err: (t) => (err += t) });
  return { code, lines, err };
}

const file = join(tmp, 'echo.jsonl');
let relid = 0;
let recorded = 0;

beforeAll(async () => {
  const rig = new VmbusRig({ release: 'ws2022', vps: 2 });
  const trace = openTraceFile(file);
  const stop = attachTrace(rig.m.partition, trace);
  const { ch } = offerEcho(rig);
  relid = ch.relid;
  const drv = new EchoDriver();
  rig.boot();
  rig.client.registerDriver(drv);
  drv.channels[0]!.sendInband(text('hello'), 7n);
  rig.run();
  stop();
  recorded = trace.count;
  await trace.close();
});

describe('hvkit trace', () => {
  it('prints each number of a field in one base whatever its value: relids in decimal, connection ids in hex', async () => {
    const { lines } = await run(file, '--kind', 'message');
    const relids = lines.flatMap((l) => [...l.matchAll(/child_relid=(\S+)/g)].map((m) => m[1]!));
    expect(relids.length).toBeGreaterThan(2);
    expect(relids.filter((r) => !/^\d+$/.test(r))).toEqual([]);
    expect(lines.filter((l) => / conn (?!0x)\d/.test(l))).toEqual([]);
  });

  it('prints one decoded line per event', async () => {
    const { code, lines, err } = await run(file);
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(lines.length).toBe(recorded);
    expect(lines[0]).toMatch(/^ {4}0\.000000 vp0 {2}trap {5}cpuid 0x1 -> /);
    expect(lines).toContainEqual(expect.stringMatching(/ vp0 {2}to-host {2}msg conn 0x4 {2}INITIATE_CONTACT vmbus_version_requested=0x50003 \(version 5\.3\) /));
    expect(lines).toContainEqual(expect.stringMatching(/ vp0 {2}to-guest msg sint 2 {2}VERSION_RESPONSE version_supported=1 \(accepted\) /));
  });

  it('--kind and --dir keep only those events', async () => {
    const { code, lines } = await run(file, '--kind', 'packet');
    expect(code).toBe(0);
    // Options before the file: each takes one word, so the file is not read as a kind.
    expect(await run('--kind', 'packet', file)).toEqual({ code: 0, lines, err: '' });
    expect((await run('--channel', String(relid), '--kind', 'packet', '--dir', 'to-host', file)).lines).toEqual(lines.filter((l) => l.includes(' to-host ')));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.every((l) => / pkt VM_PKT_/.test(l))).toBe(true);
    const both = await run(file, '--kind', 'signal,packet', '--dir', 'to-guest');
    expect(both.lines.length).toBeGreaterThan(0);
    expect(both.lines.every((l) => /to-guest (signal|pkt) /.test(l))).toBe(true);
    const traps = await run(file, '--kind', 'trap', '--kind', 'message');
    expect(traps.lines.every((l) => / (trap {5}|to-host {2}msg |to-guest msg )/.test(l))).toBe(true);
  });

  it("--kind takes the hypervisor's own kinds too; they have no direction and no channel", async () => {
    const { code, lines } = await run(file, '--kind', 'timer-expired,sint-asserted');
    expect(code).toBe(0);
    expect(lines.some((l) => / vp\d {2}hv {7}timer-expired stimer0 direct expiration=0x[0-9a-f]+$/.test(l))).toBe(true);
    expect(lines.some((l) => / vp0 {2}hv {7}sint-asserted sint 2 vector 0x[0-9a-f]+$/.test(l))).toBe(true);
    expect(lines.every((l) => / hv {7}(timer-expired|sint-asserted) /.test(l))).toBe(true);
    expect((await run(file, '--kind', 'timer-expired', '--dir', 'to-guest')).lines).toEqual([]);
    expect((await run(file, '--kind', 'timer-expired', '--channel', String(relid))).lines).toEqual([]);
  });

  it('--channel keeps the events about that channel: its offer, GPADL, open, signals and packets', async () => {
    const { code, lines } = await run(file, '--channel', String(relid));
    expect(code).toBe(0);
    const what = lines.map((l) => / (OFFERCHANNEL|GPADL_HEADER|GPADL_CREATED|OPENCHANNEL_RESULT|OPENCHANNEL|signal|pkt) /.exec(l)?.[1] ?? l);
    expect(new Set(what)).toEqual(new Set(['OFFERCHANNEL', 'GPADL_HEADER', 'GPADL_CREATED', 'OPENCHANNEL', 'OPENCHANNEL_RESULT', 'signal', 'pkt']));
    expect((await run(file, '--channel', '2000')).lines).toEqual([]);
  });

  it('--json prints the events as trace lines, channels filled in', async () => {
    const { code, lines } = await run(file, '--json', '--kind', 'signal');
    expect(code).toBe(0);
    const events = lines.map((l, i) => parseTraceLine(l, i + 1)) as TraceEvent[];
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.kind === 'signal' && e.channel !== undefined)).toBe(true);
    expect(events.some((e) => e.kind === 'signal' && e.channel === relid)).toBe(true);
  });

  it('a bad line: what came before is printed, then the line number and the field; status 1', async () => {
    const lines = [(await run(file, '--json')).lines[0]!, '{"ns":1,"kind":"packet","dir":"sideways"}'];
    const bad = join(tmp, 'bad.jsonl');
    writeFileSync(bad, lines.join('\n'));
    const r = await run(bad);
    expect(r.code).toBe(1);
    expect(r.lines.length).toBe(1);
    expect(r.err).toBe(`hvkit trace: ${bad}: line 2: dir: expected one of 'to-host', 'to-guest' for a packet\n`);
  });

  it('a missing file or a bad option is a usage error, status 2', async () => {
    const missing = await run(join(tmp, 'nope.jsonl'));
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/^hvkit trace: cannot read '.*nope\.jsonl': ENOENT/);
    expect((await run(file, '--kind', 'interrupt')).code).toBe(2);
    expect((await run(file, '--channel', 'one')).code).toBe(2);
    expect((await run(file, '--dir', 'up')).code).toBe(2);
  });
});
