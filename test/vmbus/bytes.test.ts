// Byte-exact encodings (vmbus.md §13 worked examples, §2.23 GPADL split, §5.3 ring GPADLs).
// Every expected byte is typed in from the spec text; nothing here is computed by the code under
// test. The in-band "hello" packet of §13 is already checked in ring.test.ts.
import { describe, expect, it } from 'vitest';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { VmbusClient } from '../../src/vmbus/client/client.js';
import type { ClientTransport } from '../../src/vmbus/client/transport.js';
import { bufferPfns, gpadlMessages, ringPfns } from '../../src/vmbus/gpadl.js';
import { VmbusServer, type ServerIo } from '../../src/vmbus/server/server.js';
import { ChannelMessageType as T, VmbusVersion } from '../../src/vmbus/wire/constants.js';
import { encodeChannelMessage } from '../../src/vmbus/wire/messages.js';

/** "0e 00 ..." → bytes (whitespace ignored). */
const hex = (s: string): Uint8Array => Uint8Array.from(s.trim().split(/\s+/), (b) => parseInt(b, 16));
const dump = (b: Uint8Array): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');
const u16 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint16(at, true);
const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
const u64 = (b: Uint8Array, at: number) => Number(new DataView(b.buffer, b.byteOffset).getBigUint64(at, true));

// §13, verbatim.
const INITIATE_CONTACT_5_3 = hex(`
  0e 00 00 00 00 00 00 00 03 00 05 00 00 00 00 00
  02 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00
  00 10 00 00 01 00 00 00`);
const VERSION_RESPONSE_OK = hex('0f 00 00 00 00 00 00 00 01 00 00 00 01 00 00 00');
const GPADL_HEADER_FIRST_48 = hex(`
  08 00 00 00 00 00 00 00 05 00 00 00 10 1e 0e 00
  48 00 01 00 00 80 00 00 00 00 00 00 40 23 01 00
  00 00 00 00 41 23 01 00 00 00 00 00 42 23 01 00`);
const OPENCHANNEL_FIRST_32 = hex(`
  05 00 00 00 00 00 00 00 05 00 00 00 05 00 00 00
  10 1e 0e 00 00 00 00 00 04 00 00 00 00 00 00 00`);

/** A slot as the hypervisor writes it (vmbus.md §1.2): type 1, payload_size, payload at 16. */
function slot(payload: Uint8Array): Uint8Array {
  const s = new Uint8Array(256);
  s[0] = 1;
  s[4] = payload.length;
  s.set(payload, 16);
  return s;
}

/** Just enough of a guest kernel for the client to post: the host's replies are scripted. */
function guest(hvPages: number[], reply: (payload: Uint8Array) => Uint8Array | undefined) {
  const posted: { conn: number; payload: Uint8Array }[] = [];
  const inbox: Uint8Array[] = [];
  let next = 0x10000;
  const transport: ClientTransport = {
    memory: new GuestMemory({ size: 1 << 20 }),
    onlineCpus: () => [0],
    vpIndex: (cpu) => cpu,
    postMessage(conn, payload) {
      posted.push({ conn, payload: payload.slice() });
      const r = reply(payload);
      if (r) inbox.push(slot(r));
      return 0;
    },
    signalEvent: () => 0,
    allocPages: (bytes) => ((next += bytes), next - bytes),
    freePages: () => undefined,
    allocHvPage: () => hvPages.shift() ?? ((next += 4096), next - 4096),
    freeHvPage: () => undefined,
    waitUntil(done) {
      while (!done() && inbox.length > 0) client.onMessage(inbox.shift()!);
      return done();
    },
    log: () => undefined,
  };
  const client = new VmbusClient(transport, { versions: [VmbusVersion.WIN10_V5_3] });
  return { client, posted };
}

describe('§13 worked examples', () => {
  it('INITIATE_CONTACT for 5.3: the encoder and the guest client both produce the spec bytes, on connection 4', () => {
    const encoded = encodeChannelMessage(T.INITIATE_CONTACT, {
      vmbus_version_requested: 0x00050003,
      target_vcpu: 0,
      msg_sint: 2,
      msg_vtl: 0,
      reserved: 0,
      feature_flags: 0,
      monitor_page1: 0x1_0000_0000n,
      monitor_page2: 0x1_0000_1000n,
    });
    expect(dump(encoded)).toBe(dump(INITIATE_CONTACT_5_3));
    // The client allocates the interrupt page, then the two monitor pages.
    const g = guest([0x2000, 0x1_0000_0000, 0x1_0000_1000], () => VERSION_RESPONSE_OK);
    g.client.connect();
    expect(g.posted).toHaveLength(1);
    expect(g.posted[0]!.conn).toBe(4);
    expect(dump(g.posted[0]!.payload)).toBe(dump(INITIATE_CONTACT_5_3));
    // msg_conn_id 1 from the response is used from then on (§3.3 step 4).
    expect(g.client.msgConnId).toBe(1);
  });

  it('VERSION_RESPONSE accepting with msg_conn_id 1: the encoder and the host server produce the spec bytes', () => {
    const encoded = encodeChannelMessage(T.VERSION_RESPONSE, { version_supported: 1, connection_state: 0, padding: 0, msg_conn_id: 1 });
    expect(dump(encoded)).toBe(dump(VERSION_RESPONSE_OK));
    const posts: Uint8Array[] = [];
    const io: ServerIo = {
      memory: new GuestMemory({ size: 1 << 20 }),
      vpCount: 1,
      post: (_vp, _sint, m) => posts.push(m),
      listen: () => undefined,
      signalGuest: () => undefined,
      watchMonitor: () => undefined,
      defer: (f) => f(),
      fault: (_where, e) => {
        throw e;
      },
    };
    const server = new VmbusServer(io, { maxVersion: VmbusVersion.WIN10_V5_3 });
    // The §13 contact, with both monitor pages zero (allowed: both or neither, §2.15) since
    // 4 GiB does not fit this small guest.
    const contact = INITIATE_CONTACT_5_3.slice();
    contact.fill(0, 24, 40);
    expect(server.handleMessage(contact, 0)).toBe(0);
    expect(posts.map(dump)).toEqual([dump(VERSION_RESPONSE_OK)]);
  });

  it('GPADL_HEADER for relid 5, handle 0xE1E10, one 8-page range at PFNs 0x12340…0x12347: 92 bytes', () => {
    const pfns = [0x12340, 0x12341, 0x12342, 0x12343, 0x12344, 0x12345, 0x12346, 0x12347];
    const msgs = gpadlMessages(5, 0xe1e10, pfns, 0x8000);
    expect(msgs).toHaveLength(1);
    const m = msgs[0]!;
    expect(m.length).toBe(0x5c);
    expect(dump(m.subarray(0, 48))).toBe(dump(GPADL_HEADER_FIRST_48));
    // "PFNs continue, 8 bytes each, last one ends at 0x5c" (0x30 holds the top half of 0x12342).
    expect(dump(m.subarray(48))).toBe(
      dump(hex(`00 00 00 00 43 23 01 00 00 00 00 00 44 23 01 00 00 00 00 00 45 23 01 00
                00 00 00 00 46 23 01 00 00 00 00 00 47 23 01 00 00 00 00 00`)),
    );
  });

  it('OPENCHANNEL for that channel: the first 32 bytes (openid 5, target_vp 0, downstream offset 4)', () => {
    const encoded = encodeChannelMessage(T.OPENCHANNEL, {
      child_relid: 5,
      openid: 5,
      ringbuffer_gpadlhandle: 0xe1e10,
      target_vp: 0,
      downstream_ringbuffer_pageoffset: 4,
      userdata: new Uint8Array(120),
    });
    expect(encoded.length).toBe(148);
    expect(dump(encoded.subarray(0, 32))).toBe(dump(OPENCHANNEL_FIRST_32));
  });

  it('the guest client opening relid 5 with 16 KiB + 16 KiB rings sends those GPADL_HEADER and OPENCHANNEL bytes', () => {
    const offer = encodeChannelMessage(T.OFFERCHANNEL, {
      offer: {
        if_type: 'a1b2c3d4-0001-4000-8000-00000000e040',
        if_instance: '00000001-feed-4000-8000-000000000001',
        reserved1: 0n,
        reserved2: 0n,
        chn_flags: 0,
        mmio_megabytes: 0,
        u: new Uint8Array(120),
        sub_channel_index: 0,
        reserved3: 0,
      },
      child_relid: 5,
      monitorid: 0xff,
      _monitor: { monitor_allocated: 0, reserved: 0 },
      _dedicated: { is_dedicated_interrupt: 1, reserved1: 0 },
      connection_id: 0x2005,
    });
    const g = guest([], (p) => {
      // A host that says yes: GPADL_CREATED (relid, handle, 0), OPENCHANNEL_RESULT (relid, openid, 0).
      if (p[0] === 8) return hex(`0a 00 00 00 00 00 00 00 ${dump(p.subarray(8, 16))} 00 00 00 00`);
      if (p[0] === 5) return hex(`06 00 00 00 00 00 00 00 ${dump(p.subarray(8, 16))} 00 00 00 00`);
      return undefined;
    });
    g.client.onMessage(slot(offer));
    g.client.runWork();
    const ch = g.client.channel(5)!;
    ch.open({ sendRingBytes: 16384, recvRingBytes: 16384, onEvent: () => undefined });
    expect(ch.state).toBe('opened');
    const [header, open] = g.posted.map((p) => p.payload);
    // The ring sits wherever the guest allocated it: compare all but the PFN values.
    expect(header!.length).toBe(0x5c);
    expect(dump(header!.subarray(0, 0x1c))).toBe(dump(GPADL_HEADER_FIRST_48.subarray(0, 0x1c)));
    expect(dump(open!.subarray(0, 32))).toBe(dump(OPENCHANNEL_FIRST_32));
    expect(open!.length).toBe(148);
  });
});

describe('GPADL split across messages (§2.23): 26 PFNs in the header, then 28 per body, each sized exactly', () => {
  // P pages → message sizes: header 20 + 8 + 8·min(P, 26); bodies 16 + 8·k.
  const cases: [pages: number, sizes: number[]][] = [
    [1, [36]],
    [26, [236]],
    [27, [236, 24]],
    [54, [236, 240]],
    [55, [236, 240, 24]],
  ];
  it.each(cases)('%i pages → messages of %j bytes', (pages, sizes) => {
    const pfns = Array.from({ length: pages }, (_, i) => 0x40000 + 3 * i); // not contiguous, on purpose
    const msgs = gpadlMessages(7, 0xe1e11, pfns, pages * 4096);
    expect(msgs.map((m) => m.length)).toEqual(sizes);
    const [head, ...bodies] = msgs;
    // Header: msgtype 8, relid, handle, range_buflen = 8 + 8·P, rangecount 1, byte_count, byte_offset 0.
    expect([u32(head!, 0), u32(head!, 4), u32(head!, 8), u32(head!, 12), u16(head!, 16), u16(head!, 18), u32(head!, 20), u32(head!, 24)]).toEqual([
      8,
      0,
      7,
      0xe1e11,
      8 + 8 * pages,
      1,
      pages * 4096,
      0,
    ]);
    const carried: number[] = [];
    for (let at = 28; at < head!.length; at += 8) carried.push(u64(head!, at));
    for (const b of bodies) {
      // Body: msgtype 9, msgnumber 0 (Linux never sets it), handle, then PFNs.
      expect([u32(b, 0), u32(b, 4), u32(b, 8), u32(b, 12)]).toEqual([9, 0, 0, 0xe1e11]);
      for (let at = 16; at < b.length; at += 8) carried.push(u64(b, at));
    }
    expect(carried).toEqual(pfns);
  });
});

describe('ring GPADLs with large guest pages (§5.3)', () => {
  // With guest page P, each ring's header is one guest page of which the host sees the first
  // 4 KiB: byte_count = total − 2·(P − 4096); PFN i comes from guest offset 4096·i (i = 0),
  // 4096·i + (P − 4096) (1 ≤ i ≤ S), 4096·i + 2·(P − 4096) (i > S); S = (send − (P − 4096)) / 4096.
  const base = 0x100000; // aligned to every page size; PFN 0x100

  it('16 KiB pages, 32 KiB + 32 KiB: 40 KiB, S = 5, the 12 KiB after each header left out', () => {
    const r = ringPfns(base, 0x8000, 0x8000, 0x4000);
    expect(r.byteCount).toBe(0xa000);
    expect(r.downstreamOffset).toBe(5);
    // Offsets in 4 KiB frames: 0 | 4 5 6 7 | 8 (second header) | 12 13 14 15.
    expect(r.pfns).toEqual([0x100, 0x104, 0x105, 0x106, 0x107, 0x108, 0x10c, 0x10d, 0x10e, 0x10f]);
  });

  it('16 KiB pages, 48 KiB send + 32 KiB receive: 56 KiB, S = 9', () => {
    const r = ringPfns(base, 0xc000, 0x8000, 0x4000);
    expect(r.byteCount).toBe(0xe000);
    expect(r.downstreamOffset).toBe(9);
    expect(r.pfns).toEqual([0x100, 0x104, 0x105, 0x106, 0x107, 0x108, 0x109, 0x10a, 0x10b, 0x10c, 0x110, 0x111, 0x112, 0x113]);
  });

  it('64 KiB pages, 128 KiB + 128 KiB: 136 KiB, S = 17, the 60 KiB after each header left out', () => {
    const r = ringPfns(base, 0x20000, 0x20000, 0x10000);
    expect(r.byteCount).toBe(0x22000);
    expect(r.downstreamOffset).toBe(17);
    const want = [0x100];
    for (let f = 0x10; f <= 0x20; f++) want.push(0x100 + f); // send data, then the second header at 0x20
    for (let f = 0x30; f <= 0x3f; f++) want.push(0x100 + f); // receive data
    expect(r.pfns).toEqual(want);
    // And the header message says so: byte_count in the range, range_buflen for 34 PFNs.
    const [head] = gpadlMessages(1, 0xe1e10, r.pfns, r.byteCount);
    expect([u16(head!, 16), u32(head!, 20)]).toEqual([8 + 8 * 34, 0x22000]);
  });

  it('4 KiB pages: a ring GPADL is the plain buffer layout, S = send / 4096', () => {
    const r = ringPfns(base, 0x4000, 0x6000, 0x1000);
    expect(r.byteCount).toBe(0xa000);
    expect(r.downstreamOffset).toBe(4);
    expect(r.pfns).toEqual(bufferPfns(base, 0xa000));
    expect(r.pfns).toEqual([0x100, 0x101, 0x102, 0x103, 0x104, 0x105, 0x106, 0x107, 0x108, 0x109]);
  });
});
