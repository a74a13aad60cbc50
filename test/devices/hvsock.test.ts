// Hyper-V sockets end to end (vmbus.md §11): Linux 6.1's hv_sock transport in the guest
// (net/vmw_vsock/hyperv_transport.c) against the host's provider (after OpenVMM's hvsock.rs and
// byte pipe): connections both ways, the bytes on the wire, ring sizes per VMBus version,
// streams of random sizes both ways at once with half-close, back-pressure through the rings,
// peers that close mid-stream, and malformed packets and offers from either side.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HvSockGuest, hvSockModule, hvsockRingBytes, type GuestHvSocket } from '../../src/devices/hvsock/guest.js';
import { attachHvsock, type HostHvSocket, type HvsockHost, type HvsockHostOptions } from '../../src/devices/hvsock/host.js';
import { HvSocket, HvSocketError } from '../../src/devices/hvsock/socket.js';
import { HvsockWireError, hvsockUserDefined, hvsPacket, hvsPktLen, isVsockServiceId, parseHvsPayload, portOfServiceId, serviceIdOfPort } from '../../src/devices/hvsock/wire.js';
import { checksum, Xorshift } from '../../src/devices/stream/frame.js';
import type { TraceEvent } from '../../src/hypervisor/trace.js';
import { RELEASE_IDS, type ReleaseId } from '../../src/hypervisor/release.js';
import { Machine } from '../../src/vm/machine.js';
import type { GuestChannel } from '../../src/vmbus/client/channel.js';
import { VmbusError } from '../../src/vmbus/client/errors.js';
import { VmbusVersion } from '../../src/vmbus/wire/constants.js';
import { inband } from '../../src/vmbus/packet.js';
import { Ctl } from '../../src/vmbus/ring/memory.js';
import { runs } from '../vmbus/fuzz-runs.js';
import { hostContext, stubServices } from './services.js';
import { fuzz, itFuzzEachRelease } from '../fuzz/fuzz.js';
import { concatBytes } from '../../src/memory/typed-arrays.js';

const VM_ID = '5e3d7c21-8a4b-4c6d-9e0f-112233445566';
const hex = (s: string) => s.replace(/\s+/g, '');
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');

/** Releases whose VMBus (4.0 and later) carries hv_sock, and those that do not (2.4, 3.0). */
const HVSOCK_RELEASES = RELEASE_IDS.filter((r) => r !== 'ws2012' && r !== 'ws2012r2');
const VERSION: Record<ReleaseId, number> = {
  ws2012: VmbusVersion.WIN8,
  ws2012r2: VmbusVersion.WIN8_1,
  ws2016: VmbusVersion.WIN10,
  ws2019: VmbusVersion.WIN10_V5_2,
  ws2022: VmbusVersion.WIN10_V5_3,
  ws2025: VmbusVersion.WIN10_V5_3,
};

interface Wire {
  dir: 'to-host' | 'to-guest';
  type: number;
  payload: string;
}

/** A booted machine with the host's hv_sock provider and the guest's hv_sock module, and the wire recorded. */
function rig(release: ReleaseId = 'ws2022', opts: { host?: HvsockHostOptions; arch?: 'x64' | 'arm64'; pageSize?: 4096 | 65536; delay?: boolean } = {}) {
  const m = new Machine({ release, arch: opts.arch ?? 'x64', ...(opts.pageSize ? { pageSize: opts.pageSize } : {}), vps: 2, memory: 64 << 20, devices: [], kernel: { vmbus: true, modules: [] } });
  const hostLog: string[] = [];
  const host = attachHvsock(hostContext(m, hostLog), VM_ID, opts.host);
  const wire: Wire[] = [];
  const packets: { dir: string; channel: number; bytes: string }[] = [];
  m.partition.events.on((e: TraceEvent) => {
    if (e.kind === 'message' && e.type === 1) wire.push({ dir: e.dir, type: parseInt(e.payload.slice(0, 2), 16), payload: e.payload });
    if (e.kind === 'packet') packets.push({ dir: e.dir, channel: e.channel, bytes: e.bytes });
  });
  m.boot();
  const guestSvc = stubServices(() => m.nowNs);
  const mod = hvSockModule(opts.delay === false ? { delay: () => ({ cancel() {} }) } : { delay: (ns, f) => m.partition.clock.schedule(m.nowNs + ns, f) });
  mod.init(guestSvc.services, (d) => m.kernel.vmbus!.registerDriver(d), m.kernel.vmbus);
  const messages = (type: number, dir?: Wire['dir']) => wire.filter((w) => w.type === type && (!dir || w.dir === dir)).map((w) => w.payload);
  return { m, host, guest: mod.instance, hostLog, wire, packets, messages, guestSvc };
}

type Rig = ReturnType<typeof rig>;

/** Writes `data` in writes of `sizes` (cycled) as the ring takes it, then end(). */
function sender(sock: HvSocket, data: Uint8Array, sizes: readonly number[] = [65536], end = true) {
  const st = { offset: 0, done: false, blocked: 0, writableEvents: 0, accepted: [] as number[] };
  let i = 0;
  const pump = () => {
    if (sock.state !== 'open') return;
    while (st.offset < data.length) {
      const want = Math.min(sizes[i % sizes.length]!, data.length - st.offset);
      const n = sock.write(data.subarray(st.offset, st.offset + want));
      st.accepted.push(n);
      st.offset += n;
      if (n < want) {
        st.blocked++;
        return;
      }
      i++;
    }
    if (!st.done) {
      st.done = true;
      if (end) sock.end();
    }
  };
  sock.on.writable = () => {
    st.writableEvents++;
    pump();
  };
  return { st, pump };
}

/** Collects what arrives, and whether EOF came. */
function receiver(sock: HvSocket) {
  const st = { chunks: [] as Uint8Array[], ended: false, closed: false, errors: [] as string[] };
  sock.on.data = (b) => void st.chunks.push(b.slice());
  sock.on.end = () => void (st.ended = true);
  sock.on.error = (e) => void st.errors.push(e.code);
  sock.on.close = () => void (st.closed = true);
  const bytes = () => concat(st.chunks);
  return { st, bytes };
}

const concat = concatBytes;

/**
 * What hvs_update_recv_data makes of an in-band payload as the ring hands it over (zero-padded to
 * 8 bytes): 'bad' (-EIO), 'eof', or the number of data bytes. Written from the Linux source.
 */
function linuxReads(payload: Uint8Array): 'bad' | 'eof' | number {
  const padded = Math.ceil(payload.length / 8) * 8;
  if (padded < 8) return 'bad';
  const b = new Uint8Array(padded);
  b.set(payload);
  const size = new DataView(b.buffer).getUint32(4, true);
  if (size > padded - 8 || size > 16384) return 'bad';
  return size === 0 ? 'eof' : size;
}

/** Byte-for-byte equality without vitest's element-wise diff (slow on large arrays). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function randomBytes(seed: number, n: number): Uint8Array {
  const r = new Xorshift(seed >>> 0 || 1);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r.next() & 0xff;
  return out;
}

/** Guest connects to a host listener on `port`; returns both ends once open. */
function connectFromGuest(r: Rig, port = 5000, ringBytes?: number): { g: GuestHvSocket; h: HostHvSocket } {
  let h: HostHvSocket | undefined;
  const l = r.host.listen(port, (s) => (h = s));
  const g = r.guest!.connect(port, ringBytes ? { ringBytes } : {});
  expect(r.m.waitUntil(() => g.state === 'open' && h !== undefined, 1e9)).toBe(true);
  l.close();
  return { g, h: h! };
}

/** The host connects to a guest listener on `port`. */
function connectFromHost(r: Rig, port = 6000, ringBytes?: number): { g: GuestHvSocket; h: HostHvSocket } {
  let g: GuestHvSocket | undefined;
  const l = r.guest!.listen(port, (s) => (g = s), ringBytes ? { ringBytes } : {});
  const h = r.host.connect(port);
  expect(r.m.waitUntil(() => h.state === 'open' && g !== undefined, 1e9)).toBe(true);
  l.close();
  return { g: g!, h };
}

/** Nothing left of any connection: the host has no channel and the guest no device. */
function released(r: Rig): boolean {
  return r.m.vmbus!.server.channels.size === 0 && r.m.kernel.vmbus!.channels.length === 0;
}

/** The GuestChannel of a guest socket. */
const chOf = (s: GuestHvSocket): GuestChannel => s.channel!;

// --- The wire ----------------------------------------------------------------------------------

describe('hv_sock on the wire (vmbus.md §11, hyperv_transport.c)', () => {
  it('service ids: the port in the first four bytes of the template, little-endian', () => {
    expect(serviceIdOfPort(0x1234)).toBe('00001234-facb-11e6-bd58-64006a7986d3');
    expect(serviceIdOfPort(0x7fffffff)).toBe('7fffffff-facb-11e6-bd58-64006a7986d3');
    expect(portOfServiceId('00000050-facb-11e6-bd58-64006a7986d3')).toBe(80);
    expect(isVsockServiceId('00000050-facb-11e6-bd58-64006a7986d3')).toBe(true);
    expect(isVsockServiceId('00000050-facb-11e6-bd58-64006a7986d4')).toBe(false);
    expect(isVsockServiceId('not a guid')).toBe(false);
    // get_port_by_srv_id reads the first four bytes whatever the rest.
    expect(portOfServiceId('a42e7cda-d03f-480c-9cc2-a4de20abb878')).toBe(0xa42e7cda);
  });

  it('a data packet and the EOF packet, byte for byte; HVS_PKT_LEN', () => {
    // Descriptor: type 6, offset8 2, len8 ⌈(24 + 5) / 8⌉ = 4, flags 0, trans_id 0; pkt_type 1, data_size 5.
    expect(toHex(concat(hvsPacket(new TextEncoder().encode('hello'))))).toBe(hex('0600 0200 0400 0000 0000000000000000 01000000 05000000 68656c6c6f'));
    expect(toHex(concat(hvsPacket(new Uint8Array(0))))).toBe(hex('0600 0200 0300 0000 0000000000000000 01000000 00000000'));
    expect([hvsPktLen(0), hvsPktLen(1), hvsPktLen(8), hvsPktLen(9), hvsPktLen(4088), hvsPktLen(16384)]).toEqual([32, 40, 40, 48, 4120, 16416]);
    expect(() => hvsPacket(new Uint8Array(16385))).toThrow(RangeError);
  });

  it("the offer's user-defined area: pipe type, is_for_guest_accept at offset 4, unaligned version, silo id", () => {
    const u = hvsockUserDefined(true, 1);
    expect(u.length).toBe(120);
    expect(toHex(u.subarray(0, 28))).toBe(hex('00000000 01 00 01000000 00000000000000000000000000000000 0000'));
    expect(u.subarray(28).every((b) => b === 0)).toBe(true);
    expect(hvsockUserDefined(false, 0)[4]).toBe(0);
  });

  it('ring sizes: six 4 KiB pages below VMBus 5.0; from 5.0 the buffer size in [24 KiB, 256 KiB], 4 KiB-aligned', () => {
    for (const v of [VmbusVersion.WIN10, VmbusVersion.WIN10_V4_1]) for (const b of [1, 24576, 65536, 1 << 20]) expect(hvsockRingBytes(v, b)).toBe(24576);
    for (const v of [VmbusVersion.WIN10_V5, VmbusVersion.WIN10_V5_2, VmbusVersion.WIN10_V5_3]) {
      expect(hvsockRingBytes(v)).toBe(24576);
      expect(hvsockRingBytes(v, 1)).toBe(24576);
      expect(hvsockRingBytes(v, 30000)).toBe(32768);
      expect(hvsockRingBytes(v, 65536)).toBe(65536);
      expect(hvsockRingBytes(v, 1 << 20)).toBe(262144);
    }
  });

  it("hvs_update_recv_data's checks: a header, data_size within the packet and HVS_MTU_SIZE", () => {
    const payload = (type: number, size: number, data: number) => {
      const b = new Uint8Array(8 + data);
      new DataView(b.buffer).setUint32(0, type, true);
      new DataView(b.buffer).setUint32(4, size, true);
      return b;
    };
    expect(parseHvsPayload(payload(1, 3, 8)).length).toBe(3);
    expect(parseHvsPayload(payload(1, 0, 0)).length).toBe(0);
    // Linux ignores pkt_type; OpenVMM's host wants DATA.
    expect(parseHvsPayload(payload(7, 2, 8)).length).toBe(2);
    expect(() => parseHvsPayload(payload(7, 2, 8), true)).toThrow(/pkt_type/);
    expect(() => parseHvsPayload(new Uint8Array(7))).toThrow(HvsockWireError);
    expect(() => parseHvsPayload(payload(1, 9, 8))).toThrow(/data_size/);
    expect(() => parseHvsPayload(payload(1, 16385, 16392))).toThrow(/HVS_MTU_SIZE/);
    expect(parseHvsPayload(payload(1, 16384, 16384)).length).toBe(16384);
  });
});

// --- Releases without hv_sock ---------------------------------------------------------------

describe.each(['ws2012', 'ws2012r2'] as const)('no hv_sock on %s (VMBus below 4.0)', (release) => {
  it('the guest module does not load, and a host connect is refused', () => {
    const r = rig(release);
    expect(r.guest).toBeUndefined();
    expect(() => new HvSockGuest(r.m.kernel.vmbus!, r.guestSvc.services)).toThrow(HvSocketError);
    const h = r.host.connect(5000);
    const rec = receiver(h);
    r.m.runFor(1e6);
    expect(rec.st.errors).toEqual(['ECONNREFUSED']);
    expect(h.state).toBe('closed');
    expect(r.wire.filter((w) => w.type === 1)).toEqual([]);
  });
});

// --- Connections on every release with hv_sock -------------------------------------------------

describe.each(HVSOCK_RELEASES)('hv_sock on %s', (release) => {
  it('guest connect: TL_CONNECT_REQUEST, the offer, the open with 24 KiB rings, data both ways, EOFs, rescind, release', () => {
    const r = rig(release);
    const { g, h } = connectFromGuest(r, 5000);
    // The first local port above the reserved ones (1024 = 0x400); the host's port 5000 = 0x1388.
    expect(r.messages(21, 'to-host')).toEqual([hex('15000000 00000000 00040000 cbfa e611 bd58 64006a7986d3 88130000 cbfa e611 bd58 64006a7986d3')]);
    const offer = r.messages(1, 'to-guest').at(-1)!;
    const at = (off: number, len: number) => offer.slice(2 * off, 2 * (off + len));
    expect(at(8, 16)).toBe(hex('88130000 cbfa e611 bd58 64006a7986d3')); // if_type = the host's service
    expect(at(24, 16)).toBe(hex('00040000 cbfa e611 bd58 64006a7986d3')); // if_instance = the guest's endpoint
    expect(at(56, 2)).toBe('1120'); // ENUMERATE_DEVICE_INTERFACE | NAMED_PIPE_MODE | TLNPI_PROVIDER_OFFER
    // Pipe type BYTE, is_for_guest_accept 0, then the parameters' version (RS5 from WS2019).
    expect(at(60, 10)).toBe(hex(`00000000 00 00 ${release === 'ws2016' ? '00000000' : '01000000'}`));
    // 24 KiB each way: the inbound ring starts 6 pages in (downstream_ringbuffer_pageoffset).
    const open = r.messages(5, 'to-host').at(-1)!;
    expect(open.slice(2 * 24, 2 * 28)).toBe('06000000');
    expect(g.localId).toBe(serviceIdOfPort(1024));
    expect(h.serviceId).toBe(serviceIdOfPort(5000));
    expect(h.endpointId).toBe(serviceIdOfPort(1024));
    const snap = chOf(g).snapshot();
    expect(snap.outbound!.dataSize).toBe(24576 - 4096);
    expect(snap.inbound!.dataSize).toBe(24576 - 4096);
    // hvs_set_channel_pending_send_size: HVS_PKT_LEN(4088) on the guest's outbound ring, for good.
    expect(snap.outbound!.pendingSendSize).toBe(4120);

    const up = sender(g, new TextEncoder().encode('ping from the guest'));
    const down = sender(h, new TextEncoder().encode('pong from the host'));
    const gr = receiver(g);
    const hr = receiver(h);
    up.pump();
    down.pump();
    expect(r.m.waitUntil(() => gr.st.ended && hr.st.ended, 1e9)).toBe(true);
    expect(new TextDecoder().decode(hr.bytes())).toBe('ping from the guest');
    expect(new TextDecoder().decode(gr.bytes())).toBe('pong from the host');
    // Linux's packets: one data packet and the EOF, offset8 2, trans_id 0.
    const toHost = r.packets.filter((p) => p.dir === 'to-host').map((p) => p.bytes);
    expect(toHost.at(-1)).toBe(hex('0600 0200 0300 0000 0000000000000000 01000000 00000000'));
    // Both EOFs passed: the host rescinds; the guest closes its socket, then CLOSECHANNEL and RELID_RELEASED.
    expect(r.m.waitUntil(() => h.state === 'closed', 1e9)).toBe(true);
    expect(r.messages(2, 'to-guest').length).toBe(1);
    expect(g.state).toBe('open');
    g.close();
    expect(r.m.waitUntil(() => released(r), 1e9)).toBe(true);
    expect(gr.st.closed && hr.st.closed).toBe(true);
    const tail = r.wire.filter((w) => w.dir === 'to-host').map((w) => w.type);
    expect(tail.slice(-2)).toEqual([7, 13]);
    // No GPADL_TEARDOWN for a rescinded channel (vmbus_teardown_gpadl skips it).
    expect(r.messages(11, 'to-host')).toEqual([]);
    expect(r.m.vmbus!.server.violations.items).toEqual([]);
  });

  it('host connect: an offer for the guest to accept; the child socket gets the host endpoint as its remote port', () => {
    const r = rig(release, { host: { seed: 7 } });
    const { g, h } = connectFromHost(r, 6000);
    const offer = r.messages(1, 'to-guest').at(-1)!;
    expect(offer.slice(2 * 8, 2 * 24)).toBe(hex('70170000 cbfa e611 bd58 64006a7986d3')); // port 6000 = 0x1770
    expect(offer.slice(2 * 64, 2 * 65)).toBe('01'); // is_for_guest_accept
    expect(r.messages(21)).toEqual([]); // no TL_CONNECT_REQUEST
    expect(g.localPort).toBe(6000);
    expect(g.remotePort).toBe(portOfServiceId(h.endpointId));
    expect(h.endpointId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const gr = receiver(g);
    const hr = receiver(h);
    sender(h, randomBytes(3, 50000)).pump();
    sender(g, randomBytes(4, 30000)).pump();
    g.on.end = () => {
      gr.st.ended = true;
      g.close();
    };
    expect(r.m.waitUntil(() => released(r) && h.state === 'closed' && g.state === 'closed', 2e9)).toBe(true);
    expect(sameBytes(gr.bytes(), randomBytes(3, 50000))).toBe(true);
    expect(sameBytes(hr.bytes(), randomBytes(4, 30000))).toBe(true);
  });

  it('ring sizes from the socket buffer size: 64 KiB from VMBus 5.0, 24 KiB on 4.0', () => {
    const r = rig(release);
    const { g } = connectFromGuest(r, 5000, 65536);
    const expected = VERSION[release] >= VmbusVersion.WIN10_V5 ? 65536 : 24576;
    expect(chOf(g).snapshot().outbound!.dataSize).toBe(expected - 4096);
    expect(chOf(g).snapshot().inbound!.dataSize).toBe(expected - 4096);
    expect(r.messages(5, 'to-host').at(-1)!.slice(2 * 24, 2 * 28)).toBe(expected === 65536 ? '10000000' : '06000000');
    // A listener's size goes to the connections it accepts.
    const { g: child } = connectFromHost(r, 6001, 40000);
    expect(chOf(child).snapshot().outbound!.dataSize).toBe((VERSION[release] >= VmbusVersion.WIN10_V5 ? 40960 : 24576) - 4096);
  });

  it('a connect nobody accepts times out after 2 s (VSOCK_DEFAULT_CONNECT_TIMEOUT); the host refuses it from 4.1', () => {
    const r = rig(release);
    const g = r.guest!.connect(7000);
    const gr = receiver(g);
    const t0 = r.m.nowNs;
    r.m.runFor(1.9e9);
    expect(g.state).toBe('connecting');
    expect(r.m.waitUntil(() => g.state === 'closed', 0.2e9)).toBe(true);
    expect(r.m.nowNs - t0).toBeGreaterThanOrEqual(2e9);
    expect(gr.st.errors).toEqual(['ETIMEDOUT']);
    // OpenVMM answers a refused request with TL_CONNECT_RESULT (from 4.1), which Linux drops.
    expect(r.messages(23, 'to-guest').length).toBe(VERSION[release] >= VmbusVersion.WIN10_V4_1 ? 1 : 0);
    expect(r.hostLog.some((l) => l.includes('refused'))).toBe(true);
    // The port is free again.
    expect(() => r.guest!.listen(1024, () => undefined)).not.toThrow();
  });

  it('a host connect no guest socket accepts: ETIMEDOUT after 2 s, the offer rescinded, the relid released', () => {
    const r = rig(release);
    const h = r.host.connect(6500);
    const hr = receiver(h);
    r.m.runFor(1e9);
    expect(h.state).toBe('connecting');
    expect(r.guest!.unmatchedOffers).toBe(1);
    expect(r.m.waitUntil(() => h.state === 'closed' && released(r), 2e9)).toBe(true);
    expect(hr.st.errors).toEqual(['ETIMEDOUT']);
    // The unopened channel is removed as any rescinded device: RELID_RELEASED, no CLOSECHANNEL.
    expect(r.messages(13, 'to-host').length).toBe(1);
    expect(r.messages(7, 'to-host')).toEqual([]);
  });
});

// --- Streams ---------------------------------------------------------------------------------

describe('streams of random sizes, both ways at once, with half-close and slow readers', () => {
  itFuzzEachRelease(
    'every byte arrives in order, EOF after it, and the connection is released',
    'hvsock.streams',
    (release) =>
      fc.property(
        fc.record({
          fromGuest: fc.boolean(),
          up: fc.integer({ min: 0, max: 120_000 }),
          down: fc.integer({ min: 0, max: 120_000 }),
          upSizes: fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 4 }),
          downSizes: fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 4 }),
          ringBytes: fc.constantFrom(24576, 65536),
          pauses: fc.integer({ min: 0, max: 3 }),
          seed: fc.integer({ min: 1, max: 0x7fffffff }),
          lend: fc.boolean(),
        }),
        (c) => {
          const r = rig(release);
          const { g, h } = c.fromGuest ? connectFromGuest(r, 5000, c.ringBytes) : connectFromHost(r, 6000, c.ringBytes);
          // A lending host's chunks are good until its handler returns, where the receiver copies them.
          h.lend = c.lend;
          const upData = randomBytes(c.seed, c.up);
          const downData = randomBytes(c.seed ^ 0x5555, c.down);
          const gr = receiver(g);
          const hr = receiver(h);
          // Slow readers: each side pauses now and then, and resumes 0.2 ms later.
          const rng = new Xorshift(c.seed);
          for (const [sock, rec] of [
            [g, gr],
            [h, hr],
          ] as const) {
            const onData = sock.on.data!;
            sock.on.data = (b) => {
              onData(b);
              if (c.pauses && rng.next() % (5 - c.pauses) === 0) {
                sock.pause();
                r.m.partition.clock.schedule(r.m.nowNs + 200_000, () => sock.resume());
              }
            };
            void rec;
          }
          const up = sender(g, upData, c.upSizes);
          const down = sender(h, downData, c.downSizes);
          // The guest's application closes once it has read EOF and written everything.
          const closeIfDone = () => {
            if (gr.st.ended && up.st.done) g.close();
          };
          g.on.end = () => {
            gr.st.ended = true;
            closeIfDone();
          };
          const prev = g.on.writable!;
          g.on.writable = () => {
            prev();
            closeIfDone();
          };
          up.pump();
          down.pump();
          closeIfDone();
          expect(r.m.waitUntil(() => released(r) && g.state === 'closed' && h.state === 'closed', 20e9)).toBe(true);
          const got = { up: hr.bytes(), down: gr.bytes() };
          expect([got.up.length, checksum(0, got.up)]).toEqual([c.up, checksum(0, upData)]);
          expect([got.down.length, checksum(0, got.down)]).toEqual([c.down, checksum(0, downData)]);
          expect(sameBytes(got.up, upData)).toBe(true);
          expect(sameBytes(got.down, downData)).toBe(true);
          expect(gr.st.errors).toEqual([]);
          expect(hr.st.errors).toEqual([]);
          // Linux never puts more than HVS_SEND_BUF_SIZE in a packet; the host 2 KiB.
          expect(g.stats.packetsOut).toBeGreaterThanOrEqual(Math.ceil(c.up / 4088) + 1);
          expect(h.stats.packetsOut).toBeGreaterThanOrEqual(Math.ceil(c.down / 2048) + 1);
          expect(r.m.vmbus!.server.violations.items).toEqual([]);
        },
      ),
    runs(0.08),
    HVSOCK_RELEASES,
  );
});

describe('a host socket that lends what it receives', () => {
  it('hands out views of one reused buffer, each right while its handler runs; a socket that gives keeps every chunk intact', () => {
    for (const lend of [true, false]) {
      const r = rig();
      const { g, h } = connectFromGuest(r, 5000, 65536);
      h.lend = lend;
      const data = randomBytes(7, 1 << 20);
      const views: Uint8Array[] = [];
      const copies: Uint8Array[] = [];
      h.on.data = (b) => {
        views.push(b);
        copies.push(b.slice());
      };
      let ended = false;
      h.on.end = () => void (ended = true);
      sender(g, data, [65536]).pump();
      expect(r.m.waitUntil(() => ended, 10e9)).toBe(true);
      expect(sameBytes(concat(copies), data)).toBe(true);
      // A megabyte through 64 KiB rings is many reads: lent, they all land in one or two buffers.
      const buffers = new Set(views.map((v) => v.buffer)).size;
      if (lend) {
        expect(buffers).toBeLessThanOrEqual(2);
        expect(sameBytes(concat(views), data)).toBe(false);
      } else {
        expect(buffers).toBeGreaterThanOrEqual(16);
        expect(sameBytes(concat(views), data)).toBe(true);
      }
    }
  });
});

describe('a peer that writes as fast as this end reads', () => {
  /** A socket whose ring never runs dry, as a guest in a worker streaming without end looks. */
  class Endless extends HvSocket {
    pulls = 0;
    constructor(protected override readonly pullsPerDelivery: number) {
      super('local', 'remote');
      this.state = 'open';
    }
    protected writeRing(bytes: Uint8Array): number {
      return bytes.length;
    }
    protected writeFin(): boolean {
      return true;
    }
    protected pull(): boolean {
      this.pulls++;
      this.received(new Uint8Array([this.pulls & 0xff]));
      return true;
    }
    protected peerGone(): boolean {
      return false;
    }
    protected finished(): void {}
    protected inputError(): HvSocketError | undefined {
      return undefined;
    }
    close(): void {}
  }

  it('one delivery reads the ring pullsPerDelivery times at most, each read delivered, then returns', () => {
    const s = new Endless(16);
    const got: number[] = [];
    s.on.data = (b) => void got.push(b[0]!);
    s.pause();
    s.resume();
    expect(s.pulls).toBe(16);
    expect(got).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    s.pause();
    s.resume();
    expect(got.length).toBe(32);
  });

  it('a host socket stops after a few reads, and what the guest wrote meanwhile comes at the next signal, every byte', () => {
    const r = rig();
    const { g, h } = connectFromGuest(r, 5000, 24576);
    const data = randomBytes(3, 600 * 1024);
    const chunks: Uint8Array[] = [];
    let written = 0;
    let deliveries = 0;
    let inDelivery = 0;
    let most = 0;
    // The guest writes again from inside the host's handler: the ring never runs dry while the
    // host reads, as with a guest in a worker writing at the host's pace.
    h.on.data = (b) => {
      chunks.push(b.slice());
      inDelivery++;
      most = Math.max(most, inDelivery);
      if (written < data.length) written += g.write(data.subarray(written, Math.min(data.length, written + 4000)));
      else if (written === data.length) {
        written++;
        g.end();
      }
    };
    let ended = false;
    h.on.end = () => void (ended = true);
    // A delivery is over when the virtual clock moves on.
    const done = () => {
      deliveries++;
      inDelivery = 0;
      return ended;
    };
    written += g.write(data.subarray(0, 4000));
    expect(r.m.waitUntil(done, 10e9)).toBe(true);
    expect(sameBytes(concat(chunks), data)).toBe(true);
    expect(most).toBeLessThanOrEqual(16);
    expect(deliveries).toBeGreaterThan(1);
  });
});

// --- Back-pressure -------------------------------------------------------------------------------

describe('back-pressure through the ring and pending_send_sz', () => {
  it('a paused host reader blocks the guest writer; resuming wakes it through pending_send_sz', () => {
    const r = rig('ws2022');
    const { g, h } = connectFromGuest(r);
    const hr = receiver(h);
    h.pause();
    const data = randomBytes(9, 200_000);
    const up = sender(g, data);
    up.pump();
    r.m.runFor(20e6);
    // The ring took at most its 20 KiB of data area, less the room kept for EOF.
    expect(up.st.offset).toBeGreaterThan(16_000);
    expect(up.st.offset).toBeLessThan(20_480);
    expect(up.st.blocked).toBe(1);
    expect(up.st.writableEvents).toBe(0);
    expect(hr.st.chunks).toEqual([]);
    const snap = chOf(g).snapshot().outbound!;
    expect(snap.pendingSendSize).toBe(4120);
    expect(snap.bytesAvailToWrite).toBeLessThan(4120);
    h.resume();
    expect(r.m.waitUntil(() => hr.st.ended, 2e9)).toBe(true);
    expect(sameBytes(hr.bytes(), data)).toBe(true);
    // Each time the host freed enough room the guest heard of it and went on.
    expect(up.st.writableEvents).toBeGreaterThan(3);
    expect(up.st.writableEvents).toBe(up.st.blocked);
  });

  it('a paused guest reader blocks the host writer, which asks for room for its next 2 KiB packet', () => {
    const r = rig('ws2022');
    const { g, h } = connectFromGuest(r);
    const gr = receiver(g);
    g.pause();
    const data = randomBytes(10, 200_000);
    const down = sender(h, data);
    down.pump();
    r.m.runFor(20e6);
    expect(down.st.offset).toBeGreaterThan(16_000);
    expect(down.st.offset).toBeLessThan(20_480);
    // pending_send_sz on the host→guest ring: HVS_PKT_LEN(2048) plus the byte that keeps the ring from full, rounded to 8.
    expect(chOf(g).snapshot().inbound!.pendingSendSize).toBe(2088);
    expect(gr.st.chunks).toEqual([]);
    g.resume();
    expect(r.m.waitUntil(() => gr.st.ended, 2e9)).toBe(true);
    expect(sameBytes(gr.bytes(), data)).toBe(true);
    expect(down.st.writableEvents).toBeGreaterThan(3);
    // Not blocked any more: the host no longer asks to be signalled.
    expect(chOf(g).snapshot().inbound!.pendingSendSize).toBe(0);
  });
});

// --- Peers that close mid-stream ---------------------------------------------------------------

describe('a peer that closes mid-stream', () => {
  it('the host closes: what its ring took reaches the guest, then EOF; guest writes then fail with EPIPE; the channel is released', () => {
    const r = rig('ws2022');
    const { g, h } = connectFromGuest(r);
    const gr = receiver(g);
    const hr = receiver(h);
    const down = randomBytes(11, 1_000_000);
    const upData = randomBytes(12, 1_000_000);
    const d = sender(h, down, [5000], false);
    const u = sender(g, upData, [3000], false);
    d.pump();
    u.pump();
    r.m.runFor(30_000);
    const hostAccepted = d.st.offset;
    expect(hostAccepted).toBeGreaterThan(0);
    expect(hostAccepted).toBeLessThan(1_000_000);
    h.close();
    expect(h.state).toBe('closed');
    expect(r.m.waitUntil(() => gr.st.ended, 1e9)).toBe(true);
    // Everything the host's ring accepted before the close, in order, then EOF.
    expect(sameBytes(gr.bytes(), down.subarray(0, hostAccepted))).toBe(true);
    expect(() => g.write(new Uint8Array(10))).toThrow(expect.objectContaining({ code: 'EPIPE' }));
    // The host's reader saw a prefix of the guest's stream.
    expect(sameBytes(hr.bytes(), upData.subarray(0, hr.bytes().length))).toBe(true);
    expect(g.rescinded).toBe(true);
    // Linux keeps the rescinded channel until the socket is closed.
    expect(r.m.kernel.vmbus!.channels.length).toBe(1);
    g.close();
    expect(r.m.waitUntil(() => released(r), 1e9)).toBe(true);
    expect(gr.st.closed).toBe(true);
    expect(gr.st.errors).toEqual([]);
  });

  it('the guest closes: its data and EOF reach the host; the host closes too and the guest socket and channel are released', () => {
    const r = rig('ws2022');
    const { g, h } = connectFromGuest(r);
    const gr = receiver(g);
    const hr = receiver(h);
    const upData = randomBytes(13, 60_000);
    const u = sender(g, upData, [7000], false);
    sender(h, randomBytes(14, 500_000), [9000], false).pump();
    u.pump();
    r.m.runFor(50_000);
    const guestAccepted = u.st.offset;
    g.close();
    expect(g.state).toBe('open'); // waiting for the rescind, at most 8 s
    expect(r.m.waitUntil(() => hr.st.ended, 1e9)).toBe(true);
    expect(sameBytes(hr.bytes(), upData.subarray(0, guestAccepted))).toBe(true);
    // The guest no longer reads: the host writer stays blocked until it closes.
    h.close();
    expect(r.m.waitUntil(() => released(r) && g.state === 'closed', 1e9)).toBe(true);
    expect(gr.st.closed).toBe(true);
    expect(gr.st.errors).toEqual([]);
    expect(hr.st.errors).toEqual([]);
  });

  it('a guest that closes against a host that never does gives up after HVS_CLOSE_TIMEOUT (8 s); the channel waits for the rescind', () => {
    const r = rig('ws2022');
    const { g, h } = connectFromGuest(r);
    const gr = receiver(g);
    receiver(h);
    const t0 = r.m.nowNs;
    g.close();
    r.m.runFor(7.9e9);
    expect(g.state).toBe('open');
    expect(r.m.waitUntil(() => g.state === 'closed', 0.2e9)).toBe(true);
    expect(r.m.nowNs - t0).toBeGreaterThanOrEqual(8e9);
    expect(gr.st.closed).toBe(true);
    // vmbus_hvsock_device_unregister still waits: the device stays until the host rescinds.
    expect(r.m.kernel.vmbus!.channels.length).toBe(1);
    h.close();
    expect(r.m.waitUntil(() => released(r), 1e9)).toBe(true);
  });

  it('a guest that sends CLOSECHANNEL without EOF (not Linux): the host reads what is left, reports ECONNRESET and rescinds', () => {
    const r = rig('ws2022');
    const { g, h } = connectFromGuest(r);
    const hr = receiver(h);
    expect(g.write(new TextEncoder().encode('last words'))).toBe(10);
    chOf(g).close();
    expect(r.m.waitUntil(() => h.state === 'closed', 1e9)).toBe(true);
    expect(new TextDecoder().decode(hr.bytes())).toBe('last words');
    expect(hr.st.errors).toEqual(['ECONNRESET']);
    expect(r.messages(2, 'to-guest').length).toBe(1);
    // The guest's socket saw the rescind as EOF; once its user closes it the relid is released.
    expect(g.rescinded).toBe(true);
    g.close();
    expect(r.m.waitUntil(() => released(r), 1e9)).toBe(true);
  });

  it('end() while still connecting: EOF goes out as soon as the connection is up', () => {
    const r = rig('ws2022');
    let h: HostHvSocket | undefined;
    let hostEnded = false;
    r.host.listen(5000, (s) => {
      h = s;
      s.on.end = () => void (hostEnded = true);
    });
    const g = r.guest!.connect(5000);
    g.end();
    expect(() => g.write(new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'EPIPE' }));
    expect(r.m.waitUntil(() => hostEnded, 1e9)).toBe(true);
    h!.end();
    expect(r.m.waitUntil(() => h!.state === 'closed', 1e9)).toBe(true);
    g.close();
    expect(r.m.waitUntil(() => released(r), 1e9)).toBe(true);
  });

  it('Linux 6.1 on 64 KiB pages: 24 KiB rings are not whole pages, vmbus_open fails and the connect times out', () => {
    const r = rig('ws2022', { arch: 'arm64', pageSize: 65536 });
    r.host.listen(5000, () => undefined);
    const g = r.guest!.connect(5000);
    const gr = receiver(g);
    expect(r.m.waitUntil(() => g.state === 'closed', 3e9)).toBe(true);
    expect(gr.st.errors).toEqual(['ETIMEDOUT']);
    // The host gives up on the unopened channel after 5 s (OpenVMM) and rescinds it.
    expect(r.m.waitUntil(() => released(r), 6e9)).toBe(true);
    expect(r.hostLog.some((l) => l.includes('did not open the channel'))).toBe(true);
  });
});

// --- Malformed input -------------------------------------------------------------------------------

describe('malformed input (fuzz)', () => {
  it('parseHvsPayload on arbitrary bytes: the data or HvsockWireError, both modes', () => {
    fuzz(
      'hvsock.wire',
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.boolean(), (b, strict) => {
        try {
          const d = parseHvsPayload(b, strict);
          expect(d.length).toBe(new DataView(b.buffer, b.byteOffset).getUint32(4, true));
        } catch (e) {
          expect(e).toBeInstanceOf(HvsockWireError);
        }
      }),
      runs(1),
    );
  });

  itFuzzEachRelease(
    'host → guest: arbitrary packets after a valid prefix; the guest delivers the data or fails with EIO, and the connection still ends',
    'hvsock.guest-socket',
    (release) =>
      fc.property(fc.uint8Array({ maxLength: 48 }), fc.integer({ min: 0, max: 3 }), (garbage, type) => {
        const r = rig(release);
        const { g, h } = connectFromGuest(r);
        const gr = receiver(g);
        const hc = [...r.m.vmbus!.server.channels.values()].find((c) => c.isOpen)!;
        expect(h.write(new TextEncoder().encode('valid'))).toBe(5);
        // A header claiming `type` and some size, then whatever bytes.
        const head = new Uint8Array(8);
        new DataView(head.buffer).setUint32(0, type, true);
        new DataView(head.buffer).setUint32(4, garbage.length > 4 ? new DataView(garbage.buffer).getUint32(0, true) : garbage.length, true);
        const bad = concat([head, garbage]).subarray(0, garbage.length % 3 === 0 ? 8 + garbage.length : Math.max(0, garbage.length - 1));
        hc.send(inband(bad, 0n));
        r.m.runFor(1e6);
        expect(new TextDecoder().decode(gr.bytes().subarray(0, 5))).toBe('valid');
        const want = linuxReads(bad);
        expect({ errors: gr.st.errors, ended: gr.st.ended, bytes: gr.bytes().length - 5 }).toEqual({
          errors: want === 'bad' ? ['EIO'] : [],
          ended: want === 'eof',
          bytes: typeof want === 'number' ? want : 0,
        });
        // Whatever happened, both sides wind down and release the channel.
        g.close();
        h.close();
        expect(r.m.waitUntil(() => released(r), 10e9)).toBe(true);
      }),
    runs(0.1),
    HVSOCK_RELEASES,
  );

  itFuzzEachRelease(
    'guest → host: arbitrary packets; the host takes valid data, else reports EIO and rescinds',
    'hvsock.host-socket',
    (release) =>
      fc.property(fc.uint8Array({ maxLength: 48 }), fc.integer({ min: 0, max: 3 }), (garbage, type) => {
        const r = rig(release);
        const { g, h } = connectFromGuest(r);
        const hr = receiver(h);
        const gr = receiver(g);
        const head = new Uint8Array(8);
        new DataView(head.buffer).setUint32(0, type, true);
        new DataView(head.buffer).setUint32(4, garbage.length > 4 ? new DataView(garbage.buffer).getUint32(0, true) : garbage.length, true);
        const bad = concat([head, garbage]).subarray(0, garbage.length % 3 === 0 ? 8 + garbage.length : Math.max(0, garbage.length - 1));
        chOf(g).sendInband(bad);
        r.m.runFor(1e6);
        // OpenVMM's reader also wants pkt_type DATA.
        const valid = linuxReads(bad) !== 'bad' && type === 1;
        if (valid) {
          expect(hr.st.errors).toEqual([]);
          expect(h.state).toBe('open');
        } else {
          expect(hr.st.errors).toEqual(['EIO']);
          expect(h.state).toBe('closed');
          expect(r.hostLog.at(-1)).toMatch(/bad packet from the guest/);
          // The guest sees the rescind as EOF.
          expect(gr.st.ended).toBe(true);
        }
        g.close();
        h.close();
        expect(r.m.waitUntil(() => released(r), 10e9)).toBe(true);
      }),
    runs(0.1),
    HVSOCK_RELEASES,
  );

  /** A DATA header claiming `size` bytes with only `have` behind it. */
  const lying = (size: number, have: number) => {
    const b = new Uint8Array(8 + have);
    new DataView(b.buffer).setUint32(0, 1, true);
    new DataView(b.buffer).setUint32(4, size, true);
    return b;
  };

  it('a paused guest reader meets the bad packet when it resumes: the data before it, then EIO', () => {
    const r = rig('ws2022');
    const { g, h } = connectFromGuest(r);
    const gr = receiver(g);
    g.pause();
    const hc = [...r.m.vmbus!.server.channels.values()].find((c) => c.isOpen)!;
    expect(h.write(new TextEncoder().encode('before'))).toBe(6);
    hc.send(inband(lying(100, 8), 0n));
    r.m.runFor(1e6);
    expect(gr.st.chunks).toEqual([]);
    g.resume();
    expect(new TextDecoder().decode(gr.bytes())).toBe('before');
    expect(gr.st.errors).toEqual(['EIO']);
    // The guest closed its end (EOF); the host finishes and everything is released.
    h.end();
    expect(r.m.waitUntil(() => released(r), 10e9)).toBe(true);
  });

  it('a paused host reader meets the bad packet when it resumes; a bad packet then CLOSECHANNEL is EIO, not ECONNRESET', () => {
    const r = rig('ws2022');
    const first = connectFromGuest(r);
    const hr = receiver(first.h);
    first.h.pause();
    expect(first.g.write(new TextEncoder().encode('before'))).toBe(6);
    chOf(first.g).sendInband(lying(9, 8));
    r.m.runFor(1e6);
    expect(hr.st.errors).toEqual([]);
    first.h.resume();
    expect(new TextDecoder().decode(hr.bytes())).toBe('before');
    expect(hr.st.errors).toEqual(['EIO']);
    first.g.close();
    expect(r.m.waitUntil(() => released(r), 1e9)).toBe(true);

    const second = connectFromGuest(r, 5001);
    const hr2 = receiver(second.h);
    second.h.pause();
    chOf(second.g).sendInband(lying(9, 8));
    chOf(second.g).close();
    expect(r.m.waitUntil(() => second.h.state === 'closed', 1e9)).toBe(true);
    expect(hr2.st.errors).toEqual(['EIO']);
    second.g.close();
    expect(r.m.waitUntil(() => released(r), 1e9)).toBe(true);
    expect(r.m.vmbus!.server.violations.items).toEqual([]);
  });

  it('a broken ring either way is EIO on the reading side, and the connection is still released', () => {
    const r = rig('ws2022');
    /** The control page of a connection's ring: the guest→host one first, the host→guest one 6 pages (24 KiB) in. */
    const control = (toGuest: boolean) => {
      const hc = [...r.m.vmbus!.server.channels.values()].find((c) => c.isOpen)!;
      const pfns = hc.gpadl(hc.ringGpadl!)!.ranges[0]!.pfns;
      return new Uint32Array(r.m.partition.memory.buffer, pfns[toGuest ? 6 : 0]! * 4096, 1024);
    };
    const a = connectFromGuest(r);
    const ar = receiver(a.g);
    Atomics.store(control(true), Ctl.WRITE_INDEX, 5);
    a.h.write(new Uint8Array(10));
    r.m.runFor(1e6);
    expect(ar.st.errors).toEqual(['EIO']);
    a.h.close();
    expect(r.m.waitUntil(() => released(r), 10e9)).toBe(true);

    const b = connectFromGuest(r, 5001);
    const br = receiver(b.h);
    Atomics.store(control(false), Ctl.WRITE_INDEX, 5);
    r.m.partition.signalEvent(chOf(b.g).offer.connectionId, 0, 0);
    r.m.runFor(1e6);
    expect(br.st.errors).toEqual(['EIO']);
    expect(b.h.state).toBe('closed');
    b.g.close();
    expect(r.m.waitUntil(() => released(r), 10e9)).toBe(true);
  });

  itFuzzEachRelease(
    'arbitrary hv_sock offers: the guest opens only those for a socket that waits for them',
    'hvsock.guest-offers',
    (release) =>
      fc.property(fc.uuid(), fc.uuid(), fc.uint8Array({ minLength: 120, maxLength: 120 }), fc.boolean(), fc.oneof(fc.constant(6000), fc.nat()), (type, instance, user, template, port) => {
        const r = rig(release);
        // A user that closes its end once the host is done with it.
        const l = r.guest!.listen(6000, (s) => void (s.on.end = () => s.close()));
        let accepted = 0;
        const before = r.guest!.unmatchedOffers;
        const classId = template ? serviceIdOfPort(port) : type;
        const ch = r.m.vmbus!.server.offer({ classId, instanceId: instance, flags: 0x2011, userDefined: user }, {});
        r.m.runFor(1e6);
        const mine = template && user[4] !== 0 && port === 6000;
        if (mine) accepted++;
        if (!mine) expect(r.guest!.unmatchedOffers).toBe(before + 1);
        expect(ch.isOpen).toBe(mine);
        r.m.vmbus!.server.revoke(ch);
        r.m.runFor(1e6);
        // Each offer the guest took was accepted by its listener, and every channel is gone again.
        expect(l.accepted).toBe(accepted);
        expect(r.m.waitUntil(() => r.m.kernel.vmbus!.channels.length === 0, 1e9)).toBe(true);
      }),
    runs(0.2),
    HVSOCK_RELEASES,
  );
});

// --- What the VMBus client gained -------------------------------------------------------------------

describe('VMBus client: hv_sock driver matching, TL_CONNECT_REQUEST, the rescind callback', () => {
  it('a class-GUID driver never binds an hv_sock offer, even for its own GUID; the hv_sock driver binds nothing else', () => {
    const r = rig('ws2022');
    const svc = serviceIdOfPort(6000);
    const probed: string[] = [];
    r.m.kernel.vmbus!.registerDriver({ name: 'by_class', classIds: [svc], probe: (ch) => void probed.push(ch.offer.instanceId) });
    r.m.vmbus!.server.offer({ classId: svc, instanceId: '00000001-0000-4000-8000-000000000001' }, {});
    const hv = r.m.vmbus!.server.offer({ classId: svc, instanceId: '00000002-0000-4000-8000-000000000002', flags: 0x2011, userDefined: hvsockUserDefined(true) }, {});
    r.m.runFor(1e6);
    expect(probed).toEqual(['00000001-0000-4000-8000-000000000001']);
    // The hv_sock one went to hv_sock, which had no listener for it.
    expect(r.m.kernel.vmbus!.channels.find((c) => c.relid === hv.relid)!.driver?.name).toBe('hv_sock');
  });

  it('unregisterHvsockDevice refuses other channels and waits for the rescind', () => {
    const r = rig('ws2022');
    const { g, h } = connectFromGuest(r);
    const ch = chOf(g);
    expect(r.m.kernel.vmbus!.unregisterHvsockDevice(ch)).toBe(false);
    r.m.vmbus!.server.offer({ classId: 'a1b2c3d4-0001-4000-8000-00000000e040', instanceId: '00000001-0000-4000-8000-000000000003' }, {});
    r.m.runFor(1e6);
    const plain = r.m.kernel.vmbus!.channels.find((c) => !(c.offer.flags & 0x2000))!;
    expect(() => r.m.kernel.vmbus!.unregisterHvsockDevice(plain)).toThrow(VmbusError);
    h.close();
    g.close();
    expect(r.m.waitUntil(() => r.m.kernel.vmbus!.channels.length === 1, 1e9)).toBe(true);
  });
});

describe('the host provider', () => {
  it('listening twice on one service is EADDRINUSE; so is binding a guest port twice', () => {
    const r = rig('ws2022');
    r.host.listen(5000, () => undefined);
    expect(() => r.host.listen(serviceIdOfPort(5000), () => undefined)).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
    r.guest!.listen(7, () => undefined);
    expect(() => r.guest!.listen(7, () => undefined)).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
    expect(() => r.guest!.connect('a42e7cda-d03f-480c-9cc2-a4de20abb878')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('dispose closes every connection and stops taking TL_CONNECT_REQUEST', () => {
    const r = rig('ws2022');
    const host: HvsockHost = r.host;
    const { g } = connectFromGuest(r);
    const gr = receiver(g);
    host.dispose();
    expect(r.m.vmbus!.server.tlConnect).toBeUndefined();
    expect(r.m.waitUntil(() => gr.st.ended, 1e9)).toBe(true);
    g.close();
    expect(r.m.waitUntil(() => released(r), 1e9)).toBe(true);
  });
});
