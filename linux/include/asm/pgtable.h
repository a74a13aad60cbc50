/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
/* No MMU: one level of identity mapping, as no-MMU ports declare it. */
#ifndef _ASM_HVKIT_PGTABLE_H
#define _ASM_HVKIT_PGTABLE_H
#include <asm-generic/pgtable-nopud.h>
#include <asm/page.h>
#define PAGE_NONE __pgprot(0)
#define PAGE_SHARED __pgprot(0)
#define PAGE_COPY __pgprot(0)
#define PAGE_READONLY __pgprot(0)
#define PAGE_KERNEL __pgprot(0)
#define PAGE_KERNEL_EXEC __pgprot(0)
#define pgprot_noncached(prot) (prot)
#define pgprot_writecombine(prot) (prot)
#define pgprot_decrypted(prot) (prot)
#define pgprot_encrypted(prot) (prot)
#define swapper_pg_dir ((pgd_t *)0)
#define ZERO_PAGE(vaddr) (virt_to_page(0))
#define pgd_present(pgd) 1
#define pgd_none(pgd) 0
#define pgd_bad(pgd) 0
#define pmd_present(pmd) 1
#define pmd_none(pmd) 0
#define pmd_bad(pmd) 0
#define pte_none(pte) 0
#define pte_present(pte) 1
#define kern_addr_valid(addr) 1
#define pmd_page(pmd) ((struct page *)0)
#define __swp_type(x) 0
#define __swp_offset(x) 0
#define __swp_entry(typ, off) ((swp_entry_t){ 0 })
#define __pte_to_swp_entry(pte) ((swp_entry_t){ pte_val(pte) })
#define __swp_entry_to_pte(x) ((pte_t){ (x).val })
#define VMALLOC_START 0UL
#define VMALLOC_END 0xffffffffUL
#endif
