// Every packet kind through a live channel (vmbus.md §8): GPA-direct requests whose data the
// host reads from guest pages, transfer-page packets naming ranges of a buffer the guest shared
// by GPADL, and completions matched through the requestor.
import { describe, expect, it } from 'vitest';
import { PfnList } from '../../src/memory/pfn-list.js';
import { inband, transferPages } from '../../src/vmbus/packet.js';
import type { HostChannel } from '../../src/vmbus/server/channel.js';
import { PacketType } from '../../src/vmbus/wire/constants.js';
import type { ParsedPacket } from '../../src/vmbus/wire/packets.js';
import { ECHO_CLASS, EchoDriver, instanceId, text, VmbusRig } from './harness.js';

describe('packet kinds end to end', () => {
  it('GPA-direct: the host reads the request\'s pages and completes it; the requestor gives back the context', () => {
    const rig = new VmbusRig();
    const seen: ParsedPacket[] = [];
    let data = '';
    const host = rig.server.offer(
      { classId: ECHO_CLASS, instanceId: instanceId(1) },
      {
        packet: (ch: HostChannel, p: ParsedPacket) => {
          seen.push(p);
          const r = p.ranges![0]!;
          const bytes = new Uint8Array(r.byteCount);
          new PfnList(r.pfns, r.byteOffset, r.byteCount).gather(rig.m.partition.memory, 0, bytes);
          data = new TextDecoder().decode(bytes);
          ch.sendCompletion(p.transId, text('done'));
        },
      },
    );
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    const ch = drv.channels[0]!;
    // A buffer that starts 100 bytes into a page and crosses into the next one.
    const page = rig.m.kernel.mm.allocContiguous(8192);
    const message = 'x'.repeat(4000) + 'END';
    rig.m.partition.memory.write(page + 100, text(message));
    const id = ch.sendGpaDirect([{ byteCount: message.length, byteOffset: 100, pfns: [page / 4096, page / 4096 + 1] }], text('scsi-cdb'), { op: 'read' });
    expect(id).toBe(1n);
    rig.run();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ type: PacketType.DATA_USING_GPA_DIRECT, completionRequested: true, transId: 1n });
    expect(new TextDecoder().decode(seen[0]!.payload).replace(/\0+$/, '')).toBe('scsi-cdb');
    expect(data).toBe(message);
    const completion = drv.inbox.get(ch)![0]!;
    expect(completion.type).toBe(PacketType.COMP);
    expect(ch.completeRequest(completion.transId)).toEqual({ op: 'read' });
    expect(host.state).toBe('open');
  });

  it('a completion written in place from the trans id\'s two halves is the packet sendCompletion writes', () => {
    const rig = new VmbusRig();
    const ids = [1n, 0xfffffffen, 0x1_0000_0000n, 0x8000_0000_0000_0001n, (1n << 64n) - 1n];
    const payloads = [new Uint8Array(0), text('done'), text('a payload that is not a multiple of eight'), new Uint8Array(40).fill(0xa5)];
    let host: HostChannel | undefined;
    rig.server.offer({ classId: ECHO_CLASS, instanceId: instanceId(1) }, { open: (ch: HostChannel) => ((host = ch), 0), packet: () => undefined });
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    const ch = drv.channels[0]!;
    for (const id of ids) {
      for (const payload of payloads) {
        expect(host!.sendCompletion(id, payload)).toBe(true);
        expect(host!.sendCompletionOf(Number(id & 0xffffffffn), Number(id >> 32n), payload)).toBe(true);
        rig.run();
        const [a, b] = drv.inbox.get(ch)!.splice(0);
        expect(a).toMatchObject({ type: PacketType.COMP, transId: id, flags: 0 });
        expect(b).toEqual(a);
        expect([...b!.payload]).toEqual([...a!.payload]);
      }
    }
  });

  it('a request the guest writes in place is the packet inband() makes, its id the requestor\'s', () => {
    const rig = new VmbusRig();
    const seen: ParsedPacket[] = [];
    rig.server.offer({ classId: ECHO_CLASS, instanceId: instanceId(1) }, { signal: (ch: HostChannel) => void ch.receive((p) => seen.push(p)) });
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    const ch = drv.channels[0]!;
    const payloads = [new Uint8Array(0), text('x'), text('eight!!!'), new Uint8Array(40).map((_, i) => i + 1), new Uint8Array(1001).fill(7)];
    const ids = payloads.map((p, i) => ch.sendRequest(p, { i })!);
    rig.run();
    expect(seen).toHaveLength(payloads.length);
    payloads.forEach((payload, i) => {
      const [descriptor] = inband(payload, ids[i]!, true);
      const d = new DataView(descriptor!.buffer);
      expect(seen[i]).toMatchObject({ type: d.getUint16(0, true), flags: d.getUint16(6, true), transId: ids[i], completionRequested: true });
      const padded = new Uint8Array(Math.ceil(payload.length / 8) * 8);
      padded.set(payload);
      expect([...seen[i]!.payload]).toEqual([...padded]);
    });
    expect(new Set(ids).size).toBe(payloads.length);
    expect(ch.completeRequestOf(Number(ids[3]!), 0)).toEqual({ i: 3 });
  });

  it('transfer pages: ranges inside a buffer the guest shared, completed by the guest', () => {
    const rig = new VmbusRig();
    const completions: bigint[] = [];
    const host = rig.server.offer({ classId: ECHO_CLASS, instanceId: instanceId(1) }, { packet: (_ch, p) => void completions.push(p.transId) });
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    const ch = drv.channels[0]!;
    // The guest shares a receive buffer; the host learns its handle (netvsc sends it in a message).
    const buffer = rig.m.kernel.mm.allocContiguous(16384);
    const handle = ch.establishGpadl(buffer, 16384);
    const g = host.gpadl(handle)!;
    expect(g.ranges[0]!.byteCount).toBe(16384);
    const list = g.pfnList();
    list.scatter(rig.m.partition.memory, 5000, text('first'));
    list.scatter(rig.m.partition.memory, 12000, text('second!'));
    host.send(transferPages(1, [{ byteCount: 5, byteOffset: 5000 }, { byteCount: 7, byteOffset: 12000 }], 42n));
    rig.run();
    const p = drv.inbox.get(ch)![0]!;
    expect(p).toMatchObject({ type: PacketType.DATA_USING_XFER_PAGES, transferPageSet: 1, transId: 42n });
    const got = p.transferRanges!.map((r) => new TextDecoder().decode(rig.m.partition.memory.read(buffer + r.byteOffset, r.byteCount)));
    expect(got).toEqual(['first', 'second!']);
    ch.sendCompletion(p.transId);
    rig.run();
    expect(completions).toEqual([42n]);
    // Teardown: the host no longer sees the buffer.
    ch.teardownGpadl(handle);
    expect(host.gpadl(handle)).toBeUndefined();
  });
});
