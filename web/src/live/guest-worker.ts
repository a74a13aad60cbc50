// The guest thread in a browser: src/vm/threaded/guest-main.ts in a Web Worker, its file tree in
// memory. Its workload keeps the booted guest running, taking interrupts, until it halts or the
// host stops. The page asks it for things through a shared command block (the worker's event
// loop is not free while the guest runs): start and stop the stream driver, and listen on an
// hv_sock port with an echo. The worker posts what the page cannot read from guest memory: the
// guest's view of its channels (state, target CPU, interrupts taken), and its echo listeners.
import { StreamDriver } from '../../../src/devices/stream/guest.js';
import type { VmbusSnapshot } from '../../../src/vmbus/client/snapshot.js';
import type { GuestContext } from '../../../src/vm/threaded/guest-context.js';
import { runGuestThread, type GuestThreadData } from '../../../src/vm/threaded/guest-main.js';
import { guestHvsock } from '../../../src/vm/hvsock-sides.js';
import { listenEcho } from './hvsock-echo.js';
import { STREAM_MAX_DATA, streamRingBytes } from './stream.js';
import { Cmd, MAX_ECHO_PORTS, StreamCmd, type GuestWorkerArgs, type WorkerMessage } from './worker-protocol.js';

/** Wall time the workload waits between looks at the command block. */
const LOOK_NS = 50e6;

function post(m: WorkerMessage): void {
  self.postMessage(m);
}

/** The guest's channel table without its rings, posted when it changed. */
function channelsPoster(ctx: GuestContext<GuestWorkerArgs>): () => void {
  let last = '';
  return () => {
    const s = ctx.kernel.vmbus?.snapshot();
    if (!s) return;
    const snapshot: VmbusSnapshot = { ...s, devices: s.devices.map((d) => ({ ...d, channels: d.channels.map((c) => ({ ...c, outbound: undefined, inbound: undefined })) })) };
    const text = JSON.stringify(snapshot);
    if (text === last) return;
    last = text;
    post({ type: 'guest-channels', snapshot });
  };
}

function idle(ctx: GuestContext<GuestWorkerArgs>): string {
  const cmd = new Int32Array(ctx.args.commands);
  let seen = 0;
  let stream: number = StreamCmd.NONE;
  let echoSeen = 0;
  let drv: StreamDriver | undefined;
  const echoes = new Map<number, { close(): void }>();
  const postChannels = channelsPoster(ctx);
  while (ctx.kernel.stage === 'booted') {
    postChannels();
    ctx.waitUntil(() => Atomics.load(cmd, Cmd.SEQ) !== seen || ctx.kernel.stage !== 'booted', LOOK_NS);
    const seq = Atomics.load(cmd, Cmd.SEQ);
    if (seq === seen) continue;
    seen = seq;
    const what = Atomics.load(cmd, Cmd.STREAM);
    if (what !== stream) {
      stream = what;
      if (what === StreamCmd.START && !drv && ctx.kernel.vmbus) {
        drv = new StreamDriver({ seed: 11, maxData: STREAM_MAX_DATA, ringBytes: streamRingBytes(ctx.args.pageSize) });
        ctx.kernel.vmbus.registerDriver(drv);
      } else if (what === StreamCmd.STOP) drv?.stop();
    }
    const req = Atomics.load(cmd, Cmd.ECHO_REQ);
    if (req !== echoSeen) {
      echoSeen = req;
      const port = Atomics.load(cmd, Cmd.ECHO_PORT);
      let error: string | undefined;
      if (!echoes.has(port)) {
        try {
          if (echoes.size >= MAX_ECHO_PORTS) throw new Error(`the guest already listens on ${MAX_ECHO_PORTS} ports`);
          echoes.set(port, listenEcho(guestHvsock(ctx), port));
        } catch (e) {
          error = e instanceof Error ? e.message : String(e);
        }
      }
      post({ type: 'echo-listening', req, ...(error ? { error } : {}) });
    }
  }
  return ctx.kernel.haltedBy ?? ctx.kernel.stage;
}

self.onmessage = (ev: MessageEvent<GuestThreadData>) => {
  void runGuestThread(ev.data, {
    post,
    workload: () => Promise.resolve(idle as (ctx: GuestContext) => string),
  });
};
