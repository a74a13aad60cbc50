// The guest's storage stack as one Linux module: hv_storvsc with the SCSI core and its upper
// drivers sd (disks) and sr (CD/DVD). Other guest code reaches the disks through `stack`.
import type { GuestModule } from '../device.js';
import type { BlockDevice } from './storvsc/block.js';
import type { ScsiCore } from './storvsc/scsi-core.js';
import { attachSd, type SdDisk } from './storvsc/sd.js';
import { attachSr, type SrDrive } from './storvsc/sr.js';
import { storvscModule, type StorvscDriver } from './storvsc/storvsc.js';
import { vmstorVersionString } from './wire.js';

/** What a booted guest's storage stack holds. */
export interface GuestStorage {
  readonly core: ScsiCore;
  readonly driver: StorvscDriver;
  /** Disks (sda, sdb, ...) and CD/DVD drives (sr0, ...) in the order they were attached. */
  readonly disks: SdDisk[];
  readonly drives: SrDrive[];
  /** The block device at SCSI address host:channel:target:lun, if any. */
  device(host: number, channel: number, target: number, lun: number): BlockDevice | undefined;
  /** The SCSI host of the storage controller with this instance GUID. */
  hostOf(instanceId: string): number | undefined;
  /** Hosts, devices and disks as plain data (sysfs, lsvmbus --json). */
  snapshot(): ScsiHostSnapshot[];
}

/** A SCSI host of storvsc as sysfs shows it. */
export interface ScsiHostSnapshot {
  readonly host: number;
  readonly instanceId: string;
  readonly kind: 'scsi' | 'ide' | 'fc';
  /** The storage protocol negotiated, "6.2". */
  readonly protocol: string;
  readonly subChannels: number;
  readonly canQueue: number;
  readonly maxSectors: number;
  /** fc_host's port_name and node_name ("0x..."), on Fibre Channel. */
  readonly fc?: { readonly portName: string; readonly nodeName: string };
  readonly devices: readonly {
    readonly address: string;
    readonly type: number;
    readonly vendor: string;
    readonly model: string;
    readonly rev: string;
    readonly scsiLevel: number;
    /** The block device: name, size in 512-byte sectors, its queue limits. */
    readonly block?: { readonly name: string; readonly sectors: number; readonly logicalBlockSize: number; readonly physicalBlockSize: number; readonly readOnly: boolean; readonly removable: boolean; readonly rotational: boolean; readonly maxHwSectorsKb: number; readonly discardGranularity: number };
  }[];
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
        hostOf: (instanceId) => [...stack.driver.devices.values()].find((d) => d.channel.deviceName === instanceId.toLowerCase())?.host?.hostNo,
        snapshot: () =>
          [...stack.driver.devices.values()]
            .filter((d) => d.host)
            .map((d) => {
              const host = d.host!;
              return {
                host: host.hostNo,
                instanceId: d.channel.deviceName,
                kind: d.kind,
                protocol: vmstorVersionString(d.version),
                subChannels: d.subchannels.length,
                canQueue: host.canQueue,
                maxSectors: host.maxSectors,
                ...(d.kind === 'fc' ? { fc: { portName: `0x${d.portName.toString(16)}`, nodeName: `0x${d.nodeName.toString(16)}` } } : {}),
                devices: host.devices.map((sdev) => {
                  const sd = disks.find((x) => x.sdev === sdev);
                  const sr = drives.find((x) => x.sdev === sdev);
                  const blk = sd ?? sr;
                  return {
                    address: sdev.name,
                    type: sdev.type,
                    vendor: sdev.vendor,
                    model: sdev.model,
                    rev: sdev.rev,
                    scsiLevel: sdev.scsiLevel,
                    ...(blk
                      ? {
                          block: {
                            name: blk.name,
                            sectors: (blk.capacity * blk.logicalBlockSize) / 512,
                            logicalBlockSize: blk.logicalBlockSize,
                            physicalBlockSize: blk.physicalBlockSize,
                            readOnly: blk.readOnly,
                            removable: sdev.removable,
                            rotational: sd ? sd.rotational : true,
                            maxHwSectorsKb: (host.maxSectors * 512) / 1024,
                            discardGranularity: sd && sd.provisioning === 'unmap' ? Math.max(sd.physicalBlockSize, sd.unmapGranularity * sd.logicalBlockSize) : 0,
                          },
                        }
                      : {}),
                  };
                }),
              };
            }),
      };
    },
  };
}
