import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GuestMemory, OverlayPage } from '../../src/memory/index.js';
import { fuzz } from '../fuzz/fuzz.js';

describe('overlay pages (tlfs.md 2.4)', () => {
  it('while mapped the guest sees the overlay; once unmapped, its own page again', () => {
    const m = new GuestMemory({ size: 4 * 4096 });
    m.fill(0x1000, 4096, 0xaa);
    const page = new OverlayPage('test');
    page.bytes.fill(0x55);
    m.overlays.map(page, 1);
    expect(m.read8(0x1000)).toBe(0x55);
    expect(m.read8(0x1fff)).toBe(0x55);
    // The hypervisor writes the overlay; the guest reads it at the GPA.
    page.bytes[10] = 0x77;
    expect(m.read8(0x100a)).toBe(0x77);
    // A guest write lands in the overlay and stays with it.
    m.write8(0x1001, 0x99);
    m.overlays.unmap(page);
    expect(m.read8(0x1000)).toBe(0xaa);
    expect(m.read8(0x100a)).toBe(0xaa);
    expect(page.bytes[1]).toBe(0x99);
    expect(page.bytes[10]).toBe(0x77);
    expect(m.overlays.size).toBe(0);
  });

  it('stacks: a second overlay hides the first until it goes', () => {
    const m = new GuestMemory({ size: 2 * 4096 });
    const a = new OverlayPage('a');
    const b = new OverlayPage('b');
    a.bytes.fill(1);
    b.bytes.fill(2);
    m.overlays.map(a, 0);
    m.overlays.map(b, 0);
    expect(m.read8(0)).toBe(2);
    a.bytes[0] = 9; // hidden: the guest does not see it
    expect(m.read8(0)).toBe(2);
    m.overlays.unmap(b);
    expect(m.read8(0)).toBe(9);
    m.overlays.unmap(a);
    expect(m.read8(0)).toBe(0);
  });

  it('moves with its contents when remapped elsewhere', () => {
    const m = new GuestMemory({ size: 3 * 4096 });
    const p = new OverlayPage('p');
    m.overlays.map(p, 0);
    m.write8(5, 42);
    m.overlays.map(p, 2);
    expect(m.read8(5)).toBe(0);
    expect(m.read8(2 * 4096 + 5)).toBe(42);
    expect(() => m.overlays.map(p, 3)).toThrow(/outside guest RAM/);
  });

  it('matches a reference model under any sequence of maps, unmaps and writes', () => {
    const pages = 3;
    const op = fc.oneof(
      fc.record({ k: fc.constant('map' as const), p: fc.nat(2), gpn: fc.nat(pages - 1) }),
      fc.record({ k: fc.constant('unmap' as const), p: fc.nat(2) }),
      fc.record({ k: fc.constant('guest' as const), gpa: fc.nat(pages * 4096 - 1), v: fc.nat(255) }),
      fc.record({ k: fc.constant('hv' as const), p: fc.nat(2), off: fc.nat(4095), v: fc.nat(255) }),
    );
    fuzz(
      'overlay.model',
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const m = new GuestMemory({ size: pages * 4096 });
        const ov = [0, 1, 2].map((i) => new OverlayPage(`o${i}`));
        // Reference: RAM pages, overlay contents, and a stack per GPN.
        const ram = Array.from({ length: pages }, () => new Uint8Array(4096));
        const content = ov.map(() => new Uint8Array(4096));
        const stacks: number[][] = Array.from({ length: pages }, () => []);
        const where = (p: number) => stacks.findIndex((s) => s.includes(p));
        const visible = (gpn: number) => {
          const s = stacks[gpn]!;
          return s.length ? content[s[s.length - 1]!]! : ram[gpn]!;
        };
        for (const o of ops) {
          if (o.k === 'map') {
            const at = where(o.p);
            if (at >= 0 && at !== o.gpn) stacks[at]!.splice(stacks[at]!.indexOf(o.p), 1);
            if (at !== o.gpn) stacks[o.gpn]!.push(o.p);
            m.overlays.map(ov[o.p]!, o.gpn);
          } else if (o.k === 'unmap') {
            const at = where(o.p);
            if (at >= 0) stacks[at]!.splice(stacks[at]!.indexOf(o.p), 1);
            m.overlays.unmap(ov[o.p]!);
          } else if (o.k === 'guest') {
            visible(Math.floor(o.gpa / 4096))[o.gpa % 4096] = o.v;
            m.write8(o.gpa, o.v);
          } else {
            content[o.p]![o.off] = o.v;
            ov[o.p]!.bytes[o.off] = o.v;
          }
        }
        const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;
        for (let g = 0; g < pages; g++) expect(same(m.read(g * 4096, 4096), visible(g)), `GPN ${g}`).toBe(true);
        for (let p = 0; p < 3; p++) expect(same(ov[p]!.bytes, content[p]!), `overlay ${p}`).toBe(true);
      }),
      300,
    );
  });
});
