// A guest-thread workload that only reports how far the kernel got.
import type { GuestContext } from '../guest-context.js';

export default function boot(ctx: GuestContext): string {
  return ctx.kernel.stage;
}
