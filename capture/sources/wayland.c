/* The wayland source: see wayland.h. */
#include "wayland.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <wayland-client.h>

#include "wlr-screencopy-unstable-v1-client-protocol.h"
#include "xdg-output-unstable-v1-client-protocol.h"

#include "../clock.h"
#include "../convert.h"
#include "../log.h"
#include "../scale.h"

#define MAX_OUTPUTS 16
#define OUTPUT_NAME_MAX 64
#define N_BUFFERS 2
/* Smaller than this an encoder cannot take it (and no real output is). */
#define MIN_SIDE 16
/* A copy fails when the output changes under it (a mode change between the buffer event and
 * the copy request): retried after RETRY_NS; MAX_FAILURES in a row (over a second) end it. */
#define RETRY_NS (10 * PC_NS_PER_MS)
#define MAX_FAILURES 100
/* The ready event's time is used when it is at most this old. */
#define MAX_PRESENTATION_AGE_NS PC_NS_PER_SEC

enum buffer_state {
	BUFFER_FREE,
	BUFFER_COPYING, /* the compositor copies into it */
	BUFFER_READY,   /* the newest picture, not taken yet */
	BUFFER_HELD,    /* take() converts from it */
};

struct shm_buffer {
	struct wl_buffer *wl_buffer;
	uint8_t *data;
	size_t size;
	int width, height, stride;
	uint32_t format;
	enum buffer_state state;
	/* What the copy into it said. */
	bool y_invert;
	int64_t capture_ns;
};

struct output {
	struct wl_output *wl_output;
	struct zxdg_output_v1 *xdg_output; /* for its name, when wl_output is older than v4 */
	uint32_t global;
	uint32_t version;
	char name[OUTPUT_NAME_MAX];
	int mode_width, mode_height; /* the current mode */
};

struct wayland {
	/* Set up by init; afterwards only the capture thread uses the connection. */
	struct wl_display *display;
	struct wl_registry *registry;
	struct wl_shm *shm;
	uint32_t shm_version;
	struct zwlr_screencopy_manager_v1 *manager;
	uint32_t manager_version;
	struct zxdg_output_manager_v1 *xdg_output_manager;
	struct output outputs[MAX_OUTPUTS];
	int n_outputs;
	struct output *target;
	bool cursor;
	char display_name[128];

	/* The capture thread's own. */
	pthread_t thread;
	bool thread_started;
	int stop_fd;
	bool dead; /* failed: the thread ends */
	struct zwlr_screencopy_frame_v1 *frame;
	bool offered; /* the frame's shm buffer parameters, when the format is one we convert */
	uint32_t offer_format, offer_unknown_format;
	int offer_width, offer_height, offer_stride;
	int copying; /* buffer index, -1 */
	int copied_width, copied_height; /* of the last copy that was ready */
	struct pc_damage frame_damage;
	bool frame_y_invert;
	int failures;
	int64_t retry_at; /* CLOCK_MONOTONIC, 0 = none */

	/* Shared between the thread and take(), under lock. */
	pthread_mutex_t lock;
	pthread_cond_t released;
	bool stopping;
	struct shm_buffer buf[N_BUFFERS];
	int ready; /* buffer index of the newest picture not taken yet, -1 */
	struct pc_damage pending;
	int error; /* 0, or the negative errno take() returns from now on */
	char error_msg[256];
	int ready_fd; /* eventfd: readable when there is news */

	/* take()'s own. */
	int want_width, want_height; /* 0 = the output's size */
	struct pc_frame native;      /* the kept picture at the output's (even) size */
	struct pc_frame scaled;      /* with want_*: native fitted into it */
	bool have_picture;
};

static void signal_news(struct wayland *wl)
{
	uint64_t one = 1;
	/* A full counter still polls readable: nothing to do on EAGAIN. */
	if (write(wl->ready_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		pc_log("wayland: eventfd write: %s", strerror(errno));
}

/* The first failure wins; take() reports it from now on and the thread stops. */
__attribute__((format(printf, 3, 4))) static void fail(struct wayland *wl, int err, const char *fmt, ...)
{
	pthread_mutex_lock(&wl->lock);
	if (!wl->error) {
		va_list args;
		va_start(args, fmt);
		vsnprintf(wl->error_msg, sizeof(wl->error_msg), fmt, args);
		va_end(args);
		wl->error = err < 0 ? err : -EIO;
	}
	pthread_mutex_unlock(&wl->lock);
	wl->dead = true;
	signal_news(wl);
}

static void fail_connection(struct wayland *wl)
{
	int err = wl_display_get_error(wl->display);
	if (err == EPROTO) {
		const struct wl_interface *iface = NULL;
		uint32_t id = 0;
		uint32_t code = wl_display_get_protocol_error(wl->display, &iface, &id);
		fail(wl, -EPROTO, "wayland: the compositor reported protocol error %u on %s@%u", code,
		     iface ? iface->name : "?", id);
		return;
	}
	if (!err)
		err = errno ? errno : EPIPE;
	fail(wl, -err, "wayland: lost the connection to the compositor (%s): %s", wl->display_name,
	     strerror(err));
}

/* ---- shared-memory buffers ---- */

static void buffer_release(struct shm_buffer *b)
{
	if (b->wl_buffer)
		wl_buffer_destroy(b->wl_buffer);
	if (b->data)
		munmap(b->data, b->size);
	b->wl_buffer = NULL;
	b->data = NULL;
	b->size = 0;
	b->width = b->height = b->stride = 0;
}

/* A buffer of the offered geometry. 0, or a negative errno with the reason logged. */
static int buffer_create(struct wayland *wl, struct shm_buffer *b)
{
	size_t size = (size_t)wl->offer_stride * (size_t)wl->offer_height;
	int ret;
	int fd = memfd_create("p2pcast-capture-screencopy", MFD_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		pc_log("wayland: memfd_create: %s", strerror(errno));
		return ret;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		ret = -errno;
		pc_log("wayland: ftruncate %zu bytes: %s", size, strerror(errno));
		goto error;
	}
	b->data = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (b->data == MAP_FAILED) {
		ret = -errno;
		b->data = NULL;
		pc_log("wayland: mmap %zu bytes: %s", size, strerror(errno));
		goto error;
	}
	b->size = size;
	struct wl_shm_pool *pool = wl_shm_create_pool(wl->shm, fd, (int32_t)size);
	b->wl_buffer = wl_shm_pool_create_buffer(pool, 0, wl->offer_width, wl->offer_height,
						 wl->offer_stride, wl->offer_format);
	wl_shm_pool_destroy(pool); /* the buffer keeps the memory */
	close(fd);
	b->width = wl->offer_width;
	b->height = wl->offer_height;
	b->stride = wl->offer_stride;
	b->format = wl->offer_format;
	return 0;

error:
	close(fd);
	buffer_release(b);
	return ret;
}

/* ---- screencopy frames (the capture thread) ---- */

static const struct zwlr_screencopy_frame_v1_listener frame_listener;

static void request_frame(struct wayland *wl)
{
	wl->frame = zwlr_screencopy_manager_v1_capture_output(wl->manager, wl->cursor ? 1 : 0,
							      wl->target->wl_output);
	zwlr_screencopy_frame_v1_add_listener(wl->frame, &frame_listener, wl);
	wl->offered = false;
	wl->offer_unknown_format = UINT32_MAX;
	pc_damage_clear(&wl->frame_damage);
	wl->frame_y_invert = false;
}

static void drop_frame(struct wayland *wl)
{
	if (wl->frame)
		zwlr_screencopy_frame_v1_destroy(wl->frame);
	wl->frame = NULL;
}

/* Copies the frame into a free buffer of its geometry once the compositor said what it takes. */
static void start_copy(struct wayland *wl)
{
	if (!wl->offered) {
		char name[16];
		fail(wl, -ENOTSUP,
		     "wayland: output %s: the compositor offers no shared-memory format this source converts (%s; wanted XRGB8888, ARGB8888, XBGR8888 or ABGR8888)",
		     wl->target->name,
		     wl->offer_unknown_format == UINT32_MAX ? "none" : pc_convert_format_name(wl->offer_unknown_format, name, sizeof(name)));
		return;
	}

	/* Of the pair, at most one is ready and one held (by take(), for the few milliseconds of
	 * a conversion): wait for it only when both are busy. A buffer of the right geometry is
	 * preferred, so a resize reallocates one buffer at a time. */
	pthread_mutex_lock(&wl->lock);
	int pick = -1;
	while (!wl->stopping) {
		for (int i = 0; i < N_BUFFERS; i++) {
			struct shm_buffer *b = &wl->buf[i];
			if (b->state != BUFFER_FREE)
				continue;
			if (pick < 0 || (b->width == wl->offer_width && b->height == wl->offer_height &&
					 b->stride == wl->offer_stride && b->format == wl->offer_format))
				pick = i;
		}
		if (pick >= 0)
			break;
		pthread_cond_wait(&wl->released, &wl->lock);
	}
	if (pick >= 0)
		wl->buf[pick].state = BUFFER_COPYING;
	pthread_mutex_unlock(&wl->lock);
	if (pick < 0)
		return; /* stopping */

	struct shm_buffer *b = &wl->buf[pick];
	if (b->width != wl->offer_width || b->height != wl->offer_height || b->stride != wl->offer_stride ||
	    b->format != wl->offer_format) {
		buffer_release(b);
		int ret = buffer_create(wl, b);
		if (ret < 0) {
			fail(wl, ret, "wayland: cannot make a %dx%d shared-memory buffer: %s", wl->offer_width,
			     wl->offer_height, strerror(-ret));
			return;
		}
	}
	wl->copying = pick;
	/* wlroots gives a frame of the old size the damage of a mode change (its copy reads the
	 * old size's worth of the new picture): the first frame at a new size must not wait for
	 * more damage, which may never come. A plain copy takes the next frame whatever it is. */
	if (wl->offer_width == wl->copied_width && wl->offer_height == wl->copied_height)
		zwlr_screencopy_frame_v1_copy_with_damage(wl->frame, b->wl_buffer);
	else
		zwlr_screencopy_frame_v1_copy(wl->frame, b->wl_buffer);
}

static void frame_buffer(void *data, struct zwlr_screencopy_frame_v1 *frame, uint32_t format,
			 uint32_t width, uint32_t height, uint32_t stride)
{
	(void)frame;
	struct wayland *wl = data;
	if (!pc_convert_format_known(format) || width > INT16_MAX || height > INT16_MAX ||
	    stride < width * 4 || stride > INT16_MAX * 8) {
		wl->offer_unknown_format = format;
		return;
	}
	wl->offered = true;
	wl->offer_format = format;
	wl->offer_width = (int)width;
	wl->offer_height = (int)height;
	wl->offer_stride = (int)stride;
	/* Before version 3 there is no buffer_done: this is the only offer. */
	if (wl->manager_version < 3)
		start_copy(wl);
}

static void frame_linux_dmabuf(void *data, struct zwlr_screencopy_frame_v1 *frame, uint32_t format,
			       uint32_t width, uint32_t height)
{
	(void)data, (void)frame, (void)format, (void)width, (void)height; /* shm only */
}

static void frame_buffer_done(void *data, struct zwlr_screencopy_frame_v1 *frame)
{
	(void)frame;
	start_copy(data);
}

static void frame_flags(void *data, struct zwlr_screencopy_frame_v1 *frame, uint32_t flags)
{
	(void)frame;
	struct wayland *wl = data;
	wl->frame_y_invert = flags & ZWLR_SCREENCOPY_FRAME_V1_FLAGS_Y_INVERT;
}

static void frame_damage(void *data, struct zwlr_screencopy_frame_v1 *frame, uint32_t x, uint32_t y,
			 uint32_t width, uint32_t height)
{
	(void)frame;
	struct wayland *wl = data;
	/* Clipped to the buffer here, so the numbers stay ints. */
	int64_t bw = wl->offer_width, bh = wl->offer_height;
	int64_t x0 = x, y0 = y, x1 = x0 + width, y1 = y0 + height;
	if (x0 >= bw || y0 >= bh || width == 0 || height == 0)
		return;
	x1 = x1 > bw ? bw : x1;
	y1 = y1 > bh ? bh : y1;
	pc_damage_add(&wl->frame_damage, (struct pc_rect){(int)x0, (int)y0, (int)(x1 - x0), (int)(y1 - y0)});
}

/* CLOCK_REALTIME of a presentation time in CLOCK_MONOTONIC (wlroots' presentation clock). */
static int64_t capture_time(uint32_t sec_hi, uint32_t sec_lo, uint32_t nsec)
{
	int64_t now_mono = pc_clock_ns(CLOCK_MONOTONIC);
	int64_t now_real = pc_clock_ns(CLOCK_REALTIME);
	uint64_t sec = (uint64_t)sec_hi << 32 | sec_lo;
	if (sec > (uint64_t)(INT64_MAX / PC_NS_PER_SEC) - 1 || nsec >= PC_NS_PER_SEC)
		return now_real;
	int64_t presented = (int64_t)sec * PC_NS_PER_SEC + nsec;
	int64_t age = now_mono - presented;
	if (age < 0 || age > MAX_PRESENTATION_AGE_NS)
		return now_real;
	return now_real - age;
}

static void frame_ready(void *data, struct zwlr_screencopy_frame_v1 *frame, uint32_t sec_hi,
			uint32_t sec_lo, uint32_t nsec)
{
	(void)frame;
	struct wayland *wl = data;
	struct shm_buffer *b = &wl->buf[wl->copying];
	int64_t capture_ns = capture_time(sec_hi, sec_lo, nsec);

	/* No damage event at all: take it as all changed. */
	if (wl->frame_damage.n == 0)
		pc_damage_add(&wl->frame_damage, (struct pc_rect){0, 0, b->width, b->height});

	pthread_mutex_lock(&wl->lock);
	b->state = BUFFER_READY;
	b->y_invert = wl->frame_y_invert;
	b->capture_ns = capture_ns;
	if (wl->ready >= 0)
		wl->buf[wl->ready].state = BUFFER_FREE; /* coalesced: its damage stays in pending */
	wl->ready = wl->copying;
	pc_damage_merge(&wl->pending, &wl->frame_damage);
	pthread_mutex_unlock(&wl->lock);

	wl->copying = -1;
	wl->failures = 0;
	wl->copied_width = b->width;
	wl->copied_height = b->height;
	drop_frame(wl);
	signal_news(wl);
	request_frame(wl);
}

static void frame_failed(void *data, struct zwlr_screencopy_frame_v1 *frame)
{
	(void)frame;
	struct wayland *wl = data;
	if (wl->copying >= 0) {
		pthread_mutex_lock(&wl->lock);
		wl->buf[wl->copying].state = BUFFER_FREE;
		pthread_mutex_unlock(&wl->lock);
		wl->copying = -1;
	}
	drop_frame(wl);
	if (++wl->failures >= MAX_FAILURES) {
		fail(wl, -EIO, "wayland: output %s: the compositor failed %d copies in a row (output disabled?)",
		     wl->target->name, wl->failures);
		return;
	}
	wl->retry_at = pc_clock_ns(CLOCK_MONOTONIC) + RETRY_NS;
}

static const struct zwlr_screencopy_frame_v1_listener frame_listener = {
	.buffer = frame_buffer,
	.flags = frame_flags,
	.ready = frame_ready,
	.failed = frame_failed,
	.damage = frame_damage,
	.linux_dmabuf = frame_linux_dmabuf,
	.buffer_done = frame_buffer_done,
};

/* ---- outputs and globals ---- */

static void output_geometry(void *data, struct wl_output *wl_output, int32_t x, int32_t y,
			    int32_t physical_width, int32_t physical_height, int32_t subpixel,
			    const char *make, const char *model, int32_t transform)
{
	(void)data, (void)wl_output, (void)x, (void)y, (void)physical_width, (void)physical_height;
	(void)subpixel, (void)make, (void)model, (void)transform;
}

static void output_mode(void *data, struct wl_output *wl_output, uint32_t flags, int32_t width,
			int32_t height, int32_t refresh)
{
	(void)wl_output, (void)refresh;
	struct output *o = data;
	if (flags & WL_OUTPUT_MODE_CURRENT) {
		o->mode_width = width;
		o->mode_height = height;
	}
}

static void output_done(void *data, struct wl_output *wl_output)
{
	(void)data, (void)wl_output;
}

static void output_scale(void *data, struct wl_output *wl_output, int32_t factor)
{
	(void)data, (void)wl_output, (void)factor;
}

static void output_name(void *data, struct wl_output *wl_output, const char *name)
{
	(void)wl_output;
	struct output *o = data;
	snprintf(o->name, sizeof(o->name), "%s", name);
}

static void output_description(void *data, struct wl_output *wl_output, const char *description)
{
	(void)data, (void)wl_output, (void)description;
}

static const struct wl_output_listener output_listener = {
	.geometry = output_geometry,
	.mode = output_mode,
	.done = output_done,
	.scale = output_scale,
	.name = output_name,
	.description = output_description,
};

static void xdg_output_position(void *data, struct zxdg_output_v1 *xdg_output, int32_t x, int32_t y)
{
	(void)data, (void)xdg_output, (void)x, (void)y;
}

static void xdg_output_size(void *data, struct zxdg_output_v1 *xdg_output, int32_t width, int32_t height)
{
	(void)data, (void)xdg_output, (void)width, (void)height;
}

static void xdg_output_done(void *data, struct zxdg_output_v1 *xdg_output)
{
	(void)data, (void)xdg_output;
}

static void xdg_output_name(void *data, struct zxdg_output_v1 *xdg_output, const char *name)
{
	(void)xdg_output;
	struct output *o = data;
	if (!o->name[0])
		snprintf(o->name, sizeof(o->name), "%s", name);
}

static void xdg_output_description(void *data, struct zxdg_output_v1 *xdg_output, const char *description)
{
	(void)data, (void)xdg_output, (void)description;
}

static const struct zxdg_output_v1_listener xdg_output_listener = {
	.logical_position = xdg_output_position,
	.logical_size = xdg_output_size,
	.done = xdg_output_done,
	.name = xdg_output_name,
	.description = xdg_output_description,
};

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static void registry_global(void *data, struct wl_registry *registry, uint32_t name,
			    const char *interface, uint32_t version)
{
	struct wayland *wl = data;
	if (strcmp(interface, wl_shm_interface.name) == 0 && !wl->shm) {
		wl->shm_version = min_u32(version, 1);
		wl->shm = wl_registry_bind(registry, name, &wl_shm_interface, wl->shm_version);
	} else if (strcmp(interface, zwlr_screencopy_manager_v1_interface.name) == 0 && !wl->manager) {
		wl->manager_version = min_u32(version, 3);
		wl->manager = wl_registry_bind(registry, name, &zwlr_screencopy_manager_v1_interface,
					       wl->manager_version);
	} else if (strcmp(interface, zxdg_output_manager_v1_interface.name) == 0 && !wl->xdg_output_manager &&
		   version >= 2) {
		/* Version 2 brought the name event. */
		wl->xdg_output_manager = wl_registry_bind(registry, name, &zxdg_output_manager_v1_interface,
							  min_u32(version, 3));
	} else if (strcmp(interface, wl_output_interface.name) == 0 && wl->n_outputs < MAX_OUTPUTS &&
		   !wl->thread_started) {
		/* Outputs that come later are not ours to capture: --output chose at start. */
		struct output *o = &wl->outputs[wl->n_outputs++];
		o->global = name;
		o->version = min_u32(version, 4); /* 4: the name event */
		o->wl_output = wl_registry_bind(registry, name, &wl_output_interface, o->version);
		wl_output_add_listener(o->wl_output, &output_listener, o);
	}
}

static void registry_global_remove(void *data, struct wl_registry *registry, uint32_t name)
{
	(void)registry;
	struct wayland *wl = data;
	if (wl->target && wl->target->global == name)
		fail(wl, -ENODEV, "wayland: output %s was removed", wl->target->name);
}

static const struct wl_registry_listener registry_listener = {
	.global = registry_global,
	.global_remove = registry_global_remove,
};

/* ---- the capture thread ---- */

static void *capture_thread(void *arg)
{
	struct wayland *wl = arg;
	int fd = wl_display_get_fd(wl->display);

	while (!wl->dead) {
		int64_t now = pc_clock_ns(CLOCK_MONOTONIC);
		if (!wl->frame && wl->retry_at && now >= wl->retry_at) {
			wl->retry_at = 0;
			request_frame(wl);
		}
		while (wl_display_prepare_read(wl->display) != 0) {
			if (wl_display_dispatch_pending(wl->display) < 0) {
				fail_connection(wl);
				return NULL;
			}
		}
		if (wl->dead) {
			wl_display_cancel_read(wl->display);
			break;
		}
		if (wl_display_flush(wl->display) < 0 && errno != EAGAIN) {
			wl_display_cancel_read(wl->display);
			fail_connection(wl);
			break;
		}
		int timeout = -1;
		if (wl->retry_at)
			timeout = wl->retry_at > now ? (int)((wl->retry_at - now + PC_NS_PER_MS - 1) / PC_NS_PER_MS) : 0;
		struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = wl->stop_fd, .events = POLLIN}};
		int n = poll(pfd, 2, timeout);
		if (n < 0 && errno != EINTR) {
			int err = errno;
			wl_display_cancel_read(wl->display);
			fail(wl, -err, "wayland: poll: %s", strerror(err));
			break;
		}
		if (n > 0 && pfd[1].revents) {
			wl_display_cancel_read(wl->display);
			break;
		}
		if (n > 0 && pfd[0].revents) {
			if (wl_display_read_events(wl->display) < 0) {
				fail_connection(wl);
				break;
			}
		} else {
			wl_display_cancel_read(wl->display);
		}
		if (wl_display_dispatch_pending(wl->display) < 0) {
			fail_connection(wl);
			break;
		}
	}
	return NULL;
}

/* ---- the source ---- */

static void wayland_destroy(void *state)
{
	struct wayland *wl = state;
	if (!wl)
		return;
	if (wl->thread_started) {
		uint64_t one = 1;
		pthread_mutex_lock(&wl->lock);
		wl->stopping = true;
		pthread_cond_broadcast(&wl->released);
		pthread_mutex_unlock(&wl->lock);
		if (write(wl->stop_fd, &one, sizeof(one)) < 0)
			pc_log("wayland: eventfd write: %s", strerror(errno));
		pthread_join(wl->thread, NULL);
	}
	drop_frame(wl);
	for (int i = 0; i < N_BUFFERS; i++)
		buffer_release(&wl->buf[i]);
	for (int i = 0; i < wl->n_outputs; i++) {
		struct output *o = &wl->outputs[i];
		if (o->xdg_output)
			zxdg_output_v1_destroy(o->xdg_output);
		if (o->wl_output && o->version >= WL_OUTPUT_RELEASE_SINCE_VERSION)
			wl_output_release(o->wl_output);
		else if (o->wl_output)
			wl_output_destroy(o->wl_output);
	}
	if (wl->xdg_output_manager)
		zxdg_output_manager_v1_destroy(wl->xdg_output_manager);
	if (wl->manager)
		zwlr_screencopy_manager_v1_destroy(wl->manager);
	if (wl->shm)
		wl_shm_destroy(wl->shm);
	if (wl->registry)
		wl_registry_destroy(wl->registry);
	if (wl->display) {
		wl_display_flush(wl->display);
		wl_display_disconnect(wl->display);
	}
	if (wl->stop_fd >= 0)
		close(wl->stop_fd);
	if (wl->ready_fd >= 0)
		close(wl->ready_fd);
	pc_frame_free(&wl->native);
	pc_frame_free(&wl->scaled);
	pthread_cond_destroy(&wl->released);
	pthread_mutex_destroy(&wl->lock);
	free(wl);
}

/* "HEADLESS-1 1920x1080, DP-2 2560x1440" into buf. */
static void list_outputs(const struct wayland *wl, char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; i < wl->n_outputs && used < size; i++) {
		const struct output *o = &wl->outputs[i];
		int n = snprintf(buf + used, size - used, "%s%s %dx%d", i ? ", " : "",
				 o->name[0] ? o->name : "(unnamed)", o->mode_width, o->mode_height);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

int pc_wayland_init(void **state, const struct pc_source_config *config, const struct pc_wayland_options *options,
		    char *err, size_t err_size)
{
	struct wayland *wl = calloc(1, sizeof(*wl));
	int ret;
	if (!wl) {
		snprintf(err, err_size, "wayland: out of memory");
		return -ENOMEM;
	}
	wl->stop_fd = wl->ready_fd = -1;
	wl->ready = wl->copying = -1;
	wl->cursor = options->cursor;
	wl->want_width = config->width;
	wl->want_height = config->height;
	pthread_mutex_init(&wl->lock, NULL);
	pthread_cond_init(&wl->released, NULL);

	const char *runtime_dir = getenv("XDG_RUNTIME_DIR");
	const char *display = getenv("WAYLAND_DISPLAY");
	snprintf(wl->display_name, sizeof(wl->display_name), "%s/%s", runtime_dir ? runtime_dir : "$XDG_RUNTIME_DIR",
		 display ? display : "wayland-0");
	wl->display = wl_display_connect(NULL);
	if (!wl->display) {
		ret = errno ? -errno : -ECONNREFUSED;
		snprintf(err, err_size, "wayland: cannot connect to the compositor at %s (WAYLAND_DISPLAY, XDG_RUNTIME_DIR): %s",
			 wl->display_name, strerror(-ret));
		goto error;
	}
	wl->registry = wl_display_get_registry(wl->display);
	wl_registry_add_listener(wl->registry, &registry_listener, wl);
	if (wl_display_roundtrip(wl->display) < 0)
		goto lost;
	if (!wl->manager) {
		ret = -ENOTSUP;
		snprintf(err, err_size, "wayland: no zwlr_screencopy_manager_v1: not a wlroots compositor; use the portal");
		goto error;
	}
	if (wl->manager_version < 2) {
		ret = -ENOTSUP;
		snprintf(err, err_size, "wayland: zwlr_screencopy_manager_v1 version %u has no copy_with_damage (version 2, wlroots 0.9): compositor too old",
			 wl->manager_version);
		goto error;
	}
	if (!wl->shm) {
		ret = -ENOTSUP;
		snprintf(err, err_size, "wayland: the compositor offers no wl_shm");
		goto error;
	}
	for (int i = 0; i < wl->n_outputs; i++) {
		struct output *o = &wl->outputs[i];
		if (o->version < WL_OUTPUT_NAME_SINCE_VERSION && wl->xdg_output_manager) {
			o->xdg_output = zxdg_output_manager_v1_get_xdg_output(wl->xdg_output_manager, o->wl_output);
			zxdg_output_v1_add_listener(o->xdg_output, &xdg_output_listener, o);
		}
	}
	/* The outputs' names and modes. */
	if (wl_display_roundtrip(wl->display) < 0)
		goto lost;

	if (wl->n_outputs == 0) {
		ret = -ENODEV;
		snprintf(err, err_size, "wayland: the compositor has no outputs");
		goto error;
	}
	for (int i = 0; i < wl->n_outputs && options->output; i++)
		if (strcmp(wl->outputs[i].name, options->output) == 0)
			wl->target = &wl->outputs[i];
	if (!options->output)
		wl->target = &wl->outputs[0];
	if (!wl->target) {
		char list[160];
		list_outputs(wl, list, sizeof(list));
		ret = -EINVAL;
		snprintf(err, err_size, "wayland: no output named '%s' (outputs: %s)", options->output, list);
		goto error;
	}
	if (!wl->target->name[0])
		snprintf(wl->target->name, sizeof(wl->target->name), "#%d", (int)(wl->target - wl->outputs));

	wl->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	wl->ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wl->stop_fd < 0 || wl->ready_fd < 0) {
		ret = -errno;
		snprintf(err, err_size, "wayland: eventfd: %s", strerror(errno));
		goto error;
	}

	request_frame(wl);
	wl->thread_started = true; /* before the thread reads it (registry_global) */
	ret = -pthread_create(&wl->thread, NULL, capture_thread, wl);
	if (ret < 0) {
		wl->thread_started = false;
		snprintf(err, err_size, "wayland: pthread_create: %s", strerror(-ret));
		goto error;
	}
	pthread_setname_np(wl->thread, "pc-wayland");
	pc_log("wayland: capturing output %s (%dx%d) of %s with zwlr_screencopy_manager_v1 version %u, cursor %s",
	       wl->target->name, wl->target->mode_width, wl->target->mode_height, wl->display_name,
	       wl->manager_version, wl->cursor ? "drawn" : "left out");
	*state = wl;
	return 0;

lost:
	ret = -(wl_display_get_error(wl->display) ? wl_display_get_error(wl->display) : EPIPE);
	snprintf(err, err_size, "wayland: lost the connection to the compositor at %s: %s", wl->display_name,
		 strerror(-ret));
error:
	wayland_destroy(wl);
	return ret;
}

static int wayland_init(void **state, const struct pc_source_config *config, char *err, size_t err_size)
{
	const struct pc_wayland_options defaults = {.output = NULL, .cursor = true};
	return pc_wayland_init(state, config, &defaults, err, err_size);
}

static int wayland_wait_fd(void *state)
{
	struct wayland *wl = state;
	return wl->ready_fd;
}

static int wayland_take(void *state, struct pc_source_picture *out, char *err, size_t err_size)
{
	struct wayland *wl = state;
	uint64_t count;
	/* Reset before looking: news published after the look signals again. */
	if (read(wl->ready_fd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
		snprintf(err, err_size, "wayland: eventfd read: %s", strerror(errno));
		return -errno;
	}

	pthread_mutex_lock(&wl->lock);
	if (wl->error) {
		int ret = wl->error;
		snprintf(err, err_size, "%s", wl->error_msg);
		pthread_mutex_unlock(&wl->lock);
		return ret;
	}
	if (wl->ready < 0) {
		pthread_mutex_unlock(&wl->lock);
		return 0;
	}
	struct shm_buffer *b = &wl->buf[wl->ready];
	wl->ready = -1;
	b->state = BUFFER_HELD;
	struct pc_damage damage = wl->pending;
	pc_damage_clear(&wl->pending);
	pthread_mutex_unlock(&wl->lock);

	/* Odd sizes lose their last column or row: I420 wants even ones. */
	int width = b->width & ~1, height = b->height & ~1;
	int ret = 0;
	struct pc_rect changed = {0, 0, 0, 0};
	if (width < MIN_SIDE || height < MIN_SIDE) {
		ret = -ERANGE;
		snprintf(err, err_size, "wayland: output %s is %dx%d: too small to encode", wl->target->name, b->width,
			 b->height);
		goto release;
	}
	bool whole = !wl->have_picture || wl->native.width != width || wl->native.height != height;
	if (wl->native.width != width || wl->native.height != height) {
		pc_frame_free(&wl->native);
		if (pc_frame_alloc(&wl->native, width, height) < 0) {
			ret = -ENOMEM;
			snprintf(err, err_size, "wayland: out of memory for a %dx%d picture", width, height);
			goto release;
		}
	}
	struct pc_pixels pixels = {b->data, b->width, b->height, b->stride, b->format, b->y_invert};
	if (whole) {
		changed = (struct pc_rect){0, 0, width, height};
		pc_convert_rect(&pixels, &wl->native, changed);
	} else {
		for (int i = 0; i < damage.n; i++) {
			struct pc_rect r = damage.rect[i];
			if (!pc_rect_even(&r, width, height))
				continue;
			pc_convert_rect(&pixels, &wl->native, r);
			changed = pc_rect_union(changed, r);
		}
	}
	out->capture_ns = b->capture_ns;

release:
	pthread_mutex_lock(&wl->lock);
	b->state = BUFFER_FREE;
	pthread_cond_signal(&wl->released);
	pthread_mutex_unlock(&wl->lock);
	if (ret < 0)
		return ret;

	wl->have_picture = true;
	out->frame = &wl->native;
	out->damage = changed;
	if (wl->want_width) {
		if (!wl->scaled.plane[0] && pc_frame_alloc(&wl->scaled, wl->want_width, wl->want_height) < 0) {
			snprintf(err, err_size, "wayland: out of memory for a %dx%d picture", wl->want_width,
				 wl->want_height);
			return -ENOMEM;
		}
		struct pc_rect placed;
		pc_convert_fit(&wl->native, &wl->scaled, &placed);
		out->frame = &wl->scaled;
		out->damage = whole ? (struct pc_rect){0, 0, wl->want_width, wl->want_height} : placed;
	}
	return 1;
}

const struct pc_source_ops pc_wayland_source = {
	.name = "wayland",
	.init = wayland_init,
	.destroy = wayland_destroy,
	.wait_fd = wayland_wait_fd,
	.take = wayland_take,
};
