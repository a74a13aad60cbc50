// Architecture-neutral Hyper-V set-up (drivers/hv/hv_common.c): the ms_hyperv information
// block, hv_common_init() and hv_common_cpu_init().
import { HV_CRASH_CTL_CRASH_NOTIFY_MSG } from '../../tlfs/msr.js';
import { VP_INVAL } from '../../tlfs/registers.js';
import type { CpuState, Kernel } from '../kernel.js';

/** struct ms_hyperv_info: what the kernel learnt from CPUID or the feature registers. */
export interface MsHyperV {
  features: number;
  privHigh: number;
  miscFeatures: number;
  hints: number;
  maxVpIndex: number;
  maxLpIndex: number;
  nestedFeatures: number;
  isolationConfigA: number;
  isolationConfigB: number;
  /** HV_CPU_MANAGEMENT: the kernel believes it is the root partition. */
  root: boolean;
  /** The misc bit that means "crash MSRs" on this architecture (8 on arm64, 10 on x86). */
  crashBit: number;
  /** What CRASH_CTL offered (hv_common_init reads it). */
  crashCtl: bigint;
  /** HvExtCallQueryCapabilities' answer, when asked. */
  extCapabilities?: bigint;
  partitionId?: bigint;
}

/** "Hyper-V: Host Build %d.%d.%d.%d-%d-%d" from CPUID 0x40000002 / register 0x100 (a, b, c, d). */
export function hostBuildLine(a: number, b: number, c: number, d: number): string {
  return `Hyper-V: Host Build ${b >>> 16}.${b & 0xffff}.${a}.${d & 0xffffff}-${c}-${d >>> 24}`;
}

/**
 * hv_common_init(): crash reporting when the crash MSRs are offered (it forces
 * crash_kexec_post_notifiers and reads CRASH_CTL to decide on the kmsg dumper), then the
 * hv_vp_index array, all VP_INVAL.
 */
export function hvCommonInit(k: Kernel): void {
  const ms = k.ms!;
  if (ms.miscFeatures & (1 << ms.crashBit)) {
    k.log.info('Hyper-V: enabling crash_kexec_post_notifiers');
    ms.crashCtl = k.bsp.ops.getReg('CRASH_CTL');
    k.recordPanicMsg = !k.isolated;
    if (ms.crashCtl & HV_CRASH_CTL_CRASH_NOTIFY_MSG) {
      k.panicPage = k.mm.allocHvPage();
      k.log.note(`crash MSRs offer a message buffer: kmsg dumper registered, panic page 0x${k.panicPage.toString(16)}`);
    }
  }
  for (const cpu of k.cpus) cpu.vpIndex = VP_INVAL;
}

/** hv_common_cpu_init(): the per-CPU hypercall input page, and this CPU's VP index. */
export function hvCommonCpuInit(k: Kernel, cpu: CpuState): void {
  cpu.inputPage ??= k.mm.allocHvPage();
  cpu.vpIndex = Number(cpu.ops.getReg('VP_INDEX'));
  k.hvMaxVpIndex = Math.max(k.hvMaxVpIndex, cpu.vpIndex);
  k.log.note(`CPU${cpu.index}: VP index ${cpu.vpIndex}, hypercall input page 0x${cpu.inputPage.toString(16)}`);
}
