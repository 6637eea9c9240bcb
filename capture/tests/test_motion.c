/* The motion detector on the test scene: the still pattern with its moving object switched on
 * and off makes exactly one event per on-period, at the right times; a mask over the object's
 * path, a still picture with sensor-like noise, or an appearance shorter than the minimum
 * duration make none. Also the option parsers and the EVENT message's bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../clock.h"
#include "../ipc.h"
#include "../motion.h"
#include "../scale.h"
#include "../sources/testpattern.h"
#include "check.h"

#define T0 INT64_C(1764936000000000000) /* 2025-12-05 12:00 UTC */
#define FPS 30
#define MAX_EVENTS 16

struct run {
	struct pc_motion_event ev[MAX_EVENTS];
	int n;
};

static uint64_t noise_state = 0x9e3779b97f4a7c15ull;

/* Adds -amp..+amp to every luma sample: a camera's sensor noise. */
static void add_noise(struct pc_frame *f, int amp)
{
	for (int y = 0; y < f->height; y++) {
		uint8_t *row = f->plane[0] + (size_t)y * f->stride[0];
		for (int x = 0; x < f->width; x++) {
			noise_state ^= noise_state << 13;
			noise_state ^= noise_state >> 7;
			noise_state ^= noise_state << 17;
			int v = row[x] + (int)(noise_state % (uint64_t)(2 * amp + 1)) - amp;
			row[x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
		}
	}
}

/* Draws seconds of the pattern at FPS (the object on the on/off schedule when on_ns > 0) and
 * feeds every picture to a detector with config; collects the event edges, ending an open one
 * at the end. */
static void run_scene(const char *pattern, int64_t on_ns, int64_t off_ns, int seconds, int noise,
		      const struct pc_motion_config *config, struct run *out)
{
	struct pc_source_config sc = {.width = 640, .height = 360, .fps_num = FPS, .fps_den = 1, .pattern = pattern};
	void *src = NULL;
	struct pc_motion *m = NULL;
	struct pc_frame noisy = {0};
	char err[256];
	out->n = 0;
	if (noise)
		CHECK_EQ(pc_frame_alloc(&noisy, sc.width, sc.height), 0);
	CHECK_EQ(pc_testpattern_source.init(&src, &sc, err, sizeof(err)), 0);
	CHECK_EQ(pc_motion_init(&m, config), 0);
	if (!src || !m)
		goto out;
	if (on_ns)
		pc_testpattern_set_object(src, on_ns, off_ns);
	for (uint32_t seq = 0; seq < (uint32_t)(seconds * FPS); seq++) {
		int64_t t = T0 + (int64_t)seq * PC_NS_PER_SEC / FPS;
		const struct pc_frame *f = pc_testpattern_source.next_frame(src, seq, t);
		if (noise && noisy.plane[0]) {
			/* Fresh noise on each picture, on a copy: the pattern keeps its own. */
			for (int y = 0; y < f->height; y++)
				memcpy(noisy.plane[0] + (size_t)y * noisy.stride[0], f->plane[0] + (size_t)y * f->stride[0],
				       (size_t)f->width);
			add_noise(&noisy, noise);
			f = &noisy;
		}
		struct pc_motion_event ev;
		if (pc_motion_feed(m, f, t, &ev) && out->n < MAX_EVENTS)
			out->ev[out->n++] = ev;
	}
	struct pc_motion_event ev;
	if (pc_motion_flush(m, &ev) && out->n < MAX_EVENTS)
		out->ev[out->n++] = ev;
out:
	pc_frame_free(&noisy);
	pc_motion_destroy(m);
	if (src)
		pc_testpattern_source.destroy(src);
}

static double secs(int64_t ns)
{
	return (double)(ns - T0) / 1e9;
}

static bool near(double v, double want, double tolerance)
{
	return v >= want - tolerance && v <= want + tolerance;
}

/* on=2s,off=3s over 17 s: shown 3-5, 8-10, 13-15: three events, each a start then an end,
 * starting within one analysis period of the appearance and ending within one of the
 * disappearance. */
static void test_motion_object_on_off(void)
{
	struct pc_motion_config config;
	struct run r;
	pc_motion_config_defaults(&config);
	run_scene("still", 2 * PC_NS_PER_SEC, 3 * PC_NS_PER_SEC, 17, 0, &config, &r);
	CHECK_EQ(r.n, 6);
	for (int i = 0; i + 1 < r.n && i < 6; i += 2) {
		double on = 3 + 5 * (i / 2);
		const struct pc_motion_event *start = &r.ev[i], *end = &r.ev[i + 1];
		CHECK(!start->end);
		CHECK(end->end);
		CHECK_EQ(start->id, (uint32_t)(i / 2 + 1));
		CHECK_EQ(end->id, start->id);
		CHECK_EQ(end->start_ns, start->start_ns);
		if (!near(secs(start->start_ns), on, 0.15) || !near(secs(end->end_ns), on + 2, 0.15))
			fprintf(stderr, "    event %d: %.3f..%.3f s, want %.1f..%.1f\n", i / 2 + 1, secs(start->start_ns),
				secs(end->end_ns), on, on + 2);
		CHECK(near(secs(start->start_ns), on, 0.15));
		CHECK(near(secs(end->end_ns), on + 2, 0.15));
		CHECK(end->score > 0.01 && end->score <= 1);
		/* Where: the object's band, a quarter of the way down, a sixth of the height. */
		CHECK(end->n_regions >= 1);
		if (end->n_regions >= 1) {
			const struct pc_motion_box *b = &end->regions[0];
			CHECK(b->y >= 0.15 && b->y <= 0.26);
			CHECK(b->y + b->h >= 0.41 && b->y + b->h <= 0.5);
			CHECK(b->w > 0.5); /* a second of its travel: over half the width */
		}
	}
}

/* A gap shorter than the hold: the on-periods make one event. */
static void test_motion_hold_joins(void)
{
	struct pc_motion_config config;
	struct run r;
	pc_motion_config_defaults(&config);
	run_scene("still", 2 * PC_NS_PER_SEC, PC_NS_PER_SEC, 9, 0, &config, &r);
	/* shown 1-3, 4-6, 7-9: one event from 1 s, ended by the flush at the end */
	CHECK_EQ(r.n, 2);
	if (r.n == 2)
		CHECK(near(secs(r.ev[0].start_ns), 1, 0.15));
}

/* A mask over the object's path: nothing. */
static void test_motion_mask(void)
{
	struct pc_motion_config config;
	struct run r;
	pc_motion_config_defaults(&config);
	CHECK(pc_motion_parse_mask("0,0.2,1,0.3", &config));
	run_scene("still", 2 * PC_NS_PER_SEC, 3 * PC_NS_PER_SEC, 12, 0, &config, &r);
	CHECK_EQ(r.n, 0);
}

/* The still pattern with noise of +-6 luma levels on every pixel of every picture (a cheap
 * camera in a dim room), at the default and at a high sensitivity: nothing. */
static void test_motion_still_noise(void)
{
	struct pc_motion_config config;
	struct run r;
	pc_motion_config_defaults(&config);
	run_scene("still", 0, 0, 5, 6, &config, &r);
	CHECK_EQ(r.n, 0);
	config.sensitivity = 80;
	run_scene("still", 0, 0, 5, 6, &config, &r);
	CHECK_EQ(r.n, 0);
	/* ... and the object through the same noise is still found. */
	pc_motion_config_defaults(&config);
	run_scene("still", 2 * PC_NS_PER_SEC, 3 * PC_NS_PER_SEC, 8, 6, &config, &r);
	CHECK_EQ(r.n, 2);
}

/* Shown for less than the minimum duration: no event. */
static void test_motion_min_duration(void)
{
	struct pc_motion_config config;
	struct run r;
	pc_motion_config_defaults(&config);
	run_scene("still", 300 * PC_NS_PER_MS, 3 * PC_NS_PER_SEC, 12, 0, &config, &r);
	CHECK_EQ(r.n, 0);
	config.min_duration_ns = 0;
	run_scene("still", 300 * PC_NS_PER_MS, 3 * PC_NS_PER_SEC, 7, 0, &config, &r);
	CHECK_EQ(r.n, 4); /* shown 3-3.3 and 6.3-6.6: two events (the second ended by the flush) */
}

/* A screen that goes still sends no more pictures: the idle ticks end the event after the
 * hold all the same. */
static void test_motion_idle_ends(void)
{
	struct pc_source_config sc = {.width = 640, .height = 360, .fps_num = FPS, .fps_den = 1, .pattern = "still"};
	struct pc_motion_config config;
	struct pc_motion *m = NULL;
	void *src = NULL;
	char err[256];
	pc_motion_config_defaults(&config);
	CHECK_EQ(pc_testpattern_source.init(&src, &sc, err, sizeof(err)), 0);
	CHECK_EQ(pc_motion_init(&m, &config), 0);
	if (!src || !m)
		goto out;
	pc_testpattern_set_object(src, 10 * PC_NS_PER_SEC, 0); /* moving from the start */
	struct pc_motion_event ev;
	int starts = 0, ends = 0;
	int64_t end_at = 0;
	for (uint32_t seq = 0; seq < 2 * FPS; seq++) { /* 2 s of pictures, then none */
		int64_t t = T0 + (int64_t)seq * PC_NS_PER_SEC / FPS;
		if (pc_motion_feed(m, pc_testpattern_source.next_frame(src, seq, t), t, &ev))
			starts += !ev.end;
		/* The loop turns between pictures too: with pictures coming, that is no still time. */
		if (pc_motion_idle(m, t + 20 * PC_NS_PER_MS, &ev))
			ends++;
	}
	CHECK_EQ(ends, 0);
	CHECK_EQ(pc_motion_analysed(m), 20);
	for (int i = 0; i < 60; i++) { /* 6 s of idle ticks, 100 ms apart */
		int64_t t = T0 + 2 * PC_NS_PER_SEC + (int64_t)i * 100 * PC_NS_PER_MS;
		if (pc_motion_idle(m, t, &ev) && ev.end) {
			ends++;
			end_at = t;
		}
	}
	CHECK_EQ(starts, 1);
	CHECK_EQ(ends, 1);
	CHECK(near(secs(end_at), 2 + 2, 0.25)); /* the last picture, then the 2 s hold */
out:
	pc_motion_destroy(m);
	if (src)
		pc_testpattern_source.destroy(src);
}

/* The analysis subsample: 10 a second of 30. */
static void test_motion_subsample(void)
{
	struct pc_motion_config config;
	struct pc_motion *m = NULL;
	struct pc_frame f = {0};
	pc_motion_config_defaults(&config);
	CHECK_EQ(pc_motion_init(&m, &config), 0);
	uint8_t *buf = calloc(64 * 36 * 3 / 2, 1);
	f = (struct pc_frame){.width = 64, .height = 36, .plane = {buf, buf + 64 * 36, buf + 64 * 36 * 5 / 4},
			      .stride = {64, 32, 32}};
	struct pc_motion_event ev;
	for (int i = 0; i < 90 && m && buf; i++)
		pc_motion_feed(m, &f, T0 + (int64_t)i * PC_NS_PER_SEC / 30 + (i % 2) * PC_NS_PER_MS, &ev);
	CHECK_EQ(m ? pc_motion_analysed(m) : 0, 30);
	pc_motion_destroy(m);
	free(buf);
}

static void test_motion_parse(void)
{
	struct pc_motion_config c;
	pc_motion_config_defaults(&c);
	CHECK(pc_motion_parse_mask("0,0,1,0.1;0.5,0.5,0.5,0.5", &c));
	CHECK_EQ(c.n_masks, 2);
	CHECK(c.masks[1].x == 0.5 && c.masks[0].h > 0.0999 && c.masks[0].h < 0.1001);
	const char *bad[] = {"", "0,0,1", "0,0,1,1;", "0,0,1,1.5", "0.6,0,0.5,1", "0,0,0,1", "-0.1,0,1,1",
			     "0,0,1,1 ", "a,0,1,1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (pc_motion_parse_mask(bad[i], &c))
			fprintf(stderr, "    mask '%s' accepted\n", bad[i]);
		CHECK(!pc_motion_parse_mask(bad[i], &c));
	}
	CHECK_EQ(c.n_masks, 2); /* unchanged by the refused ones */
	int64_t ns;
	CHECK(pc_motion_parse_duration("500ms", 5, &ns) && ns == 500 * PC_NS_PER_MS);
	CHECK(pc_motion_parse_duration("1.5s", 4, &ns) && ns == 1500 * PC_NS_PER_MS);
	CHECK(pc_motion_parse_duration("0s", 2, &ns) && ns == 0);
	CHECK(!pc_motion_parse_duration("5", 1, &ns));
	CHECK(!pc_motion_parse_duration("1.s", 3, &ns));
	CHECK(!pc_motion_parse_duration("2m", 2, &ns));
	c.sensitivity = 0;
	struct pc_motion *m = NULL;
	CHECK_EQ(pc_motion_init(&m, &c), -EINVAL);
}

/* The EVENT payload, byte by byte (docs/ipc.md). */
static void test_motion_event_bytes(void)
{
	struct pc_ipc_event ev = {
		.id = 0x01020304,
		.kind = PC_IPC_EVENT_KIND_MOTION,
		.end = true,
		.score = 0x8000,
		.start_ns = 0x1112131415161718,
		.end_ns = 0x2122232425262728,
		.n_regions = 1,
		.regions = {{0x0001, 0x0002, 0x0003, 0x0004}},
	};
	uint8_t out[PC_IPC_EVENT_SIZE + PC_IPC_EVENT_MAX_REGIONS * PC_IPC_EVENT_REGION_SIZE];
	static const uint8_t want[] = {
		0x04, 0x03, 0x02, 0x01, 0x01, 0x01, 0x00, 0x80,
		0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,
		0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21,
		0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x04, 0x00,
	};
	CHECK_EQ(pc_ipc_event_pack(&ev, out), sizeof(want));
	CHECK(memcmp(out, want, sizeof(want)) == 0);
	ev.end = false;
	pc_ipc_event_pack(&ev, out);
	for (int i = 16; i < 24; i++)
		CHECK_EQ(out[i], 0); /* a start carries no end */
	CHECK_EQ(pc_ipc_send_event(-1, 0, 0, &ev), -EINVAL);
}

void pc_test_motion(void);
void pc_test_motion(void)
{
	RUN_TEST(test_motion_object_on_off);
	RUN_TEST(test_motion_hold_joins);
	RUN_TEST(test_motion_mask);
	RUN_TEST(test_motion_still_noise);
	RUN_TEST(test_motion_min_duration);
	RUN_TEST(test_motion_idle_ends);
	RUN_TEST(test_motion_subsample);
	RUN_TEST(test_motion_parse);
	RUN_TEST(test_motion_event_bytes);
}
