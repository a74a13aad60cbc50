// The saturating workload: the test stream device (src/devices/stream) offered by the host, its
// driver started in the guest on request, checksummed frames both ways through small rings so
// that both writers run the rings full.
import { STREAM_CLASS_ID } from '../../../src/devices/stream/frame.js';
import { StreamDevice } from '../../../src/devices/stream/host.js';
import type { VmbusServer } from '../../../src/vmbus/server/server.js';

export const STREAM_INSTANCE = '7374726d-0000-4000-8000-000000000001';
/** Frame payloads up to this size: a few frames fill a ring. */
export const STREAM_MAX_DATA = 3000;

/** Ring bytes each way (header page included): six 4 KiB pages, or two guest pages when larger. */
export function streamRingBytes(pageSize: number): number {
  return pageSize === 4096 ? 24576 : 2 * pageSize;
}

export function offerStream(server: VmbusServer): StreamDevice {
  const dev = new StreamDevice({ seed: 7, maxData: STREAM_MAX_DATA, toGuest: true });
  server.offer({ classId: STREAM_CLASS_ID, instanceId: STREAM_INSTANCE }, dev);
  return dev;
}
