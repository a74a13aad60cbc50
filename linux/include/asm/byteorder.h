/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
/* wasm is little-endian. */
#ifndef _ASM_HVKIT_BYTEORDER_H
#define _ASM_HVKIT_BYTEORDER_H
#include <linux/byteorder/little_endian.h>
#endif
