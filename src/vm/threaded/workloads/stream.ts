// A guest-thread workload: the stream device's driver streams to the host (and checks what the
// host streams back) for `seconds` of virtual time, or until it has sent `frames` frames (and
// received `framesIn`), then both ends send FIN. Reports the wall time from the channel's open
// to the host's FIN.
import { StreamDriver, type StreamDriverOptions } from '../../../devices/stream/guest.js';
import type { StreamStats } from '../../../devices/stream/frame.js';
import type { GuestContext } from '../guest-context.js';

export interface StreamArgs extends StreamDriverOptions {
  seconds: number;
  /** Stop after sending this many frames instead (`seconds` then bounds the run, in virtual time). */
  frames?: number;
  /** ... and once this many have come from the host. */
  framesIn?: number;
  /** Frames sent before the timing starts (the code is compiled meanwhile). */
  warmupFrames?: number;
}

export interface StreamResult {
  stats: StreamStats;
  interrupts: number;
  signals: number;
  finished: boolean;
  /** Wall time from the open (or the end of the warm-up) to both FINs, and the data bytes sent in it. */
  ms: number;
  bytes: number;
}

export default function stream(ctx: GuestContext<StreamArgs>): StreamResult {
  const vmbus = ctx.kernel.vmbus;
  if (!vmbus) throw new Error('VMBus is not connected');
  const { frames, framesIn = 0, seconds, warmupFrames = 0 } = ctx.args;
  const drv = new StreamDriver(ctx.args);
  vmbus.registerDriver(drv);
  if (warmupFrames) ctx.waitUntil(() => drv.stats.framesOut >= warmupFrames, seconds * 1e9);
  const t0 = performance.now();
  const bytes0 = drv.stats.bytesOut;
  ctx.waitUntil(() => frames !== undefined && drv.stats.framesOut >= frames && drv.stats.framesIn >= framesIn, seconds * 1e9);
  drv.stop();
  const finished = ctx.waitUntil(() => drv.finished(), 10e9);
  const ms = performance.now() - t0;
  return { stats: drv.stats, interrupts: drv.channel?.interrupts ?? 0, signals: drv.channel?.sigEvents ?? 0, finished, ms, bytes: drv.stats.bytesOut - bytes0 };
}
