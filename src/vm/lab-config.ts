// The lab file (`hvkit lab FILE.json`): several VMs, each a VM file (inline, or the path of one)
// with a name and a script, their NICs on switches they share by name. Every failure is a
// ConfigError naming the file and the JSON pointer of the field.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError, imagesRelativeTo, parseJsonText, parseVmConfig, parseVmConfigText, type VmConfig } from './config.js';
import { parseScript, ScriptError, type Step } from './script.js';

export interface LabVmConfig {
  readonly name: string;
  readonly vm: VmConfig;
  readonly script: readonly Step[];
}

export interface LabConfig {
  readonly vms: readonly LabVmConfig[];
  /** Virtual seconds to run after the scripts (default 0). */
  readonly seconds: number;
}

/** At most this many VMs in one lab: each is a whole machine in this process. */
export const MAX_LAB_VMS = 16;
const NAME = /^[a-z][a-z0-9-]{0,31}$/;
const LAB_FIELDS = new Set(['$schema', 'vms', 'seconds']);
const VM_FIELDS = new Set(['name', 'vm', 'script']);

export function parseLabConfig(json: unknown, source: string): LabConfig {
  const fail = (pointer: string, reason: string): never => {
    throw new ConfigError(source, pointer, reason);
  };
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return fail('', 'must be an object {"vms": [...]}');
  const f = json as Record<string, unknown>;
  for (const k of Object.keys(f)) if (!LAB_FIELDS.has(k)) fail(`/${k}`, 'unknown field');
  if (!Array.isArray(f.vms)) return fail('/vms', f.vms === undefined ? 'required field missing' : 'must be an array');
  if (f.vms.length === 0) fail('/vms', 'must list at least one VM');
  if (f.vms.length > MAX_LAB_VMS) fail('/vms', `must have at most ${MAX_LAB_VMS} items`);
  const seconds = f.seconds ?? 0;
  if (typeof seconds !== 'number' || !(seconds >= 0 && seconds <= 3600)) fail('/seconds', 'must be a number of seconds from 0 to 3600');
  const names = new Map<string, number>();
  const vms = f.vms.map((v, i): LabVmConfig => {
    const at = `/vms/${i}`;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail(at, 'must be an object {"name", "vm", "script"}');
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!VM_FIELDS.has(k)) fail(`${at}/${k}`, 'unknown field');
    if (typeof o.name !== 'string' || !NAME.test(o.name)) return fail(`${at}/name`, o.name === undefined ? 'required field missing' : 'must be a name of lower-case letters, digits and -, starting with a letter, at most 32');
    const first = names.get(o.name);
    if (first !== undefined) fail(`${at}/name`, `duplicates the name of /vms/${first}`);
    names.set(o.name, i);
    let vm: VmConfig;
    try {
      if (typeof o.vm === 'string') {
        const path = resolve(dirname(source), o.vm);
        let text: string;
        try {
          text = readFileSync(path, 'utf8');
        } catch (e) {
          return fail(`${at}/vm`, `cannot read ${o.vm}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
        }
        vm = imagesRelativeTo(parseVmConfigText(text, path), path);
      } else vm = imagesRelativeTo(parseVmConfig(o.vm ?? {}, source), source);
    } catch (e) {
      // An inline VM's pointer is relative to the VM object: make it the lab file's.
      if (e instanceof ConfigError && e.source === source && e.pointer !== undefined) throw new ConfigError(source, `${at}/vm${e.pointer}`, e.reason);
      throw e;
    }
    if (o.script !== undefined && (!Array.isArray(o.script) || o.script.some((l) => typeof l !== 'string'))) fail(`${at}/script`, 'must be an array of step lines');
    const lines = (o.script as string[] | undefined) ?? [];
    let script: Step[];
    try {
      script = parseScript(lines.join('\n'), source);
    } catch (e) {
      if (!(e instanceof ScriptError)) throw e;
      return fail(`${at}/script/${e.line - 1}`, e.reason);
    }
    return { name: o.name, vm, script };
  });
  return { vms, seconds: seconds as number };
}

export function loadLabConfig(path: string): LabConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, undefined, `cannot read: ${(e as Error).message}`);
  }
  return parseLabConfig(parseJsonText(text, path), path);
}
