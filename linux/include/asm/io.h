/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
/* No MMU: I/O remaps are identity, as asm-generic's no-MMU ioremap is. */
#ifndef _ASM_HVKIT_IO_H
#define _ASM_HVKIT_IO_H
#include <asm-generic/io.h>
#define ioremap_cache(addr, size) ioremap((addr), (size))
#endif
