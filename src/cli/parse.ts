// Parsers for command-line values; each failure names the option and what it expected.
import { InvalidArgumentError } from 'commander';
import type { GuestPageSize } from '../memory/pages.js';
import { parseByteSize } from '../vm/config.js';
import { STEP_LIMIT_S } from '../vm/script.js';

export function parsePositiveInt(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

/** "256M", "1G", "65536": a size in bytes (the syntax a VM configuration file's memory uses too). */
export function parseSize(v: string): number {
  const size = parseByteSize(v);
  if (!size.ok) throw new InvalidArgumentError(size.error);
  return size.bytes;
}

export function parsePageSize(v: string): GuestPageSize {
  const size = parseByteSize(v);
  const n = size.ok ? size.bytes : 0;
  if (n !== 4096 && n !== 16384 && n !== 65536) throw new InvalidArgumentError('expected 4k, 16k or 64k');
  return n;
}

/**
 * "booted", "shutdown", or a number of seconds of virtual time to run after boot, bounded as a
 * script's `wait` is: an hour of virtual time is already minutes of wall time with devices.
 */
export function parseUntil(v: string): 'booted' | 'shutdown' | number {
  if (v === 'booted' || v === 'shutdown') return v;
  const s = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !Number.isFinite(s)) throw new InvalidArgumentError('expected "booted", "shutdown" or a number of seconds');
  if (s > STEP_LIMIT_S) throw new InvalidArgumentError(`${v} seconds is more than the ${STEP_LIMIT_S}-second limit (as a script's wait)`);
  return s;
}
