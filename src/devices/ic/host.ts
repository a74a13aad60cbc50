// The host end of an integration component: it offers the channel as a message-mode pipe, and
// once the guest opens it sends the NEGOTIATE request with the versions its release offers,
// checks the guest's answer, and then hands the channel to the concrete IC. Requests carry
// TRANSACTION | REQUEST and a one-byte transaction id that the answer must echo with
// TRANSACTION | RESPONSE (Linux sets those flags and leaves the id alone: hv_util.c).
// Sources: OpenVMM vm/devices/hyperv_ic/src/common.rs (negotiate, read_message) and
// vmbus_server channels.rs (how a pipe channel is offered); Windows icsvc's transaction table
// (ICMsgTransactionTbl: a u8 m_NextTransactionId) for the increasing ids.
//
// No request waits forever. A reply that names a waiting request's transaction id but is no valid
// answer to it (wrong type, flags, sizes) settles that request as a bad answer. The ICs that keep
// one request in flight give each a host-side timeout a little longer than the guest's own
// (IC_HOST_TIMEOUT_NS), so a guest that answers nothing cannot block the next request. dispose()
// (the VM stopped) ends everything as a closed channel does.
import { BoundedLog } from '../../tlfs/bounded-log.js';
import type { ChannelHandler, HostChannel } from '../../vmbus/server/channel.js';
import { STATUS_UNSUCCESSFUL } from '../../vmbus/server/server.js';
import { ChannelFlags, MAX_PIPE_USER_DEFINED_BYTES, PacketType, VMBUS_PIPE_TYPE_MESSAGE } from '../../vmbus/wire/constants.js';
import { PipeUserDefined } from '../../vmbus/wire/messages.js';
import type { ParsedPacket } from '../../vmbus/wire/packets.js';
import { WireError } from '../../tlfs/struct.js';
import type { HostContext, HostDevice } from '../device.js';
import type { IcVersionOffer } from './versions.js';
import { HV_UTIL_TIMEOUT_NS } from './transport.js';
import { encodeIcMessage, encodeNegotiate, formatIcVersion, icField, icMessageBody, ICMSG_HDR, IcMsgType, IC_REQUEST_FLAGS, IC_RESPONSE_FLAGS, parseNegotiate, type IcHeader } from './wire.js';

/** offered: waiting for the guest to open; negotiating: NEGOTIATE sent; ready: the IC runs; failed: no common version. */
export type IcPhase = 'offered' | 'negotiating' | 'ready' | 'failed';

export interface IcHostConfig {
  /** Device type name; also the prefix of the host's log lines. */
  readonly type: string;
  readonly classId: string;
  readonly instanceId: string;
  /** What the NEGOTIATE request lists (versions.ts gives each release's). */
  readonly offer: IcVersionOffer;
}

/** An answer to one of the host's requests: its header and the `icmsgsize` bytes of body. */
export interface IcResponse {
  readonly header: IcHeader;
  readonly body: Uint8Array;
}

/**
 * How much longer than the guest's own timeout the host waits for an answer. The guest's timer
 * starts when its channel callback takes the request and fires at the first tick after it; its
 * HV_E_FAIL then crosses the ring. Five seconds covers that with room, so the host's 'timeout'
 * means the guest answers nothing at all. UNVERIFIED: Hyper-V's own host-side timeouts are not
 * documented; this is hvkit's choice.
 */
export const IC_ANSWER_MARGIN_NS = 5e9;

/**
 * The host's default wait for one answer of an IC that keeps one request in flight: Linux's
 * HV_UTIL_TIMEOUT (30 s: hv_kvp.c, hv_snapshot.c and hv_fcopy.c fail a request their daemon has
 * not answered by then) plus the margin. VSS FREEZE waits longer (vss/host.ts).
 */
export const IC_HOST_TIMEOUT_NS = HV_UTIL_TIMEOUT_NS + IC_ANSWER_MARGIN_NS;

/** What became of an IC request the guest did not answer (properly): shared by the ICs that send one at a time. */
export type IcUnanswered =
  /** Not sent: the channel is not open and negotiated. */
  | { readonly outcome: 'not-ready' }
  /** Not sent: the negotiated version has no such request. */
  | { readonly outcome: 'unsupported'; readonly version: number }
  /** Not sent: an earlier request is still waiting for its answer. */
  | { readonly outcome: 'in-progress' }
  /** Not sent: the host→guest ring is full. */
  | { readonly outcome: 'ring-full' }
  /** Sent, but the channel closed (or the VM stopped) before the guest answered. */
  | { readonly outcome: 'closed' }
  /** Sent, and nothing answered it within the host's timeout (a later answer is a violation). */
  | { readonly outcome: 'timeout' }
  /** The guest's reply to it was no valid answer; `reason` says what was wrong. */
  | { readonly outcome: 'bad-answer'; readonly reason: string };

/** What the host does with the guest's reply to one request. */
export interface IcAnswerHandlers {
  /** The answer: its transaction id, flags and message type match the request. */
  readonly answer: (r: IcResponse) => void;
  /** A reply with the request's transaction id that is no valid answer to it; the request is over. */
  readonly bad?: (reason: string) => void;
  /**
   * Give up once `ns` of host time passed without a reply (not for a non-finite `ns`): the
   * request is forgotten and `expired` runs.
   */
  readonly timeout?: { readonly ns: number; readonly expired: () => void };
}

/**
 * The one request an IC host keeps in flight when it sends one at a time (OpenVMM's shutdown IC
 * answers a second with AlreadyInProgress): the request and how to settle it.
 */
export class InFlight<Q, R> {
  private current: { readonly request: Q; readonly settle: (r: R) => void } | undefined;

  get busy(): boolean {
    return this.current !== undefined;
  }

  begin(request: Q, settle: (r: R) => void): void {
    this.current = { request, settle };
  }

  /** `request`, no longer in flight, if it is the one in flight (its timeout or a bad answer ended it). */
  takeIf(request: Q): { readonly request: Q; readonly settle: (r: R) => void } | undefined {
    return this.current?.request === request ? this.take() : undefined;
  }

  /** The request in flight, no longer in flight (its answer came, or the channel closed). */
  take(): { readonly request: Q; readonly settle: (r: R) => void } | undefined {
    const c = this.current;
    this.current = undefined;
    return c;
  }
}

interface Pending {
  readonly type: number;
  readonly handlers: IcAnswerHandlers;
  timer: { cancel(): void } | undefined;
}

/** Requests kept waiting for an answer; beyond this the oldest is forgotten (ids are one byte). */
const MAX_PENDING = 64;
/** Protocol violations logged per channel open; the rest are only counted. */
const MAX_LOGGED_VIOLATIONS = 10;
/** Violations kept for inspection. */
const MAX_KEPT_VIOLATIONS = 100;

export abstract class IcHost implements ChannelHandler, HostDevice {
  readonly type: string;
  readonly instanceId: string;
  readonly offer: IcVersionOffer;
  phase: IcPhase = 'offered';
  /** The versions the guest chose, once ready. */
  negotiated: { readonly framework: number; readonly message: number } | undefined;
  /** The channel while the guest has it open. */
  channel: HostChannel | undefined;
  /** The offered channel (for inspection and rescind). */
  readonly hostChannel: HostChannel;
  /** What the guest got wrong: the most recent ones, and a count of all. */
  readonly violations = new BoundedLog<string>(MAX_KEPT_VIOLATIONS);
  private loggedViolations = 0;
  private nextTransactionId = 0;
  private readonly pending = new Map<number, Pending>();
  /** Transaction ids of requests the host gave up on (timed out), until the id is used again. */
  private readonly abandoned = new Set<number>();
  /** dispose() ran: the VM stopped, and the IC takes no channel or packet any more. */
  private disposed = false;

  constructor(
    protected readonly ctx: HostContext,
    config: IcHostConfig,
  ) {
    this.type = config.type;
    this.instanceId = config.instanceId;
    this.offer = config.offer;
    // ICs are message-mode pipes (OpenVMM: ChannelType::Pipe { message_mode: true }).
    this.hostChannel = ctx.server.offer(
      {
        classId: config.classId,
        instanceId: config.instanceId,
        flags: ChannelFlags.ENUMERATE_DEVICE_INTERFACE | ChannelFlags.NAMED_PIPE_MODE,
        userDefined: PipeUserDefined.encode({ pipe_mode: VMBUS_PIPE_TYPE_MESSAGE, user_def: new Uint8Array(MAX_PIPE_USER_DEFINED_BYTES) }),
      },
      this,
    );
  }

  /** The IC runs: negotiation is done and `negotiated` is set. */
  protected abstract onReady(): void;
  /**
   * The guest closed the channel, the host revoked it, or the VM stopped (dispose): requests still
   * waiting are dropped, and the IC settles what it keeps in flight with 'closed' and stops its timers.
   */
  protected onClosed(why: 'closed' | 'revoked' | 'disposed'): void {
    void why;
  }

  /** Host log line, prefixed with the device type. */
  protected log(text: string): void {
    this.ctx.log(`${this.type}: ${text}`);
  }

  // --- ChannelHandler ------------------------------------------------------------------------

  open(ch: HostChannel): number {
    if (this.disposed) return STATUS_UNSUCCESSFUL;
    this.channel = ch;
    this.forgetPending();
    this.negotiated = undefined;
    this.loggedViolations = 0;
    this.phase = 'negotiating';
    // NEGOTIATE carries version 0.0 in both header fields (OpenVMM common.rs).
    const sent = this.send(IcMsgType.NEGOTIATE, 0, 0, encodeNegotiate(this.offer.framework, this.offer.message), {
      answer: (r) => this.onNegotiated(r),
      bad: (reason) => this.fail(`NEGOTIATE answer: ${reason}`),
    });
    if (!sent) this.log('could not send NEGOTIATE: the ring is full');
    return 0;
  }

  close(): void {
    this.detach('closed');
  }

  revoked(): void {
    this.detach('revoked');
  }

  signal(ch: HostChannel): void {
    // After dispose the ring is still drained, but nothing in it is an answer any more.
    ch.receive((p) => {
      if (!this.disposed) this.onPacket(p);
    });
  }

  private detach(why: 'closed' | 'revoked' | 'disposed'): void {
    const wasOpen = this.channel !== undefined;
    this.channel = undefined;
    this.forgetPending();
    this.phase = 'offered';
    // On dispose the IC's own timers go even if the channel never opened.
    if (wasOpen || why === 'disposed') this.onClosed(why);
  }

  /** Drops every waiting request, with its timer. */
  private forgetPending(): void {
    for (const p of this.pending.values()) p.timer?.cancel();
    this.pending.clear();
    this.abandoned.clear();
  }

  /** The waiting request `id`, no longer waiting (its timer cancelled), if there is one. */
  private takePending(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    p.timer?.cancel();
    p.timer = undefined;
    return p;
  }

  // --- Receiving ------------------------------------------------------------------------------

  private onPacket(p: ParsedPacket): void {
    if (p.type !== PacketType.DATA_INBAND) return this.violation(`packet type ${p.type} is not in-band data`);
    this.onGuestPayload(p.payload);
  }

  /**
   * One packet payload from the guest: an answer to a pending request, or a violation. Public so
   * that tests can feed it anything; it never throws for what the guest sends.
   */
  onGuestPayload(payload: Uint8Array): void {
    let m: IcResponse;
    try {
      m = icMessageBody(payload);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      // Headers that are all there still name the request the reply is for.
      return this.badAnswer(payload.length >= ICMSG_HDR ? payload[icField('ictransaction_id')] : undefined, e.message);
    }
    const h = m.header;
    const id = h.ictransaction_id;
    if ((h.icflags & IC_RESPONSE_FLAGS) !== IC_RESPONSE_FLAGS) return this.badAnswer(id, `icflags 0x${h.icflags.toString(16)} do not mark an answer`);
    const p = this.pending.get(id);
    if (!p) {
      if (this.abandoned.has(id)) return this.violation(`an answer with transaction id ${id} to a request the host gave up on`);
      return this.violation(`no request with transaction id ${id} is waiting`);
    }
    if (h.icmsgtype !== p.type) return this.badAnswer(id, `answer of type ${h.icmsgtype} to a request of type ${p.type}`);
    this.takePending(id);
    p.handlers.answer(m);
  }

  /** A reply that is no valid answer: a violation, and the end of the request it names, if one waits. */
  private badAnswer(id: number | undefined, reason: string): void {
    this.violation(reason);
    const p = id === undefined ? undefined : this.takePending(id);
    p?.handlers.bad?.(reason);
  }

  private onNegotiated(r: IcResponse): void {
    let v: { framework: number[]; message: number[] };
    try {
      v = parseNegotiate(r.body);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      return this.fail(`NEGOTIATE answer: ${e.message}`);
    }
    if (v.framework.length !== 1 || v.message.length !== 1) return this.fail(`the guest supports none of the offered versions (it answered ${v.framework.length} framework and ${v.message.length} message versions)`);
    const [framework, message] = [v.framework[0]!, v.message[0]!];
    if (!this.offer.framework.includes(framework) || !this.offer.message.includes(message)) {
      return this.fail(`the guest chose framework ${formatIcVersion(framework)} and version ${formatIcVersion(message)}, which were not offered`);
    }
    this.negotiated = { framework, message };
    this.phase = 'ready';
    this.log(`IC version ${formatIcVersion(message)} (framework ${formatIcVersion(framework)})`);
    this.onReady();
  }

  private fail(why: string): void {
    this.phase = 'failed';
    this.log(`version negotiation failed: ${why}`);
  }

  /** Records what the guest got wrong; the first few per open are logged. */
  protected violation(what: string): void {
    this.violations.push(what);
    if (this.loggedViolations < MAX_LOGGED_VIOLATIONS) {
      this.loggedViolations++;
      this.log(`protocol violation: ${what}${this.loggedViolations === MAX_LOGGED_VIOLATIONS ? ' (further violations are not logged)' : ''}`);
    }
  }

  // --- Sending --------------------------------------------------------------------------------

  /**
   * Sends a request of `type` with the negotiated versions; `handle` (or its `answer`) gets the
   * guest's answer. False if the IC is not ready or the ring is full.
   */
  protected sendRequest(type: number, body: Uint8Array, handle: IcAnswerHandlers | ((r: IcResponse) => void)): boolean {
    const v = this.negotiated;
    if (this.phase !== 'ready' || !v) return false;
    return this.send(type, v.framework, v.message, body, typeof handle === 'function' ? { answer: handle } : handle);
  }

  /**
   * Sends one request through `flight` (one at a time): unless the IC is not ready, a request is
   * in flight, the negotiated version is below `minVersion` (`unsupported` words the line the
   * host logs) or the ring is full, each of which settles `request` at once with its outcome.
   * True once sent; `onAnswer` gets the guest's answer. A reply that is no valid answer settles
   * it 'bad-answer'; no reply within `timeoutNs` settles it 'timeout' (logged, naming `name`).
   */
  protected sendOne<Q, R>(
    flight: InFlight<Q, R | IcUnanswered>,
    request: Q,
    finish: (r: R | IcUnanswered) => void,
    req: {
      readonly type: number;
      readonly minVersion: number;
      readonly body: () => Uint8Array;
      readonly unsupported: (version: string) => string;
      readonly onAnswer: (r: IcResponse) => void;
      /** What the request is, for the host's lines ("HOT_BACKUP"). */
      readonly name: string;
      readonly timeoutNs: number;
    },
  ): boolean {
    const v = this.negotiated;
    if (this.phase !== 'ready' || !v) {
      finish({ outcome: 'not-ready' });
      return false;
    }
    if (flight.busy) {
      finish({ outcome: 'in-progress' });
      return false;
    }
    if (v.message < req.minVersion) {
      this.log(req.unsupported(formatIcVersion(v.message)));
      finish({ outcome: 'unsupported', version: v.message });
      return false;
    }
    // Only the request this send puts in flight is settled by its failures.
    const settleOwn = (r: IcUnanswered): void => flight.takeIf(request)?.settle(r);
    const sent = this.sendRequest(req.type, req.body(), {
      answer: req.onAnswer,
      bad: (reason) => {
        this.log(`${req.name}: the guest's answer is no valid answer: ${reason}`);
        settleOwn({ outcome: 'bad-answer', reason });
      },
      timeout: {
        ns: req.timeoutNs,
        expired: () => {
          this.log(`${req.name}: no answer within ${req.timeoutNs / 1e9} s`);
          settleOwn({ outcome: 'timeout' });
        },
      },
    });
    if (!sent) {
      finish({ outcome: 'ring-full' });
      return false;
    }
    flight.begin(request, finish);
    return true;
  }

  private send(type: number, framework: number, message: number, body: Uint8Array, handlers: IcAnswerHandlers): boolean {
    const ch = this.channel;
    if (!ch) return false;
    const id = this.nextTransactionId;
    const bytes = encodeIcMessage({ type, framework, message, transactionId: id, flags: IC_REQUEST_FLAGS, body });
    // The pipe sends without asking for a completion, with VMBus transaction id 0 (OpenVMM pipe.rs).
    if (!ch.sendInband(bytes, 0n, false)) return false;
    this.nextTransactionId = (id + 1) & 0xff;
    this.takePending(id);
    this.abandoned.delete(id);
    const p: Pending = { type, handlers, timer: undefined };
    this.pending.set(id, p);
    const t = handlers.timeout;
    if (t && Number.isFinite(t.ns)) {
      p.timer = this.ctx.schedule(this.ctx.now() + t.ns, () => {
        if (this.pending.get(id) !== p) return;
        p.timer = undefined;
        this.pending.delete(id);
        this.abandoned.add(id);
        t.expired();
      });
    }
    // Only the ICs that send without waiting (heartbeat) get here; their oldest request is forgotten.
    if (this.pending.size > MAX_PENDING) this.takePending(this.pending.keys().next().value!);
    return true;
  }

  /** Requests waiting for an answer. */
  get waiting(): number {
    return this.pending.size;
  }

  /**
   * The VM stopped: as if the channel closed. The IC is back to 'offered' (new requests are
   * 'not-ready'), what it had in flight settles 'closed', and its timers stop; it refuses a
   * later open and ignores what the guest still sends.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.detach('disposed');
  }
}
