// Calls that name processors: remote TLB flushes (tlfs.md §4.12.3, §4.12.4), synthetic cluster
// IPIs (§4.12.5), NotifyLongSpinWait (§7.7) and RetargetDeviceInterrupt (§4.12.8).
// The model has no TLB, so a flush validates its input and reports whom it reached.
import { Hints } from '../../tlfs/cpuid.js';
import { HvCall } from '../../tlfs/hypercall-codes.js';
import {
  HV_FLUSH_VALID_FLAGS,
  HV_IPI_HIGH_VECTOR,
  HV_IPI_LOW_VECTOR,
  HvDeviceInterruptTargetFlags,
  HvInterruptSource,
  HvRetargetDeviceInterrupt,
  HvSendIpi,
  HvSendIpiEx,
  HvTlbFlush,
  HvTlbFlushEx,
} from '../../tlfs/hypercall-inputs.js';
import { HvStatus } from '../../tlfs/status.js';
import type { Features } from '../features.js';
import type { CallContext, HypercallDef } from './dispatch.js';
import { maskTargets, qwords, sparseTargets, type VpTargets } from './vpset.js';

const hint = (...bits: number[]) => (f: Features) => bits.every((b) => (f.hints & b) !== 0);
const FLUSH = Hints.REMOTE_TLB_FLUSH;
const IPI = Hints.CLUSTER_IPI;
const EX = Hints.EX_PROCESSOR_MASKS;
const ALL_PROCESSORS = 1n;

const F = HvTlbFlush.offsets;
const FX = HvTlbFlushEx.offsets;
const VPSET_FORMAT = FX.hv_vp_set;
const VPSET_MASK = FX.hv_vp_set + 8;

function flush(ctx: CallContext, targets: VpTargets, ranges: number): number {
  const flags = ctx.in.getBigUint64(F.flags, true);
  if (flags & ~HV_FLUSH_VALID_FLAGS) return HvStatus.INVALID_PARAMETER;
  const addressSpace = ctx.in.getBigUint64(F.address_space, true);
  const reached = flags & ALL_PROCESSORS ? 'all' : targets;
  if (ctx.partition.events.active) ctx.partition.events.emit({ kind: 'tlb-flush', vp: ctx.vp.index, targets: reached, addressSpace, flags, ranges });
  return HvStatus.SUCCESS;
}

/** The Ex forms' processor set: format and bank mask in the fixed header, banks in the variable one. */
function exTargets(ctx: CallContext, formatAt: number, maskAt: number): VpTargets | number {
  return sparseTargets(ctx.in.getBigUint64(formatAt, true), ctx.in.getBigUint64(maskAt, true), qwords(ctx.in, ctx.varHeaderOffset, ctx.control.varHeadSize));
}

export const flushSpace: HypercallDef = {
  code: HvCall.FLUSH_VIRTUAL_ADDRESS_SPACE,
  rep: false,
  input: HvTlbFlush.size,
  gate: hint(FLUSH),
  run: (ctx) => flush(ctx, maskTargets(ctx.in.getBigUint64(F.processor_mask, true)), 0),
};

export const flushList: HypercallDef = {
  code: HvCall.FLUSH_VIRTUAL_ADDRESS_LIST,
  rep: true,
  input: HvTlbFlush.size,
  repInput: 8,
  gate: hint(FLUSH),
  run: (ctx) => flush(ctx, maskTargets(ctx.in.getBigUint64(F.processor_mask, true)), ctx.control.repCount - ctx.control.repStart),
};

export const flushSpaceEx: HypercallDef = {
  code: HvCall.FLUSH_VIRTUAL_ADDRESS_SPACE_EX,
  rep: false,
  input: HvTlbFlushEx.size,
  varHeader: true,
  gate: hint(FLUSH, EX),
  run: (ctx) => {
    const t = exTargets(ctx, VPSET_FORMAT, VPSET_MASK);
    return typeof t === 'number' ? t : flush(ctx, t, 0);
  },
};

export const flushListEx: HypercallDef = {
  code: HvCall.FLUSH_VIRTUAL_ADDRESS_LIST_EX,
  rep: true,
  input: HvTlbFlushEx.size,
  repInput: 8,
  varHeader: true,
  gate: hint(FLUSH, EX),
  run: (ctx) => {
    const t = exTargets(ctx, VPSET_FORMAT, VPSET_MASK);
    return typeof t === 'number' ? t : flush(ctx, t, ctx.control.repCount - ctx.control.repStart);
  },
};

/** Delivers a fixed, edge-triggered interrupt to each target that exists (KVM ignores the rest). */
function sendIpi(ctx: CallContext, vector: number, reserved: number, targets: VpTargets): number {
  if (reserved !== 0) return HvStatus.INVALID_HYPERCALL_INPUT;
  // tlfs.md 4.12.5 (KVM kvm_hv_send_ipi): a vector outside 0x10..0xFF is invalid input.
  if (vector < HV_IPI_LOW_VECTOR || vector > HV_IPI_HIGH_VECTOR) return HvStatus.INVALID_HYPERCALL_INPUT;
  const p = ctx.partition;
  const vps = targets === 'all' ? p.vps : targets.map((n) => p.vps[n]).filter((v) => v !== undefined);
  for (const t of vps) {
    if (p.events.active) p.events.emit({ kind: 'ipi', from: ctx.vp.index, to: t.index, vector });
    t.apic.raise(vector);
  }
  return HvStatus.SUCCESS;
}

const I = HvSendIpi.offsets;
const IX = HvSendIpiEx.offsets;

export const sendSyntheticClusterIpi: HypercallDef = {
  code: HvCall.SEND_IPI,
  rep: false,
  input: HvSendIpi.size,
  gate: hint(IPI),
  run: (ctx) => sendIpi(ctx, ctx.in.getUint32(I.vector, true), ctx.in.getUint32(I.reserved, true), maskTargets(ctx.in.getBigUint64(I.cpu_mask, true))),
};

export const sendSyntheticClusterIpiEx: HypercallDef = {
  code: HvCall.SEND_IPI_EX,
  rep: false,
  input: HvSendIpiEx.size,
  varHeader: true,
  gate: hint(IPI, EX),
  run: (ctx) => {
    const t = exTargets(ctx, IX.vp_set, IX.vp_set + 8);
    if (typeof t === 'number') return t;
    return sendIpi(ctx, ctx.in.getUint32(IX.vector, true), ctx.in.getUint32(IX.reserved, true), t);
  },
};

export const notifyLongSpinWait: HypercallDef = {
  code: HvCall.NOTIFY_LONG_SPIN_WAIT,
  rep: false,
  input: 8,
  // KVM: only when the spin-retry hint is neither 0 nor "never notify".
  gate: (f) => f.spinRetries !== 0 && f.spinRetries >>> 0 !== 0xffffffff,
  run: (ctx) => {
    if (ctx.partition.events.active) ctx.partition.events.emit({ kind: 'spin-wait', vp: ctx.vp.index, count: ctx.in.getBigUint64(0, true) });
    return HvStatus.SUCCESS;
  },
};

const R = HvRetargetDeviceInterrupt.offsets;
const R_ENTRY = R.int_entry;
const R_TARGET = R.int_target;
/** The fixed header ends after vp_mask / vp_set.format; valid_bank_mask starts the variable one. */
const RETARGET_FIXED = R_TARGET + 16;

export const retargetDeviceInterrupt: HypercallDef = {
  code: HvCall.RETARGET_INTERRUPT,
  rep: false,
  input: RETARGET_FIXED,
  varHeader: true,
  run: (ctx) => {
    const dv = ctx.in;
    if (!ctx.partition.isSelf(dv.getBigUint64(R.partition_id, true))) return HvStatus.INVALID_PARTITION_ID;
    const source = dv.getUint32(R_ENTRY, true);
    if (dv.getUint32(R_ENTRY + 4, true) !== 0 || dv.getBigUint64(R.reserved2, true) !== 0n) return HvStatus.INVALID_HYPERCALL_INPUT;
    if (source !== HvInterruptSource.MSI && source !== HvInterruptSource.IOAPIC) return HvStatus.INVALID_PARAMETER;
    const vector = dv.getUint32(R_TARGET, true);
    const flags = dv.getUint32(R_TARGET + 4, true);
    if (vector < HV_IPI_LOW_VECTOR || vector > HV_IPI_HIGH_VECTOR) return HvStatus.INVALID_PARAMETER;
    if (flags & ~(HvDeviceInterruptTargetFlags.MULTICAST | HvDeviceInterruptTargetFlags.PROCESSOR_SET)) return HvStatus.INVALID_PARAMETER;
    let targets: VpTargets | number;
    const varHead = ctx.control.varHeadSize;
    if (flags & HvDeviceInterruptTargetFlags.PROCESSOR_SET) {
      // varhead = valid_bank_mask + one qword per bank (Linux pci-hyperv hv_arch_irq_unmask).
      if (varHead < 1) return HvStatus.INVALID_HYPERCALL_INPUT;
      const mask = dv.getBigUint64(ctx.varHeaderOffset, true);
      targets = sparseTargets(dv.getBigUint64(R_TARGET + 8, true), mask, qwords(dv, ctx.varHeaderOffset + 8, varHead - 1));
    } else {
      if (varHead !== 0) return HvStatus.INVALID_HYPERCALL_INPUT;
      targets = maskTargets(dv.getBigUint64(R_TARGET + 8, true));
    }
    if (typeof targets === 'number') return targets;
    const deviceId = dv.getBigUint64(R.device_id, true);
    const interrupts = ctx.partition.deviceInterrupts;
    if (!interrupts.has(deviceId)) return HvStatus.INVALID_DEVICE_ID;
    interrupts.set(deviceId, { vector, targets });
    if (ctx.partition.events.active) ctx.partition.events.emit({ kind: 'interrupt-retarget', deviceId, vector, targets });
    return HvStatus.SUCCESS;
  },
};
