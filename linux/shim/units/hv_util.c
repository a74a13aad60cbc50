/* Compiles Linux's drivers/hv/hv_util.c as it is, and gives the service layer the entry that
 * module_init() would run (MIT, hvkit's own code; the included file is Linux's, GPL-2.0, taken
 * from the source package at build time). */
#include <drivers/hv/hv_util.c>

int hvkit_hv_utils_init(void)
{
	return init_hyperv_utils();
}

/* rmmod hv_utils: module_exit unregisters the driver, whose remove closes each IC's channel. */
void hvkit_hv_utils_exit(void)
{
	exit_hyperv_utils();
}
