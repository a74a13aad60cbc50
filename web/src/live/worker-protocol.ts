// What the page and the guest worker (guest-worker.ts) share: the words of the command block the
// page writes (the worker's event loop is not free while the guest runs, so it reads them
// between its waits), and the messages the worker posts. Kept apart from the worker's module,
// whose top level starts the guest thread.
import type { VmbusSnapshot } from '../../../src/vmbus/client/snapshot.js';
import type { GuestMessage } from '../../../src/vm/threaded/guest-main.js';

/** Words of the command block the page writes; SEQ moves after every command. */
export const Cmd = { SEQ: 0, STREAM: 1, ECHO_REQ: 2, ECHO_PORT: 3 } as const;
export const CMD_WORDS = 4;
/** STREAM's values. */
export const StreamCmd = { NONE: 0, START: 1, STOP: 2 } as const;

/** The hv_sock ports the guest listens on at most (each listener stays, as socat's fork would). */
export const MAX_ECHO_PORTS = 16;

export interface GuestWorkerArgs {
  commands: SharedArrayBuffer;
  pageSize: number;
}

/** What the worker posts besides the guest thread's log and report. */
export type WorkerMessage =
  | GuestMessage
  /** The guest's VMBus driver's view of its channels, without the rings (the page reads those live). */
  | { type: 'guest-channels'; snapshot: VmbusSnapshot }
  /** Answers echo request `req`: the guest listens on its port, or why it does not. */
  | { type: 'echo-listening'; req: number; error?: string };
