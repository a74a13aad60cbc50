// The host half of Hyper-V Dynamic Memory: the dynamic memory VSP. It answers the guest's version
// request with the versions of the release it emulates (versions.ts) and accepts its
// capabilities; from 1.0 on it tells the guest the maximum it may grow to (DM_INFO_MESSAGE,
// INFO_TYPE_MAX_PAGE_CNT). Then it keeps the guest's latest status report and runs one operation
// at a time for the controller (controller.ts): a balloon request (the guest answers with page
// ranges, over as many DM_BALLOON_RESPONSE messages as it needs), an unballoon request (the
// host gives back page ranges it holds, split to fit the guest's 4 KiB receive buffer), or a hot
// add (the host first makes the RAM present, then asks the guest to add it).
//
// The host trusts nothing: a balloon response naming pages outside present RAM, pages already
// ballooned or more pages than asked for is a recorded violation and those ranges are not taken;
// a message that does not parse, or comes out of turn, is a violation and changes nothing.
//
// UNVERIFIED (nothing documents Hyper-V's side): the 1.0+ INFO message right after the
// capabilities are accepted, the host placing hot-added RAM directly above the RAM present, and
// the operation timeout below.
import { BoundedLog } from '../../tlfs/bounded-log.js';
import { WireError } from '../../tlfs/struct.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { ChannelHandler, HostChannel } from '../../vmbus/server/channel.js';
import { STATUS_UNSUCCESSFUL } from '../../vmbus/server/server.js';
import { PacketType } from '../../vmbus/wire/constants.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { ParsedPacket } from '../../vmbus/wire/packets.js';
import type { HostContext, HostDevice } from '../device.js';
import { DmController, type DynamicMemoryConfig } from './controller.js';
import { hasInfoMessage, HOST_DYNMEM_VERSIONS } from './versions.js';
import {
  decodeDmMessage,
  DM_PAGE_SIZE,
  DmMemPageRange,
  DmUnballoonRequest,
  dynmemVersionString,
  encodeBalloon,
  encodeCapabilitiesResponse,
  encodeHotAdd,
  encodeInfoMaxPageCount,
  encodeUnballoonRequest,
  encodeVersionResponse,
  MAX_RANGE_PAGES,
  type DmMessageValue,
  type PageRange,
} from './wire.js';

/** offered: waiting for the guest; negotiating: versions and capabilities; ready; failed: no common version. */
export type DmHostPhase = 'offered' | 'negotiating' | 'ready' | 'failed';

/** The guest's latest DM_STATUS_REPORT, in 4 KiB pages, and when it came. */
export interface DmStatusReport {
  readonly ns: number;
  readonly numAvail: number;
  readonly numCommitted: number;
}

/** What the VSP can be asked to do, and how it ended. */
export type DmOperation = { readonly kind: 'balloon' | 'unballoon' | 'hot-add'; readonly pages: number };
export interface DmOperationResult {
  readonly kind: DmOperation['kind'];
  readonly requested: number;
  /** Pages ballooned, given back, or hot added. */
  readonly done: number;
  readonly outcome: 'ok' | 'timeout' | 'closed' | 'refused';
}

export interface DmHostOptions {
  /** Versions to accept instead of the release's (tests, fault injection). */
  readonly versions?: readonly number[];
  /** How long an operation may wait for the guest's answer (default 60 s). */
  readonly operationTimeoutNs?: number;
  /** Called with each status report and each finished operation (the controller). */
  readonly onStatus?: (s: DmStatusReport) => void;
  readonly onOperationDone?: (r: DmOperationResult) => void;
}

export const DM_OPERATION_TIMEOUT_NS = 60e9;
/** Violations kept; log lines per channel open. */
const MAX_KEPT_VIOLATIONS = 100;
const MAX_LOGGED_VIOLATIONS = 10;
/** Ranges that fit one DM_UNBALLOON_REQUEST in the guest's 4 KiB receive buffer. */
export const MAX_RANGES_PER_UNBALLOON = Math.floor((DM_PAGE_SIZE - DmUnballoonRequest.size) / DmMemPageRange.size);

interface InFlightOp {
  readonly op: DmOperation;
  done: number;
  timer: { cancel(): void } | undefined;
}

/** What `memory status` and `hvkit run --json` show of the host's side. */
export interface DmHostSnapshot {
  readonly phase: DmHostPhase;
  readonly version: string | undefined;
  readonly guestCapabilities: { readonly balloon: boolean; readonly hotAdd: boolean; readonly hotAddAlignment: number } | undefined;
  /** Pages (4 KiB) the host holds from the guest's balloon. */
  readonly balloonedPages: number;
  /** Pages the guest reported hot added. */
  readonly hotAddedPages: number;
  readonly lastStatus: DmStatusReport | undefined;
  readonly statusReports: number;
  readonly busy: DmOperation['kind'] | undefined;
  readonly violations: number;
}

export class DmHost implements ChannelHandler, HostDevice {
  readonly type = 'balloon';
  readonly hostChannel: HostChannel;
  phase: DmHostPhase = 'offered';
  version: number | undefined;
  guestCapabilities: DmHostSnapshot['guestCapabilities'];
  channel: HostChannel | undefined;
  lastStatus: DmStatusReport | undefined;
  statusReports = 0;
  /** Pages hot added, as the guest answered. */
  hotAddedPages = 0;
  /** Hot add failed for good (the guest said so): no more hot adds. */
  hotAddDisabled = false;
  readonly violations = new BoundedLog<string>(MAX_KEPT_VIOLATIONS);
  readonly results = new BoundedLog<DmOperationResult>(MAX_KEPT_VIOLATIONS);
  /** The dynamic memory policy, when the VM has dynamic memory (static memory: the VSP only answers). */
  controller: DmController | undefined;
  private loggedViolations = 0;
  private inFlight: InFlightOp | undefined;
  /** One byte per 4 KiB frame of the backing: 1 while the host holds the frame ballooned. */
  private readonly balloonMap: Uint8Array;
  private balloonedCount = 0;
  private readonly versions: readonly number[];
  private disposed = false;
  /** An operation's messages not yet in the ring (an unballoon of many ranges outgrows it). */
  private readonly outbox: Uint8Array[] = [];
  /** Frames present at boot: hot-added RAM starts above them. */
  private readonly bootFrames: number;

  constructor(
    private readonly ctx: HostContext,
    readonly instanceId: string,
    private readonly memory: GuestMemory | undefined,
    private readonly options: DmHostOptions = {},
  ) {
    this.versions = options.versions ?? HOST_DYNMEM_VERSIONS[ctx.release];
    this.balloonMap = new Uint8Array((memory?.capacity ?? 0) / DM_PAGE_SIZE);
    this.bootFrames = (memory?.size ?? 0) / DM_PAGE_SIZE;
    this.hostChannel = ctx.server.offer({ classId: DeviceClass.DM, instanceId }, this);
  }

  get balloonedPages(): number {
    return this.balloonedCount;
  }

  get busy(): boolean {
    return this.inFlight !== undefined;
  }

  snapshot(): DmHostSnapshot {
    return {
      phase: this.phase,
      version: this.version === undefined ? undefined : dynmemVersionString(this.version),
      guestCapabilities: this.guestCapabilities,
      balloonedPages: this.balloonedCount,
      hotAddedPages: this.hotAddedPages,
      lastStatus: this.lastStatus,
      statusReports: this.statusReports,
      busy: this.inFlight?.op.kind,
      violations: this.violations.total,
    };
  }

  private log(text: string): void {
    this.ctx.log(`balloon: ${text}`);
  }

  private violation(text: string): void {
    this.violations.push(text);
    if (this.loggedViolations++ < MAX_LOGGED_VIOLATIONS) this.log(`guest violation: ${text}`);
  }

  // --- ChannelHandler ----------------------------------------------------------------------------

  open(ch: HostChannel): number {
    if (this.disposed) return STATUS_UNSUCCESSFUL;
    this.channel = ch;
    this.phase = 'negotiating';
    this.version = undefined;
    this.loggedViolations = 0;
    return 0;
  }

  close(): void {
    this.detach();
  }

  revoked(): void {
    this.detach();
  }

  dispose(): void {
    this.disposed = true;
    this.detach();
  }

  signal(ch: HostChannel): void {
    ch.receive((p) => {
      if (!this.disposed) this.onPacket(p);
    });
    this.flush();
  }

  /**
   * Sends what waits in the outbox while the ring has room; when it has none, asks the guest to
   * signal once the next message fits (pending_send_sz), and goes on from signal().
   */
  private flush(): void {
    const ch = this.channel;
    while (ch && this.outbox.length > 0) {
      const msg = this.outbox[0]!;
      if (ch.sendInband(msg)) {
        this.outbox.shift();
        continue;
      }
      // A packet: its 16-byte descriptor, the payload padded to 8 bytes, the 8-byte trailer.
      if (!ch.waitForSpace(16 + Math.ceil(msg.length / 8) * 8 + 8)) return;
    }
    ch?.waitForSpace(0);
  }

  private detach(): void {
    this.channel = undefined;
    this.outbox.length = 0;
    if (this.phase !== 'failed') this.phase = 'offered';
    this.finish('closed');
  }

  private send(msg: Uint8Array): boolean {
    return this.channel?.sendInband(msg) ?? false;
  }

  private onPacket(p: ParsedPacket): void {
    if (p.type !== PacketType.DATA_INBAND) return this.violation(`packet type ${p.type} is not in-band data`);
    this.onGuestMessage(p.payload);
  }

  /** One message from the guest. Public so that tests can feed it anything; it never throws. */
  onGuestMessage(payload: Uint8Array): void {
    // The guest sends nothing longer than its 4 KiB send buffer (balloon_up_send_buffer).
    if (payload.length > DM_PAGE_SIZE + 8) return this.violation(`a ${payload.length}-byte message is longer than ${DM_PAGE_SIZE} bytes`);
    let m: DmMessageValue;
    try {
      m = decodeDmMessage(payload);
    } catch (e) {
      if (e instanceof WireError) return this.violation(e.message);
      throw e;
    }
    if (m.type === 'version-request') return this.versionRequest(m.version, m.isLastAttempt);
    if (this.phase !== 'negotiating' && this.phase !== 'ready') return this.violation(`${m.type} before a version was agreed`);
    if (this.version === undefined) return this.violation(`${m.type} before a version was agreed`);
    switch (m.type) {
      case 'capabilities':
        return this.capabilities(m);
      case 'status':
        return this.status(m.numAvail, m.numCommitted);
      case 'balloon-response':
        return this.balloonResponse(m.ranges, m.morePages);
      case 'unballoon-response':
        if (this.inFlight?.op.kind !== 'unballoon') return this.violation('an unballoon response with no unballoon request');
        return this.finish('ok');
      case 'hot-add-response':
        return this.hotAddResponse(m.pageCount, m.result);
      default:
        return this.violation(`${m.type} is not a message the guest sends`);
    }
  }

  private versionRequest(version: number, last: boolean): void {
    if (this.phase !== 'negotiating') return this.violation(`a version request in phase ${this.phase}`);
    const ok = this.versions.includes(version);
    this.send(encodeVersionResponse(0, ok));
    if (ok) {
      this.version = version;
      this.log(`protocol version ${dynmemVersionString(version)} agreed`);
    } else if (last) {
      this.phase = 'failed';
      this.log(`no common protocol version: the guest's last attempt was ${dynmemVersionString(version)}`);
    }
  }

  private capabilities(m: Extract<DmMessageValue, { type: 'capabilities' }>): void {
    if (this.phase !== 'negotiating') return this.violation('capabilities reported twice');
    this.guestCapabilities = { balloon: m.balloon, hotAdd: m.hotAdd, hotAddAlignment: m.hotAddAlignment };
    this.send(encodeCapabilitiesResponse(0, true));
    this.phase = 'ready';
    this.log(`guest capabilities: balloon ${m.balloon ? 'yes' : 'no'}, hot add ${m.hotAdd ? `yes (alignment ${2 ** m.hotAddAlignment} MiB)` : 'no'}`);
    if (this.memory && hasInfoMessage(this.version!)) this.send(encodeInfoMaxPageCount(0, BigInt(this.memory.capacity / DM_PAGE_SIZE)));
  }

  private status(numAvail: bigint, numCommitted: bigint): void {
    if (this.phase !== 'ready') return this.violation('a status report before capabilities');
    // Counts beyond any RAM the VM can have are clamped, not trusted.
    const cap = BigInt(Number.MAX_SAFE_INTEGER);
    const s: DmStatusReport = { ns: this.ctx.now(), numAvail: Number(numAvail > cap ? cap : numAvail), numCommitted: Number(numCommitted > cap ? cap : numCommitted) };
    this.lastStatus = s;
    this.statusReports++;
    this.options.onStatus?.(s);
  }

  // --- Operations ---------------------------------------------------------------------------------

  /**
   * Starts one operation: balloon `pages` out of the guest, give `pages` ballooned pages back, or
   * hot add `pages` of RAM above what is present. False (nothing sent) when the VSP is not ready,
   * busy, or the operation cannot be done (no ballooned pages, no room below the maximum).
   */
  start(op: DmOperation): boolean {
    if (this.phase !== 'ready' || this.inFlight || !Number.isSafeInteger(op.pages) || op.pages <= 0) return false;
    let msgs: Uint8Array[];
    let pages = op.pages;
    switch (op.kind) {
      case 'balloon':
        if (!this.guestCapabilities?.balloon) return false;
        pages = Math.min(pages, 0xffff_ffff);
        msgs = [encodeBalloon(0, pages)];
        break;
      case 'unballoon': {
        const ranges = this.takeBallooned(pages);
        if (ranges.length === 0) return false;
        pages = ranges.reduce((n, r) => n + r.count, 0);
        msgs = [];
        for (let i = 0; i < ranges.length; i += MAX_RANGES_PER_UNBALLOON) {
          const part = ranges.slice(i, i + MAX_RANGES_PER_UNBALLOON);
          msgs.push(encodeUnballoonRequest(0, i + MAX_RANGES_PER_UNBALLOON < ranges.length, part));
        }
        break;
      }
      case 'hot-add': {
        const mem = this.memory;
        if (!mem || !this.guestCapabilities?.hotAdd || this.hotAddDisabled) return false;
        // From the first frame not yet added: a range the guest could not add is offered again.
        const startPfn = this.bootFrames + this.hotAddedPages;
        pages = Math.min(pages, mem.capacity / DM_PAGE_SIZE - startPfn, MAX_RANGE_PAGES);
        if (pages <= 0) return false;
        // The RAM is present before the guest hears of it.
        const end = (startPfn + pages) * DM_PAGE_SIZE;
        if (end > mem.size) mem.grow(end);
        msgs = [encodeHotAdd(0, { start: startPfn, count: pages })];
        break;
      }
    }
    const flight: InFlightOp = { op: { kind: op.kind, pages }, done: 0, timer: undefined };
    this.inFlight = flight;
    this.outbox.push(...msgs);
    this.flush();
    if (op.kind === 'unballoon') flight.done = pages;
    flight.timer = this.ctx.schedule(this.ctx.now() + (this.options.operationTimeoutNs ?? DM_OPERATION_TIMEOUT_NS), () => {
      if (this.inFlight === flight) this.finish('timeout');
    });
    return true;
  }

  /** Up to `pages` of the ballooned frames, as ranges, no longer held (lowest first). */
  private takeBallooned(pages: number): PageRange[] {
    const out: PageRange[] = [];
    let left = Math.min(pages, this.balloonedCount);
    const map = this.balloonMap;
    for (let pfn = 0; pfn < map.length && left > 0; pfn++) {
      if (map[pfn] !== 1) continue;
      let end = pfn;
      while (end < map.length && map[end] === 1 && end - pfn < left && end - pfn < MAX_RANGE_PAGES) end++;
      map.fill(0, pfn, end);
      out.push({ start: pfn, count: end - pfn });
      left -= end - pfn;
      this.balloonedCount -= end - pfn;
      pfn = end - 1;
    }
    return out;
  }

  private balloonResponse(ranges: readonly PageRange[], morePages: boolean): void {
    const f = this.inFlight;
    if (f?.op.kind !== 'balloon') return this.violation('a balloon response with no balloon request');
    const mem = this.memory;
    const presentFrames = (mem?.size ?? 0) / DM_PAGE_SIZE;
    for (const r of ranges) {
      const end = r.start + r.count;
      if (r.count === 0) continue;
      if (end > presentFrames) {
        this.violation(`balloon range 0x${r.start.toString(16)}+${r.count} is outside the guest's RAM`);
        continue;
      }
      if (f.done + r.count > f.op.pages) {
        this.violation(`balloon range 0x${r.start.toString(16)}+${r.count} is more than the ${f.op.pages} pages asked for`);
        continue;
      }
      if (this.balloonMap.subarray(r.start, end).includes(1)) {
        this.violation(`balloon range 0x${r.start.toString(16)}+${r.count} names pages already ballooned`);
        continue;
      }
      this.balloonMap.fill(1, r.start, end);
      this.balloonedCount += r.count;
      f.done += r.count;
    }
    if (!morePages) this.finish('ok');
  }

  private hotAddResponse(pageCount: number, result: number): void {
    const f = this.inFlight;
    if (f?.op.kind !== 'hot-add') return this.violation('a hot add response with no hot add request');
    if (pageCount > f.op.pages) {
      this.violation(`hot add response counts ${pageCount} pages of the ${f.op.pages} offered`);
      pageCount = f.op.pages;
    }
    f.done = pageCount;
    this.hotAddedPages += pageCount;
    // Success with no pages: the guest will never hot add (dm_hot_add_response in hv_balloon.c).
    if (result === 1 && pageCount === 0) {
      this.hotAddDisabled = true;
      this.log('the guest cannot hot add memory: no more hot add requests');
    }
    this.finish('ok');
  }

  private finish(outcome: DmOperationResult['outcome']): void {
    const f = this.inFlight;
    if (!f) return;
    this.inFlight = undefined;
    f.timer?.cancel();
    const r: DmOperationResult = { kind: f.op.kind, requested: f.op.pages, done: f.done, outcome };
    this.results.push(r);
    if (outcome !== 'ok') this.log(`${f.op.kind} of ${f.op.pages} pages: ${outcome}`);
    this.options.onOperationDone?.(r);
  }
}

/** The device registry's factory: offers the dynamic memory VSP, with the policy when the VM has dynamic memory. */
export function attachDmHost(ctx: HostContext, instanceId: string, options: DmHostOptions & { dynamicMemory?: DynamicMemoryConfig } = {}): DmHost {
  const { dynamicMemory, ...rest } = options;
  let controller: DmController | undefined;
  const host = new DmHost(ctx, instanceId, ctx.memory, {
    ...rest,
    onStatus: (s) => {
      rest.onStatus?.(s);
      controller?.onStatus(s);
    },
  });
  if (dynamicMemory) host.controller = controller = new DmController(host, dynamicMemory);
  return host;
}
