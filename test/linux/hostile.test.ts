// The hostile-host scenarios of the model guest's hardening tests (test/vmbus/hardening.test.ts,
// vmbus.md §12) run against Linux 6.1's real VMBus code: garbage control messages, unsolicited
// and out-of-order responses, rescind storms, hostile offers and garbage ring data. What Linux
// does is what these tests record. Where Linux itself warns (WARN reaching the shim's
// warn_slowpath_fmt), hangs (a wait_for_completion nobody completes) or loops (the shim's
// soft-lockup budget on ring copies) or would fault (a copy past a ring's double mapping), the
// test is named as a finding; in every case the host stays correct: it keeps running, and
// records what the guest did wrong as violations rather than failing.
import { beforeAll, describe, expect, it } from 'vitest';
import { LinuxMachine } from '../../src/vm/linux-machine.js';
import type { WasmModule } from '../../src/guest/linux/wasm.js';
import { GuestHang } from '../../src/guest/linux/guest.js';
import { GuestPanic } from '../../src/guest/arch.js';
import type { HeartbeatHost } from '../../src/devices/heartbeat/host.js';
import { HEARTBEAT_PERIOD_NS } from '../../src/devices/heartbeat/host.js';
import type { HostChannel } from '../../src/vmbus/server/channel.js';
import type { KvpHost } from '../../src/devices/kvp/host.js';
import { ChannelMessageType as T, VMBUS_MESSAGE_SINT, VMBUS_MESSAGE_TYPE } from '../../src/vmbus/wire/constants.js';
import { encodeChannelMessage as msg } from '../../src/vmbus/wire/messages.js';
import { PacketDescriptor } from '../../src/vmbus/wire/packets.js';
import { HvMessageHeader, HV_MESSAGE_SIZE } from '../../src/tlfs/synic.js';
import { Ctl } from '../../src/vmbus/ring/memory.js';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';
import { BUILD_TIMEOUT_MS, linuxMissing, linuxModule, linuxSuite } from './linux-module.js';

const channelOf = (m: LinuxMachine, classId: string): HostChannel => [...m.vmbus!.server.channels.values()].find((c) => c.offer.classId === classId && c.offer.subChannelIndex === 0)!;
const warnings = (m: LinuxMachine): string[] => m.guest.events.items.filter((e) => e.startsWith('warning '));

/** A channel message of `len` bytes: msgtype, then zeros. */
function raw(msgtype: number, len = 240): Uint8Array {
  const b = new Uint8Array(len);
  new DataView(b.buffer).setUint32(0, msgtype >>> 0, true);
  return b;
}

function offer(relid: number, classId: string, instance: string, sub = 0): Uint8Array {
  return msg(T.OFFERCHANNEL, {
    offer: { if_type: classId, if_instance: instance, reserved1: 0n, reserved2: 0n, chn_flags: 0, mmio_megabytes: 0, u: new Uint8Array(120), sub_channel_index: sub, reserved3: 0 },
    child_relid: relid,
    monitorid: 0xff,
    _monitor: { monitor_allocated: 0, reserved: 0 },
    _dedicated: { is_dedicated_interrupt: 1, reserved1: 0 },
    connection_id: (0x2000 + relid) >>> 0,
  });
}

/** A packet descriptor with the given fields, then `n - 16` bytes of `fill`. */
function packet(type: number, offset8: number, len8: number, n: number, fill = 0xa5): Uint8Array {
  const b = new Uint8Array(n).fill(fill);
  PacketDescriptor.encode({ type, offset8, len8, flags: 0, trans_id: 7n }, b, 0);
  return b;
}

describe.skipIf(linuxMissing !== undefined)(linuxSuite('a hostile host against Linux’s own VMBus code'), () => {
  let mod: WasmModule;
  beforeAll(async () => {
    mod = await linuxModule();
  }, BUILD_TIMEOUT_MS);

  const booted = (): LinuxMachine => {
    const m = new LinuxMachine(mod, { release: 'ws2022' });
    expect(m.boot()).toBe(0);
    m.runFor(1e9);
    return m;
  };

  /** The host posts a raw message on VMBus's SINT; `size` overrides the slot's payload_size once it is there. */
  const inject = (m: LinuxMachine, payload: Uint8Array, size?: number): void => {
    const synic = m.partition.vps[0]!.synic;
    const slotSize = Number(synic.simp >> 12n) * 4096 + VMBUS_MESSAGE_SINT * HV_MESSAGE_SIZE + HvMessageHeader.offsets.payload_size;
    synic.enqueue(VMBUS_MESSAGE_SINT, { type: VMBUS_MESSAGE_TYPE, payload, internal: true, ...(size === undefined ? {} : { onDelivered: () => m.partition.memory.write8(slotSize, size) }) });
  };

  /** Heartbeats keep being answered: the guest's VMBus and hv_utils still work. */
  const stillAnswers = (m: LinuxMachine): void => {
    const hb = m.host.device<HeartbeatHost>('heartbeat')!;
    const before = hb.answered.length;
    m.runFor(3 * HEARTBEAT_PERIOD_NS);
    expect(hb.answered.length).toBeGreaterThan(before);
    expect(hb.state).toBe('ok');
  };

  it('finding: control messages Linux drops — an unknown msgtype, payload_size over 240, a payload shorter than its type’s minimum — each trip a WARN_ONCE in vmbus_on_msg_dpc (a host-triggered panic under panic_on_warn); the guest carries on', () => {
    const m = booted();
    inject(m, raw(25));
    inject(m, raw(0xffffffff));
    inject(m, raw(T.ALLOFFERS_DELIVERED, 16), 241);
    inject(m, raw(T.RESCIND_CHANNELOFFER, 8));
    m.runFor(1e9);
    // WARN_ONCE: the second unknown msgtype is dropped without another report.
    expect(warnings(m)).toEqual(['warning drivers/hv/vmbus_drv.c:1064', 'warning drivers/hv/vmbus_drv.c:1070', 'warning drivers/hv/vmbus_drv.c:1080']);
    const texts = m.guest.log.records.map((r) => r.text);
    expect(texts).toEqual(expect.arrayContaining(['unknown msgtype=25', 'payload size is too large (241)', 'message too short: msgtype=2 len=8']));
    stillAnswers(m);
    expect(m.vmbus!.server.state().violations).toBe(0);
  });

  it('guest→host message types and unsolicited responses (open result, GPADL created and torn down, version, modify, all-offers, unload) are dropped without a word; an unload afterwards still completes', () => {
    const m = booted();
    const hb = channelOf(m, DeviceClass.HEART_BEAT);
    const from = m.guest.log.records.length;
    for (const t of [0, 3, 5, 7, 8, 9, 11, 13, 14, 16, 18, 19, 20, 21, 22, 23]) inject(m, raw(t));
    inject(m, msg(T.OPENCHANNEL_RESULT, { child_relid: hb.relid, openid: 77, status: 0 }));
    inject(m, msg(T.OPENCHANNEL_RESULT, { child_relid: 999, openid: 1, status: 0 }));
    inject(m, msg(T.GPADL_CREATED, { child_relid: hb.relid, gpadl: 0x1234, creation_status: 0 }));
    inject(m, msg(T.GPADL_TORNDOWN, { gpadl: 0x1234 }));
    inject(m, msg(T.VERSION_RESPONSE, { version_supported: 1, connection_state: 0, padding: 0, msg_conn_id: 1 }));
    inject(m, msg(T.MODIFYCHANNEL_RESPONSE, { child_relid: hb.relid, status: 0 }));
    inject(m, msg(T.ALLOFFERS_DELIVERED, {}));
    inject(m, msg(T.UNLOAD_RESPONSE, {}));
    m.runFor(1e9);
    expect(warnings(m)).toEqual([]);
    expect(m.guest.log.records.slice(from).filter((r) => ['emerg', 'alert', 'crit', 'err', 'warn'].includes(r.level))).toEqual([]);
    stillAnswers(m);
    m.guest.unload();
    m.runFor(1e6);
    expect(m.vmbus!.server.connection).toBeUndefined();
  });

  it('a rescind storm — every channel revoked at once, each rescinded three more times, rescinds for unknown relids — one RELID_RELEASED per channel; relids past 2047 trip relid2channel’s WARN_ON (finding)', () => {
    const m = booted();
    const channels = [...m.vmbus!.server.channels.values()];
    for (const c of channels) m.vmbus!.server.revoke(c);
    for (let i = 0; i < 3; i++) for (const c of channels) inject(m, msg(T.RESCIND_CHANNELOFFER, { child_relid: c.relid }));
    for (const relid of [999, 2047, 2048, 0xffffffff]) inject(m, msg(T.RESCIND_CHANNELOFFER, { child_relid: relid }));
    m.runFor(3e9);
    // Every channel's device went and its relid came back; the host has forgotten them all.
    expect(m.guest.events.items.filter((e) => e.startsWith('removed ')).length).toBe(channels.length);
    expect(m.vmbus!.server.channels.size).toBe(0);
    expect(m.vmbus!.server.state().violations).toBe(0);
    expect(warnings(m)).toEqual(['warning drivers/hv/connection.c:383', 'warning drivers/hv/connection.c:383']);
  });

  it('finding: an offer with relid 2048 trips vmbus_channel_map_relid’s WARN_ON, and Linux still registers a device for the channel it could not map', () => {
    const m = booted();
    inject(m, offer(2048, DeviceClass.KBD, '11111111-2222-3333-4444-555555555555'));
    m.runFor(1e9);
    expect(warnings(m)).toEqual(['warning drivers/hv/channel_mgmt.c:386']);
    expect(m.guest.events.items).toContain('added 11111111-2222-3333-4444-555555555555 -');
    stillAnswers(m);
  });

  it('finding: a re-offer of a live channel’s class and instance under a new relid is taken for a resume re-offer (WARN_ON in vmbus_onoffer): Linux moves the open channel to the new relid, its heartbeats stop, and rmmod hangs in vmbus_teardown_gpadl; the host records the violations and stays up', () => {
    const m = booted();
    const hb = channelOf(m, DeviceClass.HEART_BEAT);
    inject(m, offer(100, hb.offer.classId, hb.offer.instanceId));
    m.runFor(1e9);
    expect(warnings(m)).toEqual(['warning drivers/hv/channel_mgmt.c:1088']);
    const host = m.host.device<HeartbeatHost>('heartbeat')!;
    m.runFor(5 * HEARTBEAT_PERIOD_NS);
    expect(host.state).toBe('lost');
    expect(() => m.guest.unload()).toThrow(GuestHang);
    // What the host saw: a close and a GPADL teardown for a relid it never offered.
    expect(m.vmbus!.server.violations.items.map(({ message, detail }) => `${message}: ${detail}`)).toEqual(['CLOSECHANNEL: relid 100 is not open', expect.stringMatching(/^GPADL_TEARDOWN: no GPADL 0x[0-9a-f]+ on relid 100$/)]);
    expect(m.vmbus!.server.connection).toBeDefined();
  });

  it('garbage packets the ring reader can bound (offset8 past len8, an unknown packet type, an IC message too short): hv_utils says so and goes on', () => {
    for (const [p, line] of [
      [packet(6, 0xff, 8, 64), 'hv_utils: Heartbeat request received. Invalid msg type: 42405'],
      [packet(0x1234, 2, 8, 64), 'hv_utils: Heartbeat request received. Invalid msg type: 42405'],
      [packet(6, 2, 3, 24), 'hv_utils: Heartbeat request received. Packet length too small: 8'],
    ] as const) {
      const m = booted();
      const from = m.guest.log.records.length;
      channelOf(m, DeviceClass.HEART_BEAT).send([p]);
      m.runFor(1e9);
      expect(m.guest.log.records.slice(from).filter((r) => r.level === 'err').map((r) => r.text)).toEqual([line]);
      stillAnswers(m);
    }
  });

  it('finding: a packet whose len8 is more than the ring holds makes Linux’s reader step 8 bytes past the write index (the clamped length already counts the trailer), so it takes the whole ring as unread and heartbeat’s callback loops on it forever (a soft lockup); the host is unaffected', () => {
    const m = booted();
    channelOf(m, DeviceClass.HEART_BEAT).send([packet(6, 2, 0xffff, 64)]);
    expect(() => m.runFor(1e9)).toThrow(/soft lockup/);
    expect(m.guest.log.records.at(-1)!.text).toMatch(/^Kernel panic - not syncing: watchdog: BUG: soft lockup/);
    expect(m.vmbus!.server.state().violations).toBe(0);
    expect(channelOf(m, DeviceClass.HEART_BEAT).corrupt).toBeUndefined();
  });

  it('finding: hv_kvp reads packets of up to 4 pages from a ring of 3 (max_pkt_size above the ring’s data size), so a host that publishes a write_index past the ring makes hv_pkt_iter_first copy past the ring’s double mapping — a page fault in Linux', async () => {
    const m = booted();
    const kvpHost = m.host.device<KvpHost>('kvp')!;
    // Move the guest's read index past two thirds of the ring with ordinary traffic.
    for (let i = 0; i < 2; i++) {
      const r = kvpHost.enumerate(0);
      m.runFor(1e9);
      await r.done;
    }
    const kvp = channelOf(m, DeviceClass.KVP);
    const pfns = kvp.gpadl(kvp.ringGpadl!)!.ranges[0]!.pfns;
    // The host→guest ring's control page is the first of the GPADL's second half (vmbus_open's downstream offset).
    const control = pfns[pfns.length / 2]! * 4096;
    const read = m.partition.memory.read32(control + Ctl.READ_INDEX * 4);
    expect(read).toBeGreaterThan(2 * 4096);
    m.partition.memory.write32(control + Ctl.WRITE_INDEX * 4, read + 4 * 4096);
    // The signal the host's ring writer would send (vmbus.md §7): the channel's interrupt.
    (kvp as unknown as { signal(): void }).signal();
    let thrown: unknown;
    try {
      m.runFor(1e9);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(GuestPanic);
    expect(String(thrown)).toMatch(/unable to handle page fault: 16384-byte copy runs past a ring's double mapping/);
    expect(m.vmbus!.server.state().violations).toBe(0);
  });
});
