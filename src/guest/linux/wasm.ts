// The part of the WebAssembly JS API the Linux guest uses, typed here: the project's TypeScript
// lib (es2022) has no WebAssembly declarations. Node 20 and browsers both provide it.

export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}

/** A compiled module (WebAssembly.Module). */
export type WasmModule = object;

export interface WasmGlobal {
  readonly value: unknown;
}

interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => { readonly exports: Record<string, unknown> };
  Memory: new (desc: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
}

export const wasm: WasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** 64 KiB, the wasm page. */
export const WASM_PAGE_BYTES = 65536;

/** A shared memory of `bytes` that never grows: RAM a partition can adopt. */
export function sharedMemory(bytes: number): WasmMemory & { readonly buffer: SharedArrayBuffer } {
  const pages = bytes / WASM_PAGE_BYTES;
  if (!Number.isInteger(pages) || pages <= 0) throw new RangeError(`${bytes} bytes is not a whole number of 64 KiB wasm pages`);
  return new wasm.Memory({ initial: pages, maximum: pages, shared: true }) as WasmMemory & { readonly buffer: SharedArrayBuffer };
}
