// The guest's VMBus state as plain data, the fields Linux exposes in sysfs
// (drivers/hv/vmbus_drv.c: the device attributes and the channels/<relid>/ directory), so
// lsvmbus, a sysfs writer or a debugger can show it without touching live objects.
import type { GuestChannelState } from './channel.js';
import type { RingSnapshot } from '../ring/debuginfo.js';

export type { RingSnapshot } from '../ring/debuginfo.js';

/**
 * MNF state of a monitored channel, from the two monitor pages (server = monitor_pages[0],
 * client = monitor_pages[1]). `pending` is the whole trigger group's word, as Linux shows it.
 */
export interface MonitorSnapshot {
  serverPending: number;
  clientPending: number;
  serverLatency: number;
  clientLatency: number;
  serverConnId: number;
  clientConnId: number;
}

export interface ChannelSnapshot {
  relid: number;
  /** Linux's enum vmbus_channel_state by name (sysfs shows its number, LINUX_CHANNEL_STATE). */
  state: GuestChannelState;
  subChannelIndex: number;
  /** monitorid from the offer (0xff-like values are what the host sent; undefined when not allocated). */
  monitorId: number | undefined;
  targetCpu: number;
  targetVp: number;
  connectionId: number;
  /** Counters Linux keeps per channel. */
  interrupts: number;
  sigEvents: number;
  rescinded: boolean;
  /** Guest→host ring (outbound) and host→guest ring (inbound), while open. */
  outbound: RingSnapshot | undefined;
  inbound: RingSnapshot | undefined;
  monitor: MonitorSnapshot | undefined;
}

export interface DeviceSnapshot {
  /** Primary channel's relid: sysfs `id`. */
  id: number;
  classId: string;
  instanceId: string;
  /** Linux's enum vmbus_device_type for the class (sysfs `device`), HV_UNKNOWN (16) if not known. */
  deviceType: number;
  /** PCI_VENDOR_ID_MICROSOFT (sysfs `vendor`). */
  vendorId: number;
  driver: string | undefined;
  /** The primary first, then its sub-channels in offer order. */
  channels: ChannelSnapshot[];
}

export interface VmbusSnapshot {
  state: 'disconnected' | 'connecting' | 'connected';
  /** "5.3", or "" before connecting. */
  version: string;
  devices: DeviceSnapshot[];
}
