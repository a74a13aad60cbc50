// The stream device in one thread: checksummed frames of random sizes both ways through small
// rings, so that the writers fill them, block on pending_send_sz and are woken by the readers.
import { describe, expect, it } from 'vitest';
import { StreamDriver } from '../../src/devices/stream/guest.js';
import { StreamDevice } from '../../src/devices/stream/host.js';
import { STREAM_CLASS_ID } from '../../src/devices/stream/frame.js';
import { Machine } from '../../src/vm/machine.js';

describe('stream device, in-thread', () => {
  it.each([
    ['both ways, 4 KiB pages', 4096, true],
    ['to the host only', 4096, false],
    ['both ways, 64 KiB guest pages (arm64)', 65536, true],
  ] as const)('%s: no frame lost, reordered or corrupted', (_name, pageSize, toGuest) => {
    const m = new Machine({ arch: pageSize === 4096 ? 'x64' : 'arm64', pageSize, vps: 2, memory: 64 << 20, devices: [] });
    const dev = new StreamDevice({ seed: 7, maxData: 3000, toGuest });
    m.vmbus!.server.offer({ classId: STREAM_CLASS_ID, instanceId: '00000001-0000-4000-8000-000000000000' }, dev);
    m.boot();
    const drv = new StreamDriver({ seed: 11, maxData: 3000, ringBytes: pageSize === 4096 ? 24576 : 2 * pageSize });
    m.kernel.vmbus!.registerDriver(drv);
    m.runFor(300_000);
    drv.stop();
    expect(m.waitUntil(() => drv.finished(), 1e9)).toBe(true);
    expect(dev.stats.errors).toEqual([]);
    expect(drv.stats.errors).toEqual([]);
    expect(dev.stats.finReceived).toBe(true);
    expect(dev.stats.framesIn).toBe(drv.stats.framesOut);
    expect(drv.stats.framesIn).toBe(dev.stats.framesOut);
    expect(drv.stats.framesOut).toBeGreaterThan(50);
    if (toGuest) expect(dev.stats.framesOut).toBeGreaterThan(50);
    // Signals stay far below one per packet: the rings run full and the masks hold.
    const host = [...m.vmbus!.server.channels.values()][0]!;
    expect(host.signalsSent + host.signalsReceived).toBeLessThan((drv.stats.framesOut + dev.stats.framesOut) / 2);
  });

  it('the host checks each packet where it lies: a short frame, a frame asking for a completion and a completion are errors, named', () => {
    const m = new Machine({ vps: 1, memory: 64 << 20, devices: [] });
    const dev = new StreamDevice({ seed: 7, maxData: 3000, toGuest: false });
    m.vmbus!.server.offer({ classId: STREAM_CLASS_ID, instanceId: '00000001-0000-4000-8000-000000000000' }, dev);
    m.boot();
    const drv = new StreamDriver({ seed: 7, maxData: 3000, ringBytes: 24576 });
    m.kernel.vmbus!.registerDriver(drv);
    m.runFor(50_000);
    drv.stop();
    expect(m.waitUntil(() => drv.finished(), 1e9)).toBe(true);
    expect(dev.stats.errors).toEqual([]);
    const frames = dev.stats.framesIn;
    const ch = drv.channel!;
    // In-band without flags (read where it lies), then the two that take the parsed path; a
    // packet's in-band part is padded to 8 bytes.
    ch.sendInband(new Uint8Array([1, 2, 3]));
    ch.sendInband(new Uint8Array(3), 5n, true);
    ch.sendCompletion(9n);
    m.runFor(1_000_000);
    expect(dev.stats.errors).toEqual([`frame ${frames}: 8 bytes, no header`, `frame ${frames}: 8 bytes, no header`, 'packet type 11']);
  });
});
