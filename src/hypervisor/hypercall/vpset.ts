// Processor sets in hypercall inputs: a 64-bit mask of VP indices, or a sparse `hv_vpset`
// whose bank qwords form the variable header (tlfs.md §4.12.4).
import { HvGenericSetFormat, HV_MAX_SPARSE_VCPU_BANKS } from '../../tlfs/hypercall-inputs.js';
import { HvStatus } from '../../tlfs/status.js';

export type VpTargets = number[] | 'all';

/** VP indices named by a 64-bit mask (bit n = VP index n). */
export function maskTargets(mask: bigint): number[] {
  const out: number[] = [];
  for (let n = 0; n < 64; n++) if ((mask >> BigInt(n)) & 1n) out.push(n);
  return out;
}

const popcount = (m: bigint): number => {
  let n = 0;
  for (let x = BigInt.asUintN(64, m); x; x &= x - 1n) n++;
  return n;
};

/**
 * Decodes a sparse VP set: `format` and `validBankMask` from the fixed header, the bank qwords
 * from `banks` (the variable header). Returns the VP indices, 'all', or a status: the variable
 * header must hold exactly one qword per valid bank (KVM kvm_hv_flush_tlb / kvm_hv_send_ipi).
 */
export function sparseTargets(format: bigint, validBankMask: bigint, banks: readonly bigint[]): VpTargets | number {
  // Format ALL names every VP: its bank mask and variable header must both be empty.
  if (format === BigInt(HvGenericSetFormat.ALL)) return banks.length === 0 && validBankMask === 0n ? 'all' : HvStatus.INVALID_HYPERCALL_INPUT;
  if (format !== BigInt(HvGenericSetFormat.SPARSE_4K)) return HvStatus.INVALID_PARAMETER;
  if (popcount(validBankMask) !== banks.length) return HvStatus.INVALID_HYPERCALL_INPUT;
  const out: number[] = [];
  let k = 0;
  for (let bank = 0; bank < HV_MAX_SPARSE_VCPU_BANKS; bank++) {
    if (!((validBankMask >> BigInt(bank)) & 1n)) continue;
    for (const n of maskTargets(banks[k++]!)) out.push(bank * 64 + n);
  }
  return out;
}

/** Reads `count` qwords at `offset`. */
export function qwords(dv: DataView, offset: number, count: number): bigint[] {
  return Array.from({ length: count }, (_, i) => dv.getBigUint64(offset + 8 * i, true));
}
