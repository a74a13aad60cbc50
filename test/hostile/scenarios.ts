// The hostile-guest scenarios, each a VM under attack that advances one hostile step at a time:
// scenarios.test.ts checks what must hold after them (nothing outside the shared pages changed,
// the VM still works), heap.test.ts that 10^5 steps leave the host's heap bounded.
import { HvMsr } from '../../src/tlfs/msr.js';
import { hostHvsock } from '../../src/vm/hvsock-stream.js';
import { Machine } from '../../src/vm/machine.js';
import { contiguousRing, Ctl } from '../../src/vmbus/ring/memory.js';
import { RingReader, RingWriter } from '../../src/vmbus/ring/ring.js';
import { inband } from '../../src/vmbus/packet.js';
import type { ChannelHandler, HostChannel } from '../../src/vmbus/server/channel.js';
import { ChannelMessageType as T, VmbusVersion } from '../../src/vmbus/wire/constants.js';
import { encodeChannelMessage } from '../../src/vmbus/wire/messages.js';
import { gpadlMessages } from '../../src/vmbus/gpadl.js';
import type { ParsedPacket } from '../../src/vmbus/wire/packets.js';
import { EchoDevice, EchoDriver, ECHO_CLASS, instanceId, text } from '../vmbus/harness.js';
import { HostileGuest, HOSTILE_PAGES } from './guest.js';

/** A VM under attack. */
export interface Attack {
  /** One hostile step. */
  step(i: number): void;
  /** The guest's pages the host may legitimately write (overlays, input page, what it shared). */
  readonly shared: ReadonlySet<number>;
  /** RAM as the host and guest see it now (a copy). */
  ram(): Uint8Array;
  /** What must hold at the end beyond the shared-pages check; throws if it does not. */
  check(): void;
  /** The host's structures that must stay bounded, for the heap test's report. */
  sizes(): Record<string, number>;
}

export interface Scenario {
  readonly name: string;
  setup(seed?: number): Attack;
}

/** xorshift32: the scenarios are deterministic, and each seed is a different attack. */
export function rng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
  return {
    next,
    below: (n: number) => next() % n,
    pick: <T>(list: readonly T[]): T => list[next() % list.length]!,
    bytes: (n: number) => Uint8Array.from({ length: n }, () => next() & 0xff),
  };
}

const RAM = 16 << 20;
const LAST_PFN = RAM / 4096 - 1;
/** The ring region: 64 pages from HOSTILE_PAGES.rings. */
const RING_PFN = HOSTILE_PAGES.rings / 4096;
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
const basePages = () => new Set([HOSTILE_PAGES.hypercall, HOSTILE_PAGES.simp, HOSTILE_PAGES.siefp, HOSTILE_PAGES.simp1, HOSTILE_PAGES.siefp1, HOSTILE_PAGES.input].map((g) => g / 4096));

/** A guest connected at `version` with echo channels 1–3 offered and channel 1 open on ring pages 0–7. */
function connected(version: number = VmbusVersion.WIN10_V5_3): { h: HostileGuest; echo: HostChannel[] } {
  const h = new HostileGuest({ memory: RAM });
  const echo = [1, 2, 3].map((n) => h.server.offer({ classId: ECHO_CLASS, instanceId: instanceId(n) }, new EchoBack()));
  h.connect(version);
  h.gpadl(1, 0xe1e10, RING_PFN, 8);
  h.open(1, 0xe1e10, 4);
  h.drain();
  return { h, echo };
}

/** An echo device that answers each in-band packet with the same payload, if the ring takes it. */
class EchoBack implements ChannelHandler {
  received = 0;
  /** Called with each packet as it is read: a scenario can scribble on the ring meanwhile. */
  onRead: ((ch: HostChannel, p: ParsedPacket) => void) | undefined;
  signal(ch: HostChannel): void {
    ch.receive((p) => {
      this.received++;
      this.onRead?.(ch, p);
      ch.sendInband(p.payload.subarray(0, 64), p.transId);
    });
  }
}

/** The guest's ends of channel 1's rings (ring pages 0–3 outbound, 4–7 inbound). */
function guestRings(h: HostileGuest) {
  return {
    out: new RingWriter(contiguousRing(h.memory, HOSTILE_PAGES.rings, 4 * 4096)),
    in: new RingReader(contiguousRing(h.memory, HOSTILE_PAGES.rings + 4 * 4096, 4 * 4096)),
  };
}

/**
 * Structurally plausible messages of every type (0–25, host types too) with adversarial fields:
 * relids and handles near the live ones, PFNs in and out of RAM, lengths cut or padded.
 */
function hostileMessage(r: ReturnType<typeof rng>): Uint8Array {
  const type = r.below(26);
  const len = r.pick([4, 8, 12, 16, 20, 24, 28, 40, 48, 64, 120, 144, 196, 200, 240, 241, 256]);
  const b = r.bytes(Math.min(len, 256));
  const dv = new DataView(b.buffer);
  if (b.length >= 4) dv.setUint32(0, type, true);
  const word = () => r.pick([0, 1, 2, 3, 4, 0xe1e10, 0xe1e11, 0xffffffff, 2047, 2048, r.next()]);
  for (let at = 8; at + 4 <= Math.min(b.length, 24); at += 4) dv.setUint32(at, word(), true);
  // A contact is answered where it asks: keep the answers on VP 0's SINT2 mostly, where this guest
  // takes them (one elsewhere would only jam the guest's own queue, budget.test.ts shows that).
  if (type === T.INITIATE_CONTACT && b.length >= 24 && r.below(8) !== 0) {
    dv.setUint32(8, r.pick([0x20004, 0x30000, 0x40000, 0x40001, 0x50000, 0x50002, 0x50003, 0x60000, r.next()]), true);
    dv.setUint32(12, 0, true);
    b[16] = 2;
    b[17] = 0;
  }
  if (type === T.GPADL_HEADER && b.length >= 20) {
    dv.setUint16(16, r.pick([8, 16, 24, 72, 232, r.below(0x10000)]), true);
    dv.setUint16(18, r.pick([0, 1, 1, 1, 2, r.below(0x10000)]), true);
  }
  // Range data: byte counts and PFNs in RAM, at its end and beyond.
  for (let at = 24; at + 8 <= b.length; at += 8) {
    dv.setBigUint64(at, BigInt(r.pick([RING_PFN + r.below(64), LAST_PFN, LAST_PFN + 1, 0, r.next()])) | (r.below(4) === 0 ? BigInt(r.next()) << 32n : 0n), true);
  }
  return b;
}

/** Storms of every message type, with signals, slot clears and well-formed opens in between. */
export const messageStorm: Scenario = {
  name: 'storms of every message type',
  setup(seed = 1) {
    const r = rng(seed);
    const { h } = connected();
    const shared = new Set([...basePages(), ...range(RING_PFN, 64), LAST_PFN]);
    const guestConnections = [1, 4, 0x2001, 0x2002, 0x2003, 0x2004, 7, 0xffffff];
    return {
      shared,
      step(i) {
        const k = r.below(16);
        if (k < 10) h.post(hostileMessage(r), r.below(8) === 0 ? 1 : h.messageConnection);
        else if (k < 12) h.signal(r.pick(guestConnections), r.below(3));
        else if (k < 13) h.drain();
        else if (k < 14) {
          // A contact or unload in the storm ends the connection: connect again, as a guest would.
          h.drain();
          if (!h.server.connection) h.reconnect();
        } else if (k < 15) {
          // A well-formed GPADL and open on some channel, so that opens do happen.
          const relid = 1 + r.below(3);
          const handle = 0x10000 + (i % 512);
          h.gpadl(relid, handle, RING_PFN + 8 * (1 + r.below(7)), 8);
          h.open(relid, handle, 4);
        } else h.run(2000);
      },
      ram: () => h.memory.bytes.slice(),
      check() {
        h.drain();
        // The connection still works: a fresh contact is answered, and a channel carries packets.
        const offers = h.connect();
        if (offers.length !== 3) throw new Error(`${offers.length} offers after the storm`);
        h.gpadl(1, 0xe1e10, RING_PFN, 8);
        echoes(h, 'after the storm');
      },
      sizes: () => sizes(h),
    };
  },
};

/** GPADLs at and beyond the end of RAM, and rings whose last page is RAM's last page. */
export const ramEdges: Scenario = {
  name: 'GPADLs at and beyond the edges of RAM',
  setup(seed = 2) {
    const r = rng(seed);
    const { h } = connected();
    const top = range(LAST_PFN - 15, 16);
    const shared = new Set([...basePages(), ...range(RING_PFN, 64), ...top]);
    let handle = 0x20000;
    return {
      shared,
      step() {
        const pages = 4 + r.below(10);
        const first = r.pick([LAST_PFN - pages + 1, LAST_PFN - pages + 2, LAST_PFN, LAST_PFN + 1, 2 ** 40, 2 ** 52 - 1]);
        const relid = 2 + r.below(2);
        handle = (handle + 1) & 0xfffff;
        // Byte counts that fit, overshoot the pages, or wrap a u32.
        const count = r.pick([pages * 4096, pages * 4096 + 1, 0xffffffff, 4096]);
        for (const m of gpadlMessages(relid, handle, range(first, pages), count)) h.post(m);
        h.open(relid, handle, pages >> 1);
        // Whatever the guest has in those rings, the host reads it, and echoes.
        h.signal(0x2000 + relid);
        h.run(2000);
        h.post(encodeChannelMessage(T.CLOSECHANNEL, { child_relid: relid }));
        h.post(encodeChannelMessage(T.GPADL_TEARDOWN, { child_relid: relid, gpadl: handle }));
        h.drain();
      },
      ram: () => h.memory.bytes.slice(),
      check() {
        echoes(h, 'after the edges');
      },
      sizes: () => sizes(h),
    };
  },
};

/**
 * Rings over overlay pages: the guest moves its SIMP (and SIEFP) onto channel 1's ring pages and
 * back while packets flow. The host's ring writes go to the RAM beneath (gpa-map.ts), so the
 * overlay pages hold only what the SynIC put there.
 */
export const ringsUnderOverlays: Scenario = {
  name: 'rings over overlay pages',
  setup(seed = 3) {
    const r = rng(seed);
    const { h, echo } = connected();
    const shared = new Set([...basePages(), ...range(RING_PFN, 64)]);
    const rings = guestRings(h);
    const simp = h.partition.vps[0]!.synic.simpPage;
    return {
      shared,
      step(i) {
        switch (i % 4) {
          case 0:
            // Mostly onto a control page (the indices the host writes), sometimes anywhere in the rings.
            h.g.wrmsr(r.below(3) ? HvMsr.SIMP : HvMsr.SIEFP, BigInt(HOSTILE_PAGES.rings + 4096 * r.pick([0, 4, r.below(8)])) | 1n);
            break;
          case 1:
            // The guest writes where it sees its ring: into the overlay, if one is there now.
            try {
              rings.out.write(inband(text(`packet ${i}`), BigInt(i)));
            } catch {
              // It broke its own ring that way: its problem.
            }
            h.signal(0x2001);
            break;
          case 2: {
            // The echo device reads and answers: none of that may land in the SIMP, wherever it is.
            const before = simp.bytes.slice();
            h.run(2000);
            if (Buffer.compare(Buffer.from(before), Buffer.from(simp.bytes)) !== 0) throw new Error(`step ${i}: the host wrote into the SIMP overlay`);
            break;
          }
          default:
            h.g.wrmsr(HvMsr.SIMP, BigInt(HOSTILE_PAGES.simp) | 1n);
            h.g.wrmsr(HvMsr.SIEFP, BigInt(HOSTILE_PAGES.siefp) | 1n);
            h.drain();
            try {
              const b = rings.in.batch();
              while (b.next());
              b.commit();
            } catch {
              // A ring the guest broke through its overlay.
            }
            if (echo[0]!.corrupt) reopen(h);
        }
      },
      ram: () => h.memory.bytes.slice(),
      check() {
        h.g.wrmsr(HvMsr.SIMP, BigInt(HOSTILE_PAGES.simp) | 1n);
        h.g.wrmsr(HvMsr.SIEFP, BigInt(HOSTILE_PAGES.siefp) | 1n);
        echoes(h, 'after the overlays');
      },
      sizes: () => sizes(h),
    };
  },
};

/** Channel 1 afresh, as a guest does after a broken ring: close, clear the ring pages, open. */
function reopen(h: HostileGuest): void {
  h.post(encodeChannelMessage(T.CLOSECHANNEL, { child_relid: 1 }));
  h.memory.fill(HOSTILE_PAGES.rings, 8 * 4096);
  h.open(1, 0xe1e10, 4);
  h.drain();
}

/** Channel 1 still echoes a packet: the guest writes one, signals, and reads the answer. */
export function echoes(h: HostileGuest, when: string): void {
  reopen(h);
  const rings = guestRings(h);
  rings.out.write(inband(text('still there?'), 77n));
  h.signal(0x2001);
  h.run(2000);
  const b = rings.in.batch();
  const p = b.next();
  b.commit();
  if (!p || new TextDecoder().decode(p.bytes.subarray(p.offset, p.offset + 12)) !== 'still there?') throw new Error(`channel 1 does not echo ${when}`);
}

/** The guest rewrites its ring's indices and bytes while the host is in the middle of reading it. */
export const ringScribbles: Scenario = {
  name: 'ring scribbles during reads',
  setup(seed = 4) {
    const r = rng(seed);
    const { h, echo } = connected();
    const shared = new Set([...basePages(), ...range(RING_PFN, 64)]);
    const dev = echo[0]!.handler as EchoBack;
    const ctl = new Uint32Array(h.memory.buffer, HOSTILE_PAGES.rings, 1024);
    dev.onRead = () => {
      // The guest, concurrently: an index moved, or bytes of the data area rewritten.
      if (r.below(3) === 0) Atomics.store(ctl, r.pick([Ctl.WRITE_INDEX, Ctl.READ_INDEX, Ctl.INTERRUPT_MASK, Ctl.PENDING_SEND_SZ]), r.pick([0, 8, 12, 4096 * 3 - 8, 4096 * 3, r.next()]));
      else h.memory.write(HOSTILE_PAGES.rings + 4096 + r.below(3 * 4096 - 64), r.bytes(1 + r.below(64)));
    };
    const rings = guestRings(h);
    return {
      shared,
      step(i) {
        try {
          for (let n = r.below(4); n >= 0; n--) rings.out.write(inband(r.bytes(r.below(200)), BigInt(i)));
        } catch {
          // The ring the guest scribbled on is broken for the guest too.
        }
        h.signal(0x2001);
        h.run(2000);
        const ch = echo[0]!;
        if (ch.corrupt || i % 64 === 63) reopen(h);
      },
      ram: () => h.memory.bytes.slice(),
      check() {
        if (dev.received === 0) throw new Error('the device never read a packet');
        dev.onRead = undefined;
        echoes(h, 'after the scribbles');
      },
      sizes: () => sizes(h),
    };
  },
};

/**
 * Two VMs in one process, one under attack: VM A takes the message storm, VM B runs a Linux guest
 * with an echo channel, and so does the control VM C on its own. B must stay byte-identical to C.
 */
export const twoVms: Scenario = {
  name: 'two VMs in one process, one under attack',
  setup(seed = 5) {
    const attack = messageStorm.setup(seed);
    const vm = () => {
      const m = new Machine({ vps: 2, memory: 32 << 20, devices: [{ type: 'heartbeat' }, { type: 'shutdown' }], kernel: { vmbusClient: { timeoutNs: 1e9 } } });
      m.vmbus!.server.offer({ classId: ECHO_CLASS, instanceId: instanceId(1) }, new EchoDevice());
      const drv = new EchoDriver();
      m.boot();
      m.kernel.vmbus!.registerDriver(drv);
      m.runFor(1e6);
      return { m, drv };
    };
    const b = vm();
    const c = vm();
    const worked: number[] = [];
    const work = (x: typeof b, i: number) => {
      x.drv.channels[0]!.sendInband(text(`work ${i}`));
      x.m.runFor(100_000);
      x.drv.inbox.get(x.drv.channels[0]!)!.length = 0;
    };
    return {
      shared: attack.shared,
      step(i) {
        attack.step(i);
        if (i % 100 === 0) {
          work(b, i);
          worked.push(i);
        }
      },
      ram: attack.ram,
      check() {
        attack.check();
        // The control VM does the same work with nobody attacking anything.
        for (const i of worked) work(c, i);
        if (Buffer.compare(Buffer.from(b.m.partition.memory.bytes), Buffer.from(c.m.partition.memory.bytes)) !== 0) throw new Error('VM B differs from the control VM');
        if (JSON.stringify(b.m.kernel.log.records) !== JSON.stringify(c.m.kernel.log.records)) throw new Error('VM B logged differently');
        if (JSON.stringify(b.m.partition.state()) !== JSON.stringify(c.m.partition.state())) throw new Error('VM B hypervisor state differs');
      },
      sizes: attack.sizes,
    };
  },
};

// --- The six defects of issue 10, each as the attack that showed it -------------------------------

/** One message a step from a connected guest that takes its answers (or, `keepSlot`, never does). */
function oneMessage(name: string, make: (i: number) => Uint8Array, options: { keepSlot?: boolean; setup?: (h: HostileGuest) => void } = {}): Scenario {
  return {
    name,
    setup() {
      const h = new HostileGuest({ memory: RAM });
      h.server.offer({ classId: ECHO_CLASS, instanceId: instanceId(1) }, new EchoBack());
      options.setup?.(h);
      h.connect();
      h.gpadl(1, 0xe1e10, RING_PFN, 8);
      h.open(1, 0xe1e10, 4);
      h.drain();
      return {
        shared: new Set([...basePages(), ...range(RING_PFN, 8)]),
        step(i) {
          h.post(make(i));
          if (!options.keepSlot) h.drain();
        },
        ram: () => h.memory.bytes.slice(),
        check() {
          h.drain();
          echoes(h, `after ${name}`);
        },
        sizes: () => sizes(h),
      };
    },
  };
}

const SERVICE = '00001388-facb-11e6-bd58-64006a7986d3'; // AF_VSOCK port 5000
const endpoint = (i: number) => `${(i >>> 0).toString(16).padStart(8, '0')}-0000-4000-8000-00000000e0e0`;

export const DEFECTS: readonly Scenario[] = [
  oneMessage('hv_sock connection requests with fresh endpoint ids (relids, the host log)', (i) => encodeChannelMessage(T.TL_CONNECT_REQUEST, { guest_endpoint_id: endpoint(i), host_service_id: SERVICE }), {
    setup: (h) => hostHvsock({ host: h.host, partition: h.partition, vmbus: h.host.vmbus }).listen(5000, () => undefined),
  }),
  oneMessage('MODIFYCHANNEL with the message slot never freed (queued answers)', () => encodeChannelMessage(T.MODIFYCHANNEL, { child_relid: 1, target_vp: 0 }), { keepSlot: true }),
  oneMessage('GPADL_BODY for handles nobody assembles (violation records)', (i) => encodeChannelMessage(T.GPADL_BODY, { msgnumber: 0, gpadl: i }, new Uint8Array(8))),
  oneMessage('GPADL headers whose bodies never come (GPADLs in assembly)', (i) => gpadlMessages(1, 0x100000 + i, range(RING_PFN, 30), 30 * 4096)[0]!),
  {
    name: 'a hostile host offering and rescinding channels (the guest kernel log)',
    setup() {
      const m = new Machine({ vps: 2, memory: 32 << 20, devices: [], kernel: { modules: [] } });
      m.boot();
      m.runFor(1e6);
      const server = m.vmbus!.server;
      return {
        shared: new Set(),
        step(i) {
          const ch = server.offer({ classId: ECHO_CLASS, instanceId: endpoint(i) }, {});
          m.runFor(10_000);
          server.revoke(ch);
          m.runFor(10_000);
        },
        // The guest is not under attack from itself: its own memory is its business.
        ram: () => new Uint8Array(0),
        check() {
          if (m.kernel.log.dropped === 0) throw new Error('the kernel log never wrapped');
        },
        sizes: () => ({ klogRecords: m.kernel.log.records.length, klogDropped: m.kernel.log.dropped, guestChannels: m.kernel.vmbus!.channels.length, hostChannels: server.channels.size, faults: m.partition.hostFaults.length, violationsKept: server.violations.length, hostLog: m.host.log.length }),
      };
    },
  },
];

export const SCENARIOS: readonly Scenario[] = [messageStorm, ramEdges, ringsUnderOverlays, ringScribbles, twoVms];

function sizes(h: HostileGuest): Record<string, number> {
  const s = h.server.state();
  let queued = 0;
  for (const vp of h.partition.vps) for (let n = 0; n < 16; n++) queued += vp.synic.queueDepth(n);
  return { received: h.server.received, refusedBusy: h.server.busy, violations: h.server.violations.total, violationsKept: h.server.violations.length, channels: s.channels.length, open: s.channels.filter((c) => c.state === 'open').length, gpadls: s.gpadls, hostLog: h.host.log.length, faults: h.partition.hostFaults.length, queued };
}
