// A peer that breaks the rules: what each side does about it, and that the broken channel can
// start afresh while the others carry on.
import { describe, expect, it } from 'vitest';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { Ctl } from '../../src/vmbus/ring/memory.js';
import { VmbusServer, type ServerIo } from '../../src/vmbus/server/server.js';
import { ChannelMessageType as T, VmbusVersion } from '../../src/vmbus/wire/constants.js';
import { decodeChannelMessage, encodeChannelMessage } from '../../src/vmbus/wire/messages.js';
import { ECHO_CLASS, EchoDriver, offerEcho, text, VmbusRig } from './harness.js';

/** The guest→host ring's control words of a guest channel, as the host maps them. */
function outboundControl(rig: VmbusRig, relid: number): Uint32Array {
  const host = rig.server.channels.get(relid)!;
  const g = host.gpadl(host.ringGpadl!)!;
  return new Uint32Array(rig.m.partition.memory.buffer, g.ranges[0]!.pfns[0]! * 4096, 1024);
}

describe('hostile peers', () => {
  it('a guest that leaves fewer bytes than a descriptor: the host calls the ring corrupt, once, and the other channel keeps working', () => {
    const rig = new VmbusRig();
    const a = offerEcho(rig, 1);
    const b = offerEcho(rig, 2);
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    const ctl = outboundControl(rig, 1);
    // Advance the guest→host write index by 8 bytes: not a packet, never going to be one.
    Atomics.store(ctl, Ctl.WRITE_INDEX, Atomics.load(ctl, Ctl.READ_INDEX) + 8);
    rig.m.partition.signalEvent(a.ch.connectionId, 0, 0);
    rig.run();
    expect(a.ch.corrupt).toMatch(/less than a descriptor/);
    const events = rig.m.partition.clock.nextEventNs();
    // No endless re-reading: nothing of the channel's is left scheduled.
    expect(events === undefined || events > rig.m.nowNs).toBe(true);
    const other = drv.channels.find((c) => c.relid === b.ch.relid)!;
    other.sendInband(text('still fine'));
    rig.run();
    expect(drv.payloads(other)).toEqual(['still fine']);
  });

  it('a host that breaks the guest\'s outbound ring: the driver\'s callback fails, the interrupt path does not throw', () => {
    const rig = new VmbusRig();
    const { ch: host } = offerEcho(rig, 1);
    rig.boot();
    const ch = rig.client.channels[0]!;
    ch.open({ sendRingBytes: 16384, recvRingBytes: 16384, onEvent: (c) => c.sendInband(text('reply')) });
    // The host's read index on the guest's outbound ring becomes unaligned nonsense.
    Atomics.store(outboundControl(rig, 1), Ctl.READ_INDEX, 3);
    host.sendInband(text('poke'));
    expect(() => rig.run()).not.toThrow();
    expect(ch.corrupt).toMatch(/read_index/);
    expect(ch.writable()).toBe(0);
    expect(rig.m.kernel.log.lines().some((l) => l.includes('callback failed'))).toBe(true);
  });

  it('a corrupt channel starts afresh when it is closed and opened again, on both sides', () => {
    const rig = new VmbusRig();
    const { ch: host } = offerEcho(rig, 1);
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    const ch = drv.channels[0]!;
    Atomics.store(outboundControl(rig, 1), Ctl.WRITE_INDEX, 5);
    rig.m.partition.signalEvent(host.connectionId, 0, 0);
    rig.run();
    expect(host.corrupt).toBeDefined();
    ch.close();
    drv.openChannel(ch);
    expect(host.corrupt).toBeUndefined();
    ch.sendInband(text('again'));
    rig.run();
    expect(drv.payloads(ch)).toEqual(['again']);
  });

  it('OPENCHANNEL_RESULT is posted before the first interrupt for packets the device wrote while opening', () => {
    const rig = new VmbusRig();
    const { dev } = offerEcho(rig, 1);
    dev.greeting = text('hello early');
    rig.boot();
    const order: string[] = [];
    rig.m.partition.events.on((e) => {
      if (e.kind === 'message-queued') order.push('message');
      if (e.kind === 'signal' && e.dir === 'to-guest') order.push('event');
    });
    rig.client.registerDriver(new EchoDriver());
    // GPADL_CREATED, then OPENCHANNEL_RESULT, then the event.
    expect(order.slice(0, 3)).toEqual(['message', 'message', 'event']);
  });

  it('a guest without monitor pages is offered no monitor, even for a device that asks for one', () => {
    const posted: Uint8Array[] = [];
    const io: ServerIo = { memory: new GuestMemory({ size: 1 << 20 }), vpCount: 1, post: (_vp, _s, m) => void posted.push(m), listen: () => undefined, signalGuest: () => undefined, watchMonitor: () => undefined, defer: (f) => f(), fault: (_w, e) => {
      throw e;
    } };
    const server = new VmbusServer(io, { maxVersion: VmbusVersion.WIN10_V5_3 });
    server.offer({ classId: '11111111-2222-4333-8444-555555555555', instanceId: '11111111-2222-4333-8444-000000000001', monitor: true }, {});
    server.handleMessage(encodeChannelMessage(T.INITIATE_CONTACT, { vmbus_version_requested: VmbusVersion.WIN10_V5_3, target_vcpu: 0, msg_sint: 2, msg_vtl: 0, reserved: 0, feature_flags: 0, monitor_page1: 0n, monitor_page2: 0n }), 0);
    server.handleMessage(encodeChannelMessage(T.REQUESTOFFERS, {}), 0);
    const offerMsg = posted.map((p) => decodeChannelMessage(p)).find((m) => m.type === T.OFFERCHANNEL)!;
    expect(offerMsg.type === T.OFFERCHANNEL && offerMsg.value._monitor.monitor_allocated).toBe(0);
  });

  it('closing a sub-channel by itself sends nothing: it closes with its primary (vmbus_disconnect_ring)', () => {
    const rig = new VmbusRig();
    offerEcho(rig, 1);
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    offerEcho(rig, 1, { subChannelIndex: 1 });
    rig.run();
    const sub = drv.channels[0]!.subchannels[0]!;
    const from = rig.posted.length;
    sub.close();
    expect(rig.names(from)).toEqual([]);
    drv.channels[0]!.close();
    expect(rig.names(from)).toEqual(['CLOSECHANNEL(2)', 'GPADL_TEARDOWN(2)', 'CLOSECHANNEL(1)', 'GPADL_TEARDOWN(1)']);
  });

  it('a probe that waits for its sub-channels is not blocked by them (separate work queues)', () => {
    const rig = new VmbusRig();
    rig.boot();
    const subs: number[] = [];
    let probed = false;
    rig.client.registerDriver({
      name: 'waits_for_subchannels',
      classIds: [ECHO_CLASS],
      probe: (ch) => {
        ch.onSubchannel = (sub) => void subs.push(sub.relid);
        ch.open({ sendRingBytes: 16384, recvRingBytes: 16384, onEvent: () => undefined });
        // As netvsc asks the host for sub-channels in a device message and waits for them.
        offerEcho(rig, 1, { subChannelIndex: 1 });
        offerEcho(rig, 1, { subChannelIndex: 2 });
        probed = rig.m.kernel.platform.waitUntil(() => subs.length === 2, 1e9);
      },
    });
    // Offered after the driver registered: the probe runs on the primaries' work queue.
    offerEcho(rig, 1);
    rig.run();
    expect(probed).toBe(true);
    expect(subs).toEqual([2, 3]);
  });
});
