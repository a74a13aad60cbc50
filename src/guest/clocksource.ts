// The clocksource core's arithmetic (kernel/time/clocksource.c): the mult/shift pair of a
// counter and the limits printed when it registers, "<name>: mask: 0x.. max_cycles: 0x..,
// max_idle_ns: .. ns". Written from the algorithm so any frequency prints what Linux would.

const NSEC_PER_SEC = 1_000_000_000n;
const U64_MAX = (1n << 64n) - 1n;

/** clocks_calc_mult_shift(): the largest shift whose mult keeps `maxsec` seconds in 64 bits. */
export function calcMultShift(from: bigint, to: bigint, maxsec: bigint): { mult: bigint; shift: number } {
  let tmp = (maxsec * from) >> 32n;
  let sftacc = 32;
  while (tmp) {
    tmp >>= 1n;
    sftacc--;
  }
  let sft = 32;
  for (; sft > 0; sft--) {
    tmp = (to << BigInt(sft)) + from / 2n;
    tmp /= from;
    if (tmp >> BigInt(sftacc) === 0n) break;
  }
  return { mult: tmp, shift: sft };
}

export interface ClocksourceParams {
  mult: bigint;
  shift: number;
  maxadj: bigint;
  maxCycles: bigint;
  maxIdleNs: bigint;
}

/** __clocksource_update_freq_scale() and clocksource_update_max_deferment() for a counter at `hz`. */
export function clocksourceParams(hz: number, mask: bigint): ClocksourceParams {
  const freq = BigInt(hz);
  let sec = mask / freq;
  if (sec === 0n) sec = 1n;
  else if (sec > 600n && mask > 0xffffffffn) sec = 600n;
  let { mult, shift } = calcMultShift(freq, NSEC_PER_SEC, sec);
  // clocksource_max_adjustment(): 11% of mult; shrink mult until mult ± maxadj cannot overflow.
  let maxadj = (mult * 11n) / 100n;
  while (mult + maxadj > 0xffffffffn || mult - maxadj < 0n) {
    mult >>= 1n;
    shift--;
    maxadj = (mult * 11n) / 100n;
  }
  // clocks_calc_max_nsecs()
  let maxCycles = U64_MAX / (mult + maxadj);
  if (maxCycles > mask) maxCycles = mask;
  const maxNsecs = (maxCycles * (mult - maxadj)) >> BigInt(shift);
  return { mult, shift, maxadj, maxCycles, maxIdleNs: maxNsecs >> 1n };
}

/** The line __clocksource_register_scale() prints. */
export function registrationLine(name: string, hz: number, mask: bigint): string {
  const p = clocksourceParams(hz, mask);
  return `clocksource: ${name}: mask: 0x${mask.toString(16)} max_cycles: 0x${p.maxCycles.toString(16)}, max_idle_ns: ${p.maxIdleNs} ns`;
}
