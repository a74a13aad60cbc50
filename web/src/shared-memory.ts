// Guest RAM is a SharedArrayBuffer, which a page has only when it is cross-origin isolated (COOP
// and COEP). Without isolation the VM can still run in the page's own thread over a plain
// ArrayBuffer (Atomics work on unshared memory too); only the worker mode needs memory shared.
export const isolated: boolean = globalThis.crossOriginIsolated === true && typeof SharedArrayBuffer === 'function';

if (typeof SharedArrayBuffer === 'undefined') {
  (globalThis as { SharedArrayBuffer?: unknown }).SharedArrayBuffer = ArrayBuffer;
}
