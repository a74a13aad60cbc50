/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
/* No ELF loading: the types module.h names. */
#ifndef _ASM_HVKIT_ELF_H
#define _ASM_HVKIT_ELF_H
#define ELF_CLASS ELFCLASS32
#define ELF_DATA ELFDATA2LSB
#define ELF_ARCH EM_NONE
#define ELF_EXEC_PAGESIZE 4096
#define ELF_NGREG 1
typedef unsigned long elf_greg_t;
typedef elf_greg_t elf_gregset_t[ELF_NGREG];
typedef struct { unsigned long unused; } elf_fpregset_t;
#define elf_check_arch(x) 0
#define ELF_PLATFORM (NULL)
#define ELF_HWCAP (0)
#define ELF_ET_DYN_BASE 0
#endif
