// A guest-thread workload: the stream device's driver streams to the host (and checks what the
// host streams back) for `seconds` of virtual time, then both ends send FIN.
import { StreamDriver, type StreamDriverOptions } from '../../../devices/stream/guest.js';
import type { StreamStats } from '../../../devices/stream/frame.js';
import type { GuestContext } from '../guest-context.js';

export interface StreamArgs extends StreamDriverOptions {
  seconds: number;
}

export interface StreamResult {
  stats: StreamStats;
  interrupts: number;
  signals: number;
  finished: boolean;
}

export default function stream(ctx: GuestContext<StreamArgs>): StreamResult {
  const vmbus = ctx.kernel.vmbus;
  if (!vmbus) throw new Error('VMBus is not connected');
  const drv = new StreamDriver(ctx.args);
  vmbus.registerDriver(drv);
  ctx.waitUntil(() => false, ctx.args.seconds * 1e9);
  drv.stop();
  const finished = ctx.waitUntil(() => drv.finished(), 10e9);
  return { stats: drv.stats, interrupts: drv.channel?.interrupts ?? 0, signals: drv.channel?.sigEvents ?? 0, finished };
}
