// The guest's VMBus driver, as Linux 6.1 behaves (drivers/hv/connection.c, channel_mgmt.c,
// vmbus_drv.c): version negotiation (vmbus.md §3.3), offers and sub-channels (§3.4), rescinds
// (§6.4), drivers bound by class GUID, unload (§3.6), and the message and event handling of
// the SINT2 interrupt with the checks of §12.
//
// Linux runs message handlers in two places: "non-blocking" ones (responses) at once in the
// message tasklet, "blocking" ones (offers, rescinds) later in work queues, so that a driver
// probing a channel may wait for a response. The model keeps that split: onMessage() completes
// waiters and queues work; runWork() runs the queues in process context. As in Linux, offers
// are registered on one queue, and the probes of primaries, the sub-channel callbacks and the
// rescinds each run on their own, so a probe waiting for its sub-channels does not block them.
import { HV_MESSAGE_PAYLOAD_BYTE_COUNT, HvMessage, HvMessageHeader, HvMessageType, HV_EVENT_FLAGS_COUNT } from '../../tlfs/synic.js';
import { HV_HYP_PAGE_SIZE } from '../../memory/pages.js';
import { HvStatus } from '../../tlfs/status.js';
import { DEVICE_TYPE_OF_CLASS, HV_UNKNOWN, IGNORED_CLASSES, ISOLATION_ALLOWED_CLASSES, PERF_CLASSES } from '../wire/guids.js';
import { MonitorPage, MonitorParameter, MonitorTriggerGroup, MONITORS_PER_GROUP } from '../wire/packets.js';
import {
  ChannelFlags,
  ChannelMessageType as T,
  FIRST_GPADL_HANDLE,
  LINUX_VERSION_ORDER,
  MAX_CHANNEL_RELIDS,
  VMBUS_CONNECT_CPU,
  VMBUS_MESSAGE_CONNECTION_ID,
  VMBUS_MESSAGE_CONNECTION_ID_4,
  VMBUS_MESSAGE_SINT,
  VmbusFeature,
  VmbusVersion,
  versionString,
} from '../wire/constants.js';
import { ChannelMessageError, decodeChannelMessage, encodeChannelMessage, InitiateContactLegacy, MessageHeader, type ChannelMessage } from '../wire/messages.js';
import { GuestChannel, type ChannelOwner, type OfferInfo } from './channel.js';
import { VmbusError } from './errors.js';
import type { DeviceSnapshot, MonitorSnapshot, VmbusSnapshot } from './snapshot.js';
import type { ClientTransport } from './transport.js';

export interface ClientOptions {
  /** Versions to try, newest first (vmbus_versions[]; Linux 6.1 has 5.3 down to 2.4). */
  versions: readonly number[];
  /** Feature flags to request at 6.0 (vmbus.md §3.5). */
  featureFlags: number;
  /** Linux waits for the host without limit; the model gives up after this and reports ETIMEDOUT. */
  timeoutNs: number;
  /** An isolated (SNP/TDX) guest: at least 5.2, and only allow-listed device classes. */
  isolated: boolean;
}

/** Linux 6.1's vmbus_versions[]: all but 6.0, which arrived later with confidential VMBus. */
export const LINUX_6_1_VERSIONS: readonly number[] = LINUX_VERSION_ORDER.filter((v) => v !== VmbusVersion.WIN10_V6_0);

export const DEFAULT_CLIENT_OPTIONS: ClientOptions = { versions: LINUX_6_1_VERSIONS, featureFlags: 0, timeoutNs: 60e9, isolated: false };

/** A guest driver: bound to every device whose class it names. */
export interface VmbusDriver {
  readonly name: string;
  /** Class (interface type) GUIDs, lower case. */
  readonly classIds: readonly string[];
  /** hv_driver.hvsock: binds every hv_sock offer (TLNPI_PROVIDER_OFFER), whatever its GUIDs, and nothing else. */
  readonly hvsock?: boolean;
  /** Sets the device up (usually opens its channel); throws VmbusError to refuse it. */
  probe(channel: GuestChannel): void;
  remove?(channel: GuestChannel): void;
}

/** The host messages Linux handles: minimum payload and whether the handler may sleep (§2.2). */
const GUEST_HANDLERS: Record<number, { minLength: number; blocking: boolean }> = {
  [T.OFFERCHANNEL]: { minLength: 196, blocking: true },
  [T.RESCIND_CHANNELOFFER]: { minLength: 12, blocking: true },
  [T.ALLOFFERS_DELIVERED]: { minLength: 0, blocking: false },
  [T.OPENCHANNEL_RESULT]: { minLength: 20, blocking: false },
  [T.GPADL_CREATED]: { minLength: 20, blocking: false },
  [T.GPADL_TORNDOWN]: { minLength: 12, blocking: false },
  [T.VERSION_RESPONSE]: { minLength: 16, blocking: false },
  [T.UNLOAD_RESPONSE]: { minLength: 0, blocking: false },
  [T.MODIFYCHANNEL_RESPONSE]: { minLength: 16, blocking: false },
};
/** CHANNELMSG_COUNT in Linux: higher types are invalid. */
const CHANNELMSG_COUNT = 25;

interface Waiter {
  readonly channel: GuestChannel | undefined;
  readonly match: (m: ChannelMessage) => boolean;
  response?: ChannelMessage;
  rescinded?: boolean;
}

export type ConnectionState = 'disconnected' | 'connecting' | 'connected';

/** hv_device.vendor_id of every VMBus device (PCI_VENDOR_ID_MICROSOFT). */
const PCI_VENDOR_ID_MICROSOFT = 0x1414;

type Queue = 'offers' | 'rescinds' | 'subchannels' | 'primaries';
const QUEUE_ORDER: readonly Queue[] = ['offers', 'rescinds', 'subchannels', 'primaries'];

/**
 * The guest's VMBus driver, as Linux 6.1's: the driver API. `registerDriver()` binds a driver to
 * the offers of its classes; its `probe` gets each channel, opens it and sends packets.
 *
 * @example
 * ```ts
 * import { Machine, type GuestChannel } from 'hvkit';
 *
 * const MY_CLASS = '5d7e3a52-1f6b-4c11-8a43-0b9e2c4d6f70';
 * const m = new Machine({ release: 'ws2022', vps: 2, devices: [] });
 * // A host device that accepts the open and does nothing else (see VmbusServer).
 * m.vmbus!.server.offer({ classId: MY_CLASS, instanceId: '00000000-0000-4000-8000-000000000003' }, {});
 * m.boot();
 * // The guest driver: bound by class GUID, it opens the channel with 16 KiB rings each way.
 * let bound: GuestChannel | undefined;
 * m.kernel.vmbus!.registerDriver({
 *   name: 'my_driver',
 *   classIds: [MY_CLASS],
 *   probe: (ch) => {
 *     bound = ch;
 *     ch.open({ sendRingBytes: 16384, recvRingBytes: 16384, onEvent: () => undefined });
 *   },
 * });
 * m.runFor(1_000_000);
 * console.log(bound!.relid, bound!.state); // → 1 opened
 * console.log(m.kernel.vmbus!.snapshot().devices.map((d) => d.driver)); // → [ 'my_driver' ]
 * ```
 */
export class VmbusClient implements ChannelOwner {
  readonly options: ClientOptions;
  status: ConnectionState = 'disconnected';
  version = 0;
  /** The connection id every message goes to (msg_conn_id from 5.0). */
  msgConnId = VMBUS_MESSAGE_CONNECTION_ID;
  /** 6.0 features the host granted. */
  features = 0;
  /** Primary channels in offer order (chn_list); sub-channels hang off their primary. */
  readonly channels: GuestChannel[] = [];
  /** The relid table (vmbus_connection.channels): only relids below 2048 are mapped. */
  private readonly relids = new Map<number, GuestChannel>();
  private readonly drivers: VmbusDriver[] = [];
  private readonly waiters: Waiter[] = [];
  /** The work queues; a job returns false to be retried on a later run (a rescind waiting for a probe). */
  private readonly queues: Record<Queue, (() => boolean | void)[]> = { offers: [], rescinds: [], subchannels: [], primaries: [] };
  private readonly busy = new Set<Queue>();
  /** Channels whose callback stopped with packets still waiting: run again (a rescheduled tasklet). */
  private readonly rerun = new Set<GuestChannel>();
  private nextHandle = FIRST_GPADL_HANDLE;
  allOffersDelivered = false;
  unloaded = false;
  interruptPage = 0;
  monitorPages: [number, number] = [0, 0];
  /** CPUs already given a perf channel in this round of spreading (hv_context.hv_numa_map, one node). */
  private readonly allocatedCpus = new Set<number>();
  /** Messages taken from the SynIC, and those dropped by the checks of vmbus.md §12. */
  messages = 0;
  dropped = 0;

  constructor(
    readonly transport: ClientTransport,
    options: Partial<ClientOptions> = {},
  ) {
    this.options = { ...DEFAULT_CLIENT_OPTIONS, ...options };
  }

  get monitorPage(): number {
    return this.monitorPages[1];
  }

  /** The legacy interrupt page's second half: guest→host bits (vmbus.md §4.4). */
  get sendInterruptPage(): number {
    return this.interruptPage + HV_HYP_PAGE_SIZE / 2;
  }

  // --- Connecting (vmbus.md §3.3) ----------------------------------------------------------

  /** vmbus_connect: the pages, then each version newest first until the host accepts one. */
  connect(): void {
    if (this.status !== 'disconnected') throw new VmbusError('EINVAL', `VMBus is already ${this.status}`);
    const t = this.transport;
    this.status = 'connecting';
    this.interruptPage ||= t.allocHvPage();
    if (!this.monitorPages[0]) this.monitorPages = [t.allocHvPage(), t.allocHvPage()];
    let version = 0;
    try {
      for (const v of this.options.versions) {
        if (this.negotiate(v)) {
          version = v;
          break;
        }
      }
      if (!version) throw new VmbusError('EDOM', 'the host accepted no version');
      if (this.options.isolated && version < VmbusVersion.WIN10_V5_2) {
        t.log('err', `Invalid VMBus version ${versionString(version)} (expected >= 5.2) from the host supporting isolation`);
        throw new VmbusError('EINVAL', `version ${versionString(version)} is too old for an isolated guest`);
      }
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      t.log('err', 'Unable to connect to host');
      this.status = 'disconnected';
      throw e;
    }
    this.version = version;
    t.log('info', `Vmbus version:${versionString(version)}`);
  }

  /** vmbus_negotiate_version: true if the host accepted `v`. */
  private negotiate(v: number): boolean {
    const t = this.transport;
    const modern = v >= VmbusVersion.WIN10_V5;
    // From 5.0 INITIATE_CONTACT goes to connection 4 and names the SINT instead of the interrupt page.
    this.msgConnId = modern ? VMBUS_MESSAGE_CONNECTION_ID_4 : VMBUS_MESSAGE_CONNECTION_ID;
    const common = { vmbus_version_requested: v, target_vcpu: t.vpIndex(VMBUS_CONNECT_CPU), monitor_page1: BigInt(this.monitorPages[0]), monitor_page2: BigInt(this.monitorPages[1]) };
    const message = modern
      ? encodeChannelMessage(T.INITIATE_CONTACT, { ...common, msg_sint: VMBUS_MESSAGE_SINT, msg_vtl: 0, reserved: 0, feature_flags: v >= VmbusVersion.WIN10_V6_0 ? this.options.featureFlags : 0 })
      : InitiateContactLegacy.encode({ header: { msgtype: T.INITIATE_CONTACT, padding: 0 }, ...common, interrupt_page: BigInt(this.interruptPage) });
    let r: ChannelMessage | undefined;
    try {
      r = this.request(undefined, (m) => m.type === T.VERSION_RESPONSE, () => this.post(message), 'VERSION_RESPONSE');
    } catch (e) {
      // A refused post (INVALID_CONNECTION_ID on connection 4: an older host) means "next version".
      if (e instanceof VmbusError && e.code !== 'ETIMEDOUT') return false;
      throw e;
    }
    if (r?.type !== T.VERSION_RESPONSE || !r.value.version_supported) return false;
    this.status = 'connected';
    if (modern) this.msgConnId = r.value.msg_conn_id;
    // OpenVMM's 20-byte answer to 6.0 carries the granted features after the 16-byte response.
    if (v >= VmbusVersion.WIN10_V6_0 && r.extra.length >= 4) this.features = new DataView(r.extra.buffer, r.extra.byteOffset).getUint32(0, true);
    return true;
  }

  /** vmbus_request_offers: REQUESTOFFERS; the offers then arrive as messages. */
  requestOffers(): void {
    if (this.status !== 'connected') throw new VmbusError('EINVAL', 'VMBus is not connected');
    this.post(encodeChannelMessage(T.REQUESTOFFERS, {}));
  }

  /**
   * vmbus_initiate_unload: UNLOAD, then wait for UNLOAD_RESPONSE, which the host sends to the VP
   * that connected whichever CPU unloads. Hosts before 3.0 have no reconnect, so nothing is sent.
   */
  unload(cpu = VMBUS_CONNECT_CPU, poll?: () => boolean): void {
    if (this.status === 'disconnected') return;
    this.status = 'disconnected';
    if (this.version < VmbusVersion.WIN8_1) return;
    this.unloaded = false;
    const message = encodeChannelMessage(T.UNLOAD, {});
    this.postFrom(message, cpu);
    // In the crash path no interrupt comes: the caller polls the message slots itself.
    const answered = poll ? poll() : this.transport.waitUntil(() => this.unloaded, this.options.timeoutNs);
    if (!answered) throw new VmbusError('ETIMEDOUT', 'no UNLOAD_RESPONSE from the host');
  }

  /**
   * vmbus_exit (rmmod hv_vmbus), its drivers' modules already gone: vmbus_disconnect's UNLOAD,
   * then vmbus_free_channels, whose device unregistration ends in hv_process_channel_removal
   * for each channel on the list, in offer order. So Linux 6.1 posts one RELID_RELEASED per
   * channel after the host has answered the UNLOAD (vmbus_drv.c, channel_mgmt.c); on hosts
   * before 3.0, which get no UNLOAD, the releases go to the still-connected host.
   */
  exit(): void {
    this.unload();
    for (const ch of [...this.channels]) {
      ch.rescinded = true;
      this.remove(ch);
    }
  }

  // --- Drivers -------------------------------------------------------------------------------

  /** vmbus_driver_register: binds to every device of its classes now present, and to later ones. */
  registerDriver(driver: VmbusDriver): void {
    this.transport.log('info', `registering driver ${driver.name}`);
    this.drivers.push(driver);
    for (const ch of this.channels) if (!ch.driver && !ch.rescinded && this.matches(driver, ch)) this.probe(driver, ch);
  }

  /** vmbus_match: hv_sock offers go to the hv_sock driver only, others by class GUID. */
  private matches(driver: VmbusDriver, ch: GuestChannel): boolean {
    if (ch.offer.flags & ChannelFlags.TLNPI_PROVIDER_OFFER) return driver.hvsock === true;
    return driver.classIds.some((c) => c.toLowerCase() === ch.offer.classId);
  }

  private probe(driver: VmbusDriver, ch: GuestChannel): void {
    ch.driver = driver;
    try {
      driver.probe(ch);
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      ch.driver = undefined;
      this.transport.log('err', `probe failed for device ${ch.deviceName} (${e.errno})`);
    }
  }

  /**
   * vmbus_send_tl_connect_request (channel.c): asks the host for an hv_sock connection from the
   * guest's endpoint to the host's service. The host answers with an offer, or not at all.
   */
  sendTlConnectRequest(guestEndpointId: string, hostServiceId: string): void {
    this.post(encodeChannelMessage(T.TL_CONNECT_REQUEST, { guest_endpoint_id: guestEndpointId, host_service_id: hostServiceId }));
  }

  /**
   * vmbus_hvsock_device_unregister: once the host has rescinded an hv_sock channel whose rescind
   * callback kept it, its driver's remove runs and the relid is released. Linux relies on the
   * host rescinding every closed hv_sock connection and waits for that; this returns false until
   * the rescind has been handled, and the caller retries from its rescind callback.
   */
  unregisterHvsockDevice(ch: GuestChannel): boolean {
    if (!(ch.offer.flags & ChannelFlags.TLNPI_PROVIDER_OFFER)) throw new VmbusError('EINVAL', `channel ${ch.relid} is not an hv_sock channel`);
    if (!this.channels.includes(ch)) return true;
    if (!ch.rescindHandled || !ch.probeDone) return false;
    const driver = ch.driver;
    ch.driver = undefined;
    driver?.remove?.(ch);
    this.remove(ch);
    return true;
  }

  /** The channel with this relid, if mapped. */
  channel(relid: number): GuestChannel | undefined {
    return this.relids.get(relid);
  }

  // --- ChannelOwner --------------------------------------------------------------------------

  /** vmbus_post_msg: up to 100 tries, backing off on the statuses that mean "busy" (vmbus.md §1.3). */
  post(message: Uint8Array): void {
    this.postFrom(message, VMBUS_CONNECT_CPU);
  }

  private postFrom(message: Uint8Array, cpu: number): void {
    const t = this.transport;
    const isContact = message[0] === T.INITIATE_CONTACT;
    let delayUs = 1;
    let status: number = HvStatus.SUCCESS;
    for (let attempt = 0; attempt < 100; attempt++) {
      status = t.postMessage(this.msgConnId, message, cpu);
      if (status === HvStatus.SUCCESS) return;
      if (status === HvStatus.INVALID_CONNECTION_ID) {
        if (isContact) throw new VmbusError('EINVAL', `connection ${this.msgConnId} does not exist`);
      } else if (status !== HvStatus.INSUFFICIENT_MEMORY && status !== HvStatus.INSUFFICIENT_BUFFERS) {
        t.log('err', `hv_post_msg() failed; error code:${status}`);
        throw new VmbusError('EINVAL', `HvPostMessage failed with status ${status}`);
      }
      t.waitUntil(() => false, delayUs * 1000);
      if (attempt < 21) delayUs *= 2;
    }
    throw new VmbusError(status === HvStatus.INVALID_CONNECTION_ID ? 'EAGAIN' : 'ENOBUFS', `HvPostMessage still refused after 100 tries (status ${status})`);
  }

  request(channel: GuestChannel | undefined, match: (m: ChannelMessage) => boolean, send: () => void, what: string): ChannelMessage | undefined {
    // The waiter exists before the request goes out: the answer may come before post returns.
    const w: Waiter = { channel, match };
    this.waiters.push(w);
    try {
      if (channel?.rescinded) return undefined;
      send();
      const done = this.transport.waitUntil(() => w.response !== undefined || w.rescinded === true, this.options.timeoutNs);
      if (!done) {
        this.transport.log('err', `no ${what} from the host after ${this.options.timeoutNs / 1e9} s (Linux would wait forever)`);
        throw new VmbusError('ETIMEDOUT', `no ${what} from the host`);
      }
      return w.rescinded ? undefined : w.response;
    } finally {
      this.waiters.splice(this.waiters.indexOf(w), 1);
    }
  }

  nextGpadlHandle(): number {
    return this.nextHandle++;
  }

  /** hv_process_channel_removal: forget the channel, then RELID_RELEASED (rescinded channels only). */
  remove(ch: GuestChannel): void {
    if (this.relids.get(ch.relid) === ch) this.relids.delete(ch.relid);
    const list = ch.primary ? ch.primary.subchannels : this.channels;
    const i = list.indexOf(ch);
    if (i >= 0) list.splice(i, 1);
    this.releaseRelid(ch.relid);
  }

  private releaseRelid(relid: number): void {
    try {
      this.post(encodeChannelMessage(T.RELID_RELEASED, { child_relid: relid }));
    } catch (e) {
      if (!(e instanceof VmbusError)) throw e;
      this.transport.log('err', `RELID_RELEASED for relid ${relid} not sent: ${e.message}`);
    }
  }

  // --- The SINT2 interrupt -------------------------------------------------------------------

  /**
   * vmbus_on_msg_dpc, given the private copy of the 256-byte slot: drops what §12 says to drop,
   * completes waiters, queues blocking work. The caller frees the slot (EOM) afterwards.
   */
  onMessage(slot: Uint8Array): void {
    const t = this.transport;
    if (slot.length < HvMessage.size) return;
    const dv = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
    const messageType = dv.getUint32(HvMessageHeader.offsets.message_type, true);
    if (messageType === HvMessageType.NONE) return;
    this.messages++;
    const size = slot[HvMessageHeader.offsets.payload_size]!;
    const payload = slot.subarray(HvMessage.offsets.payload, HvMessage.offsets.payload + HV_MESSAGE_PAYLOAD_BYTE_COUNT);
    const msgtype = new DataView(payload.buffer, payload.byteOffset, 8).getUint32(0, true);
    const drop = (why: string) => {
      this.dropped++;
      t.log('warn', why);
    };
    if (msgtype >= CHANNELMSG_COUNT) return drop(`Received invalid channel message type ${msgtype} size ${size}`);
    if (size > HV_MESSAGE_PAYLOAD_BYTE_COUNT) return drop(`payload size is too large (${size})`);
    const handler = GUEST_HANDLERS[msgtype];
    if (!handler) {
      this.dropped++;
      return;
    }
    if (size < handler.minLength) return drop(`message too short: msgtype=${msgtype} len=${size}`);
    // Handlers see payload_size bytes (a header-only message may claim 0: its type is read anyway).
    const bytes = payload.slice(0, Math.max(size, MessageHeader.size));
    let m: ChannelMessage;
    try {
      m = decodeChannelMessage(bytes);
    } catch (e) {
      if (!(e instanceof ChannelMessageError)) throw e;
      return drop(e.message);
    }
    if (handler.blocking) return this.queueBlocking(m);
    this.onResponse(m);
  }

  /** The non-blocking handlers: responses complete the waiter whose request they match (§12). */
  private onResponse(m: ChannelMessage): void {
    switch (m.type) {
      case T.ALLOFFERS_DELIVERED:
        this.allOffersDelivered = true;
        return;
      case T.UNLOAD_RESPONSE:
        this.unloaded = true;
        return;
    }
    const w = this.waiters.find((x) => x.response === undefined && !x.rescinded && x.match(m));
    if (w) w.response = m;
  }

  private queueBlocking(m: ChannelMessage): void {
    if (m.type === T.RESCIND_CHANNELOFFER) {
      // The part of vmbus_onoffer_rescind that wakes waiters runs now, as Linux's own rescind
      // work queue would while the offer work is blocked; the removal is queued after any offer.
      const ch = this.relids.get(m.value.child_relid);
      if (ch) this.markRescinded(ch);
      const relid = m.value.child_relid;
      this.queues.rescinds.push(() => this.onRescind(relid));
      return;
    }
    if (m.type === T.OFFERCHANNEL) {
      const value = m.value;
      this.queues.offers.push(() => this.onOffer(value));
    }
  }

  private markRescinded(ch: GuestChannel): void {
    if (ch.rescinded) return;
    ch.rescinded = true;
    for (const w of this.waiters) if (w.channel === ch) w.rescinded = true;
  }

  /**
   * vmbus_chan_sched on the live SIEFP slot: test-and-clear each set flag, skipping relid 0 and
   * channels that are unknown, rescinded or have no callback, then run each channel's callback.
   */
  onEvents(flags: Uint32Array): void {
    const ready: GuestChannel[] = [];
    const words = Math.min(flags.length, HV_EVENT_FLAGS_COUNT / 32);
    for (let i = 0; i < words; i++) {
      let seen = Atomics.load(flags, i);
      while (seen !== 0) {
        const bit = 31 - Math.clz32(seen);
        const mask = 1 << bit;
        seen &= ~mask;
        if (!(Atomics.and(flags, i, ~mask) & mask)) continue;
        const relid = i * 32 + bit;
        if (relid === 0) continue;
        const ch = this.relids.get(relid);
        if (ch && !ch.rescinded) ready.push(ch);
      }
    }
    for (const ch of ready) this.runCallback(ch);
  }

  private runCallback(ch: GuestChannel): void {
    if (ch.interrupt()) this.rerun.add(ch);
    else this.rerun.delete(ch);
  }

  // --- Work (offers and rescinds) ------------------------------------------------------------

  /**
   * Runs rescheduled channel callbacks, then each work queue in order: offers, rescinds,
   * sub-channels, primaries. A queue whose job is waiting (inside this call's caller) is
   * skipped, so a wait never starts a second job of the same queue. Returns the jobs done.
   */
  runWork(): number {
    let n = 0;
    for (const ch of [...this.rerun]) {
      this.runCallback(ch);
      n++;
    }
    // Passes until one does nothing: a probe finished late in a pass lets its rescind go next.
    for (let pass = 1; pass > 0; n += pass) {
      pass = 0;
      for (const q of QUEUE_ORDER) pass += this.drain(q);
    }
    return n;
  }

  private drain(q: Queue): number {
    // Called on every interrupt: an empty queue costs nothing.
    if (this.queues[q].length === 0 || this.busy.has(q)) return 0;
    this.busy.add(q);
    const jobs = this.queues[q];
    const later: (() => boolean | void)[] = [];
    let n = 0;
    try {
      for (let job = jobs.shift(); job; job = jobs.shift()) {
        if (job() === false) later.push(job);
        else n++;
      }
    } finally {
      jobs.unshift(...later);
      this.busy.delete(q);
    }
    return n;
  }

  get pendingWork(): number {
    return QUEUE_ORDER.reduce((n, q) => n + this.queues[q].length, 0);
  }

  /** vmbus_onoffer and vmbus_process_offer (vmbus.md §3.4). */
  private onOffer(v: Extract<ChannelMessage, { type: typeof T.OFFERCHANNEL }>['value']): void {
    const t = this.transport;
    const classId = v.offer.if_type.toLowerCase();
    // AVMA, RDV and IMC offers are ignored without a word, and without RELID_RELEASED.
    if (IGNORED_CLASSES.has(classId)) return;
    if (this.options.isolated && !ISOLATION_ALLOWED_CLASSES.has(classId) && !(v.offer.chn_flags & ChannelFlags.TLNPI_PROVIDER_OFFER)) {
      t.log('err', `Invalid offer ${v.child_relid} from the host supporting isolation`);
      return;
    }
    // Confidential offers (vmbus.md §3.4): external memory only with a confidential ring, and
    // either only on a 6.0 connection that granted confidential channels.
    const confidential = v.offer.chn_flags & (ChannelFlags.CONFIDENTIAL_RING_BUFFER | ChannelFlags.CONFIDENTIAL_EXTERNAL_MEMORY);
    if (confidential) {
      const allowed = this.version >= VmbusVersion.WIN10_V6_0 && (this.features & VmbusFeature.CONFIDENTIAL_CHANNELS) !== 0;
      if (!allowed || !(confidential & ChannelFlags.CONFIDENTIAL_RING_BUFFER)) {
        t.log('err', `offer ${v.child_relid}: confidential flags 0x${confidential.toString(16)} not usable on this connection; ignored`);
        return;
      }
    }
    const offer: OfferInfo = {
      relid: v.child_relid,
      classId,
      instanceId: v.offer.if_instance.toLowerCase(),
      subChannelIndex: v.offer.sub_channel_index,
      flags: v.offer.chn_flags,
      mmioMegabytes: v.offer.mmio_megabytes,
      userDefined: v.offer.u.slice(),
      connectionId: v.connection_id,
      monitorId: v._monitor.monitor_allocated ? v.monitorid : undefined,
      dedicatedInterrupt: v._dedicated.is_dedicated_interrupt !== 0,
    };
    // hv_get_dev_type names classes it does not know (hv_sock offers excepted).
    if (!DEVICE_TYPE_OF_CLASS.has(classId) && !(offer.flags & ChannelFlags.TLNPI_PROVIDER_OFFER)) t.log('info', `Unknown GUID: ${classId}`);
    const primary = this.channels.find((c) => c.offer.classId === offer.classId && c.offer.instanceId === offer.instanceId);
    if (primary && offer.subChannelIndex === 0) {
      t.log('warn', `relid ${offer.relid}: an offer with sub-channel index 0 duplicates channel ${primary.relid}; discarded`);
      return;
    }
    const ch = new GuestChannel(offer, this, primary);
    ch.targetCpu = this.initVpIndex(ch, primary);
    if (primary) primary.subchannels.push(ch);
    else this.channels.push(ch);
    if (offer.relid >= MAX_CHANNEL_RELIDS) t.log('warn', `channel->offermsg.child_relid (${offer.relid}) >= MAX_CHANNEL_RELIDS (${MAX_CHANNEL_RELIDS})`);
    else this.relids.set(offer.relid, ch);
    // vmbus_add_channel_work, on its own queue: the channel is ready to open, then a
    // sub-channel goes to its primary's driver and a primary becomes a device its driver probes.
    if (primary) {
      this.queues.subchannels.push(() => {
        ch.state = 'open';
        primary.onSubchannel?.(ch);
        ch.probeDone = true;
      });
      return;
    }
    this.queues.primaries.push(() => {
      ch.state = 'open';
      const driver = this.drivers.find((d) => this.matches(d, ch));
      if (driver) this.probe(driver, ch);
      ch.probeDone = true;
    });
  }

  /**
   * init_vp_index (channel_mgmt.c): channels of performance-critical devices are spread over the
   * online CPUs round-robin, avoiding CPUs the device's other channels already use; all others
   * interrupt VMBUS_CONNECT_CPU. The model has one NUMA node.
   */
  private initVpIndex(ch: GuestChannel, primary: GuestChannel | undefined): number {
    if (!PERF_CLASSES.has(ch.offer.classId)) return VMBUS_CONNECT_CPU;
    const online = this.transport.onlineCpus();
    const ncpu = online.length;
    const usedBySibling = (cpu: number) => primary !== undefined && (primary.targetCpu === cpu || primary.subchannels.some((sc) => sc !== ch && sc.targetCpu === cpu));
    let target = VMBUS_CONNECT_CPU;
    for (let i = 1; i <= ncpu + 1; i++) {
      let available: readonly number[] = online.filter((c) => !this.allocatedCpus.has(c));
      if (available.length === 0) {
        // Every CPU of the node has had a channel: start the round again.
        this.allocatedCpus.clear();
        available = online;
      }
      target = available[0] ?? VMBUS_CONNECT_CPU;
      this.allocatedCpus.add(target);
      if (ch.offer.subChannelIndex >= ncpu || i > ncpu || !usedBySibling(target)) break;
    }
    return target;
  }

  /** hv_update_allocated_cpus: a perf channel retargeted frees its old CPU for the spreading. */
  cpuMoved(ch: GuestChannel, from: number, to: number): void {
    if (!PERF_CLASSES.has(ch.offer.classId)) return;
    const all = [...this.channels, ...this.channels.flatMap((c) => c.subchannels)];
    if (!all.some((c) => c !== ch && PERF_CLASSES.has(c.offer.classId) && c.targetCpu === from)) this.allocatedCpus.delete(from);
    this.allocatedCpus.add(to);
  }

  /** Reads a monitor id's pending word, latency and connection id from both monitor pages. */
  monitorSnapshot(monitorId: number): MonitorSnapshot {
    const mem = this.transport.memory;
    const group = Math.floor(monitorId / MONITORS_PER_GROUP) % 4;
    const slot = group * MONITORS_PER_GROUP + (monitorId % MONITORS_PER_GROUP);
    const read = (page: number) => {
      if (!page || !mem.contains(page, MonitorPage.size)) return { pending: 0, latency: 0, connId: 0 };
      return {
        pending: mem.read32(page + MonitorPage.offsets.trigger_group + group * MonitorTriggerGroup.size + MonitorTriggerGroup.offsets.pending),
        latency: mem.read16(page + MonitorPage.offsets.latency + 2 * slot),
        connId: mem.read32(page + MonitorPage.offsets.parameter + slot * MonitorParameter.size + MonitorParameter.offsets.connectionid),
      };
    };
    const server = read(this.monitorPages[0]);
    const client = read(this.monitorPages[1]);
    return { serverPending: server.pending, clientPending: client.pending, serverLatency: server.latency, clientLatency: client.latency, serverConnId: server.connId, clientConnId: client.connId };
  }

  /** The devices and their channels as sysfs would show them. */
  snapshot(): VmbusSnapshot {
    const devices: DeviceSnapshot[] = this.channels.map((c) => ({
      id: c.relid,
      classId: c.offer.classId,
      instanceId: c.offer.instanceId,
      deviceType: DEVICE_TYPE_OF_CLASS.get(c.offer.classId) ?? HV_UNKNOWN,
      vendorId: PCI_VENDOR_ID_MICROSOFT,
      driver: c.driver?.name,
      channels: [c, ...c.subchannels].map((x) => x.snapshot()),
    }));
    return { state: this.status, version: this.version ? versionString(this.version) : '', devices };
  }

  /**
   * The queued part of vmbus_onoffer_rescind: once the channel's probe is over, remove the
   * device (its driver's remove closes the channel) or the sub-channel, then release the relid.
   * Returns false to be retried while the probe is still running.
   */
  private onRescind(relid: number): boolean {
    const ch = this.relids.get(relid);
    if (!ch || ch.rescindHandled) return true; // unknown, or a second rescind: ignored
    this.markRescinded(ch);
    if (!ch.probeDone) return false;
    ch.rescindHandled = true;
    if (!ch.primary) {
      // A rescind callback (hv_sock's) takes the rescind instead: the device stays until its
      // driver unregisters it (vmbus_onoffer_rescind, vmbus_hvsock_device_unregister).
      if (ch.onRescind && ch.driver) {
        ch.onRescind(ch);
        return true;
      }
      const driver = ch.driver;
      ch.driver = undefined;
      driver?.remove?.(ch);
      this.remove(ch);
      return true;
    }
    // A sub-channel that is not open goes at once; an open one when its primary's close
    // reaches it.
    if (ch.state === 'open') this.remove(ch);
    return true;
  }
}
