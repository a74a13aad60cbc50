// The heartbeat IC end to end over real VMBus on every release (the host's requests every two
// seconds, Linux's answers: hv_util.c heartbeat_onchannelcallback), a guest that stops answering
// and comes back, a guest that closes the channel, no common version; and the guest's parser fed
// arbitrary packets.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { heartbeatService } from '../../src/devices/heartbeat/guest.js';
import { attachHeartbeat, type HeartbeatHost, type HeartbeatOptions } from '../../src/devices/heartbeat/host.js';
import { shutdownService } from '../../src/devices/shutdown/guest.js';
import { attachShutdown } from '../../src/devices/shutdown/host.js';
import { hvUtilsModule, type HvUtilsDriver, type UtilService } from '../../src/devices/ic/guest.js';
import { RELEASE_IDS, type ReleaseId } from '../../src/hypervisor/release.js';
import type { GuestChannel } from '../../src/vmbus/client/channel.js';
import { Machine } from '../../src/vm/machine.js';
import { RUNS } from '../vmbus/fuzz-runs.js';
import { hostContext, stubServices, utilHarness, v } from './services.js';
import { fuzz } from '../fuzz/fuzz.js';

const INSTANCE = '2dd1ce17-079e-403c-b352-a1921ee207ee';

/** What each release's heartbeat negotiates with Linux 6.1 (versions.ts; Linux hb_versions 3.0, 1.0). */
const EXPECTED: Record<ReleaseId, { framework: string; message: string }> = {
  ws2012: { framework: '3.0', message: '3.0' },
  ws2012r2: { framework: '3.0', message: '3.0' },
  ws2016: { framework: '3.0', message: '3.0' },
  ws2019: { framework: '3.0', message: '3.0' },
  ws2022: { framework: '3.0', message: '3.0' },
  ws2025: { framework: '3.0', message: '3.0' },
};

const guestServices = (m: Machine) => stubServices(() => m.nowNs);

/** A machine with the heartbeat IC offered, booted, and hv_utils registered with `services`. */
function start(release: ReleaseId, opts: { services?: UtilService[]; heartbeat?: HeartbeatOptions; spy?: (hb: HeartbeatHost) => void } = {}) {
  // No default device set and no built-in modules: only this test's device and driver.
  const m = new Machine({ release, vps: 2, devices: [], kernel: { vmbus: true, modules: [] } });
  const hostLog: string[] = [];
  const ctx = hostContext(m, hostLog);
  const hb = attachHeartbeat(ctx, INSTANCE, opts.heartbeat);
  opts.spy?.(hb);
  m.boot();
  const guest = guestServices(m);
  let driver: HvUtilsDriver | undefined;
  hvUtilsModule(opts.services ?? [heartbeatService]).init(guest.services, (d) => {
    driver = d as HvUtilsDriver;
    m.kernel.vmbus!.registerDriver(d);
  });
  return { m, hb, hostLog, guest, driver: driver!, t0: m.nowNs };
}

/** heartbeatService, but while `hung` it reads what arrives and answers nothing. */
function hangable() {
  const state = { hung: false };
  const service: UtilService = {
    name: 'heartbeat',
    classId: heartbeatService.classId,
    attach(util) {
      const inner = heartbeatService.attach(util);
      return {
        onChannelCallback() {
          if (!state.hung) return inner.onChannelCallback();
          while (util.recvpacket().recvlen) {
            /* dropped */
          }
        },
      };
    },
  };
  return { state, service };
}

const hex = (s: string) => s.replace(/\s+/g, '');
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');

describe.each(RELEASE_IDS)('heartbeat on %s', (release) => {
  it('on the wire: NEGOTIATE and its answer, then a heartbeat and its answer, byte for byte', () => {
    const wire: [string, string][] = [];
    const { m } = start(release, {
      // What the host writes into its ring (descriptor and payload), and each payload it reads back.
      spy: (hb) => {
        const send = hb.hostChannel.send.bind(hb.hostChannel);
        hb.hostChannel.send = (parts) => (wire.push(['to-guest', parts.map(toHex).join('')]), send(parts));
        const read = hb.onGuestPayload.bind(hb);
        hb.onGuestPayload = (p) => (wire.push(['to-host', toHex(p)]), read(p));
      },
    });
    m.runFor(1e9);
    // Descriptor (type 6, offset8 2, len8, flags 0, trans id 0); pipe header, icmsg_hdr, body; the ring pads to 8.
    expect(wire).toEqual([
      ['to-guest', hex('0600 0200 0900 0000 0000000000000000  01000000 2c000000  00000000 0000 00000000 1800 00000000 00 03 0000  0200 0200 00000000 01000000 03000000 01000000 03000000')],
      // Linux answers in place: icmsgsize 16, flags 5, one framework (3.0) and one message version (3.0).
      ['to-host', hex('01000000 2c000000  00000000 0000 00000000 1000 00000000 00 05 0000  0100 0100 00000000 03000000 03000000 01000000 03000000  00000000')],
      ['to-guest', hex('0600 0200 0800 0000 0000000000000000  01000000 24000000  03000000 0100 03000000 1000 00000000 01 03 0000  0100000000000000 00000000 00000000')],
      ['to-host', hex('01000000 24000000  03000000 0100 03000000 1000 00000000 01 05 0000  0200000000000000 00000000 00000000  00000000')],
    ]);
  });

  it('negotiates, answers every heartbeat with its sequence number plus one, and the host says OK', () => {
    const { m, hb, hostLog, guest, t0 } = start(release);
    m.runFor(5e9);
    const e = EXPECTED[release];
    expect(hb.phase).toBe('ready');
    expect(hb.negotiated).toEqual({ framework: v(e.framework), message: v(e.message) });
    expect(guest.lines).toEqual(['info: hv_utils: Registering HyperV Utility Driver', `info: hv_utils: Heartbeat IC version ${e.message}`]);
    // Heartbeats 1, 2, 3 went out at once and after 2 s and 4 s.
    expect(hb.sent).toBe(3);
    expect(hb.answered).toEqual([2n, 3n, 4n]);
    expect(hb.state).toBe('ok');
    expect(hb.lastAnswerNs! - t0).toBeGreaterThan(4e9);
    expect(hostLog).toEqual([`heartbeat: IC version ${e.message} (framework ${e.framework})`, 'heartbeat: the guest answers: OK']);
    expect(hb.violations.items).toEqual([]);
    expect(m.kernel.log.records.filter((r) => r.text.includes('registering driver hv_utils')).length).toBe(1);
  });

  it('a guest that stops answering is lost after 6 s of silence, and found again when it answers', () => {
    const h = hangable();
    const { m, hb, hostLog, t0 } = start(release, { services: [h.service] });
    m.runFor(5e9);
    h.state.hung = true;
    // Heartbeats 4..7 (at 6, 8, 10, 12 s) go unanswered; at the one due at 12 s the last answer is 8 s old.
    m.waitUntil(() => hb.state === 'lost', 20e9);
    expect(hb.state).toBe('lost');
    expect(m.nowNs - t0).toBeGreaterThanOrEqual(12e9);
    expect(m.nowNs - t0).toBeLessThan(12.1e9);
    expect(hostLog.slice(2)).toEqual(['heartbeat: lost communication: no answer for 8.0 s']);
    h.state.hung = false;
    m.runFor(2.5e9);
    expect(hb.state).toBe('ok');
    expect(hb.answered).toEqual([2n, 3n, 4n, 9n]);
    expect(hostLog.slice(3)).toEqual(['heartbeat: communication restored']);
  });

  it('when the guest closes the channel the host reports no contact and stops sending', () => {
    const { m, hb, hostLog, driver } = start(release);
    m.runFor(3e9);
    const ch = [...driver.channels.values()][0]!.channel as GuestChannel;
    driver.remove(ch);
    m.runFor(1e6);
    expect(hb.phase).toBe('offered');
    expect(hb.state).toBe('no-contact');
    expect(hostLog.at(-1)).toBe('heartbeat: the guest closed the channel: no contact');
    const sent = hb.sent;
    m.runFor(6e9);
    expect(hb.sent).toBe(sent);
  });

  it('with no common version the host gives up and never sends a heartbeat', () => {
    const { m, hb, hostLog, guest } = start(release, { heartbeat: { offer: { framework: [v('2.0')], message: [v('3.0')] } } });
    m.runFor(5e9);
    expect(hb.phase).toBe('failed');
    expect(hb.sent).toBe(0);
    expect(hb.state).toBe('no-contact');
    expect(hostLog).toEqual(['heartbeat: version negotiation failed: the guest supports none of the offered versions (it answered 0 framework and 0 message versions)']);
    expect(guest.lines).toEqual(['info: hv_utils: Registering HyperV Utility Driver']);
  });
});

describe.each(RELEASE_IDS)('hv_utils with heartbeat and shutdown on %s', (release) => {
  it('one driver serves both channels; each negotiates and prints its version', () => {
    const m = new Machine({ release, vps: 2, devices: [], kernel: { vmbus: true, modules: [] } });
    const hostLog: string[] = [];
    const ctx = hostContext(m, hostLog);
    const hb = attachHeartbeat(ctx, INSTANCE);
    const sd = attachShutdown(ctx, 'b6650ff7-33bc-4840-8048-e0676786f393');
    m.boot();
    const guest = guestServices(m);
    const drivers: string[] = [];
    hvUtilsModule([heartbeatService, shutdownService]).init(guest.services, (d) => {
      drivers.push(d.name);
      m.kernel.vmbus!.registerDriver(d);
    });
    m.runFor(3e9);
    expect(drivers).toEqual(['hv_utils']);
    expect(m.kernel.log.records.filter((r) => r.text.includes('registering driver hv_utils')).length).toBe(1);
    expect(hb.state).toBe('ok');
    expect(sd.phase).toBe('ready');
    const sdVersion = { ws2012: '3.0', ws2012r2: '3.0', ws2016: '3.1', ws2019: '3.1', ws2022: '3.2', ws2025: '3.2' }[release];
    expect([...guest.lines].sort()).toEqual(['info: hv_utils: Heartbeat IC version 3.0', 'info: hv_utils: Registering HyperV Utility Driver', `info: hv_utils: Shutdown IC version ${sdVersion}`]);
  });
});

describe('heartbeat guest service: packet by packet', () => {
  /** The heartbeat service bound by hv_utils, with `payloads` queued on its channel. */
  function fakeUtil(payloads: Uint8Array[]) {
    const h = utilHarness(heartbeatService);
    h.push(...payloads);
    return h;
  }

  /** A heartbeat request as vmbus.md §9.1/§9.4 lays it out, with `extra` bytes after seq_num. */
  function request(seq: bigint, type = 1, extra = 8): Uint8Array {
    const b = new Uint8Array(28 + 8 + extra);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, 1, true);
    dv.setUint32(4, b.length - 8, true);
    dv.setUint16(12, type, true); // icmsgtype
    dv.setUint16(18, 8 + extra, true); // icmsgsize
    b[25] = 3; // TRANSACTION | REQUEST
    dv.setBigUint64(28, seq, true);
    return b;
  }

  it('answers seq + 1 (wrapping at 2^64), flags 5, same length and id; only seq_num must be present', () => {
    const f = fakeUtil([request(41n), request(0xffff_ffff_ffff_ffffn), request(7n, 1, 0)]);
    f.instance.onChannelCallback();
    expect(f.sent.map((s) => [new DataView(s.bytes.buffer).getBigUint64(28, true), s.bytes[25], s.bytes.length, s.id])).toEqual([
      [42n, 5, 44, 1n],
      [0n, 5, 44, 2n],
      [8n, 5, 36, 3n],
    ]);
    expect(f.lines).toEqual([]);
  });

  it('an unknown message type is answered with HV_E_FAIL and logged', () => {
    const f = fakeUtil([request(1n, 9), request(5n)]);
    f.instance.onChannelCallback();
    expect(f.sent.map((s) => new DataView(s.bytes.buffer).getUint32(20, true))).toEqual([0x80004005, 0]);
    expect(f.lines).toEqual(['err: hv_utils: Heartbeat request received. Invalid msg type: 9']);
  });

  it('a NEGOTIATE whose versions do not fit is still answered, with no versions and no IC line', () => {
    // 35 zero bytes: type 0, counts 0 and 0, but 28 + 8 bytes are needed.
    const f = fakeUtil([new Uint8Array(35)]);
    f.instance.onChannelCallback();
    expect(f.sent.length).toBe(1);
    expect(f.sent[0]!.bytes.length).toBe(35);
    expect(f.lines).toEqual(['err: hv_vmbus: Invalid icmsg negotiate - icframe_major: 0, icmsg_major: 0']);
  });

  it('a packet shorter than the IC headers is logged and ends the loop unanswered', () => {
    const f = fakeUtil([new Uint8Array(27), request(2n)]);
    f.instance.onChannelCallback();
    expect(f.sent).toEqual([]);
    expect(f.lines).toEqual(['err: hv_utils: Heartbeat request received. Packet length too small: 27']);
    expect(f.left()).toBe(1);
  });

  it('a heartbeat without room for seq_num is logged and ends the loop, leaving the rest queued', () => {
    const short = request(1n, 1, 0).subarray(0, 35);
    const f = fakeUtil([short, request(2n)]);
    f.instance.onChannelCallback();
    expect(f.sent).toEqual([]);
    expect(f.lines).toEqual(['err: hv_utils: Invalid heartbeat msg data. Length too small: 35']);
    expect(f.left()).toBe(1);
  });

  it('never throws on arbitrary packets, and every answer has the length it was received with', () => {
    fuzz(
      'heartbeat.guest-driver',
      fc.property(fc.array(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((s) => request(s))), { maxLength: 6 }), (payloads) => {
        const f = fakeUtil(payloads);
        f.instance.onChannelCallback();
        for (const s of f.sent) {
          expect(s.bytes.length).toBe(payloads[Number(s.id) - 1]!.length);
          expect(s.bytes[25]).toBe(5);
        }
      }),
      RUNS,
    );
  });
});
