/* hvkit: the constants Kbuild computes from kernel/bounds.c, fixed for this configuration
 * (MIT, hvkit's own). Nothing here reaches the wire; they size page->flags fields. */
#ifndef __LINUX_BOUNDS_H__
#define __LINUX_BOUNDS_H__
#define NR_PAGEFLAGS 22
#define MAX_NR_ZONES 2
#define NR_CPUS_BITS 0
#define SPINLOCK_SIZE 0
#define LRU_GEN_WIDTH 0
#define __LRU_REFS_WIDTH 0
#endif
