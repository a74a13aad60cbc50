// VMBus benchmarks. Ring throughput in-thread for 64 B to 64 KiB packets against the least work
// a ring can do, one copy into shared memory and one back out; then figures measured once per
// run: signals per packet with the rings saturated, and the control plane (offer and open 1,
// 100 and 1,000 channels).
import { StreamDevice } from '../src/devices/stream/host.js';
import { STREAM_CLASS_ID } from '../src/devices/stream/frame.js';
import { StreamDriver } from '../src/devices/stream/guest.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { Machine } from '../src/vm/machine.js';
import type { GuestChannel } from '../src/vmbus/client/channel.js';
import { inband } from '../src/vmbus/packet.js';
import { contiguousRing } from '../src/vmbus/ring/memory.js';
import { initRing, RingReader, RingWriter, type ReaderMode } from '../src/vmbus/ring/ring.js';
import { PacketType } from '../src/vmbus/wire/constants.js';
import type { Case, Goal, Measurement, MeasurementGroup } from './index.js';

const SIZES = [64, 1024, 4096, 65536] as const;
export const label = (n: number) => (n >= 1024 ? `${n / 1024} KiB` : `${n} B`);
export const copyBaseline = (n: number) => `baseline: ${label(n)} copy`;
export const sharedCopyBaseline = (n: number) => `baseline: ${label(n)} copy pair through shared memory`;

/** The goals for the ring against the shared-memory copy pair (throughput ratio). */
const RING_GOALS: Partial<Record<number, Goal>> = {
  64: { of: 'throughputRatio', atLeast: 0.5, text: '≥ 0.5× the copy pair' },
  4096: { of: 'throughputRatio', atLeast: 0.8, text: '≥ 0.8× the copy pair' },
  65536: { of: 'throughputRatio', atLeast: 0.8, text: '≥ 0.8× the copy pair' },
};

/** A 1 MiB ring in its own guest memory, and both its ends. */
function benchRing(mode: ReaderMode): { writer: RingWriter; reader: RingReader } {
  const mem = new GuestMemory({ size: 2 << 20 });
  const ringMem = contiguousRing(mem, 0, 1 << 20);
  initRing(ringMem);
  return { writer: new RingWriter(ringMem), reader: new RingReader(ringMem, mode) };
}

/** A batch of in-band packets of `payload`, each built in place in the ring: reserve, fill, commit. */
function writeInPlace(writer: RingWriter, count: number, payload: Uint8Array): void {
  const w = writer.batch();
  for (let i = 0; i < count; i++) {
    const s = w.reserve(16 + payload.length);
    if (!s) throw new Error('ring full');
    s.descriptor(PacketType.DATA_INBAND, 2, 0, 1n);
    s.set(16, payload);
  }
  w.commit();
}

/**
 * Copies of each packet size (in one buffer, and through shared memory), and ring write+read
 * of the same payloads in batches: the packet built in place (reserve, fill, commit), read
 * into a buffer the reader owns, as the guest does. A few more rows show the other ways: the
 * parts-and-copies path the channels take, and the host's view of a packet in the ring.
 */
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
    // The least a ring can do: the payload into shared memory, and back out.
    const shared = new Uint8Array(new SharedArrayBuffer(1 << 20));
    cases.push({
      name: sharedCopyBaseline(size),
      baseline: sharedCopyBaseline(size),
      batch,
      unit: 'copy pair',
      bytes: size,
      run: () => {
        for (let i = 0; i < batch; i++) {
          src[0] = i;
          shared.set(src, 4096);
          dst.set(shared.subarray(4096, 4096 + size));
        }
      },
    });
    const perBatch = Math.min(batch, Math.floor((1 << 20) / (size + 32)) - 1);
    const packet = 16 + size;
    const check = (n: number) => {
      if (n !== perBatch) throw new Error(`read ${n} of ${perBatch}`);
    };
    {
      const { writer, reader } = benchRing({ kind: 'linux', maxPacketSize: packet });
      const into = new Uint8Array(packet);
      cases.push({
        name: `ring write+read, ${label(size)} packets`,
        baseline: sharedCopyBaseline(size),
        batch: perBatch,
        unit: 'packet',
        bytes: size,
        ...(RING_GOALS[size] ? { goal: RING_GOALS[size] } : {}),
        run: () => {
          writeInPlace(writer, perBatch, src);
          const r = reader.batch();
          let n = 0;
          while (r.readInto(into) >= 0) n++;
          r.commit();
          check(n);
        },
      });
    }
    if (size !== 64 && size !== 4096) continue;
    {
      const { writer, reader } = benchRing({ kind: 'linux', maxPacketSize: packet });
      const parts = inband(src, 1n);
      cases.push({
        name: `ring write+read, parts and private copies, ${label(size)} packets`,
        baseline: sharedCopyBaseline(size),
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
          check(n);
        },
      });
    }
    {
      const { writer, reader } = benchRing({ kind: 'strict' });
      let sink = 0;
      cases.push({
        name: `ring write+read, host view in the ring, ${label(size)} packets`,
        baseline: sharedCopyBaseline(size),
        batch: perBatch,
        unit: 'packet',
        bytes: size,
        run: () => {
          writeInPlace(writer, perBatch, src);
          const r = reader.batch();
          let n = 0;
          for (let v = r.view(); v; v = r.view()) {
            sink ^= v.bytes[v.at + v.offset]!;
            n++;
          }
          r.commit();
          check(n);
        },
      });
      void sink;
    }
  }
  return cases;
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
    { name: SIGNALS[0], value: host.signalsReceived / Math.max(1, drv.stats.framesOut), unit: 'signals' },
    { name: SIGNALS[1], value: host.signalsSent / Math.max(1, dev.stats.framesOut), unit: 'signals' },
    { name: SIGNALS[2], value: packets / Math.max(1, host.signalsSent + host.signalsReceived), unit: 'packets' },
  ];
}

const controlPlaneName = (n: number) => `control plane: offer and open ${n} channel${n === 1 ? '' : 's'}`;

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
  return { name: controlPlaneName(n), value: ms, unit: 'ms', ratio: (ms * 1e6) / n / callNs, baseline: 'function calls per channel' };
}

const CONTROL_PLANE = [1, 100, 1000] as const;
const SIGNALS = ['saturated rings: guest→host signals per packet', 'saturated rings: host→guest signals per packet', 'saturated rings: packets per signal, both ways'] as const;

export function vmbusGroup(): MeasurementGroup {
  return {
    names: [...SIGNALS, ...CONTROL_PLANE.map(controlPlaneName)],
    needs: ['baseline: function call'],
    run: (perOpNs) => {
      const call = perOpNs.get('baseline: function call')!;
      return [...signalsPerPacket(), ...CONTROL_PLANE.map((n) => controlPlane(n, call))];
    },
  };
}
