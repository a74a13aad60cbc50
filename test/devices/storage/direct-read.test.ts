// A disk read into a buffer in the guest's own RAM: the device fills those pages (as an O_DIRECT
// read's bio takes the user's pages), with no pages of the kernel's between and no copy out.
import { describe, expect, it, vi } from 'vitest';
import { guestMachine, memDisk, MIB, settleOn } from './harness.js';

describe("a read into the guest's own RAM", () => {
  it("lands in those pages: the same bytes, no kernel pages allocated, the pages still the caller's after", () => {
    const d = memDisk(0, 64 * MIB);
    const g = guestMachine({ disks: [d] });
    const sda = g.storage.disks[0]!;
    const mem = g.m.partition.memory;
    // 1 MiB + 4 KiB from an odd block: five commands (split at max_sectors), each into its pages.
    const data = Uint8Array.from({ length: MIB + 4096 }, (_, i) => (i * 7 + (i >> 9)) & 0xff);
    d.backend.write(333, data);
    const gpa = g.m.kernel.mm.allocContiguous(MIB + 8192);
    const into = mem.view(gpa, MIB + 8192).fill(0xee);
    const allocations = vi.spyOn(g.m.kernel.mm, 'allocPageList');
    const free = g.m.kernel.mm.freePageCount;
    const r = settleOn(g, sda.read(333, (MIB + 4096) / 512, { into }));
    expect(r?.ok && r.data).toEqual(data);
    expect(r?.ok && r.data?.buffer).toBe(mem.bytes.buffer);
    expect(r?.ok && r.data?.byteOffset).toBe(into.byteOffset);
    expect(into.subarray(MIB + 4096).every((x) => x === 0xee)).toBe(true);
    expect(allocations).not.toHaveBeenCalled();
    // No page of the buffer went back to the allocator.
    expect(g.m.kernel.mm.freePageCount).toBe(free);
    // Read again over it: the new bytes, in the same pages.
    const again = Uint8Array.from({ length: 8192 }, (_, i) => (i * 11) & 0xff);
    d.backend.write(1000, again);
    const r2 = settleOn(g, sda.read(1000, 16, { into }));
    expect(r2?.ok && r2.data).toEqual(again);
    expect(into.subarray(0, 8192)).toEqual(again);
    allocations.mockRestore();
  });

  it('a view that does not start on a page, or past the end, still reads right through kernel pages', () => {
    const d = memDisk(0, 64 * MIB);
    const g = guestMachine({ disks: [d] });
    const sda = g.storage.disks[0]!;
    const mem = g.m.partition.memory;
    const data = Uint8Array.from({ length: 16384 }, (_, i) => (i * 5) & 0xff);
    d.backend.write(64, data);
    const gpa = g.m.kernel.mm.allocContiguous(32768);
    const into = mem.view(gpa + 512, 16384);
    const allocations = vi.spyOn(g.m.kernel.mm, 'allocPageList');
    const r = settleOn(g, sda.read(64, 32, { into }));
    expect(r?.ok && r.data).toEqual(data);
    expect(allocations).toHaveBeenCalled();
    allocations.mockRestore();
    // Beyond the end of the disk: EIO before any command, the buffer as it was.
    const before = mem.view(gpa, 4096).slice();
    const beyond = settleOn(g, sda.read(sda.capacity - 4, 8, { into: mem.view(gpa, 4096) }));
    expect(beyond).toMatchObject({ ok: false, errno: 'EIO' });
    expect(mem.view(gpa, 4096)).toEqual(before);
  });
});
