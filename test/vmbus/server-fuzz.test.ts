// Property tests of the VMBus host against a hostile guest (DESIGN.md principle 3: nothing the
// guest sends throws, reads or writes out of bounds, or loses what was already accepted), and one
// of the guest client against a hostile host. The server runs over a recording ServerIo; the
// guest's side of the rings is played by hand in guest memory.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { VmbusClient } from '../../src/vmbus/client/client.js';
import { VmbusError } from '../../src/vmbus/client/errors.js';
import type { ClientTransport } from '../../src/vmbus/client/transport.js';
import { gpadlMessages } from '../../src/vmbus/gpadl.js';
import { inband } from '../../src/vmbus/packet.js';
import { contiguousRing } from '../../src/vmbus/ring/memory.js';
import { RingReader, RingWriter } from '../../src/vmbus/ring/ring.js';
import type { ChannelHandler, HostChannel } from '../../src/vmbus/server/channel.js';
import { VmbusServer, type ServerIo } from '../../src/vmbus/server/server.js';
import { ChannelMessageType as T, VmbusVersion } from '../../src/vmbus/wire/constants.js';
import { decodeChannelMessage, encodeChannelMessage as msg, MESSAGES } from '../../src/vmbus/wire/messages.js';
import { release, type ReleaseId } from '../../src/hypervisor/release.js';
import { makeVersion } from '../../src/vmbus/wire/constants.js';
import { itFuzzEachRelease } from '../fuzz/fuzz.js';
import { RUNS, runs } from './fuzz-runs.js';

/** The VMBus version the host speaks in the property running now: its release's (vmbus.md §3.1). */
const at = { version: VmbusVersion.WIN10_V5_3 as number };
function onRelease(r: ReleaseId): void {
  const v = release(r).vmbusVersion;
  at.version = makeVersion(v.major, v.minor);
}

const CLASS = 'a1b2c3d4-0001-4000-8000-00000000e040';
const instance = (n: number) => `0000${n.toString(16).padStart(4, '0')}-feed-4000-8000-000000000001`;
const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
const text = (s: string) => new TextEncoder().encode(s);
const U32 = fc.integer({ min: 0, max: 0xffffffff });
const U64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

// --- A host with a recording ServerIo -----------------------------------------------------------

interface Post {
  vp: number;
  sint: number;
  message: Uint8Array;
}

/** A device that accepts opens (or refuses with `openStatus`) and echoes what it receives. */
class Device implements ChannelHandler {
  readonly received: Uint8Array[] = [];
  openStatus = 0;
  open(): number {
    return this.openStatus;
  }
  signal(ch: HostChannel): void {
    ch.receive((p) => {
      this.received.push(p.payload);
      if (p.completionRequested) ch.sendCompletion(p.transId, p.payload.subarray(0, 8));
    });
  }
}

function host(vpCount = 2) {
  const posts: Post[] = [];
  const listening = new Map<number, () => void>();
  const deferred: (() => void)[] = [];
  const io: ServerIo = {
    memory: new GuestMemory({ size: 1 << 20 }), // 256 frames: PFNs from 0x100 are outside RAM
    vpCount,
    post: (vp, sint, message) => void posts.push({ vp, sint, message: message.slice() }),
    listen: (id, f) => void (f ? listening.set(id, f) : listening.delete(id)),
    signalGuest: () => undefined,
    watchMonitor: () => undefined,
    defer: (f) => void deferred.push(f),
    // A device that throws is a bug of the test's devices: let it show.
    fault: (_where, e) => {
      throw e;
    },
  };
  const server = new VmbusServer(io, { maxVersion: at.version });
  const send = (m: Uint8Array) => expect(server.handleMessage(m, 0)).toBe(0);
  const runDeferred = () => {
    for (let n = 0, f = deferred.shift(); f && n < 100; n++, f = deferred.shift()) f();
  };
  return { server, io, mem: io.memory, posts, listening, send, runDeferred };
}
type Host = ReturnType<typeof host>;

// --- Guest messages, laid out by hand at the §2 offsets --------------------------------------------

function raw(type: number, len: number, fields: [at: number, value: number][] = []): Uint8Array {
  const b = new Uint8Array(len);
  const dv = new DataView(b.buffer);
  if (len >= 4) dv.setUint32(0, type >>> 0, true);
  for (const [at, v] of fields) if (at + 4 <= len) dv.setUint32(at, v >>> 0, true);
  return b;
}

/** INITIATE_CONTACT (§2.15); bytes 16..23 are msg_sint/msg_vtl/feature_flags or the interrupt page. */
function contact(o: { version?: number; vp?: number; sint?: number; vtl?: number; features?: number; p1?: bigint; p2?: bigint } = {}): Uint8Array {
  const b = raw(T.INITIATE_CONTACT, 40, [
    [8, o.version ?? at.version],
    [12, o.vp ?? 0],
    [20, o.features ?? 0],
  ]);
  b[16] = o.sint ?? 2;
  b[17] = o.vtl ?? 0;
  const dv = new DataView(b.buffer);
  dv.setBigUint64(24, o.p1 ?? 0n, true);
  dv.setBigUint64(32, o.p2 ?? 0n, true);
  return b;
}

/** A copy of `b` with msgtype `t` in its first 4 bytes. */
function withType(t: number, b: Uint8Array): Uint8Array {
  const c = b.slice();
  new DataView(c.buffer).setUint32(0, t, true);
  return c;
}

/** GPADL_HEADER with arbitrary fields and range data words (§2.9). */
function gpadlHeader(relid: number, handle: number, buflen: number, count: number, words: readonly bigint[]): Uint8Array {
  const b = raw(T.GPADL_HEADER, 20 + 8 * words.length, [
    [8, relid],
    [12, handle],
  ]);
  const dv = new DataView(b.buffer);
  dv.setUint16(16, buflen, true);
  dv.setUint16(18, count, true);
  words.forEach((w, i) => dv.setBigUint64(20 + 8 * i, w, true));
  return b;
}

function gpadlBody(handle: number, words: readonly bigint[], msgnumber = 0): Uint8Array {
  const b = raw(T.GPADL_BODY, 16 + 8 * words.length, [
    [8, msgnumber],
    [12, handle],
  ]);
  words.forEach((w, i) => new DataView(b.buffer).setBigUint64(16 + 8 * i, w, true));
  return b;
}

/** A well-formed GPADL of `pages` consecutive frames from `first` (header + bodies, §2.23). */
const ringGpadl = (relid: number, handle: number, first: number, pages: number) =>
  gpadlMessages(
    relid,
    handle,
    Array.from({ length: pages }, (_, i) => first + i),
    pages * 4096,
  );

/** GPADL_CREATED as §2.11 lays it out: relid, handle, status. */
const created = (relid: number, handle: number, status: number) =>
  raw(T.GPADL_CREATED, 20, [
    [8, relid],
    [12, handle],
    [16, status],
  ]);

const open = (relid: number, handle: number, downstream: number, o: { openid?: number; vp?: number } = {}) =>
  msg(T.OPENCHANNEL, { child_relid: relid, openid: o.openid ?? relid, ringbuffer_gpadlhandle: handle, target_vp: o.vp ?? 0, downstream_ringbuffer_pageoffset: downstream, userdata: new Uint8Array(120) });
const close = (relid: number) => raw(T.CLOSECHANNEL, 12, [[8, relid]]);
const released = (relid: number) => raw(T.RELID_RELEASED, 12, [[8, relid]]);
const teardown = (relid: number, handle: number) =>
  raw(T.GPADL_TEARDOWN, 16, [
    [8, relid],
    [12, handle],
  ]);
const modify = (relid: number, vp: number) =>
  raw(T.MODIFYCHANNEL, 16, [
    [8, relid],
    [12, vp],
  ]);

// --- Invariants -------------------------------------------------------------------------------------

const STATES = new Set(['unoffered', 'offered', 'open', 'revoked', 'released']);
const HOST_TYPES = new Set(Object.entries(MESSAGES).flatMap(([t, m]) => (m.dir === 'host' ? [Number(t)] : [])));

/** What must hold after every step; `from` is the first post not yet checked. */
function invariants(h: Host, from: number): void {
  const seen = new Set<HostChannel>();
  for (const [relid, ch] of h.server.channels) {
    expect(ch.relid).toBe(relid);
    expect(relid >= 1 && relid < 2048, `relid ${relid}`).toBe(true);
    expect(seen.has(ch)).toBe(false);
    seen.add(ch);
    expect(STATES.has(ch.state), ch.state).toBe(true);
    if (ch.state === 'open') {
      // An open channel's rings live in a GPADL that exists, and the host listens for it.
      expect(ch.ringGpadl).toBeDefined();
      expect(ch.gpadl(ch.ringGpadl!), `ring GPADL of open relid ${relid}`).toBeDefined();
      expect(h.listening.has(ch.connectionId)).toBe(true);
    }
  }
  for (const p of h.posts.slice(from)) {
    expect(p.message.length).toBeLessThanOrEqual(240);
    const m = decodeChannelMessage(p.message);
    expect(HOST_TYPES.has(m.type), m.name).toBe(true);
    expect(p.vp).toBeLessThan(h.io.vpCount);
    expect(p.sint).toBeLessThan(16);
  }
  expect(() => h.server.state()).not.toThrow();
}

/** A host connected at 5.3 with two echo channels; channel 1 open on frames 0x20–0x27. */
function healthy() {
  const h = host();
  const dev1 = new Device();
  h.send(contact());
  h.send(msg(T.REQUESTOFFERS, {}));
  const ch1 = h.server.offer({ classId: CLASS, instanceId: instance(1) }, dev1);
  const ch2 = h.server.offer({ classId: CLASS, instanceId: instance(2) }, new Device());
  for (const m of ringGpadl(1, 0xe1e10, 0x20, 8)) h.send(m);
  h.send(open(1, 0xe1e10, 4));
  expect([ch1.state, ch2.state, h.server.violations.items]).toEqual(['open', 'offered', []]);
  return { h, ch1, ch2, dev1 };
}

/** Channel 1 still carries packets both ways, and channel 2 can still be opened from scratch. */
function stillHealthy({ h, ch1, ch2, dev1 }: ReturnType<typeof healthy>): void {
  expect(ch1.isOpen).toBe(true);
  expect(ch1.sendInband(text('to guest'), 1n)).toBe(true);
  // The guest's view: its inbound ring at frame 0x24, its outbound ring at frame 0x20.
  const batch = new RingReader(contiguousRing(h.mem, 0x24000, 0x4000)).batch();
  let last: Uint8Array | undefined;
  for (let p = batch.next(); p; p = batch.next()) last = p.bytes.subarray(p.offset);
  batch.commit();
  expect(new TextDecoder().decode(last!.subarray(0, 8))).toBe('to guest');
  new RingWriter(contiguousRing(h.mem, 0x20000, 0x4000)).write(inband(text('to host!'), 2n));
  h.listening.get(ch1.connectionId)!();
  h.runDeferred();
  expect(new TextDecoder().decode(dev1.received.at(-1)!.subarray(0, 8))).toBe('to host!');
  const from = h.posts.length;
  for (const m of ringGpadl(2, 0xf00d, 0x40, 8)) h.send(m);
  h.send(open(2, 0xf00d, 4, { vp: 1 }));
  expect(h.posts.slice(from).map((p) => [...p.message])).toEqual([
    [...created(2, 0xf00d, 0)],
    [...raw(T.OPENCHANNEL_RESULT, 20, [[8, 2], [12, 2], [16, 0]])], // relid, openid, status (§2.7)
  ]);
  expect(ch2.isOpen).toBe(true);
}

// --- Generators -------------------------------------------------------------------------------------

const KNOWN_VERSIONS = [0x20004, 0x30000, 0x40000, 0x40001, 0x50000, 0x50001, 0x50002, 0x50003, 0x60000];
const relid = fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 1, max: 4 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 2047, 2048, 0xffffffff) }, { weight: 1, arbitrary: U32 });
const handle = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(0xe1e10, 0xe1e11, 0xe1e12) }, { weight: 1, arbitrary: fc.constantFrom(0, 0xffffffff) }, { weight: 1, arbitrary: U32 });
const vp = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(0, 1) }, { weight: 1, arbitrary: fc.constantFrom(2, 0xffffffff) }, { weight: 1, arbitrary: U32 });
/** Range data words: PFNs in RAM mostly, some outside; range headers (byte_count | byte_offset << 32). */
const word = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0x10, max: 0xff }).map(BigInt) },
  { weight: 2, arbitrary: fc.record({ count: fc.oneof(fc.integer({ min: 1, max: 30 }).map((n) => n * 4096), U32), offset: fc.oneof(fc.constant(0), fc.nat(0x1fff)) }).map((r) => BigInt(r.count) | (BigInt(r.offset) << 32n)) },
  { weight: 1, arbitrary: fc.oneof(fc.constantFrom(0n, 0x100n, 1n << 32n, 1n << 52n), U64) },
);
const page = fc.oneof(fc.constant(0n), fc.constantFrom(0x1000n, 0x2000n, 0x1001n, 0xff000n, 0x100000n), U64);

/**
 * Structurally valid guest messages with adversarial contents. Contacts and unloads (which end
 * the connection) are rarer, so that sequences spend their time on a live connection.
 */
const w = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });
const guestMessage: fc.Arbitrary<Uint8Array> = fc.oneof(
  w(
    1,
    fc
      .record({ version: fc.oneof(fc.constantFrom(...KNOWN_VERSIONS), fc.constantFrom(0xd, 0x10001, 0x50004), U32), vp, sint: fc.oneof(fc.constant(2), fc.nat(255)), vtl: fc.oneof(fc.constant(0), fc.nat(255)), features: U32, p1: page, p2: page })
      .map(contact),
  ),
  w(1, fc.constant(msg(T.REQUESTOFFERS, {}))),
  w(
    4,
    fc
      .record({ relid, handle, buflen: fc.oneof(fc.integer({ min: 1, max: 60 }).map((n) => 8 * n), fc.nat(0xffff)), count: fc.oneof(fc.constant(1), fc.constantFrom(0, 2), fc.nat(0xffff)), words: fc.array(word, { maxLength: 27 }) })
      .map((r) => gpadlHeader(r.relid, r.handle, r.buflen, r.count, r.words)),
  ),
  w(3, fc.record({ handle, words: fc.array(word, { maxLength: 28 }), n: U32 }).map((r) => gpadlBody(r.handle, r.words, r.n))),
  w(3, fc.tuple(relid, handle).map(([r, g]) => teardown(r, g))),
  w(3, fc.record({ relid, handle, openid: U32, vp, downstream: fc.oneof(fc.nat(10), U32) }).map((r) => open(r.relid, r.handle, r.downstream, r))),
  w(3, relid.map(close)),
  w(2, relid.map(released)),
  w(3, fc.tuple(relid, vp).map(([r, v]) => modify(r, v))),
  w(1, fc.constant(msg(T.UNLOAD, {}))),
  w(
    1,
    fc.uint8Array({ minLength: 32, maxLength: 32 }).map((ids) => {
      const b = raw(T.TL_CONNECT_REQUEST, 40);
      b.set(ids, 8);
      return b;
    }),
  ),
);

type Op =
  | { k: 'guest'; m: Uint8Array }
  /** A well-formed ring GPADL and OPENCHANNEL for the index-th channel, so opens do happen. */
  | { k: 'guestOpen'; index: number; handle: number; first: number; pages: number; skipBody: boolean }
  | { k: 'offer'; instance: number; sub: number; monitor: boolean; openStatus: number }
  | { k: 'revoke'; index: number }
  | { k: 'hostSend'; index: number; size: number }
  | { k: 'guestSignal'; index: number }
  | { k: 'scribble'; at: number; bytes: Uint8Array };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: guestMessage.map((m) => ({ k: 'guest' as const, m })) },
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('guestOpen' as const),
      index: fc.nat(5),
      handle,
      first: fc.integer({ min: 0x10, max: 0xe0 }),
      pages: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 4, max: 16 }) }, fc.integer({ min: 2, max: 60 })),
      skipBody: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('offer' as const), instance: fc.integer({ min: 1, max: 3 }), sub: fc.nat(2), monitor: fc.boolean(), openStatus: fc.constantFrom(0, 0, 0, 0xc0000001) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('revoke' as const), index: fc.nat(5) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('hostSend' as const), index: fc.nat(5), size: fc.nat(6000) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('guestSignal' as const), index: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('scribble' as const), at: fc.nat((1 << 20) - 64), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }) },
);

function apply(h: Host, o: Op): void {
  const chs = [...h.server.channels.values()];
  const pick = (i: number) => chs[i % Math.max(1, chs.length)];
  switch (o.k) {
    case 'guest':
      return void h.send(o.m);
    case 'guestOpen': {
      const ch = pick(o.index);
      if (!ch) return;
      const msgs = ringGpadl(ch.relid, o.handle, o.first, o.pages);
      msgs.forEach((m, i) => (i === 1 && o.skipBody ? undefined : h.send(m)));
      return void h.send(open(ch.relid, o.handle, Math.floor(o.pages / 2), { vp: o.index & 1 }));
    }
    case 'offer': {
      const d = new Device();
      d.openStatus = o.openStatus;
      h.server.offer({ classId: CLASS, instanceId: instance(o.instance), subChannelIndex: o.sub, monitor: o.monitor }, d);
      return;
    }
    case 'revoke': {
      const ch = pick(o.index);
      if (ch) h.server.revoke(ch);
      return;
    }
    case 'hostSend':
      pick(o.index)?.sendInband(new Uint8Array(o.size), 7n, true);
      return;
    case 'guestSignal': {
      const ch = pick(o.index);
      h.listening.get(ch?.connectionId ?? -1)?.();
      h.runDeferred();
      return;
    }
    case 'scribble':
      h.mem.write(o.at, o.bytes);
      return;
  }
}

// --- The properties ---------------------------------------------------------------------------------

describe('VmbusServer against a hostile guest', () => {
  // Half the time the first 4 bytes name a real (or near-real) message type.
  const anyBytes = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.tuple(fc.integer({ min: 0, max: 30 }), fc.uint8Array({ minLength: 4, maxLength: 300 })).map(([t, b]) => withType(t, b)),
  );
  itFuzzEachRelease(
    '(a) any byte string (0–300 bytes) is taken without throwing and answered SUCCESS',
    'vmbus-server.any-bytes',
    (r) => {
      onRelease(r);
      return fc.property(fc.boolean(), fc.array(anyBytes, { minLength: 1, maxLength: 8 }), (connected, list) => {
        const h = connected ? healthy().h : host();
        const from = h.posts.length;
        for (const b of list) expect(h.server.handleMessage(b, 0)).toBe(0);
        invariants(h, from);
      });
    },
    RUNS,
  );

  const start = fc.record({ connect: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, fc.constant(false)), offers: fc.nat(3) });
  itFuzzEachRelease(
    '(b) adversarial message sequences, interleaved with offers, revokes and ring traffic, keep the invariants',
    'vmbus-server.sequences',
    (r) => {
      onRelease(r);
      return fc.property(start, fc.array(op, { maxLength: 40 }), (first, ops) => {
        const h = host();
        // Mostly start where a guest would: connected, offers requested, some devices offered.
        if (first.connect) {
          h.send(contact());
          h.send(msg(T.REQUESTOFFERS, {}));
        }
        for (let i = 0; i < first.offers; i++) apply(h, { k: 'offer', instance: i + 1, sub: 0, monitor: i === 1, openStatus: 0 });
        let from = 0;
        for (const o of ops) {
          apply(h, o);
          invariants(h, from);
          from = h.posts.length;
        }
      });
    },
    runs(0.5),
  );

  describe('(c) malformed input gets a violation or a refusal, and a healthy channel keeps working', () => {
    /** One exact message of every type the guest sends, valid in the healthy() state. */
    const EXACT: [name: string, m: Uint8Array][] = [
      ['INITIATE_CONTACT', contact()],
      ['REQUESTOFFERS', msg(T.REQUESTOFFERS, {})],
      ['OPENCHANNEL', open(2, 0xbad, 4)],
      ['CLOSECHANNEL', close(1)],
      ['GPADL_HEADER', ringGpadl(2, 0xe1e11, 0x30, 4)[0]!],
      ['GPADL_BODY', gpadlBody(0xbad, [0x30n, 0x31n])],
      ['GPADL_TEARDOWN', teardown(2, 0xbad)],
      ['RELID_RELEASED', released(2)],
      ['UNLOAD', msg(T.UNLOAD, {})],
      ['TL_CONNECT_REQUEST', raw(T.TL_CONNECT_REQUEST, 40)],
      ['MODIFYCHANNEL', modify(1, 1)],
    ];
    /** The fixed part of each (GPADL_HEADER and GPADL_BODY carry range data after it). */
    const FIXED: Record<string, number> = { GPADL_HEADER: 20, GPADL_BODY: 16 };

    // A finite space: every type, every length short of its fixed part (exhaustively).
    it.each(EXACT)('%s cut short by any number of bytes: a violation each time, nothing sent, nothing changed', (name, m) => {
      const rig = healthy();
      const { h } = rig;
      const snapshot = () => ({ posts: h.posts.length, ...h.server.state(), violations: undefined });
      const before = snapshot();
      const fixed = FIXED[name] ?? m.length;
      for (let len = 0; len < fixed; len++) h.send(m.slice(0, len));
      // Each counted; the most recent 100 kept (budget.violations).
      expect(h.server.violations.total).toBe(fixed);
      expect(h.server.violations.items.map((v) => v.message)).toEqual(new Array(Math.min(fixed, 100)).fill('(undecodable)'));
      expect(snapshot()).toEqual(before);
      stillHealthy(rig);
    });

    itFuzzEachRelease(
      'every guest message type with bytes appended: handled exactly as the exact form (up to 240), a violation beyond',
      'vmbus-server.appended-bytes',
      (r) => {
        onRelease(r);
        return fc.property(fc.nat(EXACT.length - 1), fc.uint8Array({ minLength: 1, maxLength: 240 }), (which, tail) => {
          const [, m] = EXACT[which]!;
          const longer = new Uint8Array(m.length + tail.length);
          longer.set(m);
          longer.set(tail, m.length);
          const exact = healthy().h;
          exact.send(m);
          const extended = healthy().h;
          extended.send(longer);
          if (longer.length <= 240) {
            expect(extended.posts.map((p) => [...p.message])).toEqual(exact.posts.map((p) => [...p.message]));
            expect(extended.server.violations.items).toEqual(exact.server.violations.items);
            expect(extended.server.state()).toEqual(exact.server.state());
          } else {
            expect(extended.server.violations.items.map((v) => v.message)).toEqual(['(undecodable)']);
          }
        });
      },
      RUNS,
    );

    /** Garbage that must each be a violation (or a GPADL_CREATED failure) in the healthy() state. */
    const GARBAGE_HANDLES = [0xbad0, 0xbad1, 0xbad2];
    const garbageHandle = fc.constantFrom(...GARBAGE_HANDLES);
    const garbage: fc.Arbitrary<Uint8Array> = fc.oneof(
      // Any type cut short, or too long for a SynIC message.
      fc.tuple(fc.nat(EXACT.length - 1), fc.nat()).map(([w, cut]) => EXACT[w]![1].slice(0, cut % (FIXED[EXACT[w]![0]] ?? EXACT[w]![1].length))),
      fc.tuple(fc.integer({ min: 0, max: 30 }), fc.uint8Array({ minLength: 241, maxLength: 300 })).map(([t, b]) => withType(t, b)),
      // Types the host sends, or no one does.
      fc.tuple(fc.constantFrom(0, 1, 2, 4, 6, 10, 12, 15, 17, 18, 19, 20, 23, 24, 25, 99, 0xffffffff), fc.integer({ min: 8, max: 240 })).map(([t, n]) => raw(t, Math.max(n, t === 1 ? 196 : 44))),
      // Bodies for a GPADL nobody started (a body before its header is one of these).
      fc.tuple(garbageHandle, fc.array(word, { maxLength: 28 })).map(([g, w]) => gpadlBody(g, w)),
      // Headers the host cannot accept: no range, a range_buflen that is not whole u64s or
      // less than one range header, or complete ranges that do not hold together.
      fc.tuple(fc.constantFrom(1, 2, 99), garbageHandle, fc.integer({ min: 0, max: 7 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0x10, max: 0xf0 })).map(([r, g, kind, n, first]) => {
        const pfns = Array.from({ length: n }, (_, i) => BigInt(first + i));
        const range = (count: number, offset = 0) => BigInt(count) | (BigInt(offset) << 32n);
        const full = (head: bigint, list = pfns, count = 1) => gpadlHeader(r, g, 8 + 8 * list.length, count, [head, ...list]);
        switch (kind) {
          case 0:
            return gpadlHeader(r, g, 8 + 8 * n, 0, [range(n * 4096), ...pfns]); // rangecount 0
          case 1:
            return gpadlHeader(r, g, 8 + 8 * n + 4, 1, [range(n * 4096), ...pfns]); // not whole u64s
          case 2:
            return gpadlHeader(r, g, 0, 1, []); // not even a range header
          case 3:
            return full(range(0)); // byte_count 0
          case 4:
            return full(range(4096, 4096)); // byte_offset outside the first page
          case 5:
            return full(range((n + 1) * 4096)); // needs one PFN more than it carries
          case 6:
            return full(range(n * 4096), [...pfns.slice(1), 0x100n]); // a frame beyond RAM
          default:
            return full(range(n * 4096), pfns, 2); // a second range that is missing
        }
      }),
      // Requests naming what does not exist or is in the wrong state.
      garbageHandle.map((g) => teardown(2, g)),
      fc.constant(teardown(1, 0xe1e10)), // the rings of an open channel
      fc.tuple(fc.constantFrom(2, 99), garbageHandle).map(([r, g]) => open(r, g, 4)),
      fc.constant(open(1, 0xe1e10, 4)), // already open
      fc.constantFrom(close(2), close(99), released(1), released(99), modify(99, 0), msg(T.REQUESTOFFERS, {})),
    );

    itFuzzEachRelease(
      'a storm of malformed GPADL and channel messages: each one is refused, channel 1 keeps working, channel 2 still opens',
      'vmbus-server.malformed-storm',
      (r) => {
        onRelease(r);
        return fc.property(fc.array(garbage, { minLength: 1, maxLength: 30 }), (list) => {
          const rig = healthy();
          const { h } = rig;
          for (const m of list) {
            const v = h.server.violations.total;
            const from = h.posts.length;
            h.send(m);
            const refused = h.posts.slice(from).some((p) => u32(p.message, 0) === T.GPADL_CREATED && u32(p.message, 16) !== 0);
            expect(h.server.violations.total > v || refused, `message ${[...m.subarray(0, 24)]}`).toBe(true);
            invariants(h, from);
          }
          stillHealthy(rig);
        });
      },
      runs(0.5),
    );

    it('GPADL bodies: before their header, after the GPADL is complete, and interleaved across two GPADLs', () => {
      const rig = healthy();
      const { h, ch2 } = rig;
      const pfns = (first: number, n: number) => Array.from({ length: n }, (_, i) => BigInt(first + i));
      // A body before its header: nothing is being assembled under that handle yet.
      h.send(gpadlBody(0xa, pfns(0x40, 4)));
      expect(h.server.violations.items.map((v) => v.message)).toEqual(['GPADL_BODY']);
      // Two 30-page GPADLs on channel 2 whose messages interleave: bodies carry the handle.
      const a = ringGpadl(2, 0xa, 0x40, 30);
      const b = ringGpadl(2, 0xb, 0x80, 30);
      for (const m of [a[0]!, b[0]!, b[1]!, a[1]!]) h.send(m);
      expect(h.posts.slice(-2).map((p) => [u32(p.message, 0), u32(p.message, 12), u32(p.message, 16)])).toEqual([
        [T.GPADL_CREATED, 0xb, 0],
        [T.GPADL_CREATED, 0xa, 0],
      ]);
      expect(ch2.gpadl(0xa)!.ranges[0]!.pfns).toEqual(pfns(0x40, 30).map(Number));
      expect(ch2.gpadl(0xb)!.ranges[0]!.pfns).toEqual(pfns(0x80, 30).map(Number));
      // A body after completion: the GPADL is no longer being assembled.
      h.send(gpadlBody(0xa, pfns(0x70, 2)));
      expect(h.server.violations.items.map((v) => v.message)).toEqual(['GPADL_BODY', 'GPADL_BODY']);
      stillHealthy(rig);
    });

    it('GPADL bodies carrying more PFNs than range_buflen: the GPADL completes at range_buflen, the excess is ignored (§5.2)', () => {
      const rig = healthy();
      const { h, ch2 } = rig;
      const [head] = ringGpadl(2, 0xc, 0x40, 30); // range_buflen for 30 pages: 26 in the header, 4 to come
      h.send(head!);
      h.send(gpadlBody(0xc, Array.from({ length: 28 }, (_, i) => BigInt(0x40 + 26 + i)))); // 28, not 4
      expect(h.posts.at(-1)!.message).toEqual(created(2, 0xc, 0));
      expect(ch2.gpadl(0xc)!.ranges[0]!.pfns).toEqual(Array.from({ length: 30 }, (_, i) => 0x40 + i));
      expect(h.server.violations.items).toEqual([]);
      stillHealthy(rig);
    });

    it('a GPADL never outlives its channel: a relid reused after RELID_RELEASED and revoke starts with no GPADLs', () => {
      const { h, ch2 } = healthy();
      h.send(released(2));
      for (const m of ringGpadl(2, 0x77, 0x40, 8)) h.send(m); // on a channel the guest released
      h.server.revoke(ch2);
      const next = h.server.offer({ classId: CLASS, instanceId: instance(3) }, new Device());
      expect(next.relid).toBe(2);
      expect(next.gpadl(0x77)).toBeUndefined();
      h.send(open(2, 0x77, 4));
      expect(next.isOpen).toBe(false);
    });
  });
});

// --- The guest client against a hostile host ------------------------------------------------------

describe('VmbusClient against a hostile host', () => {
  /** Just enough of a kernel for the client: the host's replies to `target` are the fuzz slots. */
  function guest(target: number, fuzz: Uint8Array[]) {
    const completedBy: (Uint8Array | undefined)[] = [];
    const inbox: Uint8Array[] = [];
    let next = 0x10000;
    const good = (p: Uint8Array): Uint8Array[] => {
      const r = (m: Uint8Array) => {
        const s = new Uint8Array(256);
        s[0] = 1;
        s[4] = m.length;
        s.set(m, 16);
        return [s];
      };
      switch (u32(p, 0)) {
        case T.INITIATE_CONTACT:
          return r(msg(T.VERSION_RESPONSE, { version_supported: 1, connection_state: 0, padding: 0, msg_conn_id: 1 }));
        case T.GPADL_HEADER:
          return r(msg(T.GPADL_CREATED, { child_relid: u32(p, 8), gpadl: u32(p, 12), creation_status: 0 }));
        case T.OPENCHANNEL:
          return r(msg(T.OPENCHANNEL_RESULT, { child_relid: u32(p, 8), openid: u32(p, 12), status: 0 }));
        case T.GPADL_TEARDOWN:
          return r(msg(T.GPADL_TORNDOWN, { gpadl: u32(p, 12) }));
        case T.MODIFYCHANNEL:
          return r(msg(T.MODIFYCHANNEL_RESPONSE, { child_relid: u32(p, 8), status: 0 }));
      }
      return [];
    };
    const transport: ClientTransport = {
      memory: new GuestMemory({ size: 1 << 20 }),
      onlineCpus: () => [0, 1],
      vpIndex: (cpu) => cpu,
      postMessage(_conn, payload) {
        inbox.push(...(u32(payload, 0) === target ? fuzz.splice(0) : good(payload)));
        return 0;
      },
      signalEvent: () => 0,
      allocPages: (bytes) => ((next += bytes), next - bytes),
      freePages: () => undefined,
      allocHvPage: () => ((next += 4096), next - 4096),
      freeHvPage: () => undefined,
      waitUntil(done) {
        // One slot at a time, noting which one (if any) ended the wait.
        let by: Uint8Array | undefined;
        while (!done() && inbox.length > 0) {
          const s = inbox.shift()!;
          client.onMessage(s.slice());
          if (done()) by = s;
        }
        inbox.length = 0;
        completedBy.push(by);
        return done();
      },
      log: () => undefined,
    };
    const client = new VmbusClient(transport, { versions: [at.version] });
    return { client, completedBy };
  }

  /**
   * Slots built around what a request waits for (its reply type, the two fields it is matched
   * on, a size at the reply's minimum), so that some answer it and many nearly do.
   */
  const hostSlot = (reply: { msgtype: number; min: number; a: number; b: number }) =>
    fc
      .record({
        type: fc.oneof({ weight: 6, arbitrary: fc.constant(1) }, fc.constant(0), U32),
        size: fc.oneof({ weight: 4, arbitrary: fc.constant(reply.min) }, fc.constantFrom(8, 12, 16, 20, 196, 240), fc.nat(255)),
        msgtype: fc.oneof({ weight: 4, arbitrary: fc.constant(reply.msgtype) }, fc.constantFrom(2, 6, 10, 12, 24), fc.nat(30), U32),
        a: fc.oneof({ weight: 4, arbitrary: fc.constant(reply.a) }, fc.constantFrom(1, 2, 0xe1e10, 0xe1e11), U32),
        b: fc.oneof({ weight: 4, arbitrary: fc.constant(reply.b) }, fc.constantFrom(1, 2, 0xe1e10, 0xe1e11), U32),
        status: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, U32),
        rest: fc.uint8Array({ minLength: 256, maxLength: 256 }),
      })
      .map((r) => {
        const s = r.rest.slice();
        const dv = new DataView(s.buffer);
        dv.setUint32(0, r.type, true);
        s[4] = r.size;
        dv.setUint32(16, r.msgtype, true);
        dv.setUint32(24, r.a, true);
        dv.setUint32(28, r.b, true);
        dv.setUint32(32, r.status, true);
        return s;
      });

  /** The slot is a message the client may act on: not NONE, ≤ 240, at least `min` bytes, of `msgtype`. */
  const usable = (s: Uint8Array, msgtype: number, min: number) => u32(s, 0) !== 0 && s[4]! <= 240 && s[4]! >= min && u32(s, 16) === msgtype;
  /** A rescind of relid 1 also ends any wait on channel 1 (§6.4 step 3). */
  const rescindsOne = (s: Uint8Array) => usable(s, T.RESCIND_CHANNELOFFER, 12) && u32(s, 24) === 1;

  {
    const OFFER = (() => {
      const s = new Uint8Array(256);
      s[0] = 1;
      s[4] = 196;
      s.set(
        msg(T.OFFERCHANNEL, {
          offer: { if_type: CLASS, if_instance: instance(1), reserved1: 0n, reserved2: 0n, chn_flags: 0, mmio_megabytes: 0, u: new Uint8Array(120), sub_channel_index: 0, reserved3: 0 },
          child_relid: 1,
          monitorid: 0xff,
          _monitor: { monitor_allocated: 0, reserved: 0 },
          _dedicated: { is_dedicated_interrupt: 1, reserved1: 0 },
          connection_id: 0x2001,
        }),
        16,
      );
      return s;
    })();
    const HANDLE = 0xe1e10; // the first handle Linux hands out (§5.1)
    // What each request waits for, and which reply answers it (§12): open result by (relid,
    // openid), GPADL_CREATED by (relid, handle), GPADL_TORNDOWN by handle, modify by relid.
    const requests = {
      gpadl: { target: T.GPADL_HEADER, wait: 0, reply: { msgtype: T.GPADL_CREATED, min: 20, a: 1, b: HANDLE }, status: 32 },
      open: { target: T.OPENCHANNEL, wait: 1, reply: { msgtype: T.OPENCHANNEL_RESULT, min: 20, a: 1, b: 1 }, status: 32 },
      teardown: { target: T.GPADL_TEARDOWN, wait: 1, reply: { msgtype: T.GPADL_TORNDOWN, min: 12, a: HANDLE, b: 0 }, status: undefined },
      modify: { target: T.MODIFYCHANNEL, wait: 2, reply: { msgtype: T.MODIFYCHANNEL_RESPONSE, min: 16, a: 1, b: 0 }, status: 28 },
    };
    // The fields each reply is matched on (§12): open result by (relid, openid), GPADL_CREATED
    // by (relid, handle), GPADL_TORNDOWN by handle, MODIFYCHANNEL_RESPONSE by relid.
    const answers = (which: keyof typeof requests, s: Uint8Array): boolean => {
      const r = requests[which].reply;
      const matched = which === 'teardown' || which === 'modify' ? u32(s, 24) === r.a : u32(s, 24) === r.a && u32(s, 28) === r.b;
      return usable(s, r.msgtype, r.min) && matched;
    };
    const ring = { sendRingBytes: 16384, recvRingBytes: 16384, onEvent: () => undefined };
    // The guest waits for MODIFYCHANNEL's answer from 5.3 (vmbus.md §2.18).
    const request = () => fc.constantFrom(...(Object.keys(requests) as (keyof typeof requests)[]).filter((k) => k !== 'modify' || at.version >= VmbusVersion.WIN10_V5_3)).chain((which) => fc.tuple(fc.constant(which), fc.array(hostSlot(requests[which].reply), { maxLength: 8 })));
    itFuzzEachRelease('arbitrary slots never throw, and end a wait only if they answer it (§12 "matched by content")', 'vmbus-client.host-slots', (r) => {
      onRelease(r);
      return fc.property(request(), ([which, slots]) => {
        const req = requests[which];
        const { client, completedBy } = guest(req.target, slots.map((s) => s.slice()));
        client.connect();
        client.onMessage(OFFER);
        client.runWork();
        const ch = client.channel(1)!;
        const before = completedBy.length;
        let outcome = 'ok';
        try {
          // Earlier steps of each request are answered properly; the last one gets the fuzz.
          if (which === 'gpadl') ch.establishGpadl(0x80000, 8192);
          if (which === 'open') ch.open(ring);
          if (which === 'teardown') ch.teardownGpadl(ch.establishGpadl(0x80000, 8192));
          if (which === 'modify') {
            ch.open(ring);
            ch.setTargetCpu(1);
          }
        } catch (e) {
          if (!(e instanceof VmbusError)) throw e;
          outcome = e.code;
        }
        const by = completedBy[before + req.wait];
        if (by && answers(which, by)) {
          // Answered: the request succeeds exactly when the answer's status is 0.
          if (req.status !== undefined) expect(outcome === 'ok').toBe(u32(by, req.status) === 0);
        } else if (by) {
          expect(rescindsOne(by), `wait ended by ${[...by.subarray(0, 36)]}`).toBe(true);
        } else {
          expect(outcome).toBe('ETIMEDOUT');
        }
        // Offers and rescinds the fuzz queued run without throwing too.
        client.runWork();
      });
    }, RUNS);
  }
});
