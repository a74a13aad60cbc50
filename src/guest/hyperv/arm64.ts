// Linux 6.1 on arm64 booting on Hyper-V (arch/arm64/hyperv/mshyperv.c hyperv_init as an
// early_initcall; tlfs.md §3.3). arm64 has no Hyper-V clocksource or clockevent: the
// architectural timer is the clock, so its lines come first, as time_init prints them
// (drivers/clocksource/arm_arch_timer.c, kernel/time/sched_clock.c).
import { HvRegister } from '../../tlfs/registers.js';
import { MiscArm64 } from '../../tlfs/cpuid.js';
import type { Arm64Cpu } from '../../hypervisor/cpu-interface.js';
import { ARM_SMCCC_VENDOR_HYP_CALL_UID_FUNC_ID, HV_SMCCC_UID } from '../../tlfs/registers.js';
import type { Arm64Ops } from '../arch.js';
import { calcMultShift, registrationLine } from '../clocksource.js';
import type { Kernel } from '../kernel.js';
import { hostBuildLine, hvCommonCpuInit, hvCommonInit, type MsHyperV } from './common.js';

/** The arm64 generic timer's counter is 56 bits wide in Linux's view. */
const COUNTER_BITS = 56;

/** time_init(): the architected timer's lines, then sched_clock on its counter. */
function archTimer(k: Kernel): void {
  const hz = k.bsp.ops.counterHz;
  k.log.info(`arch_timer: cp15 timer(s) running at ${Math.floor(hz / 1e6)}.${String(Math.floor(hz / 1e4) % 100).padStart(2, '0')}MHz (virt).`);
  const mask = (1n << BigInt(COUNTER_BITS)) - 1n;
  k.log.info(registrationLine('arch_sys_counter', hz, mask));
  // sched_clock_register(): mult/shift for an hour, resolution and wrap of the counter.
  const { mult, shift } = calcMultShift(BigInt(hz), 1_000_000_000n, 3600n);
  const res = mult >> BigInt(shift);
  const maxCycles = (((1n << 64n) - 1n) / mult < mask ? ((1n << 64n) - 1n) / mult : mask);
  const wrap = ((maxCycles * mult) >> BigInt(shift)) >> 1n; // clocks_calc_max_nsecs(mult, shift, 0, mask)
  const rate = hz >= 4_000_000 ? `${Math.round(hz / 1e6)}M` : hz >= 4000 ? `${Math.round(hz / 1e3)}k` : `${hz}`;
  k.log.info(`sched_clock: ${COUNTER_BITS} bits at ${rate}Hz, resolution ${res}ns, wraps every ${wrap}ns`);
  const ops = k.bsp.ops;
  k.startSchedClock(() => ops.counter(), 1e9 / hz);
  k.clocksource = 'arch_sys_counter';
}

/**
 * Linux 6.1 trusts the ACPI FADT hypervisor_id; newer kernels also ask SMCCC for the vendor
 * hypervisor UID. The model does the first and falls back to the second.
 */
function detect(k: Kernel): boolean {
  if (k.platform.fadtHypervisorId !== undefined) return k.platform.fadtHypervisorId === 'MsHyperV';
  const x = [BigInt(ARM_SMCCC_VENDOR_HYP_CALL_UID_FUNC_ID)];
  (k.bsp.ops.cpu as Arm64Cpu).hvc(0, { x });
  return HV_SMCCC_UID.every((w, i) => x[i] === BigInt(w));
}

/** The boot on arm64, in steps (Kernel.bootSteps). */
export function* bootArm64(k: Kernel): Generator<void, void, void> {
  archTimer(k);
  k.bsp.ops.cpu.interruptsEnabled = true;
  k.platform.elapse(30_000_000);
  yield;
  // early_initcall(hyperv_init)
  if (!detect(k)) return;
  k.onHyperV = true;
  const ops = k.bsp.ops as Arm64Ops;
  ops.setReg('GUEST_OS_ID', k.guestOsId);
  k.log.note(`guest OS ID 0x${k.guestOsId.toString(16)}`);
  const f = ops.getReg128(HvRegister.PRIVILEGES_AND_FEATURES_INFO);
  const e = ops.getReg128(HvRegister.FEATURES_INFO);
  const ms: MsHyperV = {
    features: Number(f.low & 0xffffffffn),
    privHigh: Number(f.low >> 32n),
    miscFeatures: Number(f.high & 0xffffffffn),
    hints: Number(e.low & 0xffffffffn),
    maxVpIndex: 0,
    maxLpIndex: 0,
    nestedFeatures: 0,
    isolationConfigA: 0,
    isolationConfigB: 0,
    root: false,
    crashBit: Math.log2(MiscArm64.GUEST_CRASH_MSR),
    crashCtl: 0n,
  };
  k.ms = ms;
  k.log.info(`Hyper-V: privilege flags low 0x${ms.features.toString(16)}, high 0x${ms.privHigh.toString(16)}, hints 0x${ms.hints.toString(16)}, misc 0x${ms.miscFeatures.toString(16)}`);
  const v = ops.getReg128(HvRegister.HYPERVISOR_VERSION);
  k.log.info(hostBuildLine(Number(v.low & 0xffffffffn), Number(v.low >> 32n), Number(v.high & 0xffffffffn), Number(v.high >> 32n)));
  hvCommonInit(k);
  // cpuhp "arm64/hyperv_init:online": runs now on the boot CPU, later on each secondary.
  hvCommonCpuInit(k, k.bsp);
  k.platform.elapse(40_000_000);
  yield;
  yield* k.bringUpSecondaries((cpu) => hvCommonCpuInit(k, cpu));
  yield* k.lateInitcalls();
}
