// The trace file format: one JSON object per line, one line per TraceEvent (any kind of the
// partition's event stream, src/hypervisor/trace.ts), fields as the event has them except that
// 64-bit values are "0x…" strings (JSON numbers stop at 2^53).
// One schema per event shape serves both directions: the writer needs only JSON.stringify,
// the reader checks every field against the schema, so a line reads back into exactly the
// event that was written, or is refused with the field named.
import type { HypervisorEvent, TraceEvent, TraceKind } from '../hypervisor/trace.js';

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
  | 'text'
  /** A list of 64-bit values, each written "0x…". */
  | 'u64-list'
  /** VP indexes: a list of non-negative integers, or "all". */
  | 'vps';

interface FieldSpec {
  readonly type: FieldType;
  readonly optional?: boolean;
}

type Schema = Readonly<Record<string, FieldSpec>>;

const req = (type: FieldType): FieldSpec => ({ type });
const opt = (type: FieldType): FieldSpec => ({ type, optional: true });

/** Each event shape's fields after `ns`, `kind` and its discriminant (`what` or `dir`), if any. */
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
  'to-host': { vp: req('uint'), connection: req('uint'), type: req('uint'), payload: req('hex'), port: opt('uint'), channel: opt('uint') },
  'to-guest': { vp: req('uint'), sint: req('uint'), type: req('uint'), payload: req('hex'), channel: opt('uint') },
};

const SIGNALS: Readonly<Record<string, Schema>> = {
  'to-host': { vp: opt('uint'), monitor: opt('uint'), connection: req('uint'), flag: req('uint'), port: opt('uint'), channel: opt('uint') },
  'to-guest': { vp: req('uint'), sint: req('uint'), flag: req('uint'), coalesced: opt('bool'), channel: opt('uint') },
};

const PACKET: Schema = { channel: req('uint'), type: req('uint'), transId: req('u64'), length: req('uint'), bytes: req('hex'), readIndex: opt('uint'), writeIndex: opt('uint'), ringSize: opt('uint') };
const PACKETS: Readonly<Record<string, Schema>> = { 'to-host': PACKET, 'to-guest': PACKET };

/** What the hypervisor does on its own: one shape each, no discriminant. */
const HYPERVISOR: Readonly<Record<HypervisorEvent['kind'], Schema>> = {
  'message-queued': { vp: req('uint'), sint: req('uint'), type: req('uint'), depth: req('uint') },
  'sint-asserted': { vp: req('uint'), sint: req('uint'), vector: req('uint') },
  'timer-expired': { vp: req('uint'), timer: req('uint'), direct: req('bool'), expiration: req('u64') },
  ipi: { from: req('uint'), to: req('uint'), vector: req('uint') },
  'tlb-flush': { vp: req('uint'), targets: req('vps'), addressSpace: req('u64'), flags: req('u64'), ranges: req('uint') },
  crash: { params: req('u64-list'), message: opt('text') },
  reset: {},
  'guest-idle': { vp: req('uint') },
  'spin-wait': { vp: req('uint'), count: req('u64') },
  visibility: { gpns: req('uint'), visibility: req('uint') },
  'interrupt-retarget': { deviceId: req('u64'), vector: req('uint'), targets: req('vps') },
};

type KindSpec = { by: 'what' | 'dir'; shapes: Readonly<Record<string, Schema>> } | { schema: Schema };

/** By kind: which field tells the shapes apart and the shapes, or the one shape. */
const KINDS: Readonly<Record<TraceKind, KindSpec>> = {
  trap: { by: 'what', shapes: TRAPS },
  message: { by: 'dir', shapes: MESSAGES },
  signal: { by: 'dir', shapes: SIGNALS },
  packet: { by: 'dir', shapes: PACKETS },
  ...(Object.fromEntries(Object.entries(HYPERVISOR).map(([k, schema]) => [k, { schema }])) as Record<HypervisorEvent['kind'], KindSpec>),
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
    case 'u64-list':
      return Array.isArray(v) && v.every((x) => typeof x === 'string' && U64.test(x)) ? { value: v.map((x: string) => BigInt(x)) } : 'expected a list of 64-bit values as "0x…" strings';
    case 'vps':
      if (v === 'all') return { value: v };
      return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0) ? { value: [...(v as number[])] } : 'expected "all" or a list of VP indexes';
  }
}

/** The event a parsed JSON line holds, or the first thing wrong with it. Fields not in the schema are ignored. */
export function decodeEvent(v: unknown): Decoded {
  if (!isObject(v)) return { ok: false, reason: 'not a JSON object' };
  const kind = v.kind;
  if (typeof kind !== 'string' || !own(KINDS, kind)) return { ok: false, reason: `kind: expected one of ${listOf(Object.keys(KINDS))}` };
  const spec = KINDS[kind as TraceKind];
  let schema: Schema;
  const out: Record<string, unknown> = { ns: 0, kind };
  if ('schema' in spec) {
    schema = spec.schema;
  } else {
    const { by, shapes } = spec;
    const shape = v[by];
    if (typeof shape !== 'string' || !own(shapes, shape)) return { ok: false, reason: `${by}: expected one of ${listOf(Object.keys(shapes))} for a ${kind}` };
    out[by] = shape;
    schema = shapes[shape]!;
  }
  const ns = field(v.ns, 'ns');
  if (typeof ns === 'string') return { ok: false, reason: `ns: ${ns}` };
  out.ns = ns.value;
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
