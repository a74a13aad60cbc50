// The host's dynamic memory policy, in the manner of Hyper-V's: a VM has startup, minimum and
// maximum memory and a memory buffer (a percentage). Each status report gives the guest's
// committed pages; its demand is that count less the pages the host holds ballooned (hv_balloon
// reports ballooned pages as committed: post_status in hv_balloon.c says the host expects it),
// and its target is demand plus the buffer, kept between minimum and maximum. Above target plus a
// margin the host balloons the difference out; below target it gives ballooned pages back first,
// then hot adds RAM, never past the maximum. One operation runs at a time.
//
// UNVERIFIED: Hyper-V's own algorithm (how often it acts, how much at once, its margins) is not
// documented; this policy is hvkit's, with the 5–2000 % buffer range Hyper-V Manager allows.
import { DM_PAGE_SIZE } from './wire.js';
import type { DmHost, DmStatusReport } from './host.js';

/** Dynamic memory settings, in bytes (buffer in percent). */
export interface DynamicMemoryConfig {
  /** RAM at boot (the VM's memory). */
  readonly startup: number;
  readonly minimum: number;
  readonly maximum: number;
  /** Memory kept above demand, percent of demand (Hyper-V: 5 to 2000, default 20). */
  readonly buffer: number;
}

export const DM_BUFFER_MIN = 5;
export const DM_BUFFER_MAX = 2000;
export const DM_BUFFER_DEFAULT = 20;
/** Hyper-V sizes dynamic memory in 2 MiB steps. */
export const DM_SIZE_ALIGNMENT = 2 << 20;
/** Differences smaller than this (2 MiB) are left alone, so that the guest is not moved for a page. */
export const DM_MARGIN_PAGES = (2 << 20) / DM_PAGE_SIZE;

export interface DmControllerSnapshot {
  /** Pages (4 KiB) the host aims the guest at, after the latest status report. */
  readonly targetPages: number | undefined;
  readonly demandPages: number | undefined;
  /** The guest's memory as the host sees it: startup plus hot added less ballooned. */
  readonly currentPages: number;
  readonly config: DynamicMemoryConfig;
}

export class DmController {
  targetPages: number | undefined;
  demandPages: number | undefined;
  private readonly startupPages: number;
  private readonly minPages: number;
  private readonly maxPages: number;

  constructor(
    private readonly host: DmHost,
    readonly config: DynamicMemoryConfig,
  ) {
    this.startupPages = Math.floor(config.startup / DM_PAGE_SIZE);
    this.minPages = Math.floor(config.minimum / DM_PAGE_SIZE);
    this.maxPages = Math.floor(config.maximum / DM_PAGE_SIZE);
  }

  get currentPages(): number {
    return this.startupPages + this.host.hotAddedPages - this.host.balloonedPages;
  }

  snapshot(): DmControllerSnapshot {
    return { targetPages: this.targetPages, demandPages: this.demandPages, currentPages: this.currentPages, config: this.config };
  }

  onStatus(s: DmStatusReport): void {
    this.demandPages = Math.max(0, s.numCommitted - this.host.balloonedPages);
    const wanted = Math.ceil((this.demandPages * (100 + this.config.buffer)) / 100);
    this.targetPages = Math.min(this.maxPages, Math.max(this.minPages, wanted));
    this.act();
  }

  /** One step towards the target, if none is running. */
  private act(): void {
    const target = this.targetPages;
    if (target === undefined || this.host.busy) return;
    const current = this.currentPages;
    if (current > target + DM_MARGIN_PAGES) {
      this.host.start({ kind: 'balloon', pages: current - target });
      return;
    }
    if (current + DM_MARGIN_PAGES <= target || (current < target && this.host.balloonedPages > 0)) {
      const deficit = target - current;
      if (this.host.balloonedPages > 0) this.host.start({ kind: 'unballoon', pages: Math.min(deficit, this.host.balloonedPages) });
      else this.host.start({ kind: 'hot-add', pages: Math.min(deficit, this.maxPages - current) });
    }
  }
}
