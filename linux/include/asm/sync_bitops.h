/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
/* The bit operations on memory the host also writes (the SynIC event flags, the channel
 * interrupt page): wasm atomics, as x86's lock-prefixed instructions are. */
#ifndef _ASM_HVKIT_SYNC_BITOPS_H
#define _ASM_HVKIT_SYNC_BITOPS_H
#define HVKIT_SYNC_WORD(nr, addr) (((volatile unsigned long *)(addr)) + ((nr) / BITS_PER_LONG))
#define HVKIT_SYNC_MASK(nr) (1UL << ((nr) % BITS_PER_LONG))
static inline void sync_set_bit(long nr, volatile unsigned long *addr)
{
	__atomic_fetch_or(HVKIT_SYNC_WORD(nr, addr), HVKIT_SYNC_MASK(nr), __ATOMIC_SEQ_CST);
}
static inline void sync_clear_bit(long nr, volatile unsigned long *addr)
{
	__atomic_fetch_and(HVKIT_SYNC_WORD(nr, addr), ~HVKIT_SYNC_MASK(nr), __ATOMIC_SEQ_CST);
}
static inline void sync_change_bit(long nr, volatile unsigned long *addr)
{
	__atomic_fetch_xor(HVKIT_SYNC_WORD(nr, addr), HVKIT_SYNC_MASK(nr), __ATOMIC_SEQ_CST);
}
static inline int sync_test_and_set_bit(long nr, volatile unsigned long *addr)
{
	return (__atomic_fetch_or(HVKIT_SYNC_WORD(nr, addr), HVKIT_SYNC_MASK(nr), __ATOMIC_SEQ_CST) & HVKIT_SYNC_MASK(nr)) != 0;
}
static inline int sync_test_and_clear_bit(long nr, volatile unsigned long *addr)
{
	return (__atomic_fetch_and(HVKIT_SYNC_WORD(nr, addr), ~HVKIT_SYNC_MASK(nr), __ATOMIC_SEQ_CST) & HVKIT_SYNC_MASK(nr)) != 0;
}
static inline int sync_test_and_change_bit(long nr, volatile unsigned long *addr)
{
	return (__atomic_fetch_xor(HVKIT_SYNC_WORD(nr, addr), HVKIT_SYNC_MASK(nr), __ATOMIC_SEQ_CST) & HVKIT_SYNC_MASK(nr)) != 0;
}
#define sync_test_bit(nr, addr) test_bit(nr, addr)
#endif
