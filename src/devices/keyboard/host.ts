// The host end of the synthetic keyboard: it offers the channel, answers the guest's
// PROTOCOL_REQUEST (accepting the versions its release knows, versions.ts), and then sends
// keystrokes as SYNTH_KBD_EVENT messages: a set-1 make code with IS_BREAK for a release and
// IS_E0 / IS_E1 for the prefixed keys (hyperv-keyboard.c). Keystrokes that do not fit the ring
// wait in a bounded host queue and go out as the guest makes room. Whatever the guest sends
// that is no PROTOCOL_REQUEST is a recorded violation.
import { BoundedLog } from '../../tlfs/bounded-log.js';
import { WireError } from '../../tlfs/struct.js';
import type { HostChannel } from '../../vmbus/server/channel.js';
import { PacketType } from '../../vmbus/wire/constants.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { ParsedPacket } from '../../vmbus/wire/packets.js';
import type { HostContext, HostDevice } from '../device.js';
import { ASCII_KEYS, MODIFIER_KEYS, parseCombo, type ScanKey } from './keymap.js';
import { HOST_KBD_VERSIONS } from './versions.js';
import { encodeKeystroke, encodeProtocolResponse, formatKbdVersion, parseGuestMessage, type Keystroke } from './wire.js';

/** offered: not yet negotiated; ready: a version was accepted; refused: the guest's version was not. */
export type KeyboardPhase = 'offered' | 'ready' | 'refused';

/** Keystrokes the host holds while the ring is full; more are refused (counted). */
export const KEYBOARD_PENDING_LIMIT = 4096;
/** How often held keystrokes are retried, virtual ns. */
const RETRY_NS = 1_000_000;

export interface KeyOptions {
  readonly e0?: boolean;
  readonly e1?: boolean;
  /** A release (IS_BREAK) instead of a press. */
  readonly break?: boolean;
  /** `code` is a UTF-16 code unit (IS_UNICODE), not a scancode. */
  readonly unicode?: boolean;
}

export interface KeyboardOptions {
  /** Versions to accept instead of the release's. */
  readonly versions?: readonly number[];
}

export class KeyboardHost implements HostDevice {
  readonly type = 'keyboard';
  readonly channel: HostChannel;
  phase: KeyboardPhase = 'offered';
  /** The version the guest asked for last, accepted or not. */
  version: number | undefined;
  /** Keystrokes written to the ring. */
  sent = 0;
  /** Keystrokes refused because the host's queue was full (or the device not ready). */
  refused = 0;
  readonly violations = new BoundedLog<string>(32);
  private readonly pending: Keystroke[] = [];
  private retry: { cancel(): void } | undefined;
  private readonly accepted: readonly number[];

  constructor(
    private readonly ctx: HostContext,
    readonly instanceId: string,
    options: KeyboardOptions = {},
  ) {
    this.accepted = options.versions ?? HOST_KBD_VERSIONS[ctx.release];
    this.channel = ctx.server.offer({ classId: DeviceClass.KBD, instanceId }, { signal: (ch) => this.onSignal(ch), close: () => this.onClose() });
  }

  private onSignal(ch: HostChannel): void {
    ch.receive((p) => this.onPacket(ch, p));
    this.flush();
  }

  private onPacket(ch: HostChannel, p: ParsedPacket): void {
    if (p.type === PacketType.COMP) return;
    if (p.type !== PacketType.DATA_INBAND) return this.violation(`packet type ${p.type} is not in-band data`);
    let msg;
    try {
      msg = parseGuestMessage(p.payload);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      return this.violation(e.message);
    }
    if (this.phase !== 'offered') return this.violation(`PROTOCOL_REQUEST after the protocol was ${this.phase === 'ready' ? 'negotiated' : 'refused'}`);
    this.version = msg.version;
    const ok = this.accepted.includes(msg.version);
    ch.sendInband(encodeProtocolResponse(ok));
    this.phase = ok ? 'ready' : 'refused';
    this.ctx.log(`keyboard: the guest asked for synth_kbd ${formatKbdVersion(msg.version)}: ${ok ? 'accepted' : 'refused'}`);
  }

  private violation(what: string): void {
    this.violations.push(what);
    this.ctx.log(`keyboard: guest sent a bad message: ${what}`);
  }

  /** The guest closed the channel: back to offered (a refusal stays on record). */
  private onClose(): void {
    if (this.phase !== 'refused') this.phase = 'offered';
    this.pending.length = 0;
    this.retry?.cancel();
    this.retry = undefined;
  }

  /** Queues one keystroke; false if refused (not ready, or the host's queue is full). */
  keystroke(k: Keystroke): boolean {
    if (this.phase !== 'ready' || this.pending.length >= KEYBOARD_PENDING_LIMIT) {
      this.refused++;
      return false;
    }
    this.pending.push(k);
    this.flush();
    return true;
  }

  /** One make (or, with `break`, break) of a set-1 scancode. */
  press(code: number, opts: KeyOptions = {}): boolean {
    return this.keystroke({ makeCode: code & 0xffff, break: opts.break ?? false, e0: opts.e0 ?? false, e1: opts.e1 ?? false, unicode: opts.unicode ?? false });
  }

  /** Make then break of one key; how many of the two were queued. */
  tap(k: ScanKey): number {
    return Number(this.press(k.code, { e0: k.e0 })) + Number(this.press(k.code, { e0: k.e0, break: true }));
  }

  /**
   * Types `text` as a US keyboard would: each character's key, with Shift around it where the
   * character needs it. Throws RangeError naming the first character no key types (before
   * sending anything). Returns the keystrokes queued.
   */
  typeText(text: string): number {
    const plan = [...text].map((c) => {
      const k = ASCII_KEYS.get(c);
      if (!k) throw new RangeError(`no key types ${JSON.stringify(c)} (U+${c.codePointAt(0)!.toString(16).padStart(4, '0')})`);
      return k;
    });
    let n = 0;
    const shift = MODIFIER_KEYS.SHIFT!;
    for (const { key, shift: shifted } of plan) {
      if (shifted) n += Number(this.press(shift.code));
      n += this.tap(key);
      if (shifted) n += Number(this.press(shift.code, { break: true }));
    }
    return n;
  }

  /**
   * "CTRL+ALT+DEL": modifiers down in order, the key down and up, modifiers up in reverse. Throws
   * RangeError for a bad combo. Returns the keystrokes queued.
   */
  pressCombo(combo: string): number {
    const c = parseCombo(combo);
    if (typeof c === 'string') throw new RangeError(c);
    let n = 0;
    for (const m of c.modifiers) n += Number(this.press(m.code, { e0: m.e0 }));
    n += this.tap(c.key);
    for (const m of [...c.modifiers].reverse()) n += Number(this.press(m.code, { e0: m.e0, break: true }));
    return n;
  }

  /** Keystrokes waiting for room in the ring. */
  get queued(): number {
    return this.pending.length;
  }

  private flush(): void {
    let i = 0;
    while (i < this.pending.length && this.channel.isOpen && this.channel.sendInband(encodeKeystroke(this.pending[i]!))) i++;
    this.sent += i;
    this.pending.splice(0, i);
    if (this.pending.length && !this.retry) {
      this.retry = this.ctx.schedule(this.ctx.now() + RETRY_NS, () => {
        this.retry = undefined;
        this.flush();
      });
    }
  }

  state(): Record<string, unknown> {
    return { phase: this.phase, version: this.version === undefined ? null : formatKbdVersion(this.version), sent: this.sent, queued: this.pending.length, refused: this.refused, violations: this.violations.total };
  }

  dispose(): void {
    this.retry?.cancel();
  }
}

export function attachKeyboard(ctx: HostContext, instanceId: string, options?: KeyboardOptions): KeyboardHost {
  return new KeyboardHost(ctx, instanceId, options);
}
