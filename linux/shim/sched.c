/* Scheduling on hvkit's synchronous machine (MIT, hvkit's own code): one thread of control.
 * Locks have no one to exclude; a wait hands control to the service layer, which runs the
 * machine (the host, the clock, this module's interrupt entry and deferred work) until the
 * condition holds. Work items, tasklets, RCU callbacks and timers run from
 * hvkit_run_deferred(), which the service layer calls whenever interrupts have been taken. */
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/completion.h>
#include <linux/workqueue.h>
#include <linux/interrupt.h>
#include <linux/mutex.h>
#include <linux/delay.h>
#include <linux/timer.h>
#include <linux/jiffies.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/stdarg.h>
#include "hvkit.h"

struct thread_info hvkit_thread_info;
unsigned long hvkit_irq_flags = ARCH_IRQ_ENABLED;
volatile unsigned long jiffies = INITIAL_JIFFIES;

void hvkit_tick(void)
{
	jiffies = INITIAL_JIFFIES + (unsigned long)(hvkit_now_ns() / (NSEC_PER_SEC / HZ));
}

void __mutex_init(struct mutex *lock, const char *name, struct lock_class_key *key)
{
}

void mutex_lock(struct mutex *lock)
{
}

void mutex_unlock(struct mutex *lock)
{
}

int mutex_trylock(struct mutex *lock)
{
	return 1;
}

void __init_swait_queue_head(struct swait_queue_head *q, const char *name, struct lock_class_key *key)
{
	INIT_LIST_HEAD(&q->task_list);
}

void __init_waitqueue_head(struct wait_queue_head *wq_head, const char *name, struct lock_class_key *key)
{
	INIT_LIST_HEAD(&wq_head->head);
}

/* Nobody sleeps in the kernel here; a wake-up is for user space (a daemon polling a misc device). */
int __wake_up(struct wait_queue_head *wq_head, unsigned int mode, int nr, void *key)
{
	hvkit_wake_user();
	return 0;
}

void complete(struct completion *x)
{
	if (x->done != UINT_MAX)
		x->done++;
}

void complete_all(struct completion *x)
{
	x->done = UINT_MAX;
}

bool completion_done(struct completion *x)
{
	return x->done != 0;
}

static void take_completion(struct completion *x)
{
	if (x->done != UINT_MAX)
		x->done--;
}

void wait_for_completion(struct completion *x)
{
	hvkit_wait_nonzero(&x->done, -1);
	take_completion(x);
	hvkit_tick();
}

unsigned long wait_for_completion_timeout(struct completion *x, unsigned long timeout)
{
	u64 ns = (u64)jiffies_to_msecs(timeout) * NSEC_PER_MSEC;
	unsigned long start = jiffies, used;
	if (!hvkit_wait_nonzero(&x->done, ns)) {
		hvkit_tick();
		return 0;
	}
	take_completion(x);
	hvkit_tick();
	used = jiffies - start;
	return used < timeout ? timeout - used : 1;
}

long wait_for_completion_interruptible_timeout(struct completion *x, unsigned long timeout)
{
	return wait_for_completion_timeout(x, timeout);
}

int wait_for_completion_interruptible(struct completion *x)
{
	wait_for_completion(x);
	return 0;
}

void msleep(unsigned int msecs)
{
	hvkit_sleep_ns((u64)msecs * NSEC_PER_MSEC);
	hvkit_tick();
}

void usleep_range_state(unsigned long min, unsigned long max, unsigned int state)
{
	hvkit_sleep_ns((u64)min * NSEC_PER_USEC);
	hvkit_tick();
}

void __udelay(unsigned long usecs)
{
	hvkit_sleep_ns((u64)usecs * NSEC_PER_USEC);
	hvkit_tick();
}

/* asm-generic/delay.h scales microseconds by 0x10c7 (2**32 / 10**6). */
void __const_udelay(unsigned long xloops)
{
	__udelay((unsigned long)(((u64)xloops * 1000000) >> 32) + 1);
}

void hvkit_cpu_relax(void)
{
	hvkit_relax();
	hvkit_tick();
}

/* ---- deferred work: one FIFO of work items, tasklets and RCU callbacks ---- */

enum deferred_kind { DEFER_WORK, DEFER_TASKLET, DEFER_RCU };

struct deferred {
	struct deferred *next;
	enum deferred_kind kind;
	void *item;
	rcu_callback_t rcu_func;
};

static struct deferred *head, *tail;

static bool defer(enum deferred_kind kind, void *item, rcu_callback_t f)
{
	struct deferred *d = kmalloc(sizeof(*d), GFP_ATOMIC);
	if (!d)
		return false;
	d->next = NULL;
	d->kind = kind;
	d->item = item;
	d->rcu_func = f;
	if (tail)
		tail->next = d;
	else
		head = d;
	tail = d;
	return true;
}

struct workqueue_struct {
	char name[32];
};

static struct workqueue_struct system_wq_storage = { "events" };
struct workqueue_struct *system_wq = &system_wq_storage;
struct workqueue_struct *system_highpri_wq = &system_wq_storage;
struct workqueue_struct *system_long_wq = &system_wq_storage;
struct workqueue_struct *system_unbound_wq = &system_wq_storage;

struct workqueue_struct *alloc_workqueue(const char *fmt, unsigned int flags, int max_active, ...)
{
	struct workqueue_struct *wq = kzalloc(sizeof(*wq), GFP_KERNEL);
	va_list ap;
	if (!wq)
		return NULL;
	va_start(ap, max_active);
	hvkit_vsnprintf(wq->name, sizeof(wq->name), fmt, ap);
	va_end(ap);
	return wq;
}

void destroy_workqueue(struct workqueue_struct *wq)
{
	kfree(wq);
}

bool queue_work_on(int cpu, struct workqueue_struct *wq, struct work_struct *work)
{
	if (test_and_set_bit(WORK_STRUCT_PENDING_BIT, work_data_bits(work)))
		return false;
	if (!defer(DEFER_WORK, work, NULL)) {
		clear_bit(WORK_STRUCT_PENDING_BIT, work_data_bits(work));
		return false;
	}
	return true;
}

static bool work_queued(struct work_struct *work)
{
	struct deferred *d;
	for (d = head; d; d = d->next)
		if (d->kind == DEFER_WORK && d->item == work)
			return true;
	return false;
}

/* Runs the queue until the item is no longer queued (it never runs concurrently here). */
bool flush_work(struct work_struct *work)
{
	bool was = work_queued(work);
	while (work_queued(work))
		hvkit_run_deferred();
	return was;
}

bool cancel_work_sync(struct work_struct *work)
{
	struct deferred **p;
	for (p = &head; *p; p = &(*p)->next)
		if ((*p)->kind == DEFER_WORK && (*p)->item == work) {
			struct deferred *d = *p;
			*p = d->next;
			if (tail == d) {
				struct deferred *t;
				tail = NULL;
				for (t = head; t; t = t->next)
					tail = t;
			}
			kfree(d);
			clear_bit(WORK_STRUCT_PENDING_BIT, work_data_bits(work));
			return true;
		}
	return false;
}

void __flush_workqueue(struct workqueue_struct *wq)
{
	while (head)
		hvkit_run_deferred();
}

void drain_workqueue(struct workqueue_struct *wq)
{
	__flush_workqueue(wq);
}

void tasklet_init(struct tasklet_struct *t, void (*func)(unsigned long), unsigned long data)
{
	t->next = NULL;
	t->state = 0;
	atomic_set(&t->count, 0);
	t->func = func;
	t->use_callback = false;
	t->data = data;
}

void tasklet_setup(struct tasklet_struct *t, void (*callback)(struct tasklet_struct *))
{
	tasklet_init(t, NULL, 0);
	t->callback = callback;
	t->use_callback = true;
}

void __tasklet_schedule(struct tasklet_struct *t)
{
	if (!defer(DEFER_TASKLET, t, NULL))
		clear_bit(TASKLET_STATE_SCHED, &t->state);
}

void __tasklet_hi_schedule(struct tasklet_struct *t)
{
	__tasklet_schedule(t);
}

void tasklet_kill(struct tasklet_struct *t)
{
	while (test_bit(TASKLET_STATE_SCHED, &t->state))
		hvkit_run_deferred();
}

void call_rcu(struct rcu_head *h, rcu_callback_t func)
{
	if (!defer(DEFER_RCU, h, func)) {
		if (__is_kvfree_rcu_offset((unsigned long)func))
			kfree((void *)h - (unsigned long)func);
		else
			func(h);
	}
}

void synchronize_rcu(void)
{
}

/* ---- timers: a table of pending timers, fired from hvkit_run_deferred once due ---- */

#define MAX_TIMERS 256

static struct timer_list *timers[MAX_TIMERS];

static void set_pending(struct timer_list *t, bool pending)
{
	/* timer_pending() looks at entry.pprev. */
	t->entry.pprev = pending ? &t->entry.next : NULL;
}

static int timer_slot(struct timer_list *t)
{
	int i;
	for (i = 0; i < MAX_TIMERS; i++)
		if (timers[i] == t)
			return i;
	return -1;
}

void init_timer_key(struct timer_list *t, void (*func)(struct timer_list *), unsigned int flags, const char *name, struct lock_class_key *key)
{
	t->entry.next = NULL;
	set_pending(t, false);
	t->function = func;
	t->flags = flags;
}

int mod_timer(struct timer_list *t, unsigned long expires)
{
	int slot = timer_slot(t), i;
	bool was = slot >= 0;
	if (slot < 0)
		for (i = 0; i < MAX_TIMERS; i++)
			if (!timers[i]) {
				slot = i;
				break;
			}
	if (slot < 0) {
		pr_err("hvkit: more than %d timers pending\n", MAX_TIMERS);
		return 0;
	}
	timers[slot] = t;
	t->expires = expires;
	set_pending(t, true);
	hvkit_wake_at_ns((u64)(expires - INITIAL_JIFFIES) * (NSEC_PER_SEC / HZ));
	return was;
}

void add_timer(struct timer_list *t)
{
	mod_timer(t, t->expires);
}

int timer_delete(struct timer_list *t)
{
	int slot = timer_slot(t);
	if (slot < 0)
		return 0;
	timers[slot] = NULL;
	set_pending(t, false);
	return 1;
}

int timer_delete_sync(struct timer_list *t)
{
	return timer_delete(t);
}

static int run_timers(void)
{
	int i, n = 0;
	for (i = 0; i < MAX_TIMERS; i++) {
		struct timer_list *t = timers[i];
		if (t && time_after_eq(jiffies, t->expires)) {
			timers[i] = NULL;
			set_pending(t, false);
			t->function(t);
			n++;
		}
	}
	return n;
}

void delayed_work_timer_fn(struct timer_list *t)
{
	struct delayed_work *dwork = from_timer(dwork, t, timer);
	clear_bit(WORK_STRUCT_PENDING_BIT, work_data_bits(&dwork->work));
	queue_work_on(dwork->cpu, dwork->wq, &dwork->work);
}

bool queue_delayed_work_on(int cpu, struct workqueue_struct *wq, struct delayed_work *dwork, unsigned long delay)
{
	if (!delay)
		return queue_work_on(cpu, wq, &dwork->work);
	if (test_and_set_bit(WORK_STRUCT_PENDING_BIT, work_data_bits(&dwork->work)))
		return false;
	dwork->wq = wq;
	dwork->cpu = cpu;
	dwork->timer.function = delayed_work_timer_fn;
	mod_timer(&dwork->timer, jiffies + delay);
	return true;
}

bool cancel_delayed_work(struct delayed_work *dwork)
{
	bool was = del_timer(&dwork->timer);
	was |= cancel_work_sync(&dwork->work);
	clear_bit(WORK_STRUCT_PENDING_BIT, work_data_bits(&dwork->work));
	return was;
}

bool cancel_delayed_work_sync(struct delayed_work *dwork)
{
	return cancel_delayed_work(dwork);
}

bool mod_delayed_work_on(int cpu, struct workqueue_struct *wq, struct delayed_work *dwork, unsigned long delay)
{
	cancel_delayed_work(dwork);
	return queue_delayed_work_on(cpu, wq, dwork, delay);
}

/* Runs the timers due and what is queued now (not what it queues in turn); returns how many. */
int hvkit_run_deferred(void)
{
	struct deferred *d;
	int n, queued = 0, popped;
	hvkit_tick();
	n = run_timers();
	/* One queue, popped one item at a time: a work item that waits (and so re-enters here) or
	 * cancels another always sees the queue as it is. At most what is queued now runs. */
	for (d = head; d; d = d->next)
		queued++;
	for (popped = 0; popped < queued && (d = head); popped++) {
		head = d->next;
		if (!head)
			tail = NULL;
		hvkit_budget_reset();
		switch (d->kind) {
		case DEFER_WORK: {
			struct work_struct *w = d->item;
			kfree(d);
			clear_bit(WORK_STRUCT_PENDING_BIT, work_data_bits(w));
			n++;
			w->func(w);
			break;
		}
		case DEFER_TASKLET: {
			struct tasklet_struct *t = d->item;
			if (atomic_read(&t->count)) {
				/* Disabled: it runs once enabled again. */
				d->next = NULL;
				if (tail)
					tail->next = d;
				else
					head = d;
				tail = d;
				break;
			}
			kfree(d);
			clear_bit(TASKLET_STATE_SCHED, &t->state);
			n++;
			if (t->use_callback)
				t->callback(t);
			else
				t->func(t->data);
			break;
		}
		case DEFER_RCU: {
			struct rcu_head *h = d->item;
			rcu_callback_t f = d->rcu_func;
			kfree(d);
			n++;
			/* kfree_rcu passes the rcu_head's offset in its object instead of a function
			 * (__is_kvfree_rcu_offset, as Tiny RCU's rcu_reclaim_tiny tells them apart). */
			if (__is_kvfree_rcu_offset((unsigned long)f))
				kfree((void *)h - (unsigned long)f);
			else
				f(h);
			break;
		}
		}
	}
	return n;
}
