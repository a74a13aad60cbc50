// A guest-thread workload that times trap round trips: `rounds` rounds of `count` reads of the
// TSC (or the arm64 counter) by a trap, each a request to the host thread and its answer. (The
// guest's own counter reads take the value the host publishes, with no trap: RemoteCpu.trapCounter
// traps regardless.) Reports the fastest round: a busy machine only ever makes a round slower.
import type { GuestContext } from '../guest-context.js';
import { RemoteCpu } from '../remote-cpu.js';

export default function traps(ctx: GuestContext<{ count: number; rounds?: number }>): { nsPerTrap: number } {
  const cpu = ctx.kernel.bsp.ops.cpu;
  if (!(cpu instanceof RemoteCpu)) throw new Error('the trap workload runs in a guest thread');
  let best = Infinity;
  for (let round = 0; round < (ctx.args.rounds ?? 1); round++) {
    const t0 = performance.now();
    for (let i = 0; i < ctx.args.count; i++) cpu.trapCounter();
    best = Math.min(best, ((performance.now() - t0) * 1e6) / ctx.args.count);
  }
  return { nsPerTrap: best };
}
