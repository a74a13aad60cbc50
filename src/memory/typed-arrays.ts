// TypedArray methods called as known functions, for the per-packet and per-request paths. In
// Node 20's V8, `bytes.subarray(...)`, `bytes.set(...)` and `bytes.fill(...)` in optimized code
// look the method up with a generic property load (a LoadIC call) every time; a method read once
// and called with .call() is a direct call of the builtin. Same results, same errors.
const subarrayMethod = Uint8Array.prototype.subarray;
const setMethod = Uint8Array.prototype.set;
const sliceMethod = Uint8Array.prototype.slice;

/** `bytes.subarray(begin, end)`. */
export function subarrayOf<T extends Uint8Array>(bytes: T, begin: number, end: number): T {
  return subarrayMethod.call(bytes, begin, end) as T;
}

/** `dst.set(src, at)`. */
export function setInto(dst: Uint8Array, src: ArrayLike<number>, at: number): void {
  setMethod.call(dst, src, at);
}

/** `bytes.slice(begin, end)`: a copy. */
export function sliceOf(bytes: Uint8Array, begin: number, end: number): Uint8Array {
  return sliceMethod.call(bytes, begin, end);
}

/** The bytes of `parts`, one after another, in a new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
