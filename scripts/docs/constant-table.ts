// Constant tables from the code: an exported table (`export const X = { NAME: value, … } as
// const`) or a module's exported scalars, each value with its name and the comment beside it.
import { join } from 'node:path';
import { code, hexAndDecimal, table } from './markdown.js';
import { ROOT } from './paths.js';
import { moduleComments } from './source-comments.js';
import { sourceLink } from './layout-table.js';
import { wireModules } from './wire-modules.js';

type Scalar = number | bigint | string | boolean;
const isScalar = (v: unknown): v is Scalar => ['number', 'bigint', 'string', 'boolean'].includes(typeof v);

/** A constant table: a plain object of scalars whose keys are names (not a derived number → name map). */
export function isConstantTable(v: unknown): v is Readonly<Record<string, Scalar>> {
  // A plain object, whichever realm made it (a test runner may load modules in a realm of its own).
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as object | null;
  if (proto === null || Object.getPrototypeOf(proto) !== null) return false;
  const entries = Object.entries(v);
  return entries.length > 0 && entries.every(([k, x]) => isScalar(x) && !/^\d+$/.test(k));
}

function valueText(v: Scalar, hex: boolean): string {
  if (typeof v === 'string') return code(v);
  if (typeof v === 'boolean') return String(v);
  return hex ? hexAndDecimal(v) : String(v);
}

/** Hex reads best for codes and masks; a table of small counts or sizes stays decimal. */
const wantsHex = (values: readonly Scalar[]): boolean => values.some((v) => (typeof v === 'number' || typeof v === 'bigint') && v >= 16);

/** The table of the exported constant table `exportName` of `module` (repository-relative). */
export async function constantTable(module: string, exportName: string, fromDir: string): Promise<string> {
  const exports = (await wireModules()).get(module) ?? ((await import(`${join(ROOT, module)}`)) as Record<string, unknown>);
  const value = exports[exportName];
  if (!isConstantTable(value)) throw new Error(`${module} ${exportName} is not a table of named constants`);
  const comments = moduleComments(join(ROOT, module)).get(exportName);
  const hex = wantsHex(Object.values(value));
  const rows = Object.entries(value).map(([k, v]) => [code(k), valueText(v, hex), comments?.members.get(k) ?? '']);
  const doc = comments?.doc ? ` ${comments.doc}` : '';
  return `**${code(exportName)}**, declared in ${sourceLink(module, exportName, fromDir)}.${doc}\n\n${table(['Name', 'Value', 'Meaning'], rows)}`;
}

/** The exported scalar constants of `module` (numbers, bigints, strings), in declaration order. */
export async function scalarTable(module: string, fromDir: string): Promise<string | undefined> {
  const exports = (await wireModules()).get(module) ?? ((await import(`${join(ROOT, module)}`)) as Record<string, unknown>);
  const comments = moduleComments(join(ROOT, module));
  // Declaration order is the comment map's order; exports the parser does not see (re-exports) go last.
  const names = [...comments.keys(), ...Object.keys(exports).filter((k) => !comments.has(k)).sort()].filter((k) => isScalar(exports[k]) && typeof exports[k] !== 'boolean');
  if (!names.length) return undefined;
  const rows = names.map((k) => [code(k), valueText(exports[k] as Scalar, true), comments.get(k)?.doc ?? '']);
  const depth = fromDir.split('/').filter(Boolean).length;
  return `Constants of [${code(module)}](${'../'.repeat(depth)}${module}):\n\n${table(['Name', 'Value', 'Meaning'], rows)}`;
}
