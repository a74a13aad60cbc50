// The batching both sides of the NIC do on the data path, as Linux and Hyper-V do it: netvsc
// packs the frames queued back to back into one send section (netvsc_send's multi-send data, up
// to INITIALIZE_CMPLT's max_pkt_per_msg), the host reads every RNDIS message of a section; the
// host names the frames of a burst in one transfer-page packet with a range each (at most
// RX_BATCH_SIZE, OpenVMM netvsp), and netvsc_receive walks range_cnt ranges, refusing the bad
// ones and delivering the good. Both directions at once, and hostile sections and ranges.
import { describe, expect, it } from 'vitest';
import { writeEth } from '../../../src/devices/network/ether.js';
import { CopyArena } from '../../../src/devices/network/copy-arena.js';
import { nvspBody, nvspMessage, nvspType } from '../../../src/devices/network/nvsp.js';
import { rndisPacketHeader, writeRndisPacketHeader } from '../../../src/devices/network/rndis.js';
import { Nvsp1SendRndisPacket, NvspMsgType } from '../../../src/devices/network/wire/nvsp.js';
import { RndisPacket, RNDIS_HEADER_SIZE } from '../../../src/devices/network/wire/rndis.js';
import { transferPages } from '../../../src/vmbus/packet.js';
import { PacketType } from '../../../src/vmbus/wire/constants.js';
import { TransferPageHeader } from '../../../src/vmbus/wire/packets.js';
import { labRig, mac, nicRig, payloadOf, recordWire } from './rig.js';

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
const logs = (r: ReturnType<typeof nicRig>) => r.m.kernel.log.records.map((x) => x.text);

/** `n` distinct frames of `size` bytes from `from` to `to` (an EtherType no stack handles). */
function frames(n: number, size: number, from: number, to: number, tag: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => {
    const f = new Uint8Array(size);
    for (let k = 14; k < size; k++) f[k] = (i * 7 + k + tag) & 0xff;
    f[14] = tag;
    f[15] = i & 0xff;
    f[16] = i >> 8;
    writeEth(f, mac(to), mac(from), 0x88b5);
    return f;
  });
}

describe('both directions at once', () => {
  it('a and b send bursts to each other: each guest packs 8 frames per send section, each host names a burst in one transfer-page packet; every frame arrives once, in order', () => {
    const { lab, vm } = labRig(2);
    const a = vm('a');
    const b = vm('b');
    const aWire = recordWire(a.m);
    const bWire = recordWire(b.m);
    const gotA: string[] = [];
    const gotB: string[] = [];
    a.guest.raw('eth0', (f) => void gotA.push(hex(f)));
    b.guest.raw('eth0', (f) => void gotB.push(hex(f)));
    const ab = frames(24, 80, 1, 2, 0xab);
    const ba = frames(24, 80, 2, 1, 0xba);
    expect(a.guest.raw('eth0', () => undefined).sendBatch(ab)).toBe(24);
    expect(b.guest.raw('eth0', () => undefined).sendBatch(ba)).toBe(24);
    expect(lab.waitUntil(() => gotA.length === 24 && gotB.length === 24, 1e9)).toBe(true);
    expect(gotB).toEqual(ab.map(hex));
    expect(gotA).toEqual(ba.map(hex));
    // RNDIS header, rndis_packet, 80 bytes: 124, padded to pkt_align (8) while more follow; only
    // the burst's last frame (no xmit_more) keeps its length.
    const each = RNDIS_HEADER_SIZE + RndisPacket.size + 80;
    const padded = Math.ceil(each / 8) * 8;
    expect([each, padded]).toEqual([124, 128]);
    for (const wire of [aWire, bWire]) {
      const sends = wire.filter((p) => p.dir === 'to-host' && p.type === PacketType.DATA_INBAND).map(payloadOf);
      expect(sends.map((m) => [nvspType(m), nvspBody(Nvsp1SendRndisPacket, m).send_buf_section_size])).toEqual([
        [NvspMsgType.SEND_RNDIS_PKT, 8 * padded],
        [NvspMsgType.SEND_RNDIS_PKT, 8 * padded],
        [NvspMsgType.SEND_RNDIS_PKT, 7 * padded + each],
      ]);
      const xfers = wire.filter((p) => p.dir === 'to-guest' && p.type === PacketType.DATA_USING_XFER_PAGES);
      expect(xfers.map((p) => u32(p.bytes, TransferPageHeader.offsets.range_cnt))).toEqual([24]);
      // One completion per transfer-page packet, naming it.
      const comps = wire.filter((p) => p.dir === 'to-host' && p.type === PacketType.COMP);
      expect(comps.map((p) => p.transId)).toEqual(xfers.map((p) => p.transId));
    }
    expect(a.host.recvBuffer!.pool.outstanding).toBe(0);
    expect(b.host.recvBuffer!.pool.outstanding).toBe(0);
  });

  it('a burst longer than RX_BATCH_SIZE (375): the host sends full batches as they fill, the rest in a last packet; nothing lost or reordered', () => {
    const { lab, vm } = labRig(2);
    const a = vm('a');
    const b = vm('b');
    const bWire = recordWire(b.m);
    const got: string[] = [];
    b.guest.raw('eth0', (f) => void got.push(hex(f)));
    // 500 frames: 63 sections of 8 (and one of 4), all sent before the host reads any of them.
    const burst = frames(500, 64, 1, 2, 0x5a);
    expect(a.guest.raw('eth0', () => undefined).sendBatch(burst)).toBe(500);
    expect(lab.waitUntil(() => got.length === 500, 1e9)).toBe(true);
    expect(got).toEqual(burst.map(hex));
    const ranges = bWire.filter((p) => p.dir === 'to-guest' && p.type === PacketType.DATA_USING_XFER_PAGES).map((p) => u32(p.bytes, TransferPageHeader.offsets.range_cnt));
    expect(ranges).toEqual([375, 125]);
    expect(b.host.stats.rxFrames).toBeGreaterThanOrEqual(500);
    expect(b.host.recvBuffer!.pool.outstanding).toBe(0);
  });
});

describe('the send sections the guest takes', () => {
  it('always the lowest free one (netvsc_get_next_send_section is find_first_zero_bit): sections freed by completions are taken again before higher ones', () => {
    const r = nicRig({ record: true });
    const sock = r.guest.raw('eth0', () => undefined);
    const sections = () => r.wire.splice(0).filter((p) => p.dir === 'to-host' && p.type === PacketType.DATA_INBAND).map((p) => nvspBody(Nvsp1SendRndisPacket, payloadOf(p))).filter((m) => m.channel_type === 0).map((m) => m.send_buf_section_index);
    r.wire.length = 0;
    // Two bursts of 24 frames with no time between them: their completions have not been read
    // yet, so the second burst takes the next three sections.
    expect(sock.sendBatch(frames(24, 80, 1, 2, 1))).toBe(24);
    expect(sock.sendBatch(frames(24, 80, 1, 2, 2))).toBe(24);
    const allFree = () => r.m.waitUntil(() => r.nic.sendBuf!.map.every((x) => x === 0), 1e9);
    // (The host reads, and the trace records, the sends once the machine runs.)
    expect(allFree()).toBe(true);
    expect(sections()).toEqual([0, 1, 2, 3, 4, 5]);
    // All free again: the next burst starts at section 0, not after the last one taken.
    expect(sock.sendBatch(frames(24, 80, 1, 2, 3))).toBe(24);
    expect(allFree()).toBe(true);
    expect(sections()).toEqual([0, 1, 2]);
    // Section 1 held (as by a send not yet completed): the lowest free are 0, then 2 and 3.
    r.nic.sendBuf!.map[1] = 1;
    expect(sock.sendBatch(frames(24, 80, 1, 2, 4))).toBe(24);
    expect(r.m.waitUntil(() => r.nic.sendBuf!.map.every((x, i) => x === 0 || i === 1), 1e9)).toBe(true);
    expect(sections()).toEqual([0, 2, 3]);
  });
});

describe('the host reading several RNDIS messages in one send section', () => {
  /** Writes RNDIS packets for `fs` into the guest's last send section, each padded to 8 but the last; returns the bytes used. */
  function section(r: ReturnType<typeof nicRig>, fs: readonly Uint8Array[], edit?: (msg: Uint8Array, i: number) => void): number {
    const sb = r.nic.sendBuf!;
    const index = sb.sectionCount - 1;
    const bytes = new Uint8Array(sb.sectionSize);
    let at = 0;
    fs.forEach((f, i) => {
      const hl = writeRndisPacketHeader(bytes, at, f.length, []);
      bytes.set(f, at + hl);
      let len = hl + f.length;
      if (i < fs.length - 1) {
        len = Math.ceil(len / 8) * 8;
        new DataView(bytes.buffer).setUint32(at + 4, len, true);
      }
      edit?.(bytes.subarray(at, at + len), i);
      at += len;
    });
    r.m.partition.memory.write(sb.gpa + index * sb.sectionSize, bytes.subarray(0, at));
    return at;
  }
  const send = (r: ReturnType<typeof nicRig>, size: number, tid: bigint) =>
    r.nic.primary.sendInband(nvspMessage(NvspMsgType.SEND_RNDIS_PKT, Nvsp1SendRndisPacket, { channel_type: 0, send_buf_section_index: r.nic.sendBuf!.sectionCount - 1, send_buf_section_size: size }), tid, true);

  it('three packets in one section: three frames out to the switch, in order, one completion with NVSP_STAT_SUCCESS', () => {
    const r = nicRig({ record: true });
    const out: string[] = [];
    r.sw.connect({ name: 'probe', mac: mac(9), deliver: (f) => (out.push(hex(f)), true) });
    const fs = frames(3, 70, 1, 9, 0x33);
    expect(send(r, section(r, fs), 0x77n)).toBe(true);
    r.m.runFor(1e6);
    expect(out).toEqual(fs.map(hex));
    const comp = r.wire.filter((w) => w.dir === 'to-guest' && w.type === PacketType.COMP && w.transId === 0x77n);
    expect(comp.map((w) => u32(payloadOf(w), 4))).toEqual([1 /* NVSP_STAT_SUCCESS */]);
  });

  it('a packet whose data length lies, between two good ones: the good ones go out, the batch completes with NVSP_STAT_FAIL, the drop is counted', () => {
    const r = nicRig({ record: true });
    const out: string[] = [];
    r.sw.connect({ name: 'probe', mac: mac(9), deliver: (f) => (out.push(hex(f)), true) });
    const fs = frames(3, 70, 1, 9, 0x44);
    const size = section(r, fs, (msg, i) => {
      if (i === 1) new DataView(msg.buffer, msg.byteOffset).setUint32(RNDIS_HEADER_SIZE + RndisPacket.offsets.data_len, 4000, true);
    });
    const before = r.host.stats.txDropped.badRndis;
    expect(send(r, size, 0x78n)).toBe(true);
    r.m.runFor(1e6);
    expect(out).toEqual([hex(fs[0]!), hex(fs[2]!)]);
    expect(r.host.stats.txDropped.badRndis - before).toBe(1);
    const comp = r.wire.filter((w) => w.dir === 'to-guest' && w.type === PacketType.COMP && w.transId === 0x78n);
    expect(comp.map((w) => u32(payloadOf(w), 4))).toEqual([2 /* NVSP_STAT_FAIL */]);
  });

  it('a control message after a packet in the same section: refused as a violation, the packet before it still goes out', () => {
    const r = nicRig({ record: true });
    const out: string[] = [];
    r.sw.connect({ name: 'probe', mac: mac(9), deliver: (f) => (out.push(hex(f)), true) });
    const fs = frames(2, 70, 1, 9, 0x55);
    const size = section(r, fs, (msg, i) => {
      if (i === 1) new DataView(msg.buffer, msg.byteOffset).setUint32(0, 4 /* RNDIS_MSG_QUERY */, true);
    });
    const v = r.host.violationCount;
    expect(send(r, size, 0x79n)).toBe(true);
    r.m.runFor(1e6);
    expect(out).toEqual([hex(fs[0]!)]);
    expect(r.host.violationCount - v).toBe(1);
    expect(r.host.violations.at(-1)).toMatch(/RNDIS control message 0x4 after a packet/);
  });
});

describe('the guest reading a transfer-page packet of several ranges', () => {
  /** Puts a broadcast frame as an RNDIS packet into a host receive section it takes; its range. */
  function inSection(r: ReturnType<typeof nicRig>, f: Uint8Array): { byteCount: number; byteOffset: number } {
    const rb = r.host.recvBuffer!;
    const s = rb.pool.take();
    const h = rndisPacketHeader(f.length, []);
    const msg = new Uint8Array(h.length + f.length);
    msg.set(h);
    msg.set(f, h.length);
    rb.buf.write(s * rb.sectionSize, msg);
    return { byteCount: msg.length, byteOffset: s * rb.sectionSize };
  }
  const broadcastFrames = (n: number) =>
    Array.from({ length: n }, (_, i) => {
      const f = new Uint8Array(60).fill(i + 1);
      writeEth(f, new Uint8Array(6).fill(0xff), mac(40 + i), 0x88b5);
      return f;
    });

  it('five ranges, two of them bad (outside the buffer, longer than a section): the three good frames arrive in order, each bad range is logged and counted, one completion with NVSP_STAT_FAIL', () => {
    const r = nicRig({ record: true });
    const seen: string[] = [];
    r.guest.raw('eth0', (f) => void seen.push(hex(f)));
    const fs = broadcastFrames(3);
    const size = r.nic.recvBuf!.size;
    const ranges = [inSection(r, fs[0]!), { byteCount: 100, byteOffset: size - 50 }, inSection(r, fs[1]!), { byteCount: 4000, byteOffset: 0 }, inSection(r, fs[2]!)];
    const nvsp = nvspMessage(NvspMsgType.SEND_RNDIS_PKT, Nvsp1SendRndisPacket, { channel_type: 0, send_buf_section_index: 0xffffffff, send_buf_section_size: 0 });
    expect(r.host.primary.send(transferPages(0xcafe, ranges, 0x1234n, nvsp))).toBe(true);
    r.m.runFor(1e6);
    expect(seen).toEqual(fs.map(hex));
    expect(r.nic.rxErrors.badRange).toBe(2);
    expect(logs(r)).toContain(`hv_netvsc ${r.dev.busId} eth0: Packet offset:${size - 50} + len:100 too big`);
    expect(logs(r)).toContain(`hv_netvsc ${r.dev.busId} eth0: Packet too big: buflen=4000 recv_section_size=1728`);
    const comp = r.wire.filter((w) => w.dir === 'to-host' && w.type === PacketType.COMP && w.transId === 0x1234n);
    expect(comp.map((w) => hex(payloadOf(w)))).toEqual(['6c00000002000000']);
  });

  it('ranges naming the same section twice: each is read as the host left it when the guest copied it; the frames are the guest\'s own', () => {
    const r = nicRig();
    const seen: Uint8Array[] = [];
    r.guest.raw('eth0', (f) => void seen.push(f));
    const [f] = broadcastFrames(1);
    const range = inSection(r, f!);
    const nvsp = nvspMessage(NvspMsgType.SEND_RNDIS_PKT, Nvsp1SendRndisPacket, { channel_type: 0, send_buf_section_index: 0xffffffff, send_buf_section_size: 0 });
    expect(r.host.primary.send(transferPages(0xcafe, [range, range], 0x99n, nvsp))).toBe(true);
    r.m.runFor(1e6);
    expect(seen.map(hex)).toEqual([hex(f!), hex(f!)]);
    // The host overwrites its section afterwards: what the guest received does not change.
    r.host.recvBuffer!.buf.write(range.byteOffset, new Uint8Array(range.byteCount));
    expect(seen.map(hex)).toEqual([hex(f!), hex(f!)]);
    seen[0]!.fill(0);
    expect(hex(seen[1]!)).toBe(hex(f!));
  });
});

describe('CopyArena', () => {
  it('copies share nothing with their source or with each other; large ones get their own buffer', () => {
    const arena = new CopyArena();
    const src = new Uint8Array(200).map((_, i) => i);
    const a = arena.copy(src, 10, 30);
    const b = arena.copy(src, 0, 200);
    expect([...a]).toEqual([...src.subarray(10, 30)]);
    expect([...b]).toEqual([...src]);
    src.fill(0);
    a.fill(0xee);
    expect([...b]).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(b.byteOffset % 8).toBe(0);
    const big = arena.copy(new Uint8Array(100_000).fill(3), 0, 100_000);
    expect(big.byteOffset).toBe(0);
    expect(big.buffer.byteLength).toBe(100_000);
  });
});
