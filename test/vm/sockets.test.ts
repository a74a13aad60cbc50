// The socket back ends against real peers on the loopback: a frame is the NIC's only while
// transmit() runs (a guest send section it reuses at once), and a stream peer that trickles its
// bytes still gets whole frames across.
import { createSocket } from 'node:dgram';
import { connect, createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { NetEndpoint } from '../../src/devices/network/backend.js';
import { StreamBackend, UdpBackend } from '../../src/vm/network/sockets.js';

const endpoint = (onFrame: (f: Uint8Array) => void): NetEndpoint => ({ name: 'test', mac: new Uint8Array(6), deliver: (f) => (onFrame(f.slice()), true) });

/** A free loopback port (the OS picks one, then lets it go). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe('socket back ends', () => {
  it('udp: each datagram carries the frame as it was when transmitted, not what the buffer holds later', async () => {
    const peer = createSocket('udp4');
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()));
    const got: string[] = [];
    const three = new Promise<void>((r) =>
      peer.on('message', (m) => {
        got.push(m.toString('latin1'));
        if (got.length === 3) r();
      }),
    );
    const local = await freePort();
    const udp = new UdpBackend({ host: '127.0.0.1', port: local }, { host: '127.0.0.1', port: (peer.address() as AddressInfo).port });
    await udp.open();
    const link = udp.connect(endpoint(() => undefined));
    // One buffer reused for every frame, as a guest's send section is.
    const section = new Uint8Array(new SharedArrayBuffer(64), 0, 60);
    for (const c of 'ABC') {
      section.fill(c.charCodeAt(0));
      link.transmit(section);
    }
    section.fill(0x5a);
    await three;
    expect(got.map((g) => g[0]).sort()).toEqual(['A', 'B', 'C']);
    link.close();
    peer.close();
  });

  it('stream: a peer that sends one byte at a time still delivers whole frames, in order', async () => {
    const port = await freePort();
    const stream = new StreamBackend({ host: '127.0.0.1', port }, true);
    await stream.open();
    const frames: Uint8Array[] = [];
    const done = new Promise<void>((r) => stream.connect(endpoint((f) => (frames.push(f), frames.length === 3 && r()))));
    const bytes: number[] = [];
    for (const len of [60, 1514, 0]) bytes.push(...[0, 0, len >> 8, len & 0xff], ...Array.from({ length: len }, (_, i) => (i + len) & 0xff));
    const client = connect({ host: '127.0.0.1', port });
    client.setNoDelay(true);
    await new Promise<void>((r) => client.once('connect', () => r()));
    // Each byte its own write; the event loop runs between them so they arrive as many chunks.
    for (const b of bytes) await new Promise<void>((r) => client.write(Uint8Array.of(b), () => setImmediate(r)));
    await done;
    expect(frames.map((f) => f.length)).toEqual([60, 1514, 0]);
    expect([...frames[1]!.subarray(0, 4)]).toEqual([1514 & 0xff, (1515) & 0xff, (1516) & 0xff, (1517) & 0xff]);
    client.destroy();
    stream.close();
  });
});
