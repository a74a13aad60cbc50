// The VMBus host against a model of its channel protocol (fast-check model-based commands): any
// sequence of guest messages and host actions gets exactly the answers the model predicts, and
// leaves the server in the model's state (vmbus.md §3, §5, §6; OpenVMM channels.rs where Linux is
// silent). Runs on every release, at that release's VMBus version.
import fc from 'fast-check';
import { expect } from 'vitest';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { release, type ReleaseId } from '../../src/hypervisor/release.js';
import { gpadlMessages } from '../../src/vmbus/gpadl.js';
import { VmbusServer, type ServerIo } from '../../src/vmbus/server/server.js';
import { ChannelMessageType as T, makeVersion, VmbusVersion } from '../../src/vmbus/wire/constants.js';
import { decodeChannelMessage, encodeChannelMessage as msg, type ChannelMessage } from '../../src/vmbus/wire/messages.js';
import { itFuzzEachRelease } from '../fuzz/fuzz.js';

const CLASS = 'a1b2c3d4-0001-4000-8000-00000000e040';
const instance = (n: number) => `0000${n.toString(16).padStart(4, '0')}-feed-4000-8000-000000000002`;
const KNOWN = [0x20004, 0x30000, 0x40000, 0x40001, 0x50000, 0x50001, 0x50002, 0x50003, 0x60000];

type State = 'unoffered' | 'offered' | 'open' | 'revoked' | 'released';
interface ModelChannel {
  state: State;
  gpadls: Set<number>;
  ring: number | undefined;
}
interface Model {
  maxVersion: number;
  version: number | undefined;
  offersRequested: boolean;
  channels: Map<number, ModelChannel>;
  offered: number;
}

/** The real server over a recording ServerIo; every post is kept, decoded. */
interface Real {
  server: VmbusServer;
  posts: ChannelMessage[];
}

function real(maxVersion: number): Real {
  const posts: ChannelMessage[] = [];
  const io: ServerIo = {
    memory: new GuestMemory({ size: 1 << 20 }),
    vpCount: 2,
    post: (_vp, _sint, m) => void posts.push(decodeChannelMessage(m)),
    listen: () => undefined,
    signalGuest: () => undefined,
    watchMonitor: () => undefined,
    defer: () => undefined,
    fault: (_w, e) => {
      throw e;
    },
  };
  return { server: new VmbusServer(io, { maxVersion }), posts };
}

/** What a command must have produced: the host's answers, by name and key fields. */
type Expected = string[];
const summary = (m: ChannelMessage): string => {
  const v = m.value as Record<string, unknown>;
  const ok = m.type === T.VERSION_RESPONSE ? v.version_supported === 1 : 'creation_status' in v ? v.creation_status === 0 : 'status' in v ? v.status === 0 : undefined;
  return [m.name, v.child_relid, v.gpadl, ok === undefined ? undefined : ok ? 'ok' : 'fail'].filter((x) => x !== undefined).join(' ');
};

abstract class Command implements fc.Command<Model, Real> {
  check(_m: Readonly<Model>): boolean {
    return true;
  }
  /** Applies the command to the model; returns the answers the host must give. */
  abstract expect(m: Model): Expected;
  /** Does it to the real server. */
  abstract act(r: Real): void;
  run(m: Model, r: Real): void {
    const from = r.posts.length;
    const want = this.expect(m);
    this.act(r);
    expect(r.posts.slice(from).map(summary), `${this}`).toEqual(want);
    const states = new Map([...r.server.channels].map(([relid, ch]) => [relid, ch.state]));
    expect(states, `${this}: channel states`).toEqual(new Map([...m.channels].map(([relid, ch]) => [relid, ch.state])));
    expect(r.server.state().gpadls, `${this}: GPADLs`).toBe(m.version === undefined ? 0 : [...m.channels.values()].reduce((n, ch) => n + ch.gpadls.size, 0));
  }
  abstract toString(): string;
}

/** The server drops every channel's GPADLs and rings: a new contact, or UNLOAD (vmbus.md §3.6). */
function disconnect(m: Model): void {
  for (const [relid, ch] of m.channels) {
    if (ch.state === 'revoked') m.channels.delete(relid);
    else Object.assign(ch, { state: 'unoffered', ring: undefined });
    ch.gpadls.clear();
  }
  m.version = undefined;
  m.offersRequested = false;
}

class Contact extends Command {
  constructor(readonly version: number) {
    super();
  }
  expect(m: Model): Expected {
    if (m.version !== undefined) disconnect(m);
    const ok = KNOWN.includes(this.version) && this.version <= m.maxVersion;
    if (ok) m.version = this.version;
    return [`VERSION_RESPONSE ${ok ? 'ok' : 'fail'}`];
  }
  act(r: Real): void {
    r.server.handleMessage(msg(T.INITIATE_CONTACT, { vmbus_version_requested: this.version, target_vcpu: 0, msg_sint: 2, msg_vtl: 0, reserved: 0, feature_flags: 0, monitor_page1: 0n, monitor_page2: 0n }), 0);
  }
  toString(): string {
    return `contact ${this.version.toString(16)}`;
  }
}

class RequestOffers extends Command {
  expect(m: Model): Expected {
    if (m.version === undefined || m.offersRequested) return [];
    m.offersRequested = true;
    const out: Expected = [];
    for (const relid of [...m.channels.keys()].sort((a, b) => a - b)) {
      const ch = m.channels.get(relid)!;
      if (ch.state !== 'unoffered') continue;
      ch.state = 'offered';
      out.push(`OFFERCHANNEL ${relid}`);
    }
    return [...out, 'ALLOFFERS_DELIVERED'];
  }
  act(r: Real): void {
    r.server.handleMessage(msg(T.REQUESTOFFERS, {}), 0);
  }
  toString(): string {
    return 'requestoffers';
  }
}

class HostOffer extends Command {
  override check(m: Readonly<Model>): boolean {
    return m.channels.size < 8;
  }
  expect(m: Model): Expected {
    let relid = 1;
    while (m.channels.has(relid)) relid++;
    const live = m.version !== undefined && m.offersRequested;
    m.channels.set(relid, { state: live ? 'offered' : 'unoffered', gpadls: new Set(), ring: undefined });
    m.offered++;
    return live ? [`OFFERCHANNEL ${relid}`] : [];
  }
  act(r: Real): void {
    r.server.offer({ classId: CLASS, instanceId: instance(r.server.channels.size + r.posts.length) }, { open: () => 0 });
  }
  toString(): string {
    return 'host offer';
  }
}

/** Commands naming a channel pick one of the relids 1–6 (some never offered). */
abstract class OnChannel extends Command {
  constructor(readonly relid: number) {
    super();
  }
}

class HostRevoke extends OnChannel {
  override check(m: Readonly<Model>): boolean {
    return m.channels.has(this.relid);
  }
  expect(m: Model): Expected {
    const ch = m.channels.get(this.relid)!;
    if (ch.state === 'revoked') return [];
    if (ch.state === 'unoffered' || ch.state === 'released') {
      m.channels.delete(this.relid);
      return [];
    }
    ch.state = 'revoked';
    ch.gpadls.clear();
    ch.ring = undefined;
    return m.version === undefined ? [] : [`RESCIND_CHANNELOFFER ${this.relid}`];
  }
  act(r: Real): void {
    r.server.revoke(r.server.channels.get(this.relid)!);
  }
  toString(): string {
    return `host revoke ${this.relid}`;
  }
}

class Gpadl extends OnChannel {
  constructor(
    relid: number,
    readonly handle: number,
    readonly pages: number,
  ) {
    super(relid);
  }
  expect(m: Model): Expected {
    const ch = m.channels.get(this.relid);
    if (m.version === undefined || !ch || ch.state === 'revoked' || ch.state === 'unoffered' || ch.state === 'released') return [];
    if (ch.gpadls.has(this.handle)) return [`GPADL_CREATED ${this.relid} ${this.handle} fail`];
    ch.gpadls.add(this.handle);
    return [`GPADL_CREATED ${this.relid} ${this.handle} ok`];
  }
  act(r: Real): void {
    const pfns = Array.from({ length: this.pages }, (_, i) => 0x40 + i);
    for (const m of gpadlMessages(this.relid, this.handle, pfns, this.pages * 4096)) r.server.handleMessage(m, 0);
  }
  toString(): string {
    return `gpadl ${this.relid}:${this.handle} (${this.pages} pages)`;
  }
}

class Open extends OnChannel {
  constructor(
    relid: number,
    readonly handle: number,
  ) {
    super(relid);
  }
  expect(m: Model): Expected {
    const ch = m.channels.get(this.relid);
    if (m.version === undefined || ch?.state === 'revoked' || ch?.state !== 'offered') return [];
    if (!ch.gpadls.has(this.handle)) return [`OPENCHANNEL_RESULT ${this.relid} fail`];
    ch.state = 'open';
    ch.ring = this.handle;
    return [`OPENCHANNEL_RESULT ${this.relid} ok`];
  }
  act(r: Real): void {
    r.server.handleMessage(msg(T.OPENCHANNEL, { child_relid: this.relid, openid: this.relid, ringbuffer_gpadlhandle: this.handle, target_vp: 0, downstream_ringbuffer_pageoffset: 2, userdata: new Uint8Array(120) }), 0);
  }
  toString(): string {
    return `open ${this.relid} on ${this.handle}`;
  }
}

class Close extends OnChannel {
  expect(m: Model): Expected {
    const ch = m.channels.get(this.relid);
    if (m.version !== undefined && ch?.state === 'open') Object.assign(ch, { state: 'offered', ring: undefined });
    return [];
  }
  act(r: Real): void {
    r.server.handleMessage(msg(T.CLOSECHANNEL, { child_relid: this.relid }), 0);
  }
  toString(): string {
    return `close ${this.relid}`;
  }
}

class Teardown extends OnChannel {
  constructor(
    relid: number,
    readonly handle: number,
  ) {
    super(relid);
  }
  expect(m: Model): Expected {
    const ch = m.channels.get(this.relid);
    if (m.version === undefined) return [];
    if (!ch?.gpadls.has(this.handle)) return ch?.state === 'revoked' ? [`GPADL_TORNDOWN ${this.handle}`] : [];
    if (ch.state === 'open' && ch.ring === this.handle) return [];
    ch.gpadls.delete(this.handle);
    return [`GPADL_TORNDOWN ${this.handle}`];
  }
  act(r: Real): void {
    r.server.handleMessage(msg(T.GPADL_TEARDOWN, { child_relid: this.relid, gpadl: this.handle }), 0);
  }
  toString(): string {
    return `teardown ${this.relid}:${this.handle}`;
  }
}

class Release extends OnChannel {
  expect(m: Model): Expected {
    const ch = m.channels.get(this.relid);
    if (m.version === undefined || !ch) return [];
    if (ch.state === 'revoked') m.channels.delete(this.relid);
    else if (ch.state === 'offered') {
      ch.state = 'released';
      ch.gpadls.clear();
    }
    return [];
  }
  act(r: Real): void {
    r.server.handleMessage(msg(T.RELID_RELEASED, { child_relid: this.relid }), 0);
  }
  toString(): string {
    return `release ${this.relid}`;
  }
}

class Modify extends OnChannel {
  expect(m: Model): Expected {
    if (m.version === undefined || m.version < VmbusVersion.WIN10_V4_1) return [];
    const ok = m.channels.get(this.relid)?.state === 'open';
    return m.version >= VmbusVersion.WIN10_V5_3 ? [`MODIFYCHANNEL_RESPONSE ${this.relid} ${ok ? 'ok' : 'fail'}`] : [];
  }
  act(r: Real): void {
    r.server.handleMessage(msg(T.MODIFYCHANNEL, { child_relid: this.relid, target_vp: 1 }), 0);
  }
  toString(): string {
    return `modify ${this.relid}`;
  }
}

class Unload extends Command {
  expect(m: Model): Expected {
    if (m.version === undefined) return [];
    disconnect(m);
    return ['UNLOAD_RESPONSE'];
  }
  act(r: Real): void {
    r.server.handleMessage(msg(T.UNLOAD, {}), 0);
  }
  toString(): string {
    return 'unload';
  }
}

const relid = fc.integer({ min: 1, max: 6 });
const handle = fc.constantFrom(0xe1e10, 0xe1e11, 0xe1e12);

function commands(maxVersion: number) {
  const version = fc.oneof({ weight: 4, arbitrary: fc.constant(maxVersion) }, { weight: 2, arbitrary: fc.constantFrom(...KNOWN) }, fc.constantFrom(0xd, 0x10001, 0x50004));
  return fc.commands(
    [
      // Set-up steps come often, so that sequences get to open channels.
      version.map((v) => new Contact(v)),
      fc.constant(new RequestOffers()),
      fc.constant(new RequestOffers()),
      fc.constant(new HostOffer()),
      fc.constant(new HostOffer()),
      fc.tuple(relid, handle, fc.integer({ min: 4, max: 40 })).map(([r, h, p]) => new Gpadl(r, h, p)),
      fc.tuple(relid, handle).map(([r, h]) => new Open(r, h)),
      relid.map((r) => new HostRevoke(r)),
      fc.tuple(relid, handle, fc.integer({ min: 4, max: 40 })).map(([r, h, p]) => new Gpadl(r, h, p)),
      fc.tuple(relid, handle).map(([r, h]) => new Open(r, h)),
      relid.map((r) => new Close(r)),
      fc.tuple(relid, handle).map(([r, h]) => new Teardown(r, h)),
      relid.map((r) => new Release(r)),
      relid.map((r) => new Modify(r)),
      fc.constant(new Unload()),
    ],
    { maxCommands: 80, size: 'large' },
  );
}

const versionOf = (r: ReleaseId): number => makeVersion(release(r).vmbusVersion.major, release(r).vmbusVersion.minor);

itFuzzEachRelease(
  'any sequence of guest messages and host actions: the answers and channel states the model predicts',
  'vmbus-server.model',
  (r) => {
    const maxVersion = versionOf(r);
    return fc.property(commands(maxVersion), (cmds) => {
      fc.modelRun(() => ({ model: { maxVersion, version: undefined, offersRequested: false, channels: new Map(), offered: 0 }, real: real(maxVersion) }), cmds);
    });
  },
  40,
);
