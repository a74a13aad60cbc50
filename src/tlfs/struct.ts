// One declaration per wire structure: fields in order (packed, little-endian), from which the
// size, every field offset, the decoder, the encoder and the TypeScript type are all derived.
// Declarations name their Linux counterpart so the tests can check them against the oracle
// (../shared/oracle/linux-hv-layouts.json).

/** A wire field does not fit, or a value does not fit its field. */
export class WireError extends Error {
  override readonly name = 'WireError';
  constructor(
    /** The structure being decoded or encoded. */
    readonly struct: string,
    /** The field that was wrong (dotted path), or '' for the whole structure. */
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${struct}${field ? '.' + field : ''}: ${reason}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Field types

export interface ScalarType<K extends 'u8' | 'u16' | 'u32' | 'u64'> {
  readonly kind: K;
  readonly size: number;
}
export const u8: ScalarType<'u8'> = { kind: 'u8', size: 1 };
export const u16: ScalarType<'u16'> = { kind: 'u16', size: 2 };
export const u32: ScalarType<'u32'> = { kind: 'u32', size: 4 };
export const u64: ScalarType<'u64'> = { kind: 'u64', size: 8 };

export interface BytesType {
  readonly kind: 'bytes';
  readonly size: number;
}
/** An opaque run of bytes (payloads, reserved areas); decodes to a copy. */
export const bytes = (size: number): BytesType => ({ kind: 'bytes', size });

/** A GUID in Microsoft's mixed-endian byte order; decodes to its lower-case text form. */
export interface GuidType {
  readonly kind: 'guid';
  readonly size: 16;
}
export const guid: GuidType = { kind: 'guid', size: 16 };

const GUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** "f8615163-df3e-46c5-913f-f2d2f965ed0e" → bytes 63 51 61 f8 3e df c5 46 91 3f f2 d2 f9 65 ed 0e. */
export function guidToBytes(text: string, out: Uint8Array = new Uint8Array(16), at = 0): Uint8Array {
  if (!GUID_TEXT.test(text)) throw new WireError('guid', '', `'${text}' is not a GUID`);
  const h = text.replace(/-/g, '');
  const byte = (i: number) => parseInt(h.slice(2 * i, 2 * i + 2), 16);
  // Data1 (u32), Data2 and Data3 (u16) little-endian; Data4 (8 bytes) in text order.
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  order.forEach((src, i) => (out[at + i] = byte(src)));
  return out;
}

export function guidFromBytes(b: Uint8Array, at = 0): string {
  const x = (i: number) => b[at + i]!.toString(16).padStart(2, '0');
  return `${x(3)}${x(2)}${x(1)}${x(0)}-${x(5)}${x(4)}-${x(7)}${x(6)}-${x(8)}${x(9)}-${x(10)}${x(11)}${x(12)}${x(13)}${x(14)}${x(15)}`;
}

export interface ArrayType<E extends FieldType> {
  readonly kind: 'array';
  readonly elem: E;
  readonly count: number;
  readonly size: number;
}
export const array = <E extends FieldType>(elem: E, count: number): ArrayType<E> => ({
  kind: 'array',
  elem,
  count,
  size: elem.size * count,
});

export interface FlexType<E extends FieldType> {
  readonly kind: 'flex';
  readonly elem: E;
  readonly size: 0;
}
/** A C flexible array member: occupies no bytes of the fixed part; callers parse it. */
export const flex = <E extends FieldType>(elem: E): FlexType<E> => ({ kind: 'flex', elem, size: 0 });

export type FieldType =
  | ScalarType<'u8' | 'u16' | 'u32' | 'u64'>
  | BytesType
  | GuidType
  | ArrayType<FieldType>
  | FlexType<FieldType>
  | Bitfield<BitSpec>
  | Struct<FieldSpec>;

// ---------------------------------------------------------------------------------------------
// Bit fields: an integer register or member split into named fields, low bit first.

/** Field name → width in bits, from bit 0 upwards. */
export type BitSpec = Readonly<Record<string, number>>;
type WideWidth = 54 | 55 | 56 | 57 | 58 | 59 | 60 | 61 | 62 | 63 | 64;
/** Fields wider than 53 bits do not fit a JS number exactly, so they decode to bigint. */
export type BitValue<W> = W extends WideWidth ? bigint : number;
export type BitsOf<S extends BitSpec> = { [K in keyof S]: BitValue<S[K]> };

export interface BitLayout {
  readonly name: string;
  readonly shift: number;
  readonly width: number;
  /** Mask of the field in place (already shifted). */
  readonly mask: bigint;
}

export class Bitfield<S extends BitSpec> {
  readonly kind = 'bits';
  readonly size: number;
  readonly bits: readonly BitLayout[];
  readonly byName: { readonly [K in keyof S]: BitLayout };
  /** Union of the fields whose names start with "reserved" (must be zero unless preserved). */
  readonly reservedMask: bigint;

  constructor(
    readonly name: string,
    readonly base: 'u8' | 'u16' | 'u32' | 'u64',
    spec: S,
  ) {
    this.size = { u8: 1, u16: 2, u32: 4, u64: 8 }[base];
    let shift = 0;
    const bits: BitLayout[] = [];
    const byName: Record<string, BitLayout> = {};
    let reserved = 0n;
    for (const [fname, width] of Object.entries(spec)) {
      const mask = ((1n << BigInt(width)) - 1n) << BigInt(shift);
      const layout = { name: fname, shift, width, mask };
      bits.push(layout);
      byName[fname] = layout;
      if (fname.startsWith('reserved')) reserved |= mask;
      shift += width;
    }
    if (shift !== this.size * 8) throw new Error(`bitfield ${name}: widths add to ${shift}, not ${this.size * 8}`);
    this.bits = bits;
    this.byName = byName as { [K in keyof S]: BitLayout };
    this.reservedMask = reserved;
  }

  /** One field of an integer image. */
  get<K extends keyof S & string>(value: bigint, field: K): BitValue<S[K]> {
    const b = this.byName[field];
    const v = (value & b.mask) >> BigInt(b.shift);
    return (b.width > 53 ? v : Number(v)) as BitValue<S[K]>;
  }

  /** An integer image with one field replaced. Throws WireError if the value does not fit. */
  with<K extends keyof S & string>(value: bigint, field: K, v: BitValue<S[K]> | boolean): bigint {
    const b = this.byName[field];
    const n = BigInt(typeof v === 'boolean' ? (v ? 1 : 0) : v);
    if (n < 0n || n >> BigInt(b.width) !== 0n) throw new WireError(this.name, field, `value ${n} does not fit ${b.width} bits`);
    return (value & ~b.mask) | (n << BigInt(b.shift));
  }

  decode(value: bigint): BitsOf<S> {
    const out: Record<string, number | bigint> = {};
    for (const b of this.bits) {
      const v = (value & b.mask) >> BigInt(b.shift);
      out[b.name] = b.width > 53 ? v : Number(v);
    }
    return out as BitsOf<S>;
  }

  /** Builds an integer image; omitted fields are zero. Throws WireError if a value does not fit. */
  encode(fields: Partial<{ [K in keyof S]: BitValue<S[K]> | boolean }>): bigint {
    let value = 0n;
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      if (!(k in this.byName)) throw new WireError(this.name, k, 'no such field');
      value = this.with(value, k as keyof S & string, v as BitValue<S[keyof S]>);
    }
    return value;
  }
}

export const bits = <S extends BitSpec>(name: string, base: 'u8' | 'u16' | 'u32' | 'u64', spec: S): Bitfield<S> =>
  new Bitfield(name, base, spec);

// ---------------------------------------------------------------------------------------------
// Structures

export type FieldSpec = Readonly<Record<string, FieldType>>;

export type ValueOf<T> =
  T extends ScalarType<infer K> ? (K extends 'u64' ? bigint : number)
  : T extends BytesType ? Uint8Array
  : T extends GuidType ? string
  : T extends ArrayType<infer E> ? ValueOf<E>[]
  : T extends FlexType<FieldType> ? never
  : T extends Bitfield<infer S> ? BitsOf<S>
  : T extends Struct<infer F> ? StructValue<F>
  : never;

type NonFlexKeys<F> = { [K in keyof F]: F[K] extends FlexType<FieldType> ? never : K }[keyof F];
export type StructValue<F extends FieldSpec> = { [K in NonFlexKeys<F>]: ValueOf<F[K]> };

export interface FieldLayout {
  readonly name: string;
  readonly offset: number;
  readonly type: FieldType;
}

/** A declared wire structure. `StructValue<typeof S.fields>` (alias `Infer<typeof S>`) is its type. */
export class Struct<F extends FieldSpec> {
  readonly kind = 'struct';
  readonly size: number;
  readonly layout: readonly FieldLayout[];
  /** Byte offset of each top-level field. */
  readonly offsets: { readonly [K in keyof F]: number };

  constructor(
    /** The C name of the structure in Linux (or in the TLFS where Linux has none). */
    readonly name: string,
    readonly fields: F,
    opts: { size?: number } = {},
  ) {
    let offset = 0;
    const layout: FieldLayout[] = [];
    const offsets: Record<string, number> = {};
    for (const [fname, type] of Object.entries(fields)) {
      layout.push({ name: fname, offset, type });
      offsets[fname] = offset;
      offset += type.size;
    }
    // A declared size larger than the fields models trailing padding that Linux does not name.
    if (opts.size !== undefined && opts.size < offset) throw new Error(`struct ${name}: fields take ${offset} bytes, more than ${opts.size}`);
    this.size = opts.size ?? offset;
    this.layout = layout;
    this.offsets = offsets as { [K in keyof F]: number };
  }

  /** Decodes from `buf` at `offset`; throws WireError naming the structure if it is too short. */
  decode(buf: Uint8Array, offset = 0): StructValue<F> {
    if (offset < 0 || offset + this.size > buf.length) {
      throw new WireError(this.name, '', `needs ${this.size} bytes at offset ${offset}, have ${Math.max(0, buf.length - offset)}`);
    }
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    return decodeStruct(this, dv, offset) as StructValue<F>;
  }

  /** Encodes into `buf` at `offset` (or into a new zeroed buffer of `size` bytes). */
  encode(value: StructValue<F>, buf: Uint8Array = new Uint8Array(this.size), offset = 0): Uint8Array {
    if (offset < 0 || offset + this.size > buf.length) {
      throw new WireError(this.name, '', `needs ${this.size} bytes at offset ${offset}, have ${Math.max(0, buf.length - offset)}`);
    }
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    encodeStruct(this, value as Record<string, unknown>, dv, offset, this.name);
    return buf;
  }

  /** A value of this structure with every field zero. */
  zero(): StructValue<F> {
    return this.decode(new Uint8Array(this.size));
  }
}

export type Infer<S> = S extends Struct<infer F> ? StructValue<F> : S extends Bitfield<infer B> ? BitsOf<B> : never;

export const struct = <F extends FieldSpec>(name: string, fields: F, opts?: { size?: number }): Struct<F> =>
  new Struct(name, fields, opts);

function decodeField(type: FieldType, dv: DataView, off: number): unknown {
  switch (type.kind) {
    case 'u8':
      return dv.getUint8(off);
    case 'u16':
      return dv.getUint16(off, true);
    case 'u32':
      return dv.getUint32(off, true);
    case 'u64':
      return dv.getBigUint64(off, true);
    case 'bytes':
      return new Uint8Array(dv.buffer.slice(dv.byteOffset + off, dv.byteOffset + off + type.size));
    case 'guid':
      return guidFromBytes(new Uint8Array(dv.buffer, dv.byteOffset + off, 16));
    case 'array': {
      const out: unknown[] = [];
      for (let i = 0; i < type.count; i++) out.push(decodeField(type.elem, dv, off + i * type.elem.size));
      return out;
    }
    case 'flex':
      return undefined;
    case 'bits':
      return type.decode(readUint(dv, off, type.base));
    case 'struct':
      return decodeStruct(type, dv, off);
  }
}

function decodeStruct(s: Struct<FieldSpec>, dv: DataView, off: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of s.layout) {
    if (f.type.kind === 'flex') continue;
    out[f.name] = decodeField(f.type, dv, off + f.offset);
  }
  return out;
}

function encodeField(type: FieldType, v: unknown, dv: DataView, off: number, path: string, sname: string): void {
  switch (type.kind) {
    case 'u8':
    case 'u16':
    case 'u32': {
      const max = type.kind === 'u8' ? 0xff : type.kind === 'u16' ? 0xffff : 0xffffffff;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new WireError(sname, path, `${String(v)} is not a ${type.kind}`);
      if (type.kind === 'u8') dv.setUint8(off, v);
      else if (type.kind === 'u16') dv.setUint16(off, v, true);
      else dv.setUint32(off, v, true);
      return;
    }
    case 'u64':
      if (typeof v !== 'bigint' || v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new WireError(sname, path, `${String(v)} is not a u64`);
      dv.setBigUint64(off, v, true);
      return;
    case 'bytes': {
      if (!(v instanceof Uint8Array) || v.length > type.size) throw new WireError(sname, path, `needs at most ${type.size} bytes`);
      const dst = new Uint8Array(dv.buffer, dv.byteOffset + off, type.size);
      dst.fill(0);
      dst.set(v);
      return;
    }
    case 'guid': {
      if (typeof v !== 'string' || !GUID_TEXT.test(v)) throw new WireError(sname, path, `${String(v)} is not a GUID`);
      guidToBytes(v, new Uint8Array(dv.buffer, dv.byteOffset + off, 16));
      return;
    }
    case 'array': {
      if (!Array.isArray(v) || v.length !== type.count) throw new WireError(sname, path, `needs ${type.count} elements`);
      v.forEach((e, i) => encodeField(type.elem, e, dv, off + i * type.elem.size, `${path}[${i}]`, sname));
      return;
    }
    case 'flex':
      return;
    case 'bits': {
      if (typeof v !== 'object' || v === null) throw new WireError(sname, path, 'needs an object of bit fields');
      let image: bigint;
      try {
        image = type.encode(v as Record<string, number>);
      } catch (e) {
        if (e instanceof WireError) throw new WireError(sname, `${path}.${e.field}`, e.reason);
        throw e;
      }
      writeUint(dv, off, type.base, image);
      return;
    }
    case 'struct':
      if (typeof v !== 'object' || v === null) throw new WireError(sname, path, 'needs an object');
      encodeStruct(type, v as Record<string, unknown>, dv, off, sname, path);
      return;
  }
}

function encodeStruct(s: Struct<FieldSpec>, value: Record<string, unknown>, dv: DataView, off: number, sname: string, prefix = ''): void {
  for (const f of s.layout) {
    if (f.type.kind === 'flex') continue;
    encodeField(f.type, value[f.name], dv, off + f.offset, prefix ? `${prefix}.${f.name}` : f.name, sname);
  }
}

function readUint(dv: DataView, off: number, base: 'u8' | 'u16' | 'u32' | 'u64'): bigint {
  switch (base) {
    case 'u8':
      return BigInt(dv.getUint8(off));
    case 'u16':
      return BigInt(dv.getUint16(off, true));
    case 'u32':
      return BigInt(dv.getUint32(off, true));
    case 'u64':
      return dv.getBigUint64(off, true);
  }
}

function writeUint(dv: DataView, off: number, base: 'u8' | 'u16' | 'u32' | 'u64', v: bigint): void {
  switch (base) {
    case 'u8':
      return dv.setUint8(off, Number(v));
    case 'u16':
      return dv.setUint16(off, Number(v), true);
    case 'u32':
      return dv.setUint32(off, Number(v), true);
    case 'u64':
      return dv.setBigUint64(off, v, true);
  }
}

/**
 * Every leaf of a structure as the oracle names it: dotted paths, `a[i].b` for arrays,
 * bit fields with absolute bit offsets. Used by the oracle tests.
 */
export interface FlatField {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  readonly bitOffset?: number;
  readonly bitSize?: number;
}

export function flatten(s: Struct<FieldSpec> | Bitfield<BitSpec>): FlatField[] {
  const out: FlatField[] = [];
  // A member whose name starts with '_' stands for a C anonymous member: its leaves keep their own names.
  const join = (prefix: string, leaf: string): string => (leaf.startsWith('_') ? prefix : prefix ? `${prefix}.${leaf}` : leaf);
  const walk = (type: FieldType, name: string, offset: number, anon = false): void => {
    switch (type.kind) {
      case 'array':
        out.push({ name, offset, size: type.size });
        // Linux's flat view names an element's members, not the element itself; an array of
        // plain numbers is one leaf.
        if (type.elem.kind !== 'struct' && type.elem.kind !== 'bits') return;
        for (let i = 0; i < type.count; i++) walk(type.elem, `${name}[${i}]`, offset + i * type.elem.size, true);
        return;
      case 'bits':
        if (name && !anon) out.push({ name, offset, size: type.size });
        for (const b of type.bits) {
          out.push({
            name: join(name, b.name),
            offset: offset + Math.floor(b.shift / 8),
            size: type.size,
            bitOffset: offset * 8 + b.shift,
            bitSize: b.width,
          });
        }
        return;
      case 'struct':
        if (name && !anon) out.push({ name, offset, size: type.size });
        for (const f of type.layout) walk(f.type, join(name, f.name), offset + f.offset, f.name.startsWith('_'));
        return;
      default:
        out.push({ name, offset, size: type.size });
    }
  };
  walk(s, '', 0);
  return out;
}
