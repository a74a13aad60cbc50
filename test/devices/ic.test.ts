// The IC framework: its wire format byte for byte (vmbus.md §9.1–§9.3), Linux's
// vmbus_prep_negotiate_resp as a table (channel_mgmt.c), the host's NEGOTIATE and its checks of
// the answer, the hv_utils driver (hv_util.c util_probe), and every parser fed arbitrary bytes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HostContext } from '../../src/devices/device.js';
import { DelayedWork, HvUtilsDriver, hvUtilsModule, utilRingBytes, type UtilChannel, type UtilService } from '../../src/devices/ic/guest.js';
import { IcHost, type IcResponse } from '../../src/devices/ic/host.js';
import { prepNegotiateResp } from '../../src/devices/ic/negotiate.js';
import { HOST_IC_MESSAGE_VERSIONS } from '../../src/devices/ic/versions.js';
import { encodeIcMessage, encodeNegotiate, icMessageBody, LINUX_UTIL_VERSIONS, parseIcMessage, parseNegotiate } from '../../src/devices/ic/wire.js';
import { heartbeatService } from '../../src/devices/heartbeat/guest.js';
import { attachHeartbeat } from '../../src/devices/heartbeat/host.js';
import { shutdownService } from '../../src/devices/shutdown/guest.js';
import { attachShutdown } from '../../src/devices/shutdown/host.js';
import { timesyncService } from '../../src/devices/timesync/guest.js';
import { attachTimesync } from '../../src/devices/timesync/host.js';
import { makeKvpService } from '../../src/devices/kvp/guest.js';
import { attachKvp } from '../../src/devices/kvp/host.js';
import { makeVssService } from '../../src/devices/vss/guest.js';
import { attachVss } from '../../src/devices/vss/host.js';
import { makeFcopyService } from '../../src/devices/fcopy/guest.js';
import { attachFcopy } from '../../src/devices/fcopy/host.js';
import { RELEASE_IDS, release } from '../../src/hypervisor/release.js';
import { WireError } from '../../src/tlfs/struct.js';
import type { VmbusDriver } from '../../src/vmbus/client/client.js';
import type { ChannelHandler, HostChannel } from '../../src/vmbus/server/channel.js';
import type { VmbusServer } from '../../src/vmbus/server/server.js';
import { makeVersion } from '../../src/vmbus/wire/constants.js';
import { Machine } from '../../src/vm/machine.js';
import { RUNS } from '../vmbus/fuzz-runs.js';
import { deafService, fakeGuestChannel, hostContext, stubServices, utilHarness, v } from './services.js';
import { hostIcOffer, type IcVersionOffer } from '../../src/devices/ic/versions.js';
import { fuzz, itFuzzEachRelease } from '../fuzz/fuzz.js';

const hex = (s: string) => Uint8Array.from(s.trim().split(/\s+/).map((b) => parseInt(b, 16)));
const u16 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint16(at, true);
const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
const HEARTBEAT = '57164f39-9115-4e78-ab55-382f3bd5422d';
const SHUTDOWN = '0e0b6031-5213-4934-818b-38d90ced39db';

// Offsets of vmbus.md §9.1 and §9.3, for reading answers.
const AT = { icmsgtype: 12, icmsgsize: 18, status: 20, transId: 24, icflags: 25, frameCount: 28, msgCount: 30, data: 36 } as const;

describe('IC wire format', () => {
  it('a NEGOTIATE request offering framework 1.0, 3.0 and message 1.0, 3.0, byte for byte', () => {
    const bytes = encodeIcMessage({ type: 0, framework: 0, message: 0, transactionId: 0, flags: 3, body: encodeNegotiate([v('1.0'), v('3.0')], [v('1.0'), v('3.0')]) });
    expect([...bytes]).toEqual([
      ...hex('01 00 00 00  2c 00 00 00'), // pipe: DATA, 44 bytes follow
      ...hex('00 00 00 00  00 00  00 00 00 00  18 00  00 00 00 00  00  03  00 00'), // icmsg_hdr: type 0, size 24, id 0, flags 3
      ...hex('02 00  02 00  00 00 00 00'), // two framework and two message versions
      ...hex('01 00 00 00  03 00 00 00  01 00 00 00  03 00 00 00'),
    ]);
  });

  it('parses what it builds, and the header fields land where Linux reads them', () => {
    const bytes = encodeIcMessage({ type: 3, framework: v('3.0'), message: v('3.2'), status: 0x80004005, transactionId: 7, flags: 5, body: new Uint8Array(12) });
    expect(u16(bytes, AT.icmsgtype)).toBe(3);
    expect(u16(bytes, 8)).toBe(3); // icverframe.major
    expect(u16(bytes, 16)).toBe(2); // icvermsg.minor
    expect(u32(bytes, AT.status)).toBe(0x80004005);
    expect(bytes[AT.transId]).toBe(7);
    expect(bytes[AT.icflags]).toBe(5);
    const m = icMessageBody(bytes);
    expect(m.header.icmsgsize).toBe(12);
    expect(m.body.length).toBe(12);
    expect(parseNegotiate(encodeNegotiate([v('3.0')], [v('4.0'), v('3.0'), v('1.0')]))).toEqual({ framework: [v('3.0')], message: [v('4.0'), v('3.0'), v('1.0')] });
  });

  it('names the field a host-side check rejects', () => {
    const good = encodeIcMessage({ type: 1, framework: v('3.0'), message: v('3.0'), transactionId: 0, flags: 5, body: new Uint8Array(16) });
    const bad = (patch: (b: Uint8Array) => void): string => {
      const b = good.slice();
      patch(b);
      try {
        icMessageBody(b);
      } catch (e) {
        expect(e).toBeInstanceOf(WireError);
        return (e as WireError).message;
      }
      return 'accepted';
    };
    expect(bad((b) => (b[0] = 2))).toMatch(/^vmbuspipe_hdr\.flags/);
    expect(bad((b) => (b[4] = 200))).toMatch(/^vmbuspipe_hdr\.msgsize/);
    expect(bad((b) => (b[AT.icmsgsize] = 17))).toMatch(/^icmsg_hdr\.icmsgsize/);
    expect(() => parseIcMessage(good.subarray(0, 27))).toThrow(WireError);
    expect(() => parseNegotiate(hex('65 00 01 00 00 00 00 00'))).toThrow(/icframe_vercnt/);
    expect(() => parseNegotiate(hex('01 00 01 00 00 00 00 00 03 00 00 00'))).toThrow(/icversion_data/);
  });
});

/** A NEGOTIATE as the host sends it, in a receive buffer of four pages (util_probe). */
function negotiateBuffer(fw: readonly number[], msg: readonly number[]): { buf: Uint8Array; len: number } {
  const m = encodeIcMessage({ type: 0, framework: 0, message: 0, transactionId: 0, flags: 3, body: encodeNegotiate(fw, msg) });
  const buf = new Uint8Array(16384);
  buf.set(m);
  return { buf, len: Math.ceil(m.length / 8) * 8 };
}

describe("vmbus_prep_negotiate_resp (Linux's choice, written in place)", () => {
  const HB = LINUX_UTIL_VERSIONS.heartbeat;
  const SD = LINUX_UTIL_VERSIONS.shutdown;
  // host framework, host message versions, guest tables → ok, chosen (or left) framework and message.
  const table: [string, string[], string[], { framework: readonly number[]; message: readonly number[] }, boolean, string, string][] = [
    ['both sides know 3.0 and 1.0', ['1.0', '3.0'], ['1.0', '3.0'], HB, true, '3.0', '3.0'],
    ['the guest prefers its own order over the host\'s', ['3.0', '1.0'], ['3.0', '1.0'], HB, true, '3.0', '3.0'],
    ['an old host: framework 1.0 only', ['1.0'], ['1.0', '3.0'], HB, true, '1.0', '3.0'],
    ['heartbeat 1.0 only', ['1.0', '3.0'], ['1.0'], HB, true, '3.0', '1.0'],
    ['shutdown up to 3.2', ['1.0', '3.0'], ['1.0', '3.0', '3.1', '3.2'], SD, true, '3.0', '3.2'],
    ['shutdown up to 3.1', ['1.0', '3.0'], ['1.0', '3.0', '3.1'], SD, true, '3.0', '3.1'],
    ['shutdown 3.0', ['1.0', '3.0'], ['1.0', '3.0'], SD, true, '3.0', '3.0'],
    ['a message version Linux does not know is skipped', ['3.0'], ['5.0', '3.0'], HB, true, '3.0', '3.0'],
    // No framework in common: the answer carries the host's counts as "versions" (F.0, M.0).
    ['no common framework', ['2.0'], ['3.0'], HB, false, '1.0', '1.0'],
    ['no common framework, three offered', ['2.0', '4.0', '5.0'], ['1.0', '3.0'], HB, false, '3.0', '2.0'],
    // Framework matched, no message version: the framework stays, the message slot holds M.0.
    ['no common message version', ['1.0', '3.0'], ['2.0', '4.0'], HB, false, '3.0', '2.0'],
    ['no message versions at all', ['3.0'], [], HB, false, '3.0', '0.0'],
  ];

  for (const [name, hostFw, hostMsg, guest, ok, fw, msg] of table) {
    it(`${name}: ${ok ? `picks ${fw} / ${msg}` : 'answers with no versions'}`, () => {
      const { buf, len } = negotiateBuffer(hostFw.map(v), hostMsg.map(v));
      const logs: string[] = [];
      const r = prepNegotiateResp(buf, len, guest.framework, guest.message, (t) => logs.push(t));
      expect(r).toEqual({ ok, framework: v(fw), message: v(msg) });
      expect(logs).toEqual([]);
      expect(u16(buf, AT.icmsgsize)).toBe(16);
      expect([u16(buf, AT.frameCount), u16(buf, AT.msgCount)]).toEqual(ok ? [1, 1] : [0, 0]);
      expect([u16(buf, AT.data), u16(buf, AT.data + 2), u16(buf, AT.data + 4), u16(buf, AT.data + 6)]).toEqual([...fw.split('.'), ...msg.split('.')].map(Number));
    });
  }

  it('more than 100 versions of a kind: logged, answered with none (the counts in the version slots)', () => {
    const { buf, len } = negotiateBuffer([v('3.0')], [v('3.0')]);
    buf[AT.frameCount] = 101;
    const logs: string[] = [];
    expect(prepNegotiateResp(buf, len, HB.framework, HB.message, (t) => logs.push(t))).toEqual({ ok: false, framework: v('101.0'), message: v('1.0') });
    expect(logs).toEqual(['Invalid icmsg negotiate - icframe_major: 101, icmsg_major: 1']);
    expect([u16(buf, AT.frameCount), u16(buf, AT.msgCount), u16(buf, AT.data), u16(buf, AT.data + 4)]).toEqual([0, 0, 101, 1]);
  });

  it('counts that do not fit the received length: the same failure', () => {
    const { buf } = negotiateBuffer([v('1.0'), v('3.0')], [v('1.0'), v('3.0')]);
    const logs: string[] = [];
    // 28 + 8 + 4 * 4 = 52 bytes are needed; 51 were received.
    expect(prepNegotiateResp(buf, 51, HB.framework, HB.message, (t) => logs.push(t)).ok).toBe(false);
    expect(logs).toEqual(['Invalid icmsg negotiate - icframe_major: 2, icmsg_major: 2']);
    expect(prepNegotiateResp(negotiateBuffer([v('1.0'), v('3.0')], [v('1.0'), v('3.0')]).buf, 52, HB.framework, HB.message).ok).toBe(true);
  });

  it('shorter than the two counts (32 bytes): logged, the buffer left as it was', () => {
    const { buf } = negotiateBuffer([v('3.0')], [v('3.0')]);
    const before = buf.slice();
    const logs: string[] = [];
    expect(prepNegotiateResp(buf, 31, HB.framework, HB.message, (t) => logs.push(t))).toEqual({ ok: false, framework: undefined, message: undefined });
    expect(logs).toEqual(['Invalid icmsg negotiate']);
    expect(buf).toEqual(before);
  });

  it('for arbitrary buffers: never throws, touches only icmsgsize and bytes 28..43, and a match is in both lists', () => {
    const versions = fc.array(fc.constantFrom(...['1.0', '3.0', '3.1', '3.2', '4.0', '5.0', '2.0', '0.0'].map(v)), { maxLength: 5 });
    fuzz(
      'ic.prep-negotiate-resp',
      fc.property(fc.uint8Array({ maxLength: 96 }), fc.nat({ max: 120 }), versions, versions, (bytes, len, fw, srv) => {
        const buf = bytes.slice();
        const before = buf.slice();
        const r = prepNegotiateResp(buf, len, fw, srv);
        for (let i = 0; i < buf.length; i++) if (i !== AT.icmsgsize && i !== AT.icmsgsize + 1 && (i < 28 || i >= 44)) expect(buf[i]).toBe(before[i]);
        if (Math.min(len, buf.length) < 32) expect(buf).toEqual(before);
        if (r.ok) {
          expect(fw).toContain(r.framework);
          expect(srv).toContain(r.message);
          expect([u16(buf, AT.frameCount), u16(buf, AT.msgCount)]).toEqual([1, 1]);
        }
      }),
      RUNS,
    );
  });
});

describe('IC parsers against arbitrary bytes', () => {
  const onlyWireErrors = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(WireError);
    }
  };

  it('parseIcMessage, icMessageBody and parseNegotiate throw nothing but WireError', () => {
    fuzz(
      'ic.wire',
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
        onlyWireErrors(() => parseIcMessage(b));
        onlyWireErrors(() => icMessageBody(b));
        onlyWireErrors(() => parseNegotiate(b));
      }),
      RUNS,
    );
  });

  it('a valid message with random fields parses back to what was built', () => {
    const u16a = fc.integer({ min: 0, max: 0xffff });
    fuzz(
      'ic.wire-round-trip',
      fc.property(u16a, u16a, u16a, fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 300 }), (type, fw, msg, status, id, flags, body) => {
        const m = icMessageBody(encodeIcMessage({ type, framework: fw * 0x10000 + 1, message: msg, status, transactionId: id, flags, body }));
        expect(m.header).toMatchObject({ icmsgtype: type, icverframe: { major: fw, minor: 1 }, icvermsg: { major: 0, minor: msg }, status, ictransaction_id: id, icflags: flags, icmsgsize: body.length });
        expect(m.body).toEqual(body);
      }),
      RUNS,
    );
  });
});

// --- The host base, over a recording channel ------------------------------------------------------

class TestIc extends IcHost {
  readyCount = 0;
  answers: IcResponse[] = [];
  /** What ended requests other than an answer: "bad: <reason>", "timeout", and the onClosed reasons. */
  ended: string[] = [];
  protected onReady(): void {
    this.readyCount++;
  }
  protected override onClosed(why: 'closed' | 'revoked' | 'disposed'): void {
    this.ended.push(`closed: ${why}`);
  }
  /** A request whose bad answers and (with `timeoutNs`) timeout are recorded in `ended`. */
  ask(type: number, body: Uint8Array, timeoutNs?: number): boolean {
    return this.sendRequest(type, body, {
      answer: (r) => this.answers.push(r),
      bad: (reason) => this.ended.push(`bad: ${reason}`),
      ...(timeoutNs !== undefined ? { timeout: { ns: timeoutNs, expired: () => this.ended.push('timeout') } } : {}),
    });
  }
}

function hostHarness(offer: IcVersionOffer = { framework: [v('1.0'), v('3.0')], message: [v('1.0'), v('3.0')] }) {
  const sent: Uint8Array[] = [];
  const log: string[] = [];
  let handler: ChannelHandler | undefined;
  let spec: unknown;
  const ch = { sendInband: (b: Uint8Array) => (sent.push(b.slice()), true), receive: () => 0 } as unknown as HostChannel;
  const server = {
    offer: (s: unknown, h: ChannelHandler) => {
      spec = s;
      handler = h;
      return ch;
    },
  } as unknown as VmbusServer;
  // The host's clock and timers: `advance` moves the clock and runs what fell due.
  let now = 0;
  const timers: { at: number; f: () => void; live: boolean }[] = [];
  const ctx: HostContext = {
    server,
    release: 'ws2022',
    now: () => now,
    schedule: (at, f) => {
      const t = { at, f, live: true };
      timers.push(t);
      return { cancel: () => void (t.live = false) };
    },
    log: (t) => log.push(t),
    wallClockNs: () => 0n,
    referenceTime: () => 0n,
  };
  const advance = (ns: number) => {
    now += ns;
    for (const t of timers.filter((x) => x.live && x.at <= now)) {
      t.live = false;
      t.f();
    }
  };
  const host = new TestIc(ctx, { type: 'test', classId: HEARTBEAT, instanceId: '00000000-0000-4000-8000-000000000001', offer });
  return { host, sent, log, ch, spec: () => spec, handler: () => handler, advance, liveTimers: () => timers.filter((t) => t.live).length };
}

/** The guest's answer to `request`, as Linux's heartbeat callback would send it. */
function linuxAnswer(request: Uint8Array): Uint8Array {
  const { buf } = negotiateBuffer([], []);
  buf.set(request);
  const len = Math.ceil(request.length / 8) * 8;
  prepNegotiateResp(buf, len, LINUX_UTIL_VERSIONS.heartbeat.framework, LINUX_UTIL_VERSIONS.heartbeat.message);
  buf[AT.icflags] = 5;
  return buf.slice(0, len);
}

describe('IC host: offer, NEGOTIATE, answers', () => {
  it('offers a message-mode pipe: ENUMERATE_DEVICE_INTERFACE | NAMED_PIPE_MODE, pipe_mode 4', () => {
    const h = hostHarness();
    const s = h.spec() as { flags: number; userDefined: Uint8Array; classId: string };
    expect(s.flags).toBe(0x11);
    expect(s.classId).toBe(HEARTBEAT);
    expect(s.userDefined.length).toBe(120);
    expect(u32(s.userDefined, 0)).toBe(4);
    expect(h.handler()).toBe(h.host);
  });

  it('sends NEGOTIATE when the guest opens, and is ready once the answer names offered versions', () => {
    const h = hostHarness();
    expect(h.host.open(h.ch)).toBe(0);
    expect(h.host.phase).toBe('negotiating');
    expect(h.sent.length).toBe(1);
    expect([...h.sent[0]!.subarray(0, 28)]).toEqual([...hex('01 00 00 00 2c 00 00 00 00 00 00 00 00 00 00 00 00 00 18 00 00 00 00 00 00 03 00 00')]);
    h.host.onGuestPayload(linuxAnswer(h.sent[0]!));
    expect(h.host.phase).toBe('ready');
    expect(h.host.negotiated).toEqual({ framework: v('3.0'), message: v('3.0') });
    expect(h.host.readyCount).toBe(1);
    expect(h.log).toEqual(['test: IC version 3.0 (framework 3.0)']);
    // Later requests carry the negotiated versions and the next transaction id.
    expect(h.host.ask(1, new Uint8Array(16))).toBe(true);
    const req = h.sent[1]!;
    expect([u16(req, 8), u16(req, 10), u16(req, AT.icmsgtype), u16(req, 14), u16(req, 16), req[AT.transId], req[AT.icflags]]).toEqual([3, 0, 1, 3, 0, 1, 3]);
  });

  it('no common version: the guest answers with none, the host fails and says so', () => {
    const h = hostHarness({ framework: [v('2.0')], message: [v('3.0')] });
    h.host.open(h.ch);
    h.host.onGuestPayload(linuxAnswer(h.sent[0]!));
    expect(h.host.phase).toBe('failed');
    expect(h.host.readyCount).toBe(0);
    expect(h.log).toEqual(['test: version negotiation failed: the guest supports none of the offered versions (it answered 0 framework and 0 message versions)']);
    expect(h.host.ask(1, new Uint8Array(8))).toBe(false);
  });

  it('an answer choosing a version that was not offered is refused', () => {
    const h = hostHarness({ framework: [v('3.0')], message: [v('1.0')] });
    h.host.open(h.ch);
    const a = linuxAnswer(h.sent[0]!);
    a[AT.data + 4] = 3; // message 3.0, never offered
    h.host.onGuestPayload(a);
    expect(h.host.phase).toBe('failed');
    expect(h.log).toEqual(['test: version negotiation failed: the guest chose framework 3.0 and version 3.0, which were not offered']);
  });

  it('answers must echo a waiting transaction with TRANSACTION | RESPONSE and the same type', () => {
    const h = hostHarness();
    h.host.open(h.ch);
    h.host.onGuestPayload(linuxAnswer(h.sent[0]!));
    const ask = () => {
      h.host.ask(1, new Uint8Array(16));
      return h.sent.at(-1)!;
    };
    const answer = (req: Uint8Array, patch: (b: Uint8Array) => void = () => {}) => {
      const b = req.slice();
      b[AT.icflags] = 5;
      patch(b);
      h.host.onGuestPayload(b);
    };
    // A reply naming no waiting request: a violation, and the request still waits.
    const first = ask();
    answer(first, (b) => (b[AT.transId] = 9));
    expect(h.host.waiting).toBe(1);
    answer(first);
    expect(h.host.answers.map((a) => a.header.ictransaction_id)).toEqual([1]);
    // The request's id with flags that do not mark an answer, or of another type: the request is
    // over, as a bad answer; a correct answer after that is unexpected.
    const second = ask();
    answer(second, (b) => (b[AT.icflags] = 3));
    answer(second);
    const third = ask();
    answer(third, (b) => (b[AT.icmsgtype] = 2));
    answer(third);
    expect(h.host.answers.length).toBe(1);
    expect(h.host.waiting).toBe(0);
    expect(h.host.ended).toEqual(['bad: icflags 0x3 do not mark an answer', 'bad: answer of type 2 to a request of type 1']);
    expect(h.host.violations.items).toEqual([
      'no request with transaction id 9 is waiting',
      'icflags 0x3 do not mark an answer',
      'no request with transaction id 2 is waiting',
      'answer of type 2 to a request of type 1',
      'no request with transaction id 3 is waiting',
    ]);
  });

  it('headers that name a waiting request but do not hold together end it as a bad answer; too short to name one, only a violation', () => {
    const h = hostHarness();
    h.host.open(h.ch);
    h.host.onGuestPayload(linuxAnswer(h.sent[0]!));
    h.host.ask(1, new Uint8Array(16));
    h.host.onGuestPayload(new Uint8Array(27));
    expect(h.host.waiting).toBe(1);
    const b = h.sent[1]!.slice();
    b[AT.icflags] = 5;
    b[AT.icmsgsize] = 17; // one byte more than the pipe header holds
    h.host.onGuestPayload(b);
    expect(h.host.waiting).toBe(0);
    expect(h.host.ended).toEqual(['bad: icmsg_hdr.icmsgsize: 17 bytes exceed the 16 the pipe header holds']);
    expect(h.host.violations.items).toEqual(['icmsg_hdr: the message needs 28 bytes of headers, has 27', 'icmsg_hdr.icmsgsize: 17 bytes exceed the 16 the pipe header holds']);
  });

  it('a bad answer to NEGOTIATE fails the negotiation instead of leaving it waiting', () => {
    const h = hostHarness();
    h.host.open(h.ch);
    const a = linuxAnswer(h.sent[0]!);
    a[AT.icmsgtype] = 1;
    h.host.onGuestPayload(a);
    expect(h.host.phase).toBe('failed');
    expect(h.log).toEqual(['test: protocol violation: answer of type 1 to a request of type 0', 'test: version negotiation failed: NEGOTIATE answer: answer of type 1 to a request of type 0']);
  });

  it("a request with a timeout: forgotten when it expires, a late answer is a violation; an answer in time cancels the timer", () => {
    const h = hostHarness();
    h.host.open(h.ch);
    h.host.onGuestPayload(linuxAnswer(h.sent[0]!));
    h.host.ask(1, new Uint8Array(16), 35e9);
    h.advance(35e9 - 1);
    expect(h.host.ended).toEqual([]);
    expect(h.host.waiting).toBe(1);
    h.advance(1);
    expect(h.host.ended).toEqual(['timeout']);
    expect(h.host.waiting).toBe(0);
    const late = h.sent[1]!.slice();
    late[AT.icflags] = 5;
    h.host.onGuestPayload(late);
    expect(h.host.answers).toEqual([]);
    expect(h.host.violations.items).toEqual(['an answer with transaction id 1 to a request the host gave up on']);
    h.host.ask(1, new Uint8Array(16), 35e9);
    const inTime = h.sent[2]!.slice();
    inTime[AT.icflags] = 5;
    h.host.onGuestPayload(inTime);
    expect(h.host.answers.length).toBe(1);
    expect(h.liveTimers()).toBe(0);
    h.advance(100e9);
    expect(h.host.ended).toEqual(['timeout']);
  });

  it('dispose: back to offered, requests forgotten with their timers, onClosed told why; no later open, no later packet', () => {
    const h = hostHarness();
    h.host.open(h.ch);
    h.host.onGuestPayload(linuxAnswer(h.sent[0]!));
    h.host.ask(1, new Uint8Array(16), 35e9);
    h.host.dispose();
    expect(h.host.phase).toBe('offered');
    expect(h.host.waiting).toBe(0);
    expect(h.liveTimers()).toBe(0);
    expect(h.host.ended).toEqual(['closed: disposed']);
    expect(h.host.ask(1, new Uint8Array(16))).toBe(false);
    expect(h.host.open(h.ch)).toBe(0x8000ffff); // STATUS_UNSUCCESSFUL
    expect(h.sent.length).toBe(2);
    const late = h.sent[1]!.slice();
    late[AT.icflags] = 5;
    const ch = { receive: (f: (p: { type: number; payload: Uint8Array }) => void) => (f({ type: 6, payload: late }), 1) } as unknown as HostChannel;
    h.host.signal(ch);
    expect(h.host.answers).toEqual([]);
    expect(h.host.violations.total).toBe(0);
    h.host.dispose();
    expect(h.host.ended).toEqual(['closed: disposed']);
  });

  it('logs the first ten violations of an open, then only counts them', () => {
    const h = hostHarness();
    h.host.open(h.ch);
    for (let i = 0; i < 25; i++) h.host.onGuestPayload(new Uint8Array(3));
    expect(h.host.violations.total).toBe(25);
    expect(h.log.length).toBe(10);
    expect(h.log[9]).toMatch(/further violations are not logged\)$/);
  });

  // The versions offered are the release's heartbeat IC's.
  itFuzzEachRelease(
    'never throws on what a guest sends, in any phase',
    'ic.host',
    (release) =>
      fc.property(fc.array(fc.uint8Array({ maxLength: 120 }), { maxLength: 8 }), fc.boolean(), (payloads, negotiated) => {
        const h = hostHarness(hostIcOffer(release, 'heartbeat'));
        h.host.open(h.ch);
        if (negotiated) h.host.onGuestPayload(linuxAnswer(h.sent[0]!));
        for (const p of payloads) h.host.onGuestPayload(p);
        // Arbitrary answers to the pending NEGOTIATE too: headers that pass, bodies that need not.
        for (const p of payloads) {
          const b = new Uint8Array(28 + p.length);
          b.set(h.sent[0]!.subarray(0, 28));
          b.set(p, 28);
          b[AT.icflags] = 5;
          b[4] = Math.min(255, 20 + p.length);
          b[AT.icmsgsize] = p.length;
          h.host.onGuestPayload(b);
        }
        expect(['negotiating', 'ready', 'failed']).toContain(h.host.phase);
      }),
    RUNS,
  );
});

describe('every IC host stops with the VM (dispose)', () => {
  it('heartbeat, shutdown, time sync, KVP, VSS and file copy: offered again, what waits settles closed, no timer runs on, nothing more is sent or logged', () => {
    const m = new Machine({ release: 'ws2022', vps: 2, devices: [], kernel: { vmbus: true, modules: [] } });
    const log: string[] = [];
    const ctx = hostContext(m, log);
    const id = (n: number) => `00000000-0000-4000-8000-00000000010${n}`;
    const hb = attachHeartbeat(ctx, id(1));
    const sd = attachShutdown(ctx, id(2));
    const ts = attachTimesync(ctx, id(3));
    const kvp = attachKvp(ctx, id(4), { readIntrinsic: false });
    const vss = attachVss(ctx, id(5));
    const fcopy = attachFcopy(ctx, id(6));
    const hosts = [hb, sd, ts, kvp, vss, fcopy];
    m.boot();
    // The one-at-a-time ICs' guests stop answering once up, so that their requests wait.
    const deaf = [deafService(shutdownService), deafService(makeKvpService()), deafService(makeVssService()), deafService(makeFcopyService())];
    hvUtilsModule([heartbeatService, timesyncService, ...deaf.map((d) => d.service)]).init(stubServices(() => m.nowNs).services, (d) => m.kernel.vmbus!.registerDriver(d));
    m.runFor(5e9);
    expect(hosts.map((h) => h.phase)).toEqual(['ready', 'ready', 'ready', 'ready', 'ready', 'ready']);
    expect(hb.state).toBe('ok');
    for (const d of deaf) d.state.deaf = true;
    const waiting = [sd.request('shutdown', false).done, kvp.get(0, 'k').done, vss.freeze().done, fcopy.copyFile('/', 'f', new Uint8Array(1)).done];
    m.runFor(1e9);
    const [hbSent, tsSent, lines] = [hb.sent, ts.sentCount, log.length];
    for (const h of hosts) h.dispose();
    expect(hosts.map((h) => h.phase)).toEqual(['offered', 'offered', 'offered', 'offered', 'offered', 'offered']);
    expect(hb.state).toBe('no-contact');
    m.runFor(60e9);
    expect([hb.sent, ts.sentCount, log.length]).toEqual([hbSent, tsSent, lines]);
    return Promise.all(waiting).then((results) => {
      expect(results).toEqual([{ outcome: 'closed' }, { outcome: 'closed' }, { outcome: 'closed' }, { outcome: 'closed', steps: [] }]);
      expect(sd.request('restart', false).result).toEqual({ outcome: 'not-ready' });
      expect(kvp.set(0, 'a', 'b').result).toEqual({ outcome: 'not-ready' });
      expect(vss.thaw().result).toEqual({ outcome: 'not-ready' });
      expect(ts.sendSync()).toBeUndefined();
    });
  });
});

// --- The hv_utils driver, over a recording channel ------------------------------------------------

describe('hv_utils (util_probe and the module)', () => {
  it('module init prints its line and registers one driver, hv_utils, for every class it serves', () => {
    const s = stubServices();
    const drivers: VmbusDriver[] = [];
    hvUtilsModule([heartbeatService, shutdownService]).init(s.services, (d) => drivers.push(d));
    expect(s.lines).toEqual(['info: hv_utils: Registering HyperV Utility Driver']);
    expect(drivers.map((d) => d.name)).toEqual(['hv_utils']);
    expect([...drivers[0]!.classIds].sort()).toEqual([HEARTBEAT, SHUTDOWN].sort());
  });

  it('opens each channel with VMBUS_RING_SIZE(3 * 4096) rings in HV_CALL_DIRECT mode, max_pkt_size one page by default', () => {
    expect([utilRingBytes(4096), utilRingBytes(16384), utilRingBytes(65536)]).toEqual([16384, 32768, 131072]);
    for (const pageSize of [4096, 65536]) {
      const f = fakeGuestChannel(HEARTBEAT);
      new HvUtilsDriver([heartbeatService], stubServices().services, pageSize).probe(f.channel);
      // VMBUS_DEFAULT_MAX_PKT_SIZE (include/linux/hyperv.h): 4096.
      expect(f.opts()).toMatchObject({ sendRingBytes: pageSize === 4096 ? 16384 : 131072, recvRingBytes: pageSize === 4096 ? 16384 : 131072, callbackMode: 'direct', maxPacketSize: 4096 });
    }
  });

  it("a service's attach sets max_pkt_size before the open (as hv_kvp_init does): the open and recvpacket use it", () => {
    let util: UtilChannel | undefined;
    const big: UtilService = {
      name: 'big',
      classId: HEARTBEAT,
      attach: (u) => {
        util = u;
        u.maxPacketSize = 4 * 4096;
        return { onChannelCallback: () => {} };
      },
    };
    const f = fakeGuestChannel(HEARTBEAT);
    new HvUtilsDriver([big], stubServices().services, 4096).probe(f.channel);
    expect(f.opts()!.maxPacketSize).toBe(16384);
    // A 7458-byte request (KVP's IP info) arrives whole; the reader cuts at 16384 - 16.
    const p = Uint8Array.from({ length: 7458 }, (_, i) => i & 0xff);
    f.push(p, new Uint8Array(20000).fill(7));
    expect(util!.recvpacket()).toEqual({ recvlen: 7458, requestId: 1n });
    expect(util!.buffer.subarray(0, 7458)).toEqual(p);
    expect(util!.recvpacket()).toEqual({ recvlen: 16368, requestId: 2n });
    expect(util!.recvpacket()).toEqual({ recvlen: 0, requestId: 0n });
    // Fixed once open.
    expect(() => (util!.maxPacketSize = 8192)).toThrow(RangeError);
  });

  it('max_pkt_size beyond the four-page receive buffer, or not above a descriptor, is refused', () => {
    for (const bad of [16385, 16, 1.5, Number.NaN]) {
      const f = fakeGuestChannel(HEARTBEAT);
      const svc: UtilService = {
        name: 'bad',
        classId: HEARTBEAT,
        attach: (u) => {
          u.maxPacketSize = bad;
          return { onChannelCallback: () => {} };
        },
      };
      expect(() => new HvUtilsDriver([svc], stubServices().services, 4096).probe(f.channel)).toThrow(RangeError);
      expect(f.opts()).toBeUndefined();
    }
  });

  it("the UtilChannel tells the service the connection's VMBus version", () => {
    for (const version of [v('2.4'), v('3.0'), v('5.3')]) {
      const h = utilHarness(heartbeatService, { vmbusVersion: version });
      expect(h.util.vmbusVersion).toBe(version);
    }
  });

  it('a service that refuses the device fails the probe and the channel stays closed', () => {
    const refusing: UtilService = {
      name: 'refusing',
      classId: HEARTBEAT,
      attach: () => {
        throw new Error('no');
      },
    };
    const f = fakeGuestChannel(HEARTBEAT);
    expect(() => new HvUtilsDriver([refusing], stubServices().services, 4096).probe(f.channel)).toThrow('no');
    expect(f.opts()).toBeUndefined();
  });

  it('answers NEGOTIATE with the received length, the request id, and TRANSACTION | RESPONSE', () => {
    const h = utilHarness(heartbeatService);
    const { buf, len } = negotiateBuffer([v('1.0'), v('3.0')], [v('1.0'), v('3.0')]);
    h.deliver(buf.slice(0, len));
    expect(h.sent.length).toBe(1);
    expect(h.sent[0]!.id).toBe(1n);
    expect(h.sent[0]!.bytes.length).toBe(56); // 52 bytes padded to 8 by the ring
    expect(h.sent[0]!.bytes[AT.icflags]).toBe(5);
    expect(h.lines).toEqual(['info: hv_utils: Heartbeat IC version 3.0']);
  });

  it('rate-limits its error lines: 10 per 5 s per call site, then "<function>: N callbacks suppressed"', () => {
    const h = utilHarness(heartbeatService);
    // The heartbeat callback stops at a short packet: one line per interrupt.
    for (let i = 0; i < 15; i++) h.deliver(new Uint8Array(16));
    expect(h.lines).toEqual(Array(10).fill('err: hv_utils: Heartbeat request received. Packet length too small: 16'));
    h.advance(5e9 + 1);
    h.deliver(new Uint8Array(8));
    expect(h.lines.slice(10)).toEqual(['warn: heartbeat_onchannelcallback: 5 callbacks suppressed', 'err: hv_utils: Heartbeat request received. Packet length too small: 8']);
    expect(h.sent).toEqual([]);
  });
});

describe('DelayedWork (schedule_delayed_work for util services)', () => {
  it('runs once its delay has passed; a second schedule while pending does nothing; cancel says whether it was pending', () => {
    const s = stubServices();
    const runs: number[] = [];
    const w = new DelayedWork(s.services, () => runs.push(s.services.uptimeNs()));
    expect(w.schedule(30e9)).toBe(true);
    expect(w.schedule(1e9)).toBe(false);
    s.advance(30e9 - 1);
    s.runTimers();
    expect([runs, w.pending]).toEqual([[], true]);
    s.advance(1);
    s.runTimers();
    expect([runs, w.pending]).toEqual([[30e9], false]);
    expect(w.cancel()).toBe(false);
    expect(w.schedule(5)).toBe(true);
    expect(w.cancel()).toBe(true);
    s.advance(10);
    s.runTimers();
    expect(runs).toEqual([30e9]);
  });

  it("on the kernel's clock: the work runs at the first 4 ms tick after it falls due", () => {
    const m = new Machine({ release: 'ws2022', vps: 1, devices: [], kernel: { vmbus: true, modules: [] } });
    m.boot();
    const k = m.kernel.services;
    let ranAt: number | undefined;
    const t0 = k.uptimeNs();
    new DelayedWork(k, () => (ranAt = k.uptimeNs() - t0)).schedule(30e9);
    m.runFor(29.9e9);
    expect(ranAt).toBeUndefined();
    m.runFor(0.2e9);
    expect(ranAt).toBeGreaterThanOrEqual(30e9);
    expect(ranAt).toBeLessThanOrEqual(30e9 + 4e6);
  });
});

describe("GuestChannel.vmbusVersion (vmbus_proto_version as drivers read it)", () => {
  it.each(RELEASE_IDS)("%s: every channel reports the version the connection negotiated", (id) => {
    const m = new Machine({ release: id, vps: 1, devices: [], kernel: { vmbus: true, modules: [] } });
    const host = attachHeartbeat(hostContext(m), '3f0a46c6-0e39-4d93-9b55-2f1f8e5b7c11');
    m.boot();
    m.runFor(1e6);
    const r = release(id).vmbusVersion;
    const ch = m.kernel.vmbus!.channels.find((c) => c.offer.instanceId === host.instanceId)!;
    expect(ch.vmbusVersion).toBe(makeVersion(r.major, r.minor));
    expect(ch.vmbusVersion).toBe(m.kernel.vmbus!.version);
  });
});

describe('host version tables', () => {
  it('every release offers heartbeat 1.0 and 3.0 and shutdown from 1.0 up, oldest first', () => {
    for (const r of RELEASE_IDS) {
      expect(HOST_IC_MESSAGE_VERSIONS[r].heartbeat).toEqual([v('1.0'), v('3.0')]);
      const sd = HOST_IC_MESSAGE_VERSIONS[r].shutdown;
      expect(sd.slice(0, 2)).toEqual([v('1.0'), v('3.0')]);
      expect([...sd].sort((a, b) => a - b)).toEqual(sd);
    }
  });
});
