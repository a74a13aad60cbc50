// The hypervisor: partitions, VPs, CPUID, synthetic registers, hypercalls, SynIC, timers.
export * from './release.js';
export * from './features.js';
export * from './clock.js';
export * from './reference-time.js';
export * from './trace.js';
export * from './apic.js';
export * from './synic.js';
export * from './stimer.js';
export * from './ports.js';
export * from './vp.js';
export * from './partition.js';
export * from './registers.js';
export * from './cpu.js';
export type { Arm64Cpu, Arm64Registers, Fault, GuestCpu, MsrRead, X64Cpu, X64Registers, X86_32Cpu, X86Cpu, X86Registers } from './cpu-interface.js';
export { hypercalls, HYPERCALLS } from './hypercall/index.js';
export type { HypercallDef, HypercallRequest, CallContext } from './hypercall/index.js';
