// A guest-thread workload that times trap round trips: `count` reads of the TSC (or the arm64
// counter), each a request to the host thread and its answer.
import type { GuestContext } from '../guest-context.js';

export default function traps(ctx: GuestContext<{ count: number }>): { nsPerTrap: number } {
  const ops = ctx.kernel.bsp.ops;
  const t0 = performance.now();
  for (let i = 0; i < ctx.args.count; i++) ops.counter();
  return { nsPerTrap: ((performance.now() - t0) * 1e6) / ctx.args.count };
}
