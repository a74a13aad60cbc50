// `hvkit decode`: the worked examples of vmbus.md §13, the errors that name a field, the input
// forms, and property tests that neither the decoder nor the command crash on any input.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { WireError } from '../../src/tlfs/struct.js';
import { DECODE_AS, describeBytes, formatReport, HexTextError, parseHexText, reportJson } from '../../src/vmbus/wire/describe.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

async function run(...args: string[]): Promise<{ code: number; lines: string[]; err: string }> {
  const lines: string[] = [];
  let err = '';
  const code = await main(['node', 'hvkit', 'decode', ...args], { out: (l) => lines.push(l), err: (t) => (err += t) });
  return { code, lines, err };
}

// vmbus.md §13, exactly as printed there.
const INITIATE_CONTACT = `0000: 0e 00 00 00 00 00 00 00 03 00 05 00 00 00 00 00
0010: 02 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00
0020: 00 10 00 00 01 00 00 00`;
const VERSION_RESPONSE = '0000: 0f 00 00 00 00 00 00 00 01 00 00 00 01 00 00 00';
const HELLO_PACKET = `0000: 06 00 02 00 03 00 01 00 88 77 66 55 44 33 22 11
0010: 68 65 6c 6c 6f 00 00 00 00 00 00 00 40 00 00 00`;

const bytesOf = (hex: string): Uint8Array => Uint8Array.from(hex.replace(/\s/g, '').match(/../g)!, (b) => parseInt(b, 16));
const hexOf = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');

const tmp = mkdtempSync(join(tmpdir(), 'hvkit-decode-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('hvkit decode: the worked examples of vmbus.md §13', () => {
  it('INITIATE_CONTACT requesting 5.3', async () => {
    const { code, lines } = await run(INITIATE_CONTACT);
    expect(code).toBe(0);
    expect(lines[0]).toBe('channel message INITIATE_CONTACT (14), 40 bytes');
    expect(lines).toContain('  header.msgtype = 0xe (14; INITIATE_CONTACT)');
    expect(lines).toContain('  vmbus_version_requested = 0x50003 (327683; version 5.3)');
    expect(lines).toContain('  target_vcpu = 0');
    expect(lines).toContain('  msg_sint = 2');
    expect(lines).toContain('  msg_vtl = 0');
    expect(lines).toContain('  feature_flags = 0');
    expect(lines).toContain('  monitor_page1 = 0x100000000');
    expect(lines).toContain('  monitor_page2 = 0x100001000');
    expect(lines.some((l) => l.includes('trailing'))).toBe(false);
  });

  it('VERSION_RESPONSE accepting, msg_conn_id 1', async () => {
    const { code, lines } = await run(VERSION_RESPONSE);
    expect(code).toBe(0);
    expect(lines).toEqual([
      'channel message VERSION_RESPONSE (15), 16 bytes',
      '  header.msgtype = 0xf (15; VERSION_RESPONSE)',
      '  header.padding = 0',
      '  version_supported = 1 (accepted)',
      '  connection_state = 0 (SUCCESSFUL)',
      '  padding = 0',
      '  msg_conn_id = 0x1',
    ]);
  });

  it('the in-band "hello" packet and its trailer', async () => {
    const { code, lines } = await run(HELLO_PACKET);
    expect(code).toBe(0);
    expect(lines[0]).toBe('packet VM_PKT_DATA_INBAND (6), 24 bytes');
    expect(lines).toContain('  type = 6 (VM_PKT_DATA_INBAND)');
    expect(lines).toContain('  offset8 = 2 (16 bytes)');
    expect(lines).toContain('  len8 = 3 (24 bytes)');
    expect(lines).toContain('  flags = 0x1 (COMPLETION_REQUESTED)');
    expect(lines).toContain('  trans_id = 0x1122334455667788');
    expect(lines).toContain('  payload = 68656c6c6f000000 (8 bytes; ascii "hello")');
    // The next packet starts at 0x40 + 24 + 8: the trailer holds 0x40 in its upper half.
    expect(lines).toContain('  trailer.start_offset = 0x40 (64; where the packet starts in the ring data)');
  });

  it('GPADL_HEADER for relid 5, handle 0xE1E10, one 8-page range', async () => {
    const pfns = Array.from({ length: 8 }, (_, i) => `${(0x40 + i).toString(16)} 23 01 00 00 00 00 00`).join(' ');
    const { code, lines } = await run('08 00 00 00 00 00 00 00 05 00 00 00 10 1e 0e 00 48 00 01 00 00 80 00 00 00 00 00 00 ' + pfns);
    expect(code).toBe(0);
    expect(lines[0]).toBe('channel message GPADL_HEADER (8), 92 bytes');
    expect(lines).toContain('  gpadl = 0xe1e10 (925200)');
    expect(lines).toContain('  range_buflen = 72');
    expect(lines).toContain('  range[0].byte_count = 32768');
    expect(lines).toContain('  range[0].pfn_array = 0x12340 0x12341 0x12342 0x12343 0x12344 0x12345 0x12346 0x12347');
  });
});

describe('hvkit decode: errors name the field', () => {
  it('a truncated OFFERCHANNEL names the first field that does not fit, exit 1', async () => {
    // 186 bytes: child_relid (offset 184, 4 bytes, vmbus.md §2.3) is cut.
    const cut = new Uint8Array(186);
    cut[0] = 1;
    const { code, lines, err } = await run(hexOf(cut));
    expect(code).toBe(1);
    expect(lines).toEqual([]);
    expect(err).toBe('hvkit decode: channel message: vmbus_channel_offer_channel.child_relid: OFFERCHANNEL needs 196 bytes, have 186\n');
  });

  it('a cut in a bit field names the bit field as Linux does, not the member that holds it', async () => {
    // monitor_allocated is bit 0 of offset 189, is_dedicated_interrupt bit 0 of offset 190 (vmbus.md §2.3).
    for (const [length, field] of [[189, 'monitor_allocated'], [191, 'is_dedicated_interrupt']] as const) {
      const cut = new Uint8Array(length);
      cut[0] = 1;
      const { err } = await run(hexOf(cut));
      expect(err).toBe(`hvkit decode: channel message: vmbus_channel_offer_channel.${field}: OFFERCHANNEL needs 196 bytes, have ${length}\n`);
    }
  });

  it('a packet whose offset8 points inside the descriptor names offset8, exit 1', async () => {
    const inside = await run('06 00 01 00 02 00 00 00 01 00 00 00 00 00 00 00');
    expect(inside.code).toBe(1);
    expect(inside.err).toMatch(/^hvkit decode: packet: offset8: 8 is not within \[16, 16\]\n$/);
    // offset8 past len8, read as a packet on request.
    const past = await run('--as', 'packet', '06 00 04 00 02 00 00 00 01 00 00 00 00 00 00 00');
    expect(past.code).toBe(1);
    expect(past.err).toContain('hvkit decode: packet: offset8: 32 is not within [16, 16]');
  });

  it('bytes that are neither report both errors', async () => {
    const { code, err } = await run('ff ff ff ff 00 00 00 00 00 00 00 00 00 00 00 00');
    expect(code).toBe(1);
    expect(err.split('\n').filter(Boolean)).toEqual([
      'hvkit decode: channel message: header.msgtype: 4294967295 is not a channel message type hvkit handles',
      'hvkit decode: packet: type: 0xffff is not a data packet type',
    ]);
  });

  it('bad usage exits 2: not hex, odd digit count, empty, missing file, bad --as', async () => {
    const notHex = await run('0e 00 zz');
    expect(notHex.code).toBe(2);
    expect(notHex.err).toContain('not hex');
    const odd = await run('0e 0');
    expect(odd.code).toBe(2);
    expect(odd.err).toContain('odd number of hex digits (3)');
    expect((await run('')).code).toBe(2);
    expect((await run()).code).toBe(2);
    const missing = await run(join(tmp, 'no-such.bin'));
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('cannot read');
    const empty = join(tmp, 'empty.bin');
    writeFileSync(empty, new Uint8Array(0));
    expect((await run(empty)).code).toBe(2);
    expect((await run('--as', 'frame', '00')).code).toBe(2);
  });
});

describe('hvkit decode: input forms', () => {
  it('a binary file, a hex-text file, and hex split over arguments', async () => {
    const bin = join(tmp, 'initiate.bin');
    writeFileSync(bin, bytesOf(INITIATE_CONTACT.replace(/^\w+: /gm, '')));
    const fromBin = await run(bin);
    expect(fromBin.code).toBe(0);
    expect(fromBin.lines[0]).toBe('channel message INITIATE_CONTACT (14), 40 bytes');
    const txt = join(tmp, 'version.txt');
    writeFileSync(txt, VERSION_RESPONSE + '\n');
    expect((await run(txt)).lines).toContain('  msg_conn_id = 0x1');
    const split = await run(...'0f 00 00 00 00 00 00 00 01 00 00 00 01 00 00 00'.split(' '));
    expect(split.lines).toContain('  version_supported = 1 (accepted)');
  });

  it('xxd and hexdump -C output, 0x prefixes', () => {
    const want = bytesOf('0f00000000000000 0100000001000000');
    expect(parseHexText('00000000: 0f00 0000 0000 0000 0100 0000 0100 0000  ................')).toEqual(want);
    expect(parseHexText('00000000  0f 00 00 00 00 00 00 00  01 00 00 00 01 00 00 00  |................|\n00000010\n')).toEqual(want);
    expect(parseHexText('0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00')).toEqual(want);
    expect(parseHexText('0x0f000000000000000100000001000000')).toEqual(want);
  });

  it('- reads stdin', () => {
    const code = `const m = await import(${JSON.stringify(resolve(root, 'src/cli/main.ts'))}); process.exitCode = await m.main(['node', 'hvkit', 'decode', '-']);`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { input: HELLO_PACKET, encoding: 'utf8', cwd: root });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('trans_id = 0x1122334455667788');
  });

  it('a whole 256-byte SynIC slot holding VERSION_RESPONSE', async () => {
    // vmbus.md §1.2: message_type at 0 (1 = VMBus), payload_size at 4, payload at 16.
    const slot = new Uint8Array(256);
    slot[0] = 1;
    slot[4] = 16;
    slot.set(bytesOf(VERSION_RESPONSE.slice(6)), 16);
    const { code, lines } = await run(hexOf(slot));
    expect(code).toBe(0);
    expect(lines[0]).toBe('synic message VMBUS (1), 256 bytes');
    expect(lines).toContain('  header.payload_size = 16');
    expect(lines).toContain('    channel message VERSION_RESPONSE (15), 16 bytes');
    expect(lines).toContain('      msg_conn_id = 0x1');
    // A payload_size over 240 is named.
    slot[4] = 241;
    const bad = await run('--as', 'slot', hexOf(slot));
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('hvkit decode: synic message: header.payload_size: 241 exceeds the 240-byte payload');
  });

  it('--json prints one JSON object: u64s and bytes as hex strings', async () => {
    const { code, lines } = await run('--json', INITIATE_CONTACT);
    expect(code).toBe(0);
    const j = JSON.parse(lines.join('\n')) as { kind: string; name: string; type: number; length: number; fields: Record<string, unknown> };
    expect(j).toMatchObject({ kind: 'channel message', name: 'INITIATE_CONTACT', type: 14, length: 40 });
    expect(j.fields).toMatchObject({ header: { msgtype: 14, padding: 0 }, vmbus_version_requested: 0x50003, msg_sint: 2, monitor_page1: '0x100000000', monitor_page2: '0x100001000' });
    const packet = JSON.parse((await run('--json', HELLO_PACKET)).lines.join('\n')) as { fields: Record<string, unknown> };
    expect(packet.fields).toMatchObject({ type: 6, offset8: 2, len8: 3, flags: 1, trans_id: '0x1122334455667788', payload: '68656c6c6f000000', trailer: { start_offset: 0x40 } });
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const u32le = (v: number) => Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
const u16le = (v: number) => Uint8Array.of(v & 0xff, v >>> 8);
const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

const u64le = (v: number) => concat(u32le(v % 2 ** 32), u32le(Math.floor(v / 2 ** 32)));

/** A well-formed packet of each data type (vmbus.md §8), which the mutation below may then break. */
const goodPacket = fc.oneof(
  fc.tuple(fc.constantFrom(6, 11), fc.uint8Array({ maxLength: 64 })).map(([type, payload]) => packet(type, new Uint8Array(0), payload)),
  fc
    .array(fc.tuple(fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 0, max: 3 * 4096 }), fc.integer({ min: 0, max: 2 ** 40 })), { minLength: 1, maxLength: 3 })
    .map((ranges) => {
      const body = ranges.map(([offset, count, pfn]) => concat(u32le(count), u32le(offset), ...Array.from({ length: Math.ceil((offset + count) / 4096) }, (_, k) => u64le(pfn + k))));
      return packet(9, concat(u32le(0), u32le(ranges.length), ...body), Uint8Array.of(1, 2, 3));
    }),
  fc
    .array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 4 })
    .map((ranges) => packet(7, concat(u16le(1), Uint8Array.of(0, 0), u32le(ranges.length), ...ranges.map(([c, o]) => concat(u32le(c), u32le(o)))), new Uint8Array(8))),
);

/** Descriptor, extra header and payload padded to 8 bytes, then a ring trailer. */
function packet(type: number, header: Uint8Array, payload: Uint8Array): Uint8Array {
  const offset8 = 2 + header.length / 8;
  const len8 = offset8 + Math.ceil(payload.length / 8);
  const out = new Uint8Array(len8 * 8 + 8);
  out.set(concat(u16le(type), u16le(offset8), u16le(len8), u16le(1), u64le(0x1122)));
  out.set(header, 16);
  out.set(payload, offset8 * 8);
  return out;
}

/** Random bytes, and bytes that start like a message, a packet or a slot so the deeper checks run. */
const wireBytes = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.tuple(fc.integer({ min: 0, max: 26 }), fc.uint8Array({ maxLength: 240 })).map(([t, rest]) => concat(u32le(t), rest)),
  fc
    .tuple(goodPacket, fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }))), fc.integer({ min: -8, max: 8 }))
    .map(([p, mutation, cut]) => {
      const b = p.slice(0, Math.max(0, p.length + Math.min(0, cut)));
      if (mutation && b.length) b[mutation[0] % b.length] = mutation[1];
      return b;
    }),
  fc
    .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 26 }), fc.uint8Array({ minLength: 236, maxLength: 236 }))
    .map(([size, t, rest]) => concat(u32le(1), Uint8Array.of(size), new Uint8Array(11), u32le(t), rest)),
);

describe('hvkit decode: properties', () => {
  it('describeBytes returns a report or typed errors for any bytes, and both print', () => {
    fc.assert(
      fc.property(wireBytes, fc.constantFrom(...DECODE_AS), (bytes, as) => {
        const r = describeBytes(bytes, as);
        if (r.ok) {
          expect(formatReport(r.report).every((l) => typeof l === 'string')).toBe(true);
          JSON.parse(JSON.stringify(reportJson(r.report)));
        } else {
          expect(r.errors.length).toBeGreaterThan(0);
          for (const e of r.errors) expect(e).toBeInstanceOf(WireError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('parseHexText throws only HexTextError', () => {
    const hexish = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEFxX:,| \n\t*.g'.split('')), maxLength: 80 });
    fc.assert(
      fc.property(fc.oneof(hexish, fc.string()), (text) => {
        try {
          expect(parseHexText(text)).toBeInstanceOf(Uint8Array);
        } catch (e) {
          expect(e).toBeInstanceOf(HexTextError);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('the command exits 0 or 1 for any bytes, and 0, 1 or 2 for any hex-like text; it never throws', async () => {
    await fc.assert(
      fc.asyncProperty(wireBytes.filter((b) => b.length > 0), fc.constantFrom(...DECODE_AS), async (bytes, as) => {
        expect([0, 1]).toContain((await run('--as', as, hexOf(bytes))).code);
      }),
      { numRuns: 300 },
    );
    // No '-' in the alphabet: a lone '-' would read this process's stdin.
    const text = fc.string({ unit: fc.constantFrom(...'0123456789abcdefx: \n|,'.split('')), maxLength: 60 });
    await fc.assert(
      fc.asyncProperty(text, async (t) => {
        expect([0, 1, 2]).toContain((await run(t)).code);
      }),
      { numRuns: 300 },
    );
  });
});

/** A ring of one data page, as it lies in memory, with `packets` (trailers included, as packet() makes them) written from `start` on (wrapping), indices set around them. */
function ringWith(start: number, packets: Uint8Array[]): Uint8Array {
  const ring = new Uint8Array(8192);
  const dv = new DataView(ring.buffer);
  let at = start;
  for (const p of packets) {
    const withTrailer = p.slice();
    new DataView(withTrailer.buffer).setUint32(p.length - 4, at, true);
    withTrailer.forEach((b, i) => (ring[4096 + ((at + i) % 4096)] = b));
    at = (at + withTrailer.length) % 4096;
  }
  dv.setUint32(0, at, true); // write_index
  dv.setUint32(4, start, true); // read_index
  dv.setUint32(64, 1, true); // feature_bits
  return ring;
}

describe('hvkit decode --as ring', () => {
  const hello = packet(6, new Uint8Array(0), new TextEncoder().encode('hello wrapping world'));

  it('puts a packet that runs past the end of the data area back together, and lists every unread packet', async () => {
    const ring = ringWith(4096 - 24, [hello, packet(11, new Uint8Array(0), new Uint8Array(8))]);
    const r = describeBytes(ring, 'ring');
    expect(r.ok ? '' : r.errors.map((e) => e.message).join('; ')).toBe('');
    if (!r.ok) return;
    const lines = formatReport(r.report);
    expect(lines[0]).toBe('ring, data area 4096 bytes, 2 unread packets, 8192 bytes');
    expect(lines).toContain('  read_index = 0xfe8 (4072)');
    expect(lines).toContain('  packet VM_PKT_DATA_INBAND (6), 40 bytes, at 0xfe8, continued at 0 after the end of the data area');
    expect(lines).toContain('    payload = 68656c6c6f207772617070696e6720776f726c6400000000 (24 bytes; ascii "hello wrapping world")');
    expect(lines.some((l) => l === '  packet VM_PKT_COMP (11), 24 bytes, at 0x18')).toBe(true);
    expect((reportJson(r.report) as { packets: unknown[] }).packets).toHaveLength(2);
    // The same through the command, from a file of hexdump -C text with '*' lines.
    const file = join(tmp, 'ring.hexdump');
    writeFileSync(file, hexdumpC(ring) + '\n');
    const { code, lines: out } = await run('--as', 'ring', file);
    expect(code).toBe(0);
    expect(out).toEqual(lines);
  });

  it('names the index or the packet at fault', () => {
    const bad = (ring: Uint8Array) => {
      const r = describeBytes(ring, 'ring');
      return r.ok ? 'decoded' : r.errors.map((e) => `${e.struct}: ${e.field}: ${e.reason}`).join('; ');
    };
    const unaligned = ringWith(0, [hello]);
    new DataView(unaligned.buffer).setUint32(0, 4, true);
    expect(bad(unaligned)).toBe('ring: write_index: 4 is not an 8-byte aligned offset below 4096');
    const beyond = ringWith(0, [hello]);
    new DataView(beyond.buffer).setUint32(4, 4096, true);
    expect(bad(beyond)).toBe('ring: read_index: 4096 is not an 8-byte aligned offset below 4096');
    const long = ringWith(0, [hello]);
    new DataView(long.buffer).setUint16(4096 + 4, 200, true); // len8 past the unread bytes
    expect(bad(long)).toBe('ring: packet at 0x0.len8: 1600 bytes and a trailer do not fit the 48 unread bytes');
    expect(bad(new Uint8Array(4096))).toMatch(/^ring: : a ring is a 4096-byte control page and a data area/);
  });
});

/** `hexdump -C` of `b`, with '*' for repeated lines. */
function hexdumpC(b: Uint8Array): string {
  const out: string[] = [];
  let prev = '';
  let starred = false;
  for (let at = 0; at < b.length; at += 16) {
    const row = Array.from(b.subarray(at, at + 16), (x) => x.toString(16).padStart(2, '0'));
    const key = row.join(' ');
    if (key === prev) {
      if (!starred) out.push('*');
      starred = true;
      continue;
    }
    prev = key;
    starred = false;
    out.push(`${at.toString(16).padStart(8, '0')}  ${row.slice(0, 8).join(' ')}  ${row.slice(8).join(' ')}  |${'.'.repeat(row.length)}|`);
  }
  out.push(b.length.toString(16).padStart(8, '0'));
  return out.join('\n');
}

describe('hex text with repeated lines', () => {
  it("expands '*' up to the next line's offset, in hexdump -C and xxd -a forms", () => {
    const b = new Uint8Array(100).map((_, i) => (i < 16 ? 1 : i >= 80 ? i : 0));
    expect(parseHexText(hexdumpC(b))).toEqual(b);
    const xxd = ['00000000: 0000 0000 0000 0000 0000 0000 0000 0000  ................', '*', '00000030: 0102 0304                                ....'].join('\n');
    expect(parseHexText(xxd)).toEqual(concat(new Uint8Array(48), Uint8Array.of(1, 2, 3, 4)));
  });

  it("refuses a '*' it cannot expand", () => {
    const fails = (text: string) => () => parseHexText(text);
    expect(fails('00 01\n*\n02 03')).toThrow(/can be expanded only up to the offset of the next line, which has none/);
    expect(fails('0000: 00 01\n*')).toThrow(/which is missing/);
    expect(fails('*\n0010: 00')).toThrow(/needs a line of bytes before it/);
    expect(fails('0000: 00 01 02\n*\n0004: 00')).toThrow(/does not follow whole repeats/);
    expect(fails('0000: 00 01\n*\nffffffff: 00')).toThrow(/beyond the 16 MiB/);
  });
});
