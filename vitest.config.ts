import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Property tests run a bounded number of cases; keep the suite fast on 2 cores.
    testTimeout: 60_000,
    // test/hostile/heap.test.ts measures the heap after a full GC.
    execArgv: ['--expose-gc'],
  },
});
