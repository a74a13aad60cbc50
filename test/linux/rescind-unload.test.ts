// Milestones (d) and (e) of issue 17: a rescind from hvkit's host handled by Linux's own rescind
// path (vmbus_onoffer_rescind: the device unregistered, its driver removed, the channel closed,
// RELID_RELEASED), and Linux's vmbus_disconnect at module exit (UNLOAD, then UNLOAD_RESPONSE).
import { beforeAll, describe, expect, it } from 'vitest';
import { LinuxMachine } from '../../src/vm/linux-machine.js';
import type { WasmModule } from '../../src/guest/linux/wasm.js';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';
import { ChannelMessageType, VMBUS_MESSAGE_TYPE } from '../../src/vmbus/wire/constants.js';
import { decodeChannelMessage, encodeChannelMessage } from '../../src/vmbus/wire/messages.js';
import { BUILD_TIMEOUT_MS, linuxMissing, linuxModule, linuxSuite } from './linux-module.js';

const channelOf = (m: LinuxMachine, classId: string) => [...m.vmbus!.server.channels.values()].find((c) => c.offer.classId === classId && c.offer.subChannelIndex === 0)!;

describe.skipIf(linuxMissing !== undefined)(linuxSuite('rescind and unload, Linux’s own paths'), () => {
  let mod: WasmModule;
  beforeAll(async () => {
    mod = await linuxModule();
  }, BUILD_TIMEOUT_MS);

  it('a rescinded open IC: hv_utils removed from it, the channel closed, its relid released', () => {
    const m = new LinuxMachine(mod, { release: 'ws2022' });
    m.boot();
    m.runFor(1e9);
    const ch = channelOf(m, DeviceClass.HEART_BEAT);
    const { relid, instanceId } = { relid: ch.relid, instanceId: ch.offer.instanceId };
    expect(ch.state).toBe('open');
    // Linux's own channel list has it opened, with hv_utils bound.
    expect(m.guest.vmbusSnapshot().devices.find((d) => d.id === relid)).toMatchObject({ instanceId, driver: 'hv_utils', channels: [{ relid, state: 'opened' }] });
    const gpadlsBefore = m.vmbus!.server.state().gpadls;
    m.vmbus!.server.revoke(ch);
    m.runFor(1e9);
    expect(m.guest.events.items).toEqual(expect.arrayContaining([`unbound ${instanceId} hv_utils`, `removed ${instanceId} -`]));
    // RELID_RELEASED came: only then does the host forget the relid.
    expect(m.vmbus!.server.channels.has(relid)).toBe(false);
    expect(m.guest.vmbusSnapshot().devices.map((d) => d.id)).not.toContain(relid);
    expect(m.vmbus!.server.state().gpadls).toBe(gpadlsBefore - 1);
    expect(m.vmbus!.server.state().violations).toBe(0);
  });

  it('a rescinded channel without a driver: the device goes and the relid is released', () => {
    const m = new LinuxMachine(mod, { release: 'ws2022' });
    m.boot();
    const ch = channelOf(m, DeviceClass.KBD);
    const { relid, instanceId } = { relid: ch.relid, instanceId: ch.offer.instanceId };
    m.vmbus!.server.revoke(ch);
    m.runFor(1e9);
    expect(m.guest.events.items).toContain(`removed ${instanceId} -`);
    expect(m.vmbus!.server.channels.has(relid)).toBe(false);
    expect(m.vmbus!.server.state().violations).toBe(0);
  });

  it('module exit: the ICs’ channels closed, then UNLOAD answered, and the host is disconnected', () => {
    const m = new LinuxMachine(mod, { release: 'ws2022' });
    m.boot();
    m.runFor(1e9);
    expect(m.vmbus!.server.connection).toBeDefined();
    m.guest.unload();
    m.runFor(1e6);
    const texts = m.guest.log.records.map((r) => r.text);
    expect(texts).toContain('hv_utils: De-Registered HyperV Utility Driver');
    expect(m.vmbus!.server.connection).toBeUndefined();
    expect(m.vmbus!.server.state().channels.filter((c) => c.state === 'open')).toEqual([]);
    // After UNLOAD, vmbus_exit's vmbus_free_channels releases every relid
    // (hv_process_channel_removal → vmbus_release_relid): Linux 6.1 posts one RELID_RELEASED per
    // channel to the host it has just disconnected from. That is Linux's own order, and the host
    // takes each once without counting a violation.
    expect(m.vmbus!.server.violations.items).toEqual([]);
  });

  it('Linux’s order at module exit: UNLOAD, UNLOAD_RESPONSE, then RELID_RELEASED for every channel in offer order; a second release of the same relid is still a violation', () => {
    const m = new LinuxMachine(mod, { release: 'ws2022' });
    m.boot();
    m.runFor(1e9);
    const relids = [...m.vmbus!.server.channels.keys()];
    const wire: string[] = [];
    m.partition.events.on((e) => {
      if (e.kind !== 'message' || e.type !== VMBUS_MESSAGE_TYPE) return;
      const msg = decodeChannelMessage(Uint8Array.from(e.payload.match(/../g)!, (b) => parseInt(b, 16)));
      wire.push(msg.type === ChannelMessageType.RELID_RELEASED ? `${msg.name} ${(msg.value as { child_relid: number }).child_relid}` : msg.name);
    });
    m.guest.unload();
    m.runFor(1e6);
    const from = wire.indexOf('UNLOAD');
    expect(wire.slice(from)).toEqual(['UNLOAD', 'UNLOAD_RESPONSE', ...relids.map((r) => `RELID_RELEASED ${r}`)]);
    expect(m.vmbus!.server.state().violations).toBe(0);
    // A release the unload does not explain: the host still calls it out.
    m.vmbus!.server.handleMessage(encodeChannelMessage(ChannelMessageType.RELID_RELEASED, { child_relid: relids[0]! }), 0);
    expect(m.vmbus!.server.violations.items.map(({ message, detail }) => `${message}: ${detail}`)).toEqual(['RELID_RELEASED: received before the connection was made']);
  });

  it('module exit on a 2012 host: no UNLOAD (vmbus_initiate_unload skips hosts before VMBus 3.0)', () => {
    const m = new LinuxMachine(mod, { release: 'ws2012' });
    m.boot();
    m.runFor(1e9);
    m.guest.unload();
    m.runFor(1e6);
    expect(m.vmbus!.server.connection).toBeDefined();
    expect(m.vmbus!.server.state().channels.filter((c) => c.state === 'open')).toEqual([]);
  });
});
