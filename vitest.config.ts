import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Property tests run a bounded number of cases; keep the suite fast on 2 cores.
    testTimeout: 60_000,
    // test/hostile/heap.test.ts measures the heap after a full GC. Not for `npm run fuzz`, which
    // runs in worker threads (they take no V8 flags).
    execArgv: process.env.HVKIT_FUZZ === '1' ? [] : ['--expose-gc'],
  },
});
