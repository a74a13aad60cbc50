// The KVP IC: the host's requests byte for byte (vmbus.md §9.7, OpenVMM's 2580-byte body) and
// its refusals of keys and values it cannot send; negotiation on every release; get, set,
// delete and enumerate in every pool end to end over VMBus with UTF-16 keys beyond the BMP;
// the daemon's pool files byte for byte (tools/hv/hv_kvp_daemon.c kvp_record) after set, modify,
// delete and add, and read back from files prepared by hand; the AUTO pool's answers; the
// daemon absent, hung, restarted and stopped (hv_kvp.c's state machine and HV_UTIL_TIMEOUT);
// what the guest makes of hostile requests; and every parser fed arbitrary bytes both ways.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { GuestServices } from '../../src/devices/device.js';
import { hvUtilsModule } from '../../src/devices/ic/guest.js';
import { prepNegotiateResp } from '../../src/devices/ic/negotiate.js';
import { KVP_AUTO_KEYS } from '../../src/devices/kvp/daemon.js';
import { makeKvpService, type KvpService, type KvpServiceOptions } from '../../src/devices/kvp/guest.js';
import { attachKvp, KVP_HOST_VERSIONS, type KvpOptions } from '../../src/devices/kvp/host.js';
import { cInt, utf16sToUtf8s, utf8sToUtf16s } from '../../src/devices/ic/nls.js';
import { DaemonExit, KvpPools } from '../../src/devices/kvp/pool.js';
import { decodeKvpString, decodeKvpValue, encodeKvpString } from '../../src/devices/kvp/wire.js';
import { MemoryFiles } from '../../src/guest/memfs.js';
import { RELEASE_IDS, type ReleaseId } from '../../src/hypervisor/release.js';
import { WireError } from '../../src/tlfs/struct.js';
import type { ChannelHandler, HostChannel } from '../../src/vmbus/server/channel.js';
import type { VmbusServer } from '../../src/vmbus/server/server.js';
import { Machine } from '../../src/vm/machine.js';
import { RUNS, runs } from '../vmbus/fuzz-runs.js';
import { hostContext, HV_E_FAIL, recordingServices, utilHarness, v } from './services.js';
import { fuzz, itFuzzEachRelease } from '../fuzz/fuzz.js';
import { concatBytes } from '../../src/memory/typed-arrays.js';

const INSTANCE = '242ff919-07db-4180-9c2e-b86cb68c8c55';
const HV_S_OK = 0;
const HV_S_CONT = 0x80070103;
const HV_GUID_NOTFOUND = 0x80041002;
const POOL = { EXTERNAL: 0, GUEST: 1, AUTO: 2, AUTO_EXTERNAL: 3, AUTO_INTERNAL: 4 } as const;
const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));
/** A JS string as UTF-16LE bytes, without terminator. */
const utf16 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf16le'));
const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);
const u16 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint16(at, true);
const pool = (files: { read(p: string): Uint8Array | undefined }, n: number) => files.read(`/var/lib/hyperv/.kvp_pool_${n}`);

// --- Layout facts, written from vmbus.md §9.1 / §9.7 and hv_kvp_daemon.c -------------------------

/** Offsets in a KVP packet payload: 28 bytes of headers, then hv_kvp_msg. */
const AT = {
  icmsgtype: 12,
  icmsgsize: 18,
  status: 20,
  transId: 24,
  icflags: 25,
  op: 28,
  pool: 29,
  // GET / SET: hv_kvp_exchg_msg_value at body + 4
  valueType: 28 + 4,
  keySize: 28 + 8,
  valueSize: 28 + 12,
  key: 28 + 16,
  value: 28 + 528,
  // DELETE
  delKeySize: 28 + 4,
  delKey: 28 + 8,
  // ENUMERATE: index, then the record at body + 8
  index: 28 + 4,
  eValueType: 28 + 8,
  eKeySize: 28 + 12,
  eValueSize: 28 + 16,
  eKey: 28 + 20,
  eValue: 28 + 532,
  // hv_kvp_ip_msg: the settings at body + 2
  ipAdapter: 28 + 2,
  ipFamily: 28 + 258,
  ipDhcp: 28 + 259,
  ipAddr: 28 + 260,
} as const;
const RECORD = 2560;

/** A KVP request the way a host lays it out: pipe header, IC header (3.0 / 4.0), a `bodyLen`-byte body. */
function kvpPacket(op: number, poolId: number, fill: (dv: DataView, b: Uint8Array) => void = () => {}, bodyLen = 2580, id = 0): Uint8Array {
  const b = new Uint8Array(28 + bodyLen);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 1, true);
  dv.setUint32(4, 20 + bodyLen, true);
  dv.setUint16(8, 3, true);
  dv.setUint16(AT.icmsgtype, 2, true);
  dv.setUint16(14, 4, true);
  dv.setUint16(AT.icmsgsize, bodyLen, true);
  b[AT.transId] = id;
  b[AT.icflags] = 3;
  b[AT.op] = op;
  b[AT.pool] = poolId;
  fill(dv, b);
  return b;
}
const setPacket = (poolId: number, key: string, value: string) =>
  kvpPacket(1, poolId, (dv, b) => {
    dv.setUint32(AT.valueType, 1, true);
    dv.setUint32(AT.keySize, 2 * (key.length + 1), true);
    dv.setUint32(AT.valueSize, 2 * (value.length + 1), true);
    b.set(utf16(key), AT.key);
    b.set(utf16(value), AT.value);
  });
const enumPacket = (poolId: number, index: number) => kvpPacket(3, poolId, (dv) => dv.setUint32(AT.index, index >>> 0, true));
const deletePacket = (poolId: number, key: string) =>
  kvpPacket(2, poolId, (dv, b) => {
    dv.setUint32(AT.delKeySize, 2 * (key.length + 1), true);
    b.set(utf16(key), AT.delKey);
  });
/** A NEGOTIATE offering framework 1.0, 3.0 and KVP 3.0, 4.0, 5.0 (as OpenVMM lists them). */
function negotiatePacket(): Uint8Array {
  const b = new Uint8Array(28 + 8 + 5 * 4);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 1, true);
  dv.setUint32(4, b.length - 8, true);
  dv.setUint16(AT.icmsgsize, 8 + 5 * 4, true);
  b[AT.icflags] = 3;
  dv.setUint16(28, 2, true);
  dv.setUint16(30, 3, true);
  [1, 0, 3, 0, 3, 0, 4, 0, 5, 0].forEach((x, i) => dv.setUint16(36 + 2 * i, x, true));
  return b;
}
/** A string out of an answer's UTF-16 area, `size` bytes with the terminator. */
const text16 = (b: Uint8Array, at: number, size: number) => Buffer.from(b.subarray(at, at + size - 2)).toString('utf16le');

/** A kvp_record as the daemon writes one: key and value C strings, zero-filled (a fresh slot). */
function record(key: Uint8Array | string, value: Uint8Array | string): Uint8Array {
  const r = new Uint8Array(RECORD);
  r.set(typeof key === 'string' ? utf8(key) : key, 0);
  r.set(typeof value === 'string' ? utf8(value) : value, 512);
  return r;
}
const concat = (...parts: Uint8Array[]) => concatBytes(parts);

// --- Harnesses -----------------------------------------------------------------------------------

/**
 * The guest's KVP service bound by hv_utils on a stand-in channel: `deliver` queues packets and
 * raises one channel interrupt; the stub's clock and delayed work run when the test says.
 */
function guestHarness(options: KvpServiceOptions = {}, prepare?: (s: GuestServices) => void) {
  const service = makeKvpService(options);
  return { ...utilHarness(service, { prepare }), service };
}

/** A guest harness negotiated and with its daemon up. */
function readyGuest(options: KvpServiceOptions = {}, prepare?: (s: GuestServices) => void) {
  const h = guestHarness(options, prepare);
  h.deliver(negotiatePacket());
  expect(h.sent.length).toBe(1);
  return h;
}

/** The host on a recording channel: what it sends, and what it logs. */
function hostHarness(options: KvpOptions = {}, release: ReleaseId = 'ws2022') {
  const sent: Uint8Array[] = [];
  const log: string[] = [];
  let handler: ChannelHandler | undefined;
  let full = false;
  const ch = { sendInband: (b: Uint8Array) => (full ? false : (sent.push(b.slice()), true)), receive: () => 0 } as unknown as HostChannel;
  const server = {
    offer: (_s: unknown, h: ChannelHandler) => {
      handler = h;
      return ch;
    },
  } as unknown as VmbusServer;
  let now = 0;
  const timers: { at: number; f: () => void; live: boolean }[] = [];
  const host = attachKvp(
    {
      server,
      release,
      now: () => now,
      schedule: (at, f) => {
        const t = { at, f, live: true };
        timers.push(t);
        return { cancel: () => void (t.live = false) };
      },
      log: (t) => void log.push(t),
      wallClockNs: () => 0n,
      referenceTime: () => 0n,
    },
    INSTANCE,
    { readIntrinsic: false, ...options },
  );
  /** The guest opens, and answers NEGOTIATE as Linux does (4.0). */
  const open = () => {
    handler!.open!(ch, undefined as never);
    const neg = sent.at(-1)!;
    const buf = new Uint8Array(16384);
    buf.set(neg);
    prepNegotiateResp(buf, neg.length, [v('3.0'), v('1.0')], [v('4.0'), v('3.0'), v('1.0')]);
    buf[AT.icflags] = 5;
    host.onGuestPayload(buf.slice(0, neg.length));
  };
  /** Answers the last request as a guest would: status, and `fill` edits the echoed bytes. */
  const answer = (status: number, fill: (dv: DataView, b: Uint8Array) => void = () => {}) => {
    const b = sent.at(-1)!.slice();
    const dv = new DataView(b.buffer);
    dv.setUint32(AT.status, status, true);
    b[AT.icflags] = 5;
    fill(dv, b);
    host.onGuestPayload(b);
  };
  const advance = (ns: number) => {
    now += ns;
    for (const t of timers) {
      if (!t.live || t.at > now) continue;
      t.live = false;
      t.f();
    }
  };
  return { host, sent, log, open, answer, advance, setFull: (f: boolean) => (full = f), close: () => handler!.close!(ch) };
}

/**
 * A machine with the KVP IC offered, booted, hv_utils with the KVP service registered on the
 * kernel's own services (clock, delayed work, files), what the service prints also collected.
 */
function start(release: ReleaseId = 'ws2022', options: KvpOptions = {}, guestOptions: KvpServiceOptions = {}, prepare?: (s: GuestServices) => void) {
  const m = new Machine({ release, vps: 2, devices: [], kernel: { vmbus: true, modules: [] } });
  const hostLog: string[] = [];
  const kvp = attachKvp(hostContext(m, hostLog), INSTANCE, options);
  m.boot();
  const guest = recordingServices(m.kernel.services);
  prepare?.(guest.services);
  const service: KvpService = makeKvpService(guestOptions);
  hvUtilsModule([service]).init(guest.services, (d) => m.kernel.vmbus!.registerDriver(d));
  m.runFor(1e6);
  return { m, kvp, hostLog, guest, service };
}

/** Makes a request and runs until it is settled. */
function settle<R>(m: Machine, req: { result: R | undefined }, ns = 1e9): R | undefined {
  m.waitUntil(() => req.result !== undefined, ns);
  return req.result;
}

// --- The host's requests -------------------------------------------------------------------------

describe("KVP host: what it sends (hv_kvp_msg after the IC headers, 2580 bytes of body)", () => {
  it('SET: operation 1, the pool, REG_SZ, sizes with the terminator, UTF-16LE key and value', () => {
    const h = hostHarness();
    h.open();
    h.host.set(POOL.GUEST, 'ab', 'c€');
    const b = h.sent.at(-1)!;
    expect(b.length).toBe(28 + 2580);
    expect([u16(b, AT.icmsgtype), u16(b, AT.icmsgsize), b[AT.icflags], u16(b, 14), u16(b, 16), u16(b, 8)]).toEqual([2, 2580, 3, 4, 0, 3]);
    expect([...b.subarray(28, 32)]).toEqual([1, 1, 0, 0]);
    expect([u32(b, AT.valueType), u32(b, AT.keySize), u32(b, AT.valueSize)]).toEqual([1, 6, 6]);
    expect([...b.subarray(AT.key, AT.key + 8)]).toEqual([0x61, 0, 0x62, 0, 0, 0, 0, 0]);
    expect([...b.subarray(AT.value, AT.value + 6)]).toEqual([0x63, 0, 0xac, 0x20, 0, 0]);
    // Everything else is zero.
    const rest = b.slice(28);
    rest.fill(0, 0, 16 + 8);
    rest.fill(0, 528, 528 + 6);
    expect(rest.every((x) => x === 0)).toBe(true);
  });

  it('DELETE: key_size and key right after the header; ENUMERATE: the index, an empty record', () => {
    const h = hostHarness();
    h.open();
    h.host.delete(POOL.AUTO_EXTERNAL, 'k');
    let b = h.sent.at(-1)!;
    expect([b[AT.op], b[AT.pool], u32(b, AT.delKeySize), u16(b, AT.delKey), u16(b, AT.delKey + 2)]).toEqual([2, 3, 4, 0x6b, 0]);
    h.answer(HV_S_OK);
    h.host.enumerate(POOL.EXTERNAL);
    b = h.sent.at(-1)!;
    expect([b[AT.op], b[AT.pool], u32(b, AT.index), b.length]).toEqual([3, 0, 0, 28 + 2580]);
    expect(b.subarray(AT.index + 4).every((x) => x === 0)).toBe(true);
  });

  it('a key or value over its limit, with a lone surrogate or a NUL, or a bad pool, is refused before sending, naming the field', () => {
    const h = hostHarness();
    h.open();
    const before = h.sent.length;
    const key255 = 'k'.repeat(255); // 2 * 256 = 512 bytes: the most that fits
    const cases: [() => { result: unknown }, unknown][] = [
      [() => h.host.set(0, 'k'.repeat(256), 'v'), { outcome: 'invalid', field: 'key', problem: { reason: 'too-long', bytes: 514, max: 512 } }],
      [() => h.host.set(0, 'k', 'v'.repeat(1024)), { outcome: 'invalid', field: 'value', problem: { reason: 'too-long', bytes: 2050, max: 2048 } }],
      [() => h.host.set(0, '😀'.repeat(128), 'v'), { outcome: 'invalid', field: 'key', problem: { reason: 'too-long', bytes: 514, max: 512 } }],
      [() => h.host.set(0, 'a\ud800b', 'v'), { outcome: 'invalid', field: 'key', problem: { reason: 'ill-formed', at: 1 } }],
      [() => h.host.set(0, 'k', '\udc00'), { outcome: 'invalid', field: 'value', problem: { reason: 'ill-formed', at: 0 } }],
      [() => h.host.set(0, 'k', 'x\ud83d'), { outcome: 'invalid', field: 'value', problem: { reason: 'ill-formed', at: 1 } }],
      [() => h.host.set(0, 'a\0b', 'v'), { outcome: 'invalid', field: 'key', problem: { reason: 'nul', at: 1 } }],
      [() => h.host.get(1, '\ud800'), { outcome: 'invalid', field: 'key', problem: { reason: 'ill-formed', at: 0 } }],
      [() => h.host.delete(3, 'k'.repeat(300)), { outcome: 'invalid', field: 'key', problem: { reason: 'too-long', bytes: 602, max: 512 } }],
      [() => h.host.set(5 as 0, 'k', 'v'), { outcome: 'invalid', field: 'pool', problem: { reason: 'out-of-range', pool: 5 } }],
      [() => h.host.enumerate(-1 as 0), { outcome: 'invalid', field: 'pool', problem: { reason: 'out-of-range', pool: -1 }, entries: [] }],
    ];
    for (const [make, expected] of cases) expect(make().result).toEqual(expected);
    expect(h.sent.length).toBe(before);
    // At the limits exactly: sent.
    h.host.set(0, key255, 'v'.repeat(1023));
    expect(h.sent.length).toBe(before + 1);
    const b = h.sent.at(-1)!;
    expect([u32(b, AT.keySize), u32(b, AT.valueSize), u16(b, AT.key + 508), u16(b, AT.key + 510)]).toEqual([512, 2048, 0x6b, 0]);
  });

  it('one transaction at a time: later requests wait in order; not ready, ring full, closed and timeout are outcomes', async () => {
    const h = hostHarness({ timeoutNs: 5e9 });
    expect(h.host.set(0, 'a', '1').result).toEqual({ outcome: 'not-ready' });
    h.open();
    const a = h.host.set(0, 'a', '1');
    const b = h.host.delete(0, 'b');
    const c = h.host.get(0, 'c');
    expect([h.sent.length, h.host.queued]).toEqual([2, 2]);
    h.answer(HV_S_OK);
    expect(await a.done).toEqual({ outcome: 'ok' });
    expect(h.sent.at(-1)![AT.op]).toBe(2);
    h.answer(HV_S_CONT);
    expect(b.result).toEqual({ outcome: 'not-found' });
    h.advance(5e9);
    expect(c.result).toEqual({ outcome: 'timeout' });
    expect(h.log.at(-1)).toBe("kvp: get EXTERNAL 'c': no answer within 5 s");
    // The late answer is dropped, and said so.
    h.answer(HV_S_OK);
    expect(h.host.violations.items.at(-1)).toMatch(/gave up on/);
    h.setFull(true);
    expect(h.host.set(0, 'x', 'y').result).toEqual({ outcome: 'ring-full' });
    h.setFull(false);
    const d = h.host.enumerate(0);
    const e = h.host.set(1, 'k', 'v');
    h.close();
    expect([d.result, e.result]).toEqual([
      { outcome: 'closed', entries: [] },
      { outcome: 'closed' },
    ]);
  });

  it('by default a transaction waits 35 s (HV_UTIL_TIMEOUT and a margin); a reply of the wrong type ends it at once; the queue moves on', () => {
    const h = hostHarness();
    h.open();
    const a = h.host.set(0, 'a', '1');
    const b = h.host.get(0, 'b');
    const c = h.host.delete(0, 'c');
    h.advance(35e9 - 1);
    expect(a.result).toBeUndefined();
    h.advance(1);
    expect(a.result).toEqual({ outcome: 'timeout' });
    expect(h.log.at(-1)).toBe("kvp: set EXTERNAL 'a': no answer within 35 s");
    // The GET (KVP_OP_GET 0) went out next; its reply carries its transaction id but ICMSGTYPE_HEARTBEAT (1).
    expect(h.sent.at(-1)![AT.op]).toBe(0);
    h.answer(HV_S_OK, (dv) => dv.setUint16(AT.icmsgtype, 1, true));
    expect(b.result).toEqual({ outcome: 'bad-answer', reason: 'answer of type 1 to a request of type 2' });
    expect(h.log.slice(-2)).toEqual(["kvp: protocol violation: answer of type 1 to a request of type 2", "kvp: get EXTERNAL 'b': the guest's answer is no valid answer: answer of type 1 to a request of type 2"]);
    // And the DELETE (KVP_OP_DELETE 2) was sent in its turn.
    expect(h.sent.at(-1)![AT.op]).toBe(2);
    h.answer(HV_S_OK);
    expect(c.result).toEqual({ outcome: 'ok' });
  });

  it('dispose: what is in flight and queued settles closed, the IC is offered again, later requests are not-ready', () => {
    const h = hostHarness();
    h.open();
    const a = h.host.set(0, 'a', '1');
    const b = h.host.enumerate(1);
    h.host.dispose();
    expect([a.result, b.result]).toEqual([{ outcome: 'closed' }, { outcome: 'closed', entries: [] }]);
    expect(h.host.phase).toBe('offered');
    expect(h.host.set(0, 'x', 'y').result).toEqual({ outcome: 'not-ready' });
    const sent = h.sent.length;
    h.advance(100e9);
    expect(h.sent.length).toBe(sent);
  });

  it('enumerate: index by index until HV_S_CONT; a failure keeps what came before; answers are checked', () => {
    const h = hostHarness();
    h.open();
    const entry = (key: string, value: string) => (dv: DataView, b: Uint8Array) => {
      dv.setUint32(AT.eValueType, 1, true);
      dv.setUint32(AT.eKeySize, 2 * (key.length + 1), true);
      dv.setUint32(AT.eValueSize, 2 * (value.length + 1), true);
      b.set(utf16(key), AT.eKey);
      b.set(utf16(value), AT.eValue);
    };
    const r = h.host.enumerate(1);
    h.answer(HV_S_OK, entry('𝄞key', 'välue'));
    expect(u32(h.sent.at(-1)!, AT.index)).toBe(1);
    h.answer(HV_S_OK, (dv, b) => {
      entry('n', '')(dv, b);
      dv.setUint32(AT.eValueType, 4, true);
      dv.setUint32(AT.eValueSize, 4, true);
      dv.setUint32(AT.eValue, 4000000000, true);
    });
    h.answer(HV_S_CONT);
    expect(r.result).toEqual({
      outcome: 'ok',
      entries: [
        { key: '𝄞key', value: 'välue', type: 1 },
        { key: 'n', value: '4000000000', type: 4 },
      ],
    });
    const f = h.host.enumerate(0);
    h.answer(HV_S_OK, entry('a', 'b'));
    h.answer(HV_E_FAIL);
    expect(f.result).toEqual({ outcome: 'failed', status: HV_E_FAIL, entries: [{ key: 'a', value: 'b', type: 1 }] });
    expect(h.log.at(-1)).toBe('kvp: enumerate EXTERNAL: the guest answered 0x80004005');
    // No terminator where key_size says: a bad answer, recorded as a violation.
    const g = h.host.enumerate(0);
    h.answer(HV_S_OK, (dv, b) => {
      entry('ab', 'c')(dv, b);
      dv.setUint32(AT.eKeySize, 4, true);
    });
    expect(g.result).toEqual({ outcome: 'bad-answer', reason: 'hv_kvp_msg_enumerate.data.key: no terminating NUL where the size ends', entries: [] });
    // A guest that never says HV_S_CONT is cut off.
    const capped = hostHarness({ maxEntries: 3 });
    capped.open();
    const c = capped.host.enumerate(0);
    for (let i = 0; i < 3; i++) capped.answer(HV_S_OK, entry(`k${i}`, 'v'));
    expect(c.result).toMatchObject({ outcome: 'bad-answer', reason: 'the guest answered more than 3 entries' });
  });

  itFuzzEachRelease(
    'never throws on what a guest sends, whatever is waiting; every request settles with a typed outcome',
    'kvp.host',
    (release) => {
      const outcomes = new Set(['ok', 'not-found', 'failed', 'bad-answer', 'invalid', 'not-ready', 'ring-full', 'closed', 'timeout']);
      return fc.property(
        fc.array(fc.oneof(fc.uint8Array({ maxLength: 3000 }), fc.record({ status: fc.constantFrom(0, HV_S_CONT, HV_E_FAIL, 1), edits: fc.array(fc.tuple(fc.nat({ max: 2607 }), fc.integer({ min: 0, max: 255 })), { maxLength: 40 }) })), { maxLength: 8 }),
        (steps) => {
          const h = hostHarness({}, release);
          h.open();
          const reqs = [h.host.get(0, 'k'), h.host.enumerate(1), h.host.delete(2, 'd'), h.host.set(3, 'k', 'v'), h.host.enumerate(4)];
          for (const s of steps) {
            if (s instanceof Uint8Array) h.host.onGuestPayload(s);
            else h.answer(s.status, (_dv, b) => s.edits.forEach(([at, x]) => (b[at % b.length] = x)));
          }
          h.close();
          for (const r of reqs) expect(outcomes.has((r.result as { outcome: string }).outcome)).toBe(true);
        },
      );
    },
    RUNS,
  );
});

describe('KVP strings on the wire', () => {
  it('encodeKvpString: UTF-16LE with a terminator; surrogate pairs count as two units', () => {
    const r = encodeKvpString('a😀', 512);
    expect(r).toEqual({ bytes: Uint8Array.from([0x61, 0, 0x3d, 0xd8, 0x00, 0xde, 0, 0]), size: 8 });
  });

  it('decodeKvpString / decodeKvpValue throw nothing but WireError, and decode what encodeKvpString made', () => {
    fuzz(
      'kvp.wire-strings',
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: -10, max: 700 }), fc.integer({ min: 0, max: 12 }), (area, size, type) => {
        for (const f of [() => decodeKvpString(area, size, 's', 'f'), () => decodeKvpValue(area, type, size, 's')]) {
          try {
            f();
          } catch (e) {
            expect(e).toBeInstanceOf(WireError);
          }
        }
      }),
      RUNS,
    );
    fuzz(
      'kvp.wire-string-round-trip',
      fc.property(fc.string({ unit: 'grapheme', maxLength: 100 }), (s) => {
        fc.pre(!s.includes('\0'));
        const r = encodeKvpString(s, 2048);
        if ('reason' in r) return;
        const area = new Uint8Array(2048);
        area.set(r.bytes);
        expect(decodeKvpString(area, r.size, 's', 'f')).toBe(s);
      }),
      RUNS,
    );
  });
});

// --- Linux's conversions (fs/nls/nls_base.c) -----------------------------------------------------

describe('the kernel conversions', () => {
  const units = (s: string) => utf16(s);
  it('UTF-16 → UTF-8: pairs joined, lone surrogates dropped, a character that does not fit ends it', () => {
    expect([...utf16sToUtf8s(units('a😀b'), 0, 4, 511)]).toEqual([0x61, 0xf0, 0x9f, 0x98, 0x80, 0x62]);
    expect([...utf16sToUtf8s(units('a\udc00b\ud800c'), 0, 5, 511)]).toEqual([0x61, 0x62, 0x63]);
    // "€" needs 3 bytes: with 2 left it ends the string, even though "b" would fit (6.1.160+).
    expect([...utf16sToUtf8s(units('a€b'), 0, 3, 3)]).toEqual([0x61]);
    // Stops at NUL and after inlen units; a negative inlen (a u32 size ≥ 2^31) converts nothing.
    expect([...utf16sToUtf8s(units('ab\0c'), 0, 10, 511)]).toEqual([0x61, 0x62]);
    expect([...utf16sToUtf8s(units('abc'), 0, 2, 511)]).toEqual([0x61, 0x62]);
    expect(utf16sToUtf8s(units('abc'), 0, cInt(0xffffffff), 511).length).toBe(0);
  });

  it('UTF-8 → UTF-16: a supplementary character needs two units of room; malformed input fails with -EINVAL', () => {
    expect(utf8sToUtf16s(utf8('a😀'), 0, 5, 10)).toEqual({ units: [0x61, 0xd83d, 0xde00], ret: 3 });
    expect(utf8sToUtf16s(utf8('a😀'), 0, 5, 2)).toEqual({ units: [0x61], ret: 1 });
    expect(utf8sToUtf16s(Uint8Array.from([0x61, 0xc0, 0x80]), 0, 3, 10)).toEqual({ units: [0x61], ret: -22 }); // overlong NUL
    expect(utf8sToUtf16s(Uint8Array.from([0xed, 0xa0, 0x80]), 0, 3, 10).ret).toBe(-22); // a surrogate
    expect(utf8sToUtf16s(Uint8Array.from([0xe2, 0x82]), 0, 2, 10).ret).toBe(-22); // cut short
  });

  it('on arbitrary bytes: never throw, never write more than asked, and well-formed text round-trips', () => {
    fuzz(
      'kvp.utf-conversions',
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: -3, max: 700 }), fc.integer({ min: -5, max: 400 }), fc.integer({ min: 0, max: 600 }), (b, at, inlen, maxout) => {
        expect(utf16sToUtf8s(b, at, inlen, maxout).length).toBeLessThanOrEqual(Math.max(0, maxout));
        const r = utf8sToUtf16s(b, at, inlen, maxout);
        expect(r.units.length).toBeLessThanOrEqual(Math.max(0, maxout));
      }),
      RUNS,
    );
    fuzz(
      'kvp.utf-round-trip',
      fc.property(fc.string({ unit: 'grapheme', maxLength: 60 }), (s) => {
        fc.pre(!s.includes('\0'));
        const u8 = utf16sToUtf8s(units(s), 0, s.length, 4096);
        expect(Buffer.from(u8).toString('utf8')).toBe(s);
        expect(utf8sToUtf16s(u8, 0, u8.length, 4096)).toEqual({ units: Array.from({ length: s.length }, (_, i) => s.charCodeAt(i)), ret: s.length });
      }),
      RUNS,
    );
  });
});

// --- Negotiation on every release ----------------------------------------------------------------

describe.each(RELEASE_IDS)('KVP on %s', (release) => {
  it('offers its KVP versions, Linux 6.1 picks 4.0; the host reads the AUTO pool once up', () => {
    const { kvp, hostLog, guest, service } = start(release);
    expect(kvp.offer).toEqual({ framework: [v('1.0'), v('3.0')], message: KVP_HOST_VERSIONS[release] });
    expect(KVP_HOST_VERSIONS[release]).toEqual(release === 'ws2012' || release === 'ws2012r2' ? [v('3.0'), v('4.0')] : [v('3.0'), v('4.0'), v('5.0')]);
    expect(kvp.phase).toBe('ready');
    expect(kvp.negotiated).toEqual({ framework: v('3.0'), message: v('4.0') });
    expect(guest.lines).toEqual([
      'info: hv_utils: Registering HyperV Utility Driver',
      'debug: hv_utils: KVP: userspace daemon ver. 100 connected',
      'debug: hv_utils: KVP: userspace daemon registered',
      'info: hv_utils: KVP IC version 4.0',
    ]);
    expect(hostLog).toEqual(['kvp: IC version 4.0 (framework 3.0)']);
    expect(service.daemon!.syslog).toEqual([
      { priority: 'info', message: 'KVP starting; pid is:1234' },
      { priority: 'info', message: 'KVP LIC Version: 3.1' },
    ]);
    expect([...kvp.guestIntrinsic.keys()]).toEqual([...KVP_AUTO_KEYS]);
  });
});

// --- End to end ----------------------------------------------------------------------------------

describe('KVP end to end over VMBus (ws2022)', () => {
  const KEY = 'clé-𝄞'; // a non-BMP character: a surrogate pair on the wire, 4 bytes of UTF-8
  for (const p of [POOL.EXTERNAL, POOL.GUEST, POOL.AUTO_EXTERNAL, POOL.AUTO_INTERNAL]) {
    it(`pool ${p}: set, enumerate, get, modify, delete — and the pool file after each`, () => {
      const { m, kvp, guest } = start('ws2022', { readIntrinsic: false });
      expect(settle(m, kvp.set(p, KEY, 'välue 😀'))).toEqual({ outcome: 'ok' });
      expect(settle(m, kvp.set(p, 'second', ''))).toEqual({ outcome: 'ok' });
      expect(pool(guest.files, p)).toEqual(concat(record(KEY, 'välue 😀'), record('second', '')));
      expect(settle(m, kvp.enumerate(p))).toEqual({
        outcome: 'ok',
        entries: [
          { key: KEY, value: 'välue 😀', type: 1 },
          { key: 'second', value: '', type: 1 },
        ],
      });
      // Linux 6.1's GET: the key is found, but the value comes back empty (see guest.ts).
      expect(settle(m, kvp.get(p, KEY))).toEqual({ outcome: 'ok', value: '', type: 1 });
      expect(settle(m, kvp.get(p, 'missing'))).toEqual({ outcome: 'not-found' });
      // Modify in place: only the bytes copied change; the old value's tail stays behind the NUL.
      expect(settle(m, kvp.set(p, KEY, 'v2'))).toEqual({ outcome: 'ok' });
      const first = record(KEY, 'välue 😀');
      first.set([...utf8('v2'), 0], 512);
      expect(pool(guest.files, p)).toEqual(concat(first, record('second', '')));
      expect(settle(m, kvp.delete(p, KEY))).toEqual({ outcome: 'ok' });
      expect(settle(m, kvp.delete(p, KEY))).toEqual({ outcome: 'not-found' });
      // "second" moved up by strcpy over the first record: only up to its NULs.
      const moved = first.slice();
      moved.set([...utf8('second'), 0], 0);
      moved.set([0], 512);
      expect(pool(guest.files, p)).toEqual(moved);
      expect(settle(m, kvp.enumerate(p))).toEqual({ outcome: 'ok', entries: [{ key: 'second', value: '', type: 1 }] });
      // The other pools are untouched (and exist, empty).
      for (const q of [0, 1, 2, 3, 4].filter((q) => q !== p)) expect(pool(guest.files, q)).toEqual(new Uint8Array(0));
    });
  }

  it('pool 2 (AUTO): enumerate answers from the OS; a set still lands in its file', () => {
    const { m, kvp, guest } = start('ws2022', { readIntrinsic: false });
    const r = settle(m, kvp.enumerate(POOL.AUTO));
    expect(r).toEqual({
      outcome: 'ok',
      entries: [
        ['FullyQualifiedDomainName', 'hvkit'],
        ['IntegrationServicesVersion', '3.1'],
        ['NetworkAddressIPv4', ''],
        ['NetworkAddressIPv6', ''],
        ['OSBuildNumber', '6.1.192-hvkit'],
        ['OSName', 'hvkit'],
        ['OSMajorVersion', '6.1'],
        ['OSMinorVersion', ''],
        ['OSVersion', '6.1.192'],
        ['ProcessorArchitecture', 'x86_64'],
      ].map(([key, value]) => ({ key, value, type: 1 })),
    });
    expect(kvp.guestIntrinsic.get('OSVersion')).toBe('6.1.192');
    expect(settle(m, kvp.set(POOL.AUTO, 'k', 'v'))).toEqual({ outcome: 'ok' });
    expect(pool(guest.files, POOL.AUTO)).toEqual(record('k', 'v'));
    expect(settle(m, kvp.get(POOL.AUTO, 'k'))).toEqual({ outcome: 'ok', value: '', type: 1 });
    expect((settle(m, kvp.enumerate(POOL.AUTO)) as { entries: readonly unknown[] }).entries.length).toBe(10);
  });

  it('the AUTO pool from /etc/os-release (NAME, VERSION_ID, quotes and escapes as the daemon strips them)', () => {
    const osRelease = '# comment\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian \\"GNU\\"/Linux"\nVERSION_ID=\'12\'\nID=debian\n';
    const { kvp } = start('ws2022', {}, {}, (s) => {
      s.files.mkdirs('/etc');
      s.files.write('/etc/os-release', utf8(osRelease));
    });
    expect(kvp.guestIntrinsic.get('OSName')).toBe('Debian "GNU"/Linux');
    expect(kvp.guestIntrinsic.get('OSMajorVersion')).toBe('12');
    expect(kvp.guestIntrinsic.get('OSMinorVersion')).toBe('');
  });

  it('the AUTO pool from /etc/redhat-release when there is no os-release: three lines', () => {
    const { kvp } = start('ws2022', {}, {}, (s) => {
      s.files.mkdirs('/etc');
      s.files.write('/etc/redhat-release', utf8('Red Hat Enterprise Linux\n7\n9\nignored\n'));
    });
    expect(['OSName', 'OSMajorVersion', 'OSMinorVersion'].map((k) => kvp.guestIntrinsic.get(k))).toEqual(['Red Hat Enterprise Linux', '7', '9']);
  });

  it('hostItems go into AUTO_EXTERNAL before the AUTO pool is read', () => {
    const { guest, kvp } = start('ws2022', { hostItems: { HostName: 'hv-01', VirtualMachineName: 'vm' } });
    expect(pool(guest.files, POOL.AUTO_EXTERNAL)).toEqual(concat(record('HostName', 'hv-01'), record('VirtualMachineName', 'vm')));
    expect(kvp.requests.map((r) => `${r.op} ${r.pool}`)).toEqual(['set 3', 'set 3', 'enumerate 2']);
  });

  it('reads a pool file prepared by hand (as hv_kvp_daemon writes it), a trailing partial record ignored', () => {
    const handMade = concat(record('Azure', 'yes'), record('数据', '値 𝄞'), new Uint8Array(100).fill(0x41));
    const { m, kvp, guest } = start('ws2022', { readIntrinsic: false }, {}, (s) => {
      s.files.mkdirs('/var/lib/hyperv');
      s.files.write('/var/lib/hyperv/.kvp_pool_1', handMade);
    });
    expect(settle(m, kvp.enumerate(POOL.GUEST))).toEqual({
      outcome: 'ok',
      entries: [
        { key: 'Azure', value: 'yes', type: 1 },
        { key: '数据', value: '値 𝄞', type: 1 },
      ],
    });
    // A set rewrites the file with whole records only.
    expect(settle(m, kvp.set(POOL.GUEST, 'new', '1'))).toEqual({ outcome: 'ok' });
    const third = new Uint8Array(RECORD);
    third.set(new Uint8Array(100).fill(0x41)); // the partial record's bytes were read into the slot
    third.set([...utf8('new'), 0], 0);
    third.set([...utf8('1'), 0], 512);
    expect(pool(guest.files, POOL.GUEST)).toEqual(concat(record('Azure', 'yes'), record('数据', '値 𝄞'), third));
  });
});

// --- The daemon's life ---------------------------------------------------------------------------

describe("KVP in a VM: hv_utils loaded by the kernel, on the kernel's own services", () => {
  /** A VM whose kernel loads hv_utils with the KVP service, booted; its kernel log's KVP lines. */
  function vm() {
    const service = makeKvpService();
    const m = new Machine({ release: 'ws2022', vps: 2, devices: [], kernel: { vmbus: true, modules: [hvUtilsModule([service])] } });
    const kvp = attachKvp(hostContext(m), INSTANCE, { readIntrinsic: false });
    m.boot();
    m.runFor(1e6);
    const lines = () => m.kernel.log.records.filter((r) => r.text.startsWith('hv_utils: ')).map((r) => `${r.level}: ${r.text}`);
    return { m, kvp, service, lines, files: m.kernel.services.files };
  }

  it('set, get and enumerate; the pool file is in the kernel\'s file tree; the channel takes four-page packets', () => {
    const { m, kvp, lines, files } = vm();
    expect(kvp.phase).toBe('ready');
    expect(lines()).toEqual([
      'info: hv_utils: Registering HyperV Utility Driver',
      'debug: hv_utils: KVP: userspace daemon ver. 100 connected',
      'debug: hv_utils: KVP: userspace daemon registered',
      'info: hv_utils: KVP IC version 4.0',
    ]);
    // hv_kvp_init: max_pkt_size = HV_HYP_PAGE_SIZE * 4, taken by the open.
    expect(m.kernel.vmbus!.channels.find((c) => c.offer.instanceId === INSTANCE)!.maxPacketSize).toBe(16384);
    expect(settle(m, kvp.set(POOL.GUEST, 'clé-𝄞', 'välue'))).toEqual({ outcome: 'ok' });
    expect(settle(m, kvp.set(POOL.GUEST, 'k2', ''))).toEqual({ outcome: 'ok' });
    expect(settle(m, kvp.get(POOL.GUEST, 'clé-𝄞'))).toEqual({ outcome: 'ok', value: '', type: 1 });
    expect(settle(m, kvp.enumerate(POOL.GUEST))).toEqual({
      outcome: 'ok',
      entries: [
        { key: 'clé-𝄞', value: 'välue', type: 1 },
        { key: 'k2', value: '', type: 1 },
      ],
    });
    expect(pool(files, POOL.GUEST)).toEqual(concat(record('clé-𝄞', 'välue'), record('k2', '')));
  });

  it('a 7456-byte GET_IP_INFO crosses the ring whole and is answered at its full length', () => {
    const { m, kvp } = vm();
    const answers: Uint8Array[] = [];
    kvp.onGuestPayload = (p) => void answers.push(p.slice());
    const ip = kvpPacket(4, 1, (_dv, b) => b.set(utf16('00:15:5D:00:00:01'), AT.ipAdapter), 7428, 200);
    expect(kvp.channel!.sendInband(ip, 0n, false)).toBe(true);
    m.runFor(1e8);
    expect(answers.map((a) => [a.length, u32(a, AT.status), a[AT.icflags], a[AT.transId]])).toEqual([[28 + 7428, HV_E_FAIL, 5, 200]]);
  });

  it("a paused daemon: HV_E_FAIL once the kernel's 30 s timer has run", () => {
    const { m, kvp, service } = vm();
    service.daemon!.pause();
    const t0 = m.kernel.services.uptimeNs();
    const r = kvp.delete(POOL.GUEST, 'k');
    m.runFor(29.9e9);
    expect(r.result).toBeUndefined();
    m.waitUntil(() => r.result !== undefined, 0.2e9);
    expect(r.result).toEqual({ outcome: 'failed', status: HV_E_FAIL });
    expect(m.kernel.services.uptimeNs() - t0).toBeGreaterThanOrEqual(30e9);
  });
});

describe("KVP without a working daemon (hv_kvp.c's states and HV_UTIL_TIMEOUT)", () => {
  it('no daemon: the ring is not read, not even NEGOTIATE; the host is never ready. Started later, all proceeds', () => {
    const { m, kvp, guest, hostLog, service } = start('ws2022', { readIntrinsic: false }, { daemon: 'manual' });
    m.runFor(60e9); // past the 55 s re-poll, which finds the same state
    expect(kvp.phase).toBe('negotiating');
    expect(kvp.set(0, 'k', 'v').result).toEqual({ outcome: 'not-ready' });
    expect(guest.lines).toEqual(['info: hv_utils: Registering HyperV Utility Driver']);
    expect(hostLog).toEqual([]);
    expect(service.daemon!.status).toBe('stopped');
    expect(service.startDaemon()).toBe(true);
    m.runFor(1e6);
    expect(kvp.phase).toBe('ready');
    expect(guest.lines.slice(1)).toEqual([
      'debug: hv_utils: KVP: userspace daemon ver. 100 connected',
      'debug: hv_utils: KVP: userspace daemon registered',
      'info: hv_utils: KVP IC version 4.0',
    ]);
    expect(settle(m, kvp.set(0, 'k', 'v'))).toEqual({ outcome: 'ok' });
  });

  it('a hung daemon: HV_E_FAIL after 30 s; meanwhile requests fail at once; resumed, its stale write fails and it registers again', () => {
    const { m, kvp, guest, service } = start('ws2022', { readIntrinsic: false });
    const d = service.daemon!;
    d.pause();
    const t0 = m.nowNs;
    const r = kvp.set(POOL.EXTERNAL, 'late', 'v');
    m.runFor(29.9e9);
    expect(r.result).toBeUndefined();
    m.waitUntil(() => r.result !== undefined, 0.2e9);
    expect(r.result).toEqual({ outcome: 'failed', status: HV_E_FAIL });
    expect(m.nowNs - t0).toBeGreaterThanOrEqual(30e9);
    // The unread message still sits on the device: the next request cannot be queued (-EFAULT).
    const n = guest.lines.length;
    expect(settle(m, kvp.set(POOL.EXTERNAL, 'other', 'v'))).toEqual({ outcome: 'failed', status: HV_E_FAIL });
    expect(guest.lines.slice(n)).toEqual(['debug: hv_utils: KVP: failed to communicate to the daemon: -14']);
    // SIGCONT: the daemon does the stale SET (the key is stored although the host was told it failed),
    // its write-back is refused (EINVAL: no transaction waits), and it reopens the device.
    d.resume();
    m.runFor(1e6);
    expect(d.syslog.slice(2)).toEqual([
      { priority: 'err', message: 'write failed; error: 22 Invalid argument' },
      { priority: 'info', message: 'KVP LIC Version: 3.1' },
    ]);
    expect(pool(guest.files, 0)).toEqual(record('late', 'v'));
    expect(guest.lines.slice(n + 1)).toEqual(['debug: hv_utils: KVP: userspace daemon ver. 100 connected', 'debug: hv_utils: KVP: userspace daemon registered']);
    expect(settle(m, kvp.enumerate(POOL.EXTERNAL))).toEqual({ outcome: 'ok', entries: [{ key: 'late', value: 'v', type: 1 }] });
  });

  it('the daemon stopped mid-request: HV_E_FAIL at once (kvp_on_reset); then silence until it runs again', () => {
    const { m, kvp, service } = start('ws2022', { readIntrinsic: false, timeoutNs: 60e9 });
    const d = service.daemon!;
    d.pause();
    const r = kvp.delete(POOL.GUEST, 'x');
    m.runFor(1e9);
    expect(r.result).toBeUndefined();
    d.stop();
    expect(d.exit).toEqual({ status: 143, signal: 'SIGTERM' });
    expect(settle(m, r)).toEqual({ outcome: 'failed', status: HV_E_FAIL });
    const s = kvp.set(POOL.GUEST, 'k', 'v');
    expect(settle(m, s, 61e9)).toEqual({ outcome: 'timeout' });
    // Restarted, it answers the request the host gave up on; the host drops that answer.
    expect(service.startDaemon()).toBe(true);
    m.runFor(1e6);
    expect(kvp.violations.items.at(-1)).toMatch(/gave up on/);
    expect(settle(m, kvp.enumerate(POOL.GUEST))).toEqual({ outcome: 'ok', entries: [{ key: 'k', value: 'v', type: 1 }] });
  });

  it('a second daemon cannot open the device (EBUSY) and exits; without the device a daemon exits too', () => {
    const h = readyGuest();
    const d = h.service.daemon!;
    expect(d.status).toBe('running');
    const env = { files: h.services.files, system: h.services.system, open: (w: () => void) => h.service.kernel!.device.open(w) };
    const second = new (d.constructor as new (e: typeof env, pid?: number) => typeof d)(env, 99);
    expect(second.start()).toBe(false);
    expect(second.syslog.at(-1)).toEqual({ priority: 'err', message: 'open /dev/vmbus/hv_kvp failed; error: 16 Device or resource busy' });
    expect(second.exit).toEqual({ status: 1 });
    h.instance.deinit!();
    // The driver went away: the running daemon sees a hang-up, fails its read, and cannot reopen.
    expect(d.syslog.slice(-2)).toEqual([
      { priority: 'err', message: 'read failed; error:9 Bad file descriptor' },
      { priority: 'err', message: 'open /dev/vmbus/hv_kvp failed; error: 2 No such file or directory' },
    ]);
    expect(d.status).toBe('exited');
  });

  it('pool files it cannot use end the daemon at start: "Failed to initialize the pools"', () => {
    const h = guestHarness({}, (s) => {
      s.files.mkdirs('/var/lib/hyperv/.kvp_pool_3');
    });
    h.deliver(negotiatePacket());
    expect(h.sent.length).toBe(0);
    expect(h.service.daemon!.syslog).toEqual([
      { priority: 'info', message: 'KVP starting; pid is:1234' },
      { priority: 'err', message: 'Failed to initialize the pools' },
    ]);
  });
});

// --- The guest, packet by packet -----------------------------------------------------------------

describe('KVP guest: answers byte for byte, and what a hostile host gets', () => {
  it('NEGOTIATE waits for the daemon, then is answered with 4.0 and logged', () => {
    const h = guestHarness({ daemon: 'manual' });
    h.deliver(negotiatePacket());
    expect([h.sent.length, h.left()]).toEqual([0, 1]);
    expect(h.service.startDaemon()).toBe(true);
    const a = h.last();
    expect([u16(a, 28), u16(a, 30), u16(a, 36), u16(a, 38), u16(a, 40), u16(a, 42), a[AT.icflags], u16(a, AT.icmsgsize)]).toEqual([1, 1, 3, 0, 4, 0, 5, 16]);
    expect(h.lines.at(-1)).toBe('info: hv_utils: KVP IC version 4.0');
  });

  it('the timeout, packet by packet: HV_E_FAIL over the request at exactly 30 s; while no time passes, no answer at all', () => {
    const h = readyGuest();
    h.service.daemon!.pause();
    h.deliver(deletePacket(0, 'k'));
    expect([h.sent.length, h.pendingTimers()]).toEqual([1, 1]);
    h.advance(30e9 - 1);
    h.runTimers();
    expect(h.sent.length).toBe(1);
    h.advance(1);
    h.runTimers();
    const a = h.last();
    expect([h.sent.length, u32(a, AT.status), a[AT.icflags], a[AT.op], u32(a, AT.delKeySize), a.length]).toEqual([2, HV_E_FAIL, 5, 2, 4, 28 + 2580]);
    const g = readyGuest();
    g.service.daemon!.pause();
    g.deliver(deletePacket(0, 'k'));
    g.deliver();
    expect(g.sent.length).toBe(1);
  });

  it('ENUMERATE answer: key and value as UTF-16 cut to 254 / 1022 units, sizes 2·(units+1), REG_SZ, status 0', () => {
    const h = readyGuest();
    h.deliver(setPacket(1, 'k'.repeat(255), 'v'.repeat(1023)));
    expect(u32(h.last(), AT.status)).toBe(HV_S_OK);
    // Stored as 255 and 1023 bytes of UTF-8 (within 511 / 2047).
    expect(pool(h.files, 1)).toEqual(record('k'.repeat(255), 'v'.repeat(1023)));
    h.deliver(enumPacket(1, 0));
    const a = h.last();
    expect([u32(a, AT.status), a.length, u32(a, AT.eValueType), u32(a, AT.eKeySize), u32(a, AT.eValueSize)]).toEqual([0, 28 + 2580, 1, 510, 2046]);
    expect(text16(a, AT.eKey, 510)).toBe('k'.repeat(254));
    expect(text16(a, AT.eValue, 2046)).toBe('v'.repeat(1022));
    h.deliver(enumPacket(1, 1));
    expect(u32(h.last(), AT.status)).toBe(HV_S_CONT);
  });

  it("hostile sizes and text: sizes are unit counts bounded by NUL and the UTF-8 room; lone surrogates dropped; a C int's sign", () => {
    const h = readyGuest();
    // key_size 0x7fffffff without a terminator in reach: the key runs on into the value area up to 511 bytes of UTF-8.
    h.deliver(
      kvpPacket(1, 0, (dv, b) => {
        dv.setUint32(AT.valueType, 1, true);
        dv.setUint32(AT.keySize, 0x7fffffff, true);
        dv.setUint32(AT.valueSize, 4, true);
        b.set(utf16('K'.repeat(256)), AT.key);
        b.set(utf16('ab'), AT.value);
      }),
    );
    // key_size 0xffffffff is -1 as an int: nothing converted, an empty key.
    h.deliver(
      kvpPacket(1, 0, (dv, b) => {
        dv.setUint32(AT.valueType, 1, true);
        dv.setUint32(AT.keySize, 0xffffffff, true);
        dv.setUint32(AT.valueSize, 6, true);
        b.set(utf16('ignored'), AT.key);
        b.set(utf16('e\udc00\ud800'), AT.value);
      }),
    );
    // Lone surrogates in a key are dropped; a pair survives.
    h.deliver(setPacket(0, 'a\ud800b\udc00c😀', 'x'));
    expect(h.sent.slice(1).map((s) => u32(s.bytes, AT.status))).toEqual([0, 0, 0]);
    const first = record(utf8('K'.repeat(256) + 'a'.repeat(0)), 'ab');
    first.set(utf8('K'.repeat(256) + 'ab'), 0); // the key's conversion read on into the value's units
    expect(pool(h.files, 0)).toEqual(concat(first, record('', 'e'), record('abc😀', 'x')));
  });

  it('REG_U32 / REG_U64 values become decimal text; an unknown type stores no value', () => {
    const h = readyGuest();
    const num = (type: number, hi: number, lo: number) =>
      kvpPacket(1, 4, (dv, b) => {
        dv.setUint32(AT.valueType, type, true);
        dv.setUint32(AT.keySize, 4, true);
        dv.setUint32(AT.valueSize, 8, true);
        b.set(utf16(`t${type}`), AT.key);
        dv.setUint32(AT.value, lo, true);
        dv.setUint32(AT.value + 4, hi, true);
      });
    h.deliver(num(4, 7, 0xffffffff), num(8, 0xffffffff, 0xffffffff), num(7, 1, 1));
    h.deliver();
    h.deliver();
    expect(pool(h.files, 4)).toEqual(concat(record('t4', '4294967295'), record('t8', '18446744073709551615'), record('t7', '')));
  });

  it('a request shorter than its body reuses what the buffer held; too short, or not KVP: logged and dropped unanswered', () => {
    const h = readyGuest();
    h.deliver(setPacket(0, 'k1', 'v1'));
    // 32 bytes: the header says SET on pool 3; the rest comes from the previous request.
    h.deliver(setPacket(3, 'k1', 'v1').subarray(0, 32));
    expect(h.last().length).toBe(32);
    expect(pool(h.files, 3)).toEqual(record('k1', 'v1'));
    const before = h.sent.length;
    h.deliver(new Uint8Array(20));
    const wrong = setPacket(0, 'x', 'y');
    wrong[AT.icmsgtype] = 7;
    h.deliver(wrong);
    expect(h.sent.length).toBe(before);
    expect(h.lines.slice(-2)).toEqual(['err: hv_utils: KVP request received. Packet length too small: 20', 'err: hv_utils: KVP request received. Invalid msg type: 7']);
    // The next request is served.
    h.deliver(enumPacket(3, 0));
    expect(text16(h.last(), AT.eKey, u32(h.last(), AT.eKeySize))).toBe('k1');
  });

  it('an operation the daemon does not know: answered S_OK in the enumerate layout, empty', () => {
    const h = readyGuest();
    h.deliver(kvpPacket(9, 0));
    const a = h.last();
    expect([u32(a, AT.status), u32(a, AT.eValueType), u32(a, AT.eKeySize), u32(a, AT.eValueSize)]).toEqual([0, 1, 2, 2]);
  });

  it('pool 5..255: the daemon dies on the lock (its table has 5 entries); HV_E_FAIL, then no answers', () => {
    const h = readyGuest();
    h.deliver(setPacket(9, 'k', 'v'));
    expect(u32(h.last(), AT.status)).toBe(HV_E_FAIL);
    const d = h.service.daemon!;
    expect(d.syslog.at(-1)).toEqual({ priority: 'err', message: 'Failed to acquire the lock pool: 9; error: 9 Bad file descriptor' });
    expect(d.exit).toEqual({ status: 1 });
    const n = h.sent.length;
    h.deliver(enumPacket(0, 0));
    expect([h.sent.length, h.left()]).toEqual([n, 1]);
  });

  it('an enumerate index of 2^31 or more is negative in the daemon: it dies (SIGSEGV), the host gets HV_E_FAIL', () => {
    const h = readyGuest();
    h.deliver(enumPacket(0, 0x80000000));
    expect(u32(h.last(), AT.status)).toBe(HV_E_FAIL);
    expect(h.service.daemon!.exit).toEqual({ status: 139, signal: 'SIGSEGV' });
    // The AUTO pool has no such problem: its index is a switch.
    const g = readyGuest();
    g.deliver(enumPacket(2, 0x80000000), enumPacket(2, 9));
    g.deliver();
    expect(g.sent.slice(1).map((s) => u32(s.bytes, AT.status))).toEqual([HV_S_CONT, 0]);
    expect(text16(g.last(), AT.eKey, u32(g.last(), AT.eKeySize))).toBe('ProcessorArchitecture');
  });

  it('pool records without NULs and with bad UTF-8 (a file made by hand): cut answers, or HV_E_FAIL', () => {
    const noNul = new Uint8Array(RECORD).fill(0x6b);
    noNul.fill(0x76, 512);
    const badUtf8 = record(Uint8Array.from([0x61, 0xff, 0x62]), 'v');
    const h = readyGuest({}, (s) => {
      s.files.mkdirs('/var/lib/hyperv');
      s.files.write('/var/lib/hyperv/.kvp_pool_0', concat(noNul, badUtf8));
    });
    h.deliver(enumPacket(0, 0));
    let a = h.last();
    // strlen runs from the key on through the value: 254 units of key, 1022 of value.
    expect([u32(a, AT.status), u32(a, AT.eKeySize), u32(a, AT.eValueSize)]).toEqual([0, 510, 2046]);
    expect(text16(a, AT.eKey, 510)).toBe('k'.repeat(254));
    expect(text16(a, AT.eValue, 2046)).toBe('v'.repeat(1022));
    h.deliver(enumPacket(0, 1));
    a = h.last();
    // utf8s_to_utf16s fails (-EINVAL): HV_E_FAIL, and key_size is 2·(-22+1) as a u32.
    expect([u32(a, AT.status), u32(a, AT.eKeySize)]).toEqual([HV_E_FAIL, (2 * (-22 + 1)) >>> 0]);
  });

  it('GET_IP_INFO / SET_IP_INFO: no adapter with that MAC (HV_E_FAIL), no interface with that GUID (HV_GUID_NOTFOUND)', () => {
    const h = readyGuest();
    const ip = (op: number, adapter: string) =>
      kvpPacket(
        op,
        1,
        (dv, b) => {
          b.set(utf16(adapter), AT.ipAdapter);
          b[AT.ipFamily] = 1;
          b.set(utf16('10.0.0.2'), AT.ipAddr);
        },
        7428,
      );
    h.deliver(ip(4, '00:15:5D:00:00:01'));
    expect([u32(h.last(), AT.status), h.last().length]).toEqual([HV_E_FAIL, 28 + 7428]);
    h.deliver(ip(5, '{f8615163-df3e-46c5-913f-f2d2f965ed0e}'));
    expect(u32(h.last(), AT.status)).toBe(HV_GUID_NOTFOUND);
    // The loopback's MAC matches, has no address: success, address family cleared, strings empty.
    h.deliver(ip(4, '00:00:00:00:00:00'));
    const a = h.last();
    expect([u32(a, AT.status), a[AT.ipFamily], text16(a, AT.ipAdapter, 36)]).toEqual([0, 0, '00:00:00:00:00:00']);
  });

  it('never throws on arbitrary packets; every answer has the length received and TRANSACTION | RESPONSE; pool files stay whole records', () => {
    const request = fc.oneof(
      fc.uint8Array({ maxLength: 3000 }),
      fc.tuple(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 6 }), fc.array(fc.tuple(fc.nat({ max: 2607 }), fc.integer({ min: 0, max: 255 })), { maxLength: 30 }), fc.integer({ min: 28, max: 2608 })).map(([op, p, edits, len]) => {
        const b = kvpPacket(op, p);
        for (const [at, x] of edits) b[28 + (at % 2580)] = x;
        return b.subarray(0, len);
      }),
      fc.tuple(fc.string({ maxLength: 300 }), fc.string({ maxLength: 1100 }), fc.integer({ min: 0, max: 4 })).map(([k, val, p]) => setPacket(p, k, val)),
    );
    fuzz(
      'kvp.guest-driver',
      fc.property(fc.array(request, { maxLength: 6 }), (packets) => {
        const h = readyGuest();
        for (const p of packets) h.deliver(p);
        h.deliver();
        for (const s of h.sent.slice(1)) {
          expect(s.bytes.length).toBe(packets[Number(s.id) - 2]!.length);
          expect(s.bytes[AT.icflags]).toBe(5);
        }
        for (let n = 0; n < 5; n++) expect((pool(h.files, n) ?? new Uint8Array(0)).length % RECORD).toBe(0);
      }),
      runs(0.5),
    );
  });
});

describe('the device between kernel and daemon, written by anything', () => {
  it("a daemon's registration: REGISTER1 works; the old REGISTER is told to upgrade; anything else is refused (EINVAL); short writes too", () => {
    const h = guestHarness({ daemon: 'manual' });
    h.deliver(negotiatePacket());
    const dev = h.service.kernel!.device;
    const fd = dev.open(() => {});
    if (typeof fd === 'number') throw new Error(`open: ${fd}`);
    const msg = new Uint8Array(7432);
    expect(fd.write(msg.subarray(0, 100))).toBe(-22);
    msg[0] = 7;
    expect(fd.write(msg)).toBe(-22);
    expect(h.lines.slice(-2)).toEqual(['info: hv_utils: KVP: incompatible daemon', 'info: hv_utils: KVP: KVP version: 100, Daemon version: 7']);
    msg[0] = 4; // KVP_OP_REGISTER: an old daemon
    expect(fd.write(msg)).toBe(7432);
    expect(h.lines.slice(-3)).toEqual(['info: hv_utils: KVP: IP injection functionality not available', 'info: hv_utils: KVP: Upgrade the KVP daemon', 'debug: hv_utils: KVP: userspace daemon ver. 4 connected']);
    // The kernel's answer: operation 4 and HV_DRV_VERSION; reading it lets the channel be read.
    const reg = fd.read(7432) as Uint8Array;
    expect([reg[0], Buffer.from(reg.subarray(4, 8)).toString('latin1')]).toEqual([4, '3.1\0']);
    expect(h.sent.length).toBe(1);
    // With the old protocol an empty key in the answer means HV_S_CONT, any other means success.
    h.deliver(enumPacket(1, 0));
    const req = fd.read(7432) as Uint8Array;
    expect([req[0], req[1], u32(req, 4)]).toEqual([3, 1, 0]);
    const answer = new Uint8Array(7432);
    expect(fd.write(answer)).toBe(7432);
    expect(u32(h.last(), AT.status)).toBe(HV_S_CONT);
    // A write with nothing asked is spurious.
    expect(fd.write(answer)).toBe(-22);
  });

  it("whatever user space writes or reads, in any order: the kernel never throws and answers keep the request's length", () => {
    fuzz(
      'kvp.guest-user-space',
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.uint8Array({ maxLength: 7500 }), fc.integer({ min: 0, max: 8000 })), { maxLength: 8 }), (steps) => {
        const h = guestHarness({ daemon: 'manual' });
        h.deliver(negotiatePacket());
        const fd = h.service.kernel!.device.open(() => {});
        if (typeof fd === 'number') throw new Error(`open: ${fd}`);
        const reg = new Uint8Array(7432);
        reg[0] = 100;
        fd.write(reg);
        fd.read(7432);
        const sentLength: number[] = [];
        for (const [what, bytes, n] of steps) {
          if (what === 0) {
            const p = enumPacket(bytes[0] ?? 0, bytes[1] ?? 0).subarray(0, 28 + (n % 2581));
            sentLength.push(p.length);
            h.deliver(p);
          } else if (what === 1) {
            const r = fd.read(n);
            expect(typeof r === 'number' ? r < 0 : r.length === 7432).toBe(true);
          } else if (what === 2) {
            const w = new Uint8Array(Math.max(bytes.length, n % 7500));
            w.set(bytes);
            const r = fd.write(w);
            expect(r === w.length || r < 0).toBe(true);
          } else fd.close();
        }
        for (const s of h.sent.slice(1)) {
          expect(s.bytes[AT.icflags]).toBe(5);
          expect(sentLength).toContain(s.bytes.length);
        }
      }),
      RUNS,
    );
  });
});

describe("the daemon's pools and facts on arbitrary files", () => {
  it('any pool file: enumerating, setting and deleting never throw anything but the daemon ending', () => {
    fuzz(
      'kvp.daemon-pool-files',
      fc.property(fc.uint8Array({ maxLength: 3 * RECORD + 7 }), fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: -2, max: 5 })), { maxLength: 6 }), (file, ops) => {
        const files = new MemoryFiles();
        files.mkdirs('/var/lib/hyperv');
        files.write('/var/lib/hyperv/.kvp_pool_0', file);
        const pools = new KvpPools({ files, syslog: () => {} });
        expect(pools.init()).toBe(0);
        const msg = new Uint8Array(7432);
        msg.set(utf8('key'), 20);
        for (const [op, x] of ops) {
          try {
            if (op === 0) pools.enumerate(0, x, msg, 20, 532);
            else if (op === 1) pools.keyAddOrModify(0, msg, 20, x + 1, 532, x + 2);
            else if (op === 2) pools.keyDelete(0, msg, 20, x + 1);
            else pools.getValue(0, msg, 20, 4, 532, x + 1);
          } catch (e) {
            expect(e).toBeInstanceOf(DaemonExit);
          }
        }
        // Left as it was, or rewritten as whole records.
        const after = files.read('/var/lib/hyperv/.kvp_pool_0')!;
        if (!Buffer.from(after).equals(Buffer.from(file))) expect(after.length % RECORD).toBe(0);
      }),
      RUNS,
    );
  });

  it('any /etc/os-release or redhat-release: the AUTO pool is answered', () => {
    fuzz(
      'kvp.daemon-os-release',
      fc.property(fc.uint8Array({ maxLength: 1200 }), fc.boolean(), (content, redhat) => {
        const h = readyGuest({}, (s) => {
          s.files.mkdirs('/etc');
          s.files.write(redhat ? '/etc/redhat-release' : '/etc/os-release', content);
        });
        for (let i = 0; i <= 10; i++) h.deliver(enumPacket(2, i));
        expect(h.sent.length).toBe(12);
        expect(u32(h.last(), AT.status)).toBe(HV_S_CONT);
      }),
      runs(0.25),
    );
  });
});
