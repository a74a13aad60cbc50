/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
#ifndef _ASM_HVKIT_PROCESSOR_H
#define _ASM_HVKIT_PROCESSOR_H
#include <linux/types.h>
struct thread_struct { unsigned long unused; };
#define INIT_THREAD { 0 }
#define TASK_SIZE 0xffffffffUL
#define TASK_UNMAPPED_BASE 0
#define STACK_TOP TASK_SIZE
#define STACK_TOP_MAX TASK_SIZE
/* A spin wait runs the machine: the host's side makes the progress being waited for. */
void hvkit_cpu_relax(void);
#define cpu_relax() hvkit_cpu_relax()
#define KSTK_EIP(tsk) 0
#define KSTK_ESP(tsk) 0
static inline unsigned long __get_wchan(struct task_struct *p) { return 0; }
#define current_text_addr() 0
#endif
