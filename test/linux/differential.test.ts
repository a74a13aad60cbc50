// The first differential test of issue 17: for the same host, hvkit's model guest and Linux 6.1's
// real VMBus code put the same channel messages on the wire, in the same order, byte for byte
// except for guest-physical addresses (where each guest's allocator put its pages): connect,
// offers, each IC's GPADL and open. Both guests run as one-VP 32-bit x86, from the trace.
import { beforeAll, describe, expect, it } from 'vitest';
import { RELEASE_IDS, type ReleaseId } from '../../src/hypervisor/release.js';
import type { TraceEvent } from '../../src/hypervisor/trace.js';
import { LinuxMachine } from '../../src/vm/linux-machine.js';
import { Machine } from '../../src/vm/machine.js';
import type { DeviceSpec } from '../../src/devices/registry.js';
import type { WasmModule } from '../../src/guest/linux/wasm.js';
import type { KvpHost } from '../../src/devices/kvp/host.js';
import { decodeChannelMessage } from '../../src/vmbus/wire/messages.js';
import { ChannelMessageType } from '../../src/vmbus/wire/constants.js';
import { HvMessageType } from '../../src/tlfs/synic.js';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';
import { BUILD_TIMEOUT_MS, linuxMissing, linuxModule, linuxSuite } from './linux-module.js';

/** Where a time sync packet's echoed sample starts: the descriptor (16), pipe (8) and IC message (20) headers. */
const ECHO_AT = 44;

/** The ICs the Linux module has drivers for and that need no user-space daemon. */
const DEVICES: DeviceSpec[] = [{ type: 'shutdown' }, { type: 'timesync' }, { type: 'heartbeat' }];

const hexBytes = (hex: string): Uint8Array => Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));

/** The channel messages of a trace, decoded, with the guest-physical addresses left out. */
function wire(events: readonly TraceEvent[]): string[] {
  return events.flatMap((e) => {
    // The VMBus wire only: the model's clockevent also gets the synthetic timer's messages on
    // hosts without direct-mode timers; the Linux module has no clockevent (no hv_timer).
    if (e.kind !== 'message' || e.type === HvMessageType.TIMER_EXPIRED) return [];
    let m: ReturnType<typeof decodeChannelMessage>;
    try {
      m = decodeChannelMessage(hexBytes(e.payload));
    } catch {
      return [`${e.dir} message type ${e.type}: ${e.payload}`];
    }
    const value: Record<string, unknown> = { ...(m.value as Record<string, unknown>) };
    let extra = `${m.extra.length} bytes`;
    if (m.type === ChannelMessageType.INITIATE_CONTACT) {
      for (const f of ['interrupt_page', 'monitor_page1', 'monitor_page2']) if (f in value) value[f] = 'gpa';
    } else if (m.type === ChannelMessageType.GPADL_HEADER || m.type === ChannelMessageType.GPADL_BODY) {
      extra = `${m.extra.length / 8} pfns`;
      delete value.range;
    } else {
      extra = Array.from(m.extra, (b) => b.toString(16).padStart(2, '0')).join('');
    }
    return [`${e.dir} ${m.name} ${JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Array.from(v) : v))} ${extra}`];
  });
}

function traced(m: { partition: { events: { on(l: (e: TraceEvent) => void): () => void } } }): TraceEvent[] {
  const events: TraceEvent[] = [];
  m.partition.events.on((e) => void events.push(e));
  return events;
}

describe.skipIf(linuxMissing !== undefined)(linuxSuite('the model guest and the real Linux code on the wire'), () => {
  let mod: WasmModule;
  beforeAll(async () => {
    mod = await linuxModule();
  }, BUILD_TIMEOUT_MS);

  /**
   * The packets each guest put in its guest→host rings: the ICs' negotiation and answers. A time
   * sync answer echoes the host's sample (ictimesync_ref_data: parenttime, vmreferencetime), which
   * the host stamps when it sends it; the two guests reach that point at different virtual times
   * (the model boots a whole kernel first), so past the headers only its length is compared. The
   * test 'difference: time sync answers echo samples taken at different times' keeps that visible.
   */
  const packets = (events: readonly TraceEvent[], timesyncRelid: number | undefined): string[] =>
    events.flatMap((e) => (e.kind === 'packet' && e.dir === 'to-host' ? [`channel ${e.channel} ${e.channel === timesyncRelid ? `${e.bytes.slice(0, 2 * ECHO_AT)}… ${e.bytes.length / 2} bytes` : e.bytes}`] : []));

  const both = (release: ReleaseId, seconds = 1): { model: string[]; linux: string[]; modelPackets: string[]; linuxPackets: string[]; rawModel: string[]; rawLinux: string[] } => {
    const lm = new LinuxMachine(mod, { release, devices: DEVICES });
    const le = traced(lm);
    lm.boot();
    lm.runFor(seconds * 1e9);
    const mm = new Machine({ release, arch: 'x86', vps: 1, devices: DEVICES });
    const me = traced(mm);
    mm.boot();
    mm.runFor(seconds * 1e9);
    const ts = (m: LinuxMachine | Machine) => [...m.vmbus!.server.channels.values()].find((c) => c.offer.classId === DeviceClass.TS)?.relid;
    return { model: wire(me), linux: wire(le), modelPackets: packets(me, ts(mm)), linuxPackets: packets(le, ts(lm)), rawModel: packets(me, undefined), rawLinux: packets(le, undefined) };
  };

  it.each(RELEASE_IDS)('%s: connect, offers, GPADLs and opens are the same messages in the same order', (release) => {
    const { model, linux } = both(release);
    expect(linux.length).toBeGreaterThan(10);
    expect(model).toEqual(linux);
  });

  // Channels are independent: how their packets interleave depends on when each guest got
  // there, so each channel's packets are compared in its own order.
  const byChannel = (ps: readonly string[]): Record<string, string[]> => {
    const out: Record<string, string[]> = {};
    for (const p of ps) (out[p.split(' ', 2).join(' ')] ??= []).push(p);
    return out;
  };

  it.each(RELEASE_IDS)('%s: the ICs’ negotiation and answers (heartbeats, time samples) are the same packets, byte for byte', (release) => {
    const { modelPackets, linuxPackets } = both(release, 10);
    expect(linuxPackets.length).toBeGreaterThan(5);
    expect(byChannel(modelPackets)).toEqual(byChannel(linuxPackets));
  });

  it('difference: time sync answers echo samples taken at different times', () => {
    const { rawModel, rawLinux } = both('ws2022', 10);
    const model = byChannel(rawModel);
    const linux = byChannel(rawLinux);
    const differing = Object.keys(model).flatMap((ch) => model[ch]!.map((p, i) => [p, linux[ch]![i]!] as const)).filter(([a, b]) => a !== b);
    expect(differing.length).toBeGreaterThan(0);
    for (const [a, b] of differing) {
      // Same channel, same length, same headers: only the echoed sample differs.
      expect(a.length).toBe(b.length);
      expect(a.slice(0, 'channel N '.length + 2 * ECHO_AT)).toBe(b.slice(0, 'channel N '.length + 2 * ECHO_AT));
    }
  });

  it.each(RELEASE_IDS.filter((r) => r !== 'ws2012'))('%s: module exit — UNLOAD, UNLOAD_RESPONSE, then RELID_RELEASED for every channel in offer order — the same messages from both guests, and no violation', (release) => {
    const lm = new LinuxMachine(mod, { release, devices: DEVICES });
    const le = traced(lm);
    lm.boot();
    lm.runFor(1e9);
    // rmmod hv_utils first (a module hv_vmbus's users must be gone before it goes).
    lm.guest.unloadUtils();
    lm.runFor(1e6);
    const lFrom = le.length;
    const offered = lm.vmbus!.server.channels.size;
    lm.guest.exitVmbus();
    lm.runFor(1e6);
    const mm = new Machine({ release, arch: 'x86', vps: 1, devices: DEVICES });
    const me = traced(mm);
    mm.boot();
    mm.runFor(1e9);
    const mFrom = me.length;
    mm.kernel.vmbus!.exit();
    mm.runFor(1e6);
    const linux = wire(le.slice(lFrom));
    expect(linux.map((l) => l.split(' ', 2).join(' '))).toEqual(['to-host UNLOAD', 'to-guest UNLOAD_RESPONSE', ...Array.from({ length: offered }, () => 'to-host RELID_RELEASED')]);
    expect(wire(me.slice(mFrom))).toEqual(linux);
    expect(lm.vmbus!.server.state().violations).toBe(0);
    expect(mm.vmbus!.server.state().violations).toBe(0);
  });

  it.each(RELEASE_IDS)('%s: KVP with its daemon — negotiation, the AUTO pool read, a SET, ENUMERATE, GET and DELETE are the same packets, byte for byte', async (release) => {
    const devices: DeviceSpec[] = [{ type: 'kvp' }];
    const lm = new LinuxMachine(mod, { release, devices });
    const le = traced(lm);
    lm.boot();
    lm.runFor(1e9);
    const mm = new Machine({ release, arch: 'x86', vps: 1, devices });
    const me = traced(mm);
    mm.boot();
    mm.runFor(1e9);
    for (const m of [lm, mm]) {
      const kvp = m.host.device<KvpHost>('kvp')!;
      expect(kvp.phase).toBe('ready');
      const done = [kvp.set(0, 'key', 'value'), kvp.enumerate(0), kvp.get(0, 'key'), kvp.delete(0, 'key'), kvp.get(0, 'key')].map((r) => r.done);
      m.runFor(2e9);
      expect((await Promise.all(done)).map((r) => r.outcome)).toEqual(['ok', 'ok', 'ok', 'ok', 'not-found']);
    }
    const lp = packets(le, undefined);
    expect(lp.length).toBeGreaterThan(15);
    expect(packets(me, undefined)).toEqual(lp);
  });
});
