#!/usr/bin/env node
// The built CLI lives in dist/ (npm ci runs `prepare`, which builds it).
import('../dist/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('hvkit: dist/ is missing; run `npm ci` or `npm run build` first.');
    process.exit(1);
  }
  throw err;
});
