// Per-second rates of a channel's counters (packets, signals, interrupts), sampled at a fixed
// wall-clock interval and kept for a sparkline: a bounded window per channel.
export const RATE_SAMPLES = 60;

export interface Counters {
  packets: number;
  signals: number;
  interrupts: number;
}

export class RateHistory {
  private readonly last = new Map<number, { at: number; c: Counters }>();
  /** Samples taken, of all channels. */
  samples = 0;
  readonly series = new Map<number, { packets: number[]; signals: number[]; interrupts: number[] }>();

  /** Records the counters of channel `relid` at wall time `atMs`. */
  sample(relid: number, atMs: number, c: Counters): void {
    this.samples++;
    const prev = this.last.get(relid);
    this.last.set(relid, { at: atMs, c: { ...c } });
    if (!prev || atMs <= prev.at) return;
    const s = this.series.get(relid) ?? { packets: [], signals: [], interrupts: [] };
    this.series.set(relid, s);
    const per = 1000 / (atMs - prev.at);
    for (const k of ['packets', 'signals', 'interrupts'] as const) {
      s[k].push(Math.max(0, (c[k] - prev.c[k]) * per));
      if (s[k].length > RATE_SAMPLES) s[k].shift();
    }
  }
}
