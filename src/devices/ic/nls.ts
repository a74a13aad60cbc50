// Linux's string conversions as the KVP and file-copy drivers use them (fs/nls/nls_base.c
// utf16s_to_utf8s, utf8s_to_utf16s, utf8_to_utf32, utf32_to_utf8), and the C string helpers
// their daemons rely on. Written from their behaviour, on byte buffers: the model never reads
// outside a buffer where C would run past its end (noted at each place).
//
// Behaviour reproduced:
//  - UTF-16 → UTF-8 stops at a NUL unit or after `inlen` units; a lone low surrogate, or a high
//    surrogate not followed by a low one, is skipped (the next unit is then read normally); a
//    character that no longer fits in `maxout` bytes ends the conversion (6.1.160 and later:
//    "fs/nls: Fix utf16 to utf8 conversion", backported to 6.1 in January 2026 — earlier 6.1
//    kernels skipped it and went on). `inlen` is a C int: a u32 size of 2^31 or more is negative
//    and converts nothing.
//  - UTF-8 → UTF-16 stops at a NUL byte, after `inlen` bytes or when `maxout` units are written
//    (a supplementary character needs two); any malformed, overlong, surrogate or out-of-range
//    sequence makes the whole conversion fail with -EINVAL. No terminator is written.
import { Errno } from './transport.js';

const UNICODE_MAX = 0x10ffff;
const PLANE_SIZE = 0x10000;
const SURROGATE_MASK = 0xfffff800;
const SURROGATE_PAIR = 0xd800;
const SURROGATE_LOW = 0x400;
const SURROGATE_BITS = 0x3ff;

/** The UTF-8 forms nls_base.c knows (up to 6 bytes): lead-byte mask and value, payload mask, lowest value. */
const UTF8_FORMS: readonly { cmask: number; cval: number; shift: number; lmask: number; lval: number }[] = [
  { cmask: 0x80, cval: 0x00, shift: 0, lmask: 0x7f, lval: 0 },
  { cmask: 0xe0, cval: 0xc0, shift: 6, lmask: 0x7ff, lval: 0x80 },
  { cmask: 0xf0, cval: 0xe0, shift: 12, lmask: 0xffff, lval: 0x800 },
  { cmask: 0xf8, cval: 0xf0, shift: 18, lmask: 0x1fffff, lval: 0x10000 },
  { cmask: 0xfc, cval: 0xf8, shift: 24, lmask: 0x3ffffff, lval: 0x200000 },
  { cmask: 0xfe, cval: 0xfc, shift: 30, lmask: 0x7fffffff, lval: 0x4000000 },
];

const isSurrogate = (u: number): boolean => ((u & SURROGATE_MASK) >>> 0) === SURROGATE_PAIR;

/** A C int from a u32 (sizes on the wire are u32; the conversions take int). */
export const cInt = (u32: number): number => u32 | 0;

/** utf32_to_utf8: the UTF-8 bytes of code point `u` (the caller checks they fit), or 'ilseq' for a surrogate or beyond U+10FFFF. */
function utf32ToUtf8(u: number): number[] | 'ilseq' {
  if (u > UNICODE_MAX || isSurrogate(u)) return 'ilseq';
  for (let n = 0; n < UTF8_FORMS.length; n++) {
    const t = UTF8_FORMS[n]!;
    if (u <= t.lmask) {
      const out = [t.cval | Math.floor(u / 2 ** t.shift)];
      for (let c = t.shift - 6; c >= 0; c -= 6) out.push(0x80 | (Math.floor(u / 2 ** c) & 0x3f));
      return out;
    }
  }
  return 'ilseq';
}

/**
 * utf16s_to_utf8s(src + at, inlen, UTF16_LITTLE_ENDIAN, out, maxout): the UTF-8 bytes. Units
 * past the end of `src` end the string (Linux would read on past its buffer).
 */
export function utf16sToUtf8s(src: Uint8Array, at: number, inlen: number, maxout: number): Uint8Array {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const unit = (i: number): number => (at + 2 * i + 2 <= src.length && at + 2 * i >= 0 ? dv.getUint16(at + 2 * i, true) : 0);
  const out: number[] = [];
  let i = 0;
  let left = inlen;
  let room = maxout;
  while (left > 0 && room > 0) {
    let u = unit(i);
    if (!u) break;
    i++;
    left--;
    if (u > 0x7f) {
      if (isSurrogate(u)) {
        if (u & SURROGATE_LOW) continue;
        if (left <= 0) break;
        const v = unit(i);
        if (!isSurrogate(v) || !(v & SURROGATE_LOW)) continue;
        u = PLANE_SIZE + ((u & SURROGATE_BITS) << 10) + (v & SURROGATE_BITS);
        i++;
        left--;
      }
      const b = utf32ToUtf8(u);
      if (b === 'ilseq') continue;
      if (b.length > room) break;
      out.push(...b);
      room -= b.length;
    } else {
      out.push(u);
      room--;
    }
  }
  return Uint8Array.from(out);
}

/** utf8_to_utf32: the code point and its length, or -1 for anything malformed. */
function utf8ToUtf32(src: Uint8Array, at: number, inlen: number): { u: number; size: number } | -1 {
  const c0 = src[at] ?? 0;
  let l = c0;
  for (let n = 1; n <= UTF8_FORMS.length; n++) {
    const t = UTF8_FORMS[n - 1]!;
    if ((c0 & t.cmask) === t.cval) {
      l = l % (t.lmask + 1);
      if (l < t.lval || l > UNICODE_MAX || isSurrogate(l)) return -1;
      return { u: l, size: n };
    }
    if (inlen <= n) return -1;
    const c = ((src[at + n] ?? 0) ^ 0x80) & 0xff;
    if (c & 0xc0) return -1;
    l = l * 64 + c;
  }
  return -1;
}

/**
 * utf8s_to_utf16s(src + at, inlen, endian, out, maxout): the units written and what it returns
 * (their count, or -EINVAL; units written before a malformed sequence stay written, as in C).
 * Bytes past the end of `src` read as NUL.
 */
export function utf8sToUtf16s(src: Uint8Array, at: number, inlen: number, maxout: number): { units: number[]; ret: number } {
  const units: number[] = [];
  let p = at;
  let left = inlen;
  let room = maxout;
  while (left > 0 && room > 0 && (src[p] ?? 0)) {
    const s = src[p]!;
    if (s & 0x80) {
      const r = utf8ToUtf32(src, p, left);
      if (r === -1) return { units, ret: -Errno.EINVAL };
      p += r.size;
      left -= r.size;
      if (r.u >= PLANE_SIZE) {
        if (room < 2) break;
        const v = r.u - PLANE_SIZE;
        units.push(SURROGATE_PAIR | ((v >> 10) & SURROGATE_BITS), SURROGATE_PAIR | SURROGATE_LOW | (v & SURROGATE_BITS));
        room -= 2;
      } else {
        units.push(r.u);
        room--;
      }
    } else {
      units.push(s);
      p++;
      left--;
      room--;
    }
  }
  return { units, ret: units.length };
}

/** strlen(buf + at), stopping at the end of `buf` (C would read on). */
export function cStrlen(buf: Uint8Array, at: number, end = buf.length): number {
  let n = 0;
  while (at + n < end && buf[at + n] !== 0) n++;
  return n;
}

/** The C string at `at` as bytes (without its NUL). */
export function cString(buf: Uint8Array, at: number, end = buf.length): Uint8Array {
  return buf.slice(at, at + cStrlen(buf, at, end));
}

/** strcpy(buf + to, src): the bytes and a NUL, cut at the end of `buf` (C would write on). */
export function cStrcpy(buf: Uint8Array, to: number, src: Uint8Array): void {
  const n = Math.min(src.length, Math.max(0, buf.length - to));
  buf.set(src.subarray(0, n), to);
  if (to + n < buf.length) buf[to + n] = 0;
}

/** UTF-16 units (LE) written into `buf` at `at`. */
export function putUnits(buf: Uint8Array, at: number, units: readonly number[]): void {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  units.forEach((u, i) => dv.setUint16(at + 2 * i, u, true));
}

/** A JS string as UTF-8 (for facts the model takes from GuestServices). */
export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/** UTF-8 bytes back to a JS string (malformed bytes become U+FFFD), for logs and inspection. */
export function fromUtf8(b: Uint8Array): string {
  return new TextDecoder('utf-8', { fatal: false }).decode(b);
}
