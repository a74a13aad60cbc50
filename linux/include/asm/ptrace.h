/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
/* No user mode and no register file worth saving: the drivers only pass pt_regs around. */
#ifndef _ASM_HVKIT_PTRACE_H
#define _ASM_HVKIT_PTRACE_H
struct pt_regs { unsigned long ip; unsigned long sp; };
#define user_mode(regs) 0
#define instruction_pointer(regs) ((regs)->ip)
#define profile_pc(regs) instruction_pointer(regs)
#define user_stack_pointer(regs) ((regs)->sp)
#define current_pt_regs() ((struct pt_regs *)0)
#endif
