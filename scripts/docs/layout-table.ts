// A wire layout as a Markdown table, from its declaration (src/tlfs/struct.ts): every field's
// offset, size, type and meaning. Nested structures are spelled out with dotted names; an array
// of structures is one row naming its element (whose own table the book has elsewhere); bit
// fields get a row per bit range. Meanings are the declaration's comments (source-comments.ts),
// then the book's own notes (field-notes.ts) for fields the code leaves uncommented.
import { join } from 'node:path';
import { Bitfield, type BitSpec, type FieldType, type Struct, type FieldSpec } from '../../src/tlfs/struct.js';
import { FIELD_NOTES } from './field-notes.js';
import { code, table } from './markdown.js';
import { ROOT } from './paths.js';
import { moduleComments } from './source-comments.js';
import { layoutIndex, type Declared, type Layout } from './wire-modules.js';

interface Row {
  offset: number;
  size: string;
  field: string;
  type: string;
  meaning: string;
}

type Index = ReadonlyMap<Layout, Declared<Layout>>;

/** The C-ish name of a field type. */
function typeName(t: FieldType): string {
  switch (t.kind) {
    case 'u8':
    case 'u16':
    case 'u32':
    case 'u64':
      return t.kind;
    case 'bytes':
      return `u8[${t.size}]`;
    case 'guid':
      return 'GUID';
    case 'array':
      return `${typeName(t.elem)}[${t.count}]`;
    case 'flex':
      return `${typeName(t.elem)}[]`;
    case 'bits':
      return `${t.base} bit field`;
    case 'struct':
      return `struct ${t.name}`;
  }
}

const bitRange = (shift: number, width: number): string => (width === 1 ? `bit ${shift}` : `bits ${shift}–${shift + width - 1}`);

/** Comments for the members of `layout`, by member path, from its declaring module. */
function commentsOf(layout: Layout, index: Index): { doc: string; members: ReadonlyMap<string, string> } {
  const d = index.get(layout);
  if (!d) return { doc: '', members: new Map() };
  return moduleComments(join(ROOT, d.module)).get(d.exportName) ?? { doc: '', members: new Map() };
}

/** A member's meaning: its comment in the declaration, else the book's note on `<C name>.<path>` (anonymous members left out). */
function meaning(owner: Layout, index: Index, memberPath: string): string {
  const named = memberPath
    .split('.')
    .filter((p) => !p.startsWith('_'))
    .join('.');
  const last = memberPath.split('.').pop()!;
  const reserved = /^(reserved|padding|rsvd|pad\b)/.test(last) ? 'reserved' : '';
  return commentsOf(owner, index).members.get(memberPath) ?? FIELD_NOTES[`${owner.name}.${named}`] ?? reserved;
}

/**
 * The rows of a structure at `base`: `prefix` names the enclosing member; `owner` is the
 * declaration whose comments apply and `ownerPath` the member path inside it.
 */
function structRows(s: Struct<FieldSpec>, base: number, prefix: string, owner: Layout, ownerPath: string, index: Index, out: Row[]): void {
  for (const f of s.layout) {
    const anon = f.name.startsWith('_');
    const name = anon ? prefix : prefix ? `${prefix}.${f.name}` : f.name;
    const memberPath = ownerPath ? `${ownerPath}.${f.name}` : f.name;
    const off = base + f.offset;
    const t = f.type;
    const declaredElsewhere = t.kind === 'struct' || t.kind === 'bits' ? index.has(t as Layout) : false;
    if (t.kind === 'bits') {
      // An inline bit field takes its comments from this declaration; a declared one from its own.
      const bitOwner = declaredElsewhere ? (t as Layout) : owner;
      const bitBase = declaredElsewhere ? '' : memberPath;
      if (!anon) out.push({ offset: off, size: String(t.size), field: name, type: typeName(t), meaning: meaning(owner, index, memberPath) });
      for (const b of t.bits) {
        const bitName = anon ? (prefix ? `${prefix}.${b.name}` : b.name) : `${name}.${b.name}`;
        const path = bitBase ? `${bitBase}.${b.name}` : b.name;
        out.push({ offset: off, size: String(t.size), field: bitName, type: `${bitRange(b.shift, b.width)} of ${t.base}`, meaning: meaning(bitOwner, index, path) });
      }
      continue;
    }
    out.push({ offset: off, size: t.kind === 'flex' ? '—' : String(t.size), field: name, type: typeName(t), meaning: meaning(owner, index, memberPath) });
    if (t.kind === 'struct') {
      if (declaredElsewhere) structRows(t, off, name, t as Layout, '', index, out);
      else structRows(t, off, name, owner, memberPath, index, out);
    }
  }
}

function bitfieldTable(b: Bitfield<BitSpec>, index: Index): string {
  const rows = b.bits.map((x) => [x.width === 1 ? String(x.shift) : `${x.shift}–${x.shift + x.width - 1}`, code(x.name), meaning(b, index, x.name)]);
  return table(['Bits', 'Field', 'Meaning'], rows);
}

/** Where a layout is declared, as a link relative to `from` (a Markdown file's directory, repository-relative). */
export function sourceLink(module: string, exportName: string, fromDir: string): string {
  const depth = fromDir.split('/').filter(Boolean).length;
  return `[\`${exportName}\`](${'../'.repeat(depth)}${module})`;
}

/** The whole table of a layout, with a line naming it, its size and its declaration. */
export async function layoutTable(layout: Layout, fromDir: string): Promise<string> {
  const index = await layoutIndex();
  const d = index.get(layout);
  const where = d ? `, declared as ${sourceLink(d.module, d.exportName, fromDir)}` : '';
  const doc = commentsOf(layout, index).doc;
  if (layout instanceof Bitfield) {
    const head = `**${code(layout.name)}**: a ${layout.size * 8}-bit ${layout.base} bit field${where}.${doc ? ' ' + doc : ''}`;
    return `${head}\n\n${bitfieldTable(layout, index)}`;
  }
  const rows: Row[] = [];
  structRows(layout, 0, '', layout, '', index, rows);
  const head = `**${code('struct ' + layout.name)}**, ${layout.size} bytes${where}.${doc ? ' ' + doc : ''}`;
  return `${head}\n\n${table(
    ['Offset', 'Size', 'Field', 'Type', 'Meaning'],
    rows.map((r) => [String(r.offset), r.size, code(r.field), r.type, r.meaning]),
  )}`;
}
