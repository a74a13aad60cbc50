// The synthetic video protocol (synthvid) as Linux 6.1 speaks it (drivers/video/fbdev/hyperv_fb.c,
// drivers/gpu/drm/hyperv/hyperv_drm_proto.c): every message is a pipe header (type DATA, size of
// what follows) then a synthvid header (type, size of itself and its payload) then one payload.
// Each structure is declared once here; the host and the guest both parse and build through it.
import { array, bytes, struct, u16, u32, u64, u8, WireError, type Infer } from '../../tlfs/struct.js';

/** enum pipe_msg_type (hyperv_fb.c): only DATA carries a synthvid message. */
export const PipeMsgType = { INVALID: 0, DATA: 1 } as const;

/** enum synthvid_msg_type (hyperv_fb.c). 11 and 12 are unused by Linux. */
export const SynthvidMsgType = {
  ERROR: 0,
  VERSION_REQUEST: 1,
  VERSION_RESPONSE: 2,
  VRAM_LOCATION: 3,
  VRAM_LOCATION_ACK: 4,
  SITUATION_UPDATE: 5,
  SITUATION_UPDATE_ACK: 6,
  POINTER_POSITION: 7,
  POINTER_SHAPE: 8,
  FEATURE_CHANGE: 9,
  DIRT: 10,
  RESOLUTION_REQUEST: 13,
  RESOLUTION_RESPONSE: 14,
} as const;
export type SynthvidMsgTypeValue = (typeof SynthvidMsgType)[keyof typeof SynthvidMsgType];

/** SYNTHVID_VERSION(major, minor): minor in the high half (hyperv_fb.c). */
export const synthvidVersion = (major: number, minor: number): number => ((minor << 16) | major) >>> 0;
export const SynthvidVersion = {
  WIN7: synthvidVersion(3, 0),
  WIN8: synthvidVersion(3, 2),
  WIN10: synthvidVersion(3, 5),
} as const;
export const synthvidMajor = (v: number): number => v & 0xffff;
export const synthvidMinor = (v: number): number => (v >>> 16) & 0xffff;
/** synthvid_ver_ge. */
export const synthvidVerGe = (a: number, b: number): boolean => synthvidMajor(a) > synthvidMajor(b) || (synthvidMajor(a) === synthvidMajor(b) && synthvidMinor(a) >= synthvidMinor(b));

/** MAX_VMBUS_PKT_SIZE: the driver's receive buffer; longer packets are not synthvid's. */
export const MAX_VMBUS_PKT_SIZE = 0x4000;
export const SYNTHVID_DEPTH_WIN7 = 16;
export const SYNTHVID_DEPTH_WIN8 = 32;
/** SYNTHVID_FB_SIZE_WIN8: the most a WIN8 host's frame buffer holds. */
export const SYNTHVID_FB_SIZE_WIN8 = 8 * 1024 * 1024;
export const SYNTHVID_EDID_BLOCK_SIZE = 128;
export const SYNTHVID_MAX_RESOLUTION_COUNT = 64;
/** CURSOR_MAX_X, CURSOR_MAX_Y, CURSOR_ARGB_PIXEL_SIZE: the largest pointer image. */
export const CURSOR_MAX_X = 96;
export const CURSOR_MAX_Y = 96;
export const CURSOR_ARGB_PIXEL_SIZE = 4;
export const CURSOR_MAX_SIZE = CURSOR_MAX_X * CURSOR_MAX_Y * CURSOR_ARGB_PIXEL_SIZE;
/** CURSOR_COMPLETE (-1 in a u8): the pointer shape is whole in this one part. */
export const CURSOR_COMPLETE = 0xff;

export const PipeMsgHdr = struct('pipe_msg_hdr', { type: u32, size: u32 });
export const SynthvidMsgHdr = struct('synthvid_msg_hdr', { type: u32, size: u32 });
export const HvdScreenInfo = struct('hvd_screen_info', { width: u16, height: u16 });
export const SynthvidVersionReq = struct('synthvid_version_req', { version: u32 });
export const SynthvidVersionResp = struct('synthvid_version_resp', { version: u32, is_accepted: u8, max_video_outputs: u8 });
export const SynthvidSupportedResolutionReq = struct('synthvid_supported_resolution_req', { maximum_resolution_count: u8 });
export const SynthvidSupportedResolutionResp = struct('synthvid_supported_resolution_resp', {
  edid_block: bytes(SYNTHVID_EDID_BLOCK_SIZE),
  resolution_count: u8,
  default_resolution_index: u8,
  is_standard: u8,
  supported_resolution: array(HvdScreenInfo, SYNTHVID_MAX_RESOLUTION_COUNT),
});
export const SynthvidVramLocation = struct('synthvid_vram_location', { user_ctx: u64, is_vram_gpa_specified: u8, vram_gpa: u64 });
export const SynthvidVramLocationAck = struct('synthvid_vram_location_ack', { user_ctx: u64 });
export const VideoOutputSituation = struct('video_output_situation', { active: u8, vram_offset: u32, depth_bits: u8, width_pixels: u32, height_pixels: u32, pitch_bytes: u32 });
/** Declared with one output, as Linux does; video_output_count says how many follow. */
export const SynthvidSituationUpdate = struct('synthvid_situation_update', { user_ctx: u64, video_output_count: u8, video_output: array(VideoOutputSituation, 1) });
export const SynthvidSituationUpdateAck = struct('synthvid_situation_update_ack', { user_ctx: u64 });
/** image_x and image_y are s32 in Linux: read them with `| 0`. */
export const SynthvidPointerPosition = struct('synthvid_pointer_position', { is_visible: u8, video_output: u8, image_x: u32, image_y: u32 });
/** Declared with 4 bytes of data, as Linux sends it (a 1x1 hidden pointer); a real shape carries more. */
export const SynthvidPointerShape = struct('synthvid_pointer_shape', { part_idx: u8, is_argb: u8, width: u32, height: u32, hot_x: u32, hot_y: u32, data: bytes(4) });
export const SynthvidFeatureChange = struct('synthvid_feature_change', { is_dirt_needed: u8, is_ptr_pos_needed: u8, is_ptr_shape_needed: u8, is_situ_needed: u8 });
/** x2, y2 exclusive; all four are s32 in Linux. */
export const Rect = struct('rect', { x1: u32, y1: u32, x2: u32, y2: u32 });
/** Declared with one rectangle, as Linux sends it; dirt_count says how many follow. */
export const SynthvidDirt = struct('synthvid_dirt', { video_output: u8, dirt_count: u8, rect: array(Rect, 1) });

export const VIDEO_LAYOUTS = [
  PipeMsgHdr,
  SynthvidMsgHdr,
  HvdScreenInfo,
  SynthvidVersionReq,
  SynthvidVersionResp,
  SynthvidSupportedResolutionReq,
  SynthvidSupportedResolutionResp,
  SynthvidVramLocation,
  SynthvidVramLocationAck,
  VideoOutputSituation,
  SynthvidSituationUpdate,
  SynthvidSituationUpdateAck,
  SynthvidPointerPosition,
  SynthvidPointerShape,
  SynthvidFeatureChange,
  Rect,
  SynthvidDirt,
];

/** Bytes of both headers before a payload. */
export const SYNTHVID_HEADERS = PipeMsgHdr.size + SynthvidMsgHdr.size;

/** A synthvid message could not be taken apart: which field, and why. */
export class SynthvidError extends Error {
  override readonly name = 'SynthvidError';
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`synthvid ${field}: ${reason}`);
  }
}

/** A message as a VSC or VSP builds it: its type and the payload after the headers. */
export function encodeMessage(type: number, payload: Uint8Array): Uint8Array {
  const size = SynthvidMsgHdr.size + payload.length;
  const out = new Uint8Array(PipeMsgHdr.size + size);
  // synthvid_send: pipe_hdr.size is the synthvid header's size field, i.e. all that follows it.
  out.set(PipeMsgHdr.encode({ type: PipeMsgType.DATA, size }), 0);
  out.set(SynthvidMsgHdr.encode({ type, size }), PipeMsgHdr.size);
  out.set(payload, SYNTHVID_HEADERS);
  return out;
}

/** A received message: its synthvid type and its payload (the bytes vid_hdr.size covers after the header). */
export interface SynthvidMessage {
  readonly type: number;
  readonly payload: Uint8Array;
}

/**
 * Takes a packet's in-band bytes apart. Refuses what is not a DATA pipe message, a size that
 * overruns the packet or MAX_VMBUS_PKT_SIZE, and a synthvid size smaller than its header.
 */
export function parseMessage(packet: Uint8Array): SynthvidMessage {
  if (packet.length < SYNTHVID_HEADERS) throw new SynthvidError('pipe_hdr', `needs ${SYNTHVID_HEADERS} bytes, have ${packet.length}`);
  if (packet.length > MAX_VMBUS_PKT_SIZE) throw new SynthvidError('packet', `${packet.length} bytes is more than MAX_VMBUS_PKT_SIZE ${MAX_VMBUS_PKT_SIZE}`);
  const pipe = PipeMsgHdr.decode(packet);
  if (pipe.type !== PipeMsgType.DATA) throw new SynthvidError('pipe_hdr.type', `${pipe.type} is not PIPE_MSG_DATA`);
  const vid = SynthvidMsgHdr.decode(packet, PipeMsgHdr.size);
  if (vid.size < SynthvidMsgHdr.size) throw new SynthvidError('vid_hdr.size', `${vid.size} is less than the ${SynthvidMsgHdr.size}-byte header`);
  if (PipeMsgHdr.size + vid.size > packet.length) throw new SynthvidError('vid_hdr.size', `${vid.size} overruns the ${packet.length - PipeMsgHdr.size} bytes after the pipe header`);
  return { type: vid.type, payload: packet.subarray(SYNTHVID_HEADERS, PipeMsgHdr.size + vid.size) };
}

/** Decodes `s` from the payload, refusing one too short for it. */
export function payloadOf<S extends { name: string; size: number; decode(b: Uint8Array, at?: number): unknown }>(s: S, payload: Uint8Array): ReturnType<S['decode']> {
  if (payload.length < s.size) throw new SynthvidError(s.name, `needs ${s.size} bytes, have ${payload.length}`);
  try {
    return s.decode(payload) as ReturnType<S['decode']>;
  } catch (e) {
    if (e instanceof WireError) throw new SynthvidError(s.name, e.message);
    throw e;
  }
}

export type VideoOutputSituationValue = Infer<typeof VideoOutputSituation>;
export type RectValue = Infer<typeof Rect>;

/** The rectangles of a DIRT payload (dirt_count of them), as signed numbers; refuses a count the payload does not hold. */
export function parseDirt(payload: Uint8Array): { videoOutput: number; rects: { x1: number; y1: number; x2: number; y2: number }[] } {
  const head = 2;
  if (payload.length < head) throw new SynthvidError('synthvid_dirt', `needs ${head} bytes, have ${payload.length}`);
  const count = payload[1]!;
  if (head + count * Rect.size > payload.length) throw new SynthvidError('synthvid_dirt.dirt_count', `${count} rectangles need ${head + count * Rect.size} bytes, have ${payload.length}`);
  const rects = [];
  for (let i = 0; i < count; i++) {
    const r = Rect.decode(payload, head + i * Rect.size);
    rects.push({ x1: r.x1 | 0, y1: r.y1 | 0, x2: r.x2 | 0, y2: r.y2 | 0 });
  }
  return { videoOutput: payload[0]!, rects };
}

/** The outputs of a SITUATION_UPDATE payload; refuses a count the payload does not hold. */
export function parseSituation(payload: Uint8Array): { userCtx: bigint; outputs: VideoOutputSituationValue[] } {
  const head = 9;
  if (payload.length < head) throw new SynthvidError('synthvid_situation_update', `needs ${head} bytes, have ${payload.length}`);
  const s = SynthvidSituationUpdate.decode(concatPad(payload, SynthvidSituationUpdate.size));
  const count = s.video_output_count;
  if (head + count * VideoOutputSituation.size > payload.length) {
    throw new SynthvidError('synthvid_situation_update.video_output_count', `${count} outputs need ${head + count * VideoOutputSituation.size} bytes, have ${payload.length}`);
  }
  const outputs = [];
  for (let i = 0; i < count; i++) outputs.push(VideoOutputSituation.decode(payload, head + i * VideoOutputSituation.size));
  return { userCtx: s.user_ctx, outputs };
}

/** `b` zero-extended to at least `n` bytes (for decoding a struct whose trailing array may be absent). */
function concatPad(b: Uint8Array, n: number): Uint8Array {
  if (b.length >= n) return b;
  const out = new Uint8Array(n);
  out.set(b);
  return out;
}
