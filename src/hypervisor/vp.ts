// A virtual processor: its VP index and APIC id, interrupt controller, SynIC, synthetic timers
// and VP assist page. The guest reaches it only through its CPU port (cpu.ts).
import { OverlayPage } from '../memory/overlay.js';
import { gpnFieldToGpa } from '../memory/pages.js';
import { HV_SYNIC_STIMER_COUNT } from '../tlfs/synic.js';
import { VpAssistMsr } from '../tlfs/pages.js';
import { InterruptController } from './apic.js';
import type { Partition } from './partition.js';
import { SyntheticTimer } from './stimer.js';
import { Synic, type WriteFault } from './synic.js';

const VP_ASSIST_RESERVED = VpAssistMsr.byName.reserved.mask;

export class Vp {
  readonly apic = new InterruptController();
  readonly synic: Synic;
  readonly stimers: readonly SyntheticTimer[];
  vpAssist = 0n;
  readonly vpAssistPage: OverlayPage;
  /** Last value written to HV_X64_MSR_ICR (the delivery-status bit always reads 0). */
  icr = 0n;
  /** Reads of HV_X64_MSR_GUEST_IDLE since reset. */
  idleRequests = 0;

  constructor(
    readonly partition: Partition,
    /** The hypervisor's VP index (0..N-1). */
    readonly index: number,
    /** The local APIC id (equal to the index unless the configuration permutes them). */
    readonly apicId: number,
  ) {
    this.synic = new Synic(this);
    this.stimers = Array.from({ length: HV_SYNIC_STIMER_COUNT }, (_, i) => new SyntheticTimer(this, i));
    this.vpAssistPage = new OverlayPage(`VP assist vp${index}`);
    this.apic.onEoi = (v) => this.synic.onEoi(v);
    this.apic.isAutoEoi = (v) => this.synic.autoEoi(v);
  }

  writeVpAssist(v: bigint): WriteFault {
    if (v & VP_ASSIST_RESERVED) return 'VP_ASSIST_PAGE reserved bits';
    const mem = this.partition.memory;
    if (v & 1n) {
      const gpa = gpnFieldToGpa(v);
      if (!mem.contains(gpa, 4096)) return `VP assist page GPA 0x${gpa.toString(16)} outside RAM`;
      mem.overlays.map(this.vpAssistPage, gpa / 4096);
      // KVM zeroes only apic_assist on enable; the model's page starts from zero once.
      if (!(this.vpAssist & 1n)) this.vpAssistPage.clear();
    } else {
      mem.overlays.unmap(this.vpAssistPage);
    }
    this.vpAssist = v;
    return undefined;
  }

  reset(): void {
    for (const t of this.stimers) t.reset();
    this.synic.reset();
    this.partition.memory.overlays.unmap(this.vpAssistPage);
    this.vpAssistPage.clear();
    this.vpAssist = 0n;
    this.apic.reset();
    this.icr = 0n;
    this.idleRequests = 0;
  }
}
