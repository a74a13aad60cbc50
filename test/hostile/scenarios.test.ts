// The hostile-guest suite: each scenario attacks a VM step by step; afterwards nothing outside the
// pages the guest shared has changed, no host fault was recorded, the host's records are within
// the budget, and the attacked VM still works. heap.test.ts runs the same scenarios 10^5 steps.
import { describe, expect, it } from 'vitest';
import { HvMsr } from '../../src/tlfs/msr.js';
import { HV_MESSAGE_SIZE } from '../../src/tlfs/synic.js';
import { DEFAULT_BUDGET } from '../../src/vm/budget.js';
import { contiguousRing } from '../../src/vmbus/ring/memory.js';
import { RingReader, RingWriter } from '../../src/vmbus/ring/ring.js';
import { inband } from '../../src/vmbus/packet.js';
import { ChannelMessageType as T } from '../../src/vmbus/wire/constants.js';
import { encodeChannelMessage } from '../../src/vmbus/wire/messages.js';
import { MonitorPage } from '../../src/vmbus/wire/packets.js';
import { ECHO_CLASS, EchoDevice, instanceId, text } from '../vmbus/harness.js';
import { changedPages, HostileGuest, HOSTILE_PAGES } from './guest.js';
import { DEFECTS, SCENARIOS } from './scenarios.js';

const STEPS = 3000;

describe('a hostile guest', () => {
  it.each([...SCENARIOS, ...DEFECTS].map((s) => [s.name, s] as const))('%s: nothing outside the shared pages changes, no host fault, the VM still works', (_name, scenario) => {
    for (const seed of [1, 2]) {
      const a = scenario.setup(seed);
      const before = a.ram();
      for (let i = 0; i < STEPS; i++) a.step(i);
      const outside = changedPages(before, a.ram()).filter((p) => !a.shared.has(p));
      expect(outside, 'pages changed outside those shared').toEqual([]);
      a.check();
      const s = a.sizes();
      expect(s.faults).toBe(0);
      expect(s.violationsKept).toBeLessThanOrEqual(DEFAULT_BUDGET.violations);
      expect(s.hostLog).toBeLessThanOrEqual(DEFAULT_BUDGET.hostLogLines);
    }
  });
});

describe('rings over overlay pages: the host writes the RAM beneath, never the overlay (TLFS "GPA Overlay Pages")', () => {
  /** A guest with echo channel 1 open on ring pages R..R+7, R the outbound ring's control page. */
  function open() {
    const h = new HostileGuest();
    h.server.offer({ classId: ECHO_CLASS, instanceId: instanceId(1) }, new EchoDevice());
    h.connect();
    h.gpadl(1, 0xe1e10, HOSTILE_PAGES.rings / 4096, 8);
    h.open(1, 0xe1e10, 4);
    h.drain();
    return h;
  }
  const INBOUND = HOSTILE_PAGES.rings + 4 * 4096;

  it('a ring GPADL that names the SIMP page is accepted; the echo goes into the RAM the SIMP hides, and shows once it is moved away', () => {
    const h = open();
    const simp = h.partition.vps[0]!.synic.simpPage;
    // The guest writes a packet, then puts its SIMP over its inbound ring's control page.
    new RingWriter(contiguousRing(h.memory, HOSTILE_PAGES.rings, 4 * 4096)).write(inband(text('echo me'), 5n));
    h.g.wrmsr(HvMsr.SIMP, BigInt(INBOUND) | 1n);
    const overlay = simp.bytes.slice();
    h.signal(0x2001);
    h.run(2000);
    expect(h.server.channels.get(1)!.corrupt).toBeUndefined();
    // The SIMP is as the SynIC left it: no write index, no packet in it.
    expect(Buffer.from(simp.bytes)).toEqual(Buffer.from(overlay));
    // Moved back, the inbound ring is visible again, with the echo in it.
    h.g.wrmsr(HvMsr.SIMP, BigInt(HOSTILE_PAGES.simp) | 1n);
    const b = new RingReader(contiguousRing(h.memory, INBOUND, 4 * 4096)).batch();
    const p = b.next()!;
    expect(new TextDecoder().decode(p.bytes.subarray(p.offset, p.offset + 7))).toBe('echo me');
  });

  it('the same under the VP assist page: the host reads and writes the ring beneath, the page keeps its contents', () => {
    const h = open();
    const assist = h.partition.vps[0]!.vpAssistPage;
    new RingWriter(contiguousRing(h.memory, HOSTILE_PAGES.rings, 4 * 4096)).write(inband(text('echo me'), 5n));
    // Over the outbound ring's control page: the host must still see the guest's write index.
    h.g.wrmsr(HvMsr.VP_ASSIST_PAGE, BigInt(HOSTILE_PAGES.rings) | 1n);
    const overlay = assist.bytes.slice();
    h.signal(0x2001);
    h.run(2000);
    expect(Buffer.from(assist.bytes)).toEqual(Buffer.from(overlay));
    h.g.wrmsr(HvMsr.VP_ASSIST_PAGE, 0n);
    const b = new RingReader(contiguousRing(h.memory, INBOUND, 4 * 4096)).batch();
    const p = b.next()!;
    expect(new TextDecoder().decode(p.bytes.subarray(p.offset, p.offset + 7))).toBe('echo me');
  });

  it('the SynIC keeps delivering into the overlay while the host writes ring data beneath it', () => {
    const h = open();
    h.g.wrmsr(HvMsr.SIMP, BigInt(INBOUND) | 1n);
    // A host message arrives in the moved SIMP: MODIFYCHANNEL's answer.
    h.post(encodeChannelMessage(T.MODIFYCHANNEL, { child_relid: 1, target_vp: 0 }));
    h.g.drain();
    expect(h.memory.read32(INBOUND + 2 * HV_MESSAGE_SIZE)).toBe(1);
    expect(h.memory.read32(INBOUND + 2 * HV_MESSAGE_SIZE + 16)).toBe(T.MODIFYCHANNEL_RESPONSE);
    // Ring traffic meanwhile leaves the slot alone.
    h.server.channels.get(1)!.sendInband(text('x'.repeat(200)));
    expect(h.memory.read32(INBOUND + 2 * HV_MESSAGE_SIZE + 16)).toBe(T.MODIFYCHANNEL_RESPONSE);
    expect(h.memory.read32(INBOUND)).toBe(0); // slot 0, not a write index
  });

  it('a monitor page under an overlay: the host scans and writes the RAM beneath', () => {
    const h = new HostileGuest();
    const monitor = 0x200000;
    h.server.offer({ classId: ECHO_CLASS, instanceId: instanceId(1), monitor: true }, new EchoDevice());
    h.messageConnection = 4;
    h.post(encodeChannelMessage(T.INITIATE_CONTACT, { vmbus_version_requested: 0x50003, target_vcpu: 0, msg_sint: 2, msg_vtl: 0, reserved: 0, feature_flags: 0, monitor_page1: BigInt(monitor), monitor_page2: BigInt(monitor + 4096) }));
    h.drain();
    // The SIEFP over the parent→child page before the offer publishes the connection id there.
    h.g.wrmsr(HvMsr.SIEFP, BigInt(monitor) | 1n);
    const siefp = h.partition.vps[0]!.synic.siefpPage.bytes.slice();
    h.post(encodeChannelMessage(T.REQUESTOFFERS, {}));
    h.drain();
    expect(Buffer.from(h.partition.vps[0]!.synic.siefpPage.bytes)).toEqual(Buffer.from(siefp));
    h.g.wrmsr(HvMsr.SIEFP, BigInt(HOSTILE_PAGES.siefp) | 1n);
    // parameter[0].connectionid, in the RAM page.
    expect(h.memory.read32(monitor + MonitorPage.offsets.parameter)).toBe(0x2001);
  });
});
