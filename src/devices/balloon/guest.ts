// hv_balloon, the guest half of Hyper-V Dynamic Memory, modelled on Linux 6.1
// drivers/hv/hv_balloon.c: it negotiates a protocol version (WIN10, then WIN8, then WIN7 as its
// last attempt), reports its capabilities, posts its memory pressure every second once
// pressure_report_delay has passed, gives pages to the host on a balloon request (2 MiB blocks
// first, then single pages, in responses that fit its 4 KiB send buffer), takes them back on an
// unballoon request, and hot adds memory in 128 MiB blocks (HA_CHUNK), bringing online only the
// pages the host backed.
//
// Where the model departs from Linux (said in docs/13-other-devices.md):
//  - Linux trusts the host's unballoon ranges; the model gives back only pages it ballooned and
//    records the rest as host violations, within a budget of the pages it holds per message.
//  - add_memory is modelled: a block that overlaps RAM already present fails with -EEXIST (and
//    stops hot add, as Linux does), and pages the host names that are not present are not onlined.
//  - Free page reporting (the cold-discard hint hypercall) is not modelled.
import { BoundedLog } from '../../tlfs/bounded-log.js';
import { WireError } from '../../tlfs/struct.js';
import type { GuestChannel } from '../../vmbus/client/channel.js';
import type { VmbusClient, VmbusDriver } from '../../vmbus/client/client.js';
import { VmbusError } from '../../vmbus/client/errors.js';
import { vmbusRingSize } from '../../vmbus/client/ring-size.js';
import { PacketType } from '../../vmbus/wire/constants.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { ParsedPacket } from '../../vmbus/wire/packets.js';
import type { GuestModule, GuestPageAllocator, GuestServices } from '../device.js';
import { GUEST_DYNMEM_VERSIONS } from './versions.js';
import {
  decodeDmMessage,
  DM_PAGE_SIZE,
  DmBalloonResponse,
  DmMemPageRange,
  dynmemVersionString,
  encodeBalloonResponse,
  encodeCapabilities,
  encodeHotAddResponse,
  encodeStatus,
  encodeUnballoonResponse,
  encodeVersionRequest,
  haChunk,
  HvDmState,
  LINUX_HOT_ADD_ALIGNMENT,
  pagesIn2M,
  type DmMessageValue,
  type PageRange,
} from './wire.js';

export const HV_BALLOON_MODULE_NAME = 'hv_balloon';

/** dm_ring_size: VMBUS_RING_SIZE(16 KiB). */
const DM_RING_PAYLOAD = 16 * 1024;
/** balloon_connect_vsp waits 5 s for each answer. */
const HOST_ANSWER_NS = 5e9;
/** dm_thread_func: a status report every second. */
const STATUS_PERIOD_NS = 1e9;
/** balloon_up sleeps 20 ms when the ring is full. */
const RING_FULL_RETRY_NS = 20e6;
/** Hot-add regions kept (Linux's list is unbounded; the model refuses a region beyond this). */
const MAX_HA_REGIONS = 64;
/** Host violations kept for inspection; warnings logged per probe. */
const MAX_KEPT_VIOLATIONS = 100;
const MAX_LOGGED_WARNINGS = 10;

export interface HvBalloonOptions {
  /** Module parameter hot_add (default true). */
  readonly hotAdd?: boolean;
  /** Module parameter pressure_report_delay, seconds (default 45). */
  readonly pressureReportDelay?: number;
}

type DmState = (typeof HvDmState)[keyof typeof HvDmState];
const STATE_NAMES: Record<DmState, string> = { 0: 'Initializing', 1: 'Initialized', 2: 'Balloon Up', 3: 'Balloon Down', 4: 'Hot Add', 5: 'Error' };

/** struct hv_hotadd_state: a hot-add region, what of it was added and what is backed. */
interface HaRegion {
  readonly startPfn: number;
  coveredStartPfn: number;
  coveredEndPfn: number;
  haEndPfn: number;
  endPfn: number;
  readonly gaps: { start: number; end: number }[];
}

/** What `hvkit` and the tests read of the driver (its debugfs file, hv-balloon). */
export interface HvBalloonSnapshot {
  readonly state: string;
  /** The negotiated protocol, "2.0". */
  readonly version: string | undefined;
  readonly capabilities: { readonly balloon: boolean; readonly hotAdd: boolean };
  readonly pagesBallooned: number;
  readonly pagesAdded: number;
  readonly pagesOnlined: number;
  readonly maxDynamicPageCount: number | undefined;
  readonly statusReports: number;
  /** What the host sent that the driver refused. */
  readonly hostViolations: number;
}

export class HvBalloonDriver implements VmbusDriver {
  readonly name = HV_BALLOON_MODULE_NAME;
  readonly classIds = [DeviceClass.DM];
  state: DmState = HvDmState.DM_INITIALIZING;
  /** The version asked for last, and the one agreed once probe succeeded. */
  version = 0;
  channel: GuestChannel | undefined;
  numPagesBallooned = 0;
  numPagesAdded = 0;
  numPagesOnlined = 0;
  maxDynamicPageCount: number | undefined;
  statusReports = 0;
  readonly hostViolations = new BoundedLog<string>(MAX_KEPT_VIOLATIONS);

  private nextVersion = 0;
  private transId = 0;
  private hostEvent = false;
  private doHotAdd: boolean;
  private hostSpecifiedHaRegion = false;
  private readonly haRegions: HaRegion[] = [];
  private pressureReportDelay: number;
  private lastPostNs = -Infinity;
  private statusWork: { cancel(): boolean } | undefined;
  private warnings = 0;
  /** One byte per 4 KiB frame of the backing: 1 while the frame is ballooned (given to the host). */
  private readonly ballooned: Uint8Array;
  /** The end of the RAM present at boot, in frames: hot add never re-adds it. */
  private readonly bootEndPfn: number;
  /** A balloon response the full ring refused, and how the balloon-up work goes on after it. */
  private pendingUp: { msg: PageRange[]; more: boolean; left: number; unit: number } | undefined;

  constructor(
    private readonly services: GuestServices,
    private readonly pages: GuestPageAllocator,
    private readonly vmbus: VmbusClient,
    private readonly options: HvBalloonOptions = {},
  ) {
    this.doHotAdd = options.hotAdd ?? true;
    this.pressureReportDelay = options.pressureReportDelay ?? 45;
    const mem = vmbus.transport.memory;
    this.ballooned = new Uint8Array(mem.capacity / DM_PAGE_SIZE);
    this.bootEndPfn = mem.size / DM_PAGE_SIZE;
  }

  private get pageSize(): number {
    return this.pages.pageSize;
  }

  /** ballooning_enabled(): only with 4 KiB pages. */
  get balloonEnabled(): boolean {
    return this.pageSize === DM_PAGE_SIZE;
  }

  /** hot_add_enabled(): not on arm64. */
  get hotAddEnabled(): boolean {
    return this.services.system.arch !== 'aarch64';
  }

  snapshot(): HvBalloonSnapshot {
    return {
      state: STATE_NAMES[this.state],
      version: this.channel && this.state !== HvDmState.DM_INIT_ERROR && this.state !== HvDmState.DM_INITIALIZING ? dynmemVersionString(this.version) : undefined,
      capabilities: { balloon: this.balloonEnabled, hotAdd: this.hotAddEnabled },
      pagesBallooned: this.numPagesBallooned,
      pagesAdded: this.numPagesAdded,
      pagesOnlined: this.numPagesOnlined,
      maxDynamicPageCount: this.maxDynamicPageCount,
      statusReports: this.statusReports,
      hostViolations: this.hostViolations.total,
    };
  }

  // --- probe: balloon_probe and balloon_connect_vsp ---------------------------------------------

  probe(ch: GuestChannel): void {
    if (this.channel) throw new VmbusError('ENODEV', 'hv_balloon drives one dynamic memory device');
    const ring = vmbusRingSize(DM_RING_PAYLOAD, this.pageSize);
    this.state = HvDmState.DM_INITIALIZING;
    this.nextVersion = GUEST_DYNMEM_VERSIONS[1]!;
    this.warnings = 0;
    // max_pkt_size: one packet header plus the 4 KiB receive buffer.
    ch.open({ sendRingBytes: ring, recvRingBytes: ring, maxPacketSize: 2 * DM_PAGE_SIZE, onEvent: (c) => void c.receive((p) => this.onPacket(p)) });
    this.channel = ch;
    try {
      this.version = GUEST_DYNMEM_VERSIONS[0]!;
      this.hostEvent = false;
      this.send(encodeVersionRequest(this.nextTransId(), this.version, false));
      this.waitHost('version');
      this.services.log('info', `hv_balloon: Using Dynamic Memory protocol version ${dynmemVersionString(this.version)}`);
      this.hostEvent = false;
      // min_page_cnt 0 and max_page_number all ones: what the Windows driver sends (hv_balloon.c).
      this.send(encodeCapabilities(this.nextTransId(), { balloon: this.balloonEnabled, hotAdd: this.hotAddEnabled, hotAddAlignment: LINUX_HOT_ADD_ALIGNMENT, minPageCount: 0n, maxPageNumber: 0xffff_ffff_ffff_ffffn }));
      this.waitHost('capabilities');
    } catch (e) {
      ch.close();
      this.channel = undefined;
      throw e;
    }
    if (!this.balloonEnabled) this.services.log('info', 'hv_balloon: Ballooning disabled because page size is not 4096 bytes');
    if (!this.hotAddEnabled) this.services.log('info', 'hv_balloon: Memory hot add disabled on ARM64');
    this.state = HvDmState.DM_INITIALIZED;
    this.services.note(`hv_balloon ${ch.deviceName}: channel ${ch.relid} open; free page reporting is not modelled`);
    this.statusTick();
  }

  remove(ch: GuestChannel): void {
    this.statusWork?.cancel();
    this.statusWork = undefined;
    ch.close();
    this.channel = undefined;
  }

  private waitHost(what: string): void {
    if (!this.vmbus.transport.waitUntil(() => this.hostEvent, HOST_ANSWER_NS)) throw new VmbusError('ETIMEDOUT', `no answer to the ${what} request`);
    if (this.state === HvDmState.DM_INIT_ERROR) throw new VmbusError('EPROTO', `the host refused the ${what} request`);
  }

  private nextTransId(): number {
    this.transId = (this.transId + 1) >>> 0;
    return this.transId;
  }

  /** vmbus_sendpacket of one in-band message; false when the ring is full or the channel gone. */
  private send(msg: Uint8Array): boolean {
    const ch = this.channel;
    if (!ch) return false;
    try {
      return ch.sendInband(msg);
    } catch {
      return false;
    }
  }

  private warn(text: string): void {
    if (this.warnings++ < MAX_LOGGED_WARNINGS) this.services.log('warn', `hv_balloon: ${text}`);
  }

  private violation(text: string): void {
    this.hostViolations.push(text);
    this.warn(text);
  }

  // --- Receiving: balloon_onchannelcallback ------------------------------------------------------

  private onPacket(p: ParsedPacket): void {
    if (p.type !== PacketType.DATA_INBAND) return this.violation(`packet type ${p.type} is not in-band data`);
    // The receive buffer is one 4 KiB page; a longer packet does not fit it.
    if (p.payload.length > DM_PAGE_SIZE) return this.violation(`a ${p.payload.length}-byte message does not fit the ${DM_PAGE_SIZE}-byte receive buffer`);
    this.onHostMessage(p.payload);
  }

  /** One message from the host. Public so that tests can feed it anything; it never throws. */
  onHostMessage(payload: Uint8Array): void {
    let m: DmMessageValue;
    try {
      m = decodeDmMessage(payload);
    } catch (e) {
      if (e instanceof WireError) return this.violation(`Unhandled message: ${e.message}`);
      throw e;
    }
    switch (m.type) {
      case 'version-response':
        return this.versionResponse(m.accepted);
      case 'capabilities-response':
        if (!m.accepted) {
          this.services.log('err', 'hv_balloon: Capabilities not accepted by host');
          this.state = HvDmState.DM_INIT_ERROR;
        }
        this.hostEvent = true;
        return;
      case 'balloon':
        if (this.state === HvDmState.DM_BALLOON_UP) this.warn('Currently ballooning');
        this.state = HvDmState.DM_BALLOON_UP;
        return void this.services.scheduleDelayedWork(0, () => this.balloonUp(m.numPages));
      case 'unballoon':
        this.state = HvDmState.DM_BALLOON_DOWN;
        return this.balloonDown(m.ranges, m.morePages);
      case 'hot-add':
        if (this.state === HvDmState.DM_HOT_ADD) this.warn('Currently hot-adding');
        this.state = HvDmState.DM_HOT_ADD;
        this.hostSpecifiedHaRegion = m.region !== undefined;
        return void this.services.scheduleDelayedWork(0, () => this.hotAddRequest(m.range, m.region ?? { start: 0, count: 0 }));
      case 'info':
        if (m.maxPageCount !== undefined) {
          this.services.log('info', `hv_balloon: Max. dynamic memory size: ${m.maxPageCount >> 8n} MB`);
          this.maxDynamicPageCount = Number(m.maxPageCount);
        } else if (m.infoType !== undefined) this.warn(`Received Unknown type: ${m.infoType}`);
        return;
      default:
        return this.warn(`Unhandled message: type: ${DmTypeOf(payload)}`);
    }
  }

  /** version_resp: accepted, or the next lower version, or the end of negotiation. */
  private versionResponse(accepted: boolean): void {
    if (accepted) {
      this.hostEvent = true;
      return;
    }
    if (this.nextVersion === 0) {
      this.state = HvDmState.DM_INIT_ERROR;
      this.hostEvent = true;
      return;
    }
    this.version = this.nextVersion;
    const i = GUEST_DYNMEM_VERSIONS.indexOf(this.version);
    const last = i === GUEST_DYNMEM_VERSIONS.length - 1;
    this.nextVersion = last ? 0 : GUEST_DYNMEM_VERSIONS[i + 1]!;
    if (!this.send(encodeVersionRequest(this.nextTransId(), this.version, last))) {
      this.state = HvDmState.DM_INIT_ERROR;
      this.hostEvent = true;
    }
  }

  // --- Memory pressure: post_status ---------------------------------------------------------------

  /** compute_balloon_floor: the pages below which the guest does not balloon, from MemTotal. */
  computeBalloonFloor(): number {
    const mb = (n: number): number => (n * 2 ** 20) / this.pageSize;
    const n = this.pages.totalPages;
    if (n < mb(128)) return mb(8) + Math.floor(n / 2);
    if (n < mb(512)) return mb(40) + Math.floor(n / 4);
    if (n < mb(2048)) return mb(104) + Math.floor(n / 8);
    if (n < mb(8192)) return mb(232) + Math.floor(n / 16);
    return mb(488) + Math.floor(n / 32);
  }

  /** get_pages_committed: Committed_AS, the ballooned pages, the added pages not online, and the floor. */
  pagesCommitted(): number {
    const offline = this.numPagesAdded > this.numPagesOnlined ? this.numPagesAdded - this.numPagesOnlined : 0;
    return this.pages.usedPages + this.pages.pendingCommit + this.numPagesBallooned + offline + this.computeBalloonFloor();
  }

  private statusTick(): void {
    this.statusWork = this.services.scheduleDelayedWork(STATUS_PERIOD_NS, () => {
      if (!this.channel) return;
      this.postStatus();
      this.statusTick();
    });
  }

  /** post_status: after pressure_report_delay reports were skipped, at most one a second. */
  postStatus(): void {
    if (this.pressureReportDelay > 0) {
      this.pressureReportDelay--;
      return;
    }
    const now = this.services.uptimeNs();
    if (!(now > this.lastPostNs + STATUS_PERIOD_NS - 1)) return;
    // Numbers of guest pages become numbers of 4 KiB pages (NR_HV_HYP_PAGES_IN_PAGE).
    const hv = this.pageSize / DM_PAGE_SIZE;
    const msg = encodeStatus(this.nextTransId(), { numAvail: BigInt(this.pages.freePageCount * hv), numCommitted: BigInt(this.pagesCommitted() * hv) });
    if (this.send(msg)) {
      this.lastPostNs = now;
      this.statusReports++;
    }
  }

  // --- Balloon up: balloon_up and alloc_balloon_pages -------------------------------------------

  private balloonUp(requested: number): void {
    let num = requested;
    const avail = this.pages.freePageCount;
    const floor = this.computeBalloonFloor();
    if (avail < num || avail - num < floor) {
      this.services.log('info', `hv_balloon: Balloon request will be partially fulfilled. ${avail < num ? 'Not enough memory.' : 'Balloon floor reached.'}`);
      num = avail > floor ? avail - floor : 0;
    }
    if (!this.balloonEnabled) num = 0;
    this.pendingUp = undefined;
    this.balloonUpLoop(num, pagesIn2M(this.pageSize));
  }

  /** Fills and sends responses until `left` pages are given or none can be; resumes after a full ring. */
  private balloonUpLoop(left: number, unit: number): void {
    for (;;) {
      const msg: PageRange[] = [];
      let got = 0;
      for (let i = 0; i < Math.floor(left / unit); i++) {
        if (DmBalloonResponse.size + (msg.length + 1) * DmMemPageRange.size > DM_PAGE_SIZE) break;
        const gpa = this.pages.takePages(unit);
        if (gpa === undefined) break;
        const pfn = gpa / DM_PAGE_SIZE;
        this.ballooned.fill(1, pfn, pfn + unit);
        this.numPagesBallooned += unit;
        msg.push({ start: pfn, count: unit });
        got += unit;
      }
      // 2 MiB blocks first; when none is left, single pages (the same request, from the top).
      if (unit !== 1 && got === 0) {
        unit = 1;
        continue;
      }
      const done = got === 0 || got === left;
      if (!this.sendBalloonResponse(msg, !done, left - got, unit)) return;
      if (done) return;
      left -= got;
    }
  }

  /** Sends one response; on a full ring retries in 20 ms and returns false (the loop resumes from there). */
  private sendBalloonResponse(msg: PageRange[], more: boolean, left: number, unit: number): boolean {
    if (!this.channel) return this.dropBalloonResponse(msg);
    if (this.send(encodeBalloonResponse(this.nextTransId(), more, msg))) {
      this.postStatus();
      if (!more) this.state = HvDmState.DM_INITIALIZED;
      return true;
    }
    this.pendingUp = { msg, more, left, unit };
    this.services.scheduleDelayedWork(RING_FULL_RETRY_NS, () => {
      const p = this.pendingUp;
      this.pendingUp = undefined;
      if (!p) return;
      if (this.sendBalloonResponse(p.msg, p.more, p.left, p.unit) && p.more) this.balloonUpLoop(p.left, p.unit);
    });
    return false;
  }

  /** "Balloon response failed": the pages of an unsent response go back to the allocator. */
  private dropBalloonResponse(msg: PageRange[]): boolean {
    this.services.log('err', 'hv_balloon: Balloon response failed');
    for (const r of msg) this.freeBalloonPages(r.start, r.count);
    this.state = HvDmState.DM_INITIALIZED;
    return false;
  }

  private freeBalloonPages(pfn: number, count: number): void {
    for (let i = 0; i < count; i++) {
      this.ballooned[pfn + i] = 0;
      this.pages.addPages((pfn + i) * DM_PAGE_SIZE, 1);
    }
    this.numPagesBallooned -= count;
  }

  // --- Balloon down: balloon_down ------------------------------------------------------------------

  private balloonDown(ranges: readonly PageRange[], morePages: boolean): void {
    // Checking a range costs at most the pages the guest holds ballooned when the message came.
    let budget = this.numPagesBallooned;
    for (const r of ranges) {
      const end = r.start + r.count;
      let owned = r.count > 0 && end <= this.ballooned.length;
      for (let pfn = r.start; owned && pfn < end; pfn++) {
        if (budget-- <= 0 || this.ballooned[pfn] !== 1) owned = false;
      }
      if (!owned) {
        this.violation(`unballoon range 0x${r.start.toString(16)}+${r.count} names pages the guest did not balloon`);
        continue;
      }
      this.freeBalloonPages(r.start, r.count);
    }
    if (morePages) return;
    this.send(encodeUnballoonResponse(this.nextTransId()));
    this.state = HvDmState.DM_INITIALIZED;
  }

  // --- Hot add: hot_add_req, process_hot_add, handle_pg_range, hv_mem_hot_add ------------------------

  private hotAddRequest(pg: PageRange, rg: PageRange): void {
    let pageCount = 0;
    if (this.hotAddEnabled && this.balloonEnabled) {
      let rgStart = rg.start;
      let rgSize = rg.count;
      const chunk = haChunk(this.pageSize);
      if (rgStart === 0 && !this.hostSpecifiedHaRegion) {
        // No region given: one that covers the pages, aligned to HA_CHUNK.
        rgSize = Math.ceil(pg.count / chunk) * chunk;
        rgStart = Math.floor(pg.start / chunk) * chunk;
      }
      if (this.doHotAdd) pageCount = this.processHotAdd(pg.start, pg.count, rgStart, rgSize);
    } else this.doHotAdd = false;
    this.numPagesAdded += pageCount;
    // result: 1 if pages were added, or if hot add is off for good; 0 (retry later) otherwise.
    const result = pageCount > 0 || !this.doHotAdd ? 1 : 0;
    if (!this.doHotAdd || pageCount === 0) this.services.log('err', 'hv_balloon: Memory hot add failed');
    this.state = HvDmState.DM_INITIALIZED;
    this.send(encodeHotAddResponse(this.nextTransId(), pageCount, result));
  }

  private processHotAdd(pgStart: number, pfnCount: number, rgStart: number, rgSize: number): number {
    if (pfnCount === 0) return 0;
    if (!this.hostSpecifiedHaRegion && this.pfnCovered(pgStart, pfnCount)) return this.handlePageRange(pgStart, pfnCount);
    if (rgSize !== 0) {
      if (this.haRegions.length >= MAX_HA_REGIONS) return 0;
      this.haRegions.push({ startPfn: rgStart, haEndPfn: rgStart, coveredStartPfn: pgStart, coveredEndPfn: pgStart, endPfn: rgStart + rgSize, gaps: [] });
    }
    return this.handlePageRange(pgStart, pfnCount);
  }

  private regionOf(pfn: number): HaRegion | undefined {
    return this.haRegions.find((h) => pfn >= h.startPfn && pfn < h.endPfn);
  }

  /** pfn_covered: a region holds the start; a jump leaves a gap; the region grows by HA_CHUNKs. */
  private pfnCovered(startPfn: number, count: number): boolean {
    const h = this.regionOf(startPfn);
    if (!h) return false;
    if (h.coveredEndPfn !== startPfn) {
      if (h.gaps.length >= MAX_HA_REGIONS) return false;
      h.gaps.push({ start: h.coveredEndPfn, end: startPfn });
      h.coveredEndPfn = startPfn;
    }
    if (startPfn + count > h.endPfn) {
      const chunk = haChunk(this.pageSize);
      h.endPfn += Math.ceil((startPfn + count - h.endPfn) / chunk) * chunk;
    }
    return true;
  }

  private handlePageRange(startPfn: number, count: number): number {
    const h = this.regionOf(startPfn);
    if (!h) return 0;
    const oldCovered = h.coveredEndPfn;
    let left = count;
    if (startPfn < h.haEndPfn) {
      // Pages of a block already added: they are backed now, so they go online.
      const online = Math.min(h.haEndPfn - startPfn, left);
      h.coveredEndPfn += online;
      left -= online;
      if (startPfn > h.startPfn) this.bringOnline(h, startPfn, online);
    }
    if (h.haEndPfn < h.endPfn && left > 0) {
      const chunk = haChunk(this.pageSize);
      let size = h.endPfn - h.haEndPfn;
      if (left <= size) size = Math.ceil(left / chunk) * chunk;
      else left = size;
      this.memHotAdd(h.haEndPfn, size, left, h);
    }
    return h.coveredEndPfn - oldCovered;
  }

  /** hv_mem_hot_add: add_memory one HA_CHUNK at a time; the backed pages of each go online. */
  private memHotAdd(start: number, size: number, pfnCount: number, h: HaRegion): void {
    const chunk = haChunk(this.pageSize);
    let total = pfnCount;
    for (let i = 0; i < size / chunk; i++) {
      const startPfn = start + i * chunk;
      const processed = Math.min(total, chunk);
      total -= processed;
      h.haEndPfn += chunk;
      h.coveredEndPfn += processed;
      const err = this.addMemory(startPfn, chunk, h);
      if (err !== 0) {
        this.services.log('err', `hv_balloon: hot_add memory failed error is ${err}`);
        // -EEXIST: the guest's address map precludes hot add; stop all further hot add.
        if (err === -17) this.doHotAdd = false;
        h.haEndPfn -= chunk;
        h.coveredEndPfn -= processed;
        break;
      }
      this.postStatus();
    }
  }

  /**
   * add_memory for one block, with the online callback (hv_online_page): -EEXIST if the block
   * overlaps RAM already there, -EINVAL if the backed part of it is not present guest memory.
   */
  private addMemory(startPfn: number, pfns: number, h: HaRegion): number {
    const end = startPfn + pfns;
    if (startPfn < this.bootEndPfn || this.haRegions.some((o) => o !== h && startPfn < o.haEndPfn && end > o.startPfn)) return -17;
    const backedEnd = Math.min(end, h.coveredEndPfn);
    const mem = this.vmbus.transport.memory;
    if (backedEnd > startPfn && !mem.contains(startPfn * DM_PAGE_SIZE, (backedEnd - startPfn) * DM_PAGE_SIZE)) return -22;
    this.bringOnline(h, startPfn, pfns);
    return 0;
  }

  /** hv_bring_pgs_online: each page that is backed (covered, not in a gap, present) goes online. */
  private bringOnline(h: HaRegion, startPfn: number, count: number): void {
    const mem = this.vmbus.transport.memory;
    const from = Math.max(startPfn, h.coveredStartPfn);
    const to = Math.min(startPfn + count, h.coveredEndPfn);
    for (let pfn = from; pfn < to; pfn++) {
      if (h.gaps.some((g) => pfn >= g.start && pfn < g.end)) continue;
      if (!mem.contains(pfn * DM_PAGE_SIZE, DM_PAGE_SIZE)) continue;
      this.pages.addPages(pfn * DM_PAGE_SIZE, 1);
      this.numPagesOnlined++;
    }
  }
}

/** The header's type of a message, for the "Unhandled message" warning. */
function DmTypeOf(payload: Uint8Array): number {
  return payload.length >= 2 ? payload[0]! | (payload[1]! << 8) : -1;
}

export interface HvBalloonModule extends GuestModule {
  /** The driver, once the module initialised. */
  readonly driver: HvBalloonDriver | undefined;
}

/** hv_balloon as a module: module_init registers its VMBus driver. */
export function hvBalloonModule(options: HvBalloonOptions = {}): HvBalloonModule {
  let driver: HvBalloonDriver | undefined;
  return {
    name: HV_BALLOON_MODULE_NAME,
    get driver() {
      return driver;
    },
    init(services, register, vmbus) {
      // A kernel that lends no page allocator has nothing to balloon: the driver is not registered.
      if (!vmbus || !services.pages) return services.note('hv_balloon: no page allocator; the driver is not registered');
      driver = new HvBalloonDriver(services, services.pages, vmbus, options);
      register(driver);
    },
  };
}
