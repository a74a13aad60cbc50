// The README says what is true: the output it shows is what the command prints, it lists every
// script step and exit code, its script example parses, and its links stay in the repository.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../src/cli/errors.js';
import { main } from '../src/cli/main.js';
import { parseScript, SCRIPT_STEPS } from '../src/vm/script.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** The fenced block that follows `marker`. */
function blockAfter(marker: string): string {
  const at = readme.indexOf(marker);
  expect(at, `README has "${marker}"`).toBeGreaterThan(0);
  const rest = readme.slice(at);
  const open = rest.indexOf('```');
  const start = rest.indexOf('\n', open) + 1;
  return rest.slice(start, rest.indexOf('\n```', start));
}

describe('README', () => {
  it('shows the whole output of the command it shows', async () => {
    const command = /npm ci && npx hvkit run (.*)\n/.exec(readme)![1]!.split(' ');
    const lines: string[] = [];
    expect(await main(['node', 'hvkit', 'run', ...command], { out: (l) => lines.push(l), err: () => undefined })).toBe(0);
    expect(blockAfter('This is the whole output:')).toBe(lines.join('\n'));
  });

  it("shows the lines hvkit lab prints for the example lab", async () => {
    const lines: string[] = [];
    expect(await main(['node', 'hvkit', 'lab', join(root, 'examples/two-vms.lab.json')], { out: (l) => lines.push(l), err: () => undefined })).toBe(0);
    const shown = blockAfter('has one VM ping the other:').split('\n');
    const at = lines.indexOf(shown[0]!);
    expect(at).toBeGreaterThanOrEqual(0);
    expect(lines.slice(at, at + shown.length)).toEqual(shown);
  });

  it('lists every script step, and its script example parses', () => {
    const table = readme.slice(readme.indexOf('### Scripts'), readme.indexOf('### Other commands'));
    for (const step of SCRIPT_STEPS) expect(table).toContain(`| \`${step}`);
    expect(parseScript(blockAfter('### Scripts')).map((s) => s.op)).toEqual(['kvp', 'kvp', 'copy-file', 'vss', 'vss', 'hvsock', 'shutdown']);
  });

  it('lists every exit code with its meaning', () => {
    for (const code of Object.values(EXIT)) expect(readme).toMatch(new RegExp(`^\\| ${code} \\| \\S`, 'm'));
  });

  it('links only to files and anchors inside the repository', () => {
    const links = [...readme.matchAll(/\]\(([^)]+)\)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(0);
    for (const link of links) {
      expect(link, link).not.toMatch(/^(\.\.\/|\/|[a-z]+:)/);
      expect(existsSync(join(root, link.split('#')[0]!)), link).toBe(true);
    }
  });
});
