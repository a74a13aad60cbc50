// The VM's resource budget: each bound on what a guest can make the host hold, and the refusal
// the guest sees when it reaches it, in the protocol's own terms (README "Resource budget").
import { describe, expect, it } from 'vitest';
import { serviceIdOfPort } from '../../src/devices/hvsock/wire.js';
import { HvStatus } from '../../src/tlfs/status.js';
import { DEFAULT_BUDGET, vmBudget } from '../../src/vm/budget.js';
import { hostHvsock } from '../../src/vm/hvsock-stream.js';
import { Machine } from '../../src/vm/machine.js';
import { BudgetError } from '../../src/vmbus/server/budget.js';
import { OfferError, STATUS_CONNECTION_REFUSED, STATUS_UNSUCCESSFUL } from '../../src/vmbus/server/server.js';
import { ChannelMessageType as T, MAX_CHANNEL_RELIDS } from '../../src/vmbus/wire/constants.js';
import { encodeChannelMessage, type ChannelMessage } from '../../src/vmbus/wire/messages.js';
import { HostileGuest, HOSTILE_PAGES } from './guest.js';

const CLASS = 'a1b2c3d4-0001-4000-8000-00000000e040';
const SERVICE = serviceIdOfPort(5000);
const endpoint = (n: number) => `${n.toString(16).padStart(8, '0')}-0000-4000-8000-00000000e0e0`;
const tlConnect = (n: number) => encodeChannelMessage(T.TL_CONNECT_REQUEST, { guest_endpoint_id: endpoint(n), host_service_id: SERVICE });
const names = (ms: ChannelMessage[]) => ms.map((m) => m.name);

/** A hostile guest connected at 5.3, the host listening for hv_sock connections on port 5000. */
function listening(budget: Partial<typeof DEFAULT_BUDGET> = {}) {
  const h = new HostileGuest({ budget });
  const hv = hostHvsock({ host: h.host, partition: h.partition, vmbus: h.host.vmbus });
  const accepted: unknown[] = [];
  hv.listen(5000, (s) => accepted.push(s));
  h.connect();
  return { h, hv };
}

describe('relids (budget.channels): a guest cannot make the host offer more channels than VMBus has relids', () => {
  it('2,100 hv_sock connection requests: 2,047 offers, then TL_CONNECT_RESULT refusals; nothing throws', () => {
    const { h } = listening({ hvsockConnectionsPerService: 5000 });
    const seen: string[] = [];
    for (let n = 0; n < 2100; n++) {
      expect(h.post(tlConnect(n))).toBe(HvStatus.SUCCESS);
      seen.push(...names(h.drain()));
    }
    expect(seen.filter((s) => s === 'OFFERCHANNEL')).toHaveLength(MAX_CHANNEL_RELIDS - 1);
    expect(seen.filter((s) => s === 'TL_CONNECT_RESULT')).toHaveLength(2100 - (MAX_CHANNEL_RELIDS - 1));
    expect(h.server.channels.size).toBe(MAX_CHANNEL_RELIDS - 1);
    expect(h.partition.hostFaults.total).toBe(0);
    expect(h.host.log.at(-1)?.text).toMatch(/refused: no relid is free for the channel$/);
  });

  it('the refusal names the request and says STATUS_CONNECTION_REFUSED, as OpenVMM answers', () => {
    const { h } = listening({ channels: 3, hvsockConnectionsPerService: 5000 });
    for (let n = 0; n < 3; n++) h.post(tlConnect(n));
    h.drain();
    h.post(tlConnect(3));
    const [refusal] = h.drain();
    expect(refusal).toEqual({ type: T.TL_CONNECT_RESULT, name: 'TL_CONNECT_RESULT', value: { header: { msgtype: T.TL_CONNECT_RESULT, padding: 0 }, endpoint_id: endpoint(3), service_id: SERVICE, status: STATUS_CONNECTION_REFUSED }, extra: new Uint8Array(0) });
  });

  it('a device offered on a full bus gets an OfferError it can handle, not a crash', () => {
    const m = new Machine({ devices: [], budget: { channels: 2 } });
    const server = m.vmbus!.server;
    server.offer({ classId: CLASS, instanceId: endpoint(1) }, {});
    server.offer({ classId: CLASS, instanceId: endpoint(2) }, {});
    expect(() => server.offer({ classId: CLASS, instanceId: endpoint(3) }, {})).toThrow(OfferError);
  });
});

describe('hv_sock connections per service (budget.hvsockConnectionsPerService)', () => {
  it('beyond the bound a request is refused (TL_CONNECT_RESULT), one log line each, the log itself bounded', () => {
    const { h } = listening({ hvsockConnectionsPerService: 4, hostLogLines: 10 });
    const seen: string[] = [];
    for (let n = 0; n < 30; n++) {
      h.post(tlConnect(n));
      seen.push(...names(h.drain()));
    }
    expect(seen.filter((s) => s === 'OFFERCHANNEL')).toHaveLength(4);
    expect(seen.filter((s) => s === 'TL_CONNECT_RESULT')).toHaveLength(26);
    expect(h.host.log.length).toBe(10);
    expect(h.host.log.total).toBe(26);
    expect(h.host.log.at(-1)?.text).toBe(`hvsock: connection from ${endpoint(29)} to ${SERVICE} refused: the service has 4 connections already`);
  });

  it('a connection that ends frees its place: once the accept timeout rescinds the offers, new requests are offered again', () => {
    const { h } = listening({ hvsockConnectionsPerService: 2 });
    for (let n = 0; n < 3; n++) h.post(tlConnect(n));
    expect(names(h.drain())).toEqual(['OFFERCHANNEL', 'OFFERCHANNEL', 'TL_CONNECT_RESULT']);
    h.run(6e9); // OpenVMM's 5 s for the guest to open
    expect(names(h.drain())).toEqual(['RESCIND_CHANNELOFFER', 'RESCIND_CHANNELOFFER']);
    h.post(tlConnect(9));
    expect(names(h.drain())).toEqual(['OFFERCHANNEL']);
  });
});

describe('queued host messages (budget.queuedMessages): a guest that never frees its slot gets back-pressure', () => {
  it('20,000 MODIFYCHANNEL with the slot never freed: the queue stops at the bound, the guest gets INSUFFICIENT_BUFFERS', () => {
    const h = new HostileGuest();
    h.server.offer({ classId: CLASS, instanceId: endpoint(1) }, {});
    h.connect();
    const modify = encodeChannelMessage(T.MODIFYCHANNEL, { child_relid: 1, target_vp: 0 });
    const statuses = new Map<number, number>();
    for (let i = 0; i < 20_000; i++) {
      const s = h.post(modify);
      statuses.set(s, (statuses.get(s) ?? 0) + 1);
    }
    // One answer in the slot, budget.queuedMessages behind it; the rest refused.
    expect(h.partition.vps[0]!.synic.queueDepth(2)).toBe(DEFAULT_BUDGET.queuedMessages);
    expect(statuses.get(HvStatus.SUCCESS)).toBe(DEFAULT_BUDGET.queuedMessages + 1);
    expect(statuses.get(HvStatus.INSUFFICIENT_BUFFERS)).toBe(20_000 - DEFAULT_BUDGET.queuedMessages - 1);
    expect(h.server.busy).toBe(20_000 - DEFAULT_BUDGET.queuedMessages - 1);
    // Freeing the slot lets the answers through, and the host takes messages again.
    expect(h.drain()).toHaveLength(DEFAULT_BUDGET.queuedMessages + 1);
    expect(h.post(modify)).toBe(HvStatus.SUCCESS);
  });

  it('the host answers on the SINT the guest asked for: contacts naming other SINTs are bounded all the same', () => {
    const h = new HostileGuest();
    for (let i = 0; i < 1000; i++) {
      const sint = 3 + (i % 12);
      h.post(encodeChannelMessage(T.INITIATE_CONTACT, { vmbus_version_requested: 0x50003, target_vcpu: 0, msg_sint: sint, msg_vtl: 0, reserved: 0, feature_flags: 0, monitor_page1: 0n, monitor_page2: 0n }), 4);
    }
    const synic = h.partition.vps[0]!.synic;
    let queued = 0;
    for (let s = 0; s < 16; s++) queued += synic.queueDepth(s);
    expect(queued).toBeLessThanOrEqual(DEFAULT_BUDGET.queuedMessages);
  });
});

describe('violations (budget.violations): counted, the most recent kept', () => {
  it('10^4 GPADL_BODY messages for unknown handles: 10^4 counted, 100 kept', () => {
    const h = new HostileGuest();
    h.connect();
    for (let i = 0; i < 10_000; i++) h.post(encodeChannelMessage(T.GPADL_BODY, { msgnumber: 0, gpadl: i }, new Uint8Array(8)));
    expect(h.server.violations.total).toBe(10_000);
    expect(h.server.violations.length).toBe(DEFAULT_BUDGET.violations);
    expect(h.server.violations.at(-1)).toEqual({ message: 'GPADL_BODY', detail: `no GPADL 0x${(9_999).toString(16)} is being assembled` });
  });
});

describe('GPADLs (budget.gpadlsInAssembly, gpadls, gpadlPages): creation fails with a status, as when Hyper-V cannot map one', () => {
  /** A guest with one offered channel, connected. */
  function withChannel(budget: Partial<typeof DEFAULT_BUDGET> = {}) {
    const h = new HostileGuest({ budget });
    h.server.offer({ classId: CLASS, instanceId: endpoint(1) }, {});
    h.connect();
    return h;
  }
  const created = (ms: ChannelMessage[]) => ms.flatMap((m) => (m.type === T.GPADL_CREATED ? [[m.value.gpadl, m.value.creation_status]] : []));

  it('headers that never complete: the first 64 wait, later ones are answered GPADL_CREATED with a failure', () => {
    const h = withChannel();
    const answers: number[][] = [];
    for (let i = 0; i < 5_000; i++) {
      // A 30-page GPADL's header only: its body never comes.
      h.post(h.gpadlMessagesFor(1, 0x1000 + i, 0x200, 30)[0]!);
      answers.push(...created(h.drain()));
    }
    expect(answers).toHaveLength(5_000 - DEFAULT_BUDGET.gpadlsInAssembly);
    expect(answers.every(([, s]) => s === STATUS_UNSUCCESSFUL)).toBe(true);
    expect(answers[0]).toEqual([0x1000 + DEFAULT_BUDGET.gpadlsInAssembly, STATUS_UNSUCCESSFUL]);
    expect(h.server.violations.at(-1)?.detail).toBe('64 GPADLs are being assembled already (budget.gpadlsInAssembly)');
  });

  it('complete GPADLs: beyond budget.gpadls, and beyond budget.gpadlPages, creation fails; a teardown makes room', () => {
    const h = withChannel({ gpadls: 3, gpadlPages: 10 });
    const make = (handle: number, pages: number) => {
      h.gpadl(1, handle, HOSTILE_PAGES.rings / 4096, pages);
      return created(h.drain());
    };
    expect([...make(1, 4), ...make(2, 4), ...make(3, 4)]).toEqual([
      [1, 0],
      [2, 0],
      [3, STATUS_UNSUCCESSFUL], // 12 pages > 10
    ]);
    expect(make(4, 2)).toEqual([[4, 0]]);
    expect(make(5, 1)).toEqual([[5, STATUS_UNSUCCESSFUL]]); // a fourth GPADL
    h.post(encodeChannelMessage(T.GPADL_TEARDOWN, { child_relid: 1, gpadl: 1 }));
    expect(names(h.drain())).toEqual(['GPADL_TORNDOWN']);
    expect(make(6, 4)).toEqual([[6, 0]]);
  });
});

describe('logs: the host log and the guest kernel log are rings', () => {
  it('the host log keeps budget.hostLogLines lines and counts the rest', () => {
    const m = new Machine({ devices: [], budget: { hostLogLines: 5 } });
    for (let i = 0; i < 1000; i++) m.host.context!.log(`line ${i}`);
    expect(m.host.log.items.map((l) => l.text)).toEqual(['line 995', 'line 996', 'line 997', 'line 998', 'line 999']);
    expect([m.host.log.total, m.host.log.dropped]).toEqual([1000, 995]);
  });

  it('a hostile host offering and rescinding a channel 10^4 times: the guest log stays within log_buf_len (128 KiB)', () => {
    const m = new Machine({ devices: [], kernel: { modules: [] } });
    m.boot();
    m.runFor(1e6);
    const server = m.vmbus!.server;
    for (let i = 0; i < 10_000; i++) {
      const ch = server.offer({ classId: CLASS, instanceId: endpoint(i) }, {});
      m.runFor(10_000);
      server.revoke(ch);
      m.runFor(10_000);
    }
    const bytes = m.kernel.log.records.reduce((n, r) => n + 8 + Math.ceil(r.text.length / 8) * 8, 0);
    expect(bytes).toBeLessThanOrEqual(1 << 17);
    expect(m.kernel.log.dropped).toBeGreaterThan(0);
    expect(m.kernel.log.printed).toBe(m.kernel.log.records.length + m.kernel.log.dropped);
  });
});

describe('the budget as configuration', () => {
  it('defaults, and every bound can be set', () => {
    expect(vmBudget()).toEqual(DEFAULT_BUDGET);
    expect(vmBudget({ channels: 10, hostLogLines: 3 })).toMatchObject({ channels: 10, hostLogLines: 3, gpadls: DEFAULT_BUDGET.gpadls });
  });

  it('a bad bound is an error naming it', () => {
    expect(() => vmBudget({ channels: 0 })).toThrow(new BudgetError('channels', '0 is not a positive integer'));
    expect(() => vmBudget({ channels: 5000 })).toThrow(/budget\.channels: 5000 exceeds the 2047 relids VMBus has/);
    expect(() => vmBudget({ gpadls: 1.5 })).toThrow(/budget\.gpadls/);
    expect(() => vmBudget({ relids: 3 } as never)).toThrow(/budget\.relids: is not a bound hvkit knows/);
  });
});
