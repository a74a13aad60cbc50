/* hvkit: the jiffies conversion constants Kbuild computes with kernel/time/timeconst.bc, for
 * HZ=100 (MIT, hvkit's own). HZ divides 1000 and 1000000, so jiffies.h takes the exact
 * division paths; the ratios are all it needs. */
#ifndef __KERNEL_TIMECONST_H
#define __KERNEL_TIMECONST_H
#if HZ != 100
#error "hvkit's timeconst.h is for HZ=100"
#endif
#define HZ_TO_MSEC_NUM 10
#define HZ_TO_MSEC_DEN 1
#define MSEC_TO_HZ_NUM 1
#define MSEC_TO_HZ_DEN 10
#define HZ_TO_USEC_NUM 10000
#define HZ_TO_USEC_DEN 1
#define USEC_TO_HZ_NUM 1
#define USEC_TO_HZ_DEN 10000
#define HZ_TO_NSEC_NUM 10000000
#define HZ_TO_NSEC_DEN 1
#endif
