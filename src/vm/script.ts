// Host actions scripted against a running VM (`hvkit run --script FILE`): one step per line.
// Each step acts through a device's host back end, then lets virtual time run until the guest
// has answered (or a bound passes), and reports one result: a status, its values as data, and a
// line for a person. The grammar is SCRIPT_GRAMMAR, which `hvkit help script` prints.
import type { HostDevice } from '../devices/device.js';
import type { FcopyHost } from '../devices/fcopy/host.js';
import type { HeartbeatHost } from '../devices/heartbeat/host.js';
import type { HostHvSocket } from '../devices/hvsock/host.js';
import type { KvpFailure, KvpHost } from '../devices/kvp/host.js';
import type { KvpPoolId } from '../devices/kvp/wire.js';
import type { ShutdownHost, ShutdownKind } from '../devices/shutdown/host.js';
import type { TimesyncHost } from '../devices/timesync/host.js';
import type { VssHost } from '../devices/vss/host.js';
import type { BlockBackend } from '../devices/storage/backend.js';
import { diskStep, diskStepTitle, MAX_READ_BLOCKS, READ_SHOWN_BYTES } from './disk-steps.js';
import { parseScreenStep, screenStep, screenStepTitle } from './screen-steps.js';
import { MAX_LUN } from './config.js';
import { guestHvsock, hostHvsock } from './hvsock-stream.js';
import type { Machine } from './machine.js';
import { parseNetStep, runNetStep, type NetStep } from './net-steps.js';
import { memoryStepTitle, parseMemoryStep, runMemoryStep, type MemoryStep } from './memory-steps.js';
import { inputStepTitle, parseInputStep, runInputStep, type InputStep } from './input-steps.js';

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
  | { readonly op: 'hvsock'; readonly line: number; readonly port: number; readonly text: string }
  | { readonly op: 'net'; readonly line: number; readonly net: NetStep }
  | { readonly op: 'memory'; readonly line: number; readonly memory: MemoryStep }
  | { readonly op: 'key' | 'mouse'; readonly line: number; readonly input: InputStep }
  | { readonly op: 'disk'; readonly line: number; readonly action: 'write'; readonly lun: number; readonly lba: number; readonly file: string }
  | { readonly op: 'disk'; readonly line: number; readonly action: 'read'; readonly lun: number; readonly lba: number; readonly count: number; readonly file: string | undefined }
  | { readonly op: 'disk'; readonly line: number; readonly action: 'add'; readonly path: string; readonly lun: number | undefined; readonly readOnly: boolean; readonly dvd: boolean }
  | { readonly op: 'disk'; readonly line: number; readonly action: 'remove'; readonly lun: number }
  | { readonly op: 'screenshot'; readonly line: number; readonly file: string };

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


/** Every step, in the order the grammar lists them. */
export const SCRIPT_STEPS = ['wait', 'heartbeat', 'shutdown', 'kvp', 'copy-file', 'vss', 'timesync', 'hvsock', 'disk', 'net', 'memory', 'screenshot', 'key', 'mouse'] as const satisfies readonly Step['op'][];

/** The whole grammar, as `hvkit help script` prints it. */
export const SCRIPT_GRAMMAR = `A script is host actions against the running VM, one step per line, run in order once the
guest has booted. Words are separated by blanks; "double" or 'single' quotes group words; #
outside quotes starts a comment. Each step waits (in virtual time) for the guest's answer and
prints one result. A step that fails (an error, a refusal, a device the VM lacks, or a guest that
has halted) makes hvkit run exit 1; the steps after it are skipped unless --keep-going is given.

  wait SECONDS                                 let SECONDS of virtual time pass (at most ${STEP_LIMIT_S})
  heartbeat                                    the host's heartbeat state and the guest's last answer;
                                               fails unless the guest answers
  shutdown [restart|hibernate] [--force]       ask the guest through the shutdown IC; succeeds
                                               once it has powered off (or restarted)
  kvp set POOL KEY VALUE                       set KEY in the guest's KVP pool POOL (0 to 4)
  kvp get POOL KEY                             read one key (Linux 6.1 answers with an empty value)
  kvp delete POOL KEY                          delete one key; fails if there is none
  kvp enumerate POOL                           list every key and value of the pool
  copy-file HOST_FILE GUEST_DIR [NAME] [--overwrite] [--create-path]
                                               copy a host file into the guest (file copy IC;
                                               needs "fcopy" in the VM file's devices)
  vss check | vss freeze | vss thaw            the backup IC: hot-backup check, freeze, thaw
  timesync sync | timesync sample              send the guest the host's time now
  hvsock echo PORT TEXT                        a guest echo listener on PORT (hv_sock, VMBus 4.0
                                               and later); the host connects, sends TEXT and
                                               reads it back
  disk write LUN LBA FILE                      the guest writes FILE's bytes to the disk at LUN of
                                               the first SCSI controller, from block LBA (a partial
                                               last block is read, changed and written back)
  disk read LUN LBA COUNT [FILE]               the guest reads COUNT blocks from LBA; into FILE,
                                               else shown (the first ${READ_SHOWN_BYTES} bytes in hex)
  disk add PATH [--lun N] [--ro] [--dvd]       the host hot-adds an image (a DVD with --dvd) at the
                                               lowest free LUN, or N; succeeds once the guest has it
  disk remove LUN                              the host hot-removes the disk at LUN; succeeds once
                                               the guest has let it go
  net ping VM|IP [COUNT]                       the guest pings (COUNT requests, default 3) and prints
                                               ping's lines; VM names another VM of the lab
  net udp-echo IP PORT TEXT                    the guest sends TEXT to a UDP echo service and reads
                                               it back (every hvkit guest runs one on port 7)
  net link up|down                             connect or disconnect the first NIC's virtual cable;
                                               succeeds once the guest sees the carrier change
  memory demand SIZE                           a guest workload wants SIZE of memory (0 frees it);
                                               succeeds once the guest holds it (dynamic memory
                                               may have to give the guest more first)
  memory status                                the guest's MemTotal and MemFree, and the host's
                                               dynamic memory view: ballooned, hot-added, target
  screenshot FILE                              write the guest's screen (the video device's frame,
                                               once the guest's pending updates reached the host)
                                               to FILE as a PNG
  key type TEXT                                type TEXT on the keyboard (\\n Enter, \\t Tab, \\b
                                               Backspace, \\e Esc, \\\\); prints the guest tty's lines
  key press COMBO                              press a key combination (CTRL+ALT+DEL, ENTER, SHIFT+F1,
                                               ALT+TAB, UP, …); prints the tty's lines
  mouse move X Y                               move the pointer to X Y in the mouse's absolute units
                                               (0 to 32767); prints where the guest sees it
  mouse click [left|right|middle]              click a button; succeeds once the guest saw it

Example:
  kvp set 0 Greeting "hello world"
  kvp enumerate 0
  heartbeat
  shutdown`;

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
    case 'disk':
      return parseDiskStep(plain, flags, line, fail, args);
    case 'key':
    case 'mouse': {
      const input = parseInputStep(op, args);
      if (typeof input === 'string') return fail(input);
      return { op, line, input };
    }
    case 'net': {
      onlyFlags([]);
      const net = parseNetStep(plain);
      if (typeof net === 'string') return fail(net);
      return { op, line, net };
    }
    case 'memory': {
      onlyFlags([]);
      const memory = parseMemoryStep(plain);
      return typeof memory === 'string' ? fail(memory) : { op, line, memory };
    }
    case 'screenshot': {
      const step = parseScreenStep(plain, flags, line);
      return typeof step === 'string' ? fail(step) : step;
    }
    default:
      return fail(`unknown step "${op}"; steps: ${SCRIPT_STEPS.join(', ')} (hvkit help script)`);
  }
}

const NUMBER = /^\d+$/;

function parseDiskStep(plain: string[], flags: Set<string>, line: number, fail: (reason: string) => never, words: readonly string[]): Step {
  const [action, ...args] = plain;
  const num = (text: string | undefined, what: string, max = Number.MAX_SAFE_INTEGER): number => {
    if (text === undefined || !NUMBER.test(text) || Number(text) > max) fail(`disk ${action}: ${what} must be a whole number${max < Number.MAX_SAFE_INTEGER ? ` from 0 to ${max}` : ''}`);
    return Number(text);
  };
  const noFlags = () => {
    for (const f of flags) fail(`disk ${action}: unknown option ${f}`);
  };
  switch (action) {
    case 'write':
      noFlags();
      if (args.length !== 3) fail('disk write: expected LUN LBA FILE');
      return { op: 'disk', line, action, lun: num(args[0], 'LUN', MAX_LUN), lba: num(args[1], 'LBA'), file: args[2]! };
    case 'read': {
      noFlags();
      if (args.length !== 3 && args.length !== 4) fail('disk read: expected LUN LBA COUNT [FILE]');
      const count = num(args[2], 'COUNT', MAX_READ_BLOCKS);
      return { op: 'disk', line, action, lun: num(args[0], 'LUN', MAX_LUN), lba: num(args[1], 'LBA'), count, file: args[3] };
    }
    case 'add': {
      // --lun takes the word after it (or "--lun=3"): the words are read in their order.
      let lun: number | undefined;
      const paths: string[] = [];
      const rest = words.slice(1);
      for (let i = 0; i < rest.length; i++) {
        const w = rest[i]!;
        if (w === '--lun') lun = num(rest[++i], '--lun', MAX_LUN);
        else if (w.startsWith('--lun=')) lun = num(w.slice(6), '--lun', MAX_LUN);
        else if (w.startsWith('--') && w !== '--ro' && w !== '--dvd') fail(`disk add: unknown option ${w}`);
        else if (!w.startsWith('--')) paths.push(w);
      }
      if (paths.length !== 1) fail('disk add: expected PATH [--lun N] [--ro] [--dvd]');
      return { op: 'disk', line, action, path: paths[0]!, lun, readOnly: flags.has('--ro'), dvd: flags.has('--dvd') };
    }
    case 'remove':
      noFlags();
      if (args.length !== 1) fail('disk remove: expected LUN');
      return { op: 'disk', line, action, lun: num(args[0], 'LUN', MAX_LUN) };
    default:
      return fail('disk: expected write LUN LBA FILE, read LUN LBA COUNT [FILE], add PATH [--lun N] [--ro] [--dvd] or remove LUN');
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

/** Where a script runs: its machine, how to stop it early, and the host files it may copy. */
export interface ScriptOptions {
  /** Run the steps after a failed one too (make -k); by default they are skipped. */
  readonly keepGoing?: boolean;
  /** Aborting stops the step under way at its next slice; the rest are skipped. */
  readonly signal?: AbortSignal;
  readonly host?: ScriptHost;
  /** The lab the machine is part of: its clock moves every VM, and it names the other VMs. */
  readonly lab?: ScriptLab;
}

/** What a lab lends a VM's script: its clock (all VMs move together) and the other VMs' addresses. */
export interface ScriptLab {
  waitUntilAsync(done: () => boolean, ns: number, opts: { signal?: AbortSignal }): Promise<boolean>;
  /** The first address of the VM named `name`, or undefined. */
  resolve(name: string): string | undefined;
}

/** What the steps need of the host they run on: its files, and disk images to hot-add. */
export interface ScriptHost {
  readFile(path: string): Uint8Array;
  writeFile?(path: string, data: Uint8Array): void;
  /** Opens a disk image (throws an Error whose message says why not). */
  openDisk?(path: string, options: { readOnly: boolean; dvd: boolean }): BlockBackend;
}

export type StepStatus = 'ok' | 'failed' | 'skipped';

/** One step's outcome: its status, what it found as data, and the same for a person. */
export interface StepResult {
  readonly line: number;
  /** The step's name: wait, heartbeat, shutdown, kvp, ... */
  readonly step: Step['op'];
  readonly status: StepStatus;
  /** JSON-friendly values: the outcome, the guest's answer, counts. */
  readonly values: Readonly<Record<string, unknown>>;
  /** One line (an enumeration adds one indented line per entry), without the line number. */
  readonly text: string;
}

/**
 * Runs the steps in order against a booted machine, reporting each result as it comes. A step
 * fails on an error, a refusal, a missing device or a guest that has halted; the steps after it
 * are skipped unless `keepGoing`. Returns every result.
 */
export async function runScript(m: Machine, steps: readonly Step[], report: (r: StepResult) => void, opts: ScriptOptions = {}): Promise<StepResult[]> {
  const results: StepResult[] = [];
  let failed = false;
  for (const step of steps) {
    let r: StepResult;
    if (opts.signal?.aborted) r = result(step, 'skipped', {}, `${stepTitle(step)}: skipped, the run was interrupted`);
    else if (failed && !opts.keepGoing) r = result(step, 'skipped', {}, `${stepTitle(step)}: skipped after the failed step above (--keep-going runs it)`);
    else if (m.kernel.stage !== 'booted') r = result(step, 'failed', { guest: m.kernel.stage }, `${stepTitle(step)}: not run, the guest is ${m.kernel.stage}`);
    else r = await runStep(new StepContext(m, opts.signal, opts.lab), step, opts.host);
    failed ||= r.status === 'failed';
    results.push(r);
    report(r);
  }
  return results;
}

/** The step as a person would write it, without its long arguments: "kvp get 0 \"key\"". */
export function stepTitle(step: Step): string {
  switch (step.op) {
    case 'wait':
      return `wait ${step.seconds}`;
    case 'heartbeat':
      return 'heartbeat';
    case 'shutdown':
      return `shutdown${step.kind === 'shutdown' ? '' : ` ${step.kind}`}${step.force ? ' --force' : ''}`;
    case 'kvp':
      return `kvp ${step.action} ${step.pool}${step.action === 'enumerate' ? '' : ` ${quote(step.key)}`}`;
    case 'copy-file':
      return `copy-file ${step.hostFile} -> ${step.guestDir} ${step.name}`;
    case 'vss':
    case 'timesync':
      return `${step.op} ${step.action}`;
    case 'hvsock':
      return `hvsock echo ${step.port}`;
    case 'disk':
      return diskStepTitle(step);
    case 'screenshot':
      return screenStepTitle(step);
    case 'key':
    case 'mouse':
      return inputStepTitle(step.input);
    case 'net':
      return step.net.action === 'ping' ? `net ping ${step.net.target}` : step.net.action === 'udp-echo' ? `net udp-echo ${step.net.ip} ${step.net.port}` : `net link ${step.net.up ? 'up' : 'down'}`;
    case 'memory':
      return memoryStepTitle(step.memory);
  }
}

export function result(step: Step, status: StepStatus, values: Record<string, unknown>, text: string): StepResult {
  return { line: step.line, step: step.op, status, values, text };
}

/** The machine a step drives, with virtual time run in slices that an abort stops. */
export class StepContext {
  constructor(
    readonly m: Machine,
    private readonly signal: AbortSignal | undefined,
    readonly lab?: ScriptLab,
  ) {}

  /** Runs virtual time until `done` or `limitS` seconds passed; whether it got done. */
  settle(done: () => boolean, limitS = STEP_LIMIT_S): Promise<boolean> {
    const opts = this.signal ? { signal: this.signal } : {};
    return (this.lab ?? this.m).waitUntilAsync(done, limitS * 1e9, opts);
  }

  async run(seconds: number): Promise<void> {
    await this.settle(() => false, seconds);
  }

  /** A device of the machine, ready (its IC negotiated) or not there. */
  async ready<T extends HostDevice & { phase: string }>(type: string): Promise<T | undefined> {
    const d = this.m.host.device<T>(type);
    if (d) await this.settle(() => d.phase === 'ready' || d.phase === 'failed', 10);
    return d;
  }
}

const quote = (s: string): string => JSON.stringify(s);
const hex = (n: number): string => `0x${n.toString(16)}`;
const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** Why a device request did not get an answer, in words (IcUnanswered and the like). */
function unanswered(r: { outcome: string; reason?: string; version?: number }, device: string): string {
  switch (r.outcome) {
    case 'not-ready':
      return `not sent: the ${device} channel is not open and negotiated (a guest daemon that failed to start says why in the journal)`;
    case 'unsupported':
      return `not sent: the negotiated version ${r.version === undefined ? '' : `${r.version >>> 16}.${r.version & 0xffff} `}has no such request`;
    case 'in-progress':
      return 'not sent: an earlier request is still waiting for its answer';
    case 'ring-full':
      return 'not sent: the ring to the guest is full';
    case 'closed':
      return 'the channel closed before the guest answered';
    case 'timeout':
      return 'no answer within the host\'s timeout';
    case 'bad-answer':
      return `the guest's answer is not valid: ${r.reason ?? 'unknown reason'}`;
    default:
      return r.outcome;
  }
}

/** A status the guest answered with, named where IC statuses have a name. */
function statusText(status: number): string {
  const names: Record<number, string> = { 0x80004005: 'HV_E_FAIL', 0x80070103: 'HV_S_CONT', 0x80070032: 'HV_ERROR_NOT_SUPPORTED', 0x800704f7: 'HV_ERROR_MACHINE_LOCKED', 0x8007048f: 'HV_ERROR_DEVICE_NOT_CONNECTED', 0x80070050: 'HV_ERROR_ALREADY_EXISTS', 0x80070070: 'HV_ERROR_DISK_FULL' };
  const name = names[status >>> 0];
  return name ? `${name} (${hex(status >>> 0)})` : hex(status >>> 0);
}

function kvpFailure(r: KvpFailure | { outcome: 'not-found' }): string {
  switch (r.outcome) {
    case 'not-found':
      return 'no such key';
    case 'invalid': {
      const p = r.problem;
      if (p.reason === 'too-long') return `refused: the ${r.field} is ${p.bytes} bytes in UTF-16 with its terminator; Linux's limit is ${p.max}`;
      if (p.reason === 'ill-formed') return `refused: the ${r.field} is not UTF-16 (a lone surrogate at index ${p.at})`;
      if (p.reason === 'nul') return `refused: the ${r.field} holds a NUL at index ${p.at}`;
      return `refused: pool ${p.pool} is not 0 to 4`;
    }
    case 'failed':
      return `the guest answered ${statusText(r.status)}`;
    default:
      return unanswered(r, 'KVP');
  }
}

async function runStep(c: StepContext, step: Step, host: ScriptHost | undefined): Promise<StepResult> {
  const { m } = c;
  const ok = (values: Record<string, unknown>, text: string) => result(step, 'ok', values, text);
  const fail = (values: Record<string, unknown>, text: string) => result(step, 'failed', values, text);
  switch (step.op) {
    case 'wait':
      await c.run(step.seconds);
      return ok({ seconds: step.seconds }, `waited ${step.seconds} s`);
    case 'heartbeat': {
      const hb = await c.ready<HeartbeatHost>('heartbeat');
      if (!hb) return fail({ outcome: 'no-device' }, 'heartbeat: the VM has no heartbeat device');
      // A heartbeat goes out as soon as the IC is up: give the guest until it would count as lost.
      await c.settle(() => hb.state !== 'no-contact', hb.lostAfterNs / 1e9);
      const last = hb.answered.at(-1);
      // A u64 as a JSON number while it is exact, else as a decimal string.
      const lastAnswer = last === undefined ? null : BigInt(last) <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(last) : String(last);
      const values = { state: hb.state, sent: hb.sent, lastAnswer };
      const text = `heartbeat: ${hb.state}; ${plural(hb.sent, 'heartbeat')} sent, ${last === undefined ? 'none answered' : `the last answered with sequence number ${last}`}`;
      return hb.state === 'ok' ? ok(values, text) : fail(values, text);
    }
    case 'shutdown': {
      const what = stepTitle(step);
      const sd = m.host.device<ShutdownHost>('shutdown');
      if (!sd) return fail({ kind: step.kind, outcome: 'no-device' }, `${what}: the VM has no shutdown device`);
      await c.settle(() => sd.phase === 'ready' || sd.phase === 'failed', 10);
      const req = sd.request(step.kind, step.force, 'hvkit script');
      await c.settle(() => req.result !== undefined || m.kernel.stage !== 'booted');
      const r = req.result;
      if (r?.outcome === 'accepted') await c.settle(() => m.kernel.stage !== 'booted', 60);
      const halted = m.kernel.stage === 'halted';
      const guest = halted ? (m.kernel.haltedBy === 'reboot' ? 'restarted' : 'powered off') : m.kernel.stage;
      const values = { kind: step.kind, force: step.force, outcome: r?.outcome ?? 'no-answer', guest, ...(r && 'status' in r ? { status: r.status } : {}) };
      if (!r) return fail(values, `${what}: no answer from the guest`);
      if (r.outcome === 'accepted') return halted ? ok(values, `${what}: accepted, the guest ${guest}`) : fail(values, `${what}: accepted, but the guest is still ${guest} after 60 s`);
      return fail(values, `${what}: ${r.outcome === 'refused' ? `refused, the guest answered ${statusText(r.status)}` : unanswered(r, 'shutdown')}`);
    }
    case 'kvp': {
      const what = stepTitle(step);
      const kvp = await c.ready<KvpHost>('kvp');
      if (!kvp) return fail({ outcome: 'no-device' }, `${what}: the VM has no KVP device`);
      if (step.action === 'enumerate') {
        const req = kvp.enumerate(step.pool);
        await c.settle(() => req.result !== undefined);
        const r = req.result;
        if (!r) return fail({ outcome: 'no-answer' }, `${what}: no answer from the guest`);
        const entries = r.entries.map((e) => ({ key: e.key, value: e.value }));
        const list = r.entries.map((e) => `\n  ${quote(e.key)} = ${quote(e.value)}`).join('');
        if (r.outcome !== 'ok') return fail({ outcome: r.outcome, entries }, `${what}: ${kvpFailure(r)}, after ${plural(entries.length, 'entry', 'entries')}${list}`);
        return ok({ outcome: 'ok', entries }, `${what}: ${plural(entries.length, 'entry', 'entries')}${list}`);
      }
      const req = step.action === 'set' ? kvp.set(step.pool, step.key, step.value) : step.action === 'get' ? kvp.get(step.pool, step.key) : kvp.delete(step.pool, step.key);
      await c.settle(() => req.result !== undefined);
      const r = req.result;
      if (!r) return fail({ outcome: 'no-answer' }, `${what}: no answer from the guest`);
      if (r.outcome !== 'ok') return fail({ outcome: r.outcome, ...('status' in r ? { status: r.status } : {}) }, `${what}: ${kvpFailure(r)}`);
      if (!('value' in r)) return ok({ outcome: 'ok' }, `${what}: ok`);
      const value = String(r.value);
      // Linux 6.1's kernel asks its daemon for a value with value_size 0 (hv_kvp.c), so every GET of
      // an existing key comes back empty; enumerating reads the value.
      const note = value === '' ? ` (Linux 6.1 answers a get with an empty value; "kvp enumerate ${step.pool}" reads it)` : '';
      return ok({ outcome: 'ok', value }, `${what}: ${quote(value)}${note}`);
    }
    case 'copy-file': {
      const what = stepTitle(step);
      const fc = await c.ready<FcopyHost>('fcopy');
      if (!fc) return fail({ outcome: 'no-device' }, 'copy-file: the VM has no file copy device (add "fcopy" to its devices)');
      if (!host) return fail({ outcome: 'no-host-files' }, 'copy-file: no host files to read here');
      let data: Uint8Array;
      try {
        data = host.readFile(step.hostFile);
      } catch (e) {
        return fail({ outcome: 'unreadable', error: (e as NodeJS.ErrnoException).code ?? String(e) }, `copy-file: cannot read ${step.hostFile}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      }
      const t = fc.copyFile(step.guestDir, step.name, data, { overwrite: step.overwrite, createPath: step.createPath });
      await c.settle(() => t.result !== undefined);
      const r = t.result;
      const values = { outcome: r?.outcome ?? 'no-answer', bytes: data.length, ...(r && 'step' in r ? { failedStep: r.step } : {}), ...(r && 'status' in r ? { status: r.status } : {}) };
      if (r?.outcome === 'copied') return ok(values, `${what}: copied ${plural(data.length, 'byte')}`);
      const why = !r
        ? 'no answer from the guest'
        : r.outcome === 'failed'
          ? `the guest failed ${r.step} with ${statusText(r.status)}`
          : r.outcome === 'invalid'
            ? `refused: ${r.reason}`
            : r.outcome === 'cancelled'
              ? 'cancelled'
              : `${unanswered(r, 'file copy')}${'step' in r ? ` (at ${r.step})` : ''}`;
      return fail(values, `${what}: ${why}`);
    }
    case 'vss': {
      const vss = await c.ready<VssHost>('vss');
      if (!vss) return fail({ outcome: 'no-device' }, `vss ${step.action}: the VM has no VSS device`);
      const req = step.action === 'check' ? vss.hotBackupCheck() : step.action === 'freeze' ? vss.freeze() : vss.thaw();
      await c.settle(() => req.result !== undefined);
      const r = req.result;
      if (!r) return fail({ outcome: 'no-answer' }, `vss ${step.action}: no answer from the guest`);
      if (r.outcome === 'succeeded') return ok({ outcome: r.outcome, flags: r.flags }, `vss ${step.action}: succeeded`);
      const values = { outcome: r.outcome, ...('status' in r ? { status: r.status } : {}) };
      return fail(values, `vss ${step.action}: ${r.outcome === 'failed' ? `the guest answered ${statusText(r.status)}` : unanswered(r, 'VSS')}`);
    }
    case 'timesync': {
      const ts = await c.ready<TimesyncHost>('timesync');
      if (!ts) return fail({ outcome: 'no-device' }, `timesync ${step.action}: the VM has no time sync device`);
      const sent = step.action === 'sync' ? ts.sendSync() : ts.sendSample();
      if (!sent) return fail({ outcome: 'not-sent', phase: ts.phase }, `timesync ${step.action}: not sent, the device is ${ts.phase}`);
      await c.run(0.01);
      const skew = Number(m.kernel.services.realtimeNs() - m.host.wallClockNs());
      const at = new Date(Number(sent.wallClockNs / 1_000_000n)).toISOString();
      return ok({ outcome: 'sent', hostTime: at, guestSkewNs: skew }, `timesync ${step.action}: sent ${at}; the guest's clock is ${skew} ns off the host's`);
    }
    case 'hvsock':
      return hvsockEcho(c, step);
    case 'disk':
      return diskStep(c, step, host);
    case 'screenshot':
      return screenStep(c, step, host);
    case 'key':
    case 'mouse': {
      const r = await runInputStep(m, step.input, (done, limitS) => c.settle(done, limitS));
      return result(step, r.ok ? 'ok' : 'failed', r.values, r.text);
    }
    case 'net': {
      const r = await runNetStep(m, step.net, (done, limitS) => c.settle(done, limitS), c.lab ? (name) => c.lab!.resolve(name) : undefined);
      return result(step, r.ok ? 'ok' : 'failed', r.values, r.text);
    }
    case 'memory': {
      const r = await runMemoryStep(m, step.memory, (done, limitS) => c.settle(done, limitS));
      return result(step, r.ok ? 'ok' : 'failed', r.values, r.text);
    }
  }
}

/** A guest echo listener on the port (socat VSOCK-LISTEN:port EXEC:cat), then a host connection through it. */
async function hvsockEcho(c: StepContext, step: Extract<Step, { op: 'hvsock' }>): Promise<StepResult> {
  const { m } = c;
  const what = stepTitle(step);
  let guest;
  try {
    guest = guestHvsock(m);
  } catch (e) {
    return result(step, 'failed', { outcome: 'no-hvsock' }, `${what}: ${(e as Error).message}`);
  }
  const listener = guest.listen(step.port, (s) => {
    s.on.data = (b) => void s.write(b);
    s.on.end = () => s.end();
  });
  const sent = new TextEncoder().encode(step.text);
  const got: Uint8Array[] = [];
  let error: string | undefined;
  let closed = false;
  const conn: HostHvSocket = hostHvsock(m).connect(step.port);
  conn.on.connect = () => {
    conn.write(sent);
    conn.end();
  };
  conn.on.data = (b) => void got.push(b);
  conn.on.error = (e) => void (error = e.message);
  conn.on.close = () => void (closed = true);
  await c.settle(() => closed, 30);
  listener.close();
  const all = new Uint8Array(got.reduce((n, b) => n + b.length, 0));
  got.reduce((at, b) => (all.set(b, at), at + b.length), 0);
  const back = new TextDecoder().decode(all);
  if (error) return result(step, 'failed', { outcome: 'error', error }, `${what}: ${error}`);
  const values = { outcome: back === step.text ? 'echoed' : 'different', sent: sent.length, received: back };
  if (back !== step.text) return result(step, 'failed', values, `${what}: sent ${plural(sent.length, 'byte')}, got ${quote(back)} back, which differs`);
  return result(step, 'ok', values, `${what}: sent ${plural(sent.length, 'byte')}, got ${quote(back)} back`);
}
