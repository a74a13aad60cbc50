// The guest's receive and send buffers as the host maps them: each is a GPADL of one range, cut
// into fixed-size sections. The host reads and writes them only through these, and only while
// the GPADL still exists on the channel, so nothing outside what the guest shared is touched.
import type { GuestMemory } from '../../../memory/guest-memory.js';
import { HV_HYP_PAGE_SIZE } from '../../../memory/pages.js';
import type { PfnList } from '../../../memory/pfn-list.js';
import type { Gpadl } from '../../../vmbus/gpadl.js';
import type { HostChannel } from '../../../vmbus/server/channel.js';
import { hostRead, hostWrite } from '../../../vmbus/server/gpa-map.js';
import { setInto, subarrayOf } from '../../../memory/typed-arrays.js';

export class SharedBuffer {
  readonly size: number;
  /** The GPA of byte 0 when the buffer is one run of pages: then reads and writes are plain copies. */
  private readonly base: number | undefined;
  private readonly list: PfnList;

  constructor(
    private readonly mem: GuestMemory,
    readonly gpadl: Gpadl,
    readonly handle: number,
  ) {
    this.list = gpadl.pfnList(0);
    this.size = this.list.length;
    this.base = this.list.contiguous && this.list.pfns.length > 0 ? this.list.pfns[0]! * 4096 + this.list.offset : undefined;
  }

  /** Whether the guest still shares the buffer on `ch` (it has not torn the GPADL down). */
  live(ch: HostChannel): boolean {
    // The server marks a GPADL it drops; a kept one is the one the handle names on its channel.
    return this.gpadl.live && this.gpadl.relid === ch.relid && this.gpadl.handle === this.handle;
  }

  /** Copies `src` into the buffer at `offset` (the caller checked the range). */
  write(offset: number, src: Uint8Array): void {
    if (this.direct(offset, src.length)) setInto(this.mem.bytes, src, this.base! + offset);
    else this.pieces(offset, src.length, (gpa, at, n) => hostWrite(this.mem, gpa, src.subarray(at, at + n)));
  }

  /**
   * The GPA of [offset, offset + len) when it is plain RAM in one run (the caller may then write
   * it in place, the way OpenVMM fills a receive section), else -1: go through write().
   */
  gpaOf(offset: number, len: number): number {
    return this.direct(offset, len) ? this.base! + offset : -1;
  }

  /** A live view of [offset, offset + len) when contiguous RAM, else a copy. */
  read(offset: number, len: number): Uint8Array {
    if (this.direct(offset, len)) return subarrayOf(this.mem.bytes, this.base! + offset, this.base! + offset + len);
    const out = new Uint8Array(len);
    this.pieces(offset, len, (gpa, at, n) => hostRead(this.mem, gpa, out.subarray(at, at + n)));
    return out;
  }

  /** True when [offset, offset + len) is plain RAM in one run: no overlay page hides any of it. */
  private direct(offset: number, len: number): boolean {
    if (this.base === undefined) return false;
    // Per frame this is asked for every section: whether no overlay covers any page of the whole
    // buffer is kept until an overlay is mapped or unmapped (the table's generation moves).
    const overlays = this.mem.overlays;
    if (this.cleanAt !== overlays.generation) {
      this.clean = !overlays.overlaps(this.base, this.size);
      this.cleanAt = overlays.generation;
    }
    return this.clean || !overlays.overlaps(this.base + offset, len);
  }
  private clean = false;
  private cleanAt = -1;

  /** Physically contiguous pieces of [offset, offset + len), reached through the GPA map (gpa-map.ts). */
  private pieces(offset: number, len: number, f: (gpa: number, at: number, n: number) => void): void {
    for (let at = 0; at < len; ) {
      const gpa = this.list.gpaAt(offset + at);
      const n = Math.min(len - at, HV_HYP_PAGE_SIZE - (gpa % HV_HYP_PAGE_SIZE));
      f(gpa, at, n);
      at += n;
    }
  }

  /** A copy of [offset, offset + len). */
  copy(offset: number, len: number): Uint8Array {
    return this.base !== undefined ? this.mem.bytes.slice(this.base + offset, this.base + offset + len) : this.read(offset, len);
  }
}

/**
 * A free list of receive sections: which are lent to the guest (in a transfer-page packet not
 * yet completed) and which the host may fill. Taking and returning are O(1).
 */
export class SectionPool {
  private readonly free: Int32Array;
  private top: number;
  private readonly lent: Uint8Array;

  constructor(readonly count: number) {
    this.free = new Int32Array(count);
    for (let i = 0; i < count; i++) this.free[i] = count - 1 - i;
    this.top = count;
    this.lent = new Uint8Array(count);
  }

  get available(): number {
    return this.top;
  }

  get outstanding(): number {
    return this.count - this.top;
  }

  /** A free section, or -1. */
  take(): number {
    if (this.top === 0) return -1;
    const s = this.free[--this.top]!;
    this.lent[s] = 1;
    return s;
  }

  /** Returns section `s`; false if it was not lent (a completion the guest made up). */
  give(s: number): boolean {
    if (!Number.isInteger(s) || s < 0 || s >= this.count || !this.lent[s]) return false;
    this.lent[s] = 0;
    this.free[this.top++] = s;
    return true;
  }
}
