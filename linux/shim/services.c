/* What the integration services (hv_util.c and its helpers) call outside drivers/hv (MIT,
 * hvkit's own code): the time they set, the power-off they ask for, the user-space daemon
 * channel's netlink half (no daemon listens there: hvkit's daemons open the misc device, see
 * chardev.c, as Linux 6.1's tools/hv daemons do), and UTF-16 conversion for KVP. Each effect the host can cause is reported to the
 * service layer as a bus event line. */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/time64.h>
#include <linux/timekeeping.h>
#include <linux/reboot.h>
#include <linux/connector.h>
#include <linux/nls.h>
#include <linux/wait.h>
#include <linux/sched.h>
#include <linux/uaccess.h>
#include <linux/math64.h>
#include "hvkit.h"

static void report(const char *fmt, ...)
{
	char line[160];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = hvkit_vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	hvkit_event(line, n < (int)sizeof(line) ? n : (int)sizeof(line) - 1);
}

struct timespec64 ns_to_timespec64(s64 nsec)
{
	struct timespec64 ts = { 0, 0 };
	s32 rem;
	if (!nsec)
		return ts;
	ts.tv_sec = div_s64_rem(nsec, NSEC_PER_SEC, &rem);
	if (rem < 0) {
		ts.tv_sec--;
		rem += NSEC_PER_SEC;
	}
	ts.tv_nsec = rem;
	return ts;
}

int do_settimeofday64(const struct timespec64 *ts)
{
	report("settime %lld.%09ld", (long long)ts->tv_sec, ts->tv_nsec);
	return 0;
}

void orderly_poweroff(bool force)
{
	report("poweroff");
}

void orderly_reboot(void)
{
	report("reboot");
}

int cn_add_callback(const struct cb_id *id, const char *name, void (*callback)(struct cn_msg *, struct netlink_skb_parms *))
{
	return 0;
}

void cn_del_callback(const struct cb_id *id)
{
}

int cn_netlink_send(struct cn_msg *msg, u32 portid, u32 group, gfp_t gfp_mask)
{
	return -ESRCH;
}

void init_wait_entry(struct wait_queue_entry *wq_entry, int flags)
{
	wq_entry->flags = flags;
	INIT_LIST_HEAD(&wq_entry->entry);
}

long prepare_to_wait_event(struct wait_queue_head *wq_head, struct wait_queue_entry *wq_entry, int state)
{
	/* Nothing wakes a sleeper here: a waiting reader is told it was interrupted. */
	return -ERESTARTSYS;
}

void finish_wait(struct wait_queue_head *wq_head, struct wait_queue_entry *wq_entry)
{
}

asmlinkage __visible void schedule(void)
{
}

void *memdup_user(const void __user *src, size_t len)
{
	void *p = kmalloc(len, GFP_KERNEL);
	if (!p)
		return ERR_PTR(-ENOMEM);
	__builtin_memcpy(p, (const void __force *)src, len);
	return p;
}

char *strcpy(char *dst, const char *src)
{
	char *d = dst;
	while ((*d++ = *src++))
		;
	return dst;
}

int kobject_uevent_env(struct kobject *kobj, enum kobject_action action, char *envp[])
{
	return 0;
}

/* UTF-16 (little-endian here, as KVP's wire strings are) and UTF-8, with surrogate pairs. */
int utf16s_to_utf8s(const wchar_t *pwcs, int inlen, enum utf16_endian endian, u8 *s, int maxout)
{
	const u16 *in = (const u16 *)pwcs;
	u8 *o = s;
	while (inlen > 0 && *in) {
		u32 c = *in++;
		inlen--;
		if (c >= 0xd800 && c < 0xdc00 && inlen > 0 && *in >= 0xdc00 && *in < 0xe000) {
			c = 0x10000 + ((c - 0xd800) << 10) + (*in++ - 0xdc00);
			inlen--;
		}
		if (c < 0x80) {
			if (maxout < 1)
				break;
			*o++ = c;
			maxout -= 1;
		} else if (c < 0x800) {
			if (maxout < 2)
				break;
			*o++ = 0xc0 | (c >> 6);
			*o++ = 0x80 | (c & 0x3f);
			maxout -= 2;
		} else if (c < 0x10000) {
			if (maxout < 3)
				break;
			*o++ = 0xe0 | (c >> 12);
			*o++ = 0x80 | ((c >> 6) & 0x3f);
			*o++ = 0x80 | (c & 0x3f);
			maxout -= 3;
		} else {
			if (maxout < 4)
				break;
			*o++ = 0xf0 | (c >> 18);
			*o++ = 0x80 | ((c >> 12) & 0x3f);
			*o++ = 0x80 | ((c >> 6) & 0x3f);
			*o++ = 0x80 | (c & 0x3f);
			maxout -= 4;
		}
	}
	return o - s;
}

int utf8s_to_utf16s(const u8 *s, int inlen, enum utf16_endian endian, wchar_t *pwcs, int maxout)
{
	u16 *op = (u16 *)pwcs;
	int n = 0;
	while (inlen > 0 && *s && n < maxout) {
		u32 c = *s;
		int len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		int i;
		if (!len || len > inlen)
			return -EINVAL;
		c = len == 1 ? c : c & (0x7f >> len);
		for (i = 1; i < len; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return -EINVAL;
			c = (c << 6) | (s[i] & 0x3f);
		}
		s += len;
		inlen -= len;
		if (c >= 0x10000) {
			if (n + 2 > maxout)
				break;
			c -= 0x10000;
			op[n++] = 0xd800 | (c >> 10);
			op[n++] = 0xdc00 | (c & 0x3ff);
		} else {
			op[n++] = c;
		}
	}
	return n;
}
