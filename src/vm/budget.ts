// A VM's resource budget: everything its guest can make the host hold, each with a bound and a
// refusal the protocol defines (DESIGN.md "Budgets"; README "Resource budget").
import { DEFAULT_HVSOCK_CONNECTIONS_PER_SERVICE } from '../devices/hvsock/host.js';
import { DEFAULT_PARTITION_CONFIG } from '../hypervisor/partition.js';
import { BudgetError, checkBounds, DEFAULT_SERVER_BUDGET, serverBudget, type ServerBudget } from '../vmbus/server/budget.js';

export interface VmBudget extends ServerBudget {
  /** hv_sock connections to one host service, offered or open. */
  hvsockConnectionsPerService: number;
  /** Lines of the host's log kept (all are counted). */
  hostLogLines: number;
  /** Host faults kept for inspection (all are counted). */
  hostFaults: number;
}

export const DEFAULT_BUDGET: VmBudget = {
  ...DEFAULT_SERVER_BUDGET,
  hvsockConnectionsPerService: DEFAULT_HVSOCK_CONNECTIONS_PER_SERVICE,
  hostLogLines: 1000,
  hostFaults: DEFAULT_PARTITION_CONFIG.hostFaults,
};

/** The defaults with `budget`'s values, each checked (BudgetError names a bad one). */
export function vmBudget(budget: Partial<VmBudget> = {}): VmBudget {
  for (const k of Object.keys(budget)) if (!(k in DEFAULT_BUDGET)) throw new BudgetError(k, 'is not a bound hvkit knows');
  const b = { ...DEFAULT_BUDGET, ...budget };
  checkBounds(b);
  return { ...b, ...serverBudget(serverPart(b)) };
}

/** The server's part of a VM budget. */
export function serverPart(b: VmBudget): ServerBudget {
  const { hvsockConnectionsPerService: _h, hostLogLines: _l, hostFaults: _f, ...server } = b;
  return server;
}
