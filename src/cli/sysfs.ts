// The guest's /sys/bus/vmbus/devices tree, file by file, in Linux 6.1's formats
// (drivers/hv/vmbus_drv.c: the device attributes, vmbus_dev_attr_is_visible, the channels/<relid>/
// attributes and vmbus_chan_attr_is_visible; Documentation/ABI/stable/sysfs-bus-vmbus).
//
// `--sysfs DIR`: DIR plays the part of /sys/bus/vmbus/devices, so it receives one folder per device
// named by its instance GUID (DIR/<guid>/id, DIR/<guid>/channels/<relid>/cpu, ...).
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { guidToBytes } from '../tlfs/struct.js';
import type { ChannelSnapshot, DeviceSnapshot, RingSnapshot, VmbusSnapshot } from '../vmbus/client/snapshot.js';
import { LINUX_CHANNEL_STATE } from '../vmbus/client/channel.js';
import type { ScsiHostSnapshot } from '../devices/storage/guest.js';

/** hvkit's guest has a single NUMA node, so cpu_to_node() of any target CPU is 0. */
const NUMA_NODE = 0;

/** printf "%d" of a kernel int/u32: values of 2^31 and above print negative. */
const d = (n: number): string => `${n | 0}\n`;
/** printf "%u". */
const u = (n: number): string => `${n >>> 0}\n`;
/** printf "%llu" of a u64 counter. */
const llu = (n: number): string => `${BigInt.asUintN(64, BigInt(Math.trunc(n)))}\n`;
/** printf "0x%x". */
const hex = (n: number): string => `0x${(n >>> 0).toString(16)}\n`;

/** "%pUl": a GUID in its usual text form, lower case. */
export function guidText(g: string): string {
  return g.replace(/[{}]/g, '').toLowerCase();
}

/** The device's folder name: dev_set_name(..., "%pUl", if_instance) in vmbus_device_register. */
export function deviceDirName(dev: DeviceSnapshot): string {
  return guidText(dev.instanceId);
}

/** "vmbus:%*phN" of the class GUID: its 16 bytes in wire (mixed-endian) order, as hex. */
export function modalias(dev: DeviceSnapshot): string {
  return `vmbus:${Array.from(guidToBytes(guidText(dev.classId)), (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** channel_vp_mapping: "%u:%u\n" of relid and target CPU, the primary first, then its sub-channels. */
export function channelVpMapping(dev: DeviceSnapshot): string {
  return dev.channels.map((c) => `${c.relid >>> 0}:${c.targetCpu >>> 0}\n`).join('');
}

/** Connection ids are a 24-bit field of the monitor parameter (union hv_connection_id .u.id). */
const connId = (n: number): number => n & 0xffffff;

/**
 * The out_* / in_* files from hv_ringbuffer_get_debuginfo. Linux lists them always, but reading
 * one fails with EINVAL while the ring is not allocated; a written tree cannot hold a failing
 * file, so they are left out then.
 */
function ringFiles(prefix: 'out' | 'in', ring: RingSnapshot | undefined): [string, string][] {
  if (!ring) return [];
  return [
    [`${prefix}_intr_mask`, d(ring.interruptMask)],
    [`${prefix}_read_index`, d(ring.readIndex)],
    [`${prefix}_write_index`, d(ring.writeIndex)],
    [`${prefix}_read_bytes_avail`, d(ring.bytesAvailToRead)],
    [`${prefix}_write_bytes_avail`, d(ring.bytesAvailToWrite)],
  ];
}

/** The attributes of /sys/bus/vmbus/devices/<guid>/, as name → content. */
function deviceFiles(dev: DeviceSnapshot): [string, string][] {
  const files: [string, string][] = [];
  const primary = dev.channels[0];
  // Every attribute that reads the primary channel fails with ENODEV without one.
  if (primary) {
    files.push(['id', d(dev.id)], ['state', d(LINUX_CHANNEL_STATE[primary.state])]);
    // vmbus_dev_attr_is_visible hides monitor_id and the six monitor page files unless the offer
    // allocated a monitor.
    if (primary.monitorId !== undefined) files.push(['monitor_id', d(primary.monitorId)]);
    files.push(['class_id', `{${guidText(dev.classId)}}\n`], ['device_id', `{${guidText(dev.instanceId)}}\n`]);
  }
  files.push(['modalias', `${modalias(dev)}\n`]);
  if (primary) {
    files.push(['numa_node', d(NUMA_NODE)]);
    const m = primary.monitorId !== undefined ? primary.monitor : undefined;
    // server_* read monitor page 1 (monitor_pages[0]), client_* page 2 (monitor_pages[1]).
    if (m) {
      files.push(
        ['server_monitor_pending', d(m.serverPending)],
        ['client_monitor_pending', d(m.clientPending)],
        ['server_monitor_latency', d(m.serverLatency)],
        ['client_monitor_latency', d(m.clientLatency)],
        ['server_monitor_conn_id', d(connId(m.serverConnId))],
        ['client_monitor_conn_id', d(connId(m.clientConnId))],
      );
    }
    files.push(...ringFiles('out', primary.outbound), ...ringFiles('in', primary.inbound));
    files.push(['channel_vp_mapping', channelVpMapping(dev)]);
  }
  files.push(['vendor', hex(dev.vendorId)], ['device', hex(dev.deviceType)]);
  // driver_override_show prints "%s\n" of a NULL pointer when none is set; hvkit never sets one.
  files.push(['driver_override', '(null)\n']);
  // The driver core's uevent file: dev_uevent's DRIVER= when bound, then vmbus_uevent's MODALIAS=.
  files.push(['uevent', `${dev.driver !== undefined ? `DRIVER=${dev.driver}\n` : ''}MODALIAS=${modalias(dev)}\n`]);
  return files;
}

/** The attributes of channels/<relid>/ (vmbus_chan_attrs), as name → content. */
function channelFiles(ch: ChannelSnapshot): [string, string][] {
  const files: [string, string][] = [];
  // Each of these reads one ring and fails with EINVAL while it is not allocated: left out then.
  if (ch.outbound) files.push(['out_mask', u(ch.outbound.interruptMask)]);
  if (ch.inbound) files.push(['in_mask', u(ch.inbound.interruptMask)]);
  if (ch.inbound) files.push(['read_avail', u(ch.inbound.bytesAvailToRead)]);
  if (ch.outbound) files.push(['write_avail', u(ch.outbound.bytesAvailToWrite)]);
  files.push(['cpu', u(ch.targetCpu)]);
  // vmbus_chan_attr_is_visible: pending, latency and monitor_id only with a monitor; the first
  // two read monitor page 2 (monitor_pages[1]).
  const m = ch.monitorId !== undefined ? ch.monitor : undefined;
  if (m) files.push(['pending', d(m.clientPending)], ['latency', d(m.clientLatency)]);
  files.push(['interrupts', llu(ch.interrupts)], ['events', llu(ch.sigEvents)]);
  // intr_in_full, intr_out_empty, out_full_first and out_full_total: not in the snapshot.
  if (ch.monitorId !== undefined) files.push(['monitor_id', u(ch.monitorId)]);
  files.push(['subchannel_id', u(ch.subChannelIndex)]);
  return files;
}

/** A network interface on a VMBus device, as net/<name>/ under the device shows it. */
export interface NetInterfaceSnapshot {
  /** The VMBus device's instance GUID. */
  readonly busId: string;
  readonly name: string;
  readonly address: string;
  readonly mtu: number;
  readonly up: boolean;
  readonly carrier: boolean;
  readonly queues: number;
}

/**
 * net/<ifname>/ (net/core/net-sysfs.c): the address, its length, the MTU, ARPHRD_ETHER, the
 * operational state; carrier only while the interface is up (reading it fails with EINVAL
 * otherwise); queues/rx-N and tx-N per queue.
 */
function netFiles(n: NetInterfaceSnapshot): [string, string][] {
  const files: [string, string][] = [
    ['address', `${n.address}\n`],
    ['addr_len', '6\n'],
    ['mtu', `${n.mtu}\n`],
    ['type', '1\n'],
    ['operstate', `${n.up && n.carrier ? 'up' : 'down'}\n`],
  ];
  if (n.up) files.push(['carrier', `${n.carrier ? 1 : 0}\n`]);
  for (let q = 0; q < n.queues; q++) files.push([`queues/rx-${q}/rps_cpus`, '0\n'], [`queues/tx-${q}/tx_timeout`, '0\n']);
  return files;
}

/**
 * A storvsc device's SCSI host below it (drivers/scsi/hosts.c, scsi_sysfs.c, sd.c, block/genhd.c,
 * scsi_transport_fc.c): host<N>/scsi_host/host<N>/{proc_name,can_queue,cmd_per_lun,state};
 * host<N>/target<N>:<C>:<T>/<H:C:T:L>/{vendor,model,rev,type,scsi_level,state} with
 * block/<name>/{size,ro,removable,queue/...}; fc_host/host<N>/{port_name,node_name} on FC.
 */
function scsiHostFiles(h: ScsiHostSnapshot): [string, string][] {
  const host = `host${h.host}`;
  const files: [string, string][] = [
    [`${host}/scsi_host/${host}/proc_name`, 'storvsc_host\n'],
    [`${host}/scsi_host/${host}/can_queue`, d(h.canQueue)],
    // cmd_per_lun 2048 (storvsc's scsi_host_template).
    [`${host}/scsi_host/${host}/cmd_per_lun`, d(2048)],
    [`${host}/scsi_host/${host}/state`, 'running\n'],
  ];
  if (h.fc) files.push([`${host}/fc_host/${host}/port_name`, `${h.fc.portName}\n`], [`${host}/fc_host/${host}/node_name`, `${h.fc.nodeName}\n`]);
  for (const dev of h.devices) {
    const [hn, c, t] = dev.address.split(':');
    const at = `${host}/target${hn}:${c}:${t}/${dev.address}`;
    files.push([`${at}/vendor`, `${dev.vendor}\n`], [`${at}/model`, `${dev.model}\n`], [`${at}/rev`, `${dev.rev}\n`], [`${at}/type`, d(dev.type)], [`${at}/scsi_level`, d(dev.scsiLevel)], [`${at}/state`, 'running\n']);
    const b = dev.block;
    if (!b) continue;
    const blk = `${at}/block/${b.name}`;
    files.push(
      [`${blk}/size`, llu(b.sectors)],
      [`${blk}/ro`, d(b.readOnly ? 1 : 0)],
      [`${blk}/removable`, d(b.removable ? 1 : 0)],
      [`${blk}/queue/logical_block_size`, u(b.logicalBlockSize)],
      [`${blk}/queue/physical_block_size`, u(b.physicalBlockSize)],
      [`${blk}/queue/rotational`, u(b.rotational ? 1 : 0)],
      [`${blk}/queue/max_hw_sectors_kb`, u(b.maxHwSectorsKb)],
      [`${blk}/queue/discard_granularity`, u(b.discardGranularity)],
    );
  }
  return files;
}

/** What sits below the devices besides their own attributes: NIC interfaces, SCSI hosts. */
export interface SysfsExtras {
  readonly nets?: readonly NetInterfaceSnapshot[];
  readonly storage?: readonly ScsiHostSnapshot[];
}

/**
 * Every file of the tree, keyed by its path relative to /sys/bus/vmbus/devices
 * ("<instance guid>/id", "<instance guid>/channels/<relid>/cpu"), in Linux's attribute order; a
 * NIC's interface under "<instance guid>/net/<name>/", each storage controller's SCSI host and
 * disks below it. A disconnected bus with no devices yields an empty map.
 */
export function sysfsFiles(snapshot: VmbusSnapshot, extras: SysfsExtras = {}): Map<string, string> {
  const nets = extras.nets ?? [];
  const storage = extras.storage ?? [];
  const files = new Map<string, string>();
  for (const dev of snapshot.devices) {
    const dir = deviceDirName(dev);
    for (const [name, text] of deviceFiles(dev)) files.set(`${dir}/${name}`, text);
    for (const ch of dev.channels) {
      for (const [name, text] of channelFiles(ch)) files.set(`${dir}/channels/${ch.relid >>> 0}/${name}`, text);
    }
    for (const n of nets.filter((x) => guidText(x.busId) === dir)) {
      for (const [name, text] of netFiles(n)) files.set(`${dir}/net/${n.name}/${name}`, text);
    }
    for (const h of storage.filter((x) => guidText(x.instanceId) === guidText(dev.instanceId))) {
      for (const [name, text] of scsiHostFiles(h)) files.set(`${dir}/${name}`, text);
    }
  }
  return files;
}

/**
 * Writes the tree under `dir`, which stands for /sys/bus/vmbus/devices: `dir/<instance guid>/...`.
 * Creates folders as needed and overwrites files of the same name; leaves anything else alone.
 */
export async function writeSysfs(dir: string, snapshot: VmbusSnapshot, extras: SysfsExtras = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [path, text] of sysfsFiles(snapshot, extras)) {
    const file = join(dir, ...path.split('/'));
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, text);
  }
}
