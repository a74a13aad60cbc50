// The VM configuration file: defaults, a full file, one test per error (each must name the file
// and the field), the published schema against the code's own lists, and arbitrary input.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSize } from '../../src/cli/parse.js';
import { DEFAULT_DEVICES, DEVICE_TYPES } from '../../src/devices/catalog.js';
import { ARCHES } from '../../src/hypervisor/features.js';
import { RELEASE_IDS, RELEASES } from '../../src/hypervisor/release.js';
import {
  ARCH_MAX_VPS,
  ConfigError,
  DEFAULT_VM_CONFIG,
  MIN_MEMORY,
  loadVmConfig,
  parseByteSize,
  parseVmConfig,
  parseVmConfigText,
  vmConfigSchema,
  type VmConfig,
} from '../../src/vm/config.js';

const MIB = 1 << 20;
const GIB = 1 << 30;
const GUID_A = '6ac0c4f8-2f9c-4a5e-9a1b-0c8f2d6e4b31';
const GUID_B = '0f3c1b9e-7d2a-4c55-8e1f-3a6b9c2d4e70';
const ALL_DEVICES = DEVICE_TYPES.join(', ');

const dir = mkdtempSync(join(tmpdir(), 'hvkit-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The ConfigError `f` throws; fails the test if it throws anything else or nothing. */
function configError(f: () => unknown): ConfigError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError, got a configuration');
}

/** Asserts the message is "<source>: <pointer>: <reason>" and names the field. */
function expectFieldError(json: unknown, pointer: string, reason: string, source = 'vm.json'): void {
  const e = configError(() => parseVmConfig(json, source));
  expect(e.message).toBe(`${source}: ${pointer}: ${reason}`);
  expect(e.pointer).toBe(pointer);
  expect(e.source).toBe(source);
  expect(e.name).toBe('ConfigError');
}

/** Everything a VmConfig promises, whatever input produced it. */
function expectValidConfig(c: VmConfig): void {
  expect(RELEASE_IDS).toContain(c.release);
  expect(ARCHES).toContain(c.arch);
  expect(Number.isSafeInteger(c.vps) && c.vps >= 1 && c.vps <= ARCH_MAX_VPS[c.arch] && c.vps <= RELEASES[c.release].maxVirtualProcessors).toBe(true);
  expect([4096, 16384, 65536]).toContain(c.pageSize);
  if (c.pageSize !== 4096) expect(c.arch).toBe('arm64');
  expect(Number.isSafeInteger(c.memory) && c.memory >= MIN_MEMORY && c.memory % c.pageSize === 0).toBe(true);
  if (c.apicIds !== undefined) {
    expect(c.apicIds).toHaveLength(c.vps);
    expect(new Set(c.apicIds).size).toBe(c.vps);
    for (const id of c.apicIds) expect(Number.isInteger(id) && id >= 0 && id <= 0xffffffff).toBe(true);
  }
  const instances = c.devices.flatMap((d) => (d.instance === undefined ? [] : [d.instance]));
  expect(new Set(instances).size).toBe(instances.length);
  for (const d of c.devices) expect(DEVICE_TYPES).toContain(d.type);
}

describe('parseVmConfig: valid files', () => {
  it('{} gives the defaults: ws2022, x64, 2 CPUs, 256 MiB, 4 KiB pages, the default devices', () => {
    const c = parseVmConfig({});
    expect(c).toStrictEqual({
      release: 'ws2022',
      arch: 'x64',
      vps: 2,
      memory: 256 * MIB,
      pageSize: 4096,
      devices: DEFAULT_DEVICES.map((type) => ({ type })),
    });
    expect('apicIds' in c).toBe(false);
    expect(c).toStrictEqual({ ...DEFAULT_VM_CONFIG, devices: DEFAULT_VM_CONFIG.devices });
    expectValidConfig(c);
  });

  it('the defaults are fresh objects: changing one result does not change the next', () => {
    parseVmConfig({}).devices.push({ type: 'ide' });
    expect(parseVmConfig({}).devices).toHaveLength(DEFAULT_DEVICES.length);
  });

  it('a full file round-trips through a file on disk into the normalized form', () => {
    const file = {
      $schema: '../schema/vm.schema.json',
      release: 'ws2025',
      arch: 'arm64',
      cpus: 4,
      apicIds: [3, 2, 1, 0],
      memory: '1G',
      pageSize: '64k',
      devices: ['scsi', { type: 'network', instance: GUID_A.toUpperCase() }, { type: 'ide' }, { type: 'ide', instance: GUID_B }, 'scsi'],
    };
    const expected: VmConfig = {
      release: 'ws2025',
      arch: 'arm64',
      vps: 4,
      memory: GIB,
      pageSize: 65536,
      apicIds: [3, 2, 1, 0],
      devices: [{ type: 'scsi' }, { type: 'network', instance: GUID_A }, { type: 'ide' }, { type: 'ide', instance: GUID_B }, { type: 'scsi' }],
    };
    expect(parseVmConfig(file)).toStrictEqual(expected);
    const path = join(dir, 'full.json');
    writeFileSync(path, JSON.stringify(file, null, 2));
    expect(loadVmConfig(path)).toStrictEqual(expected);
    // Saved by a Windows editor, with a byte order mark.
    writeFileSync(path, '\uFEFF' + JSON.stringify(file));
    expect(loadVmConfig(path)).toStrictEqual(expected);
  });

  it('memory as a byte count, and every size spelling the CLI accepts', () => {
    expect(parseVmConfig({ memory: 32 * MIB }).memory).toBe(32 * MIB);
    for (const s of ['512M', '512m', '512MiB', '512mb', ' 512M ', '524288K', '536870912']) expect(parseVmConfig({ memory: s }).memory).toBe(512 * MIB);
  });

  it('an empty device list offers no devices; the limits themselves are accepted', () => {
    expect(parseVmConfig({ devices: [] }).devices).toEqual([]);
    expect(parseVmConfig({ arch: 'arm64', cpus: ARCH_MAX_VPS.arm64, release: 'ws2025' }).vps).toBe(320);
    expect(parseVmConfig({ cpus: 2048, release: 'ws2025' }).vps).toBe(2048);
    expect(parseVmConfig({ memory: MIN_MEMORY }).memory).toBe(MIN_MEMORY);
    expect(parseVmConfig({ cpus: 1, apicIds: [0xffffffff] }).apicIds).toEqual([0xffffffff]);
  });
});

describe('parseVmConfig: each error names the file and the field', () => {
  it('the root must be an object', () => {
    for (const json of [[], null, 'ws2022', 3]) {
      const e = configError(() => parseVmConfig(json, 'lab.json'));
      expect(e.message).toBe('lab.json: must be an object');
    }
  });

  it('an unknown top-level field', () => expectFieldError({ cpus: 2, cpu: 2 }, '/cpu', 'unknown field'));
  it('an unknown field name is escaped as a JSON pointer', () => expectFieldError({ 'a/b~c': 1 }, '/a~1b~0c', 'unknown field'));
  it('$schema must be a string', () => expectFieldError({ $schema: 1 }, '/$schema', 'must be a string'));

  it('release not a known release', () => expectFieldError({ release: 'ws2008' }, '/release', `must be one of ${RELEASE_IDS.join(', ')}`));
  it('arch not x64, x86 or arm64', () => expectFieldError({ arch: 'riscv64' }, '/arch', 'must be one of x64, x86, arm64'));
  it('a device type hvkit cannot attach from a VM file (the test-only stream device)', () => expectFieldError({ devices: ['stream'] }, '/devices/0', `must be one of ${DEVICE_TYPES.join(', ')}`));

  it('cpus 0', () => expectFieldError({ cpus: 0 }, '/cpus', 'must be an integer >= 1'));
  it('cpus fractional', () => expectFieldError({ cpus: 1.5 }, '/cpus', 'must be an integer >= 1'));
  it('cpus a string', () => expectFieldError({ cpus: '2' }, '/cpus', 'must be an integer >= 1'));
  it('cpus beyond the architecture (HV_MAXIMUM_PROCESSORS)', () => {
    expectFieldError({ arch: 'arm64', release: 'ws2025', cpus: 321 }, '/cpus', '321 exceeds the 320 virtual processors arm64 allows');
    expectFieldError({ arch: 'x64', release: 'ws2025', cpus: 2049 }, '/cpus', '2049 exceeds the 2048 virtual processors x64 allows');
  });
  it('cpus beyond the release', () => {
    expectFieldError({ release: 'ws2012', cpus: 65 }, '/cpus', '65 exceeds the 64 virtual processors Windows Server 2012 allows');
  });

  it('apicIds not an array', () => expectFieldError({ apicIds: '0,1' }, '/apicIds', 'must be an array'));
  it('an apicIds entry negative or beyond 32 bits', () => {
    expectFieldError({ apicIds: [0, -1] }, '/apicIds/1', 'must be an integer from 0 to 4294967295');
    expectFieldError({ apicIds: [2 ** 32, 0] }, '/apicIds/0', 'must be an integer from 0 to 4294967295');
  });
  it('apicIds with a repeated id', () => expectFieldError({ cpus: 3, apicIds: [4, 5, 4] }, '/apicIds/2', 'duplicates /apicIds/0'));
  it('apicIds not one per CPU', () => {
    expectFieldError({ apicIds: [0, 1, 2] }, '/apicIds', 'must list one APIC id per CPU: 2, not 3');
    expectFieldError({ cpus: 4, apicIds: [0] }, '/apicIds', 'must list one APIC id per CPU: 4, not 1');
  });
  it('apicIds longer than any architecture allows', () => {
    expectFieldError({ apicIds: Array.from({ length: 2049 }, (_, i) => i) }, '/apicIds', 'must have at most 2048 items');
  });

  it('memory neither a number nor a string', () => expectFieldError({ memory: true }, '/memory', 'must be a whole number of bytes or a size such as 256M, 1G or 512K'));
  it('memory a string that is not a size', () => expectFieldError({ memory: '1 GB' }, '/memory', 'must be a size such as 256M, 1G or 512K'));
  it('memory zero', () => expectFieldError({ memory: 0 }, '/memory', 'must be an integer >= 1'));
  it('memory a size beyond 2^53', () => {
    expectFieldError({ memory: '99999999999G' }, '/memory', 'size out of range');
    expectFieldError({ memory: 1e300 }, '/memory', 'size out of range');
  });
  it('memory below 16 MiB', () => {
    expectFieldError({ memory: '15M' }, '/memory', '15M is less than the 16M minimum');
    expectFieldError({ memory: 256 }, '/memory', '256 is less than the 16M minimum');
  });

  it('settings given as flags face the same checks; an error names the flag, not the file', () => {
    const e = configError(() => parseVmConfig({ arch: 'arm64' }, 'vm.json', { cpus: { value: 321, option: '--vps' } }));
    expect(e.message).toBe('--vps: 321 exceeds the 320 virtual processors arm64 allows');
    expect(configError(() => parseVmConfig({}, 'vm.json', { memory: { value: 0, option: '--memory' } })).message).toBe('--memory: must be an integer >= 1');
    // The file's own field is still the file's fault.
    expect(configError(() => parseVmConfig({ cpus: 2, apicIds: [0, 1] }, 'vm.json', { cpus: { value: 3, option: '--vps' } })).message).toBe('vm.json: /apicIds: must list one APIC id per CPU: 3, not 2');
    expect(parseVmConfig({ release: 'ws2016', cpus: 4 }, 'vm.json', { release: { value: 'ws2022', option: '--release' } })).toMatchObject({ release: 'ws2022', vps: 4 });
  });

  it('budget: bounds by name, each a positive integer, channels enough for the devices', () => {
    expect(parseVmConfig({ budget: { channels: 64, queuedMessages: 4 } }).budget).toEqual({ channels: 64, queuedMessages: 4 });
    expectFieldError({ budget: { channels: 3000 } }, '/budget/channels', 'must be an integer from 1 to 2047');
    expectFieldError({ budget: { gpadls: 0 } }, '/budget/gpadls', 'must be an integer >= 1');
    expectFieldError({ budget: { rings: 2 } }, '/budget/rings', 'unknown field');
    expectFieldError({ budget: { channels: 4 } }, '/budget/channels', '4 is fewer than the 11 devices the host offers');
  });

  it('memory above 4 GiB, the most one SharedArrayBuffer can be viewed as on Node 20', () => {
    expectFieldError({ memory: '8G' }, '/memory', '8G is more than the 4G maximum (all of RAM is one SharedArrayBuffer, and Node 20 views at most 4 GiB of one)');
    expectFieldError({ memory: 4 * GIB + 4096 }, '/memory', '4194308K is more than the 4G maximum (all of RAM is one SharedArrayBuffer, and Node 20 views at most 4 GiB of one)');
    expect(parseVmConfig({ memory: '4G' }).memory).toBe(4 * GIB);
  });
  it('memory not a multiple of the page size', () => {
    expectFieldError({ memory: 20_000_000 }, '/memory', '20000000 bytes is not a multiple of the 4096-byte page');
    expectFieldError({ arch: 'arm64', pageSize: '64k', memory: 16 * MIB + 4096 }, '/memory', '16781312 bytes is not a multiple of the 65536-byte page');
  });

  it('pageSize not 4k, 16k or 64k', () => expectFieldError({ pageSize: '8k' }, '/pageSize', 'must be one of 4k, 16k, 64k'));
  it('pageSize 16k or 64k without arch arm64', () => {
    expectFieldError({ pageSize: '64k' }, '/pageSize', '64k needs arch arm64');
    expectFieldError({ arch: 'x86', pageSize: '16k' }, '/pageSize', '16k needs arch arm64');
  });

  it('devices not an array', () => expectFieldError({ devices: 'scsi' }, '/devices', 'must be an array'));
  it('a device type name not in the catalog', () => expectFieldError({ devices: ['scsi', 'network', 'nic'] }, '/devices/2', `must be one of ${ALL_DEVICES}`));
  it("a device object's type not in the catalog", () => expectFieldError({ devices: ['scsi', 'network', { type: 'nic' }] }, '/devices/2/type', `must be one of ${ALL_DEVICES}`));
  it("a device object's type not a string", () => expectFieldError({ devices: [{ type: 5 }] }, '/devices/0/type', `must be one of ${ALL_DEVICES}`));
  it('a device object without a type', () => expectFieldError({ devices: [{ instance: GUID_A }] }, '/devices/0/type', 'required field missing'));
  it('a device object with an unknown field', () => expectFieldError({ devices: [{ type: 'scsi', lun: 0 }] }, '/devices/0/lun', 'unknown field'));
  it('a device neither a name nor an object', () => expectFieldError({ devices: [7] }, '/devices/0', 'must be a device type or an object {"type", "instance", "disks"}'));
  it('a device instance that is not a GUID', () => {
    expectFieldError({ devices: [{ type: 'scsi', instance: `{${GUID_A}}` }] }, '/devices/0/instance', `must be a GUID such as ${GUID_A}`);
  });
  it('a device instance that is not a string', () => {
    expectFieldError({ devices: [{ type: 'scsi', instance: 7 }] }, '/devices/0/instance', `must be a GUID such as ${GUID_A}`);
  });
  it('two devices with one instance GUID, whatever its case', () => {
    const devices = [{ type: 'scsi', instance: GUID_A }, 'network', { type: 'ide', instance: GUID_A.toUpperCase() }];
    expectFieldError({ devices }, '/devices/2/instance', 'duplicates the instance GUID of /devices/0');
  });
});

describe('parseVmConfigText and loadVmConfig: the file itself', () => {
  it('a JSON syntax error names the file, line and column', () => {
    const text = '{\n  "cpus": 2,\n  "arch": x64\n}\n';
    const e = configError(() => parseVmConfigText(text, 'lab.json'));
    expect(e.message).toBe('lab.json:3:11: invalid JSON: unexpected "x"');
    expect(e.position).toEqual({ line: 3, column: 11 });
    expect(e.pointer).toBeUndefined();
  });

  it('each kind of JSON syntax error, at its position', () => {
    const cases: [string, string][] = [
      ['', '1:1: invalid JSON: unexpected end of input'],
      ['{\n  "cpus": 2,\n', '3:1: invalid JSON: unexpected end of input'],
      ['{"cpus": 2,}', `1:12: invalid JSON: expected a property name in double quotes, found "}"`],
      ['{"cpus" 2}', `1:9: invalid JSON: expected ':' after the property name, found "2"`],
      ['{"cpus": 2 "arch": "x64"}', `1:12: invalid JSON: expected ',' or '}', found "\\""`],
      ['["scsi",]', '1:9: invalid JSON: unexpected "]"'],
      ['{} {}', '1:4: invalid JSON: unexpected "{" after the end of the JSON value'],
      ['{"memory": "256M}', '1:12: invalid JSON: unterminated string'],
      ['{"a": "\\q"}', '1:8: invalid JSON: bad escape sequence in string'],
      ['{"a": "\t"}', '1:8: invalid JSON: control character in string (write it as an escape)'],
      ['{"cpus": 02}', '1:10: invalid JSON: malformed number'],
      ['{"cpus": -}', '1:10: invalid JSON: malformed number'],
    ];
    for (const [text, where] of cases) expect(configError(() => parseVmConfigText(text)).message).toBe(`vm.json:${where}`);
  });

  it('a schema error from text names the field as parseVmConfig does', () => {
    expect(configError(() => parseVmConfigText('{"cpus": 0}', 'a.json')).message).toBe('a.json: /cpus: must be an integer >= 1');
  });

  it('loadVmConfig names the path it was given, for a missing file and for a bad one', () => {
    const missing = join(dir, 'missing.json');
    const e = configError(() => loadVmConfig(missing));
    expect(e.message).toMatch(new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot read: ENOENT`));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ devices: ['scsi', 'floppy'] }));
    expect(configError(() => loadVmConfig(bad)).message).toBe(`${bad}: /devices/1: must be one of ${ALL_DEVICES}`);
  });
});

describe('the published schema', () => {
  const schema = vmConfigSchema();
  const props = schema.properties as Record<string, { enum?: unknown[]; default?: unknown; description?: string }>;
  const defs = schema.$defs as Record<string, { enum?: unknown[]; pattern?: string }>;

  it('is draft 2020-12', () => expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema'));

  it("lists exactly the catalog's device types, in its order", () => expect(defs.deviceType!.enum).toEqual([...DEVICE_TYPES]));
  it('lists exactly the releases and architectures the hypervisor knows', () => {
    expect(props.release!.enum).toEqual([...RELEASE_IDS]);
    expect(props.arch!.enum).toEqual([...ARCHES]);
  });

  it('states the defaults parseVmConfig applies', () => {
    const d = parseVmConfig({});
    expect(props.release!.default).toBe(d.release);
    expect(props.arch!.default).toBe(d.arch);
    expect(props.cpus!.default).toBe(d.vps);
    expect(parseByteSize(props.memory!.default as string)).toEqual({ ok: true, bytes: d.memory });
    expect(parseVmConfig({ pageSize: props.pageSize!.default }).pageSize).toBe(d.pageSize);
  });

  it('describes every field, and forbids unknown fields in every object', () => {
    for (const [name, p] of Object.entries(props)) expect(p.description, name).toBeTruthy();
    const objects: Record<string, unknown>[] = [];
    const walk = (s: unknown): void => {
      if (typeof s !== 'object' || s === null) return;
      const o = s as Record<string, unknown>;
      if (o.type === 'object') objects.push(o);
      Object.values(o).forEach(walk);
    };
    walk(schema);
    expect(objects.length).toBeGreaterThanOrEqual(2);
    for (const o of objects) expect(o.additionalProperties).toBe(false);
  });

  it("accepts as a size string exactly the syntax the CLI's --memory accepts", () => {
    const pattern = new RegExp(defs.size!.pattern!, 'u');
    const sizeLike = fc.string({ unit: fc.constantFrom('0', '1', '7', 'k', 'M', 'g', 'i', 'B', ' ', '\t', 'x', '.', '-') });
    fc.assert(
      fc.property(sizeLike, (s) => {
        const r = parseByteSize(s);
        expect(pattern.test(s)).toBe(r.ok || r.error !== 'expected a size such as 256M or 1G');
        // parseSize (the CLI) is parseByteSize with commander's error.
        if (r.ok) expect(parseSize(s)).toBe(r.bytes);
        else expect(() => parseSize(s)).toThrow(r.error);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('arbitrary input: a valid VmConfig or a ConfigError, nothing else', () => {
  const POINTER = /^(\/([^~/]|~[01])*)*$/;

  /** Runs `f`; a result must be a valid config, an error a ConfigError naming a well-formed pointer. */
  function validOrConfigError(f: () => VmConfig): void {
    let c: VmConfig;
    try {
      c = f();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const ce = e as ConfigError;
      if (ce.pointer !== undefined) expect(ce.pointer).toMatch(POINTER);
      expect(ce.message.startsWith(ce.source)).toBe(true);
      return;
    }
    expectValidConfig(c);
  }

  it('any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => validOrConfigError(() => parseVmConfig(v))),
      { numRuns: 1000 },
    );
  });

  it('objects made of the right field names with right and wrong values', () => {
    // Mostly right values, so that a good share of files pass the schema and reach the semantic checks.
    const or = <T>(good: fc.Arbitrary<T>) => fc.oneof({ weight: 15, arbitrary: good }, { weight: 1, arbitrary: fc.jsonValue() });
    const guid = fc.oneof(fc.constantFrom(GUID_A, GUID_B, GUID_A.toUpperCase()), fc.uuid());
    const device = fc.oneof(fc.constantFrom(...DEVICE_TYPES), fc.record({ type: or(fc.constantFrom(...DEVICE_TYPES)), instance: or(guid) }, { requiredKeys: ['type'] }));
    const file = fc.record(
      {
        release: or(fc.constantFrom(...RELEASE_IDS)),
        arch: or(fc.constantFrom(...ARCHES)),
        cpus: or(fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 4 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 2100 }) })),
        apicIds: or(fc.array(fc.integer({ min: -1, max: 8 }), { maxLength: 4 })),
        memory: or(fc.oneof(fc.integer({ min: 0, max: 2 ** 40 }), fc.constantFrom('16M', '17M', '1G', '15M', '64k', '0', '4096'), fc.stringMatching(/^\d{1,5}[kmg]?$/))),
        pageSize: or(fc.constantFrom('4k', '4k', '4k', '16k', '64k')),
        devices: or(fc.array(device, { maxLength: 6 })),
        $schema: or(fc.string()),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(file, (f) => validOrConfigError(() => parseVmConfig(f))),
      { numRuns: 2000 },
    );
  });

  it('any string as the file text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: fc.constantFrom('{', '}', '[', ']', '"', ':', ',', ' ', '\n', '1', 'a', '\\', '-', 'e') })), (text) => {
        validOrConfigError(() => parseVmConfigText(text));
      }),
      { numRuns: 2000 },
    );
  });

  it('JSON text with one character removed or inserted: a located syntax error exactly when JSON.parse refuses it', () => {
    const edited = fc
      .tuple(fc.json(), fc.nat(), fc.constantFrom('', '{', '}', '[', ']', '"', ':', ',', ' ', '0', '-', '.', 'e', '\\', 'x', '\u0001'))
      .map(([text, at, insert]) => {
        const i = at % (text.length + 1);
        return insert === '' ? text.slice(0, i) + text.slice(i + 1) : text.slice(0, i) + insert + text.slice(i);
      });
    fc.assert(
      fc.property(edited, (text) => {
        let parses = true;
        try {
          JSON.parse(text);
        } catch {
          parses = false;
        }
        try {
          parseVmConfigText(text);
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigError);
          const ce = e as ConfigError;
          expect(ce.position !== undefined).toBe(!parses);
          // The scanner, not V8's fallback message, explained it.
          if (!parses) expect(ce.message).toMatch(/^vm\.json:\d+:\d+: invalid JSON: [a-z]/);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
