// Machines for the dynamic memory tests: a VM with the balloon device (and nothing else), its
// guest's hv_balloon driver, the host's VSP, and what /proc/meminfo would show.
import type { DynamicMemoryConfig } from '../../../src/devices/balloon/controller.js';
import type { HvBalloonDriver, HvBalloonModule, HvBalloonOptions } from '../../../src/devices/balloon/guest.js';
import type { DmHost } from '../../../src/devices/balloon/host.js';
import type { ReleaseId } from '../../../src/hypervisor/release.js';
import { Machine } from '../../../src/vm/machine.js';

export const MIB = 1 << 20;
/** 4 KiB frames in `bytes`. */
export const frames = (bytes: number): number => bytes / 4096;

export interface BalloonRig {
  readonly m: Machine;
  readonly host: DmHost;
  readonly driver: HvBalloonDriver;
  /** MemTotal and MemFree, kB. */
  meminfo(): { MemTotal: number; MemFree: number };
  /** The guest's kernel log lines that mention hv_balloon. */
  balloonLog(): string[];
}

/**
 * A booted VM with only the balloon device. With `dynamic` the host runs its policy (without it,
 * `memoryMaximum` still backs RAM for hot adds the test starts itself); the guest's
 * pressure_report_delay is 0 unless given, so that reports start at once.
 */
export function balloonRig(opts: { release?: ReleaseId; memory?: number; memoryMaximum?: number; dynamic?: Omit<DynamicMemoryConfig, 'startup'>; balloon?: HvBalloonOptions } = {}): BalloonRig {
  const memory = opts.memory ?? 256 * MIB;
  const dynamicMemory = opts.dynamic ? { startup: memory, ...opts.dynamic } : undefined;
  const m = new Machine({
    release: opts.release ?? 'ws2022',
    vps: 2,
    memory,
    ...(dynamicMemory || opts.memoryMaximum ? { memoryMaximum: dynamicMemory?.maximum ?? opts.memoryMaximum } : {}),
    devices: [{ type: 'balloon', ...(dynamicMemory ? { dynamicMemory } : {}) }],
    kernel: { balloon: { pressureReportDelay: 0, ...opts.balloon } },
  });
  m.boot();
  const host = m.devices[0] as DmHost;
  const mod = m.kernel.options.modules.find((x) => x.name === 'hv_balloon') as HvBalloonModule;
  return {
    m,
    host,
    driver: mod.driver!,
    meminfo: () => m.kernel.meminfo(),
    balloonLog: () => m.kernel.log.lines('debug').filter((l) => l.includes('hv_balloon')).map((l) => l.replace(/^\[[ .0-9]+\] /, '')),
  };
}
