// VMBus benchmarks. Ring throughput in-thread for 64 B to 64 KiB packets against a plain copy
// of the same bytes; then figures measured once per run: signals per packet with the rings
// saturated, and the control plane (offer and open 1, 100 and 1,000 channels).
import { StreamDevice } from '../src/devices/stream/host.js';
import { STREAM_CLASS_ID } from '../src/devices/stream/frame.js';
import { StreamDriver } from '../src/devices/stream/guest.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { Machine } from '../src/vm/machine.js';
import type { GuestChannel } from '../src/vmbus/client/channel.js';
import { inband } from '../src/vmbus/packet.js';
import { contiguousRing } from '../src/vmbus/ring/memory.js';
import { initRing, RingReader, RingWriter } from '../src/vmbus/ring/ring.js';
import type { Case } from './index.js';

const SIZES = [64, 1024, 4096, 65536] as const;
const label = (n: number) => (n >= 1024 ? `${n / 1024} KiB` : `${n} B`);
export const copyBaseline = (n: number) => `baseline: ${label(n)} copy`;

/** Copies of each packet size, and ring write+read of the same payloads. */
export function ringCases(): Case[] {
  const cases: Case[] = [];
  for (const size of SIZES) {
    const batch = Math.max(4, Math.floor(262144 / size));
    // Source and destination in one ArrayBuffer: V8 copies between separately allocated small
    // arrays an order of magnitude slower, which would flatter every ratio.
    const block = new Uint8Array(2 * size);
    const src = block.subarray(0, size);
    for (let i = 0; i < size; i++) src[i] = i;
    const dst = block.subarray(size);
    cases.push({
      name: copyBaseline(size),
      baseline: copyBaseline(size),
      batch,
      unit: 'copy',
      bytes: size,
      run: () => {
        for (let i = 0; i < batch; i++) {
          src[0] = i;
          dst.set(src);
        }
      },
    });
    // A 1 MiB ring: the writer fills a batch of packets, the reader drains them.
    const mem = new GuestMemory({ size: 2 << 20 });
    const ringMem = contiguousRing(mem, 0, 1 << 20);
    initRing(ringMem);
    const writer = new RingWriter(ringMem);
    const reader = new RingReader(ringMem, { kind: 'linux', maxPacketSize: size + 64 });
    const parts = inband(src, 1n);
    const perBatch = Math.min(batch, Math.floor((1 << 20) / (size + 32)) - 1);
    cases.push({
      name: `ring write+read, ${label(size)} packets`,
      baseline: copyBaseline(size),
      batch: perBatch,
      unit: 'packet',
      bytes: size,
      run: () => {
        const w = writer.batch();
        for (let i = 0; i < perBatch; i++) if (!w.write(parts)) throw new Error('ring full');
        w.commit();
        const r = reader.batch();
        let n = 0;
        while (r.next()) n++;
        r.commit();
        if (n !== perBatch) throw new Error(`read ${n} of ${perBatch}`);
      },
    });
  }
  return cases;
}

export interface Measurement {
  name: string;
  value: number;
  unit: string;
  /** The same figure over its baseline (a ratio), and which baseline. */
  ratio?: number;
  baseline?: string;
}

/** Deterministic machine, rings saturated both ways: how many signals each packet costs. */
function signalsPerPacket(): Measurement[] {
  const m = new Machine({ vps: 2, memory: 64 << 20, devices: [] });
  const dev = new StreamDevice({ seed: 1, maxData: 1500, toGuest: true });
  m.vmbus!.server.offer({ classId: STREAM_CLASS_ID, instanceId: '00000001-0000-4000-8000-0000000000b0' }, dev);
  m.boot();
  const drv = new StreamDriver({ seed: 2, maxData: 1500, ringBytes: 65536 });
  m.kernel.vmbus!.registerDriver(drv);
  m.runFor(2_000_000);
  const host = [...m.vmbus!.server.channels.values()][0]!;
  const packets = drv.stats.framesOut + dev.stats.framesOut;
  return [
    { name: 'saturated rings: guest→host signals per packet', value: host.signalsReceived / Math.max(1, drv.stats.framesOut), unit: 'signals' },
    { name: 'saturated rings: host→guest signals per packet', value: host.signalsSent / Math.max(1, dev.stats.framesOut), unit: 'signals' },
    { name: 'saturated rings: packets per signal, both ways', value: packets / Math.max(1, host.signalsSent + host.signalsReceived), unit: 'packets' },
  ];
}

/** Offer `n` channels after boot and open them all: wall time, per channel. */
function controlPlane(n: number, callNs: number): Measurement {
  const m = new Machine({ vps: 2, memory: 512 << 20, devices: [] });
  m.boot();
  const opened: GuestChannel[] = [];
  m.kernel.vmbus!.registerDriver({
    name: 'bench',
    classIds: [STREAM_CLASS_ID],
    probe: (ch) => {
      ch.open({ sendRingBytes: 8192, recvRingBytes: 8192, onEvent: () => undefined });
      opened.push(ch);
    },
  });
  const t0 = performance.now();
  for (let i = 0; i < n; i++) m.vmbus!.server.offer({ classId: STREAM_CLASS_ID, instanceId: `${i.toString(16).padStart(8, '0')}-0000-4000-8000-0000000000c0` }, {});
  if (!m.waitUntil(() => opened.length === n, 60e9)) throw new Error(`only ${opened.length} of ${n} channels opened`);
  const ms = performance.now() - t0;
  return { name: `control plane: offer and open ${n} channel${n === 1 ? '' : 's'}`, value: ms, unit: 'ms', ratio: (ms * 1e6) / n / callNs, baseline: 'function calls per channel' };
}

export function vmbusMeasurements(perOpNs: Map<string, number>): Measurement[] {
  const call = perOpNs.get('baseline: function call')!;
  return [...signalsPerPacket(), ...[1, 100, 1000].map((n) => controlPlane(n, call))];
}
