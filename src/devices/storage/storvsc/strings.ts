// The strings Linux 6.1 prints about disks: string_get_size (lib/string_helpers.c, the
// "(1.07 GB/1.00 GiB)" of sd's capacity line), and the names drivers/scsi/constants.c gives sense
// keys, additional sense codes and operation codes in error reports.

/**
 * string_get_size(size, blk_size, units): Napier's algorithm as Linux 6.1 runs it, with its
 * rounding of the digit below the last printed one; three significant figures.
 */
export function stringGetSize(size: number, blkSize: number, units: 'si' | 'binary'): string {
  const unitsStr = units === 'si' ? ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'] : ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];
  const divisor = units === 'si' ? 1000n : 1024n;
  const rounding = [500n, 50n, 5n];
  let s = BigInt(size);
  let blk = BigInt(blkSize);
  let i = 0;
  let remainder = 0n;
  let tmp = '';
  if (blk === 0n) s = 0n;
  if (s !== 0n) {
    while (blk >> 32n) {
      blk /= divisor;
      i++;
    }
    while (s >> 32n) {
      s /= divisor;
      i++;
    }
    s *= blk;
    while (s >= divisor) {
      remainder = s % divisor;
      s /= divisor;
      i++;
    }
    let sfCap = s;
    let j = 0;
    for (; sfCap * 10n < 1000n; j++) sfCap *= 10n;
    if (units === 'binary') {
      remainder *= 1000n;
      remainder >>= 10n;
    }
    remainder += rounding[j] ?? 0n;
    if (remainder >= 1000n) {
      remainder -= 1000n;
      s += 1n;
    }
    if (j) tmp = `.${remainder.toString().padStart(3, '0')}`.slice(0, j + 1);
  }
  const unit = i >= unitsStr.length ? 'UNK' : unitsStr[i]!;
  return `${s}${tmp} ${unit}`;
}

/** snstext[] of constants.c. */
export const SENSE_KEY_NAMES: readonly string[] = [
  'No Sense',
  'Recovered Error',
  'Not Ready',
  'Medium Error',
  'Hardware Error',
  'Illegal Request',
  'Unit Attention',
  'Data Protect',
  'Blank Check',
  'Vendor Specific(9)',
  'Copy Aborted',
  'Aborted Command',
  'Equal',
  'Volume Overflow',
  'Miscompare',
  'Completed',
];

/** additional[] of constants.c, for the codes hvkit's targets report. */
const ASC_NAMES: ReadonlyMap<number, string> = new Map([
  [0x0000, 'No additional sense information'],
  [0x0c00, 'Write error'],
  [0x1100, 'Unrecovered read error'],
  [0x1a00, 'Parameter list length error'],
  [0x2000, 'Invalid command operation code'],
  [0x2100, 'Logical block address out of range'],
  [0x2400, 'Invalid field in cdb'],
  [0x2500, 'Logical unit not supported'],
  [0x2600, 'Invalid field in parameter list'],
  [0x2700, 'Write protected'],
  [0x2800, 'Not ready to ready change, medium may have changed'],
  [0x2900, 'Power on, reset, or bus device reset occurred'],
  [0x2a09, 'Capacity data has changed'],
  [0x3a00, 'Medium not present'],
  [0x3a01, 'Medium not present - tray closed'],
  [0x3a02, 'Medium not present - tray open'],
]);

/** scsi_print_sense's "Add. Sense:" text; unknown codes print as constants.c does. */
export function ascName(asc: number, ascq: number): string {
  return ASC_NAMES.get((asc << 8) | ascq) ?? `ASC=0x${asc.toString(16)} ASCQ=0x${ascq.toString(16)}`;
}

/** cdb_byte0_names[] of constants.c for the commands sd and sr send. */
const OP_NAMES: ReadonlyMap<number, string> = new Map([
  [0x00, 'Test Unit Ready'],
  [0x03, 'Request Sense'],
  [0x08, 'Read(6)'],
  [0x0a, 'Write(6)'],
  [0x12, 'Inquiry'],
  [0x1a, 'Mode Sense(6)'],
  [0x1b, 'Start/Stop Unit'],
  [0x1e, 'Prevent/Allow Medium Removal'],
  [0x25, 'Read Capacity(10)'],
  [0x28, 'Read(10)'],
  [0x2a, 'Write(10)'],
  [0x35, 'Synchronize Cache(10)'],
  [0x41, 'Write Same(10)'],
  [0x42, 'Unmap'],
  [0x43, 'Read TOC/PMA/ATIP'],
  [0x46, 'Get Configuration'],
  [0x4a, 'Get Event Status Notification'],
  [0x5a, 'Mode Sense(10)'],
  [0x88, 'Read(16)'],
  [0x8a, 'Write(16)'],
  [0x91, 'Synchronize Cache(16)'],
  [0x93, 'Write same(16)'],
  [0x9e, 'Read Capacity(16)'],
  [0xa0, 'Report luns'],
  [0xa8, 'Read(12)'],
  [0xaa, 'Write(12)'],
]);

export const opName = (op: number): string => OP_NAMES.get(op) ?? `Vendor-specific: 0x${op.toString(16)}`;

/** "%*ph": bytes in hex separated by spaces. */
export const hexBytes = (b: Uint8Array): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');
