/* Compiles Linux's drivers/hv/vmbus_drv.c as it is, and gives hvkit's arch glue (arch.c) the
 * entry that hv_acpi_init() runs once ACPI has found the VMBus device (MIT, hvkit's own code;
 * the included file is Linux's, GPL-2.0, taken from the source package at build time). */
#include <drivers/hv/vmbus_drv.c>

/* What vmbus_acpi_add() would have found: the VMBus root device, parent of every channel's. */
static struct acpi_device hvkit_vmbus_root;

int hvkit_vmbus_init(void)
{
	device_initialize(&hvkit_vmbus_root.dev);
	dev_set_name(&hvkit_vmbus_root.dev, "VMBUS:00");
	hv_acpi_dev = &hvkit_vmbus_root;
	return vmbus_bus_init();
}

/* rmmod hv_vmbus: module_exit (vmbus_disconnect's UNLOAD, then the channels' devices go). */
void hvkit_vmbus_exit(void)
{
	vmbus_exit();
}
