// Partition-level calls: HvCallGetPartitionId (tlfs.md §4.12.10), HvCallGetVpIndexFromApicId
// (§4.12.9), HvCallModifySparseGpaPageHostVisibility (§4.12.7) and the extended
// HvExtCallQueryCapabilities (§4.12.13).
import { PrivHigh } from '../../tlfs/cpuid.js';
import { HvCall, HvExtCall } from '../../tlfs/hypercall-codes.js';
import { HvGetVpIndexFromApicIdInput, HvGpaRangeForVisibility, HvMemHostVisibility } from '../../tlfs/hypercall-inputs.js';
import { HvStatus } from '../../tlfs/status.js';
import type { HypercallDef } from './dispatch.js';

export const getPartitionId: HypercallDef = {
  code: HvCall.GET_PARTITION_ID,
  rep: false,
  input: 0,
  output: 8,
  gate: (f) => (f.privilegesHigh & PrivHigh.ACCESS_PARTITION_ID) !== 0,
  run: (ctx) => {
    ctx.out.setBigUint64(0, ctx.partition.config.partitionId, true);
    return HvStatus.SUCCESS;
  },
};

const A = HvGetVpIndexFromApicIdInput.offsets;

export const getVpIndexFromApicId: HypercallDef = {
  code: HvCall.GET_VP_ID_FROM_APIC_ID,
  rep: true,
  input: HvGetVpIndexFromApicIdInput.size,
  repInput: 4,
  repOutput: 4,
  run: (ctx) => {
    if (!ctx.partition.isSelf(ctx.in.getBigUint64(A.partition_id, true))) return HvStatus.INVALID_PARTITION_ID;
    if (ctx.in.getUint8(A.target_vtl) !== 0) return HvStatus.INVALID_PARAMETER;
    for (let i = 0; i < 7; i++) if (ctx.in.getUint8(A.reserved + i) !== 0) return HvStatus.INVALID_HYPERCALL_INPUT;
    return HvStatus.SUCCESS;
  },
  element: (ctx, i) => {
    const vp = ctx.partition.vpByApicId(ctx.in.getUint32(ctx.repIn(i), true));
    if (!vp) return HvStatus.INVALID_PARAMETER;
    ctx.out.setUint32(ctx.repOut(i), vp.index, true);
    return HvStatus.SUCCESS;
  },
};

const V = HvGpaRangeForVisibility.offsets;
const VISIBILITIES: readonly number[] = Object.values(HvMemHostVisibility);

export const modifySparseGpaPageHostVisibility: HypercallDef = {
  code: HvCall.MODIFY_SPARSE_GPA_PAGE_HOST_VISIBILITY,
  rep: true,
  input: V.gpa_page_list,
  repInput: 8,
  // Only isolated partitions share pages with the host this way (arch/x86/hyperv/ivm.c).
  gate: (f) => (f.privilegesHigh & PrivHigh.ISOLATION) !== 0,
  run: (ctx) => {
    const dv = ctx.in;
    if (!ctx.partition.isSelf(dv.getBigUint64(V.partition_id, true))) return HvStatus.INVALID_PARTITION_ID;
    const word = dv.getUint32(V._visibility, true);
    if (word & ~3 || dv.getUint32(V.reserved1, true) !== 0) return HvStatus.INVALID_HYPERCALL_INPUT;
    if (!VISIBILITIES.includes(word & 3)) return HvStatus.INVALID_PARAMETER;
    if (ctx.partition.events.active) ctx.partition.events.emit({ kind: 'visibility', gpns: ctx.control.repCount - ctx.control.repStart, visibility: word & 3 });
    return HvStatus.SUCCESS;
  },
  element: (ctx, i) => {
    const gpn = ctx.in.getBigUint64(ctx.repIn(i), true);
    const p = ctx.partition;
    if (gpn >= BigInt(p.memory.size / 4096)) return HvStatus.INVALID_PARAMETER;
    const visibility = ctx.in.getUint32(V._visibility, true) & 3;
    if (visibility === HvMemHostVisibility.NOT_VISIBLE) p.hostVisibility.delete(Number(gpn));
    else p.hostVisibility.set(Number(gpn), visibility);
    return HvStatus.SUCCESS;
  },
};

export const queryExtendedCapabilities: HypercallDef = {
  code: HvExtCall.QUERY_CAPABILITIES,
  rep: false,
  input: 0,
  output: 8,
  // KVM refuses the fast form of extended calls.
  fast: false,
  gate: (f) => (f.privilegesHigh & PrivHigh.ENABLE_EXTENDED_HYPERCALLS) !== 0,
  run: (ctx) => {
    // No extended call (memory heat hints, ...) is offered: every capability bit is clear.
    ctx.out.setBigUint64(0, 0n, true);
    return HvStatus.SUCCESS;
  },
};
