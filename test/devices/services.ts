// GuestServices for device tests: printk into an array, a settable clock, shutdown requests
// recorded, files in memory. A test that runs a real kernel passes the machine's clock.
import type { GuestServices, HostContext } from '../../src/devices/device.js';
import { MemoryFiles } from '../../src/guest/memfs.js';
import type { Machine } from '../../src/vm/machine.js';

/** The host context a Machine gives its devices, with its log lines collected into `log`. */
export function hostContext(m: Machine, log: string[] = [], over: Partial<HostContext> = {}): HostContext {
  return {
    server: m.vmbus!.server,
    release: m.partition.release.id,
    now: () => m.nowNs,
    schedule: (at, f) => m.partition.clock.schedule(at, f),
    log: (t) => void log.push(t),
    wallClockNs: () => m.host.wallClockNs(),
    referenceTime: () => m.partition.referenceTime.now(),
    ...over,
  };
}

/**
 * `uptime` is the guest's clock; delayed work runs when `runTimers()` is called after it passed
 * (a test with a Machine can pass `() => m.nowNs` and call runTimers after m.runFor).
 */
export function stubServices(uptime: () => number = () => 0) {
  const timers: { due: number; work: () => void; done: boolean }[] = [];
  const lines: string[] = [];
  const shutdowns: string[] = [];
  let realtime = 1_767_225_600_000_000_000n;
  let extra = 0;
  const files = new MemoryFiles();
  const services: GuestServices = {
    log: (level, text) => void lines.push(`${level}: ${text}`),
    note: () => {},
    realtimeNs: () => realtime,
    setRealtimeNs: (ns) => void (realtime = ns),
    adjustRealtimeNs: (d) => void (realtime += d),
    uptimeNs: () => uptime() + extra,
    referenceCounter: () => BigInt(Math.floor((uptime() + extra) / 100)),
    scheduleDelayedWork: (delayNs, work) => {
      const t = { due: uptime() + extra + delayNs, work, done: false };
      timers.push(t);
      return { cancel: () => !t.done && (t.done = true) };
    },
    requestShutdown: (kind) => void shutdowns.push(kind),
    system: { hostname: 'hvkit', osName: 'hvkit', osVersion: '6.1', kernelRelease: '6.1.192-hvkit', arch: 'x86_64' },
    files,
  };
  const runTimers = () => {
    for (const t of timers.filter((x) => !x.done && x.due <= uptime() + extra)) {
      t.done = true;
      t.work();
    }
  };
  return { services, lines, shutdowns, files, runTimers, advance: (ns: number) => (extra += ns) };
}
