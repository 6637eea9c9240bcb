/* The real V4L2 calls (v4l2_io.h). */
#include "v4l2_io.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../clock.h"

static int sys_open(void *ctx, const char *path, int flags)
{
	(void)ctx;
	return open(path, flags);
}

static int sys_close(void *ctx, int fd)
{
	(void)ctx;
	return close(fd);
}

/* A signal may interrupt any ioctl: it is simply asked again. */
static int sys_ioctl(void *ctx, int fd, unsigned long request, void *arg)
{
	(void)ctx;
	int ret;
	do {
		ret = ioctl(fd, request, arg);
	} while (ret < 0 && errno == EINTR);
	return ret;
}

static void *sys_mmap(void *ctx, size_t length, int prot, int flags, int fd, off_t offset)
{
	(void)ctx;
	return mmap(NULL, length, prot, flags, fd, offset);
}

static int sys_munmap(void *ctx, void *addr, size_t length)
{
	(void)ctx;
	return munmap(addr, length);
}

static int64_t sys_clock_ns(void *ctx, clockid_t clock)
{
	(void)ctx;
	return pc_clock_ns(clock);
}

const struct pc_v4l2_io pc_v4l2_io_system = {
	.open = sys_open,
	.close = sys_close,
	.ioctl = sys_ioctl,
	.mmap = sys_mmap,
	.munmap = sys_munmap,
	.clock_ns = sys_clock_ns,
};
