// What the browser app's views are made of, checked in Node: the control plane built from a real
// boot's event stream, the trace loader's refusals (and arbitrary bytes fed to it), the replay
// at a chosen moment, and the per-second rates behind the sparklines.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_DEVICES } from '../../src/devices/catalog.js';
import type { TraceEvent } from '../../src/hypervisor/trace.js';
import { encodeEvent } from '../../src/trace/codec.js';
import { Machine } from '../../src/vm/machine.js';
import { ControlPlane, MAX_STEPS } from '../../web/src/model/control-plane.js';
import { RateHistory } from '../../web/src/model/rates.js';
import { checkTraceSize, loadTrace, MAX_TRACE_BYTES, TraceLoadError } from '../../web/src/replay/load.js';
import { Replay } from '../../web/src/replay/replay.js';
import { fuzz } from '../fuzz/fuzz.js';

/** A default VM's boot, as its event stream gave it. */
function bootEvents(): TraceEvent[] {
  const m = new Machine({ release: 'ws2022', vps: 2 });
  const events: TraceEvent[] = [];
  m.partition.events.on((e) => events.push(e));
  m.boot();
  m.runFor(10_000_000);
  return events;
}
const BOOT = bootEvents();
const BOOT_TEXT = BOOT.map(encodeEvent).join('\n') + '\n';
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('the control plane from the event stream', () => {
  it('has every default device offered and opened, with the messages of the handshake in order', () => {
    const plane = new ControlPlane();
    for (const e of BOOT) plane.apply(e);
    const rows = [...plane.channels.values()].sort((a, b) => a.relid - b.relid);
    expect(rows.map((r) => r.className)).toEqual(DEFAULT_DEVICES);
    expect(rows.every((r) => r.state === 'open' && r.targetVp !== undefined)).toBe(true);
    const names = plane.steps.map((s) => s.name);
    expect(names.slice(0, 3)).toEqual(['INITIATE_CONTACT', 'VERSION_RESPONSE', 'REQUESTOFFERS']);
    expect(plane.steps[0]).toMatchObject({ from: 'guest', detail: 'version 5.3' });
    expect(names.filter((n) => n === 'OFFERCHANNEL').length).toBe(DEFAULT_DEVICES.length);
    expect(names.filter((n) => n === 'OPENCHANNEL_RESULT').length).toBe(DEFAULT_DEVICES.length);
    // Packets crossed on the channels the boot used (storvsc's and netvsc's set-up).
    expect(rows.find((r) => r.className === 'scsi')!.packetsToHost).toBeGreaterThan(0);
  });

  it('keeps at most MAX_STEPS arrows, dropping the oldest', () => {
    const plane = new ControlPlane();
    const contact = BOOT.find((e) => e.kind === 'message' && e.dir === 'to-host')!;
    for (let i = 0; i < MAX_STEPS + 10; i++) plane.apply({ ...contact, ns: i });
    expect(plane.steps.length).toBe(MAX_STEPS);
    expect(plane.steps[0]!.ns).toBe(10);
  });

  it('shows a message that does not parse as such, naming what is wrong', () => {
    const plane = new ControlPlane();
    plane.apply({ ns: 1, kind: 'message', dir: 'to-host', vp: 0, connection: 1, type: 1, payload: '0100' });
    expect(plane.steps).toEqual([{ ns: 1, from: 'guest', name: 'malformed message', relid: undefined, detail: expect.stringContaining('header') }]);
  });
});

describe('loading a trace in the page', () => {
  it('reads a trace the CLI writes, every event as it was', () => {
    expect(loadTrace('boot.jsonl', bytes(BOOT_TEXT))).toEqual(BOOT);
  });

  it('refuses empty, oversized, non-UTF-8, garbage, cut-short and out-of-order files, saying what is wrong', () => {
    const refusal = (name: string, b: Uint8Array): string => {
      try {
        loadTrace(name, b);
      } catch (e) {
        expect(e).toBeInstanceOf(TraceLoadError);
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    expect(refusal('e', new Uint8Array(0))).toBe('e: the file is empty: a trace has one event per line');
    expect(() => checkTraceSize('big', MAX_TRACE_BYTES + 1)).toThrow('big: 64.0 MiB is more than the 64.0 MiB a page reads');
    expect(refusal('bin', new Uint8Array([0xff, 0xfe, 0x80]))).toBe('bin: not a trace: the file is not UTF-8 text');
    expect(refusal('g', bytes('hello\n'))).toMatch(/^g: not a trace: line 1: not JSON: /);
    expect(refusal('blank', bytes('\n\n'))).toBe('blank: the file holds no events (blank lines only)');
    const cut = BOOT_TEXT.slice(0, BOOT_TEXT.indexOf('\n', 2000) + 30);
    expect(refusal('cut', bytes(cut))).toMatch(/^cut: not a trace: line \d+: not JSON: .*\(the file may be cut short\)$/);
    const lines = BOOT_TEXT.trim().split('\n');
    const swapped = [lines[0], lines.at(-1), ...lines.slice(1, -1)].join('\n');
    expect(refusal('order', bytes(swapped))).toMatch(/^order: not a trace: event 3 \(at .* ns\) is earlier than the one before it$/);
  });

  fuzz(
    'web trace loader: arbitrary bytes give events or a TraceLoadError',
    fc.property(fc.uint8Array({ maxLength: 512 }), (b) => {
      try {
        expect(Array.isArray(loadTrace('x', b))).toBe(true);
      } catch (e) {
        if (!(e instanceof TraceLoadError)) throw e;
      }
    }),
    300,
  );

  fuzz(
    'web trace loader: lines of a real trace cut, swapped and changed give events or a TraceLoadError',
    fc.property(fc.array(fc.tuple(fc.nat(BOOT.length - 1), fc.nat(400), fc.string({ maxLength: 8 })), { maxLength: 8 }), (edits) => {
      const lines = BOOT_TEXT.split('\n').slice(0, 40);
      for (const [i, at, s] of edits) {
        const l = lines[i % lines.length]!;
        lines[i % lines.length] = l.slice(0, at) + s + l.slice(at + s.length);
      }
      try {
        loadTrace('x', bytes(lines.join('\n')));
      } catch (e) {
        if (!(e instanceof TraceLoadError)) throw e;
      }
    }),
    200,
  );
});

describe('a replay at a chosen moment', () => {
  const r = new Replay('boot', BOOT);

  it('has no channel before anything happened and every one at the end; the filter picks the diagram and the list', () => {
    expect(r.planeAt(0, {}).channels.size).toBe(0);
    expect(r.planeAt(r.events.length, {}).channels.size).toBe(DEFAULT_DEVICES.length);
    const kvp = [...r.planeAt(r.events.length, {}).channels.values()].find((c) => c.className === 'kvp')!;
    const only = r.planeAt(r.events.length, { channels: [kvp.relid] });
    expect(only.steps.length).toBeGreaterThan(0);
    expect(only.steps.every((s) => s.relid === kvp.relid)).toBe(true);
    const list = r.listAt(r.events.length, { kinds: ['packet'], dirs: ['to-guest'] });
    expect(list.length).toBeGreaterThan(0);
    expect(list.every((e) => e.kind === 'packet' && e.dir === 'to-guest')).toBe(true);
  });

  it("has each open channel's rings as the last packet each way left them; none from a trace without ring indices", () => {
    expect(r.ringsAt(0).size).toBe(0);
    const end = r.ringsAt(r.events.length);
    const packets = r.events.filter((e) => e.kind === 'packet');
    expect(end.size).toBe(new Set(packets.map((e) => e.channel)).size);
    for (const [relid, rings] of end) {
      const last = (dir: string) => packets.filter((e) => e.channel === relid && e.dir === dir).at(-1);
      for (const [ring, dir] of [[rings.outbound, 'to-host'], [rings.inbound, 'to-guest']] as const) {
        const e = last(dir);
        if (!e || e.kind !== 'packet') expect(ring).toBeUndefined();
        else expect(ring).toMatchObject({ readIndex: e.readIndex, writeIndex: e.writeIndex, dataSize: e.ringSize, ns: e.ns });
        if (ring) expect(ring.bytesAvailToRead + ring.bytesAvailToWrite).toBe(ring.dataSize);
      }
    }
    const old = new Replay('old', BOOT.map((e) => (e.kind === 'packet' ? { ...e, readIndex: undefined, writeIndex: undefined, ringSize: undefined } : e)));
    expect(old.ringsAt(old.events.length).size).toBe(0);
  });

  it('finds how many events happened by a time', () => {
    expect(r.countAt(-1)).toBe(0);
    expect(r.countAt(r.endNs)).toBe(r.events.length);
    const mid = r.events[100]!.ns;
    const n = r.countAt(mid);
    expect(r.events[n - 1]!.ns).toBeLessThanOrEqual(mid);
    expect(r.events[n]?.ns ?? Infinity).toBeGreaterThan(mid);
  });
});

describe('rates for the sparklines', () => {
  it('turns counters sampled over wall time into per-second rates, a bounded window', () => {
    const h = new RateHistory();
    h.sample(1, 0, { packets: 0, signals: 0, interrupts: 0 });
    h.sample(1, 500, { packets: 100, signals: 10, interrupts: 5 });
    expect(h.series.get(1)).toEqual({ packets: [200], signals: [20], interrupts: [10] });
    for (let i = 2; i < 100; i++) h.sample(1, i * 500, { packets: 100, signals: 10, interrupts: 5 });
    expect(h.series.get(1)!.packets.length).toBe(60);
  });
});
