/* The calls the V4L2 source makes to the kernel, through a table of function pointers, so the
 * tests can put a fake camera behind them (this machine has no /dev/video*).
 *
 * pc_v4l2_io_system is the real one: open(2), close(2), ioctl(2) (EINTR retried), mmap(2),
 * munmap(2) and clock_gettime(2). A stand-in implements the same calls on its own state (ctx);
 * its open must return a descriptor that poll(2) works on (the source's wait_fd: readable when
 * a buffer can be dequeued, or when the device is gone), such as an eventfd. */
#ifndef PC_V4L2_IO_H
#define PC_V4L2_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct pc_v4l2_io {
	void *ctx;
	/* The same contracts as the system calls: -1 with errno set on failure. */
	int (*open)(void *ctx, const char *path, int flags);
	int (*close)(void *ctx, int fd);
	int (*ioctl)(void *ctx, int fd, unsigned long request, void *arg);
	void *(*mmap)(void *ctx, size_t length, int prot, int flags, int fd, off_t offset);
	int (*munmap)(void *ctx, void *addr, size_t length);
	/* clock_gettime in nanoseconds: the tests move the clocks. */
	int64_t (*clock_ns)(void *ctx, clockid_t clock);
};

extern const struct pc_v4l2_io pc_v4l2_io_system;

#endif
