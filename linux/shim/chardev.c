/* Misc character devices and the file calls user space makes on them (MIT, hvkit's own code).
 * misc_register keeps the device by name ("vmbus/hv_kvp"); the service layer's daemons open it
 * and call its file_operations the way the VFS would for open(2), read(2), write(2), poll(2)
 * and close(2), with user buffers in guest RAM (this kernel has no separate user space, so a
 * user copy is a plain copy, asm/uaccess.h). This is the path Linux 6.1's tools/hv daemons take
 * (hv_utils_transport.c's chardev mode). */
#include <linux/kernel.h>
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/string.h>
#include "hvkit.h"

#define MAX_MISC 8

static struct miscdevice *misc_devices[MAX_MISC];

static void report(const char *what, struct miscdevice *misc)
{
	char line[96];
	int n = scnprintf(line, sizeof(line), "%s /dev/%s", what, misc->name);
	hvkit_event(line, n);
}

int misc_register(struct miscdevice *misc)
{
	int i;
	for (i = 0; i < MAX_MISC; i++)
		if (!misc_devices[i]) {
			misc_devices[i] = misc;
			report("registered", misc);
			return 0;
		}
	return -EBUSY;
}

void misc_deregister(struct miscdevice *misc)
{
	int i;
	for (i = 0; i < MAX_MISC; i++)
		if (misc_devices[i] == misc) {
			misc_devices[i] = NULL;
			report("deregistered", misc);
		}
}

/* An open file: the VFS's struct file with the inode it was opened through. */
struct hvkit_file {
	struct file file;
	struct inode inode;
};

/* open("/dev/<name>"): the file, or a negative errno (-ENOENT: no such device). */
long hvkit_chardev_open(const char *name)
{
	struct hvkit_file *f;
	const struct file_operations *fops = NULL;
	int i, ret;
	for (i = 0; i < MAX_MISC; i++)
		if (misc_devices[i] && !strcmp(misc_devices[i]->name, name)) {
			fops = misc_devices[i]->fops;
			break;
		}
	if (!fops)
		return -ENOENT;
	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	f->file.f_op = fops;
	f->file.f_inode = &f->inode;
	ret = fops->open ? fops->open(&f->inode, &f->file) : 0;
	if (ret) {
		kfree(f);
		return ret;
	}
	return (long)f;
}

long hvkit_chardev_read(struct hvkit_file *f, char *buf, size_t count)
{
	loff_t pos = 0;
	return f->file.f_op->read ? f->file.f_op->read(&f->file, (char __user *)buf, count, &pos) : -EINVAL;
}

long hvkit_chardev_write(struct hvkit_file *f, const char *buf, size_t count)
{
	loff_t pos = 0;
	return f->file.f_op->write ? f->file.f_op->write(&f->file, (const char __user *)buf, count, &pos) : -EINVAL;
}

/* poll(2)'s revents (EPOLLIN, EPOLLHUP, ...); nothing is left waiting on the table. */
unsigned int hvkit_chardev_poll(struct hvkit_file *f)
{
	return f->file.f_op->poll ? f->file.f_op->poll(&f->file, NULL) : EPOLLIN | EPOLLOUT;
}

/* The last close(2): release, and the file is gone. */
void hvkit_chardev_release(struct hvkit_file *f)
{
	if (f->file.f_op->release)
		f->file.f_op->release(&f->inode, &f->file);
	kfree(f);
}
