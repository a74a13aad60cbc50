// The guest in a worker under load: a million checksummed frames each way through the rings,
// host and guest really concurrent, nothing lost, reordered or corrupted. The count is
// HVKIT_STRESS_PACKETS (at least one million by default); the run is bounded by frames, not
// time, so a slow or busy machine takes longer but passes the same way.
import { describe, expect, it } from 'vitest';
import { StreamDevice } from '../../src/devices/stream/host.js';
import { STREAM_CLASS_ID } from '../../src/devices/stream/frame.js';
import { ThreadedMachine } from '../../src/vm/threaded/machine.js';
import type { StreamArgs, StreamResult } from '../../src/vm/threaded/workloads/stream.js';

// Workers run JavaScript: the guest side comes from the build (`npm test` builds first).
const STREAM = new URL('../../dist/vm/threaded/workloads/stream.js', import.meta.url);
const fromEnv = Number(process.env.HVKIT_STRESS_PACKETS);
const PACKETS = Number.isSafeInteger(fromEnv) && fromEnv > 0 ? fromEnv : 1_000_000;

describe('guest in a worker thread, stressed', () => {
  it(`moves ${PACKETS.toLocaleString('en-US')} checksummed packets each way with nothing lost`, async () => {
    const m = new ThreadedMachine({ release: 'ws2022', vps: 2, memory: 64 << 20, devices: [] });
    // Small frames, so that the count is in packets and the rings turn over thousands of times.
    const dev = new StreamDevice({ seed: 13, maxData: 48, toGuest: true });
    m.vmbus!.server.offer({ classId: STREAM_CLASS_ID, instanceId: '00000003-0000-4000-8000-000000000000' }, dev);
    const args: StreamArgs = { seed: 17, maxData: 48, ringBytes: 64 * 1024, seconds: 3600, frames: PACKETS, framesIn: PACKETS };
    const r = await m.run<StreamResult>(STREAM, args, 3_600_000);
    expect(r.error).toBeUndefined();
    const guest = r.result!;
    expect(guest.finished).toBe(true);
    expect(guest.stats.errors).toEqual([]);
    expect(dev.stats.errors).toEqual([]);
    expect(dev.stats.finReceived).toBe(true);
    expect(guest.stats.finReceived).toBe(true);
    expect(dev.stats.framesIn).toBe(guest.stats.framesOut);
    expect(guest.stats.framesIn).toBe(dev.stats.framesOut);
    expect(guest.stats.framesOut).toBeGreaterThanOrEqual(PACKETS);
    expect(dev.stats.framesOut).toBeGreaterThanOrEqual(PACKETS);
  }, 3_600_000);
});
