// The VMBus host: a synchronous state machine with no I/O of its own, in the manner of
// OpenVMM's vmbus_server channels.rs. Guest messages go in through handleMessage(); everything
// the host does to the guest goes out through ServerIo. A message the protocol does not allow
// is recorded as a violation and otherwise ignored: nothing the guest sends can throw here.
//
// Protocol: vmbus.md §3 (versions, connect, offers, unload), §5 (GPADLs), §6 (open, close,
// rescind, modify); the host's rules follow OpenVMM where Linux is silent.
import type { TraceEmitter } from '../../hypervisor/trace.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import { BoundedLog } from '../../tlfs/bounded-log.js';
import { HvStatus } from '../../tlfs/status.js';
import { guidToBytes } from '../../tlfs/struct.js';
import { Gpadl, GpadlAssembly, GpadlError, GPADL_HEADER_DATA } from '../gpadl.js';
import {
  ChannelMessageType as T,
  ConnectionState,
  MAX_CHANNEL_RELIDS,
  MAX_USER_DEFINED_BYTES,
  VMBUS_MESSAGE_SINT,
  VmbusVersion,
  versionString,
} from '../wire/constants.js';
import { ChannelMessageError, decodeChannelMessage, encodeChannelMessage, VersionResponse2, type ChannelMessage } from '../wire/messages.js';
import { MONITOR_GROUPS, MonitorPage, MonitorParameter, MONITORS_PER_GROUP } from '../wire/packets.js';
import { serverBudget, type ServerBudget } from './budget.js';
import { HostChannel, type ChannelHandler, type OfferSpec } from './channel.js';
import { hostWrite } from './gpa-map.js';

/** What the host does to the guest, done by whoever runs the server (see partition-io.ts). */
export interface ServerIo {
  readonly memory: GuestMemory;
  readonly vpCount: number;
  /** Posts a channel message into SINT `sint` of VP `vp`. */
  post(vp: number, sint: number, message: Uint8Array): void;
  /** Delivers guest signals on `connectionId` to `onSignal`, or stops (undefined). */
  listen(connectionId: number, onSignal: (() => void) | undefined): void;
  /** Sets flag `flag` of SINT2 on VP `vp` and raises the SINT: a channel event for the guest. */
  signalGuest(vp: number, flag: number): void;
  /** Scans the guest's child→parent monitor page (undefined: stop), reporting each pending id. */
  watchMonitor(gpa: number | undefined, onTrigger: (monitorId: number) => void): void;
  /** Runs `f` on the host's own time, after the current guest action. */
  defer(f: () => void): void;
  /**
   * Host messages posted (post) that have not reached a guest's message slot yet. From
   * `budget.queuedMessages` of them on, the host takes no more guest messages. None: unbounded.
   */
  backlog?(): number;
  /** Host code (a device) threw where the guest entered it: record it (it is not propagated). */
  fault(where: string, error: unknown): void;
  /** Where the channels' ring packets are traced (the partition's event stream); none: not traced. */
  readonly events?: TraceEmitter | undefined;
}

export interface ServerOptions {
  /** Highest protocol version the host accepts (the release's, vmbus.md §3.1). */
  maxVersion: number;
  /** 6.0 feature flags the host supports (vmbus.md §3.5); a connection gets the intersection. */
  features?: number;
  /** Bounds on what the guest can make the host hold (budget.ts); the defaults where not given. */
  budget?: Partial<ServerBudget>;
  /**
   * Once signalled, keep reading a channel's guest→host ring until it has been empty this long
   * (virtual ns), its interrupt_mask set so that the guest writes without signalling, as Linux's
   * NAPI and OpenVMM's ring polling do; whoever runs the server calls poll(). 0 (the default):
   * read only when signalled, as a deterministic machine does.
   */
  pollNs?: number;
  /**
   * Called each time a polled ring's reader commits a batch (at most a NAPI budget of packets):
   * whoever polls can show its guest it is still at work on the ring mid-drain.
   */
  onPolledBatch?: () => void;
}

/** The host cannot offer a channel: every relid it may use is taken (OpenVMM OfferError::TooManyChannels). */
export class OfferError extends RangeError {
  override readonly name = 'OfferError';
}

/** Statuses the host puts in result messages (vmbus.md §0; OpenVMM's values). */
export const STATUS_UNSUCCESSFUL = 0x8000ffff;
export const STATUS_CONNECTION_REFUSED = 0xc0000236;

/** Versions a host can accept: exact values only, from WIN8 (Linux's oldest) up. */
const KNOWN_VERSIONS: ReadonlySet<number> = new Set([
  VmbusVersion.WIN8,
  VmbusVersion.WIN8_1,
  VmbusVersion.WIN10,
  VmbusVersion.WIN10_V4_1,
  VmbusVersion.WIN10_V5,
  VmbusVersion.WIN10_V5_1,
  VmbusVersion.WIN10_V5_2,
  VmbusVersion.WIN10_V5_3,
  VmbusVersion.WIN10_V6_0,
]);

export interface Connection {
  readonly version: number;
  /** VP and SINT that receive control messages. */
  readonly targetVp: number;
  readonly sint: number;
  readonly monitorPages: readonly [number, number];
  readonly featureFlags: number;
  offersRequested: boolean;
}

export interface Violation {
  readonly message: string;
  readonly detail: string;
}

/** hv_sock connection requests (TL_CONNECT_REQUEST), for the hv_sock device. */
export type TlConnectHandler = (guestEndpointId: string, hostServiceId: string) => boolean;

/**
 * The host's VMBus: the device API. `offer()` registers a channel with its handler (open, close,
 * packets, signals); the guest sees the offer when it asks for offers, or at once if it has.
 *
 * @example
 * ```ts
 * import { Machine } from 'hvkit';
 *
 * const ECHO_CLASS = 'c5a4e0f1-7d1b-4c8e-9a55-3f0e2d6b8a11';
 * const m = new Machine({ release: 'ws2022', vps: 2, devices: [] });
 * // The host's back end: every packet is completed with its payload in upper case.
 * const channel = m.vmbus!.server.offer(
 *   { classId: ECHO_CLASS, instanceId: '00000000-0000-4000-8000-000000000002' },
 *   { packet: (ch, p) => void ch.sendCompletion(p.transId, new TextEncoder().encode(new TextDecoder().decode(p.payload).toUpperCase())) },
 * );
 * m.boot();
 * // A guest driver to talk to it (see VmbusClient).
 * const replies: string[] = [];
 * m.kernel.vmbus!.registerDriver({
 *   name: 'echo',
 *   classIds: [ECHO_CLASS],
 *   probe: (ch) => {
 *     ch.open({ sendRingBytes: 16384, recvRingBytes: 16384, onEvent: (c) => c.receive((p) => replies.push(new TextDecoder().decode(p.payload))) });
 *     ch.sendInband(new TextEncoder().encode('quiet!!!'), 1n, true);
 *   },
 * });
 * m.runFor(1_000_000);
 * console.log(channel.relid, channel.isOpen); // → 1 true
 * console.log(replies); // → [ 'QUIET!!!' ]
 * ```
 */
export class VmbusServer {
  connection: Connection | undefined;
  /**
   * The relids the guest had when it unloaded: Linux 6.1's vmbus_exit sends UNLOAD first and
   * then, freeing its channels (vmbus_free_channels → hv_process_channel_removal), one
   * RELID_RELEASED for each (vmbus_drv.c, channel_mgmt.c). Those follow Linux's own order and are
   * taken without a violation, each once; a new INITIATE_CONTACT forgets them.
   */
  private readonly unloadedRelids = new Set<number>();
  readonly channels = new Map<number, HostChannel>();
  private readonly gpadls = new Map<number, Gpadl>();
  /** Pages the complete GPADLs name, in all (budget.gpadlPages). */
  private gpadlPages = 0;
  private readonly pending = new Map<number, GpadlAssembly>();
  readonly budget: ServerBudget;
  /** What the guest got wrong: the most recent ones, and a count of all. */
  readonly violations: BoundedLog<Violation>;
  onViolation: ((v: Violation) => void) | undefined;
  tlConnect: TlConnectHandler | undefined;
  /** Messages handled, for inspection. */
  received = 0;
  /** Guest messages refused with INSUFFICIENT_BUFFERS while host messages waited (budget.queuedMessages). */
  busy = 0;
  private watchedMonitorPage: number | undefined;
  /** Channels whose guest→host ring is being polled. */
  private readonly polled = new Set<HostChannel>();

  constructor(
    readonly io: ServerIo,
    readonly options: ServerOptions,
  ) {
    this.budget = serverBudget(options.budget);
    this.violations = new BoundedLog(this.budget.violations);
  }

  // --- The device API ------------------------------------------------------------------------

  /**
   * Registers a channel. It is offered to the guest now if the guest has asked for offers,
   * otherwise when it does. Relids are the lowest free, from 1. Throws OfferError when
   * `budget.channels` are offered already (a revoked relid counts until the guest releases it).
   */
  offer(spec: OfferSpec, handler: ChannelHandler): HostChannel {
    if (this.channels.size >= this.budget.channels) throw new OfferError(`no free relid: ${this.channels.size} channels of ${this.budget.channels} are offered`);
    const relid = this.freeRelid();
    const offer = {
      classId: spec.classId.toLowerCase(),
      instanceId: spec.instanceId.toLowerCase(),
      subChannelIndex: spec.subChannelIndex ?? 0,
      flags: spec.flags ?? 0,
      mmioMegabytes: spec.mmioMegabytes ?? 0,
      userDefined: spec.userDefined ?? new Uint8Array(0),
      monitor: spec.monitor ?? false,
    };
    if (offer.userDefined.length > MAX_USER_DEFINED_BYTES) throw new RangeError(`user-defined area of ${offer.userDefined.length} bytes exceeds ${MAX_USER_DEFINED_BYTES}`);
    guidToBytes(offer.classId);
    guidToBytes(offer.instanceId);
    // OpenVMM's formula: relid + (SINT << 12); opaque to the guest.
    const ch = new HostChannel(relid, offer, relid + (VMBUS_MESSAGE_SINT << 12), handler, {
      memory: this.io.memory,
      signalGuest: (c) => {
        if (c.targetVp !== 0xffffffff) this.io.signalGuest(c.targetVp, c.relid);
      },
      violation: (c, what) => this.violation(`channel ${c.relid}`, what),
      gpadl: (c, handle) => this.gpadls.get(key(c.relid, handle)),
      kick: (c) => this.guestSignalled(c, false),
      polledBatch: this.options.onPolledBatch,
      events: this.io.events,
    });
    if (offer.monitor) ch.monitorId = this.freeMonitorId();
    this.channels.set(relid, ch);
    if (this.connection?.offersRequested) this.sendOffer(ch);
    return ch;
  }

  /**
   * Revokes a channel: RESCIND_CHANNELOFFER, its rings and GPADLs dropped at once. Its relid stays
   * reserved until the guest's RELID_RELEASED. Revoking a primary revokes its sub-channels first.
   */
  revoke(ch: HostChannel): void {
    if (ch.state === 'revoked' || !this.channels.has(ch.relid)) return;
    if (ch.offer.subChannelIndex === 0) {
      for (const sub of this.channels.values()) if (sub !== ch && sub.offer.subChannelIndex !== 0 && sub.offer.instanceId === ch.offer.instanceId) this.revoke(sub);
    }
    if (ch.state === 'unoffered' || ch.state === 'released') {
      this.dropGpadls(ch.relid);
      this.channels.delete(ch.relid);
      return;
    }
    this.stop(ch);
    this.dropGpadls(ch.relid);
    ch.state = 'revoked';
    this.toGuest(encodeChannelMessage(T.RESCIND_CHANNELOFFER, { child_relid: ch.relid }));
    this.device(ch, 'revoked', () => ch.handler.revoked?.(ch), undefined);
  }

  // --- Guest messages ----------------------------------------------------------------------

  /**
   * A message the guest posted on one of the host's message connections. Returns the
   * hypercall status for the guest's HvCallPostMessage (SUCCESS: the host took it).
   */
  handleMessage(payload: Uint8Array, _fromVp: number): number {
    // Back-pressure: while the guest leaves the host's answers in the queue, the host takes no
    // more of its messages (OpenVMM lib.rs reads none while it has messages to send; vmbus.md §1.3).
    if (this.io.backlog && this.io.backlog() >= this.budget.queuedMessages) {
      this.busy++;
      return HvStatus.INSUFFICIENT_BUFFERS;
    }
    this.received++;
    let m: ChannelMessage;
    try {
      m = decodeChannelMessage(payload);
    } catch (e) {
      if (!(e instanceof ChannelMessageError)) throw e;
      this.violation('(undecodable)', e.message);
      return 0;
    }
    if (m.type === T.RELID_RELEASED && !this.connection && this.unloadedRelids.delete(m.value.child_relid)) return 0;
    if (m.type !== T.INITIATE_CONTACT && !this.connection) {
      this.violation(m.name, 'received before the connection was made');
      return 0;
    }
    switch (m.type) {
      case T.INITIATE_CONTACT:
        this.onInitiateContact(m.value);
        break;
      case T.REQUESTOFFERS:
        this.onRequestOffers();
        break;
      case T.GPADL_HEADER:
        this.onGpadlHeader(m.value.child_relid, m.value.gpadl, m.value.rangecount, m.value.range_buflen, payload.subarray(GPADL_HEADER_DATA));
        break;
      case T.GPADL_BODY:
        this.onGpadlBody(m.value.gpadl, m.extra);
        break;
      case T.GPADL_TEARDOWN:
        this.onGpadlTeardown(m.value.child_relid, m.value.gpadl);
        break;
      case T.OPENCHANNEL:
        this.onOpen(m.value.child_relid, m.value.openid, m.value.ringbuffer_gpadlhandle, m.value.target_vp, m.value.downstream_ringbuffer_pageoffset, m.value.userdata);
        break;
      case T.CLOSECHANNEL:
        this.onClose(m.value.child_relid);
        break;
      case T.RELID_RELEASED:
        this.onRelidReleased(m.value.child_relid);
        break;
      case T.MODIFYCHANNEL:
        this.onModify(m.value.child_relid, m.value.target_vp);
        break;
      case T.UNLOAD:
        this.onUnload();
        break;
      case T.TL_CONNECT_REQUEST:
        this.onTlConnect(m.value.guest_endpoint_id, m.value.host_service_id);
        break;
      default:
        this.violation(m.name, 'is sent by the host, not the guest');
    }
    return 0;
  }

  private onInitiateContact(v: { vmbus_version_requested: number; target_vcpu: number; monitor_page1: bigint; monitor_page2: bigint } & Partial<{ msg_sint: number; msg_vtl: number; feature_flags: number }>): void {
    const version = v.vmbus_version_requested;
    const modern = version >= VmbusVersion.WIN10_V5;
    // A new contact while connected is a reconnect: release everything of the old one first.
    if (this.connection) this.disconnect();
    this.unloadedRelids.clear();
    // Before 3.0 the host answers on VP 0 whatever the guest asks (vmbus.md §2.15).
    const targetVp = version >= VmbusVersion.WIN8_1 ? v.target_vcpu : 0;
    const sint = modern ? (v.msg_sint ?? VMBUS_MESSAGE_SINT) : VMBUS_MESSAGE_SINT;
    // Below 6.0 feature flags are ignored (vmbus.md §3.5).
    const featureFlags = version >= VmbusVersion.WIN10_V6_0 ? (v.feature_flags ?? 0) & (this.options.features ?? 0) : 0;
    const reply = (ok: boolean, state: number, vp = targetVp, s = sint) => {
      const response = { version_supported: ok ? 1 : 0, connection_state: state, padding: 0, msg_conn_id: ok ? (modern ? 1 : version) : 0 };
      // An accepted 6.0 contact is answered in OpenVMM's 20-byte form, with the granted features.
      const message =
        ok && version >= VmbusVersion.WIN10_V6_0
          ? VersionResponse2.encode({ response: { header: { msgtype: T.VERSION_RESPONSE, padding: 0 }, ...response }, supported_features: featureFlags })
          : encodeChannelMessage(T.VERSION_RESPONSE, response);
      this.io.post(vp < this.io.vpCount ? vp : 0, s < 16 ? s : VMBUS_MESSAGE_SINT, message);
    };
    if (!KNOWN_VERSIONS.has(version) || version > this.options.maxVersion) return reply(false, ConnectionState.SUCCESSFUL);
    if (targetVp >= this.io.vpCount || sint >= 16 || (modern && (v.msg_vtl ?? 0) !== 0)) {
      this.violation('INITIATE_CONTACT', `target VP ${targetVp}, SINT ${sint} or VTL ${v.msg_vtl ?? 0} not usable`);
      return reply(false, ConnectionState.FAILED_UNKNOWN_FAILURE, 0, VMBUS_MESSAGE_SINT);
    }
    // OpenVMM refuses a contact with exactly one monitor page.
    const p1 = Number(v.monitor_page1);
    const p2 = Number(v.monitor_page2);
    if ((p1 === 0) !== (p2 === 0) || (p2 !== 0 && (p2 % 4096 !== 0 || !this.io.memory.contains(p2, 4096)))) {
      this.violation('INITIATE_CONTACT', 'monitor pages must be both set, in RAM, or both zero');
      return reply(false, ConnectionState.FAILED_UNKNOWN_FAILURE);
    }
    this.connection = { version, targetVp, sint, monitorPages: [p1, p2], featureFlags, offersRequested: false };
    reply(true, ConnectionState.SUCCESSFUL);
  }

  private onRequestOffers(): void {
    const c = this.connection!;
    if (c.offersRequested) return this.violation('REQUESTOFFERS', 'sent twice on one connection');
    c.offersRequested = true;
    for (const ch of [...this.channels.values()].sort((a, b) => a.relid - b.relid)) if (ch.state === 'unoffered') this.sendOffer(ch);
    this.toGuest(encodeChannelMessage(T.ALLOFFERS_DELIVERED, {}));
  }

  private sendOffer(ch: HostChannel): void {
    const o = ch.offer;
    // A guest that gave no monitor pages cannot use MNF: offer the channel without (OpenVMM).
    const monitorId = this.connection?.monitorPages[1] ? ch.monitorId : undefined;
    const u = new Uint8Array(MAX_USER_DEFINED_BYTES);
    u.set(o.userDefined);
    ch.state = 'offered';
    this.publishMonitorParameter(ch);
    this.toGuest(
      encodeChannelMessage(T.OFFERCHANNEL, {
        offer: {
          if_type: o.classId,
          if_instance: o.instanceId,
          reserved1: 0n,
          reserved2: 0n,
          chn_flags: o.flags,
          mmio_megabytes: o.mmioMegabytes,
          u,
          sub_channel_index: o.subChannelIndex,
          reserved3: 0,
        },
        child_relid: ch.relid,
        monitorid: monitorId ?? 0xff,
        _monitor: { monitor_allocated: monitorId === undefined ? 0 : 1, reserved: 0 },
        // Every channel has its own interrupt (Win7+; OpenVMM always sets it).
        _dedicated: { is_dedicated_interrupt: 1, reserved1: 0 },
        connection_id: ch.connectionId,
      }),
    );
  }

  // --- GPADLs (vmbus.md §5) --------------------------------------------------------------------

  private onGpadlHeader(relid: number, handle: number, rangeCount: number, rangeBufLen: number, data: Uint8Array): void {
    const ch = this.channels.get(relid);
    // A GPADL for a revoked channel is dropped: the guest's waiter is woken by the rescind.
    if (ch?.state === 'revoked') return;
    if (!ch || ch.state === 'unoffered' || ch.state === 'released') return this.violation('GPADL_HEADER', `relid ${relid} is ${ch ? ch.state : 'unknown'}`);
    if (this.pending.has(handle)) return this.violation('GPADL_HEADER', `handle 0x${handle.toString(16)} is still being assembled`);
    if (this.gpadls.has(key(relid, handle))) return this.gpadlCreated(relid, handle, STATUS_UNSUCCESSFUL);
    if (this.pending.size >= this.budget.gpadlsInAssembly) {
      this.violation('GPADL_HEADER', `${this.pending.size} GPADLs are being assembled already (budget.gpadlsInAssembly)`);
      return this.gpadlCreated(relid, handle, STATUS_UNSUCCESSFUL);
    }
    let a: GpadlAssembly;
    try {
      a = new GpadlAssembly(relid, handle, rangeCount, rangeBufLen);
    } catch (e) {
      if (!(e instanceof GpadlError)) throw e;
      this.violation('GPADL_HEADER', e.message);
      return this.gpadlCreated(relid, handle, STATUS_UNSUCCESSFUL);
    }
    a.append(data);
    this.pending.set(handle, a);
    if (a.complete) this.finishGpadl(a);
  }

  private onGpadlBody(handle: number, data: Uint8Array): void {
    const a = this.pending.get(handle);
    if (!a) return this.violation('GPADL_BODY', `no GPADL 0x${handle.toString(16)} is being assembled`);
    a.append(data);
    if (a.complete) this.finishGpadl(a);
  }

  private finishGpadl(a: GpadlAssembly): void {
    this.pending.delete(a.handle);
    const ch = this.channels.get(a.relid);
    if (!ch || ch.state === 'revoked') return;
    let g: Gpadl;
    try {
      g = new Gpadl(a.relid, a.handle, a.ranges(this.io.memory.size));
    } catch (e) {
      if (!(e instanceof GpadlError)) throw e;
      this.violation('GPADL', e.message);
      return this.gpadlCreated(a.relid, a.handle, STATUS_UNSUCCESSFUL);
    }
    // The guest's GPADL creation fails with a status, as when Hyper-V cannot map one (vmbus.md §5).
    const over = this.gpadls.size >= this.budget.gpadls ? `${this.gpadls.size} GPADLs exist already (budget.gpadls)` : this.gpadlPages + g.pages > this.budget.gpadlPages ? `${g.pages} more pages would exceed the ${this.budget.gpadlPages} of budget.gpadlPages` : undefined;
    if (over) {
      this.violation('GPADL', over);
      return this.gpadlCreated(a.relid, a.handle, STATUS_UNSUCCESSFUL);
    }
    this.gpadls.set(key(a.relid, a.handle), g);
    this.gpadlPages += g.pages;
    this.gpadlCreated(a.relid, a.handle, 0);
  }

  private gpadlCreated(relid: number, handle: number, status: number): void {
    this.toGuest(encodeChannelMessage(T.GPADL_CREATED, { child_relid: relid, gpadl: handle, creation_status: status }));
  }

  private onGpadlTeardown(relid: number, handle: number): void {
    const ch = this.channels.get(relid);
    const g = this.gpadls.get(key(relid, handle));
    if (!g) {
      // For a revoked channel the GPADLs are already gone: answer at once (OpenVMM).
      if (ch?.state === 'revoked') return this.gpadlTorndown(handle);
      return this.violation('GPADL_TEARDOWN', `no GPADL 0x${handle.toString(16)} on relid ${relid}`);
    }
    if (ch?.isOpen && ch.ringGpadl === handle) return this.violation('GPADL_TEARDOWN', `GPADL 0x${handle.toString(16)} holds the rings of open channel ${relid}`);
    this.dropGpadl(key(relid, handle), g);
    this.gpadlTorndown(handle);
  }

  private gpadlTorndown(handle: number): void {
    this.toGuest(encodeChannelMessage(T.GPADL_TORNDOWN, { gpadl: handle }));
  }

  private dropGpadl(k: number, g: Gpadl): void {
    g.live = false;
    this.gpadls.delete(k);
    this.gpadlPages -= g.pages;
  }

  private dropGpadls(relid: number): void {
    for (const [k, g] of this.gpadls) if (g.relid === relid) this.dropGpadl(k, g);
    for (const [h, a] of this.pending) if (a.relid === relid) this.pending.delete(h);
  }

  // --- Open, close, release, modify (vmbus.md §6) -------------------------------------------

  private onOpen(relid: number, openId: number, handle: number, targetVp: number, downstream: number, userData: Uint8Array): void {
    const ch = this.channels.get(relid);
    // OPENCHANNEL for a revoked channel is ignored: the guest learns from the rescind.
    if (ch?.state === 'revoked') return;
    if (!ch || ch.state !== 'offered') return this.violation('OPENCHANNEL', `relid ${relid} is ${ch ? ch.state : 'unknown'}, not offered and closed`);
    const result = (status: number) => this.toGuest(encodeChannelMessage(T.OPENCHANNEL_RESULT, { child_relid: relid, openid: openId, status }));
    const g = this.gpadls.get(key(relid, handle));
    if (!g) {
      this.violation('OPENCHANNEL', `ring GPADL 0x${handle.toString(16)} does not exist on relid ${relid}`);
      return result(STATUS_UNSUCCESSFUL);
    }
    if (targetVp !== 0xffffffff && targetVp >= this.io.vpCount) {
      this.violation('OPENCHANNEL', `target VP ${targetVp} does not exist`);
      return result(STATUS_UNSUCCESSFUL);
    }
    let rings: { incoming: number[]; outgoing: number[] };
    try {
      rings = g.ringPages(downstream);
    } catch (e) {
      if (!(e instanceof GpadlError)) throw e;
      this.violation('OPENCHANNEL', e.message);
      return result(STATUS_UNSUCCESSFUL);
    }
    ch.targetVp = targetVp;
    ch.openId = openId;
    ch.ringGpadl = handle;
    ch.attachRings(rings.incoming, rings.outgoing);
    ch.state = 'open';
    ch.holdSignals = true;
    // A device that throws refuses the open.
    const status = this.device(ch, 'open', () => ch.handler.open?.(ch, { openId, targetVp, userData }) ?? 0, STATUS_UNSUCCESSFUL);
    if (status !== 0) {
      // Refused: the device never had the channel open, so it gets no close.
      ch.holdSignals = false;
      ch.state = 'offered';
      ch.detachRings();
      return result(status);
    }
    this.io.listen(ch.connectionId, () => this.guestSignalled(ch));
    this.updateMonitorWatch();
    result(0);
    // Packets the device wrote while opening are signalled only now, after the result.
    ch.releaseSignals();
  }

  private guestSignalled(ch: HostChannel, fromGuest = true): void {
    if (fromGuest) ch.signalsReceived++;
    // Signals that arrive before the device has run are one: it will see all the data.
    if (!ch.isOpen || ch.signalPending) return;
    ch.signalPending = true;
    ch.maskIncoming();
    this.io.defer(() => {
      ch.signalPending = false;
      if (!ch.isOpen) return;
      if (!this.options.pollNs) {
        this.runDevice(ch);
        ch.unmaskIncoming();
        return;
      }
      // Poll from now on: the ring stays masked until nothing new has come for pollNs.
      ch.polling = true;
      ch.lastActive = -1; // from the first round on
      this.polled.add(ch);
      this.pollDevice(ch);
    });
  }

  /** The device reads what the guest sent: its signal handler, or the server hands it each packet. */
  private runDevice(ch: HostChannel): void {
    const h = ch.handler;
    this.device(ch, 'signal', () => (h.signal ? h.signal(ch) : h.packet ? ch.receive((p) => h.packet!(ch, p)) : undefined), undefined);
  }

  /** Whether some channel's ring is being polled: the runner should call poll() again soon. */
  get polling(): boolean {
    return this.polled.size > 0;
  }

  /**
   * One round of polling (ServerOptions.pollNs) at virtual time `nowNs`: the device of each
   * polled channel runs if the guest wrote since its last run, or if that run consumed packets
   * (there may be more); a device that leaves packets, as a paused socket does, is not run again
   * for the same ones. A channel with nothing new for pollNs is unmasked and looked at once more
   * (a packet written just before raised no signal), then left to the guest's signals. Returns
   * how many devices ran.
   */
  poll(nowNs: number): number {
    let ran = 0;
    for (const ch of this.polled) {
      if (!ch.isOpen || ch.corrupt !== undefined || !ch.polling) {
        ch.polling = false;
        this.polled.delete(ch);
        continue;
      }
      if (ch.incomingWriteIndex() !== ch.seenWrite || ch.consumed) {
        ch.lastActive = nowNs;
        this.pollDevice(ch);
        ran++;
      } else if (ch.lastActive < 0) {
        ch.lastActive = nowNs;
      } else if (nowNs - ch.lastActive >= this.options.pollNs!) {
        ch.polling = false;
        this.polled.delete(ch);
        ch.unmaskIncoming();
        if (ch.incomingWriteIndex() !== ch.seenWrite) this.guestSignalled(ch, false);
      }
    }
    return ran;
  }

  /** Runs a polled channel's device, noting where the guest's writes stood and whether it read. */
  private pollDevice(ch: HostChannel): void {
    // Taken before the run: what the guest writes meanwhile is new at the next round.
    ch.seenWrite = ch.incomingWriteIndex();
    const read = ch.incomingReadIndex();
    this.runDevice(ch);
    ch.consumed = ch.incomingReadIndex() !== read;
  }

  private onMonitor(monitorId: number): void {
    const events = this.io.events;
    for (const ch of this.channels.values()) {
      if (ch.monitorId !== monitorId || !ch.isOpen) continue;
      // The guest's signal crossed through memory, not a hypercall: this is where it shows.
      if (events?.active) events.emit({ kind: 'signal', dir: 'to-host', monitor: monitorId, connection: ch.connectionId, flag: 0, channel: ch.relid });
      this.guestSignalled(ch);
    }
  }

  /**
   * The hypervisor scans the child→parent monitor page only while some open channel is
   * monitored: an idle VM then has no periodic work.
   */
  private updateMonitorWatch(): void {
    const page = this.connection?.monitorPages[1] || undefined;
    let want: number | undefined;
    if (page !== undefined) for (const ch of this.channels.values()) if (ch.isOpen && ch.monitorId !== undefined) want = page;
    if (want === this.watchedMonitorPage) return;
    this.watchedMonitorPage = want;
    this.io.watchMonitor(want, (id) => this.onMonitor(id));
  }

  /**
   * Writes a monitored channel's connection id into parameter[id] of both monitor pages, where
   * Hyper-V keeps it and Linux shows it in sysfs (vmbus_drv.c channel_conn_id_show).
   */
  private publishMonitorParameter(ch: HostChannel): void {
    const c = this.connection;
    if (ch.monitorId === undefined || !c) return;
    for (const page of c.monitorPages) {
      if (page === 0) continue;
      const at = page + MonitorPage.offsets.parameter + MonitorParameter.size * ch.monitorId;
      if (this.io.memory.contains(at, MonitorParameter.size)) hostWrite(this.io.memory, at, MonitorParameter.encode({ connectionid: ch.connectionId, flagnumber: 0, rsvdz: 0 }));
    }
  }

  /** Stops using a channel's rings and tells its device (close or revoke). */
  private stop(ch: HostChannel): void {
    if (ch.state === 'open') {
      this.io.listen(ch.connectionId, undefined);
      ch.state = 'offered';
      this.device(ch, 'close', () => ch.handler.close?.(ch), undefined);
    }
    ch.detachRings();
    this.updateMonitorWatch();
  }

  private onClose(relid: number): void {
    const ch = this.channels.get(relid);
    // Between a rescind and RELID_RELEASED the guest may still close the channel.
    if (ch?.state === 'revoked') return;
    if (!ch?.isOpen) return this.violation('CLOSECHANNEL', `relid ${relid} is not open`);
    this.stop(ch);
  }

  private onRelidReleased(relid: number): void {
    const ch = this.channels.get(relid);
    if (!ch) return this.violation('RELID_RELEASED', `unknown relid ${relid}`);
    if (ch.state === 'revoked') {
      // Only now may the relid be reused (vmbus.md §6.4).
      this.channels.delete(relid);
      return;
    }
    // Without a rescind: the guest could not set the channel up (vmbus.md §3.4).
    if (ch.state !== 'offered') return this.violation('RELID_RELEASED', `relid ${relid} is ${ch.state}`);
    this.dropGpadls(relid);
    ch.state = 'released';
  }

  private onModify(relid: number, targetVp: number): void {
    const c = this.connection!;
    if (c.version < VmbusVersion.WIN10_V4_1) return this.violation('MODIFYCHANNEL', `needs version 4.1, connected at ${versionString(c.version)}`);
    const ch = this.channels.get(relid);
    let status = 0;
    if (!ch?.isOpen) {
      this.violation('MODIFYCHANNEL', `relid ${relid} is not open`);
      status = STATUS_UNSUCCESSFUL;
    } else if (targetVp === 0xffffffff || targetVp >= this.io.vpCount || ch.targetVp === 0xffffffff) {
      status = STATUS_UNSUCCESSFUL;
    } else {
      ch.targetVp = targetVp;
    }
    // From 5.3 the host always acknowledges (vmbus.md §2.18).
    if (c.version >= VmbusVersion.WIN10_V5_3) this.toGuest(encodeChannelMessage(T.MODIFYCHANNEL_RESPONSE, { child_relid: relid, status }));
  }

  private onTlConnect(endpoint: string, service: string): void {
    const c = this.connection!;
    if (c.version < VmbusVersion.WIN10) return this.violation('TL_CONNECT_REQUEST', `needs version 4.0, connected at ${versionString(c.version)}`);
    const tl = this.tlConnect;
    if (tl && this.guarded('hv_sock connect', () => tl(endpoint, service), false)) return;
    if (c.version >= VmbusVersion.WIN10_V4_1) {
      this.toGuest(encodeChannelMessage(T.TL_CONNECT_RESULT, { endpoint_id: endpoint, service_id: service, status: STATUS_CONNECTION_REFUSED }));
    }
  }

  private onUnload(): void {
    const c = this.connection!;
    for (const relid of this.channels.keys()) this.unloadedRelids.add(relid);
    this.disconnect();
    this.io.post(c.targetVp, c.sint, encodeChannelMessage(T.UNLOAD_RESPONSE, {}));
  }

  /** Releases every channel and GPADL of the connection; channels wait to be offered again. */
  private disconnect(): void {
    for (const ch of [...this.channels.values()]) {
      this.stop(ch);
      if (ch.state === 'revoked') this.channels.delete(ch.relid);
      else ch.state = 'unoffered';
    }
    for (const g of this.gpadls.values()) g.live = false;
    this.gpadls.clear();
    this.gpadlPages = 0;
    this.pending.clear();
    this.connection = undefined;
    this.updateMonitorWatch();
  }

  // --- Helpers --------------------------------------------------------------------------------

  private toGuest(message: Uint8Array): void {
    const c = this.connection;
    if (c) this.io.post(c.targetVp, c.sint, message);
  }

  private freeRelid(): number {
    for (let r = 1; r < MAX_CHANNEL_RELIDS; r++) if (!this.channels.has(r)) return r;
    throw new OfferError('no free relid');
  }

  private freeMonitorId(): number | undefined {
    const used = new Set([...this.channels.values()].map((c) => c.monitorId));
    for (let id = 0; id < MONITOR_GROUPS * MONITORS_PER_GROUP; id++) if (!used.has(id)) return id;
    return undefined;
  }

  private violation(message: string, detail: string): void {
    const v = { message, detail };
    this.violations.push(v);
    this.onViolation?.(v);
  }

  /** Runs host code the guest's message entered; an exception is recorded (io.fault), never thrown. */
  private guarded<R>(where: string, f: () => R, otherwise: R): R {
    try {
      return f();
    } catch (e) {
      this.io.fault(where, e);
      return otherwise;
    }
  }

  /** A device's handler, guarded: what the guest sees when it throws is `otherwise`. */
  private device<R>(ch: HostChannel, what: string, f: () => R, otherwise: R): R {
    return this.guarded(`channel ${ch.relid} (${ch.offer.classId}) ${what}`, f, otherwise);
  }

  /** The server's state as data. */
  state(): { connection: { version: string; targetVp: number; sint: number } | undefined; channels: { relid: number; class: string; state: string; targetVp: number; corrupt?: string }[]; gpadls: number; violations: number } {
    const c = this.connection;
    return {
      connection: c && { version: versionString(c.version), targetVp: c.targetVp, sint: c.sint },
      channels: [...this.channels.values()].map((ch) => ({ relid: ch.relid, class: ch.offer.classId, state: ch.state, targetVp: ch.targetVp, ...(ch.corrupt ? { corrupt: ch.corrupt } : {}) })),
      gpadls: this.gpadls.size,
      violations: this.violations.total,
    };
  }
}

/** A GPADL's key: relid (below MAX_CHANNEL_RELIDS) and the u32 handle as one number, no string per lookup (devices check theirs per frame). */
const key = (relid: number, handle: number): number => relid * 0x1_0000_0000 + (handle >>> 0);
