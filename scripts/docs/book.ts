// The book: every Markdown file under docs/ (the API reference excepted, which TypeDoc writes
// whole) with its generated regions rendered from the code.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { generate } from './generators.js';
import { API_DIR, DOCS, ROOT } from './paths.js';
import { renderRegions } from './regions.js';

/** Repository-relative paths of the book's Markdown files, sorted. */
export function bookFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (path === API_DIR) continue;
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.md')) out.push(relative(ROOT, path).split('\\').join('/'));
    }
  };
  walk(DOCS);
  return out;
}

/** `file` (repository-relative) as it should be: its regions regenerated. */
export async function renderBookFile(file: string): Promise<string> {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const fromDir = file.split('/').slice(0, -1).join('/');
  return renderRegions(text, async (spec, region) => {
    try {
      return await generate(spec, fromDir);
    } catch (e) {
      throw new Error(`${file}:${region.line}: ${spec}: ${(e as Error).message}`, { cause: e });
    }
  });
}

/** The book's files whose committed text differs from what the code generates. */
export async function staleBookFiles(): Promise<string[]> {
  const stale: string[] = [];
  for (const file of bookFiles()) if ((await renderBookFile(file)) !== readFileSync(join(ROOT, file), 'utf8')) stale.push(file);
  return stale;
}
