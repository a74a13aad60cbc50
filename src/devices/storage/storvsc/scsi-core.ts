// The guest's SCSI mid layer, as Linux 6.1 drives a host adapter (drivers/scsi/scsi_lib.c,
// scsi_error.c, scsi_scan.c, scsi_logging.c): commands with a tag and a data buffer in guest
// memory, the disposition of each completion (retry, requeue, fail) and the errno the block layer
// reports, the scan of a host (INQUIRY of LUN 0 of each target, REPORT LUNS, INQUIRY of each LUN,
// the VPD pages), device removal, and the kernel log lines of all of it.
import { HV_HYP_PAGE_SIZE } from '../../../memory/pages.js';
import { setInto, subarrayOf } from '../../../memory/typed-arrays.js';
import type { GuestServices } from '../../device.js';
import { putU64 } from '../../../vmbus/packet.js';
import type { ClientTransport } from '../../../vmbus/client/transport.js';
import { normalizeSense, ScsiOp, ScsiStatus, scsiDeviceTypeName, SenseKey, type SenseHeader } from '../scsi.js';
import { ascName, hexBytes, opName, SENSE_KEY_NAMES } from './strings.js';

/** Host bytes of scmnd->result (include/scsi/scsi_status.h), and their names (scsi_logging.c hostbyte_table). */
export const HostByte = {
  DID_OK: 0x00,
  DID_NO_CONNECT: 0x01,
  DID_BUS_BUSY: 0x02,
  DID_TIME_OUT: 0x03,
  DID_BAD_TARGET: 0x04,
  DID_ABORT: 0x05,
  DID_PARITY: 0x06,
  DID_ERROR: 0x07,
  DID_RESET: 0x08,
  DID_BAD_INTR: 0x09,
  DID_PASSTHROUGH: 0x0a,
  DID_SOFT_ERROR: 0x0b,
  DID_IMM_RETRY: 0x0c,
  DID_REQUEUE: 0x0d,
} as const;
const HOST_BYTE_NAMES = Object.fromEntries(Object.entries(HostByte).map(([k, v]) => [v, k])) as Record<number, string>;

/** SCSI_SENSE_BUFFERSIZE. */
export const SCSI_SENSE_BUFFERSIZE = 96;
/** SD_MAX_RETRIES and the retries scsi_execute callers in the scan use (scsi_probe_lun: 3). */
export const SD_MAX_RETRIES = 5;

export type DataDirection = 'none' | 'to-device' | 'from-device';

/** What the block layer reports for a failed command, as Linux's errno. */
export type BlockErrno = 'EIO' | 'ENOLINK' | 'EREMOTEIO' | 'ENODATA' | 'ETIMEDOUT' | 'ENODEV' | 'EOPNOTSUPP' | 'EINVAL' | 'EBUSY' | 'EROFS' | 'ENOMEM';

/** A command's data: whole guest pages (their GPAs) holding `length` bytes from the first. */
export interface DataBuffer {
  readonly pages: readonly number[];
  readonly length: number;
}

/** A buffer's 4 KiB Hyper-V page numbers, in order (page_to_hvpfn of each sg page, split in 4 KiB pages). */
export function hvPfns(buffer: DataBuffer, pageSize: number): number[] {
  const perPage = pageSize / HV_HYP_PAGE_SIZE;
  const count = Math.ceil(buffer.length / HV_HYP_PAGE_SIZE);
  const pfns: number[] = [];
  for (const gpa of buffer.pages) for (let k = 0; k < perPage && pfns.length < count; k++) pfns.push(gpa / HV_HYP_PAGE_SIZE + k);
  return pfns;
}

/**
 * hvPfns written straight into a packet: the first `count` 4 KiB page numbers of the buffer as
 * little-endian u64s at `at` of `dst` (the GPA-direct range's pfn_array).
 */
export function putHvPfns(dst: Uint8Array, at: number, buffer: DataBuffer, count: number, pageSize: number): void {
  const perPage = pageSize / HV_HYP_PAGE_SIZE;
  let n = 0;
  for (let i = 0; i < buffer.pages.length && n < count; i++) {
    const first = buffer.pages[i]! / HV_HYP_PAGE_SIZE;
    for (let k = 0; k < perPage && n < count; k++, n++) putU64(dst, at + 8 * n, first + k);
  }
}

/**
 * putHvPfns as little-endian words: `words` is the packet as u32s (a little-endian host's), `at`
 * a multiple of 8. The same bytes.
 */
export function putHvPfnWords(words: Uint32Array, at: number, buffer: DataBuffer, count: number, pageSize: number): void {
  const perPage = pageSize / HV_HYP_PAGE_SIZE;
  let w = at >>> 2;
  let n = 0;
  for (let i = 0; i < buffer.pages.length && n < count; i++) {
    const first = buffer.pages[i]! / HV_HYP_PAGE_SIZE;
    for (let k = 0; k < perPage && n < count; k++, n++, w += 2) {
      const pfn = first + k;
      words[w] = pfn >>> 0;
      words[w + 1] = Math.floor(pfn / 2 ** 32) >>> 0;
    }
  }
}

/**
 * Calls `f(gpa, offset, bytes)` for each run of physically contiguous pages holding the first
 * `length` bytes of a buffer of whole `pageSize` pages.
 */
function forEachRun(pages: readonly number[], pageSize: number, length: number, f: (gpa: number, offset: number, bytes: number) => void): void {
  for (let i = 0, offset = 0; offset < length; ) {
    const gpa = pages[i]!;
    let end = i + 1;
    while (end < pages.length && end * pageSize < length && pages[end] === gpa + (end - i) * pageSize) end++;
    const bytes = Math.min(length, end * pageSize) - offset;
    f(gpa, offset, bytes);
    offset += bytes;
    i = end;
  }
}

/** One command on its way through a host adapter. */
export class ScsiCmnd {
  /** scmnd->result's parts. */
  hostByte: number = HostByte.DID_OK;
  status = 0;
  /** The sense buffer, made when first used: most commands never have sense. */
  private senseBuffer: Uint8Array | undefined;
  /** Bytes of the buffer not transferred. */
  resid = 0;
  done = false;
  /** blk-mq tag and hardware queue, while issued. */
  tag = -1;
  hwq = 0;
  retries = 0;
  /** sched_clock when it was (last) issued, and whether it ever was. */
  issuedNs = 0;
  issued = false;
  onDone: ((cmd: ScsiCmnd) => void) | undefined;
  /** The buffer's pages are the caller's (a read into its own RAM): freeBuffer leaves them. */
  callerPages = false;
  /** What submit() was given: the CPU it issues on and the callback of the final disposition. */
  submittedOn = 0;
  whenFinal: ((d: Disposition, cmd: ScsiCmnd) => void) | undefined;
  /**
   * The upper driver's request this command carries a piece of (blk_mq_rq_from_pdu), and the
   * piece's byte offset, first block and byte length in it: what its whenFinal reads back.
   */
  upper: object | undefined;
  upperOffset = 0;
  upperLba = 0;
  upperLength = 0;

  /**
   * @internal A command of the pool (ScsiCore.ioCommand): its own CDB arrays by length and its
   * own buffer record, reused each time it is taken again, as blk-mq keeps a request and its
   * scsi_cmnd for each tag.
   */
  pooled = false;
  inPool = false;
  ownCdbs: (Uint8Array | undefined)[] | undefined;
  ownBuffer: { pages: number[]; length: number } | undefined;

  constructor(
    // What the command is: fixed while it is in flight, set again only when the pool hands it out again.
    public device: ScsiDevice,
    public cdb: Uint8Array,
    public direction: DataDirection,
    /** The data buffer: `length` bytes over whole guest pages, not necessarily contiguous (a scatter list, as a bio's). */
    public buffer: DataBuffer | undefined,
    public allowed: number,
  ) {}

  get length(): number {
    return this.buffer?.length ?? 0;
  }

  /** The SCSI_SENSE_BUFFERSIZE bytes of sense data (zero until the adapter puts some there). */
  get sense(): Uint8Array {
    return (this.senseBuffer ??= new Uint8Array(SCSI_SENSE_BUFFERSIZE));
  }

  get senseHeader(): SenseHeader | undefined {
    // All-zero sense (never written) has no header.
    return this.senseBuffer && normalizeSense(this.senseBuffer);
  }

  /** @internal Every field as a new command has it (the pool hands it out again). */
  renew(device: ScsiDevice, cdb: Uint8Array, direction: DataDirection, buffer: DataBuffer | undefined, allowed: number): void {
    this.device = device;
    this.cdb = cdb;
    this.direction = direction;
    this.buffer = buffer;
    this.allowed = allowed;
    this.reset();
    this.tag = -1;
    this.hwq = 0;
    this.retries = 0;
    this.issuedNs = 0;
    this.issued = false;
    this.onDone = undefined;
    this.callerPages = false;
    this.submittedOn = 0;
    this.whenFinal = undefined;
    this.upper = undefined;
    this.upperOffset = 0;
    this.upperLba = 0;
    this.upperLength = 0;
  }

  /** Readies the command for another try. */
  reset(): void {
    this.hostByte = HostByte.DID_OK;
    this.status = 0;
    this.senseBuffer?.fill(0);
    this.resid = 0;
    this.done = false;
  }
}

/** What an adapter driver (storvsc) gives the mid layer. */
export interface ScsiHostTemplate {
  /** scsi_host_template.name: printed at scsi_add_host. */
  readonly name: string;
  /** Sends the command; 'busy' asks the mid layer to try again later (SCSI_MLQUEUE_DEVICE_BUSY). */
  queuecommand(cmd: ScsiCmnd, cpu: number): 'ok' | 'busy';
  /** slave_configure: settings that depend on the device's INQUIRY (storvsc_device_configure). */
  configure?(sdev: ScsiDevice): void;
}

/** A mid layer's view of the result of a command: what the block layer (or a caller) gets. */
export type Disposition = { readonly ok: true } | { readonly ok: false; readonly errno: BlockErrno };
const DISPOSITION_OK: Disposition = Object.freeze({ ok: true });

/** One SCSI device: an address on a host, its INQUIRY data and VPD pages, and its upper driver. */
export class ScsiDevice {
  type = 0;
  vendor = '';
  model = '';
  rev = '';
  /** sdev->scsi_level: the INQUIRY version plus one (SCSI_SPC_3 = 6). */
  scsiLevel = 0;
  removable = false;
  inquiry: Uint8Array = new Uint8Array(0);
  readonly vpd = new Map<number, Uint8Array>();
  /** SDEV_RUNNING; SDEV_CANCEL while its removal runs (only the driver's own PM requests pass); SDEV_DEL. */
  state: 'running' | 'cancel' | 'del' = 'running';
  /** Flags storvsc_device_configure and the scan set. */
  noWriteSame = true;
  noReportOpcodes = false;
  tryVpdPages = false;
  /** The upper driver's name for it (sda, sr0) once bound. */
  diskName: string | undefined;
  /** Called when the device is removed (sd_remove, sr_remove). */
  onRemove: (() => void) | undefined;

  constructor(
    readonly host: ScsiHost,
    readonly channel: number,
    readonly id: number,
    readonly lun: number,
  ) {}

  /** "H:C:T:L". */
  get name(): string {
    return `${this.host.hostNo}:${this.channel}:${this.id}:${this.lun}`;
  }

  /** sdev_printk prefix: "scsi 0:0:0:0: ", or "sd 0:0:0:0: [sda] " once a driver has named it. */
  prefix(driver = 'scsi'): string {
    return `${driver} ${this.name}: ${this.diskName ? `[${this.diskName}] ` : ''}`;
  }
}

/** A host adapter (Scsi_Host) and its devices. */
export class ScsiHost {
  readonly devices: ScsiDevice[] = [];
  maxChannel = 0;
  maxId = 1;
  maxLun = 1;
  /** Most 512-byte sectors in one command (max_sectors). */
  maxSectors = 1024;
  canQueue = 1;
  /** Commands the host has not completed yet, by tag. */
  readonly inflight = new Map<number, ScsiCmnd>();
  /** Commands the adapter refused as busy, tried again after the next completion. */
  private readonly requeued: { cmd: ScsiCmnd; cpu: number }[] = [];
  removed = false;

  constructor(
    readonly core: ScsiCore,
    readonly hostNo: number,
    readonly template: ScsiHostTemplate,
  ) {}

  device(channel: number, id: number, lun: number): ScsiDevice | undefined {
    return this.devices.find((d) => d.channel === channel && d.id === id && d.lun === lun && d.state === 'running');
  }

  /** Issues a command (blk_mq_dispatch): to the adapter, or to the requeue list when it is busy. */
  issue(cmd: ScsiCmnd, cpu: number): void {
    cmd.issuedNs = this.core.services.uptimeNs();
    cmd.issued = true;
    if (this.template.queuecommand(cmd, cpu) === 'busy') this.requeued.push({ cmd, cpu });
  }

  /** scsi_done: the adapter finished a command. */
  complete(cmd: ScsiCmnd): void {
    this.core.finish(cmd);
    // A completion frees a tag and ring space: what was refused goes again.
    if (this.requeued.length === 0) return;
    const again = this.requeued.splice(0);
    for (const r of again) this.issue(r.cmd, r.cpu);
  }

  /** Commands waiting to be issued again. */
  get waiting(): number {
    return this.requeued.length;
  }
}

export interface ExecuteOptions {
  readonly cdb: Uint8Array;
  readonly direction: DataDirection;
  /** Bytes to transfer to the device, or the length to read. */
  readonly data?: Uint8Array;
  readonly length?: number;
  readonly retries?: number;
  readonly cpu?: number;
  /** RQF_PM: a request the upper driver sends while the device is being removed (sd_sync_cache). */
  readonly pm?: boolean;
}

/** The outcome of a synchronous command (scsi_execute). */
export interface ExecuteResult {
  readonly cmd: ScsiCmnd;
  readonly disposition: Disposition;
  /** The bytes received (length minus resid). */
  readonly data: Uint8Array;
  /** The command never completed within the model's bound. */
  readonly timedOut: boolean;
}

/** Commands the pool keeps at most (a storvsc host queues a few hundred at once). */
const POOL_MAX = 1024;
const EMPTY_CDB = new Uint8Array(0);

/** How long the model waits for one synchronous command before it reports a host that never answers. */
export const SYNC_COMMAND_BOUND_NS = 60e9;

/** The SCSI subsystem of a guest kernel: host numbers, disk names, scans, removals. */
export class ScsiCore {
  readonly hosts: ScsiHost[] = [];
  private nextHostNo = 0;
  private readonly sdIndexes = new Set<number>();
  private readonly srIndexes = new Set<number>();
  /** "cdrom: Uniform CD-ROM driver" is printed by the first registration only. */
  cdromRegistered = false;
  /** Upper drivers by device type: sd for disks, sr for CD/DVD. */
  readonly upper = new Map<number, (sdev: ScsiDevice) => void>();
  /** Errors printed per kind, to keep the log bounded. */
  private ioErrorsPrinted = 0;

  constructor(
    readonly services: GuestServices,
    readonly transport: ClientTransport,
  ) {}

  get memory() {
    return this.transport.memory;
  }

  log(level: 'err' | 'warn' | 'notice' | 'info' | 'debug', text: string): void {
    this.services.log(level, text);
  }

  /** scsi_host_alloc + scsi_add_host: a number, and "scsi hostN: <name>". */
  addHost(template: ScsiHostTemplate): ScsiHost {
    const host = new ScsiHost(this, this.nextHostNo++, template);
    this.hosts.push(host);
    this.log('info', `scsi host${host.hostNo}: ${template.name}`);
    return host;
  }

  removeHost(host: ScsiHost): void {
    for (const d of [...host.devices]) this.removeDevice(d);
    host.removed = true;
    this.hosts.splice(this.hosts.indexOf(host), 1);
  }

  /** sd_index_ida: the lowest free disk index. */
  allocSdIndex(): number {
    let i = 0;
    while (this.sdIndexes.has(i)) i++;
    this.sdIndexes.add(i);
    return i;
  }

  freeSdIndex(i: number): void {
    this.sdIndexes.delete(i);
  }

  allocSrIndex(): number {
    let i = 0;
    while (this.srIndexes.has(i)) i++;
    this.srIndexes.add(i);
    return i;
  }

  freeSrIndex(i: number): void {
    this.srIndexes.delete(i);
  }

  // --- Commands -------------------------------------------------------------------------------

  /** A buffer of `length` bytes in single pages of the kernel's, holding `data` if given (newCommand). */
  private kernelBuffer(length: number, direction: DataDirection, data: Uint8Array | undefined): DataBuffer {
    const page = this.memory.pageSize;
    const count = Math.ceil(length / page);
    let pages: number[];
    // A read's pages are the device's to fill: not cleared first, as a bio's pages are not. A
    // write's pages are all written below but the tail of the last: only that is cleared, which
    // leaves every byte as zeroed pages written over would hold.
    if (this.transport.allocPageList) pages = this.transport.allocPageList(count, direction !== 'from-device' && !data);
    else {
      pages = new Array(count);
      for (let i = 0; i < count; i++) pages[i] = this.transport.allocPages(page);
    }
    if (data) {
      forEachRun(pages, page, length, (gpa, at, n) => this.memory.write(gpa, data.subarray(at, at + n)));
      const tail = count * page - length;
      if (tail > 0 && this.transport.allocPageList) this.memory.fill(pages[count - 1]! + page - tail, tail);
    }
    return { pages, length };
  }

  /**
   * A command with a buffer of `length` bytes in single pages of the kernel's (freed when it
   * finishes): page by page, as the block layer's bio pages are, so that freed pages serve the
   * next command and I/O never runs the guest out of contiguous memory.
   */
  newCommand(sdev: ScsiDevice, o: ExecuteOptions, ownCdb = false, callerPages?: number[]): ScsiCmnd {
    const length = o.data?.length ?? o.length ?? 0;
    let buffer: DataBuffer | undefined;
    if (length > 0 && callerPages) {
      // The caller's own pages of guest RAM, holding `length` bytes from the first (a direct read's
      // bio takes the user's pages): nothing allocated, nothing to copy out, nothing freed.
      buffer = { pages: callerPages, length };
      if (o.data) forEachRun(callerPages, this.memory.pageSize, length, (gpa, at, n) => this.memory.write(gpa, o.data!.subarray(at, at + n)));
    } else if (length > 0) {
      buffer = this.kernelBuffer(length, o.direction, o.data);
    }
    // The command's own CDB: a copy, unless the caller made it for this command alone (`ownCdb`).
    const cdb = ownCdb ? o.cdb : new Uint8Array(o.cdb);
    const cmd = new ScsiCmnd(sdev, cdb, o.direction, buffer, o.retries ?? SD_MAX_RETRIES);
    if (buffer && callerPages) cmd.callerPages = true;
    return cmd;
  }

  /**
   * newCommand for an upper driver's data path (sd's reads and writes): the command comes from
   * the pool when it has one (a command the driver gave back, recycle) and takes a zeroed
   * `cdbLength`-byte CDB of its own for the caller to fill. `direct` is the GPA of the caller's
   * own pages (callerPages, contiguous) or -1 for pages of the kernel's. Throws as newCommand does
   * when there are no pages (the command goes back to the pool first).
   */
  ioCommand(sdev: ScsiDevice, cdbLength: number, direction: DataDirection, length: number, data: Uint8Array | undefined, direct: number, retries: number): ScsiCmnd {
    const cmd = this.pool.pop() ?? this.newPooled();
    cmd.inPool = false;
    const cdbs = cmd.ownCdbs!;
    const cdb = (cdbs[cdbLength] ??= new Uint8Array(cdbLength));
    for (let i = 0; i < cdbLength; i++) cdb[i] = 0;
    let buffer: DataBuffer | undefined;
    if (length > 0 && direct >= 0) {
      // The caller's own pages, as newCommand takes callerPages: the record and its list are the command's.
      const own = cmd.ownBuffer!;
      const page = this.memory.pageSize;
      const count = Math.ceil(length / page);
      // Stored only when it changes: a store to an array's length is a runtime call, even of the same length.
      if (own.pages.length !== count) own.pages.length = count;
      for (let i = 0; i < count; i++) own.pages[i] = direct + i * page;
      own.length = length;
      buffer = own;
      if (data) forEachRun(own.pages, page, length, (gpa, at, n) => this.memory.write(gpa, data.subarray(at, at + n)));
    } else if (length > 0) {
      try {
        buffer = this.kernelBuffer(length, direction, data);
      } catch (e) {
        this.recycle(cmd);
        throw e;
      }
    }
    cmd.renew(sdev, cdb, direction, buffer, retries);
    if (buffer && direct >= 0) cmd.callerPages = true;
    return cmd;
  }

  private newPooled(): ScsiCmnd {
    const cmd = new ScsiCmnd(undefined as unknown as ScsiDevice, EMPTY_CDB, 'none', undefined, 0);
    cmd.pooled = true;
    cmd.ownCdbs = [];
    cmd.ownBuffer = { pages: [], length: 0 };
    return cmd;
  }

  /**
   * Gives a command of ioCommand back once its upper driver is done with it (its disposition
   * handled, its buffer freed): the next ioCommand may hand it out again. Commands not of the pool
   * are left alone.
   */
  recycle(cmd: ScsiCmnd): void {
    if (!cmd.pooled || cmd.inPool || this.pool.length >= POOL_MAX) return;
    cmd.inPool = true;
    cmd.buffer = undefined;
    cmd.onDone = undefined;
    cmd.whenFinal = undefined;
    cmd.upper = undefined;
    this.pool.push(cmd);
  }
  private readonly pool: ScsiCmnd[] = [];

  freeBuffer(cmd: ScsiCmnd): void {
    if (!cmd.buffer || cmd.callerPages) return;
    // Last page first: the allocator hands freed pages back last-in first-out, so the next
    // command gets them in this order again, and runs that were contiguous stay so.
    const pages = cmd.buffer.pages;
    for (let i = pages.length - 1; i >= 0; i--) this.transport.freePages(pages[i]!, this.memory.pageSize);
  }

  /** Bytes a finished command brought in: its length less the residue. */
  receivedLength(cmd: ScsiCmnd): number {
    if (!cmd.buffer || cmd.direction !== 'from-device') return 0;
    return Math.max(0, cmd.buffer.length - cmd.resid);
  }

  /** The data a finished command brought in. */
  received(cmd: ScsiCmnd): Uint8Array {
    const out = new Uint8Array(this.receivedLength(cmd));
    this.receiveInto(cmd, out, 0);
    return out;
  }

  /**
   * Copies the data a finished command brought in (receivedLength bytes) into `dst` at `at`: the
   * one copy out of the command's pages, a run of contiguous pages at a time.
   */
  receiveInto(cmd: ScsiCmnd, dst: Uint8Array, at: number): void {
    const n = this.receivedLength(cmd);
    if (n === 0) return;
    const bytes = this.memory.bytes;
    const pages = cmd.buffer!.pages;
    const page = this.memory.pageSize;
    // A run of physically contiguous pages at a time (forEachRun, without a closure per command).
    for (let i = 0, offset = 0; offset < n; ) {
      const gpa = pages[i]!;
      let end = i + 1;
      while (end < pages.length && end * page < n && pages[end] === gpa + (end - i) * page) end++;
      const len = Math.min(n, end * page) - offset;
      this.memory.check(gpa, len);
      setInto(dst, subarrayOf(bytes, gpa, gpa + len), at + offset);
      offset += len;
      i = end;
    }
  }

  /** Sends a command and calls `done` with its disposition once it is final (retries included). */
  submit(cmd: ScsiCmnd, cpu: number, done: (d: Disposition, cmd: ScsiCmnd) => void, pm = false): void {
    const host = cmd.device.host;
    // scsi_device_state_check: SDEV_CANCEL passes only PM requests (as BLK_STS_OFFLINE otherwise).
    if (cmd.device.state === 'cancel' && !pm) {
      cmd.done = true;
      done({ ok: false, errno: 'EIO' }, cmd);
      return;
    }
    if (cmd.device.state === 'del' || host.removed) {
      // scsi_device_state_check: SDEV_DEL refuses everything.
      this.log('err', `${cmd.device.prefix(cmd.device.diskName?.startsWith('sr') ? 'sr' : cmd.device.diskName ? 'sd' : 'scsi')}rejecting I/O to dead device`);
      cmd.done = true;
      done({ ok: false, errno: 'EIO' }, cmd);
      return;
    }
    // The command carries its CPU and callback (no closure per command): finish() decides.
    cmd.submittedOn = cpu;
    cmd.whenFinal = done;
    host.issue(cmd, cpu);
  }

  /** A submitted command came back: retried, requeued, or final with its disposition. */
  private settleSubmitted(c: ScsiCmnd, done: (d: Disposition, cmd: ScsiCmnd) => void): void {
    const d = this.decide(c);
    if (d === 'retry' && c.retries < c.allowed) {
      c.retries++;
      c.reset();
      c.device.host.issue(c, c.submittedOn);
      return;
    }
    if (d === 'requeue') {
      c.reset();
      c.device.host.issue(c, c.submittedOn);
      return;
    }
    c.done = true;
    done(this.result(c), c);
  }

  /** scsi_execute: one command, waited for; the buffer is freed before it returns. */
  execute(sdev: ScsiDevice, o: ExecuteOptions): ExecuteResult {
    const cmd = this.newCommand(sdev, o);
    let disposition: Disposition | undefined;
    this.submit(cmd, o.cpu ?? 0, (d) => (disposition = d), o.pm);
    const finished = this.transport.waitUntil(() => disposition !== undefined, SYNC_COMMAND_BOUND_NS);
    if (!finished) {
      // Linux would wait on: storvsc_eh_timed_out resets the timer (the host "guarantees to respond").
      this.services.note(`${sdev.prefix()}no answer to ${opName(cmd.cdb[0]!)} within ${SYNC_COMMAND_BOUND_NS / 1e9} s (Linux waits: storvsc_eh_timed_out resets the timer)`);
      // The buffer stays with the host's request; it is not freed.
      return { cmd, disposition: { ok: false, errno: 'ETIMEDOUT' }, data: new Uint8Array(0), timedOut: true };
    }
    const data = this.received(cmd);
    this.freeBuffer(cmd);
    return { cmd, disposition: disposition!, data, timedOut: false };
  }

  /** The adapter completed a command (scsi_done). */
  finish(cmd: ScsiCmnd): void {
    if (cmd.onDone) cmd.onDone(cmd);
    else if (cmd.whenFinal) this.settleSubmitted(cmd, cmd.whenFinal);
  }

  /**
   * scsi_decide_disposition, reduced to what a storvsc host produces: retry a unit attention, a
   * DID_ERROR or a BUSY status; requeue DID_REQUEUE; everything else is final.
   */
  private decide(cmd: ScsiCmnd): 'final' | 'retry' | 'requeue' {
    switch (cmd.hostByte) {
      case HostByte.DID_OK:
        break;
      case HostByte.DID_REQUEUE:
      case HostByte.DID_IMM_RETRY:
        return 'requeue';
      case HostByte.DID_ERROR:
      case HostByte.DID_SOFT_ERROR:
      case HostByte.DID_BUS_BUSY:
        return 'retry';
      default:
        return 'final';
    }
    if (cmd.status === ScsiStatus.BUSY || cmd.status === ScsiStatus.TASK_SET_FULL) return 'retry';
    if (cmd.status !== ScsiStatus.CHECK_CONDITION) return 'final';
    const s = cmd.senseHeader;
    if (!s) return 'final';
    // scsi_check_sense: a unit attention (a capacity change, a reset) is retried; so is "becoming ready".
    if (s.key === SenseKey.UNIT_ATTENTION) return 'retry';
    if (s.key === SenseKey.NOT_READY && s.asc === 0x04 && s.ascq === 0x01) return 'retry';
    if (s.key === SenseKey.ABORTED_COMMAND && s.asc !== 0x10) return 'retry';
    return 'final';
  }

  /** The errno of a final result (scsi_result_to_blk_status, scsi_io_completion_action, blk_errors). */
  private result(cmd: ScsiCmnd): Disposition {
    if (cmd.hostByte === HostByte.DID_OK && cmd.status === ScsiStatus.GOOD) return DISPOSITION_OK;
    const s = cmd.senseHeader;
    if (cmd.hostByte === HostByte.DID_OK && cmd.status === ScsiStatus.CHECK_CONDITION && s) {
      if (s.key === SenseKey.MEDIUM_ERROR && (s.asc === 0x11 || s.asc === 0x13 || s.asc === 0x14)) return { ok: false, errno: 'ENODATA' };
      if (s.key === SenseKey.ILLEGAL_REQUEST && (s.asc === 0x20 || s.asc === 0x24)) return { ok: false, errno: 'EREMOTEIO' };
    }
    if (cmd.hostByte === HostByte.DID_TIME_OUT) return { ok: false, errno: 'ETIMEDOUT' };
    return { ok: false, errno: 'EIO' };
  }

  /**
   * What scsi_io_completion prints for a failed I/O of an upper driver (scsi_print_result,
   * scsi_print_sense, scsi_print_command) and blk_print_req_error's line. Bounded per boot.
   */
  printIoError(cmd: ScsiCmnd, driver: 'sd' | 'sr', sector: number, op: 'READ' | 'WRITE' | 'FLUSH' | 'DISCARD' | 'WRITE_ZEROES'): void {
    if (++this.ioErrorsPrinted > 100) return;
    const d = cmd.device;
    const p = `${d.prefix(driver)}tag#${cmd.tag < 0 ? 0 : cmd.tag} `;
    const ageS = Math.floor((this.services.uptimeNs() - cmd.issuedNs) / 1e9);
    this.log('info', `${p}FAILED Result: hostbyte=${HOST_BYTE_NAMES[cmd.hostByte] ?? `0x${cmd.hostByte.toString(16)}`} driverbyte=DRIVER_OK cmd_age=${ageS}s`);
    const s = cmd.senseHeader;
    if (cmd.status === ScsiStatus.CHECK_CONDITION && s) {
      this.log('info', `${p}Sense Key : ${SENSE_KEY_NAMES[s.key]} [${s.responseCode === 0x71 || s.responseCode === 0x73 ? 'deferred' : 'current'}] `);
      this.log('info', `${p}Add. Sense: ${ascName(s.asc, s.ascq)}`);
    }
    this.log('info', `${p}CDB: ${opName(cmd.cdb[0]!)} ${hexBytes(cmd.cdb)}`);
    const opCode = { READ: 0, WRITE: 1, FLUSH: 2, DISCARD: 3, WRITE_ZEROES: 9 }[op];
    this.log('err', `I/O error, dev ${d.diskName}, sector ${sector} op 0x${opCode.toString(16)}:(${op}) flags 0x0 phys_seg 1 prio class 2`);
  }

  // --- Scanning (scsi_scan.c) -----------------------------------------------------------------

  /**
   * scsi_scan_host: every channel and target id; LUN 0 of each answers INQUIRY, then REPORT LUNS
   * lists the rest. New devices are added in order, then their upper drivers probe (sd's and sr's
   * probes run after the scan, as their asynchronous probes do).
   */
  scanHost(host: ScsiHost, only?: readonly (readonly [number, number])[]): void {
    const added: ScsiDevice[] = [];
    if (only) {
      // scsi_add_device: LUN 0 of the given targets (the IDE controller's one device).
      for (const [channel, id] of only) {
        const p = this.probeLun(host, channel, id, 0);
        if (p.outcome === 'added') added.push(p.device);
      }
    } else {
      for (let channel = 0; channel <= host.maxChannel; channel++) {
        for (let id = 0; id < host.maxId; id++) added.push(...this.scanTarget(host, channel, id));
      }
    }
    for (const d of added) this.upper.get(d.type)?.(d);
  }

  private scanTarget(host: ScsiHost, channel: number, id: number): ScsiDevice[] {
    const added: ScsiDevice[] = [];
    const lun0 = this.probeLun(host, channel, id, 0);
    if (lun0.outcome === 'absent') return added;
    if (lun0.outcome === 'added') added.push(lun0.device);
    // scsi_report_lun_scan (BLIST_REPORTLUN2, which storvsc sets): the LUNs the target lists.
    const probe = lun0.outcome === 'added' || lun0.outcome === 'present' ? lun0.device : new ScsiDevice(host, channel, id, 0);
    const length = (511 + 1) * 8;
    const r = this.execute(probe, { cdb: new Uint8Array([ScsiOp.REPORT_LUNS, 0, 0, 0, 0, 0, (length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff, 0, 0]), direction: 'from-device', length, retries: 3 });
    if (!r.disposition.ok || r.data.length < 8) return added;
    const listed = Math.min((r.data.length - 8) / 8, new DataView(r.data.buffer, r.data.byteOffset).getUint32(0) / 8) | 0;
    for (let i = 0; i < listed; i++) {
      const lun = ((r.data[8 + 8 * i]! & 0x3f) << 8) | r.data[8 + 8 * i + 1]!;
      if (lun === 0) continue;
      if (lun > host.maxLun) {
        this.log('warn', `scsi ${host.hostNo}:${channel}:${id}:${lun}: lun${lun} has a LUN larger than allowed by the host adapter`);
        continue;
      }
      const p = this.probeLun(host, channel, id, lun);
      if (p.outcome === 'added') added.push(p.device);
    }
    return added;
  }

  /**
   * scsi_probe_and_add_lun: INQUIRY (36 bytes, then as many as the device says), then
   * scsi_add_lun: the "Direct-Access ..." line, storvsc's configure, the VPD pages.
   */
  private probeLun(host: ScsiHost, channel: number, id: number, lun: number): { outcome: 'absent' } | { outcome: 'present' | 'added'; device: ScsiDevice } | { outcome: 'target'; device?: undefined } {
    const existing = host.device(channel, id, lun);
    if (existing) return { outcome: 'present', device: existing };
    const sdev = new ScsiDevice(host, channel, id, lun);
    let len = 36;
    let inq: Uint8Array | undefined;
    for (let pass = 1; pass <= 2; pass++) {
      const r = this.execute(sdev, { cdb: new Uint8Array([ScsiOp.INQUIRY, 0, 0, 0, len, 0]), direction: 'from-device', length: len, retries: 3 });
      if (!r.disposition.ok || r.data.length < 5) return { outcome: 'absent' };
      inq = r.data;
      const responseLen = Math.min(255, inq[4]! + 5);
      if (pass === 1 && responseLen > len) {
        len = responseLen;
        continue;
      }
      break;
    }
    const data = inq!;
    const pq = data[0]! >> 5;
    // Peripheral qualifier 3: nothing on this LUN, but the target answers (it may list others).
    if (pq === 3 || (data[0]! & 0x1f) === 0x1f) return { outcome: 'target' };
    const text = (a: number, n: number) => String.fromCharCode(...data.subarray(a, Math.min(a + n, data.length))).padEnd(n, ' ');
    sdev.inquiry = data;
    sdev.type = data[0]! & 0x1f;
    sdev.removable = (data[1]! & 0x80) !== 0;
    sdev.vendor = text(8, 8);
    sdev.model = text(16, 16);
    sdev.rev = text(32, 4);
    const version = data[2]! & 0x07;
    sdev.scsiLevel = data[2]! & 0x0f;
    if (sdev.scsiLevel >= 2 || (sdev.scsiLevel === 1 && (data[3]! & 0x0f) === 1)) sdev.scsiLevel++;
    host.devices.push(sdev);
    this.log('notice', `scsi ${sdev.name}: ${scsiDeviceTypeName(sdev.type)} ${sdev.vendor} ${sdev.model} ${sdev.rev} PQ: ${pq} ANSI: ${version}${(data[3]! & 0x0f) === 1 ? ' CCS' : ''}`);
    host.template.configure?.(sdev);
    this.attachVpd(sdev);
    return { outcome: 'added', device: sdev };
  }

  /**
   * scsi_attach_vpd: page 0 lists the pages, then 0x80, 0x83 and the block pages 0xb0..0xb2 are
   * read and kept (Linux 6.1 caches those for sd). SCSI_VPD_PG_LEN is 255 bytes.
   */
  private attachVpd(sdev: ScsiDevice): void {
    // scsi_device_supports_vpd: SPC-2 or later, or a host that says so (BLIST_TRY_VPD_PAGES).
    if (sdev.scsiLevel < 5 && !sdev.tryVpdPages) return;
    const page0 = this.vpdInquiry(sdev, 0);
    if (!page0) return;
    sdev.vpd.set(0, page0);
    const n = Math.min(page0.length - 4, (page0[2]! << 8) | page0[3]!);
    for (let i = 0; i < n; i++) {
      const page = page0[4 + i]!;
      if (page !== 0x80 && page !== 0x83 && page !== 0xb0 && page !== 0xb1 && page !== 0xb2) continue;
      const body = this.vpdInquiry(sdev, page);
      if (body) sdev.vpd.set(page, body);
    }
  }

  /** scsi_vpd_inquiry: INQUIRY with EVPD; the page if the device returned it. */
  vpdInquiry(sdev: ScsiDevice, page: number, length = 255): Uint8Array | undefined {
    const r = this.execute(sdev, { cdb: new Uint8Array([ScsiOp.INQUIRY, 1, page, (length >> 8) & 0xff, length & 0xff, 0]), direction: 'from-device', length, retries: 3 });
    if (!r.disposition.ok || r.data.length < 4 || r.data[1] !== page) return undefined;
    return r.data;
  }

  /** scsi_remove_device: SDEV_CANCEL while the upper driver goes, then SDEV_DEL. */
  removeDevice(sdev: ScsiDevice): void {
    if (sdev.state !== 'running') return;
    sdev.state = 'cancel';
    sdev.onRemove?.();
    sdev.state = 'del';
    const list = sdev.host.devices;
    const i = list.indexOf(sdev);
    if (i >= 0) list.splice(i, 1);
  }
}
