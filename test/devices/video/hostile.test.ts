// Bad input on both sides, with defined outcomes. A raw guest (no hyperv_fb) sends the VSP what
// Linux never would: the VSP records a violation naming it and refuses, never touching memory
// outside the VRAM. A scripted host sends hyperv_fb what Hyper-V never would: the driver logs
// Linux's line for it and fails its probe or falls back, and the boot goes on. Both sides are
// then fed arbitrary messages.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HVFB_ONDEMAND_THROTTLE_NS, VSP_TIMEOUT_NS } from '../../../src/devices/video/guest.js';
import type { SynthvidHost } from '../../../src/devices/video/host.js';
import * as W from '../../../src/devices/video/wire.js';
import type { ReleaseId } from '../../../src/hypervisor/release.js';
import { vmbusMmioWindow } from '../../../src/memory/layout.js';
import type { GuestChannel } from '../../../src/vmbus/client/channel.js';
import type { HostChannel } from '../../../src/vmbus/server/channel.js';
import { DeviceClass } from '../../../src/vmbus/wire/guids.js';
import { Machine } from '../../../src/vm/machine.js';
import { itFuzz } from '../../fuzz/fuzz.js';

const M = W.SynthvidMsgType;
const MEMORY = 64 << 20;
const WINDOW = vmbusMmioWindow(MEMORY)!;

/** The VSP with a raw guest driver on its channel: what the guest sends is up to the test. */
function rawGuest() {
  const m = new Machine({ release: 'ws2022', vps: 1, memory: MEMORY, devices: [{ type: 'video' }], kernel: { modules: [] } });
  m.boot();
  const received: W.SynthvidMessage[] = [];
  let ch: GuestChannel | undefined;
  m.kernel.vmbus!.registerDriver({
    name: 'raw_synthvid',
    classIds: [DeviceClass.SYNTHVID],
    probe: (c) => {
      ch = c;
      c.open({ sendRingBytes: 64 * 1024, recvRingBytes: 64 * 1024, onEvent: (x) => void x.receive((p) => received.push(W.parseMessage(p.payload))) });
    },
  });
  m.runFor(1_000_000);
  const video = m.devices[0] as SynthvidHost;
  const raw = (bytes: Uint8Array) => {
    ch!.sendInband(bytes);
    m.runFor(1_000_000);
  };
  const send = (type: number, payload: Uint8Array) => raw(W.encodeMessage(type, payload));
  const lastViolation = () => video.violations.items.at(-1);
  return { m, video, received, send, raw, lastViolation };
}

const situation = (o: Partial<W.VideoOutputSituationValue>) =>
  W.SynthvidSituationUpdate.encode({ user_ctx: 7n, video_output_count: 1, video_output: [{ active: 1, vram_offset: 0, depth_bits: 32, width_pixels: 1024, height_pixels: 768, pitch_bytes: 4096, ...o }] });
const vram = (gpa: number) => W.SynthvidVramLocation.encode({ user_ctx: BigInt(gpa), is_vram_gpa_specified: 1, vram_gpa: BigInt(gpa) });
const dirt = (rects: { x1: number; y1: number; x2: number; y2: number }[]) => {
  const out = new Uint8Array(2 + rects.length * W.Rect.size);
  out[1] = rects.length;
  rects.forEach((r, i) => out.set(W.Rect.encode({ x1: r.x1 >>> 0, y1: r.y1 >>> 0, x2: r.x2 >>> 0, y2: r.y2 >>> 0 }), 2 + i * W.Rect.size));
  return out;
};

/** A raw guest that got as far as a version, a VRAM location and a 1024x768 situation. */
function configured() {
  const g = rawGuest();
  g.send(M.VERSION_REQUEST, W.SynthvidVersionReq.encode({ version: W.SynthvidVersion.WIN10 }));
  g.send(M.VRAM_LOCATION, vram(WINDOW.base));
  g.send(M.SITUATION_UPDATE, situation({}));
  return g;
}

describe('the VSP against a hostile guest', () => {
  it('a VRAM location outside the MMIO window is refused without an ack', () => {
    const g = rawGuest();
    g.send(M.VRAM_LOCATION, vram(WINDOW.base));
    expect(g.lastViolation()).toBe('VRAM location before a version was agreed');
    g.send(M.VERSION_REQUEST, W.SynthvidVersionReq.encode({ version: W.SynthvidVersion.WIN10 }));
    expect(W.payloadOf(W.SynthvidVersionResp, g.received.at(-1)!.payload)).toMatchObject({ is_accepted: 1, max_video_outputs: 1 });
    for (const gpa of [0x100000, WINDOW.base - 4096, WINDOW.base + 4096, WINDOW.base + 1, 2 ** 40]) {
      g.send(M.VRAM_LOCATION, vram(gpa));
      expect(g.lastViolation(), `0x${gpa.toString(16)}`).toMatch(/vram_gpa 0x[0-9a-f]+ is not a page-aligned 8388608-byte range in the VMBus MMIO window/);
    }
    expect(g.received.map((r) => r.type)).toEqual([M.VERSION_RESPONSE]);
    expect(g.video.vramGpa).toBeUndefined();
    g.send(M.VRAM_LOCATION, vram(WINDOW.base));
    expect(g.received.at(-1)!.type).toBe(M.VRAM_LOCATION_ACK);
    expect(W.payloadOf(W.SynthvidVramLocationAck, g.received.at(-1)!.payload).user_ctx).toBe(BigInt(WINDOW.base));
  });

  it('a situation whose stride, depth or size does not fit the VRAM is refused; a fitting one is acked', () => {
    const g = rawGuest();
    g.send(M.VERSION_REQUEST, W.SynthvidVersionReq.encode({ version: W.SynthvidVersion.WIN10 }));
    g.send(M.SITUATION_UPDATE, situation({}));
    expect(g.lastViolation()).toBe('situation update before the VRAM location');
    g.send(M.VRAM_LOCATION, vram(WINDOW.base));
    const bad: Partial<W.VideoOutputSituationValue>[] = [
      { width_pixels: 4000, height_pixels: 4000, pitch_bytes: 16000 },
      { depth_bits: 16 },
      { pitch_bytes: 4092 },
      { vram_offset: 8 << 20 },
      { width_pixels: 0 },
      { pitch_bytes: 0xffffffff, height_pixels: 0xffffffff },
    ];
    for (const o of bad) {
      g.send(M.SITUATION_UPDATE, situation(o));
      expect(g.lastViolation(), JSON.stringify(o)).toMatch(/does not fit the 8388608-byte VRAM at 32 bits/);
    }
    expect(g.video.situation).toBeUndefined();
    const none = situation({}).subarray(0, 9);
    none[8] = 0; // video_output_count
    g.send(M.SITUATION_UPDATE, none);
    expect(g.lastViolation()).toBe('situation update with no video output');
    g.send(M.SITUATION_UPDATE, situation({}));
    expect(g.video.situation).toEqual({ width: 1024, height: 768, depth: 32, stride: 4096, vramOffset: 0 });
    const types = g.received.map((r) => r.type);
    expect(types.slice(-2)).toEqual([M.SITUATION_UPDATE_ACK, M.FEATURE_CHANGE]);
    expect(W.payloadOf(W.SynthvidSituationUpdateAck, g.received.at(-2)!.payload).user_ctx).toBe(7n);
  });

  it('dirty rectangles are clipped to the screen; those wholly outside are dropped', () => {
    const g = configured();
    g.m.partition.memory.fill(WINDOW.base, 4096 * 768, 0x11);
    g.send(M.DIRT, dirt([{ x1: -10, y1: -10, x2: 20, y2: 20 }]));
    expect(g.video.lastDirt).toEqual([{ x1: 0, y1: 0, x2: 20, y2: 20 }]);
    let f = g.video.render()!;
    expect([...f.rgba.subarray(0, 4)]).toEqual([0x11, 0x11, 0x11, 255]);
    expect([...f.rgba.subarray(20 * 4, 21 * 4)]).toEqual([0, 0, 0, 255]);
    g.send(M.DIRT, dirt([{ x1: 1000, y1: 700, x2: 5000, y2: 5000 }, { x1: 2000, y1: 2000, x2: 3000, y2: 3000 }, { x1: 50, y1: 50, x2: 10, y2: 10 }, { x1: -0x80000000, y1: 0, x2: -1, y2: 5 }]));
    expect(g.video.lastDirt).toEqual([{ x1: 1000, y1: 700, x2: 1024, y2: 768 }]);
    expect(g.video.rectsDropped).toBe(3);
    f = g.video.render()!;
    expect([...f.rgba.subarray((767 * 1024 + 1023) * 4, (767 * 1024 + 1024) * 4)]).toEqual([0x11, 0x11, 0x11, 255]);
    const short = dirt([{ x1: 0, y1: 0, x2: 1, y2: 1 }]);
    short[1] = 9;
    g.send(M.DIRT, short);
    expect(g.lastViolation()).toMatch(/dirt_count: 9 rectangles need 146 bytes, have 18/);
    const other = dirt([{ x1: 0, y1: 0, x2: 1, y2: 1 }]);
    other[0] = 1;
    g.send(M.DIRT, other);
    expect(g.lastViolation()).toBe('dirty rectangles for output 1; the host offers 1');
  });

  it('an oversized or short pointer shape is refused; Linux\'s 1x1 is kept', () => {
    const g = configured();
    const shape = (w: number, h: number, data = new Uint8Array(4)) => {
      const head = W.SynthvidPointerShape.encode({ part_idx: W.CURSOR_COMPLETE, is_argb: 1, width: w, height: h, hot_x: 0, hot_y: 0, data: data.subarray(0, 4) });
      const out = new Uint8Array(head.length - 4 + data.length);
      out.set(head.subarray(0, head.length - 4));
      out.set(data, head.length - 4);
      return out;
    };
    g.send(M.POINTER_SHAPE, shape(97, 1));
    expect(g.lastViolation()).toBe('pointer shape 97x1 is larger than 96x96');
    g.send(M.POINTER_SHAPE, shape(2, 2));
    expect(g.lastViolation()).toBe('pointer shape 2x2 needs 34 bytes, has 22');
    g.send(M.POINTER_SHAPE, shape(1, 1, new Uint8Array([0, 1, 1, 1])));
    expect(g.video.pointer.shape).toEqual({ width: 1, height: 1, hotX: 0, hotY: 0 });
    g.send(M.POINTER_POSITION, W.SynthvidPointerPosition.encode({ is_visible: 1, video_output: 0, image_x: 0xfffffffe, image_y: 3 }));
    expect(g.video.pointer).toMatchObject({ visible: true, x: -2, y: 3 });
  });

  it('garbage and oversize messages are violations, and the device goes on', () => {
    const g = configured();
    const before = g.video.violationCount;
    g.raw(new Uint8Array([1, 2, 3]));
    expect(g.lastViolation()).toMatch(/pipe_hdr: needs 16 bytes, have 8/);
    const notData = W.encodeMessage(M.DIRT, dirt([]));
    notData[0] = 0;
    g.raw(notData);
    expect(g.lastViolation()).toBe('synthvid pipe_hdr.type: 0 is not PIPE_MSG_DATA');
    g.send(11, new Uint8Array(4));
    expect(g.lastViolation()).toBe('message type 11 is not one a guest sends');
    g.send(M.VERSION_RESPONSE, new Uint8Array(6));
    expect(g.lastViolation()).toBe('message type 2 is not one a guest sends');
    g.send(M.DIRT, new Uint8Array(W.MAX_VMBUS_PKT_SIZE));
    expect(g.lastViolation()).toMatch(/more than MAX_VMBUS_PKT_SIZE 16384/);
    g.send(M.VERSION_REQUEST, new Uint8Array(2));
    expect(g.lastViolation()).toBe('synthvid synthvid_version_req: needs 4 bytes, have 2');
    expect(g.video.violationCount).toBe(before + 6);
    g.send(M.DIRT, dirt([{ x1: 0, y1: 0, x2: 8, y2: 8 }]));
    expect(g.video.lastDirt).toEqual([{ x1: 0, y1: 0, x2: 8, y2: 8 }]);
    expect(g.m.partition.hostFaults.total).toBe(0);
  });

  itFuzz('arbitrary guest messages: the VSP never faults and keeps its state inside the VRAM', 'synthvid-vsp', () =>
    fc.property(fc.array(fc.tuple(fc.constantFrom(1, 3, 5, 7, 8, 10, 13, 0, 99), fc.uint8Array({ maxLength: 80 })), { maxLength: 12 }), (msgs) => {
      const g = configured();
      for (const [type, payload] of msgs) g.send(type, payload);
      expect(g.m.partition.hostFaults.total).toBe(0);
      const s = g.video.situation;
      if (s) expect(s.vramOffset + s.stride * (s.height - 1) + s.width * 4).toBeLessThanOrEqual(g.video.vramBytes);
      if (g.video.vramGpa !== undefined) expect(g.video.vramGpa).toBeGreaterThanOrEqual(WINDOW.base);
    }),
    8,
  );
});

/** A host that answers hyperv_fb as `reply` says; undefined means no answer. */
function scriptedHost(reply: (type: number, payload: Uint8Array) => Uint8Array[] | undefined, release: ReleaseId = 'ws2022') {
  const m = new Machine({ release, vps: 1, memory: MEMORY, devices: [] });
  const seen: number[] = [];
  m.vmbus!.server.offer(
    { classId: DeviceClass.SYNTHVID, instanceId: '11111111-2222-4333-8444-555555555555', mmioMegabytes: 8 },
    {
      signal: (ch: HostChannel) =>
        void ch.receive((p) => {
          const msg = W.parseMessage(p.payload);
          seen.push(msg.type);
          for (const out of reply(msg.type, msg.payload) ?? []) ch.sendInband(out);
        }),
    },
  );
  m.boot();
  m.runFor(VSP_TIMEOUT_NS * 3);
  const log = m.kernel.log.lines().map((l) => l.slice(15));
  return { m, seen, log };
}

const msg = (type: number, payload: Uint8Array) => [W.encodeMessage(type, payload)];
const accept = (version: number) => msg(M.VERSION_RESPONSE, W.SynthvidVersionResp.encode({ version, is_accepted: 1, max_video_outputs: 1 }));
const resolutions = (count: number, index: number, list: { width: number; height: number }[]) =>
  msg(M.RESOLUTION_RESPONSE, W.SynthvidSupportedResolutionResp.encode({ edid_block: new Uint8Array(128), resolution_count: count, default_resolution_index: index, is_standard: 0, supported_resolution: Array.from({ length: 64 }, (_, i) => list[i] ?? { width: 0, height: 0 }) }));

describe('hyperv_fb against a hostile host', () => {
  it('no answer: the version wait times out after VSP_TIMEOUT, the probe fails, the boot goes on', () => {
    const h = scriptedHost(() => undefined);
    expect(h.m.kernel.stage).toBe('booted');
    expect(h.log).toContain('hyperv_fb: Time out on waiting version response');
    expect(h.log).toContain('hyperv_fb: Synthetic video device version not accepted');
    expect(h.log).toContain('hyperv_fb: Unable to connect to VSP');
    expect(h.m.kernel.services.fbcon).toBeUndefined();
  });

  it('on VMBus 4.0 (2016) a refused 3.5 falls back to 3.2, as synthvid_connect_vsp does; on 5.2 (2019) it does not', () => {
    for (const release of ['ws2016'] as const) {
      const h = scriptedHost((t, p) => {
        if (t !== M.VERSION_REQUEST) return undefined;
        const version = W.payloadOf(W.SynthvidVersionReq, p).version;
        return msg(M.VERSION_RESPONSE, W.SynthvidVersionResp.encode({ version, is_accepted: +(version === W.SynthvidVersion.WIN8), max_video_outputs: 1 }));
      }, release);
      expect(h.seen.slice(0, 3), release).toEqual([M.VERSION_REQUEST, M.VERSION_REQUEST, M.VRAM_LOCATION]);
      expect(h.log).toContain('hyperv_fb: Synthvid Version major 3, minor 2');
    }
    const h = scriptedHost((t, p) => (t === M.VERSION_REQUEST ? msg(M.VERSION_RESPONSE, W.SynthvidVersionResp.encode({ version: W.payloadOf(W.SynthvidVersionReq, p).version, is_accepted: 0, max_video_outputs: 1 })) : undefined), 'ws2019');
    expect(h.seen).toEqual([M.VERSION_REQUEST]);
    expect(h.log).toContain('hyperv_fb: Synthetic video device version not accepted');
  });

  it('every version refused', () => {
    const h = scriptedHost((t, p) => (t === M.VERSION_REQUEST ? msg(M.VERSION_RESPONSE, W.SynthvidVersionResp.encode({ version: W.payloadOf(W.SynthvidVersionReq, p).version, is_accepted: 0, max_video_outputs: 1 })) : undefined));
    expect(h.seen).toEqual([M.VERSION_REQUEST]);
    expect(h.log).toContain('hyperv_fb: Synthetic video device version not accepted');
  });

  const upToResolution = (res: Uint8Array[]) => (t: number) => (t === M.VERSION_REQUEST ? accept(W.SynthvidVersion.WIN10) : t === M.RESOLUTION_REQUEST ? res : undefined);
  for (const [what, res, line] of [
    ['no resolutions', resolutions(0, 0, []), 'hyperv_fb: No supported resolutions'],
    ['a default index past the list', resolutions(2, 5, [{ width: 800, height: 600 }, { width: 1024, height: 768 }]), 'hyperv_fb: Invalid resolution index: 5'],
    ['a mode larger than the frame buffer', resolutions(1, 0, [{ width: 4000, height: 4000 }]), 'hyperv_fb: Invalid resolution 4000x4000'],
    ['a truncated response', msg(M.RESOLUTION_RESPONSE, new Uint8Array(3)), 'hyperv_fb: No supported resolutions'],
  ] as const) {
    it(`resolution response with ${what}: Linux's default mode`, () => {
      const h = scriptedHost(upToResolution(res as unknown as Uint8Array[]));
      expect(h.log).toContain(line);
      expect(h.log).toContain('hyperv_fb: Failed to get supported resolution from host, use default');
      expect(h.log).toContain('hyperv_fb: Screen resolution: 1152x864, Color depth: 32, Frame buffer size: 8388608');
    });
  }

  it('a VRAM ack for another address fails the probe and gives the MMIO range back', () => {
    const h = scriptedHost((t) =>
      t === M.VERSION_REQUEST ? accept(W.SynthvidVersion.WIN10) : t === M.RESOLUTION_REQUEST ? resolutions(1, 0, [{ width: 1024, height: 768 }]) : t === M.VRAM_LOCATION ? msg(M.VRAM_LOCATION_ACK, W.SynthvidVramLocationAck.encode({ user_ctx: 5n })) : undefined,
    );
    expect(h.log).toContain('hyperv_fb: Unable to set VRAM location');
    expect(h.m.kernel.mmio.allocate(8 << 20, 1 << 20)).toBe(WINDOW.base);
  });

  itFuzz('arbitrary host replies: the driver never throws and the boot completes', 'synthvid-vsc', () =>
    fc.property(fc.array(fc.tuple(fc.constantFrom(0, 2, 4, 6, 9, 14, 99), fc.uint8Array({ maxLength: 420 })), { minLength: 1, maxLength: 6 }), fc.boolean(), (replies, framed) => {
      let i = 0;
      const h = scriptedHost(() => {
        const r = replies[i++ % replies.length]!;
        return [framed ? W.encodeMessage(r[0], r[1]) : r[1]];
      });
      expect(h.m.kernel.stage).toBe('booted');
      h.m.runFor(2 * HVFB_ONDEMAND_THROTTLE_NS);
    }),
    6,
  );
});
