// Linux 6.1 on x86 (64- and 32-bit) booting on Hyper-V, in the order the kernel runs it:
// ms_hyperv_platform() and ms_hyperv_init_platform() in setup_arch (arch/x86/kernel/cpu/
// mshyperv.c), hv_smp_prepare_boot_cpu(), hyperv_init() as the APIC post-init hook
// (arch/x86/hyperv/hv_init.c, hv_apic.c), the stimer clockevents, SMP bring-up, the
// clocksource switch, then the VMBus driver's SynIC set-up. Every trap goes through the CPU.
import type { X86Cpu } from '../../hypervisor/cpu-interface.js';
import { HyperVCpuid, Hints, MiscX64, PrivHigh, PrivLow } from '../../tlfs/cpuid.js';
import { HvExtCall, HvCall } from '../../tlfs/hypercall-codes.js';
import { HvMsr } from '../../tlfs/msr.js';
import { HypercallMsr, VpAssistMsr } from '../../tlfs/pages.js';
import { HvStatus } from '../../tlfs/status.js';
import { ReferenceTscMsr } from '../../tlfs/time.js';
import { resultStatus } from '../../tlfs/control.js';
import { HV_HYP_PAGE_SIZE } from '../../memory/pages.js';
import type { X64Ops, X86_32Ops } from '../arch.js';
import { GuestPanic } from '../arch.js';
import { registrationLine } from '../clocksource.js';
import { hexAlt } from '../klog.js';
import type { CpuState, Kernel } from '../kernel.js';
import { hostBuildLine, hvCommonCpuInit, hvCommonInit, type MsHyperV } from './common.js';
import { HZ } from './timer.js';

const x86 = (cpu: CpuState): X64Ops | X86_32Ops => cpu.ops as X64Ops | X86_32Ops;
const cpuidOf = (cpu: CpuState): X86Cpu['cpuid'] => (leaf, sub) => x86(cpu).x86.cpuid(leaf, sub);

/** ms_hyperv_platform(): is this Hyper-V? (prints only the two mandatory-MSR warnings). */
function detect(k: Kernel): boolean {
  const cpuid = cpuidOf(k.bsp);
  if (!(cpuid(1).ecx >>> 31)) return false;
  const v = cpuid(HyperVCpuid.VENDOR_AND_MAX_FUNCTIONS);
  const vendor = String.fromCharCode(...[v.ebx, v.ecx, v.edx].flatMap((r) => [r & 0xff, (r >>> 8) & 0xff, (r >>> 16) & 0xff, r >>> 24]));
  if (v.eax < HyperVCpuid.MIN || v.eax > HyperVCpuid.MAX || vendor !== 'Microsoft Hv') return false;
  const f = cpuid(HyperVCpuid.FEATURES).eax;
  if (!(f & PrivLow.HYPERCALL)) {
    k.log.warn('x86/hyperv: HYPERCALL MSR not available.');
    return false;
  }
  if (!(f & PrivLow.VP_INDEX)) {
    k.log.warn('x86/hyperv: VP_INDEX MSR not available.');
    return false;
  }
  return true;
}

/** ms_hyperv_init_platform(), in Linux 6.1's order. */
function initPlatform(k: Kernel): void {
  const cpuid = cpuidOf(k.bsp);
  const ops = x86(k.bsp);
  const f = cpuid(HyperVCpuid.FEATURES);
  const hints = cpuid(HyperVCpuid.ENLIGHTMENT_INFO).eax;
  const maxFunctions = cpuid(HyperVCpuid.VENDOR_AND_MAX_FUNCTIONS).eax;
  const limits = cpuid(HyperVCpuid.IMPLEMENT_LIMITS);
  const ms: MsHyperV = {
    features: f.eax,
    privHigh: f.ebx,
    miscFeatures: f.edx,
    hints,
    maxVpIndex: limits.eax,
    maxLpIndex: limits.ebx,
    nestedFeatures: 0,
    isolationConfigA: 0,
    isolationConfigB: 0,
    root: false,
    crashBit: 10,
    crashCtl: 0n,
  };
  k.ms = ms;
  k.log.info(`Hyper-V: privilege flags low 0x${ms.features.toString(16)}, high 0x${ms.privHigh.toString(16)}, hints 0x${ms.hints.toString(16)}, misc 0x${ms.miscFeatures.toString(16)}`);
  k.log.debug(`Hyper-V: max ${ms.maxVpIndex} virtual processors, ${ms.maxLpIndex} logical processors`);
  if (ms.privHigh & PrivHigh.CPU_MANAGEMENT) {
    ms.root = true;
    k.log.info('Hyper-V: running as root partition');
  }
  if (maxFunctions >= HyperVCpuid.VERSION) {
    const v = cpuid(HyperVCpuid.VERSION);
    k.log.info(hostBuildLine(v.eax, v.ebx, v.ecx, v.edx));
  }
  if (ms.privHigh & PrivHigh.ISOLATION) {
    const iso = cpuid(HyperVCpuid.ISOLATION_CONFIG);
    ms.isolationConfigA = iso.eax;
    ms.isolationConfigB = iso.ebx;
    k.log.info(`Hyper-V: Isolation Config: Group A 0x${iso.eax.toString(16)}, Group B 0x${iso.ebx.toString(16)}`);
  }
  if (maxFunctions >= HyperVCpuid.NESTED_FEATURES) {
    ms.nestedFeatures = cpuid(HyperVCpuid.NESTED_FEATURES).eax;
    k.log.info(`Hyper-V: Nested features: 0x${ms.nestedFeatures.toString(16)}`);
  }
  const freqMsrs = ms.features & PrivLow.FREQUENCY_MSRS && ms.miscFeatures & MiscX64.FREQUENCY_MSRS;
  if (freqMsrs) {
    const lapic = ops.rdmsr(HvMsr.APIC_FREQUENCY) / BigInt(HZ);
    k.log.info(`Hyper-V: LAPIC Timer Frequency: ${hexAlt(lapic)}`);
  }
  if (ms.features & PrivLow.TSC_INVARIANT) ops.wrmsr(HvMsr.TSC_INVARIANT_CONTROL, 1n);
  // hyperv_setup_mmu_ops() (arch/x86/hyperv/mmu.c, pr_fmt "Hyper-V: ").
  if (ms.hints & Hints.REMOTE_TLB_FLUSH) k.log.info('Hyper-V: Using hypercall for remote TLB flush');
  hvInitClocksource(k);
  if (!(ms.features & PrivLow.TSC_INVARIANT)) k.log.info('tsc: Marking TSC unstable due to running on Hyper-V');
  // tsc_early_init(): x86_platform.calibrate_tsc is hv_get_tsc_khz with the frequency MSRs.
  const khz = freqMsrs ? ops.rdmsr(HvMsr.TSC_FREQUENCY) / 1000n : calibrateTscKhz(k);
  k.log.info(`tsc: Detected ${khz / 1000n}.${String(khz % 1000n).padStart(3, '0')} MHz processor`);
}

/** Without the frequency MSRs: measure the TSC against the reference counter over 10 ms. */
function calibrateTscKhz(k: Kernel): bigint {
  const ops = k.bsp.ops;
  const t0 = ops.counter();
  const r0 = ops.getReg('TIME_REF_COUNT');
  k.platform.elapse(10_000_000);
  const t1 = ops.counter();
  const r1 = ops.getReg('TIME_REF_COUNT');
  return r1 > r0 ? ((t1 - t0) * 10_000n) / (r1 - r0) : 0n;
}

/** hv_init_clocksource(): the TSC page if offered, else the reference-counter MSR. */
function hvInitClocksource(k: Kernel): void {
  const ms = k.ms!;
  const ops = k.bsp.ops;
  const invariant = (ms.features & PrivLow.TSC_INVARIANT) !== 0;
  let name: string;
  if (ms.features & PrivLow.REFERENCE_TSC && !ms.root) {
    k.refClock.enableTscPage(ops, k.mm.allocHvPage());
    name = 'hyperv_clocksource_tsc_page';
  } else if (ms.features & PrivLow.TIME_REF_COUNT) {
    name = 'hyperv_clocksource_msr';
  } else {
    return;
  }
  k.log.info(registrationLine(name, 10_000_000, 0xffff_ffff_ffff_ffffn));
  // hv_setup_sched_clock(): sched_clock = (reference time - hv_sched_clock_offset) * 100 ns.
  k.startSchedClock(() => k.refClock.read(ops), 100);
  // Rating 500, or 250 with TSC_INVARIANT so that the invariant TSC (300) wins.
  k.clocksource = invariant ? 'tsc-early' : name;
  if (k.refClock.tscPage !== undefined) k.log.note(`reference TSC page at 0x${k.refClock.tscPage.toString(16)}`);
}

/** hv_init_spinlocks() (arch/x86/hyperv/hv_spinlock.c, 64-bit only). */
function initSpinlocks(k: Kernel): void {
  const ms = k.ms!;
  const on = ms.hints & Hints.CLUSTER_IPI && ms.features & PrivLow.GUEST_IDLE;
  k.log.info(`Hyper-V: PV spinlocks ${on ? 'enabled' : 'disabled'}`);
}

/** hv_cpu_init(): hv_common_cpu_init(), then a zeroed VP assist page (kept across offline). */
export function hvCpuInit(k: Kernel, cpu: CpuState): void {
  hvCommonCpuInit(k, cpu);
  cpu.vpAssistPage ??= k.mm.allocHvPage();
  x86(cpu).wrmsr(HvMsr.VP_ASSIST_PAGE, VpAssistMsr.encode({ enable: 1, pfn: cpu.vpAssistPage / HV_HYP_PAGE_SIZE }));
  k.log.note(`CPU${cpu.index}: VP assist page at 0x${cpu.vpAssistPage.toString(16)}`);
}

/** hv_cpu_die(): the VP assist page off; the page itself stays allocated for the next online. */
export function hvCpuDie(k: Kernel, cpu: CpuState): void {
  if (cpu.vpAssistPage === undefined) return;
  x86(cpu).wrmsr(HvMsr.VP_ASSIST_PAGE, 0n);
  k.log.note(`CPU${cpu.index}: VP assist page off`);
}

/**
 * hyperv_cleanup() (arch/x86/hyperv/hv_init.c), the last step before a new kernel: the guest ID
 * cleared, the hypercall page forgotten first so that later hypercalls fail safely, then the
 * hypercall page and the reference TSC page disabled (their GPNs kept).
 */
export function hypervCleanup(k: Kernel): void {
  const ops = x86(k.bsp);
  ops.wrmsr(HvMsr.GUEST_OS_ID, 0n);
  for (const c of k.cpus) x86(c).hypercallPage = undefined;
  ops.wrmsr(HvMsr.HYPERCALL, HypercallMsr.with(ops.rdmsr(HvMsr.HYPERCALL), 'enable', 0));
  ops.wrmsr(HvMsr.REFERENCE_TSC, ReferenceTscMsr.with(ops.rdmsr(HvMsr.REFERENCE_TSC), 'enable', 0));
  k.log.note('hyperv_cleanup: guest OS ID cleared, hypercall page and reference TSC page disabled');
}

/** hyperv_init(), run as x86_platform.apic_post_init. */
function hypervInit(k: Kernel): void {
  const ms = k.ms!;
  const ops = x86(k.bsp);
  hvCommonInit(k);
  hvCpuInit(k, k.bsp);
  // 1. Register the guest ID; 2. enable the hypercall page (read, set enable and GPN, write).
  ops.wrmsr(HvMsr.GUEST_OS_ID, k.guestOsId);
  k.log.note(`guest OS ID 0x${k.guestOsId.toString(16)}`);
  const page = k.mm.allocHvPage();
  let msr = ops.rdmsr(HvMsr.HYPERCALL);
  msr = HypercallMsr.with(HypercallMsr.with(msr, 'enable', 1), 'guest_physical_address', page / HV_HYP_PAGE_SIZE);
  ops.wrmsr(HvMsr.HYPERCALL, msr);
  for (const c of k.cpus) x86(c).hypercallPage = page;
  k.hypercallPage = page;
  k.log.note(`hypercall page at 0x${page.toString(16)}`);
  // hv_apic_init()
  if (ms.hints & Hints.CLUSTER_IPI) k.log.info('Hyper-V: Using IPI hypercalls');
  if (ms.hints & Hints.APIC_ACCESS) k.log.info(`Hyper-V: Using enlightened APIC (${k.arch === 'x64' ? 'x2apic' : 'xapic'} mode)`);
  if (ms.privHigh & PrivHigh.ACCESS_PARTITION_ID) {
    const out = k.bsp.inputPage!;
    const status = ops.hypercall(BigInt(HvCall.GET_PARTITION_ID), 0, out);
    if (resultStatus(status) !== HvStatus.SUCCESS) {
      // hv_get_partition_id(): "No point in proceeding if this failed".
      k.log.err(`Failed to get partition ID: ${BigInt.asIntN(64, status)}`);
      throw new GuestPanic('kernel BUG in hv_get_partition_id');
    }
    ms.partitionId = k.platform.memory.read64(out);
  }
  // hv_query_ext_cap(0): ask once so the answer is cached.
  if (ms.privHigh & PrivHigh.ENABLE_EXTENDED_HYPERCALLS) {
    const out = k.bsp.inputPage!;
    const status = ops.hypercall(BigInt(HvExtCall.QUERY_CAPABILITIES), 0, out);
    if (resultStatus(status) !== HvStatus.SUCCESS) k.log.err(`Hyper-V: Extended query capabilities hypercall failed 0x${status.toString(16)}`);
    else ms.extCapabilities = k.platform.memory.read64(out);
  }
}

/** hv_stimer_alloc() at setup_percpu_clockev: direct-mode stimer0 clockevents (else VMBus sets them up). */
export function stimerAlloc(k: Kernel): boolean {
  const ms = k.ms!;
  return (ms.features & PrivLow.SYNTIMER) !== 0 && (ms.miscFeatures & MiscX64.STIMER_DIRECT_MODE) !== 0;
}

/**
 * The APIC EOI as Linux issues it: with APIC_ACCESS recommended, hv_apic_eoi_write (lazy EOI
 * through the VP assist page, else the EOI MSR); otherwise the x2APIC EOI MSR, or the xAPIC
 * EOI register on 32-bit.
 */
export function apicEoi(k: Kernel, cpu: CpuState): void {
  const ops = x86(cpu);
  if ((k.ms?.hints ?? 0) & Hints.APIC_ACCESS) {
    const page = cpu.vpAssistPage;
    if (page !== undefined) {
      const assist = new Uint32Array(k.platform.memory.buffer, page, 1);
      if (Atomics.exchange(assist, 0, 0) & 1) return;
    }
    ops.wrmsr(HvMsr.EOI, 0n);
  } else if (k.arch === 'x64') {
    ops.wrmsr(0x80b, 0n);
  } else {
    ops.cpu.apicWrite(0xb0, 0);
  }
}

/** The boot on x86, in steps (Kernel.bootSteps). */
export function* bootX86(k: Kernel): Generator<void, void, void> {
  const bsp = k.bsp;
  // setup_arch() → init_hypervisor_platform()
  if (!detect(k)) return;
  k.onHyperV = true;
  k.log.info('Hypervisor detected: Microsoft Hyper-V');
  initPlatform(k);
  k.platform.elapse(15_000_000);
  yield;
  k.log.info('Booting paravirtualized kernel on Hyper-V');
  // start_kernel() → smp_prepare_boot_cpu()
  if (k.arch === 'x64') initSpinlocks(k);
  k.platform.elapse(60_000_000);
  yield;
  // local_irq_enable(), then late_time_init() → apic_intr_mode_init() → hyperv_init()
  bsp.ops.cpu.interruptsEnabled = true;
  hypervInit(k);
  const direct = stimerAlloc(k);
  if (direct) k.startClockevent(bsp, 'direct');
  k.platform.elapse(40_000_000);
  yield;
  yield* k.bringUpSecondaries((cpu) => {
    hvCpuInit(k, cpu);
    if (direct) k.startClockevent(cpu, 'direct');
  });
  yield* k.lateInitcalls();
}
