// The guest's boot on every release × architecture (and arm64 page size): its kernel log against
// the formats of tlfs.md §1.12 / §3.3, with every value taken from what the hypervisor offers,
// and its effects in the hypervisor: the registers and pages a Linux guest programs.
import { describe, expect, it } from 'vitest';
import { Arm64Port, X64Port } from '../../src/hypervisor/cpu.js';
import { Partition } from '../../src/hypervisor/partition.js';
import { RELEASE_IDS, type ReleaseId } from '../../src/hypervisor/release.js';
import { HvRegister } from '../../src/tlfs/registers.js';
import { Machine } from '../../src/vm/machine.js';
import type { Arch } from '../../src/hypervisor/features.js';
import type { GuestPageSize } from '../../src/memory/pages.js';

const hex = (n: number) => `0x${n.toString(16)}`;
/** The real line every Linux guest with a TSC page prints (Azure dmesg); 10 MHz, 64-bit mask. */
const TSC_PAGE_LINE = 'clocksource: hyperv_clocksource_tsc_page: mask: 0xffffffffffffffff max_cycles: 0x24e6a1710, max_idle_ns: 440795202120 ns';

/** What the hypervisor offers, read through a fresh partition's CPU, as Linux reads it. */
function offered(release: ReleaseId, arch: Arch) {
  const p = new Partition({ release, arch, vps: 1, memory: 1 << 20 });
  if (arch === 'arm64') {
    const cpu = new Arm64Port(p.vps[0]!);
    const get = (name: number) => {
      const x = [0x46000001n, 0x50n | (1n << 16n) | (1n << 32n), (1n << 64n) - 1n, 0xfffffffen, BigInt(name)];
      cpu.hvc(0, { x });
      const w = (q: bigint, i: number) => Number((q >> BigInt(32 * i)) & 0xffffffffn);
      return [w(x[6]!, 0), w(x[6]!, 1), w(x[7]!, 0), w(x[7]!, 1)] as const;
    };
    const [low, high, misc] = get(HvRegister.PRIVILEGES_AND_FEATURES_INFO);
    const [hints] = get(HvRegister.FEATURES_INFO);
    const [a, b, c, d] = get(HvRegister.HYPERVISOR_VERSION);
    return { low, high, misc, hints, version: { a, b, c, d }, maxLeaf: 0, apicHz: 0 };
  }
  const cpu = new X64Port(p.vps[0]!);
  const f = cpu.cpuid(0x40000003);
  const v = cpu.cpuid(0x40000002);
  return {
    low: f.eax,
    high: f.ebx,
    misc: f.edx,
    hints: cpu.cpuid(0x40000004).eax,
    version: { a: v.eax, b: v.ebx, c: v.ecx, d: v.edx },
    maxLeaf: cpu.cpuid(0x40000000).eax,
    apicHz: Number(cpu.rdmsr(0x40000023).value ?? 0n),
  };
}

/** The Linux lines a boot must print, in order, per tlfs.md §1.12 (x86) and §3.3 (arm64). */
function expectedLines(release: ReleaseId, arch: Arch, vps: number): string[] {
  const o = offered(release, arch);
  const { a, b, c, d } = o.version;
  const build = `Hyper-V: Host Build ${b >>> 16}.${b & 0xffff}.${a}.${d & 0xffffff}-${c}-${d >>> 24}`;
  const flags = `Hyper-V: privilege flags low ${hex(o.low)}, high ${hex(o.high)}, hints ${hex(o.hints)}, misc ${hex(o.misc)}`;
  const smp = ['smp: Bringing up secondary CPUs ...', `smp: Brought up 1 node, ${vps} CPU${vps > 1 ? 's' : ''}`];
  if (arch === 'arm64') {
    return [
      flags,
      build,
      ...(o.misc & (1 << 8) ? ['Hyper-V: enabling crash_kexec_post_notifiers'] : []),
      ...smp,
      'clocksource: Switched to clocksource arch_sys_counter',
    ];
  }
  const invariant = (o.low & (1 << 15)) !== 0;
  return [
    'Hypervisor detected: Microsoft Hyper-V',
    flags,
    build,
    ...(o.maxLeaf >= 0x4000000a ? ['Hyper-V: Nested features: 0x0'] : []),
    ...(o.low & (1 << 11) && o.misc & (1 << 8) ? [`Hyper-V: LAPIC Timer Frequency: 0x${(o.apicHz / 250).toString(16)}`] : []),
    ...(o.hints & (1 << 2) ? ['Hyper-V: Using hypercall for remote TLB flush'] : []),
    ...(o.low & (1 << 9) ? [TSC_PAGE_LINE] : []),
    ...(invariant ? [] : ['tsc: Marking TSC unstable due to running on Hyper-V']),
    'Booting paravirtualized kernel on Hyper-V',
    ...(arch === 'x64' ? [`Hyper-V: PV spinlocks ${o.hints & (1 << 10) && o.low & (1 << 10) ? 'enabled' : 'disabled'}`] : []),
    ...(o.misc & (1 << 10) ? ['Hyper-V: enabling crash_kexec_post_notifiers'] : []),
    ...(o.hints & (1 << 10) ? ['Hyper-V: Using IPI hypercalls'] : []),
    ...(o.hints & (1 << 3) ? [`Hyper-V: Using enlightened APIC (${arch === 'x64' ? 'x2apic' : 'xapic'} mode)`] : []),
    ...smp,
    `clocksource: Switched to clocksource ${invariant ? 'tsc-early' : 'hyperv_clocksource_tsc_page'}`,
  ];
}

/** The Hyper-V, smp and clocksource lines of a log, without timestamps. */
function linuxLines(m: Machine): string[] {
  return m.kernel.log
    .lines('info')
    .map((l) => {
      expect(l).toMatch(/^\[ {0,4}\d+\.\d{6}\] /);
      return l.slice(15);
    })
    .filter((t) => /^(Hyper|Hypervisor|smp:|clocksource: (hyperv|Switched)|tsc: Marking|Booting paravirtualized)/.test(t));
}

const configs: { release: ReleaseId; arch: Arch; pageSize: GuestPageSize }[] = [];
for (const release of RELEASE_IDS) {
  for (const arch of ['x64', 'x86'] as const) configs.push({ release, arch, pageSize: 4096 });
  for (const pageSize of [4096, 16384, 65536] as const) configs.push({ release, arch: 'arm64', pageSize });
}

describe('boot log for every release × architecture × page size (tlfs.md 1.12, 3.3)', () => {
  for (const { release, arch, pageSize } of configs) {
    it(`${release} ${arch} ${pageSize / 1024}k`, () => {
      const vps = 2;
      const m = new Machine({ release, arch, vps, pageSize, memory: 64 << 20 });
      m.boot();
      expect(m.kernel.stage).toBe('booted');
      expect(linuxLines(m)).toEqual(expectedLines(release, arch, vps));
      // The early lines precede any sched_clock; later ones carry the time that passed.
      const records = m.kernel.log.records;
      expect(records[0]!.ns).toBe(0);
      expect(records[records.length - 1]!.ns).toBeGreaterThan(100_000_000);
      for (let i = 1; i < records.length; i++) expect(records[i]!.ns).toBeGreaterThanOrEqual(records[i - 1]!.ns);
    });
  }
});

describe('what the boot leaves in the hypervisor', () => {
  it('x64 WS2022: guest OS id, hypercall page, VP assist pages, TSC page, SynIC, direct-mode stimer0', () => {
    const m = new Machine({ release: 'ws2022', arch: 'x64', vps: 2, memory: 64 << 20 });
    // Only real ticks: no expiry of a timer whose CONFIG is written before its COUNT.
    const expiries: bigint[] = [];
    m.partition.events.on((e) => e.kind === 'timer-expired' && expiries.push(e.expiration));
    m.boot();
    const p = m.partition;
    const k = m.kernel;
    // hv_generate_guest_id(KERNEL_VERSION(6, 1, 192)).
    expect(p.guestOsId).toBe(0x8100_0006_01c0_0000n);
    expect(p.hypercallMsr).toBe(BigInt(k.hypercallPage!) | 1n);
    expect(p.memory.read8(k.hypercallPage!)).toBe(0x0f); // the guest sees VMCALL in its page
    expect(p.referenceTscMsr).toBe(BigInt(k.refClock.tscPage!) | 1n);
    expect(p.tscInvariantControl).toBe(1n);
    for (const cpu of k.cpus) {
      const vp = p.vps[cpu.vpIndex]!;
      expect(vp.vpAssist).toBe(BigInt(cpu.vpAssistPage!) | 1n);
      expect(vp.synic.scontrol).toBe(1n);
      expect(vp.synic.simp).toBe(BigInt(cpu.synic!.messagePage) | 1n);
      expect(vp.synic.siefp).toBe(BigInt(cpu.synic!.eventPage) | 1n);
      // WS2022 does not deprecate auto-EOI (hint bit 9 clear): vector 0xF3 with auto-EOI.
      expect(vp.synic.sints[2]).toBe(0xf3n | (1n << 17n));
      // hv_ce_set_oneshot: enable | auto_enable | direct_mode | vector 0xED.
      expect(vp.stimers[0]!.config).toBe(1n | (1n << 3n) | (0xedn << 4n) | (1n << 12n));
    }
    // After boot the tick runs: 100 ms of virtual time is 25 ticks of 4 ms on each CPU.
    const before = k.cpus.map((c) => c.clockevent!.ticks);
    m.runFor(100_000_000);
    k.cpus.forEach((c, i) => expect(c.clockevent!.ticks - before[i]!).toBe(25));
    expect(expiries.length).toBe(k.cpus.reduce((n, c) => n + c.clockevent!.ticks, 0) - k.cpus.length);
    expect(expiries.every((t) => t > 0n)).toBe(true);
  });

  it('WS2019 deprecates auto-EOI: SINT2 without it, and the callback EOIs each message-mode tick', () => {
    const m = new Machine({ release: 'ws2019', arch: 'x64', vps: 1, memory: 64 << 20, features: { misc: 0x100 | 0x400 } });
    m.boot();
    const vp = m.partition.vps[0]!;
    expect(vp.synic.sints[2]).toBe(0xf3n);
    // No direct mode offered: stimer0 sends messages to SINT2.
    expect(vp.stimers[0]!.config & ((1n << 12n) | (0xfn << 16n))).toBe(2n << 16n);
    m.runFor(40_000_000);
    expect(m.kernel.cpus[0]!.clockevent!.ticks).toBeGreaterThanOrEqual(10);
    // Every message-mode tick was EOIed: nothing stays in service.
    expect(vp.apic.inService(0xf3)).toBe(false);
  });

  it('x86-32 WS2012: message-mode ticks through SINT2, no PV spinlock line, xAPIC EOI register', () => {
    const m = new Machine({ release: 'ws2012', arch: 'x86', vps: 2, memory: 64 << 20 });
    m.boot();
    m.runFor(100_000_000);
    for (const c of m.kernel.cpus) {
      expect(c.clockevent!.mode).toBe('message');
      expect(c.clockevent!.ticks).toBeGreaterThanOrEqual(25);
      expect(c.irqs.get(0xf3)).toBeGreaterThanOrEqual(25);
    }
  });

  it('arm64 on 64 KiB pages: every GPA handed to Hyper-V is 4 KiB-aligned, and registers went through hypercalls', () => {
    const m = new Machine({ release: 'ws2022', arch: 'arm64', vps: 2, pageSize: 65536, memory: 64 << 20 });
    const traps: string[] = [];
    m.partition.events.on((e) => traps.push(e.kind !== 'trap' ? e.kind : e.what === 'rdmsr' ? 'msr-read' : e.what === 'wrmsr' ? 'msr-write' : e.what));
    m.boot();
    const p = m.partition;
    expect(p.guestOsId).toBe(0x8100_0006_01c0_0000n);
    for (const cpu of m.kernel.cpus) {
      const vp = p.vps[cpu.vpIndex]!;
      // GPN fields count 4 KiB frames: the kernel's (4 KiB-aligned, sub-page) addresses.
      expect(vp.synic.simp).toBe(BigInt(cpu.synic!.messagePage) | 1n);
      expect(vp.synic.siefp).toBe(BigInt(cpu.synic!.eventPage) | 1n);
      expect(cpu.synic!.messagePage % 4096).toBe(0);
      // arm64 has no auto-EOI; the VMBus interrupt is the firmware's PPI.
      expect(vp.synic.sints[2]).toBe(18n);
    }
    // Two SynIC pages per CPU carved from the same 64 KiB guest page.
    const pages = m.kernel.cpus.flatMap((c) => [c.synic!.messagePage, c.synic!.eventPage]);
    expect(new Set(pages.map((g) => Math.floor(g / 65536))).size).toBeLessThan(pages.length);
    expect(traps).not.toContain('msr-read');
    expect(traps).not.toContain('cpuid');
    expect(traps).toContain('hypercall');
    expect(p.hypercallMsr).toBe(0n);
    expect(p.referenceTscMsr).toBe(0n);
  });

  it('a permuted APIC numbering: Linux CPU numbers follow the firmware order, VP indices come from the VP', () => {
    const m = new Machine({ release: 'ws2022', vps: 3, apicIds: [2, 0, 1], memory: 64 << 20 });
    m.boot();
    expect(m.kernel.cpus.map((c) => c.vpIndex)).toEqual([1, 2, 0]);
    expect(m.kernel.hvMaxVpIndex).toBe(2);
  });

  it('an isolated partition prints its isolation configuration (CPUID 0x4000000C)', () => {
    const m = new Machine({ release: 'ws2022', vps: 1, memory: 64 << 20, isolation: { type: 'snp', paravisor: true, sharedGpaBoundaryBits: 45 } });
    m.boot();
    const cpu = new X64Port(m.partition.vps[0]!);
    const iso = cpu.cpuid(0x4000000c);
    const lines = m.kernel.log.lines().map((l) => l.slice(15));
    const at = lines.indexOf(`Hyper-V: Isolation Config: Group A ${hex(iso.eax)}, Group B ${hex(iso.ebx)}`);
    // tlfs.md 1.12: after the host build, before the nested features.
    expect(at).toBeGreaterThan(lines.findIndex((l) => l.startsWith('Hyper-V: Host Build')));
    expect(at).toBeLessThan(lines.indexOf('Hyper-V: Nested features: 0x0'));
    expect(iso.ebx & 0xf).toBe(2);
  });

  it('without the HYPERCALL privilege Linux warns and boots unenlightened', () => {
    const m = new Machine({ release: 'ws2022', vps: 1, memory: 64 << 20, features: { privilegesLow: 0x4f } });
    m.boot();
    expect(m.kernel.log.lines()).toContainEqual(expect.stringContaining('x86/hyperv: HYPERCALL MSR not available.'));
    expect(m.kernel.onHyperV).toBe(false);
    expect(m.partition.guestOsId).toBe(0n);
  });
});
