// CPU hotplug as Linux runs it on Hyper-V (kernel/cpu.c's cpuhp states, tlfs.md §7.3): going
// down, the VMBus state's teardown hv_synic_cleanup (drivers/hv/hv.c) may refuse; then the
// SynIC is switched off, hv_cpu_die turns the VP assist page off and the CPU stops. Coming up,
// hv_cpu_init re-reads the VP index and re-enables the VP assist page, then hv_synic_init.
import { VmbusVersion } from '../vmbus/wire/constants.js';
import { HV_EVENT_FLAGS_COUNT, SintIndex } from '../tlfs/synic.js';
import { hvCommonCpuInit } from './hyperv/common.js';
import { hvCpuDie, hvCpuInit, stimerAlloc } from './hyperv/x86.js';
import type { CpuState, Kernel } from './kernel.js';

/** What writing 0 or 1 to /sys/devices/system/cpu/cpuN/online returns: 0 or a negative errno's name. */
export type HotplugResult = { ok: true } | { ok: false; errno: 'EBUSY' | 'EINVAL'; reason: string };

/** hv_synic_event_pending's retries (HV_MAX_TRIES), each after a 10–20 ms sleep. */
const HV_MAX_TRIES = 3;
const EVENT_RETRY_NS = 10_000_000;
const HV_EVENT_FLAGS_BYTES = HV_EVENT_FLAGS_COUNT / 8;

const busy = (reason: string): HotplugResult => ({ ok: false, errno: 'EBUSY', reason });

/** cpu_down(): the teardown callbacks in reverse order of set-up; the first refusal rolls back. */
export function cpuDown(k: Kernel, index: number): HotplugResult {
  const cpu = k.cpus[index];
  if (!cpu || !cpu.online) return { ok: false, errno: 'EINVAL', reason: `CPU${index} is not online` };
  if (k.cpus.filter((c) => c.online).length === 1) return busy('the last online CPU');
  if (k.stage !== 'booted') return busy(`the kernel is ${k.stage}`);
  if (cpu.synic) {
    const refused = synicCleanup(k, cpu);
    if (refused) {
      k.log.note(`CPU${index} stays online: ${refused}`);
      return busy(refused);
    }
  }
  if (k.arch !== 'arm64') hvCpuDie(k, cpu);
  // The direct-mode stimer is a STARTING state: the dying CPU stops it last.
  cpu.clockevent?.shutdown();
  cpu.clockevent = undefined;
  cpu.online = false;
  cpu.ops.cpu.interruptsEnabled = false;
  k.log.info(k.arch === 'arm64' ? `CPU${index}: shutdown` : `smpboot: CPU ${index} is now offline`);
  return { ok: true };
}

/**
 * hv_synic_cleanup(): while VMBus is connected it refuses for VMBUS_CONNECT_CPU, for a CPU any
 * channel interrupts, and (from 4.1) while channel event flags are still set on that CPU after
 * a few waits. Returns the reason for refusing, or undefined once the SynIC is off.
 */
function synicCleanup(k: Kernel, cpu: CpuState): string | undefined {
  const vmbus = k.vmbus;
  if (vmbus?.status === 'connected') {
    // Hyper-V cannot move the connection's CPU (vmbus.md §3.3).
    if (cpu.index === 0) return 'VMBus is connected through CPU0';
    const bound = vmbus.channels.flatMap((c) => [c, ...c.subchannels]).find((c) => c.targetCpu === cpu.index);
    if (bound) return `channel ${bound.relid} interrupts CPU${cpu.index}`;
    if (vmbus.version >= VmbusVersion.WIN10_V4_1 && eventsPending(k, cpu)) return `channel events still pending on CPU${cpu.index}`;
  }
  k.synicCleanup(cpu);
  return undefined;
}

/** hv_synic_event_pending(): a set flag other than relid 0 in the CPU's SINT2 slot, re-checked after sleeps. */
function eventsPending(k: Kernel, cpu: CpuState): boolean {
  const page = cpu.synic!.eventPage + SintIndex.VMBUS * HV_EVENT_FLAGS_BYTES;
  const flags = new Uint32Array(k.platform.memory.buffer, page, HV_EVENT_FLAGS_BYTES / 4);
  const pending = () => flags.some((w, i) => (i === 0 ? w & ~1 : w) !== 0);
  for (let tries = 0; pending(); tries++) {
    if (tries >= HV_MAX_TRIES) return true;
    // The sleep lets the CPU take the interrupt that will clear them.
    k.platform.waitUntil(() => !pending(), EVENT_RETRY_NS);
  }
  return false;
}

/** cpu_up(): the CPU starts, then hv_cpu_init (x86) or hv_common_cpu_init (arm64), then hv_synic_init. */
export function cpuUp(k: Kernel, index: number): HotplugResult {
  const cpu = k.cpus[index];
  if (!cpu) return { ok: false, errno: 'EINVAL', reason: `no CPU${index}` };
  if (cpu.online) return { ok: true };
  if (k.stage !== 'booted') return busy(`the kernel is ${k.stage}`);
  k.log.info(k.arch === 'arm64' ? `CPU${index}: Booted secondary processor` : `smpboot: Booting Node 0 Processor ${index} APIC 0x${(k.platform.apicIds?.[index] ?? index).toString(16)}`);
  cpu.online = true;
  if (k.arch === 'arm64') {
    hvCommonCpuInit(k, cpu);
  } else {
    hvCpuInit(k, cpu);
    if (stimerAlloc(k)) k.startClockevent(cpu, 'direct');
  }
  cpu.ops.cpu.interruptsEnabled = true;
  if (cpu.synic) k.synicInit(cpu);
  return { ok: true };
}
