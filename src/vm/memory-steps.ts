// The memory script steps: `memory demand SIZE` (a guest workload that wants SIZE of memory;
// `memory demand 0` frees it) and `memory status` (the guest's /proc/meminfo lines and the
// host's dynamic memory view: pages ballooned, hot added, the target).
import type { DmHost } from '../devices/balloon/host.js';
import { formatByteSize, parseByteSize } from './config.js';
import type { Machine } from './machine.js';

export type MemoryStep = { readonly action: 'demand'; readonly bytes: number } | { readonly action: 'status' };

export interface MemoryOutcome {
  readonly ok: boolean;
  readonly values: Record<string, unknown>;
  readonly text: string;
}

/** How long `memory demand` waits for the guest to hold what it wants, virtual seconds. */
export const MEMORY_DEMAND_LIMIT_S = 120;

/** Parses `memory …`; a string is the error. */
export function parseMemoryStep(args: readonly string[]): MemoryStep | string {
  const [action, size, extra] = args;
  if (action === 'status' && size === undefined) return { action };
  if (action === 'demand' && size !== undefined && extra === undefined) {
    if (size === '0') return { action, bytes: 0 };
    const s = parseByteSize(size);
    return s.ok ? { action, bytes: s.bytes } : `memory demand: ${size}: ${s.error}`;
  }
  return 'memory: expected demand SIZE or status';
}

export function memoryStepTitle(step: MemoryStep): string {
  return step.action === 'demand' ? `memory demand ${step.bytes === 0 ? '0' : formatByteSize(step.bytes)}` : 'memory status';
}

const mib = (pages4k: number): string => `${(pages4k / 256).toFixed(pages4k % 256 === 0 ? 0 : 1)} MiB`;

/** Runs a memory step on `m`; `settle` lets virtual time pass until `done` or `limitS`. */
export async function runMemoryStep(m: Machine, step: MemoryStep, settle: (done: () => boolean, limitS: number) => Promise<boolean>): Promise<MemoryOutcome> {
  const demand = m.kernel.memoryDemand;
  if (step.action === 'demand') {
    demand.set(step.bytes);
    const held = await settle(() => demand.residentBytes >= demand.wantedBytes, MEMORY_DEMAND_LIMIT_S);
    const values = { wanted: demand.wantedBytes, resident: demand.residentBytes };
    const text = `${memoryStepTitle(step)}: the guest holds ${formatByteSize(demand.residentBytes)} of ${formatByteSize(demand.wantedBytes)}`;
    return { ok: held, values, text: held ? text : `${text} after ${MEMORY_DEMAND_LIMIT_S} s` };
  }
  const info = m.kernel.meminfo();
  const dm = m.host.device<DmHost>('balloon');
  const host = dm?.snapshot();
  const c = dm?.controller?.snapshot();
  const values = {
    memTotalKiB: info.MemTotal,
    memFreeKiB: info.MemFree,
    ...(host ? { balloonedPages: host.balloonedPages, hotAddedPages: host.hotAddedPages, version: host.version } : {}),
    ...(c ? { targetPages: c.targetPages, demandPages: c.demandPages, currentPages: c.currentPages } : {}),
  };
  const guest = `MemTotal ${info.MemTotal} kB, MemFree ${info.MemFree} kB`;
  const hostText = host
    ? `; host: ballooned ${mib(host.balloonedPages)}, hot-added ${mib(host.hotAddedPages)}${c?.targetPages !== undefined ? `, target ${mib(c.targetPages)} (demand ${mib(c.demandPages ?? 0)})` : c ? ', no status report yet' : ', static memory'}`
    : '; the VM has no balloon device';
  return { ok: true, values, text: `memory status: ${guest}${hostText}` };
}
