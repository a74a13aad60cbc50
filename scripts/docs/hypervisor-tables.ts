// Tables of the hypervisor interface as hvkit implements it, computed from its own tables: the
// CPUID leaves each release reports, the synthetic registers and the hypercalls with the
// privilege that gates each (found by asking the gate of every single privilege bit).
import { Hints, MiscX64, PrivHigh, PrivLow } from '../../src/tlfs/cpuid.js';
import { HvCall, HvExtCall } from '../../src/tlfs/hypercall-codes.js';
import { msrName } from '../../src/tlfs/msr.js';
import { registerName } from '../../src/tlfs/registers.js';
import { computeFeatures, hypervisorLeaf, type Features } from '../../src/hypervisor/features.js';
import { HYPERCALLS } from '../../src/hypervisor/hypercall/index.js';
import { SYNTHETIC_REGISTERS } from '../../src/hypervisor/registers.js';
import { RELEASE_IDS, RELEASES } from '../../src/hypervisor/release.js';
import { code, table } from './markdown.js';

const hex = (v: number): string => `0x${(v >>> 0).toString(16)}`;

/** CPUID 0x40000000 to the highest leaf any release reports, per release (x64). */
export function cpuidByRelease(): string {
  const features = RELEASE_IDS.map((id) => computeFeatures(RELEASES[id], 'x64'));
  const top = Math.max(...features.map((f) => f.maxLeaf));
  const rows: string[][] = [];
  for (let leaf = 0x40000000; leaf <= top; leaf++) {
    for (const reg of ['eax', 'ebx', 'ecx', 'edx'] as const) {
      const values = features.map((f) => hypervisorLeaf(f, leaf)[reg]);
      if (values.every((v) => v === 0)) continue;
      rows.push([`${hex(leaf)}.${reg.toUpperCase()}`, ...values.map((v) => code(hex(v)))]);
    }
  }
  return table(['Leaf.register', ...RELEASE_IDS.map((id) => RELEASES[id].name)], rows);
}

/** Where each release's values come from (the release table's own notes). */
export function releaseSources(): string {
  return table(
    ['Release', 'Build', 'VMBus version', 'Sources'],
    RELEASE_IDS.map((id) => {
      const r = RELEASES[id];
      return [r.name, `${r.version.major}.${r.version.minor}.${r.version.build}`, `${r.vmbusVersion.major}.${r.vmbusVersion.minor}`, r.sources];
    }),
  );
}

type FeatureWord = 'privilegesLow' | 'privilegesHigh' | 'misc' | 'hints';
const WORDS: readonly { word: FeatureWord; label: string; names: Readonly<Record<string, number>> }[] = [
  { word: 'privilegesLow', label: '0x40000003.EAX', names: PrivLow },
  { word: 'privilegesHigh', label: '0x40000003.EBX', names: PrivHigh },
  { word: 'misc', label: '0x40000003.EDX', names: MiscX64 },
  { word: 'hints', label: '0x40000004.EAX', names: Hints },
];

/**
 * The feature bits a gate needs, found by trying it with all bits and with each one taken away.
 * Each needed bit is named as its CPUID word and the tlfs constant that defines it.
 */
function gateText(gate: ((f: Features) => boolean) | undefined): string {
  if (!gate) return 'none';
  const all = { ...computeFeatures(RELEASES.ws2025, 'x64'), privilegesLow: ~0, privilegesHigh: ~0, misc: ~0, hints: ~0 } as Features;
  if (!gate(all)) return 'never';
  const needed: string[] = [];
  for (const { word, label, names } of WORDS) {
    for (let bit = 0; bit < 32; bit++) {
      if (gate({ ...all, [word]: ~(1 << bit) } as Features)) continue;
      const name = Object.entries(names).find(([, v]) => v >>> 0 === (1 << bit) >>> 0)?.[0];
      needed.push(`${label} bit ${bit}${name ? ` (${name})` : ''}`);
    }
  }
  return needed.join(' and ') || 'none';
}

const callName = (c: number): string =>
  Object.entries(HvCall).find(([, v]) => v === c)?.[0] ?? Object.entries(HvExtCall).find(([, v]) => v === c)?.[0] ?? hex(c);

/** Every hypercall hvkit implements: code, name, form, input and output sizes, and its gate. */
export function hypercallTable(): string {
  const rows = [...HYPERCALLS]
    .sort((a, b) => a.code - b.code)
    .map((d) => {
      const form = d.rep ? 'rep' : 'simple';
      const input = d.rep ? `${d.input} + ${d.repInput ?? 0} per element` : String(d.input);
      const output = d.rep ? (d.repOutput ? `${d.repOutput} per element` : '—') : d.output ? String(d.output) : '—';
      return [
        code(hex(d.code).replace(/^0x/, '0x' + '0'.repeat(Math.max(0, 4 - d.code.toString(16).length)))),
        code(callName(d.code)),
        `${form}${d.varHeader ? ', variable header' : ''}${d.fast === false ? ', memory only' : ', fast or memory'}`,
        input,
        output,
        gateText(d.gate),
      ];
    });
  return table(['Code', 'Name', 'Form', 'Input bytes', 'Output bytes', 'Needs'], rows);
}

/** Every synthetic register: its MSR (x86) and register name (arm64), access, and gate. */
export function registerTable(): string {
  const rows = SYNTHETIC_REGISTERS.map((r) => [
    code(r.name),
    r.msr !== undefined ? `${code(hex(r.msr))} ${msrName(r.msr)}` : '—',
    r.reg !== undefined ? `${code(hex(r.reg))} ${registerName(r.reg)}` : '—',
    r.read && r.write ? 'read, write' : r.read ? 'read only' : 'write only',
    gateText(r.gate),
  ]);
  return table(['Register', 'x86 MSR', 'arm64 register', 'Access', 'Needs'], rows);
}
