// A guest-thread workload: Linux's hv_sock in the worker connects to a host service, writes
// `bytes` in write() calls of `writeBytes` (each becomes packets of at most 4088 bytes, as in
// Linux), sends EOF and waits for the host's. Reports the wall time from the first write to the
// host's EOF, which the host sends once it has read everything. `warmupBytes` go first, untimed,
// so that the figure is the code's steady state rather than its compilation.
import { HvSockGuest } from '../../../devices/hvsock/guest.js';
import type { GuestContext } from '../guest-context.js';

export interface HvsockArgs {
  /** The host's service port. */
  port: number;
  bytes: number;
  writeBytes: number;
  /** The socket buffer size that sizes the rings (24 KiB by default, Linux's). */
  ringBytes?: number;
  /** Written before the timed `bytes`, untimed. */
  warmupBytes?: number;
}

export interface HvsockResult {
  connected: boolean;
  written: number;
  /** The host's EOF arrived. */
  finished: boolean;
  /** Wall time from the first write to the host's EOF. */
  ms: number;
  error: string | undefined;
  packets: number;
  /** Signals the guest sent on the channel, and interrupts it took. */
  signals: number;
  interrupts: number;
}

export default function hvsock(ctx: GuestContext<HvsockArgs>): HvsockResult {
  const client = ctx.kernel.vmbus;
  if (!client) throw new Error('VMBus is not connected');
  const { port, writeBytes, ringBytes, warmupBytes = 0 } = ctx.args;
  const bytes = ctx.args.bytes + warmupBytes;
  const transport = new HvSockGuest(client, ctx.kernel.services);
  client.registerDriver(transport.driver);
  const s = transport.connect(port, ringBytes ? { ringBytes } : {});
  let error: string | undefined;
  s.on.error = (e) => void (error ??= e.message);
  const connected = ctx.waitUntil(() => s.state !== 'connecting', 5e9) && s.state === 'open';
  const result = (finished: boolean, ms: number, written: number): HvsockResult => ({
    connected,
    written,
    finished,
    ms,
    error,
    packets: s.stats.packetsOut,
    signals: s.channel?.sigEvents ?? 0,
    interrupts: s.channel?.interrupts ?? 0,
  });
  if (!connected) return result(false, 0, 0);
  const chunk = new Uint8Array(writeBytes);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 131) & 0xff;
  let written = 0;
  /** How much of the current write() the ring has taken: a blocking send goes on with the rest. */
  let pos = 0;
  let eof = false;
  let ended = false;
  let t0 = warmupBytes === 0 ? performance.now() : 0;
  const pump = (): void => {
    while (written < bytes) {
      if (t0 === 0 && written >= warmupBytes) t0 = performance.now();
      const size = Math.min(writeBytes, bytes - (written - pos));
      const n = s.write(chunk.subarray(pos, size));
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
  pump();
  const finished = ctx.waitUntil(() => eof || s.state === 'closed', 120e9) && eof;
  const ms = performance.now() - t0;
  const r = result(finished, ms, written);
  s.close();
  ctx.waitUntil(() => s.state === 'closed', 1e9);
  return r;
}
