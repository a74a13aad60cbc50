// The partition reference counter and the virtual TSC it is derived from (tlfs.md §6.1, §6.2).
// Every reading, whether through TIME_REF_COUNT or through the reference TSC page, is
// high64(tsc × scale) + offset of the same virtual TSC, so the two always agree (§8.4).
import type { VirtualClock } from './clock.js';

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** ⌊n / d⌋ of safe non-negative integers, exact (a float quotient can round up to the next integer). */
function floorDiv(n: number, d: number): number {
  let q = Math.floor(n / d);
  const r = n - q * d;
  if (r < 0) q--;
  else if (r >= d) q++;
  return q;
}

export class ReferenceTime {
  readonly tscHz: number;
  /** 64.64 fixed-point ticks per TSC cycle: ⌊2^64 · 10^7 / tscHz⌋ (OpenVMM hv1_emulator hv.rs). */
  readonly scale: bigint;
  /** Signed offset in 100 ns ticks; 0 makes reference time 0 at partition creation. */
  readonly offset: bigint = 0n;
  /**
   * tscHz / 10^9 in lowest terms, when their product is a safe integer: then the TSC is computed
   * with numbers, exactly (a trap reads it often; BigInt arithmetic costs far more).
   */
  private readonly hzNum: number;
  private readonly hzDen: number;

  constructor(
    private readonly clock: VirtualClock,
    tscHz: number,
  ) {
    if (!Number.isSafeInteger(tscHz) || tscHz <= 10_000_000) throw new RangeError(`TSC frequency ${tscHz} Hz must exceed 10 MHz`);
    this.tscHz = tscHz;
    this.scale = (10_000_000n << 64n) / BigInt(tscHz);
    const g = gcd(tscHz, 1_000_000_000);
    const num = tscHz / g;
    const den = 1_000_000_000 / g;
    const exact = num * den <= Number.MAX_SAFE_INTEGER;
    this.hzNum = exact ? num : 0;
    this.hzDen = exact ? den : 0;
  }

  /** The virtual TSC (or arm64 virtual counter) at `ns`: ⌊ns · tscHz / 10^9⌋. */
  tscAt(ns: number): bigint {
    const num = this.hzNum;
    const den = this.hzDen;
    if (num !== 0 && Number.isSafeInteger(ns) && ns >= 0) {
      // ns = q·den + r, so ns·num/den = q·num + r·num/den, each part exact.
      const q = floorDiv(ns, den);
      const tsc = q * num + floorDiv((ns - q * den) * num, den);
      if (tsc <= Number.MAX_SAFE_INTEGER) return BigInt(tsc);
    }
    return (BigInt(ns) * BigInt(this.tscHz)) / 1_000_000_000n;
  }

  tsc(): bigint {
    // The last answer, while virtual time has not moved: a guest reads the TSC several times
    // at one instant (a clock read per I/O request), and each BigInt made costs more than the read.
    const ns = this.clock.nowNs;
    if (ns === this.lastTscNs) return this.lastTsc;
    const tsc = this.tscAt(ns);
    this.lastTscNs = ns;
    this.lastTsc = tsc;
    return tsc;
  }
  private lastTscNs = -1;
  private lastTsc = 0n;

  /** Reference time for a TSC value, exactly as the guest computes it from the TSC page. */
  ticksAtTsc(tsc: bigint): bigint {
    return BigInt.asUintN(64, ((tsc * this.scale) >> 64n) + this.offset);
  }

  ticksAt(ns: number): bigint {
    return this.ticksAtTsc(this.tscAt(ns));
  }

  /** The reference counter now, in 100 ns ticks. */
  now(): bigint {
    return this.ticksAt(this.clock.nowNs);
  }

  /** The earliest virtual nanosecond at which the counter reads at least `ticks`; Infinity if never. */
  nsForTicks(ticks: bigint): number {
    if (ticks <= this.ticksAt(this.clock.nowNs)) return this.clock.nowNs;
    const guess = ticks * 100n;
    if (guess > BigInt(Number.MAX_SAFE_INTEGER) - 1000n) return Infinity;
    // The counter trails ns/100 by at most a tick or two of rounding: search a small window.
    let lo = Math.max(this.clock.nowNs, Number(guess) - 200);
    let hi = Number(guess) + 400;
    while (this.ticksAt(hi) < ticks) hi += 400;
    while (lo < hi) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (this.ticksAt(mid) >= ticks) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

