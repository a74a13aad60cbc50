/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
/* ACPICA's per-arch hooks. No ACPI tables are read: the service layer starts VMBus directly. */
#ifndef _ASM_HVKIT_ACENV_H
#define _ASM_HVKIT_ACENV_H
#define ACPI_FLUSH_CPU_CACHE() do { } while (0)
int hvkit_acpi_acquire_global_lock(unsigned int *lock);
int hvkit_acpi_release_global_lock(unsigned int *lock);
#define ACPI_ACQUIRE_GLOBAL_LOCK(facs, acq) ((acq) = hvkit_acpi_acquire_global_lock(&(facs)->global_lock))
#define ACPI_RELEASE_GLOBAL_LOCK(facs, acq) ((acq) = hvkit_acpi_release_global_lock(&(facs)->global_lock))
#endif
