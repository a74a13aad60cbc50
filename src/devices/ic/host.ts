// The host end of an integration component: it offers the channel as a message-mode pipe, and
// once the guest opens it sends the NEGOTIATE request with the versions its release offers,
// checks the guest's answer, and then hands the channel to the concrete IC. Requests carry
// TRANSACTION | REQUEST and a one-byte transaction id that the answer must echo with
// TRANSACTION | RESPONSE (Linux sets those flags and leaves the id alone: hv_util.c).
// Sources: OpenVMM vm/devices/hyperv_ic/src/common.rs (negotiate, read_message) and
// vmbus_server channels.rs (how a pipe channel is offered); Windows icsvc's transaction table
// (ICMsgTransactionTbl: a u8 m_NextTransactionId) for the increasing ids.
import type { ChannelHandler, HostChannel } from '../../vmbus/server/channel.js';
import { ChannelFlags, MAX_PIPE_USER_DEFINED_BYTES, PacketType, VMBUS_PIPE_TYPE_MESSAGE } from '../../vmbus/wire/constants.js';
import { PipeUserDefined } from '../../vmbus/wire/messages.js';
import type { ParsedPacket } from '../../vmbus/wire/packets.js';
import { WireError } from '../../tlfs/struct.js';
import type { HostContext, HostDevice } from '../device.js';
import type { IcVersionOffer } from './versions.js';
import { encodeIcMessage, encodeNegotiate, formatIcVersion, icMessageBody, IcMsgType, IC_REQUEST_FLAGS, IC_RESPONSE_FLAGS, parseNegotiate, type IcHeader } from './wire.js';

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

/** What became of an IC request the guest did not answer: shared by the ICs that send one at a time. */
export type IcUnanswered =
  /** Not sent: the channel is not open and negotiated. */
  | { readonly outcome: 'not-ready' }
  /** Not sent: the negotiated version has no such request. */
  | { readonly outcome: 'unsupported'; readonly version: number }
  /** Not sent: an earlier request is still waiting for its answer. */
  | { readonly outcome: 'in-progress' }
  /** Not sent: the host→guest ring is full. */
  | { readonly outcome: 'ring-full' }
  /** Sent, but the channel closed before the guest answered. */
  | { readonly outcome: 'closed' };

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

  /** The request in flight, no longer in flight (its answer came, or the channel closed). */
  take(): { readonly request: Q; readonly settle: (r: R) => void } | undefined {
    const c = this.current;
    this.current = undefined;
    return c;
  }
}

interface Pending {
  readonly type: number;
  readonly onResponse: (r: IcResponse) => void;
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
  /** What the guest got wrong (the most recent ones), and how many times in all. */
  readonly violations: string[] = [];
  violationCount = 0;
  private loggedViolations = 0;
  private nextTransactionId = 0;
  private readonly pending = new Map<number, Pending>();

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
  /** The guest closed the channel, or the host revoked it; requests still waiting are dropped. */
  protected onClosed(): void {}

  /** Host log line, prefixed with the device type. */
  protected log(text: string): void {
    this.ctx.log(`${this.type}: ${text}`);
  }

  // --- ChannelHandler ------------------------------------------------------------------------

  open(ch: HostChannel): number {
    this.channel = ch;
    this.pending.clear();
    this.negotiated = undefined;
    this.loggedViolations = 0;
    this.phase = 'negotiating';
    // NEGOTIATE carries version 0.0 in both header fields (OpenVMM common.rs).
    const sent = this.send(IcMsgType.NEGOTIATE, 0, 0, encodeNegotiate(this.offer.framework, this.offer.message), (r) => this.onNegotiated(r));
    if (!sent) this.log('could not send NEGOTIATE: the ring is full');
    return 0;
  }

  close(): void {
    this.detach();
  }

  revoked(): void {
    this.detach();
  }

  signal(ch: HostChannel): void {
    ch.receive((p) => this.onPacket(p));
  }

  private detach(): void {
    const wasOpen = this.channel !== undefined;
    this.channel = undefined;
    this.pending.clear();
    this.phase = 'offered';
    if (wasOpen) this.onClosed();
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
      return this.violation(e.message);
    }
    const h = m.header;
    if ((h.icflags & IC_RESPONSE_FLAGS) !== IC_RESPONSE_FLAGS) return this.violation(`icflags 0x${h.icflags.toString(16)} do not mark an answer`);
    const p = this.pending.get(h.ictransaction_id);
    if (!p) return this.violation(`no request with transaction id ${h.ictransaction_id} is waiting`);
    this.pending.delete(h.ictransaction_id);
    if (h.icmsgtype !== p.type) return this.violation(`answer of type ${h.icmsgtype} to a request of type ${p.type}`);
    p.onResponse(m);
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
    this.violationCount++;
    this.violations.push(what);
    if (this.violations.length > MAX_KEPT_VIOLATIONS) this.violations.shift();
    if (this.loggedViolations < MAX_LOGGED_VIOLATIONS) {
      this.loggedViolations++;
      this.log(`protocol violation: ${what}${this.loggedViolations === MAX_LOGGED_VIOLATIONS ? ' (further violations are not logged)' : ''}`);
    }
  }

  // --- Sending --------------------------------------------------------------------------------

  /**
   * Sends a request of `type` with the negotiated versions; `onResponse` gets the guest's answer.
   * False if the IC is not ready or the ring is full.
   */
  protected sendRequest(type: number, body: Uint8Array, onResponse: (r: IcResponse) => void): boolean {
    const v = this.negotiated;
    if (this.phase !== 'ready' || !v) return false;
    return this.send(type, v.framework, v.message, body, onResponse);
  }

  /**
   * Sends one request through `flight` (one at a time): unless the IC is not ready, a request is
   * in flight, the negotiated version is below `minVersion` (`unsupported` words the line the
   * host logs) or the ring is full, each of which settles `request` at once with its outcome.
   * True once sent; `onAnswer` gets the guest's answer.
   */
  protected sendOne<Q, R>(
    flight: InFlight<Q, R | IcUnanswered>,
    request: Q,
    finish: (r: R | IcUnanswered) => void,
    req: { readonly type: number; readonly minVersion: number; readonly body: () => Uint8Array; readonly unsupported: (version: string) => string; readonly onAnswer: (r: IcResponse) => void },
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
    if (!this.sendRequest(req.type, req.body(), req.onAnswer)) {
      finish({ outcome: 'ring-full' });
      return false;
    }
    flight.begin(request, finish);
    return true;
  }

  private send(type: number, framework: number, message: number, body: Uint8Array, onResponse: (r: IcResponse) => void): boolean {
    const ch = this.channel;
    if (!ch) return false;
    const id = this.nextTransactionId;
    const bytes = encodeIcMessage({ type, framework, message, transactionId: id, flags: IC_REQUEST_FLAGS, body });
    // The pipe sends without asking for a completion, with VMBus transaction id 0 (OpenVMM pipe.rs).
    if (!ch.sendInband(bytes, 0n, false)) return false;
    this.nextTransactionId = (id + 1) & 0xff;
    this.pending.delete(id);
    this.pending.set(id, { type, onResponse });
    if (this.pending.size > MAX_PENDING) this.pending.delete(this.pending.keys().next().value!);
    return true;
  }

  /** Requests waiting for an answer. */
  get waiting(): number {
    return this.pending.size;
  }

  dispose(): void {}
}
