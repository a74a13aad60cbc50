// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320: GPT headers and entries, UEFI 2.x 5.3.2)
// and CRC-32C (Castagnoli, reflected 0x82F63B78: every VHDX checksum, MS-VHDX 2.2.2). Both with
// the usual all-ones initial value and final inversion.

function table(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
}

const CRC32_TABLE = table(0xedb88320);
const CRC32C_TABLE = table(0x82f63b78);

function run(t: Uint32Array, data: Uint8Array, crc: number): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32 of `data`, continuing from `crc` (0 to start). */
export const crc32 = (data: Uint8Array, crc = 0): number => run(CRC32_TABLE, data, crc);

/** CRC-32C of `data`, continuing from `crc` (0 to start). */
export const crc32c = (data: Uint8Array, crc = 0): number => run(CRC32C_TABLE, data, crc);
