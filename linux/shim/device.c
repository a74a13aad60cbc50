/* A minimal device model (MIT, hvkit's own code): one bus's devices and drivers, matched with
 * the bus's match() and bound with its probe(), as drivers/base/dd.c does when a device or a
 * driver is registered; reference counts that call the release hook at zero; device names;
 * dev_printk. No sysfs: kobjects are accepted and otherwise ignored. */
#include <linux/kernel.h>
#include <linux/device.h>
#include <linux/slab.h>
#include <linux/stdarg.h>
#include <linux/kobject.h>
#include <linux/property.h>
#include <linux/string.h>
#include "hvkit.h"

#define MAX_DEVICES 256
#define MAX_DRIVERS 64

static struct device *devices[MAX_DEVICES];
static struct device_driver *drivers[MAX_DRIVERS];

static void event(const char *what, struct device *dev, struct device_driver *drv)
{
	char line[160];
	int n = scnprintf(line, sizeof(line), "%s %s %s", what, dev_name(dev) ? dev_name(dev) : "?", drv && drv->name ? drv->name : "-");
	hvkit_event(line, n);
}

int bus_register(struct bus_type *bus)
{
	return 0;
}

void bus_unregister(struct bus_type *bus)
{
}

static bool try_bind(struct device *dev, struct device_driver *drv)
{
	int ret;
	if (dev->driver || drv->bus != dev->bus)
		return false;
	if (drv->bus->match && !drv->bus->match(dev, drv))
		return false;
	dev->driver = drv;
	ret = drv->bus->probe ? drv->bus->probe(dev) : drv->probe ? drv->probe(dev) : 0;
	if (ret) {
		dev->driver = NULL;
		event("probe-failed", dev, drv);
		return false;
	}
	event("bound", dev, drv);
	return true;
}

static void unbind(struct device *dev)
{
	struct device_driver *drv = dev->driver;
	if (!drv)
		return;
	if (drv->bus && drv->bus->remove)
		drv->bus->remove(dev);
	else if (drv->remove)
		drv->remove(dev);
	dev->driver = NULL;
	event("unbound", dev, drv);
}

void device_initialize(struct device *dev)
{
	kref_init(&dev->kobj.kref);
}

int device_add(struct device *dev)
{
	int i, slot = -1;
	for (i = 0; i < MAX_DEVICES; i++)
		if (!devices[i]) {
			slot = i;
			break;
		}
	if (slot < 0)
		return -ENOMEM;
	devices[slot] = dev;
	event("added", dev, NULL);
	for (i = 0; i < MAX_DRIVERS; i++)
		if (drivers[i] && try_bind(dev, drivers[i]))
			break;
	return 0;
}

int device_register(struct device *dev)
{
	device_initialize(dev);
	return device_add(dev);
}

struct device *get_device(struct device *dev)
{
	if (dev)
		kref_get(&dev->kobj.kref);
	return dev;
}

static void release_device(struct kref *kref)
{
	struct device *dev = container_of(kref, struct device, kobj.kref);
	if (dev->release)
		dev->release(dev);
	else if (dev->type && dev->type->release)
		dev->type->release(dev);
}

void put_device(struct device *dev)
{
	if (dev)
		kref_put(&dev->kobj.kref, release_device);
}

void device_del(struct device *dev)
{
	int i;
	unbind(dev);
	for (i = 0; i < MAX_DEVICES; i++)
		if (devices[i] == dev)
			devices[i] = NULL;
	event("removed", dev, NULL);
}

void device_unregister(struct device *dev)
{
	device_del(dev);
	put_device(dev);
}

int dev_set_name(struct device *dev, const char *fmt, ...)
{
	va_list ap;
	char *name;
	va_start(ap, fmt);
	name = kvasprintf(GFP_KERNEL, fmt, ap);
	va_end(ap);
	if (!name)
		return -ENOMEM;
	kfree(dev->kobj.name);
	dev->kobj.name = name;
	return 0;
}

int driver_register(struct device_driver *drv)
{
	int i, slot = -1;
	for (i = 0; i < MAX_DRIVERS; i++)
		if (!drivers[i]) {
			slot = i;
			break;
		}
	if (slot < 0)
		return -ENOMEM;
	drivers[slot] = drv;
	for (i = 0; i < MAX_DEVICES; i++)
		if (devices[i])
			try_bind(devices[i], drv);
	return 0;
}

void driver_unregister(struct device_driver *drv)
{
	int i;
	for (i = 0; i < MAX_DEVICES; i++)
		if (devices[i] && devices[i]->driver == drv)
			unbind(devices[i]);
	for (i = 0; i < MAX_DRIVERS; i++)
		if (drivers[i] == drv)
			drivers[i] = NULL;
}

int driver_attach(struct device_driver *drv)
{
	int i;
	for (i = 0; i < MAX_DEVICES; i++)
		if (devices[i])
			try_bind(devices[i], drv);
	return 0;
}

int driver_set_override(struct device *dev, const char **override, const char *s, size_t len)
{
	char *copy = NULL;
	if (len) {
		copy = kmalloc(len + 1, GFP_KERNEL);
		if (!copy)
			return -ENOMEM;
		__builtin_memcpy(copy, s, len);
		copy[len] = 0;
		if (copy[len - 1] == '\n')
			copy[len - 1] = 0;
	}
	kfree(*override);
	*override = copy;
	return 0;
}

enum dev_dma_attr device_get_dma_attr(struct device *dev)
{
	return DEV_DMA_NOT_SUPPORTED;
}

void set_primary_fwnode(struct device *dev, struct fwnode_handle *fwnode)
{
}

/* ---- kobjects: no sysfs ---- */

static struct kset the_kset;

struct kset *kset_create_and_add(const char *name, const struct kset_uevent_ops *u, struct kobject *parent)
{
	return &the_kset;
}

void kset_unregister(struct kset *k)
{
}

int kobject_init_and_add(struct kobject *kobj, const struct kobj_type *ktype, struct kobject *parent, const char *fmt, ...)
{
	kref_init(&kobj->kref);
	kobj->ktype = ktype;
	return 0;
}

static void release_kobject(struct kref *kref)
{
	struct kobject *kobj = container_of(kref, struct kobject, kref);
	if (kobj->ktype && kobj->ktype->release)
		kobj->ktype->release(kobj);
}

void kobject_put(struct kobject *kobj)
{
	if (kobj)
		kref_put(&kobj->kref, release_kobject);
}

int kobject_uevent(struct kobject *kobj, enum kobject_action action)
{
	return 0;
}

int add_uevent_var(struct kobj_uevent_env *env, const char *format, ...)
{
	return 0;
}

/* ---- dev_printk: "<driver> <device>: message", as drivers/base/core.c prints it ---- */

static void dev_vprintk(const char *level, const struct device *dev, const char *fmt, va_list ap)
{
	char msg[400], line[512];
	int n;
	hvkit_vsnprintf(msg, sizeof(msg), fmt, ap);
	n = scnprintf(line, sizeof(line), "%s%s %s: %s", level, dev && dev->driver && dev->driver->name ? dev->driver->name : "", dev ? dev_name(dev) : "(NULL device *)", msg);
	while (n > 0 && line[n - 1] == '\n')
		n--;
	hvkit_log(line, n);
}

#define DEV_PRINTK(fn, level)                                   \
	void fn(const struct device *dev, const char *fmt, ...) \
	{                                                       \
		va_list ap;                                     \
		va_start(ap, fmt);                              \
		dev_vprintk(level, dev, fmt, ap);               \
		va_end(ap);                                     \
	}

DEV_PRINTK(_dev_err, KERN_ERR)
DEV_PRINTK(_dev_warn, KERN_WARNING)
DEV_PRINTK(_dev_notice, KERN_NOTICE)
DEV_PRINTK(_dev_info, KERN_INFO)
