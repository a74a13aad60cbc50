// The in-place packet headers (putInbandHeader, putGpaDirectHeader, putCompletionHeader) a data
// path builds its packets with: the same bytes as inband(), gpaDirect() and completion() make,
// whatever was in the buffer before.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { completion, GPA_DIRECT_PFNS_AT, gpaDirect, gpaDirectHeaderLength, inband, INBAND_PAYLOAD_AT, COMPLETION_PAYLOAD_AT, putCompletionHeader, putGpaDirectHeader, putInbandHeader, putU64 } from '../../src/vmbus/packet.js';
import { concatBytes } from '../../src/memory/typed-arrays.js';

const concat = concatBytes;

/** A reused buffer full of garbage: every byte of the packet must be written. */
const dirty = (n: number) => new Uint8Array(n).fill(0xa5);

describe('packet headers built in place', () => {
  it('in-band: the bytes inband() makes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.boolean(), (payload, id, completionRequested) => {
        const out = dirty(INBAND_PAYLOAD_AT + payload.length + 8);
        const length = putInbandHeader(out, payload.length, id, completionRequested);
        out.set(payload, INBAND_PAYLOAD_AT);
        expect(out.subarray(0, length)).toEqual(concat(inband(payload, BigInt(id), completionRequested)));
      }),
      { numRuns: 300 },
    );
  });

  it('GPA-direct with one range: the bytes gpaDirect() makes', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: Number.MAX_SAFE_INTEGER }), { minLength: 1, maxLength: 40 }), fc.nat({ max: 4095 }), fc.uint8Array({ maxLength: 80 }), fc.nat({ max: 2 ** 32 - 1 }), (pfns, byteOffset, payload, id) => {
        const byteCount = pfns.length * 4096 - byteOffset;
        const out = dirty(gpaDirectHeaderLength(pfns.length) + payload.length + 8);
        const length = putGpaDirectHeader(out, { byteCount, byteOffset, pfnCount: pfns.length }, payload.length, id);
        pfns.forEach((pfn, i) => putU64(out, GPA_DIRECT_PFNS_AT + 8 * i, pfn));
        out.set(payload, gpaDirectHeaderLength(pfns.length));
        expect(out.subarray(0, length)).toEqual(concat(gpaDirect([{ byteCount, byteOffset, pfns }], payload, BigInt(id))));
      }),
      { numRuns: 300 },
    );
  });

  it('completion: the bytes completion() makes, any 64-bit transaction id', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (payload, id) => {
        const out = dirty(COMPLETION_PAYLOAD_AT + payload.length + 8);
        const length = putCompletionHeader(out, payload.length, id);
        out.set(payload, COMPLETION_PAYLOAD_AT);
        expect(out.subarray(0, length)).toEqual(concat(completion(id, payload)));
      }),
      { numRuns: 300 },
    );
  });
});
