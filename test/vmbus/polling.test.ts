// The host polling a streaming ring (ServerOptions.pollNs, what the threaded machine uses, as
// Linux's NAPI does): once signalled, the guest→host ring stays masked and is read as packets
// come, without the guest signalling; a device that leaves packets (a paused reader) is not run
// again for the same ones; after pollNs with nothing new the mask comes off, and a packet written
// just before is not lost. Without pollNs nothing of this happens (every other test).
import { describe, expect, it } from 'vitest';
import type { GuestChannel } from '../../src/vmbus/client/channel.js';
import type { ChannelHandler, HostChannel } from '../../src/vmbus/server/channel.js';
import { DEVICE_LATENCY_NS } from '../../src/vmbus/server/partition-io.js';
import { ECHO_CLASS, instanceId, VmbusRig } from './harness.js';

const POLL_NS = 50_000;

/** A host device that reads what comes unless paused, counting its runs. */
class Sink implements ChannelHandler {
  runs = 0;
  paused = false;
  readonly payloads: number[] = [];
  /** Runs after the device has read: the guest writing at that moment, in a real VM's other thread. */
  meanwhile: (() => void) | undefined;
  signal(ch: HostChannel): void {
    this.runs++;
    if (!this.paused) ch.receive((p) => this.payloads.push(p.payload[0]!));
    const f = this.meanwhile;
    this.meanwhile = undefined;
    f?.();
  }
}

function rig(onPolledBatch?: () => void): { r: VmbusRig; dev: Sink; ch: () => GuestChannel } {
  const r = new VmbusRig({ vmbus: { pollNs: POLL_NS, ...(onPolledBatch ? { onPolledBatch } : {}) } });
  const dev = new Sink();
  r.server.offer({ classId: ECHO_CLASS, instanceId: instanceId(1) }, dev);
  let guest: GuestChannel | undefined;
  r.boot();
  r.client.registerDriver({
    name: 'sender',
    classIds: [ECHO_CLASS],
    probe: (c) => {
      c.open({ sendRingBytes: 16384, recvRingBytes: 16384, onEvent: () => undefined });
      guest = c;
    },
  });
  r.run();
  return { r, dev, ch: () => guest! };
}

const masked = (g: GuestChannel) => g.snapshot().outbound!.interruptMask;
const send = (g: GuestChannel, n: number) => expect(g.sendInband(new Uint8Array([n]))).toBe(true);

describe('the host polls a streaming ring (pollNs)', () => {
  it('reads without signals while polling, skips what a paused device left, unmasks when idle and loses nothing', () => {
    const { r, dev, ch } = rig();
    const g = ch();
    const now = () => r.m.nowNs;
    // The first packet into an empty ring signals; the device runs and polling begins.
    send(g, 1);
    expect(g.sigEvents).toBe(1);
    r.m.runFor(2 * DEVICE_LATENCY_NS);
    expect(dev.payloads).toEqual([1]);
    expect(r.server.polling).toBe(true);
    expect(masked(g)).toBe(1);
    // While polled, packets cost the guest no signal; each round reads what came.
    send(g, 2);
    send(g, 3);
    expect(g.sigEvents).toBe(1);
    expect(r.server.poll(now())).toBe(1);
    expect(dev.payloads).toEqual([1, 2, 3]);
    // A device that read runs once more (there may be more); one that read nothing does not.
    expect(r.server.poll(now())).toBe(1);
    expect(r.server.poll(now())).toBe(0);
    // A paused device leaves its packets: it runs once for them, not again for the same ones.
    dev.paused = true;
    send(g, 4);
    const runs = dev.runs;
    expect(r.server.poll(now())).toBe(1);
    expect(r.server.poll(now())).toBe(0);
    expect(dev.runs).toBe(runs + 1);
    // What the guest writes meanwhile is news: the device runs for it (and reads it, resumed).
    dev.paused = false;
    send(g, 5);
    expect(r.server.poll(now())).toBe(1);
    expect(dev.payloads).toEqual([1, 2, 3, 4, 5]);
    r.server.poll(now());
    dev.paused = true;
    send(g, 6);
    r.server.poll(now());
    // Nothing new for pollNs: the mask comes off, and what the device left stays its business.
    r.m.runFor(POLL_NS);
    r.server.poll(now());
    expect(r.server.polling).toBe(false);
    expect(masked(g)).toBe(0);
    dev.paused = false;
    r.m.runFor(2 * DEVICE_LATENCY_NS);
    expect(dev.payloads).toEqual([1, 2, 3, 4, 5]);
  });

  it('a packet written as polling ends, just before the mask comes off, is read', () => {
    const { r, dev, ch } = rig();
    const g = ch();
    send(g, 1);
    r.m.runFor(2 * DEVICE_LATENCY_NS);
    r.server.poll(r.m.nowNs);
    r.m.runFor(POLL_NS);
    // The guest writes while the ring is still masked (so it does not signal), right before the
    // server clears the mask: the server must look once more.
    const host = [...r.server.channels.values()][0]!;
    const unmask = host.unmaskIncoming.bind(host);
    host.unmaskIncoming = () => {
      send(g, 2);
      unmask();
    };
    r.server.poll(r.m.nowNs);
    expect(r.server.polling).toBe(false);
    expect(g.sigEvents).toBe(1);
    r.m.runFor(2 * DEVICE_LATENCY_NS);
    expect(dev.payloads).toEqual([1, 2]);
  });

  it('packets the guest writes while the device runs are read at the next round, even as many as it read (a busy VM)', () => {
    const { r, dev, ch } = rig();
    const g = ch();
    send(g, 1);
    r.m.runFor(2 * DEVICE_LATENCY_NS);
    // The device reads one packet, and the guest writes one meanwhile: the count is unchanged.
    send(g, 2);
    dev.meanwhile = () => send(g, 3);
    r.server.poll(r.m.nowNs);
    expect(dev.payloads).toEqual([1, 2]);
    r.server.poll(r.m.nowNs);
    expect(dev.payloads).toEqual([1, 2, 3]);
  });

  it('a polled ring is read 64 packets to a batch (NAPI_POLL_WEIGHT), each batch committed, and signalled to onPolledBatch, before the next is read', () => {
    // Where the guest's read index stood at each commit the host reported.
    const readAt: number[] = [];
    const guest: { ch?: GuestChannel } = {};
    const { r, dev, ch } = rig(() => readAt.push(guest.ch!.snapshot().outbound!.readIndex));
    const g = (guest.ch = ch());
    send(g, 0);
    r.m.runFor(2 * DEVICE_LATENCY_NS);
    expect(r.server.polling).toBe(true);
    readAt.length = 0;
    // 150 one-byte packets of 32 ring bytes each (descriptor, padded payload, trailer).
    const start = g.snapshot().outbound!.readIndex;
    for (let i = 1; i <= 150; i++) send(g, i);
    expect(g.sigEvents).toBe(1);
    expect(r.server.poll(r.m.nowNs)).toBe(1);
    expect(dev.payloads).toEqual(Array.from({ length: 151 }, (_, i) => i));
    expect(readAt).toEqual([64, 128, 150].map((n) => start + 32 * n));
  });
});
