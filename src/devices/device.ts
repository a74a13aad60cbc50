// How a synthetic device plugs into a VM. Its host back end offers channels on the host's VMBus
// server and runs on the host's (virtual) time; its guest driver is a VMBus driver the guest
// kernel registers, using only the kernel services below. Both halves are platform-neutral.
import type { ReleaseId } from '../hypervisor/release.js';
import type { VmbusDriver } from '../vmbus/client/client.js';
import type { VmbusServer } from '../vmbus/server/server.js';
import type { DeviceTypeName } from './catalog.js';

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
  /** CLOCK_REALTIME of the guest, ns since the Unix epoch. */
  realtimeNs(): bigint;
  /** Steps CLOCK_REALTIME to `ns` (do_settimeofday64). */
  setRealtimeNs(ns: bigint): void;
  /** Slews CLOCK_REALTIME by `deltaNs` (adjtimex), as the kernel would over time; the model applies it at once. */
  adjustRealtimeNs(deltaNs: bigint): void;
  /** sched_clock, ns since boot. */
  uptimeNs(): number;
  /** orderly_poweroff / orderly_reboot / hibernate, run from process context after the caller returns. */
  requestShutdown(kind: 'poweroff' | 'reboot' | 'hibernate'): void;
  /** Utsname and /etc/os-release facts some integration services report. */
  readonly system: { hostname: string; osName: string; osVersion: string; kernelRelease: string; arch: string };
}

/** A Linux module with VMBus drivers: its init registers them (module_init order matters for logs). */
export interface GuestModule {
  readonly name: string;
  init(services: GuestServices, register: (driver: VmbusDriver) => void): void;
}
