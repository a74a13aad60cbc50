// Every counterexample `npm run fuzz` saved is replayed by the property it names, at that
// property's next run in `npm test` (fuzz.ts). This makes sure none is orphaned: each file is
// whole and names a fuzz target that still exists.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REGRESSIONS, regressionFile, type Regression } from './fuzz.js';

const testDir = new URL('..', import.meta.url).pathname;
const sources = (dir: string): string[] =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : name.endsWith('.ts') ? [readFileSync(path, 'utf8')] : [];
  });

const saved = readdirSync(REGRESSIONS).filter((f) => f.endsWith('.json'));

describe('saved fuzz counterexamples', () => {
  it('are named after their property and seed', () => {
    expect(regressionFile('vmbus-server.model@ws2012', -5)).toBe('vmbus-server.model@ws2012.4294967291.json');
    expect(regressionFile('a b/c', 1)).toBe('a_b_c.1.json');
  });

  it.each(saved.length ? saved : ['(none saved)'])('%s names a fuzz target that exists, with its seed and path', (file) => {
    if (file === '(none saved)') return;
    const r = JSON.parse(readFileSync(new URL(file, REGRESSIONS), 'utf8')) as Regression;
    expect(file).toBe(regressionFile(r.property, r.seed));
    expect(typeof r.path).toBe('string');
    const target = r.property.split('@')[0]!;
    expect(sources(testDir).some((s) => s.includes(`'${target}'`)), `no fuzz target '${target}' in test/`).toBe(true);
  });
});
