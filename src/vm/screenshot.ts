// Screenshots: the host's copy of the guest's screen (the synthvid VSP's frame, rendered to RGBA)
// as a PNG file. PNG encoding (pngjs) stays out of the platform-neutral core.
import { PNG } from 'pngjs';
import type { HostDevice } from '../devices/device.js';
import { SynthvidHost, type RenderedFrame } from '../devices/video/host.js';
import { HVFB_ONDEMAND_THROTTLE_NS } from '../devices/video/guest.js';

/**
 * Virtual time to let pass before a screenshot so that what the guest drew last reaches the host:
 * hyperv_fb sends its damage at most every HVFB_ONDEMAND_THROTTLE (48 ms); twice that is enough.
 */
export const SCREEN_SETTLE_NS = 2 * HVFB_ONDEMAND_THROTTLE_NS;

/** The machine's (first) synthetic video back end, if it has one. */
export function videoHost(devices: readonly HostDevice[]): SynthvidHost | undefined {
  return devices.find((d): d is SynthvidHost => d instanceof SynthvidHost);
}

/** A rendered frame as PNG bytes (8-bit RGBA, no interlace). */
export function encodePng(frame: RenderedFrame): Uint8Array {
  const png = new PNG({ width: frame.width, height: frame.height });
  png.data = Buffer.from(frame.rgba.buffer, frame.rgba.byteOffset, frame.rgba.byteLength);
  return new Uint8Array(PNG.sync.write(png));
}
