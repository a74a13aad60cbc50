// GuestServices for device tests: printk into an array, a settable clock, shutdown requests
// recorded, files in memory. A test that runs a real kernel passes the machine's clock.
import type { GuestServices } from '../../src/devices/device.js';
import { MemoryFiles } from '../../src/guest/memfs.js';

export function stubServices(uptime: () => number = () => 0) {
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
    requestShutdown: (kind) => void shutdowns.push(kind),
    system: { hostname: 'hvkit', osName: 'hvkit', osVersion: '6.1', kernelRelease: '6.1.192-hvkit', arch: 'x86_64' },
    files,
  };
  return { services, lines, shutdowns, files, advance: (ns: number) => (extra += ns) };
}
