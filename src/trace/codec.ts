// The trace file format: one JSON object per line, one line per TraceEvent, fields as the
// event has them except that 64-bit values are "0x…" strings (JSON numbers stop at 2^53).
// One schema per event shape serves both directions: the writer needs only JSON.stringify,
// the reader checks every field against the schema, so a line reads back into exactly the
// event that was written, or is refused with the field named.
import type { TraceEvent } from '../hypervisor/trace.js';

type FieldType =
  /** A non-negative safe integer. */
  | 'uint'
  /** Virtual ns: a finite non-negative number. */
  | 'ns'
  /** A bigint up to 64 bits, written "0x…". */
  | 'u64'
  /** Bytes as lowercase hex, two digits each. */
  | 'hex'
  | 'bool'
  | 'text';

interface FieldSpec {
  readonly type: FieldType;
  readonly optional?: boolean;
}

type Schema = Readonly<Record<string, FieldSpec>>;

const req = (type: FieldType): FieldSpec => ({ type });
const opt = (type: FieldType): FieldSpec => ({ type, optional: true });

/** Each event shape's fields after `ns`, `kind` and its discriminant (`what` or `dir`). */
const TRAPS: Readonly<Record<string, Schema>> = {
  cpuid: { vp: req('uint'), leaf: req('uint'), subleaf: req('uint'), eax: req('uint'), ebx: req('uint'), ecx: req('uint'), edx: req('uint') },
  rdmsr: { vp: req('uint'), msr: req('uint'), value: opt('u64'), fault: opt('text') },
  wrmsr: { vp: req('uint'), msr: req('uint'), value: req('u64'), fault: opt('text') },
  hypercall: {
    vp: req('uint'),
    control: req('u64'),
    code: req('uint'),
    fast: req('bool'),
    repCount: req('uint'),
    repStart: req('uint'),
    input: req('u64'),
    output: req('u64'),
    status: opt('uint'),
    repsCompleted: opt('uint'),
    fault: opt('text'),
  },
  smccc: { vp: req('uint'), func: req('uint'), result: opt('u64'), fault: opt('text') },
};

const MESSAGES: Readonly<Record<string, Schema>> = {
  'to-host': { vp: req('uint'), connection: req('uint'), type: req('uint'), payload: req('hex'), channel: opt('uint') },
  'to-guest': { vp: req('uint'), sint: req('uint'), type: req('uint'), payload: req('hex'), channel: opt('uint') },
};

const SIGNALS: Readonly<Record<string, Schema>> = {
  'to-host': { vp: req('uint'), connection: req('uint'), flag: req('uint'), channel: opt('uint') },
  'to-guest': { vp: req('uint'), sint: req('uint'), flag: req('uint'), channel: opt('uint') },
};

const PACKET: Schema = { channel: req('uint'), type: req('uint'), transId: req('u64'), length: req('uint'), bytes: req('hex') };
const PACKETS: Readonly<Record<string, Schema>> = { 'to-host': PACKET, 'to-guest': PACKET };

/** By kind: which field tells the shapes apart, and the shapes. */
const KINDS: Readonly<Record<string, { by: 'what' | 'dir'; shapes: Readonly<Record<string, Schema>> }>> = {
  trap: { by: 'what', shapes: TRAPS },
  message: { by: 'dir', shapes: MESSAGES },
  signal: { by: 'dir', shapes: SIGNALS },
  packet: { by: 'dir', shapes: PACKETS },
};

const hex64 = (v: bigint): string => `0x${v.toString(16)}`;

/** One line of the trace file for `e`, without the newline. */
export function encodeEvent(e: TraceEvent): string {
  return JSON.stringify(e, (_k, v: unknown) => (typeof v === 'bigint' ? hex64(v) : v));
}

export type Decoded = { ok: true; event: TraceEvent } | { ok: false; reason: string };

const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const listOf = (names: readonly string[]): string => names.map((n) => `'${n}'`).join(', ');
const U64 = /^0x[0-9a-f]{1,16}$/;
const HEX = /^(?:[0-9a-f]{2})*$/;

/** Checks a field; returns its value as the event holds it, or why it is not one. */
function field(v: unknown, type: FieldType): { value: unknown } | string {
  switch (type) {
    case 'uint':
      return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? { value: v } : 'expected a non-negative integer';
    case 'ns':
      return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? { value: v } : 'expected a non-negative number of ns';
    case 'u64':
      return typeof v === 'string' && U64.test(v) ? { value: BigInt(v) } : 'expected a 64-bit value as a "0x…" string';
    case 'hex':
      return typeof v === 'string' && HEX.test(v) ? { value: v } : 'expected bytes as lowercase hex';
    case 'bool':
      return typeof v === 'boolean' ? { value: v } : 'expected true or false';
    case 'text':
      return typeof v === 'string' ? { value: v } : 'expected a string';
  }
}

/** The event a parsed JSON line holds, or the first thing wrong with it. Fields not in the schema are ignored. */
export function decodeEvent(v: unknown): Decoded {
  if (!isObject(v)) return { ok: false, reason: 'not a JSON object' };
  const kind = v.kind;
  if (typeof kind !== 'string' || !own(KINDS, kind)) return { ok: false, reason: `kind: expected one of ${listOf(Object.keys(KINDS))}` };
  const { by, shapes } = KINDS[kind]!;
  const shape = v[by];
  if (typeof shape !== 'string' || !own(shapes, shape)) return { ok: false, reason: `${by}: expected one of ${listOf(Object.keys(shapes))} for a ${kind}` };
  const ns = field(v.ns, 'ns');
  if (typeof ns === 'string') return { ok: false, reason: `ns: ${ns}` };
  const out: Record<string, unknown> = { ns: ns.value, kind, [by]: shape };
  const schema = shapes[shape]!;
  for (const name of Object.keys(schema)) {
    const spec = schema[name]!;
    if (!own(v, name)) {
      if (spec.optional) continue;
      return { ok: false, reason: `${name}: missing` };
    }
    const f = field(v[name], spec.type);
    if (typeof f === 'string') return { ok: false, reason: `${name}: ${f}` };
    out[name] = f.value;
  }
  return { ok: true, event: out as unknown as TraceEvent };
}

/** Bytes of a hex field (`decodeEvent` has checked it). */
export function hexBytes(hex: string): Uint8Array {
  const b = new Uint8Array(hex.length >>> 1);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return b;
}
