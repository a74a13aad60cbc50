// The guest's storage stack as the VM layer reaches it (scripts, the CLI's sysfs and lsvmbus): the
// hv_storvsc module's disks and hosts, and the host's storage controllers.
import type { GuestStorage, ScsiHostSnapshot, StorageModule } from '../devices/storage/guest.js';
import { STORAGE_MODULE_NAME } from '../devices/storage/guest.js';
import type { StorvspHost } from '../devices/storage/host.js';
import type { Machine } from './machine.js';

/** The guest's storage stack, once hv_storvsc initialised. */
export function guestStorage(m: Machine): GuestStorage | undefined {
  const mod = m.kernel.options.modules.find((x) => x.name === STORAGE_MODULE_NAME) as StorageModule | undefined;
  return mod?.storage;
}

/** The host's storage controllers of a type, in offer order. */
export function storageControllers(m: Machine, type: 'scsi' | 'ide' | 'fc' = 'scsi'): StorvspHost[] {
  return m.host.devices.filter((d) => d.type === type) as StorvspHost[];
}

/** The guest's SCSI hosts and their disks as plain data (empty without the storage module). */
export function storageSnapshot(m: Machine): ScsiHostSnapshot[] {
  return guestStorage(m)?.snapshot() ?? [];
}
