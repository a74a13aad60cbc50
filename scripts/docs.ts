// `npm run docs`: regenerates every generated part of the book (docs/*.md: tables, diagrams,
// byte examples) from the code, and the API reference (docs/api/) with TypeDoc.
//   npx tsx scripts/docs.ts           write everything
//   npx tsx scripts/docs.ts --check   write nothing; list what is out of date, exit 1 if anything is
//   npx tsx scripts/docs.ts --no-api  skip TypeDoc
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeApiReference } from './docs/api.js';
import { bookFiles, renderBookFile } from './docs/book.js';
import { ROOT } from './docs/paths.js';

const check = process.argv.includes('--check');
let stale = 0;
for (const file of bookFiles()) {
  const want = await renderBookFile(file);
  if (want === readFileSync(join(ROOT, file), 'utf8')) continue;
  stale++;
  if (check) console.log(`${file} is out of date`);
  else {
    writeFileSync(join(ROOT, file), want);
    console.log(`wrote ${file}`);
  }
}
if (!check && !process.argv.includes('--no-api')) {
  await writeApiReference();
  console.log('wrote docs/api/');
}
if (check && stale) {
  console.log('run `npm run docs` to regenerate them');
  process.exitCode = 1;
}
