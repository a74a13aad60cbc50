// A guest-thread workload: Linux's hv_sock in the worker connects to a host service, writes
// `bytes` in write() calls of `writeBytes` (each becomes packets of at most 4088 bytes, as in
// Linux), sends EOF and waits for the host's. Reports the wall time from the first write to the
// host's EOF, which the host sends once it has read everything. Untimed connections may go
// first, so that the figure is the code's steady state rather than its compilation: V8 tiers
// the path up over some 20 MiB of 128 B writes, and each new connection (new closures, new
// channel objects) starts partly cold again; the EOF handshake and close have run too.
import { HvSockGuest, type GuestHvSocket } from '../../../devices/hvsock/guest.js';
import type { GuestContext } from '../guest-context.js';

export interface HvsockArgs {
  /** The host's service port. */
  port: number;
  bytes: number;
  writeBytes: number;
  /** The socket buffer size that sizes the rings (24 KiB by default, Linux's). */
  ringBytes?: number;
  /** Untimed connections of `bytes` each go first, one after another, until this much wall time has passed (none if 0). */
  warmupMs?: number;
}

export interface HvsockResult {
  connected: boolean;
  /** Bytes the timed connection wrote. */
  written: number;
  /** Bytes the untimed connections wrote. */
  warmedUp: number;
  /** The host's EOF arrived. */
  finished: boolean;
  /** Wall time from the first timed write to the host's EOF. */
  ms: number;
  error: string | undefined;
  /** The timed connection's packets out, signals it sent and interrupts it took. */
  packets: number;
  signals: number;
  interrupts: number;
}

export default function hvsock(ctx: GuestContext<HvsockArgs>): HvsockResult {
  const client = ctx.kernel.vmbus;
  if (!client) throw new Error('VMBus is not connected');
  const { port, bytes, writeBytes, ringBytes, warmupMs = 0 } = ctx.args;
  const transport = new HvSockGuest(client, ctx.kernel.services);
  client.registerDriver(transport.driver);
  const chunk = new Uint8Array(writeBytes);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 131) & 0xff;

  /** One connection: writes of `next(written)` bytes (0 stops), then EOF; returns once the host's EOF is in. */
  const transfer = (next: (written: number) => number) => {
    const s: GuestHvSocket = transport.connect(port, ringBytes ? { ringBytes } : {});
    let error: string | undefined;
    s.on.error = (e) => void (error ??= e.message);
    const connected = ctx.waitUntil(() => s.state !== 'connecting', 5e9) && s.state === 'open';
    let written = 0;
    let finished = false;
    let t0 = performance.now();
    if (connected) {
      let size = 0;
      /** How much of the current write() the ring has taken: a blocking send goes on with the rest. */
      let pos = 0;
      let eof = false;
      let ended = false;
      const pump = (): void => {
        for (;;) {
          if (pos === 0 && (size = next(written)) === 0) break;
          const n = s.write(pos === 0 && size === writeBytes ? chunk : chunk.subarray(pos, size));
          written += n;
          pos += n;
          if (pos < size) return;
          pos = 0;
        }
        if (!ended) {
          ended = true;
          s.end();
        }
      };
      s.on.writable = pump;
      s.on.end = () => void (eof = true);
      t0 = performance.now();
      pump();
      finished = ctx.waitUntil(() => eof || s.state === 'closed', 120e9) && eof;
    }
    const ms = performance.now() - t0;
    const stats = { packets: s.stats.packetsOut, signals: s.channel?.sigEvents ?? 0, interrupts: s.channel?.interrupts ?? 0 };
    s.close();
    ctx.waitUntil(() => s.state === 'closed', 1e9);
    return { connected, written, finished, ms, error, ...stats };
  };

  const whole = (written: number) => Math.min(writeBytes, bytes - written);
  let warmedUp = 0;
  const until = performance.now() + warmupMs;
  while (performance.now() < until) {
    const w = transfer(whole);
    warmedUp += w.written;
    if (!w.finished) return { ...w, written: 0, warmedUp, error: w.error ?? 'an untimed connection did not finish' };
  }
  return { ...transfer(whole), warmedUp };
}
