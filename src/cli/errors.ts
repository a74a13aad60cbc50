// How `hvkit` ends: its exit codes, and the errors that choose them. Every error is printed as
// one line, `hvkit <command>: …`, never with a stack.

/** The exit codes, as `hvkit --help` and the README list them. */
export const EXIT = {
  /** The command did what was asked. */
  ok: 0,
  /** It failed at run time: a script step failed, the guest did not reach the point asked for. */
  failure: 1,
  /** Bad usage: an unknown option, a value out of range, a path that cannot be used. */
  usage: 2,
  /** Interrupted (Ctrl-C): 128 + SIGINT, as shells report it. */
  interrupted: 130,
} as const;

/** A request hvkit cannot carry out as asked: exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The command was run as asked and failed: exit status 1. */
export class RunFailure extends Error {
  override readonly name = 'RunFailure';
}

export const EXIT_CODES_HELP = `Exit codes:
  0    done: the guest reached the point asked for, every script step succeeded
  1    a failure at run time: a script step failed, the guest did not get there
  2    bad usage: an unknown option, a value out of range, a path that cannot be used
  130  interrupted (Ctrl-C); what was logged is printed and the trace file is complete`;
