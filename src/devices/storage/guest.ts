// The guest's storage stack as one Linux module: hv_storvsc with the SCSI core and its upper
// drivers sd (disks) and sr (CD/DVD). Other guest code reaches the disks through `stack`.
import type { GuestModule } from '../device.js';
import type { BlockDevice } from './storvsc/block.js';
import type { ScsiCore } from './storvsc/scsi-core.js';
import { attachSd, type SdDisk } from './storvsc/sd.js';
import { attachSr, type SrDrive } from './storvsc/sr.js';
import { storvscModule, type StorvscDriver } from './storvsc/storvsc.js';

/** What a booted guest's storage stack holds. */
export interface GuestStorage {
  readonly core: ScsiCore;
  readonly driver: StorvscDriver;
  /** Disks (sda, sdb, ...) and CD/DVD drives (sr0, ...) in the order they were attached. */
  readonly disks: SdDisk[];
  readonly drives: SrDrive[];
  /** The block device at SCSI address host:channel:target:lun, if any. */
  device(host: number, channel: number, target: number, lun: number): BlockDevice | undefined;
}

export interface StorageModule extends GuestModule {
  /** Set once the module initialised (after VMBus connected). */
  readonly storage: GuestStorage | undefined;
}

export const STORAGE_MODULE_NAME = 'hv_storvsc';

/** hv_storvsc, with sd and sr registered on its SCSI core. */
export function storageModule(): StorageModule {
  const disks: SdDisk[] = [];
  const drives: SrDrive[] = [];
  let storage: GuestStorage | undefined;
  const inner = storvscModule((core) => {
    attachSd(core, disks);
    attachSr(core, drives);
  });
  return {
    name: STORAGE_MODULE_NAME,
    get storage() {
      return storage;
    },
    init(services, register, vmbus) {
      inner.init(services, register, vmbus);
      const stack = inner.stack;
      if (!stack) return;
      storage = {
        core: stack.core,
        driver: stack.driver,
        disks,
        drives,
        device: (h, c, t, l) =>
          [...disks, ...drives].find((d) => d.present && d.sdev.host.hostNo === h && d.sdev.channel === c && d.sdev.id === t && d.sdev.lun === l),
      };
    },
  };
}
