/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
#ifndef _ASM_HVKIT_ACPI_H
#define _ASM_HVKIT_ACPI_H
#define acpi_disabled 0
#define acpi_strict 0
#define acpi_pci_disabled 1
#define acpi_noirq 1
static inline void disable_acpi(void) { }
static inline bool acpi_has_cpu_in_madt(void) { return false; }
static inline void arch_fix_phys_package_id(int num, u32 slot) { }
#define ACPI_TABLE_UPGRADE_MAX_PHYS 0
#endif
