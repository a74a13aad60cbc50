// BeatWatch (threaded/protocol.ts): how one thread of a threaded machine judges from its peer's
// beat whether the peer is on a core, and so whether polling for it is worth it. Times are given,
// in milliseconds: nothing here reads a clock.
import { describe, expect, it } from 'vitest';
import { BeatWatch } from '../../src/vm/threaded/protocol.js';

const SILENT = 0.05;
const PROBE = 0.02;

describe('BeatWatch', () => {
  it('a peer whose beat moves between close looks runs; silent for the silent time, it does not', () => {
    const w = new BeatWatch(SILENT, PROBE, 0, 0);
    let beat = 0;
    let t = 0;
    for (; t < 1; t += 0.005) expect(w.runs(++beat, t)).toBe(true);
    // The beat stops: looks go on, close together, and the peer runs until SILENT has passed.
    const stopped = t - 0.005;
    for (; t < stopped + SILENT; t += 0.005) expect(w.runs(beat, t)).toBe(true);
    expect(w.runs(beat, stopped + SILENT + 0.001)).toBe(false);
    // It moves again: running at once.
    expect(w.runs(beat + 1, stopped + SILENT + 0.005)).toBe(true);
  });

  it('a move found after a gap in looking gives the peer the probe time only; no move across a gap, none', () => {
    const w = new BeatWatch(SILENT, PROBE, 0, 0);
    expect(w.runs(1, 0.005)).toBe(true);
    // This side was away 0.2 ms (busy, or off its core): the beat moved meanwhile.
    expect(w.runs(2, 0.205)).toBe(true);
    expect(w.runs(2, 0.205 + PROBE - 0.001)).toBe(true);
    expect(w.runs(2, 0.205 + PROBE + 0.001)).toBe(false);
    // Away again, and the beat did not move: not running.
    expect(w.runs(2, 0.5)).toBe(false);
  });

  it('after a sleep, the moves the peer made while this side slept are not counted', () => {
    const w = new BeatWatch(SILENT, PROBE, 0, 0);
    expect(w.runs(1, 0.005)).toBe(true);
    // Slept 1 ms; the peer beat 100 times meanwhile and then stopped (it shares the core).
    w.woke(101, 1.005);
    expect(w.runs(101, 1.1)).toBe(false);
    // A peer that runs on after the wake shows it by moving.
    w.woke(101, 2);
    expect(w.runs(102, 2.004)).toBe(true);
  });

  it('work of the peer seen another way (a trap answered, a packet read) counts as a move', () => {
    const w = new BeatWatch(SILENT, PROBE, 0, 0);
    expect(w.runs(0, 1)).toBe(false);
    w.seen(1.01);
    expect(w.runs(0, 1.02)).toBe(true);
    expect(w.runs(0, 1.01 + SILENT + 0.001)).toBe(false);
  });
});
