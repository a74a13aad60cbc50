// Hyper-V time in the guest (drivers/clocksource/hyperv_timer.c, include/clocksource/
// hyperv_timer.h): the reference TSC page clocksource with its MSR fallback, and stimer0 as the
// per-CPU clockevent device, in direct or message mode (tlfs.md §6.2, §6.5).
import { HV_HYP_PAGE_SIZE } from '../../memory/pages.js';
import { SintIndex } from '../../tlfs/synic.js';
import { StimerConfig, TscPage, ReferenceTscMsr } from '../../tlfs/time.js';
import type { CpuOps } from '../arch.js';
import type { GuestMemory } from '../../memory/guest-memory.js';

/** Linux x86 vector for direct-mode stimer0 (arch/x86/include/asm/irq_vectors.h). */
export const HYPERV_STIMER0_VECTOR = 0xed;
/** HZ of the modelled kernel (Debian's CONFIG_HZ=250); one tick is 4 ms. */
export const HZ = 250;
export const TICK_NS = 1_000_000_000 / HZ;

const SEQ = TscPage.offsets.tsc_sequence;
/** The scale's and the offset's first u32 words in the page. */
const SCALE_WORD = TscPage.offsets.tsc_scale / 4;
const OFFSET_WORD = TscPage.offsets.tsc_offset / 4;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * hv_read_tsc_page_tsc(): a consistent read of the TSC page, retrying while the sequence moves;
 * undefined when the page says it is invalid (sequence 0).
 */
export function readTscPage(mem: GuestMemory, pageGpa: number, ops: CpuOps, words: Uint32Array = new Uint32Array(mem.buffer, pageGpa + SEQ, 1)): bigint | undefined {
  for (let tries = 0; tries < 1000; tries++) {
    const seq = Atomics.load(words, 0);
    if (seq === 0) return undefined;
    const scale = mem.read64(pageGpa + TscPage.offsets.tsc_scale);
    const offset = BigInt.asIntN(64, mem.read64(pageGpa + TscPage.offsets.tsc_offset));
    const tsc = ops.counter();
    if (Atomics.load(words, 0) === seq) return BigInt.asUintN(64, ((tsc * scale) >> 64n) + offset);
  }
  return undefined;
}

/** The Hyper-V reference clock of a kernel: the TSC page when valid, the MSR otherwise. */
export class ReferenceClock {
  /** GPA of the TSC page, once hv_init_tsc_clocksource() enabled it. */
  tscPage: number | undefined;
  private sequence: { page: number; words: Uint32Array; header: Uint32Array | undefined } | undefined;

  constructor(private readonly mem: GuestMemory) {}

  /** hv_read_reference_counter(): 100 ns ticks. */
  read(ops: CpuOps): bigint {
    if (this.tscPage !== undefined) {
      // The page's words, a view made once per page: the clock is read on every I/O.
      if (this.sequence?.page !== this.tscPage) this.sequence = { page: this.tscPage, words: new Uint32Array(this.mem.buffer, this.tscPage + SEQ, 1), header: this.headerWords(this.tscPage) };
      const t = this.readPage(this.tscPage, ops, this.sequence.words, this.sequence.header);
      if (t !== undefined) return t;
    }
    return ops.getReg('TIME_REF_COUNT');
  }

  /**
   * readTscPage, reading the same words in the same order, with its last answer kept: the same
   * sequence, scale, offset and TSC give the same time, without the 128-bit product made again
   * (several requests are issued at one virtual instant).
   */
  private readPage(page: number, ops: CpuOps, seqWord: Uint32Array, header: Uint32Array | undefined): bigint | undefined {
    const mem = this.mem;
    if (!header) return readTscPage(mem, page, ops, seqWord);
    for (let tries = 0; tries < 1000; tries++) {
      const seq = Atomics.load(seqWord, 0);
      if (seq === 0) return undefined;
      const scaleLo = header[SCALE_WORD]!;
      const scaleHi = header[SCALE_WORD + 1]!;
      const offsetLo = header[OFFSET_WORD]!;
      const offsetHi = header[OFFSET_WORD + 1]!;
      const tsc = ops.counter();
      if (Atomics.load(seqWord, 0) !== seq) continue;
      const last = this.last;
      if (last && last.scaleLo === scaleLo && last.scaleHi === scaleHi && last.offsetLo === offsetLo && last.offsetHi === offsetHi && last.tsc === tsc) return last.time;
      const scale = (BigInt(scaleHi) << 32n) | BigInt(scaleLo);
      const offset = BigInt.asIntN(64, (BigInt(offsetHi) << 32n) | BigInt(offsetLo));
      const time = BigInt.asUintN(64, ((tsc * scale) >> 64n) + offset);
      this.last = { scaleLo, scaleHi, offsetLo, offsetHi, tsc, time };
      return time;
    }
    return undefined;
  }
  /**
   * The TSC page's scale and offset as little-endian u32 words read in place (a typed array's
   * element loads; GuestMemory.read32 checks the range on each); undefined when the page is not
   * within RAM or the host is big-endian, where readPage reads as readTscPage does.
   */
  private headerWords(page: number): Uint32Array | undefined {
    const words = (TscPage.offsets.tsc_offset + 8) / 4;
    if (!LITTLE_ENDIAN || !this.mem.contains(page, TscPage.size)) return undefined;
    return new Uint32Array(this.mem.buffer, page, words);
  }
  private last: { scaleLo: number; scaleHi: number; offsetLo: number; offsetHi: number; tsc: bigint; time: bigint } | undefined;

  /** hv_init_tsc_clocksource(): point REFERENCE_TSC at a fresh page, keeping the reserved bits. */
  enableTscPage(ops: CpuOps, pageGpa: number): void {
    const msr = ops.getReg('REFERENCE_TSC');
    const v = ReferenceTscMsr.with(ReferenceTscMsr.with(msr, 'enable', 1), 'pfn', pageGpa / HV_HYP_PAGE_SIZE);
    ops.setReg('REFERENCE_TSC', v);
    this.tscPage = pageGpa;
  }
}

export type StimerMode = 'direct' | 'message';

/**
 * The stimer0 clockevent of one CPU ("Hyper-V clockevent", rating 1000, 10 MHz). The model
 * drives it as the tick does in one-shot mode: each expiry programs the next tick.
 */
export class Stimer0Clockevent {
  ticks = 0;

  constructor(
    private readonly ops: CpuOps,
    private readonly clock: ReferenceClock,
    readonly mode: StimerMode,
  ) {}

  /** hv_ce_set_oneshot(): enable | auto_enable, and direct mode + vector or SINT2. */
  setOneshot(): void {
    const config =
      this.mode === 'direct'
        ? StimerConfig.encode({ enable: 1, auto_enable: 1, direct_mode: 1, apic_vector: HYPERV_STIMER0_VECTOR })
        : StimerConfig.encode({ enable: 1, auto_enable: 1, sintx: SintIndex.VMBUS });
    this.ops.setReg('STIMER0_CONFIG', config);
  }

  /** hv_ce_set_next_event(): COUNT = reference time now + delta (auto_enable arms the timer). */
  setNextEvent(deltaTicks: bigint): void {
    this.ops.setReg('STIMER0_COUNT', this.clock.read(this.ops) + deltaTicks);
  }

  /** hv_ce_shutdown(): COUNT = 0, then CONFIG = 0. */
  shutdown(): void {
    this.ops.setReg('STIMER0_COUNT', 0n);
    this.ops.setReg('STIMER0_CONFIG', 0n);
  }

  /** The tick: account it and program the next one. */
  onExpiry(): void {
    this.ticks++;
    this.setNextEvent(BigInt(TICK_NS / 100));
  }
}
