// hyperv_fb, Linux 6.1's driver for the synthetic video device (drivers/video/fbdev/hyperv_fb.c):
// it opens the channel with 256 KiB rings, negotiates the synthvid version its VMBus version
// allows, asks a 3.5 host for its resolutions, maps its frame buffer from the VMBus MMIO window,
// tells the host where it is (VRAM location, waits for the ack), sends the pointer and the
// situation, then registers the frame buffer. The console draws into a shadow copy (deferred I/O);
// the update work, at most every HVFB_ONDEMAND_THROTTLE, copies the damaged lines into the MMIO
// frame buffer and sends them as one dirty rectangle.
import type { GuestChannel } from '../../vmbus/client/channel.js';
import type { VmbusClient, VmbusDriver } from '../../vmbus/client/client.js';
import { VmbusError } from '../../vmbus/client/errors.js';
import type { ClientTransport } from '../../vmbus/client/transport.js';
import { PacketType } from '../../vmbus/wire/constants.js';
import { DeviceClass } from '../../vmbus/wire/guids.js';
import type { GuestModule, GuestServices } from '../device.js';
import type { Framebuffer, FramebufferMode } from '../framebuffer.js';
import { guestSynthvidVersions } from './versions.js';
import {
  CURSOR_COMPLETE,
  encodeMessage,
  MAX_VMBUS_PKT_SIZE,
  parseMessage,
  payloadOf,
  SynthvidDirt,
  SynthvidError,
  SynthvidFeatureChange,
  SynthvidMsgType as M,
  SynthvidPointerPosition,
  SynthvidPointerShape,
  SynthvidSituationUpdate,
  SynthvidSupportedResolutionReq,
  SynthvidSupportedResolutionResp,
  SynthvidVersion,
  SynthvidVersionReq,
  SynthvidVersionResp,
  SynthvidVramLocation,
  SynthvidVramLocationAck,
  SYNTHVID_DEPTH_WIN8,
  SYNTHVID_FB_SIZE_WIN8,
  SYNTHVID_MAX_RESOLUTION_COUNT,
  synthvidMajor,
  synthvidMinor,
  synthvidVerGe,
  type SynthvidMessage,
} from './wire.js';

export const HYPERV_FB_NAME = 'hyperv_fb';
/** RING_BUFSIZE, each direction, whatever the page size. */
export const RING_BUFSIZE = 256 * 1024;
/** HZ of Debian's kernel (CONFIG_HZ_250): hyperv_fb's delays are in jiffies. */
const JIFFY_NS = 4_000_000;
/** VSP_TIMEOUT (10 * HZ). */
export const VSP_TIMEOUT_NS = 10 * 250 * JIFFY_NS;
/** HVFB_UPDATE_DELAY and HVFB_ONDEMAND_THROTTLE: HZ / 20 = 12 jiffies. */
export const HVFB_UPDATE_DELAY_NS = 12 * JIFFY_NS;
export const HVFB_ONDEMAND_THROTTLE_NS = 12 * JIFFY_NS;
/** HVFB_WIDTH, HVFB_HEIGHT: the mode without a host list; HVFB_WIDTH_MIN, HVFB_HEIGHT_MIN: the smallest. */
export const HVFB_WIDTH = 1152;
export const HVFB_HEIGHT = 864;
export const HVFB_WIDTH_MIN = 640;
export const HVFB_HEIGHT_MIN = 480;
/** vmbus_allocate_mmio's alignment for the frame buffer. */
const FB_MMIO_ALIGN = 0x100000;
const INT_MAX = 0x7fffffff;

/** One hyperv_fb device: its state as hvfb_par keeps it. */
export class HvfbDevice implements Framebuffer {
  readonly id = HYPERV_FB_NAME;
  synthvidVersion: number | undefined;
  /** screen_width, screen_height: the largest mode (from the host's list on 3.5, else the default). */
  screenWidth = HVFB_WIDTH;
  screenHeight = HVFB_HEIGHT;
  readonly screenDepth = SYNTHVID_DEPTH_WIN8;
  screenFbSize = 0;
  /** mmio_pp: the frame buffer's GPA in the MMIO window. */
  mmioGpa: number | undefined;
  mode: FramebufferMode = { width: HVFB_WIDTH, height: HVFB_HEIGHT, stride: HVFB_WIDTH * 4, bpp: 32 };
  /** dio_vp: the deferred-I/O shadow the console draws into. */
  screen = new Uint8Array(0);
  fbReady = false;
  /** par->update: the host asked for dirty rectangles (FEATURE_CHANGE). */
  update = false;
  /** DIRT messages sent, and host messages dropped as malformed. */
  dirtSent = 0;
  badMessages = 0;
  private initBuf: SynthvidMessage | undefined;
  private dirty = { x1: INT_MAX, y1: INT_MAX, x2: 0, y2: 0 };
  private delayedRefresh = false;
  private readonly modeListeners: (() => void)[] = [];

  constructor(
    readonly channel: GuestChannel,
    private readonly services: GuestServices,
    private readonly t: ClientTransport,
  ) {}

  private log(level: 'err' | 'info', text: string): void {
    this.services.log(level, `${HYPERV_FB_NAME}: ${text}`);
  }

  /** synthvid_send: pipe and synthvid headers, sent in-band. */
  private send(type: number, payload: Uint8Array): boolean {
    const ok = this.channel.isOpen && this.channel.sendInband(encodeMessage(type, payload), 0n);
    if (!ok) this.log('err', 'Unable to send packet via vmbus; error -11');
    return ok;
  }

  /** Sends and waits up to VSP_TIMEOUT for the reply that completes par->wait. */
  private request(type: number, payload: Uint8Array, reply: number): SynthvidMessage | undefined {
    this.initBuf = undefined;
    this.send(type, payload);
    this.t.waitUntil(() => this.initBuf !== undefined, VSP_TIMEOUT_NS);
    const m = this.initBuf as SynthvidMessage | undefined;
    return m?.type === reply ? m : undefined;
  }

  /** synthvid_receive: every packet; bad ones are dropped (counted), as Linux's reader drops non-DATA pipes. */
  onEvent(ch: GuestChannel): void {
    ch.receive((p) => {
      if (p.type !== PacketType.DATA_INBAND) return void this.badMessages++;
      let m: SynthvidMessage;
      try {
        m = parseMessage(p.payload.subarray(0, MAX_VMBUS_PKT_SIZE));
      } catch (e) {
        if (e instanceof SynthvidError) return void this.badMessages++;
        throw e;
      }
      this.recvSub(m);
    });
  }

  private recvSub(m: SynthvidMessage): void {
    if (m.type === M.VERSION_RESPONSE || m.type === M.RESOLUTION_RESPONSE || m.type === M.VRAM_LOCATION_ACK) {
      this.initBuf = m;
      return;
    }
    if (m.type === M.FEATURE_CHANGE) {
      let f;
      try {
        f = payloadOf(SynthvidFeatureChange, m.payload);
      } catch {
        return void this.badMessages++;
      }
      if (this.fbReady) {
        this.sendPtr();
        this.sendSitu();
      }
      this.update = f.is_dirt_needed !== 0;
      if (this.update) this.services.scheduleDelayedWork(HVFB_UPDATE_DELAY_NS, () => this.updateWork());
    }
  }

  /** synthvid_negotiate_ver. */
  private negotiate(version: number): boolean {
    const r = this.request(M.VERSION_REQUEST, SynthvidVersionReq.encode({ version }), M.VERSION_RESPONSE);
    if (!r) {
      this.log('err', 'Time out on waiting version response');
      return false;
    }
    const resp = payloadOf(SynthvidVersionResp, pad(r.payload, SynthvidVersionResp.size));
    if (!resp.is_accepted) return false;
    this.synthvidVersion = version;
    this.log('info', `Synthvid Version major ${synthvidMajor(version)}, minor ${synthvidMinor(version)}`);
    return true;
  }

  /** synthvid_get_supported_resolution; hvkit also refuses a mode larger than the frame buffer. */
  private getSupportedResolution(): boolean {
    const r = this.request(M.RESOLUTION_REQUEST, SynthvidSupportedResolutionReq.encode({ maximum_resolution_count: SYNTHVID_MAX_RESOLUTION_COUNT }), M.RESOLUTION_RESPONSE);
    if (!r) {
      this.log('err', 'Time out on waiting resolution response');
      return false;
    }
    const resp = payloadOf(SynthvidSupportedResolutionResp, pad(r.payload, SynthvidSupportedResolutionResp.size));
    if (resp.resolution_count === 0) {
      this.log('err', 'No supported resolutions');
      return false;
    }
    const index = resp.default_resolution_index;
    if (index >= resp.resolution_count || index >= SYNTHVID_MAX_RESOLUTION_COUNT) {
      this.log('err', `Invalid resolution index: ${index}`);
      return false;
    }
    const res = resp.supported_resolution[index]!;
    const fbBytes = this.channel.offer.mmioMegabytes * 1024 * 1024;
    if (res.width < HVFB_WIDTH_MIN || res.height < HVFB_HEIGHT_MIN || res.width * res.height * 4 > fbBytes) {
      this.log('err', `Invalid resolution ${res.width}x${res.height}`);
      return false;
    }
    this.screenWidth = res.width;
    this.screenHeight = res.height;
    return true;
  }

  /** synthvid_connect_vsp: open, negotiate, learn the mode. Returns an errno or undefined. */
  connect(): string | undefined {
    this.channel.open({ sendRingBytes: RING_BUFSIZE, recvRingBytes: RING_BUFSIZE, maxPacketSize: MAX_VMBUS_PKT_SIZE, onEvent: (c) => this.onEvent(c) });
    let ok = false;
    for (const v of guestSynthvidVersions(this.channel.vmbusVersion)) if ((ok = this.negotiate(v))) break;
    if (!ok) {
      this.log('err', 'Synthetic video device version not accepted');
      this.channel.close();
      return 'ENODEV';
    }
    if (synthvidVerGe(this.synthvidVersion!, SynthvidVersion.WIN10) && !this.getSupportedResolution()) {
      this.log('info', 'Failed to get supported resolution from host, use default');
    }
    this.screenFbSize = this.channel.offer.mmioMegabytes * 1024 * 1024;
    return undefined;
  }

  /** hvfb_getmem: the frame buffer from the MMIO window, the shadow from kernel memory. */
  getmem(): boolean {
    const dioSize = (this.screenWidth * this.screenHeight * this.screenDepth) / 8;
    // A WIN8 host holds at most SYNTHVID_FB_SIZE_WIN8 (hvfb_get_option's check).
    const limit = this.synthvidVersion === SynthvidVersion.WIN8 ? Math.min(SYNTHVID_FB_SIZE_WIN8, this.screenFbSize) : this.screenFbSize;
    const gpa = dioSize <= limit ? this.t.allocateMmio?.(this.screenFbSize, FB_MMIO_ALIGN) : undefined;
    if (gpa === undefined) {
      this.log('err', 'Unable to allocate framebuffer memory');
      return false;
    }
    this.mmioGpa = gpa;
    this.screen = new Uint8Array(dioSize);
    return true;
  }

  /** synthvid_send_config: VRAM location, wait for its ack, then pointer and situation. */
  sendConfig(): boolean {
    const gpa = BigInt(this.mmioGpa!);
    const r = this.request(M.VRAM_LOCATION, SynthvidVramLocation.encode({ user_ctx: gpa, is_vram_gpa_specified: 1, vram_gpa: gpa }), M.VRAM_LOCATION_ACK);
    if (!r) {
      this.log('err', 'Time out on waiting vram location ack');
      return false;
    }
    if (payloadOf(SynthvidVramLocationAck, pad(r.payload, SynthvidVramLocationAck.size)).user_ctx !== gpa) {
      this.log('err', 'Unable to set VRAM location');
      return false;
    }
    this.sendPtr();
    this.sendSitu();
    return true;
  }

  /** synthvid_send_ptr: a visible pointer at 0,0, then a 1x1 ARGB shape (Linux's way of hiding it). */
  private sendPtr(): void {
    this.send(M.POINTER_POSITION, SynthvidPointerPosition.encode({ is_visible: 1, video_output: 0, image_x: 0, image_y: 0 }));
    this.send(M.POINTER_SHAPE, SynthvidPointerShape.encode({ part_idx: CURSOR_COMPLETE, is_argb: 1, width: 1, height: 1, hot_x: 0, hot_y: 0, data: new Uint8Array([0, 1, 1, 1]) }));
  }

  /** synthvid_send_situ: one active output at offset 0 in the current mode. */
  private sendSitu(): void {
    const m = this.mode;
    this.send(
      M.SITUATION_UPDATE,
      SynthvidSituationUpdate.encode({ user_ctx: 0n, video_output_count: 1, video_output: [{ active: 1, vram_offset: 0, depth_bits: m.bpp, width_pixels: m.width, height_pixels: m.height, pitch_bytes: m.stride }] }),
    );
  }

  /** The probe's set-up of fb_info once the memory is there. */
  initMode(): void {
    this.mode = { width: this.screenWidth, height: this.screenHeight, stride: (this.screenWidth * this.screenDepth) / 8, bpp: this.screenDepth };
  }

  // --- The fb_info side (Framebuffer) ---------------------------------------------------------

  /** hvfb_ops_damage_area → hvfb_ondemand_refresh_throttle: merge, and schedule the work once. */
  damage(x: number, y: number, width: number, height: number): void {
    const d = this.dirty;
    d.x1 = Math.min(d.x1, x);
    d.y1 = Math.min(d.y1, y);
    d.x2 = Math.max(d.x2, x + width);
    d.y2 = Math.max(d.y2, y + height);
    if (!this.delayedRefresh) {
      this.delayedRefresh = true;
      this.services.scheduleDelayedWork(HVFB_ONDEMAND_THROTTLE_NS, () => this.updateWork());
    }
  }

  /** hvfb_update_work: copy the dirty lines into the MMIO frame buffer, then tell the host. */
  updateWork(): void {
    this.delayedRefresh = false;
    const { x1, y1, x2, y2 } = this.dirty;
    this.dirty = { x1: INT_MAX, y1: INT_MAX, x2: 0, y2: 0 };
    const m = this.mode;
    if (x1 > m.width || x2 > m.width || y1 > m.height || y2 > m.height || x2 <= x1) return;
    if (this.mmioGpa !== undefined && this.channel.isOpen) {
      const mem = this.t.memory.bytes;
      if (x1 === 0 && x2 * 4 === m.stride) {
        // Whole lines with no gap between them: one copy.
        mem.set(this.screen.subarray(y1 * m.stride, y2 * m.stride), this.mmioGpa + y1 * m.stride);
      } else {
        for (let j = y1; j < y2; j++) {
          const off = j * m.stride + x1 * 4;
          mem.set(this.screen.subarray(off, off + (x2 - x1) * 4), this.mmioGpa + off);
        }
      }
    }
    if (this.fbReady && this.update) this.synthvidUpdate(x1, y1, x2, y2);
  }

  /** synthvid_update: one rectangle, clamped to the mode as Linux clamps it. */
  synthvidUpdate(x1: number, y1: number, x2: number, y2: number): void {
    const m = this.mode;
    if (x2 === INT_MAX) x2 = m.width;
    if (y2 === INT_MAX) y2 = m.height;
    const rect = { x1: x1 > x2 ? 0 : x1, y1: y1 > y2 ? 0 : y1, x2: x2 < x1 || x2 > m.width ? m.width : x2, y2: y2 < y1 || y2 > m.height ? m.height : y2 };
    if (this.send(M.DIRT, SynthvidDirt.encode({ video_output: 0, dirt_count: 1, rect: [rect] }))) this.dirtSent++;
  }

  onModeChange(listener: () => void): void {
    this.modeListeners.push(listener);
  }

  /** hvfb_check_var then hvfb_set_par: within 640x480 and the negotiated screen size, at 32 bits. */
  setMode(width: number, height: number): 'EINVAL' | 'ENODEV' | undefined {
    if (!this.fbReady) return 'ENODEV';
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < HVFB_WIDTH_MIN || height < HVFB_HEIGHT_MIN || width > this.screenWidth || height > this.screenHeight) return 'EINVAL';
    // fix.line_length stays that of the largest mode (set once in hvfb_probe).
    this.mode = { ...this.mode, width, height };
    this.sendSitu();
    for (const l of this.modeListeners) l();
    return undefined;
  }
}

/** `b` zero-extended to `n` bytes: Linux reads replies out of a zeroed MAX_VMBUS_PKT_SIZE buffer. */
function pad(b: Uint8Array, n: number): Uint8Array {
  if (b.length >= n) return b;
  const out = new Uint8Array(n);
  out.set(b);
  return out;
}

export class HypervFbDriver implements VmbusDriver {
  readonly name = HYPERV_FB_NAME;
  readonly classIds = [DeviceClass.SYNTHVID];
  readonly devices: HvfbDevice[] = [];

  constructor(
    private readonly services: GuestServices,
    private readonly transport: ClientTransport,
  ) {}

  /** hvfb_probe. */
  probe(ch: GuestChannel): void {
    const dev = new HvfbDevice(ch, this.services, this.transport);
    const log = (text: string) => this.services.log('err', `${HYPERV_FB_NAME}: ${text}`);
    if (dev.connect()) {
      log('Unable to connect to VSP');
      throw new VmbusError('ENODEV', 'hyperv_fb: Unable to connect to VSP');
    }
    this.services.log('info', `${HYPERV_FB_NAME}: Screen resolution: ${dev.screenWidth}x${dev.screenHeight}, Color depth: ${dev.screenDepth}, Frame buffer size: ${dev.screenFbSize}`);
    if (!dev.getmem()) {
      log('No memory for framebuffer');
      ch.close();
      throw new VmbusError('ENOMEM', 'hyperv_fb: No memory for framebuffer');
    }
    dev.initMode();
    if (!dev.sendConfig()) {
      if (dev.mmioGpa !== undefined) this.transport.freeMmio?.(dev.mmioGpa);
      ch.close();
      throw new VmbusError('ENODEV', 'hyperv_fb: configuration not accepted');
    }
    this.devices.push(dev);
    this.services.registerFramebuffer?.(dev);
    dev.fbReady = true;
  }

  remove(ch: GuestChannel): void {
    const i = this.devices.findIndex((d) => d.channel === ch);
    const dev = this.devices[i];
    if (!dev) return;
    dev.update = false;
    dev.fbReady = false;
    this.devices.splice(i, 1);
    ch.close();
    if (dev.mmioGpa !== undefined) this.transport.freeMmio?.(dev.mmioGpa);
  }
}

export interface HypervFbModule extends GuestModule {
  readonly driver: HypervFbDriver | undefined;
}

/** The hyperv_fb module: module_init registers the driver. */
export function hypervFbModule(): HypervFbModule {
  let driver: HypervFbDriver | undefined;
  return {
    name: HYPERV_FB_NAME,
    get driver() {
      return driver;
    },
    init(services: GuestServices, register: (d: VmbusDriver) => void, vmbus?: VmbusClient) {
      if (!vmbus) return;
      driver = new HypervFbDriver(services, vmbus.transport);
      register(driver);
    },
  };
}
