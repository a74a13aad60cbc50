// The synthetic HID protocol (SYNTHHID) between hid_hyperv (mousevsc) and the host's mouse:
// Linux 6.1 drivers/hid/hid-hyperv.c (struct pipe_prt_msg, synthhid_*, hv_input_dev_info,
// mousevsc_prt_msg, SYNTHHID_INPUT_VERSION) and include/linux/hid.h (struct hid_descriptor,
// hid_class_descriptor). Every message is a pipe message (type PIPE_MESSAGE_DATA, size of what
// follows) around a SYNTHHID message (type, size of what follows its header). Linux 6.1 sends its
// messages as sizeof(pipe_prt_msg) - 1 + sizeof(message): 23 bytes for the protocol request, 20
// for the device info ack. Layouts are checked against the oracle (test/oracle/input-constants.test.ts).
import { bytes, struct, u16, u32, u8, WireError } from '../../tlfs/struct.js';

export const PipePrtMsg = struct(
  'pipe_prt_msg',
  {
    /** PIPE_MESSAGE_DATA (1); anything else is ignored. */
    type: u32,
    /** Bytes of the SYNTHHID message that follows. */
    size: u32,
    /** The SYNTHHID message starts here. */
    data: bytes(1),
  },
  { size: 12 },
);
export const SynthhidMsgHdr = struct('synthhid_msg_hdr', {
  /** SYNTH_HID_*: 0 protocol request, 1 response, 2 device info, 3 its ack, 4 input report. */
  type: u32,
  /** Bytes of the message after this header. */
  size: u32,
});
export const SynthhidProtocolRequest = struct('synthhid_protocol_request', {
  header: SynthhidMsgHdr,
  /** major << 16 | minor: Linux asks for 2.0 (0x20000). */
  version_requested: u32,
});
export const SynthhidProtocolResponse = struct('synthhid_protocol_response', {
  header: SynthhidMsgHdr,
  /** The version asked for, echoed. */
  version_requested: u32,
  /** Non-zero: the host approves the version. */
  approved: u8,
});
export const HvInputDevInfo = struct('hv_input_dev_info', {
  /** sizeof(struct hv_input_dev_info), 32. */
  size: u32,
  /** The HID device's USB vendor id (Microsoft, 0x045E). */
  vendor: u16,
  product: u16,
  /** The HID device's version, BCD (Linux prints it as "HID v0.01"). */
  version: u16,
  reserved: bytes(22),
});
/** struct hid_class_descriptor and struct hid_descriptor (USB HID 1.11 §6.2.1), packed. */
export const HidClassDescriptor = struct('hid_class_descriptor', {
  /** HID_DT_REPORT (0x22). */
  bDescriptorType: u8,
  /** Bytes of the report descriptor that follows the HID descriptor. */
  wDescriptorLength: u16,
});
export const HidDescriptor = struct('hid_descriptor', {
  /** The HID descriptor's own length (9); the report descriptor follows it. */
  bLength: u8,
  /** HID_DT_HID (0x21). */
  bDescriptorType: u8,
  /** The HID specification release, BCD (0x0101). */
  bcdHID: u16,
  bCountryCode: u8,
  /** Class descriptors named (1: the report descriptor). */
  bNumDescriptors: u8,
  rpt_desc: HidClassDescriptor,
});
export const SynthhidDeviceInfo = struct('synthhid_device_info', { header: SynthhidMsgHdr, hid_dev_info: HvInputDevInfo, hid_descriptor: HidDescriptor });
export const SynthhidDeviceInfoAck = struct('synthhid_device_info_ack', { header: SynthhidMsgHdr, reserved: u8 });
export const SynthhidInputReport = struct('synthhid_input_report', { header: SynthhidMsgHdr, buffer: bytes(1) });

/** The layouts the oracle checks (hid_descriptor through synthhid_device_info's fields). */
export const MOUSE_LAYOUTS = [PipePrtMsg, SynthhidMsgHdr, SynthhidProtocolRequest, SynthhidProtocolResponse, HvInputDevInfo, SynthhidDeviceInfo, SynthhidDeviceInfoAck, SynthhidInputReport];

/** sizeof(struct mousevsc_prt_msg): the pipe header and the largest of request, response and ack. */
export const MOUSEVSC_PRT_MSG_SIZE = 24;
/** Where a SYNTHHID message starts in a pipe message. */
export const PIPE_HEADER = PipePrtMsg.offsets.data;

export const PipeMsgType = { INVALID: 0, DATA: 1, MAXIMUM: 2 } as const;
export const SynthhidMsgType = { PROTOCOL_REQUEST: 0, PROTOCOL_RESPONSE: 1, INITIAL_DEVICE_INFO: 2, INITIAL_DEVICE_INFO_ACK: 3, INPUT_REPORT: 4, MAX: 5 } as const;

export const synthhidVersion = (major: number, minor: number): number => ((major << 16) | minor) >>> 0;
/** SYNTHHID_INPUT_VERSION 2.0. */
export const SYNTHHID_INPUT_VERSION = synthhidVersion(2, 0);
export const formatHidVersion = (v: number): string => `${v >>> 16}.${v & 0xffff}`;
/** SYNTHHID_MAX_INPUT_REPORT_SIZE: the host sends reports no longer than this. */
export const SYNTHHID_MAX_INPUT_REPORT_SIZE = 16;
/** HID_MAX_BUFFER_SIZE (hid.h): mousevsc's input_buf; a longer report is cut to it. */
export const HID_MAX_BUFFER_SIZE = 16384;
/** HID_DT_HID and HID_DT_REPORT (hid.h). */
export const HID_DT_HID = 0x21;
export const HID_DT_REPORT = 0x22;
/** The largest message the host takes from the guest: anything the guest sends is smaller. */
export const MOUSE_GUEST_MESSAGE_MAX = 256;

/** A pipe message around a SYNTHHID message of `type` with `body` after its header. */
export function encodeSynthhid(type: number, body: Uint8Array, opts: { trailing?: number } = {}): Uint8Array {
  const out = new Uint8Array(PIPE_HEADER + SynthhidMsgHdr.size + body.length + (opts.trailing ?? 0));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, PipeMsgType.DATA, true);
  dv.setUint32(4, SynthhidMsgHdr.size + body.length, true);
  dv.setUint32(PIPE_HEADER, type, true);
  dv.setUint32(PIPE_HEADER + 4, body.length, true);
  out.set(body, PIPE_HEADER + SynthhidMsgHdr.size);
  return out;
}

/** What mousevsc sends for PROTOCOL_REQUEST: 23 bytes (header.size = sizeof(unsigned int)). */
export function encodeProtocolRequest(version: number): Uint8Array {
  const out = new Uint8Array(PipePrtMsg.size - 1 + SynthhidProtocolRequest.size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, PipeMsgType.DATA, true);
  dv.setUint32(4, SynthhidProtocolRequest.size, true);
  SynthhidProtocolRequest.encode({ header: { type: SynthhidMsgType.PROTOCOL_REQUEST, size: 4 }, version_requested: version >>> 0 }, out, PIPE_HEADER);
  return out;
}

/** What mousevsc sends for INITIAL_DEVICE_INFO_ACK: 20 bytes (header.size 1). */
export function encodeDeviceInfoAck(): Uint8Array {
  const out = new Uint8Array(PipePrtMsg.size - 1 + SynthhidDeviceInfoAck.size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, PipeMsgType.DATA, true);
  dv.setUint32(4, SynthhidDeviceInfoAck.size, true);
  SynthhidDeviceInfoAck.encode({ header: { type: SynthhidMsgType.INITIAL_DEVICE_INFO_ACK, size: 1 }, reserved: 0 }, out, PIPE_HEADER);
  return out;
}

export function encodeProtocolResponse(version: number, approved: boolean): Uint8Array {
  const body = new Uint8Array(5);
  new DataView(body.buffer).setUint32(0, version >>> 0, true);
  body[4] = approved ? 1 : 0;
  return encodeSynthhid(SynthhidMsgType.PROTOCOL_RESPONSE, body);
}

export interface DeviceInfo {
  readonly vendor: number;
  readonly product: number;
  readonly version: number;
  readonly reportDescriptor: Uint8Array;
}

/** INITIAL_DEVICE_INFO: hv_input_dev_info, a 9-byte HID descriptor naming one report descriptor, then that descriptor. */
export function encodeDeviceInfo(info: DeviceInfo): Uint8Array {
  const fixed = HvInputDevInfo.size + HidDescriptor.size;
  const body = new Uint8Array(fixed + info.reportDescriptor.length);
  HvInputDevInfo.encode({ size: HvInputDevInfo.size, vendor: info.vendor, product: info.product, version: info.version, reserved: new Uint8Array(22) }, body, 0);
  HidDescriptor.encode({ bLength: HidDescriptor.size, bDescriptorType: HID_DT_HID, bcdHID: 0x0101, bCountryCode: 0, bNumDescriptors: 1, rpt_desc: { bDescriptorType: HID_DT_REPORT, wDescriptorLength: info.reportDescriptor.length } }, body, HvInputDevInfo.size);
  body.set(info.reportDescriptor, fixed);
  return encodeSynthhid(SynthhidMsgType.INITIAL_DEVICE_INFO, body);
}

export const encodeInputReport = (report: Uint8Array): Uint8Array => encodeSynthhid(SynthhidMsgType.INPUT_REPORT, report);

/** A guest→host message the host understood. */
export type HidGuestMessage = { readonly type: 'protocol-request'; readonly version: number } | { readonly type: 'device-info-ack' };

/** The host's parser of what mousevsc sends; anything else is a WireError naming the field. */
export function parseGuestMessage(p: Uint8Array): HidGuestMessage {
  if (p.length > MOUSE_GUEST_MESSAGE_MAX) throw new WireError('pipe_prt_msg', 'length', `${p.length} bytes is more than the ${MOUSE_GUEST_MESSAGE_MAX} any guest message takes`);
  if (p.length < PIPE_HEADER + SynthhidMsgHdr.size) throw new WireError('pipe_prt_msg', 'length', `${p.length} bytes is too short for a pipe and SYNTHHID header`);
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const pipe = { type: dv.getUint32(0, true), size: dv.getUint32(4, true) };
  if (pipe.type !== PipeMsgType.DATA) throw new WireError('pipe_prt_msg', 'type', `${pipe.type} is not PIPE_MESSAGE_DATA`);
  if (pipe.size > p.length - PIPE_HEADER) throw new WireError('pipe_prt_msg', 'size', `${pipe.size} is more than the ${p.length - PIPE_HEADER} bytes that follow`);
  const hdr = SynthhidMsgHdr.decode(p, PIPE_HEADER);
  if (hdr.type === SynthhidMsgType.PROTOCOL_REQUEST) {
    const r = SynthhidProtocolRequest.decode(p, PIPE_HEADER);
    return { type: 'protocol-request', version: r.version_requested };
  }
  if (hdr.type === SynthhidMsgType.INITIAL_DEVICE_INFO_ACK) {
    SynthhidDeviceInfoAck.decode(p, PIPE_HEADER);
    return { type: 'device-info-ack' };
  }
  throw new WireError('synthhid_msg_hdr', 'type', `${hdr.type} is not a message the guest sends`);
}

/** A host→guest message as mousevsc_on_receive reads it. */
export type HidHostMessage =
  | { readonly type: 'protocol-response'; readonly version: number; readonly approved: boolean }
  | { readonly type: 'device-info'; readonly vendor: number; readonly product: number; readonly version: number; readonly hidDescriptor: Uint8Array; readonly reportDescriptor: Uint8Array }
  | { readonly type: 'input-report'; readonly report: Uint8Array }
  | { readonly type: 'ignored' };

/**
 * The guest's parser (mousevsc_on_receive, mousevsc_on_receive_device_info). Linux's checks: a
 * pipe message that is not PIPE_MESSAGE_DATA is ignored; a protocol response whose pipe size
 * would not fit mousevsc_prt_msg is refused (Linux WARNs and drops it); a device info whose HID
 * descriptor has bLength 0 or names a report descriptor of length 0 fails the probe. Beyond
 * Linux, which trusts the host there, every length is checked against the bytes received: a
 * descriptor that claims more bytes than the message holds is refused, never read past.
 */
export function parseHostMessage(p: Uint8Array): HidHostMessage {
  if (p.length < PIPE_HEADER + SynthhidMsgHdr.size) throw new WireError('pipe_prt_msg', 'length', `${p.length} bytes is too short for a pipe and SYNTHHID header`);
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const pipeType = dv.getUint32(0, true);
  const pipeSize = dv.getUint32(4, true);
  if (pipeType !== PipeMsgType.DATA) return { type: 'ignored' };
  const hdr = SynthhidMsgHdr.decode(p, PIPE_HEADER);
  const after = p.length - PIPE_HEADER;
  switch (hdr.type) {
    case SynthhidMsgType.PROTOCOL_RESPONSE: {
      if (pipeSize + PipePrtMsg.size - 1 > MOUSEVSC_PRT_MSG_SIZE) throw new WireError('pipe_prt_msg', 'size', `protocol response of ${pipeSize} bytes does not fit mousevsc_prt_msg`);
      if (after < SynthhidProtocolResponse.size) throw new WireError('synthhid_protocol_response', 'length', `${after} bytes, needs ${SynthhidProtocolResponse.size}`);
      const r = SynthhidProtocolResponse.decode(p, PIPE_HEADER);
      return { type: 'protocol-response', version: r.version_requested, approved: r.approved !== 0 };
    }
    case SynthhidMsgType.INITIAL_DEVICE_INFO: {
      if (after < SynthhidDeviceInfo.size) throw new WireError('synthhid_device_info', 'length', `${after} bytes, needs ${SynthhidDeviceInfo.size}`);
      const info = SynthhidDeviceInfo.decode(p, PIPE_HEADER);
      const descAt = PIPE_HEADER + SynthhidDeviceInfo.offsets.hid_descriptor;
      const bLength = info.hid_descriptor.bLength;
      if (bLength === 0) throw new WireError('hid_descriptor', 'bLength', 'is 0');
      const reportLen = info.hid_descriptor.rpt_desc.wDescriptorLength;
      if (reportLen === 0) throw new WireError('hid_descriptor', 'rpt_desc.wDescriptorLength', 'is 0');
      if (descAt + bLength > p.length) throw new WireError('hid_descriptor', 'bLength', `${bLength} bytes run past the ${p.length - descAt} the message holds`);
      if (descAt + bLength + reportLen > p.length) throw new WireError('hid_descriptor', 'rpt_desc.wDescriptorLength', `${reportLen} bytes run past the ${p.length - descAt - bLength} the message holds after the HID descriptor`);
      const hi = info.hid_dev_info;
      return { type: 'device-info', vendor: hi.vendor, product: hi.product, version: hi.version, hidDescriptor: p.slice(descAt, descAt + bLength), reportDescriptor: p.slice(descAt + bLength, descAt + bLength + reportLen) };
    }
    case SynthhidMsgType.INPUT_REPORT: {
      const at = PIPE_HEADER + SynthhidMsgHdr.size;
      const len = Math.min(hdr.size, HID_MAX_BUFFER_SIZE, p.length - at);
      return { type: 'input-report', report: p.slice(at, at + len) };
    }
    default:
      throw new WireError('synthhid_msg_hdr', 'type', `unsupported hid msg type - type ${hdr.type} len ${hdr.size}`);
  }
}
