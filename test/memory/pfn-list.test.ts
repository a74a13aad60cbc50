import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemory, PfnList, PfnListError } from '../../src/memory/index.js';
import { fuzz } from '../fuzz/fuzz.js';

describe('PFN lists', () => {
  it('merge consecutive frames into runs', () => {
    const l = new PfnList([5, 6, 7, 2, 3, 9]);
    expect(l.runs).toEqual([
      { pfn: 5, count: 3 },
      { pfn: 2, count: 2 },
      { pfn: 9, count: 1 },
    ]);
    expect(l.contiguous).toBe(false);
    expect(PfnList.fromRange(0x1ff0, 0x20).pfns).toEqual([1, 2]);
    expect(PfnList.fromRange(0x1ff0, 0x20).contiguous).toBe(true);
    expect(l.gpaAt(3 * 4096 + 1)).toBe(2 * 4096 + 1);
  });

  it('reject lists that cannot describe the buffer, naming the field', () => {
    expect(() => new PfnList([1], 4096)).toThrow(/offset/);
    expect(() => new PfnList([1], 0, 4097)).toThrow(/length/);
    expect(() => new PfnList([1, -2])).toThrow(/pfns\[1\]/);
    expect(() => new PfnList([1]).gather(new GuestMemory({ size: 8192 }), 4000, new Uint8Array(100))).toThrow(PfnListError);
  });

  it('gather and scatter agree with a byte-by-byte reference over any frame list', () => {
    const frames = 16;
    fuzz(
      'pfn-list.model',
      fc.property(
        fc.array(fc.nat(frames - 1), { minLength: 1, maxLength: 6 }),
        fc.nat(4095),
        fc.nat(),
        fc.nat(),
        fc.uint8Array({ minLength: 1, maxLength: 9000 }),
        (pfns, offset, a, b, data) => {
          const m = new GuestMemory({ size: frames * 4096 });
          const cap = pfns.length * 4096 - offset;
          const len = Math.min(data.length, cap);
          const l = new PfnList(pfns, offset, cap);
          const pos = cap > len ? a % (cap - len + 1) : 0;
          const src = data.subarray(0, len);
          // Only distinct frames have a well-defined result when written.
          if (new Set(pfns).size === pfns.length) {
            l.scatter(m, pos, src);
            for (let i = 0; i < len; i++) expect(m.read8(l.gpaAt(pos + i))).toBe(src[i]);
          }
          const dst = new Uint8Array(Math.min(len, b % (cap - pos + 1)));
          l.gather(m, pos, dst);
          for (let i = 0; i < dst.length; i++) expect(dst[i]).toBe(m.read8(l.gpaAt(pos + i)));
        },
      ),
      300,
    );
  });

  it('a frame outside RAM is reported as a GPA error, not a wild access', () => {
    const m = new GuestMemory({ size: 4096 });
    expect(() => new PfnList([7]).gather(m, 0, new Uint8Array(8))).toThrow(/GPA 0x7000/);
  });
});
