// The memory of one ring (vmbus.md §6.1, §7.1): a 4 KiB control page shared by both ends, then
// the data area. The guest sees its rings as contiguous memory; the host maps them through a
// GPADL's page list, which may not be contiguous. Both are behind this one interface.
import type { GuestMemory } from '../../memory/guest-memory.js';
import { HV_HYP_PAGE_SIZE } from '../../memory/pages.js';
import { PfnList } from '../../memory/pfn-list.js';
import { RingControl, RING_CONTROL_SIZE } from '../wire/packets.js';

/** Word indices of the control page fields, from the declaration. */
export const Ctl = {
  WRITE_INDEX: RingControl.offsets.write_index / 4,
  READ_INDEX: RingControl.offsets.read_index / 4,
  INTERRUPT_MASK: RingControl.offsets.interrupt_mask / 4,
  PENDING_SEND_SZ: RingControl.offsets.pending_send_sz / 4,
  FEATURE_BITS: RingControl.offsets.feature_bits / 4,
} as const;

export interface RingMemory {
  /** The control page as 32-bit words: every access goes through Atomics. */
  readonly control: Uint32Array;
  /** Size of the data area, bytes (the ring size minus the control page). */
  readonly dataSize: number;
  /** Copies out of the data area at `offset`, wrapping at the end. */
  read(offset: number, dst: Uint8Array): void;
  /** Copies into the data area at `offset`, wrapping at the end. */
  write(offset: number, src: Uint8Array): void;
  /**
   * The data area as one array, when it is one run of memory: the ring's fast path reads and
   * writes it directly. Undefined for a page list that is not contiguous.
   */
  readonly window?: Uint8Array;
}

/**
 * A ring whose data area is one window of memory: copies split only at the wrap point. `control`
 * is the 4 KiB control page as words; `data` the data area (a multiple of 8 bytes).
 */
export function windowRing(control: Uint32Array, data: Uint8Array): RingMemory {
  const dataSize = data.length;
  return {
    control,
    dataSize,
    window: data,
    read(offset, dst) {
      const first = Math.min(dst.length, dataSize - offset);
      dst.set(data.subarray(offset, offset + first));
      if (first < dst.length) dst.set(data.subarray(0, dst.length - first), first);
    },
    write(offset, src) {
      const first = Math.min(src.length, dataSize - offset);
      data.set(src.subarray(0, first), offset);
      if (first < src.length) data.set(src.subarray(first), 0);
    },
  };
}

/**
 * A ring in contiguous guest memory: control page at `gpa`, data after the header. The header is
 * one guest page (`headerSize`, 4, 16 or 64 KiB) of which only the first 4 KiB is shared.
 */
export function contiguousRing(mem: GuestMemory, gpa: number, size: number, headerSize = RING_CONTROL_SIZE): RingMemory {
  if (gpa % HV_HYP_PAGE_SIZE !== 0 || size % HV_HYP_PAGE_SIZE !== 0 || headerSize % HV_HYP_PAGE_SIZE !== 0 || size < headerSize + HV_HYP_PAGE_SIZE) {
    throw new RangeError(`a ring needs whole 4 KiB pages, a header and data: 0x${gpa.toString(16)}+0x${size.toString(16)}`);
  }
  mem.check(gpa, size);
  return windowRing(new Uint32Array(mem.buffer, gpa, RING_CONTROL_SIZE / 4), mem.bytes.subarray(gpa + headerSize, gpa + size));
}

/**
 * A ring over a list of 4 KiB frames (the host's view through a GPADL): the first frame is the
 * control page, the others the data area, in order. Contiguous runs are copied in one go.
 */
export function pagedRing(mem: GuestMemory, pfns: readonly number[]): RingMemory {
  if (pfns.length < 2) throw new RangeError('a ring needs a control page and at least one data page');
  const controlGpa = pfns[0]! * HV_HYP_PAGE_SIZE;
  mem.check(controlGpa, HV_HYP_PAGE_SIZE);
  const dataPages = pfns.slice(1);
  for (const p of dataPages) mem.check(p * HV_HYP_PAGE_SIZE, HV_HYP_PAGE_SIZE);
  const list = new PfnList(dataPages);
  const control = new Uint32Array(mem.buffer, controlGpa, RING_CONTROL_SIZE / 4);
  if (list.contiguous) {
    // One run: a single window, as cheap as a contiguous ring.
    const start = dataPages[0]! * HV_HYP_PAGE_SIZE;
    return windowRing(control, mem.bytes.subarray(start, start + list.length));
  }
  const dataSize = list.length;
  return {
    control,
    dataSize,
    read(offset, dst) {
      const first = Math.min(dst.length, dataSize - offset);
      list.gather(mem, offset, dst.subarray(0, first));
      if (first < dst.length) list.gather(mem, 0, dst.subarray(first));
    },
    write(offset, src) {
      const first = Math.min(src.length, dataSize - offset);
      list.scatter(mem, offset, src.subarray(0, first));
      if (first < src.length) list.scatter(mem, 0, src.subarray(first));
    },
  };
}
