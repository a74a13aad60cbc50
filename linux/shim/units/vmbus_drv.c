/* Compiles Linux's drivers/hv/vmbus_drv.c as it is, and gives hvkit's arch glue (arch.c) the
 * entry that hv_acpi_init() calls once ACPI has found the VMBus device (MIT, hvkit's own code;
 * the included file is Linux's, GPL-2.0, taken from the source package at build time). */
#include <drivers/hv/vmbus_drv.c>

int hvkit_vmbus_init(void)
{
	return vmbus_bus_init();
}
