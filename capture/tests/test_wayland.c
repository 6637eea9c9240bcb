/* The wayland source: conversion by damaged rectangle (no compositor needed), then the source
 * and the producer against a real headless sway (tests/sway.c) with a window of known colours.
 * The sway tests skip, saying why, when not root or sway is missing. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../convert.h"
#include "../ipc.h"
#include "../scale.h"
#include "../sources/wayland.h"
#include "check.h"
#include "sway.h"

#define TIMEOUT_MS 3000
#define RED 0xe02010u
#define BLUE 0x2040c0u
#define GREEN 0x30c050u
#define TOLERANCE 3

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

/* ---- colours ---- */

/* BT.601 limited range, as a decoder reads the stream: the reference the conversion must meet. */
static void expected_yuv(uint32_t rgb, int yuv[3])
{
	double r = rgb >> 16 & 0xff, g = rgb >> 8 & 0xff, b = rgb & 0xff;
	yuv[0] = (int)lround(16 + 219 * (0.299 * r + 0.587 * g + 0.114 * b) / 255);
	yuv[1] = (int)lround(128 + 224 * (-0.168736 * r - 0.331264 * g + 0.5 * b) / 255);
	yuv[2] = (int)lround(128 + 224 * (0.5 * r - 0.418688 * g - 0.081312 * b) / 255);
}

static void yuv_at(const struct pc_frame *f, int x, int y, int yuv[3])
{
	yuv[0] = f->plane[0][(size_t)y * f->stride[0] + x];
	yuv[1] = f->plane[1][(size_t)(y / 2) * f->stride[1] + x / 2];
	yuv[2] = f->plane[2][(size_t)(y / 2) * f->stride[2] + x / 2];
}

static bool colour_at(const struct pc_frame *f, int x, int y, uint32_t rgb)
{
	int want[3], got[3];
	expected_yuv(rgb, want);
	yuv_at(f, x, y, got);
	for (int i = 0; i < 3; i++)
		if (abs(want[i] - got[i]) > TOLERANCE)
			return false;
	return true;
}

#define CHECK_COLOUR(f, x, y, rgb)                                                                         \
	do {                                                                                               \
		if (!colour_at(f, x, y, rgb)) {                                                            \
			int w_[3], g_[3];                                                                  \
			expected_yuv(rgb, w_);                                                             \
			yuv_at(f, x, y, g_);                                                               \
			pc_check.current_failures++;                                                       \
			fprintf(stderr, "    %s:%d: pixel (%d,%d) is YUV %d/%d/%d, expected %06x = %d/%d/%d\n", \
				__FILE__, __LINE__, (int)(x), (int)(y), g_[0], g_[1], g_[2], (unsigned)(rgb), \
				w_[0], w_[1], w_[2]);                                                      \
		}                                                                                          \
	} while (0)

/* 32-bit pixels in the byte order of a wl_shm format. */
static void put_pixel(uint8_t *p, uint32_t format, uint32_t rgb)
{
	uint8_t r = rgb >> 16 & 0xff, g = rgb >> 8 & 0xff, b = rgb & 0xff;
	bool bgr_order = format == PC_SHM_XRGB8888 || format == PC_SHM_ARGB8888; /* B, G, R, X in memory */
	p[0] = bgr_order ? b : r;
	p[1] = g;
	p[2] = bgr_order ? r : b;
	p[3] = 0xff;
}

static void fill_pixels(uint8_t *data, int stride, uint32_t format, struct pc_rect r, uint32_t rgb)
{
	for (int y = r.y; y < r.y + r.h; y++)
		for (int x = r.x; x < r.x + r.w; x++)
			put_pixel(data + (size_t)y * stride + (size_t)x * 4, format, rgb);
}

/* ---- without a compositor ---- */

static void test_wayland_convert_colours(void)
{
	static const uint32_t formats[] = {PC_SHM_XRGB8888, PC_SHM_ARGB8888, PC_SHM_XBGR8888, PC_SHM_ABGR8888};
	static const uint32_t colours[] = {0x000000, 0xffffff, 0xff0000, 0x00ff00, 0x0000ff, RED, BLUE, GREEN, 0x808080};
	enum { W = 64, H = 32, STRIDE = W * 4 + 16 };
	static uint8_t data[STRIDE * H];
	struct pc_frame frame;
	CHECK(pc_frame_alloc(&frame, W, H) == 0);
	for (size_t f = 0; f < sizeof(formats) / sizeof(formats[0]); f++) {
		CHECK(pc_convert_format_known(formats[f]));
		for (size_t c = 0; c < sizeof(colours) / sizeof(colours[0]); c++) {
			fill_pixels(data, STRIDE, formats[f], (struct pc_rect){0, 0, W, H}, colours[c]);
			struct pc_pixels px = {data, W, H, STRIDE, formats[f], false};
			pc_convert_rect(&px, &frame, (struct pc_rect){0, 0, W, H});
			CHECK_COLOUR(&frame, 0, 0, colours[c]);
			CHECK_COLOUR(&frame, W - 1, H - 1, colours[c]);
		}
	}
	CHECK(!pc_convert_format_known(0x34324752)); /* RGB888-ish fourcc: refused */
	pc_frame_free(&frame);
}

static void test_wayland_convert_damage_only(void)
{
	enum { W = 96, H = 64, STRIDE = W * 4 };
	static uint8_t data[STRIDE * H];
	struct pc_frame frame;
	CHECK(pc_frame_alloc(&frame, W, H) == 0);
	struct pc_pixels px = {data, W, H, STRIDE, PC_SHM_XRGB8888, false};

	fill_pixels(data, STRIDE, px.format, (struct pc_rect){0, 0, W, H}, RED);
	pc_convert_rect(&px, &frame, (struct pc_rect){0, 0, W, H});
	/* Everything turns blue in the buffer, but only an odd-edged rectangle is damaged: it
	 * widens to even edges, and the rest of the picture keeps what it had. */
	fill_pixels(data, STRIDE, px.format, (struct pc_rect){0, 0, W, H}, BLUE);
	struct pc_rect r = {11, 7, 20, 9};
	CHECK(pc_rect_even(&r, W, H));
	CHECK_EQ(r.x, 10);
	CHECK_EQ(r.y, 6);
	CHECK_EQ(r.w, 22);
	CHECK_EQ(r.h, 10);
	pc_convert_rect(&px, &frame, r);
	CHECK_COLOUR(&frame, 10, 6, BLUE);
	CHECK_COLOUR(&frame, 31, 15, BLUE);
	CHECK_COLOUR(&frame, 9, 6, RED);
	CHECK_COLOUR(&frame, 32, 15, RED);
	CHECK_COLOUR(&frame, 20, 16, RED);
	CHECK_COLOUR(&frame, 20, 5, RED);

	/* y_invert: buffer row 0 is the picture's bottom row. */
	fill_pixels(data, STRIDE, px.format, (struct pc_rect){0, 0, W, H / 2}, GREEN);
	fill_pixels(data, STRIDE, px.format, (struct pc_rect){0, H / 2, W, H / 2}, RED);
	px.y_invert = true;
	pc_convert_rect(&px, &frame, (struct pc_rect){0, 0, W, H});
	CHECK_COLOUR(&frame, 5, 0, RED);
	CHECK_COLOUR(&frame, 5, H / 2 - 1, RED);
	CHECK_COLOUR(&frame, 5, H / 2, GREEN);
	CHECK_COLOUR(&frame, 5, H - 1, GREEN);
	/* ... and a rectangle of it lands where it belongs: rows 40..47 of the picture are buffer
	 * rows 16..23 (green, now repainted blue there). */
	fill_pixels(data, STRIDE, px.format, (struct pc_rect){0, 16, W, 8}, BLUE);
	pc_convert_rect(&px, &frame, (struct pc_rect){0, 40, W, 8});
	CHECK_COLOUR(&frame, 5, 39, GREEN);
	CHECK_COLOUR(&frame, 5, 40, BLUE);
	CHECK_COLOUR(&frame, 5, 47, BLUE);
	CHECK_COLOUR(&frame, 5, 48, GREEN);
	pc_frame_free(&frame);
}

static void test_wayland_rects_and_damage(void)
{
	struct pc_rect r = {-4, 3, 10, 1};
	CHECK(pc_rect_even(&r, 100, 50));
	CHECK(r.x == 0 && r.y == 2 && r.w == 6 && r.h == 2);
	r = (struct pc_rect){95, 45, 40, 40}; /* past the edge: clipped */
	CHECK(pc_rect_even(&r, 100, 50));
	CHECK(r.x == 94 && r.y == 44 && r.w == 6 && r.h == 6);
	r = (struct pc_rect){120, 10, 5, 5};
	CHECK(!pc_rect_even(&r, 100, 50));
	r = (struct pc_rect){10, 10, 0, 5};
	CHECK(!pc_rect_even(&r, 100, 50));
	r = (struct pc_rect){2147483000, 2147483000, 2147483000, 5}; /* no overflow */
	CHECK(!pc_rect_even(&r, 100, 50));

	struct pc_damage d;
	pc_damage_clear(&d);
	pc_damage_add(&d, (struct pc_rect){10, 10, 20, 20});
	pc_damage_add(&d, (struct pc_rect){12, 12, 4, 4}); /* inside: nothing new */
	pc_damage_add(&d, (struct pc_rect){0, 0, 0, 9});   /* empty */
	CHECK_EQ(d.n, 1);
	pc_damage_add(&d, (struct pc_rect){100, 0, 2, 2});
	CHECK_EQ(d.n, 2);
	struct pc_rect b = pc_damage_bounds(&d);
	CHECK(b.x == 10 && b.y == 0 && b.w == 92 && b.h == 30);
	/* Two held, PC_DAMAGE_MAX - 1 more: the last one overflows the list into its bounding box. */
	for (int i = 0; i < PC_DAMAGE_MAX - 1; i++)
		pc_damage_add(&d, (struct pc_rect){200 + 10 * i, 5, 2, 2});
	CHECK_EQ(d.n, 1);
	b = d.rect[0];
	CHECK(b.x == 10 && b.y == 0 && b.w == 200 + 10 * (PC_DAMAGE_MAX - 2) + 2 - 10 && b.h == 30);
	struct pc_damage e;
	pc_damage_clear(&e);
	pc_damage_add(&e, (struct pc_rect){1, 1, 1, 1});
	pc_damage_merge(&e, &d);
	CHECK_EQ(e.n, 2);
}

static void test_wayland_fit(void)
{
	enum { W = 192, H = 108 };
	static uint8_t data[W * 4 * H];
	struct pc_frame src, dst;
	CHECK(pc_frame_alloc(&src, W, H) == 0);
	CHECK(pc_frame_alloc(&dst, 64, 48) == 0);
	fill_pixels(data, W * 4, PC_SHM_XRGB8888, (struct pc_rect){0, 0, W, H}, GREEN);
	struct pc_pixels px = {data, W, H, W * 4, PC_SHM_XRGB8888, false};
	pc_convert_rect(&px, &src, (struct pc_rect){0, 0, W, H});
	struct pc_rect placed;
	pc_convert_fit(&src, &dst, &placed);
	/* 16:9 into 4:3: full width, 36 rows centred, black above and below. */
	CHECK(placed.x == 0 && placed.w == 64 && placed.h == 36 && placed.y == 6);
	CHECK_COLOUR(&dst, 32, 24, GREEN);
	CHECK_COLOUR(&dst, 0, 6, GREEN);
	CHECK_COLOUR(&dst, 32, 0, 0x000000);
	CHECK_COLOUR(&dst, 32, 47, 0x000000);
	pc_frame_free(&src);
	pc_frame_free(&dst);
}

/* ---- against sway ---- */

/* 1: started; 0: skipped (said why); -1: failed (a CHECK failed). */
static int start_sway(struct pc_test_sway *s, int width, int height)
{
	char why[256] = "";
	int ret = pc_test_sway_start(s, width, height, why, sizeof(why));
	if (ret == 0)
		fprintf(stderr, "    skipped: %s\n", why);
	if (ret < 0) {
		fprintf(stderr, "    sway: %s\n", why);
		CHECK(!"sway started");
	}
	return ret;
}

struct source {
	void *state;
	struct pc_source_picture pic;
	char err[256];
};

static int source_init(struct source *src, const char *output, int width, int height)
{
	memset(src, 0, sizeof(*src));
	struct pc_source_config config = {.width = width, .height = height, .fps_num = 30, .fps_den = 1};
	if (!output)
		return pc_wayland_source.init(&src->state, &config, src->err, sizeof(src->err));
	struct pc_wayland_options options = {.output = output, .cursor = true};
	return pc_wayland_init(&src->state, &config, &options, src->err, sizeof(src->err));
}

static void source_destroy(struct source *src)
{
	if (src->state)
		pc_wayland_source.destroy(src->state);
	src->state = NULL;
}

/* The next picture within timeout_ms: 1, 0 on a timeout, or take()'s error. */
static int next_picture(struct source *src, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int ret = pc_wayland_source.take(src->state, &src->pic, src->err, sizeof(src->err));
		if (ret != 0)
			return ret;
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = {.fd = pc_wayland_source.wait_fd(src->state), .events = POLLIN};
		poll(&pfd, 1, (int)left);
	}
}

/* Pictures until one is width x height and rgb at (x, y); false on a timeout. */
static bool wait_colour(struct source *src, int width, int height, int x, int y, uint32_t rgb)
{
	int64_t deadline = now_ms() + TIMEOUT_MS;
	while (now_ms() < deadline) {
		if (next_picture(src, (int)(deadline - now_ms())) != 1)
			return false;
		const struct pc_frame *f = src->pic.frame;
		if (f->width == width && f->height == height && colour_at(f, x, y, rgb))
			return true;
	}
	return false;
}

static void test_wayland_source_colour_and_size(void)
{
	struct pc_test_sway sway;
	struct pc_test_window *win = NULL;
	struct source src = {0};
	if (start_sway(&sway, 640, 480) <= 0)
		return;
	CHECK(pc_test_window_open(&win, RED) == 0);
	int ret = source_init(&src, NULL, 0, 0);
	if (ret < 0)
		fprintf(stderr, "    %s\n", src.err);
	CHECK_EQ(ret, 0);
	if (ret < 0 || !win)
		goto out;
	CHECK(wait_colour(&src, 640, 480, 320, 240, RED));
	const struct pc_frame *f = src.pic.frame;
	CHECK_EQ(f->width, 640);
	CHECK_EQ(f->height, 480);
	CHECK_COLOUR(f, 0, 0, RED);
	CHECK_COLOUR(f, 639, 479, RED);
	CHECK_COLOUR(f, 639, 0, RED);
	/* capture_ns is CLOCK_REALTIME, a moment ago. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t age = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - src.pic.capture_ns;
	CHECK(age >= 0 && age < INT64_C(1000000000));

	/* Fitted into another size: the output's 4:3 into 16:9, bars left and right. */
	source_destroy(&src);
	CHECK_EQ(source_init(&src, "HEADLESS-1", 320, 180), 0);
	if (src.state) {
		CHECK_EQ(next_picture(&src, TIMEOUT_MS), 1);
		f = src.pic.frame;
		CHECK(f->width == 320 && f->height == 180);
		CHECK_COLOUR(f, 160, 90, RED);
		CHECK_COLOUR(f, 4, 90, 0x000000);
	}
out:
	source_destroy(&src);
	pc_test_window_close(win);
	pc_test_sway_stop(&sway, pc_check.current_failures > 0);
}

static void test_wayland_source_errors(void)
{
	struct pc_test_sway sway;
	struct source src = {0};
	if (start_sway(&sway, 640, 480) <= 0)
		return;
	/* A wrong name lists the outputs there are. */
	CHECK_EQ(source_init(&src, "DP-9", 0, 0), -EINVAL);
	CHECK(strstr(src.err, "DP-9") && strstr(src.err, "HEADLESS-1 640x480"));
	source_destroy(&src);

	/* The output removed (a nested sway's output window closed): take() fails and says so. */
	struct pc_test_sway inner;
	char why[256] = "";
	int started = pc_test_sway_start_nested(&inner, &sway, why, sizeof(why));
	if (started < 0)
		fprintf(stderr, "    nested sway: %s\n", why);
	CHECK_EQ(started, 1);
	if (started == 1) {
		CHECK_EQ(source_init(&src, "WL-2", 0, 0), 0);
		if (src.state) {
			CHECK_EQ(next_picture(&src, TIMEOUT_MS), 1);
			CHECK_EQ(pc_test_sway_msg(&sway, "[title=\"wlroots - WL-2\"] kill"), 0);
			int ret;
			while ((ret = next_picture(&src, TIMEOUT_MS)) == 1)
				;
			CHECK(ret < 0);
			CHECK(strstr(src.err, "output WL-2 was removed"));
			if (ret >= 0 || !strstr(src.err, "output WL-2 was removed"))
				fprintf(stderr, "    take: %d, %s\n", ret, src.err);
		}
		source_destroy(&src);
		pc_test_sway_stop(&inner, pc_check.current_failures > 0);
	}
	/* Back to the outer one. */
	setenv("XDG_RUNTIME_DIR", sway.dir, 1);

	/* The compositor gone: the same, with the reason. */
	CHECK_EQ(source_init(&src, NULL, 0, 0), 0);
	if (src.state) {
		CHECK_EQ(next_picture(&src, TIMEOUT_MS), 1);
		pc_test_sway_stop(&sway, false);
		int ret;
		while ((ret = next_picture(&src, TIMEOUT_MS)) == 1)
			;
		CHECK(ret < 0);
		CHECK(strstr(src.err, "lost the connection"));
		if (ret >= 0 || !strstr(src.err, "lost the connection"))
			fprintf(stderr, "    take: %d, %s\n", ret, src.err);
	}
	source_destroy(&src);
	pc_test_sway_stop(&sway, pc_check.current_failures > 0);

	/* No compositor there at all. */
	setenv("WAYLAND_DISPLAY", "p2pcast-no-such-display", 1);
	CHECK(source_init(&src, NULL, 0, 0) < 0);
	CHECK(strstr(src.err, "cannot connect to the compositor") && strstr(src.err, "p2pcast-no-such-display"));
	source_destroy(&src);
}

static void test_wayland_source_not_wlroots(void)
{
	struct pc_test_sway weston;
	struct source src = {0};
	char why[256] = "";
	int ret = pc_test_weston_start(&weston, why, sizeof(why));
	if (ret <= 0) {
		fprintf(stderr, "    %s: %s\n", ret == 0 ? "skipped" : "weston", why);
		CHECK(ret == 0);
		return;
	}
	CHECK_EQ(source_init(&src, NULL, 0, 0), -ENOTSUP);
	CHECK(strstr(src.err, "no zwlr_screencopy_manager_v1: not a wlroots compositor; use the portal"));
	source_destroy(&src);
	pc_test_sway_stop(&weston, pc_check.current_failures > 0);
}

static void test_wayland_source_static_and_damage(void)
{
	struct pc_test_sway sway;
	struct pc_test_window *win = NULL;
	struct source src = {0};
	if (start_sway(&sway, 640, 480) <= 0)
		return;
	CHECK(pc_test_window_open(&win, BLUE) == 0);
	CHECK_EQ(source_init(&src, NULL, 0, 0), 0);
	if (!src.state || !win)
		goto out;
	CHECK(wait_colour(&src, 640, 480, 320, 240, BLUE));

	/* Still: nothing at all for 600 ms (sway may still finish a frame or two right after the
	 * window appeared: let those pass first). */
	while (next_picture(&src, 150) == 1)
		;
	int64_t start = now_ms();
	CHECK_EQ(next_picture(&src, 600), 0);
	CHECK(now_ms() - start >= 590);

	/* A change: one new picture, its damage covering the change and not much more. */
	struct pc_rect change = {101, 51, 64, 30};
	CHECK_EQ(pc_test_window_fill(win, change, GREEN), 0);
	CHECK_EQ(next_picture(&src, TIMEOUT_MS), 1);
	struct pc_rect d = src.pic.damage;
	CHECK(d.x <= change.x && d.y <= change.y && d.x + d.w >= change.x + change.w &&
	      d.y + d.h >= change.y + change.h);
	CHECK(d.w * d.h < 640 * 480 / 4);
	const struct pc_frame *f = src.pic.frame;
	CHECK_COLOUR(f, 102, 52, GREEN);
	CHECK_COLOUR(f, 163, 79, GREEN); /* not 164, 80: its chroma is shared with blue pixels */
	CHECK_COLOUR(f, 98, 52, BLUE);
	CHECK_COLOUR(f, 320, 240, BLUE);

	/* Two changes before a take(): coalesced into one picture holding both. */
	CHECK_EQ(pc_test_window_fill(win, (struct pc_rect){400, 300, 20, 20}, RED), 0);
	sleep_ms(100); /* sway copies on its next frame, 16 ms away */
	CHECK_EQ(pc_test_window_fill(win, (struct pc_rect){10, 400, 20, 20}, RED), 0);
	sleep_ms(100);
	CHECK_EQ(next_picture(&src, TIMEOUT_MS), 1);
	f = src.pic.frame;
	CHECK_COLOUR(f, 410, 310, RED);
	CHECK_COLOUR(f, 20, 410, RED);
	d = src.pic.damage;
	CHECK(d.x <= 10 && d.y <= 300 && d.x + d.w >= 420 && d.y + d.h >= 420);
	CHECK_EQ(next_picture(&src, 100), 0);
out:
	source_destroy(&src);
	pc_test_window_close(win);
	pc_test_sway_stop(&sway, pc_check.current_failures > 0);
}

static void test_wayland_source_resize(void)
{
	struct pc_test_sway sway;
	struct pc_test_window *win = NULL;
	struct source src = {0};
	if (start_sway(&sway, 640, 480) <= 0)
		return;
	CHECK(pc_test_window_open(&win, GREEN) == 0);
	CHECK_EQ(source_init(&src, NULL, 0, 0), 0);
	if (!src.state || !win)
		goto out;
	CHECK(wait_colour(&src, 640, 480, 320, 240, GREEN));

	CHECK_EQ(pc_test_sway_msg(&sway, "output HEADLESS-1 resolution 800x600"), 0);
	CHECK_EQ(pc_test_window_wait_size(win, 800, 600, TIMEOUT_MS), 0);
	CHECK(wait_colour(&src, 800, 600, 799, 599, GREEN));
	CHECK(src.pic.damage.w == 800 && src.pic.damage.h == 600);

	/* An odd size loses its last column and row. */
	CHECK_EQ(pc_test_sway_msg(&sway, "output HEADLESS-1 resolution 641x479"), 0);
	CHECK_EQ(pc_test_window_wait_size(win, 641, 479, TIMEOUT_MS), 0);
	CHECK(wait_colour(&src, 640, 478, 639, 477, GREEN));
out:
	source_destroy(&src);
	pc_test_window_close(win);
	pc_test_sway_stop(&sway, pc_check.current_failures > 0);
}

/* ---- the producer ---- */

struct run {
	char dir[64];
	char path[3][128]; /* log, stream, socket */
	pid_t pid;
};

static bool run_init(struct run *r)
{
	memset(r, 0, sizeof(*r));
	r->pid = -1;
	snprintf(r->dir, sizeof(r->dir), "/tmp/p2pcast-wayland-test-XXXXXX");
	if (!mkdtemp(r->dir))
		return false;
	static const char *const names[] = {"producer.log", "stream.h264", "capture.sock"};
	for (int i = 0; i < 3; i++)
		snprintf(r->path[i], sizeof(r->path[i]), "%s/%s", r->dir, names[i]);
	return true;
}

static void run_spawn(struct run *r, const char *const *args)
{
	const char *argv[24] = {pc_check_producer};
	int n = 1;
	for (; args[n - 1] && n < 23; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	r->pid = fork();
	if (r->pid == 0) {
		int log = open(r->path[0], O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (log < 0 || dup2(log, STDERR_FILENO) < 0)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		execv(pc_check_producer, (char *const *)argv);
		_exit(127);
	}
}

/* The exit status, or -1 when it did not exit within timeout_ms (then it is killed). */
static int run_wait(struct run *r, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int status;
	while (r->pid > 0) {
		pid_t p = waitpid(r->pid, &status, WNOHANG);
		if (p == r->pid) {
			r->pid = -1;
			return status;
		}
		if (now_ms() > deadline) {
			kill(r->pid, SIGKILL);
			waitpid(r->pid, NULL, 0);
			r->pid = -1;
			return -1;
		}
		sleep_ms(10);
	}
	return -1;
}

static bool log_has(const struct run *r, const char *text)
{
	char buf[16384];
	FILE *f = fopen(r->path[0], "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

static void run_destroy(struct run *r)
{
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
	}
	if (pc_check.current_failures) {
		FILE *f = fopen(r->path[0], "r");
		char line[512];
		fprintf(stderr, "    --- producer log ---\n");
		while (f && fgets(line, sizeof(line), f))
			fprintf(stderr, "    %s", line);
		if (f)
			fclose(f);
	}
	for (int i = 0; i < 3; i++)
		unlink(r->path[i]);
	rmdir(r->dir);
}

/* Each frame's "WxH" as ffprobe decodes the stream, into sizes (at most max); the count, or -1
 * without ffprobe. */
static int probe_sizes(const char *file, char sizes[][16], int max)
{
	if (system("command -v ffprobe >/dev/null 2>&1") != 0)
		return -1;
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "timeout 20 ffprobe -v error -select_streams v:0 -show_entries frame=width,height -of csv=p=0:s=x '%s'",
		 file);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	char line[64];
	int n = 0;
	while (fgets(line, sizeof(line), p)) {
		/* "640x480", and for a frame with side data (the first) an extra field and line. */
		int width, height;
		if (sscanf(line, "%dx%d", &width, &height) != 2)
			continue;
		if (n < max)
			snprintf(sizes[n], sizeof(sizes[0]), "%dx%d", width % 100000, height % 100000);
		n++;
	}
	pclose(p);
	return n;
}

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : 0;
}

static void test_wayland_producer_annexb_and_resize(void)
{
	struct pc_test_sway sway;
	struct pc_test_window *win = NULL;
	struct run r;
	if (start_sway(&sway, 640, 480) <= 0)
		return;
	CHECK(run_init(&r));
	CHECK(pc_test_window_open(&win, BLUE) == 0);

	/* A still screen and --frames: the keep-alive makes up the count. */
	const char *args[] = {"--source", "wayland", "--annexb-out", r.path[1], "--frames", "4", "--keepalive-ms", "50", NULL};
	run_spawn(&r, args);
	int status = run_wait(&r, 5000);
	CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	char sizes[64][16];
	int n = probe_sizes(r.path[1], sizes, 64);
	if (n < 0) {
		fprintf(stderr, "    ffprobe is not installed: the stream is not checked\n");
	} else {
		CHECK_EQ(n, 4);
		CHECK(n > 0 && strcmp(sizes[0], "640x480") == 0);
	}
	CHECK(log_has(&r, "keep-alive every 50 ms"));

	/* The output changes its mode while streaming: the stream follows, from an IDR. */
	unlink(r.path[1]);
	const char *args2[] = {"--source", "wayland", "--annexb-out", r.path[1], "--keepalive-ms", "50", NULL};
	run_spawn(&r, args2);
	int64_t deadline = now_ms() + TIMEOUT_MS;
	while (file_size(r.path[1]) == 0 && now_ms() < deadline)
		sleep_ms(10);
	CHECK_EQ(pc_test_sway_msg(&sway, "output HEADLESS-1 resolution 800x600"), 0);
	if (win)
		CHECK_EQ(pc_test_window_wait_size(win, 800, 600, TIMEOUT_MS), 0);
	deadline = now_ms() + TIMEOUT_MS;
	while (!log_has(&r, "now 800x600") && now_ms() < deadline)
		sleep_ms(10);
	sleep_ms(200); /* a few keep-alives at the new size */
	if (r.pid > 0)
		kill(r.pid, SIGTERM);
	status = run_wait(&r, 5000);
	CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	n = probe_sizes(r.path[1], sizes, 64);
	if (n > 0) {
		CHECK(strcmp(sizes[0], "640x480") == 0);
		CHECK(strcmp(sizes[n < 64 ? n - 1 : 63], "800x600") == 0);
	}
	CHECK(log_has(&r, "1 size changes"));

	/* --size: fitted into it, whatever the output does. */
	unlink(r.path[1]);
	const char *args3[] = {"--source", "wayland", "--size", "320x240", "--annexb-out", r.path[1], "--frames", "2",
			       "--keepalive-ms", "50", NULL};
	run_spawn(&r, args3);
	status = run_wait(&r, 5000);
	CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	n = probe_sizes(r.path[1], sizes, 64);
	if (n > 0)
		CHECK(strcmp(sizes[0], "320x240") == 0);

	/* No such output: a usage error naming the outputs there are. */
	const char *args4[] = {"--source", "wayland", "--output", "DP-9", "--annexb-out", r.path[1], NULL};
	run_spawn(&r, args4);
	status = run_wait(&r, 5000);
	CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 2);
	CHECK(log_has(&r, "no output named 'DP-9' (outputs: HEADLESS-1 800x600)"));

	run_destroy(&r);
	pc_test_window_close(win);
	pc_test_sway_stop(&sway, pc_check.current_failures > 0);
}

/* A fake device: reads the producer's messages on an accepted socket. */
static int read_full(int fd, uint8_t *buf, size_t n, int timeout_ms)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, timeout_ms) != 1)
			return -1;
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* The next message's header and up to payload_max payload bytes; 0, or -1 (EOF, timeout). */
static int read_message(int fd, struct pc_ipc_header *hdr, uint8_t *payload, size_t payload_max, int timeout_ms)
{
	uint8_t head[PC_IPC_HEADER_SIZE];
	static uint8_t skip[1 << 16];
	if (read_full(fd, head, sizeof(head), timeout_ms) < 0 || pc_ipc_header_unpack(head, hdr) != PC_IPC_OK)
		return -1;
	size_t left = hdr->length;
	size_t first = left < payload_max ? left : payload_max;
	if (read_full(fd, payload, first, timeout_ms) < 0)
		return -1;
	for (left -= first; left > 0;) {
		size_t n = left < sizeof(skip) ? left : sizeof(skip);
		if (read_full(fd, skip, n, timeout_ms) < 0)
			return -1;
		left -= n;
	}
	return 0;
}

/* Video FRAMEs until one arrives within timeout_ms: 1 keyframe, 0 other, -1 none/other. */
static int next_frame(int fd, int timeout_ms, int64_t *arrived_ms)
{
	struct pc_ipc_header hdr;
	uint8_t payload[64];
	int64_t deadline = now_ms() + timeout_ms;
	while (now_ms() < deadline) {
		if (read_message(fd, &hdr, payload, sizeof(payload), (int)(deadline - now_ms())) < 0)
			return -1;
		if (hdr.type == PC_IPC_FRAME && hdr.track == 1) {
			*arrived_ms = now_ms();
			return hdr.flags & PC_IPC_FLAG_KEYFRAME ? 1 : 0;
		}
	}
	return -1;
}

static void test_wayland_producer_device(void)
{
	struct pc_test_sway sway;
	struct pc_test_window *win = NULL;
	struct run r;
	int listen_fd = -1, fd = -1;
	if (start_sway(&sway, 640, 480) <= 0)
		return;
	CHECK(run_init(&r));
	CHECK(pc_test_window_open(&win, RED) == 0);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	CHECK(strlen(r.path[2]) < sizeof(addr.sun_path));
	memcpy(addr.sun_path, r.path[2], strlen(r.path[2]) + 1 < sizeof(addr.sun_path) ? strlen(r.path[2]) + 1 : 0);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(listen_fd >= 0 && bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 && listen(listen_fd, 1) == 0);

	const char *args[] = {"--source", "wayland", "--socket", r.path[2], "--keepalive-ms", "300", NULL};
	run_spawn(&r, args);
	struct pollfd pfd = {.fd = listen_fd, .events = POLLIN};
	if (poll(&pfd, 1, TIMEOUT_MS) == 1)
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(fd >= 0);
	if (fd < 0)
		goto out;

	/* HELLO: the output's size. */
	struct pc_ipc_header hdr;
	uint8_t payload[128];
	CHECK_EQ(read_message(fd, &hdr, payload, sizeof(payload), TIMEOUT_MS), 0);
	CHECK_EQ(hdr.type, PC_IPC_HELLO);
	CHECK_EQ(payload[2] | payload[3] << 8, 640);
	CHECK_EQ(payload[4] | payload[5] << 8, 480);

	/* The first picture is an IDR; then a still screen sends only the keep-alive, every 300 ms:
	 * 1 s holds 3 or 4 of them (the first after 300 ms), none of them keyframes. */
	int64_t at, first_at;
	CHECK_EQ(next_frame(fd, TIMEOUT_MS, &first_at), 1);
	/* A picture or two more while sway settles after the window appeared, each followed by
	 * its refines (3, 100 ms apart). */
	int64_t settle_end = now_ms() + 600;
	while (now_ms() < settle_end && next_frame(fd, (int)(settle_end - now_ms()), &at) >= 0)
		;
	int frames = 0, keyframes = 0;
	int64_t window_end = now_ms() + 1000;
	int k;
	while (now_ms() < window_end && (k = next_frame(fd, (int)(window_end - now_ms()), &at)) >= 0) {
		frames++;
		keyframes += k;
	}
	if (frames < 2 || frames > 4)
		fprintf(stderr, "    %d pictures in 1 s of a still screen (keep-alive every 300 ms)\n", frames);
	CHECK(frames >= 2 && frames <= 4);
	CHECK_EQ(keyframes, 0);

	/* A keyframe request is answered at once, not at the next change or keep-alive. */
	uint8_t msg[PC_IPC_HEADER_SIZE];
	struct pc_ipc_header req = {.version = PC_IPC_VERSION, .type = PC_IPC_KEYFRAME, .track = 1};
	pc_ipc_header_pack(&req, msg);
	int64_t asked = now_ms();
	CHECK_EQ(write(fd, msg, sizeof(msg)), (ssize_t)sizeof(msg));
	CHECK_EQ(next_frame(fd, TIMEOUT_MS, &at), 1);
	if (at - asked > 150)
		fprintf(stderr, "    the keyframe came %lld ms after the request\n", (long long)(at - asked));
	CHECK(at - asked <= 150);

	/* A change goes out as soon as sway has it (well before the keep-alive). */
	int64_t changed = now_ms();
	if (win)
		CHECK_EQ(pc_test_window_fill(win, (struct pc_rect){10, 10, 50, 50}, GREEN), 0);
	CHECK_EQ(next_frame(fd, TIMEOUT_MS, &at), 0);
	CHECK(at - changed < 200);

	/* The compositor gone: the producer says so and exits non-zero (the device restarts it). */
	pc_test_window_close(win);
	win = NULL;
	pc_test_sway_stop(&sway, false);
	int status = run_wait(&r, 3000);
	CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) != 0);
	CHECK(log_has(&r, "lost the connection to the compositor"));
out:
	if (fd >= 0)
		close(fd);
	if (listen_fd >= 0)
		close(listen_fd);
	run_destroy(&r);
	pc_test_window_close(win);
	pc_test_sway_stop(&sway, pc_check.current_failures > 0);
}

void pc_test_wayland(void)
{
	RUN_TEST(test_wayland_convert_colours);
	RUN_TEST(test_wayland_convert_damage_only);
	RUN_TEST(test_wayland_rects_and_damage);
	RUN_TEST(test_wayland_fit);
	RUN_TEST(test_wayland_source_colour_and_size);
	RUN_TEST(test_wayland_source_errors);
	RUN_TEST(test_wayland_source_not_wlroots);
	RUN_TEST(test_wayland_source_static_and_damage);
	RUN_TEST(test_wayland_source_resize);
	RUN_TEST(test_wayland_producer_annexb_and_resize);
	RUN_TEST(test_wayland_producer_device);
}
