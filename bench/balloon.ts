// Dynamic memory: how fast the host can take pages from a guest and give them back, over the real
// protocol (DM_BALLOON_REQUEST, hv_balloon's DM_BALLOON_RESPONSEs, DM_UNBALLOON_REQUEST) in one
// thread, in pages per second counting both directions. Two guests: one whose free memory is in
// 2 MiB blocks (hv_balloon's first choice, one range per 512 pages) and one whose free memory is
// scattered (single pages, 510 ranges per 4 KiB response). Baselines measured in the same run:
// filling the same number of 4 KiB pages with a plain loop (what touching them would cost), and
// writing one dm_mem_page_range record per page into a 4 KiB buffer (the least the wire needs).
import type { DmHost } from '../src/devices/balloon/host.js';
import { Machine } from '../src/vm/machine.js';
import type { Measurement, MeasurementGroup } from './index.js';

const NAMES = [
  'baseline: fill 4 KiB pages',
  'baseline: write one page-range record per page',
  'balloon up+down, 2 MiB blocks (pages/s)',
  'balloon up+down, single pages (pages/s)',
] as const;

const PAGES = 32768; // 128 MiB a round
const ROUNDS = 5;

function machine(scatter: boolean): { m: Machine; host: DmHost } {
  const m = new Machine({ release: 'ws2022', vps: 1, memory: 1 << 30, devices: [{ type: 'balloon' }], kernel: { balloon: { pressureReportDelay: 1e9 } } });
  m.boot();
  if (scatter) {
    // Every other page of the guest held: no 2 MiB block is left, half the RAM is free.
    const mm = m.kernel.mm;
    const held: number[] = [];
    for (let g = mm.tryAllocPage(); g !== undefined; g = mm.tryAllocPage()) held.push(g);
    held.forEach((g, i) => i % 2 === 0 && mm.freePage(g));
  }
  return { m, host: m.devices[0] as DmHost };
}

/** Pages per second moved out and back, the median of ROUNDS. */
function balloonRate(scatter: boolean): number {
  const { m, host } = machine(scatter);
  const rates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    if (!host.start({ kind: 'balloon', pages: PAGES }) || !m.waitUntil(() => !host.busy, 60e9)) throw new Error('balloon bench: balloon did not finish');
    const moved = host.balloonedPages;
    if (moved !== PAGES) throw new Error(`balloon bench: ${moved} of ${PAGES} pages ballooned`);
    if (!host.start({ kind: 'unballoon', pages: PAGES }) || !m.waitUntil(() => !host.busy, 60e9)) throw new Error('balloon bench: unballoon did not finish');
    rates.push((2 * PAGES) / ((performance.now() - t0) / 1000));
  }
  return median(rates);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Filling PAGES 4 KiB pages, pages per second. */
function fillRate(): number {
  const buf = new Uint8Array(PAGES * 4096);
  const rates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    for (let p = 0; p < PAGES; p++) buf.fill(r + 1, p * 4096, (p + 1) * 4096);
    rates.push(PAGES / ((performance.now() - t0) / 1000));
  }
  if (buf[4096 * (PAGES - 1)] !== ROUNDS) throw new Error('fill baseline: not filled');
  return median(rates);
}

/** One 8-byte range record per page into a 4 KiB buffer, wrapping, pages per second. */
function recordRate(): number {
  const buf = new DataView(new ArrayBuffer(4096));
  const rates: number[] = [];
  let sink = 0n;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    for (let p = 0; p < PAGES * 4; p++) buf.setBigUint64(16 + (p % 510) * 8, BigInt(p) | (1n << 40n), true);
    sink ^= buf.getBigUint64(16, true);
    rates.push((PAGES * 4) / ((performance.now() - t0) / 1000));
  }
  if (sink < 0n) throw new Error('unreachable');
  return median(rates);
}

export function balloonGroup(): MeasurementGroup {
  return {
    names: NAMES,
    run: () => {
      const fill = fillRate();
      const record = recordRate();
      const blocks = balloonRate(false);
      const single = balloonRate(true);
      const out: Measurement[] = [
        { name: NAMES[0], value: fill, unit: 'pages/s' },
        { name: NAMES[1], value: record, unit: 'pages/s' },
        { name: NAMES[2], value: blocks, unit: 'pages/s', ratio: blocks / fill, baseline: NAMES[0] },
        { name: NAMES[3], value: single, unit: 'pages/s', ratio: single / record, baseline: NAMES[1] },
      ];
      return out;
    },
  };
}
