/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
/* Barriers are wasm sequentially consistent fences: the ring's other side may run in another
 * thread over the same shared memory. */
#ifndef _ASM_HVKIT_BARRIER_H
#define _ASM_HVKIT_BARRIER_H
#define mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() mb()
#define wmb() mb()
#include <asm-generic/barrier.h>
#endif
