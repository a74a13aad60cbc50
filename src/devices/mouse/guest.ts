// The guest's hid_hyperv driver (Linux 6.1 drivers/hid/hid-hyperv.c, mousevsc) with the HID core
// behind it (hid-core.c, hid-input.c, hid-generic): probe opens the channel (36 KiB rings), sends
// PROTOCOL_REQUEST for SYNTHHID 2.0, waits up to 5 s for the answer and 5 s more for
// INITIAL_DEVICE_INFO, which it acknowledges; a refused version, a HID descriptor that is empty
// or lies about its lengths, or a report descriptor the HID parser rejects fail the probe. It
// then applies the SA-167 fix-up (byte 14: Logical Maximum → Usage Maximum), registers the HID
// device ("Microsoft Vmbus HID-compliant Mouse", BUS_VIRTUAL) and maps its input fields as
// hid-input does: Button page → BTN_MOUSE + n, Generic Desktop X/Y → ABS_X/ABS_Y (REL_* when
// relative), Wheel → REL_WHEEL. Each INPUT_REPORT becomes the fields' events and a SYN_REPORT.
import type { GuestChannel } from '../../vmbus/client/channel.js';
import type { VmbusClient, VmbusDriver } from '../../vmbus/client/client.js';
import { VmbusError } from '../../vmbus/client/errors.js';
import { vmbusRingSize } from '../../vmbus/client/ring-size.js';
import { PacketType } from '../../vmbus/wire/constants.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { ParsedPacket } from '../../vmbus/wire/packets.js';
import { WireError } from '../../tlfs/struct.js';
import { ABS_X, ABS_Y, BTN_MOUSE, EV, REL_HWHEEL, REL_WHEEL, REL_X, REL_Y } from '../input/codes.js';
import { BUS_VIRTUAL, inputDriverModule, type InputDeviceHandle, type InputDriverModule, type InputLayer } from '../input/layer.js';
import { fieldValue, HID_MAIN_ITEM_RELATIVE, HID_MAIN_ITEM_VARIABLE, HidParseError, parseReportDescriptor, type HidDescriptorParsed, type HidField } from './hid-parser.js';
import type { GuestServices } from '../device.js';
import { encodeDeviceInfoAck, encodeProtocolRequest, parseHostMessage, SYNTHHID_INPUT_VERSION } from './wire.js';

export const MOUSE_DRIVER = 'hid_hyperv';
export const MOUSE_NAME = 'Microsoft Vmbus HID-compliant Mouse';
/** wait_for_completion_timeout(&input_dev->wait_event, 5*HZ), twice. */
const WAIT_NS = 5e9;
/** hid_connect's names for Generic Desktop application usages. */
const HID_TYPES = ['Device', 'Pointer', 'Mouse', 'Device', 'Joystick', 'Gamepad', 'Keyboard', 'Keypad', 'Multi-Axis Controller'];

/** A field value's destination: an event type and code. */
interface Mapping {
  readonly field: HidField;
  readonly n: number;
  readonly type: number;
  readonly code: number;
}

/** hidinput_configure_usage, for the usages a pointer has. */
function mapUsage(field: HidField, usage: number): { type: number; code: number } | undefined {
  const page = usage >>> 16;
  const id = usage & 0xffff;
  const relative = (field.flags & HID_MAIN_ITEM_RELATIVE) !== 0;
  if (page === 0x09 && id >= 1 && id <= 16) return { type: EV.KEY, code: BTN_MOUSE + id - 1 };
  if (page === 0x01) {
    if (id === 0x30) return relative ? { type: EV.REL, code: REL_X } : { type: EV.ABS, code: ABS_X };
    if (id === 0x31) return relative ? { type: EV.REL, code: REL_Y } : { type: EV.ABS, code: ABS_Y };
    if (id === 0x38) return { type: EV.REL, code: REL_WHEEL };
  }
  if (page === 0x0c && id === 0x238) return { type: EV.REL, code: REL_HWHEEL };
  return undefined;
}

export class Mousevsc {
  version: number | undefined;
  deviceInfo: { vendor: number; product: number; version: number } | undefined;
  reportDescriptor: Uint8Array | undefined;
  parsed: HidDescriptorParsed | undefined;
  /** "0006:045E:0621.0001". */
  hidName: string | undefined;
  dev: InputDeviceHandle | undefined;
  initComplete = false;
  /** Reports taken, and messages dropped as bad. */
  reports = 0;
  bad = 0;
  private mappings: Mapping[] = [];
  private response: { approved: boolean } | undefined;
  /** dev_info_status once the device info came: 0 or a negative errno name. */
  private devInfo: { ok: true } | { ok: false; errno: 'EINVAL' | 'ENOMEM'; reason: string } | undefined;

  constructor(
    readonly channel: GuestChannel,
    private readonly services: GuestServices,
  ) {}

  onPacket(p: ParsedPacket): void {
    if (p.type === PacketType.COMP) return;
    if (p.type !== PacketType.DATA_INBAND) {
      this.bad++;
      return this.services.log('err', `Unhandled packet type ${p.type}, tid ${p.transId.toString(16)} len ${p.payload.length}`);
    }
    let msg;
    try {
      msg = parseHostMessage(p.payload);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      this.bad++;
      // A device info that is bad still completes the probe's wait, with an error.
      if (e.struct === 'hid_descriptor' || e.struct === 'synthhid_device_info') {
        if (!this.devInfo) this.devInfo = { ok: false, errno: e.field === 'bLength' && e.reason === 'is 0' ? 'ENOMEM' : 'EINVAL', reason: e.message };
        return;
      }
      return this.services.log(e.struct === 'synthhid_msg_hdr' ? 'err' : 'warn', e.struct === 'synthhid_msg_hdr' ? e.reason : `${MOUSE_DRIVER} ${this.channel.deviceName}: ${e.message}`);
    }
    switch (msg.type) {
      case 'ignored':
        return;
      case 'protocol-response':
        this.response = { approved: msg.approved };
        return;
      case 'device-info':
        if (this.devInfo) return;
        this.deviceInfo = { vendor: msg.vendor, product: msg.product, version: msg.version };
        this.reportDescriptor = msg.reportDescriptor;
        this.channel.sendInband(encodeDeviceInfoAck(), 0n, true);
        this.devInfo = { ok: true };
        return;
      case 'input-report':
        if (!this.initComplete) return;
        this.reports++;
        this.inputReport(msg.report);
        return;
    }
  }

  /** mousevsc_connect_to_vsp. */
  connect(vmbus: VmbusClient): void {
    this.channel.sendInband(encodeProtocolRequest(SYNTHHID_INPUT_VERSION), 0n, true);
    if (!vmbus.transport.waitUntil(() => this.response !== undefined, WAIT_NS)) throw new VmbusError('ETIMEDOUT', 'no answer to the synthhid protocol request');
    if (!this.response!.approved) {
      this.services.log('err', `synthhid protocol request failed (version ${SYNTHHID_INPUT_VERSION})`);
      throw new VmbusError('ENODEV', 'synthhid protocol refused');
    }
    this.version = SYNTHHID_INPUT_VERSION;
    if (!vmbus.transport.waitUntil(() => this.devInfo !== undefined, WAIT_NS)) throw new VmbusError('ETIMEDOUT', 'no device info');
    const s = this.devInfo!;
    if (!s.ok) {
      this.services.log('err', `${MOUSE_DRIVER} ${this.channel.deviceName}: bad device info: ${s.reason}`);
      throw new VmbusError(s.errno, s.reason);
    }
  }

  /** hid_add_device, hid_parse and hid_hw_start(HID_CONNECT_HIDINPUT): the input device. */
  start(input: InputLayer, hidId: number): void {
    const desc = this.reportDescriptor!;
    // The SA-167 workaround, where the descriptor is long enough to have a byte 14.
    if (desc.length > 14 && desc[14] === 0x25) desc[14] = 0x29;
    const info = this.deviceInfo!;
    const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
    const name = `${hex(BUS_VIRTUAL)}:${hex(info.vendor)}:${hex(info.product)}.${hex(hidId)}`;
    this.hidName = name;
    try {
      this.parsed = parseReportDescriptor(desc);
    } catch (e) {
      if (!(e instanceof HidParseError)) throw e;
      this.services.log('err', `hid-generic ${name}: ${e.reason}`);
      this.services.log('err', `hid-generic ${name}: parse failed`);
      throw new VmbusError('EINVAL', `report descriptor: ${e.message}`);
    }
    const abs = new Map<number, { min: number; max: number }>();
    for (const report of this.parsed.reports.filter((r) => r.kind === 'input')) {
      for (const field of report.fields) {
        if (!(field.flags & HID_MAIN_ITEM_VARIABLE)) continue;
        for (let n = 0; n < field.reportCount; n++) {
          const m = mapUsage(field, field.usages[Math.min(n, field.usages.length - 1)]!);
          if (!m) continue;
          this.mappings.push({ field, n, ...m });
          if (m.type === EV.ABS) abs.set(m.code, { min: field.logicalMinimum, max: field.logicalMaximum });
        }
      }
    }
    if (this.mappings.length === 0) {
      this.services.log('err', `hid-generic ${name}: hidinput: no usable fields`);
      throw new VmbusError('ENODEV', 'no input fields');
    }
    this.dev = input.register({ name: MOUSE_NAME, parent: `/devices/${name}`, phys: '', id: { bustype: BUS_VIRTUAL, ...info }, abs });
    const app = this.parsed.applications.find((u) => u >>> 16 === 0x01 && (u & 0xffff) < HID_TYPES.length);
    const type = app === undefined ? 'Device' : HID_TYPES[app & 0xffff]!;
    this.services.log('info', `hid-generic ${name}: input: <UNKNOWN> HID v${(info.version >> 8).toString(16)}.${(info.version & 0xff).toString(16).padStart(2, '0')} ${type} [${MOUSE_NAME}] on `);
    this.initComplete = true;
  }

  /** hid_input_report → hidinput_hid_event for each mapped value, then input_sync. */
  private inputReport(raw: Uint8Array): void {
    const parsed = this.parsed;
    if (!parsed || !this.dev) return;
    const id = parsed.numbered ? raw[0] ?? 0 : 0;
    const data = parsed.numbered ? raw.subarray(1) : raw;
    if (!parsed.reports.some((r) => r.kind === 'input' && r.id === id)) return;
    for (const m of this.mappings) {
      if (!parsed.reports.some((r) => r.kind === 'input' && r.id === id && r.fields.includes(m.field))) continue;
      const v = fieldValue(data, m.field, m.n);
      // Values outside the logical range are ignored (HID 1.11 §5.10, hidinput_hid_event).
      if (m.field.logicalMinimum < m.field.logicalMaximum && (v < m.field.logicalMinimum || v > m.field.logicalMaximum)) continue;
      this.dev.event(m.type, m.code, m.type === EV.KEY ? (v ? 1 : 0) : v);
    }
    this.dev.sync();
  }
}

export class MousevscDriver implements VmbusDriver {
  readonly name = MOUSE_DRIVER;
  readonly classIds = [DeviceClass.MOUSE];
  readonly devices: Mousevsc[] = [];
  /** hid_add_device's id counter (the ".0001" of the device name). */
  private hidIds = 0;

  constructor(
    private readonly services: GuestServices,
    private readonly vmbus: VmbusClient,
    private readonly input: InputLayer,
    private readonly pageSize: number,
  ) {}

  probe(ch: GuestChannel): void {
    const m = new Mousevsc(ch, this.services);
    const bytes = vmbusRingSize(36 * 1024, this.pageSize);
    ch.open({ sendRingBytes: bytes, recvRingBytes: bytes, onEvent: (c) => void c.receive((p) => m.onPacket(p)) });
    try {
      m.connect(this.vmbus);
      m.start(this.input, ++this.hidIds);
    } catch (e) {
      ch.close();
      throw e;
    }
    this.devices.push(m);
  }

  remove(ch: GuestChannel): void {
    const i = this.devices.findIndex((d) => d.channel === ch);
    if (i < 0) return;
    const m = this.devices[i]!;
    m.initComplete = false;
    ch.close();
    if (m.dev) this.input.unregister(m.dev);
    this.devices.splice(i, 1);
  }
}

export type MouseModule = InputDriverModule<MousevscDriver>;

/** hid_hyperv, feeding the guest's input layer `input`. */
export function mouseModule(input: InputLayer, pageSize: number): MouseModule {
  return inputDriverModule(MOUSE_DRIVER, input, (services, vmbus) => new MousevscDriver(services, vmbus, input, pageSize));
}
