/* hvkit: what Kbuild generates as include/generated/uapi/linux/version.h for the source
 * package's 6.1.192 (MIT, hvkit's own). The sublevel is capped at 255 as Kbuild caps it. */
#define LINUX_VERSION_CODE 393664
#define KERNEL_VERSION(a, b, c) (((a) << 16) + ((b) << 8) + ((c) > 255 ? 255 : (c)))
#define LINUX_VERSION_MAJOR 6
#define LINUX_VERSION_PATCHLEVEL 1
#define LINUX_VERSION_SUBLEVEL 192
