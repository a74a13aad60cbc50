// The guest thread in a browser: src/vm/threaded/guest-main.ts in a Web Worker, its file tree in
// memory. Its workload keeps the booted guest running, taking interrupts, until it halts or the
// host stops; the page asks it to start and stop the stream driver through a shared command word.
import { StreamDriver } from '../../../src/devices/stream/guest.js';
import type { GuestContext } from '../../../src/vm/threaded/guest-context.js';
import { runGuestThread, type GuestThreadData } from '../../../src/vm/threaded/guest-main.js';
import { STREAM_MAX_DATA, streamRingBytes } from './stream.js';

/** Words of the command block the page writes. */
export const Cmd = { SEQ: 0, STREAM: 1 } as const;
/** STREAM's values. */
export const StreamCmd = { NONE: 0, START: 1, STOP: 2 } as const;

export interface GuestWorkerArgs {
  commands: SharedArrayBuffer;
  pageSize: number;
}

/** Wall time the workload waits between looks at the command block. */
const LOOK_NS = 50e6;

function idle(ctx: GuestContext<GuestWorkerArgs>): string {
  const cmd = new Int32Array(ctx.args.commands);
  let seen = 0;
  let drv: StreamDriver | undefined;
  while (ctx.kernel.stage === 'booted') {
    ctx.waitUntil(() => Atomics.load(cmd, Cmd.SEQ) !== seen || ctx.kernel.stage !== 'booted', LOOK_NS);
    const seq = Atomics.load(cmd, Cmd.SEQ);
    if (seq === seen) continue;
    seen = seq;
    const what = Atomics.load(cmd, Cmd.STREAM);
    if (what === StreamCmd.START && !drv && ctx.kernel.vmbus) {
      drv = new StreamDriver({ seed: 11, maxData: STREAM_MAX_DATA, ringBytes: streamRingBytes(ctx.args.pageSize) });
      ctx.kernel.vmbus.registerDriver(drv);
    } else if (what === StreamCmd.STOP) drv?.stop();
  }
  return ctx.kernel.haltedBy ?? ctx.kernel.stage;
}

self.onmessage = (ev: MessageEvent<GuestThreadData>) => {
  void runGuestThread(ev.data, {
    post: (m) => self.postMessage(m),
    workload: () => Promise.resolve(idle as (ctx: GuestContext) => string),
  });
};
