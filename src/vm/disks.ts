// The disks of a VM configuration, opened: each storage controller's DeviceSpec gets its back ends
// (raw or VHDX files) and their LUNs. An image that cannot be opened is a DiskOpenError naming
// where the disk was given (the VM file's field, or --disk) and why.
import type { DeviceSpec } from '../devices/registry.js';
import type { BlockBackend } from '../devices/storage/backend.js';
import type { VmConfig } from './config.js';
import { DiskOpenError, openDisk } from './disk-file.js';

/** Opens every disk of `vm`; on a failure the ones already open are closed again. */
export function openVmDevices(vm: VmConfig): DeviceSpec[] {
  const opened: BlockBackend[] = [];
  try {
    return vm.devices.map((d) => {
      const spec: DeviceSpec = { type: d.type, ...(d.instance ? { instance: d.instance } : {}) };
      if (!d.disks?.length) return spec;
      const disks = d.disks.map((disk) => {
        let backend: BlockBackend;
        try {
          backend = openDisk(disk.path, { readOnly: disk.readOnly, dvd: disk.dvd, ...(disk.base ? { relativeTo: disk.base } : {}) });
        } catch (e) {
          if (!(e instanceof DiskOpenError)) throw e;
          throw new DiskOpenError(disk.origin ? `${disk.origin}: ${e.path}` : e.path, e.reason);
        }
        opened.push(backend);
        return { lun: disk.lun, backend, dvd: disk.dvd };
      });
      return { ...spec, disks };
    });
  } catch (e) {
    for (const b of opened) b.close?.();
    throw e;
  }
}
