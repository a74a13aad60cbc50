// Comparing large byte arrays: vitest's deep equality walks them element by element, slowly.

/** The first index where `a` and `b` differ (a length difference counts at the shorter's end), or -1. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}
