// A boot on every release with the default devices: hyperv_fb negotiates the synthvid version its
// VMBus version allows, learns the mode, places the frame buffer in the VMBus MMIO window, and
// fbcon draws the boot log; the host's copy of the screen, after the guest's throttled update,
// is compared pixel by pixel with an image this test renders itself from the same log lines
// (its own renderer, with the glyphs taken straight from the font package).
import { describe, expect, it } from 'vitest';
import type { SynthvidHost } from '../../../src/devices/video/host.js';
import { SynthvidMsgType, SynthvidVersion } from '../../../src/devices/video/wire.js';
import { formatRecord } from '../../../src/guest/klog.js';
import { RELEASE_IDS, type ReleaseId } from '../../../src/hypervisor/release.js';
import { vmbusMmioWindow } from '../../../src/memory/layout.js';
import { Machine } from '../../../src/vm/machine.js';
import { boot, guestFb, reference, screenText } from './machine.js';

const EXPECTED: Record<ReleaseId, { version: number; line: string; mode: [number, number] }> = {
  // VMBus 2.4 and 3.0: Linux asks for 3.2 only, and keeps its 1152x864 default.
  ws2012: { version: SynthvidVersion.WIN8, line: 'major 3, minor 2', mode: [1152, 864] },
  ws2012r2: { version: SynthvidVersion.WIN8, line: 'major 3, minor 2', mode: [1152, 864] },
  // 4.0 and later: 3.5, and the host's default resolution (1024x768).
  ws2016: { version: SynthvidVersion.WIN10, line: 'major 3, minor 5', mode: [1024, 768] },
  ws2019: { version: SynthvidVersion.WIN10, line: 'major 3, minor 5', mode: [1024, 768] },
  ws2022: { version: SynthvidVersion.WIN10, line: 'major 3, minor 5', mode: [1024, 768] },
  ws2025: { version: SynthvidVersion.WIN10, line: 'major 3, minor 5', mode: [1024, 768] },
};

describe('hyperv_fb on every release', () => {
  for (const release of RELEASE_IDS) {
    it(`${release}: version, mode, VRAM in the MMIO window, and the boot log on screen`, () => {
      const { m, video } = boot(release);
      const want = EXPECTED[release];
      expect(video.version).toBe(want.version);
      const log = m.kernel.log.lines().map((l) => l.slice(15));
      expect(log).toContain(`hyperv_fb: Synthvid Version ${want.line}`);
      expect(log).toContain(`hyperv_fb: Screen resolution: ${want.mode[0]}x${want.mode[1]}, Color depth: 32, Frame buffer size: 8388608`);
      expect(log).toContain(`Console: switching to colour frame buffer device ${want.mode[0] / 8}x${want.mode[1] / 16}`);
      expect(video.situation).toEqual({ width: want.mode[0], height: want.mode[1], depth: 32, stride: want.mode[0] * 4, vramOffset: 0 });
      // The frame buffer is the MMIO window's first 1 MiB-aligned 8 MiB; RAM ends below it.
      const w = vmbusMmioWindow(64 << 20)!;
      expect(video.vramGpa).toBe(w.base);
      const fb = guestFb(m);
      expect(fb.mmioGpa).toBe(w.base);
      expect(video.violationCount).toBe(0);
      // hyperv_fb's order: version (and on 3.5 the resolution list), VRAM location, pointer
      // position and its 1x1 shape, the situation; after the host's feature change the pointer and
      // situation again, then dirty rectangles.
      const M = SynthvidMsgType;
      const config = [M.VRAM_LOCATION, M.POINTER_POSITION, M.POINTER_SHAPE, M.SITUATION_UPDATE];
      const start = want.version === SynthvidVersion.WIN10 ? [M.VERSION_REQUEST, M.RESOLUTION_REQUEST] : [M.VERSION_REQUEST];
      expect(video.first.slice(0, start.length + 7)).toEqual([...start, ...config, M.POINTER_POSITION, M.POINTER_SHAPE, M.SITUATION_UPDATE]);
      expect(video.first.slice(start.length + 7).every((t) => t === M.DIRT)).toBe(true);
      expect(video.pointer).toEqual({ visible: true, x: 0, y: 0, shape: { width: 1, height: 1, hotX: 0, hotY: 0 } });
      expect(video.updates).toBeGreaterThan(0);

      const records = m.kernel.log.records.filter((r) => r.level !== 'debug' && !r.annotation).map(formatRecord);
      const [width, height] = want.mode;
      // After the boot log, the shell on tty1 prompts (src/guest/tty.ts).
      const { lines, cursor } = screenText(records, width / 8, height / 16, `root@${m.kernel.options.hostname}:~# `);
      const frame = video.render()!;
      expect([frame.width, frame.height]).toEqual([width, height]);
      const ref = reference(lines, width, height, cursor);
      let differ = 0;
      for (let i = 0; i < ref.length; i++) if (ref[i] !== frame.rgba[i]) differ++;
      expect(differ).toBe(0);
      // The guest's frame buffer in guest memory holds the same pixels (XRGB8888).
      const px = m.partition.memory.read32(w.base + ((cursor.row * 16 + 15) * width + cursor.col * 8) * 4);
      expect(px).toBe(0xaaaaaa);
    });
  }

  it('without room for the MMIO window (RAM under 32 MiB) the probe fails and the boot goes on', () => {
    const m = new Machine({ release: 'ws2022', vps: 1, memory: 16 << 20 });
    m.boot();
    m.runFor(100_000_000);
    expect(m.kernel.stage).toBe('booted');
    const log = m.kernel.log.lines().map((l) => l.slice(15));
    expect(log).toContain('hyperv_fb: Unable to allocate framebuffer memory');
    expect(log).toContain('hyperv_fb: No memory for framebuffer');
    const video = m.devices.find((d) => d.type === 'video') as SynthvidHost;
    expect(video.vramGpa).toBeUndefined();
    expect(video.render()).toBeUndefined();
  });
});
