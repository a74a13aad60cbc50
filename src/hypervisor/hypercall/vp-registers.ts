// HvCallGetVpRegisters / HvCallSetVpRegisters (tlfs.md §4.12.6): rep calls over register names,
// through the same register table as the x86 MSRs. Per element: an unknown or inaccessible name
// is INVALID_PARAMETER, a value the register refuses is INVALID_REGISTER_VALUE.
import { PrivHigh } from '../../tlfs/cpuid.js';
import { HvCall } from '../../tlfs/hypercall-codes.js';
import { HvGetVpRegistersInput, HvRegisterAssoc, HvVpRegistersHeader } from '../../tlfs/hypercall-inputs.js';
import { HV_ANY_VP, HV_VP_INDEX_SELF } from '../../tlfs/registers.js';
import { HvStatus } from '../../tlfs/status.js';
import { featureRegister } from '../features.js';
import { registerByName } from '../registers.js';
import type { Vp } from '../vp.js';
import type { CallContext, HypercallDef } from './dispatch.js';

const H = HvVpRegistersHeader.offsets;
const A = HvRegisterAssoc.offsets;
const MASK64 = 0xffff_ffff_ffff_ffffn;

/** The VP the header names, or the status that rejects the header. */
function targetVp(ctx: CallContext): Vp | number {
  const dv = ctx.in;
  if (!ctx.partition.isSelf(dv.getBigUint64(H.partitionid, true))) return HvStatus.INVALID_PARTITION_ID;
  const vtl = dv.getUint8(H.inputvtl);
  // [3:0] target VTL, bit 4 "use target VTL", [7:5] reserved. Only VTL 0 exists here.
  if (vtl & 0xe0 || dv.getUint8(H.padding) | dv.getUint8(H.padding + 1) | dv.getUint8(H.padding + 2)) return HvStatus.INVALID_HYPERCALL_INPUT;
  if (vtl & 0x10 && vtl & 0x0f) return HvStatus.INVALID_PARAMETER;
  const index = dv.getUint32(H.vpindex, true);
  if (index === HV_VP_INDEX_SELF || index === HV_ANY_VP) return ctx.vp;
  return ctx.partition.vps[index] ?? HvStatus.INVALID_VP_INDEX;
}

const gate = (f: { privilegesHigh: number }): boolean => (f.privilegesHigh & PrivHigh.ACCESS_VP_REGISTERS) !== 0;

/** The header check both calls run once per invocation, before any element. */
const checkHeader = (ctx: CallContext): number => {
  const t = targetVp(ctx);
  return typeof t === 'number' ? t : HvStatus.SUCCESS;
};

export const getVpRegisters: HypercallDef = {
  code: HvCall.GET_VP_REGISTERS,
  rep: true,
  input: HvGetVpRegistersInput.size,
  repInput: 4,
  repOutput: 16,
  gate,
  run: checkHeader,
  element: (ctx, i) => {
    const vp = targetVp(ctx) as Vp;
    const name = ctx.in.getUint32(ctx.repIn(i), true);
    let value = featureRegister(ctx.partition.features, name);
    if (value === undefined) {
      const def = registerByName.get(name);
      if (!def || !def.gate(ctx.partition.features) || !def.read) return HvStatus.INVALID_PARAMETER;
      value = def.read(vp);
    }
    const at = ctx.repOut(i);
    ctx.out.setBigUint64(at, value & MASK64, true);
    ctx.out.setBigUint64(at + 8, (value >> 64n) & MASK64, true);
    return HvStatus.SUCCESS;
  },
};

export const setVpRegisters: HypercallDef = {
  code: HvCall.SET_VP_REGISTERS,
  rep: true,
  input: HvGetVpRegistersInput.size,
  repInput: HvRegisterAssoc.size,
  gate,
  run: checkHeader,
  element: (ctx, i) => {
    const vp = targetVp(ctx) as Vp;
    const at = ctx.repIn(i);
    const dv = ctx.in;
    if (dv.getUint32(at + A.reserved1, true) !== 0 || dv.getBigUint64(at + A.reserved2, true) !== 0n) return HvStatus.INVALID_HYPERCALL_INPUT;
    const name = dv.getUint32(at + A.name, true);
    const def = registerByName.get(name);
    if (!def || !def.gate(ctx.partition.features) || !def.write) return HvStatus.INVALID_PARAMETER;
    const low = dv.getBigUint64(at + A.value, true);
    const high = dv.getBigUint64(at + A.value + 8, true);
    // Every synthetic register is 64 bits: the high qword must be zero (tlfs.md §3.1).
    if (high !== 0n) return HvStatus.INVALID_REGISTER_VALUE;
    return def.write(vp, low) === undefined ? HvStatus.SUCCESS : HvStatus.INVALID_REGISTER_VALUE;
  },
};
