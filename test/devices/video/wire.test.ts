// The synthvid wire format: constants against the Linux 6.1 oracle (the layouts themselves are
// checked with every other in test/oracle), the framing both sides parse, and the parsers fed
// arbitrary bytes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HVFB_HEIGHT, HVFB_HEIGHT_MIN, HVFB_ONDEMAND_THROTTLE_NS, HVFB_UPDATE_DELAY_NS, HVFB_WIDTH, HVFB_WIDTH_MIN, RING_BUFSIZE } from '../../../src/devices/video/guest.js';
import { guestSynthvidVersions } from '../../../src/devices/video/versions.js';
import * as W from '../../../src/devices/video/wire.js';
import { VmbusVersion } from '../../../src/vmbus/wire/constants.js';
import { itFuzz } from '../../fuzz/fuzz.js';
import { loadOracle } from '../../oracle/oracle.js';

const { oracle } = loadOracle();
const macro = (name: string): number => {
  const m = oracle.macros[name];
  if (!m) throw new Error(`${name} is not in the oracle`);
  return Number(m.value);
};

describe('synthvid constants against the Linux oracle', () => {
  it('message types are synthvid_msg_type', () => {
    const linux = new Map(oracle.enums['synthvid_msg_type']!.values.map((v) => [v.name.replace('SYNTHVID_', ''), Number(v.value)]));
    for (const [k, v] of Object.entries(W.SynthvidMsgType)) expect(v, k).toBe(linux.get(k));
    expect([...linux.keys()].filter((k) => k !== 'MAX').sort()).toEqual(Object.keys(W.SynthvidMsgType).sort());
  });

  it('versions, sizes and limits are the #defines of hyperv_fb.c', () => {
    expect(W.SynthvidVersion.WIN7).toBe(macro('SYNTHVID_VERSION_WIN7'));
    expect(W.SynthvidVersion.WIN8).toBe(macro('SYNTHVID_VERSION_WIN8'));
    expect(W.SynthvidVersion.WIN10).toBe(macro('SYNTHVID_VERSION_WIN10'));
    expect(W.SYNTHVID_DEPTH_WIN8).toBe(macro('SYNTHVID_DEPTH_WIN8'));
    expect(W.SYNTHVID_FB_SIZE_WIN8).toBe(macro('SYNTHVID_FB_SIZE_WIN8'));
    expect(W.SYNTHVID_EDID_BLOCK_SIZE).toBe(macro('SYNTHVID_EDID_BLOCK_SIZE'));
    expect(W.SYNTHVID_MAX_RESOLUTION_COUNT).toBe(macro('SYNTHVID_MAX_RESOLUTION_COUNT'));
    expect([W.CURSOR_MAX_X, W.CURSOR_MAX_Y, W.CURSOR_ARGB_PIXEL_SIZE, W.CURSOR_MAX_SIZE]).toEqual([macro('CURSOR_MAX_X'), macro('CURSOR_MAX_Y'), macro('CURSOR_ARGB_PIXEL_SIZE'), macro('CURSOR_MAX_SIZE')]);
    // CURSOR_COMPLETE is (-1) stored in a u8.
    expect(W.CURSOR_COMPLETE).toBe(macro('CURSOR_COMPLETE') & 0xff);
    expect([HVFB_WIDTH, HVFB_HEIGHT, HVFB_WIDTH_MIN, HVFB_HEIGHT_MIN]).toEqual([macro('HVFB_WIDTH'), macro('HVFB_HEIGHT'), macro('HVFB_WIDTH_MIN'), macro('HVFB_HEIGHT_MIN')]);
    expect(RING_BUFSIZE).toBe(macro('RING_BUFSIZE'));
    // The delays are 12 jiffies at HZ=250 (Debian's kernel): 48 ms.
    expect([HVFB_UPDATE_DELAY_NS, HVFB_ONDEMAND_THROTTLE_NS]).toEqual([macro('HVFB_UPDATE_DELAY') * 4e6, macro('HVFB_ONDEMAND_THROTTLE') * 4e6]);
  });

  it('the guest asks per VMBus version as synthvid_connect_vsp does', () => {
    expect(guestSynthvidVersions(VmbusVersion.WIN8)).toEqual([W.SynthvidVersion.WIN8]);
    expect(guestSynthvidVersions(VmbusVersion.WIN8_1)).toEqual([W.SynthvidVersion.WIN8]);
    expect(guestSynthvidVersions(VmbusVersion.WIN10)).toEqual([W.SynthvidVersion.WIN10, W.SynthvidVersion.WIN8]);
    expect(guestSynthvidVersions(VmbusVersion.WIN10_V5)).toEqual([W.SynthvidVersion.WIN10, W.SynthvidVersion.WIN8]);
    for (const v of [VmbusVersion.WIN10_V4_1, VmbusVersion.WIN10_V5_1, VmbusVersion.WIN10_V5_2, VmbusVersion.WIN10_V5_3]) expect(guestSynthvidVersions(v)).toEqual([W.SynthvidVersion.WIN10]);
  });
});

describe('synthvid framing', () => {
  it('a message is a DATA pipe header, then a synthvid header sized for itself and the payload', () => {
    const m = W.encodeMessage(W.SynthvidMsgType.VERSION_REQUEST, W.SynthvidVersionReq.encode({ version: W.SynthvidVersion.WIN10 }));
    // pipe_hdr {1, 12}, vid_hdr {1, 12}, version 0x00050003: what Linux's synthvid_send puts on the ring.
    expect([...m]).toEqual([1, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 12, 0, 0, 0, 3, 0, 5, 0]);
    const p = W.parseMessage(m);
    expect(p.type).toBe(W.SynthvidMsgType.VERSION_REQUEST);
    expect(W.payloadOf(W.SynthvidVersionReq, p.payload).version).toBe(W.SynthvidVersion.WIN10);
  });

  it('refuses what is not a whole DATA message, naming the field', () => {
    const ok = W.encodeMessage(W.SynthvidMsgType.DIRT, new Uint8Array(18));
    expect(() => W.parseMessage(ok.subarray(0, 15))).toThrow(/pipe_hdr: needs 16 bytes/);
    const notData = ok.slice();
    notData[0] = 2;
    expect(() => W.parseMessage(notData)).toThrow(/pipe_hdr.type: 2 is not PIPE_MSG_DATA/);
    const tooLong = ok.slice();
    tooLong[12] = 200;
    expect(() => W.parseMessage(tooLong)).toThrow(/vid_hdr.size: 200 overruns/);
    const tooShort = ok.slice();
    tooShort[12] = 7;
    expect(() => W.parseMessage(tooShort)).toThrow(/vid_hdr.size: 7 is less than/);
    expect(() => W.parseMessage(new Uint8Array(W.MAX_VMBUS_PKT_SIZE + 1))).toThrow(/MAX_VMBUS_PKT_SIZE/);
  });

  it('DIRT and situation counts must fit the payload; rectangles read signed', () => {
    const dirt = W.SynthvidDirt.encode({ video_output: 0, dirt_count: 1, rect: [{ x1: 0xffffffff, y1: 0, x2: 10, y2: 0x80000000 }] });
    expect(W.parseDirt(dirt).rects).toEqual([{ x1: -1, y1: 0, x2: 10, y2: -0x80000000 }]);
    dirt[1] = 2;
    expect(() => W.parseDirt(dirt)).toThrow(/dirt_count: 2 rectangles need 34 bytes, have 18/);
    const situ = W.SynthvidSituationUpdate.encode({ user_ctx: 5n, video_output_count: 3, video_output: [{ active: 1, vram_offset: 0, depth_bits: 32, width_pixels: 1, height_pixels: 1, pitch_bytes: 4 }] });
    expect(() => W.parseSituation(situ)).toThrow(/video_output_count: 3 outputs need 63 bytes, have 27/);
  });
});

describe('synthvid parsers on arbitrary bytes', () => {
  const typed = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      if (!(e instanceof W.SynthvidError)) throw e;
    }
  };
  itFuzz('parseMessage refuses with a SynthvidError or returns a payload inside the packet', 'synthvid-message', () =>
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(0xffff), fc.nat(64), (tail, type, size) => {
      const b = new Uint8Array(16 + tail.length);
      b.set(W.PipeMsgHdr.encode({ type: 1, size }), 0);
      b.set(W.SynthvidMsgHdr.encode({ type, size }), 8);
      b.set(tail, 16);
      typed(() => {
        const m = W.parseMessage(b);
        expect(m.payload.byteOffset + m.payload.length).toBeLessThanOrEqual(b.byteOffset + b.length);
      });
      typed(() => W.parseMessage(tail));
    }),
    300,
  );
  itFuzz('parseDirt and parseSituation never read past the payload', 'synthvid-payloads', () =>
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      typed(() => W.parseDirt(b));
      typed(() => W.parseSituation(b));
      for (const s of [W.SynthvidVersionResp, W.SynthvidSupportedResolutionResp, W.SynthvidVramLocation, W.SynthvidPointerShape, W.SynthvidFeatureChange]) typed(() => W.payloadOf(s, b));
    }),
    300,
  );
});
