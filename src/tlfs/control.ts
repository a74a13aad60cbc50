// The hypercall control (input) value and the result value (tlfs.md §4.3, §4.4).
// Linux: include/hyperv/hvgdk_mini.h (HV_HYPERCALL_*); asm-generic/mshyperv.h (hv_repcomp).
import { bits } from './struct.js';

/** Hypercall input value, as in RCX / EDX:EAX / X1. */
export const HypercallControl = bits('hv_hypercall_input', 'u64', {
  code: 16,
  fast: 1,
  var_header_size: 10,
  reserved0: 4,
  nested: 1,
  rep_count: 12,
  reserved1: 4,
  rep_start: 12,
  reserved2: 4,
});

/** Hypercall result value, as in RAX / EDX:EAX / X0. */
export const HypercallResult = bits('hv_hypercall_output', 'u64', {
  status: 16,
  reserved0: 16,
  reps_completed: 12,
  reserved1: 20,
});

export const HV_HYPERCALL_FAST_BIT = 1n << 16n;
export const HV_HYPERCALL_VARHEAD_OFFSET = 17;
export const HV_HYPERCALL_VARHEAD_MASK = 0x3ffn << 17n;
export const HV_HYPERCALL_NESTED = 1n << 31n;
export const HV_HYPERCALL_REP_COMP_OFFSET = 32;
export const HV_HYPERCALL_REP_COMP_1 = 1n << 32n;
export const HV_HYPERCALL_REP_COMP_MASK = 0xfffn << 32n;
export const HV_HYPERCALL_REP_START_OFFSET = 48;
export const HV_HYPERCALL_REP_START_MASK = 0xfffn << 48n;
export const HV_HYPERCALL_RESULT_MASK = 0xffffn;
export const HV_HYPERCALL_RSVD0_MASK = 0xf8000000n;
export const HV_HYPERCALL_RSVD1_MASK = 0xfn << 44n;
export const HV_HYPERCALL_RSVD2_MASK = 0xfn << 60n;
/** KVM and Linux treat bit 31 (nested) as reserved for an ordinary guest. */
export const HV_HYPERCALL_RSVD_MASK = HV_HYPERCALL_RSVD0_MASK | HV_HYPERCALL_RSVD1_MASK | HV_HYPERCALL_RSVD2_MASK;
export const HV_HYPERCALL_PARAM_ALIGN = 8;
export const HV_HYPERCALL_MAX_XMM_REGISTERS = 6;

export interface Control {
  code: number;
  fast: boolean;
  varHeadSize: number;
  nested: boolean;
  repCount: number;
  repStart: number;
  /** Any of bits 30:27, 47:44, 63:60 set. */
  reservedSet: boolean;
}

export function decodeControl(value: bigint): Control {
  return decodeControlInto(value, { code: 0, fast: false, varHeadSize: 0, nested: false, repCount: 0, repStart: 0, reservedSet: false });
}

/** A 64-bit value's halves, read through these views: BigInt arithmetic costs far more. */
const WORD = new BigUint64Array(1);
const HALVES = new Uint32Array(WORD.buffer);
const LOW = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? 0 : 1;

/** decodeControl into `out`, which the dispatcher reuses: a hypercall decodes one per call. */
export function decodeControlInto(value: bigint, out: Control): Control {
  WORD[0] = value; // modulo 2^64, as BigInt.asUintN(64, value)
  const lo = HALVES[LOW]!;
  const hi = HALVES[1 - LOW]!;
  out.code = lo & 0xffff;
  out.fast = (lo & 0x10000) !== 0;
  out.varHeadSize = (lo >>> 17) & 0x3ff;
  out.nested = (lo & 0x80000000) !== 0;
  out.repCount = hi & 0xfff;
  out.repStart = (hi >>> 16) & 0xfff;
  out.reservedSet = (lo & 0x78000000) !== 0 || (hi & 0xf000f000) !== 0;
  return out;
}

export function encodeControl(c: Partial<Omit<Control, 'reservedSet'>> & { code: number }): bigint {
  return (
    BigInt(c.code & 0xffff) |
    (c.fast ? HV_HYPERCALL_FAST_BIT : 0n) |
    (BigInt((c.varHeadSize ?? 0) & 0x3ff) << 17n) |
    (c.nested ? HV_HYPERCALL_NESTED : 0n) |
    (BigInt((c.repCount ?? 0) & 0xfff) << 32n) |
    (BigInt((c.repStart ?? 0) & 0xfff) << 48n)
  );
}

export function encodeResult(status: number, repsCompleted = 0): bigint {
  return BigInt(status & 0xffff) | (BigInt(repsCompleted & 0xfff) << 32n);
}

/** Linux hv_result(): the status of a result value. */
export const resultStatus = (result: bigint): number => Number(result & 0xffffn);
/** Linux hv_repcomp(): reps completed of a result value. */
export const resultRepsCompleted = (result: bigint): number => Number((result >> 32n) & 0xfffn);
