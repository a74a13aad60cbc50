// No exception from host code crosses into the guest's hypercall or the host's run loop: a
// device that throws is caught where the guest (or the clock) entered it, recorded as a host
// fault, and the guest sees the status the protocol gives it.
import { describe, expect, it } from 'vitest';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';
import { HvStatus } from '../../src/tlfs/status.js';
import { Machine } from '../../src/vm/machine.js';
import { ThreadedMachine } from '../../src/vm/threaded/machine.js';
import { STATUS_UNSUCCESSFUL } from '../../src/vmbus/server/server.js';
import { ChannelMessageType as T } from '../../src/vmbus/wire/constants.js';
import { encodeChannelMessage } from '../../src/vmbus/wire/messages.js';
import { EchoDriver, ECHO_CLASS, instanceId, offerEcho, text, VmbusRig } from '../vmbus/harness.js';
import { HostileGuest } from './guest.js';

const boom = (what: string) => () => {
  throw new Error(`${what} failed`);
};

describe('a throwing device is a recorded host fault, never an exception in the guest or the run loop', () => {
  it('open throws: the guest gets OPENCHANNEL_RESULT with a failure status', () => {
    const h = new HostileGuest();
    h.server.offer({ classId: ECHO_CLASS, instanceId: instanceId(1) }, { open: boom('open') });
    h.connect();
    h.gpadl(1, 0xe1e10, 0x100, 8);
    expect(h.drain().map((m) => m.name)).toEqual(['GPADL_CREATED']);
    expect(h.open(1, 0xe1e10, 4)).toBe(HvStatus.SUCCESS);
    const [result] = h.drain();
    expect(result?.type === T.OPENCHANNEL_RESULT && result.value.status).toBe(STATUS_UNSUCCESSFUL);
    expect(h.partition.hostFaults.items).toEqual([{ where: `channel 1 (${ECHO_CLASS}) open`, error: 'Error: open failed', ns: 0 }]);
    expect(h.server.channels.get(1)!.state).toBe('offered');
  });

  it('signal throws: HvCallSignalEvent succeeds, the fault is recorded, the machine runs on and the other channel works', () => {
    const rig = new VmbusRig();
    const { ch } = offerEcho(rig, 1);
    const { ch: other } = offerEcho(rig, 2);
    (ch.handler as { signal: unknown }).signal = boom('signal');
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    const [a, b] = drv.channels;
    a!.sendInband(text('to the broken device'));
    expect(() => rig.run()).not.toThrow();
    expect(rig.m.partition.hostFaults.items.map((f) => [f.where, f.error])).toEqual([[`channel ${ch.relid} (${ECHO_CLASS}) signal`, 'Error: signal failed']]);
    b!.sendInband(text('to the good one'));
    rig.run();
    expect(drv.payloads(b!)).toEqual(['to the good one']);
    expect(other.isOpen).toBe(true);
  });

  it('close and revoked throw: the channel still closes and is rescinded', () => {
    const rig = new VmbusRig();
    const ch = rig.server.offer({ classId: ECHO_CLASS, instanceId: instanceId(1) }, { close: boom('close'), revoked: boom('revoked') });
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    drv.channels[0]!.close();
    rig.run();
    expect(ch.state).toBe('offered');
    rig.server.revoke(ch);
    rig.run();
    expect(rig.m.partition.hostFaults.items.map((f) => f.where)).toEqual([`channel 1 (${ECHO_CLASS}) close`, `channel 1 (${ECHO_CLASS}) revoked`]);
    expect(rig.server.channels.has(1)).toBe(false); // the guest released the relid
  });

  it('a device timer that throws: recorded, the clock moves on, later timers fire', () => {
    const m = new Machine({ devices: [] });
    const ctx = m.host.context!;
    const fired: number[] = [];
    ctx.schedule(1000, boom('timer'));
    ctx.schedule(2000, () => void fired.push(m.nowNs));
    expect(() => m.runFor(5000)).not.toThrow();
    expect(fired).toEqual([2000]);
    expect(m.partition.hostFaults.items).toEqual([{ where: 'device timer', error: 'Error: timer failed', ns: 1000 }]);
  });

  it('the hv_sock provider throws on a connection request: the guest is refused, the fault recorded', () => {
    const h = new HostileGuest();
    h.connect();
    h.server.tlConnect = boom('tl_connect');
    const request = encodeChannelMessage(T.TL_CONNECT_REQUEST, { guest_endpoint_id: instanceId(1), host_service_id: instanceId(2) });
    expect(h.post(request)).toBe(HvStatus.SUCCESS);
    expect(h.drain().map((m) => m.name)).toEqual(['TL_CONNECT_RESULT']);
    expect(h.partition.hostFaults.at(-1)!.where).toBe('hv_sock connect');
  });

  it('a bug in the server itself: HvCallPostMessage still answers SUCCESS (the message was queued), the fault is recorded', () => {
    const h = new HostileGuest();
    (h.server as unknown as { onRequestOffers: unknown }).onRequestOffers = boom('server');
    h.connect();
    expect(h.partition.hostFaults.items.map((f) => [f.where, f.error])).toEqual([['VMBus message port', 'Error: server failed']]);
  });

  it('the host faults are a bounded record: counted, the most recent kept', () => {
    const m = new Machine({ devices: [], budget: { hostFaults: 3 } });
    for (let i = 0; i < 10; i++) m.host.context!.schedule(i, boom(`timer ${i}`));
    m.runFor(100);
    expect(m.partition.hostFaults.total).toBe(10);
    expect(m.partition.hostFaults.items.map((f) => f.error)).toEqual(['Error: timer 7 failed', 'Error: timer 8 failed', 'Error: timer 9 failed']);
  });

  it('with the guest in a worker: a device that throws at open does not stop the host loop; the guest boots', async () => {
    const m = new ThreadedMachine({ release: 'ws2022', vps: 2, memory: 64 << 20, devices: [], speed: 4 });
    m.vmbus!.server.offer({ classId: DeviceClass.HEART_BEAT, instanceId: '57164f39-9115-4e78-ab55-382f3bd5422d' }, { open: boom('heartbeat open') });
    const r = await m.run<string>(new URL('../../dist/vm/threaded/workloads/boot.js', import.meta.url), undefined, 30_000);
    expect(r.error).toBeUndefined();
    expect(r.result).toBe('booted');
    expect(m.partition.hostFaults.items.map((f) => f.where)).toEqual([`channel 1 (${DeviceClass.HEART_BEAT}) open`]);
  }, 60_000);
});
