/* What lsvmbus and hvkit's --json state read from Linux's own data (MIT, hvkit's own code): the
 * connection (vmbus_connection) and every channel on its chn_list with its sub-channels, written
 * as text lines for the service layer to parse. The fields are those Linux shows in sysfs
 * (vmbus_drv.c's device attributes and channels/<relid>/ directory).
 *
 *   vmbus <conn_state> <major>.<minor>
 *   device <relid> <class> <instance> <device_id> <vendor_id> <driver or ->
 *   channel <relid> <state> <sub_channel_index> <monitorid or -1> <target_cpu> <target_vp>
 *           <connection_id> <interrupts> <sig_events> <rescind>
 *
 * One "device" line per primary channel, followed by its "channel" lines (itself first). */
#include <linux/kernel.h>
#include <linux/hyperv.h>
#include <linux/list.h>
#include <asm/mshyperv.h>
#include "hyperv_vmbus.h"
#include "hvkit.h"

struct out {
	char *buf;
	int size, len;
};

static void line(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int room = o->size - o->len;
	if (room <= 0)
		return;
	va_start(ap, fmt);
	o->len += vscnprintf(o->buf + o->len, room, fmt, ap);
	va_end(ap);
}

static void channel_line(struct out *o, struct vmbus_channel *c)
{
	line(o, "channel %u %d %u %d %u %u %u %llu %llu %d\n", c->offermsg.child_relid, c->state,
	     c->offermsg.offer.sub_channel_index, c->offermsg.monitor_allocated ? c->offermsg.monitorid : -1,
	     c->target_cpu, hv_cpu_number_to_vp_number(c->target_cpu), c->offermsg.connection_id, (unsigned long long)c->interrupts,
	     (unsigned long long)c->sig_events, c->rescind ? 1 : 0);
}

/* Writes the snapshot into buf; returns its length, or -1 if it did not fit. */
int hvkit_vmbus_snapshot(char *buf, int size)
{
	struct out o = { buf, size, 0 };
	struct vmbus_channel *c, *sc;
	line(&o, "vmbus %d %u.%u\n", vmbus_connection.conn_state, vmbus_proto_version >> 16, vmbus_proto_version & 0xffff);
	if (vmbus_connection.conn_state == CONNECTED) {
		list_for_each_entry(c, &vmbus_connection.chn_list, listentry) {
			struct hv_device *dev = c->device_obj;
			line(&o, "device %u %pUl %pUl %u %u %s\n", c->offermsg.child_relid, &c->offermsg.offer.if_type,
			     &c->offermsg.offer.if_instance, dev ? dev->device_id : 16, dev ? dev->vendor_id : 0,
			     dev && dev->device.driver && dev->device.driver->name ? dev->device.driver->name : "-");
			channel_line(&o, c);
			list_for_each_entry(sc, &c->sc_list, sc_list)
				channel_line(&o, sc);
		}
	}
	return o.len < size - 1 ? o.len : -1;
}
