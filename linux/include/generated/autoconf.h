/* hvkit's kernel configuration for the wasm32 build of Linux's VMBus code (MIT, hvkit's own).
 * A uniprocessor, no-MMU kernel: only what the drivers/hv files need to compile as they are. */
#ifndef HVKIT_AUTOCONF_H
#define HVKIT_AUTOCONF_H
#define CONFIG_HYPERV 1
/* BUG() and WARN() as every distribution builds them: a BUG panics (the service layer stops the
 * guest), a WARN prints its report (lib.c's warn_slowpath_fmt) and goes on. */
#define CONFIG_BUG 1
#define CONFIG_HYPERV_UTILS 1
#define CONFIG_HZ 100
#define CONFIG_ACPI 1
#define CONFIG_SYSCTL 1
#define CONFIG_NR_CPUS 1
#define CONFIG_TINY_RCU 1
#define CONFIG_TINY_SRCU 1
#define CONFIG_SLOB 1
#define CONFIG_GENERIC_ATOMIC64 1
#define CONFIG_FLATMEM 1
#define CONFIG_PAGE_OFFSET 0
#define CONFIG_BASE_SMALL 0
#define CONFIG_LOG_BUF_SHIFT 14
#define CONFIG_PRINTK 1
#define CONFIG_NODES_SHIFT 0
#define CONFIG_DEFAULT_MESSAGE_LOGLEVEL 4
#define CONFIG_CONSOLE_LOGLEVEL_DEFAULT 7
#define CONFIG_CONSOLE_LOGLEVEL_QUIET 4
#define CONFIG_MESSAGE_LOGLEVEL_DEFAULT 4
#define CONFIG_FRAME_WARN 0
#define CONFIG_ARCH_MMAP_RND_BITS 0
#endif
