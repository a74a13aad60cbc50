/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
/* No user space: user copies are plain copies. */
#ifndef _ASM_HVKIT_UACCESS_H
#define _ASM_HVKIT_UACCESS_H
#include <linux/string.h>
static inline unsigned long raw_copy_from_user(void *to, const void __user *from, unsigned long n)
{
	memcpy(to, (const void __force *)from, n);
	return 0;
}
static inline unsigned long raw_copy_to_user(void __user *to, const void *from, unsigned long n)
{
	memcpy((void __force *)to, from, n);
	return 0;
}
#define INLINE_COPY_FROM_USER
#define INLINE_COPY_TO_USER
#include <asm-generic/uaccess.h>
#endif
