// Parsers for command-line values; each failure names the option and what it expected.
import { InvalidArgumentError } from 'commander';
import { RELEASE_IDS, type ReleaseId } from '../hypervisor/release.js';
import type { Arch } from '../hypervisor/features.js';
import type { GuestPageSize } from '../memory/pages.js';
import { parseByteSize } from '../vm/config.js';

export function parseRelease(v: string): ReleaseId {
  if (!(RELEASE_IDS as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${RELEASE_IDS.join(', ')}`);
  return v as ReleaseId;
}

export function parseArch(v: string): Arch {
  if (v !== 'x64' && v !== 'x86' && v !== 'arm64') throw new InvalidArgumentError('expected x64, x86 or arm64');
  return v;
}

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
  const n = parseSize(v);
  if (n !== 4096 && n !== 16384 && n !== 65536) throw new InvalidArgumentError('expected 4k, 16k or 64k');
  return n;
}

/** "booted", "shutdown", or a number of seconds of virtual time to run after boot. */
export function parseUntil(v: string): 'booted' | 'shutdown' | number {
  if (v === 'booted' || v === 'shutdown') return v;
  const s = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !Number.isFinite(s)) throw new InvalidArgumentError('expected "booted", "shutdown" or a number of seconds');
  return s;
}
