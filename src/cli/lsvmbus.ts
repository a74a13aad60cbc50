// What Linux's tools/hv/lsvmbus prints (no option, -v, -vv) when /sys/bus/vmbus/devices holds
// the tree src/cli/sysfs.ts writes for the same snapshot.
import { LSVMBUS_CLASS_DESCRIPTIONS } from '../guest/lsvmbus-classes.js';
import type { VmbusSnapshot } from '../vmbus/client/snapshot.js';
import { deviceDirName, guidText } from './sysfs.js';

/** Where the script looks; it prints this path, then the device's folder name, for -vv. */
export const VMBUS_SYSFS_PATH = '/sys/bus/vmbus/devices';

/** The script's one-line complaint when the bus folder is missing (it then exits with status 255). */
export const LSVMBUS_NO_SYSFS = `${VMBUS_SYSFS_PATH} doesn't exist: exiting...`;

export { LSVMBUS_CLASS_DESCRIPTIONS };

/**
 * Whether the guest has /sys/bus/vmbus/devices at all: Linux registers the bus before connecting
 * and unregisters it when connecting fails, so a disconnected bus that never offered a device has
 * no folder. Anything else, even an empty connected bus, has one.
 */
export function vmbusSysfsExists(snapshot: VmbusSnapshot): boolean {
  return snapshot.state !== 'disconnected' || snapshot.devices.length > 0;
}


/** Python's "%2s": right-aligned in at least two columns. */
const w2 = (s: string): string => s.padStart(2);

/**
 * The lines lsvmbus prints, one string per line ('' for the blank line that ends each device at
 * -v and -vv). Devices are sorted by `id` (the primary relid) as integers; each device's
 * channel_vp_mapping lines are sorted by relid and shown as "\tRel_ID=<relid>, target_cpu=<cpu>".
 */
export function formatLsvmbus(snapshot: VmbusSnapshot, verbosity: 0 | 1 | 2): string[] {
  if (!vmbusSysfsExists(snapshot)) return [LSVMBUS_NO_SYSFS];
  const lines: string[] = [];
  // Array.prototype.sort is stable, as Python's sorted() is.
  const devices = [...snapshot.devices].sort((a, b) => (a.id | 0) - (b.id | 0));
  for (const dev of devices) {
    const id = w2(String(dev.id | 0));
    const classId = `{${guidText(dev.classId)}}`;
    const desc = LSVMBUS_CLASS_DESCRIPTIONS.get(guidText(dev.classId)) ?? 'Unknown';
    if (verbosity === 0) {
      lines.push(`VMBUS ID ${id}: ${desc}`);
      continue;
    }
    lines.push(`VMBUS ID ${id}: Class_ID = ${classId} - ${desc}`);
    if (verbosity >= 2) {
      lines.push(`\tDevice_ID = {${guidText(dev.instanceId)}}`, `\tSysfs path: ${VMBUS_SYSFS_PATH}/${deviceDirName(dev)}`);
    }
    const mapping = dev.channels.map((c) => ({ relid: c.relid >>> 0, cpu: c.targetCpu >>> 0 })).sort((a, b) => a.relid - b.relid);
    for (const m of mapping) lines.push(`\tRel_ID=${m.relid}, target_cpu=${m.cpu}`);
    lines.push('');
  }
  return lines;
}
