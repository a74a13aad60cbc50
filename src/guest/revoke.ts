// Taking back what the kernel shared with Hyper-V before another kernel runs (tlfs.md §7.1,
// §7.2): the kexec path (arch/x86/kernel/cpu/mshyperv.c hv_machine_shutdown, drivers/hv/
// vmbus_drv.c hv_kexec_handler, arch/x86/hyperv/hv_init.c hyperv_cleanup) and the crash path
// (panic() with the Hyper-V panic notifiers and kmsg dumper of drivers/hv/hv_common.c, then
// hv_machine_crash_shutdown and hv_crash_handler).
import { HV_HYP_PAGE_SIZE } from '../memory/pages.js';
import { HvMessageType, SintIndex } from '../tlfs/synic.js';
import { HV_CRASH_CTL_CRASH_NOTIFY, HV_CRASH_CTL_CRASH_NOTIFY_MSG } from '../tlfs/msr.js';
import { VmbusError } from '../vmbus/client/errors.js';
import { ChannelMessageType } from '../vmbus/wire/constants.js';
import { MessageHeader } from '../vmbus/wire/messages.js';
import { HvMessage } from '../tlfs/synic.js';
import { readSlot, signalEom } from './hyperv/synic.js';
import { hvCpuDie, hypervCleanup } from './hyperv/x86.js';
import type { CpuState, Kernel } from './kernel.js';
import { formatRecord } from './klog.js';

/** vmbus_wait_for_unload: up to 100 s in 10 ms steps, polling every CPU's message slot. */
const UNLOAD_POLL_NS = 10_000_000;
const UNLOAD_POLL_STEPS = 10_000;

/**
 * kernel_kexec(): "Starting new kernel", then machine_shutdown. On x86 that is
 * hv_machine_shutdown: stimers stopped, VMBus unloaded (the host then drops every channel and
 * GPADL), the SynIC off on every CPU, the VP assist pages off, the other CPUs stopped, and last
 * hyperv_cleanup. arm64's Linux 6.1 has no such hook: nothing is revoked there.
 */
export function kexec(k: Kernel): void {
  if (k.stage !== 'booted') throw new Error(`cannot kexec a kernel that is ${k.stage}`);
  k.log.printk('notice', 'kexec_core: Starting new kernel');
  if (k.arch !== 'arm64') {
    if (k.vmbus) {
      // hv_kexec_handler
      for (const cpu of k.cpus) stopStimer(cpu);
      try {
        k.vmbus.unload();
      } catch (e) {
        if (!(e instanceof VmbusError)) throw e;
        k.log.err(`hv_vmbus: ${e.message}`);
      }
      for (const cpu of k.cpus) if (cpu.online && cpu.synic) k.synicCleanup(cpu);
    }
    for (const cpu of k.cpus) if (cpu.online) hvCpuDie(k, cpu);
  }
  stopOtherCpus(k, k.currentCpu);
  if (k.arch !== 'arm64' && k.onHyperV) hypervCleanup(k);
  else if (k.arch === 'arm64') k.log.note('arm64: Linux 6.1 has no Hyper-V kexec hook; SynIC, timers and VMBus stay live');
  k.stage = 'kexec';
}

export interface PanicOptions {
  /** A kdump kernel is loaded, so panic() ends in a crash kexec (machine_crash_shutdown). */
  kdump: boolean;
}

/**
 * panic() as Linux 6.1 runs it on Hyper-V, where crash_kexec_post_notifiers is forced on: the
 * other CPUs stopped, the panic notifiers (the crash MSRs unless the kmsg dumper will report,
 * then VMBus unloaded by polling), the kmsg dump into the panic page, then, with a kdump
 * kernel, hv_machine_crash_shutdown: only the panicking CPU's SynIC and stimer are turned off.
 */
export function panic(k: Kernel, message: string, options: Partial<PanicOptions> = {}): void {
  if (k.stage === 'panicked' || k.stage === 'kexec' || k.stage === 'off') return;
  const kdump = options.kdump ?? true;
  const self = k.cpus[k.currentCpu] ?? k.bsp;
  // panic() starts with local_irq_disable(): the slots are polled by hand from here on.
  self.ops.cpu.interruptsEnabled = false;
  k.log.printk('emerg', `Kernel panic - not syncing: ${message}`);
  k.stage = 'panicked';
  stopOtherCpus(k, self.index);
  const ms = k.ms;
  const crashMsrs = ms !== undefined && (ms.miscFeatures & (1 << ms.crashBit)) !== 0;
  // hyperv_panic_event: the register report only when the kmsg dumper will not report.
  const dumper = crashMsrs && k.panicPage !== undefined && k.recordPanicMsg;
  if (crashMsrs && !dumper) reportPanic(k, self);
  // hv_panic_vmbus_unload, almost the last notifier.
  if (k.vmbus?.status === 'connected') unloadPolling(k, self);
  if (dumper) kmsgDump(k, self);
  if (!kdump) {
    k.log.printk('emerg', `---[ end Kernel panic - not syncing: ${message} ]---`);
    return;
  }
  // __crash_kexec → hv_machine_crash_shutdown → hv_crash_handler: this CPU only.
  if (k.arch !== 'arm64') {
    stopStimer(self);
    if (self.synic) k.synicCleanup(self);
    hypervCleanup(k);
  }
  const left = k.cpus.filter((c) => c !== self && c.synic && c.online);
  for (const c of left) k.log.note(`CPU${c.index}: SynIC message page 0x${c.synic!.messagePage.toString(16)}, event page 0x${c.synic!.eventPage.toString(16)}${c.vpAssistPage !== undefined ? ` and VP assist page 0x${c.vpAssistPage.toString(16)}` : ''} stay enabled: the hypervisor may still write them under the kdump kernel`);
}

/** hyperv_report_panic(regs, 0, false): P0 = 0, P1 = the guest OS ID, P2..P4 = RIP, RAX, RSP, then CRASH_CTL. */
function reportPanic(k: Kernel, cpu: CpuState): void {
  const ops = cpu.ops;
  const regs = k.panicRegs;
  ops.setReg('CRASH_P0', 0n);
  ops.setReg('CRASH_P1', ops.getReg('GUEST_OS_ID'));
  ops.setReg('CRASH_P2', regs.pc);
  ops.setReg('CRASH_P3', k.arch === 'arm64' ? regs.sp : regs.ax);
  ops.setReg('CRASH_P4', k.arch === 'arm64' ? 0n : regs.sp);
  ops.setReg('CRASH_CTL', HV_CRASH_CTL_CRASH_NOTIFY);
}

/** hv_kmsg_dump: as much of the log's tail as fits in the panic page, then P3/P4 and CRASH_CTL. */
function kmsgDump(k: Kernel, cpu: CpuState): void {
  const page = k.panicPage!;
  const enc = new TextEncoder();
  const lines = k.log.records.filter((r) => r.level !== 'debug').map((r) => enc.encode(`${formatRecord(r)}\n`));
  const picked: Uint8Array[] = [];
  let bytes = 0;
  for (let i = lines.length - 1; i >= 0 && bytes + lines[i]!.length <= HV_HYP_PAGE_SIZE; i--) {
    picked.unshift(lines[i]!);
    bytes += lines[i]!.length;
  }
  if (bytes === 0) return;
  let at = page;
  for (const l of picked) {
    k.platform.memory.write(at, l);
    at += l.length;
  }
  const ops = cpu.ops;
  ops.setReg('CRASH_P0', 0n);
  ops.setReg('CRASH_P1', 0n);
  ops.setReg('CRASH_P2', 0n);
  ops.setReg('CRASH_P3', BigInt(page));
  ops.setReg('CRASH_P4', BigInt(bytes));
  ops.setReg('CRASH_CTL', HV_CRASH_CTL_CRASH_NOTIFY | HV_CRASH_CTL_CRASH_NOTIFY_MSG);
}

/**
 * vmbus_initiate_unload(true): UNLOAD, then no interrupts: the message slots of every CPU are
 * polled and acknowledged until UNLOAD_RESPONSE shows up, and all SINT2 slots are cleared last.
 */
function unloadPolling(k: Kernel, self: CpuState): void {
  const client = k.vmbus!;
  try {
    client.unload(self.index, () => pollSlots(k));
  } catch (e) {
    if (!(e instanceof VmbusError)) throw e;
    k.log.err(`hv_vmbus: ${e.message}`);
  }
  const mem = k.platform.memory;
  for (const c of k.cpus) if (c.synic) mem.write32(c.synic.messagePage + SintIndex.VMBUS * HvMessage.size, HvMessageType.NONE);
}

/** One round of vmbus_wait_for_unload's polling: true once UNLOAD_RESPONSE was seen. */
function pollSlots(k: Kernel): boolean {
  const mem = k.platform.memory;
  for (let step = 0; step < UNLOAD_POLL_STEPS; step++) {
    let done = false;
    for (const c of k.cpus) {
      if (!c.synic) continue;
      const slot = readSlot(mem, c.synic, SintIndex.VMBUS);
      if (slot.type === HvMessageType.NONE) continue;
      const header = slot.payload.length >= MessageHeader.size ? MessageHeader.decode(slot.payload) : undefined;
      if (header?.msgtype === ChannelMessageType.UNLOAD_RESPONSE) done = true;
      signalEom(mem, c.ops, c.synic, SintIndex.VMBUS, slot.type);
    }
    if (done) return true;
    k.platform.elapse(UNLOAD_POLL_NS);
  }
  return false;
}

function stopStimer(cpu: CpuState): void {
  cpu.clockevent?.shutdown();
  cpu.clockevent = undefined;
}

/** smp_send_stop / crash_smp_send_stop: the other CPUs spin with interrupts off. */
function stopOtherCpus(k: Kernel, self: number): void {
  for (const c of k.cpus) {
    if (c.index === self || !c.online) continue;
    c.ops.cpu.interruptsEnabled = false;
    c.stopped = true;
  }
}
