// What one guest can make the VMBus host hold, and the bound on each (DESIGN.md "Budgets"). Each
// bound has a refusal the protocol defines; README "Resource budget" says what the guest sees.
import { MAX_CHANNEL_RELIDS } from '../wire/constants.js';

export interface ServerBudget {
  /** Channels offered at once (relids). At most 2047: relid 0 is never used (OpenVMM MAX_CHANNELS). */
  channels: number;
  /** Complete GPADLs the host keeps mapped. */
  gpadls: number;
  /** 4 KiB pages those GPADLs name, in all. */
  gpadlPages: number;
  /** GPADLs whose GPADL_BODY messages are still awaited. */
  gpadlsInAssembly: number;
  /** Host messages waiting for a guest's message slot before the host takes no more guest messages. */
  queuedMessages: number;
  /** Violations kept for inspection (all are counted). */
  violations: number;
}

export const DEFAULT_SERVER_BUDGET: ServerBudget = {
  channels: MAX_CHANNEL_RELIDS - 1,
  gpadls: 4096,
  gpadlPages: 1 << 20,
  gpadlsInAssembly: 64,
  queuedMessages: 16,
  violations: 100,
};

/** A budget value that cannot be used. */
export class BudgetError extends RangeError {
  override readonly name = 'BudgetError';
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`budget.${field}: ${reason}`);
  }
}

/** Throws BudgetError for the first bound that is not a positive integer. */
export function checkBounds(b: object): void {
  for (const [field, v] of Object.entries(b)) if (!Number.isSafeInteger(v) || v < 1) throw new BudgetError(field, `${v} is not a positive integer`);
}

/** The defaults with `budget`'s values, each checked. */
export function serverBudget(budget: Partial<ServerBudget> = {}): ServerBudget {
  const b = { ...DEFAULT_SERVER_BUDGET, ...budget };
  checkBounds(b);
  if (b.channels > MAX_CHANNEL_RELIDS - 1) throw new BudgetError('channels', `${b.channels} exceeds the ${MAX_CHANNEL_RELIDS - 1} relids VMBus has`);
  return b;
}
