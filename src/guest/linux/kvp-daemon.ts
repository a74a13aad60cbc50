// hv_kvp_daemon for the real Linux guest: hvkit's model of Linux 6.1's tools/hv/hv_kvp_daemon.c
// (src/devices/kvp/daemon.ts), its descriptor on the Linux module's own /dev/vmbus/hv_kvp
// (hv_utils_transport.c's chardev mode, through linux/shim/chardev.c). It registers with
// KVP_OP_REGISTER1; Linux's hv_kvp.c answers with its version, then forwards the host's
// requests, which the daemon answers from its pool files (/var/lib/hyperv/.kvp_pool_N), as
// systemd's hv-kvp-daemon.service would once the device exists.
import type { GuestFiles, GuestServices } from '../../devices/device.js';
import { KvpDaemon } from '../../devices/kvp/daemon.js';
import { DEFAULT_KERNEL } from '../kernel.js';
import { MemoryFiles } from '../memfs.js';
import type { LinuxGuest } from './guest.js';

/** The misc device hv_kvp.c registers (kvp_devname). */
export const KVP_DEVICE = 'vmbus/hv_kvp';

/**
 * What uname and /etc/os-release say in this guest: the model's facts for a 32-bit x86 guest of
 * the same kernel (GuestServices.system in src/guest/services.ts), so that both guests' daemons
 * give the host the same answers.
 */
export function linuxGuestSystem(): GuestServices['system'] {
  const [a, b, c] = DEFAULT_KERNEL.version;
  return { hostname: DEFAULT_KERNEL.hostname, osName: 'hvkit', osVersion: `${a}.${b}`, kernelRelease: `${a}.${b}.${c}-hvkit`, arch: 'i686' };
}

export interface LinuxKvpDaemonOptions {
  /** The guest's file tree (the pools live in it); in memory unless given. */
  readonly files?: GuestFiles;
  readonly pid?: number;
}

/** The daemon process of a Linux guest, not yet started (start() opens the device and registers). */
export function linuxKvpDaemon(guest: LinuxGuest, options: LinuxKvpDaemonOptions = {}): KvpDaemon {
  return new KvpDaemon(
    {
      files: options.files ?? new MemoryFiles(),
      system: linuxGuestSystem(),
      open: (wake) => guest.chardevs.openFile(KVP_DEVICE, wake),
      // openlog("KVP", 0, LOG_USER).
      syslog: (line) => guest.syslog('KVP', line.priority, line.message),
    },
    options.pid,
  );
}
