// The generated parts of a Markdown file live between marker comments, so that prose and
// generated text share one file:
//
//   <!-- generated: layout src/vmbus/wire/messages.ts OfferChannel -->
//   …whatever `npm run docs` wrote here…
//   <!-- /generated -->
//
// The opening marker names the generator and its arguments; everything up to the closing marker
// is replaced. GitHub and static-site renderers show neither marker.

export interface Region {
  /** The generator and its arguments, as the marker writes them. */
  readonly spec: string;
  readonly line: number;
}

const OPEN = /<!-- generated: (.+?) -->\n/g;
const CLOSE = '<!-- /generated -->';

/** Replaces every region of `text` with what `render` makes of its spec. */
export async function renderRegions(text: string, render: (spec: string, region: Region) => Promise<string>): Promise<string> {
  let out = '';
  let at = 0;
  for (const m of text.matchAll(OPEN)) {
    if (m.index < at) throw new Error(`line ${lineOf(text, m.index)}: a region opens inside another`);
    const start = m.index + m[0].length;
    const end = text.indexOf(CLOSE, start);
    if (end < 0) throw new Error(`line ${lineOf(text, m.index)}: '${m[0].trim()}' is never closed with '${CLOSE}'`);
    const nested = text.slice(start, end).search(/<!-- generated: /);
    if (nested >= 0) throw new Error(`line ${lineOf(text, start + nested)}: a region opens inside another`);
    const body = await render(m[1]!.trim(), { spec: m[1]!.trim(), line: lineOf(text, m.index) });
    out += text.slice(at, start) + body.replace(/\n*$/, '\n');
    at = end;
  }
  return out + text.slice(at);
}

/** The specs of every region of `text`. */
export function regionSpecs(text: string): string[] {
  return [...text.matchAll(OPEN)].map((m) => m[1]!.trim());
}

const lineOf = (text: string, index: number): number => text.slice(0, index).split('\n').length;
