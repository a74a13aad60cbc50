// The other side of the Atomics ping-pong baseline: answers each ping (word 0: 1 → 0) until word 1 is set.
import { workerData } from 'node:worker_threads';

const a = new Int32Array(workerData as SharedArrayBuffer);
for (;;) {
  while (Atomics.load(a, 0) !== 1) Atomics.wait(a, 0, 0, 50);
  if (Atomics.load(a, 1)) break;
  Atomics.store(a, 0, 0);
  Atomics.notify(a, 0);
}
