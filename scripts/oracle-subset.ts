// Regenerates test/fixtures/oracle-subset.json from ../shared/oracle/linux-hv-layouts.json:
// the entries hvkit's declarations are checked against, so the tests also run where the
// steering repository is absent. Run with `npx tsx scripts/oracle-subset.ts` after declaring
// a new layout; the oracle test fails until the subset matches.
import { writeFileSync } from 'node:fs';
import { extractSubset, fullOracle, SUBSET_PATH } from '../test/oracle/oracle.js';

const full = fullOracle();
if (!full) {
  console.error('the full oracle (../shared/oracle/linux-hv-layouts.json) is not present');
  process.exit(1);
}
writeFileSync(SUBSET_PATH, JSON.stringify(extractSubset(full), null, 1) + '\n');
console.log(`wrote ${SUBSET_PATH}`);
