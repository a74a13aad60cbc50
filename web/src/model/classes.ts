// A channel's class as a person calls it: the device name a VM configuration uses (catalog.ts),
// or hv_sock / the test stream device, or the GUID itself.
import { DEVICE_CLASS } from '../../../src/devices/catalog.js';
import { STREAM_CLASS_ID } from '../../../src/devices/stream/frame.js';

const NAMES = new Map<string, string>([...Object.entries(DEVICE_CLASS).map(([name, guid]) => [guid.toLowerCase(), name] as [string, string]), [STREAM_CLASS_ID, 'stream']]);

export function className(classId: string): string {
  return NAMES.get(classId.toLowerCase()) ?? classId;
}
