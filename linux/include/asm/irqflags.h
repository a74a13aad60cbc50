/* hvkit fake arch for the wasm32 build of Linux drivers/hv (MIT, hvkit's own). */
/* The interrupt flag is a word of the shim's: the scheduler delivers SynIC interrupts (which
 * enter vmbus_isr) only while it is set, as a CPU's IF decides. */
#ifndef _ASM_HVKIT_IRQFLAGS_H
#define _ASM_HVKIT_IRQFLAGS_H
extern unsigned long hvkit_irq_flags;
#define ARCH_IRQ_ENABLED 1UL
#define ARCH_IRQ_DISABLED 0UL
static inline unsigned long arch_local_save_flags(void) { return hvkit_irq_flags; }
static inline void arch_local_irq_restore(unsigned long flags) { hvkit_irq_flags = flags; }
static inline void arch_local_irq_disable(void) { hvkit_irq_flags = ARCH_IRQ_DISABLED; }
static inline void arch_local_irq_enable(void) { hvkit_irq_flags = ARCH_IRQ_ENABLED; }
static inline unsigned long arch_local_irq_save(void)
{
	unsigned long f = hvkit_irq_flags;
	hvkit_irq_flags = ARCH_IRQ_DISABLED;
	return f;
}
static inline int arch_irqs_disabled_flags(unsigned long flags) { return flags == ARCH_IRQ_DISABLED; }
static inline int arch_irqs_disabled(void) { return arch_irqs_disabled_flags(hvkit_irq_flags); }
#endif
