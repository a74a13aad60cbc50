// Host actions scripted against a running VM (`hvkit run --script FILE`): one step per line,
// `#` starts a comment, words are split on blanks and may be quoted ("two words", 'x y').
// Each step acts through a device's host back end, then lets virtual time run until the guest
// has answered (or a bound passes), and reports one line.
//
//   wait SECONDS                              let virtual time pass
//   heartbeat                                 the heartbeat's state and last sequence number
//   shutdown [restart|hibernate] [--force]    ask the guest through the shutdown IC
//   kvp set POOL KEY VALUE | get POOL KEY | delete POOL KEY | enumerate POOL     (pools 0-4)
//   copy-file HOST_FILE GUEST_DIR [NAME] [--overwrite] [--create-path]          (file copy IC)
//   vss check | freeze | thaw                 the backup IC's hot-backup check, freeze, thaw
//   timesync sync | sample                    send the guest the host's time now
//   hvsock echo PORT TEXT                     a guest echo listener on PORT; the host connects,
//                                             sends TEXT and reads it back
import type { HostDevice } from '../devices/device.js';
import type { FcopyHost } from '../devices/fcopy/host.js';
import type { HeartbeatHost } from '../devices/heartbeat/host.js';
import type { HostHvSocket } from '../devices/hvsock/host.js';
import type { KvpHost } from '../devices/kvp/host.js';
import type { KvpPoolId } from '../devices/kvp/wire.js';
import type { ShutdownHost, ShutdownKind } from '../devices/shutdown/host.js';
import type { TimesyncHost } from '../devices/timesync/host.js';
import type { VssHost } from '../devices/vss/host.js';
import { guestHvsock, hostHvsock } from './hvsock-stream.js';
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
  | { readonly op: 'shutdown'; readonly line: number; readonly kind: ShutdownKind; readonly force: boolean }
  | { readonly op: 'kvp'; readonly line: number; readonly action: 'set' | 'get' | 'delete' | 'enumerate'; readonly pool: KvpPoolId; readonly key: string; readonly value: string }
  | { readonly op: 'copy-file'; readonly line: number; readonly hostFile: string; readonly guestDir: string; readonly name: string; readonly overwrite: boolean; readonly createPath: boolean }
  | { readonly op: 'vss'; readonly line: number; readonly action: 'check' | 'freeze' | 'thaw' }
  | { readonly op: 'timesync'; readonly line: number; readonly action: 'sync' | 'sample' }
  | { readonly op: 'hvsock'; readonly line: number; readonly port: number; readonly text: string };

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
    case 'kvp': {
      onlyFlags([]);
      const [action, poolText, key, value] = plain;
      const arity: Record<string, number> = { set: 4, get: 3, delete: 3, enumerate: 2 };
      if (!action || !(action in arity) || plain.length !== arity[action]) fail('kvp: expected set POOL KEY VALUE, get POOL KEY, delete POOL KEY or enumerate POOL');
      if (!/^[0-4]$/.test(poolText ?? '')) fail('kvp: the pool is 0 to 4');
      return { op, line, action: action as 'set' | 'get' | 'delete' | 'enumerate', pool: Number(poolText) as KvpPoolId, key: key ?? '', value: value ?? '' };
    }
    case 'copy-file': {
      onlyFlags(['--overwrite', '--create-path']);
      const [hostFile, guestDir, name] = plain;
      if (!hostFile || !guestDir || plain.length > 3) fail('copy-file: expected HOST_FILE GUEST_DIR [NAME] [--overwrite] [--create-path]');
      return { op, line, hostFile, guestDir, name: name ?? hostFile.split(/[\\/]/).pop()!, overwrite: flags.has('--overwrite'), createPath: flags.has('--create-path') };
    }
    case 'vss': {
      onlyFlags([]);
      const action = plain[0];
      if (plain.length !== 1 || (action !== 'check' && action !== 'freeze' && action !== 'thaw')) fail('vss: expected check, freeze or thaw');
      return { op, line, action };
    }
    case 'timesync': {
      onlyFlags([]);
      const action = plain[0];
      if (plain.length !== 1 || (action !== 'sync' && action !== 'sample')) fail('timesync: expected sync or sample');
      return { op, line, action };
    }
    case 'hvsock': {
      onlyFlags([]);
      const [sub, portText, text] = plain;
      if (sub !== 'echo' || plain.length !== 3 || !/^\d+$/.test(portText!) || Number(portText) > 0x7fffffff) fail('hvsock: expected echo PORT TEXT');
      return { op, line, port: Number(portText), text: text! };
    }
    default:
      return fail(`unknown step "${op}"; steps: wait, heartbeat, shutdown, kvp, copy-file, vss, timesync, hvsock`);
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

/** What the steps need of the host they run on: reading a file to copy into the guest. */
export interface ScriptHost {
  readFile(path: string): Uint8Array;
}

/** Runs the steps in order against a booted machine, reporting one line per step; stops if the guest halts. */
export async function runScript(m: Machine, steps: readonly Step[], report: (line: string) => void, host?: ScriptHost): Promise<void> {
  for (const step of steps) {
    if (m.kernel.stage !== 'booted') {
      report(`line ${step.line}: ${step.op}: skipped, the guest is ${m.kernel.stage}`);
      continue;
    }
    report(`line ${step.line}: ${await runStep(m, step, host)}`);
  }
}

/** A device of the machine, ready (its IC negotiated) or not there. */
function ready<T extends HostDevice & { phase: string }>(m: Machine, type: string): T | undefined {
  const d = m.host.device<T>(type);
  if (d) settle(m, () => d.phase === 'ready' || d.phase === 'failed', 10);
  return d;
}

const quote = (s: string): string => JSON.stringify(s);

async function runStep(m: Machine, step: Step, host: ScriptHost | undefined): Promise<string> {
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
    case 'kvp': {
      const kvp = ready<KvpHost>(m, 'kvp');
      if (!kvp) return 'kvp: the VM has no KVP device';
      const what = `kvp ${step.action} ${step.pool}${step.action === 'enumerate' ? '' : ` ${quote(step.key)}`}`;
      if (step.action === 'enumerate') {
        const req = kvp.enumerate(step.pool);
        settle(m, () => req.result !== undefined);
        const r = req.result;
        if (!r) return `${what}: no answer`;
        return `${what}: ${r.outcome}, ${r.entries.length} entries${r.entries.map((e) => `\n  ${quote(e.key)} = ${quote(e.value)}`).join('')}`;
      }
      const req = step.action === 'set' ? kvp.set(step.pool, step.key, step.value) : step.action === 'get' ? kvp.get(step.pool, step.key) : kvp.delete(step.pool, step.key);
      settle(m, () => req.result !== undefined);
      const r = req.result;
      if (!r) return `${what}: no answer`;
      const value = r.outcome === 'ok' && 'value' in r ? ` ${quote(String(r.value))}` : '';
      return `${what}: ${r.outcome}${value}${'status' in r ? ` (status 0x${r.status.toString(16)})` : ''}`;
    }
    case 'copy-file': {
      const fc = ready<FcopyHost>(m, 'fcopy');
      if (!fc) return 'copy-file: the VM has no file copy device (add "fcopy" to its devices)';
      if (!host) return 'copy-file: no host files to read here';
      let data: Uint8Array;
      try {
        data = host.readFile(step.hostFile);
      } catch (e) {
        return `copy-file: cannot read ${step.hostFile}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
      }
      const t = fc.copyFile(step.guestDir, step.name, data, { overwrite: step.overwrite, createPath: step.createPath });
      settle(m, () => t.result !== undefined);
      const r = t.result;
      const at = r && 'step' in r ? ` at ${r.step}` : '';
      const why = r && 'status' in r ? `${at} (status 0x${r.status.toString(16)})` : r && 'reason' in r ? `${at}: ${r.reason}` : at;
      return `copy-file ${step.hostFile} -> ${step.guestDir} ${step.name}: ${r?.outcome ?? 'no answer'}${why} (${data.length} bytes)`;
    }
    case 'vss': {
      const vss = ready<VssHost>(m, 'vss');
      if (!vss) return 'vss: the VM has no VSS device';
      const req = step.action === 'check' ? vss.hotBackupCheck() : step.action === 'freeze' ? vss.freeze() : vss.thaw();
      settle(m, () => req.result !== undefined);
      const r = req.result;
      return `vss ${step.action}: ${r?.outcome ?? 'no answer'}${r && 'status' in r ? ` (status 0x${r.status.toString(16)})` : ''}`;
    }
    case 'timesync': {
      const ts = ready<TimesyncHost>(m, 'timesync');
      if (!ts) return 'timesync: the VM has no time sync device';
      const sent = step.action === 'sync' ? ts.sendSync() : ts.sendSample();
      if (!sent) return `timesync ${step.action}: not sent (${ts.phase})`;
      m.runFor(10_000_000);
      const skew = m.kernel.services.realtimeNs() - m.host.wallClockNs();
      return `timesync ${step.action}: sent ${new Date(Number(sent.wallClockNs / 1_000_000n)).toISOString()}; the guest's clock is ${skew} ns off the host's`;
    }
    case 'hvsock':
      return hvsockEcho(m, step.port, step.text);
  }
}

/** A guest echo listener on `port` (socat VSOCK-LISTEN:port EXEC:cat), then a host connection through it. */
function hvsockEcho(m: Machine, port: number, text: string): string {
  const what = `hvsock echo ${port}`;
  let guest;
  try {
    guest = guestHvsock(m);
  } catch (e) {
    return `${what}: ${(e as Error).message}`;
  }
  const listener = guest.listen(port, (s) => {
    s.on.data = (b) => void s.write(b);
    s.on.end = () => s.end();
  });
  const sent = new TextEncoder().encode(text);
  const got: Uint8Array[] = [];
  let error: string | undefined;
  let closed = false;
  const c: HostHvSocket = hostHvsock(m).connect(port);
  c.on.connect = () => {
    c.write(sent);
    c.end();
  };
  c.on.data = (b) => void got.push(b);
  c.on.error = (e) => void (error = e.message);
  c.on.close = () => void (closed = true);
  settle(m, () => closed, 30);
  listener.close();
  const all = new Uint8Array(got.reduce((n, b) => n + b.length, 0));
  got.reduce((at, b) => (all.set(b, at), at + b.length), 0);
  const back = new TextDecoder().decode(all);
  if (error) return `${what}: ${error}`;
  return `${what}: sent ${sent.length} bytes, got ${quote(back)} back${back === text ? '' : ' (different!)'}`;
}
