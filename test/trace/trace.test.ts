// The boundary trace: what a booting guest and a used channel emit (traps, messages, signals,
// packets, in order), the JSON-lines file written and read back, channel resolution and the
// filters, the one-line decoding, and a reader that refuses bad lines with their number only.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ringFill, traceHex, type HypercallTrap, type MessageEvent, type PacketEvent, type SignalEvent, type TraceEvent, type TrapEvent } from '../../src/hypervisor/trace.js';
import { HvCall } from '../../src/tlfs/hypercall-codes.js';
import { HvMsr } from '../../src/tlfs/msr.js';
import { HvStatus } from '../../src/tlfs/status.js';
import { HvMessageType } from '../../src/tlfs/synic.js';
import { TimerMessagePayload } from '../../src/tlfs/time.js';
import { decodeEvent, encodeEvent, hexBytes } from '../../src/trace/codec.js';
import { attachTrace, type Tracer } from '../../src/trace/attach.js';
import { ChannelResolver, hasDirection, matches, selectEvents } from '../../src/trace/filter.js';
import { formatEvent, formatTime } from '../../src/trace/format.js';
import { parseTrace, parseTraceLine, readTraceFile, TraceFileError } from '../../src/trace/reader.js';
import { JsonLinesTracer, openTraceFile } from '../../src/trace/writer.js';
import { Machine } from '../../src/vm/machine.js';
import { ChannelMessageType, PacketType, VMBUS_MESSAGE_SINT } from '../../src/vmbus/wire/constants.js';
import type { HostChannel } from '../../src/vmbus/server/channel.js';
import { decodeChannelMessage } from '../../src/vmbus/wire/messages.js';
import { EchoDriver, offerEcho, text, VmbusRig } from '../vmbus/harness.js';

const tmp = mkdtempSync(join(tmpdir(), 'hvkit-trace-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const collect = (): Tracer & { events: TraceEvent[] } => {
  const events: TraceEvent[] = [];
  return { events, emit: (e) => events.push(e) };
};

const traps = (es: readonly TraceEvent[]): TrapEvent[] => es.filter((e): e is TrapEvent => e.kind === 'trap');
const messages = (es: readonly TraceEvent[]): MessageEvent[] => es.filter((e): e is MessageEvent => e.kind === 'message');
const nameOf = (m: MessageEvent): string => decodeChannelMessage(hexBytes(m.payload)).name;
const bytesOf = (hex: string): Uint8Array => Uint8Array.from(hex.replace(/\s/g, '').match(/../g)!, (b) => parseInt(b, 16));

/**
 * A ws2022 guest with the echo device (besides whatever devices the machine offers by
 * default), a driver bound, "hello" sent and a request answered, then the channel closed.
 */
function echoSession(...tracers: Tracer[]): { rig: VmbusRig; host: HostChannel } {
  const rig = new VmbusRig({ release: 'ws2022', vps: 2 });
  for (const t of tracers) attachTrace(rig.m.partition, t);
  const { ch: host } = offerEcho(rig);
  const drv = new EchoDriver();
  rig.boot();
  rig.client.registerDriver(drv);
  const ch = drv.channels[0]!;
  expect(ch.sendInband(text('hello'), 7n)).toBe(true);
  expect(ch.sendRequest(text('ping'), 'ctx')).toBe(1n);
  rig.run();
  expect(drv.payloads(ch)).toEqual(['hello', 'ping']);
  ch.close();
  rig.run();
  return { rig, host };
}

describe('a booting guest, traced', () => {
  const t = collect();
  const m = new Machine({ release: 'ws2022', vps: 2 });
  const stop = attachTrace(m.partition, t);
  m.boot();
  const events = t.events;

  it('boots, and the trace starts with CPUID: leaf 1 (hypervisor present), then 0x40000000 ("Microsoft Hv")', () => {
    expect(m.kernel.stage).toBe('booted');
    const first = traps(events).slice(0, 3);
    expect(first.map((e) => (e.what === 'cpuid' ? e.leaf : e.what))).toEqual([0x1, 0x40000000, 0x40000003]);
    const vendor = first[1]!;
    if (vendor.what !== 'cpuid') throw new Error('not cpuid');
    expect(vendor.eax).toBeGreaterThanOrEqual(0x40000005);
    const sig = new Uint8Array(new Uint32Array([vendor.ebx, vendor.ecx, vendor.edx]).buffer);
    expect(new TextDecoder().decode(sig)).toBe('Microsoft Hv');
    // Every hypervisor leaf the guest asks for comes after 0x40000000.
    const hvLeaves = traps(events).filter((e) => e.what === 'cpuid' && e.leaf >= 0x40000000);
    expect(hvLeaves[0]).toMatchObject({ leaf: 0x40000000 });
  });

  it('GUEST_OS_ID is written before the hypercall page is enabled, and that before the first hypercall', () => {
    const ts = traps(events);
    const osId = ts.findIndex((e) => e.what === 'wrmsr' && e.msr === HvMsr.GUEST_OS_ID && e.value !== 0n);
    const page = ts.findIndex((e) => e.what === 'wrmsr' && e.msr === HvMsr.HYPERCALL && (e.value & 1n) === 1n);
    const call = ts.findIndex((e) => e.what === 'hypercall');
    expect(osId).toBeGreaterThanOrEqual(0);
    expect(osId).toBeLessThan(page);
    expect(page).toBeLessThan(call);
    expect(ts[page]).not.toHaveProperty('fault');
  });

  it('VMBus: INITIATE_CONTACT to the host on connection 4, then VERSION_RESPONSE into SINT2 of VP 0', () => {
    // The machine's default devices are offered between REQUESTOFFERS and ALLOFFERS_DELIVERED.
    const ms = messages(events).filter((e) => nameOf(e) !== 'OFFERCHANNEL');
    expect(ms.map((e) => `${e.dir} ${nameOf(e)}`).slice(0, 4)).toEqual(['to-host INITIATE_CONTACT', 'to-guest VERSION_RESPONSE', 'to-host REQUESTOFFERS', 'to-guest ALLOFFERS_DELIVERED']);
    const [contact, response] = ms as [MessageEvent, MessageEvent];
    expect(contact).toMatchObject({ dir: 'to-host', vp: 0, connection: 4, type: 1 });
    expect(response).toMatchObject({ dir: 'to-guest', vp: 0, sint: VMBUS_MESSAGE_SINT, type: 1 });
    expect(decodeChannelMessage(hexBytes(response.payload)).value).toMatchObject({ version_supported: 1, msg_conn_id: 1 });
  });

  it('each posted message is followed by its HvCallPostMessage trap, SUCCESS, on the same VP', () => {
    for (const [i, e] of events.entries()) {
      if (e.kind !== 'message' || e.dir !== 'to-host') continue;
      const trap = events.slice(i + 1).find((x): x is HypercallTrap => x.kind === 'trap' && x.what === 'hypercall');
      expect(trap).toMatchObject({ vp: e.vp, code: HvCall.POST_MESSAGE, status: HvStatus.SUCCESS });
    }
  });

  it('a host message: queued, written into the slot, then its SINT asserted; a post names the port its connection leads to', () => {
    const i = events.findIndex((e) => e.kind === 'message' && e.dir === 'to-guest' && nameOf(e) === 'VERSION_RESPONSE');
    expect(events.slice(i - 1, i + 2).map((e) => e.kind)).toEqual(['message-queued', 'message', 'sint-asserted']);
    expect(events[i - 1]).toMatchObject({ kind: 'message-queued', vp: 0, sint: VMBUS_MESSAGE_SINT, type: 1, depth: 1 });
    expect(events[i + 1]).toMatchObject({ kind: 'sint-asserted', vp: 0, sint: VMBUS_MESSAGE_SINT });
    const contact = messages(events).find((e) => e.dir === 'to-host')!;
    expect(contact).toMatchObject({ connection: 4, port: 4 });
    // Direct-mode stimer0 ticks (hv_stimer_alloc): the hypervisor's own events share the stream.
    expect(events.some((e) => e.kind === 'timer-expired' && e.timer === 0 && e.direct)).toBe(true);
  });

  it('timestamps never go back', () => {
    for (let i = 1; i < events.length; i++) expect(events[i]!.ns).toBeGreaterThanOrEqual(events[i - 1]!.ns);
    expect(events.at(-1)!.ns).toBeGreaterThan(0);
  });

  it('after stop, no more events', () => {
    const n = events.length;
    stop();
    m.runFor(10_000_000);
    expect(events.length).toBe(n);
  });

  it('arm64: the guest reaches the hypervisor by HVC, so its traps are hypercalls and no CPUID', () => {
    const a = collect();
    const arm = new Machine({ release: 'ws2022', arch: 'arm64', vps: 2 });
    attachTrace(arm.partition, a);
    arm.boot();
    expect(arm.kernel.stage).toBe('booted');
    const ts = traps(a.events);
    expect(ts.some((e) => e.what === 'cpuid' || e.what === 'rdmsr' || e.what === 'wrmsr')).toBe(false);
    expect(ts.some((e) => e.what === 'hypercall' && e.code === HvCall.GET_VP_REGISTERS && e.fast)).toBe(true);
  });
});

describe('a channel in use, traced', () => {
  const t = collect();
  const { host } = echoSession(t);
  const events = t.events;

  it('the guest signals the connection id of the offer; the host sets event flag <relid> in SINT2', () => {
    const offers = new Map<number, number>();
    for (const e of messages(events)) {
      const m = decodeChannelMessage(hexBytes(e.payload));
      if (m.type === ChannelMessageType.OFFERCHANNEL) offers.set(m.value.connection_id, m.value.child_relid);
    }
    expect(offers.get(host.connectionId)).toBe(host.relid);
    const signals = events.filter((e): e is SignalEvent => e.kind === 'signal');
    const up = signals.filter((s) => s.dir === 'to-host');
    const down = signals.filter((s) => s.dir === 'to-guest');
    expect(up.filter((s) => s.connection === host.connectionId).length).toBeGreaterThan(0);
    expect(up.every((s) => offers.has(s.connection) && s.flag === 0)).toBe(true);
    expect(down.filter((s) => s.flag === host.relid).length).toBeGreaterThan(0);
    expect(down.every((s) => s.sint === VMBUS_MESSAGE_SINT && [...offers.values()].includes(s.flag))).toBe(true);
    // A channel's event port takes its connection id; every flag set says whether it was set already.
    expect(up.every((s) => s.dir === 'to-host' && s.port === s.connection)).toBe(true);
    expect(down.every((s) => s.dir === 'to-guest' && typeof s.coalesced === 'boolean')).toBe(true);
  });

  it('packets: each the guest wrote as the host read it, each the host wrote, in order', () => {
    const packets = events.filter((e): e is PacketEvent => e.kind === 'packet' && e.channel === host.relid);
    expect(packets.map((p) => [p.dir, p.type, p.transId, p.channel])).toEqual([
      ['to-host', PacketType.DATA_INBAND, 7n, host.relid],
      ['to-guest', PacketType.DATA_INBAND, 7n, host.relid],
      ['to-host', PacketType.DATA_INBAND, 1n, host.relid],
      ['to-guest', PacketType.COMP, 1n, host.relid],
    ]);
    const hello = packets[0]!;
    expect(hello.length).toBe(24);
    expect(hello.bytes.length).toBe(48);
    expect(hexBytes(hello.bytes).subarray(16, 21)).toEqual(text('hello'));
    // A write into an empty ring is followed by the signal it raised.
    const i = events.indexOf(packets[1]!);
    expect(events.slice(i + 1).find((e) => e.kind !== 'trap')).toMatchObject({ kind: 'signal', dir: 'to-guest' });
  });

  it("packets carry their ring's indices just after they crossed", () => {
    const [up1, down1, up2, down2] = events.filter((e): e is PacketEvent => e.kind === 'packet' && e.channel === host.relid);
    const rings = host.ringState();
    // Each ring's data area: the ring minus its control page.
    expect(up1!.ringSize).toBe(rings?.incoming.dataSize ?? up1!.ringSize);
    expect(down1!.ringSize).toBe(rings?.outgoing.dataSize ?? down1!.ringSize);
    expect(up1!.ringSize).toBeGreaterThan(0);
    // The guest wrote both its packets before the host read: past the first (its bytes and the
    // 8-byte trailer), the second still waits; past the second, the ring is empty.
    const both = up1!.length + 8 + up2!.length + 8;
    expect(up1).toMatchObject({ readIndex: up1!.length + 8, writeIndex: both });
    expect(ringFill(up1!)).toBe(up2!.length + 8);
    expect(up2).toMatchObject({ readIndex: both, writeIndex: both });
    expect(ringFill(up2!)).toBe(0);
    // The host's first write into the empty host→guest ring waits there, unread, when it is traced.
    expect(down1).toMatchObject({ readIndex: 0, writeIndex: down1!.length + 8 });
    expect(ringFill(down1!)).toBe(down1!.length + 8);
    expect(down2!.writeIndex).toBe(down1!.writeIndex! + down2!.length + 8);
    expect(ringFill(down2!)).toBe(down2!.writeIndex! - down2!.readIndex!);
    // hv_get_bytes_to_read across the wrap, and no fill for a trace without indices.
    expect(ringFill({ ...down1!, readIndex: 4000, writeIndex: 16, ringSize: 4096 })).toBe(112);
    expect(ringFill({ ns: 0, kind: 'packet', dir: 'to-host', channel: 1, type: 6, transId: 0n, length: 0, bytes: '' })).toBeUndefined();
  });

  it('the resolver names the echo channel for its messages, GPADL messages included, its signals and packets', () => {
    const r = new ChannelResolver();
    const about = events.map((e) => r.annotate(e)).filter((e): e is MessageEvent | SignalEvent | PacketEvent => hasDirection(e) && e.channel === host.relid);
    const names = about.map((e) => (e.kind === 'message' ? nameOf(e) : `${e.kind} ${e.dir}`));
    expect(names).toEqual(
      expect.arrayContaining(['OFFERCHANNEL', 'GPADL_HEADER', 'GPADL_CREATED', 'OPENCHANNEL', 'OPENCHANNEL_RESULT', 'signal to-host', 'packet to-host', 'packet to-guest', 'signal to-guest', 'CLOSECHANNEL', 'GPADL_TEARDOWN', 'GPADL_TORNDOWN']),
    );
    expect(names).not.toContain('INITIATE_CONTACT');
  });

  it('filters: by kind, by direction, by channel, combined', () => {
    const all = [...selectEvents(events)];
    expect(all.length).toBe(events.length);
    expect([...selectEvents(events, { kinds: ['packet'] })].every((e) => e.kind === 'packet')).toBe(true);
    expect([...selectEvents(events, { kinds: ['signal', 'packet'] })].length).toBe(events.filter((e) => e.kind === 'signal' || e.kind === 'packet').length);
    const down = [...selectEvents(events, { dirs: ['to-guest'] })];
    expect(down.length).toBeGreaterThan(0);
    expect(down.every((e) => hasDirection(e) && e.dir === 'to-guest')).toBe(true);
    const ch1 = [...selectEvents(events, { channels: [host.relid] })];
    expect(ch1.every((e) => hasDirection(e) && e.channel === host.relid)).toBe(true);
    expect([...selectEvents(events, { channels: [2000] })]).toEqual([]);
    const ch1Packets = [...selectEvents(events, { channels: [host.relid], kinds: ['packet'], dirs: ['to-host'] })];
    expect(ch1Packets.map((e) => e.kind === 'packet' && e.transId)).toEqual([7n, 1n]);
    // Empty lists keep everything.
    expect(all.every((e) => matches(e, { channels: [], kinds: [], dirs: [] }))).toBe(true);
  });

  it('the whole session reads as lines; the echo shows as text', () => {
    const lines = [...selectEvents(events)].map(formatEvent);
    expect(lines.some((l) => /^ {4}0\.\d{6} vp0 {2}to-host {2}msg conn 0x4 {2}INITIATE_CONTACT vmbus_version_requested=0x50003 \(version 5\.3\)/.test(l))).toBe(true);
    const ch = `ch${host.relid}`.padEnd(4);
    const conn = `0x${host.connectionId.toString(16)}`;
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`${ch} to-guest pkt VM_PKT_DATA_INBAND trans 0x7 24 bytes payload=68656c6c6f000000 \\(8 bytes; ascii "hello"\\)  \\(ring 32/\\d+ bytes, read 0x0 write 0x20\\)$`)));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`vp0  to-host  signal conn ${conn} flag 0  \\(channel ${host.relid}\\)$`)));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`to-guest msg sint 2  GPADL_TORNDOWN gpadl=0x[0-9a-f]+  \\(channel ${host.relid}\\)$`)));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`trap     hypercall 0x5d HVCALL_SIGNAL_EVENT fast in=${conn} out=0x0 -> HV_STATUS_SUCCESS$`)));
  });
});

describe('one stream', () => {
  it('without a listener nothing is emitted at all: every emitter, VMBus packets included, checks first', () => {
    const rig = new VmbusRig({ release: 'ws2022', vps: 2 });
    const bus = rig.m.partition.events;
    let emitted = 0;
    const emit = bus.emit.bind(bus);
    bus.emit = (e) => (emitted++, emit(e));
    const { ch: host } = offerEcho(rig);
    const drv = new EchoDriver();
    rig.boot();
    rig.client.registerDriver(drv);
    drv.channels[0]!.sendInband(text('hello'), 7n);
    rig.run();
    expect(drv.payloads(drv.channels[0]!)).toEqual(['hello']);
    expect(host.signalsReceived).toBeGreaterThan(0);
    expect(bus.active).toBe(false);
    expect(emitted).toBe(0);
    // With a listener, the same emitters do emit.
    const t = collect();
    const stop = attachTrace(rig.m.partition, t);
    expect(bus.active).toBe(true);
    drv.channels[0]!.sendInband(text('again'), 8n);
    rig.run();
    stop();
    expect(bus.active).toBe(false);
    expect(emitted).toBe(t.events.length);
    expect(t.events.filter((e) => e.kind === 'packet').map((e) => e.kind === 'packet' && [e.dir, e.transId])).toEqual([
      ['to-host', 8n],
      ['to-guest', 8n],
    ]);
  });
});

describe('trace files', () => {
  it('written and read back: the same events, channels filled in, 64-bit values as hex strings', async () => {
    const path = join(tmp, 'session.jsonl');
    const file = openTraceFile(path);
    const mem = collect();
    // Two listeners on the one stream.
    echoSession(mem, file);
    expect(file.count).toBe(mem.events.length);
    await file.close();
    expect(() => file.emit(mem.events[0]!)).toThrow(/closed/);
    const text = readFileSync(path, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(text.split('\n').length - 1).toBe(mem.events.length);
    expect(text).toMatch(/"what":"wrmsr","vp":0,"msr":1073741824,"value":"0x[0-9a-f]+"/);
    const expected = [...selectEvents(mem.events)];
    expect(parseTrace(text)).toEqual(expected);
    // The hypervisor's own events are in the file too.
    expect(new Set(expected.map((e) => e.kind))).toEqual(new Set(['trap', 'message', 'signal', 'packet', 'message-queued', 'sint-asserted', 'timer-expired']));
    const streamed: TraceEvent[] = [];
    for await (const e of readTraceFile(path)) streamed.push(e);
    expect(streamed).toEqual(expected);
  });

  it('the writer buffers: nothing is written until a buffer fills or it is flushed', () => {
    const chunks: string[] = [];
    const w = new JsonLinesTracer((t) => chunks.push(t), 200);
    const e: TraceEvent = { ns: 5, kind: 'signal', dir: 'to-host', vp: 0, connection: 0x2001, flag: 0 };
    w.emit(e);
    expect(chunks).toEqual([]);
    for (let i = 0; i < 4; i++) w.emit(e);
    expect(chunks.length).toBe(1);
    w.flush();
    w.flush();
    expect(chunks.join('').split('\n').filter(Boolean).length).toBe(5);
  });

  it('CRLF line ends and blank lines are fine; a bad line is a TraceFileError naming its line and field', async () => {
    const good = encodeEvent({ ns: 1, kind: 'signal', dir: 'to-guest', vp: 1, sint: 2, flag: 3 });
    expect(parseTrace(`${good}\r\n\r\n${good}\r\n`).length).toBe(2);
    const bad = (text: string): TraceFileError => {
      try {
        parseTrace(text);
      } catch (e) {
        if (e instanceof TraceFileError) return e;
        throw e;
      }
      throw new Error('no error');
    };
    expect(bad(`${good}\nnot json\n${good}`)).toMatchObject({ line: 2, message: expect.stringMatching(/^line 2: not JSON/) });
    expect(bad(`${good}\n\n[1,2]`)).toMatchObject({ line: 3, reason: 'not a JSON object' });
    expect(bad('{"ns":1,"kind":"bogus"}').reason).toMatch(/^kind: expected one of 'trap', 'message'/);
    expect(bad('{"ns":1,"kind":"trap","what":"rdtsc","vp":0}').reason).toMatch(/^what: expected one of 'cpuid'/);
    expect(bad('{"ns":-1,"kind":"signal","dir":"to-host","vp":0,"connection":1,"flag":0}').reason).toMatch(/^ns: /);
    expect(bad('{"ns":1,"kind":"signal","dir":"to-host","vp":0,"flag":0}').reason).toBe('connection: missing');
    expect(bad('{"ns":1,"kind":"trap","what":"wrmsr","vp":0,"msr":1,"value":12}').reason).toMatch(/^value: expected a 64-bit value/);
    expect(bad('{"ns":1,"kind":"trap","what":"wrmsr","vp":0,"msr":1,"value":"0x10000000000000000"}').reason).toMatch(/^value: /);
    expect(bad('{"ns":1,"kind":"message","dir":"to-host","vp":0,"connection":1,"type":1,"payload":"abc"}').reason).toMatch(/^payload: expected bytes/);
    expect(bad('{"ns":1,"kind":"message","dir":"to-host","vp":0.5,"connection":1,"type":1,"payload":""}').reason).toMatch(/^vp: /);
    // A trace cut off mid-line (the VM died while writing) fails at that last line.
    expect(bad(`${good}\n${good.slice(0, 20)}`).line).toBe(2);
    // And the streaming reader reports the same.
    const path = join(tmp, 'bad.jsonl');
    writeFileSync(path, `${good}\n${good}\n{"ns":1}\n`);
    const read = async () => {
      for await (const _ of readTraceFile(path)) void _;
    };
    await expect(read()).rejects.toMatchObject({ name: 'TraceFileError', line: 3, reason: expect.stringMatching(/^kind: /) });
    expect(parseTraceLine('   ', 9)).toBeUndefined();
  });

  it('property: any text as a trace file yields events or a TraceFileError, nothing else', () => {
    const line = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.json({ maxDepth: 3 }),
      anyEvent.map(encodeEvent),
      // Valid events with one field replaced by anything.
      fc.tuple(anyEvent, fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 })).map(([e, k, v]) => JSON.stringify({ ...JSON.parse(encodeEvent(e)), [k]: v })),
      fc.tuple(anyEvent, fc.nat()).map(([e, n]) => encodeEvent(e).slice(0, n)),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 6 }), fc.constantFrom('\n', '\r\n'), (lines, eol) => {
        try {
          const events = parseTrace(lines.join(eol));
          for (const e of events) expect(decodeEvent(JSON.parse(encodeEvent(e)))).toEqual({ ok: true, event: e });
        } catch (e) {
          if (!(e instanceof TraceFileError)) throw e;
          expect(e.line).toBeGreaterThanOrEqual(1);
          expect(e.line).toBeLessThanOrEqual(Math.max(1, lines.join(eol).split('\n').length));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('property: every event shape survives encode and decode unchanged', () => {
    fc.assert(
      fc.property(anyEvent, (e) => {
        expect(parseTrace(encodeEvent(e) + '\n')).toEqual([e]);
      }),
      { numRuns: 500 },
    );
  });
});

describe('one line per event', () => {
  it('traps: CPUID, MSRs by name, hypercalls with their status or fault', () => {
    expect(formatTime(4_512_345)).toBe('    0.004512');
    expect(formatTime(12_345_678_901_234)).toBe('12345.678901');
    expect(formatEvent({ ns: 0, kind: 'trap', what: 'cpuid', vp: 0, leaf: 0x40000000, subleaf: 0, eax: 0x4000000a, ebx: 0x7263694d, ecx: 0x666f736f, edx: 0x76482074 })).toBe(
      '    0.000000 vp0  trap     cpuid 0x40000000 -> eax=0x4000000a ebx=0x7263694d ecx=0x666f736f edx=0x76482074',
    );
    expect(formatEvent({ ns: 75_000_000, kind: 'trap', what: 'wrmsr', vp: 1, msr: HvMsr.GUEST_OS_ID, value: 0x8100000601c00000n })).toBe(
      '    0.075000 vp1  trap     wrmsr 0x40000000 HV_X64_MSR_GUEST_OS_ID <- 0x8100000601c00000',
    );
    expect(formatEvent({ ns: 0, kind: 'trap', what: 'rdmsr', vp: 0, msr: 0x12345, fault: '#GP' })).toBe('    0.000000 vp0  trap     rdmsr 0x12345 -> #GP');
    expect(formatEvent({ ns: 0, kind: 'trap', what: 'wrmsr', vp: 0, msr: 0x80b, value: 0n })).toBe('    0.000000 vp0  trap     wrmsr 0x80b X2APIC_EOI <- 0x0');
    const call: HypercallTrap = { ns: 0, kind: 'trap', what: 'hypercall', vp: 0, control: 0x5cn, code: 0x5c, fast: false, repCount: 0, repStart: 0, input: 0x1002000n, output: 0n };
    expect(formatEvent({ ...call, status: HvStatus.INSUFFICIENT_BUFFERS, repsCompleted: 0 })).toBe(
      '    0.000000 vp0  trap     hypercall 0x5c HVCALL_POST_MESSAGE in=0x1002000 out=0x0 -> HV_STATUS_INSUFFICIENT_BUFFERS',
    );
    expect(formatEvent({ ...call, fault: '#UD' })).toMatch(/HVCALL_POST_MESSAGE in=0x1002000 out=0x0 -> #UD$/);
    expect(formatEvent({ ...call, code: 0x3, repCount: 20, repStart: 4, status: 0, repsCompleted: 20 })).toMatch(/hypercall 0x3 HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST rep 4\.\.20 .* -> HV_STATUS_SUCCESS reps=20$/);
  });

  it('messages: channel messages decoded (vmbus.md §13), timer messages by field, others in hex', () => {
    // vmbus.md §13's INITIATE_CONTACT requesting 5.3.
    const contact = '0e00000000000000030005000000000002000000000000000000000001000000' + '0010000001000000';
    expect(formatEvent({ ns: 4_512_000, kind: 'message', dir: 'to-host', vp: 0, connection: 4, type: 1, payload: contact })).toBe(
      '    0.004512 vp0  to-host  msg conn 0x4  INITIATE_CONTACT vmbus_version_requested=0x50003 (version 5.3) target_vcpu=0 msg_sint=2 msg_vtl=0 feature_flags=0 monitor_page1=0x100000000 monitor_page2=0x100001000',
    );
    expect(formatEvent({ ns: 0, kind: 'message', dir: 'to-guest', vp: 0, sint: 2, type: 1, payload: '0f000000000000000100000001000000' })).toBe(
      '    0.000000 vp0  to-guest msg sint 2  VERSION_RESPONSE version_supported=1 (accepted) connection_state=0 (SUCCESSFUL) msg_conn_id=0x1',
    );
    // Not a channel message hvkit knows: the error of `hvkit decode` and the bytes.
    expect(formatEvent({ ns: 0, kind: 'message', dir: 'to-host', vp: 0, connection: 1, type: 1, payload: '63000000' })).toBe(
      '    0.000000 vp0  to-host  msg conn 0x1  VMBUS channel message: header: needs 8 bytes, have 4: payload=63000000',
    );
    const timer = TimerMessagePayload.encode({ timer_index: 1, reserved: 0, expiration_time: 0x1234n, delivery_time: 0x1240n });
    expect(formatEvent({ ns: 0, kind: 'message', dir: 'to-guest', vp: 1, sint: 3, type: HvMessageType.TIMER_EXPIRED, payload: traceHex(timer) })).toBe(
      '    0.000000 vp1  to-guest msg sint 3  HVMSG_TIMER_EXPIRED timer_index=1 expiration_time=0x1234 delivery_time=0x1240',
    );
    expect(formatEvent({ ns: 0, kind: 'message', dir: 'to-guest', vp: 0, sint: 5, type: 0x42, payload: '00'.repeat(40) })).toBe(`    0.000000 vp0  to-guest msg sint 5  type 0x42 payload=${'00'.repeat(32)}…`);
  });

  it('signals and packets: the channel when known, the packet decoded or its error named', () => {
    expect(formatEvent({ ns: 0, kind: 'signal', dir: 'to-host', vp: 1, connection: 0x2001, flag: 0, channel: 1 })).toBe('    0.000000 vp1  to-host  signal conn 0x2001 flag 0  (channel 1)');
    expect(formatEvent({ ns: 0, kind: 'signal', dir: 'to-guest', vp: 0, sint: 2, flag: 5 })).toBe('    0.000000 vp0  to-guest signal sint 2 flag 5');
    // vmbus.md §13's "hello" packet.
    const hello = '0600020003000100887766554433221168656c6c6f000000';
    expect(formatEvent({ ns: 0, kind: 'packet', dir: 'to-host', channel: 3, type: 6, transId: 0x1122334455667788n, length: 24, bytes: hello })).toBe(
      '    0.000000 ch3  to-host  pkt VM_PKT_DATA_INBAND trans 0x1122334455667788 24 bytes flags=0x1 (COMPLETION_REQUESTED) payload=68656c6c6f000000 (8 bytes; ascii "hello")',
    );
    const bad = '0500020002000000' + '0100000000000000';
    expect(formatEvent({ ns: 0, kind: 'packet', dir: 'to-host', channel: 3, type: 5, transId: 1n, length: 16, bytes: bad })).toBe(
      `    0.000000 ch3  to-host  pkt type 0x5 trans 0x1 16 bytes: packet: type: 0x5 is not a data packet type: bytes=${bad}`,
    );
    expect(bytesOf(hello).length).toBe(24);
    // With the ring's indices: the bytes waiting in it after the packet, and the indices.
    expect(formatEvent({ ns: 0, kind: 'packet', dir: 'to-host', channel: 3, type: 6, transId: 0x1122334455667788n, length: 24, bytes: hello, readIndex: 4064, writeIndex: 32, ringSize: 4096 })).toBe(
      '    0.000000 ch3  to-host  pkt VM_PKT_DATA_INBAND trans 0x1122334455667788 24 bytes flags=0x1 (COMPLETION_REQUESTED) payload=68656c6c6f000000 (8 bytes; ascii "hello")  (ring 64/4096 bytes, read 0xfe0 write 0x20)',
    );
    expect(formatEvent({ ns: 0, kind: 'signal', dir: 'to-guest', vp: 0, sint: 2, flag: 5, coalesced: true, channel: 5 })).toBe('    0.000000 vp0  to-guest signal sint 2 flag 5 coalesced  (channel 5)');
  });

  it("the hypervisor's own events: 'hv', the VP concerned or '--' for the partition, the kind and its fields", () => {
    const lines = [
      formatEvent({ ns: 0, kind: 'message-queued', vp: 0, sint: 2, type: 1, depth: 2 }),
      formatEvent({ ns: 0, kind: 'message-queued', vp: 1, sint: 0, type: HvMessageType.TIMER_EXPIRED, depth: 1 }),
      formatEvent({ ns: 0, kind: 'sint-asserted', vp: 1, sint: 2, vector: 0xf3 }),
      formatEvent({ ns: 0, kind: 'timer-expired', vp: 0, timer: 0, direct: true, expiration: 0xc0defn }),
      formatEvent({ ns: 0, kind: 'ipi', from: 1, to: 0, vector: 0x2f }),
      formatEvent({ ns: 0, kind: 'tlb-flush', vp: 0, targets: [1, 3], addressSpace: 0x1000n, flags: 0n, ranges: 0 }),
      formatEvent({ ns: 0, kind: 'tlb-flush', vp: 0, targets: 'all', addressSpace: 0n, flags: 1n, ranges: 3 }),
      formatEvent({ ns: 0, kind: 'crash', params: [1n, 2n, 3n, 0x1000n, 5n], message: 'Kernel panic\n' }),
      formatEvent({ ns: 0, kind: 'reset' }),
      formatEvent({ ns: 0, kind: 'guest-idle', vp: 1 }),
      formatEvent({ ns: 0, kind: 'spin-wait', vp: 0, count: 4096n }),
      formatEvent({ ns: 0, kind: 'visibility', gpns: 4, visibility: 3 }),
      formatEvent({ ns: 0, kind: 'interrupt-retarget', deviceId: 0x1234n, vector: 0x31, targets: [2] }),
    ];
    expect(lines.map((l) => l.slice(13))).toEqual([
      'vp0  hv       message-queued sint 2 VMBUS depth 2',
      'vp1  hv       message-queued sint 0 HVMSG_TIMER_EXPIRED depth 1',
      'vp1  hv       sint-asserted sint 2 vector 0xf3',
      'vp0  hv       timer-expired stimer0 direct expiration=0xc0def',
      'vp1  hv       ipi to vp0 vector 0x2f',
      'vp0  hv       tlb-flush vp1,vp3 space=0x1000 flags=0x0',
      'vp0  hv       tlb-flush all space=0x0 flags=0x1 ranges=3',
      '--   hv       crash P0=0x1 P1=0x2 P2=0x3 P3=0x1000 P4=0x5 message="Kernel panic\\n"',
      '--   hv       reset',
      'vp1  hv       guest-idle',
      'vp0  hv       spin-wait count=4096',
      '--   hv       visibility 4 pages -> read-write',
      '--   hv       interrupt-retarget device=0x1234 vector 0x31 -> vp2',
    ]);
  });
});

// --- Arbitrary events of every shape --------------------------------------------------------

const u32 = fc.nat({ max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const hex = fc.uint8Array({ maxLength: 48 }).map(traceHex);
const ns = fc.oneof(fc.maxSafeNat(), fc.double({ min: 0, max: 1e15, noNaN: true }).map((x) => x + 0));
const vp = fc.nat({ max: 63 });
const dir = fc.constantFrom('to-host' as const, 'to-guest' as const);
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const vps = fc.oneof(fc.constant('all' as const), fc.array(vp, { maxLength: 8 }));
/** Drops undefined fields, as JSON does. */
const defined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

const anyEvent: fc.Arbitrary<TraceEvent> = fc.oneof(
  fc.record({ ns, vp, leaf: u32, subleaf: u32, eax: u32, ebx: u32, ecx: u32, edx: u32 }).map((r): TraceEvent => ({ kind: 'trap', what: 'cpuid', ...r })),
  fc.record({ ns, vp, msr: u32, value: maybe(u64), fault: maybe(fc.constant('#GP')) }).map((r): TraceEvent => defined({ kind: 'trap', what: 'rdmsr', ...r })),
  fc.record({ ns, vp, msr: u32, value: u64, fault: maybe(fc.string()) }).map((r): TraceEvent => defined({ kind: 'trap', what: 'wrmsr', ...r })),
  fc
    .record({ ns, vp, control: u64, code: fc.nat({ max: 0xffff }), fast: fc.boolean(), repCount: fc.nat({ max: 0xfff }), repStart: fc.nat({ max: 0xfff }), input: u64, output: u64, status: maybe(fc.nat({ max: 0xffff })), repsCompleted: maybe(fc.nat({ max: 0xfff })), fault: maybe(fc.constant('#UD')) })
    .map((r): TraceEvent => defined({ kind: 'trap', what: 'hypercall', ...r })),
  fc.record({ ns, vp, func: u32, result: maybe(u64), fault: maybe(fc.constant('#UD')) }).map((r): TraceEvent => defined({ kind: 'trap', what: 'smccc', ...r })),
  fc.record({ ns, vp, connection: u32, type: u32, payload: hex, channel: maybe(u32) }).map((r): TraceEvent => defined({ kind: 'message', dir: 'to-host', ...r })),
  fc.record({ ns, vp, sint: fc.nat({ max: 15 }), type: u32, payload: hex, channel: maybe(u32) }).map((r): TraceEvent => defined({ kind: 'message', dir: 'to-guest', ...r })),
  fc.record({ ns, vp, connection: u32, flag: fc.nat({ max: 0xffff }), channel: maybe(u32) }).map((r): TraceEvent => defined({ kind: 'signal', dir: 'to-host', ...r })),
  fc.record({ ns, vp, sint: fc.nat({ max: 15 }), flag: fc.nat({ max: 2047 }), channel: maybe(u32) }).map((r): TraceEvent => defined({ kind: 'signal', dir: 'to-guest', ...r })),
  fc.record({ ns, dir, channel: u32, type: fc.nat({ max: 0xffff }), transId: u64, length: fc.nat(), bytes: hex }).map((r): TraceEvent => ({ kind: 'packet', ...r })),
  fc.record({ ns, dir, channel: u32, type: fc.nat({ max: 0xffff }), transId: u64, length: fc.nat(), bytes: hex, readIndex: u32, writeIndex: u32, ringSize: u32 }).map((r): TraceEvent => ({ kind: 'packet', ...r })),
  fc.record({ ns, vp, connection: u32, type: u32, payload: hex, port: u32 }).map((r): TraceEvent => ({ kind: 'message', dir: 'to-host', ...r })),
  fc.record({ ns, vp, connection: u32, flag: fc.nat({ max: 0xffff }), port: u32 }).map((r): TraceEvent => ({ kind: 'signal', dir: 'to-host', ...r })),
  fc.record({ ns, vp, sint: fc.nat({ max: 15 }), flag: fc.nat({ max: 2047 }), coalesced: fc.boolean() }).map((r): TraceEvent => ({ kind: 'signal', dir: 'to-guest', ...r })),
  fc.record({ ns, vp, sint: fc.nat({ max: 15 }), type: u32, depth: fc.nat() }).map((r): TraceEvent => ({ kind: 'message-queued', ...r })),
  fc.record({ ns, vp, sint: fc.nat({ max: 15 }), vector: fc.nat({ max: 255 }) }).map((r): TraceEvent => ({ kind: 'sint-asserted', ...r })),
  fc.record({ ns, vp, timer: fc.nat({ max: 3 }), direct: fc.boolean(), expiration: u64 }).map((r): TraceEvent => ({ kind: 'timer-expired', ...r })),
  fc.record({ ns, from: vp, to: vp, vector: fc.nat({ max: 255 }) }).map((r): TraceEvent => ({ kind: 'ipi', ...r })),
  fc.record({ ns, vp, targets: vps, addressSpace: u64, flags: u64, ranges: fc.nat({ max: 0xfff }) }).map((r): TraceEvent => ({ kind: 'tlb-flush', ...r })),
  fc.record({ ns, params: fc.array(u64, { maxLength: 5 }), message: maybe(fc.string({ unit: 'binary', maxLength: 200 })) }).map((r): TraceEvent => defined({ kind: 'crash', ...r })),
  fc.record({ ns }).map((r): TraceEvent => ({ kind: 'reset', ...r })),
  fc.record({ ns, vp }).map((r): TraceEvent => ({ kind: 'guest-idle', ...r })),
  fc.record({ ns, vp, count: u64 }).map((r): TraceEvent => ({ kind: 'spin-wait', ...r })),
  fc.record({ ns, gpns: fc.nat({ max: 0xfff }), visibility: fc.nat({ max: 3 }) }).map((r): TraceEvent => ({ kind: 'visibility', ...r })),
  fc.record({ ns, deviceId: u64, vector: fc.nat({ max: 255 }), targets: vps }).map((r): TraceEvent => ({ kind: 'interrupt-retarget', ...r })),
);

it('property: every event formats to one line, whatever its bytes', () => {
  fc.assert(
    fc.property(anyEvent, (e) => {
      const line = formatEvent(e);
      expect(line).not.toContain('\n');
      expect(line.startsWith(formatTime(e.ns))).toBe(true);
    }),
    { numRuns: 500 },
  );
});

describe('signals through the monitor page', () => {
  it('a guest signal on a monitored channel shows as a to-host signal naming the monitor id, with no VP, and round-trips', () => {
    const m = new Machine({ release: 'ws2022', vps: 2, memory: 64 << 20 });
    const events: TraceEvent[] = [];
    m.partition.events.on((e) => void events.push(e));
    m.boot();
    m.runFor(10_000_000);
    // The NIC of the default set is monitored (MNF).
    const nic = m.kernel.vmbus!.channels.find((c) => c.offer.classId === 'f8615163-df3e-46c5-913f-f2d2f965ed0e')!;
    const from = events.length;
    nic.sendInband(new Uint8Array(24));
    m.runFor(1_000_000);
    const signals = events.slice(from).filter((e): e is SignalEvent => e.kind === 'signal' && e.dir === 'to-host');
    expect(signals).toHaveLength(1);
    const s = signals[0]!;
    expect(s).toMatchObject({ monitor: nic.offer.monitorId, connection: nic.offer.connectionId, flag: 0, channel: nic.relid });
    expect('vp' in s && s.vp !== undefined).toBe(false);
    expect(formatEvent(s)).toMatch(new RegExp(`--\\s+to-host\\s+signal conn 0x${nic.offer.connectionId.toString(16)} via monitor ${nic.offer.monitorId} flag 0`));
    expect(decodeEvent(JSON.parse(encodeEvent(s)))).toEqual({ ok: true, event: s });
    // No hypercall was made for it.
    expect(events.slice(from).some((e) => e.kind === 'trap' && e.what === 'hypercall')).toBe(false);
  });
});
