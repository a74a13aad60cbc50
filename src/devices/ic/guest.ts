// The guest's hv_utils module (Linux 6.1 drivers/hv/hv_util.c): one VMBus driver, "hv_utils", for
// every util class it has a service for. Its probe (util_probe) gives each channel a receive
// buffer of four 4 KiB pages, runs the service's init (which may raise the channel's max_pkt_size,
// as hv_kvp_init, hv_vss_init and hv_fcopy_init do, or refuse the device), and opens the channel
// with rings of VMBUS_RING_SIZE(3 * 4096) each way in HV_CALL_DIRECT mode: the service's callback
// runs once per interrupt and reads packets itself, one at a time, the way vmbus_recvpacket
// hands them out. Services (heartbeat, shutdown, time sync, KVP, VSS, file copy) plug in as
// UtilService.
import type { GuestChannel } from '../../vmbus/client/channel.js';
import type { VmbusDriver } from '../../vmbus/client/client.js';
import { VmbusError } from '../../vmbus/client/errors.js';
import { HV_HYP_PAGE_SIZE } from '../../memory/pages.js';
import { vmbusRingSize } from '../../vmbus/client/ring-size.js';
import { VMBUS_DEFAULT_MAX_PKT_SIZE } from '../../vmbus/wire/constants.js';
import { PacketDescriptor } from '../../vmbus/wire/packets.js';
import type { GuestModule, GuestServices } from '../device.js';
import { prepNegotiateResp, type NegotiateOutcome } from './negotiate.js';

type LogLevel = Parameters<GuestServices['log']>[0];

/** util_probe: kmalloc(HV_HYP_PAGE_SIZE * 4). */
export const UTIL_RECV_BUFFER_BYTES = 4 * HV_HYP_PAGE_SIZE;
/** The ring payload hv_util.c asks for (HV_UTIL_RING_SEND_SIZE = VMBUS_RING_SIZE(3 * HV_HYP_PAGE_SIZE)). */
const UTIL_RING_PAYLOAD = 3 * HV_HYP_PAGE_SIZE;
/** Each util ring, per direction: 16 KiB on 4 KiB pages, 32 KiB on 16 KiB pages, 128 KiB on 64 KiB pages. */
export const utilRingBytes = (pageSize: number): number => vmbusRingSize(UTIL_RING_PAYLOAD, pageSize);

/** What vmbus_recvpacket returns: bytes copied into the buffer (0: nothing waiting) and the trans id. */
export interface RecvResult {
  readonly recvlen: number;
  readonly requestId: bigint;
}

/** What a util service sees of its channel: Linux's calls, on the service's receive buffer. */
export interface UtilChannel {
  readonly channel: GuestChannel;
  readonly services: GuestServices;
  /** vmbus_proto_version: the VMBus version of the connection (hv_vss_init refuses hosts below 3.0). */
  readonly vmbusVersion: number;
  /**
   * channel->max_pkt_size: the longest packet, descriptor included, the channel's reader takes
   * whole (longer ones are cut), and the buffer length the service's vmbus_recvpacket passes.
   * VMBUS_DEFAULT_MAX_PKT_SIZE (one page) unless the service's attach raises it before the open,
   * as hv_kvp_init (four pages), hv_vss_init and hv_fcopy_init (two pages) do; at most the
   * receive buffer. Setting it once the channel is open, or out of range, throws RangeError.
   */
  maxPacketSize: number;
  /** srv->recv_buffer: four pages; packets land at offset 0, bytes past recvlen keep old data. */
  readonly buffer: Uint8Array;
  /**
   * vmbus_recvpacket(channel, buffer, max_pkt_size, &recvlen, &requestid): the next packet's
   * payload into the buffer. It always fits: the reader already cut the packet to max_pkt_size.
   */
  recvpacket(): RecvResult;
  /** vmbus_sendpacket(channel, buffer, len, requestid, VM_PKT_DATA_INBAND, 0); false if it could not. */
  sendpacket(len: number, requestId: bigint): boolean;
  /** vmbus_prep_negotiate_resp on the buffer; its complaints go to the log as hv_vmbus's. */
  negotiate(recvlen: number, framework: readonly number[], message: readonly number[]): NegotiateOutcome;
  /** pr_<level> with the module prefix ("hv_utils: "). */
  log(level: LogLevel, text: string): void;
  /**
   * pr_<level>_ratelimited from the C function `fn`: at most 10 lines per 5 s per call site
   * (`site` names it); then "<fn>: N callbacks suppressed" once the interval is over.
   */
  logRatelimited(fn: string, site: string, level: LogLevel, text: string): void;
}

/** A service's state on one channel: its callback, and what util_remove undoes. */
export interface UtilServiceInstance {
  /** util_cb: runs once per channel interrupt. */
  onChannelCallback(): void;
  /** util_deinit. */
  deinit?(): void;
}

/** One util class the module serves: heartbeat, shutdown, ... */
export interface UtilService {
  /** For notes and errors: "heartbeat", "shutdown". */
  readonly name: string;
  /** The class (interface type) GUID it binds to, lower case. */
  readonly classId: string;
  /**
   * util_init for a channel about to be opened: returns its callback. Throw VmbusError to refuse
   * the device (Linux: probe fails with -ENODEV).
   */
  attach(util: UtilChannel): UtilServiceInstance;
}

/** A UtilService that keeps what its attach made for each channel, for inspection (tests, tools). */
export function trackedService<I extends UtilServiceInstance>(name: string, classId: string, create: (util: UtilChannel) => I): UtilService & { readonly instances: readonly I[] } {
  const instances: I[] = [];
  return {
    name,
    classId,
    instances,
    attach(util) {
      const instance = create(util);
      instances.push(instance);
      return instance;
    },
  };
}

export interface HvUtilsOptions {
  /** The guest's page size, for the ring sizes (VMBUS_RING_SIZE rounds to it). 4096 if not given. */
  readonly pageSize?: number;
}

/** DEFAULT_RATELIMIT_INTERVAL (5 * HZ) and DEFAULT_RATELIMIT_BURST (include/linux/ratelimit_types.h). */
const RATELIMIT_INTERVAL_NS = 5e9;
const RATELIMIT_BURST = 10;

/** One call site's ratelimit state (lib/ratelimit.c ___ratelimit). */
interface RatelimitState {
  begin: number | undefined;
  printed: number;
  missed: number;
}

/** The per-module ratelimit states: each pr_*_ratelimited call site has its own, shared by all channels. */
class Ratelimits {
  private readonly states = new Map<string, RatelimitState>();

  constructor(private readonly services: GuestServices) {}

  print(fn: string, site: string, level: LogLevel, text: string): void {
    const now = this.services.uptimeNs();
    let rs = this.states.get(site);
    if (!rs) this.states.set(site, (rs = { begin: undefined, printed: 0, missed: 0 }));
    rs.begin ??= now;
    if (now > rs.begin + RATELIMIT_INTERVAL_NS) {
      if (rs.missed) this.services.log('warn', `${fn}: ${rs.missed} callbacks suppressed`);
      rs.begin = now;
      rs.printed = 0;
      rs.missed = 0;
    }
    if (rs.printed < RATELIMIT_BURST) {
      rs.printed++;
      this.services.log(level, text);
    } else {
      rs.missed++;
    }
  }
}

/**
 * A delayed_work item of a util service on the kernel's timer (schedule_delayed_work, which does
 * nothing while the item is pending; cancel_delayed_work_sync, true if it was still pending).
 */
export class DelayedWork {
  private handle: { cancel(): boolean } | undefined;

  constructor(
    private readonly services: GuestServices,
    private readonly work: () => void,
  ) {}

  get pending(): boolean {
    return this.handle !== undefined;
  }

  /** Runs the work once `delayNs` of guest time has passed; false if it is already pending. */
  schedule(delayNs: number): boolean {
    if (this.handle) return false;
    const handle = this.services.scheduleDelayedWork(delayNs, () => {
      if (this.handle !== handle) return;
      this.handle = undefined;
      this.work();
    });
    this.handle = handle;
    return true;
  }

  /** cancel_delayed_work_sync: true if the work was pending (and now will not run). */
  cancel(): boolean {
    const h = this.handle;
    this.handle = undefined;
    return h ? h.cancel() : false;
  }
}

/** One opened util channel: the receive buffer and the packets read out of the ring. */
class UtilChannelImpl implements UtilChannel {
  readonly buffer = new Uint8Array(UTIL_RECV_BUFFER_BYTES);
  instance: UtilServiceInstance | undefined;
  /** vmbus_open has taken max_pkt_size. */
  sealed = false;
  private maxPkt = VMBUS_DEFAULT_MAX_PKT_SIZE;
  /**
   * Packets taken from the ring and not yet handed out. GuestChannel.receive drains the ring in
   * one go; recvpacket hands the packets out one by one and refills only when this is empty, so
   * it never holds more than one ring's worth.
   */
  private readonly queue: { payload: Uint8Array; transId: bigint }[] = [];

  constructor(
    readonly channel: GuestChannel,
    readonly services: GuestServices,
    private readonly limits: Ratelimits,
  ) {}

  get vmbusVersion(): number {
    return this.channel.vmbusVersion;
  }

  get maxPacketSize(): number {
    return this.maxPkt;
  }

  set maxPacketSize(bytes: number) {
    if (this.sealed) throw new RangeError(`hv_utils: max_pkt_size of channel ${this.channel.relid} is fixed once it is open`);
    if (!Number.isSafeInteger(bytes) || bytes <= PacketDescriptor.size || bytes > this.buffer.length) {
      throw new RangeError(`hv_utils: max_pkt_size ${bytes} is not within (${PacketDescriptor.size}, ${this.buffer.length}]`);
    }
    this.maxPkt = bytes;
  }

  recvpacket(): RecvResult {
    if (this.queue.length === 0) this.channel.receive((p) => this.queue.push({ payload: p.payload.slice(), transId: p.transId }));
    const p = this.queue.shift();
    if (!p) return { recvlen: 0, requestId: 0n };
    // The reader cut the packet, descriptor included, to max_pkt_size, which is also this
    // buffer length: vmbus_recvpacket's -ENOBUFS cannot happen. The bound only keeps a channel
    // that reads differently from writing past it.
    const len = Math.min(p.payload.length, this.maxPkt);
    this.buffer.set(p.payload.subarray(0, len));
    return { recvlen: len, requestId: p.transId };
  }

  sendpacket(len: number, requestId: bigint): boolean {
    try {
      return this.channel.sendInband(this.buffer.subarray(0, Math.max(0, Math.min(len, this.buffer.length))), requestId, false);
    } catch (e) {
      // vmbus_sendpacket's errors (-ENODEV after a rescind, ...) are ignored by every util callback.
      if (e instanceof VmbusError) return false;
      throw e;
    }
  }

  negotiate(recvlen: number, framework: readonly number[], message: readonly number[]): NegotiateOutcome {
    return prepNegotiateResp(this.buffer, recvlen, framework, message, (text) =>
      // Its two pr_err_ratelimited call sites: a short packet, and counts that do not fit.
      this.limits.print('vmbus_prep_negotiate_resp', text.includes(' - ') ? 'negotiate:counts' : 'negotiate:short', 'err', `hv_vmbus: ${text}`),
    );
  }

  log(level: LogLevel, text: string): void {
    this.services.log(level, `hv_utils: ${text}`);
  }

  logRatelimited(fn: string, site: string, level: LogLevel, text: string): void {
    this.limits.print(fn, `${fn}:${site}`, level, `hv_utils: ${text}`);
  }

  /** The channel's interrupt (HV_CALL_DIRECT: one callback per interrupt). */
  interrupt(): void {
    this.instance?.onChannelCallback();
  }
}

/** The one hv_utils driver, bound to every class one of its services handles. */
export class HvUtilsDriver implements VmbusDriver {
  readonly name = 'hv_utils';
  readonly classIds: readonly string[];
  /** Opened channels by relid, for inspection. */
  readonly channels = new Map<number, UtilChannel>();
  private readonly byClass: ReadonlyMap<string, UtilService>;
  private readonly limits: Ratelimits;

  constructor(
    services: readonly UtilService[],
    private readonly kernel: GuestServices,
    private readonly pageSize: number,
  ) {
    this.byClass = new Map(services.map((s) => [s.classId.toLowerCase(), s]));
    this.classIds = [...this.byClass.keys()];
    this.limits = new Ratelimits(kernel);
  }

  /** util_probe. */
  probe(ch: GuestChannel): void {
    const service = this.byClass.get(ch.offer.classId.toLowerCase());
    if (!service) throw new VmbusError('ENODEV', `hv_utils has no service for class ${ch.offer.classId}`);
    const util = new UtilChannelImpl(ch, this.kernel, this.limits);
    // util_init runs before the open, so the callback is ready for the first interrupt and the
    // open takes the max_pkt_size it set.
    const instance = service.attach(util);
    util.instance = instance;
    util.sealed = true;
    const ring = utilRingBytes(this.pageSize);
    try {
      ch.open({ sendRingBytes: ring, recvRingBytes: ring, maxPacketSize: util.maxPacketSize, callbackMode: 'direct', onEvent: () => util.interrupt() });
    } catch (e) {
      instance.deinit?.();
      throw e;
    }
    this.channels.set(ch.relid, util);
  }

  /** util_remove: the service's deinit, then vmbus_close. */
  remove(ch: GuestChannel): void {
    const util = this.channels.get(ch.relid) as UtilChannelImpl | undefined;
    util?.instance?.deinit?.();
    this.channels.delete(ch.relid);
    ch.close();
  }
}

/**
 * The hv_utils module: its init prints Linux's line and registers the driver (init_hyperv_utils).
 * Each service's class is bound; a class without a service is left to other drivers.
 */
export function hvUtilsModule(services: readonly UtilService[], options: HvUtilsOptions = {}): GuestModule {
  const pageSize = options.pageSize ?? 4096;
  return {
    name: 'hv_utils',
    init(kernel, register) {
      kernel.log('info', 'hv_utils: Registering HyperV Utility Driver');
      register(new HvUtilsDriver(services, kernel, pageSize));
    },
  };
}
