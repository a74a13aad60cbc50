// The VMBus devices hvkit knows by name: the class each is offered under, and the name a VM
// configuration uses for it. Linux's own table (drivers/hv/channel_mgmt.c vmbus_devs) gives the
// class GUIDs, the device type index and which devices are "perf" devices.
import { DeviceClass } from '../vmbus/wire/guids.js';

/** Device names a VM configuration may list, in the order the default set offers them. */
export const DEVICE_TYPES = [
  'balloon',
  'keyboard',
  'video',
  'mouse',
  'shutdown',
  'timesync',
  'heartbeat',
  'kvp',
  'vss',
  'scsi',
  'network',
  'fcopy',
  'ide',
  'fc',
] as const;
export type DeviceTypeName = (typeof DEVICE_TYPES)[number];

/** What hvkit's emulated Hyper-V offers a Generation 2 VM when the configuration names no devices. */
export const DEFAULT_DEVICES: readonly DeviceTypeName[] = ['balloon', 'keyboard', 'video', 'mouse', 'shutdown', 'timesync', 'heartbeat', 'kvp', 'vss', 'scsi', 'network'];

export const DEVICE_CLASS: Record<DeviceTypeName, string> = {
  balloon: DeviceClass.DM,
  keyboard: DeviceClass.KBD,
  video: DeviceClass.SYNTHVID,
  mouse: DeviceClass.MOUSE,
  shutdown: DeviceClass.SHUTDOWN,
  timesync: DeviceClass.TS,
  heartbeat: DeviceClass.HEART_BEAT,
  kvp: DeviceClass.KVP,
  vss: DeviceClass.VSS,
  scsi: DeviceClass.SCSI,
  network: DeviceClass.NIC,
  fcopy: DeviceClass.FCOPY,
  ide: DeviceClass.IDE,
  fc: DeviceClass.SYNTHFC,
};
