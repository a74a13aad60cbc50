// The packed package.json without `prepare`: in a clone, `npm ci` runs it to build dist/; in the
// package, dist/ is already built, and a lifecycle script there makes npm warn on every install.
// `strip` (prepack) keeps the original aside, `restore` (postpack) puts it back byte for byte.
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const MANIFEST = 'package.json';
const KEPT = '.package.json.orig';

const command = process.argv[2];
if (command === 'strip') {
  copyFileSync(MANIFEST, KEPT);
  const manifest = JSON.parse(readFileSync(MANIFEST, 'utf8'));
  delete manifest.scripts.prepare;
  writeFileSync(MANIFEST, JSON.stringify(manifest, null, 2) + '\n');
} else if (command === 'restore') {
  renameSync(KEPT, MANIFEST);
} else {
  console.error('usage: node scripts/pack-manifest.mjs strip|restore');
  process.exit(2);
}
