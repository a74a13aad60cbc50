// The virtual switch's forwarding as ports see it, with the per-port memory of the last source
// and destination it keeps for streams: learning, a MAC that moves to another port, a full
// table, a port that goes away. Each case checks which ports got which frames.
import { describe, expect, it } from 'vitest';
import { writeEth } from '../../../src/devices/network/ether.js';
import { VirtualSwitch } from '../../../src/devices/network/switch.js';
import { mac } from './rig.js';

function rig(options: { maxMacs?: number } = {}) {
  const sw = new VirtualSwitch('t', options);
  const got = new Map<string, number[]>();
  const port = (name: string) => {
    got.set(name, []);
    return sw.connect({ name, mac: new Uint8Array(6), deliver: (f) => (got.get(name)!.push(f[14]!), true) });
  };
  const frame = (to: number, from: number, tag: number) => {
    const f = new Uint8Array(60);
    writeEth(f, mac(to), mac(from), 0x88b5);
    f[14] = tag;
    return f;
  };
  return { sw, got, port, frame };
}

describe('VirtualSwitch', () => {
  it('a stream between two ports goes only to its destination; when the destination MAC moves to another port, frames follow it', () => {
    const { sw, got, port, frame } = rig();
    const a = port('a');
    const b = port('b');
    const c = port('c');
    b.transmit(frame(1, 2, 0)); // b learnt as mac 2, flooded
    for (let i = 1; i <= 3; i++) a.transmit(frame(2, 1, i));
    expect(got.get('b')).toEqual([1, 2, 3]);
    expect(got.get('c')).toEqual([0]);
    c.transmit(frame(1, 2, 9)); // mac 2 now behind c
    a.transmit(frame(2, 1, 4));
    expect(got.get('c')).toEqual([0, 4]);
    expect(got.get('b')).toEqual([1, 2, 3]);
    expect(sw.stats.flooded).toBe(1);
  });

  it('a full table: every frame from an address it cannot learn is counted, and frames to it are flooded', () => {
    const { sw, got, port, frame } = rig({ maxMacs: 1 });
    const a = port('a');
    port('b');
    a.transmit(frame(3, 1, 1));
    a.transmit(frame(3, 4, 2));
    a.transmit(frame(3, 4, 3));
    expect(sw.stats.unlearned).toBe(2);
    expect(got.get('b')).toEqual([1, 2, 3]);
  });

  it('a port that goes away: frames to its MAC are flooded again, none reach it', () => {
    const { sw, got, port, frame } = rig();
    const a = port('a');
    const b = port('b');
    port('c');
    b.transmit(frame(1, 2, 0));
    a.transmit(frame(2, 1, 1));
    b.close();
    a.transmit(frame(2, 1, 2));
    expect(got.get('b')).toEqual([1]);
    expect(got.get('c')).toEqual([0, 2]);
    expect(sw.learned).toBe(1);
  });
});

describe('frames as ranges of a larger buffer', () => {
  it('a frame sent from inside a buffer reaches a range-taking NIC as that range, any other endpoint as a view of exactly the frame, and learning reads it there', () => {
    const sw = new VirtualSwitch('t');
    const ranges: [number, number, string][] = [];
    const views: string[] = [];
    const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    const a = sw.connect({ name: 'a', mac: mac(1), deliver: () => true });
    sw.connect({ name: 'b', mac: mac(2), deliver: () => true, deliverFrom: (bytes, at, length) => (ranges.push([at, length, hex(bytes.subarray(at, at + length))]), true) });
    const c = sw.connect({ name: 'c', mac: mac(3), deliver: (f) => (views.push(hex(f)), true) });
    const buf = new Uint8Array(300).fill(0xee);
    const frame = new Uint8Array(60).map((_, i) => i);
    writeEth(frame, new Uint8Array(6).fill(0xff), mac(1), 0x88b5); // broadcast: every other port
    buf.set(frame, 100);
    a.transmitFrom!(buf, 100, 60);
    expect(ranges).toEqual([[100, 60, hex(frame)]]);
    expect(views).toEqual([hex(frame)]);
    // a was learnt from inside the buffer: a unicast to mac 1 from c goes only to a.
    const back = new Uint8Array(60);
    writeEth(back, mac(1), mac(3), 0x88b5);
    c.transmit(back);
    expect(sw.stats.flooded).toBe(1);
    expect(sw.stats.delivered).toBe(3);
  });
});
