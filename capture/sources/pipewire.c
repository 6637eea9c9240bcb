/* The pipewire source: see pipewire.h.
 *
 * Threads: the pw_thread_loop's thread ("pc-pipewire") runs every PipeWire callback with the
 * loop's lock held; take() runs on the producer's thread and holds the same lock while it
 * converts the held buffer (a few milliseconds at most), so the buffer cannot be renegotiated
 * away under it, and gives the buffer back to the stream before it lets go. The eventfd says
 * when there is news. */
#include "pipewire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libyuv.h>
#include <pipewire/pipewire.h>
#include <spa/param/video/format-utils.h>
#include <spa/utils/result.h>

#include "../clock.h"
#include "../convert.h"
#include "../log.h"
#include "../scale.h"

/* Smaller than this an encoder cannot take it (and no real screen is). */
#define MIN_SIDE 16
#define MAX_SIDE 16384
/* The header's pts is used when it is at most this old. */
#define MAX_PTS_AGE_NS PC_NS_PER_SEC
/* Damage rectangles asked for per buffer (mutter sends up to 32, then the whole frame). */
#define DAMAGE_RECTS 32
/* The largest cursor image asked for (as gnome-remote-desktop does: HiDPI cursors are big). */
#define CURSOR_MAX 384
#define CURSOR_META_SIZE(w, h) \
	((int)(sizeof(struct spa_meta_cursor) + sizeof(struct spa_meta_bitmap) + (size_t)(w) * (size_t)(h) * 4))

/* What the stream offers, and how convert.c reads it: PipeWire names formats by bytes in
 * memory (BGRx is B, G, R, x), wl_shm by a little-endian word (XRGB8888: the same bytes). */
struct format {
	uint32_t spa;
	uint32_t shm;
	const char *name;
};

static const struct format formats[] = {
	{SPA_VIDEO_FORMAT_BGRx, PC_SHM_XRGB8888, "BGRx"},
	{SPA_VIDEO_FORMAT_RGBx, PC_SHM_XBGR8888, "RGBx"},
	{SPA_VIDEO_FORMAT_BGRA, PC_SHM_ARGB8888, "BGRA"},
	{SPA_VIDEO_FORMAT_RGBA, PC_SHM_ABGR8888, "RGBA"},
};

/* The pointer as the cursor metadata last described it. */
struct cursor {
	bool visible;          /* a valid cursor with an image */
	int pos_x, pos_y;      /* the hotspot's place on the picture */
	int hot_x, hot_y;
	int w, h;              /* the image's size; 0 = none (an empty sprite) */
	/* Per pixel: premultiplied luma, Cb and Cr without their offsets, times 256 (libyuv's
	 * BT.601 limited-range coefficients), and alpha. */
	int32_t *ycc;
	uint8_t *alpha;
	size_t capacity;       /* pixels ycc and alpha hold */
};

struct pipewire {
	/* Set up by init. */
	struct pw_thread_loop *loop;
	struct pw_context *context;
	struct pw_core *core;
	struct spa_hook core_listener;
	bool core_listening;
	struct pw_registry *registry;
	struct spa_hook registry_listener;
	bool registry_listening;
	struct pw_stream *stream;
	struct spa_hook stream_listener;
	bool stream_listening;
	uint32_t node;
	char remote[192]; /* "fd 3" or the socket's path, for messages */
	bool cursor_wanted;
	uint32_t fps_num, fps_den;
	int ready_fd; /* eventfd: readable when there is news */

	/* Under the loop's lock. */
	int sync_seq;
	bool synced;
	bool node_listed; /* the daemon's registry has the node */
	char node_serial[24];
	enum pw_stream_state state;
	const struct format *format; /* negotiated, NULL before */
	int width, height;
	struct pw_buffer *ready;     /* the newest usable buffer, not taken yet */
	struct pc_pixels ready_pixels;
	int64_t ready_ns;
	struct pc_damage pending;    /* of ready and the buffers it replaced */
	struct cursor cursor;
	bool cursor_news;
	bool warned_buffer, warned_bitmap;
	uint64_t skipped;            /* corrupted or empty buffers */
	int error;                   /* 0, or the negative errno take() returns from now on */
	char error_msg[256];

	/* take()'s own (it holds the lock, so the loop thread never sees them change). */
	int want_width, want_height; /* 0 = the stream's size */
	struct pc_frame screen;      /* the stream's picture, at its (even) size */
	struct pc_frame shown;       /* screen with the cursor drawn in, once there was one */
	struct pc_frame scaled;      /* with want_*: the picture fitted into it */
	bool have_picture;
	bool drawing;                /* shown is in use */
	struct pc_rect drawn;        /* where the cursor is drawn in shown */
};

static void signal_news(struct pipewire *pw)
{
	uint64_t one = 1;
	/* A full counter still polls readable: nothing to do on EAGAIN. */
	if (write(pw->ready_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		pc_log("pipewire: eventfd write: %s", strerror(errno));
}

/* The first failure wins; take() reports it from now on. Called with the loop's lock held. */
__attribute__((format(printf, 3, 4))) static void fail(struct pipewire *pw, int err, const char *fmt, ...)
{
	if (!pw->error) {
		va_list args;
		va_start(args, fmt);
		vsnprintf(pw->error_msg, sizeof(pw->error_msg), fmt, args);
		va_end(args);
		pw->error = err < 0 ? err : -EIO;
	}
	signal_news(pw);
	pw_thread_loop_signal(pw->loop, false); /* init may wait for this */
}

static const struct format *format_of(uint32_t spa)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (formats[i].spa == spa)
			return &formats[i];
	return NULL;
}

/* ---- the daemon ---- */

static void on_core_done(void *data, uint32_t id, int seq)
{
	struct pipewire *pw = data;
	if (id == PW_ID_CORE && seq == pw->sync_seq) {
		pw->synced = true;
		pw_thread_loop_signal(pw->loop, false);
	}
}

static void on_core_error(void *data, uint32_t id, int seq, int res, const char *message)
{
	(void)seq;
	struct pipewire *pw = data;
	if (id != PW_ID_CORE) {
		/* The stream's own errors come through its state too. */
		pc_log("pipewire: error on object %u: %s (%s)", id, message ? message : "", spa_strerror(res));
		return;
	}
	if (res == -EPIPE)
		fail(pw, -EPIPE, "pipewire: lost the connection to the PipeWire daemon (%s): %s", pw->remote,
		     message ? message : "hung up");
	else
		fail(pw, res, "pipewire: the PipeWire daemon (%s) reported: %s (%s)", pw->remote, message ? message : "",
		     spa_strerror(res));
}

static const struct pw_core_events core_events = {
	PW_VERSION_CORE_EVENTS,
	.done = on_core_done,
	.error = on_core_error,
};

static void on_registry_global(void *data, uint32_t id, uint32_t permissions, const char *type, uint32_t version,
			       const struct spa_dict *props)
{
	(void)permissions, (void)version;
	struct pipewire *pw = data;
	if (id != pw->node || strcmp(type, PW_TYPE_INTERFACE_Node) != 0)
		return;
	pw->node_listed = true;
	const char *serial = props ? spa_dict_lookup(props, PW_KEY_OBJECT_SERIAL) : NULL;
	if (serial)
		snprintf(pw->node_serial, sizeof(pw->node_serial), "%s", serial);
}

static void on_registry_global_remove(void *data, uint32_t id)
{
	struct pipewire *pw = data;
	if (id == pw->node && pw->node_listed)
		fail(pw, -ENODEV, "pipewire: node %u was removed (the screen cast ended)", pw->node);
}

static const struct pw_registry_events registry_events = {
	PW_VERSION_REGISTRY_EVENTS,
	.global = on_registry_global,
	.global_remove = on_registry_global_remove,
};

/* ---- the cursor metadata (the loop thread) ---- */

static bool cursor_reserve(struct cursor *c, size_t pixels)
{
	if (pixels <= c->capacity)
		return true;
	int32_t *ycc = realloc(c->ycc, pixels * 3 * sizeof(*ycc));
	if (!ycc)
		return false;
	c->ycc = ycc;
	uint8_t *alpha = realloc(c->alpha, pixels);
	if (!alpha)
		return false;
	c->alpha = alpha;
	c->capacity = pixels;
	return true;
}

/* The bitmap's pixels into c: false when its format is not one of ours or memory is short. */
static bool cursor_load(struct cursor *c, const struct spa_meta_bitmap *bm, const uint8_t *pixels)
{
	/* Byte positions of R, G, B and A (-1: opaque). */
	int r, g, b, a;
	switch (bm->format) {
	case SPA_VIDEO_FORMAT_RGBA: r = 0, g = 1, b = 2, a = 3; break;
	case SPA_VIDEO_FORMAT_BGRA: r = 2, g = 1, b = 0, a = 3; break;
	case SPA_VIDEO_FORMAT_ARGB: r = 1, g = 2, b = 3, a = 0; break;
	case SPA_VIDEO_FORMAT_ABGR: r = 3, g = 2, b = 1, a = 0; break;
	case SPA_VIDEO_FORMAT_RGBx: r = 0, g = 1, b = 2, a = -1; break;
	case SPA_VIDEO_FORMAT_BGRx: r = 2, g = 1, b = 0, a = -1; break;
	default: return false;
	}
	int w = (int)bm->size.width, h = (int)bm->size.height;
	if (!cursor_reserve(c, (size_t)w * (size_t)h))
		return false;
	/* mutter sends premultiplied alpha (RGBA_8888_PRE); a colour brighter than its alpha
	 * means straight alpha, which is multiplied here. */
	bool straight = false;
	for (int y = 0; y < h && !straight && a >= 0; y++) {
		const uint8_t *p = pixels + (size_t)y * (size_t)bm->stride;
		for (int x = 0; x < w; x++, p += 4)
			if (p[r] > p[a] || p[g] > p[a] || p[b] > p[a]) {
				straight = true;
				break;
			}
	}
	for (int y = 0; y < h; y++) {
		const uint8_t *p = pixels + (size_t)y * (size_t)bm->stride;
		for (int x = 0; x < w; x++, p += 4) {
			size_t i = (size_t)y * (size_t)w + (size_t)x;
			int alpha = a >= 0 ? p[a] : 255;
			int32_t cr = p[r], cg = p[g], cb = p[b];
			if (straight) {
				cr = (cr * alpha + 127) / 255;
				cg = (cg * alpha + 127) / 255;
				cb = (cb * alpha + 127) / 255;
			}
			c->alpha[i] = (uint8_t)alpha;
			c->ycc[3 * i] = 66 * cr + 129 * cg + 25 * cb;
			c->ycc[3 * i + 1] = -38 * cr - 74 * cg + 112 * cb;
			c->ycc[3 * i + 2] = 112 * cr - 94 * cg - 18 * cb;
		}
	}
	c->w = w;
	c->h = h;
	return true;
}

/* Reads a buffer's cursor metadata (every buffer carries it, also those without pixels);
 * cursor_news when the pointer moved, changed its image, appeared or went. */
static void cursor_update(struct pipewire *pw, const struct spa_buffer *sb)
{
	const struct spa_meta *m = spa_buffer_find_meta(sb, SPA_META_Cursor);
	if (!m || m->size < sizeof(struct spa_meta_cursor))
		return;
	const struct spa_meta_cursor *mc = m->data;
	struct cursor *c = &pw->cursor;
	bool was_visible = c->visible;
	int old_x = c->pos_x - c->hot_x, old_y = c->pos_y - c->hot_y;

	/* id 0: no cursor for this picture (mutter: the pointer is off this monitor). */
	if (!spa_meta_cursor_is_valid(mc)) {
		c->visible = false;
		if (was_visible)
			pw->cursor_news = true;
		return;
	}
	if (mc->bitmap_offset >= sizeof(*mc) && (size_t)mc->bitmap_offset + sizeof(struct spa_meta_bitmap) <= m->size) {
		const struct spa_meta_bitmap *bm = SPA_PTROFF(mc, mc->bitmap_offset, const struct spa_meta_bitmap);
		size_t start = (size_t)mc->bitmap_offset + bm->offset;
		uint32_t w = bm->size.width, h = bm->size.height;
		c->w = c->h = 0;
		if (bm->format == 0 || w == 0 || h == 0) {
			/* mutter's empty sprite: a hidden pointer */
		} else if (w > CURSOR_MAX || h > CURSOR_MAX || bm->stride < (int32_t)(w * 4) ||
			   start + (size_t)bm->stride * (h - 1) + (size_t)w * 4 > m->size ||
			   !cursor_load(c, bm, (const uint8_t *)mc + start)) {
			if (!pw->warned_bitmap)
				pc_log("pipewire: a cursor image (%ux%u, video format %u, %d bytes a row) cannot be drawn: left out",
				       w, h, bm->format, bm->stride);
			pw->warned_bitmap = true;
			c->w = c->h = 0;
		}
		c->hot_x = mc->hotspot.x;
		c->hot_y = mc->hotspot.y;
		pw->cursor_news = true; /* a new image */
	}
	c->pos_x = mc->position.x;
	c->pos_y = mc->position.y;
	c->visible = c->w > 0 && c->h > 0;
	if (c->visible != was_visible || (c->visible && (c->pos_x - c->hot_x != old_x || c->pos_y - c->hot_y != old_y)))
		pw->cursor_news = true;
}

/* ---- the stream (the loop thread) ---- */

static void on_state_changed(void *data, enum pw_stream_state old, enum pw_stream_state state, const char *error)
{
	(void)old;
	struct pipewire *pw = data;
	pw->state = state;
	if (state == PW_STREAM_STATE_ERROR)
		fail(pw, -EIO, "pipewire: the stream from node %u failed: %s", pw->node, error ? error : "unknown error");
	else if (state == PW_STREAM_STATE_UNCONNECTED)
		fail(pw, -EPIPE, "pipewire: the stream from node %u was disconnected", pw->node);
	pw_thread_loop_signal(pw->loop, false);
}

static void on_param_changed(void *data, uint32_t id, const struct spa_pod *param)
{
	struct pipewire *pw = data;
	if (id != SPA_PARAM_Format)
		return;
	if (!param) {
		pw->format = NULL;
		return;
	}
	uint32_t media_type, media_subtype;
	struct spa_video_info_raw info = {0};
	if (spa_format_parse(param, &media_type, &media_subtype) < 0 || media_type != SPA_MEDIA_TYPE_video ||
	    media_subtype != SPA_MEDIA_SUBTYPE_raw || spa_format_video_raw_parse(param, &info) < 0) {
		pw_stream_set_error(pw->stream, -EINVAL, "not raw video");
		fail(pw, -ENOTSUP, "pipewire: node %u offers no raw video", pw->node);
		return;
	}
	const struct format *format = format_of(info.format);
	if (!format || info.size.width < 1 || info.size.height < 1 || info.size.width > MAX_SIDE ||
	    info.size.height > MAX_SIDE) {
		pw_stream_set_error(pw->stream, -EINVAL, "unsupported format");
		fail(pw, -ENOTSUP, "pipewire: node %u negotiated video format %u at %ux%u: not BGRx, RGBx, BGRA or RGBA of 1..%d pixels",
		     pw->node, info.format, info.size.width, info.size.height, MAX_SIDE);
		return;
	}
	pw->format = format;
	pw->width = (int)info.size.width;
	pw->height = (int)info.size.height;

	/* Shared memory only: this machine has no DMA-BUF.
	 * TODO(DMA-BUF): offer SPA_FORMAT_VIDEO_modifier (and SPA_DATA_DmaBuf here) and import the
	 * buffers (EGL, or mmap of a linear one after DMA_BUF_IOCTL_SYNC): GNOME and KDE prefer
	 * DMA-BUF and give shared memory only to consumers that do not offer modifiers. */
	uint8_t buffer[1024];
	struct spa_pod_builder b = SPA_POD_BUILDER_INIT(buffer, sizeof(buffer));
	const struct spa_pod *params[4];
	uint32_t n = 0;
	params[n++] = spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_ParamBuffers, SPA_PARAM_Buffers,
		SPA_PARAM_BUFFERS_buffers, SPA_POD_CHOICE_RANGE_Int(8, 2, 16),
		SPA_PARAM_BUFFERS_blocks, SPA_POD_Int(1),
		SPA_PARAM_BUFFERS_dataType, SPA_POD_CHOICE_FLAGS_Int((1 << SPA_DATA_MemPtr) | (1 << SPA_DATA_MemFd)));
	params[n++] = spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_ParamMeta, SPA_PARAM_Meta,
		SPA_PARAM_META_type, SPA_POD_Id(SPA_META_Header),
		SPA_PARAM_META_size, SPA_POD_Int(sizeof(struct spa_meta_header)));
	params[n++] = spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_ParamMeta, SPA_PARAM_Meta,
		SPA_PARAM_META_type, SPA_POD_Id(SPA_META_VideoDamage),
		SPA_PARAM_META_size, SPA_POD_CHOICE_RANGE_Int(
			(int)sizeof(struct spa_meta_region) * DAMAGE_RECTS, (int)sizeof(struct spa_meta_region),
			(int)sizeof(struct spa_meta_region) * DAMAGE_RECTS));
	if (pw->cursor_wanted)
		params[n++] = spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_ParamMeta, SPA_PARAM_Meta,
			SPA_PARAM_META_type, SPA_POD_Id(SPA_META_Cursor),
			SPA_PARAM_META_size, SPA_POD_CHOICE_RANGE_Int(CURSOR_META_SIZE(256, 256), CURSOR_META_SIZE(1, 1),
								      CURSOR_META_SIZE(CURSOR_MAX, CURSOR_MAX)));
	pw_stream_update_params(pw->stream, params, n);
	pc_log("pipewire: node %u negotiated %s %dx%d", pw->node, format->name, pw->width, pw->height);
}

/* The signature is pw_stream_events': buffer cannot be const. */
/* cppcheck-suppress constParameter */
static void on_remove_buffer(void *data, struct pw_buffer *buffer)
{
	struct pipewire *pw = data;
	/* Renegotiated: the picture it held is gone, its damage stays pending (a new size
	 * converts everything anyway). */
	if (pw->ready == buffer)
		pw->ready = NULL;
}

/* The pixels of a buffer, when it has usable ones. */
static bool buffer_pixels(struct pipewire *pw, const struct spa_buffer *sb, struct pc_pixels *px)
{
	const struct spa_meta_header *h = spa_buffer_find_meta_data(sb, SPA_META_Header, sizeof(*h));
	if (h && (h->flags & SPA_META_HEADER_FLAG_CORRUPTED))
		return false;
	if (sb->n_datas < 1 || !pw->format)
		return false;
	const struct spa_data *d = &sb->datas[0];
	/* GNOME's cursor-only buffers: size 0 and CORRUPTED. */
	if (!d->chunk || d->chunk->size == 0 || (d->chunk->flags & SPA_CHUNK_FLAG_CORRUPTED))
		return false;
	int64_t row = (int64_t)pw->width * 4;
	int64_t stride = d->chunk->stride ? d->chunk->stride : row;
	int64_t offset = d->maxsize ? d->chunk->offset % d->maxsize : 0;
	if (!d->data || (d->type != SPA_DATA_MemPtr && d->type != SPA_DATA_MemFd) || stride < row ||
	    offset + stride * (pw->height - 1) + row > (int64_t)d->maxsize) {
		if (!pw->warned_buffer)
			pc_log("pipewire: node %u sent a buffer this source cannot read (data type %u, %s, %u bytes, stride %d for %dx%d): skipped",
			       pw->node, d->type, d->data ? "mapped" : "not mapped", d->maxsize, d->chunk->stride, pw->width,
			       pw->height);
		pw->warned_buffer = true;
		return false;
	}
	*px = (struct pc_pixels){(const uint8_t *)d->data + offset, pw->width, pw->height, (int)stride,
				 pw->format->shm, false};
	return true;
}

/* CLOCK_REALTIME of the buffer's pts (CLOCK_MONOTONIC), or of its arrival. */
static int64_t capture_time(const struct spa_buffer *sb)
{
	int64_t now_mono = pc_clock_ns(CLOCK_MONOTONIC);
	int64_t now_real = pc_clock_ns(CLOCK_REALTIME);
	const struct spa_meta_header *h = spa_buffer_find_meta_data(sb, SPA_META_Header, sizeof(*h));
	if (!h || h->pts <= 0)
		return now_real;
	int64_t age = now_mono - h->pts;
	if (age < 0 || age > MAX_PTS_AGE_NS)
		return now_real;
	return now_real - age;
}

static void take_buffer(struct pipewire *pw, struct pw_buffer *b)
{
	struct spa_buffer *sb = b->buffer;
	if (pw->cursor_wanted)
		cursor_update(pw, sb);
	struct pc_pixels px;
	if (!buffer_pixels(pw, sb, &px)) {
		pw->skipped++;
		pw_stream_queue_buffer(pw->stream, b);
		if (pw->cursor_news)
			signal_news(pw);
		return;
	}

	struct pc_damage damage = {0};
	const struct spa_meta *m = spa_buffer_find_meta(sb, SPA_META_VideoDamage);
	if (m) {
		const struct spa_meta_region *r;
		spa_meta_for_each(r, m) {
			if (!spa_meta_region_is_valid(r))
				break; /* the end of the list */
			/* Clipped to the picture here, so the numbers stay ints. */
			int64_t x0 = r->region.position.x, y0 = r->region.position.y;
			int64_t x1 = x0 + r->region.size.width, y1 = y0 + r->region.size.height;
			x0 = x0 < 0 ? 0 : x0;
			y0 = y0 < 0 ? 0 : y0;
			x1 = x1 > px.width ? px.width : x1;
			y1 = y1 > px.height ? px.height : y1;
			if (x1 > x0 && y1 > y0)
				pc_damage_add(&damage, (struct pc_rect){(int)x0, (int)y0, (int)(x1 - x0), (int)(y1 - y0)});
		}
	}
	/* No damage metadata (or none filled in): all changed. */
	if (damage.n == 0)
		pc_damage_add(&damage, (struct pc_rect){0, 0, px.width, px.height});

	if (pw->ready)
		pw_stream_queue_buffer(pw->stream, pw->ready); /* coalesced: its damage stays pending */
	pw->ready = b;
	pw->ready_pixels = px;
	pw->ready_ns = capture_time(sb);
	pc_damage_merge(&pw->pending, &damage);
	signal_news(pw);
}

static void on_process(void *data)
{
	struct pipewire *pw = data;
	struct pw_buffer *b;
	while ((b = pw_stream_dequeue_buffer(pw->stream)) != NULL)
		take_buffer(pw, b);
}

static const struct pw_stream_events stream_events = {
	PW_VERSION_STREAM_EVENTS,
	.state_changed = on_state_changed,
	.param_changed = on_param_changed,
	.remove_buffer = on_remove_buffer,
	.process = on_process,
};

/* ---- the source ---- */

static void pipewire_destroy(void *state)
{
	struct pipewire *pw = state;
	if (!pw)
		return;
	if (pw->loop) {
		pw_thread_loop_lock(pw->loop);
		if (pw->stream_listening)
			spa_hook_remove(&pw->stream_listener);
		if (pw->stream)
			pw_stream_destroy(pw->stream);
		pw_thread_loop_unlock(pw->loop);
		pw_thread_loop_stop(pw->loop);
	}
	/* The loop is stopped: nothing else runs now. */
	if (pw->registry_listening)
		spa_hook_remove(&pw->registry_listener);
	if (pw->registry)
		pw_proxy_destroy((struct pw_proxy *)pw->registry);
	if (pw->core_listening)
		spa_hook_remove(&pw->core_listener);
	if (pw->core)
		pw_core_disconnect(pw->core);
	if (pw->context)
		pw_context_destroy(pw->context);
	if (pw->loop)
		pw_thread_loop_destroy(pw->loop);
	/* No pw_deinit(): other PipeWire users in the process (the tests' own nodes) may remain. */
	if (pw->ready_fd >= 0)
		close(pw->ready_fd);
	pc_frame_free(&pw->screen);
	pc_frame_free(&pw->shown);
	pc_frame_free(&pw->scaled);
	free(pw->cursor.ycc);
	free(pw->cursor.alpha);
	free(pw);
}

/* The fd a portal gave: an open socket. 0, or -EINVAL with err set. */
static int check_fd(int fd, char *err, size_t err_size)
{
	struct stat st;
	if (fcntl(fd, F_GETFD) < 0) {
		snprintf(err, err_size, "pipewire: --pipewire-fd %d is not an open descriptor: %s", fd, strerror(errno));
		return -EINVAL;
	}
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		snprintf(err, err_size, "pipewire: --pipewire-fd %d is not a socket (expected the PipeWire remote of ScreenCast.OpenPipeWireRemote)",
			 fd);
		return -EINVAL;
	}
	return 0;
}

/* Where pw_context_connect goes, for messages. */
static void default_remote(char *buf, size_t size)
{
	const char *remote = getenv("PIPEWIRE_REMOTE");
	const char *dir = getenv("PIPEWIRE_RUNTIME_DIR");
	if (!dir || !*dir)
		dir = getenv("XDG_RUNTIME_DIR");
	if (remote && remote[0] == '/')
		snprintf(buf, size, "%s", remote);
	else
		snprintf(buf, size, "%s/%s", dir ? dir : "$XDG_RUNTIME_DIR", remote && *remote ? remote : "pipewire-0");
}

/* Waits (the loop's lock held) until done() or the deadline: false on the deadline. */
static bool wait_until(struct pipewire *pw, struct timespec *deadline, bool (*done)(const struct pipewire *))
{
	while (!pw->error && !done(pw))
		if (pw_thread_loop_timed_wait_full(pw->loop, deadline) < 0)
			return pw->error || done(pw);
	return true;
}

static bool is_synced(const struct pipewire *pw)
{
	return pw->synced;
}

static bool is_streaming(const struct pipewire *pw)
{
	return pw->state == PW_STREAM_STATE_STREAMING;
}

int pc_pipewire_init(void **state, const struct pc_source_config *config, const struct pc_pipewire_options *options,
		     char *err, size_t err_size)
{
	int fd = options->fd;
	int timeout_ms = options->start_timeout_ms > 0 ? options->start_timeout_ms : PC_PIPEWIRE_START_TIMEOUT_MS;
	bool locked = false;
	int ret;
	struct pipewire *pw = calloc(1, sizeof(*pw));
	if (!pw) {
		if (fd >= 0)
			close(fd);
		snprintf(err, err_size, "pipewire: out of memory");
		return -ENOMEM;
	}
	pw->ready_fd = -1;
	pw->node = options->node;
	pw->cursor_wanted = options->cursor;
	pw->want_width = config->width;
	pw->want_height = config->height;
	pw->fps_num = config->fps_num ? config->fps_num : 30;
	pw->fps_den = config->fps_den ? config->fps_den : 1;
	pw->state = PW_STREAM_STATE_UNCONNECTED;

	if (fd >= 0 && (ret = check_fd(fd, err, err_size)) < 0) {
		if (fcntl(fd, F_GETFD) >= 0)
			close(fd);
		fd = -1;
		goto error;
	}
	if (pw->node == SPA_ID_INVALID) {
		ret = -EINVAL;
		snprintf(err, err_size, "pipewire: no node id (--pipewire-node)");
		goto error;
	}
	if (fd >= 0)
		snprintf(pw->remote, sizeof(pw->remote), "fd %d", fd);
	else
		default_remote(pw->remote, sizeof(pw->remote));

	pw->ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (pw->ready_fd < 0) {
		ret = -errno;
		snprintf(err, err_size, "pipewire: eventfd: %s", strerror(errno));
		goto error;
	}

	pw_init(NULL, NULL);
	pw->loop = pw_thread_loop_new("pc-pipewire", NULL);
	if (!pw->loop) {
		ret = errno ? -errno : -ENOMEM;
		snprintf(err, err_size, "pipewire: cannot make a thread loop: %s", strerror(-ret));
		goto error;
	}
	pw->context = pw_context_new(pw_thread_loop_get_loop(pw->loop),
				     pw_properties_new(PW_KEY_APP_NAME, PC_PROG, NULL), 0);
	if (!pw->context) {
		ret = errno ? -errno : -ENOMEM;
		snprintf(err, err_size, "pipewire: cannot make a PipeWire context (PipeWire's client.conf and modules, libpipewire-0.3-modules, must be installed): %s",
			 strerror(-ret));
		goto error;
	}
	ret = pw_thread_loop_start(pw->loop);
	if (ret < 0) {
		snprintf(err, err_size, "pipewire: cannot start its thread: %s", spa_strerror(ret));
		goto error;
	}
	pw_thread_loop_lock(pw->loop);
	locked = true;

	if (fd >= 0) {
		/* The core owns the fd now (closed when it disconnects). */
		pw->core = pw_context_connect_fd(pw->context, fd, NULL, 0);
		fd = -1;
	} else {
		pw->core = pw_context_connect(pw->context, NULL, 0);
	}
	if (!pw->core) {
		snprintf(err, err_size, "pipewire: cannot connect to the PipeWire daemon (%s): %s", pw->remote,
			 strerror(errno ? errno : ECONNREFUSED));
		ret = -ECONNREFUSED;
		goto error;
	}
	pw_core_add_listener(pw->core, &pw->core_listener, &core_events, pw);
	pw->core_listening = true;
	pw->registry = pw_core_get_registry(pw->core, PW_VERSION_REGISTRY, 0);
	if (!pw->registry) {
		ret = errno ? -errno : -ENOMEM;
		snprintf(err, err_size, "pipewire: cannot get the registry: %s", strerror(-ret));
		goto error;
	}
	pw_registry_add_listener(pw->registry, &pw->registry_listener, &registry_events, pw);
	pw->registry_listening = true;

	/* One round trip: the daemon answers (a bad fd shows here) and the registry has listed
	 * what this connection may see. */
	struct timespec deadline;
	pw_thread_loop_get_time(pw->loop, &deadline, (int64_t)timeout_ms * SPA_NSEC_PER_MSEC);
	pw->sync_seq = pw_core_sync(pw->core, PW_ID_CORE, 0);
	if (!wait_until(pw, &deadline, is_synced)) {
		ret = -ETIMEDOUT;
		snprintf(err, err_size, "pipewire: the PipeWire daemon (%s) did not answer within %d ms", pw->remote, timeout_ms);
		goto error;
	}
	if (pw->error) {
		ret = pw->error;
		snprintf(err, err_size, "%s", pw->error_msg);
		goto error;
	}
	/* Not there: a session manager would link the stream to some other source (a camera). A
	 * portal's remote lists the nodes it grants. */
	if (!pw->node_listed) {
		ret = -ENODEV;
		snprintf(err, err_size, "PipeWire node %u does not exist (no such node in what the daemon at %s shows)", pw->node,
			 pw->remote);
		goto error;
	}

	struct pw_properties *props = pw_properties_new(PW_KEY_MEDIA_TYPE, "Video", PW_KEY_MEDIA_CATEGORY, "Capture",
							PW_KEY_MEDIA_ROLE, "Screen", PW_KEY_NODE_NAME, PC_PROG,
							PW_KEY_NODE_DESCRIPTION, "p2pcast screen capture", NULL);
	/* What session managers link by since 0.3.64 (the target id below sets the older
	 * node.target). */
	if (props && pw->node_serial[0])
		pw_properties_set(props, PW_KEY_TARGET_OBJECT, pw->node_serial);
	pw->stream = pw_stream_new(pw->core, PC_PROG, props);
	if (!pw->stream) {
		ret = errno ? -errno : -ENOMEM;
		snprintf(err, err_size, "pipewire: cannot make a stream: %s", strerror(-ret));
		goto error;
	}
	pw_stream_add_listener(pw->stream, &pw->stream_listener, &stream_events, pw);
	pw->stream_listening = true;

	uint8_t buffer[1024];
	struct spa_pod_builder b = SPA_POD_BUILDER_INIT(buffer, sizeof(buffer));
	const struct spa_pod *params[1];
	params[0] = spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_Format, SPA_PARAM_EnumFormat,
		SPA_FORMAT_mediaType, SPA_POD_Id(SPA_MEDIA_TYPE_video),
		SPA_FORMAT_mediaSubtype, SPA_POD_Id(SPA_MEDIA_SUBTYPE_raw),
		SPA_FORMAT_VIDEO_format, SPA_POD_CHOICE_ENUM_Id(5, SPA_VIDEO_FORMAT_BGRx, SPA_VIDEO_FORMAT_BGRx,
								SPA_VIDEO_FORMAT_RGBx, SPA_VIDEO_FORMAT_BGRA, SPA_VIDEO_FORMAT_RGBA),
		SPA_FORMAT_VIDEO_size, SPA_POD_CHOICE_RANGE_Rectangle(&SPA_RECTANGLE(1920, 1080), &SPA_RECTANGLE(1, 1),
								       &SPA_RECTANGLE(MAX_SIDE, MAX_SIDE)),
		SPA_FORMAT_VIDEO_framerate, SPA_POD_CHOICE_RANGE_Fraction(&SPA_FRACTION(0, 1), &SPA_FRACTION(0, 1),
									  &SPA_FRACTION(1000, 1)),
		/* --fps: mutter then records no more often than the producer encodes. */
		SPA_FORMAT_VIDEO_maxFramerate, SPA_POD_CHOICE_RANGE_Fraction(&SPA_FRACTION(pw->fps_num, pw->fps_den),
									     &SPA_FRACTION(0, 1), &SPA_FRACTION(1000, 1)));
	/* Not linked elsewhere if the node goes: the source ends instead (DONT_RECONNECT). */
	ret = pw_stream_connect(pw->stream, PW_DIRECTION_INPUT, pw->node,
				PW_STREAM_FLAG_AUTOCONNECT | PW_STREAM_FLAG_MAP_BUFFERS | PW_STREAM_FLAG_DONT_RECONNECT,
				params, 1);
	if (ret < 0) {
		snprintf(err, err_size, "pipewire: cannot connect a stream to node %u: %s", pw->node, spa_strerror(ret));
		goto error;
	}
	if (!wait_until(pw, &deadline, is_streaming)) {
		ret = -ETIMEDOUT;
		snprintf(err, err_size, "PipeWire node %u did not start streaming within %d ms (is it a video source, and is a session manager running?)",
			 pw->node, timeout_ms);
		goto error;
	}
	if (pw->error) {
		ret = pw->error;
		snprintf(err, err_size, "%s", pw->error_msg);
		goto error;
	}
	pc_log("pipewire: node %u of %s streams %s %dx%d to node %u, cursor metadata %s", pw->node, pw->remote,
	       pw->format ? pw->format->name : "?", pw->width, pw->height, pw_stream_get_node_id(pw->stream),
	       pw->cursor_wanted ? "drawn" : "left out");
	pw_thread_loop_unlock(pw->loop);
	*state = pw;
	return 0;

error:
	if (locked)
		pw_thread_loop_unlock(pw->loop);
	pipewire_destroy(pw);
	return ret;
}

uint32_t pc_pipewire_node_id(void *state)
{
	struct pipewire *pw = state;
	pw_thread_loop_lock(pw->loop);
	uint32_t id = pw_stream_get_node_id(pw->stream);
	pw_thread_loop_unlock(pw->loop);
	return id;
}

static int pipewire_init(void **state, const struct pc_source_config *config, char *err, size_t err_size)
{
	(void)state, (void)config;
	snprintf(err, err_size, "pipewire: needs a node id (--pipewire-node)");
	return -EINVAL;
}

static int pipewire_wait_fd(void *state)
{
	struct pipewire *pw = state;
	return pw->ready_fd;
}

/* Copies rectangle r (even edges) of one I420 picture into another of the same size. */
static void copy_rect(const struct pc_frame *src, struct pc_frame *dst, struct pc_rect r)
{
	I420Copy(src->plane[0] + (ptrdiff_t)r.y * src->stride[0] + r.x, src->stride[0],
		 src->plane[1] + (ptrdiff_t)(r.y / 2) * src->stride[1] + r.x / 2, src->stride[1],
		 src->plane[2] + (ptrdiff_t)(r.y / 2) * src->stride[2] + r.x / 2, src->stride[2],
		 dst->plane[0] + (ptrdiff_t)r.y * dst->stride[0] + r.x, dst->stride[0],
		 dst->plane[1] + (ptrdiff_t)(r.y / 2) * dst->stride[1] + r.x / 2, dst->stride[1],
		 dst->plane[2] + (ptrdiff_t)(r.y / 2) * dst->stride[2] + r.x / 2, dst->stride[2], r.w, r.h);
}

static uint8_t clamp_u8(int v)
{
	return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* x / 256 rounded to the nearest, for negative x too. */
static int div256(int32_t x)
{
	return x >= 0 ? (x + 128) / 256 : -((-x + 128) / 256);
}

/* Blends the cursor over f (premultiplied "over", done on the I420 values: the colour
 * conversion is affine, so it is the same as blending the RGB). Chroma is blended per 2x2 block
 * with the block's mean alpha. The even-edged rectangle it touched, {0} when none. */
static struct pc_rect blend_cursor(struct pc_frame *f, const struct cursor *c)
{
	int cx0 = c->pos_x - c->hot_x, cy0 = c->pos_y - c->hot_y;
	int x0 = cx0 < 0 ? 0 : cx0, y0 = cy0 < 0 ? 0 : cy0;
	int x1 = cx0 + c->w > f->width ? f->width : cx0 + c->w;
	int y1 = cy0 + c->h > f->height ? f->height : cy0 + c->h;
	struct pc_rect area = {x0, y0, x1 - x0, y1 - y0};
	if (!pc_rect_even(&area, f->width, f->height))
		return (struct pc_rect){0, 0, 0, 0};

	for (int y = y0; y < y1; y++) {
		uint8_t *row = f->plane[0] + (ptrdiff_t)y * f->stride[0];
		for (int x = x0; x < x1; x++) {
			size_t i = (size_t)(y - cy0) * (size_t)c->w + (size_t)(x - cx0);
			int a = c->alpha[i];
			if (a == 0)
				continue;
			int bg = row[x] - 16;
			row[x] = clamp_u8(16 + div256(c->ycc[3 * i]) + ((255 - a) * bg + (bg >= 0 ? 127 : -127)) / 255);
		}
	}
	for (int by = area.y / 2; by < (area.y + area.h) / 2; by++) {
		for (int bx = area.x / 2; bx < (area.x + area.w) / 2; bx++) {
			int32_t sum_a = 0, sum_cb = 0, sum_cr = 0;
			for (int k = 0; k < 4; k++) {
				int x = 2 * bx + (k & 1), y = 2 * by + (k >> 1);
				if (x < x0 || x >= x1 || y < y0 || y >= y1)
					continue;
				size_t i = (size_t)(y - cy0) * (size_t)c->w + (size_t)(x - cx0);
				sum_a += c->alpha[i];
				sum_cb += c->ycc[3 * i + 1];
				sum_cr += c->ycc[3 * i + 2];
			}
			if (sum_a == 0)
				continue;
			uint8_t *u = f->plane[1] + (ptrdiff_t)by * f->stride[1] + bx;
			uint8_t *v = f->plane[2] + (ptrdiff_t)by * f->stride[2] + bx;
			int keep = 4 * 255 - sum_a;
			*u = clamp_u8(128 + div256(sum_cb / 4) + (keep * (*u - 128)) / (4 * 255));
			*v = clamp_u8(128 + div256(sum_cr / 4) + (keep * (*v - 128)) / (4 * 255));
		}
	}
	return area;
}

/* The picture with the cursor: shown follows screen where it changed (converted, or where the
 * cursor was), then the cursor is drawn at its place. *changed grows by what moved. */
static int draw_cursor(struct pipewire *pw, const struct pc_damage *converted, bool whole, struct pc_rect *changed,
		       char *err, size_t err_size)
{
	struct pc_rect all = {0, 0, pw->screen.width, pw->screen.height};
	if (!pw->drawing || whole || pw->shown.width != pw->screen.width || pw->shown.height != pw->screen.height) {
		if (pw->shown.width != pw->screen.width || pw->shown.height != pw->screen.height) {
			pc_frame_free(&pw->shown);
			if (pc_frame_alloc(&pw->shown, pw->screen.width, pw->screen.height) < 0) {
				snprintf(err, err_size, "pipewire: out of memory for a %dx%d picture", pw->screen.width,
					 pw->screen.height);
				return -ENOMEM;
			}
		}
		copy_rect(&pw->screen, &pw->shown, all);
		pw->drawing = true;
		/* The last picture was screen itself: only the cursor is new, unless all is. */
		if (whole)
			*changed = all;
	} else {
		for (int i = 0; i < converted->n; i++)
			copy_rect(&pw->screen, &pw->shown, converted->rect[i]);
		if (pw->drawn.w > 0) {
			copy_rect(&pw->screen, &pw->shown, pw->drawn); /* where the cursor was */
			*changed = pc_rect_union(*changed, pw->drawn);
		}
	}
	pw->drawn = (struct pc_rect){0, 0, 0, 0};
	if (pw->cursor.visible) {
		pw->drawn = blend_cursor(&pw->shown, &pw->cursor);
		*changed = pc_rect_union(*changed, pw->drawn);
	}
	return 0;
}

static int pipewire_take(void *state, struct pc_source_picture *out, char *err, size_t err_size)
{
	struct pipewire *pw = state;
	uint64_t count;
	/* Reset before looking: news published after the look signals again. */
	if (read(pw->ready_fd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
		snprintf(err, err_size, "pipewire: eventfd read: %s", strerror(errno));
		return -errno;
	}

	pw_thread_loop_lock(pw->loop);
	int ret = 1;
	bool whole = false;
	if (pw->error) {
		ret = pw->error;
		snprintf(err, err_size, "%s", pw->error_msg);
		goto out;
	}
	bool cursor_news = pw->cursor_news;
	pw->cursor_news = false;
	struct pw_buffer *b = pw->ready;
	if (!b && (!cursor_news || !pw->have_picture)) {
		ret = 0;
		goto out;
	}

	struct pc_damage converted = {0};
	struct pc_rect changed = {0, 0, 0, 0};
	if (b) {
		struct pc_pixels px = pw->ready_pixels;
		struct pc_damage damage = pw->pending;
		pw->ready = NULL;
		pc_damage_clear(&pw->pending);
		/* Odd sizes lose their last column or row: I420 wants even ones. */
		int width = px.width & ~1, height = px.height & ~1;
		if (width < MIN_SIDE || height < MIN_SIDE) {
			pw_stream_queue_buffer(pw->stream, b);
			ret = -ERANGE;
			snprintf(err, err_size, "pipewire: node %u is %dx%d: too small to encode", pw->node, px.width,
				 px.height);
			goto out;
		}
		whole = !pw->have_picture || pw->screen.width != width || pw->screen.height != height;
		if (pw->screen.width != width || pw->screen.height != height) {
			pc_frame_free(&pw->screen);
			if (pc_frame_alloc(&pw->screen, width, height) < 0) {
				pw_stream_queue_buffer(pw->stream, b);
				ret = -ENOMEM;
				snprintf(err, err_size, "pipewire: out of memory for a %dx%d picture", width, height);
				goto out;
			}
		}
		if (whole) {
			pc_damage_add(&converted, (struct pc_rect){0, 0, width, height});
		} else {
			for (int i = 0; i < damage.n; i++) {
				struct pc_rect r = damage.rect[i];
				if (pc_rect_even(&r, width, height))
					pc_damage_add(&converted, r);
			}
		}
		for (int i = 0; i < converted.n; i++) {
			pc_convert_rect(&px, &pw->screen, converted.rect[i]);
			changed = pc_rect_union(changed, converted.rect[i]);
		}
		pw_stream_queue_buffer(pw->stream, b);
		pw->have_picture = true;
		out->capture_ns = pw->ready_ns;
	} else {
		out->capture_ns = pc_clock_ns(CLOCK_REALTIME); /* only the pointer moved, now */
	}

	out->frame = &pw->screen;
	if (pw->cursor_wanted && (pw->drawing || pw->cursor.visible)) {
		ret = draw_cursor(pw, &converted, whole, &changed, err, err_size);
		if (ret < 0)
			goto out;
		ret = 1;
		out->frame = &pw->shown;
	}
	out->damage = changed;

out:
	pw_thread_loop_unlock(pw->loop);
	if (ret <= 0)
		return ret;
	if (pw->want_width) {
		if (!pw->scaled.plane[0] && pc_frame_alloc(&pw->scaled, pw->want_width, pw->want_height) < 0) {
			snprintf(err, err_size, "pipewire: out of memory for a %dx%d picture", pw->want_width, pw->want_height);
			return -ENOMEM;
		}
		struct pc_rect placed;
		pc_convert_fit(out->frame, &pw->scaled, &placed);
		out->frame = &pw->scaled;
		out->damage = whole ? (struct pc_rect){0, 0, pw->want_width, pw->want_height} : placed;
	}
	return 1;
}

const struct pc_source_ops pc_pipewire_source = {
	.name = "pipewire",
	.init = pipewire_init,
	.destroy = pipewire_destroy,
	.wait_fd = pipewire_wait_fd,
	.take = pipewire_take,
};
