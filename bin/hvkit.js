#!/usr/bin/env node
// The built CLI lives in dist/ (npm ci runs `prepare`, which builds it).
let cli;
try {
  cli = await import('../dist/cli/main.js');
} catch (err) {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('hvkit: dist/ is missing; run `npm ci` or `npm run build` first.');
    process.exit(1);
  }
  throw err;
}
// A reader that stops early (`hvkit run | head`) is not an error.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
// Ctrl-C: a command that listens stops cleanly (it prints what it has, exit 130); otherwise, or
// at a second Ctrl-C, the process ends at once with 130.
const handlers = new Set();
let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted || handlers.size === 0) process.exit(130);
  interrupted = true;
  for (const h of handlers) h();
});
const interrupts = {
  listen(h) {
    handlers.add(h);
    return () => handlers.delete(h);
  },
};
process.exitCode = await cli.main(process.argv, cli.stdio(interrupts));
