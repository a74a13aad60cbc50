// One ring's state as its control page holds it, the fields Linux's hv_ringbuffer_get_debuginfo
// reports (drivers/hv/ring_buffer.c): what the guest's sysfs shows, and what either end can read
// of a ring it maps, at any moment, without touching the ring.
import { Ctl, type RingMemory } from './memory.js';

/** One ring's debug info, as hv_ringbuffer_get_debuginfo reads it from the control page. */
export interface RingSnapshot {
  /** interrupt_mask of the ring (out_intr_mask / in_intr_mask). */
  interruptMask: number;
  readIndex: number;
  writeIndex: number;
  /** bytes_avail_toread / bytes_avail_towrite, Linux's arithmetic. */
  bytesAvailToRead: number;
  bytesAvailToWrite: number;
  /** pending_send_sz. */
  pendingSendSize: number;
  /** Data area size (ring size minus the 4 KiB control page). */
  dataSize: number;
}

/** hv_ringbuffer_get_debuginfo: the control page's view of one ring, read without checks. */
export function ringSnapshot(mem: RingMemory): RingSnapshot {
  const w = Atomics.load(mem.control, Ctl.WRITE_INDEX);
  const r = Atomics.load(mem.control, Ctl.READ_INDEX);
  const size = mem.dataSize;
  // hv_get_bytes_to_read / hv_get_bytes_to_write, on whatever the indices hold.
  const toRead = w >= r ? w - r : size - r + w;
  return {
    interruptMask: Atomics.load(mem.control, Ctl.INTERRUPT_MASK),
    readIndex: r,
    writeIndex: w,
    bytesAvailToRead: toRead,
    bytesAvailToWrite: size - toRead,
    pendingSendSize: Atomics.load(mem.control, Ctl.PENDING_SEND_SZ),
    dataSize: size,
  };
}

