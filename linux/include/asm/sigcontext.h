/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
#ifndef _ASM_HVKIT_SIGCONTEXT_H
#define _ASM_HVKIT_SIGCONTEXT_H
struct sigcontext { unsigned long unused; };
#endif
