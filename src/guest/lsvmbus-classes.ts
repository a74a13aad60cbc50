// The class descriptions Linux's tools/hv/lsvmbus prints, for the guest's shell and the command
// line's lsvmbus alike.
import { DeviceClass } from '../vmbus/wire/guids.js';

/** lsvmbus's vmbus_dev_dict: the description of each class GUID it knows; "Unknown" for the rest. */
export const LSVMBUS_CLASS_DESCRIPTIONS: ReadonlyMap<string, string> = new Map([
  [DeviceClass.SHUTDOWN, '[Operating system shutdown]'],
  [DeviceClass.TS, '[Time Synchronization]'],
  [DeviceClass.HEART_BEAT, '[Heartbeat]'],
  [DeviceClass.KVP, '[Data Exchange]'],
  [DeviceClass.VSS, '[Backup (volume checkpoint)]'],
  [DeviceClass.FCOPY, '[Guest services]'],
  [DeviceClass.DM, '[Dynamic Memory]'],
  [DeviceClass.MOUSE, 'Synthetic mouse'],
  [DeviceClass.KBD, 'Synthetic keyboard'],
  [DeviceClass.SYNTHVID, 'Synthetic framebuffer adapter'],
  [DeviceClass.NIC, 'Synthetic network adapter'],
  [DeviceClass.IDE, 'Synthetic IDE Controller'],
  [DeviceClass.SCSI, 'Synthetic SCSI Controller'],
  [DeviceClass.SYNTHFC, 'Synthetic fiber channel adapter'],
  [DeviceClass.ND, 'Synthetic RDMA adapter'],
  [DeviceClass.PCIE, 'PCI Express pass-through'],
  [DeviceClass.RDV, '[Reserved system device]'],
  [DeviceClass.AVMA1, '[Reserved system device]'],
  [DeviceClass.AVMA2, '[Reserved system device]'],
]);
