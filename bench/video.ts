// Video benchmarks: screen updates per second through the whole display path of a booted VM, for
// a full-screen change and for one console line (16 pixel rows). One update is: the guest marks
// the area damaged, its update work copies those lines from the console's shadow into the MMIO
// frame buffer and sends a DIRT message, and the host copies the rectangle from guest memory into
// its frame. Each is taken against a baseline measured in
// the same run, a plain copy of the frame: the full-screen path copies it twice (2× is the floor);
// a one-line update moves 1/48 of it, so what it costs beyond that is the path's fixed cost.
import { HVFB_ONDEMAND_THROTTLE_NS, type HvfbDevice, type HypervFbModule } from '../src/devices/video/guest.js';
import type { SynthvidHost } from '../src/devices/video/host.js';
import { Machine } from '../src/vm/machine.js';
import type { Case } from './index.js';

const WIDTH = 1024;
const HEIGHT = 768;
const LINE_ROWS = 16;
const FRAME_BYTES = WIDTH * HEIGHT * 4;
const LINE_BYTES = WIDTH * LINE_ROWS * 4;

interface Rig {
  m: Machine;
  fb: HvfbDevice;
  video: SynthvidHost;
}
let rig: Rig | undefined;

/** A booted WS2022 VM at 1024x768 whose host takes dirty rectangles (built on first use). */
function setup(): Rig {
  if (rig) return rig;
  const m = new Machine({ release: 'ws2022', vps: 1, memory: 64 << 20 });
  m.boot();
  m.runFor(3 * HVFB_ONDEMAND_THROTTLE_NS);
  const fb = (m.kernel.options.modules.find((x) => x.name === 'hyperv_fb') as HypervFbModule).driver!.devices[0]!;
  const video = m.devices.find((d) => d.type === 'video') as SynthvidHost;
  if (!fb.update || video.situation?.width !== WIDTH) throw new Error('video bench: the VM did not come up at 1024x768 with updates on');
  rig = { m, fb, video };
  return rig;
}

/** One update of rows [y, y + rows): damage, the guest's update work, the host's copy. */
function update(r: Rig, y: number, rows: number, n: number): void {
  // Something changed in the shadow (the console would have drawn there).
  r.fb.screen[y * WIDTH * 4] = n;
  r.fb.damage(0, y, WIDTH, rows);
  const seen = r.video.updates;
  r.fb.updateWork();
  // The host reads the ring when the guest's signal reaches it (a little virtual time later).
  if (!r.m.waitUntil(() => r.video.updates > seen, 1_000_000)) throw new Error('video bench: the host saw no update');
}

export function videoCases(): Case[] {
  const frameSrc = new Uint8Array(FRAME_BYTES);
  const frameDst = new Uint8Array(FRAME_BYTES);
  const FRAME_COPY = 'baseline: 3 MiB copy (a 1024x768x32 frame)';
  let n = 0;
  return [
    {
      name: FRAME_COPY,
      baseline: FRAME_COPY,
      batch: 1,
      unit: 'copy',
      bytes: FRAME_BYTES,
      run: () => {
        frameSrc[0] = n++;
        frameDst.set(frameSrc);
      },
    },
    {
      name: 'video: full-screen update (guest to host)',
      baseline: FRAME_COPY,
      batch: 1,
      unit: 'update',
      bytes: FRAME_BYTES,
      run: () => {
        const r = setup();
        update(r, 0, HEIGHT, n++);
      },
    },
    {
      name: 'video: one console line update (dirty rectangle)',
      baseline: FRAME_COPY,
      batch: 1,
      unit: 'update',
      bytes: LINE_BYTES,
      run: () => {
        const r = setup();
        update(r, 24 * LINE_ROWS, LINE_ROWS, n++);
      },
    },
  ];
}
