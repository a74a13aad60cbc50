/* Memory: the page array, kmalloc and pages over hvkit's allocator, and the ring buffer's
 * double mapping (MIT, hvkit's own code).
 *
 * wasm has no MMU. hv_ringbuffer_init (drivers/hv/ring_buffer.c) maps a ring's data pages twice
 * in a row with vmap so that a packet crossing the ring's end is contiguous. Here vmap returns
 * the one real mapping and records the ring's data area; memcpy and memmove then split any copy
 * that starts inside a recorded data area and runs past its end, continuing at its start: what
 * the second mapping would have shown. */
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/gfp.h>
#include <linux/vmalloc.h>
#include <linux/percpu.h>
#include <linux/io.h>
#include "hvkit.h"

struct page mem_map_storage[HVKIT_RAM_BYTES >> PAGE_SHIFT];
struct page *mem_map = mem_map_storage;
unsigned long max_mapnr = HVKIT_RAM_BYTES >> PAGE_SHIFT;

static void *alloc_zeroable(size_t size, size_t align, gfp_t flags)
{
	void *p = hvkit_alloc(size ? size : 1, align);
	if (p && (flags & __GFP_ZERO))
		__builtin_memset(p, 0, size);
	return p;
}

void *__kmalloc(size_t size, gfp_t flags)
{
	return alloc_zeroable(size, ARCH_KMALLOC_MINALIGN > 8 ? ARCH_KMALLOC_MINALIGN : 8, flags);
}

void *kmalloc_large(size_t size, gfp_t flags)
{
	return alloc_zeroable(size, PAGE_SIZE, flags);
}

void *__kmalloc_node(size_t size, gfp_t flags, int node)
{
	return __kmalloc(size, flags);
}

void kfree(const void *p)
{
	if (!ZERO_OR_NULL_PTR(p))
		hvkit_free(p);
}

void kfree_sensitive(const void *p)
{
	kfree(p);
}

void *kmemdup(const void *src, size_t len, gfp_t gfp)
{
	void *p = __kmalloc(len, gfp);
	if (p)
		__builtin_memcpy(p, src, len);
	return p;
}

void *vmalloc(unsigned long size)
{
	return alloc_zeroable(size, PAGE_SIZE, 0);
}

void *vzalloc(unsigned long size)
{
	return alloc_zeroable(size, PAGE_SIZE, __GFP_ZERO);
}

void vfree(const void *p)
{
	kfree(p);
}

void kvfree(const void *p)
{
	kfree(p);
}

struct page *__alloc_pages(gfp_t gfp, unsigned int order, int nid, nodemask_t *nodes)
{
	void *p = alloc_zeroable(PAGE_SIZE << order, PAGE_SIZE, gfp);
	return p ? virt_to_page(p) : NULL;
}

void __free_pages(struct page *page, unsigned int order)
{
	hvkit_free(page_address(page));
}

unsigned long __get_free_pages(gfp_t gfp, unsigned int order)
{
	return (unsigned long)alloc_zeroable(PAGE_SIZE << order, PAGE_SIZE, gfp);
}

unsigned long get_zeroed_page(gfp_t gfp)
{
	return __get_free_pages(gfp | __GFP_ZERO, 0);
}

void free_pages(unsigned long addr, unsigned int order)
{
	if (addr)
		hvkit_free((void *)addr);
}

void __percpu *__alloc_percpu(size_t size, size_t align)
{
	return (void __percpu *)alloc_zeroable(size, align < 8 ? 8 : align, __GFP_ZERO);
}

void free_percpu(void __percpu *p)
{
	kfree((void __force *)p);
}

void *memremap(resource_size_t offset, size_t size, unsigned long flags)
{
	return (void *)offset;
}

void memunmap(void *addr)
{
}

/* ---- the ring double mapping ---- */

#define MAX_RINGS 512

struct ring_area { unsigned long start, end; };
static struct ring_area rings[MAX_RINGS];
static struct { unsigned long addr; int ring; } mappings[MAX_RINGS];

static const struct ring_area *ring_at(unsigned long a)
{
	int i;
	for (i = 0; i < MAX_RINGS; i++)
		if (rings[i].end && a >= rings[i].start && a < rings[i].end)
			return &rings[i];
	return NULL;
}

/* Contiguous pages map to their own address; [header, d1..dn, d1..dn] is a ring, recorded. */
void *vmap(struct page **pages, unsigned int count, unsigned long flags, pgprot_t prot)
{
	unsigned int i, data;
	unsigned long base;
	int slot = -1;
	if (!count)
		return NULL;
	base = (unsigned long)page_address(pages[0]);
	for (i = 1; i < count && pages[i] == pages[0] + i; i++)
		;
	if (i == count)
		return (void *)base;
	/* Not contiguous: only the ring's wraparound pattern is accepted. */
	if (count < 3 || !(count & 1))
		return NULL;
	data = (count - 1) / 2;
	for (i = 1; i <= data; i++)
		if (pages[i] != pages[0] + i || pages[i + data] != pages[i])
			return NULL;
	for (i = 0; i < MAX_RINGS; i++)
		if (!mappings[i].addr) {
			slot = i;
			break;
		}
	if (slot < 0)
		return NULL;
	mappings[slot].addr = base;
	rings[slot].start = base + PAGE_SIZE;
	rings[slot].end = base + PAGE_SIZE + data * PAGE_SIZE;
	return (void *)base;
}

void *vmap_pfn(unsigned long *pfns, unsigned int count, pgprot_t prot)
{
	return NULL;
}

void vunmap(const void *addr)
{
	int i;
	for (i = 0; i < MAX_RINGS; i++)
		if (mappings[i].addr == (unsigned long)addr) {
			mappings[i].addr = 0;
			rings[i].start = rings[i].end = 0;
		}
}

/* The soft-lockup watchdog's part: one entry of the kernel (an interrupt, one deferred item)
 * that copies this many times in and out of rings is looping on what the host put there, where
 * Linux's watchdog would report "soft lockup" with the CPU stuck. The service layer is told and
 * stops the guest; a healthy entry copies at most a ring's worth of packets (a few thousand). */
#define RING_COPY_BUDGET 1000000
static unsigned long ring_copies;

void hvkit_budget_reset(void)
{
	ring_copies = 0;
}

static void *copy_wrapping(void *dst, const void *src, size_t n, int move)
{
	const struct ring_area *rd = ring_at((unsigned long)dst), *rs = ring_at((unsigned long)src);
	unsigned long d = (unsigned long)dst, s = (unsigned long)src;
	if ((rd || rs) && ++ring_copies > RING_COPY_BUDGET) {
		static const char msg[] = "watchdog: BUG: soft lockup - CPU#0 stuck copying from a ring";
		hvkit_panic(msg, sizeof(msg) - 1);
	}
	if (!rd && !rs) {
		if (move)
			__builtin_memmove(dst, src, n);
		else
			__builtin_memcpy(dst, src, n);
		return dst;
	}
	/* The double mapping is two copies of the data pages: a copy that starts in it and runs past
	 * its second copy touches the page after the vmap area in Linux, which faults (an oops in the
	 * channel's tasklet). Only a host that publishes a write_index past the ring gets here. */
	if ((rs && s - rs->start + n > 2 * (rs->end - rs->start)) || (rd && d - rd->start + n > 2 * (rd->end - rd->start))) {
		char msg[128];
		int len = scnprintf(msg, sizeof(msg), "BUG: unable to handle page fault: %zu-byte copy runs past a ring's double mapping", n);
		hvkit_panic(msg, len);
	}
	while (n) {
		size_t chunk = n;
		if (rd && rd->end - d < chunk)
			chunk = rd->end - d;
		if (rs && rs->end - s < chunk)
			chunk = rs->end - s;
		__builtin_memmove((void *)d, (const void *)s, chunk);
		n -= chunk;
		d += chunk;
		s += chunk;
		if (rd && d == rd->end)
			d = rd->start;
		if (rs && s == rs->end)
			s = rs->start;
	}
	return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	return copy_wrapping(dst, src, n, 0);
}

void *memmove(void *dst, const void *src, size_t n)
{
	return copy_wrapping(dst, src, n, 1);
}
