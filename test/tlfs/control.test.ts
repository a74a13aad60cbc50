import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HypercallControl, decodeControl, encodeControl, encodeResult, resultRepsCompleted, resultStatus } from '../../src/tlfs/control.js';
import { HvCall } from '../../src/tlfs/hypercall-codes.js';
import { HvStatus, statusName } from '../../src/tlfs/status.js';
import { fuzz } from '../fuzz/fuzz.js';

describe('hypercall control value', () => {
  it('encodes a rep call with a variable header as Linux hv_do_rep_hypercall does', () => {
    // code 0x14 | varhead 2 << 17 | rep count 5 << 32, worked by hand.
    expect(encodeControl({ code: HvCall.FLUSH_VIRTUAL_ADDRESS_LIST_EX, varHeadSize: 2, repCount: 5 })).toBe(0x0000_0005_0004_0014n);
    expect(encodeControl({ code: HvCall.SIGNAL_EVENT, fast: true })).toBe(0x1005dn);
  });

  it('decodes any 64-bit value exactly as the bit-field declaration does', () => {
    fuzz(
      'hypercall-control.decode',
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => {
        const c = decodeControl(v);
        const d = HypercallControl.decode(v);
        expect(c.code).toBe(d.code);
        expect(c.fast).toBe(d.fast === 1);
        expect(c.varHeadSize).toBe(d.var_header_size);
        expect(c.nested).toBe(d.nested === 1);
        expect(c.repCount).toBe(d.rep_count);
        expect(c.repStart).toBe(d.rep_start);
        expect(c.reservedSet).toBe(d.reserved0 !== 0 || d.reserved1 !== 0 || d.reserved2 !== 0);
        if (!c.reservedSet && !c.nested) expect(encodeControl(c)).toBe(v);
      }),
      2000,
    );
  });

  it('also accepts negative or oversized bigints as their 64-bit image', () => {
    expect(decodeControl(-1n).code).toBe(0xffff);
    expect(decodeControl((1n << 64n) | 0x5cn).code).toBe(0x5c);
  });

  it('result values carry the status and reps completed (hv_result, hv_repcomp)', () => {
    const r = encodeResult(HvStatus.INVALID_PARAMETER, 7);
    expect(r).toBe(0x7_0000_0005n);
    expect(resultStatus(r)).toBe(5);
    expect(resultRepsCompleted(r)).toBe(7);
    expect(statusName(5)).toBe('HV_STATUS_INVALID_PARAMETER');
    expect(statusName(0x7777)).toBe('HV_STATUS_0x7777');
  });
});
