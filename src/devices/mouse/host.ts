// The host end of the synthetic mouse (the SYNTHHID device hid-hyperv.c talks to): it answers
// the guest's PROTOCOL_REQUEST (approving the versions its release knows, versions.ts), sends
// INITIAL_DEVICE_INFO (hv_input_dev_info, a HID descriptor and the report descriptor of
// report-descriptor.ts) and, once the guest acknowledges it, sends INPUT_REPORT messages for
// pointer moves and button changes. Whatever else the guest sends is a recorded violation.
import { BoundedLog } from '../../tlfs/bounded-log.js';
import { WireError } from '../../tlfs/struct.js';
import type { HostChannel } from '../../vmbus/server/channel.js';
import { PacketType } from '../../vmbus/wire/constants.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { ParsedPacket } from '../../vmbus/wire/packets.js';
import type { HostContext, HostDevice } from '../device.js';
import { MOUSE_ABS_MAX, MOUSE_BUTTONS, MOUSE_DEVICE_ID, MOUSE_REPORT_DESCRIPTOR, mouseReport, type MouseButton } from './report-descriptor.js';
import { HOST_SYNTHHID_VERSIONS } from './versions.js';
import { encodeDeviceInfo, encodeInputReport, encodeProtocolResponse, formatHidVersion, parseGuestMessage, type DeviceInfo } from './wire.js';

/** offered: waiting for the guest; info-sent: device info out, no ack yet; ready: acknowledged; refused: version not approved. */
export type MousePhase = 'offered' | 'info-sent' | 'ready' | 'refused';

export interface MouseOptions {
  /** Versions to approve instead of the release's. */
  readonly versions?: readonly number[];
  /** The device info to send instead of hvkit's mouse (fault injection: a descriptor that lies). */
  readonly deviceInfo?: DeviceInfo;
  /** Raw bytes to send as the device info message instead of an encoded one. */
  readonly rawDeviceInfo?: Uint8Array;
}

export class MouseHost implements HostDevice {
  readonly type = 'mouse';
  readonly channel: HostChannel;
  phase: MousePhase = 'offered';
  version: number | undefined;
  /** The pointer and buttons as last reported. */
  x = 0;
  y = 0;
  buttons = 0;
  /** Reports written to the ring, and reports not sent (not ready or ring full). */
  sent = 0;
  refused = 0;
  /** Device infos the guest acknowledged (one per successful connect). */
  acks = 0;
  readonly violations = new BoundedLog<string>(32);

  constructor(
    private readonly ctx: HostContext,
    readonly instanceId: string,
    private readonly options: MouseOptions = {},
  ) {
    this.channel = ctx.server.offer({ classId: DeviceClass.MOUSE, instanceId }, { signal: (ch) => void ch.receive((p) => this.onPacket(ch, p)), close: () => void (this.phase = this.phase === 'refused' ? 'refused' : 'offered') });
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
    if (msg.type === 'protocol-request') {
      if (this.phase !== 'offered') return this.violation(`PROTOCOL_REQUEST after the protocol was ${this.phase === 'refused' ? 'refused' : 'negotiated'}`);
      this.version = msg.version;
      const ok = (this.options.versions ?? HOST_SYNTHHID_VERSIONS[this.ctx.release]).includes(msg.version);
      ch.sendInband(encodeProtocolResponse(msg.version, ok));
      this.ctx.log(`mouse: the guest asked for SYNTHHID ${formatHidVersion(msg.version)}: ${ok ? 'approved' : 'refused'}`);
      if (!ok) {
        this.phase = 'refused';
        return;
      }
      const info = this.options.rawDeviceInfo ?? encodeDeviceInfo(this.options.deviceInfo ?? { ...MOUSE_DEVICE_ID, reportDescriptor: MOUSE_REPORT_DESCRIPTOR });
      ch.sendInband(info);
      this.phase = 'info-sent';
      return;
    }
    if (this.phase !== 'info-sent') return this.violation('INITIAL_DEVICE_INFO_ACK without a device info to acknowledge');
    this.phase = 'ready';
    this.acks++;
  }

  private violation(what: string): void {
    this.violations.push(what);
    this.ctx.log(`mouse: guest sent a bad message: ${what}`);
  }

  /** Sends one report with the current state; false when not sent. */
  private report(wheel = 0): boolean {
    if (this.phase !== 'ready' || !this.channel.isOpen || !this.channel.sendInband(encodeInputReport(mouseReport(this.buttons, this.x, this.y, wheel)))) {
      this.refused++;
      return false;
    }
    this.sent++;
    return true;
  }

  /** Moves the pointer to (x, y) in the device's absolute units, 0 to 32767 (clamped). */
  move(x: number, y: number): boolean {
    const clamp = (v: number) => Math.max(0, Math.min(MOUSE_ABS_MAX, Math.round(v)));
    this.x = clamp(x);
    this.y = clamp(y);
    return this.report();
  }

  /** Presses or releases a button where the pointer is. */
  button(b: MouseButton, down: boolean): boolean {
    this.buttons = down ? this.buttons | MOUSE_BUTTONS[b] : this.buttons & ~MOUSE_BUTTONS[b];
    return this.report();
  }

  /** A press and a release. */
  click(b: MouseButton = 'left'): boolean {
    return this.button(b, true) && this.button(b, false);
  }

  /** Wheel detents (positive away from the user), -127 to 127. */
  scroll(detents: number): boolean {
    return this.report(Math.max(-127, Math.min(127, Math.round(detents))));
  }

  /** Any bytes as an INPUT_REPORT's data (fault injection). */
  sendRawReport(report: Uint8Array): boolean {
    return this.channel.isOpen && this.channel.sendInband(encodeInputReport(report));
  }

  state(): Record<string, unknown> {
    return { phase: this.phase, version: this.version === undefined ? null : formatHidVersion(this.version), x: this.x, y: this.y, buttons: this.buttons, sent: this.sent, refused: this.refused, violations: this.violations.total };
  }
}

export function attachMouse(ctx: HostContext, instanceId: string, options?: MouseOptions): MouseHost {
  return new MouseHost(ctx, instanceId, options);
}
