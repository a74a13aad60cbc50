// Where the declarations the book tabulates live: every module of the wire layers (the tlfs
// layer, VMBus's wire folder, each device's wire module), imported, with each export that is a
// layout (`struct`, `bits`) or a constant. A layout is found by identity, so that a table can
// say which module declares it and read the comments there.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Bitfield, Struct, type BitSpec, type FieldSpec } from '../../src/tlfs/struct.js';
import { ROOT } from './paths.js';
import { moduleComments } from './source-comments.js';

export type Layout = Struct<FieldSpec> | Bitfield<BitSpec>;

export interface Declared<T> {
  /** Repository-relative path of the declaring module, e.g. `src/vmbus/wire/messages.ts`. */
  readonly module: string;
  readonly exportName: string;
  readonly value: T;
}

/** Repository-relative paths of the wire modules, sorted. */
export function wireModulePaths(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(join(ROOT, dir)).sort()) {
      const rel = `${dir}/${name}`;
      if (statSync(join(ROOT, rel)).isDirectory()) walk(rel);
      else if (isWireModule(rel)) out.push(rel);
    }
  };
  walk('src');
  return out;
}

function isWireModule(rel: string): boolean {
  if (!rel.endsWith('.ts')) return false;
  if (/^src\/tlfs\/(?!struct\.ts|bounded-log\.ts|index\.ts|layouts\.ts)[^/]+\.ts$/.test(rel)) return true;
  if (/^src\/vmbus\/wire\/(constants|guids|messages|packets)\.ts$/.test(rel)) return true;
  return /^src\/devices\/[^/]+\/(wire[^/]*\.ts|wire\/[^/]+\.ts)$/.test(rel) && !rel.endsWith('/index.ts');
}

let loaded: Map<string, Record<string, unknown>> | undefined;

/** Every wire module's exports, by repository-relative path. */
export async function wireModules(): Promise<ReadonlyMap<string, Record<string, unknown>>> {
  if (!loaded) {
    loaded = new Map();
    for (const rel of wireModulePaths()) loaded.set(rel, (await import(pathToFileURL(join(ROOT, rel)).href)) as Record<string, unknown>);
  }
  return loaded;
}

export const isLayout = (v: unknown): v is Layout => v instanceof Struct || v instanceof Bitfield;

/** The module and export name of each layout, by identity (the first export that holds it). */
export async function layoutIndex(): Promise<ReadonlyMap<Layout, Declared<Layout>>> {
  const index = new Map<Layout, Declared<Layout>>();
  for (const [module, exports] of await wireModules()) {
    for (const exportName of declarationOrder(module, exports)) {
      const value = exports[exportName];
      if (isLayout(value) && !index.has(value)) index.set(value, { module, exportName, value });
    }
  }
  return index;
}

/** The export `exportName` of the module at repository-relative `module`. */
export async function exportOf(module: string, exportName: string): Promise<unknown> {
  const exports = (await import(pathToFileURL(join(ROOT, module)).href)) as Record<string, unknown>;
  if (!(exportName in exports)) throw new Error(`${module} has no export '${exportName}'`);
  return exports[exportName];
}

export const repoPath = (abs: string): string => relative(ROOT, abs).split('\\').join('/');

/** A module's export names in the order its source declares them (module namespaces list them differently under different loaders). */
export function declarationOrder(module: string, exports: Record<string, unknown>): string[] {
  const declared = [...moduleComments(join(ROOT, module)).keys()].filter((k) => k in exports);
  return [...declared, ...Object.keys(exports).filter((k) => !declared.includes(k)).sort()];
}
