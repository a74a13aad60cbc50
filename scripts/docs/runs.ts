// The runs the book's diagrams and byte examples come from. Each is a real, deterministic run of
// hvkit recorded as a trace file (the same JSON lines `hvkit run --trace FILE` writes) and read
// back with the trace reader, so that what the book shows is what the code does.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import type { TraceEvent } from '../../src/hypervisor/trace.js';
import { attachTrace } from '../../src/trace/attach.js';
import { parseTrace } from '../../src/trace/reader.js';
import { openTraceFile } from '../../src/trace/writer.js';
import { Machine } from '../../src/vm/machine.js';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';

/** The CLI command whose trace a run is, as a reader would type it. */
export interface Run {
  readonly title: string;
  readonly events: readonly TraceEvent[];
  /** Where in `events` the part the run is about starts (after the boot, for a kexec). */
  readonly from: number;
}

async function withTraceFile<T>(f: (path: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'hvkit-docs-'));
  try {
    return await f(join(dir, 'trace.jsonl'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `hvkit run --release R --vps 2 --trace FILE`: a boot with the default devices. */
async function bootRun(release: string): Promise<Run> {
  return withTraceFile(async (path) => {
    const args = ['run', '--release', release, '--vps', '2', '--trace', path];
    const code = await main(['node', 'hvkit', ...args], { out: () => undefined, err: () => undefined });
    if (code !== 0) throw new Error(`hvkit ${args.join(' ')} exited ${code}`);
    return { title: `hvkit ${args.join(' ').replace(path, 'FILE')}`, events: parseTrace(readFileSync(path, 'utf8')), from: 0 };
  });
}

/** A booted default machine (ws2022, 2 VPs) traced from the start; `then` acts on it once booted. */
async function apiRun(title: string, then: (m: Machine) => void): Promise<Run> {
  return withTraceFile(async (path) => {
    const m = new Machine({ release: 'ws2022', vps: 2 });
    const file = openTraceFile(path);
    const stop = attachTrace(m.partition, file);
    m.boot();
    file.flush();
    const booted = file.count;
    then(m);
    stop();
    await file.close();
    return { title, events: parseTrace(readFileSync(path, 'utf8')), from: booted };
  });
}

/** The host rescinds the heartbeat channel of a booted guest, which lets it go. */
const rescindRun = (): Promise<Run> =>
  apiRun('m.vmbus.server.revoke(heartbeat channel) on a booted ws2022 machine', (m) => {
    const server = m.vmbus!.server;
    const ch = [...server.channels.values()].find((c) => c.offer.classId === DeviceClass.HEART_BEAT)!;
    server.revoke(ch);
    m.runFor(10_000_000);
  });

/** A booted machine left to run for 100 ms of virtual time: the channels' first exchanges. */
const settledRun = (): Promise<Run> => apiRun('m.boot(), then m.runFor(100_000_000) on a ws2022 machine', (m) => m.runFor(100_000_000));

/** kexec -e in a booted guest: everything shared with Hyper-V revoked. */
const kexecRun = (): Promise<Run> => apiRun('m.kernel.kexec() on a booted ws2022 machine', (m) => m.kernel.kexec());

const RUNS = {
  boot: () => bootRun('ws2022'),
  'boot-ws2016': () => bootRun('ws2016'),
  settled: settledRun,
  rescind: rescindRun,
  kexec: kexecRun,
} as const;
export type RunName = keyof typeof RUNS;

const done = new Map<RunName, Promise<Run>>();

/** The run `name`, made once per process. */
export function run(name: RunName): Promise<Run> {
  let r = done.get(name);
  if (!r) {
    r = RUNS[name]();
    done.set(name, r);
  }
  return r;
}
