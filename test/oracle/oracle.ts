// Access to the Linux layout oracle (../shared/oracle/linux-hv-layouts.json, read from a real
// kernel's BTF). When the steering repository sits beside this one the full file is used;
// otherwise the vendored subset in test/fixtures, which scripts/oracle-subset.ts extracts and
// oracle.test.ts keeps identical to the full file.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TLFS_LAYOUTS } from '../../src/tlfs/layouts.js';

const here = dirname(fileURLToPath(import.meta.url));
export const FULL_ORACLE_PATH = resolve(here, '../../../shared/oracle/linux-hv-layouts.json');
export const SUBSET_PATH = resolve(here, '../fixtures/oracle-subset.json');

export interface OracleField {
  name: string;
  offset_bytes: number;
  size_bytes: number;
  bit_offset?: number;
  bit_size?: number;
}
export interface OracleStruct {
  name: string;
  kind: string;
  size: number;
  flat?: OracleField[];
  fields: OracleField[];
}
export interface OracleEnum {
  values: { name: string; value: number | string }[];
}
export interface OracleSubset {
  kernel: unknown;
  structs: Record<string, OracleStruct>;
  enums: Record<string, OracleEnum>;
  macros: Record<string, { value: number | string; hex: string }>;
}

/** Enums whose values hvkit declares. */
export const WANTED_ENUMS = ['hv_message_type', 'HV_GENERIC_SET_FORMAT', 'hv_interrupt_source', 'hv_mem_host_visibility', 'hv_isolation_type'];
/** Macro families hvkit declares constants for. */
export const WANTED_MACRO = /^(HV_|HVCALL_|HYPERV_|HVMSG_)/;

interface FullOracle {
  kernel: unknown;
  structs: Record<string, OracleStruct>;
  enums: Record<string, OracleEnum>;
  anonymous_enums: OracleEnum[];
  compiled: { structs: Record<string, OracleStruct>; enums: Record<string, OracleEnum>; macros: Record<string, { value: number | string; hex: string }> };
}

/** The subset of the full oracle that hvkit's declarations need. Deterministic. */
export function extractSubset(full: FullOracle): OracleSubset {
  const structs: Record<string, OracleStruct> = {};
  for (const l of TLFS_LAYOUTS) {
    const s = full.structs[l.name] ?? full.compiled.structs[l.name];
    if (s) structs[l.name] = { name: s.name, kind: s.kind, size: s.size, fields: s.fields, ...(s.flat ? { flat: s.flat } : {}) };
  }
  const enums: Record<string, OracleEnum> = {};
  for (const n of WANTED_ENUMS) {
    const e = full.enums[n] ?? full.compiled.enums[n];
    if (e) enums[n] = { values: e.values.map((v) => ({ name: v.name, value: v.value })) };
  }
  const macros: Record<string, { value: number | string; hex: string }> = {};
  for (const [k, v] of Object.entries(full.compiled.macros).sort(([a], [b]) => a.localeCompare(b))) {
    if (WANTED_MACRO.test(k)) macros[k] = { value: v.value, hex: v.hex };
  }
  return { kernel: full.kernel, structs, enums, macros };
}

/** HVKIT_ORACLE=subset runs the checks as a machine without the steering repository would. */
export function fullOracle(): FullOracle | undefined {
  if (process.env['HVKIT_ORACLE'] === 'subset') return undefined;
  return existsSync(FULL_ORACLE_PATH) ? (JSON.parse(readFileSync(FULL_ORACLE_PATH, 'utf8')) as FullOracle) : undefined;
}

export function loadOracle(): { oracle: OracleSubset; source: 'full' | 'subset' } {
  const full = fullOracle();
  if (full) return { oracle: extractSubset(full), source: 'full' };
  return { oracle: JSON.parse(readFileSync(SUBSET_PATH, 'utf8')) as OracleSubset, source: 'subset' };
}
