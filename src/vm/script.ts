// Host actions scripted against a running VM (`hvkit run --script FILE`): one step per line,
// `#` starts a comment, words are split on blanks and may be quoted ("two words", 'x y').
// Each step acts through a device's host back end, then lets virtual time run until the guest
// has answered (or a bound passes), and reports one line.
//
//   wait SECONDS                              let virtual time pass
//   heartbeat                                 the heartbeat's state and last sequence number
//   shutdown [restart|hibernate] [--force]    ask the guest through the shutdown IC
import type { HeartbeatHost } from '../devices/heartbeat/host.js';
import type { ShutdownHost, ShutdownKind } from '../devices/shutdown/host.js';
import type { Machine } from './machine.js';

/** A script line that is not a step: names the file, the line and what is wrong. */
export class ScriptError extends Error {
  override readonly name = 'ScriptError';
  constructor(
    readonly source: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(`${source}:${line}: ${reason}`);
  }
}

export type Step =
  | { readonly op: 'wait'; readonly line: number; readonly seconds: number }
  | { readonly op: 'heartbeat'; readonly line: number }
  | { readonly op: 'shutdown'; readonly line: number; readonly kind: ShutdownKind; readonly force: boolean };

/** Splits a line into words: blanks separate, quotes group, `#` outside quotes ends the line. */
function words(text: string, fail: (reason: string) => never): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | undefined;
  let inWord = false;
  for (const c of text) {
    if (quote) {
      if (c === quote) quote = undefined;
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '#') {
      break;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) fail(`unterminated ${quote} quote`);
  if (inWord) out.push(cur);
  return out;
}

/** The longest a step may wait for the guest, virtual seconds; `wait` is bounded the same way. */
export const STEP_LIMIT_S = 3600;

function parseLine(w: string[], line: number, fail: (reason: string) => never): Step {
  const [op, ...args] = w;
  const flags = new Set(args.filter((a) => a.startsWith('--')));
  const plain = args.filter((a) => !a.startsWith('--'));
  const onlyFlags = (allowed: string[]) => {
    for (const f of flags) if (!allowed.includes(f)) fail(`${op}: unknown option ${f}`);
  };
  switch (op) {
    case 'wait': {
      onlyFlags([]);
      const s = Number(plain[0]);
      if (plain.length !== 1 || !/^\d+(\.\d+)?$/.test(plain[0]!) || s > STEP_LIMIT_S) fail(`wait: expected one number of seconds up to ${STEP_LIMIT_S}`);
      return { op, line, seconds: s };
    }
    case 'heartbeat':
      onlyFlags([]);
      if (plain.length) fail('heartbeat: takes no arguments');
      return { op, line };
    case 'shutdown': {
      onlyFlags(['--force']);
      const kind = plain[0] ?? 'shutdown';
      if (plain.length > 1 || (kind !== 'shutdown' && kind !== 'restart' && kind !== 'hibernate')) fail('shutdown: expected [restart|hibernate] [--force]');
      return { op, line, kind, force: flags.has('--force') };
    }
    default:
      return fail(`unknown step "${op}"; steps: wait, heartbeat, shutdown`);
  }
}

/** Parses a whole script; the first bad line is a ScriptError. */
export function parseScript(text: string, source = 'script'): Step[] {
  const steps: Step[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const fail = (reason: string): never => {
      throw new ScriptError(source, line, reason);
    };
    const w = words(raw, fail);
    if (w.length) steps.push(parseLine(w, line, fail));
  });
  return steps;
}

/** Runs virtual time until `done` or `limitS` seconds passed; whether it got done. */
function settle(m: Machine, done: () => boolean, limitS = STEP_LIMIT_S): boolean {
  return m.waitUntil(done, limitS * 1e9);
}

/** Runs the steps in order against a booted machine, reporting one line per step; stops if the guest halts. */
export async function runScript(m: Machine, steps: readonly Step[], report: (line: string) => void): Promise<void> {
  for (const step of steps) {
    if (m.kernel.stage !== 'booted') {
      report(`line ${step.line}: ${step.op}: skipped, the guest is ${m.kernel.stage}`);
      continue;
    }
    report(`line ${step.line}: ${await runStep(m, step)}`);
  }
}

async function runStep(m: Machine, step: Step): Promise<string> {
  switch (step.op) {
    case 'wait':
      m.runFor(step.seconds * 1e9);
      return `waited ${step.seconds} s`;
    case 'heartbeat': {
      const hb = m.host.device<HeartbeatHost>('heartbeat');
      if (!hb) return 'heartbeat: the VM has no heartbeat device';
      return `heartbeat: ${hb.state}, ${hb.sent} sent, last answer ${hb.answered.at(-1) ?? 'none'}`;
    }
    case 'shutdown': {
      const sd = m.host.device<ShutdownHost>('shutdown');
      if (!sd) return 'shutdown: the VM has no shutdown device';
      settle(m, () => sd.phase === 'ready' || sd.phase === 'failed', 10);
      const req = sd.request(step.kind, step.force, 'hvkit script');
      settle(m, () => req.result !== undefined || m.kernel.stage !== 'booted');
      if (req.result?.outcome === 'accepted') settle(m, () => m.kernel.stage !== 'booted', 60);
      return `shutdown ${step.kind}${step.force ? ' --force' : ''}: ${req.result?.outcome ?? 'no answer'}${m.kernel.stage === 'halted' ? `, the guest ${m.kernel.haltedBy === 'reboot' ? 'restarted' : 'powered off'}` : ''}`;
    }
  }
}
