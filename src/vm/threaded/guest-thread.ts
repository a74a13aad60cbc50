// The guest thread under Node: guest-main.ts over worker_threads, its file tree in the VM's
// state directory when it has one, its workload a module it imports.
import { parentPort, workerData } from 'node:worker_threads';
import { DirectoryFiles } from '../dirfs.js';
import type { Workload } from './guest-context.js';
import { runGuestThread, type GuestThreadData } from './guest-main.js';

export type { GuestMessage, GuestThreadData } from './guest-main.js';

const d = workerData as GuestThreadData;
void runGuestThread(d, {
  post: (m) => parentPort!.postMessage(m),
  ...(d.stateDir === undefined ? {} : { files: new DirectoryFiles(d.stateDir) }),
  workload: async () => ((await import(d.workload)) as { default: Workload }).default,
});
