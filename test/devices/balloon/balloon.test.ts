// Dynamic memory end to end over real VMBus: the version each release negotiates with Linux 6.1's
// hv_balloon (and its fallback), status reports on virtual time, balloon up and down with the
// guest's /proc/meminfo matching the host's count, responses split as hv_balloon sizes them,
// hot add in HA_CHUNK blocks with not-yet-added RAM not present, and the host's policy following
// a guest workload that allocates and frees.
import { describe, expect, it } from 'vitest';
import { attachDmHost, type DmHost } from '../../../src/devices/balloon/host.js';
import { decodeDmMessage, DynmemVersion, type DmMessageValue } from '../../../src/devices/balloon/wire.js';
import { RELEASE_IDS, type ReleaseId } from '../../../src/hypervisor/release.js';
import { GpaOutOfRangeError } from '../../../src/memory/errors.js';
import { Machine } from '../../../src/vm/machine.js';
import { hostContext } from '../services.js';
import { balloonRig, frames, MIB } from './rig.js';

/** What each release's VSP agrees with hv_balloon, which asks for 2.0, then 1.0, then 0.3 (versions.ts). */
const EXPECTED: Record<ReleaseId, string> = { ws2012: '1.0', ws2012r2: '1.0', ws2016: '2.0', ws2019: '2.0', ws2022: '2.0', ws2025: '2.0' };

/** Records every message the guest sends the host, decoded. */
function spy(host: DmHost): DmMessageValue[] {
  const seen: DmMessageValue[] = [];
  const orig = host.onGuestMessage.bind(host);
  host.onGuestMessage = (p) => {
    seen.push(decodeDmMessage(p));
    orig(p);
  };
  return seen;
}

describe('dynamic memory: version negotiation', () => {
  for (const release of RELEASE_IDS) {
    it(`${release}: hv_balloon and the VSP agree on ${EXPECTED[release]}`, () => {
      const r = balloonRig({ release });
      expect(r.balloonLog()).toContain(`hv_balloon: Using Dynamic Memory protocol version ${EXPECTED[release]}`);
      expect(r.host.snapshot().version).toBe(EXPECTED[release]);
      expect(r.host.phase).toBe('ready');
      expect(r.host.guestCapabilities).toEqual({ balloon: true, hotAdd: true, hotAddAlignment: 7 });
      expect(r.driver.snapshot().state).toBe('Initialized');
    });
  }

  it('falls back from 2.0 to 1.0 to 0.3, the last marked is_last_attempt', () => {
    const m = new Machine({ release: 'ws2022', vps: 1, devices: [] });
    const host = attachDmHost(hostContext(m), '525074dc-8985-46e2-8057-a307dc18a502', { versions: [DynmemVersion.WIN7] });
    const seen = spy(host);
    m.boot();
    expect(seen.filter((x) => x.type === 'version-request')).toEqual([
      { type: 'version-request', transId: 1, version: DynmemVersion.WIN10, isLastAttempt: false },
      { type: 'version-request', transId: 2, version: DynmemVersion.WIN8, isLastAttempt: false },
      { type: 'version-request', transId: 3, version: DynmemVersion.WIN7, isLastAttempt: true },
    ]);
    expect(m.kernel.log.lines().some((l) => l.endsWith('hv_balloon: Using Dynamic Memory protocol version 0.3'))).toBe(true);
    // 0.3 has no INFO message: no maximum is announced.
    expect(m.kernel.log.lines().some((l) => l.includes('Max. dynamic memory size'))).toBe(false);
  });

  it('with no common version the probe fails and the host says so', () => {
    const m = new Machine({ release: 'ws2022', vps: 1, devices: [] });
    const hostLog: string[] = [];
    const host = attachDmHost(hostContext(m, hostLog), '525074dc-8985-46e2-8057-a307dc18a502', { versions: [0x30000] });
    m.boot();
    expect(host.phase).toBe('failed');
    expect(hostLog).toContain("balloon: no common protocol version: the guest's last attempt was 0.3");
    expect(m.kernel.log.lines().some((l) => l.includes('Using Dynamic Memory'))).toBe(false);
  });
});

describe('dynamic memory: status reports', () => {
  it('none during pressure_report_delay, then one a second with what hv_balloon computes', () => {
    const r = balloonRig({ balloon: { pressureReportDelay: 5 } });
    r.m.runFor(5.5e9);
    expect(r.host.statusReports).toBe(0);
    r.m.runFor(1e9);
    expect(r.host.statusReports).toBe(1);
    const n = r.host.statusReports;
    r.m.waitUntil(() => r.host.statusReports > n, 2e9);
    const s = r.host.lastStatus!;
    const mm = r.m.kernel.mm;
    // num_avail: MemFree; num_committed: Committed_AS, ballooned and offline pages, and the floor.
    expect(s.numAvail).toBe(mm.freePageCount);
    expect(s.numCommitted).toBe(mm.committedPages + r.driver.computeBalloonFloor());
    // compute_balloon_floor for 240 MiB managed: 40 MiB + a quarter.
    expect(r.driver.computeBalloonFloor()).toBe(frames(40 * MIB) + Math.floor(mm.totalPages / 4));
    // Ten more periods (each report lands a tick after its second).
    r.m.runFor(10.5e9);
    expect(r.host.statusReports).toBe(n + 11);
  });
});

describe('dynamic memory: balloon up and down', () => {
  it("moves 64 MiB out and back; the guest's MemTotal and MemFree follow the host's count", () => {
    const r = balloonRig();
    const seen = spy(r.host);
    const before = r.meminfo();
    expect(r.host.start({ kind: 'balloon', pages: frames(64 * MIB) })).toBe(true);
    r.m.waitUntil(() => !r.host.busy, 1e9);
    expect(r.host.results.items.at(-1)).toEqual({ kind: 'balloon', requested: frames(64 * MIB), done: frames(64 * MIB), outcome: 'ok' });
    expect(r.host.balloonedPages).toBe(frames(64 * MIB));
    expect(r.driver.numPagesBallooned).toBe(frames(64 * MIB));
    expect(r.meminfo().MemTotal).toBe(before.MemTotal - 64 * 1024);
    expect(r.meminfo().MemFree).toBe(before.MemFree - 64 * 1024);
    // 2 MiB blocks, all in one response (32 ranges fit the 4 KiB buffer).
    const responses = seen.filter((x) => x.type === 'balloon-response');
    expect(responses).toHaveLength(1);
    expect(responses[0]).toMatchObject({ morePages: false });
    const ranges = responses[0]!.type === 'balloon-response' ? responses[0]!.ranges : [];
    expect(ranges).toHaveLength(32);
    expect(ranges.every((x) => x.count === 512)).toBe(true);

    expect(r.host.start({ kind: 'unballoon', pages: frames(24 * MIB) })).toBe(true);
    r.m.waitUntil(() => !r.host.busy, 1e9);
    expect(r.host.balloonedPages).toBe(frames(40 * MIB));
    expect(r.driver.numPagesBallooned).toBe(frames(40 * MIB));
    expect(r.meminfo().MemTotal).toBe(before.MemTotal - 40 * 1024);
    expect(seen.filter((x) => x.type === 'unballoon-response')).toHaveLength(1);
    expect(r.host.start({ kind: 'unballoon', pages: frames(100 * MIB) })).toBe(true);
    r.m.waitUntil(() => !r.host.busy, 1e9);
    expect(r.host.balloonedPages).toBe(0);
    expect(r.meminfo()).toEqual(before);
    expect(r.host.violations.total).toBe(0);
    expect(r.driver.hostViolations.total).toBe(0);
  });

  it('falls back to single pages when no 2 MiB block is free, over responses of 510 ranges with more_pages', () => {
    const r = balloonRig();
    const mm = r.m.kernel.mm;
    const held: number[] = [];
    for (let g = mm.tryAllocPage(); g !== undefined; g = mm.tryAllocPage()) held.push(g);
    held.forEach((g, i) => i % 2 === 0 && mm.freePage(g));
    const seen = spy(r.host);
    r.host.start({ kind: 'balloon', pages: 2000 });
    r.m.waitUntil(() => !r.host.busy, 1e9);
    const responses = seen.flatMap((x) => (x.type === 'balloon-response' ? [x] : []));
    expect(responses.map((x) => [x.ranges.length, x.morePages])).toEqual([
      [510, true],
      [510, true],
      [510, true],
      [470, false],
    ]);
    expect(responses.every((x) => x.ranges.every((g) => g.count === 1))).toBe(true);
    expect(r.host.balloonedPages).toBe(2000);
    // Giving 2000 scattered pages back takes four 4 KiB requests, more than the 16 KiB ring holds
    // at once: the host sends the rest as the guest makes room.
    const total = r.meminfo().MemTotal;
    expect(r.host.start({ kind: 'unballoon', pages: 2000 })).toBe(true);
    r.m.waitUntil(() => !r.host.busy, 1e9);
    expect(r.host.results.items.at(-1)).toEqual({ kind: 'unballoon', requested: 2000, done: 2000, outcome: 'ok' });
    expect(r.driver.numPagesBallooned).toBe(0);
    expect(r.meminfo().MemTotal).toBe(total + 2000 * 4);
    expect(seen.filter((x) => x.type === 'unballoon-response')).toHaveLength(1);
  });

  it('stops at the balloon floor and says so', () => {
    const r = balloonRig();
    const floor = r.driver.computeBalloonFloor();
    const free = r.m.kernel.mm.freePageCount;
    r.host.start({ kind: 'balloon', pages: free });
    r.m.waitUntil(() => !r.host.busy, 1e9);
    expect(r.balloonLog()).toContain('hv_balloon: Balloon request will be partially fulfilled. Balloon floor reached.');
    expect(r.host.balloonedPages).toBe(free - floor);
  });
});

describe('dynamic memory: hot add', () => {
  it('adds RAM above the boot RAM in 128 MiB blocks; the pages are not present until added', () => {
    const r = balloonRig({ memoryMaximum: 512 * MIB });
    const mem = r.m.partition.memory;
    const before = r.meminfo();
    expect(() => mem.read8(256 * MIB)).toThrow(GpaOutOfRangeError);
    expect(r.host.start({ kind: 'hot-add', pages: frames(64 * MIB) })).toBe(true);
    r.m.waitUntil(() => !r.host.busy, 1e9);
    expect(r.host.results.items.at(-1)).toEqual({ kind: 'hot-add', requested: frames(64 * MIB), done: frames(64 * MIB), outcome: 'ok' });
    expect(mem.read8(256 * MIB)).toBe(0);
    expect(() => mem.read8(320 * MIB)).toThrow(GpaOutOfRangeError);
    expect(r.meminfo().MemTotal).toBe(before.MemTotal + 64 * 1024);
    expect(r.driver.snapshot()).toMatchObject({ pagesAdded: frames(64 * MIB), pagesOnlined: frames(64 * MIB) });
    // The rest of the first 128 MiB block was added already: its pages just come online.
    r.host.start({ kind: 'hot-add', pages: frames(64 * MIB) });
    r.m.waitUntil(() => !r.host.busy, 1e9);
    // A second block for the next 128 MiB, up to the 512 MiB maximum and no further.
    r.host.start({ kind: 'hot-add', pages: frames(512 * MIB) });
    r.m.waitUntil(() => !r.host.busy, 1e9);
    expect(r.host.hotAddedPages).toBe(frames(256 * MIB));
    expect(mem.size).toBe(512 * MIB);
    expect(r.meminfo().MemTotal).toBe(before.MemTotal + 256 * 1024);
    expect(r.host.start({ kind: 'hot-add', pages: 1 })).toBe(false);
    // compute_balloon_floor for 496 MiB managed: 40 MiB and a quarter; past 512 MiB, 104 MiB and an eighth.
    expect(r.driver.computeBalloonFloor()).toBe(frames(40 * MIB) + Math.floor(r.m.kernel.mm.totalPages / 4));
    // The new pages are allocatable: a demand above the boot RAM is met.
    r.m.kernel.memoryDemand.set(400 * MIB);
    r.m.runFor(1e9);
    expect(r.m.kernel.memoryDemand.residentBytes).toBe(400 * MIB);
  });

  it('a boot RAM that is not a multiple of 128 MiB: add_memory fails with EEXIST and hot add stops for good', () => {
    const r = balloonRig({ memory: 200 * MIB, memoryMaximum: 512 * MIB });
    r.host.start({ kind: 'hot-add', pages: frames(64 * MIB) });
    r.m.waitUntil(() => !r.host.busy, 1e9);
    expect(r.balloonLog()).toEqual(expect.arrayContaining(['hv_balloon: hot_add memory failed error is -17', 'hv_balloon: Memory hot add failed']));
    expect(r.host.hotAddedPages).toBe(0);
    expect(r.host.hotAddDisabled).toBe(true);
    expect(r.host.start({ kind: 'hot-add', pages: frames(64 * MIB) })).toBe(false);
  });
});

describe('dynamic memory: the host policy', () => {
  it('balloons down to demand plus buffer (not below minimum), then follows a workload up and down', () => {
    const r = balloonRig({ dynamic: { minimum: 128 * MIB, maximum: 1024 * MIB, buffer: 20 } });
    const c = r.host.controller!;
    const reserved = frames(256 * MIB) - r.meminfo().MemTotal / 4;
    /** The guest's MemTotal is the host's view of its memory less the kernel's reserved pages. */
    const agree = () => expect(r.meminfo().MemTotal / 4).toBe(c.currentPages - reserved);
    r.m.runFor(10e9);
    expect(r.host.balloonedPages).toBeGreaterThan(0);
    expect(c.currentPages).toBe(frames(128 * MIB));
    agree();

    r.m.kernel.memoryDemand.set(400 * MIB);
    r.m.runFor(15e9);
    expect(r.host.balloonedPages).toBe(0);
    expect(r.host.hotAddedPages).toBeGreaterThan(0);
    expect(r.m.kernel.memoryDemand.residentBytes).toBe(400 * MIB);
    expect(c.currentPages).toBeGreaterThanOrEqual(c.targetPages! - 512);
    expect(c.currentPages).toBeLessThanOrEqual(frames(1024 * MIB));
    agree();
    const high = c.currentPages;
    expect(r.m.kernel.mm.totalPages).toBeGreaterThan(frames(512 * MIB));
    expect(r.driver.computeBalloonFloor()).toBe(frames(104 * MIB) + Math.floor(r.m.kernel.mm.totalPages / 8));

    r.m.kernel.memoryDemand.set(0);
    r.m.runFor(30e9);
    expect(r.host.balloonedPages).toBeGreaterThan(0);
    expect(c.currentPages).toBeLessThan(high);
    // Back at the minimum: demand plus buffer is below it again.
    expect(c.currentPages).toBe(frames(128 * MIB));
    agree();
    expect(r.host.violations.total).toBe(0);
    expect(r.driver.hostViolations.total).toBe(0);
  });
});
