// Dynamic memory against a hostile peer: a guest whose balloon responses name pages it does not
// own, overflow their counts or come out of turn; a host whose unballoon and hot-add requests
// name pages the guest never gave or RAM that is not there; garbage and oversized messages both
// ways. Every case has a defined outcome (a recorded violation, a refusal) and nothing throws.
// The two parsers and both state machines are fuzzed (fast-check).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DmHost } from '../../../src/devices/balloon/host.js';
import type { HostContext } from '../../../src/devices/device.js';
import {
  decodeDmMessage,
  DmBalloonResponse,
  DmMessageType,
  DynmemVersion,
  encodeBalloonResponse,
  encodeCapabilities,
  encodeHotAdd,
  encodeHotAddResponse,
  encodeStatus,
  encodeUnballoonRequest,
  encodeVersionRequest,
  MAX_RANGE_PAGES,
  MAX_RANGE_PFN,
  MAX_RANGES_PER_BALLOON_RESPONSE,
  type DmMessageValue,
  type PageRange,
} from '../../../src/devices/balloon/wire.js';
import { GuestMemory } from '../../../src/memory/guest-memory.js';
import { WireError } from '../../../src/tlfs/struct.js';
import type { HostChannel } from '../../../src/vmbus/server/channel.js';
import { fuzz } from '../../fuzz/fuzz.js';
import { RUNS, runs } from '../../vmbus/fuzz-runs.js';
import { balloonRig, frames, MIB } from './rig.js';

/** A ready VSP over a fake channel (what it sends is decoded into `sent`), 64 MiB of RAM backed to 128 MiB. */
function readyHost() {
  const memory = new GuestMemory({ size: 64 * MIB, capacity: 128 * MIB });
  const log: string[] = [];
  const ctx = {
    server: { offer: () => ({}) },
    release: 'ws2022',
    now: () => 0,
    schedule: () => ({ cancel() {} }),
    log: (t: string) => void log.push(t),
    wallClockNs: () => 0n,
    referenceTime: () => 0n,
    memory,
  } as unknown as HostContext;
  const host = new DmHost(ctx, '525074dc-8985-46e2-8057-a307dc18a502', memory);
  const sent: DmMessageValue[] = [];
  host.open({ sendInband: (b: Uint8Array) => (sent.push(decodeDmMessage(b)), true), waitForSpace: () => false } as unknown as HostChannel);
  host.onGuestMessage(encodeVersionRequest(1, DynmemVersion.WIN10, false));
  host.onGuestMessage(encodeCapabilities(2, { balloon: true, hotAdd: true, hotAddAlignment: 7, minPageCount: 0n, maxPageNumber: 0n }));
  expect(host.phase).toBe('ready');
  return { host, sent, memory, log };
}

describe('the dynamic memory VSP against a hostile guest', () => {
  it('takes only the ranges of a balloon response that are inside RAM, not ballooned already, and within the request', () => {
    const { host } = readyHost();
    expect(host.start({ kind: 'balloon', pages: 100 })).toBe(true);
    const outside: PageRange = { start: frames(64 * MIB) - 10, count: 20 };
    host.onGuestMessage(encodeBalloonResponse(3, true, [{ start: 0x1000, count: 50 }, outside, { start: 0x1010, count: 5 }]));
    expect(host.balloonedPages).toBe(50);
    host.onGuestMessage(encodeBalloonResponse(4, false, [{ start: 0x2000, count: 40 }, { start: 0x3000, count: 40 }]));
    expect(host.balloonedPages).toBe(90);
    expect(host.results.items).toEqual([{ kind: 'balloon', requested: 100, done: 90, outcome: 'ok' }]);
    expect(host.violations.items).toEqual([
      `balloon range 0x${outside.start.toString(16)}+20 is outside the guest's RAM`,
      'balloon range 0x1010+5 names pages already ballooned',
      'balloon range 0x3000+40 is more than the 100 pages asked for',
    ]);
  });

  it('refuses counts that overflow the message, ranges at the 40-bit limit, responses out of turn and oversized messages', () => {
    const { host } = readyHost();
    // A response with no request.
    host.onGuestMessage(encodeBalloonResponse(3, false, [{ start: 0x1000, count: 1 }]));
    host.start({ kind: 'balloon', pages: 10 });
    // range_count 2^31 - 1 in a 16-byte message.
    const lying = encodeBalloonResponse(4, true, []);
    new DataView(lying.buffer).setUint32(DmBalloonResponse.offsets._r, 0xffff_fffe | 1, true);
    host.onGuestMessage(lying);
    host.onGuestMessage(encodeBalloonResponse(5, true, [{ start: MAX_RANGE_PFN, count: MAX_RANGE_PAGES }]));
    host.onGuestMessage(new Uint8Array(8192));
    expect(host.balloonedPages).toBe(0);
    expect(host.violations.items).toEqual([
      'a balloon response with no balloon request',
      'dm_balloon_response.range_count: 2147483647 ranges do not fit the 16-byte message',
      `balloon range 0x${MAX_RANGE_PFN.toString(16)}+${MAX_RANGE_PAGES} is outside the guest's RAM`,
      'a 8192-byte message is longer than 4096 bytes',
    ]);
  });

  it('hot add: never past the maximum; a response counting more pages than offered is clamped', () => {
    const { host, sent, memory } = readyHost();
    expect(host.start({ kind: 'hot-add', pages: frames(1024 * MIB) })).toBe(true);
    expect(sent.at(-1)).toEqual({ type: 'hot-add', transId: 0, range: { start: frames(64 * MIB), count: frames(64 * MIB) }, region: undefined });
    expect(memory.size).toBe(128 * MIB);
    host.onGuestMessage(encodeHotAddResponse(3, 0xffff_ffff, 1));
    expect(host.hotAddedPages).toBe(frames(64 * MIB));
    expect(host.violations.items).toEqual([`hot add response counts 4294967295 pages of the ${frames(64 * MIB)} offered`]);
    expect(host.start({ kind: 'hot-add', pages: 1 })).toBe(false);
  });

  it('status reports with counts beyond any RAM are clamped, messages before negotiation are violations', () => {
    const { host } = readyHost();
    host.onGuestMessage(encodeStatus(3, { numAvail: (1n << 64n) - 1n, numCommitted: 5n }));
    expect(host.lastStatus).toMatchObject({ numAvail: Number.MAX_SAFE_INTEGER, numCommitted: 5 });
    const fresh = new DmHost({ server: { offer: () => ({}) }, release: 'ws2012', now: () => 0, schedule: () => ({ cancel() {} }), log: () => {} } as unknown as HostContext, 'x', undefined);
    fresh.onGuestMessage(encodeStatus(1, { numAvail: 1n, numCommitted: 1n }));
    expect(fresh.violations.items).toEqual(['status before a version was agreed']);
  });

  it('fuzz: arbitrary messages never throw, and the host never holds pages outside RAM or more than it asked for', () => {
    const message = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.array(fc.record({ start: fc.integer({ min: 0, max: MAX_RANGE_PFN }), count: fc.integer({ min: 0, max: MAX_RANGE_PAGES }) }), { maxLength: 8 }).chain((rs) => fc.boolean().map((more) => encodeBalloonResponse(1, more, rs))),
      fc.array(fc.record({ start: fc.integer({ min: 0, max: frames(64 * MIB) }), count: fc.integer({ min: 0, max: 4096 }) }), { maxLength: 8 }).map((rs) => encodeBalloonResponse(1, false, rs)),
      fc.tuple(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 0, max: 1 })).map(([n, r]) => encodeHotAddResponse(1, n, r)),
      fc.tuple(fc.integer({ min: 0, max: 12 }), fc.uint8Array({ minLength: 8, maxLength: 40 })).map(([t, b]) => {
        b[0] = t;
        b[1] = 0;
        b[2] = b.length;
        b[3] = 0;
        return b;
      }),
    );
    const op = fc.constantFrom('balloon' as const, 'unballoon' as const, 'hot-add' as const);
    fuzz(
      'balloon.host-vsp',
      fc.property(fc.array(fc.tuple(fc.option(op), fc.integer({ min: 1, max: 1 << 20 }), message), { maxLength: 12 }), (steps) => {
        const { host, memory } = readyHost();
        let asked = 0;
        for (const [kind, pages, msg] of steps) {
          if (kind && host.start({ kind, pages }) && kind === 'balloon') asked += pages;
          host.onGuestMessage(msg);
        }
        expect(host.balloonedPages).toBeLessThanOrEqual(asked);
        expect(host.balloonedPages).toBeLessThanOrEqual(memory.size / 4096);
        expect(host.violations.length).toBeLessThanOrEqual(100);
      }),
      RUNS,
    );
  });
});

describe('hv_balloon against a hostile host', () => {
  it('gives back only pages it ballooned: the rest of an unballoon request is a violation, and it still answers', () => {
    const r = balloonRig();
    r.host.start({ kind: 'balloon', pages: 1024 });
    r.m.waitUntil(() => !r.host.busy, 1e9);
    const before = r.meminfo();
    const mine = r.host.results.items.length;
    expect(mine).toBe(1);
    // pfn 0 (never ballooned: the kernel image), a range as long as 24 bits allow, and past RAM.
    r.driver.onHostMessage(encodeUnballoonRequest(9, false, [{ start: 0, count: 4 }, { start: 1, count: MAX_RANGE_PAGES }, { start: MAX_RANGE_PFN, count: 1 }]));
    expect(r.meminfo()).toEqual(before);
    expect(r.driver.numPagesBallooned).toBe(1024);
    expect(r.driver.hostViolations.items).toEqual([
      'unballoon range 0x0+4 names pages the guest did not balloon',
      `unballoon range 0x1+${MAX_RANGE_PAGES} names pages the guest did not balloon`,
      `unballoon range 0x${MAX_RANGE_PFN.toString(16)}+1 names pages the guest did not balloon`,
    ]);
  });

  it('a hot add of RAM the host did not make present is not onlined', () => {
    const r = balloonRig({ memoryMaximum: 512 * MIB });
    const before = r.meminfo();
    r.driver.onHostMessage(encodeHotAdd(9, { start: frames(256 * MIB), count: frames(64 * MIB) }));
    r.m.runFor(1e8);
    expect(r.balloonLog()).toEqual(expect.arrayContaining(['hv_balloon: hot_add memory failed error is -22', 'hv_balloon: Memory hot add failed']));
    expect(r.meminfo()).toEqual(before);
    expect(r.driver.numPagesAdded).toBe(0);
  });

  it('garbage and oversized messages are violations; nothing changes', () => {
    const r = balloonRig();
    const before = r.meminfo();
    r.driver.onHostMessage(new Uint8Array([1, 2, 3]));
    r.driver.onHostMessage(Uint8Array.of(DmMessageType.DM_UNBALLOON_REQUEST, 0, 0xff, 0xff, 0, 0, 0, 0));
    r.driver.onHostMessage(encodeUnballoonRequest(1, false, []).map((b, i) => (i === 12 ? 0xff : b)));
    expect(r.driver.hostViolations.items).toEqual([
      'Unhandled message: dm_header.size: 3 bytes is shorter than the header',
      'Unhandled message: dm_header.size: 65535 is not between 8 and the 8 bytes received',
      'Unhandled message: dm_unballoon_request.range_count: 255 ranges do not fit the 16-byte message',
    ]);
    expect(r.meminfo()).toEqual(before);
  });

  it('fuzz: arbitrary host messages never throw; MemTotal moves only by pages ballooned and added', () => {
    const message = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.array(fc.record({ start: fc.integer({ min: 0, max: frames(300 * MIB) }), count: fc.integer({ min: 0, max: 1 << 16 }) }), { maxLength: 6 }).chain((rs) => fc.boolean().map((more) => encodeUnballoonRequest(1, more, rs))),
      fc.record({ start: fc.integer({ min: 0, max: MAX_RANGE_PFN }), count: fc.integer({ min: 0, max: MAX_RANGE_PAGES }) }).map((x) => encodeHotAdd(1, x)),
      fc.integer({ min: 0, max: 0xffff_ffff }).map((n) => {
        const b = new Uint8Array(16);
        new DataView(b.buffer).setUint16(0, DmMessageType.DM_BALLOON_REQUEST, true);
        new DataView(b.buffer).setUint16(2, 16, true);
        new DataView(b.buffer).setUint32(8, n, true);
        return b;
      }),
    );
    fuzz(
      'balloon.guest-driver',
      fc.property(fc.array(message, { minLength: 1, maxLength: 6 }), (msgs) => {
        const r = balloonRig({ memory: 64 * MIB, memoryMaximum: 192 * MIB });
        const total0 = r.meminfo().MemTotal / 4;
        for (const msg of msgs) r.driver.onHostMessage(msg);
        r.m.runFor(1e8);
        const d = r.driver;
        expect(r.meminfo().MemTotal / 4).toBe(total0 - d.numPagesBallooned + d.numPagesOnlined);
        expect(d.numPagesBallooned).toBeGreaterThanOrEqual(0);
        expect(r.meminfo().MemFree).toBeLessThanOrEqual(r.meminfo().MemTotal);
      }),
      runs(0.1),
    );
  });
});

describe('the dynamic memory codec', () => {
  it('fuzz: arbitrary bytes decode or fail with a WireError naming the field', () => {
    fuzz(
      'balloon.codec',
      fc.property(fc.uint8Array({ maxLength: 4200 }), (b) => {
        try {
          decodeDmMessage(b);
        } catch (e) {
          expect(e).toBeInstanceOf(WireError);
        }
      }),
      RUNS,
    );
  });

  it('fuzz: balloon responses and unballoon requests round-trip, up to the 4 KiB limit', () => {
    const range = fc.record({ start: fc.integer({ min: 0, max: MAX_RANGE_PFN }), count: fc.integer({ min: 0, max: MAX_RANGE_PAGES }) });
    fuzz(
      'balloon.codec-roundtrip',
      fc.property(fc.array(range, { maxLength: MAX_RANGES_PER_BALLOON_RESPONSE }), fc.boolean(), fc.integer({ min: 0, max: 0xffff_ffff }), (rs, more, id) => {
        expect(decodeDmMessage(encodeBalloonResponse(id, more, rs))).toEqual({ type: 'balloon-response', transId: id, morePages: more, ranges: rs });
        expect(decodeDmMessage(encodeUnballoonRequest(id, more, rs))).toEqual({ type: 'unballoon', transId: id, morePages: more, ranges: rs });
      }),
      RUNS,
    );
    expect(() => encodeBalloonResponse(0, false, new Array(MAX_RANGES_PER_BALLOON_RESPONSE + 1).fill({ start: 0, count: 1 }))).toThrow(WireError);
  });
});
