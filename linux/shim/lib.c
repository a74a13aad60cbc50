/* Library functions the drivers call: strings, formatting, printk, bit search, GUIDs and the
 * reciprocal division (MIT, hvkit's own code; behaviour as lib/ documents it). */
#include <linux/kernel.h>
#include <linux/stdarg.h>
#include <linux/string.h>
#include <linux/slab.h>
#include <linux/uuid.h>
#include <linux/printk.h>
#include <linux/reciprocal_div.h>
#include <linux/ratelimit.h>
#include <linux/refcount.h>
#include <linux/jiffies.h>
#include "hvkit.h"

void *memset(void *s, int c, size_t n)
{
	unsigned char *p = s;
	while (n--)
		*p++ = (unsigned char)c;
	return s;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x < *y ? -1 : 1;
	return 0;
}

int strcmp(const char *a, const char *b)
{
	for (; *a && *a == *b; a++, b++)
		;
	return (unsigned char)*a - (unsigned char)*b;
}

size_t strlen(const char *s)
{
	const char *p = s;
	while (*p)
		p++;
	return p - s;
}

size_t strnlen(const char *s, size_t max)
{
	size_t n = 0;
	while (n < max && s[n])
		n++;
	return n;
}

char *strncpy(char *dst, const char *src, size_t n)
{
	size_t i = 0;
	for (; i < n && src[i]; i++)
		dst[i] = src[i];
	for (; i < n; i++)
		dst[i] = 0;
	return dst;
}

ssize_t strscpy(char *dst, const char *src, size_t n)
{
	size_t i;
	if (!n)
		return -E2BIG;
	for (i = 0; i + 1 < n && src[i]; i++)
		dst[i] = src[i];
	dst[i] = 0;
	return src[i] ? -E2BIG : i;
}

/* ---- formatting: the subset of vsprintf the drivers use, plus %pUl/%pUb/%pa ---- */

struct out { char *buf; size_t size; size_t len; };

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_num(struct out *o, unsigned long long v, int base, int upper, int neg,
		    int width, int zero, int left, int prec)
{
	char tmp[24];
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	int n = 0, pad;
	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	while (n < prec && n < (int)sizeof(tmp))
		tmp[n++] = '0';
	pad = width - n - (neg ? 1 : 0);
	if (!left && !zero)
		for (; pad > 0; pad--)
			put(o, ' ');
	if (neg)
		put(o, '-');
	if (!left && zero)
		for (; pad > 0; pad--)
			put(o, '0');
	while (n)
		put(o, tmp[--n]);
	if (left)
		for (; pad > 0; pad--)
			put(o, ' ');
}

static void put_hex(struct out *o, unsigned int v, int digits)
{
	while (digits--)
		put(o, "0123456789abcdef"[(v >> (digits * 4)) & 0xf]);
}

/* %pUl (little-endian first three fields, as guid_t is stored) and %pUb (byte order). */
static void put_uuid(struct out *o, const unsigned char *u, int le)
{
	static const unsigned char order_le[16] = { 3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15 };
	int i;
	for (i = 0; i < 16; i++) {
		put_hex(o, u[le ? order_le[i] : i], 2);
		if (i == 3 || i == 5 || i == 7 || i == 9)
			put(o, '-');
	}
}

int hvkit_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };
	for (; *fmt; fmt++) {
		int left = 0, zero = 0, width = 0, prec = -1, lng = 0, sz = 0;
		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		for (;; fmt++) {
			if (*fmt == '-')
				left = 1;
			else if (*fmt == '0')
				zero = 1;
			else if (*fmt == '+' || *fmt == ' ' || *fmt == '#')
				;
			else
				break;
		}
		if (*fmt == '*') {
			width = va_arg(ap, int);
			fmt++;
		} else
			while (*fmt >= '0' && *fmt <= '9')
				width = width * 10 + (*fmt++ - '0');
		if (*fmt == '.') {
			prec = 0;
			fmt++;
			if (*fmt == '*') {
				prec = va_arg(ap, int);
				fmt++;
			} else
				while (*fmt >= '0' && *fmt <= '9')
					prec = prec * 10 + (*fmt++ - '0');
		}
		for (;; fmt++) {
			if (*fmt == 'l')
				lng++;
			else if (*fmt == 'z' || *fmt == 't')
				sz = 1;
			else if (*fmt == 'h')
				;
			else
				break;
		}
		switch (*fmt) {
		case 'd':
		case 'i': {
			long long v = lng >= 2 ? va_arg(ap, long long) : lng || sz ? va_arg(ap, long) : va_arg(ap, int);
			put_num(&o, v < 0 ? -(unsigned long long)v : (unsigned long long)v, 10, 0, v < 0, width, zero, left, prec);
			break;
		}
		case 'u':
		case 'x':
		case 'X':
		case 'o': {
			unsigned long long v = lng >= 2 ? va_arg(ap, unsigned long long) : lng || sz ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int);
			put_num(&o, v, *fmt == 'u' ? 10 : *fmt == 'o' ? 8 : 16, *fmt == 'X', 0, width, zero, left, prec);
			break;
		}
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			int n;
			if (!s)
				s = "(null)";
			n = strnlen(s, prec < 0 ? (size_t)-1 : (size_t)prec);
			if (!left)
				for (; width > n; width--)
					put(&o, ' ');
			while (n--)
				put(&o, *s++);
			for (; width > 0 && left; width--)
				put(&o, ' ');
			break;
		}
		case 'p': {
			const void *p = va_arg(ap, const void *);
			if (fmt[1] == 'U' && (fmt[2] == 'l' || fmt[2] == 'b')) {
				put_uuid(&o, p, fmt[2] == 'l');
				fmt += 2;
			} else if (fmt[1] == 'a') {
				put(&o, '0');
				put(&o, 'x');
				put_num(&o, *(const phys_addr_t *)p, 16, 0, 0, 2 * sizeof(phys_addr_t), 1, 0, -1);
				fmt++;
				if (fmt[1] == 'p' || fmt[1] == 'd')
					fmt++;
			} else {
				while (fmt[1] >= 'A' && fmt[1] <= 'z' && fmt[1] != '%' && ((fmt[1] >= 'A' && fmt[1] <= 'Z') || fmt[1] == 'h' || fmt[1] == 'x'))
					fmt++;
				put_num(&o, (unsigned long)p, 16, 0, 0, 2 * sizeof(void *), 1, 0, -1);
			}
			break;
		}
		case '%':
			put(&o, '%');
			break;
		default:
			put(&o, '%');
			if (*fmt)
				put(&o, *fmt);
			else
				fmt--;
		}
	}
	if (o.size)
		o.buf[o.len < o.size ? o.len : o.size - 1] = 0;
	return o.len;
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	return hvkit_vsnprintf(buf, size, fmt, ap);
}

int vscnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	int n = hvkit_vsnprintf(buf, size, fmt, ap);
	if (!size)
		return 0;
	return n < (int)size ? n : (int)size - 1;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = hvkit_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

int scnprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vscnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

int sprintf(char *buf, const char *fmt, ...)
{
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = hvkit_vsnprintf(buf, INT_MAX, fmt, ap);
	va_end(ap);
	return n;
}

char *kvasprintf(gfp_t gfp, const char *fmt, va_list ap)
{
	va_list aq;
	char *p;
	int n;
	va_copy(aq, ap);
	n = hvkit_vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	p = kmalloc(n + 1, gfp);
	if (p)
		hvkit_vsnprintf(p, n + 1, fmt, ap);
	return p;
}

char *kasprintf(gfp_t gfp, const char *fmt, ...)
{
	va_list ap;
	char *p;
	va_start(ap, fmt);
	p = kvasprintf(gfp, fmt, ap);
	va_end(ap);
	return p;
}

int vprintk(const char *fmt, va_list ap)
{
	char line[512];
	int n = vscnprintf(line, sizeof(line), fmt, ap);
	/* A KERN_CONT fragment or a line without its newline is passed on as it is. */
	while (n > 0 && line[n - 1] == '\n')
		n--;
	hvkit_log(line, n);
	return n;
}

int _printk(const char *fmt, ...)
{
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vprintk(fmt, ap);
	va_end(ap);
	return n;
}

void panic(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vscnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	hvkit_panic(line, n);
	__builtin_unreachable();
}

/* WARN(): kernel/panic.c's report (the message, then where), a bus event naming the place so
 * the service layer can count it, and the kernel goes on (no panic_on_warn). */
void warn_slowpath_fmt(const char *file, const int line, unsigned taint, const char *fmt, ...)
{
	char where[160];
	int n;
	pr_warn("------------[ cut here ]------------\n");
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vprintk(fmt, ap);
		va_end(ap);
	}
	pr_warn("WARNING: CPU: 0 PID: 0 at %s:%d\n", file, line);
	n = scnprintf(where, sizeof(where), "warning %s:%d", file, line);
	hvkit_event(where, n);
}

/* lib/ratelimit.c's rule: at most `burst` messages per `interval` jiffies, and a count of the
 * suppressed ones when the next interval starts. A kernel stuck in a loop gets no new jiffies. */
int ___ratelimit(struct ratelimit_state *rs, const char *func)
{
	int ret;
	if (!rs->interval)
		return 1;
	if (!rs->begin)
		rs->begin = jiffies;
	if (time_is_before_jiffies(rs->begin + rs->interval)) {
		if (rs->missed && !(rs->flags & RATELIMIT_MSG_ON_RELEASE))
			pr_warn("%s: %d callbacks suppressed\n", func, rs->missed);
		rs->begin = jiffies;
		rs->printed = 0;
		rs->missed = 0;
	}
	if (rs->burst && rs->burst > rs->printed) {
		rs->printed++;
		ret = 1;
	} else {
		rs->missed++;
		ret = 0;
	}
	return ret;
}

/* ---- bits ---- */

static unsigned long find_bit(const unsigned long *a, const unsigned long *b, unsigned long nbits,
			      unsigned long start, unsigned long invert)
{
	for (; start < nbits; start++) {
		unsigned long w = a[start / BITS_PER_LONG];
		if (b)
			w &= b[start / BITS_PER_LONG];
		if (((w ^ invert) >> (start % BITS_PER_LONG)) & 1)
			return start;
	}
	return nbits;
}

unsigned long _find_next_bit(const unsigned long *addr, unsigned long nbits, unsigned long start)
{
	return find_bit(addr, NULL, nbits, start, 0);
}

unsigned long _find_next_and_bit(const unsigned long *a, const unsigned long *b, unsigned long nbits, unsigned long start)
{
	return find_bit(a, b, nbits, start, 0);
}

unsigned long _find_next_zero_bit(const unsigned long *addr, unsigned long nbits, unsigned long start)
{
	return find_bit(addr, NULL, nbits, start, ~0UL);
}

unsigned long _find_first_bit(const unsigned long *addr, unsigned long size)
{
	return find_bit(addr, NULL, size, 0, 0);
}

unsigned long _find_first_zero_bit(const unsigned long *addr, unsigned long size)
{
	return find_bit(addr, NULL, size, 0, ~0UL);
}

unsigned long *bitmap_zalloc(unsigned int nbits, gfp_t flags)
{
	return kzalloc(BITS_TO_LONGS(nbits) * sizeof(unsigned long), flags);
}

void bitmap_free(const unsigned long *bitmap)
{
	kfree(bitmap);
}

/* ---- GUIDs ---- */

const guid_t guid_null;

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "aabbccdd-eeff-gghh-iijj-kkllmmnnoopp"; guid_t stores the first three fields little-endian. */
int guid_parse(const char *uuid, guid_t *u)
{
	static const unsigned char byte_at[16] = { 6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34 };
	int i;
	if (strnlen(uuid, 37) != 36 || uuid[8] != '-' || uuid[13] != '-' || uuid[18] != '-' || uuid[23] != '-')
		return -EINVAL;
	for (i = 0; i < 16; i++) {
		int hi = hex_value(uuid[byte_at[i]]), lo = hex_value(uuid[byte_at[i] + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		u->b[i] = hi << 4 | lo;
	}
	return 0;
}

/* ---- reciprocal division (include/linux/reciprocal_div.h's contract) ---- */

struct reciprocal_value reciprocal_value(u32 d)
{
	struct reciprocal_value r;
	int l = fls(d - 1);
	u64 m = ((1ULL << 32) * ((1ULL << l) - d));
	m = div_u64(m, d) + 1;
	r.m = (u32)m;
	r.sh1 = min(l, 1);
	r.sh2 = max(l - 1, 0);
	return r;
}

/* asm-generic/div64.h's out-of-line helper: wasm divides 64-bit numbers natively. */
uint32_t __div64_32(uint64_t *n, uint32_t base)
{
	uint32_t rem = *n % base;
	*n /= base;
	return rem;
}

void refcount_warn_saturate(refcount_t *r, enum refcount_saturation_type t)
{
	pr_warn("refcount_t: saturated or underflowed (%d)\n", (int)t);
}

/* HZ divides 1000 (autoconf.h), as kernel/time/time.c's exact case assumes. */
unsigned int jiffies_to_msecs(const unsigned long j)
{
	return (MSEC_PER_SEC / HZ) * j;
}

unsigned int jiffies_to_usecs(const unsigned long j)
{
	return (USEC_PER_SEC / HZ) * j;
}

/* lib/math/div64.c's 32-bit entry points; wasm divides 64-bit numbers natively. */
s64 div_s64_rem(s64 dividend, s32 divisor, s32 *remainder)
{
	*remainder = dividend % divisor;
	return dividend / divisor;
}

u64 div64_u64(u64 dividend, u64 divisor)
{
	return dividend / divisor;
}

s64 div64_s64(s64 dividend, s64 divisor)
{
	return dividend / divisor;
}

u64 div64_u64_rem(u64 dividend, u64 divisor, u64 *remainder)
{
	*remainder = dividend % divisor;
	return dividend / divisor;
}
