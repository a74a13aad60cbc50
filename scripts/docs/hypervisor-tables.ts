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
import { MODELLED_HINTS, MODELLED_MISC, MODELLED_PRIVILEGES_HIGH, MODELLED_PRIVILEGES_LOW, RELEASE_IDS, RELEASES } from '../../src/hypervisor/release.js';
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

/** What each named feature bit grants or recommends (tlfs.md §1.3, §1.4, §1.6, §1.7). */
const BIT_MEANINGS: Readonly<Record<string, string>> = {
  'privilegesLow.VP_RUNTIME': 'VP_RUNTIME MSR',
  'privilegesLow.TIME_REF_COUNT': 'TIME_REF_COUNT MSR (partition reference counter)',
  'privilegesLow.SYNIC': 'SynIC MSRs: SCONTROL, SVERSION, SIEFP, SIMP, EOM, SINT0–15',
  'privilegesLow.SYNTIMER': 'synthetic timer MSRs STIMER0–3 CONFIG/COUNT',
  'privilegesLow.APIC_ACCESS': 'EOI, ICR, TPR and VP_ASSIST_PAGE MSRs',
  'privilegesLow.HYPERCALL': 'GUEST_OS_ID and HYPERCALL MSRs',
  'privilegesLow.VP_INDEX': 'VP_INDEX MSR',
  'privilegesLow.RESET': 'RESET MSR',
  'privilegesLow.STAT_PAGES': 'statistics pages',
  'privilegesLow.REFERENCE_TSC': 'REFERENCE_TSC MSR (TSC page)',
  'privilegesLow.GUEST_IDLE': 'GUEST_IDLE MSR',
  'privilegesLow.FREQUENCY_MSRS': 'TSC_FREQUENCY and APIC_FREQUENCY MSRs',
  'privilegesLow.DEBUG_MSRS': 'synthetic debugger MSRs (OpenVMM name)',
  'privilegesLow.REENLIGHTENMENT': 'REENLIGHTENMENT_CONTROL and TSC_EMULATION MSRs',
  'privilegesLow.ROOT_SCHEDULER': 'root scheduler MSR (OpenVMM name)',
  'privilegesLow.TSC_INVARIANT': 'TSC_INVARIANT_CONTROL MSR',
  'privilegesHigh.CREATE_PARTITIONS': 'may create partitions (root)',
  'privilegesHigh.ACCESS_PARTITION_ID': 'HvCallGetPartitionId',
  'privilegesHigh.ACCESS_MEMORY_POOL': 'deposit and withdraw memory',
  'privilegesHigh.POST_MESSAGES': 'HvCallPostMessage',
  'privilegesHigh.SIGNAL_EVENTS': 'HvCallSignalEvent',
  'privilegesHigh.CREATE_PORT': 'HvCallCreatePort',
  'privilegesHigh.CONNECT_PORT': 'HvCallConnectPort',
  'privilegesHigh.CPU_MANAGEMENT': 'CPU management; older Linux takes it for the root partition',
  'privilegesHigh.ACCESS_VSM': 'VSM and VTL hypercalls (OpenVMM name)',
  'privilegesHigh.ACCESS_VP_REGISTERS': 'HvCallGetVpRegisters and HvCallSetVpRegisters (OpenVMM name)',
  'privilegesHigh.FAST_HYPERCALL_OUTPUT': 'fast hypercall output (OpenVMM name)',
  'privilegesHigh.ENABLE_EXTENDED_HYPERCALLS': 'extended hypercalls, codes from 0x8001',
  'privilegesHigh.START_VIRTUAL_PROCESSOR': 'HvCallStartVirtualProcessor (OpenVMM name)',
  'privilegesHigh.ISOLATION': 'leaf 0x4000000C (isolation configuration) is valid',
  'misc.HYPERCALL_XMM_INPUT': 'XMM registers for fast hypercall input',
  'misc.FREQUENCY_MSRS': 'the frequency MSRs can be read',
  'misc.GUEST_CRASH_MSR': 'crash MSRs CRASH_P0–P4 and CRASH_CTL',
  'misc.HYPERCALL_XMM_OUTPUT': 'fast hypercall output in XMM registers',
  'misc.SINT_POLLING_MODE': 'SINT polling mode (SINT bit 18; OpenVMM name)',
  'misc.HYPERCALL_MSR_LOCK': 'the HYPERCALL MSR lock bit (OpenVMM name)',
  'misc.STIMER_DIRECT_MODE': 'synthetic timers in direct mode',
  'hints.REMOTE_TLB_FLUSH': 'flush remote TLBs with hypercalls',
  'hints.APIC_ACCESS': 'EOI, ICR and TPR through MSRs (xAPIC) or lazy EOI (x2APIC)',
  'hints.SYSTEM_RESET': 'reboot through the RESET MSR',
  'hints.RELAXED_TIMING': 'relax timing checks',
  'hints.DEPRECATING_AEOI': 'program the VMBus SINT without auto-EOI',
  'hints.CLUSTER_IPI': 'send IPIs with HvCallSendSyntheticClusterIpi; needed for PV spinlocks',
  'hints.EX_PROCESSOR_MASKS': 'the Ex (sparse VP set) hypercalls are available',
  'hints.HYPERV_NESTED': 'the guest runs on a nested hypervisor',
  'hints.ENLIGHTENED_VMCS': 'an L1 KVM uses the enlightened VMCS',
  'hints.NO_NONARCH_CORESHARING': 'no non-architectural core sharing',
  'hints.USE_MMIO_HYPERCALLS': 'MMIO read and write hypercalls',
};

/**
 * The named bits of one feature word: what each grants, and whether hvkit offers it. A bit hvkit
 * does not model is never offered, whatever the release reports (MODELLED_* in release.ts).
 */
export function cpuidBits(word: string): string {
  const w = WORDS.find((x) => x.word === word);
  if (!w) throw new Error(`no feature word '${word}' (have ${WORDS.map((x) => x.word).join(', ')})`);
  const modelled = { privilegesLow: MODELLED_PRIVILEGES_LOW, privilegesHigh: MODELLED_PRIVILEGES_HIGH, misc: MODELLED_MISC, hints: MODELLED_HINTS }[w.word];
  const rows = Object.entries(w.names).map(([name, v]) => {
    const bit = Math.log2(v >>> 0);
    const releases = RELEASE_IDS.filter((id) => computeFeatures(RELEASES[id], 'x64')[w.word] & v).map((id) => id);
    const offered = !(modelled & v) ? 'not modelled: never offered' : releases.length ? releases.join(', ') : 'no release reports it';
    return [String(bit), code(name), BIT_MEANINGS[`${w.word}.${name}`] ?? '', offered];
  });
  return `${w.label}, named in \`src/tlfs/cpuid.ts\`:\n\n${table(['Bit', 'Name', 'Grants or recommends', 'Offered by hvkit on (x64)'], rows)}`;
}
