// The synthetic keyboard protocol (synth_kbd) between hyperv_keyboard and the host's keyboard
// device: Linux 6.1 drivers/input/serio/hyperv-keyboard.c (struct synth_kbd_*, the IS_* flags,
// SYNTH_KBD_VERSION, PROTOCOL_ACCEPTED, HK_MAXIMUM_MESSAGE_SIZE, XTKBD_*) and Project Mu's
// SynthKeyProtocol.h (HK_VERSION_WIN8 = 1.0). One in-band packet per message, no pipe header.
// Every layout is checked against the oracle (test/oracle/input-constants.test.ts).
import { struct, u16, u32, WireError } from '../../tlfs/struct.js';

export const SynthKbdMsgHdr = struct('synth_kbd_msg_hdr', {
  /** SYNTH_KBD_*: 1 protocol request, 2 response, 3 keystroke, 4 LED indicators. */
  type: u32,
});
export const SynthKbdProtocolRequest = struct('synth_kbd_protocol_request', {
  header: SynthKbdMsgHdr,
  /** major << 16 | minor: Linux asks for 1.0 (0x10000). */
  version_requested: u32,
});
export const SynthKbdProtocolResponse = struct('synth_kbd_protocol_response', {
  header: SynthKbdMsgHdr,
  /** Bit 0 (PROTOCOL_ACCEPTED): the host accepts the version asked for. */
  proto_status: u32,
});
export const SynthKbdKeystroke = struct('synth_kbd_keystroke', {
  header: SynthKbdMsgHdr,
  /** A scancode set 1 make code, or a UTF-16 code unit with IS_UNICODE. */
  make_code: u16,
  reserved0: u16,
  /** IS_UNICODE (bit 0), IS_BREAK (bit 1: a release), IS_E0 (bit 2), IS_E1 (bit 3). */
  info: u32,
});

export const KEYBOARD_LAYOUTS = [SynthKbdMsgHdr, SynthKbdProtocolRequest, SynthKbdProtocolResponse, SynthKbdKeystroke];

/** enum synth_kbd_msg_type. */
export const SynthKbdMsgType = { PROTOCOL_REQUEST: 1, PROTOCOL_RESPONSE: 2, EVENT: 3, LED_INDICATORS: 4 } as const;

/** Keystroke `info` bits (IS_UNICODE, IS_BREAK, IS_E0, IS_E1). */
export const KbdInfo = { UNICODE: 1, BREAK: 2, E0: 4, E1: 8 } as const;

/** proto_status bit 0. */
export const PROTOCOL_ACCEPTED = 1;

export const synthKbdVersion = (major: number, minor: number): number => ((major << 16) | minor) >>> 0;
/** SYNTH_KBD_VERSION: 1.0, the only version Linux asks for (Mu calls it HK_VERSION_WIN8). */
export const SYNTH_KBD_VERSION = synthKbdVersion(1, 0);
export const formatKbdVersion = (v: number): string => `${v >>> 16}.${v & 0xffff}`;

/** HK_MAXIMUM_MESSAGE_SIZE: the largest message the protocol defines; the host refuses longer ones. */
export const HK_MAXIMUM_MESSAGE_SIZE = 256;

/** The prefix bytes and release bit of scancode set 1 that the driver feeds serio. */
export const XTKBD_EMUL0 = 0xe0;
export const XTKBD_EMUL1 = 0xe1;
export const XTKBD_RELEASE = 0x80;

export interface Keystroke {
  /** The set-1 make code (bits 0..6), or a UTF-16 code unit with `unicode`. */
  readonly makeCode: number;
  readonly break: boolean;
  readonly e0: boolean;
  readonly e1: boolean;
  readonly unicode: boolean;
}

export const encodeProtocolRequest = (version: number): Uint8Array =>
  SynthKbdProtocolRequest.encode({ header: { type: SynthKbdMsgType.PROTOCOL_REQUEST }, version_requested: version >>> 0 });

export const encodeProtocolResponse = (accepted: boolean): Uint8Array =>
  SynthKbdProtocolResponse.encode({ header: { type: SynthKbdMsgType.PROTOCOL_RESPONSE }, proto_status: accepted ? PROTOCOL_ACCEPTED : 0 });

export function encodeKeystroke(k: Keystroke): Uint8Array {
  const info = (k.unicode ? KbdInfo.UNICODE : 0) | (k.break ? KbdInfo.BREAK : 0) | (k.e0 ? KbdInfo.E0 : 0) | (k.e1 ? KbdInfo.E1 : 0);
  return SynthKbdKeystroke.encode({ header: { type: SynthKbdMsgType.EVENT }, make_code: k.makeCode & 0xffff, reserved0: 0, info });
}

/** A guest→host message the host understood; anything else is a WireError naming what is wrong. */
export type KbdGuestMessage = { readonly type: 'protocol-request'; readonly version: number };

/** The host's parser of what the guest sends (only PROTOCOL_REQUEST is defined that way). */
export function parseGuestMessage(payload: Uint8Array): KbdGuestMessage {
  if (payload.length > HK_MAXIMUM_MESSAGE_SIZE + 8) throw new WireError('synth_kbd_msg', 'length', `${payload.length} bytes is more than HK_MAXIMUM_MESSAGE_SIZE (${HK_MAXIMUM_MESSAGE_SIZE})`);
  const { type } = SynthKbdMsgHdr.decode(payload);
  if (type !== SynthKbdMsgType.PROTOCOL_REQUEST) throw new WireError('synth_kbd_msg_hdr', 'type', `${type} is not a message the guest sends`);
  return { type: 'protocol-request', version: SynthKbdProtocolRequest.decode(payload).version_requested };
}

/** A host→guest message as hv_kbd_on_receive reads it. */
export type KbdHostMessage =
  | { readonly type: 'protocol-response'; readonly accepted: boolean; readonly status: number }
  | ({ readonly type: 'keystroke' } & Keystroke);

/**
 * The guest's parser (hv_kbd_handle_received_packet, hv_kbd_on_receive): a message must be longer
 * than its header ("Illegal packet"), and long enough for its type ("Illegal protocol response
 * packet", "Illegal keyboard event packet"); an unknown type is "unhandled message type". The
 * error message is the line Linux prints.
 */
export function parseHostMessage(payload: Uint8Array): KbdHostMessage {
  if (payload.length <= SynthKbdMsgHdr.size) throw new WireError('synth_kbd_msg', 'length', `Illegal packet (size: ${payload.length})`);
  const { type } = SynthKbdMsgHdr.decode(payload);
  switch (type) {
    case SynthKbdMsgType.PROTOCOL_RESPONSE: {
      if (payload.length < SynthKbdProtocolResponse.size) throw new WireError('synth_kbd_protocol_response', 'length', `Illegal protocol response packet (len: ${payload.length})`);
      const status = SynthKbdProtocolResponse.decode(payload).proto_status;
      return { type: 'protocol-response', accepted: (status & PROTOCOL_ACCEPTED) !== 0, status };
    }
    case SynthKbdMsgType.EVENT: {
      if (payload.length < SynthKbdKeystroke.size) throw new WireError('synth_kbd_keystroke', 'length', `Illegal keyboard event packet (len: ${payload.length})`);
      const k = SynthKbdKeystroke.decode(payload);
      return { type: 'keystroke', makeCode: k.make_code, break: (k.info & KbdInfo.BREAK) !== 0, e0: (k.info & KbdInfo.E0) !== 0, e1: (k.info & KbdInfo.E1) !== 0, unicode: (k.info & KbdInfo.UNICODE) !== 0 };
    }
    default:
      throw new WireError('synth_kbd_msg_hdr', 'type', `unhandled message type ${type}`);
  }
}
