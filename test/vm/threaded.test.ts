// The guest in a worker thread, really concurrent with the host on the same rings (DESIGN.md
// principle 4): the same kernel and VMBus code as in-thread, only traps and interrupts differ.
import { describe, expect, it } from 'vitest';
import { StreamDevice } from '../../src/devices/stream/host.js';
import { STREAM_CLASS_ID } from '../../src/devices/stream/frame.js';
import { ThreadedMachine } from '../../src/vm/threaded/machine.js';
import type { StreamArgs, StreamResult } from '../../src/vm/threaded/workloads/stream.js';
import type { NetArgs, NetResult } from '../../src/vm/threaded/workloads/net.js';
import { VirtualSwitch } from '../../src/devices/network/switch.js';

// Workers run JavaScript: the guest side comes from the build (`npm test` builds first).
const STREAM = new URL('../../dist/vm/threaded/workloads/stream.js', import.meta.url);
const BOOT_ONLY = new URL('../../dist/vm/threaded/workloads/boot.js', import.meta.url);
const NET = new URL('../../dist/vm/threaded/workloads/net.js', import.meta.url);

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

  it('two machines served by one thread (their host loops take turns): frames flow from one guest to the other through the switch', async () => {
    const sw = new VirtualSwitch('lan');
    const mac = (n: number) => new Uint8Array([0x00, 0x15, 0x5d, 0, 0, n]);
    const make = (n: number) => new ThreadedMachine({ vps: 2, memory: 128 << 20, devices: [{ type: 'network', nic: { backend: sw, mac: mac(n) } }], kernel: { network: { interfaces: [{ address: `10.0.0.${n}/24` }] } } });
    const a = make(1);
    const b = make(2);
    const common = { seconds: 0.3, warmupSeconds: 0.2, size: 64 };
    const [ra, rb] = await Promise.all([a.run<NetResult>(NET, { role: 'flood', peer: mac(2), ...common } satisfies NetArgs, { maxMs: 30_000 }), b.run<NetResult>(NET, { role: 'count', peer: mac(1), ...common } satisfies NetArgs, { maxMs: 30_000 })]);
    expect(ra.error).toBeUndefined();
    expect(rb.error).toBeUndefined();
    // b counted during its window only; a flooded before, through and after it.
    expect(rb.result!.frames).toBeGreaterThan(0);
    expect(ra.result!.frames).toBeGreaterThan(rb.result!.frames);
    expect(sw.stats.runts).toBe(0);
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
