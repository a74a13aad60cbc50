// The book (docs/) stays true to the code: every generated region is what `npm run docs` makes
// of the code now, every byte example decodes to the text printed after it, and every link
// leads to a file or an anchor.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bookFiles, renderBookFile } from '../../scripts/docs/book.js';
import { regionSpecs } from '../../scripts/docs/regions.js';
import { describeBytes, formatReport, parseHexText, type DecodeAs } from '../../src/vmbus/wire/describe.js';
import { Bitfield } from '../../src/tlfs/struct.js';
import { LAYOUTS } from '../oracle/oracle.js';
import { anchors, links } from './markdown-links.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const read = (file: string): string => readFileSync(join(root, file), 'utf8');

/** Every Markdown file under docs/, the API reference included. */
function allMarkdown(dir = 'docs'): string[] {
  return readdirSync(join(root, dir))
    .sort()
    .flatMap((name) => {
      const rel = `${dir}/${name}`;
      if (statSync(join(root, rel)).isDirectory()) return allMarkdown(rel);
      return name.endsWith('.md') ? [rel] : [];
    });
}

describe('the book', () => {
  it('has every generated region as the code generates it now', async () => {
    const stale: string[] = [];
    for (const file of bookFiles()) if ((await renderBookFile(file)) !== read(file)) stale.push(file);
    expect(stale, `${stale.join(', ')} differ from what the code generates: run \`npm run docs\``).toEqual([]);
  }, 120_000);

  it('tabulates every layout the oracle checks (Appendix A), and every chapter names its sources', () => {
    const specs = bookFiles().flatMap((f) => regionSpecs(read(f)));
    expect(specs).toContain('all-layouts');
    expect(specs).toContain('all-constants');
    const appendix = read('docs/appendix-a-layouts.md');
    for (const l of LAYOUTS) expect(appendix, l.name).toContain(l instanceof Bitfield ? `**\`${l.name}\`**` : `**\`struct ${l.name}\`**`);
    // Each chapter ends with its "Where implementations differ" section.
    for (const f of bookFiles().filter((x) => /\/\d\d-/.test(x))) expect(read(f).match(/^## .*$/gm)?.pop(), f).toBe('## Where implementations differ');
  });

  it('decodes every byte example to the text shown after it', () => {
    let examples = 0;
    const kinds = new Set<string>();
    for (const file of bookFiles()) {
      const text = read(file);
      for (const m of text.matchAll(/```hex(?: --as (\w+))?\n([\s\S]*?)\n```\s*\n```text\n([\s\S]*?)\n```/g)) {
        const as = (m[1] ?? 'auto') as DecodeAs;
        const r = describeBytes(parseHexText(m[2]!), as);
        expect(r.ok, `${file}: an example does not decode`).toBe(true);
        if (!r.ok) continue;
        expect(formatReport(r.report).join('\n'), `${file}: example ${examples + 1}`).toBe(m[3]);
        examples++;
        kinds.add(r.report.name.split(' ')[0]!);
        kinds.add(r.report.kind);
      }
      // No hex block without its decoded form.
      expect(text.match(/```hex/g)?.length ?? 0, file).toBe([...text.matchAll(/```hex(?: --as \w+)?\n[\s\S]*?\n```\s*\n```text\n/g)].length);
    }
    for (const k of ['INITIATE_CONTACT', 'VERSION_RESPONSE', 'OFFERCHANNEL', 'GPADL_HEADER', 'GPADL_BODY', 'ring']) expect(kinds, k).toContain(k);
    expect(examples).toBeGreaterThanOrEqual(7);
  });

  it('links only to files and anchors that exist', () => {
    const broken: string[] = [];
    for (const file of allMarkdown()) {
      const inApi = file.startsWith('docs/api/');
      for (const link of links(read(file))) {
        // The API reference keeps the web links of the Node type comments it quotes.
        if (/^https?:/.test(link) && inApi) continue;
        const [path, anchor] = link.split('#') as [string, string | undefined];
        const target = path ? relative(root, resolve(join(root, dirname(file)), decodeURI(path))) : file;
        if (target.startsWith('..') || !existsSync(join(root, target))) {
          broken.push(`${file}: ${link}`);
          continue;
        }
        if (anchor !== undefined && target.endsWith('.md') && !anchors(read(target)).has(anchor)) broken.push(`${file}: ${link} (no such anchor)`);
      }
    }
    expect(broken).toEqual([]);
  });
});
