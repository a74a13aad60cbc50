// Bad input on both sides of the NIC, each with its defined outcome: the host (netvsp) facing a
// guest that names send sections it does not have, lies in RNDIS lengths or points PPIs outside
// the message, or never completes its receives; the guest (netvsc) facing a host that names
// ranges outside the receive buffer, the wrong page set, lying RNDIS lengths or PPIs; a flood of
// broadcasts; and both NVSP/RNDIS readers fed arbitrary messages (fast-check). Nothing throws,
// nothing outside the shared buffers is touched, what is refused is counted or logged.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzz } from '../../fuzz/fuzz.js';
import { ARP_REPLY, ARP_REQUEST, arpFrame, BROADCAST_MAC, EtherType, parseIpv4, writeEth } from '../../../src/devices/network/ether.js';
import { nvspMessage, nvspRndisPacketComplete } from '../../../src/devices/network/nvsp.js';
import { writeRndisPacketHeader } from '../../../src/devices/network/rndis.js';
import { MAX_RX_QUEUE } from '../../../src/devices/network/netvsp/netvsp.js';
import { Nvsp1SendRndisPacket, NvspMsgType, NvspRecvCompletion } from '../../../src/devices/network/wire/nvsp.js';
import { PpiType, RndisMsg, RndisPacket, RNDIS_HEADER_SIZE } from '../../../src/devices/network/wire/rndis.js';
import { CsumInfoReceive } from '../../../src/devices/network/wire/ndis.js';
import { transferPages } from '../../../src/vmbus/packet.js';
import { PacketType } from '../../../src/vmbus/wire/constants.js';
import { runs } from '../../vmbus/fuzz-runs.js';
import { mac, nicRig, payloadOf } from './rig.js';

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
const logs = (r: ReturnType<typeof nicRig>) => r.m.kernel.log.records.map((x) => x.text);
/** A transmit context like netvsc's own, so its completion handler frees nothing. */
const noCtx = { q: 0, section: -1, bounce: -1, bytes: 0 };
const rndisPkt = (send: Nvsp1Fields) => nvspMessage(NvspMsgType.SEND_RNDIS_PKT, Nvsp1SendRndisPacket, send);
type Nvsp1Fields = { channel_type: number; send_buf_section_index: number; send_buf_section_size: number };

/** Writes `bytes` into the guest's send section `index` (the last one, which netvsc has not used). */
function intoSection(r: ReturnType<typeof nicRig>, index: number, bytes: Uint8Array): void {
  const sb = r.nic.sendBuf!;
  r.m.partition.memory.write(sb.gpa + index * sb.sectionSize, bytes);
}

/** A 60-byte broadcast frame. */
const broadcast = () => {
  const f = new Uint8Array(60);
  writeEth(f, new Uint8Array(6).fill(0xff), mac(50), EtherType.ARP);
  return f;
};

describe('the host facing a hostile guest', () => {
  it('a send-section index out of range: the packet completes with NVSP_STAT_FAIL, the drop is counted', () => {
    const r = nicRig();
    r.nic.primary.sendRequest(rndisPkt({ channel_type: 0, send_buf_section_index: 170, send_buf_section_size: 100 }), noCtx);
    r.m.runFor(1e6);
    expect(r.host.stats.txDropped.badSection).toBe(1);
    expect(r.host.violations.at(-1)).toBe('send section 170 (100 bytes) is not in the 170-section send buffer');
    expect(logs(r)).toContain(`hv_netvsc ${r.dev.busId} eth0: nvsp_rndis_pkt_complete error status: 2`);
  });

  it('an RNDIS msg_len beyond what the section holds, and a data length that lies: refused, counted', () => {
    const r = nicRig();
    const frames = r.sw.stats.frames;
    const msg = new Uint8Array(100);
    writeRndisPacketHeader(msg, 0, 40, []);
    new DataView(msg.buffer).setUint32(4, 5000, true);
    intoSection(r, 169, msg);
    r.nic.primary.sendRequest(rndisPkt({ channel_type: 0, send_buf_section_index: 169, send_buf_section_size: 100 }), noCtx);
    r.m.runFor(1e6);
    expect(r.host.violations.at(-1)).toBe('RNDIS message at 0: rndis_message.msg_len: 5000 is not within [8, 100]');
    writeRndisPacketHeader(msg, 0, 40, []);
    new DataView(msg.buffer).setUint32(RNDIS_HEADER_SIZE + RndisPacket.offsets.data_len, 4000, true);
    intoSection(r, 169, msg);
    r.nic.primary.sendRequest(rndisPkt({ channel_type: 0, send_buf_section_index: 169, send_buf_section_size: 84 }), noCtx);
    r.m.runFor(1e6);
    expect(r.host.violations.at(-1)).toMatch(/^rndis_message\.msg\.pkt\.data_len: 4000 bytes at offset 36 do not fit/);
    expect(r.host.stats.txDropped.badRndis).toBe(2);
    expect(r.sw.stats.frames).toBe(frames);
  });

  it('a send section under the SIMP (TLFS "GPA Overlay Pages"): the host reads the RAM beneath, the message page is untouched', () => {
    const r = nicRig();
    const frames = r.sw.stats.frames;
    const frame = broadcast();
    const msg = new Uint8Array(200);
    const hl = writeRndisPacketHeader(msg, 0, frame.length, []);
    msg.set(frame, hl);
    intoSection(r, 169, msg.subarray(0, hl + frame.length));
    const sb = r.nic.sendBuf!;
    const cpu = r.m.kernel.cpus[0]!.ops;
    const home = cpu.getReg('SIMP');
    const simp = r.m.partition.vps[0]!.synic.simpPage;
    const page = Math.floor((sb.gpa + 169 * sb.sectionSize) / 4096) * 4096;
    cpu.setReg('SIMP', BigInt(page) | 1n);
    const overlay = simp.bytes.slice();
    const violations = r.host.violations.length;
    r.nic.primary.sendRequest(rndisPkt({ channel_type: 0, send_buf_section_index: 169, send_buf_section_size: hl + frame.length }), noCtx);
    r.m.runFor(1e6);
    cpu.setReg('SIMP', home);
    expect(r.host.violations.length).toBe(violations);
    expect(r.sw.stats.frames).toBe(frames + 1);
    expect(Buffer.from(simp.bytes)).toEqual(Buffer.from(overlay));
  });

  it('a per-packet info offset that leaves the message: the packet is refused, nothing is read past it', () => {
    const r = nicRig();
    const msg = new Uint8Array(120);
    const hl = writeRndisPacketHeader(msg, 0, 60, [{ type: PpiType.TCPIP_CHKSUM, value: 0x1f }]);
    new DataView(msg.buffer).setUint32(RNDIS_HEADER_SIZE + RndisPacket.offsets.per_pkt_info_offset, 0x7ffffff0, true);
    intoSection(r, 169, msg.subarray(0, hl + 60));
    r.nic.primary.sendRequest(rndisPkt({ channel_type: 0, send_buf_section_index: 169, send_buf_section_size: hl + 60 }), noCtx);
    r.m.runFor(1e6);
    expect(r.host.violations.at(-1)).toMatch(/per_pkt_info_offset: 16 bytes at 2147483632 leave the \d+-byte packet/);
    expect(r.host.stats.txDropped.badRndis).toBe(1);
  });

  it('a guest that never completes its receives: sections run out, then the host queues a bounded number and counts every drop; completions let it resume', () => {
    const r = nicRig();
    const nic = r.nic as unknown as { sendRecvCompletions: (c: unknown) => void };
    const real = nic.sendRecvCompletions;
    nic.sendRecvCompletions = () => undefined;
    const total = 10_500;
    for (let i = 0; i < total; i++) {
      r.sw.inject(broadcast());
      if (i % 500 === 0) r.m.runFor(1e6);
    }
    r.m.runFor(10e6);
    const usable = 9709 - 16; // 16 sections stay for RNDIS control responses
    expect(r.host.stats.rxFrames).toBe(usable);
    expect(r.host.stats.rxDropped.queueFull).toBe(total - usable - MAX_RX_QUEUE);
    expect(r.dev.stats.rxPackets).toBe(usable);
    // Once the guest completes again, the queued frames go in.
    nic.sendRecvCompletions = real;
    real.call(r.nic, (r.nic as unknown as { chans: unknown[] }).chans[0]);
    r.m.runFor(10e6);
    expect(r.host.stats.rxFrames).toBe(usable + MAX_RX_QUEUE);
    expect(r.host.recvBuffer!.pool.outstanding).toBe(0);
  });

  it('a completion naming a section inside a batch, or one never lent: refused and counted; the batch comes back only with its first', () => {
    const r = nicRig();
    const nic = r.nic as unknown as { sendRecvCompletions: (c: unknown) => void };
    const real = nic.sendRecvCompletions;
    nic.sendRecvCompletions = () => undefined;
    for (let i = 0; i < 3; i++) r.sw.inject(broadcast());
    r.m.runFor(1e6);
    const rb = r.host.recvBuffer!;
    const [batch] = [...rb.batches.values()];
    expect(batch).toHaveLength(3);
    const done = nvspRndisPacketComplete(1, NvspRecvCompletion.size);
    r.nic.primary.sendCompletion(BigInt(batch![1]!), done);
    r.nic.primary.sendCompletion(5n, done);
    r.m.runFor(1e6);
    expect(r.host.stats.badCompletions).toBe(2);
    expect(r.host.violations.slice(-2)).toEqual([`completion for receive section ${batch![1]} that was not lent on its own (it is in the batch of ${batch![0]})`, 'completion for receive section 5 that was not lent']);
    expect(rb.pool.outstanding).toBe(3);
    nic.sendRecvCompletions = real;
    real.call(r.nic, (r.nic as unknown as { chans: unknown[] }).chans[0]);
    r.m.runFor(1e6);
    expect(rb.pool.outstanding).toBe(0);
    expect(r.dev.stats.rxPackets).toBeGreaterThanOrEqual(3);
  });

  it('a flood of broadcasts on the switch while the guest is busy: bounded queues, drops counted per NIC, the guest takes what fit', () => {
    const r = nicRig();
    for (const cpu of r.m.kernel.cpus) cpu.ops.cpu.interruptsEnabled = false;
    const total = 20_000;
    const flooded = r.sw.stats.flooded;
    for (let i = 0; i < total; i++) r.sw.inject(broadcast());
    expect(r.sw.stats.flooded - flooded).toBe(total);
    const dropped = r.host.stats.rxDropped.queueFull;
    expect(dropped).toBeGreaterThan(0);
    for (const cpu of r.m.kernel.cpus) cpu.ops.cpu.interruptsEnabled = true;
    r.m.runFor(50e6);
    expect(r.dev.stats.rxPackets + dropped).toBe(total);
    expect(r.host.recvBuffer!.pool.outstanding).toBe(0);
  });
});

describe('the guest facing a hostile host', () => {
  const xfer = (r: ReturnType<typeof nicRig>, pageSet: number, offset: number, count: number, tid: bigint) =>
    r.host.primary.send(transferPages(pageSet, [{ byteCount: count, byteOffset: offset }], tid, nvspMessage(NvspMsgType.SEND_RNDIS_PKT, Nvsp1SendRndisPacket, { channel_type: 0, send_buf_section_index: 0xffffffff, send_buf_section_size: 0 })));

  it('a transfer-page range outside the receive buffer: refused with its log line, completed with NVSP_STAT_FAIL', () => {
    const r = nicRig({ record: true });
    const size = r.nic.recvBuf!.size;
    xfer(r, 0xcafe, size - 50, 100, 7n);
    r.m.runFor(1e6);
    expect(logs(r)).toContain(`hv_netvsc ${r.dev.busId} eth0: Packet offset:${size - 50} + len:100 too big`);
    expect(r.nic.rxErrors.badRange).toBe(1);
    const comp = r.wire.filter((w) => w.dir === 'to-host' && w.type === PacketType.COMP && w.transId === 7n);
    expect(comp.map((w) => hex(payloadOf(w)))).toEqual(['6c00000002000000']);
    // The host had not lent section 7: its completion is refused and counted there too.
    expect(r.host.stats.badCompletions).toBe(1);
  });

  it('a range longer than a section, and the wrong page set: refused as Linux refuses them', () => {
    const r = nicRig();
    xfer(r, 0xcafe, 0, 4000, 8n);
    xfer(r, 0x1234, 0, 100, 9n);
    r.m.runFor(1e6);
    expect(logs(r)).toContain(`hv_netvsc ${r.dev.busId} eth0: Packet too big: buflen=4000 recv_section_size=1728`);
    expect(logs(r)).toContain(`hv_netvsc ${r.dev.busId} eth0: Invalid xfer page set id - expecting cafe got 1234`);
  });

  it('an RNDIS msg_len that lies about the range, and PPIs that leave the message: logged; a good frame with bad PPIs still arrives', () => {
    const r = nicRig();
    const seen: Uint8Array[] = [];
    r.guest.raw('eth0', (f) => void seen.push(f));
    const rb = r.host.recvBuffer!;
    const s = rb.pool.take();
    const msg = new Uint8Array(200);
    const frame = broadcast();
    const hl = writeRndisPacketHeader(msg, 0, frame.length, [{ type: PpiType.TCPIP_CHKSUM, value: 0 }]);
    msg.set(frame, hl);
    new DataView(msg.buffer).setUint32(4, 5000, true);
    rb.buf.write(s * rb.sectionSize, msg);
    xfer(r, 0xcafe, s * rb.sectionSize, 150, BigInt(s));
    r.m.runFor(1e6);
    expect(logs(r)).toContain(`hv_netvsc ${r.dev.busId} eth0: Invalid rndis_msg (buflen: 150, msg_len: 5000)`);
    const s2 = rb.pool.take();
    writeRndisPacketHeader(msg, 0, frame.length, [{ type: PpiType.TCPIP_CHKSUM, value: 0 }]);
    msg.set(frame, hl);
    new DataView(msg.buffer).setUint32(RNDIS_HEADER_SIZE + RndisPacket.offsets.per_pkt_info_len, 0x10000, true);
    rb.buf.write(s2 * rb.sectionSize, msg);
    xfer(r, 0xcafe, s2 * rb.sectionSize, hl + frame.length, BigInt(s2));
    r.m.runFor(1e6);
    expect(logs(r).some((l) => l.includes('Invalid per_pkt_info_len'))).toBe(true);
    expect(seen.map(hex)).toEqual([hex(frame)]);
    expect(rb.pool.outstanding).toBe(0);
  });
});

describe('a guest changing its send section while the host forwards the frame', () => {
  it('every port gets the frame as it was when the host took it: the host copies it out of guest memory before the switch reads it', () => {
    const r = nicRig();
    const sb = r.nic.sendBuf!;
    const seen: string[] = [];
    // The first port the flood reaches scribbles over the whole send buffer, as a guest in a
    // worker could while its host is forwarding; the second records what it is handed.
    r.sw.connect({ name: 'scribbler', mac: mac(7), deliver: () => (r.m.partition.memory.bytes.fill(0xee, sb.gpa, sb.gpa + sb.size), true) });
    r.sw.connect({ name: 'probe', mac: mac(8), deliver: (f) => (seen.push(hex(f)), true) });
    const frame = broadcast();
    expect(r.guest.raw('eth0', () => undefined).send(frame)).toBe('ok');
    r.m.runFor(1e6);
    expect(seen).toEqual([hex(frame)]);
  });
});

describe('the guest reading what the host sent', () => {
  it('PPIs placed far after the header, past what the driver reads first: still read, from its private copy, and the frame arrives whole', () => {
    const r = nicRig();
    const seen: [string, boolean, number | undefined][] = [];
    r.guest.raw('eth0', (f, m) => void seen.push([hex(f), m.checksumVerified, m.hash]));
    const rb = r.host.recvBuffer!;
    const s = rb.pool.take();
    const frame = broadcast();
    // The frame first, then (after 400 bytes of it) a checksum and a hash PPI: offsets a host may choose.
    const msg = new Uint8Array(RNDIS_HEADER_SIZE + RndisPacket.size + 400 + 32);
    const dv = new DataView(msg.buffer);
    const P = RndisPacket.offsets;
    dv.setUint32(0, RndisMsg.PACKET, true);
    dv.setUint32(4, msg.length, true);
    dv.setUint32(RNDIS_HEADER_SIZE + P.data_offset, RndisPacket.size, true);
    dv.setUint32(RNDIS_HEADER_SIZE + P.data_len, frame.length, true);
    dv.setUint32(RNDIS_HEADER_SIZE + P.per_pkt_info_offset, RndisPacket.size + 400, true);
    dv.setUint32(RNDIS_HEADER_SIZE + P.per_pkt_info_len, 32, true);
    msg.set(frame, RNDIS_HEADER_SIZE + RndisPacket.size);
    const ppis = RNDIS_HEADER_SIZE + RndisPacket.size + 400;
    for (const [i, type, value] of [[0, PpiType.TCPIP_CHKSUM, Number(CsumInfoReceive.fields.receive.encode({ udp_checksum_succeeded: true }))], [1, PpiType.NBL_HASH_VALUE, 0xabcdef]] as const) {
      dv.setUint32(ppis + 16 * i, 16, true);
      dv.setUint32(ppis + 16 * i + 4, type, true);
      dv.setUint32(ppis + 16 * i + 8, 12, true);
      dv.setUint32(ppis + 16 * i + 12, value, true);
    }
    rb.buf.write(s * rb.sectionSize, msg);
    r.host.primary.send(transferPages(0xcafe, [{ byteCount: msg.length, byteOffset: s * rb.sectionSize }], BigInt(s), nvspMessage(NvspMsgType.SEND_RNDIS_PKT, Nvsp1SendRndisPacket, { channel_type: 0, send_buf_section_index: 0xffffffff, send_buf_section_size: 0 })));
    r.m.runFor(1e6);
    expect(seen).toEqual([[hex(frame), true, 0xabcdef]]);
    expect(rb.pool.outstanding).toBe(0);
  });
});

describe('fuzzing', () => {
  it('the host reads arbitrary NVSP messages and RNDIS sections from the guest without failing, and still works after', () => {
    const r = nicRig();
    fuzz(
      'network.netvsp-guest-messages',
      fc.property(
        fc.record({
          type: fc.oneof(fc.constantFrom(1, 100, 101, 104, 107, 125, 133, 129), fc.integer({ min: 0, max: 200 }).filter((t) => t !== 103 && t !== 106)),
          body: fc.uint8Array({ maxLength: 60 }),
          section: fc.uint8Array({ minLength: 8, maxLength: 300 }),
          gpa: fc.boolean(),
        }),
        (c) => {
          const payload = new Uint8Array(4 + c.body.length);
          new DataView(payload.buffer).setUint32(0, c.type, true);
          payload.set(c.body, 4);
          // Keep RNDIS control messages out of the section: a HALT or RESET would legitimately stop the device.
          const dv = new DataView(c.section.buffer);
          if (dv.getUint32(0, true) !== 1) dv.setUint32(0, 1, true);
          intoSection(r, 169, c.section);
          const ctx = { ...noCtx };
          const id = c.gpa ? r.nic.primary.sendGpaDirect([{ byteCount: 64, byteOffset: 0, pfns: [0x7fffffff] }], payload, ctx) : r.nic.primary.sendRequest(payload, ctx);
          r.m.runFor(200_000);
          // A request the host refused without completing it would hold its request id for good: at
          // volume the guest's ids run out and it can send nothing. The fuzzer gives its own back.
          if (id !== undefined) {
            const held = r.nic.primary.completeRequest(id);
            if (held !== undefined && held !== ctx) throw new Error(`request id ${id} was reused before the fuzzer gave it back`);
          }
        },
      ),
      runs(0.5),
    );
    expect(r.host.phase).toBe('operational');
    // Still working: an ARP request for the guest's address gets its reply out through the switch.
    const out: Uint8Array[] = [];
    r.sw.addTap({ frame: (f) => void out.push(f.slice()) });
    r.m.runFor(1e9);
    out.length = 0;
    r.sw.inject(arpFrame(ARP_REQUEST, mac(50), parseIpv4('10.0.0.9')!, new Uint8Array(6), parseIpv4('10.0.0.1')!, BROADCAST_MAC));
    r.m.runFor(10e6);
    expect(out.some((f) => f[21] === ARP_REPLY && f[0] === 0x00 && f[5] === 50)).toBe(true);
    expect(r.host.violationCount).toBeGreaterThan(0);
    expect(r.host.violations.length).toBeLessThanOrEqual(64);
  });

  it('the guest reads arbitrary transfer-page, in-band and completion packets from the host without failing', () => {
    const r = nicRig();
    const rb = r.host.recvBuffer!;
    fuzz(
      'network.netvsc-host-packets',
      fc.property(
        fc.record({
          kind: fc.constantFrom('xfer', 'inband', 'comp'),
          pageSet: fc.constantFrom(0xcafe, 0xcafe, 1),
          offset: fc.nat(20 << 20),
          count: fc.nat(5000),
          nvsp: fc.uint8Array({ minLength: 4, maxLength: 120 }),
          section: fc.uint8Array({ maxLength: 1728 }),
          tid: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        }),
        (c) => {
          if (c.kind === 'xfer') {
            const s = rb.pool.take();
            if (s >= 0) {
              rb.buf.write(s * rb.sectionSize, c.section);
              rb.pool.give(s);
            }
            r.host.primary.send(transferPages(c.pageSet, [{ byteCount: c.count, byteOffset: c.offset }], c.tid, c.nvsp));
          } else if (c.kind === 'inband') r.host.primary.sendInband(c.nvsp, c.tid);
          else r.host.primary.sendCompletion(c.tid, c.nvsp);
          r.m.runFor(200_000);
        },
      ),
      runs(0.5),
    );
    expect(r.dev.carrier).toBe(true);
    expect(r.nic.primary.corrupt).toBeUndefined();
  });
});


describe('the back end boundary', () => {
  it('a throw in netvsp while a back end delivers a frame is a host fault, not an exception in the back end', () => {
    const r = nicRig();
    const inject = (frame: Uint8Array) => r.sw.inject(frame);
    const frame = new Uint8Array(60);
    frame.set(mac(1), 0); // to the NIC, so the switch hands it to netvsp
    frame.set(mac(50), 6);
    (r.host as unknown as { deliver: () => boolean }).deliver = () => {
      throw new Error('a bug in netvsp');
    };
    expect(() => inject(frame)).not.toThrow();
    expect(r.m.partition.hostFaults.items.map((f) => [f.where, f.error])).toEqual([['netvsp: a frame from the back end', 'Error: a bug in netvsp']]);
  });
});
