// The layer diagram, from the layer rules ESLint enforces (eslint.config.js): its list of layers,
// top to bottom, and which of them are platform-neutral.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fence } from './markdown.js';
import { ROOT } from './paths.js';

function listIn(text: string, pattern: RegExp, what: string): string[] {
  const m = pattern.exec(text);
  if (!m) throw new Error(`eslint.config.js no longer declares ${what}`);
  return [...m[1]!.matchAll(/'([a-z]+)'/g)].map((x) => x[1]!);
}

export function layerDiagram(): string {
  const config = readFileSync(join(ROOT, 'eslint.config.js'), 'utf8');
  // Layers the design names but the code does not have yet (src/web) are left out.
  const layers = listIn(config, /const layers = \[([^\]]*)\]/, 'its layers').filter((l) => existsSync(join(ROOT, 'src', l)));
  const neutral = new Set(listIn(config, /const neutral = new Set\(\[([^\]]*)\]\)/, 'its platform-neutral layers'));
  const lines = ['flowchart TB'];
  lines.push('  subgraph neutral ["platform-neutral: no Node built-ins, runs in a browser"]');
  for (const l of layers.filter((x) => neutral.has(x))) lines.push(`    ${l}["src/${l}"]`);
  lines.push('  end');
  for (const l of layers.filter((x) => !neutral.has(x))) lines.push(`  ${l}["src/${l}"]`);
  for (let i = 1; i < layers.length; i++) lines.push(`  ${layers[i]} -->|imports| ${layers[i - 1]}`);
  return `${fence('mermaid', lines.join('\n'))}\n\n<sub>From the layer list in \`eslint.config.js\`; each layer may import every layer above it, never one below.</sub>`;
}
