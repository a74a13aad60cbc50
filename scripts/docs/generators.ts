// What each region kind of the book generates (regions.ts). `fromDir` is the directory of the
// Markdown file, repository-relative, for links back to the code.
import { LAYOUTS } from '../../test/oracle/oracle.js';
import { MESSAGES } from '../../src/vmbus/wire/messages.js';
import { constantTable, isConstantTable, scalarTable } from './constant-table.js';
import { byteExample } from './examples.js';
import { balloonVersionsByRelease, icVersionsByRelease, networkVersionsByRelease, storageVersionsByRelease } from './device-versions.js';
import { cpuidBits, cpuidByRelease, hypercallTable, registerTable, releaseSources } from './hypervisor-tables.js';
import { layoutTable } from './layout-table.js';
import { layerDiagram } from './layers.js';
import { code, table } from './markdown.js';
import { sequenceDiagram } from './sequences.js';
import { declarationOrder, exportOf, isLayout, layoutIndex, wireModules } from './wire-modules.js';

type Generator = (args: readonly string[], fromDir: string) => Promise<string>;

const arity = (n: number, usage: string, g: Generator): Generator => async (args, fromDir) => {
  if (args.length !== n) throw new Error(`expected '${usage}'`);
  return g(args, fromDir);
};

/** Every layout the oracle checks, grouped by declaring module: the book's complete reference. */
async function allLayouts(fromDir: string): Promise<string> {
  const index = await layoutIndex();
  const byModule = new Map<string, string[]>();
  for (const l of LAYOUTS) {
    const d = index.get(l);
    if (!d) throw new Error(`layout ${l.name} is not exported by a wire module`);
    const list = byModule.get(d.module) ?? [];
    list.push(await layoutTable(l, fromDir));
    byModule.set(d.module, list);
  }
  return [...byModule].map(([module, tables]) => `### ${code(module)}\n\n${tables.join('\n\n')}`).join('\n\n');
}

/** Every constant table and scalar constant of the wire modules, by module. */
async function allConstants(fromDir: string): Promise<string> {
  const parts: string[] = [];
  for (const [module, exports] of await wireModules()) {
    const tables: string[] = [];
    for (const name of declarationOrder(module, exports)) if (isConstantTable(exports[name])) tables.push(await constantTable(module, name, fromDir));
    const scalars = await scalarTable(module, fromDir);
    if (scalars) tables.push(scalars);
    if (tables.length) parts.push(`### ${code(module)}\n\n${tables.join('\n\n')}`);
  }
  return parts.join('\n\n');
}

/** The channel message types hvkit knows: value, name, sender, fixed size. */
function messageTypes(): string {
  const rows = Object.entries(MESSAGES).map(([type, m]) => [type, code(`CHANNELMSG_${m.name}`), m.dir === 'guest' ? 'guest → host' : 'host → guest', String(m.struct.size), code(m.struct.name)]);
  return table(['Type', 'Name', 'Sent by', 'Fixed size', 'Layout'], rows);
}

const GENERATORS: Readonly<Record<string, Generator>> = {
  layout: arity(2, 'layout MODULE EXPORT', async ([module, name], fromDir) => {
    const v = await exportOf(module!, name!);
    if (!isLayout(v)) throw new Error(`${module} ${name} is not a struct or bit field`);
    return layoutTable(v, fromDir);
  }),
  constants: arity(2, 'constants MODULE EXPORT', ([module, name], fromDir) => constantTable(module!, name!, fromDir)),
  scalars: arity(1, 'scalars MODULE', async ([module], fromDir) => (await scalarTable(module!, fromDir)) ?? ''),
  'all-layouts': arity(0, 'all-layouts', (_a, fromDir) => allLayouts(fromDir)),
  'all-constants': arity(0, 'all-constants', (_a, fromDir) => allConstants(fromDir)),
  'message-types': arity(0, 'message-types', async () => messageTypes()),
  'cpuid-by-release': arity(0, 'cpuid-by-release', async () => cpuidByRelease()),
  'cpuid-bits': arity(1, 'cpuid-bits privilegesLow|privilegesHigh|misc|hints', async ([word]) => cpuidBits(word!)),
  releases: arity(0, 'releases', async () => releaseSources()),
  hypercalls: arity(0, 'hypercalls', async () => hypercallTable()),
  registers: arity(0, 'registers', async () => registerTable()),
  'ic-versions': arity(0, 'ic-versions', async () => icVersionsByRelease()),
  'storage-versions': arity(0, 'storage-versions', async () => storageVersionsByRelease()),
  'network-versions': arity(0, 'network-versions', async () => networkVersionsByRelease()),
  'balloon-versions': arity(0, 'balloon-versions', async () => balloonVersionsByRelease()),
  layers: arity(0, 'layers', async () => layerDiagram()),
  sequence: arity(1, 'sequence NAME', ([name]) => sequenceDiagram(name!)),
  example: arity(1, 'example NAME', ([name]) => byteExample(name!)),
};

/** The text of the region `spec` (`kind arg…`) in a file in `fromDir`. */
export function generate(spec: string, fromDir: string): Promise<string> {
  const [kind, ...args] = spec.split(/\s+/);
  const g = GENERATORS[kind!];
  if (!g) throw new Error(`unknown region kind '${kind}' (have ${Object.keys(GENERATORS).join(', ')})`);
  return g(args, fromDir);
}
