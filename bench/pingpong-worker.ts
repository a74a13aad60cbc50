// The other side of the Atomics ping-pong baselines: answers each ping (word 0: 1 → 0) until
// word 1 is set, either sleeping in Atomics.wait between pings or spinning on the word.
import { workerData } from 'node:worker_threads';

const { sab, spin } = workerData as { sab: SharedArrayBuffer; spin: boolean };
const a = new Int32Array(sab);
for (;;) {
  if (spin) while (Atomics.load(a, 0) !== 1);
  else while (Atomics.load(a, 0) !== 1) Atomics.wait(a, 0, 0, 50);
  if (Atomics.load(a, 1)) break;
  Atomics.store(a, 0, 0);
  if (!spin) Atomics.notify(a, 0);
}
