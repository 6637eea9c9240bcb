/* The pipewire source against a real PipeWire daemon started per test (tests/pipewire_lab.c),
 * with a test source node of known colours standing in for a compositor's screen cast; then the
 * producer end to end. The tests skip, saying why, when pipewire is not installed. */
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

#include <spa/param/video/raw.h>

#include "../clock.h"
#include "../sources/pipewire.h"
#include "check.h"
#include "pipewire_lab.h"

void pc_test_pipewire(void);

#define TIMEOUT_MS 3000
#define RED 0xe02010u
#define BLUE 0x2040c0u
#define GREEN 0x30c050u
#define TOLERANCE 3

static int64_t now_ms(void)
{
	return pc_clock_ns(CLOCK_MONOTONIC) / PC_NS_PER_MS;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* ---- colours ---- */

/* BT.601 limited range, as a decoder reads the stream. */
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

static bool yuv_near(const int got[3], const int want[3])
{
	for (int i = 0; i < 3; i++)
		if (abs(want[i] - got[i]) > TOLERANCE)
			return false;
	return true;
}

static bool colour_at(const struct pc_frame *f, int x, int y, uint32_t rgb)
{
	int want[3], got[3];
	expected_yuv(rgb, want);
	yuv_at(f, x, y, got);
	return yuv_near(got, want);
}

#define CHECK_YUV(f, x, y, want)                                                                        \
	do {                                                                                             \
		int g_[3];                                                                               \
		yuv_at(f, x, y, g_);                                                                     \
		if (!yuv_near(g_, want)) {                                                               \
			pc_check.current_failures++;                                                     \
			fprintf(stderr, "    %s:%d: pixel (%d,%d) is YUV %d/%d/%d, expected %d/%d/%d\n", \
				__FILE__, __LINE__, (int)(x), (int)(y), g_[0], g_[1], g_[2], (want)[0],  \
				(want)[1], (want)[2]);                                                   \
		}                                                                                        \
	} while (0)

#define CHECK_COLOUR(f, x, y, rgb)                  \
	do {                                        \
		int w_[3];                          \
		expected_yuv(rgb, w_);              \
		CHECK_YUV(f, x, y, w_);             \
	} while (0)

/* ---- the lab ---- */

/* 1 with the daemon running, else the test is over (skipped, or failed). */
static int start_lab(struct pc_test_pw_lab *lab)
{
	char why[256] = "";
	int ret = pc_test_pw_lab_start(lab, why, sizeof(why));
	if (ret <= 0) {
		fprintf(stderr, "    %s: %s\n", ret == 0 ? "skipped" : "pipewire", why);
		CHECK(ret == 0);
	}
	return ret;
}

static struct pc_test_pw_src *start_src(const struct pc_test_pw_src_config *config)
{
	struct pc_test_pw_src *src = NULL;
	char why[256] = "";
	if (pc_test_pw_src_start(&src, config, why, sizeof(why)) < 0)
		fprintf(stderr, "    test source: %s\n", why);
	CHECK(src != NULL);
	return src;
}

/* ---- the source in this process ---- */

struct source {
	void *state;
	struct pc_source_picture pic;
	char err[256];
};

static int source_init(struct source *s, uint32_t node, int fd, bool cursor, int timeout_ms)
{
	struct pc_source_config config = {.fps_num = 30, .fps_den = 1};
	struct pc_pipewire_options options = {.fd = fd, .node = node, .cursor = cursor, .start_timeout_ms = timeout_ms};
	s->err[0] = '\0';
	int ret = pc_pipewire_init(&s->state, &config, &options, s->err, sizeof(s->err));
	if (ret < 0)
		s->state = NULL;
	return ret;
}

static void source_destroy(struct source *s)
{
	if (s->state)
		pc_pipewire_source.destroy(s->state);
	*s = (struct source){0};
}

/* The next picture within timeout_ms: 1, 0 when none came, or take()'s error. */
static int next_picture(struct source *s, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int ret = pc_pipewire_source.take(s->state, &s->pic, s->err, sizeof(s->err));
		if (ret != 0)
			return ret;
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = {.fd = pc_pipewire_source.wait_fd(s->state), .events = POLLIN};
		poll(&pfd, 1, (int)left);
	}
}

/* Pictures until one is width x height with rgb at (x, y). */
static bool wait_colour(struct source *s, int width, int height, int x, int y, uint32_t rgb)
{
	int64_t deadline = now_ms() + TIMEOUT_MS;
	while (now_ms() < deadline) {
		int ret = next_picture(s, (int)(deadline - now_ms()));
		if (ret < 0)
			fprintf(stderr, "    take: %s\n", s->err);
		if (ret <= 0)
			break;
		const struct pc_frame *f = s->pic.frame;
		if (f->width == width && f->height == height && colour_at(f, x, y, rgb))
			return true;
	}
	fprintf(stderr, "    no %dx%d picture with %06x at (%d,%d)\n", width, height, (unsigned)rgb, x, y);
	return false;
}

/* Takes what is there until nothing comes for quiet_ms. */
static void drain(struct source *s, int quiet_ms)
{
	while (next_picture(s, quiet_ms) == 1)
		;
}

static bool rect_covers(struct pc_rect outer, struct pc_rect inner)
{
	return outer.x <= inner.x && outer.y <= inner.y && outer.x + outer.w >= inner.x + inner.w &&
	       outer.y + outer.h >= inner.y + inner.h;
}

static void test_pipewire_colours_and_formats(void)
{
	static const struct {
		uint32_t format;
		uint32_t colour;
	} cases[] = {
		{SPA_VIDEO_FORMAT_BGRx, BLUE},
		{SPA_VIDEO_FORMAT_RGBx, RED},
		{SPA_VIDEO_FORMAT_BGRA, GREEN},
		{SPA_VIDEO_FORMAT_RGBA, BLUE},
	};
	struct pc_test_pw_lab lab;
	if (start_lab(&lab) <= 0)
		return;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pc_test_pw_src_config config = {.width = 640, .height = 480, .colour = cases[i].colour,
						       .format = cases[i].format};
		struct pc_test_pw_src *src = start_src(&config);
		struct source s = {0};
		if (!src)
			break;
		CHECK_EQ(source_init(&s, pc_test_pw_src_node(src), -1, true, 0), 0);
		if (!s.state)
			fprintf(stderr, "    init: %s\n", s.err);
		if (s.state) {
			CHECK(pc_test_pw_src_streaming(src, TIMEOUT_MS));
			CHECK(pc_pipewire_node_id(s.state) != SPA_ID_INVALID);
			int64_t before = pc_clock_ns(CLOCK_REALTIME);
			CHECK(wait_colour(&s, 640, 480, 320, 240, cases[i].colour));
			const struct pc_frame *f = s.pic.frame;
			if (!f) {
				source_destroy(&s);
				pc_test_pw_src_stop(src);
				break;
			}
			CHECK_COLOUR(f, 0, 0, cases[i].colour);
			CHECK_COLOUR(f, 639, 479, cases[i].colour);
			CHECK(s.pic.damage.x == 0 && s.pic.damage.y == 0 && s.pic.damage.w == 640 && s.pic.damage.h == 480);
			/* The header's pts, moved to CLOCK_REALTIME: taken before we had the picture. */
			CHECK(s.pic.capture_ns <= pc_clock_ns(CLOCK_REALTIME));
			CHECK(s.pic.capture_ns > before - 2 * PC_NS_PER_SEC);
		}
		source_destroy(&s);
		pc_test_pw_src_stop(src);
	}
	pc_test_pw_lab_stop(&lab, pc_check.current_failures > 0);
}

static void test_pipewire_damage_and_coalescing(void)
{
	struct pc_test_pw_lab lab;
	if (start_lab(&lab) <= 0)
		return;
	struct pc_test_pw_src_config config = {.width = 640, .height = 480, .colour = BLUE};
	struct pc_test_pw_src *src = start_src(&config);
	struct source s = {0};
	if (!src)
		goto out;
	CHECK_EQ(source_init(&s, pc_test_pw_src_node(src), -1, true, 0), 0);
	if (!s.state)
		goto out;
	CHECK(wait_colour(&s, 640, 480, 320, 240, BLUE));
	if (!s.pic.frame)
		goto out;
	drain(&s, 100);

	/* A change painted without damage, then one with: only the damaged one is converted. */
	pc_test_pw_src_fill_quiet(src, (struct pc_rect){400, 300, 50, 50}, RED);
	struct pc_rect change = {101, 51, 64, 30};
	pc_test_pw_src_fill(src, change, GREEN);
	CHECK_EQ(next_picture(&s, TIMEOUT_MS), 1);
	const struct pc_frame *f = s.pic.frame;
	struct pc_rect d = s.pic.damage;
	CHECK(rect_covers(d, change));
	CHECK(rect_covers((struct pc_rect){100, 50, 66, 32}, d)); /* widened to even edges, no more */
	CHECK_COLOUR(f, 102, 52, GREEN);
	CHECK_COLOUR(f, 163, 79, GREEN);
	CHECK_COLOUR(f, 98, 52, BLUE);
	CHECK_COLOUR(f, 420, 320, BLUE); /* red in the buffer, but not damaged: not converted */

	/* Two changes before a take(): one picture holding both, their damage united. */
	pc_test_pw_src_fill(src, (struct pc_rect){10, 400, 20, 20}, RED);
	pc_test_pw_src_fill(src, (struct pc_rect){600, 20, 20, 20}, GREEN);
	CHECK_EQ(pc_test_pw_src_wait_sent(src, TIMEOUT_MS), 0);
	sleep_ms(100); /* the daemon hands the last buffer over */
	CHECK_EQ(next_picture(&s, TIMEOUT_MS), 1);
	f = s.pic.frame;
	CHECK_COLOUR(f, 20, 410, RED);
	CHECK_COLOUR(f, 610, 30, GREEN);
	d = s.pic.damage;
	CHECK(rect_covers(d, (struct pc_rect){10, 20, 610, 400}));
	CHECK_EQ(next_picture(&s, 100), 0);
	source_destroy(&s);
	pc_test_pw_src_stop(src);
	src = NULL;

	/* A source without damage metadata: every buffer counts as all changed. */
	config.no_damage_meta = true;
	src = start_src(&config);
	if (!src)
		goto out;
	CHECK_EQ(source_init(&s, pc_test_pw_src_node(src), -1, true, 0), 0);
	if (!s.state)
		goto out;
	CHECK(wait_colour(&s, 640, 480, 320, 240, BLUE));
	if (!s.pic.frame)
		goto out;
	drain(&s, 100);
	pc_test_pw_src_fill_quiet(src, (struct pc_rect){400, 300, 50, 50}, RED);
	pc_test_pw_src_fill(src, (struct pc_rect){10, 10, 20, 20}, GREEN);
	CHECK_EQ(next_picture(&s, TIMEOUT_MS), 1);
	CHECK(s.pic.damage.w == 640 && s.pic.damage.h == 480);
	CHECK_COLOUR(s.pic.frame, 20, 20, GREEN);
	CHECK_COLOUR(s.pic.frame, 420, 320, RED);
out:
	source_destroy(&s);
	pc_test_pw_src_stop(src);
	pc_test_pw_lab_stop(&lab, pc_check.current_failures > 0);
}

static void test_pipewire_still_and_bad_buffers(void)
{
	struct pc_test_pw_lab lab;
	if (start_lab(&lab) <= 0)
		return;
	struct pc_test_pw_src_config config = {.width = 640, .height = 480, .colour = BLUE};
	struct pc_test_pw_src *src = start_src(&config);
	struct source s = {0};
	if (!src)
		goto out;
	CHECK_EQ(source_init(&s, pc_test_pw_src_node(src), -1, true, 0), 0);
	if (!s.state)
		goto out;
	CHECK(wait_colour(&s, 640, 480, 320, 240, BLUE));
	if (!s.pic.frame)
		goto out;
	drain(&s, 100);

	/* The source sends nothing: nothing comes, and wait_fd stays quiet. */
	uint64_t sent = pc_test_pw_src_sent(src);
	int64_t start = now_ms();
	struct pollfd pfd = {.fd = pc_pipewire_source.wait_fd(s.state), .events = POLLIN};
	CHECK_EQ(poll(&pfd, 1, 500), 0);
	CHECK_EQ(next_picture(&s, 100), 0);
	CHECK(now_ms() - start >= 590);
	CHECK_EQ(pc_test_pw_src_sent(src), sent);

	/* Empty and corrupted buffers, red all over and damaged all over: ignored. */
	pc_test_pw_src_send_bad(src, PC_TEST_PW_EMPTY, RED);
	pc_test_pw_src_send_bad(src, PC_TEST_PW_CORRUPT_HEADER, RED);
	pc_test_pw_src_send_bad(src, PC_TEST_PW_CORRUPT_CHUNK, RED);
	CHECK_EQ(pc_test_pw_src_wait_sent(src, TIMEOUT_MS), 0);
	CHECK_EQ(pc_test_pw_src_sent(src), sent + 3);
	CHECK_EQ(next_picture(&s, 300), 0);

	/* The next real buffer: its change, and no red. */
	pc_test_pw_src_fill(src, (struct pc_rect){0, 0, 32, 32}, GREEN);
	CHECK_EQ(next_picture(&s, TIMEOUT_MS), 1);
	CHECK_COLOUR(s.pic.frame, 10, 10, GREEN);
	CHECK_COLOUR(s.pic.frame, 320, 240, BLUE);
	CHECK(s.pic.damage.w <= 32 && s.pic.damage.h <= 32);
out:
	source_destroy(&s);
	pc_test_pw_src_stop(src);
	pc_test_pw_lab_stop(&lab, pc_check.current_failures > 0);
}

static void test_pipewire_cursor_metadata(void)
{
	struct pc_test_pw_lab lab;
	if (start_lab(&lab) <= 0)
		return;
	struct pc_test_pw_src_config config = {.width = 640, .height = 480, .colour = BLUE, .cursor_meta = true};
	struct pc_test_pw_src *src = start_src(&config);
	struct source s = {0};
	if (!src)
		goto out;
	CHECK_EQ(source_init(&s, pc_test_pw_src_node(src), -1, true, 0), 0);
	if (!s.state)
		goto out;
	CHECK(wait_colour(&s, 640, 480, 320, 240, BLUE));
	if (!s.pic.frame)
		goto out;
	drain(&s, 100);

	/* The image's top half is opaque magenta, its bottom half black at alpha 128: the blue
	 * below shows at half strength (luma and chroma offsets halved). */
	int blue[3], shadow[3];
	expected_yuv(BLUE, blue);
	shadow[0] = 16 + (blue[0] - 16) * 127 / 255;
	shadow[1] = 128 + (blue[1] - 128) * 127 / 255;
	shadow[2] = 128 + (blue[2] - 128) * 127 / 255;

	pc_test_pw_src_cursor(src, 100, 100, true);
	CHECK_EQ(next_picture(&s, TIMEOUT_MS), 1);
	const struct pc_frame *f = s.pic.frame;
	CHECK_COLOUR(f, 104, 104, PC_TEST_PW_CURSOR_COLOUR);
	CHECK_YUV(f, 104, 112, shadow);
	CHECK_COLOUR(f, 98, 104, BLUE);
	CHECK(rect_covers(s.pic.damage, (struct pc_rect){100, 100, 16, 16}));
	CHECK(s.pic.damage.w <= 18 && s.pic.damage.h <= 18);

	/* It moves (a cursor-only buffer): gone from where it was, drawn where it is. */
	pc_test_pw_src_cursor(src, 301, 201, true);
	CHECK_EQ(next_picture(&s, TIMEOUT_MS), 1);
	f = s.pic.frame;
	CHECK_COLOUR(f, 104, 104, BLUE);
	CHECK_COLOUR(f, 306, 206, PC_TEST_PW_CURSOR_COLOUR);
	CHECK(rect_covers(s.pic.damage, (struct pc_rect){100, 100, 217, 117}));

	/* A change of the screen under it keeps it on top. */
	pc_test_pw_src_fill(src, (struct pc_rect){290, 190, 60, 60}, GREEN);
	CHECK_EQ(next_picture(&s, TIMEOUT_MS), 1);
	f = s.pic.frame;
	CHECK_COLOUR(f, 306, 206, PC_TEST_PW_CURSOR_COLOUR);
	CHECK_COLOUR(f, 295, 195, GREEN);

	/* Hidden: the screen comes back. */
	pc_test_pw_src_cursor(src, 301, 201, false);
	CHECK_EQ(next_picture(&s, TIMEOUT_MS), 1);
	CHECK_COLOUR(s.pic.frame, 306, 206, GREEN);
	CHECK_EQ(next_picture(&s, 100), 0);
	source_destroy(&s);
	pc_test_pw_src_stop(src);

	/* --no-cursor: the metadata is not asked for, the pointer not drawn. */
	src = start_src(&config);
	if (!src)
		goto out;
	CHECK_EQ(source_init(&s, pc_test_pw_src_node(src), -1, false, 0), 0);
	if (!s.state)
		goto out;
	pc_test_pw_src_cursor(src, 20, 20, true);
	CHECK(wait_colour(&s, 640, 480, 320, 240, BLUE));
	if (!s.pic.frame)
		goto out;
	drain(&s, 150);
	if (s.pic.frame)
		CHECK_COLOUR(s.pic.frame, 24, 24, BLUE);
out:
	source_destroy(&s);
	pc_test_pw_src_stop(src);
	pc_test_pw_lab_stop(&lab, pc_check.current_failures > 0);
}

static void test_pipewire_resize(void)
{
	struct pc_test_pw_lab lab;
	if (start_lab(&lab) <= 0)
		return;
	struct pc_test_pw_src_config config = {.width = 640, .height = 480, .colour = GREEN};
	struct pc_test_pw_src *src = start_src(&config);
	struct source s = {0};
	if (!src)
		goto out;
	CHECK_EQ(source_init(&s, pc_test_pw_src_node(src), -1, true, 0), 0);
	if (!s.state)
		goto out;
	CHECK(wait_colour(&s, 640, 480, 320, 240, GREEN));
	if (!s.pic.frame)
		goto out;

	/* The node renegotiates a new size (a monitor's mode change): pictures at it. */
	pc_test_pw_src_resize(src, 800, 600, RED);
	CHECK(wait_colour(&s, 800, 600, 799, 599, RED));
	CHECK(s.pic.damage.w == 800 && s.pic.damage.h == 600);
	pc_test_pw_src_fill(src, (struct pc_rect){700, 500, 20, 20}, BLUE);
	CHECK(wait_colour(&s, 800, 600, 710, 510, BLUE));

	/* An odd size loses its last column and row. */
	pc_test_pw_src_resize(src, 641, 479, BLUE);
	CHECK(wait_colour(&s, 640, 478, 639, 477, BLUE));
out:
	source_destroy(&s);
	pc_test_pw_src_stop(src);
	pc_test_pw_lab_stop(&lab, pc_check.current_failures > 0);
}

static void test_pipewire_errors(void)
{
	struct pc_test_pw_lab lab;
	if (start_lab(&lab) <= 0)
		return;
	struct pc_test_pw_src_config config = {.width = 640, .height = 480, .colour = BLUE};
	struct pc_test_pw_src *src = start_src(&config);
	struct source s = {0};
	int ret;
	if (!src)
		goto out;

	/* The node goes away while streaming (the user stopped sharing). */
	CHECK_EQ(source_init(&s, pc_test_pw_src_node(src), -1, true, 0), 0);
	if (s.state) {
		CHECK(wait_colour(&s, 640, 480, 320, 240, BLUE));
		pc_test_pw_src_stop(src);
		src = NULL;
		while ((ret = next_picture(&s, TIMEOUT_MS)) == 1)
			;
		CHECK(ret < 0);
		CHECK(strstr(s.err, "was removed") != NULL);
		if (ret >= 0 || !strstr(s.err, "was removed"))
			fprintf(stderr, "    take: %d, %s\n", ret, s.err);
		CHECK(next_picture(&s, 0) < 0); /* for good */
	}
	source_destroy(&s);

	/* No such node: said at once (a session manager would link another source). */
	int64_t start = now_ms();
	CHECK_EQ(source_init(&s, 4242, -1, true, 0), -ENODEV);
	CHECK(strstr(s.err, "PipeWire node 4242 does not exist") != NULL);
	CHECK(now_ms() - start < 1000);
	source_destroy(&s);

	/* A node that nobody links (no session manager). */
	config.no_link = true;
	src = start_src(&config);
	if (src) {
		start = now_ms();
		CHECK_EQ(source_init(&s, pc_test_pw_src_node(src), -1, true, 300), -ETIMEDOUT);
		CHECK(strstr(s.err, "did not start streaming within 300 ms") != NULL);
		CHECK(now_ms() - start < 1500);
		source_destroy(&s);
		pc_test_pw_src_stop(src);
		src = NULL;
	}

	/* Bad descriptors. */
	CHECK_EQ(source_init(&s, 1, 987, true, 300), -EINVAL);
	CHECK(strstr(s.err, "--pipewire-fd 987 is not an open descriptor") != NULL);
	int pipe_fds[2];
	CHECK(pipe(pipe_fds) == 0);
	CHECK_EQ(source_init(&s, 1, pipe_fds[0], true, 300), -EINVAL);
	CHECK(strstr(s.err, "is not a socket") != NULL);
	CHECK(fcntl(pipe_fds[0], F_GETFD) < 0); /* owned, so closed */
	close(pipe_fds[1]);

	/* The daemon dies while streaming. */
	config.no_link = false;
	src = start_src(&config);
	if (src) {
		CHECK_EQ(source_init(&s, pc_test_pw_src_node(src), -1, true, 0), 0);
		if (s.state) {
			CHECK(wait_colour(&s, 640, 480, 320, 240, BLUE));
			kill(lab.pid, SIGKILL);
			while ((ret = next_picture(&s, TIMEOUT_MS)) == 1)
				;
			CHECK(ret < 0);
			CHECK(strstr(s.err, "lost the connection to the PipeWire daemon") ||
			      strstr(s.err, "was disconnected") || strstr(s.err, "failed"));
			fprintf(stderr, "    daemon killed: %s\n", s.err);
		}
		source_destroy(&s);
	}

	/* No daemon at all. */
	pc_test_pw_lab_stop(&lab, pc_check.current_failures > 0);
	char empty[] = "/tmp/p2pcast-pipewire-none-XXXXXX";
	if (mkdtemp(empty)) {
		char *saved = getenv("XDG_RUNTIME_DIR") ? strdup(getenv("XDG_RUNTIME_DIR")) : NULL;
		setenv("XDG_RUNTIME_DIR", empty, 1);
		CHECK_EQ(source_init(&s, 1, -1, true, 300), -ECONNREFUSED);
		CHECK(strstr(s.err, "cannot connect to the PipeWire daemon") && strstr(s.err, empty));
		source_destroy(&s);
		if (saved)
			setenv("XDG_RUNTIME_DIR", saved, 1);
		else
			unsetenv("XDG_RUNTIME_DIR");
		free(saved);
		rmdir(empty);
	}
	pc_test_pw_src_stop(src);
	return;
out:
	source_destroy(&s);
	pc_test_pw_src_stop(src);
	pc_test_pw_lab_stop(&lab, pc_check.current_failures > 0);
}

/* ---- the producer ---- */

struct run {
	char dir[64];
	char path[2][128]; /* log, stream */
	pid_t pid;
};

static bool run_init(struct run *r)
{
	memset(r, 0, sizeof(*r));
	r->pid = -1;
	snprintf(r->dir, sizeof(r->dir), "/tmp/p2pcast-pipewire-test-XXXXXX");
	if (!mkdtemp(r->dir))
		return false;
	static const char *const names[] = {"producer.log", "stream.h264"};
	for (int i = 0; i < 2; i++)
		snprintf(r->path[i], sizeof(r->path[i]), "%s/%s", r->dir, names[i]);
	return true;
}

/* Starts the producer with args; runtime_dir, when not NULL, is its XDG_RUNTIME_DIR. */
static void run_spawn(struct run *r, const char *const *args, const char *runtime_dir)
{
	const char *argv[24] = {pc_check_producer};
	int n = 1;
	for (; args[n - 1] && n < 23; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	unlink(r->path[0]);
	r->pid = fork();
	if (r->pid == 0) {
		int log = open(r->path[0], O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (log < 0 || dup2(log, STDERR_FILENO) < 0)
			_exit(127);
		if (runtime_dir)
			setenv("XDG_RUNTIME_DIR", runtime_dir, 1);
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
		if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
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
	for (int i = 0; i < 2; i++)
		unlink(r->path[i]);
	rmdir(r->dir);
}

/* Each frame's "WxH" as ffprobe decodes the stream; the count, or -1 without ffprobe. */
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

static void check_stream(const char *file, int frames, const char *size)
{
	char sizes[64][16];
	int n = probe_sizes(file, sizes, 64);
	if (n < 0) {
		fprintf(stderr, "    ffprobe is not installed: the stream is not checked\n");
		return;
	}
	CHECK_EQ(n, frames);
	for (int i = 0; i < n && i < 64; i++)
		CHECK(strcmp(sizes[i], size) == 0);
}

static void test_pipewire_producer(void)
{
	struct pc_test_pw_lab lab;
	struct run r;
	if (start_lab(&lab) <= 0)
		return;
	CHECK(run_init(&r));
	struct pc_test_pw_src_config config = {.width = 640, .height = 480, .colour = BLUE};
	struct pc_test_pw_src *src = start_src(&config);
	char node[16];
	snprintf(node, sizeof(node), "%u", src ? pc_test_pw_src_node(src) : 0);

	/* --help names the source and its flags. */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "'%s' --help", pc_check_producer);
	FILE *help = popen(cmd, "r");
	char text[8192];
	size_t n = help ? fread(text, 1, sizeof(text) - 1, help) : 0;
	if (help)
		pclose(help);
	text[n] = '\0';
	CHECK(strstr(text, "pipewire") && strstr(text, "--pipewire-node ID") && strstr(text, "--pipewire-fd FD"));

	/* Usage errors. */
	const char *no_node[] = {"--source", "pipewire", "--annexb-out", r.path[1], NULL};
	run_spawn(&r, no_node, NULL);
	int status = run_wait(&r, 5000);
	CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 2);
	CHECK(log_has(&r, "--source pipewire needs --pipewire-node ID"));
	if (!src)
		goto out;

	/* The stream end to end: ffprobe reads it at the node's size. */
	const char *args[] = {"--source", "pipewire", "--pipewire-node", node, "--annexb-out", r.path[1], "--frames", "4",
			      "--keepalive-ms", "50", NULL};
	run_spawn(&r, args, NULL);
	status = run_wait(&r, 10000);
	CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	check_stream(r.path[1], 4, "640x480");
	CHECK(log_has(&r, "pipewire 640x480 (its own size)"));

	/* The remote as an inherited fd (what OpenPipeWireRemote gives), with no daemon where
	 * XDG_RUNTIME_DIR points. */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0); /* no CLOEXEC: the producer inherits it */
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	CHECK(strlen(lab.path[2]) < sizeof(addr.sun_path));
	memcpy(addr.sun_path, lab.path[2], strlen(lab.path[2]) < sizeof(addr.sun_path) ? strlen(lab.path[2]) : 0);
	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	char fd_arg[16];
	snprintf(fd_arg, sizeof(fd_arg), "%d", fd);
	unlink(r.path[1]);
	const char *args_fd[] = {"--source", "pipewire", "--pipewire-fd", fd_arg, "--pipewire-node", node,
				 "--annexb-out", r.path[1], "--frames", "3", "--keepalive-ms", "50", "--size", "320x240", NULL};
	run_spawn(&r, args_fd, "/nonexistent");
	close(fd);
	status = run_wait(&r, 10000);
	CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	check_stream(r.path[1], 3, "320x240");
	snprintf(cmd, sizeof(cmd), "of fd %d streams", fd);
	CHECK(log_has(&r, cmd));

	/* The node goes while the producer streams: it says why and exits non-zero. */
	unlink(r.path[1]);
	const char *args_run[] = {"--source", "pipewire", "--pipewire-node", node, "--annexb-out", r.path[1],
				  "--keepalive-ms", "50", NULL};
	run_spawn(&r, args_run, NULL);
	int64_t deadline = now_ms() + TIMEOUT_MS;
	struct stat st;
	while ((stat(r.path[1], &st) != 0 || st.st_size == 0) && now_ms() < deadline)
		sleep_ms(10);
	pc_test_pw_src_stop(src);
	src = NULL;
	status = run_wait(&r, 5000);
	CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1);
	CHECK(log_has(&r, "was removed"));

	/* A node that does not exist: a clear error at start. */
	const char *args_missing[] = {"--source", "pipewire", "--pipewire-node", "4242", "--annexb-out", r.path[1], NULL};
	run_spawn(&r, args_missing, NULL);
	status = run_wait(&r, 10000);
	CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1);
	CHECK(log_has(&r, "PipeWire node 4242 does not exist"));
out:
	run_destroy(&r);
	pc_test_pw_src_stop(src);
	pc_test_pw_lab_stop(&lab, pc_check.current_failures > 0);
}

/* ---- what it costs (P2PCAST_BENCH=1) ---- */

static double cpu_seconds(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long utime = 0, stime = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
		return -1;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static void test_pipewire_cpu(void)
{
	if (!getenv("P2PCAST_BENCH")) {
		fprintf(stderr, "    skipped: set P2PCAST_BENCH=1 to measure\n");
		return;
	}
	struct pc_test_pw_lab lab;
	struct run r;
	if (start_lab(&lab) <= 0)
		return;
	CHECK(run_init(&r));
	struct pc_test_pw_src_config config = {.width = 1920, .height = 1080, .colour = BLUE};
	struct pc_test_pw_src *src = start_src(&config);
	if (!src)
		goto out;
	char node[16];
	snprintf(node, sizeof(node), "%u", pc_test_pw_src_node(src));
	static const char *const what[] = {"still", "a 64x64 square moving every frame", "all changing every frame"};
	for (int animate = PC_TEST_PW_STILL; animate <= PC_TEST_PW_ALL; animate++) {
		pc_test_pw_src_animate(src, (enum pc_test_pw_animation)animate);
		const char *args[] = {"--source", "pipewire", "--pipewire-node", node, "--annexb-out", "/dev/null", NULL};
		run_spawn(&r, args, NULL);
		sleep_ms(2000); /* started, first IDR done */
		double c0 = cpu_seconds(r.pid);
		uint64_t s0 = pc_test_pw_src_sent(src);
		sleep_ms(10000);
		double c1 = cpu_seconds(r.pid);
		uint64_t s1 = pc_test_pw_src_sent(src);
		kill(r.pid, SIGTERM);
		run_wait(&r, 5000);
		fprintf(stderr, "    1920x1080 %s: producer %.1f %% of a core over 10 s, %llu buffers sent\n",
			what[animate], (c1 - c0) * 10.0,
			(unsigned long long)(s1 - s0));
		FILE *f = fopen(r.path[0], "r");
		char line[512];
		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, "new pictures") || strstr(line, "stopped"))
				fprintf(stderr, "    %s", line);
		if (f)
			fclose(f);
	}
out:
	run_destroy(&r);
	pc_test_pw_src_stop(src);
	pc_test_pw_lab_stop(&lab, pc_check.current_failures > 0);
}

void pc_test_pipewire(void)
{
	RUN_TEST(test_pipewire_colours_and_formats);
	RUN_TEST(test_pipewire_damage_and_coalescing);
	RUN_TEST(test_pipewire_still_and_bad_buffers);
	RUN_TEST(test_pipewire_cursor_metadata);
	RUN_TEST(test_pipewire_resize);
	RUN_TEST(test_pipewire_errors);
	RUN_TEST(test_pipewire_producer);
	RUN_TEST(test_pipewire_cpu);
}
