// The book's byte examples: bytes from the traced runs (a real connect, a real offer, a real
// GPADL split over a header and body messages, a real IC packet) and a ring that hvkit's own
// ring writer wrapped a packet in, each followed by what the decoder (`hvkit decode`) makes of
// it. test/docs/examples.test.ts decodes every example of the book again and compares.
import type { TraceEvent } from '../../src/hypervisor/trace.js';
import { hexBytes } from '../../src/trace/codec.js';
import { initRing, RingWriter } from '../../src/vmbus/ring/ring.js';
import { windowRing, type RingMemory } from '../../src/vmbus/ring/memory.js';
import { inband } from '../../src/vmbus/packet.js';
import { describeBytes, formatReport, type DecodeAs } from '../../src/vmbus/wire/describe.js';
import { ChannelMessageType as T } from '../../src/vmbus/wire/constants.js';
import { DeviceClass } from '../../src/vmbus/wire/guids.js';
import { decodeChannelMessage, type ChannelMessage } from '../../src/vmbus/wire/messages.js';
import { RING_CONTROL_SIZE } from '../../src/vmbus/wire/packets.js';
import { fence } from './markdown.js';
import { run } from './runs.js';

/** `0000: 0e 00 …` lines of 16 bytes, as vmbus.md §13 prints bytes. */
export function offsetHex(b: Uint8Array): string {
  const lines: string[] = [];
  for (let at = 0; at < b.length; at += 16) {
    const row = Array.from(b.subarray(at, at + 16), (x) => x.toString(16).padStart(2, '0')).join(' ');
    lines.push(`${at.toString(16).padStart(4, '0')}: ${row}`);
  }
  return lines.join('\n');
}

/** `hexdump -C` output: a `*` line for each run of lines equal to the one before, then the length. */
export function hexdumpC(b: Uint8Array): string {
  const lines: string[] = [];
  let previous = '';
  let starred = false;
  for (let at = 0; at < b.length; at += 16) {
    const row = b.subarray(at, at + 16);
    const key = Array.from(row).join(',');
    if (key === previous && at + 16 < b.length) {
      if (!starred) lines.push('*');
      starred = true;
      continue;
    }
    previous = key;
    starred = false;
    const hexes = Array.from(row, (x) => x.toString(16).padStart(2, '0'));
    const left = hexes.slice(0, 8).join(' ');
    const right = hexes.slice(8).join(' ');
    const ascii = Array.from(row, (x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '.')).join('');
    lines.push(`${at.toString(16).padStart(8, '0')}  ${left.padEnd(23)}  ${right.padEnd(23)}  |${ascii}|`);
  }
  lines.push(b.length.toString(16).padStart(8, '0'));
  return lines.join('\n');
}

/** The example block: the bytes, then the decoder's output for them. */
export function exampleBlock(bytes: Uint8Array, as: DecodeAs): string {
  const r = describeBytes(bytes, as);
  if (!r.ok) throw new Error(`an example does not decode: ${r.errors.map((e) => e.message).join('; ')}`);
  const info = as === 'auto' ? 'hex' : `hex --as ${as}`;
  const text = as === 'ring' ? hexdumpC(bytes) : offsetHex(bytes);
  return `${fence(info, text)}\n\n${fence('text', formatReport(r.report).join('\n'))}`;
}

const messageOf = (e: TraceEvent): ChannelMessage | undefined => {
  if (e.kind !== 'message') return undefined;
  try {
    return decodeChannelMessage(hexBytes(e.payload));
  } catch {
    return undefined;
  }
};
const payloadOf = (e: TraceEvent): Uint8Array => hexBytes((e as { payload: string }).payload);

async function firstMessage(type: number, where: (m: ChannelMessage) => boolean = () => true): Promise<Uint8Array> {
  const { events } = await run('boot');
  const e = events.find((x) => {
    const m = messageOf(x);
    return m?.type === type && where(m);
  });
  if (!e) throw new Error(`the boot run has no message ${type}`);
  return payloadOf(e);
}

/** The GPADL of the boot with the fewest body messages, at least one: its header and bodies in order. */
async function splitGpadl(): Promise<Uint8Array[]> {
  const { events } = await run('boot');
  const byHandle = new Map<number, Uint8Array[]>();
  for (const e of events) {
    const m = messageOf(e);
    if (!m || e.kind !== 'message' || e.dir !== 'to-host') continue;
    if (m.type === T.GPADL_HEADER) byHandle.set((m.value as { gpadl: number }).gpadl, [payloadOf(e)]);
    if (m.type === T.GPADL_BODY) byHandle.get((m.value as { gpadl: number }).gpadl)?.push(payloadOf(e));
  }
  const split = [...byHandle.values()].filter((ms) => ms.length > 1).sort((a, b) => a.length - b.length);
  if (!split.length) throw new Error('no GPADL of the boot needs a GPADL_BODY');
  return split[0]!;
}

/** The first packet the heartbeat host writes once the channel is open (its NEGOTIATE), with its trailer. */
async function icPacket(): Promise<Uint8Array> {
  const { events } = await run('settled');
  const offer = events.map(messageOf).find((m) => m?.type === T.OFFERCHANNEL && (m.value as { offer: { if_type: string } }).offer.if_type === DeviceClass.HEART_BEAT);
  const relid = (offer!.value as { child_relid: number }).child_relid;
  const e = events.find((x) => x.kind === 'packet' && x.dir === 'to-guest' && x.channel === relid);
  if (!e || e.kind !== 'packet') throw new Error('the heartbeat host sent no packet');
  return hexBytes(e.bytes);
}

/** A ring in plain memory: a control page, then `dataSize` bytes. */
function plainRing(dataSize: number): { bytes: Uint8Array; mem: RingMemory } {
  const buffer = new SharedArrayBuffer(RING_CONTROL_SIZE + dataSize);
  return { bytes: new Uint8Array(buffer), mem: windowRing(new Uint32Array(buffer, 0, RING_CONTROL_SIZE / 4), new Uint8Array(buffer, RING_CONTROL_SIZE)) };
}

/** Where the ring example's indices start: 24 bytes before the end of its 4 KiB data area. */
export const RING_EXAMPLE_START = 4096 - 24;

/**
 * A one-page ring whose indices stand 24 bytes before the end of the data area, as after 4072
 * bytes of earlier traffic that the reader has consumed; hvkit's RingWriter then writes one
 * in-band packet with a 20-byte payload, which runs past the end and continues at offset 0.
 */
function wrappedRing(): Uint8Array {
  const { bytes, mem } = plainRing(4096);
  initRing(mem);
  Atomics.store(mem.control, 0, RING_EXAMPLE_START);
  Atomics.store(mem.control, 1, RING_EXAMPLE_START);
  const w = new RingWriter(mem);
  const { written } = w.write(inband(new TextEncoder().encode('wraps around the end'), 0x2an, true));
  if (!written) throw new Error('the ring example did not fit');
  return bytes;
}

const EXAMPLES: Readonly<Record<string, () => Promise<string>>> = {
  'initiate-contact': async () => exampleBlock(await firstMessage(T.INITIATE_CONTACT), 'message'),
  'version-response': async () => exampleBlock(await firstMessage(T.VERSION_RESPONSE), 'message'),
  offer: async () => exampleBlock(await firstMessage(T.OFFERCHANNEL, (m) => (m.value as { offer: { if_type: string } }).offer.if_type === DeviceClass.HEART_BEAT), 'message'),
  'gpadl-split': async () => (await splitGpadl()).map((b) => exampleBlock(b, 'message')).join('\n\n'),
  'ic-packet': async () => exampleBlock(await icPacket(), 'packet'),
  'wrapped-ring': async () => exampleBlock(wrappedRing(), 'ring'),
};

export async function byteExample(name: string): Promise<string> {
  const make = EXAMPLES[name];
  if (!make) throw new Error(`no byte example '${name}' (have ${Object.keys(EXAMPLES).join(', ')})`);
  return make();
}
