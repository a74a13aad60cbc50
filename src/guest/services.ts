// The kernel services VMBus drivers use (src/devices/device.ts GuestServices): printk, the
// guest's wall clock, orderly shutdown, and utsname facts.
import type { GuestFiles, GuestPageAllocator, GuestServices } from '../devices/device.js';
import type { Framebuffer } from '../devices/framebuffer.js';
import { consoleLine, Fbcon, onConsole } from './fbcon.js';
import { MemoryFiles } from './memfs.js';
import type { Kernel } from './kernel.js';

/** Without an RTC Linux's clock starts at the epoch, as here. */
const VT_PENDING_MAX = 16 * 1024;

const NO_RTC_NS = 0n;

export class KernelServices implements GuestServices {
  /** CLOCK_REALTIME minus sched_clock, ns: set from the RTC at boot, moved by settimeofday. */
  private realtimeOffset: bigint;

  readonly files: GuestFiles;
  /** The framebuffer console, once a driver registered a frame buffer (fbcon takes the first). */
  fbcon: Fbcon | undefined;
  /** What the tty wrote to the VT before it could be shown (before boot ended, or no fbcon yet). */
  private vtPending = '';

  get pages(): GuestPageAllocator {
    return this.k.mm;
  }

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

  /**
   * register_framebuffer: fbcon takes the first frame buffer over, redraws the log the VT holds
   * so far and then shows each console line as it is printed.
   */
  registerFramebuffer(fb: Framebuffer): void {
    if (this.fbcon) return;
    const con = new Fbcon(fb);
    this.fbcon = con;
    con.write(this.k.log.records.filter(onConsole).map(consoleLine).join(''));
    this.k.log.onRecord((r) => {
      if (onConsole(r)) con.write(consoleLine(r));
    });
    this.k.log.info(con.banner);
    this.flushConsole();
  }

  /**
   * The tty's output on the VT (tty1) that fbcon shows. A getty prompts once boot is over, so
   * what the tty writes before that waits, kept to the last VT_PENDING_MAX characters, and
   * follows the boot log on the screen.
   */
  writeConsole(text: string): void {
    if (this.fbcon && this.k.stage !== 'booting') return this.fbcon.write(text);
    this.vtPending = (this.vtPending + text).slice(-VT_PENDING_MAX);
  }

  /** Shows what the tty wrote while the VT could not: at the end of boot, or when fbcon arrives. */
  flushConsole(): void {
    if (!this.fbcon || this.k.stage === 'booting' || !this.vtPending) return;
    const text = this.vtPending;
    this.vtPending = '';
    this.fbcon.write(text);
  }

  /** free(1)'s view: MemTotal and what is not MemFree, from the kernel's /proc/meminfo. */
  meminfo(): { totalBytes: number; usedBytes: number } {
    const i = this.k.meminfo();
    return { totalBytes: i.MemTotal * 1024, usedBytes: (i.MemTotal - i.MemFree) * 1024 };
  }

  get system(): GuestServices['system'] {
    const [a, b, c] = this.k.options.version;
    return { hostname: this.k.options.hostname, osName: 'hvkit', osVersion: `${a}.${b}`, kernelRelease: `${a}.${b}.${c}-hvkit`, arch: this.k.arch === 'x64' ? 'x86_64' : this.k.arch === 'x86' ? 'i686' : 'aarch64' };
  }
}
