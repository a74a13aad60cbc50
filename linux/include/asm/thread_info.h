/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
/* One thread of control: the interrupt entry and the work runner share it (issue 17). */
#ifndef _ASM_HVKIT_THREAD_INFO_H
#define _ASM_HVKIT_THREAD_INFO_H
#include <asm/page.h>
#define THREAD_SIZE (2 * PAGE_SIZE)
#ifndef __ASSEMBLY__
struct task_struct;
struct thread_info {
	struct task_struct *task;
	unsigned long flags;
	int preempt_count;
	unsigned int cpu;
};
extern struct thread_info hvkit_thread_info;
static inline struct thread_info *current_thread_info(void) { return &hvkit_thread_info; }
#endif
#define TIF_SIGPENDING 1
#define TIF_NEED_RESCHED 2
#define TIF_NOTIFY_RESUME 3
#define TIF_MEMDIE 4
#define TIF_NOTIFY_SIGNAL 5
#define TIF_POLLING_NRFLAG 6
#define _TIF_SIGPENDING (1 << TIF_SIGPENDING)
#define _TIF_NEED_RESCHED (1 << TIF_NEED_RESCHED)
#define _TIF_NOTIFY_RESUME (1 << TIF_NOTIFY_RESUME)
#define _TIF_NOTIFY_SIGNAL (1 << TIF_NOTIFY_SIGNAL)
#define _TIF_POLLING_NRFLAG (1 << TIF_POLLING_NRFLAG)
#endif
