// WordCopier copies exactly what TypedArray.prototype.set would, word by word or in one move,
// between arrays at any offset into their buffers (shared or not), and keeps working when the
// arrays it is handed change from one copy to the next.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { moveWords, WordCopier } from '../../src/memory/word-copy.js';

const arrayIn = (shared: boolean, base: number, length: number, fill: number) => new Uint8Array(shared ? new SharedArrayBuffer(base + length + 3) : new ArrayBuffer(base + length + 3), base, length).fill(fill);

describe('WordCopier', () => {
  it('copies what set() copies, for any lengths, offsets, buffer kinds and bases, with the arrays changing between copies', () => {
    const copier = new WordCopier();
    const side = fc.record({ shared: fc.boolean(), base: fc.integer({ min: 0, max: 7 }), size: fc.integer({ min: 1, max: 1600 }) });
    fc.assert(
      fc.property(fc.array(fc.record({ src: side, dst: side, a: fc.nat(), b: fc.nat(), n: fc.nat() }), { minLength: 1, maxLength: 5 }), (copies) => {
        for (const { src: s, dst: d, a, b, n } of copies) {
          const src = arrayIn(s.shared, s.base, s.size, 0).map((_, i) => (i * 37 + 11) & 0xff);
          const dst = arrayIn(d.shared, d.base, d.size, 0xaa);
          const expected = dst.slice();
          const length = n % (Math.min(s.size, d.size) + 1);
          const srcAt = a % (s.size - length + 1);
          const dstAt = b % (d.size - length + 1);
          expected.set(src.subarray(srcAt, srcAt + length), dstAt);
          copier.copy(dst, dstAt, src, srcAt, length);
          expect([...dst]).toEqual([...expected]);
        }
      }),
    );
  });
});

describe('moveWords', () => {
  it('moves exactly count words, at any offsets, whatever count is modulo the four moves per turn', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 19 }), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 }), (count, si, di) => {
        const src = Uint32Array.from({ length: 32 }, (_, i) => (0x9e3779b9 * (i + 1)) >>> 0);
        const dst = new Uint32Array(new SharedArrayBuffer(4 * 32)).fill(0xdeadbeef);
        const expected = dst.slice();
        expected.set(src.subarray(si, si + count), di);
        moveWords(dst, di, src, si, count);
        expect([...dst]).toEqual([...expected]);
      }),
    );
  });
});

describe('WordCopier.copyFrom', () => {
  it('copies a whole array as set() does, into shared or private memory at any offset, with a new source each time', () => {
    const copier = new WordCopier();
    fc.assert(
      fc.property(fc.array(fc.record({ shared: fc.boolean(), base: fc.integer({ min: 0, max: 7 }), size: fc.integer({ min: 1, max: 3000 }), n: fc.nat(), at: fc.nat(), srcBase: fc.integer({ min: 0, max: 7 }) }), { minLength: 1, maxLength: 6 }), (copies) => {
        const dsts = new Map<string, Uint8Array>();
        for (const { shared, base, size, n, at, srcBase } of copies) {
          const key = `${shared} ${base} ${size}`;
          const dst = dsts.get(key) ?? arrayIn(shared, base, size, 0xaa);
          dsts.set(key, dst);
          const length = n % (size + 1);
          const src = new Uint8Array(new ArrayBuffer(srcBase + length), srcBase, length).map((_, i) => (i * 29 + length) & 0xff);
          const dstAt = at % (size - length + 1);
          const expected = dst.slice();
          expected.set(src, dstAt);
          copier.copyFrom(dst, dstAt, src);
          expect([...dst]).toEqual([...expected]);
        }
      }),
    );
  });

  it('throws as set() does when the source does not fit', () => {
    const dst = new Uint8Array(new SharedArrayBuffer(64), 4, 40);
    expect(() => new WordCopier().copyFrom(dst, 4, new Uint8Array(40))).toThrow(RangeError);
  });
});

describe('WordCopier.copy out of range', () => {
  it('throws a RangeError, as set() does, and writes nothing, even where the word views could reach', () => {
    const buffer = new SharedArrayBuffer(4096);
    const whole = new Uint8Array(buffer).fill(0x55);
    const dst = new Uint8Array(buffer, 8, 64); // a window of a larger shared buffer
    const src = new Uint8Array(1024).fill(0xaa);
    const copier = new WordCopier();
    for (const [dstAt, length] of [[0, 128], [60, 8], [0, 600], [4, 1000]] as const) {
      expect(() => copier.copy(dst, dstAt, src, 0, length)).toThrow(RangeError);
      expect(whole.every((b) => b === 0x55)).toBe(true);
    }
  });
});
