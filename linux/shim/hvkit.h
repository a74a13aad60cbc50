/* hvkit's kernel shim for Linux's drivers/hv on wasm32 (MIT, hvkit's own code).
 *
 * The imports below are all the module asks of its host: hvkit's guest service layer
 * (src/guest/linux) answers them with the partition's x86-32 CPU interface (RDMSR, WRMSR,
 * CPUID, a CALL of the hypercall page), hvkit's virtual clock and an allocator over the wasm
 * memory, which is the guest's RAM (GPA = wasm address). */
#ifndef HVKIT_SHIM_H
#define HVKIT_SHIM_H
#include <linux/types.h>

#define HVKIT_IMPORT(name) __attribute__((import_module("hvkit"), import_name(#name)))

/* A finished kernel log line (its KERN_ level prefix still on it). */
HVKIT_IMPORT(log) void hvkit_log(const char *text, unsigned int len);
/* BUG(), panic(): the service layer stops the guest with the message. */
HVKIT_IMPORT(panic) void hvkit_panic(const char *text, unsigned int len);
/* The traps. */
HVKIT_IMPORT(rdmsr) u64 hvkit_rdmsr(unsigned int msr);
HVKIT_IMPORT(wrmsr) void hvkit_wrmsr(unsigned int msr, u64 value);
HVKIT_IMPORT(cpuid) void hvkit_cpuid(unsigned int leaf, unsigned int subleaf, u32 *out4);
HVKIT_IMPORT(hypercall) u64 hvkit_hypercall(u64 control, unsigned int input_gpa, unsigned int output_gpa);
HVKIT_IMPORT(fast_hypercall8) u64 hvkit_fast_hypercall8(u64 control, u64 input);
/* Waiting: the machine runs (host, timers, this module's interrupts and work) meanwhile. */
/* Until *word is nonzero or timeout_ns passes (negative: no timeout); returns whether it is. */
HVKIT_IMPORT(wait_nonzero) int hvkit_wait_nonzero(volatile unsigned int *word, s64 timeout_ns);
HVKIT_IMPORT(sleep_ns) void hvkit_sleep_ns(u64 ns);
HVKIT_IMPORT(relax) void hvkit_relax(void);
HVKIT_IMPORT(now_ns) u64 hvkit_now_ns(void);
/* Look at this module again (hvkit_run_deferred) once the clock reaches ns: a timer is due. */
HVKIT_IMPORT(wake_at_ns) void hvkit_wake_at_ns(u64 ns);
/* RAM: byte ranges of the wasm memory, aligned as asked; 0 when none is left. */
HVKIT_IMPORT(alloc) void *hvkit_alloc(unsigned long size, unsigned long align);
HVKIT_IMPORT(free) void hvkit_free(const void *p);
/* The kernel's view of a bus event the service layer reports (probe, remove). */
HVKIT_IMPORT(event) void hvkit_event(const char *text, unsigned int len);

/* A kernel wait queue was woken: a user-space process (a daemon polling a misc device) may have
 * something to do. The service layer runs user space once the kernel has returned. */
HVKIT_IMPORT(wake_user) void hvkit_wake_user(void);

/* Shared between the shim's files. */
int hvkit_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int hvkit_run_deferred(void);
void hvkit_tick(void);
void hvkit_budget_reset(void);
#endif
