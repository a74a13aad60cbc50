// The network codecs on their own: NVSP and RNDIS messages built and read back, the checks each
// side's reader makes (lengths that lie, offsets that leave the message, PPIs that do not fit),
// arbitrary bytes fed to every reader, the Toeplitz hash against Microsoft's verification
// vectors, and the Internet checksum helpers against frames built by hand.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { be16, completeL4Checksum, csumFinish, ipv4ChecksumOk, ipv4Of, l4ChecksumOk, parseCidr, parseIpv4, parseMac, sum16, udpFrame, icmpEchoFrame, ETH_HLEN, Udp, Ip4, flowOf } from '../../../src/devices/network/ether.js';
import { NvspError, nvspBody, nvspMessage, nvspRndisPacket, nvspRndisPacketComplete, nvspType } from '../../../src/devices/network/nvsp.js';
import { parseRndisPacketGuest, parseRndisPacketHost, ppiU32, readPacketWords, readPlainPacketWords, readRndisPacketGuest, readRndisPacketHost, rndisBody, rndisControl, rndisHeader, rndisInfo, rndisMessageLength, rndisMessageType, RndisError, FieldReader, PpiList, writeRndisPacketHeader, writeRndisPacketHeaderWords, type PacketWords, type PlainPacketWords } from '../../../src/devices/network/rndis.js';
import { rssHash, toeplitz } from '../../../src/devices/network/toeplitz.js';
import { NETVSC_HASH_KEY } from '../../../src/devices/network/netvsc/rndis-filter.js';
import { Nvsp1SendRndisPacket, Nvsp1SendRndisPacketComplete, NvspMessageInit, NvspMsgType, NvspRecvCompletion } from '../../../src/devices/network/wire/nvsp.js';
import { PpiType, RndisMsg, RndisPacket, RndisQueryComplete, RndisQueryRequest, RNDIS_HEADER_SIZE } from '../../../src/devices/network/wire/rndis.js';
import { fuzz } from '../../fuzz/fuzz.js';
import { WordView } from '../../../src/memory/word-copy.js';
import { RUNS } from '../../vmbus/fuzz-runs.js';

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');

describe('NVSP messages', () => {
  it('are the whole 40-byte nvsp_message, type first, body at 4 (what netvsc sends)', () => {
    const m = nvspMessage(NvspMsgType.INIT, NvspMessageInit, { min_protocol_ver: 0x60001, max_protocol_ver: 0x60001 });
    expect(hex(m)).toBe('01000000' + '01000600' + '01000600' + '00'.repeat(28));
    expect(nvspType(m)).toBe(1);
    expect(nvspBody(NvspMessageInit, m)).toEqual({ min_protocol_ver: 0x60001, max_protocol_ver: 0x60001 });
  });

  it('the per-frame builders write what the generic encoder would', () => {
    const body = { channel_type: 1, send_buf_section_index: 0xffffffff, send_buf_section_size: 0 };
    expect(nvspRndisPacket(1, 0xffffffff, 0)).toEqual(nvspMessage(NvspMsgType.SEND_RNDIS_PKT, Nvsp1SendRndisPacket, body));
    expect(nvspRndisPacketComplete(2)).toEqual(nvspMessage(NvspMsgType.SEND_RNDIS_PKT_COMPLETE, Nvsp1SendRndisPacketComplete, { status: 2 }));
    expect(nvspRndisPacketComplete(1, NvspRecvCompletion.size)).toEqual(NvspRecvCompletion.encode({ hdr: { msg_type: NvspMsgType.SEND_RNDIS_PKT_COMPLETE }, status: 1 }));
  });

  it('a body shorter than its struct is an NvspError naming it', () => {
    const short = nvspMessage(NvspMsgType.SEND_RNDIS_PKT).subarray(0, 10);
    expect(() => nvspBody(Nvsp1SendRndisPacket, short)).toThrow(/nvsp_1_message_send_rndis_packet.*needs 16 bytes, have 10/);
    expect(() => nvspType(new Uint8Array(3))).toThrow(NvspError);
  });

  it('arbitrary bytes: reading a type and a body either works or is an NvspError', () => {
    fuzz(
      'network.nvsp-reader',
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        try {
          nvspType(b);
          nvspBody(Nvsp1SendRndisPacket, b);
        } catch (e) {
          expect(e).toBeInstanceOf(NvspError);
        }
      }),
      RUNS,
    );
  });
});

describe('RNDIS messages', () => {
  it('a packet header with PPIs reads back on both sides, the frame right after the PPIs', () => {
    const frame = new Uint8Array(60).map((_, i) => i);
    const buf = new Uint8Array(200);
    const hl = writeRndisPacketHeader(buf, 0, frame.length, [
      { type: PpiType.TCPIP_CHKSUM, value: 0x12345678 },
      { type: PpiType.NBL_HASH_VALUE, value: 0xdeadbeef },
    ]);
    expect(hl).toBe(RNDIS_HEADER_SIZE + RndisPacket.size + 32);
    buf.set(frame, hl);
    const msg = buf.subarray(0, hl + frame.length);
    expect(rndisHeader(msg)).toEqual({ type: RndisMsg.PACKET, length: hl + 60 });
    for (const p of [parseRndisPacketGuest(msg), parseRndisPacketHost(msg, msg.length)]) {
      expect(p.dataOffset).toBe(hl);
      expect(p.dataLength).toBe(60);
      expect(p.ppis.map((x) => [x.type, ppiU32(x)])).toEqual([
        [PpiType.TCPIP_CHKSUM, 0x12345678],
        [PpiType.NBL_HASH_VALUE, 0xdeadbeef],
      ]);
    }
  });

  it('the header written a field per word into dirty memory is the byte-built header, at any offset', () => {
    const ppi = fc.record({ type: fc.integer({ min: 0, max: 0x7fffffff }), internal: fc.boolean(), value: fc.integer({ min: 0, max: 0xffffffff }) });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 9000 }), fc.array(ppi, { maxLength: 6 }), fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 7 }), fc.option(fc.nat(), { nil: undefined }), (frameLength, ppis, at, dirt, base, msgLength) => {
        const byBytes = new Uint8Array(256).fill(dirt);
        // An array that starts `base` bytes into its buffer: words are counted from the buffer's start.
        const byWords = new Uint8Array(new SharedArrayBuffer(264), base, 256).fill(dirt);
        const n = writeRndisPacketHeader(byBytes, at, frameLength, ppis);
        // A msg_len given (a padded packet) replaces the header-and-frame one, nothing else.
        if (msgLength !== undefined) new DataView(byBytes.buffer).setUint32(at + 4, msgLength, true);
        expect(writeRndisPacketHeaderWords(byWords, new WordView(), at, frameLength, ppis, msgLength)).toBe(n);
        expect(hex(byWords)).toBe(hex(byBytes));
      }),
      { numRuns: RUNS },
    );
  });

  it('a field reader reads what a DataView reads, aligned or not, in arrays at any offset of any buffer', () => {
    const r = new FieldReader();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 64 }), fc.integer({ min: 0, max: 7 }), fc.boolean(), fc.nat(), (bytes, base, shared, pick) => {
        const buf = shared ? new SharedArrayBuffer(base + bytes.length) : new ArrayBuffer(base + bytes.length);
        const a = new Uint8Array(buf, base, bytes.length);
        a.set(bytes);
        const at = pick % (bytes.length - 3);
        expect(r.of(a).u32(at)).toBe(new DataView(buf, base).getUint32(at, true));
      }),
      { numRuns: RUNS },
    );
  });

  describe('the one-pass reading of received messages (readPacketWords)', () => {
    const out = (): PacketWords => ({ dataOffset: -1, dataLength: -1, csum: undefined, hash: undefined });
    /** The general path's verdict on the `len`-byte message at the start of `bytes`: what netvsc takes of a whole data packet, or undefined when it would not take it as one with nothing to report. */
    const general = (bytes: Uint8Array, len: number): PacketWords | undefined => {
      try {
        rndisMessageLength(bytes, 0, len);
        if (rndisMessageType(bytes, 0) !== RndisMsg.PACKET) return undefined;
        const list = new PpiList();
        readRndisPacketGuest(bytes, len, list);
        if (list.ppiError || list.dataLength === 0) return undefined;
        const r: PacketWords = { dataOffset: list.dataOffset, dataLength: list.dataLength, csum: undefined, hash: undefined };
        for (const p of list.ppis) {
          if (p.internal || p.value.length !== 4) return undefined;
          if (p.type === PpiType.TCPIP_CHKSUM) r.csum = ppiU32(p);
          else if (p.type === PpiType.NBL_HASH_VALUE) r.hash = ppiU32(p);
          else return undefined;
        }
        return r;
      } catch (e) {
        if (e instanceof RndisError) return undefined;
        throw e;
      }
    };
    const ppiArb = fc.record({ type: fc.constantFrom(PpiType.TCPIP_CHKSUM, PpiType.NBL_HASH_VALUE, PpiType.IEEE_8021Q, PpiType.TCP_LARGESEND), value: fc.nat() });

    // (A message with a PPI offset but no PPIs is not among them: rndis_get_ppi reports its zero
    // per_pkt_info_len, so it takes the general path, which does.)
    it('takes the messages a host builds, with checksum and hash PPIs, and finds what the general reading finds', () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 200 }), fc.array(ppiArb.filter((p) => p.type === PpiType.TCPIP_CHKSUM || p.type === PpiType.NBL_HASH_VALUE), { minLength: 1, maxLength: 2 }), (frameLength, ppis) => {
          const buf = new Uint8Array(512);
          const len = writeRndisPacketHeader(buf, 0, frameLength, ppis) + frameLength;
          const got = out();
          expect(readPacketWords(new Uint32Array(buf.buffer), 0, len, got)).toBe(true);
          expect(got).toEqual(general(buf, len));
        }),
        { numRuns: RUNS },
      );
    });

    it('arbitrary and damaged messages: whatever it takes, the general reading takes the same way', () => {
      // Built messages with any PPIs, then bytes overwritten or the length cut; and plain noise.
      const damaged = fc.tuple(fc.integer({ min: 0, max: 120 }), fc.array(ppiArb, { maxLength: 3 }), fc.array(fc.tuple(fc.nat(255), fc.nat(255)), { maxLength: 4 }), fc.integer({ min: -8, max: 8 })).map(([frameLength, ppis, pokes, cut]) => {
        const buf = new Uint8Array(256);
        const len = writeRndisPacketHeader(buf, 0, frameLength, ppis) + frameLength;
        for (const [at, v] of pokes) buf[at % 96] = v;
        return { buf, len: Math.max(0, Math.min(256, len + cut)) };
      });
      const noise = fc.uint8Array({ minLength: 0, maxLength: 128 }).map((b) => {
        const buf = new Uint8Array(128);
        buf.set(b);
        return { buf, len: b.length };
      });
      fuzz(
        'network.rndis-one-pass-reader',
        fc.property(fc.oneof(damaged, noise), ({ buf, len }) => {
          const got = out();
          const want = general(buf, len);
          if (readPacketWords(new Uint32Array(buf.buffer), 0, len, got)) expect(got).toEqual(want);
          else expect(got).toEqual(out()); // nothing written when it declines
        }),
        RUNS,
      );
    });
  });

  describe('the host\'s one-pass reading of the messages a guest sends (readPlainPacketWords)', () => {
    const out = (): PlainPacketWords => ({ msgLength: -1, dataOffset: -1, dataLength: -1 });
    /** The general path's verdict on the message at the start of bytes[0, room): a plain frame's place, or undefined. */
    const general = (bytes: Uint8Array, room: number): PlainPacketWords | undefined => {
      try {
        const msgLength = rndisMessageLength(bytes, 0, room);
        if (rndisMessageType(bytes, 0) !== RndisMsg.PACKET) return undefined;
        const list = new PpiList();
        readRndisPacketHost(bytes, 0, msgLength, list);
        return list.ppis.length === 0 ? { msgLength, dataOffset: list.dataOffset, dataLength: list.dataLength } : undefined;
      } catch (e) {
        if (e instanceof RndisError) return undefined;
        throw e;
      }
    };

    it('takes what netvsc sends for a frame with no offload, padded to pkt_align or not', () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 7 }), (frameLength, pad) => {
          const buf = new Uint8Array(512);
          const len = writeRndisPacketHeader(buf, 0, frameLength, []) + frameLength;
          new DataView(buf.buffer).setUint32(4, len + pad, true);
          const got = out();
          expect(readPlainPacketWords(new Uint32Array(buf.buffer), 0, 512, got)).toBe(true);
          expect(got).toEqual({ msgLength: len + pad, dataOffset: len - frameLength, dataLength: frameLength });
          expect(got).toEqual(general(buf, 512));
        }),
        { numRuns: RUNS },
      );
    });

    it('arbitrary and damaged messages: whatever it takes, the general reading takes the same way', () => {
      const ppiArb = fc.record({ type: fc.constantFrom(PpiType.TCPIP_CHKSUM, PpiType.TCP_LARGESEND, PpiType.IEEE_8021Q), value: fc.nat() });
      const damaged = fc.tuple(fc.integer({ min: 0, max: 120 }), fc.array(ppiArb, { maxLength: 2 }), fc.array(fc.tuple(fc.nat(255), fc.nat(255)), { maxLength: 4 }), fc.integer({ min: -8, max: 8 })).map(([frameLength, ppis, pokes, cut]) => {
        const buf = new Uint8Array(256);
        const len = writeRndisPacketHeader(buf, 0, frameLength, ppis) + frameLength;
        for (const [at, v] of pokes) buf[at % 80] = v;
        return { buf, room: Math.max(0, Math.min(256, len + cut)) };
      });
      const noise = fc.uint8Array({ minLength: 0, maxLength: 128 }).map((b) => {
        const buf = new Uint8Array(128);
        buf.set(b);
        return { buf, room: b.length };
      });
      fuzz(
        'network.rndis-one-pass-host-reader',
        fc.property(fc.oneof(damaged, noise), ({ buf, room }) => {
          const got = out();
          if (readPlainPacketWords(new Uint32Array(buf.buffer), 0, room, got)) expect(got).toEqual(general(buf, room));
          else expect(got).toEqual(out());
        }),
        RUNS,
      );
    });
  });

  it('a msg_len that lies (beyond the buffer, below the header) is refused', () => {
    const m = rndisControl(RndisMsg.QUERY, RndisQueryRequest, { req_id: 1, oid: 1, info_buflen: 0, info_buf_offset: 20, dev_vc_handle: 0 });
    new DataView(m.buffer).setUint32(4, 1000, true);
    expect(() => rndisHeader(m)).toThrow(/msg_len: 1000 is not within \[8, 28\]/);
    new DataView(m.buffer).setUint32(4, 4, true);
    expect(() => rndisHeader(m)).toThrow(RndisError);
  });

  it('an information buffer that leaves the message, or overlaps the fixed part, is refused', () => {
    const c = rndisControl(RndisMsg.QUERY_C, RndisQueryComplete, { req_id: 1, status: 0, info_buflen: 8, info_buf_offset: 16 }, new Uint8Array(8));
    expect(rndisInfo(c, c.length, RndisQueryComplete.size, 16, 8, 'info_buf').length).toBe(8);
    expect(() => rndisInfo(c, c.length, RndisQueryComplete.size, 16, 9, 'info_buf')).toThrow(/info_buflen/);
    expect(() => rndisInfo(c, c.length, RndisQueryComplete.size, 8, 4, 'info_buf')).toThrow(/info_buf_offset/);
    expect(() => rndisBody(RndisQueryComplete, c, 12)).toThrow(/needs 24 bytes/);
  });

  it('PPI offsets that leave the message: the host refuses the packet, the guest drops the PPIs and keeps the frame', () => {
    const buf = new Uint8Array(128);
    const hl = writeRndisPacketHeader(buf, 0, 20, [{ type: PpiType.TCPIP_CHKSUM, value: 1 }]);
    const msg = buf.subarray(0, hl + 20);
    const dv = new DataView(msg.buffer, msg.byteOffset);
    dv.setUint32(RNDIS_HEADER_SIZE + RndisPacket.offsets.per_pkt_info_len, 0x1000, true);
    expect(() => parseRndisPacketHost(msg, msg.length)).toThrow(/per_pkt_info_offset/);
    const g = parseRndisPacketGuest(msg);
    expect(g.ppis).toEqual([]);
    expect(g.ppiError?.field).toBe('msg.pkt.per_pkt_info_len');
    expect(g.dataLength).toBe(20);
    // A PPI whose own size is zero: Linux's rndis_get_ppi would loop forever; both readers stop.
    dv.setUint32(RNDIS_HEADER_SIZE + RndisPacket.offsets.per_pkt_info_len, 16, true);
    dv.setUint32(RNDIS_HEADER_SIZE + RndisPacket.size, 0, true);
    expect(() => parseRndisPacketHost(msg, msg.length)).toThrow(/ppi\[0\]\.size/);
    expect(parseRndisPacketGuest(msg).ppiError?.field).toBe('ppi[0].size');
  });

  it('data that does not fit after the data offset is refused on both sides', () => {
    const buf = new Uint8Array(100);
    const hl = writeRndisPacketHeader(buf, 0, 40, []);
    const msg = buf.subarray(0, hl + 40);
    new DataView(msg.buffer).setUint32(RNDIS_HEADER_SIZE + RndisPacket.offsets.data_len, 41, true);
    expect(() => parseRndisPacketGuest(msg)).toThrow(/data_len/);
    expect(() => parseRndisPacketHost(msg, msg.length)).toThrow(/data_len/);
  });

  it('arbitrary bytes: every reader either returns ranges inside the buffer or throws an RndisError', () => {
    fuzz(
      'network.rndis-readers',
      fc.property(fc.uint8Array({ maxLength: 160 }), fc.nat(200), (b, lenHint) => {
        const inside = (p: ReturnType<typeof parseRndisPacketGuest>) => {
          expect(p.dataOffset + p.dataLength).toBeLessThanOrEqual(b.length);
          for (const x of p.ppis) expect(x.value.byteOffset + x.value.length).toBeLessThanOrEqual(b.byteOffset + b.length);
        };
        for (const f of [() => rndisHeader(b), () => inside(parseRndisPacketGuest(b)), () => inside(parseRndisPacketHost(b, Math.min(b.length, lenHint)))]) {
          try {
            f();
          } catch (e) {
            expect(e).toBeInstanceOf(RndisError);
          }
        }
      }),
      RUNS,
    );
  });
});

describe('Toeplitz (Microsoft "Verifying the RSS hash calculation")', () => {
  // Source 66.9.149.187:2794 → destination 161.142.100.80:1766.
  const flow = { src: parseIpv4('66.9.149.187')!, dst: parseIpv4('161.142.100.80')!, sport: 2794, dport: 1766 };
  it('IPv4 2-tuple and TCP 4-tuple with netvsc_hash_key give the published hashes', () => {
    expect(rssHash(NETVSC_HASH_KEY, { src: flow.src, dst: flow.dst }).toString(16)).toBe('323e8fc2');
    expect(rssHash(NETVSC_HASH_KEY, flow).toString(16)).toBe('51ccc178');
  });
  it('a second vector: 199.92.111.2:14230 → 65.69.140.83:4739', () => {
    const f = { src: parseIpv4('199.92.111.2')!, dst: parseIpv4('65.69.140.83')!, sport: 14230, dport: 4739 };
    expect(rssHash(NETVSC_HASH_KEY, { src: f.src, dst: f.dst }).toString(16)).toBe('d718262a');
    expect(rssHash(NETVSC_HASH_KEY, f).toString(16)).toBe('c626b0ea');
  });
  it('an input of zeros hashes to 0', () => expect(toeplitz(NETVSC_HASH_KEY, new Uint8Array(12))).toBe(0));
});

describe('frames and checksums', () => {
  const mac = parseMac('00:15:5d:00:00:01')!;
  const mac2 = parseMac('00:15:5d:00:00:02')!;
  it('a UDP frame carries valid IPv4 and UDP checksums; an offloaded one is completed later', () => {
    const payload = new Uint8Array(33).map((_, i) => i * 7);
    const o = { dstMac: mac2, srcMac: mac, src: parseIpv4('10.0.0.1')!, dst: parseIpv4('10.0.0.2')!, sport: 5000, dport: 7, id: 1 };
    const f = udpFrame(o, payload);
    const ip = ipv4Of(f)!;
    expect(ipv4ChecksumOk(f, ip)).toBe(true);
    expect(l4ChecksumOk(f, ip)).toBe(true);
    const partial = udpFrame({ ...o, offload: true }, payload);
    expect(hex(partial.subarray(0, ETH_HLEN + Ip4.LEN + Udp.CHECKSUM))).toBe(hex(f.subarray(0, ETH_HLEN + Ip4.LEN + Udp.CHECKSUM)));
    expect(l4ChecksumOk(partial, ipv4Of(partial)!)).toBe(false);
    completeL4Checksum(partial, ipv4Of(partial)!);
    expect(hex(partial)).toBe(hex(f));
  });
  it('ICMP echo: the checksum over header and data is zero-sum; flows of TCP have ports, others not', () => {
    const f = icmpEchoFrame({ dstMac: mac2, srcMac: mac, src: 1, dst: 2, type: 8, ident: 1, seq: 1, ipId: 1 }, new Uint8Array(56));
    const ip = ipv4Of(f)!;
    expect(csumFinish(sum16(f, ip.l4, ip.l4 + 64))).toBe(0);
    expect(flowOf(f)).toEqual({ src: 1, dst: 2 });
    expect(be16(f, 12)).toBe(0x0800);
  });
  it('addresses: CIDR, dotted quads and MACs parse or say no', () => {
    expect(parseCidr('10.0.0.2/24')).toEqual({ address: 0x0a000002, prefix: 24 });
    expect(parseCidr('10.0.0.2')).toEqual({ address: 0x0a000002, prefix: 24 });
    expect(parseCidr('10.0.0.256/24')).toBeUndefined();
    expect(parseCidr('10.0.0.2/33')).toBeUndefined();
    expect(parseMac('00:15:5D:AA:bb:cc')).toEqual(new Uint8Array([0, 0x15, 0x5d, 0xaa, 0xbb, 0xcc]));
    expect(parseMac('00:15:5d:aa:bb')).toBeUndefined();
  });
});
