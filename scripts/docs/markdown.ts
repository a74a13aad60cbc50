// Markdown building blocks for the generated parts of the book.

/** Text for a table cell: pipes escaped, line breaks folded. */
export const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');

/** A GitHub table: a header row, the alignment row, one row per entry. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (r: readonly string[]) => `| ${r.map(cell).join(' | ')} |`;
  return [line(header), `|${header.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n');
}

export const code = (s: string): string => '`' + s + '`';

/** A number as hex (`0x5c`), with its decimal value beside it from 10 on. */
export function hexAndDecimal(v: number | bigint): string {
  if (typeof v === 'number' && (v < 0 || !Number.isInteger(v))) return String(v);
  const h = `0x${v.toString(16)}`;
  return v >= 10 ? `${h} (${v})` : h;
}

/** A fenced block. */
export const fence = (info: string, body: string): string => '```' + info + '\n' + body.replace(/\n$/, '') + '\n```';
