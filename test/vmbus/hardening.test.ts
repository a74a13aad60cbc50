// vmbus.md §12, "Hardening rules Linux applies toward an untrusted host": one test per checklist
// item, titled with the item's words. The guest side feeds crafted SynIC slots to a VmbusClient
// over a scripted stand-in for the kernel (or, where the SynIC itself matters, a whole VmbusRig);
// the host side checks that hvkit's server never sends anything a Linux guest would drop.
import { describe, expect, it } from 'vitest';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import type { GuestChannel } from '../../src/vmbus/client/channel.js';
import { VmbusClient, type ClientOptions } from '../../src/vmbus/client/client.js';
import { VmbusError } from '../../src/vmbus/client/errors.js';
import { Requestor } from '../../src/vmbus/client/requestor.js';
import type { ClientTransport } from '../../src/vmbus/client/transport.js';
import { contiguousRing, Ctl } from '../../src/vmbus/ring/memory.js';
import { initRing, RingReader, RingWriter } from '../../src/vmbus/ring/ring.js';
import type { ServerIo } from '../../src/vmbus/server/server.js';
import { ChannelMessageType as T, VmbusVersion } from '../../src/vmbus/wire/constants.js';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';
import { encodeChannelMessage, type KnownMessageType } from '../../src/vmbus/wire/messages.js';
import { PacketDescriptor } from '../../src/vmbus/wire/packets.js';
import { ECHO_CLASS, EchoDriver, instanceId, offerEcho, text, VmbusRig } from './harness.js';

const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
const msg = encodeChannelMessage;

/** A SynIC slot (vmbus.md §1.2): message_type at 0, payload_size at 4, payload at 16. */
function slot(payload: Uint8Array, o: { type?: number; size?: number } = {}): Uint8Array {
  const s = new Uint8Array(256);
  new DataView(s.buffer).setUint32(0, o.type ?? 1, true);
  s[4] = o.size ?? payload.length;
  s.set(payload.subarray(0, 240), 16);
  return s;
}

/** A channel message of `len` bytes: msgtype, then zeros. */
function raw(msgtype: number, len = 240): Uint8Array {
  const b = new Uint8Array(len);
  new DataView(b.buffer).setUint32(0, msgtype >>> 0, true);
  return b;
}

function offer(relid: number, o: { classId?: string; instance?: number; sub?: number; flags?: number; monitorId?: number } = {}): Uint8Array {
  return msg(T.OFFERCHANNEL, {
    offer: {
      if_type: o.classId ?? ECHO_CLASS,
      if_instance: instanceId(o.instance ?? relid),
      reserved1: 0n,
      reserved2: 0n,
      chn_flags: o.flags ?? 0,
      mmio_megabytes: 0,
      u: new Uint8Array(120),
      sub_channel_index: o.sub ?? 0,
      reserved3: 0,
    },
    child_relid: relid,
    monitorid: o.monitorId ?? 0xff,
    _monitor: { monitor_allocated: o.monitorId === undefined ? 0 : 1, reserved: 0 },
    _dedicated: { is_dedicated_interrupt: 1, reserved1: 0 },
    connection_id: (0x2000 + relid) >>> 0,
  });
}

/** A host that says yes to everything, reading the guest's messages at the §2 offsets. */
function goodHost(p: Uint8Array): Uint8Array[] {
  switch (u32(p, 0)) {
    case T.INITIATE_CONTACT:
      return [msg(T.VERSION_RESPONSE, { version_supported: 1, connection_state: 0, padding: 0, msg_conn_id: 1 })];
    case T.GPADL_HEADER:
      return [msg(T.GPADL_CREATED, { child_relid: u32(p, 8), gpadl: u32(p, 12), creation_status: 0 })];
    case T.OPENCHANNEL:
      return [msg(T.OPENCHANNEL_RESULT, { child_relid: u32(p, 8), openid: u32(p, 12), status: 0 })];
    case T.GPADL_TEARDOWN:
      return [msg(T.GPADL_TORNDOWN, { gpadl: u32(p, 12) })];
    case T.MODIFYCHANNEL:
      return [msg(T.MODIFYCHANNEL_RESPONSE, { child_relid: u32(p, 8), status: 0 })];
    case T.UNLOAD:
      return [msg(T.UNLOAD_RESPONSE, {})];
  }
  return [];
}

/**
 * The guest kernel as far as one VmbusClient can tell: posts are recorded and answered by
 * `host`, whose replies reach the client (as slots) only while it waits, one at a time.
 */
class Guest implements ClientTransport {
  readonly memory = new GuestMemory({ size: 1 << 20 });
  onlineCpus = () => [0, 1];
  readonly posted: Uint8Array[] = [];
  readonly logs: string[] = [];
  readonly client: VmbusClient;
  host: (payload: Uint8Array) => Uint8Array[] = goodHost;
  /** Where the last allocPages put its block (the rings of the last open). */
  lastAlloc = 0;
  private readonly inbox: Uint8Array[] = [];
  private next = 0x10000;

  constructor(options: Partial<ClientOptions> = {}) {
    this.client = new VmbusClient(this, options);
  }

  vpIndex(cpu: number): number {
    return cpu;
  }
  postMessage(_conn: number, payload: Uint8Array): number {
    this.posted.push(payload.slice());
    for (const r of this.host(payload)) this.inbox.push(r.length === 256 ? r : slot(r));
    return 0;
  }
  signalEvent(): number {
    return 0;
  }
  allocPages(bytes: number): number {
    this.lastAlloc = this.next;
    this.next += bytes;
    return this.lastAlloc;
  }
  freePages(): void {}
  allocHvPage(): number {
    return this.allocPages(4096);
  }
  freeHvPage(): void {}
  waitUntil(done: () => boolean): boolean {
    while (!done() && this.inbox.length > 0) this.client.onMessage(this.inbox.shift()!);
    this.inbox.length = 0;
    return done();
  }
  log(level: string, message: string): void {
    this.logs.push(`${level}: ${message}`);
  }

  /** A host message arriving now, outside any wait. */
  deliver(payload: Uint8Array, o?: { type?: number; size?: number }): void {
    this.client.onMessage(slot(payload, o));
  }
  /** An offer, processed by the work queue: the channel. */
  offer(relid: number, o?: Parameters<typeof offer>[1]): GuestChannel {
    this.deliver(offer(relid, o));
    this.client.runWork();
    return this.client.channel(relid)!;
  }
  open(ch: GuestChannel, onEvent: (c: GuestChannel) => void = () => undefined): GuestChannel {
    ch.open({ sendRingBytes: 16384, recvRingBytes: 16384, requestorSize: 4, onEvent });
    return ch;
  }
  types(from = 0): number[] {
    return this.posted.slice(from).map((p) => u32(p, 0));
  }
}

/** The errno a call fails with, or 'ok'. */
function outcome(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (e instanceof VmbusError) return e.code;
    throw e;
  }
}

// --- Control messages ---------------------------------------------------------------------------

describe('§12 control messages (vmbus_on_msg_dpc)', () => {
  it('"Copy the 256-byte SynIC slot to private memory before parsing …; parse only the copy."', () => {
    const rig = new VmbusRig().boot();
    const slotGpa = rig.m.kernel.cpus[0]!.synic!.messagePage + 2 * 256;
    const client = rig.client;
    const inner = client.onMessage.bind(client);
    const seen: Uint8Array[] = [];
    client.onMessage = (s) => {
      seen.push(s);
      inner(s);
      // The host rewrites the live slot's relid (OFFERCHANNEL offset 184) once the guest has
      // looked: the offer, handled later in the work queue, must not notice.
      rig.m.partition.memory.write32(slotGpa + 16 + 184, 77);
    };
    offerEcho(rig, 1);
    rig.run();
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s.length === 256 && s.buffer !== rig.m.partition.memory.buffer)).toBe(true);
    expect(client.channel(1)?.offer.instanceId).toBe(instanceId(1));
    expect(client.channel(77)).toBeUndefined();
  });

  it('"Slot type HVMSG_NONE → nothing to do."', () => {
    const g = new Guest();
    g.deliver(offer(1), { type: 0 });
    expect([g.client.messages, g.client.dropped, g.client.pendingWork]).toEqual([0, 0, 0]);
  });

  it('"msgtype ≥ 25 (CHANNELMSG_COUNT) → drop (with EOM)."', () => {
    const g = new Guest();
    for (const t of [25, 26, 29, 0x80000001, 0xffffffff]) {
      const m = offer(1);
      new DataView(m.buffer).setUint32(0, t, true);
      g.deliver(m);
    }
    expect([g.client.messages, g.client.dropped, g.client.pendingWork]).toEqual([5, 5, 0]);
    // The EOM half: see "Always release the slot".
  });

  it('"payload_size > 240 → drop."', () => {
    const g = new Guest();
    for (const size of [241, 255]) {
      g.deliver(offer(1), { size });
      g.deliver(msg(T.ALLOFFERS_DELIVERED, {}), { size });
    }
    expect([g.client.dropped, g.client.pendingWork, g.client.allOffersDelivered]).toEqual([4, 0, false]);
    g.deliver(msg(T.ALLOFFERS_DELIVERED, {}), { size: 240 });
    expect(g.client.allOffersDelivered).toBe(true);
  });

  it('"Message types the guest does not handle (every G→H type, types 18–20, 23) → drop."', () => {
    const g = new Guest();
    g.open(g.offer(1));
    const from = g.posted.length;
    // 0 (INVALID), the guest→host types of §2.2, and the OpenVMM-only 18–20 and 23.
    const unhandled = [0, 3, 5, 7, 8, 9, 11, 13, 14, 16, 18, 19, 20, 21, 22, 23];
    for (const t of unhandled) {
      const m = raw(t);
      new DataView(m.buffer).setUint32(8, 1, true); // relid 1 where a relid would be
      g.deliver(m);
    }
    expect(g.client.dropped).toBe(unhandled.length);
    expect(g.client.pendingWork).toBe(0);
    expect(g.posted.length).toBe(from);
    expect(g.client.channel(1)?.state).toBe('opened');
  });

  it('"payload_size < the type\'s minimum (§2.2) → drop."', () => {
    // Linux's minimum payload per handled type (§2.2), each sent complete but with a
    // payload_size one short of it, then exactly at it.
    const minimum: [KnownMessageType, number, Uint8Array][] = [
      [T.OFFERCHANNEL, 196, offer(9)],
      [T.RESCIND_CHANNELOFFER, 12, msg(T.RESCIND_CHANNELOFFER, { child_relid: 1 })],
      [T.OPENCHANNEL_RESULT, 20, msg(T.OPENCHANNEL_RESULT, { child_relid: 1, openid: 1, status: 0 })],
      [T.GPADL_CREATED, 20, msg(T.GPADL_CREATED, { child_relid: 1, gpadl: 1, creation_status: 0 })],
      [T.GPADL_TORNDOWN, 12, msg(T.GPADL_TORNDOWN, { gpadl: 1 })],
      [T.VERSION_RESPONSE, 16, msg(T.VERSION_RESPONSE, { version_supported: 1, connection_state: 0, padding: 0, msg_conn_id: 1 })],
      [T.MODIFYCHANNEL_RESPONSE, 16, msg(T.MODIFYCHANNEL_RESPONSE, { child_relid: 1, status: 0 })],
    ];
    for (const [type, min, m] of minimum) {
      const g = new Guest();
      g.offer(1);
      g.deliver(m, { size: min - 1 });
      expect([type, g.client.dropped, g.client.pendingWork, g.client.channel(1)!.rescinded]).toEqual([type, 1, 0, false]);
      g.deliver(m, { size: min });
      expect([type, g.client.dropped]).toEqual([type, 1]);
    }
    // ALLOFFERS_DELIVERED and UNLOAD_RESPONSE have a minimum of 0.
    const g = new Guest();
    g.deliver(msg(T.ALLOFFERS_DELIVERED, {}), { size: 0 });
    g.deliver(msg(T.UNLOAD_RESPONSE, {}), { size: 0 });
    expect([g.client.dropped, g.client.allOffersDelivered, g.client.unloaded]).toEqual([0, true, true]);
  });

  it('"Blocking handlers get a private copy of exactly payload_size bytes."', () => {
    const g = new Guest();
    const s = slot(offer(3, { instance: 0x33 }), { size: 196 });
    s.fill(0xee, 16 + 196); // whatever lies after payload_size is not part of the message
    g.client.onMessage(s);
    // The offer waits in the work queue; the slot it came from is reused meanwhile.
    s.fill(0);
    g.client.runWork();
    const ch = g.client.channel(3);
    expect(ch?.offer).toMatchObject({ relid: 3, instanceId: instanceId(0x33), connectionId: 0x2003, classId: ECHO_CLASS });
  });

  it('"Always release the slot (swap to NONE, EOM if msg_pending)": after bad messages the next one is still delivered', () => {
    const rig = new VmbusRig().boot();
    const synic = rig.m.partition.vps[0]!.synic;
    const post = (payload: Uint8Array) => synic.enqueue(2, { type: 1, payload, internal: true });
    const droppedBefore = rig.client.dropped;
    post(raw(30, 16)); // msgtype ≥ 25
    post(raw(T.RESCIND_CHANNELOFFER, 8)); // shorter than its 12-byte minimum
    post(raw(T.REQUESTOFFERS, 8)); // a guest→host type
    post(offer(9, { instance: 9 }));
    rig.run();
    expect(rig.client.dropped - droppedBefore).toBe(3);
    expect(rig.client.channel(9)?.offer.instanceId).toBe(instanceId(9));
    expect(rig.m.partition.memory.read32(rig.m.kernel.cpus[0]!.synic!.messagePage + 2 * 256)).toBe(0);
  });

  it('non-blocking handlers read nothing beyond payload_size either: a 16-byte VERSION_RESPONSE grants no 6.0 features', () => {
    const g = new Guest({ versions: [VmbusVersion.WIN10_V6_0], featureFlags: 0x10 });
    g.host = (p) => {
      if (u32(p, 0) !== T.INITIATE_CONTACT) return goodHost(p);
      const s = slot(goodHost(p)[0]!, { size: 16 });
      s.fill(0xff, 16 + 16, 16 + 20); // stale bytes after the 16-byte message
      return [s];
    };
    g.client.connect();
    expect(g.client.version).toBe(VmbusVersion.WIN10_V6_0);
    expect(g.client.features).toBe(0);
  });
});

// --- Connection and offers ------------------------------------------------------------------------

describe('§12 connection and offers', () => {
  it('"Isolated guest: refuse negotiated versions < 5.2."', () => {
    // A host that accepts nothing newer than 5.1.
    const g = new Guest({ isolated: true, versions: [VmbusVersion.WIN10_V5_3, VmbusVersion.WIN10_V5_2, VmbusVersion.WIN10_V5_1, VmbusVersion.WIN10_V5] });
    g.host = (p) => (u32(p, 0) === T.INITIATE_CONTACT ? [msg(T.VERSION_RESPONSE, { version_supported: u32(p, 8) <= 0x50001 ? 1 : 0, connection_state: 0, padding: 0, msg_conn_id: 1 })] : []);
    expect(outcome(() => g.client.connect())).toBe('EINVAL');
    expect(g.client.status).toBe('disconnected');
    // The same guest against a 5.2 host connects.
    const ok = new Guest({ isolated: true, versions: [VmbusVersion.WIN10_V5_2] });
    ok.client.connect();
    expect(ok.client.status).toBe('connected');
  });

  it('"Isolated guest: accept only allow-listed device classes and hv_sock (§3.4, §10); ignore AVMA/RDV/IMC everywhere."', () => {
    const HV_SOCK = 0x2000; // TLNPI_PROVIDER_OFFER
    const offers = (g: Guest) => {
      g.deliver(offer(1, { classId: DeviceClass.SCSI }));
      g.deliver(offer(2, { classId: ECHO_CLASS }));
      g.deliver(offer(3, { classId: 'c0ffee00-0000-4000-8000-000000000003', flags: HV_SOCK }));
      g.deliver(offer(4, { classId: DeviceClass.AVMA1 }));
      g.deliver(offer(5, { classId: DeviceClass.RDV }));
      g.deliver(offer(6, { classId: DeviceClass.IMC }));
      g.client.runWork();
      return g.client.channels.map((c) => c.relid);
    };
    const isolated = new Guest({ isolated: true });
    expect(offers(isolated)).toEqual([1, 3]);
    const plain = new Guest();
    expect(offers(plain)).toEqual([1, 2, 3]);
    // Ignored offers get no RELID_RELEASED (§3.4).
    expect([...isolated.types(), ...plain.types()]).not.toContain(T.RELID_RELEASED);
  });

  it('"Confidential flags must be consistent and supported (§3.4)."', () => {
    const g = new Guest({ versions: [VmbusVersion.WIN10_V6_0] });
    g.client.connect();
    expect(g.client.version).toBe(VmbusVersion.WIN10_V6_0);
    g.offer(1);
    g.offer(2, { flags: 0x4 }); // external memory without ring buffer: inconsistent
    g.offer(3, { flags: 0x2 | 0x4 }); // consistent, but this connection is not confidential
    expect(g.client.channels.map((c) => c.relid)).toEqual([1]);
  });

  it('"Relid must be < 2048 to be mapped"', () => {
    const g = new Guest();
    g.offer(2047, { instance: 1 });
    g.offer(2048, { instance: 2 });
    g.offer(0xffffffff, { instance: 3 });
    expect(g.client.channel(2047)?.relid).toBe(2047);
    expect(g.client.channel(2048)).toBeUndefined();
    expect(g.client.channel(0xffffffff)).toBeUndefined();
    // Nothing can reach an unmapped channel, not even a rescind.
    g.deliver(msg(T.RESCIND_CHANNELOFFER, { child_relid: 2048 }));
    g.client.runWork();
    expect(g.types()).not.toContain(T.RELID_RELEASED);
  });

  it('"relid 0 in event flags is skipped"', () => {
    const g = new Guest();
    const calls: number[] = [];
    // A host that (wrongly) offers relid 0: the guest maps it, but never runs it from an event.
    g.open(g.offer(0, { instance: 10 }), (c) => calls.push(c.relid));
    g.open(g.offer(1), (c) => calls.push(c.relid));
    const flags = new Uint32Array(64);
    flags[0] = 0b11;
    g.client.onEvents(flags);
    expect(calls).toEqual([1]);
    expect(flags[0]).toBe(0); // bit 0 is still taken (test-and-clear), then skipped
  });

  it('"A matching (if_type, if_instance) with sub_channel_index = 0 is rejected as a bogus sub-channel."', () => {
    const g = new Guest();
    const primary = g.offer(1, { instance: 7 });
    expect(g.offer(2, { instance: 7, sub: 0 })).toBeUndefined();
    expect(g.offer(3, { instance: 7, sub: 1 })?.primary).toBe(primary);
    expect(g.client.channels.map((c) => c.relid)).toEqual([1]);
    expect(primary.subchannels.map((c) => c.relid)).toEqual([3]);
  });

  it('"Rescind: unknown relid → ignore"', () => {
    const g = new Guest();
    g.offer(1);
    g.deliver(msg(T.RESCIND_CHANNELOFFER, { child_relid: 99 }));
    g.client.runWork();
    expect(g.posted).toEqual([]);
    expect(g.client.channel(1)?.rescinded).toBe(false);
  });

  it('"second rescind of the same channel → ignore"', () => {
    const g = new Guest();
    g.offer(1);
    g.deliver(msg(T.RESCIND_CHANNELOFFER, { child_relid: 1 }));
    g.deliver(msg(T.RESCIND_CHANNELOFFER, { child_relid: 1 }));
    g.client.runWork();
    g.deliver(msg(T.RESCIND_CHANNELOFFER, { child_relid: 1 }));
    g.client.runWork();
    expect(g.posted.map((p) => [u32(p, 0), u32(p, 8)])).toEqual([[T.RELID_RELEASED, 1]]);
  });

  it('"wait for in-flight offer processing first"', () => {
    const g = new Guest();
    // Both arrive before the work queue runs: the offer is handled, then the rescind removes it.
    g.deliver(offer(1));
    g.deliver(msg(T.RESCIND_CHANNELOFFER, { child_relid: 1 }));
    expect(g.client.channels).toEqual([]);
    g.client.runWork();
    expect(g.client.channels).toEqual([]);
    expect(g.client.channel(1)).toBeUndefined();
    expect(g.posted.map((p) => [u32(p, 0), u32(p, 8)])).toEqual([[T.RELID_RELEASED, 1]]);
  });

  describe('"Responses are matched to outstanding requests by content … unmatched responses are ignored."', () => {
    it('open result by (relid, openid)', () => {
      const g = new Guest();
      const ch = g.offer(1);
      g.offer(2);
      const result = (relid: number, openid: number) => msg(T.OPENCHANNEL_RESULT, { child_relid: relid, openid, status: 0 });
      g.host = (p) => (u32(p, 0) === T.OPENCHANNEL ? [result(1, 2), result(2, 1)] : goodHost(p));
      expect(outcome(() => g.open(ch))).toBe('ETIMEDOUT');
      expect(ch.state).toBe('open');
      g.host = (p) => (u32(p, 0) === T.OPENCHANNEL ? [result(1, 2), result(1, 1)] : goodHost(p));
      expect(outcome(() => g.open(ch))).toBe('ok');
      expect(ch.state).toBe('opened');
    });

    it('GPADL created by (relid, handle)', () => {
      const g = new Guest();
      const ch = g.offer(1);
      g.offer(2);
      const created = (relid: number, gpadl: number) => msg(T.GPADL_CREATED, { child_relid: relid, gpadl, creation_status: 0 });
      g.host = (p) => (u32(p, 0) === T.GPADL_HEADER ? [created(1, u32(p, 12) + 1), created(2, u32(p, 12))] : goodHost(p));
      expect(outcome(() => ch.establishGpadl(0x80000, 8192))).toBe('ETIMEDOUT');
      g.host = (p) => (u32(p, 0) === T.GPADL_HEADER ? [created(2, u32(p, 12)), created(1, u32(p, 12))] : goodHost(p));
      expect(ch.establishGpadl(0x80000, 8192)).toBe(0xe1e11); // the second handle Linux hands out
    });

    it('torndown by handle', () => {
      const g = new Guest();
      const ch = g.offer(1);
      const handle = ch.establishGpadl(0x80000, 8192);
      g.host = (p) => (u32(p, 0) === T.GPADL_TEARDOWN ? [msg(T.GPADL_TORNDOWN, { gpadl: handle + 1 })] : goodHost(p));
      expect(outcome(() => ch.teardownGpadl(handle))).toBe('ETIMEDOUT');
      g.host = goodHost;
      expect(outcome(() => ch.teardownGpadl(handle))).toBe('ok');
    });

    it('modify response by relid', () => {
      const g = new Guest({ versions: [VmbusVersion.WIN10_V5_3] });
      g.client.connect();
      const ch = g.open(g.offer(1));
      g.host = (p) => (u32(p, 0) === T.MODIFYCHANNEL ? [msg(T.MODIFYCHANNEL_RESPONSE, { child_relid: 2, status: 0 })] : goodHost(p));
      expect(outcome(() => ch.setTargetCpu(1))).toBe('ETIMEDOUT');
      expect(ch.targetCpu).toBe(0);
      g.host = goodHost;
      ch.setTargetCpu(1);
      expect(ch.targetCpu).toBe(1);
    });

    it('"An unsolicited UNLOAD_RESPONSE merely completes the (statically initialised) unload waiter, which is harmless."', () => {
      const g = new Guest({ versions: [VmbusVersion.WIN10_V5_3] });
      g.client.connect();
      const ch = g.open(g.offer(1));
      const from = g.posted.length;
      g.deliver(msg(T.UNLOAD_RESPONSE, {}));
      expect([g.client.status, ch.state, g.posted.length]).toEqual(['connected', 'opened', from]);
      // A later unload still waits for its own answer: the stale one does not count.
      g.host = () => [];
      expect(outcome(() => g.client.unload())).toBe('ETIMEDOUT');
    });
  });

  it('"Event scan: channel must exist, not be rescinded, and have a callback."', () => {
    const g = new Guest();
    const calls: number[] = [];
    const cb = (c: GuestChannel) => calls.push(c.relid);
    g.open(g.offer(1), cb); // fine
    g.offer(2); // offered, never opened: no callback
    g.open(g.offer(4), cb); // opened, then rescinded
    g.deliver(msg(T.RESCIND_CHANNELOFFER, { child_relid: 4 }));
    const flags = new Uint32Array(64);
    flags[0] = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4); // relid 3: unknown
    flags[63] = 1 << 31; // relid 2047: unknown
    g.client.onEvents(flags);
    expect(calls).toEqual([1]);
    expect([...flags].every((w) => w === 0)).toBe(true);
  });
});

// --- Ring buffers (Linux's hardened reader, a hostile writer) -----------------------------------

describe('§12 ring buffers (hv_pkt_iter_first and friends)', () => {
  const MAX = 256;
  /** A 4-page ring in guest memory: the guest reads it Linux's way, the "host" writes it. */
  function ring() {
    const mem = new GuestMemory({ size: 16 * 4096 });
    const r = contiguousRing(mem, 0x4000, 4 * 4096);
    initRing(r);
    const dataGpa = 0x4000 + 4096;
    return { mem, r, dataGpa, writer: new RingWriter(r), reader: new RingReader(r, { kind: 'linux', maxPacketSize: MAX }) };
  }
  const packet = (n: number, fill: number, len8?: number, offset8 = 2) => {
    const d = PacketDescriptor.encode({ type: 6, offset8, len8: len8 ?? Math.ceil((16 + n) / 8), flags: 0, trans_id: BigInt(fill) });
    return [d, new Uint8Array(n).fill(fill)];
  };

  it('"Read write_index once, with acquire ordering; never trust it twice."', () => {
    const { r, writer, reader } = ring();
    writer.write(packet(8, 1));
    writer.write(packet(8, 2));
    const batch = reader.batch();
    // The writer adds a packet, then publishes a nonsense index: the batch goes on with the
    // index it loaded.
    writer.write(packet(8, 3));
    Atomics.store(r.control, Ctl.WRITE_INDEX, 0xfffffff8);
    const got: number[] = [];
    for (let p = batch.next(); p; p = batch.next()) got.push(p.bytes[16]!);
    expect(got).toEqual([1, 2]);
  });

  it('"Require ≥ 16 readable bytes before reading a descriptor."', () => {
    const { mem, r, dataGpa, reader } = ring();
    mem.write(dataGpa, Uint8Array.from([6, 0, 2, 0, 1, 0, 0, 0])); // half a descriptor
    Atomics.store(r.control, Ctl.WRITE_INDEX, 8);
    const b = reader.batch();
    expect(b.next()).toBeUndefined();
    expect(b.commit().bytes).toBe(0);
    expect(Atomics.load(r.control, Ctl.READ_INDEX)).toBe(0);
  });

  it('"Read len8/offset8 once; clamp length to [16, min(readable, max_pkt_size)] and offset to [16, length]"', () => {
    // len8 = 1 (8 bytes, below 16) with 40 readable: L = A = 40; offset8 = 0 → O = 16.
    const a = ring();
    a.writer.write(packet(16, 9, 1, 0));
    const p = a.reader.batch().next()!;
    expect([p.bytes.length, p.offset]).toEqual([40, 16]);
    // len8 = 0xffff with plenty readable: L = max_pkt_size; offset8 = 1 (8 bytes) → O = 16.
    const b = ring();
    b.writer.write(packet(1000, 9, 0xffff, 1));
    const q = b.reader.batch().next()!;
    expect([q.bytes.length, q.offset]).toEqual([MAX, 16]);
  });

  it('"Copy the packet into a private buffer of max_pkt_size bytes and rewrite the copy\'s len8/offset8 to the clamped values; consumers use only the copy."', () => {
    const { mem, dataGpa, writer, reader } = ring();
    writer.write(packet(24, 5, 0xffff, 0));
    const p = reader.batch().next()!;
    // The copy says what the reader acted on: len8 = 48/8 (40 bytes + the 8-byte trailer
    // readable), offset8 = 2.
    const dv = new DataView(p.bytes.buffer, p.bytes.byteOffset);
    expect([dv.getUint16(4, true), dv.getUint16(2, true)]).toEqual([48 / 8, 2]);
    const before = p.bytes.slice();
    mem.fill(dataGpa, 4096, 0xaa); // the writer scribbles over the ring afterwards
    expect(p.bytes).toEqual(before);
  });

  it('"Writes: the transaction ID is written with a single store after the data is in the ring, and never read back from shared memory."', () => {
    const g = new Guest();
    const ch = g.open(g.offer(1));
    const transIdGpa = g.lastAlloc + 4096 + 8; // outbound ring, first packet, descriptor offset 8
    const id = ch.sendRequest(text('req'), 'ctx')!;
    expect(id).toBe(1n);
    expect(g.memory.read64(transIdGpa)).toBe(1n);
    // The host rewrites the id in the ring; the guest goes by the id it allocated.
    g.memory.write64(transIdGpa, 3n);
    expect(ch.completeRequest(3n)).toBeUndefined();
    expect(ch.completeRequest(1n)).toBe('ctx');
  });

  it('"Completion IDs: reject 0, reject IDs > requestor size or not outstanding (§8.6)."', () => {
    const rq = new Requestor<string>(4);
    const id = rq.allocate('a')!;
    expect(id).toBe(1n);
    for (const bad of [0n, 5n, 2n, 4n, 1n << 63n, (1n << 64n) - 1n]) expect(rq.take(bad)).toBeUndefined();
    expect(rq.take(id)).toBe('a');
    expect(rq.take(id)).toBeUndefined(); // no longer outstanding
    // takeOf, the id as its two 32-bit halves, follows the same rules.
    const id2 = rq.allocate('b')!;
    for (const bad of [0n, 5n, 3n, 1n << 32n, (1n << 32n) | id2, (1n << 64n) - 1n]) expect(rq.takeOf(Number(bad & 0xffffffffn), Number(bad >> 32n))).toBeUndefined();
    expect(rq.takeOf(Number(id2), 0)).toBe('b');
    expect(rq.takeOf(Number(id2), 0)).toBeUndefined();
    // The same rules through a channel.
    const g = new Guest();
    const ch = g.open(g.offer(1));
    const rid = ch.sendRequest(text('x'), 'ctx')!;
    for (const bad of [0n, 5n, rid + 1n]) expect(ch.completeRequest(bad)).toBeUndefined();
    expect(ch.completeRequest(rid)).toBe('ctx');
    const rid2 = ch.sendRequest(text('y'), 'ctx2')!;
    expect(ch.completeRequestOf(Number(rid2), 1)).toBeUndefined();
    expect(ch.completeRequestOf(Number(rid2), 0)).toBe('ctx2');
  });

  describe('"Not validated by Linux (gaps to be aware of)" — hvkit checks or tolerates them', () => {
    it("the peer's read_index/write_index range and alignment: the channel is marked corrupt and left alone", () => {
      const g = new Guest();
      const calls: number[] = [];
      const ch = g.open(g.offer(1), () => calls.push(1));
      const inbound = contiguousRing(g.memory, g.lastAlloc + 16384, 16384);
      Atomics.store(inbound.control, Ctl.WRITE_INDEX, 12); // not 8-byte aligned
      expect(ch.receive(() => calls.push(2))).toBe(0);
      expect(ch.corrupt).toMatch(/write_index/);
      expect(outcome(() => ch.sendInband(text('x')))).toBe('EIO');
      expect(g.logs.some((l) => l.startsWith('err:') && l.includes('write_index'))).toBe(true);
    });

    it('the trailer contents: never interpreted', () => {
      const g = new Guest();
      const ch = g.open(g.offer(1));
      const inbound = contiguousRing(g.memory, g.lastAlloc + 16384, 16384);
      new RingWriter(inbound).write(packet(8, 7));
      g.memory.write64(g.lastAlloc + 16384 + 4096 + 24, 0xdeadbeefcafef00dn); // the trailer
      const got: bigint[] = [];
      expect(ch.receive((p) => got.push(p.transId))).toBe(1);
      expect(got).toEqual([7n]);
      expect(ch.corrupt).toBeUndefined();
    });

    it("the offer's monitorid: even 255 makes the guest write only inside its monitor page", () => {
      const g = new Guest();
      const ch = g.offer(1, { monitorId: 255 });
      const before = g.memory.bytes.slice();
      ch.signal();
      const changed: number[] = [];
      g.memory.bytes.forEach((b, i) => b !== before[i] && changed.push(i));
      const monitor = g.client.monitorPage;
      const send = g.client.sendInterruptPage;
      expect(changed.length).toBeGreaterThan(0);
      for (const at of changed) expect((at >= monitor && at < monitor + 4096) || (at >= send && at < send + 2048)).toBe(true);
    });
  });
});

// --- The host side ------------------------------------------------------------------------------

describe('§12 from the host side: "a host implementation should make sure it never trips them"', () => {
  // Linux's handled host→guest types and their minimum payload (§2.2).
  const LINUX_MIN: Record<number, number> = { 1: 196, 2: 12, 4: 0, 6: 20, 10: 20, 12: 12, 15: 16, 17: 0, 24: 16 };

  it('a whole session: every message ≤ 240 bytes, of a type Linux handles and at least its minimum; offers with relid < 2048, dedicated interrupts and one connection id per channel', () => {
    const rig = new VmbusRig({ release: 'ws2022' });
    const io = rig.server.io as { post: ServerIo['post'] };
    const inner = io.post.bind(io);
    const sent: { vp: number; sint: number; message: Uint8Array }[] = [];
    io.post = (vp, sint, message) => {
      sent.push({ vp, sint, message: message.slice() });
      inner(vp, sint, message);
    };
    offerEcho(rig, 1, { monitor: true });
    const { ch: second } = offerEcho(rig, 2);
    offerEcho(rig, 3);
    rig.boot();
    const drv = new EchoDriver();
    rig.client.registerDriver(drv);
    offerEcho(rig, 1, { subChannelIndex: 1 });
    rig.run();
    for (const ch of drv.channels) {
      ch.sendInband(text(`hello ${ch.relid}`));
      ch.sendRequest(text('ping'), ch.relid);
    }
    rig.run();
    const [first, , third] = drv.channels;
    first!.setTargetCpu(1);
    const buffer = rig.m.kernel.mm.allocContiguous(8 * 4096);
    first!.teardownGpadl(first!.establishGpadl(buffer, 8 * 4096));
    third!.close();
    rig.server.revoke(second);
    rig.run();
    offerEcho(rig, 4); // takes a released relid
    rig.run();
    rig.client.unload();

    const types = new Set(sent.map((s) => u32(s.message, 0)));
    // The session covered every kind of answer the host gives.
    for (const t of [1, 2, 4, 6, 10, 12, 15, 17, 24]) expect(types, `type ${t}`).toContain(t);
    for (const { vp, sint, message } of sent) {
      const t = u32(message, 0);
      expect(message.length).toBeLessThanOrEqual(240);
      expect(LINUX_MIN[t], `type ${t} is one Linux handles`).toBeDefined();
      expect(message.length).toBeGreaterThanOrEqual(LINUX_MIN[t]!);
      expect([vp, sint]).toEqual([0, 2]);
    }
    const connIdOf = new Map<number, number>();
    for (const { message } of sent.filter((s) => u32(s.message, 0) === T.OFFERCHANNEL)) {
      const relid = u32(message, 184);
      expect(relid).toBeGreaterThanOrEqual(1);
      expect(relid).toBeLessThan(2048);
      expect(message[190]! & 1).toBe(1); // is_dedicated_interrupt
      const conn = u32(message, 192);
      expect(connIdOf.get(relid) ?? conn).toBe(conn);
      connIdOf.set(relid, conn);
    }
    expect([...connIdOf.keys()].sort()).toEqual([1, 2, 3, 4]); // relid 2 reused after RELID_RELEASED
    expect(new Set(connIdOf.values()).size).toBe(connIdOf.size);
    expect(rig.server.violations.items).toEqual([]);
  });
});

// Out of scope here, for later issues (they need code hvkit does not have yet):
// - Integration components: "Every IC packet: length ≥ 28", "NEGOTIATE: …", the per-IC minimum
//   sizes, "Unknown icmsgtype …", the KVP and VSS items — no IC drivers exist yet (devices layer).
// - "hv_sock: packet ≥ 24 bytes; data_size …; the offer's if_type must match the hv_sock
//   template" — no hv_sock transport yet.
// - "netvsc transfer-page packets: …" — no netvsc yet.
// - "Memory shared with the host … is explicitly made host-visible in isolated guests and made
//   private again after teardown" — isolated-memory visibility is not modelled by the client.
// - "vmbus_recvpacket: payload larger than the caller's buffer → error, packet left in place" —
//   GuestChannel has no caller-buffer receive (receive() hands each private copy to a callback),
//   so there is nothing to check until such an API exists.
// - "Require ≥ 16 readable bytes" and the clamping items are also fuzzed in ring.test.ts.
