// The kernel services VMBus drivers use (src/devices/device.ts GuestServices): printk, the
// guest's wall clock, orderly shutdown, and utsname facts.
import type { GuestFiles, GuestServices } from '../devices/device.js';
import { MemoryFiles } from './memfs.js';
import type { Kernel } from './kernel.js';

/** Without an RTC Linux's clock starts at the epoch, as here. */
const NO_RTC_NS = 0n;

export class KernelServices implements GuestServices {
  /** CLOCK_REALTIME minus sched_clock, ns: set from the RTC at boot, moved by settimeofday. */
  private realtimeOffset: bigint;

  readonly files: GuestFiles;

  constructor(private readonly k: Kernel) {
    this.realtimeOffset = k.platform.rtcNs?.() ?? NO_RTC_NS;
    this.files = k.platform.files ?? new MemoryFiles();
  }

  log(level: Parameters<GuestServices['log']>[0], text: string): void {
    this.k.log.printk(level, text);
  }

  note(text: string): void {
    this.k.log.note(text);
  }

  syslog(ident: string, level: 'err' | 'warning' | 'info' | 'debug', text: string): void {
    this.k.journal.printk(level === 'warning' ? 'warn' : level, `${ident}: ${text}`);
  }

  uptimeNs(): number {
    return this.k.schedClock();
  }

  referenceCounter(): bigint {
    const k = this.k;
    return k.refClock.read((k.cpus[k.currentCpu] ?? k.bsp).ops);
  }

  realtimeNs(): bigint {
    return this.realtimeOffset + BigInt(Math.round(this.k.schedClock()));
  }

  setRealtimeNs(ns: bigint): void {
    this.realtimeOffset = ns - BigInt(Math.round(this.k.schedClock()));
  }

  adjustRealtimeNs(deltaNs: bigint): void {
    this.realtimeOffset += deltaNs;
  }

  scheduleDelayedWork(delayNs: number, work: () => void): { cancel(): boolean } {
    return this.k.delayedWork(delayNs, work);
  }

  requestShutdown(kind: 'poweroff' | 'reboot' | 'hibernate'): void {
    this.k.requestShutdown(kind);
  }

  meminfo(): { totalBytes: number; usedBytes: number } {
    return { totalBytes: this.k.platform.memory.size, usedBytes: this.k.mm.usedBytes };
  }

  get system(): GuestServices['system'] {
    const [a, b, c] = this.k.options.version;
    return { hostname: this.k.options.hostname, osName: 'hvkit', osVersion: `${a}.${b}`, kernelRelease: `${a}.${b}.${c}-hvkit`, arch: this.k.arch === 'x64' ? 'x86_64' : this.k.arch === 'x86' ? 'i686' : 'aarch64' };
  }
}
