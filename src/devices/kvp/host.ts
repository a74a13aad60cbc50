// The host end of the KVP IC: get, set, delete and enumerate a guest pool, one transaction on
// the channel at a time, the rest queued in order (Linux's driver serves one at a time and relies
// on the host to send no more: hv_kvp.c; OpenVMM kvp.rs keeps one request in flight). An enumeration is
// the host's index loop: index 0, 1, ... until the guest answers a non-zero status, HV_S_CONT
// (ERROR_NO_MORE_ITEMS) marking the end. Keys and values are JS strings sent as UTF-16LE with
// a terminator, within HV_KVP_EXCHANGE_MAX_KEY_SIZE / _VALUE_SIZE bytes; a string over its
// limit, with a lone surrogate or with an embedded NUL is refused before anything is sent,
// with a result naming the field. Each request body is the 2580 bytes OpenVMM sends (header and
// the largest member of the body union).
//
// Once the channel is up the host reads the guest's intrinsic items: it enumerates the AUTO
// pool, which Linux's daemon answers from the OS (FullyQualifiedDomainName, OSName, ...).
// Optionally it first puts host facts into AUTO_EXTERNAL, as Hyper-V does for its "host-only"
// items (which keys it sends is UNVERIFIED, so none by default).
//
// Each transaction waits at most IC_HOST_TIMEOUT_NS (35 s: the guest fails a request its daemon
// has not answered in HV_UTIL_TIMEOUT, 30 s, hv_kvp.c) and then settles 'timeout', so a guest that
// answers nothing cannot stall the queue; a reply that is no valid answer settles 'bad-answer'.
import type { ReleaseId } from '../../hypervisor/release.js';
import { WireError } from '../../tlfs/struct.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { HostContext } from '../device.js';
import { IcHost, IC_HOST_TIMEOUT_NS, type IcResponse } from '../ic/host.js';
import { icOffer, type IcVersionOffer } from '../ic/versions.js';
import { HV_S_CONT, HV_S_OK, icVersion, IcMsgType } from '../ic/wire.js';
import {
  decodeKvpString,
  decodeKvpValue,
  encodeKvpString,
  HV_KVP_EXCHANGE_MAX_KEY_SIZE,
  HV_KVP_EXCHANGE_MAX_VALUE_SIZE,
  HvKvpHdr,
  HvKvpMsgDelete,
  HvKvpMsgEnumerate,
  HvKvpMsgGet,
  HvKvpMsgSet,
  KvpAt,
  KvpOp,
  KvpPool,
  KVP_EXCHANGE_BYTES,
  KVP_POOL_NAMES,
  RegType,
  type KvpPoolId,
  type KvpStringProblem,
} from './wire.js';

const V3_0 = icVersion(3, 0);
const V4_0 = icVersion(4, 0);
const V5_0 = icVersion(5, 0);

/**
 * KVP message versions each release offers, oldest first. Linux names 3.0 "Win7" and 4.0
 * "Win8" (hv_kvp.c WIN7_SRV_VERSION, WIN8_SRV_VERSION); OpenVMM offers 3.0, 4.0 and 5.0 (5.0
 * adds binary IP settings; hyperv_ic_protocol kvp.rs). UNVERIFIED: the release that added 5.0
 * (chosen: Windows Server 2016), and whether hosts still list 1.0 (chosen: no, as OpenVMM).
 * Linux 6.1 negotiates 4.0 with every one of them.
 */
export const KVP_HOST_VERSIONS: Readonly<Record<ReleaseId, readonly number[]>> = {
  ws2012: [V3_0, V4_0],
  ws2012r2: [V3_0, V4_0],
  ws2016: [V3_0, V4_0, V5_0],
  ws2019: [V3_0, V4_0, V5_0],
  ws2022: [V3_0, V4_0, V5_0],
  ws2025: [V3_0, V4_0, V5_0],
};

/** One key and its value as an enumeration returns them; `type` is the value_type (REG_SZ for Linux). */
export interface KvpEntry {
  readonly key: string;
  readonly value: string;
  readonly type: number;
}

/** Why a request did not complete. */
export type KvpFailure =
  /** Refused before sending: the field is over its size, not UTF-16, holds a NUL, or (pool) out of range. */
  | { readonly outcome: 'invalid'; readonly field: 'key' | 'value' | 'pool'; readonly problem: KvpStringProblem | { readonly reason: 'out-of-range'; readonly pool: number } }
  /** Not sent: the channel is not open and negotiated. */
  | { readonly outcome: 'not-ready' }
  /** Not sent: the host→guest ring is full. */
  | { readonly outcome: 'ring-full' }
  /** The channel closed before the guest answered. */
  | { readonly outcome: 'closed' }
  /** No answer within the host's timeout (options.timeoutNs, 35 s by default). */
  | { readonly outcome: 'timeout' }
  /** The guest answered with a failure status (HV_E_FAIL, or HV_S_CONT where it is not "no such key"). */
  | { readonly outcome: 'failed'; readonly status: number }
  /** The guest's reply is no valid answer: a wrong type or flags, or a body that does not parse (the reason names the field). */
  | { readonly outcome: 'bad-answer'; readonly reason: string };

export type KvpSetResult = { readonly outcome: 'ok' } | KvpFailure;
export type KvpDeleteResult = { readonly outcome: 'ok' } | { readonly outcome: 'not-found' } | KvpFailure;
export type KvpGetResult = { readonly outcome: 'ok'; readonly value: string; readonly type: number } | { readonly outcome: 'not-found' } | KvpFailure;
type EnumerateOutcome = { readonly outcome: 'ok' } | KvpFailure;
/** A failed enumeration still has the entries read before it failed. */
export type KvpEnumerateResult = EnumerateOutcome & { readonly entries: readonly KvpEntry[] };

export type KvpOperation = 'get' | 'set' | 'delete' | 'enumerate';

export interface KvpRequest<R> {
  readonly op: KvpOperation;
  readonly pool: number;
  readonly key?: string;
  /** Set once the request is settled. */
  result: R | undefined;
  readonly done: Promise<R>;
}

export interface KvpOptions {
  /** Versions to offer instead of the release's (fault injection, tests). */
  offer?: IcVersionOffer;
  /**
   * How long the host waits for each answer before it gives up on the request (then 'timeout',
   * and a late answer is a violation). Default IC_HOST_TIMEOUT_NS (35 s); Infinity waits forever,
   * as OpenVMM does.
   */
  timeoutNs?: number;
  /** Enumerate the AUTO pool once the channel is up (default true). */
  readIntrinsic?: boolean;
  /** Items put into AUTO_EXTERNAL once the channel is up, before the AUTO pool is read. */
  hostItems?: Readonly<Record<string, string>>;
  /** An enumeration stops with 'bad-answer' after this many entries (a guest could answer forever). Default 4096. */
  maxEntries?: number;
}

/** One queued request: the bodies it sends and what it makes of each answer. */
interface Job {
  readonly label: string;
  /** The next transaction's body. */
  body(): Uint8Array;
  /** The guest's answer: true when the request is settled, false to send the next transaction. */
  answer(r: IcResponse): boolean;
  fail(f: KvpFailure): void;
}

const hex = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
/** Requests kept in `requests` for inspection. */
const MAX_KEPT_REQUESTS = 1000;

export class KvpHost extends IcHost {
  /** The most recent requests, in order. */
  readonly requests: KvpRequest<unknown>[] = [];
  /** The guest's intrinsic items (its AUTO pool) as last read; empty until then. */
  guestIntrinsic: ReadonlyMap<string, string> = new Map();
  /** When they were read, ns. */
  guestIntrinsicAtNs: number | undefined;
  private readonly queue: Job[] = [];
  private current: Job | undefined;
  private readonly options: KvpOptions;

  constructor(ctx: HostContext, instanceId: string, options: KvpOptions = {}) {
    super(ctx, { type: 'kvp', classId: DeviceClass.KVP, instanceId, offer: options.offer ?? icOffer(ctx.release, KVP_HOST_VERSIONS) });
    this.options = options;
  }

  protected onReady(): void {
    for (const [k, v] of Object.entries(this.options.hostItems ?? {})) this.set(KvpPool.AUTO_EXTERNAL, k, v);
    if (this.options.readIntrinsic ?? true) this.enumerate(KvpPool.AUTO);
  }

  /** Transactions waiting behind the one in flight (requests still to be sent). */
  get queued(): number {
    return this.queue.length;
  }

  // --- The operations --------------------------------------------------------------------------

  /** Sets `key` to the string `value` (REG_SZ) in `pool`. */
  set(pool: KvpPoolId, key: string, value: string): KvpRequest<KvpSetResult> {
    return this.submit<KvpSetResult>('set', pool, key, (req, settle) => {
      const k = encodeKvpString(key, HV_KVP_EXCHANGE_MAX_KEY_SIZE);
      if ('reason' in k) return settle({ outcome: 'invalid', field: 'key', problem: k });
      const v = encodeKvpString(value, HV_KVP_EXCHANGE_MAX_VALUE_SIZE);
      if ('reason' in v) return settle({ outcome: 'invalid', field: 'value', problem: v });
      const body = message(KvpOp.SET, pool, (out) =>
        HvKvpMsgSet.encode({ data: { value_type: RegType.SZ, key_size: k.size, value_size: v.size, key: k.bytes, value: v.bytes } }, out, KvpAt.body),
      );
      return this.job<KvpSetResult>(req.op, pool, key, settle, () => body, (r) => (r.header.status === HV_S_OK ? { outcome: 'ok' } : { outcome: 'failed', status: r.header.status }));
    });
  }

  /** Reads `key` from `pool` (Linux answers an empty value for any key it has: see guest.ts). */
  get(pool: KvpPoolId, key: string): KvpRequest<KvpGetResult> {
    return this.submit<KvpGetResult>('get', pool, key, (req, settle) => {
      const k = encodeKvpString(key, HV_KVP_EXCHANGE_MAX_KEY_SIZE);
      if ('reason' in k) return settle({ outcome: 'invalid', field: 'key', problem: k });
      const body = message(KvpOp.GET, pool, (out) =>
        HvKvpMsgGet.encode({ data: { value_type: 0, key_size: k.size, value_size: 0, key: k.bytes, value: new Uint8Array(0) } }, out, KvpAt.body),
      );
      return this.job<KvpGetResult>(req.op, pool, key, settle, () => body, (r) => {
        const status = r.header.status;
        if (status === HV_S_CONT) return { outcome: 'not-found' };
        if (status !== HV_S_OK) return { outcome: 'failed', status };
        const d = HvKvpMsgGet.decode(r.body, KvpAt.body).data;
        return { outcome: 'ok', value: decodeKvpValue(d.value, d.value_type, d.value_size, 'hv_kvp_msg_get.data'), type: d.value_type };
      });
    });
  }

  /** Deletes `key` from `pool`. */
  delete(pool: KvpPoolId, key: string): KvpRequest<KvpDeleteResult> {
    return this.submit<KvpDeleteResult>('delete', pool, key, (req, settle) => {
      const k = encodeKvpString(key, HV_KVP_EXCHANGE_MAX_KEY_SIZE);
      if ('reason' in k) return settle({ outcome: 'invalid', field: 'key', problem: k });
      const body = message(KvpOp.DELETE, pool, (out) => HvKvpMsgDelete.encode({ key_size: k.size, key: k.bytes }, out, KvpAt.body));
      return this.job<KvpDeleteResult>(req.op, pool, key, settle, () => body, (r) => {
        const status = r.header.status;
        if (status === HV_S_OK) return { outcome: 'ok' };
        return status === HV_S_CONT ? { outcome: 'not-found' } : { outcome: 'failed', status };
      });
    });
  }

  /** Every entry of `pool`, read with the index loop. */
  enumerate(pool: KvpPoolId): KvpRequest<KvpEnumerateResult> {
    const entries: KvpEntry[] = [];
    const max = this.options.maxEntries ?? 4096;
    return this.submit<KvpEnumerateResult>('enumerate', pool, undefined, (req, settle) => {
      let index = 0;
      const body = (): Uint8Array =>
        message(KvpOp.ENUMERATE, pool, (out) => HvKvpMsgEnumerate.encode({ index, data: { value_type: 0, key_size: 0, value_size: 0, key: new Uint8Array(0), value: new Uint8Array(0) } }, out, KvpAt.body));
      const finish = (r: EnumerateOutcome): KvpEnumerateResult => ({ ...r, entries });
      const job = this.job<EnumerateOutcome>(req.op, pool, undefined, (r) => settle(finish(r)), body, (r) => {
        const status = r.header.status;
        if (status === HV_S_CONT) {
          if (pool === KvpPool.AUTO) {
            this.guestIntrinsic = new Map(entries.map((e) => [e.key, e.value]));
            this.guestIntrinsicAtNs = this.ctx.now();
          }
          return { outcome: 'ok' };
        }
        if (status !== HV_S_OK) return { outcome: 'failed', status };
        const d = HvKvpMsgEnumerate.decode(r.body, KvpAt.body).data;
        const key = decodeKvpString(d.key, d.key_size, 'hv_kvp_msg_enumerate.data', 'key');
        entries.push({ key, value: decodeKvpValue(d.value, d.value_type, d.value_size, 'hv_kvp_msg_enumerate.data'), type: d.value_type });
        if (entries.length >= max) return { outcome: 'bad-answer', reason: `the guest answered more than ${max} entries` };
        index++;
        return undefined;
      });
      return job;
    });
  }

  // --- The queue -------------------------------------------------------------------------------

  /**
   * Makes the request; `build` validates it and returns its job (or settles it at once). A
   * valid request is refused 'not-ready' unless the IC is up; otherwise it is queued.
   */
  private submit<R>(op: KvpOperation, pool: number, key: string | undefined, build: (req: KvpRequest<R>, settle: (r: R) => void) => Job | void): KvpRequest<R> {
    let resolve!: (r: R) => void;
    const done = new Promise<R>((r) => (resolve = r));
    const req: KvpRequest<R> = { op, pool, ...(key !== undefined ? { key } : {}), result: undefined, done };
    this.requests.push(req as KvpRequest<unknown>);
    if (this.requests.length > MAX_KEPT_REQUESTS) this.requests.shift();
    const settle = (r: R): void => {
      if (req.result !== undefined) return;
      req.result = r;
      resolve(r);
    };
    if (!Number.isInteger(pool) || pool < 0 || pool >= KvpPool.COUNT) {
      settle((op === 'enumerate' ? { outcome: 'invalid', field: 'pool', problem: { reason: 'out-of-range', pool }, entries: [] } : { outcome: 'invalid', field: 'pool', problem: { reason: 'out-of-range', pool } }) as R);
      return req;
    }
    const job = build(req, settle);
    if (!job) return req;
    if (this.phase !== 'ready') {
      job.fail({ outcome: 'not-ready' });
      return req;
    }
    this.queue.push(job);
    this.pump();
    return req;
  }

  /** A job whose answers `interpret` turns into a result (undefined: send the next transaction). */
  private job<R>(op: KvpOperation, pool: number, key: string | undefined, settle: (r: R) => void, body: () => Uint8Array, interpret: (r: IcResponse) => R | undefined): Job {
    const label = `${op} ${KVP_POOL_NAMES[pool as KvpPoolId]}${key !== undefined ? ` '${key}'` : ''}`;
    return {
      label,
      body,
      answer: (r) => {
        let result: R | undefined;
        try {
          result = interpret(r);
        } catch (e) {
          if (!(e instanceof WireError)) throw e;
          this.violation(`${label}: ${e.message}`);
          result = { outcome: 'bad-answer', reason: e.message } as R;
        }
        if (result === undefined) return false;
        const o = result as { outcome: string; status?: number };
        if (o.outcome === 'failed') this.log(`${label}: the guest answered ${hex(o.status!)}`);
        settle(result);
        return true;
      },
      fail: (f) => settle(f as R),
    };
  }

  private pump(): void {
    if (this.current || this.phase !== 'ready') return;
    const job = this.queue.shift();
    if (!job) return;
    this.current = job;
    this.transact(job);
  }

  /** Sends the job's next transaction and waits for its answer. */
  private transact(job: Job): void {
    const t = this.options.timeoutNs ?? IC_HOST_TIMEOUT_NS;
    const sent = this.sendRequest(IcMsgType.KVPEXCHANGE, job.body(), {
      answer: (r) => this.onAnswer(job, r),
      bad: (reason) => {
        this.log(`${job.label}: the guest's answer is no valid answer: ${reason}`);
        this.finish(job, { outcome: 'bad-answer', reason });
      },
      timeout: {
        ns: t,
        expired: () => {
          this.log(`${job.label}: no answer within ${t / 1e9} s`);
          this.finish(job, { outcome: 'timeout' });
        },
      },
    });
    if (!sent) {
      this.log(`${job.label}: not sent, the ring is full`);
      this.finish(job, { outcome: 'ring-full' });
    }
  }

  private onAnswer(job: Job, r: IcResponse): void {
    // The base class hands out only answers to the transaction waiting, which is the current job's.
    if (this.current !== job) return;
    if (!job.answer(r)) return this.transact(job);
    this.current = undefined;
    this.pump();
  }

  private finish(job: Job, f: KvpFailure): void {
    if (this.current === job) this.current = undefined;
    job.fail(f);
    this.pump();
  }

  protected override onClosed(): void {
    const jobs = [...(this.current ? [this.current] : []), ...this.queue];
    this.current = undefined;
    this.queue.length = 0;
    for (const j of jobs) j.fail({ outcome: 'closed' });
  }
}

/** A request body: hv_kvp_hdr, then `fill` writes the member at KvpAt.body; 2580 bytes in all. */
function message(op: number, pool: number, fill: (out: Uint8Array) => void): Uint8Array {
  const out = new Uint8Array(KVP_EXCHANGE_BYTES);
  HvKvpHdr.encode({ operation: op, pool, pad: 0 }, out);
  fill(out);
  return out;
}

/** The device registry's factory: offers a KVP IC on the host's VMBus. */
export function attachKvp(ctx: HostContext, instanceId: string, options?: KvpOptions): KvpHost {
  return new KvpHost(ctx, instanceId, options);
}
