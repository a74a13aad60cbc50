// The channel protocol end to end (vmbus.md §3, §5, §6): a Linux-like guest and the host server
// on one partition, meeting only in guest memory and the SynIC.
import { describe, expect, it } from 'vitest';
import { RELEASE_IDS, release } from '../../src/hypervisor/release.js';
import { Machine } from '../../src/vm/machine.js';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';
import { VmbusError } from '../../src/vmbus/client/errors.js';
import { ChannelFlags, ChannelMessageType as T, LINUX_VERSION_ORDER, PacketType, VMBUS_PIPE_TYPE_MESSAGE, VmbusVersion, versionString, makeVersion } from '../../src/vmbus/wire/constants.js';
import { decodeChannelMessage, PipeUserDefined } from '../../src/vmbus/wire/messages.js';
import { EchoDriver, ECHO_CLASS, instanceId, offerEcho, text, VmbusRig } from './harness.js';

describe('connecting (vmbus.md §3.3)', () => {
  it.each(RELEASE_IDS)('%s: the guest settles on the release\'s version, trying newer ones first', (id) => {
    const rig = new VmbusRig({ release: id }).boot();
    const v = release(id).vmbusVersion;
    const want = makeVersion(v.major, v.minor);
    expect(rig.client.version).toBe(want);
    expect(rig.server.connection?.version).toBe(want);
    expect(rig.m.kernel.log.lines().filter((l) => l.includes('hv_vmbus')).map((l) => l.slice(15))).toEqual([`hv_vmbus: Vmbus version:${versionString(want)}`]);
    // Every refused INITIATE_CONTACT came before the accepted one, newest first; the 5.x ones
    // never reach a host older than 5.0 (INVALID_CONNECTION_ID on connection 4).
    const tried = rig.posted.filter((p) => p.name === 'INITIATE_CONTACT').map((p) => new DataView(p.payload.buffer).getUint32(8, true));
    expect(tried[tried.length - 1]).toBe(want);
    expect(tried.every((t) => t >= want && (want >= VmbusVersion.WIN10_V5 || t < VmbusVersion.WIN10_V5))).toBe(true);
    expect(rig.names().slice(-1)).toEqual(['REQUESTOFFERS']);
  });

  it.each(LINUX_VERSION_ORDER.map((v) => [versionString(v), v] as const))('a host whose newest version is %s: negotiated, in the right form, on the right connection', (_name, v) => {
    const rig = new VmbusRig({ vmbus: { maxVersion: v }, kernel: { vmbusClient: { versions: LINUX_VERSION_ORDER } } }).boot();
    expect(rig.client.version).toBe(v);
    const contact = rig.posted.filter((p) => p.name === 'INITIATE_CONTACT').at(-1)!.payload;
    const m = decodeChannelMessage(contact);
    expect(m.type).toBe(T.INITIATE_CONTACT);
    // From 5.0 the contact names the SINT (2) where older ones gave the interrupt page's GPA.
    if (v >= VmbusVersion.WIN10_V5) expect(m.value).toMatchObject({ msg_sint: 2, msg_vtl: 0 });
    else expect(m.value).toMatchObject({ interrupt_page: BigInt(rig.client.interruptPage) });
    // Every message after the contact goes to connection 1 (msg_conn_id from 5.0, fixed before).
    expect(rig.client.msgConnId).toBe(1);
    expect(rig.server.connection).toMatchObject({ version: v, sint: 2, targetVp: 0 });
  });

  it('offers carry their class and instance GUIDs, flags and user area, pipe mode included', () => {
    const rig = new VmbusRig();
    const user = PipeUserDefined.encode({ pipe_mode: VMBUS_PIPE_TYPE_MESSAGE, user_def: new Uint8Array(116).fill(7) });
    rig.server.offer({ classId: ECHO_CLASS.toUpperCase(), instanceId: instanceId(4), flags: ChannelFlags.NAMED_PIPE_MODE, userDefined: user, mmioMegabytes: 16 }, {});
    rig.boot();
    const o = rig.client.channels[0]!.offer;
    expect(o).toMatchObject({ classId: ECHO_CLASS, instanceId: instanceId(4), flags: ChannelFlags.NAMED_PIPE_MODE, mmioMegabytes: 16, subChannelIndex: 0, dedicatedInterrupt: true });
    expect(PipeUserDefined.decode(o.userDefined).pipe_mode).toBe(VMBUS_PIPE_TYPE_MESSAGE);
    expect(o.connectionId).toBe(rig.server.channels.get(o.relid)!.connectionId);
  });

  it('5.0 and later: INITIATE_CONTACT on connection 4, then everything on msg_conn_id', () => {
    const rig = new VmbusRig({ release: 'ws2022' }).boot();
    expect(rig.client.msgConnId).toBe(1);
    expect(rig.posted.map((p) => p.name)).toEqual(['INITIATE_CONTACT', 'REQUESTOFFERS']);
  });

  it('6.0: the feature flags are the intersection of what the guest asks and the host grants', () => {
    const rig = new VmbusRig({
      vmbus: { maxVersion: VmbusVersion.WIN10_V6_0, features: 0x10 | 0x40 },
      kernel: { vmbusClient: { versions: [VmbusVersion.WIN10_V6_0, VmbusVersion.WIN10_V5_3], featureFlags: 0x10 | 0x01 } },
    }).boot();
    expect(rig.client.version).toBe(VmbusVersion.WIN10_V6_0);
    expect(rig.client.features).toBe(0x10);
    expect(rig.server.connection?.featureFlags).toBe(0x10);
  });

  it('a host with no VMBus: every version is refused at the post, the guest says so and boots on', () => {
    const m = new Machine({ vps: 1, memory: 64 << 20, vmbus: false });
    m.boot();
    expect(m.kernel.stage).toBe('booted');
    expect(m.kernel.vmbus?.status).toBe('disconnected');
    expect(m.kernel.log.lines().filter((l) => l.includes('hv_vmbus')).map((l) => l.slice(15))).toEqual(['hv_vmbus: Unable to connect to host']);
  });
});

describe('offers, drivers, open and close (§3.4, §6.2, §6.3)', () => {
  it('boot-time offers arrive in relid order; a driver registered later binds to them', () => {
    const rig = new VmbusRig();
    offerEcho(rig, 1);
    offerEcho(rig, 2);
    rig.boot();
    expect(rig.client.channels.map((c) => [c.relid, c.offer.instanceId, c.state])).toEqual([
      [1, instanceId(1), 'open'],
      [2, instanceId(2), 'open'],
    ]);
    const drv = new EchoDriver();
    rig.client.registerDriver(drv);
    expect(drv.channels.map((c) => c.state)).toEqual(['opened', 'opened']);
    expect(rig.server.state().channels.map((c) => c.state)).toEqual(['open', 'open']);
    expect(rig.m.kernel.log.lines()).toContainEqual(expect.stringContaining('hv_vmbus: registering driver hv_echo'));
  });

  it('packets go both ways; requests get completions through the requestor', () => {
    const rig = new VmbusRig();
    const { dev } = offerEcho(rig);
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    const ch = drv.channels[0]!;
    expect(ch.sendInband(text('hello'), 7n)).toBe(true);
    const id = ch.sendRequest(text('ping'), 'my-context');
    expect(id).toBe(1n);
    rig.run();
    expect(dev.received.map((p) => p.transId)).toEqual([7n, 1n]);
    const inbox = drv.inbox.get(ch)!;
    expect(inbox.map((p) => [p.type, p.transId])).toEqual([
      [PacketType.DATA_INBAND, 7n],
      [PacketType.COMP, 1n],
    ]);
    expect(ch.completeRequest(1n)).toBe('my-context');
    expect(ch.completeRequest(1n)).toBeUndefined(); // no longer outstanding
    expect(drv.payloads(ch)).toEqual(['hello', 'ping']);
  });

  it('close: CLOSECHANNEL, then the ring GPADL torn down; the channel can be opened again', () => {
    const rig = new VmbusRig();
    const { dev } = offerEcho(rig);
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    const ch = drv.channels[0]!;
    const from = rig.posted.length;
    ch.close();
    expect(rig.names(from)).toEqual(['CLOSECHANNEL(1)', 'GPADL_TEARDOWN(1)']);
    expect(ch.state).toBe('open');
    expect(rig.server.state()).toMatchObject({ gpadls: 0, channels: [{ state: 'offered' }] });
    expect(dev.closes).toBe(1);
    drv.openChannel(ch);
    expect(ch.state).toBe('opened');
    expect(dev.opens).toBe(2);
  });

  it('GPADL handles count up from 0xE1E10; a host refusal of the open tears the GPADL down', () => {
    const rig = new VmbusRig();
    const { dev } = offerEcho(rig);
    dev.openStatus = 0xc0000001;
    rig.boot();
    const ch = rig.client.channels[0]!;
    const from = rig.posted.length;
    expect(() => ch.open({ sendRingBytes: 16384, recvRingBytes: 16384, onEvent: () => undefined })).toThrow(VmbusError);
    expect(rig.names(from)).toEqual(['GPADL_HEADER(1)', 'OPENCHANNEL(1)', 'GPADL_TEARDOWN(1)']);
    expect(new DataView(rig.posted[from]!.payload.buffer).getUint32(12, true)).toBe(0xe1e10);
    expect(ch.state).toBe('open');
  });

  it('sub-channels: offered later with the same GUIDs, opened by the primary\'s driver, closed before it', () => {
    const rig = new VmbusRig();
    offerEcho(rig, 1);
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    const primary = drv.channels[0]!;
    offerEcho(rig, 1, { subChannelIndex: 1 });
    offerEcho(rig, 1, { subChannelIndex: 2 });
    rig.run();
    expect(primary.subchannels.map((s) => [s.relid, s.state])).toEqual([
      [2, 'opened'],
      [3, 'opened'],
    ]);
    const from = rig.posted.length;
    primary.close();
    expect(rig.names(from)).toEqual(['CLOSECHANNEL(2)', 'GPADL_TEARDOWN(2)', 'CLOSECHANNEL(3)', 'GPADL_TEARDOWN(3)', 'CLOSECHANNEL(1)', 'GPADL_TEARDOWN(1)']);
  });

  it('MODIFYCHANNEL moves interrupts to another VP; from 5.3 the host answers', () => {
    const rig = new VmbusRig({ release: 'ws2022' });
    const { ch: host } = offerEcho(rig);
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    const ch = drv.channels[0]!;
    ch.setTargetCpu(1);
    expect(host.targetVp).toBe(1);
    const irqs = () => rig.m.kernel.cpus.map((c) => c.irqs.get(0xf3) ?? 0);
    const before = irqs();
    ch.sendInband(text('to cpu1'));
    rig.run();
    expect(irqs()[0]).toBe(before[0]);
    expect(irqs()[1]).toBeGreaterThan(before[1]!);
    expect(drv.payloads(ch)).toEqual(['to cpu1']);
  });

  it('MODIFYCHANNEL before 5.3 has no answer; before 4.1 the guest refuses', () => {
    const ws2019 = new VmbusRig({ release: 'ws2019' });
    const { ch: host } = offerEcho(ws2019);
    const drv = new EchoDriver();
    ws2019.boot();
    ws2019.client.registerDriver(drv);
    drv.channels[0]!.setTargetCpu(1);
    expect(host.targetVp).toBe(1);
    const ws2016 = new VmbusRig({ release: 'ws2016' });
    offerEcho(ws2016);
    const d2 = new EchoDriver();
    ws2016.boot();
    ws2016.client.registerDriver(d2);
    expect(() => d2.channels[0]!.setTargetCpu(1)).toThrow(/4\.1/);
  });

  it('monitored channels signal through the monitor page, without a hypercall', () => {
    const rig = new VmbusRig();
    const { dev, ch: host } = offerEcho(rig, 1, { monitor: true });
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    const ch = drv.channels[0]!;
    expect(ch.offer.monitorId).toBe(host.monitorId);
    const hypercalls: number[] = [];
    rig.m.partition.events.on((e) => {
      if (e.kind === 'trap' && e.what === 'hypercall') hypercalls.push(e.code);
    });
    ch.sendInband(text('via MNF'));
    expect(dev.received).toHaveLength(0);
    rig.run(200_000); // the hypervisor looks at the page every 100 µs
    expect(dev.received).toHaveLength(1);
    expect(hypercalls).not.toContain(0x5d);
    expect(host.signalsReceived).toBe(1);
  });

  it('UNLOAD from another CPU: UNLOAD_RESPONSE still goes to the VP that connected', () => {
    const rig = new VmbusRig();
    offerEcho(rig);
    rig.boot();
    const irqs = () => rig.m.kernel.cpus.map((c) => c.irqs.get(0xf3) ?? 0);
    const before = irqs();
    rig.client.unload(1);
    expect(rig.posted[rig.posted.length - 1]).toMatchObject({ name: 'UNLOAD', vp: 1 });
    expect(irqs()[0]).toBe(before[0]! + 1);
    expect(irqs()[1]).toBe(before[1]);
    expect(rig.server.connection).toBeUndefined();
    expect(rig.server.state().channels.map((c) => c.state)).toEqual(['unoffered']);
  });
});

describe('races that bit other implementations', () => {
  it('an interrupt before OPENCHANNEL_RESULT: the packet is read while the channel is still opening', () => {
    const rig = new VmbusRig();
    const { dev } = offerEcho(rig);
    dev.greeting = text('early');
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    const ch = drv.channels[0]!;
    expect(drv.statesAtCallback[0]).toBe('opening');
    expect(drv.payloads(ch)).toEqual(['early']);
    expect(ch.state).toBe('opened');
  });

  // Both run inside a driver's probe, that is inside the work that handles the offer, as in
  // Linux: the rescind must wake the waiter without waiting for that work to finish.
  it('rescind during open: the waiting open fails with ENODEV, the relid is released', () => {
    const rig = new VmbusRig();
    rig.boot();
    rig.client.registerDriver(new EchoDriver());
    // The host revokes while the guest's OPENCHANNEL is in flight.
    rig.hold = (p) => p.name.startsWith('OPENCHANNEL');
    const { ch: host } = offerEcho(rig);
    rig.m.partition.clock.schedule(rig.m.nowNs + 2_000_000, () => {
      rig.server.revoke(host);
      rig.release();
    });
    rig.run(5_000_000);
    expect(rig.m.kernel.log.lines().map((l) => l.slice(15))).toContain(`hv_vmbus: probe failed for device ${instanceId(1)} (-19)`);
    // No GPADL_TEARDOWN for a rescinded channel; RELID_RELEASED once removed; the relid is free.
    expect(rig.names().filter((n) => n.startsWith('GPADL_TEARDOWN'))).toEqual([]);
    expect(rig.names().slice(-1)).toEqual(['RELID_RELEASED(1)']);
    expect(rig.server.channels.size).toBe(0);
    expect(rig.client.channels).toEqual([]);
    expect(rig.server.violations.items).toEqual([]);
  });

  it('rescind during GPADL set-up: the waiter wakes with ENODEV and the host drops the GPADL', () => {
    const rig = new VmbusRig();
    rig.boot();
    rig.client.registerDriver(new EchoDriver());
    rig.hold = (p) => p.name.startsWith('GPADL_HEADER');
    const { ch: host } = offerEcho(rig);
    rig.m.partition.clock.schedule(rig.m.nowNs + 2_000_000, () => {
      rig.server.revoke(host);
      rig.release();
    });
    rig.run(5_000_000);
    expect(rig.m.kernel.log.lines().map((l) => l.slice(15))).toContain(`hv_vmbus: probe failed for device ${instanceId(1)} (-19)`);
    expect(rig.names().filter((n) => !n.startsWith('INITIATE') && n !== 'REQUESTOFFERS')).toEqual(['GPADL_HEADER(1)', 'RELID_RELEASED(1)']);
    expect(rig.server.state().gpadls).toBe(0);
    expect(rig.server.violations.items).toEqual([]);
  });

  it('sub-channels are rescinded before their primary, and released before it', () => {
    const rig = new VmbusRig();
    const { ch: primaryHost, dev } = offerEcho(rig, 1);
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    offerEcho(rig, 1, { subChannelIndex: 1 });
    offerEcho(rig, 1, { subChannelIndex: 2 });
    rig.run();
    const from = rig.posted.length;
    rig.server.revoke(primaryHost);
    rig.run();
    expect(dev.revokes).toBe(1);
    expect(drv.removed.map((c) => c.relid)).toEqual([1]);
    // Closing the primary closes the (rescinded) sub-channels first: CLOSECHANNEL but no
    // teardown, RELID_RELEASED as each goes, the primary's last.
    expect(rig.names(from)).toEqual(['CLOSECHANNEL(2)', 'RELID_RELEASED(2)', 'CLOSECHANNEL(3)', 'RELID_RELEASED(3)', 'CLOSECHANNEL(1)', 'RELID_RELEASED(1)']);
    expect(rig.server.channels.size).toBe(0);
    expect(rig.client.channels).toEqual([]);
    expect(rig.server.violations.items).toEqual([]);
  });

  it('a relid is reused only after RELID_RELEASED', () => {
    const rig = new VmbusRig();
    const { ch: first } = offerEcho(rig, 1);
    rig.boot();
    rig.server.revoke(first);
    // The guest has not released relid 1 yet: a new offer takes relid 2.
    const { ch: second } = offerEcho(rig, 2);
    expect(second.relid).toBe(2);
    rig.run();
    expect(rig.names()).toContain('RELID_RELEASED(1)');
    const { ch: third } = offerEcho(rig, 3);
    expect(third.relid).toBe(1);
    rig.run();
    expect(rig.client.channels.map((c) => [c.relid, c.offer.instanceId])).toEqual([
      [2, instanceId(2)],
      [1, instanceId(3)],
    ]);
  });

  it('an offer and its rescind in one burst: the channel is created, then removed and released', () => {
    const rig = new VmbusRig();
    rig.boot();
    const { ch } = offerEcho(rig, 9);
    rig.server.revoke(ch);
    rig.run();
    expect(rig.client.channels).toEqual([]);
    expect(rig.names().slice(-1)).toEqual(['RELID_RELEASED(1)']);
  });
});

describe('classes', () => {
  it('AVMA/RDV/IMC offers are ignored, and no RELID_RELEASED is sent for them', () => {
    const rig = new VmbusRig();
    rig.server.offer({ classId: 'f8e65716-3cb3-4a06-9a60-1889c5cccab5', instanceId: instanceId(1) }, {});
    offerEcho(rig, 2);
    rig.boot();
    expect(rig.client.channels.map((c) => c.relid)).toEqual([2]);
    expect(rig.names()).not.toContain('RELID_RELEASED(1)');
  });

  it('an isolated guest needs 5.2 and keeps only the allowed classes', () => {
    const isolation = { type: 'snp' as const, paravisor: true, sharedGpaBoundaryBits: 45 };
    const old = new VmbusRig({ release: 'ws2016', isolation });
    old.boot();
    expect(old.client.status).toBe('disconnected');
    expect(old.m.kernel.log.lines().map((l) => l.slice(15))).toContain('hv_vmbus: Invalid VMBus version 4.0 (expected >= 5.2) from the host supporting isolation');
    const rig = new VmbusRig({ release: 'ws2022', isolation });
    rig.server.offer({ classId: DeviceClass.SCSI, instanceId: instanceId(1) }, {});
    offerEcho(rig, 2);
    rig.boot();
    expect(rig.client.channels.map((c) => c.offer.classId)).toEqual([DeviceClass.SCSI]);
    expect(rig.m.kernel.log.lines().map((l) => l.slice(15))).toContain('hv_vmbus: Invalid offer 2 from the host supporting isolation');
    expect(ECHO_CLASS).not.toBe(DeviceClass.SCSI);
  });
});
