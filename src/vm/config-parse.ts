// The VM configuration file (`hvkit run --config vm.json`): JSON checked against the published
// schema (schema/vm.schema.json), then against the rules a schema cannot state (page size vs
// architecture, one APIC id per CPU, memory vs page size, processor limits, unique instance
// GUIDs), and normalized into a fully defaulted VmConfig. Every failure is a ConfigError that
// names the file and the JSON pointer of the field.
// Platform-neutral (the browser app validates with it too): config.ts adds reading files and
// hands this module the schema from disk; the web app hands it the schema its bundle holds.
import { Ajv2020, type AnySchemaObject, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { DEFAULT_DEVICES, type DeviceTypeName } from '../devices/catalog.js';
import { ARCH_MAX_VPS, type Arch } from '../hypervisor/features.js';
import { RELEASES, type ReleaseId } from '../hypervisor/release.js';
import { MAX_GUEST_MEMORY } from '../memory/guest-memory.js';
import { BudgetError } from '../vmbus/server/budget.js';
import { vmBudget, type VmBudget } from './budget.js';
import type { GuestPageSize } from '../memory/pages.js';
import { checkNicFields, type NicConfig, type NicFields } from './network/nic-config.js';

export interface VmDevice {
  type: DeviceTypeName;
  /** Instance GUID, lower case; absent when the host is to pick one. */
  instance?: string;
  /** A network device's back end, MAC, queues and guest address. */
  nic?: NicConfig;
  /** A storage controller's disks and DVD drives. */
  disks?: VmDisk[];
}

/** A disk image on a storage controller. */
export interface VmDisk {
  /** The image file, as written (relative to `base` when not absolute). */
  path: string;
  /** Where a relative path starts: the VM file's folder, or the working folder for --disk. */
  base?: string;
  /** Who named the disk, for errors: "vm.json: /devices/0/disks/1" or "--disk". */
  origin?: string;
  lun: number;
  readOnly: boolean;
  dvd: boolean;
}

/** The device types that take disks. */
export const STORAGE_DEVICE_TYPES: ReadonlySet<DeviceTypeName> = new Set(['scsi', 'ide', 'fc']);
/** LUNs 0 to 63 of target 0: Hyper-V's 64 disks per SCSI controller. */
export const MAX_LUN = 63;

/** A VM configuration with every default filled in and every size in bytes. */
export interface VmConfig {
  release: ReleaseId;
  arch: Arch;
  vps: number;
  /** RAM in bytes. */
  memory: number;
  pageSize: GuestPageSize;
  /** APIC id of each VP by VP index; absent means the identity. */
  apicIds?: number[];
  devices: VmDevice[];
  /** Bounds that differ from the defaults (budget.ts). */
  budget?: Partial<VmBudget>;
  /** Dynamic memory (the balloon device's policy), sizes in bytes; absent: static memory. */
  dynamicMemory?: VmDynamicMemory;
}

export interface VmDynamicMemory {
  minimum: number;
  maximum: number;
  /** Percent of demand kept free. */
  buffer: number;
}

/** Hyper-V sizes dynamic memory in 2 MiB steps; hv_balloon hot adds 128 MiB blocks (HA_CHUNK). */
export const DYNAMIC_MEMORY_STEP = 2 << 20;
export const HOT_ADD_BLOCK = 128 << 20;

const MIB = 1 << 20;

/** What `{}` means; memory matches `hvkit run`'s --memory default. */
export const DEFAULT_VM_CONFIG: Readonly<VmConfig> = Object.freeze({
  release: 'ws2022',
  arch: 'x64',
  vps: 2,
  memory: 256 * MIB,
  pageSize: 4096,
  devices: DEFAULT_DEVICES.map((type) => ({ type })),
});

/** A floor far below any real guest's needs, there to catch sizes given in the wrong unit ("256"). */
export const MIN_MEMORY = 16 * MIB;

/** The ceiling of the memory model (guest-memory.ts). */
export const MAX_MEMORY = MAX_GUEST_MEMORY;

/** HV_MAXIMUM_PROCESSORS (tlfs.md §7.3); a release may allow fewer (Release.maxVirtualProcessors). */
export { ARCH_MAX_VPS };

const PAGE_SIZES: Readonly<Record<string, GuestPageSize>> = { '4k': 4096, '16k': 16384, '64k': 65536 };

/** Where in the text a syntax error is, both 1-based. */
export interface TextPosition {
  line: number;
  column: number;
}

/**
 * A file that does not describe a VM: `pointer` is the JSON pointer of the field at fault, or
 * undefined when the fault is the file's text (then `position` says where) or the file itself.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly source: string,
    readonly pointer: string | undefined,
    readonly reason: string,
    readonly position?: TextPosition,
  ) {
    // file:line:column is the form editors and terminals turn into a link. The root's pointer is
    // "", which would print as an empty field name.
    const where = position ? `${source}:${position.line}:${position.column}` : source;
    super(pointer ? `${where}: ${pointer}: ${reason}` : `${where}: ${reason}`);
  }
}

// --- Sizes (shared with the CLI's --memory and --page-size) --------------------------------------

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30, t: 2 ** 40 };
const SIZE_SYNTAX = /^(\d+)([kmgt]?)i?b?$/i;

export type SizeResult = { ok: true; bytes: number } | { ok: false; error: string };

/** "256M", "1G", "512K", "2T", "65536" (also "1GiB", "64kb"): a positive byte count, or why not. */
export function parseByteSize(v: string): SizeResult {
  const m = SIZE_SYNTAX.exec(v.trim());
  if (!m) return { ok: false, error: 'expected a size such as 256M or 1G' };
  const n = Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!;
  if (!Number.isSafeInteger(n) || n <= 0) return { ok: false, error: 'size out of range' };
  return { ok: true, bytes: n };
}

// --- The schema ------------------------------------------------------------------------------------

let schema: AnySchemaObject | undefined;
let schemaSource: (() => AnySchemaObject) | undefined;
let validator: ValidateFunction | undefined;

/** Where the schema comes from: config.ts reads schema/vm.schema.json; a browser passes the parsed file. */
export function useVmConfigSchema(source: () => AnySchemaObject): void {
  schemaSource = source;
  schema = undefined;
  validator = undefined;
}

/** The published schema, as parsed JSON (shared: read it, do not modify it). */
export function vmConfigSchema(): AnySchemaObject {
  if (!schemaSource) throw new Error('no VM configuration schema: import vm/config.js, or call useVmConfigSchema');
  schema ??= schemaSource();
  return schema;
}

// Compiled on first use so that importing this module (the CLI does, for sizes) costs no compile.
function validate(): ValidateFunction {
  // verbose: errors carry their schema, whose titles and bounds make the messages.
  validator ??= new Ajv2020({ strict: true, verbose: true }).compile(vmConfigSchema());
  return validator;
}

// --- Schema errors as one readable message ---------------------------------------------------------

const escapePointer = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');
const depth = (pointer: string): number => pointer.split('/').length;

const TYPE_NOUNS: Readonly<Record<string, string>> = {
  object: 'an object',
  array: 'an array',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  null: 'null',
};

function resolveRef(s: AnySchemaObject): AnySchemaObject {
  const ref = s.$ref as string | undefined;
  if (ref === undefined || !ref.startsWith('#/')) return s;
  let at: unknown = vmConfigSchema();
  for (const part of ref.slice(2).split('/')) at = (at as Record<string, unknown>)[part];
  return at as AnySchemaObject;
}

/** What a (sub)schema accepts, in words: its title, else its type. */
function describe(s: AnySchemaObject): string {
  const r = resolveRef(s);
  const title = (s.title ?? r.title) as string | undefined;
  if (title !== undefined) return title;
  const type = r.type as string | undefined;
  return type !== undefined ? (TYPE_NOUNS[type] ?? type) : 'a valid value';
}

/** "an integer >= 1", "an integer from 0 to 4294967295". */
function integerRange(s: AnySchemaObject): string {
  const min = s.minimum as number | undefined;
  const max = s.maximum as number | undefined;
  if (min !== undefined && max !== undefined) return `an integer from ${min} to ${max}`;
  if (min !== undefined) return `an integer >= ${min}`;
  if (max !== undefined) return `an integer <= ${max}`;
  return 'an integer';
}

/**
 * The error to report. Without allErrors ajv reports one failing keyword, or for an anyOf the
 * errors of every branch followed by the anyOf's own. A branch whose type did not match the value
 * says nothing useful (and ajv still reports its enum), so its errors go; of the rest, the deepest
 * got furthest. If nothing is left, the anyOf itself says what the alternatives are.
 */
function pickError(errors: readonly ErrorObject[]): ErrorObject {
  const last = errors[errors.length - 1]!;
  if (last.keyword !== 'anyOf') return errors[0]!;
  const branches = errors.slice(0, -1);
  const here = (e: ErrorObject) => e.instancePath === last.instancePath;
  const wrongType = new Set(branches.filter((e) => e.keyword === 'type' && here(e)).map((e) => e.parentSchema));
  const informative = branches.filter((e) => !(here(e) && wrongType.has(e.parentSchema))).sort((a, b) => depth(b.instancePath) - depth(a.instancePath));
  return informative[0] ?? last;
}

function schemaError(source: string, errors: readonly ErrorObject[]): ConfigError {
  const e = pickError(errors);
  const at = e.instancePath;
  const parent = (e.parentSchema ?? {}) as AnySchemaObject;
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return new ConfigError(source, `${at}/${escapePointer(String(p.additionalProperty))}`, 'unknown field');
    case 'required':
      return new ConfigError(source, `${at}/${escapePointer(String(p.missingProperty))}`, 'required field missing');
    case 'enum':
      return new ConfigError(source, at, `must be one of ${(p.allowedValues as unknown[]).map(String).join(', ')}`);
    case 'anyOf':
      return new ConfigError(source, at, `must be ${((e.schema ?? []) as AnySchemaObject[]).map(describe).join(' or ')}`);
    case 'pattern':
      return new ConfigError(source, at, `must be ${describe(parent)}`);
    case 'uniqueItems': {
      // ajv reports the pair as (later index i, earlier index j).
      const [first, second] = [Number(p.i), Number(p.j)].sort((a, b) => a - b);
      return new ConfigError(source, `${at}/${second}`, `duplicates ${at}/${first}`);
    }
    case 'maxItems':
      return new ConfigError(source, at, `must have at most ${String(p.limit)} items`);
    case 'minLength':
      return new ConfigError(source, at, Number(p.limit) === 1 ? 'must not be empty' : `must have at least ${String(p.limit)} characters`);
    case 'type':
    case 'minimum':
    case 'maximum':
      if (parent.type === 'integer') return new ConfigError(source, at, `must be ${integerRange(parent)}`);
      // ajv checks an enum's type first; the allowed values say more than "must be a string".
      if (Array.isArray(parent.enum)) return new ConfigError(source, at, `must be one of ${parent.enum.map(String).join(', ')}`);
      // The root's title names the file, not what it must be.
      if (e.keyword === 'type') return new ConfigError(source, at, `must be ${at === '' ? TYPE_NOUNS[String(p.type)] : describe(parent)}`);
      break;
  }
  return new ConfigError(source, at, e.message ?? 'is invalid');
}

// --- Parsing ---------------------------------------------------------------------------------------

/** The file as the schema describes it. */
interface VmConfigFile {
  release?: ReleaseId;
  arch?: Arch;
  cpus?: number;
  apicIds?: number[];
  memory?: number | string;
  pageSize?: '4k' | '16k' | '64k';
  devices?: (DeviceTypeName | ({ type: DeviceTypeName; instance?: string; disks?: { path: string; lun?: number; readOnly?: boolean; dvd?: boolean }[] } & NicFields))[];
  budget?: Partial<VmBudget>;
  dynamicMemory?: { min?: number | string; max?: number | string; buffer?: number };
}

/** The top-level fields a command-line flag can set, in the file's own form. */
export type VmOverrideField = 'release' | 'arch' | 'cpus' | 'memory' | 'pageSize' | 'dynamicMemory';

/**
 * Settings given outside the file (`hvkit run --vps 4`), each with the option to name when it is
 * wrong. They replace the file's fields and then face the same checks.
 */
export type VmOverrides = Partial<Record<VmOverrideField, { value: unknown; option: string }>>;

/** The page size as a file writes it. */
export function pageSizeName(bytes: GuestPageSize): '4k' | '16k' | '64k' {
  return `${bytes / 1024}k` as '4k' | '16k' | '64k';
}

/** "256M", "4G", "1536K", "12345": the shortest exact form of a byte count. */
export function formatByteSize(bytes: number): string {
  for (const [unit, size] of [['G', 1 << 30], ['M', 1 << 20], ['K', 1 << 10]] as const) if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  return String(bytes);
}

/**
 * Checks a parsed JSON value, with `overrides` applied, against the schema and the rules beyond
 * it; returns it normalized. An error names the file and field, or the option that set it.
 */
export function parseVmConfig(json: unknown, source = 'vm.json', overrides: VmOverrides = {}): VmConfig {
  const fromFile = json !== null && typeof json === 'object' && !Array.isArray(json);
  const merged: unknown = fromFile ? { ...json, ...Object.fromEntries(Object.entries(overrides).map(([k, o]) => [k, o.value])) } : json;
  // An error in an overridden field is the option's, not the file's.
  const blame = (pointer: string, reason: string): ConfigError => {
    const field = pointer.split('/')[1] as VmOverrideField | undefined;
    const o = field === undefined ? undefined : overrides[field];
    // Inside an object an option sets (--dynamic-memory min=...), the reason names the key.
    const key = pointer.split('/').slice(2).join('/');
    return o ? new ConfigError(o.option, undefined, key ? `${key}: ${reason}` : reason) : new ConfigError(source, pointer, reason);
  };
  const check = validate();
  if (!check(merged)) {
    const e = schemaError(source, check.errors ?? []);
    throw e.pointer === undefined ? e : blame(e.pointer, e.reason);
  }
  const f = merged as VmConfigFile;
  const fail = (pointer: string, reason: string): never => {
    throw blame(pointer, reason);
  };

  const release = f.release ?? DEFAULT_VM_CONFIG.release;
  const arch = f.arch ?? DEFAULT_VM_CONFIG.arch;
  const vps = f.cpus ?? DEFAULT_VM_CONFIG.vps;

  const pageSize = f.pageSize === undefined ? DEFAULT_VM_CONFIG.pageSize : PAGE_SIZES[f.pageSize]!;
  if (pageSize !== DEFAULT_VM_CONFIG.pageSize && arch !== 'arm64') fail('/pageSize', `${f.pageSize} needs arch arm64`);

  const archMax = ARCH_MAX_VPS[arch];
  const { maxVirtualProcessors: releaseMax, name } = RELEASES[release];
  if (vps > archMax) fail('/cpus', `${vps} exceeds the ${archMax} virtual processors ${arch} allows`);
  if (vps > releaseMax) fail('/cpus', `${vps} exceeds the ${releaseMax} virtual processors ${name} allows`);

  // The schema makes the ids distinct and in range; only their count depends on another field.
  if (f.apicIds !== undefined && f.apicIds.length !== vps) {
    fail('/apicIds', `must list one APIC id per CPU: ${vps}, not ${f.apicIds.length}`);
  }

  let memory: number;
  if (typeof f.memory === 'string') {
    const size = parseByteSize(f.memory);
    memory = size.ok ? size.bytes : fail('/memory', size.error);
  } else {
    memory = f.memory ?? DEFAULT_VM_CONFIG.memory;
    if (!Number.isSafeInteger(memory)) fail('/memory', 'size out of range');
  }
  if (memory < MIN_MEMORY) fail('/memory', `${formatByteSize(memory)} is less than the ${formatByteSize(MIN_MEMORY)} minimum`);
  if (memory > MAX_MEMORY) fail('/memory', `${formatByteSize(memory)} is more than the ${formatByteSize(MAX_MEMORY)} maximum (all of RAM is one SharedArrayBuffer, and Node 20 views at most 4 GiB of one)`);
  if (memory % pageSize !== 0) fail('/memory', `${memory} bytes is not a multiple of the ${pageSize}-byte page`);

  const devices: VmDevice[] =
    f.devices === undefined
      ? DEFAULT_VM_CONFIG.devices.map((d) => ({ ...d }))
      : f.devices.map((d, i) => {
          if (typeof d === 'string') return { type: d };
          const out: VmDevice = d.instance === undefined ? { type: d.type } : { type: d.type, instance: d.instance.toLowerCase() };
          if (d.disks !== undefined) {
            if (!STORAGE_DEVICE_TYPES.has(d.type)) fail(`/devices/${i}/disks`, `only a storage controller (${[...STORAGE_DEVICE_TYPES].join(', ')}) has disks, not ${d.type}`);
            out.disks = assignLuns(
              d.disks.map((x, j) => ({ path: x.path, ...(x.lun === undefined ? {} : { lun: x.lun }), readOnly: x.readOnly ?? false, dvd: x.dvd ?? false, origin: `${source}: /devices/${i}/disks/${j}` })),
              (j, reason) => fail(`/devices/${i}/disks/${j}`, reason),
            );
          }
          const nic = checkNicFields(d.type, d, (field, reason) => fail(`/devices/${i}/${field}`, reason));
          if (nic) out.nic = { ...nic, origin: `${source}: /devices/${i}` };
          return out;
        });
  const macs = new Map<string, number>();
  devices.forEach((d, i) => {
    const m = d.nic?.mac;
    if (m === undefined) return;
    const first = macs.get(m);
    if (first !== undefined) fail(`/devices/${i}/mac`, `duplicates the MAC of /devices/${first}`);
    macs.set(m, i);
  });
  const seen = new Map<string, number>();
  devices.forEach((d, i) => {
    if (d.instance === undefined) return;
    const first = seen.get(d.instance);
    if (first !== undefined) fail(`/devices/${i}/instance`, `duplicates the instance GUID of /devices/${first}`);
    seen.set(d.instance, i);
  });

  const config: VmConfig = { release, arch, vps, memory, pageSize, devices };
  if (f.dynamicMemory !== undefined) config.dynamicMemory = checkDynamicMemory(f.dynamicMemory, { memory, arch, devices }, fail);
  if (f.apicIds !== undefined) config.apicIds = [...f.apicIds];
  if (f.budget !== undefined) {
    // The schema bounds each field; the machine's own check is the final word.
    try {
      vmBudget(f.budget);
    } catch (e) {
      if (e instanceof BudgetError) fail(`/budget/${e.field}`, e.message.slice(`budget.${e.field}: `.length));
      throw e;
    }
    if (f.budget.channels !== undefined && f.budget.channels < devices.length) fail('/budget/channels', `${f.budget.channels} is fewer than the ${devices.length} devices the host offers`);
    config.budget = { ...f.budget };
  }
  return config;
}

/** The dynamic memory fields against the startup memory and the limits (schema/vm.schema.json says why). */
function checkDynamicMemory(d: NonNullable<VmConfigFile['dynamicMemory']>, vm: { memory: number; arch: Arch; devices: VmDevice[] }, fail: (pointer: string, reason: string) => never): VmDynamicMemory {
  const size = (key: 'min' | 'max'): number => {
    const v = d[key];
    if (v === undefined) return vm.memory;
    if (typeof v === 'number') return Number.isSafeInteger(v) ? v : fail(`/dynamicMemory/${key}`, 'size out of range');
    const s = parseByteSize(v);
    return s.ok ? s.bytes : fail(`/dynamicMemory/${key}`, s.error);
  };
  const minimum = size('min');
  const maximum = size('max');
  const f = formatByteSize;
  for (const [key, v] of [['min', minimum], ['max', maximum]] as const) {
    if (v % DYNAMIC_MEMORY_STEP !== 0) fail(`/dynamicMemory/${key}`, `${f(v)} is not a multiple of 2M (Hyper-V's dynamic memory step)`);
  }
  if (minimum < MIN_MEMORY) fail('/dynamicMemory/min', `${f(minimum)} is less than the ${f(MIN_MEMORY)} minimum`);
  if (minimum > vm.memory) fail('/dynamicMemory/min', `${f(minimum)} is more than the ${f(vm.memory)} startup memory`);
  if (maximum < vm.memory) fail('/dynamicMemory/max', `${f(maximum)} is less than the ${f(vm.memory)} startup memory`);
  if (maximum > MAX_MEMORY) fail('/dynamicMemory/max', `${f(maximum)} is more than the ${f(MAX_MEMORY)} maximum`);
  if (maximum > vm.memory) {
    if (vm.arch === 'arm64') fail('/dynamicMemory/max', `${f(maximum)} is more than the startup memory, which needs hot add, and hv_balloon does not hot add on arm64`);
    if (vm.memory % HOT_ADD_BLOCK !== 0) fail('/memory', `${f(vm.memory)} is not a multiple of 128M: hv_balloon hot adds 128 MiB blocks above the startup memory, and dynamicMemory max ${f(maximum)} needs hot add`);
  }
  if (!vm.devices.some((x) => x.type === 'balloon')) fail('/dynamicMemory', 'the VM has no balloon device');
  return { minimum, maximum, buffer: d.buffer ?? 20 };
}

/**
 * Gives each disk its LUN: the one it names, else the lowest free one; `fail` is told of a LUN
 * two disks share, or of more disks than LUNs.
 */
export function assignLuns(disks: readonly (Omit<VmDisk, 'lun'> & { lun?: number })[], fail: (index: number, reason: string) => never, taken: readonly number[] = []): VmDisk[] {
  const used = new Map<number, number>(taken.map((l) => [l, -1]));
  disks.forEach((d, j) => {
    if (d.lun === undefined) return;
    const first = used.get(d.lun);
    if (first !== undefined) fail(j, first < 0 ? `LUN ${d.lun} is taken by a disk of the VM file` : `LUN ${d.lun} duplicates the LUN of disk ${first}`);
    used.set(d.lun, j);
  });
  return disks.map((d, j) => {
    if (d.lun !== undefined) return { ...d, lun: d.lun };
    let lun = 0;
    while (used.has(lun)) lun++;
    if (lun > MAX_LUN) fail(j, `no free LUN: a controller has LUNs 0 to ${MAX_LUN}`);
    used.set(lun, j);
    return { ...d, lun };
  });
}

/** JSON text of a file hvkit reads (a VM file, a lab file); a syntax error names the line and column. */
export function parseJsonText(text: string, source: string): unknown {
  // Editors on Windows often save JSON with a byte order mark, which JSON.parse rejects.
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  try {
    return JSON.parse(body);
  } catch (e) {
    throw syntaxError(source, body, e);
  }
}

/** Parses the text of a configuration file; a syntax error names the line and column. */
export function parseVmConfigText(text: string, source = 'vm.json', overrides: VmOverrides = {}): VmConfig {
  return parseVmConfig(parseJsonText(text, source), source, overrides);
}

// --- JSON syntax errors ----------------------------------------------------------------------------

// V8's JSON.parse messages give a position for some errors and not others ("Unexpected token"),
// and change between Node versions; this scanner finds the first error itself, without recursion
// so that deep nesting cannot overflow the stack. It runs only once JSON.parse has failed.
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const NUMBER_TAIL = '0123456789.eE+-';
const HEX4 = /^[0-9a-fA-F]{4}$/;
const JSON_WHITESPACE = ' \t\n\r';
const SIMPLE_ESCAPES = '"\\/bfnrt';
const FIRST_NON_CONTROL = 0x20;

/** Where and why `text` is not JSON (RFC 8259), or undefined if it is. */
function findJsonSyntaxError(text: string): { offset: number; reason: string } | undefined {
  const n = text.length;
  const stack: ('{' | '[')[] = [];
  let i = 0;
  let expect: 'value' | 'valueOrEnd' | 'key' | 'keyOrEnd' | 'after' = 'value';
  const fail = (reason: string, offset = i) => ({ offset, reason });
  const show = (c: string) => JSON.stringify(c);
  // Leaves i after the closing quote; an error if the string does not close properly.
  const scanString = () => {
    const start = i;
    for (i++; i < n; ) {
      const c = text[i]!;
      if (c === '"') {
        i++;
        return undefined;
      }
      if (c === '\\') {
        const e = text[i + 1];
        if (e !== undefined && SIMPLE_ESCAPES.includes(e)) i += 2;
        else if (e === 'u' && HEX4.test(text.slice(i + 2, i + 6))) i += 6;
        else return fail('bad escape sequence in string');
      } else if (c.charCodeAt(0) < FIRST_NON_CONTROL) {
        return fail('control character in string (write it as an escape)');
      } else i++;
    }
    return fail('unterminated string', start);
  };
  for (;;) {
    while (i < n && JSON_WHITESPACE.includes(text[i]!)) i++;
    if (i >= n) return expect === 'after' && stack.length === 0 ? undefined : fail('unexpected end of input');
    const c = text[i]!;
    if (expect === 'after') {
      const top = stack[stack.length - 1];
      if (top === undefined) return fail(`unexpected ${show(c)} after the end of the JSON value`);
      const close = top === '{' ? '}' : ']';
      if (c === ',') expect = top === '{' ? 'key' : 'value';
      else if (c === close) stack.pop();
      else return fail(`expected ',' or '${close}', found ${show(c)}`);
      i++;
    } else if (expect === 'key' || expect === 'keyOrEnd') {
      if (expect === 'keyOrEnd' && c === '}') {
        stack.pop();
        i++;
        expect = 'after';
        continue;
      }
      if (c !== '"') return fail(`expected a property name in double quotes, found ${show(c)}`);
      const bad = scanString();
      if (bad) return bad;
      while (i < n && JSON_WHITESPACE.includes(text[i]!)) i++;
      if (i >= n) return fail('unexpected end of input');
      if (text[i] !== ':') return fail(`expected ':' after the property name, found ${show(text[i]!)}`);
      i++;
      expect = 'value';
    } else {
      const emptyArray = expect === 'valueOrEnd' && c === ']';
      expect = 'after';
      if (emptyArray) {
        stack.pop();
        i++;
      } else if (c === '{' || c === '[') {
        stack.push(c);
        i++;
        expect = c === '{' ? 'keyOrEnd' : 'valueOrEnd';
      } else if (c === '"') {
        const bad = scanString();
        if (bad) return bad;
      } else if (c === '-' || (c >= '0' && c <= '9')) {
        const start = i;
        NUMBER.lastIndex = i;
        if (!NUMBER.test(text)) return fail('malformed number');
        i = NUMBER.lastIndex;
        // "01", "1.", "1e": JSON stops the number early; say what is wrong with it, not with what follows.
        if (i < n && NUMBER_TAIL.includes(text[i]!)) return fail('malformed number', start);
      } else {
        const literal = ['true', 'false', 'null'].find((l) => text.startsWith(l, i));
        if (literal === undefined) return fail(`unexpected ${show(c)}`);
        i += literal.length;
      }
    }
  }
}

function syntaxError(source: string, text: string, parseError: unknown): ConfigError {
  const found = findJsonSyntaxError(text);
  // Should JSON.parse and the scanner ever disagree, V8's message is still better than none.
  const { offset, reason } = found ?? { offset: text.length, reason: parseError instanceof Error ? parseError.message : String(parseError) };
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return new ConfigError(source, undefined, `invalid JSON: ${reason}`, { line, column });
}
