// How a synthetic device plugs into a VM. Its host back end offers channels on the host's VMBus
// server and runs on the host's (virtual) time; its guest driver is a VMBus driver the guest
// kernel registers, using only the kernel services below. Both halves are platform-neutral.
import type { ReleaseId } from '../hypervisor/release.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { VmbusClient, VmbusDriver } from '../vmbus/client/client.js';
import type { VmbusServer } from '../vmbus/server/server.js';
import type { DeviceTypeName } from './catalog.js';
import type { Framebuffer } from './framebuffer.js';

/** What a host back end gets from the VM. */
export interface HostContext {
  readonly server: VmbusServer;
  /** The Hyper-V release the host emulates: it decides the versions a device offers. */
  readonly release: ReleaseId;
  /** Virtual time, ns. */
  now(): number;
  /** Runs `f` at virtual time `atNs` (host work: a heartbeat poll, a time sample). */
  schedule(atNs: number, f: () => void): { cancel(): void };
  /** The host's own log (what Hyper-V Manager or an event log would show), not the guest's. */
  log(text: string): void;
  /** The host's wall clock, UTC ns since 1970 (what time sync sends). */
  wallClockNs(): bigint;
  /** The partition's reference counter now, 100 ns units (tlfs.md §6.1). */
  referenceTime(): bigint;
  /**
   * Records that host code threw where something outside the VM (a socket, a file) entered it:
   * the fault is kept for inspection, never propagated (README "Resource budget").
   */
  fault?(where: string, error: unknown): void;
  /** Guest RAM, for back ends that manage it (dynamic memory's hot add and balloon). */
  readonly memory?: GuestMemory;
}

/** A device instance on the host: its type, instance GUID, and whatever the back end exposes. */
export interface HostDevice {
  readonly type: DeviceTypeName | string;
  readonly instanceId: string;
  /** Stops its host-side work (timers). */
  dispose?(): void;
}

/** What the guest kernel lends its VMBus drivers. */
export interface GuestServices {
  /** printk at a level; drivers add their own "module: " prefix as Linux's pr_fmt does. */
  log(level: 'emerg' | 'err' | 'warn' | 'notice' | 'info' | 'debug', text: string): void;
  /** An hvkit note for a step Linux takes silently (debug level). */
  note(text: string): void;
  /**
   * A user-space daemon's syslog line (hv_kvp_daemon, hv_vss_daemon, hv_fcopy_daemon): it goes
   * to the guest's journal, not to the kernel log. `ident` is openlog's.
   */
  syslog(ident: string, level: 'err' | 'warning' | 'info' | 'debug', text: string): void;
  /** CLOCK_REALTIME of the guest, ns since the Unix epoch. */
  realtimeNs(): bigint;
  /** Steps CLOCK_REALTIME to `ns` (do_settimeofday64). */
  setRealtimeNs(ns: bigint): void;
  /** Slews CLOCK_REALTIME by `deltaNs` (adjtimex), as the kernel would over time; the model applies it at once. */
  adjustRealtimeNs(deltaNs: bigint): void;
  /** sched_clock, ns since boot. */
  uptimeNs(): number;
  /** hv_read_reference_counter: the partition reference counter as the guest reads it, 100 ns units. */
  referenceCounter(): bigint;
  /**
   * schedule_delayed_work: runs `work` in process context once `delayNs` of guest time passed
   * (at the next tick after, as the timer wheel does). `cancel` says whether it had not run yet.
   */
  scheduleDelayedWork(delayNs: number, work: () => void): { cancel(): boolean };
  /** orderly_poweroff / orderly_reboot / hibernate, run from process context after the caller returns. */
  requestShutdown(kind: 'poweroff' | 'reboot' | 'hibernate'): void;
  /** The VT the tty is on (tty1): shown by the framebuffer console once there is one. */
  writeConsole?(text: string): void;
  /** RAM as the kernel counts it (/proc/meminfo's MemTotal and what is in use), bytes. */
  meminfo?(): { totalBytes: number; usedBytes: number };
  /** Utsname and /etc/os-release facts some integration services report. */
  readonly system: { hostname: string; osName: string; osVersion: string; kernelRelease: string; arch: string };
  /** The guest's file tree, where its daemons keep state (KVP pools) and receive files (fcopy). */
  readonly files: GuestFiles;
  /** register_framebuffer: the kernel's framebuffer console takes it over (fbcon). */
  registerFramebuffer?(fb: Framebuffer): void;
  /** The page allocator, for drivers that give pages away or bring RAM (hv_balloon). */
  readonly pages?: GuestPageAllocator;
}

/**
 * The kernel's page allocator as a driver sees it, with the counts /proc/meminfo shows. Pages are
 * guest pages, addressed by GPA.
 */
export interface GuestPageAllocator {
  readonly pageSize: number;
  /** MemTotal in pages: the pages the allocator manages. */
  readonly totalPages: number;
  /** MemFree in pages. */
  readonly freePageCount: number;
  /** Pages allocated and not freed. */
  readonly usedPages: number;
  /** Commit charged by user space beyond its resident pages (part of Committed_AS). */
  pendingCommit: number;
  /** A zeroed page, or undefined when none is free. */
  tryAllocPage(): number | undefined;
  freePage(gpa: number): void;
  /** A block of contiguous pages that leaves the managed pages (adjust_managed_page_count), or undefined. */
  takePages(pages: number): number | undefined;
  /** Pages that join the managed pages as free (given back, or hot-added and onlined). */
  addPages(gpa: number, pages: number): void;
}

/** Why a file operation failed, as the errno a Linux daemon would see. */
export type FileErrno = 'ENOENT' | 'EEXIST' | 'EISDIR' | 'ENOTDIR' | 'EACCES' | 'EINVAL' | 'ENOSPC' | 'EIO';

export class GuestFileError extends Error {
  override readonly name = 'GuestFileError';
  constructor(
    readonly errno: FileErrno,
    readonly path: string,
    reason: string,
  ) {
    super(`${path}: ${reason} (${errno})`);
  }
}

/**
 * The guest's file tree, by absolute guest path ("/var/lib/hyperv/.kvp_pool_0"). Paths are
 * normalised first; one that is not absolute or that climbs above "/" is EINVAL. Failures throw
 * GuestFileError. Implementations: in memory (src/guest/memfs.ts), or a folder of the host
 * (src/vm/dirfs.ts) that nothing can escape.
 */
export interface GuestFiles {
  /** The whole file, or undefined if there is none. */
  read(path: string): Uint8Array | undefined;
  /** Creates or replaces the file (`exclusive`: EEXIST if it exists); parents must exist. */
  write(path: string, data: Uint8Array, options?: { exclusive?: boolean }): void;
  /**
   * pwrite: writes `data` into the existing file at byte `offset` (a safe integer ≥ 0, else
   * EINVAL), keeping the rest; past the end the gap reads as zeros. ENOENT if there is no file.
   */
  writeAt(path: string, offset: number, data: Uint8Array): void;
  remove(path: string): void;
  exists(path: string): boolean;
  isDirectory(path: string): boolean;
  /** mkdir -p. */
  mkdirs(path: string): void;
  /** Entry names of a directory, sorted. */
  list(path: string): string[];
}

/**
 * The absolute, normalised form of a guest path ("." and ".." resolved, repeated "/" folded), or
 * undefined when it is not absolute or would climb above the root.
 */
export function normaliseGuestPath(path: string): string | undefined {
  if (!path.startsWith('/') || path.includes('\0')) return undefined;
  const parts: string[] = [];
  for (const p of path.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      if (parts.length === 0) return undefined;
      parts.pop();
    } else parts.push(p);
  }
  return `/${parts.join('/')}`;
}

/**
 * A Linux module with VMBus drivers: its init registers them (module_init order matters for
 * logs). `vmbus` is the connected VMBus driver, for modules that use more than drivers (hv_sock's
 * TL_CONNECT_REQUEST); the kernel always passes it.
 */
export interface GuestModule {
  readonly name: string;
  init(services: GuestServices, register: (driver: VmbusDriver) => void, vmbus?: VmbusClient): void;
}
