// A guest-thread workload for network benchmarks: `flood` sends raw frames of `size` bytes to
// `peer` as fast as the NIC takes them for `warmupSeconds` + `seconds` of virtual time and one
// second more; `count` counts the frames its interface receives in the `seconds` after its own
// `warmupSeconds` (the JIT's turn), a window the flood covers whichever worker started first.
import type { netvscModule } from '../../../devices/network/netvsc/module.js';
import { writeEth } from '../../../devices/network/ether.js';
import type { GuestContext } from '../guest-context.js';

export interface NetArgs {
  role: 'flood' | 'count';
  seconds: number;
  /** Untimed seconds before the counted ones. */
  warmupSeconds: number;
  size: number;
  /** The other VM's MAC (the destination of a flood). */
  peer: Uint8Array;
}

export interface NetResult {
  /** Frames sent (flood) or received (count). */
  frames: number;
}

export default function net(ctx: GuestContext<NetArgs>): NetResult {
  const mod = ctx.kernel.options.modules.find((m) => m.name === 'hv_netvsc') as ReturnType<typeof netvscModule> | undefined;
  if (!ctx.waitUntil(() => mod?.instance?.device('eth0')?.carrier === true, 5e9)) throw new Error('eth0 did not come up');
  const g = mod!.instance!;
  let frames = 0;
  const { seconds, warmupSeconds } = ctx.args;
  if (ctx.args.role === 'count') {
    let counting = false;
    // Read in batches, as from a packet socket's receive ring: a frame costs a copy, no object.
    g.rawBatch('eth0', (b) => void (counting && (frames += b.count)));
    ctx.waitUntil(() => false, warmupSeconds * 1e9);
    counting = true;
    ctx.waitUntil(() => false, seconds * 1e9);
    counting = false;
    return { frames };
  }
  const end = ctx.kernel.schedClock() + (warmupSeconds + seconds + 1) * 1e9;
  const f = new Uint8Array(ctx.args.size);
  writeEth(f, new Uint8Array(ctx.args.peer), g.device('eth0')!.addr, 0x88b5);
  const tx = g.raw('eth0', () => undefined);
  // Bursts of 32 frames back to back, as a qdisc dequeues them (netvsc batches them in sections).
  const burst = Array.from({ length: 32 }, () => f);
  while (ctx.kernel.schedClock() < end) {
    for (let n = burst.length; n === burst.length; frames += n) n = tx.sendBatch(burst);
    ctx.waitUntil(() => false, 20_000);
  }
  return { frames };
}
