// The guest side of the SynIC (drivers/hv/hv.c hv_synic_enable_regs / hv_synic_disable_regs,
// drivers/hv/hyperv_vmbus.h vmbus_signal_eom; tlfs.md §5.5, §5.9).
import type { GuestMemory } from '../../memory/guest-memory.js';
import { HV_HYP_PAGE_SIZE } from '../../memory/pages.js';
import { HV_MESSAGE_SIZE, HvMessageHeader, HvMessageType, SiefpRegister, SimpRegister, SintIndex, SintRegister, ScontrolRegister } from '../../tlfs/synic.js';
import type { CpuOps } from '../arch.js';

/** The per-CPU SynIC pages hv_synic_alloc() gives each CPU. */
export interface SynicPages {
  readonly messagePage: number;
  readonly eventPage: number;
}

/** hv_synic_enable_regs(): SIMP, SIEFP, the VMBus SINT, then SCONTROL, each read-modify-write. */
export function synicEnable(ops: CpuOps, pages: SynicPages, vector: number, autoEoi: boolean): void {
  let simp = ops.getReg('SIMP');
  simp = SimpRegister.with(SimpRegister.with(simp, 'simp_enabled', 1), 'base_simp_gpa', pages.messagePage / HV_HYP_PAGE_SIZE);
  ops.setReg('SIMP', simp);
  let siefp = ops.getReg('SIEFP');
  siefp = SiefpRegister.with(SiefpRegister.with(siefp, 'siefp_enabled', 1), 'base_siefp_gpa', pages.eventPage / HV_HYP_PAGE_SIZE);
  ops.setReg('SIEFP', siefp);
  let sint = ops.getReg(`SINT${SintIndex.VMBUS}`);
  sint = SintRegister.with(SintRegister.with(SintRegister.with(sint, 'vector', vector), 'masked', 0), 'auto_eoi', autoEoi);
  ops.setReg(`SINT${SintIndex.VMBUS}`, sint);
  ops.setReg('SCONTROL', ScontrolRegister.with(ops.getReg('SCONTROL'), 'enable', 1));
}

/** hv_synic_disable_regs(): mask the SINT, drop the pages (GPNs too), clear SCONTROL. */
export function synicDisable(ops: CpuOps): void {
  const sint = SintRegister.with(ops.getReg(`SINT${SintIndex.VMBUS}`), 'masked', 1);
  ops.setReg(`SINT${SintIndex.VMBUS}`, sint);
  ops.setReg('SIMP', SimpRegister.with(SimpRegister.with(ops.getReg('SIMP'), 'simp_enabled', 0), 'base_simp_gpa', 0));
  ops.setReg('SIEFP', SiefpRegister.with(SiefpRegister.with(ops.getReg('SIEFP'), 'siefp_enabled', 0), 'base_siefp_gpa', 0));
  ops.setReg('SCONTROL', ScontrolRegister.with(ops.getReg('SCONTROL'), 'enable', 0));
}

/** The message in a SINT slot, as the guest sees it. */
export interface SlotView {
  readonly type: number;
  readonly size: number;
  readonly pending: boolean;
  readonly payload: Uint8Array;
}

export function readSlot(mem: GuestMemory, pages: SynicPages, sint: number): SlotView {
  const at = pages.messagePage + sint * HV_MESSAGE_SIZE;
  const type = Atomics.load(new Uint32Array(mem.buffer, at + HvMessageHeader.offsets.message_type, 1), 0);
  const size = mem.read8(at + HvMessageHeader.offsets.payload_size);
  const flags = mem.read8(at + HvMessageHeader.offsets.message_flags);
  return { type, size, pending: (flags & 1) !== 0, payload: mem.read(at + HvMessageHeader.size, Math.min(size, 240)) };
}

/**
 * vmbus_signal_eom(): free the slot with a compare-and-exchange from the type we handled to
 * HVMSG_NONE (a full barrier), then write EOM only if msg_pending was set.
 */
export function signalEom(mem: GuestMemory, ops: CpuOps, pages: SynicPages, sint: number, expected: number): void {
  const at = pages.messagePage + sint * HV_MESSAGE_SIZE;
  const words = new Uint32Array(mem.buffer, at + HvMessageHeader.offsets.message_type, 1);
  if (Atomics.compareExchange(words, 0, expected >>> 0, HvMessageType.NONE) !== expected >>> 0) return;
  if (mem.read8(at + HvMessageHeader.offsets.message_flags) & 1) ops.setReg('EOM', 0n);
}
