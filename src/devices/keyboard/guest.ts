// The guest's hyperv_keyboard driver (Linux 6.1 drivers/input/serio/hyperv-keyboard.c): probe
// opens the channel (36 KiB rings), sends PROTOCOL_REQUEST for SYNTH_KBD_VERSION and waits up to
// 10 s for the answer; refused, the probe fails with ENODEV. It then registers a serio port of
// type SERIO_8042_XL, which atkbd binds (src/guest/input/atkbd.ts). Each keystroke becomes serio
// bytes: XTKBD_EMUL0 for IS_E0, XTKBD_EMUL1 for IS_E1, then the make code with XTKBD_RELEASE for
// IS_BREAK, cut to a byte as serio_interrupt's unsigned char does (IS_UNICODE is not looked at).
// Bad messages print Linux's lines and are dropped.
import type { GuestChannel } from '../../vmbus/client/channel.js';
import type { VmbusClient, VmbusDriver } from '../../vmbus/client/client.js';
import { VmbusError } from '../../vmbus/client/errors.js';
import { vmbusRingSize } from '../../vmbus/client/ring-size.js';
import { PacketType } from '../../vmbus/wire/constants.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { ParsedPacket } from '../../vmbus/wire/packets.js';
import { WireError } from '../../tlfs/struct.js';
import { inputDriverModule, VMBUS_SYSFS, type InputDriverModule, type InputLayer } from '../input/layer.js';
import { Atkbd } from './atkbd.js';
import type { GuestServices } from '../device.js';
import { SynthKbdMsgHdr, encodeProtocolRequest, formatKbdVersion, parseHostMessage, SYNTH_KBD_VERSION, XTKBD_EMUL0, XTKBD_EMUL1, XTKBD_RELEASE } from './wire.js';

export const KEYBOARD_DRIVER = 'hyperv_keyboard';
/** wait_for_completion_timeout(&kbd_dev->wait_event, 10 * HZ). */
const PROTOCOL_TIMEOUT_NS = 10e9;

export class HvKeyboard {
  /** The version the host accepted. */
  version: number | undefined;
  atkbd: Atkbd | undefined;
  /** kbd_dev->started: serio's start ran (atkbd bound). */
  started = false;
  /** Messages dropped as bad, and keystrokes taken. */
  bad = 0;
  keystrokes = 0;
  private response: { accepted: boolean } | undefined;

  constructor(
    readonly channel: GuestChannel,
    private readonly services: GuestServices,
  ) {}

  private err(text: string): void {
    this.services.log('err', `${KEYBOARD_DRIVER} ${this.channel.deviceName}: ${text}`);
  }

  onPacket(p: ParsedPacket): void {
    if (p.type === PacketType.COMP) return;
    if (p.type !== PacketType.DATA_INBAND) {
      this.bad++;
      return this.err(`unhandled packet type ${p.type}, tid ${p.transId.toString(16)} len ${p.payload.length}`);
    }
    // hv_kbd_handle_received_packet: the message (padding included) must be longer than its header.
    if (p.payload.length <= SynthKbdMsgHdr.size) {
      this.bad++;
      return this.err(`Illegal packet (type: ${p.type}, tid: ${p.transId.toString(16)}, size: ${p.payload.length})`);
    }
    let msg;
    try {
      msg = parseHostMessage(p.payload);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      this.bad++;
      return this.err(e.reason);
    }
    if (msg.type === 'protocol-response') {
      this.response = { accepted: msg.accepted };
      return;
    }
    this.keystrokes++;
    if (!this.started || !this.atkbd) return;
    if (msg.e0) this.atkbd.interrupt(XTKBD_EMUL0);
    if (msg.e1) this.atkbd.interrupt(XTKBD_EMUL1);
    this.atkbd.interrupt((msg.makeCode | (msg.break ? XTKBD_RELEASE : 0)) & 0xff);
  }

  /** hv_kbd_connect_to_vsp. */
  connect(vmbus: VmbusClient): void {
    this.channel.sendInband(encodeProtocolRequest(SYNTH_KBD_VERSION), 0n, true);
    if (!vmbus.transport.waitUntil(() => this.response !== undefined, PROTOCOL_TIMEOUT_NS)) throw new VmbusError('ETIMEDOUT', 'no answer to the synth_kbd protocol request');
    if (!this.response!.accepted) {
      this.err(`synth_kbd protocol request failed (version ${SYNTH_KBD_VERSION})`);
      throw new VmbusError('ENODEV', 'synth_kbd protocol refused');
    }
    this.version = SYNTH_KBD_VERSION;
  }
}

export class HvKeyboardDriver implements VmbusDriver {
  readonly name = KEYBOARD_DRIVER;
  readonly classIds = [DeviceClass.KBD];
  readonly devices: HvKeyboard[] = [];
  private serioCount = 0;

  constructor(
    private readonly services: GuestServices,
    private readonly vmbus: VmbusClient,
    private readonly input: InputLayer,
    private readonly pageSize: number,
  ) {}

  probe(ch: GuestChannel): void {
    const kbd = new HvKeyboard(ch, this.services);
    const bytes = vmbusRingSize(36 * 1024, this.pageSize);
    ch.open({ sendRingBytes: bytes, recvRingBytes: bytes, onEvent: (c) => void c.receive((p) => kbd.onPacket(p)) });
    try {
      kbd.connect(this.vmbus);
    } catch (e) {
      ch.close();
      throw e;
    }
    // serio_register_port: the port is named after the VMBus device; atkbd binds and starts it.
    const serio = `serio${this.serioCount++}`;
    kbd.atkbd = new Atkbd(this.input, this.services, { path: `${VMBUS_SYSFS}/${ch.deviceName}/${serio}`, name: serio, phys: ch.deviceName });
    kbd.started = true;
    this.devices.push(kbd);
    this.services.note(`${KEYBOARD_DRIVER} ${ch.deviceName}: synth_kbd ${formatKbdVersion(kbd.version!)}, ${serio} bound to atkbd`);
  }

  remove(ch: GuestChannel): void {
    const i = this.devices.findIndex((d) => d.channel === ch);
    if (i < 0) return;
    const kbd = this.devices[i]!;
    kbd.started = false;
    if (kbd.atkbd?.dev) this.input.unregister(kbd.atkbd.dev);
    ch.close();
    this.devices.splice(i, 1);
  }
}

export type KeyboardModule = InputDriverModule<HvKeyboardDriver>;

/** hyperv_keyboard, feeding the guest's input layer `input`. */
export function keyboardModule(input: InputLayer, pageSize: number): KeyboardModule {
  return inputDriverModule(KEYBOARD_DRIVER, input, (services, vmbus) => new HvKeyboardDriver(services, vmbus, input, pageSize));
}
