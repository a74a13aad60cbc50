// Device class (interface type) GUIDs of VMBus offers (vmbus.md §10; Linux include/linux/hyperv.h).

export const DeviceClass = {
  NIC: 'f8615163-df3e-46c5-913f-f2d2f965ed0e',
  IDE: '32412632-86cb-44a2-9b5c-50d1417354f5',
  SCSI: 'ba6163d9-04a1-4d29-b605-72e2ffb1dc7f',
  SYNTHFC: '2f9bcc4a-0069-4af3-b76b-6fd0be528cda',
  ND: '8c2eaf3d-32a7-4b09-ab99-bd1f1c86b501',
  PCIE: '44c4f61d-4444-4400-9d52-802e27ede19f',
  SYNTHVID: 'da0a7802-e377-4aac-8e77-0558eb1073f8',
  KBD: 'f912ad6d-2b17-48ea-bd65-f927a61c7684',
  MOUSE: 'cfa8b69e-5b4a-4cc0-b98b-8ba1a1f3f95a',
  KVP: 'a9a0f4e7-5a45-4d96-b827-8a841e8c03e6',
  TS: '9527e630-d0ae-497b-adce-e80ab0175caf',
  HEART_BEAT: '57164f39-9115-4e78-ab55-382f3bd5422d',
  SHUTDOWN: '0e0b6031-5213-4934-818b-38d90ced39db',
  FCOPY: '34d14be3-dee4-41c8-9ae7-6b174977c192',
  VSS: '35fa2e29-ea23-4236-96ae-3a6ebacba440',
  DM: '525074dc-8985-46e2-8057-a307dc18a502',
  AVMA1: 'f8e65716-3cb3-4a06-9a60-1889c5cccab5',
  AVMA2: '3375baf4-9e15-4b30-b765-67acb10d607b',
  RDV: '276aacf4-ac15-426c-98dd-7521ad3f01fe',
  IMC: 'c376c1c3-d276-48d2-90a9-c04748072c60',
} as const;

/** Offers Linux ignores: no channel, and no RELID_RELEASED (channel_mgmt.c vmbus_unsupported_devs). */
export const IGNORED_CLASSES: ReadonlySet<string> = new Set([DeviceClass.AVMA1, DeviceClass.AVMA2, DeviceClass.RDV, DeviceClass.IMC]);

/** Classes whose channels Linux spreads over CPUs (init_vp_index "perf" devices). */
export const PERF_CLASSES: ReadonlySet<string> = new Set([DeviceClass.IDE, DeviceClass.SCSI, DeviceClass.SYNTHFC, DeviceClass.NIC, DeviceClass.ND]);

/** Classes Linux accepts in an isolated (SNP/TDX) guest, besides hv_sock offers. */
export const ISOLATION_ALLOWED_CLASSES: ReadonlySet<string> = new Set([
  DeviceClass.SCSI,
  DeviceClass.NIC,
  DeviceClass.PCIE,
  DeviceClass.TS,
  DeviceClass.HEART_BEAT,
  DeviceClass.SHUTDOWN,
]);

/** Linux's enum vmbus_device_type by class (channel_mgmt.c vmbus_devs); what sysfs `device` shows. */
export const DEVICE_TYPE_OF_CLASS: ReadonlyMap<string, number> = new Map([
  [DeviceClass.IDE, 0],
  [DeviceClass.SCSI, 1],
  [DeviceClass.SYNTHFC, 2],
  [DeviceClass.NIC, 3],
  [DeviceClass.ND, 4],
  [DeviceClass.PCIE, 5],
  [DeviceClass.SYNTHVID, 6],
  [DeviceClass.KBD, 7],
  [DeviceClass.MOUSE, 8],
  [DeviceClass.KVP, 9],
  [DeviceClass.TS, 10],
  [DeviceClass.HEART_BEAT, 11],
  [DeviceClass.SHUTDOWN, 12],
  [DeviceClass.FCOPY, 13],
  [DeviceClass.VSS, 14],
  [DeviceClass.DM, 15],
]);
/** HV_UNKNOWN: every other class, hv_sock included. */
export const HV_UNKNOWN = 16;

/** hv_sock service IDs: this template with the port in the first 32 bits. */
export const HVSOCK_TEMPLATE = '00000000-facb-11e6-bd58-64006a7986d3';

const NAMES = new Map<string, string>(Object.entries(DeviceClass).map(([k, v]) => [v, k]));
export const className = (g: string): string | undefined => NAMES.get(g.toLowerCase());
