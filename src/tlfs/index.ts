// The hypervisor interface as data: constants and wire layouts of the TLFS (tlfs.md).
export * from './struct.js';
export * from './status.js';
export * from './hypercall-codes.js';
export * from './control.js';
export * from './msr.js';
export * from './cpuid.js';
export * from './registers.js';
export * from './synic.js';
export * from './time.js';
export * from './pages.js';
export * from './hypercall-inputs.js';
export * from './layouts.js';
