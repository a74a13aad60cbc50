// The guest in a worker thread, really concurrent with the host on the same rings (DESIGN.md
// principle 4): the same kernel and VMBus code as in-thread, only traps and interrupts differ.
import { describe, expect, it } from 'vitest';
import { StreamDevice } from '../../src/devices/stream/host.js';
import { STREAM_CLASS_ID } from '../../src/devices/stream/frame.js';
import { ThreadedMachine } from '../../src/vm/threaded/machine.js';
import type { StreamArgs, StreamResult } from '../../src/vm/threaded/workloads/stream.js';

// Workers run JavaScript: the guest side comes from the build (`npm test` builds first).
const STREAM = new URL('../../dist/vm/threaded/workloads/stream.js', import.meta.url);
const BOOT_ONLY = new URL('../../dist/vm/threaded/workloads/boot.js', import.meta.url);

describe('guest in a worker thread', () => {
  it('boots the same way: the same Hyper-V lines, VMBus connected', async () => {
    const m = new ThreadedMachine({ release: 'ws2019', vps: 2, memory: 64 << 20, speed: 4 });
    const r = await m.run<string>(BOOT_ONLY, undefined, 30_000);
    expect(r.error).toBeUndefined();
    expect(r.state.stage).toBe('booted');
    const lines = r.log.map((l) => l.text);
    expect(lines).toContain('Hypervisor detected: Microsoft Hyper-V');
    expect(lines).toContain('hv_vmbus: Vmbus version:5.2');
    expect(r.result).toBe('booted');
    expect(r.traps).toBeGreaterThan(50);
  }, 60_000);

  it('streams checksummed frames of random sizes both ways for seconds: no loss, reordering or corruption', async () => {
    const m = new ThreadedMachine({ release: 'ws2022', vps: 2, memory: 64 << 20 });
    const dev = new StreamDevice({ seed: 3, maxData: 6000, toGuest: true });
    m.vmbus!.server.offer({ classId: STREAM_CLASS_ID, instanceId: '00000002-0000-4000-8000-000000000000' }, dev);
    const args: StreamArgs = { seed: 5, maxData: 6000, ringBytes: 64 * 1024, seconds: 3 };
    const r = await m.run<StreamResult>(STREAM, args, 60_000);
    expect(r.error).toBeUndefined();
    const guest = r.result!;
    expect(guest.finished).toBe(true);
    expect(guest.stats.errors).toEqual([]);
    expect(dev.stats.errors).toEqual([]);
    expect(dev.stats.finReceived).toBe(true);
    expect(dev.stats.framesIn).toBe(guest.stats.framesOut);
    expect(guest.stats.framesIn).toBe(dev.stats.framesOut);
    expect(guest.stats.framesOut).toBeGreaterThan(1000);
    // Every interrupt the guest's hint announced was there to accept: the host republishes the
    // hint after each trap, so an accepted interrupt is not looked for again.
    expect(r.idleAccepts).toBeLessThanOrEqual(Math.max(5, r.traps / 100));
    expect(dev.stats.framesOut).toBeGreaterThan(1000);
  }, 90_000);
});
