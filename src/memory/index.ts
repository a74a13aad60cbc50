// Guest physical memory: RAM, 4 KiB Hyper-V pages vs guest pages, PFN lists, overlay pages.
export * from './errors.js';
export * from './pages.js';
export * from './guest-memory.js';
export * from './overlay.js';
export * from './pfn-list.js';
export * from './layout.js';
