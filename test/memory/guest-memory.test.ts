import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GpaOutOfRangeError, GuestMemory, hvPageCount, hvPagesPerGuestPage, hvPfnsOfGuestPage, gpaToPfn, gpaToPfnUp, pfnToGpa } from '../../src/memory/index.js';
import { fuzz } from '../fuzz/fuzz.js';

describe('guest memory', () => {
  it('is shared, little-endian, and sized in guest pages', () => {
    const m = new GuestMemory({ size: 64 * 1024 });
    expect(m.buffer).toBeInstanceOf(SharedArrayBuffer);
    m.write32(0x100, 0x11223344);
    expect([...m.read(0x100, 4)]).toEqual([0x44, 0x33, 0x22, 0x11]);
    m.write64(0x200, -1n);
    expect(m.read64(0x200)).toBe(0xffff_ffff_ffff_ffffn);
    expect(() => new GuestMemory({ size: 4096, pageSize: 65536 })).toThrow(RangeError);
    // A second view attaches to the same RAM, as a worker thread would.
    const other = new GuestMemory({ size: m.size, buffer: m.buffer });
    expect(other.read32(0x100)).toBe(0x11223344);
  });

  it('an access outside RAM is a GpaOutOfRangeError naming the GPA', () => {
    const m = new GuestMemory({ size: 8192 });
    expect(() => m.read32(8190)).toThrow(GpaOutOfRangeError);
    expect(() => m.read32(8190)).toThrow(/GPA 0x1ffe\+0x4 is outside guest RAM/);
    try {
      m.write(-1, new Uint8Array(1));
    } catch (e) {
      expect(e).toBeInstanceOf(GpaOutOfRangeError);
      expect((e as GpaOutOfRangeError).gpa).toBe(-1);
    }
  });

  it('any (gpa, length) either succeeds inside RAM or fails with GpaOutOfRangeError', () => {
    const m = new GuestMemory({ size: 16384 });
    fuzz(
      'guest-memory.bounds',
      fc.property(fc.oneof(fc.integer({ min: -10, max: 20000 }), fc.double()), fc.integer({ min: -5, max: 20000 }), (gpa, len) => {
        const inside = Number.isSafeInteger(gpa) && gpa >= 0 && len >= 0 && gpa + len <= 16384;
        try {
          const b = m.read(gpa, len);
          expect(inside).toBe(true);
          expect(b.length).toBe(len);
        } catch (e) {
          expect(e).toBeInstanceOf(GpaOutOfRangeError);
          expect(inside).toBe(false);
        }
      }),
      100,
    );
  });
});

describe('Hyper-V pages vs guest pages', () => {
  it('every GPN handed to Hyper-V is a 4 KiB frame, whatever the guest page size', () => {
    expect(gpaToPfn(0x12345)).toBe(0x12);
    expect(gpaToPfnUp(0x12001)).toBe(0x13);
    expect(pfnToGpa(0x12)).toBe(0x12000);
    expect(hvPagesPerGuestPage(4096)).toBe(1);
    expect(hvPagesPerGuestPage(16384)).toBe(4);
    expect(hvPagesPerGuestPage(65536)).toBe(16);
    expect(hvPfnsOfGuestPage(3, 65536)).toEqual(Array.from({ length: 16 }, (_, i) => 48 + i));
    expect(hvPageCount(0xfff, 2)).toBe(2);
    expect(hvPageCount(0x1000, 4096)).toBe(1);
    expect(hvPageCount(0x1000, 0)).toBe(0);
  });
});

describe('RAM backed beyond its size for hot add', () => {
  it('what lies above the present size is not present until grow() brings it, and the other thread sees it', () => {
    const m = new GuestMemory({ size: 64 << 10, capacity: 256 << 10 });
    expect(m.size).toBe(64 << 10);
    expect(m.capacity).toBe(256 << 10);
    expect(() => m.read8(64 << 10)).toThrow(GpaOutOfRangeError);
    // The guest in a worker attaches to the same backing and the same present-size cell.
    const other = new GuestMemory({ size: 64 << 10, capacity: 256 << 10, buffer: m.buffer, presentCell: m.presentCell });
    expect(m.grow(128 << 10)).toBe(true);
    expect(other.size).toBe(128 << 10);
    other.write8((128 << 10) - 1, 7);
    expect(m.read8((128 << 10) - 1)).toBe(7);
    expect(() => m.read8(128 << 10)).toThrow(GpaOutOfRangeError);
    // Never smaller, never past the backing, whole pages only.
    expect(m.grow(64 << 10)).toBe(false);
    expect(m.grow(512 << 10)).toBe(false);
    expect(m.grow((128 << 10) + 1)).toBe(false);
    expect(m.size).toBe(128 << 10);
    expect(() => new GuestMemory({ size: 64 << 10, capacity: 32 << 10 })).toThrow(RangeError);
  });
});
