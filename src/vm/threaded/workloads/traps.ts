// A guest-thread workload that times trap round trips: `rounds` rounds of `count` reads of the
// VP index register (RDMSR on x86, HvCallGetVpRegisters on arm64), each a request to the host
// thread and its answer. (The counter is no trap any more: the host publishes it.) Reports the
// fastest round: a busy machine only ever makes a round slower.
import type { GuestContext } from '../guest-context.js';

export default function traps(ctx: GuestContext<{ count: number; rounds?: number }>): { nsPerTrap: number } {
  const ops = ctx.kernel.bsp.ops;
  let best = Infinity;
  for (let round = 0; round < (ctx.args.rounds ?? 1); round++) {
    const t0 = performance.now();
    for (let i = 0; i < ctx.args.count; i++) ops.getReg('VP_INDEX');
    best = Math.min(best, ((performance.now() - t0) * 1e6) / ctx.args.count);
  }
  return { nsPerTrap: best };
}
