/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
/* The Hyper-V arch glue of a 32-bit x86 guest whose register accesses and hypercalls are wasm
 * imports that hvkit's service layer turns into RDMSR/WRMSR and a CALL of the hypercall page
 * (src/guest/linux). Declarations follow arch/x86/include/asm/mshyperv.h's names. */
#ifndef _ASM_HVKIT_MSHYPERV_H
#define _ASM_HVKIT_MSHYPERV_H
#include <linux/types.h>
#include <asm/hyperv-tlfs.h>

/* Imports: rdmsr and wrmsr of a synthetic MSR (hv_get_register/hv_set_register on x86). */
u64 hv_get_register(unsigned int reg);
void hv_set_register(unsigned int reg, u64 value);

/* The guest's own TSC page and the interrupt entry it sets up in place of x86's IDT vector. */
#define hv_get_raw_timer() ((u64)0)
extern void *hv_hypercall_pg;
extern u64 hv_current_partition_id;
void hyperv_init(void);
static inline struct hv_vp_assist_page *hv_get_vp_assist_page(unsigned int cpu) { return NULL; }
static inline int hv_set_mem_host_visibility(unsigned long addr, int numpages, bool visible) { return -1; }
static inline void hv_ghcb_msr_write(u64 msr, u64 value) {}
static inline void hv_ghcb_msr_read(u64 msr, u64 *value) {}
static inline void hv_apic_init(void) {}

#include <asm-generic/mshyperv.h>
#endif
