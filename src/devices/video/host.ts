// The synthetic video VSP: the host half of synthvid (the protocol of Linux's hyperv_fb.c and
// hyperv_drm, seen from the other end). It negotiates the version, lists the resolutions it
// supports, checks that the guest's VRAM lies in the VMBus MMIO window and that each situation
// fits in it, and keeps its own copy of the screen: a dirty rectangle makes it read those pixels
// from guest memory, as a remote display would. `render()` turns that copy into RGBA.
import { inWindow, vmbusMmioWindow, type GpaWindow } from '../../memory/layout.js';
import { BoundedLog } from '../../tlfs/bounded-log.js';
import type { HostChannel } from '../../vmbus/server/channel.js';
import { PacketType } from '../../vmbus/wire/constants.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { HostContext, HostDevice } from '../device.js';
import { HOST_SYNTHVID } from './versions.js';
import {
  CURSOR_MAX_X,
  CURSOR_MAX_Y,
  encodeMessage,
  parseDirt,
  parseMessage,
  parseSituation,
  payloadOf,
  SynthvidError,
  SynthvidFeatureChange,
  SynthvidMsgType as M,
  SynthvidPointerPosition,
  SynthvidPointerShape,
  SynthvidSituationUpdateAck,
  SynthvidSupportedResolutionReq,
  SynthvidSupportedResolutionResp,
  SynthvidVersion,
  SynthvidVersionReq,
  SynthvidVersionResp,
  SynthvidVramLocation,
  SynthvidVramLocationAck,
  SYNTHVID_DEPTH_WIN8,
  SYNTHVID_EDID_BLOCK_SIZE,
  SYNTHVID_MAX_RESOLUTION_COUNT,
  synthvidVerGe,
} from './wire.js';

export interface Resolution {
  readonly width: number;
  readonly height: number;
}

/**
 * What the host lists, smallest first (Hyper-V's Set-VMVideo choices up to 1920x1080, all within
 * the 8 MiB frame buffer at 32 bits). UNVERIFIED: the exact list a real host sends.
 */
export const HOST_RESOLUTIONS: readonly Resolution[] = [
  { width: 640, height: 480 },
  { width: 800, height: 600 },
  { width: 1024, height: 768 },
  { width: 1152, height: 864 },
  { width: 1280, height: 720 },
  { width: 1280, height: 1024 },
  { width: 1600, height: 900 },
  { width: 1600, height: 1200 },
  { width: 1920, height: 1080 },
];
/** Hyper-V's default video mode (Set-VMVideo's 1024x768). */
export const DEFAULT_RESOLUTION: Resolution = { width: 1024, height: 768 };

/** The frame buffer the synthvid offer asks the guest to map (offer.mmio_megabytes). UNVERIFIED: Hyper-V's value. */
export const SYNTHVID_MMIO_MEGABYTES = 8;

export interface VideoOptions {
  /** The resolution the host reports as default (WIN10 guests take it at boot); one of HOST_RESOLUTIONS. */
  resolution?: Resolution;
}

/** The guest's current mode as its last accepted situation update gave it. */
export interface Situation {
  readonly width: number;
  readonly height: number;
  readonly depth: number;
  readonly stride: number;
  readonly vramOffset: number;
}

/** A rendered screen: RGBA, 4 bytes a pixel, `width * 4` bytes a line. */
export interface RenderedFrame {
  readonly width: number;
  readonly height: number;
  readonly rgba: Uint8Array;
}

/** A rectangle of the screen, [x1, x2) × [y1, y2). */
export interface ScreenRect {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** Damaged rectangles a viewer keeps apart before it takes their bounding box instead. */
const MAX_DAMAGE_RECTS = 16;

/**
 * What changed in the host's copy of the screen since a viewer last drew it: the rectangles the
 * host copied from VRAM (dirty rectangles, or the whole screen at a situation), so that the
 * viewer redraws those and not the whole frame. Made by SynthvidHost.watch().
 */
export class ScreenDamage {
  private rects: ScreenRect[] = [];
  /** Everything: a new viewer, or a screen whose mode changed, has all of it to draw. */
  private all = true;

  /** @internal */
  add(r: ScreenRect): void {
    if (this.all) return;
    if (this.rects.length < MAX_DAMAGE_RECTS) {
      this.rects.push({ ...r });
      return;
    }
    // Too many to keep apart: one rectangle around them all.
    const b = this.rects.reduce((a, c) => ({ x1: Math.min(a.x1, c.x1), y1: Math.min(a.y1, c.y1), x2: Math.max(a.x2, c.x2), y2: Math.max(a.y2, c.y2) }), r);
    this.rects = [b];
  }

  /** @internal */
  addAll(): void {
    this.all = true;
    this.rects = [];
  }

  /** Whether something is left to draw. */
  get pending(): boolean {
    return this.all || this.rects.length > 0;
  }

  /** The damage since the last take, clipped to `width` × `height` ('all': draw the whole screen); it is then cleared. */
  take(width: number, height: number): ScreenRect[] | 'all' {
    const all = this.all;
    const rects = this.rects;
    this.all = false;
    this.rects = [];
    if (all) return 'all';
    return rects.map((r) => ({ x1: Math.min(r.x1, width), y1: Math.min(r.y1, height), x2: Math.min(r.x2, width), y2: Math.min(r.y2, height) })).filter((r) => r.x2 > r.x1 && r.y2 > r.y1);
  }
}

/** Most violations kept for inspection (the count goes on). */
const MAX_KEPT_VIOLATIONS = 64;
/** Message types kept in order from the open, to show a guest's sequence. */
const FIRST_KEPT = 32;

export class SynthvidHost implements HostDevice {
  readonly type = 'video';
  readonly channel: HostChannel;
  /** The version agreed, once the guest asked for one the host accepts. */
  version: number | undefined;
  /** The VRAM's guest physical address, once accepted. */
  vramGpa: number | undefined;
  situation: Situation | undefined;
  pointer = { visible: false, x: 0, y: 0, shape: undefined as { width: number; height: number; hotX: number; hotY: number } | undefined };
  /** DIRT messages taken, rectangles applied (after clipping), and those refused or clipped away. */
  updates = 0;
  rects = 0;
  rectsDropped = 0;
  /** The rectangles of the last DIRT as the host applied them (clipped to the screen). */
  lastDirt: { x1: number; y1: number; x2: number; y2: number }[] = [];
  /** Messages received by type (a count per type seen). */
  readonly received = new Map<number, number>();
  /** The types of the first messages since the channel opened, in order (at most FIRST_KEPT). */
  readonly first: number[] = [];
  readonly violations: BoundedLog<string> = new BoundedLog(MAX_KEPT_VIOLATIONS);
  readonly window: GpaWindow | undefined;
  readonly vramBytes = SYNTHVID_MMIO_MEGABYTES << 20;
  /** The host's copy of the screen, XRGB8888 words, `situation.width` a line. */
  private frame = new Uint32Array(0);
  /** The viewers watch() made: each copy from VRAM is damage to them. */
  private viewers: ScreenDamage[] = [];
  private defaultResolution: Resolution;
  private featureSent = false;

  constructor(
    private readonly ctx: HostContext,
    readonly instanceId: string,
    options: VideoOptions = {},
  ) {
    this.window = vmbusMmioWindow(ctx.server.io.memory.size);
    this.defaultResolution = checkResolution(options.resolution ?? DEFAULT_RESOLUTION);
    this.channel = ctx.server.offer(
      { classId: DeviceClass.SYNTHVID, instanceId, mmioMegabytes: SYNTHVID_MMIO_MEGABYTES },
      {
        open: () => {
          this.reset();
          return 0;
        },
        close: () => this.reset(),
        signal: (ch) => void ch.receive((p) => this.packet(p.type, p.payload)),
      },
    );
  }

  get violationCount(): number {
    return this.violations.total;
  }

  /** The resolution WIN10 guests are told to use (the default entry of the list); takes effect at their next connect. */
  get resolution(): Resolution {
    return this.defaultResolution;
  }

  /** Host-side resolution change (Set-VMVideo): the default the host reports from now on. */
  setResolution(r: Resolution): void {
    this.defaultResolution = checkResolution(r);
  }

  /**
   * A viewer attached (true) or left: FEATURE_CHANGE asks the guest for dirty rectangles, its
   * pointer and its situation, or to stop sending them.
   */
  setViewer(attached: boolean): void {
    this.send(M.FEATURE_CHANGE, SynthvidFeatureChange.encode({ is_dirt_needed: +attached, is_ptr_pos_needed: +attached, is_ptr_shape_needed: +attached, is_situ_needed: +attached }));
  }

  /** The host's copy of the screen as RGBA, or undefined before the guest set a mode. */
  render(): RenderedFrame | undefined {
    const s = this.situation;
    if (!s) return undefined;
    const rgba = new Uint8Array(s.width * s.height * 4);
    this.renderRect(rgba, { x1: 0, y1: 0, x2: s.width, y2: s.height });
    return { width: s.width, height: s.height, rgba };
  }

  /**
   * Converts one rectangle of the host's copy of the screen into `rgba` (RGBA, `situation.width`
   * pixels a line, as render() makes it), leaving the rest of `rgba` as it was: a viewer keeps
   * one buffer and redraws only what its ScreenDamage says changed. False before a mode is set,
   * or when `rgba` is not the screen's size.
   */
  renderRect(rgba: Uint8Array | Uint8ClampedArray, r: ScreenRect): boolean {
    const s = this.situation;
    if (!s || rgba.length !== s.width * s.height * 4) return false;
    const x1 = Math.max(0, r.x1);
    const x2 = Math.min(s.width, r.x2);
    const y2 = Math.min(s.height, r.y2);
    const f = this.frame;
    for (let y = Math.max(0, r.y1); y < y2; y++) {
      const line = y * s.width;
      for (let i = line + x1, o = i * 4; i < line + x2; i++, o += 4) {
        const p = f[i]!;
        rgba[o] = (p >>> 16) & 0xff;
        rgba[o + 1] = (p >>> 8) & 0xff;
        rgba[o + 2] = p & 0xff;
        rgba[o + 3] = 0xff;
      }
    }
    return true;
  }

  /** A viewer's record of what changes in the screen from now on (its first take() is 'all'). */
  watch(): ScreenDamage {
    const d = new ScreenDamage();
    this.viewers.push(d);
    return d;
  }

  /** Stops recording damage for a viewer watch() made. */
  unwatch(d: ScreenDamage): void {
    this.viewers = this.viewers.filter((v) => v !== d);
  }

  private reset(): void {
    this.version = undefined;
    this.vramGpa = undefined;
    this.situation = undefined;
    this.frame = new Uint32Array(0);
    this.featureSent = false;
    this.first.length = 0;
  }

  private violation(what: string): void {
    this.violations.push(what);
    this.ctx.log(`synthvid ${this.instanceId}: ${what}`);
  }

  private send(type: number, payload: Uint8Array): void {
    if (!this.channel.isOpen) return;
    if (!this.channel.sendInband(encodeMessage(type, payload))) this.violation(`ring full: message type ${type} not sent`);
  }

  private packet(type: number, bytes: Uint8Array): void {
    if (type !== PacketType.DATA_INBAND) return this.violation(`packet type ${type} is not in-band data`);
    try {
      const m = parseMessage(bytes);
      this.received.set(m.type, (this.received.get(m.type) ?? 0) + 1);
      if (this.first.length < FIRST_KEPT) this.first.push(m.type);
      this.message(m.type, m.payload);
    } catch (e) {
      if (e instanceof SynthvidError) return this.violation(e.message);
      throw e;
    }
  }

  private message(type: number, payload: Uint8Array): void {
    switch (type) {
      case M.VERSION_REQUEST: {
        const { version } = payloadOf(SynthvidVersionReq, payload);
        const ok = HOST_SYNTHVID[this.ctx.release].accepted.includes(version);
        if (ok) this.version = version;
        this.send(M.VERSION_RESPONSE, SynthvidVersionResp.encode({ version, is_accepted: +ok, max_video_outputs: 1 }));
        return;
      }
      case M.RESOLUTION_REQUEST: {
        const { maximum_resolution_count: max } = payloadOf(SynthvidSupportedResolutionReq, payload);
        if (this.version === undefined || !synthvidVerGe(this.version, SynthvidVersion.WIN10) || !HOST_SYNTHVID[this.ctx.release].resolutionRequest) {
          return this.violation('resolution request before synthvid 3.5 was agreed');
        }
        this.send(M.RESOLUTION_RESPONSE, this.resolutionResponse(max));
        return;
      }
      case M.VRAM_LOCATION: {
        const v = payloadOf(SynthvidVramLocation, payload);
        if (this.version === undefined) return this.violation('VRAM location before a version was agreed');
        if (!v.is_vram_gpa_specified) return this.violation('VRAM location without a GPA');
        const gpa = Number(v.vram_gpa);
        if (v.vram_gpa > BigInt(Number.MAX_SAFE_INTEGER) || gpa % 4096 !== 0 || !inWindow(this.window, gpa, this.vramBytes)) {
          // No ack: the guest's wait for it times out and its probe fails.
          return this.violation(`vram_gpa 0x${v.vram_gpa.toString(16)} is not a page-aligned ${this.vramBytes}-byte range in the VMBus MMIO window`);
        }
        this.vramGpa = gpa;
        this.send(M.VRAM_LOCATION_ACK, SynthvidVramLocationAck.encode({ user_ctx: v.user_ctx }));
        return;
      }
      case M.SITUATION_UPDATE:
        return this.situationUpdate(payload);
      case M.POINTER_POSITION: {
        const p = payloadOf(SynthvidPointerPosition, payload);
        this.pointer.visible = p.is_visible !== 0;
        this.pointer.x = p.image_x | 0;
        this.pointer.y = p.image_y | 0;
        return;
      }
      case M.POINTER_SHAPE: {
        const p = payloadOf(SynthvidPointerShape, payload);
        if (p.width > CURSOR_MAX_X || p.height > CURSOR_MAX_Y) return this.violation(`pointer shape ${p.width}x${p.height} is larger than ${CURSOR_MAX_X}x${CURSOR_MAX_Y}`);
        const needed = SynthvidPointerShape.size - 4 + (p.is_argb ? p.width * p.height * 4 : 0);
        if (payload.length < needed) return this.violation(`pointer shape ${p.width}x${p.height} needs ${needed} bytes, has ${payload.length}`);
        this.pointer.shape = { width: p.width, height: p.height, hotX: p.hot_x, hotY: p.hot_y };
        return;
      }
      case M.DIRT:
        return this.dirt(payload);
      default:
        return this.violation(`message type ${type} is not one a guest sends`);
    }
  }

  private resolutionResponse(max: number): Uint8Array {
    const list = HOST_RESOLUTIONS.slice(0, Math.min(max, SYNTHVID_MAX_RESOLUTION_COUNT));
    let index = list.findIndex((r) => r.width === this.defaultResolution.width && r.height === this.defaultResolution.height);
    if (index < 0) index = 0;
    const supported = Array.from({ length: SYNTHVID_MAX_RESOLUTION_COUNT }, (_, i) => list[i] ?? { width: 0, height: 0 });
    return SynthvidSupportedResolutionResp.encode({
      edid_block: new Uint8Array(SYNTHVID_EDID_BLOCK_SIZE),
      resolution_count: list.length,
      default_resolution_index: index,
      is_standard: 0,
      supported_resolution: supported,
    });
  }

  private situationUpdate(payload: Uint8Array): void {
    const s = parseSituation(payload);
    const o = s.outputs[0];
    if (this.vramGpa === undefined) return this.violation('situation update before the VRAM location');
    if (!o) return this.violation('situation update with no video output');
    if (s.outputs.length > 1) return this.violation(`situation update for ${s.outputs.length} outputs; the host offers 1`);
    if (o.active) {
      const bpp = o.depth_bits / 8;
      const fits = o.depth_bits === SYNTHVID_DEPTH_WIN8 && o.width_pixels > 0 && o.height_pixels > 0 && o.pitch_bytes >= o.width_pixels * bpp && o.pitch_bytes % 4 === 0 && o.vram_offset % 4 === 0 && o.vram_offset + o.pitch_bytes * (o.height_pixels - 1) + o.width_pixels * bpp <= this.vramBytes;
      if (!fits) {
        return this.violation(`situation ${o.width_pixels}x${o.height_pixels}x${o.depth_bits} pitch ${o.pitch_bytes} at offset ${o.vram_offset} does not fit the ${this.vramBytes}-byte VRAM at 32 bits`);
      }
      const old = this.situation;
      this.situation = { width: o.width_pixels, height: o.height_pixels, depth: o.depth_bits, stride: o.pitch_bytes, vramOffset: o.vram_offset };
      if (!old || old.width !== o.width_pixels || old.height !== o.height_pixels) this.frame = new Uint32Array(o.width_pixels * o.height_pixels);
      // A situation (re)applies the mode: the host takes the whole screen from the VRAM again.
      this.copyRect(0, 0, o.width_pixels, o.height_pixels);
    } else {
      this.situation = undefined;
    }
    this.send(M.SITUATION_UPDATE_ACK, SynthvidSituationUpdateAck.encode({ user_ctx: s.userCtx }));
    // A viewer is attached from the start: after the first situation, ask for dirty rectangles.
    if (!this.featureSent) {
      this.featureSent = true;
      this.setViewer(true);
    }
  }

  /** Copies each rectangle, clipped to the screen, from VRAM into the host's frame. */
  private dirt(payload: Uint8Array): void {
    const d = parseDirt(payload);
    const s = this.situation;
    if (d.videoOutput !== 0) return this.violation(`dirty rectangles for output ${d.videoOutput}; the host offers 1`);
    if (!s || this.vramGpa === undefined) return this.violation('dirty rectangles before a situation');
    this.updates++;
    this.lastDirt = [];
    for (const r of d.rects) {
      const x1 = Math.max(0, r.x1);
      const y1 = Math.max(0, r.y1);
      const x2 = Math.min(s.width, r.x2);
      const y2 = Math.min(s.height, r.y2);
      if (x2 <= x1 || y2 <= y1) {
        this.rectsDropped++;
        continue;
      }
      this.rects++;
      this.lastDirt.push({ x1, y1, x2, y2 });
      this.copyRect(x1, y1, x2, y2);
    }
  }

  /** Copies a rectangle inside the screen from the VRAM in guest memory into the host's frame. */
  private copyRect(x1: number, y1: number, x2: number, y2: number): void {
    const s = this.situation;
    if (!s || this.vramGpa === undefined) return;
    const mem = this.ctx.server.io.memory;
    const base = this.vramGpa + s.vramOffset;
    // The situation check keeps the screen inside the VRAM, and the VRAM check inside the window.
    if (!mem.contains(base, s.stride * (s.height - 1) + s.width * 4)) return this.violation('VRAM is outside guest memory');
    const words = new Uint32Array(mem.buffer, 0, mem.size >>> 2);
    if (x1 === 0 && x2 === s.width && s.stride === s.width * 4) {
      // Whole lines with no gap between them: one copy.
      this.frame.set(words.subarray((base + y1 * s.stride) / 4, (base + y2 * s.stride) / 4), y1 * s.width);
    } else {
      for (let y = y1; y < y2; y++) {
        const src = (base + y * s.stride) / 4 + x1;
        this.frame.set(words.subarray(src, src + (x2 - x1)), y * s.width + x1);
      }
    }
    for (const v of this.viewers) v.add({ x1, y1, x2, y2 });
  }
}

function checkResolution(r: Resolution): Resolution {
  const found = HOST_RESOLUTIONS.find((x) => x.width === r.width && x.height === r.height);
  if (!found) throw new RangeError(`video resolution ${r.width}x${r.height} is not one of ${HOST_RESOLUTIONS.map((x) => `${x.width}x${x.height}`).join(', ')}`);
  return found;
}

export function attachVideo(ctx: HostContext, instanceId: string, options?: VideoOptions): SynthvidHost {
  return new SynthvidHost(ctx, instanceId, options);
}
