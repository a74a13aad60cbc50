// Parsers for command-line values; each failure names the option and what it expected.
import { InvalidArgumentError } from 'commander';
import type { GuestPageSize } from '../memory/pages.js';
import { MAX_LUN, parseByteSize } from '../vm/config.js';
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

/** What `--dynamic-memory min=SIZE,max=SIZE,buffer=PERCENT` says, in the VM file's form. */
export interface DynamicMemoryOption {
  min?: number;
  max?: number;
  buffer?: number;
}

/** "min=512M,max=2G,buffer=20": each key at most once; the VM file's checks follow (config.ts). */
export function parseDynamicMemoryOption(v: string): DynamicMemoryOption {
  const out: DynamicMemoryOption = {};
  for (const part of v.split(',')) {
    const [key, value, ...rest] = part.split('=');
    if (value === undefined || rest.length > 0 || !key) throw new InvalidArgumentError(`expected KEY=VALUE, not '${part}'; keys: min, max, buffer`);
    if (key !== 'min' && key !== 'max' && key !== 'buffer') throw new InvalidArgumentError(`unknown key '${key}'; keys: min, max, buffer`);
    if (out[key] !== undefined) throw new InvalidArgumentError(`${key} given twice`);
    if (key === 'buffer') {
      if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`buffer=${value} is not a whole percentage`);
      out.buffer = Number(value);
    } else {
      const size = parseByteSize(value);
      if (!size.ok) throw new InvalidArgumentError(`${key}=${value}: ${size.error}`);
      out[key] = size.bytes;
    }
  }
  return out;
}

/** What `--disk PATH[,ro][,lun=N][,dvd]` says. */
export interface DiskOption {
  path: string;
  lun?: number;
  readOnly: boolean;
  dvd: boolean;
}

/** "disk.vhdx,ro,lun=3", "ubuntu.iso,dvd": a disk for the VM's first SCSI controller. */
export function parseDiskOption(v: string, previous: DiskOption[] = []): DiskOption[] {
  const [path, ...opts] = v.split(',');
  if (!path) throw new InvalidArgumentError('expected PATH[,ro][,lun=N][,dvd]');
  const d: DiskOption = { path, readOnly: false, dvd: false };
  for (const o of opts) {
    if (o === 'ro') d.readOnly = true;
    else if (o === 'dvd') d.dvd = true;
    else if (/^lun=\d+$/.test(o)) {
      const lun = Number(o.slice(4));
      if (lun > MAX_LUN) throw new InvalidArgumentError(`lun=${lun} is more than ${MAX_LUN} (a controller has LUNs 0 to ${MAX_LUN})`);
      d.lun = lun;
    } else throw new InvalidArgumentError(`unknown disk option '${o}'; options: ro, lun=N, dvd`);
  }
  return [...previous, d];
}
