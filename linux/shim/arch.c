/* The arch glue of a 32-bit x86 guest on Hyper-V, in place of arch/x86/hyperv/hv_init.c's
 * hyperv_init() and arch/x86/kernel/cpu/mshyperv.c's ms_hyperv_init_platform() (MIT, hvkit's own
 * code, following their order): ms_hyperv from CPUID, hv_common_init, the boot CPU's
 * hv_common_cpu_init (VP index), the guest OS id, the hypercall page. Then VMBus starts the way
 * hv_acpi_init() would once ACPI found the VMBus device (units/vmbus_drv.c).
 * Also the CPU, IRQ, notifier and ACPI entry points the drivers link against, none of which has
 * anything to do on a one-CPU machine without ACPI tables. */
#include <linux/kernel.h>
#include <linux/cpumask.h>
#include <linux/cpuhotplug.h>
#include <linux/interrupt.h>
#include <linux/notifier.h>
#include <linux/kmsg_dump.h>
#include <linux/panic_notifier.h>
#include <linux/kdebug.h>
#include <linux/syscore_ops.h>
#include <linux/acpi.h>
#include <linux/ioport.h>
#include <linux/moduleparam.h>
#include <linux/random.h>
#include <linux/version.h>
#include <linux/slab.h>
#include <linux/sysctl.h>
#include <asm/mshyperv.h>
#include <asm/hyperv-tlfs.h>
#include "hvkit.h"

/* x86's vector for the Hyper-V callback (arch/x86/include/asm/irq_vectors.h). */
#define HYPERVISOR_CALLBACK_VECTOR 0xf3

struct cpumask __cpu_possible_mask = { .bits = { 1 } };
struct cpumask __cpu_online_mask = { .bits = { 1 } };
struct cpumask __cpu_present_mask = { .bits = { 1 } };
struct cpumask __cpu_active_mask = { .bits = { 1 } };

void *hv_hypercall_pg;
u64 hv_current_partition_id = ~0ull;
static bool hyperv_initialized;

extern int vmbus_irq;
extern int vmbus_interrupt;

u64 hv_get_register(unsigned int reg)
{
	return hvkit_rdmsr(reg);
}

void hv_set_register(unsigned int reg, u64 value)
{
	hvkit_wrmsr(reg, value);
}

u64 hv_do_hypercall(u64 control, void *input, void *output)
{
	if (!hv_hypercall_pg)
		return U64_MAX;
	return hvkit_hypercall(control, input ? (u32)virt_to_phys(input) : 0, output ? (u32)virt_to_phys(output) : 0);
}

u64 hv_do_fast_hypercall8(u16 code, u64 input1)
{
	if (!hv_hypercall_pg)
		return U64_MAX;
	return hvkit_fast_hypercall8((u64)code | HV_HYPERCALL_FAST_BIT, input1);
}

bool hv_is_hyperv_initialized(void)
{
	return hyperv_initialized;
}

static u32 cpuid_reg(unsigned int leaf, int reg)
{
	u32 r[4];
	hvkit_cpuid(leaf, 0, r);
	return r[reg];
}

enum { EAX, EBX, ECX, EDX };

static void init_platform(void)
{
	u32 max_functions;
	ms_hyperv.features = cpuid_reg(HYPERV_CPUID_FEATURES, EAX);
	ms_hyperv.priv_high = cpuid_reg(HYPERV_CPUID_FEATURES, EBX);
	ms_hyperv.misc_features = cpuid_reg(HYPERV_CPUID_FEATURES, EDX);
	ms_hyperv.hints = cpuid_reg(HYPERV_CPUID_ENLIGHTMENT_INFO, EAX);
	max_functions = cpuid_reg(HYPERV_CPUID_VENDOR_AND_MAX_FUNCTIONS, EAX);
	pr_info("Hyper-V: privilege flags low 0x%x, high 0x%x, hints 0x%x, misc 0x%x\n",
		ms_hyperv.features, ms_hyperv.priv_high, ms_hyperv.hints, ms_hyperv.misc_features);
	ms_hyperv.max_vp_index = cpuid_reg(HYPERV_CPUID_IMPLEMENT_LIMITS, EAX);
	ms_hyperv.max_lp_index = cpuid_reg(HYPERV_CPUID_IMPLEMENT_LIMITS, EBX);
	if (max_functions >= HYPERV_CPUID_VERSION) {
		u32 r[4];
		hvkit_cpuid(HYPERV_CPUID_VERSION, 0, r);
		pr_info("Hyper-V: Host Build %d.%d.%d.%d-%d-%d\n", r[EBX] >> 16, r[EBX] & 0xFFFF, r[EAX],
			r[EDX] & 0xFFFFFF, r[ECX], r[EDX] >> 24);
	}
}

/* hyperv_init(): the order of arch/x86/hyperv/hv_init.c, without what a one-CPU guest without
 * the VP assist page, isolation or the root partition skips. */
void hyperv_init(void)
{
	union hv_x64_msr_hypercall_contents hypercall_msr;
	if (hv_common_init())
		return;
	if (hv_common_cpu_init(0))
		goto common_free;
	hv_set_register(HV_X64_MSR_GUEST_OS_ID, hv_generate_guest_id(LINUX_VERSION_CODE));
	hv_hypercall_pg = (void *)get_zeroed_page(GFP_KERNEL);
	if (!hv_hypercall_pg)
		goto clean_guest_os_id;
	hypercall_msr.as_uint64 = hv_get_register(HV_X64_MSR_HYPERCALL);
	hypercall_msr.enable = 1;
	hypercall_msr.guest_physical_address = virt_to_phys(hv_hypercall_pg) >> PAGE_SHIFT;
	hv_set_register(HV_X64_MSR_HYPERCALL, hypercall_msr.as_uint64);
	hyperv_initialized = true;
	return;
clean_guest_os_id:
	hv_set_register(HV_X64_MSR_GUEST_OS_ID, 0);
common_free:
	hv_common_free();
}

int hvkit_vmbus_init(void);

/* The module's start: platform, hypervisor, then VMBus. Returns vmbus_bus_init()'s result. */
int hvkit_start(void)
{
	hvkit_tick();
	init_platform();
	hyperv_init();
	if (!hyperv_initialized)
		return -ENODEV;
	/* What hv_acpi_init() leaves for x86: the callback vector, no per-CPU IRQ. */
	vmbus_irq = -1;
	vmbus_interrupt = HYPERVISOR_CALLBACK_VECTOR;
	return hvkit_vmbus_init();
}

/* ---- the interrupt entry ---- */

static void (*vmbus_handler)(void);

void hv_setup_vmbus_handler(void (*handler)(void))
{
	vmbus_handler = handler;
}

void hv_remove_vmbus_handler(void)
{
	vmbus_handler = NULL;
}

/* sysvec_hyperv_callback(): the service layer calls this when the CPU takes the vector. */
void hvkit_interrupt(void)
{
	unsigned long flags = hvkit_irq_flags;
	hvkit_irq_flags = ARCH_IRQ_DISABLED;
	hvkit_tick();
	hvkit_budget_reset();
	if (vmbus_handler)
		vmbus_handler();
	hvkit_irq_flags = flags;
}

int hvkit_irqs_enabled(void)
{
	return hvkit_irq_flags == ARCH_IRQ_ENABLED;
}

/* ---- CPU hotplug: one CPU, online from the start ---- */

static int (*teardowns[8])(unsigned int cpu);
static int next_dyn_state;

int __cpuhp_setup_state(enum cpuhp_state state, const char *name, bool invoke,
			int (*startup)(unsigned int cpu), int (*teardown)(unsigned int cpu), bool multi)
{
	int ret;
	if (state == CPUHP_AP_ONLINE_DYN) {
		if (next_dyn_state >= (int)ARRAY_SIZE(teardowns))
			return -ENOSPC;
		state = CPUHP_AP_ONLINE_DYN + next_dyn_state++;
	}
	if (invoke && startup) {
		ret = startup(0);
		if (ret < 0)
			return ret;
	}
	if (state >= CPUHP_AP_ONLINE_DYN && state < CPUHP_AP_ONLINE_DYN + (int)ARRAY_SIZE(teardowns))
		teardowns[state - CPUHP_AP_ONLINE_DYN] = teardown;
	return state;
}

void __cpuhp_remove_state(enum cpuhp_state state, bool invoke)
{
	if (state >= CPUHP_AP_ONLINE_DYN && state < CPUHP_AP_ONLINE_DYN + (int)ARRAY_SIZE(teardowns)) {
		int (*teardown)(unsigned int) = teardowns[state - CPUHP_AP_ONLINE_DYN];
		teardowns[state - CPUHP_AP_ONLINE_DYN] = NULL;
		if (invoke && teardown)
			teardown(0);
	}
}

/* ---- IRQs: the SynIC's vector is the only interrupt, entered through hvkit_interrupt ---- */

int __request_percpu_irq(unsigned int irq, irq_handler_t handler, unsigned long flags, const char *devname, void __percpu *percpu_dev_id)
{
	return -ENOSYS;
}

void free_percpu_irq(unsigned int irq, void __percpu *dev)
{
}

void enable_percpu_irq(unsigned int irq, unsigned int type)
{
}

void disable_percpu_irq(unsigned int irq)
{
}

void add_interrupt_randomness(int irq)
{
}

/* ---- notifiers, crash dumps, syscore: registered and never called ---- */

struct atomic_notifier_head panic_notifier_list;
bool crash_kexec_post_notifiers;

int atomic_notifier_chain_register(struct atomic_notifier_head *nh, struct notifier_block *nb)
{
	return 0;
}

int atomic_notifier_chain_unregister(struct atomic_notifier_head *nh, struct notifier_block *nb)
{
	return 0;
}

int register_die_notifier(struct notifier_block *nb)
{
	return 0;
}

int unregister_die_notifier(struct notifier_block *nb)
{
	return 0;
}

int kmsg_dump_register(struct kmsg_dumper *dumper)
{
	return 0;
}

int kmsg_dump_unregister(struct kmsg_dumper *dumper)
{
	return 0;
}

bool kmsg_dump_get_buffer(struct kmsg_dump_iter *iter, bool syslog, char *buf, size_t size, size_t *len)
{
	return false;
}

void kmsg_dump_rewind(struct kmsg_dump_iter *iter)
{
}

void register_syscore_ops(struct syscore_ops *ops)
{
}

void unregister_syscore_ops(struct syscore_ops *ops)
{
}

void hyperv_report_panic(struct pt_regs *regs, long err, bool in_die)
{
}

/* ---- ACPI: never reached, VMBus is started without it ---- */

int acpi_bus_register_driver(struct acpi_driver *driver)
{
	return -ENODEV;
}

void acpi_bus_unregister_driver(struct acpi_driver *driver)
{
}

acpi_status acpi_walk_resources(acpi_handle device, char *name, acpi_walk_resource_callback user_function, void *context)
{
	return AE_NOT_FOUND;
}

bool acpi_dev_resource_interrupt(struct acpi_resource *ares, int index, struct resource *res)
{
	return false;
}

int hvkit_acpi_acquire_global_lock(unsigned int *lock)
{
	return 1;
}

int hvkit_acpi_release_global_lock(unsigned int *lock)
{
	return 0;
}

/* ---- resources and module parameters ---- */

struct resource iomem_resource = { .name = "PCI mem", .start = 0, .end = -1, .flags = IORESOURCE_MEM };

static struct resource region;

struct resource *__request_region(struct resource *parent, resource_size_t start, resource_size_t n, const char *name, int flags)
{
	return &region;
}

void __release_region(struct resource *parent, resource_size_t start, resource_size_t n)
{
}

static int param_set_uint_(const char *val, const struct kernel_param *kp)
{
	return -EPERM;
}

static int param_get_uint_(char *buffer, const struct kernel_param *kp)
{
	return scnprintf(buffer, PAGE_SIZE, "%u\n", *((unsigned int *)kp->arg));
}

const struct kernel_param_ops param_ops_uint = { .set = param_set_uint_, .get = param_get_uint_ };

/* ---- sysctl: tables are accepted (hv_common_init registers hyperv's) and never read ---- */

static struct ctl_table_header sysctl_header;

const int sysctl_vals[] = { 0, 1, 2, 3, 4, 100, 200, 1000, 3000, INT_MAX, 65535, -1 };

struct ctl_table_header *register_sysctl(const char *path, struct ctl_table *table)
{
	return &sysctl_header;
}

struct ctl_table_header *register_sysctl_table(struct ctl_table *table)
{
	return &sysctl_header;
}

int proc_dointvec_minmax(struct ctl_table *table, int write, void *buffer, size_t *lenp, loff_t *ppos)
{
	return -EPERM;
}

void unregister_sysctl_table(struct ctl_table_header *table)
{
}
