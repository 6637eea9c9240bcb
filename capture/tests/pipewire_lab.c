/* A private PipeWire daemon and a test source node: see pipewire_lab.h. */
#include "pipewire_lab.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pipewire/pipewire.h>
#include <spa/param/video/format-utils.h>

#define START_TIMEOUT_MS 3000
#define STOP_TIMEOUT_MS 2000
#define MAX_CHANGES 64
#define MAX_PORTS 64
#define MAX_LINKS 8
#define CURSOR_META_BYTES \
	(sizeof(struct spa_meta_cursor) + sizeof(struct spa_meta_bitmap) + PC_TEST_PW_CURSOR_SIZE * PC_TEST_PW_CURSOR_SIZE * 4)

/* The smallest daemon a pw_stream can use: no devices, no session manager. */
static const char lab_config[] =
	"context.properties = {\n"
	"    core.daemon = true\n"
	"    core.name = pipewire-0\n"
	"    link.max-buffers = 16\n"
	"}\n"
	"context.spa-libs = {\n"
	"    support.* = support/libspa-support\n"
	"}\n"
	"context.modules = [\n"
	"    { name = libpipewire-module-protocol-native }\n"
	"    { name = libpipewire-module-client-node }\n"
	"    { name = libpipewire-module-adapter }\n"
	"    { name = libpipewire-module-link-factory }\n"
	"    { name = libpipewire-module-access }\n"
	"]\n";

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* ---- the daemon ---- */

static bool reaped(struct pc_test_pw_lab *lab)
{
	if (lab->pid > 0 && waitpid(lab->pid, NULL, WNOHANG) == lab->pid)
		lab->pid = -1;
	return lab->pid <= 0;
}

int pc_test_pw_lab_start(struct pc_test_pw_lab *lab, char *why, size_t why_size)
{
	memset(lab, 0, sizeof(*lab));
	lab->pid = -1;
	if (system("command -v pipewire >/dev/null 2>&1") != 0) {
		snprintf(why, why_size, "pipewire is not installed (Debian: pipewire-bin)");
		return 0;
	}
	snprintf(lab->dir, sizeof(lab->dir), "/tmp/p2pcast-pipewire-XXXXXX");
	if (!mkdtemp(lab->dir)) { /* 0700 */
		snprintf(why, why_size, "mkdtemp: %s", strerror(errno));
		lab->dir[0] = '\0';
		return -1;
	}
	static const char *const names[] = {"lab.conf", "pipewire.log", "pipewire-0"};
	for (int i = 0; i < 3; i++)
		snprintf(lab->path[i], sizeof(lab->path[i]), "%s/%s", lab->dir, names[i]);
	FILE *f = fopen(lab->path[0], "w");
	if (!f || fputs(lab_config, f) < 0 || fclose(f) != 0) {
		snprintf(why, why_size, "write %s: %s", lab->path[0], strerror(errno));
		goto error;
	}

	const char *old = getenv("XDG_RUNTIME_DIR");
	lab->had_runtime_dir = old != NULL;
	snprintf(lab->saved_runtime_dir, sizeof(lab->saved_runtime_dir), "%s", old ? old : "");
	setenv("XDG_RUNTIME_DIR", lab->dir, 1);
	unsetenv("PIPEWIRE_REMOTE");
	unsetenv("PIPEWIRE_RUNTIME_DIR");

	lab->pid = fork();
	if (lab->pid < 0) {
		snprintf(why, why_size, "fork: %s", strerror(errno));
		goto error;
	}
	if (lab->pid == 0) {
		int log = open(lab->path[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (log < 0 || dup2(log, STDOUT_FILENO) < 0 || dup2(log, STDERR_FILENO) < 0)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		execlp("pipewire", "pipewire", "-c", lab->path[0], (char *)NULL);
		_exit(127);
	}
	int64_t deadline = now_ms() + START_TIMEOUT_MS;
	struct stat st;
	while (stat(lab->path[2], &st) != 0) {
		if (reaped(lab)) {
			snprintf(why, why_size, "pipewire exited at start (log %s)", lab->path[1]);
			goto error;
		}
		if (now_ms() > deadline) {
			snprintf(why, why_size, "pipewire made no socket within %d ms", START_TIMEOUT_MS);
			goto error;
		}
		sleep_ms(5);
	}
	return 1;

error:
	pc_test_pw_lab_stop(lab, true);
	return -1;
}

void pc_test_pw_lab_stop(struct pc_test_pw_lab *lab, bool show_log)
{
	if (lab->pid > 0) {
		kill(lab->pid, SIGTERM);
		int64_t deadline = now_ms() + STOP_TIMEOUT_MS;
		while (!reaped(lab) && now_ms() < deadline)
			sleep_ms(5);
		if (lab->pid > 0) {
			kill(lab->pid, SIGKILL);
			waitpid(lab->pid, NULL, 0);
			lab->pid = -1;
		}
	}
	if (!lab->dir[0])
		return;
	if (show_log) {
		FILE *f = fopen(lab->path[1], "r");
		char line[512];
		fprintf(stderr, "    --- pipewire log ---\n");
		while (f && fgets(line, sizeof(line), f))
			fprintf(stderr, "    %s", line);
		if (f)
			fclose(f);
	}
	for (int i = 0; i < 3; i++)
		unlink(lab->path[i]);
	char lock[160];
	snprintf(lock, sizeof(lock), "%s.lock", lab->path[2]);
	unlink(lock);
	rmdir(lab->dir);
	lab->dir[0] = '\0';
	if (lab->had_runtime_dir)
		setenv("XDG_RUNTIME_DIR", lab->saved_runtime_dir, 1);
	else
		unsetenv("XDG_RUNTIME_DIR");
}

/* ---- the source node ---- */

enum change_kind {
	CHANGE_FILL,
	CHANGE_BAD,
	CHANGE_CURSOR,
	CHANGE_WHOLE,   /* the whole picture (the first one, and after a resize) */
	CHANGE_PAINTED, /* the moving square: painted already, r is its damage */
};

struct change {
	enum change_kind kind;
	struct pc_rect r;
	uint32_t colour;
	enum pc_test_pw_bad bad;
};

struct port {
	uint32_t id; /* the port's global */
	uint32_t node;
	bool input;
};

struct pc_test_pw_src {
	struct pc_test_pw_src_config config;
	struct pw_thread_loop *loop;
	struct pw_context *context;
	struct pw_core *core;
	struct pw_registry *registry;
	struct spa_hook registry_listener;
	struct pw_stream *stream;
	struct spa_hook stream_listener;
	struct spa_source *timer;

	/* Under the loop's lock. */
	uint32_t node;
	enum pw_stream_state state;
	bool negotiated; /* a format, and buffers for it */
	int width, height, stride;
	uint8_t *image;
	struct change queue[MAX_CHANGES];
	int n_changes;
	enum pc_test_pw_animation animate;
	int anim_step;
	int cursor_x, cursor_y;
	bool cursor_visible, cursor_image_sent;
	uint64_t sent;
	uint64_t seq;
	struct port ports[MAX_PORTS];
	int n_ports;
	uint32_t consumers[MAX_LINKS]; /* Stream/Input/Video nodes not linked yet */
	int n_consumers;
	struct pw_proxy *links[MAX_LINKS];
	int n_links;
};

static uint32_t video_format(const struct pc_test_pw_src *src)
{
	return src->config.format ? src->config.format : SPA_VIDEO_FORMAT_BGRx;
}

static void put_pixel(uint8_t *p, uint32_t format, uint32_t rgb)
{
	uint8_t r = rgb >> 16 & 0xff, g = rgb >> 8 & 0xff, b = rgb & 0xff;
	bool bgr = format == SPA_VIDEO_FORMAT_BGRx || format == SPA_VIDEO_FORMAT_BGRA;
	p[0] = bgr ? b : r;
	p[1] = g;
	p[2] = bgr ? r : b;
	p[3] = 0xff;
}

static void paint(uint8_t *data, int stride, int width, int height, uint32_t format, struct pc_rect r, uint32_t rgb)
{
	int x0 = r.x < 0 ? 0 : r.x, y0 = r.y < 0 ? 0 : r.y;
	int x1 = r.x + r.w > width ? width : r.x + r.w, y1 = r.y + r.h > height ? height : r.y + r.h;
	for (int y = y0; y < y1; y++)
		for (int x = x0; x < x1; x++)
			put_pixel(data + (size_t)y * (size_t)stride + (size_t)x * 4, format, rgb);
}

static void enqueue(struct pc_test_pw_src *src, struct change c)
{
	if (src->n_changes < MAX_CHANGES)
		src->queue[src->n_changes++] = c;
	else
		fprintf(stderr, "    pipewire_lab: change queue full, one dropped\n");
}

/* The whole picture, ahead of the queued changes (once). */
static void push_whole(struct pc_test_pw_src *src)
{
	if (src->n_changes > 0 && src->queue[0].kind == CHANGE_WHOLE)
		return;
	int keep = src->n_changes < MAX_CHANGES ? src->n_changes : MAX_CHANGES - 1;
	memmove(&src->queue[1], &src->queue[0], sizeof(src->queue[0]) * (size_t)keep);
	src->queue[0] = (struct change){.kind = CHANGE_WHOLE};
	src->n_changes = keep + 1;
}

static const struct spa_pod *enum_format(struct pc_test_pw_src *src, struct spa_pod_builder *b)
{
	return spa_pod_builder_add_object(b, SPA_TYPE_OBJECT_Format, SPA_PARAM_EnumFormat,
		SPA_FORMAT_mediaType, SPA_POD_Id(SPA_MEDIA_TYPE_video),
		SPA_FORMAT_mediaSubtype, SPA_POD_Id(SPA_MEDIA_SUBTYPE_raw),
		SPA_FORMAT_VIDEO_format, SPA_POD_Id(video_format(src)),
		SPA_FORMAT_VIDEO_size, SPA_POD_Rectangle(&SPA_RECTANGLE((uint32_t)src->width, (uint32_t)src->height)),
		SPA_FORMAT_VIDEO_framerate, SPA_POD_Fraction(&SPA_FRACTION(0, 1)),
		SPA_FORMAT_VIDEO_maxFramerate, SPA_POD_CHOICE_RANGE_Fraction(&SPA_FRACTION((uint32_t)src->config.fps, 1),
									     &SPA_FRACTION(1, 1),
									     &SPA_FRACTION((uint32_t)src->config.fps, 1)));
}

/* Links a consumer whose input port exists (a session manager's job). */
static void link_consumers(struct pc_test_pw_src *src)
{
	if (src->config.no_link || src->node == SPA_ID_INVALID)
		return;
	for (int c = 0; c < src->n_consumers;) {
		bool has_port = false;
		for (int p = 0; p < src->n_ports; p++)
			has_port |= src->ports[p].node == src->consumers[c] && src->ports[p].input;
		if (!has_port || src->n_links == MAX_LINKS) {
			c++;
			continue;
		}
		struct pw_properties *props = pw_properties_new(NULL, NULL);
		pw_properties_setf(props, PW_KEY_LINK_OUTPUT_NODE, "%u", src->node);
		pw_properties_setf(props, PW_KEY_LINK_INPUT_NODE, "%u", src->consumers[c]);
		src->links[src->n_links++] = pw_core_create_object(src->core, "link-factory", PW_TYPE_INTERFACE_Link,
								   PW_VERSION_LINK, &props->dict, 0);
		pw_properties_free(props);
		src->consumers[c] = src->consumers[--src->n_consumers];
	}
}

static void on_global(void *data, uint32_t id, uint32_t permissions, const char *type, uint32_t version,
		      const struct spa_dict *props)
{
	(void)permissions, (void)version;
	struct pc_test_pw_src *src = data;
	if (!props)
		return;
	if (strcmp(type, PW_TYPE_INTERFACE_Port) == 0 && src->n_ports < MAX_PORTS) {
		const char *node = spa_dict_lookup(props, PW_KEY_NODE_ID);
		const char *dir = spa_dict_lookup(props, PW_KEY_PORT_DIRECTION);
		if (node && dir) {
			src->ports[src->n_ports++] = (struct port){id, (uint32_t)strtoul(node, NULL, 10), strcmp(dir, "in") == 0};
			pw_thread_loop_signal(src->loop, false);
		}
	} else if (strcmp(type, PW_TYPE_INTERFACE_Node) == 0) {
		const char *class = spa_dict_lookup(props, PW_KEY_MEDIA_CLASS);
		if (class && strcmp(class, "Stream/Input/Video") == 0 && src->n_consumers < MAX_LINKS)
			src->consumers[src->n_consumers++] = id;
	}
	link_consumers(src);
}

/* Ids are reused: a gone port or consumer must not match a new one. */
static void on_global_remove(void *data, uint32_t id)
{
	struct pc_test_pw_src *src = data;
	for (int p = 0; p < src->n_ports;)
		if (src->ports[p].id == id)
			src->ports[p] = src->ports[--src->n_ports];
		else
			p++;
	for (int c = 0; c < src->n_consumers;)
		if (src->consumers[c] == id)
			src->consumers[c] = src->consumers[--src->n_consumers];
		else
			c++;
}

static const struct pw_registry_events registry_events = {
	PW_VERSION_REGISTRY_EVENTS,
	.global = on_global,
	.global_remove = on_global_remove,
};

static void on_state_changed(void *data, enum pw_stream_state old, enum pw_stream_state state, const char *error)
{
	struct pc_test_pw_src *src = data;
	src->state = state;
	/* A consumer (re)linked: it gets the whole picture first, as mutter records a frame when
	 * its stream starts. */
	if (state == PW_STREAM_STATE_STREAMING && old != PW_STREAM_STATE_STREAMING && src->negotiated)
		push_whole(src);
	if (state == PW_STREAM_STATE_ERROR)
		fprintf(stderr, "    pipewire_lab: source stream error: %s\n", error ? error : "?");
	if (src->node == SPA_ID_INVALID)
		src->node = pw_stream_get_node_id(src->stream);
	link_consumers(src);
	pw_thread_loop_signal(src->loop, false);
}

static void on_param_changed(void *data, uint32_t id, const struct spa_pod *param)
{
	struct pc_test_pw_src *src = data;
	if (id != SPA_PARAM_Format || !param)
		return;
	struct spa_video_info_raw info = {0};
	if (spa_format_video_raw_parse(param, &info) < 0)
		return;
	uint8_t buffer[1024];
	struct spa_pod_builder b = SPA_POD_BUILDER_INIT(buffer, sizeof(buffer));
	const struct spa_pod *params[4];
	uint32_t n = 0;
	int size = src->stride * src->height;
	params[n++] = spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_ParamBuffers, SPA_PARAM_Buffers,
		SPA_PARAM_BUFFERS_buffers, SPA_POD_CHOICE_RANGE_Int(8, 2, 16),
		SPA_PARAM_BUFFERS_blocks, SPA_POD_Int(1),
		SPA_PARAM_BUFFERS_size, SPA_POD_Int(size),
		SPA_PARAM_BUFFERS_stride, SPA_POD_Int(src->stride),
		SPA_PARAM_BUFFERS_dataType, SPA_POD_CHOICE_FLAGS_Int((1 << SPA_DATA_MemPtr) | (1 << SPA_DATA_MemFd)));
	params[n++] = spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_ParamMeta, SPA_PARAM_Meta,
		SPA_PARAM_META_type, SPA_POD_Id(SPA_META_Header),
		SPA_PARAM_META_size, SPA_POD_Int(sizeof(struct spa_meta_header)));
	if (!src->config.no_damage_meta)
		params[n++] = spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_ParamMeta, SPA_PARAM_Meta,
			SPA_PARAM_META_type, SPA_POD_Id(SPA_META_VideoDamage),
			SPA_PARAM_META_size, SPA_POD_CHOICE_RANGE_Int(sizeof(struct spa_meta_region) * 16,
								      sizeof(struct spa_meta_region) * 1,
								      sizeof(struct spa_meta_region) * 16));
	if (src->config.cursor_meta)
		params[n++] = spa_pod_builder_add_object(&b, SPA_TYPE_OBJECT_ParamMeta, SPA_PARAM_Meta,
			SPA_PARAM_META_type, SPA_POD_Id(SPA_META_Cursor),
			SPA_PARAM_META_size, SPA_POD_Int(CURSOR_META_BYTES));
	pw_stream_update_params(src->stream, params, n);
	src->negotiated = true;
	src->cursor_image_sent = false;
	push_whole(src); /* a new format: the whole picture goes first */
}

static void write_cursor(struct pc_test_pw_src *src, struct spa_buffer *sb)
{
	struct spa_meta *m = spa_buffer_find_meta(sb, SPA_META_Cursor);
	if (!m || m->size < CURSOR_META_BYTES)
		return;
	struct spa_meta_cursor *mc = m->data;
	if (!src->cursor_visible) {
		mc->id = 0;
		return;
	}
	mc->id = 1;
	mc->flags = 0;
	mc->position.x = src->cursor_x;
	mc->position.y = src->cursor_y;
	mc->hotspot.x = 0;
	mc->hotspot.y = 0;
	mc->bitmap_offset = 0;
	if (src->cursor_image_sent)
		return;
	/* The image, premultiplied RGBA as mutter sends it: opaque magenta on top, half-transparent
	 * black below. */
	mc->bitmap_offset = sizeof(*mc);
	struct spa_meta_bitmap *bm = SPA_PTROFF(mc, mc->bitmap_offset, struct spa_meta_bitmap);
	bm->format = SPA_VIDEO_FORMAT_RGBA;
	bm->size.width = PC_TEST_PW_CURSOR_SIZE;
	bm->size.height = PC_TEST_PW_CURSOR_SIZE;
	bm->stride = PC_TEST_PW_CURSOR_SIZE * 4;
	bm->offset = sizeof(*bm);
	uint8_t *p = SPA_PTROFF(bm, bm->offset, uint8_t);
	for (int y = 0; y < PC_TEST_PW_CURSOR_SIZE; y++)
		for (int x = 0; x < PC_TEST_PW_CURSOR_SIZE; x++, p += 4) {
			bool top = y < PC_TEST_PW_CURSOR_SIZE / 2;
			p[0] = top ? 0xff : 0;
			p[1] = 0;
			p[2] = top ? 0xff : 0;
			p[3] = top ? 0xff : 0x80;
		}
	src->cursor_image_sent = true;
}

static void on_process(void *data)
{
	struct pc_test_pw_src *src = data;
	if (!src->negotiated || (src->n_changes == 0 && !src->animate))
		return;
	struct pw_buffer *b = pw_stream_dequeue_buffer(src->stream);
	if (!b)
		return; /* all with the consumer: the change waits for the next tick */
	struct spa_buffer *sb = b->buffer;
	struct spa_data *d = &sb->datas[0];
	if (!d->data) {
		pw_stream_queue_buffer(src->stream, b);
		return;
	}

	struct change c = {.kind = CHANGE_PAINTED};
	if (src->n_changes > 0) {
		c = src->queue[0];
		memmove(&src->queue[0], &src->queue[1], sizeof(src->queue[0]) * (size_t)(src->n_changes - 1));
		src->n_changes--;
	} else if (src->animate == PC_TEST_PW_ALL) {
		c.r = (struct pc_rect){0, 0, src->width, src->height};
		paint(src->image, src->stride, src->width, src->height, video_format(src), c.r,
		      src->anim_step++ & 1 ? 0x00ff00 : 0x0000ff);
	} else {
		/* The moving square: painted at its new place, the old one painted back. */
		int step = src->anim_step++;
		int span = src->width - 64 > 0 ? src->width - 64 : 1;
		struct pc_rect old = {(step * 8) % span, (src->height - 64) / 2, 64, 64};
		struct pc_rect now = {((step + 1) * 8) % span, old.y, 64, 64};
		paint(src->image, src->stride, src->width, src->height, video_format(src), old, src->config.colour);
		c.r = (struct pc_rect){old.x < now.x ? old.x : now.x, old.y, 64 + 8, 64};
		if (now.x < old.x)
			c.r = (struct pc_rect){0, 0, src->width, src->height}; /* wrapped */
		paint(src->image, src->stride, src->width, src->height, video_format(src), now, step & 1 ? 0x00ff00 : 0x0000ff);
	}
	if (c.kind == CHANGE_FILL)
		paint(src->image, src->stride, src->width, src->height, video_format(src), c.r, c.colour);
	if (c.kind == CHANGE_WHOLE)
		c.r = (struct pc_rect){0, 0, src->width, src->height};

	struct spa_meta_header *h = spa_buffer_find_meta_data(sb, SPA_META_Header, sizeof(*h));
	if (h) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		h->pts = (int64_t)ts.tv_sec * SPA_NSEC_PER_SEC + ts.tv_nsec;
		h->flags = c.kind == CHANGE_BAD && c.bad == PC_TEST_PW_CORRUPT_HEADER ? SPA_META_HEADER_FLAG_CORRUPTED : 0;
		h->seq = src->seq++;
		h->dts_offset = 0;
	}
	struct spa_meta *m = spa_buffer_find_meta(sb, SPA_META_VideoDamage);
	if (m) {
		struct spa_meta_region *r = spa_meta_first(m);
		if (c.kind == CHANGE_BAD)
			c.r = (struct pc_rect){0, 0, src->width, src->height};
		if (c.kind != CHANGE_CURSOR && spa_meta_check(r, m)) {
			r->region = SPA_REGION(c.r.x, c.r.y, (uint32_t)c.r.w, (uint32_t)c.r.h);
			r++;
		}
		if (spa_meta_check(r, m))
			r->region = SPA_REGION(0, 0, 0, 0);
	}
	write_cursor(src, sb);

	size_t size = (size_t)src->stride * (size_t)src->height;
	d->chunk->offset = 0;
	d->chunk->stride = src->stride;
	d->chunk->size = (uint32_t)size;
	d->chunk->flags = SPA_CHUNK_FLAG_NONE;
	if (c.kind == CHANGE_CURSOR) {
		d->chunk->size = 0; /* GNOME's cursor-only buffer */
		d->chunk->flags = SPA_CHUNK_FLAG_CORRUPTED;
	} else if (c.kind == CHANGE_BAD) {
		paint(d->data, src->stride, src->width, src->height, video_format(src),
		      (struct pc_rect){0, 0, src->width, src->height}, c.colour);
		if (c.bad == PC_TEST_PW_EMPTY)
			d->chunk->size = 0;
		if (c.bad == PC_TEST_PW_CORRUPT_CHUNK)
			d->chunk->flags = SPA_CHUNK_FLAG_CORRUPTED;
	} else if (size <= d->maxsize) {
		memcpy(d->data, src->image, size);
	}
	pw_stream_queue_buffer(src->stream, b);
	src->sent++;
	pw_thread_loop_signal(src->loop, false);
}

static const struct pw_stream_events stream_events = {
	PW_VERSION_STREAM_EVENTS,
	.state_changed = on_state_changed,
	.param_changed = on_param_changed,
	.process = on_process,
};

static void on_tick(void *data, uint64_t expirations)
{
	(void)expirations;
	struct pc_test_pw_src *src = data;
	if (src->state == PW_STREAM_STATE_STREAMING && src->negotiated && (src->n_changes > 0 || src->animate))
		pw_stream_trigger_process(src->stream);
}

static bool has_output_port(const struct pc_test_pw_src *src)
{
	for (int p = 0; p < src->n_ports; p++)
		if (src->ports[p].node == src->node && !src->ports[p].input)
			return true;
	return false;
}

int pc_test_pw_src_start(struct pc_test_pw_src **out, const struct pc_test_pw_src_config *config, char *why,
			 size_t why_size)
{
	struct pc_test_pw_src *src = calloc(1, sizeof(*src));
	*out = NULL;
	if (!src) {
		snprintf(why, why_size, "out of memory");
		return -1;
	}
	src->config = *config;
	if (src->config.fps <= 0)
		src->config.fps = 30;
	src->node = SPA_ID_INVALID;
	src->width = config->width;
	src->height = config->height;
	src->stride = config->width * 4;
	src->image = malloc((size_t)src->stride * (size_t)src->height);
	if (!src->image) {
		snprintf(why, why_size, "out of memory");
		free(src);
		return -1;
	}
	paint(src->image, src->stride, src->width, src->height, video_format(src),
	      (struct pc_rect){0, 0, src->width, src->height}, config->colour);

	pw_init(NULL, NULL);
	src->loop = pw_thread_loop_new("pc-test-pw-src", NULL);
	src->context = src->loop ? pw_context_new(pw_thread_loop_get_loop(src->loop), NULL, 0) : NULL;
	if (!src->context || pw_thread_loop_start(src->loop) < 0) {
		snprintf(why, why_size, "cannot start a PipeWire client: %s", strerror(errno));
		goto error;
	}
	pw_thread_loop_lock(src->loop);
	src->core = pw_context_connect(src->context, NULL, 0);
	if (!src->core) {
		snprintf(why, why_size, "cannot connect to the lab's daemon: %s", strerror(errno));
		pw_thread_loop_unlock(src->loop);
		goto error;
	}
	src->registry = pw_core_get_registry(src->core, PW_VERSION_REGISTRY, 0);
	pw_registry_add_listener(src->registry, &src->registry_listener, &registry_events, src);
	src->stream = pw_stream_new(src->core, "p2pcast-test-screen",
				    pw_properties_new(PW_KEY_MEDIA_CLASS, "Video/Source", PW_KEY_MEDIA_ROLE, "Screen", NULL));
	pw_stream_add_listener(src->stream, &src->stream_listener, &stream_events, src);
	src->timer = pw_loop_add_timer(pw_thread_loop_get_loop(src->loop), on_tick, src);
	struct timespec first = {0, 1}, interval = {0, 1000000000L / src->config.fps};
	pw_loop_update_timer(pw_thread_loop_get_loop(src->loop), src->timer, &first, &interval, false);

	uint8_t buffer[1024];
	struct spa_pod_builder b = SPA_POD_BUILDER_INIT(buffer, sizeof(buffer));
	const struct spa_pod *params[1] = {enum_format(src, &b)};
	int ret = pw_stream_connect(src->stream, PW_DIRECTION_OUTPUT, PW_ID_ANY,
				    PW_STREAM_FLAG_DRIVER | PW_STREAM_FLAG_MAP_BUFFERS, params, 1);
	if (ret < 0) {
		snprintf(why, why_size, "pw_stream_connect: %s", strerror(-ret));
		pw_thread_loop_unlock(src->loop);
		goto error;
	}
	struct timespec deadline;
	pw_thread_loop_get_time(src->loop, &deadline, (int64_t)START_TIMEOUT_MS * SPA_NSEC_PER_MSEC);
	while (src->node == SPA_ID_INVALID || !has_output_port(src))
		if (pw_thread_loop_timed_wait_full(src->loop, &deadline) < 0)
			break;
	bool ok = src->node != SPA_ID_INVALID && has_output_port(src);
	pw_thread_loop_unlock(src->loop);
	if (!ok) {
		snprintf(why, why_size, "the source node did not appear within %d ms (state %s)", START_TIMEOUT_MS,
			 pw_stream_state_as_string(src->state));
		goto error;
	}
	*out = src;
	return 0;

error:
	pc_test_pw_src_stop(src);
	return -1;
}

uint32_t pc_test_pw_src_node(const struct pc_test_pw_src *src)
{
	return src->node;
}

void pc_test_pw_src_fill(struct pc_test_pw_src *src, struct pc_rect r, uint32_t colour)
{
	pw_thread_loop_lock(src->loop);
	enqueue(src, (struct change){.kind = CHANGE_FILL, .r = r, .colour = colour});
	pw_thread_loop_unlock(src->loop);
}

void pc_test_pw_src_fill_quiet(struct pc_test_pw_src *src, struct pc_rect r, uint32_t colour)
{
	pw_thread_loop_lock(src->loop);
	paint(src->image, src->stride, src->width, src->height, video_format(src), r, colour);
	pw_thread_loop_unlock(src->loop);
}

void pc_test_pw_src_send_bad(struct pc_test_pw_src *src, enum pc_test_pw_bad kind, uint32_t colour)
{
	pw_thread_loop_lock(src->loop);
	enqueue(src, (struct change){.kind = CHANGE_BAD, .bad = kind, .colour = colour});
	pw_thread_loop_unlock(src->loop);
}

void pc_test_pw_src_cursor(struct pc_test_pw_src *src, int x, int y, bool visible)
{
	pw_thread_loop_lock(src->loop);
	src->cursor_x = x;
	src->cursor_y = y;
	src->cursor_visible = visible;
	enqueue(src, (struct change){.kind = CHANGE_CURSOR});
	pw_thread_loop_unlock(src->loop);
}

void pc_test_pw_src_resize(struct pc_test_pw_src *src, int width, int height, uint32_t colour)
{
	pw_thread_loop_lock(src->loop);
	uint8_t *image = malloc((size_t)width * 4 * (size_t)height);
	if (image) {
		free(src->image);
		src->image = image;
		src->width = width;
		src->height = height;
		src->stride = width * 4;
		src->config.colour = colour;
		paint(src->image, src->stride, width, height, video_format(src), (struct pc_rect){0, 0, width, height}, colour);
		src->negotiated = false; /* until the new format is fixed */
		src->n_changes = 0;
		uint8_t buffer[1024];
		struct spa_pod_builder b = SPA_POD_BUILDER_INIT(buffer, sizeof(buffer));
		const struct spa_pod *params[1] = {enum_format(src, &b)};
		pw_stream_update_params(src->stream, params, 1);
	}
	pw_thread_loop_unlock(src->loop);
}

void pc_test_pw_src_animate(struct pc_test_pw_src *src, enum pc_test_pw_animation animation)
{
	pw_thread_loop_lock(src->loop);
	src->animate = animation;
	pw_thread_loop_unlock(src->loop);
}

int pc_test_pw_src_wait_sent(struct pc_test_pw_src *src, int timeout_ms)
{
	struct timespec deadline;
	pw_thread_loop_lock(src->loop);
	pw_thread_loop_get_time(src->loop, &deadline, (int64_t)timeout_ms * SPA_NSEC_PER_MSEC);
	while (src->n_changes > 0 || !src->negotiated)
		if (pw_thread_loop_timed_wait_full(src->loop, &deadline) < 0)
			break;
	int ret = src->n_changes > 0 || !src->negotiated ? -1 : 0;
	pw_thread_loop_unlock(src->loop);
	return ret;
}

uint64_t pc_test_pw_src_sent(struct pc_test_pw_src *src)
{
	pw_thread_loop_lock(src->loop);
	uint64_t n = src->sent;
	pw_thread_loop_unlock(src->loop);
	return n;
}

bool pc_test_pw_src_streaming(struct pc_test_pw_src *src, int timeout_ms)
{
	struct timespec deadline;
	pw_thread_loop_lock(src->loop);
	pw_thread_loop_get_time(src->loop, &deadline, (int64_t)timeout_ms * SPA_NSEC_PER_MSEC);
	while (src->state != PW_STREAM_STATE_STREAMING)
		if (pw_thread_loop_timed_wait_full(src->loop, &deadline) < 0)
			break;
	bool streaming = src->state == PW_STREAM_STATE_STREAMING;
	pw_thread_loop_unlock(src->loop);
	return streaming;
}

void pc_test_pw_src_stop(struct pc_test_pw_src *src)
{
	if (!src)
		return;
	if (src->loop) {
		pw_thread_loop_lock(src->loop);
		if (src->timer)
			pw_loop_destroy_source(pw_thread_loop_get_loop(src->loop), src->timer);
		if (src->stream) {
			spa_hook_remove(&src->stream_listener);
			pw_stream_destroy(src->stream);
		}
		pw_thread_loop_unlock(src->loop);
		pw_thread_loop_stop(src->loop);
	}
	for (int i = 0; i < src->n_links; i++)
		if (src->links[i])
			pw_proxy_destroy(src->links[i]);
	if (src->registry) {
		spa_hook_remove(&src->registry_listener);
		pw_proxy_destroy((struct pw_proxy *)src->registry);
	}
	if (src->core)
		pw_core_disconnect(src->core);
	if (src->context)
		pw_context_destroy(src->context);
	if (src->loop)
		pw_thread_loop_destroy(src->loop);
	free(src->image);
	free(src);
}
