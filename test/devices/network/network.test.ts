// Synthetic networking end to end: Linux 6.1's hv_netvsc in the guest against the host's netvsp,
// through the NIC's channel, its buffers and RNDIS: the NVSP version each release negotiates,
// the probe's messages byte for byte, eth0 with the host's MAC, two VMs on a switch pinging and
// exchanging UDP, the link going down and up, an MTU change with page-buffer sends, and vRSS
// spreading flows over sub-channels as the indirection table says.
import { describe, expect, it } from 'vitest';
import { RELEASE_IDS, type ReleaseId } from '../../../src/hypervisor/release.js';
import { ETH_HLEN, EtherType, Ip4, IpProto, Tcp, csumFinish, parseIpv4, put16, put32, pseudoSum, sum16, writeEth, writeIpv4, macString } from '../../../src/devices/network/ether.js';
import { nvspBody, nvspType } from '../../../src/devices/network/nvsp.js';
import { rssHash } from '../../../src/devices/network/toeplitz.js';
import { NVSP_MAX_BY_RELEASE } from '../../../src/devices/network/netvsp/versions.js';
import { NETVSC_HASH_KEY } from '../../../src/devices/network/netvsc/rndis-filter.js';
import { Nvsp1SendRndisPacket, NvspMsgType, NvspVersion } from '../../../src/devices/network/wire/nvsp.js';
import { RndisPacket, RNDIS_HEADER_SIZE } from '../../../src/devices/network/wire/rndis.js';
import { TransferPageHeader } from '../../../src/vmbus/wire/packets.js';
import { PacketType } from '../../../src/vmbus/wire/constants.js';
import { labRig, mac, nicRig, payloadOf, recordWire } from './rig.js';

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
const nvspOut = (wire: ReturnType<typeof nicRig>['wire']) => wire.filter((p) => p.dir === 'to-host' && p.type !== PacketType.COMP).map((p) => payloadOf(p));

describe('NVSP negotiation per release', () => {
  const expected: Record<ReleaseId, number> = { ws2012: NvspVersion.V4, ws2012r2: NvspVersion.V5, ws2016: NvspVersion.V6, ws2019: NvspVersion.V61, ws2022: NvspVersion.V61, ws2025: NvspVersion.V61 };
  for (const release of RELEASE_IDS) {
    it(`${release}: Linux tries 6.1 downwards and settles on ${expected[release].toString(16)}, then NDIS ${expected[release] <= NvspVersion.V4 ? '6.1' : '6.30'}`, () => {
      const { host, nic, wire, dev } = nicRig({ release, record: true });
      expect(NVSP_MAX_BY_RELEASE[release]).toBe(expected[release]);
      expect(nic.nvspVersion).toBe(expected[release]);
      expect(host.version).toBe(expected[release]);
      const inits = nvspOut(wire).filter((p) => nvspType(p) === NvspMsgType.INIT).map((p) => new DataView(p.buffer, p.byteOffset).getUint32(4, true));
      const tried = [NvspVersion.V61, NvspVersion.V6, NvspVersion.V5, NvspVersion.V4].filter((v) => v >= expected[release]);
      expect(inits).toEqual(tried);
      expect(host.ndisVersion).toEqual(expected[release] <= NvspVersion.V4 ? { major: 6, minor: 1 } : { major: 6, minor: 30 });
      expect(dev.carrier).toBe(true);
      expect(host.violations).toEqual([]);
    });
  }
});

describe('probe', () => {
  it("the NVSP messages of Linux's probe, in order and byte for byte where they carry no handle", () => {
    const { wire } = nicRig({ record: true });
    const msgs = nvspOut(wire);
    const types = msgs.map((p) => nvspType(p));
    // INIT 6.1, NDIS config, NDIS version, receive buffer, send buffer, then RNDIS packets.
    expect(types.slice(0, 5)).toEqual([NvspMsgType.INIT, NvspMsgType.SEND_NDIS_CONFIG, NvspMsgType.SEND_NDIS_VER, NvspMsgType.SEND_RECV_BUF, NvspMsgType.SEND_SEND_BUF]);
    expect(hex(msgs[0]!)).toBe('01000000' + '01000600'.repeat(2) + '00'.repeat(28));
    // MTU 1514; capabilities: sriov (bit 2), ieee8021q (3), teaming (5), rsc (7).
    expect(hex(msgs[1]!)).toBe('7d000000' + 'ea050000' + '00000000' + 'ac00000000000000' + '00'.repeat(20));
    expect(hex(msgs[2]!)).toBe('64000000' + '06000000' + '1e000000' + '00'.repeat(28));
    expect(hex(msgs[3]!.subarray(8, 10))).toBe('feca');
    expect(types.slice(5).every((t) => t === NvspMsgType.SEND_RNDIS_PKT)).toBe(true);
    // RNDIS requests go as page buffers (GPA direct), as rndis_filter_send_request does.
    const rndis = wire.filter((p) => p.dir === 'to-host' && p.type === PacketType.DATA_USING_GPA_DIRECT);
    expect(rndis.length).toBeGreaterThanOrEqual(6);
  });

  it('eth0 has the permanent address the host reports; the kernel prints IP-Config with it', () => {
    const { m, dev, host } = nicRig({ nic: { mac: new Uint8Array([0x00, 0x15, 0x5d, 0x12, 0x34, 0x56]) } });
    expect(dev.name).toBe('eth0');
    expect(dev.macString).toBe('00:15:5d:12:34:56');
    expect(macString(host.adapter.permanentMac)).toBe('00:15:5d:12:34:56');
    const lines = m.kernel.log.records.map((r) => r.text);
    expect(lines).toContain('     device=eth0, hwaddr=00:15:5d:12:34:56, ipaddr=10.0.0.1, mask=255.255.255.0, gw=255.255.255.255');
    expect(lines.indexOf('IP-Config: Complete:')).toBeGreaterThan(lines.indexOf('hv_vmbus: registering driver hv_sock'));
    const debug = m.kernel.log.records.filter((r) => r.level === 'debug').map((r) => r.text);
    expect(debug).toContain(`hv_netvsc ${dev.busId} (unnamed net_device) (uninitialized): Device MAC 00:15:5d:12:34:56 link state up`);
    expect(debug).toContain(`hv_netvsc ${dev.busId} (unnamed net_device) (uninitialized): Receive sections: 1 sub_allocs: size 1728 count: 9709`);
    expect(m.kernel.journal.records.map((r) => r.text)).toContain('systemd-networkd: eth0: Gained carrier');
  });

  it('buffers: 16 MiB of 1728-byte receive sections and 170 send sections of 6144 bytes, as both sides see them', () => {
    const { host, nic } = nicRig();
    expect(nic.recvBuf).toMatchObject({ size: 16 << 20, sectionSize: 1728, sectionCount: 9709 });
    expect(nic.sendBuf).toMatchObject({ sectionSize: 6144, sectionCount: 170 });
    expect(host.recvBuffer?.pool.count).toBe(9709);
    expect(host.sendBuffer?.count).toBe(170);
    expect(host.adapter.packetFilter).toBe(0x8 | 0x4 | 0x1);
  });
});

describe('two VMs on a switch', () => {
  it('ping: the lines Linux prints, every request answered', () => {
    const { lab, vm } = labRig(2);
    const a = vm('a');
    const p = a.guest.ping('10.0.0.2');
    expect(lab.waitUntil(() => p.done, 20e9)).toBe(true);
    expect(p.lines[0]).toBe('PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.');
    expect(p.lines.slice(1, 4).map((l) => l.replace(/time=[\d.]+ ms/, 'time=T ms'))).toEqual([1, 2, 3].map((s) => `64 bytes from 10.0.0.2: icmp_seq=${s} ttl=64 time=T ms`));
    expect(p.lines).toContain('--- 10.0.0.2 ping statistics ---');
    expect(p.lines.find((l) => l.startsWith('3 packets'))).toMatch(/^3 packets transmitted, 3 received, 0% packet loss, time \d+ms$/);
    expect(p.lines.at(-1)).toMatch(/^rtt min\/avg\/max\/mdev = [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms$/);
    expect(vm('b').inet.stats.icmpInEchos).toBe(3);
  });

  it('UDP both ways with random payloads: every datagram echoed intact, checksums offloaded to the host and verified on receipt', () => {
    const { lab, vm } = labRig(2);
    const a = vm('a');
    const b = vm('b');
    let seed = 12345;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / 0x1000000;
    const sent: string[] = [];
    const got: string[] = [];
    const sock = a.inet.bindUdp(40000, (_src, _sport, data) => void got.push(hex(data)));
    const dst = parseIpv4('10.0.0.2')!;
    for (let i = 0; i < 60; i++) {
      const d = new Uint8Array(1 + Math.floor(rand() * 1400)).map(() => Math.floor(rand() * 256));
      sent.push(hex(d));
      expect(a.inet.sendUdp(dst, 40000, 7, d)).toBe(true);
      lab.runFor(1e6);
    }
    expect(lab.waitUntil(() => got.length === sent.length, 5e9)).toBe(true);
    expect(got).toEqual(sent);
    sock.close();
    expect(a.host.stats.txChecksummed).toBeGreaterThanOrEqual(60);
    expect(b.host.stats.txChecksummed).toBeGreaterThanOrEqual(60);
    expect(b.inet.stats.udpInErrors).toBe(0);
    expect(a.dev.features.txCsumUdp4).toBe(true);
  });

  it('a burst: netvsc packs up to max_pkt frames in a send section; the receiving host hands the frames of one instant to the guest in one transfer-page packet, completed once', () => {
    const { lab, vm } = labRig(2);
    const a = vm('a');
    const b = vm('b');
    const aWire = recordWire(a.m);
    const bWire = recordWire(b.m);
    const got: string[] = [];
    b.guest.raw('eth0', (f) => void got.push(hex(f)));
    const frames = Array.from({ length: 20 }, (_, i) => {
      const f = new Uint8Array(100).fill(i);
      writeEth(f, mac(2), mac(1), 0x88b5);
      return f;
    });
    const before = a.dev.stats.txPackets;
    expect(a.guest.raw('eth0', () => undefined).sendBatch(frames)).toBe(20);
    expect(lab.waitUntil(() => got.length === 20, 1e9)).toBe(true);
    expect(got).toEqual(frames.map(hex));
    // 8 + 8 + 4: INITIALIZE_CMPLT's max_pkt_per_msg (8); each RNDIS packet but a section's last padded to 8 bytes.
    const sends = aWire.filter((p) => p.dir === 'to-host' && p.type === PacketType.DATA_INBAND).map((p) => payloadOf(p));
    const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
    // A raw frame carries no PPI: the 8-byte header, rndis_packet and 100 bytes, 144 (a multiple of 8).
    const each = RNDIS_HEADER_SIZE + RndisPacket.size + 100;
    expect(each).toBe(144);
    expect(sends.map((m) => [nvspType(m), nvspBody(Nvsp1SendRndisPacket, m).send_buf_section_size])).toEqual([
      [NvspMsgType.SEND_RNDIS_PKT, 8 * each],
      [NvspMsgType.SEND_RNDIS_PKT, 8 * each],
      [NvspMsgType.SEND_RNDIS_PKT, 4 * each],
    ]);
    const xfers = bWire.filter((p) => p.dir === 'to-guest' && p.type === PacketType.DATA_USING_XFER_PAGES);
    expect(xfers.map((p) => u32(p.bytes, TransferPageHeader.offsets.range_cnt))).toEqual([20]);
    const comps = bWire.filter((p) => p.dir === 'to-host' && p.type === PacketType.COMP);
    expect(comps.map((p) => p.transId)).toEqual([xfers[0]!.transId]);
    expect(b.host.recvBuffer!.pool.outstanding).toBe(0);
    expect(a.dev.stats.txPackets - before).toBe(20);
  });

  it('the switch learns each MAC once it has sent, and floods only what it does not know', () => {
    const { lab, sw, vm } = labRig(3);
    const p = vm('a').guest.ping('10.0.0.3', { count: 1 });
    lab.waitUntil(() => p.done, 5e9);
    expect(p.received).toBe(1);
    expect(sw.learned).toBe(3);
    // VM b saw the ARP broadcast and the gratuitous ARPs, not the echo exchange.
    expect(vm('b').inet.stats.ipInReceives).toBe(0);
  });
});

describe('link state', () => {
  it('down: the guest loses carrier (systemd-networkd logs it) and pings fail; up: carrier back after the 2 s reconfig interval', () => {
    const { lab, vm } = labRig(2);
    const a = vm('a');
    a.host.setLink(false);
    lab.runFor(10e6);
    expect(a.dev.carrier).toBe(false);
    expect(a.m.kernel.journal.records.map((r) => r.text)).toContain('systemd-networkd: eth0: Lost carrier');
    const p = a.guest.ping('10.0.0.2', { count: 1, lingerNs: 1e9 });
    lab.waitUntil(() => p.done, 5e9);
    expect(p.received).toBe(0);
    a.host.setLink(true);
    lab.runFor(100e6);
    // netvsc_link_change applies one event per LINKCHANGE_INT (2 s).
    expect(a.dev.carrier).toBe(false);
    expect(lab.waitUntil(() => a.dev.carrier, 3e9)).toBe(true);
    expect(a.m.kernel.journal.records.filter((r) => r.text === 'systemd-networkd: eth0: Gained carrier').length).toBe(2);
    const q = a.guest.ping('10.0.0.2', { count: 1 });
    lab.waitUntil(() => q.done, 5e9);
    expect(q.received).toBe(1);
  });

  it('the guest reads the link state at probe: a NIC whose cable is out comes up without carrier', () => {
    const r = nicRig({});
    r.host.setLink(false);
    r.m.runFor(3e9);
    expect(r.dev.carrier).toBe(false);
    expect(r.host.stats.rxDropped.linkDown).toBe(0);
    r.sw.inject(new Uint8Array(60).fill(0xff));
    expect(r.host.stats.rxDropped.linkDown).toBe(1);
  });
});

describe('MTU', () => {
  it('9000 on both VMs: the NIC is set up again with the new NDIS MTU, large frames go as page buffers, jumbo pings work', () => {
    const { lab, vm } = labRig(2);
    const a = vm('a');
    const b = vm('b');
    a.dev.setMtu(9000);
    b.dev.setMtu(9000);
    const wire = recordWire(a.m);
    expect(a.host.adapter.mtu).toBe(9014);
    expect(a.host.recvBuffer?.sectionSize).toBe(9014 + 214);
    expect(a.dev.carrier).toBe(true);
    const p = a.guest.ping('10.0.0.2', { count: 2, size: 8000 });
    expect(lab.waitUntil(() => p.done, 10e9)).toBe(true);
    expect(p.lines[1]).toMatch(/^8008 bytes from 10.0.0.2: icmp_seq=1 ttl=64/);
    expect(p.received).toBe(2);
    // The 8042-byte frames do not fit a 6144-byte send section: they went as page buffers of data (channel_type 0).
    const pages = wire.filter((w) => w.dir === 'to-host' && w.type === PacketType.DATA_USING_GPA_DIRECT && new DataView(payloadOf(w).buffer, payloadOf(w).byteOffset).getUint32(4, true) === 0);
    expect(pages.length).toBe(2);
    // The old sub-channels and buffers are gone; the host saw a fresh negotiation.
    expect(a.host.violations).toEqual([]);
  });

  it('frames over the MTU: the host drops what the guest sends and what arrives for it, and counts', () => {
    const { lab, vm } = labRig(2);
    const a = vm('a');
    const b = vm('b');
    const big = new Uint8Array(2000);
    writeEth(big, mac(2), mac(1), EtherType.IPV4);
    const raw = a.guest.raw('eth0', () => undefined);
    expect(raw.send(big)).toBe('ok');
    lab.runFor(10e6);
    expect(a.host.stats.txDropped.tooBig).toBe(1);
    expect(a.m.kernel.log.records.map((r) => r.text)).toContain(`hv_netvsc ${a.dev.busId} eth0: nvsp_rndis_pkt_complete error status: 2`);
    b.host.deliver(big);
    expect(b.host.stats.rxDropped.tooBig).toBe(1);
  });
});

describe('vRSS', () => {
  /** A TCP/IPv4 SYN from `src:sport` to the VM. */
  const tcp = (dstMac: Uint8Array, src: number, dst: number, sport: number, dport: number) => {
    const f = new Uint8Array(ETH_HLEN + Ip4.LEN + Tcp.LEN);
    writeEth(f, dstMac, mac(99), EtherType.IPV4);
    writeIpv4(f, ETH_HLEN, { src, dst, protocol: IpProto.TCP, payload: Tcp.LEN, id: 1 });
    const t = ETH_HLEN + Ip4.LEN;
    put16(f, t + Tcp.SPORT, sport);
    put16(f, t + Tcp.DPORT, dport);
    put32(f, t + Tcp.SEQ, 1);
    f[t + Tcp.DOFF] = 0x50;
    f[t + Tcp.FLAGS] = 0x02;
    put16(f, t + Tcp.CHECKSUM, csumFinish(sum16(f, t, t + Tcp.LEN, pseudoSum(src, dst, IpProto.TCP, Tcp.LEN))));
    return f;
  };

  it('4 queues: three sub-channels open, the send table reaches the guest, and flows land on the queue the indirection table names', () => {
    const { m, sw, host, nic, dev } = nicRig({ vps: 4, nic: { queues: 4 } });
    m.runFor(100e6);
    expect(host.openQueues).toBe(4);
    expect(nic.numChn).toBe(4);
    expect(dev.queues).toBe(4);
    expect(nic.txTable).toEqual(Array.from({ length: 16 }, (_, i) => i % 4));
    const rss = host.adapter.rss!;
    expect(rss).toBeDefined();
    expect(hex(rss.key)).toBe(hex(NETVSC_HASH_KEY));
    const me = parseIpv4('10.0.0.1')!;
    const expected = [0, 0, 0, 0];
    for (let i = 0; i < 64; i++) {
      const src = parseIpv4(`192.168.${i}.${(i * 7) % 250}`)!;
      const sport = 1024 + i * 13;
      const q = rss.table[rssHash(rss.key, { src, dst: me, sport, dport: 80 }) & 127]!;
      expected[q]!++;
      sw.inject(tcp(mac(1), src, me, sport, 80));
    }
    m.runFor(10e6);
    expect(host.stats.rxPerChannel).toEqual(expected);
    expect(expected.filter((n) => n > 0).length).toBeGreaterThan(1);
    const perQueue = (nic.state().perQueue as { queue: number; rxPackets: number }[]).map((x) => x.rxPackets);
    expect(perQueue).toEqual(expected);
  });

  it('the guest asks for no more channels than it has CPUs, and the host grants no more than its queues', () => {
    const two = nicRig({ vps: 2, nic: { queues: 8 } });
    two.m.runFor(100e6);
    expect(two.nic.numChn).toBe(2);
    const one = nicRig({ vps: 4, nic: { queues: 1 } });
    expect(one.nic.numChn).toBe(1);
    expect(one.host.adapter.rss).toBeUndefined();
  });

  it('with the VM\'s channels used up, the host offers what it can and says so: the guest runs on fewer queues', () => {
    const r = nicRig({ vps: 4, nic: { queues: 4 }, channels: 3 });
    r.m.runFor(100e6);
    expect(r.nic.numChn).toBe(3); // the primary and two sub-channels
    expect(r.host.openQueues).toBe(3);
    expect(r.host.violations.some((v) => /sub-channel 3 of 3 not offered/.test(v))).toBe(true);
    expect(r.m.partition.hostFaults.total).toBe(0);
  });
});

describe('raw frames read in batches', () => {
  const burst = (n: number, size: number) =>
    Array.from({ length: n }, (_, i) => {
      const f = new Uint8Array(size).map((_, j) => (i * 7 + j) & 0xff);
      writeEth(f, mac(2), mac(1), 0x88b5);
      return f;
    });

  it('a batch reader sees the frames the per-frame reader sees, in order, with the same meta, delivered when the poll is over', () => {
    const { lab, vm } = labRig(2);
    const a = vm('a');
    const b = vm('b');
    const single: [string, unknown][] = [];
    const batched: [string, unknown][] = [];
    const batchSizes: number[] = [];
    b.guest.raw('eth0', (f, m) => void single.push([hex(f), m]));
    b.guest.rawBatch('eth0', (batch) => {
      batchSizes.push(batch.count);
      // The per-frame reader has already had every frame of this batch (taps run in order, per frame).
      expect(single.length).toBe(batched.length + batch.count);
      for (let i = 0; i < batch.count; i++) batched.push([hex(batch.frame(i)), batch.meta(i)]);
    });
    const frames = [...burst(20, 60), ...burst(5, 1514)];
    expect(a.guest.raw('eth0', () => undefined).sendBatch(frames)).toBe(25);
    expect(lab.waitUntil(() => batched.length === 25, 1e9)).toBe(true);
    expect(batched.map(([f]) => f)).toEqual(frames.map(hex));
    expect(batched).toEqual(single);
    expect(batchSizes.length).toBeLessThan(25); // several frames per poll
  });

  it('a full batch is delivered at once and refilled; a frame bigger than its buffer is dropped and counted; limits are checked', () => {
    const { lab, vm } = labRig(2);
    const a = vm('a');
    const b = vm('b');
    const sizes: number[] = [];
    const got: string[] = [];
    const sock = b.guest.rawBatch(
      'eth0',
      (batch) => {
        sizes.push(batch.count);
        for (let i = 0; i < batch.count; i++) got.push(hex(batch.frame(i)));
      },
      { frames: 3, bytes: 1024 },
    );
    const small = burst(10, 100);
    const big = burst(1, 1200);
    expect(a.guest.raw('eth0', () => undefined).sendBatch([...small.slice(0, 5), ...big, ...small.slice(5)])).toBe(11);
    expect(lab.waitUntil(() => got.length === 10, 1e9)).toBe(true);
    expect(got).toEqual(small.map(hex));
    expect(Math.max(...sizes)).toBe(3);
    expect(sock.dropped).toBe(1);
    expect(() => b.guest.rawBatch('eth0', () => undefined, { frames: 0 })).toThrow('frames 0 is not 1 to 65536');
    expect(() => b.guest.rawBatch('eth0', () => undefined, { bytes: 10 })).toThrow(/bytes 10 is not 64 to/);
    sock.close();
    a.guest.raw('eth0', () => undefined).sendBatch(small);
    lab.runFor(10e6);
    expect(got.length).toBe(10);
  });
});
