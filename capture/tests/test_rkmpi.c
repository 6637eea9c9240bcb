/* The rkmpi source's plain parts (sources/rkmpi_vi.h), which every build has: its settings and
 * option parsing, the bitrate the VENC is given, the PTS -> CLOCK_REALTIME mapping, IDR detection
 * and the queue between the VENC threads and take(). The source itself needs the vendor SDK and
 * an RV1106: not here (docs/capture.md "rkmpi"). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../sources/rkmpi_vi.h"
#include "check.h"

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)

static int settings(int w, int h, uint32_t num, uint32_t den, const struct pc_rkmpi_vi_options *o,
		    struct pc_rkmpi_vi_settings *out)
{
	struct pc_source_config config = {.width = w, .height = h, .fps_num = num, .fps_den = den};
	char err[256] = "";
	int ret = pc_rkmpi_vi_settings(&config, o, out, err, sizeof(err));
	CHECK(ret == 0 || (ret == -EINVAL && strncmp(err, "rkmpi: ", 7) == 0));
	return ret;
}

static void test_rkmpi_settings_defaults(void)
{
	struct pc_rkmpi_vi_settings s;
	CHECK_EQ(settings(0, 0, 0, 0, NULL, &s), 0);
	CHECK_EQ(s.width[PC_RKMPI_MAIN], PC_RKMPI_DEFAULT_WIDTH);
	CHECK_EQ(s.height[PC_RKMPI_MAIN], PC_RKMPI_DEFAULT_HEIGHT);
	CHECK_EQ(s.width[PC_RKMPI_SUB], 0);
	CHECK_EQ(s.sensor_fps, 30);
	CHECK_EQ(s.fps_num, 30);
	CHECK_EQ(s.fps_den, 1);
	CHECK_EQ(s.gop, 60);
	CHECK_EQ(s.bitrate[PC_RKMPI_MAIN], 2000000);
	CHECK(!s.fps_capped);
	CHECK(strcmp(s.iq_dir, "/etc/iqfiles") == 0);

	/* The sub stream's bitrate defaults to a quarter of the main one's, at least 10 kbit/s. */
	struct pc_rkmpi_vi_options o = {.bitrate = 2000000, .gop = 45, .sub_width = 640, .sub_height = 360,
					.iq_dir = "/oem/iq", .sensor_fps = 25};
	CHECK_EQ(settings(1920, 1080, 25, 1, &o, &s), 0);
	CHECK_EQ(s.width[PC_RKMPI_SUB], 640);
	CHECK_EQ(s.height[PC_RKMPI_SUB], 360);
	CHECK_EQ(s.bitrate[PC_RKMPI_SUB], 500000);
	CHECK_EQ(s.gop, 45);
	CHECK_EQ(s.sensor_fps, 25);
	CHECK(strcmp(s.iq_dir, "/oem/iq") == 0);
	o.sub_bitrate = 300000;
	CHECK_EQ(settings(1920, 1080, 25, 1, &o, &s), 0);
	CHECK_EQ(s.bitrate[PC_RKMPI_SUB], 300000);
	o = (struct pc_rkmpi_vi_options){.bitrate = 20000, .sub_width = 320, .sub_height = 240};
	CHECK_EQ(settings(640, 480, 30, 1, &o, &s), 0);
	CHECK_EQ(s.bitrate[PC_RKMPI_SUB], PC_RKMPI_MIN_BITRATE);
}

static void test_rkmpi_settings_refused(void)
{
	struct pc_rkmpi_vi_settings s;
	static const struct {
		int w, h, sub_w, sub_h;
		uint32_t sensor_fps;
		const char *iq_dir;
	} bad[] = {
		{1281, 720, 0, 0, 0, NULL},    /* odd */
		{1280, 721, 0, 0, 0, NULL},
		{62, 720, 0, 0, 0, NULL},      /* too small */
		{1280, 720, 1280, 720, 0, NULL}, /* a sub stream as large as the main one */
		{1280, 720, 1920, 360, 0, NULL},
		{1280, 720, 640, 800, 0, NULL},
		{1280, 720, 641, 360, 0, NULL},
		{1280, 720, 32, 32, 0, NULL},
		{1280, 720, 0, 0, 121, NULL},  /* sensor rate beyond 120 */
		{1280, 720, 0, 0, 0, ""},      /* empty IQ directory */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct pc_rkmpi_vi_options o = {.sub_width = bad[i].sub_w, .sub_height = bad[i].sub_h,
						.sensor_fps = bad[i].sensor_fps, .iq_dir = bad[i].iq_dir};
		int ret = settings(bad[i].w, bad[i].h, 30, 1, &o, &s);
		if (ret != -EINVAL)
			fprintf(stderr, "    case %zu\n", i);
		CHECK_EQ(ret, -EINVAL);
	}
}

static void test_rkmpi_settings_fps(void)
{
	struct pc_rkmpi_vi_settings s;
	/* The VENC only drops pictures: at most the sensor's rate. */
	CHECK_EQ(settings(1280, 720, 60, 1, NULL, &s), 0);
	CHECK_EQ(s.fps_num, 30);
	CHECK_EQ(s.fps_den, 1);
	CHECK(s.fps_capped);
	CHECK_EQ(s.gop, 60);
	CHECK_EQ(settings(1280, 720, 30000, 1001, NULL, &s), 0);
	CHECK_EQ(s.fps_num, 30000);
	CHECK_EQ(s.fps_den, 1001);
	CHECK(!s.fps_capped);
	CHECK_EQ(settings(1280, 720, 15, 1, NULL, &s), 0);
	CHECK_EQ(s.fps_num, 15);
	CHECK_EQ(s.gop, 30);
	struct pc_rkmpi_vi_options o = {.sensor_fps = 60};
	CHECK_EQ(settings(1280, 720, 60, 1, &o, &s), 0);
	CHECK_EQ(s.fps_num, 60);
	CHECK(!s.fps_capped);
	/* A GOP given for the asked rate keeps its duration at the sensor's. */
	o = (struct pc_rkmpi_vi_options){.gop = 120};
	CHECK_EQ(settings(1280, 720, 60, 1, &o, &s), 0);
	CHECK_EQ(s.gop, 60);
	o.gop = 1;
	CHECK_EQ(settings(1280, 720, 60, 1, &o, &s), 0);
	CHECK_EQ(s.gop, 1);
	o.gop = 45;
	CHECK_EQ(settings(1280, 720, 15, 1, &o, &s), 0);
	CHECK_EQ(s.gop, 45);
}

static void test_rkmpi_parse_sensor_fps(void)
{
	uint32_t fps = 7;
	CHECK(pc_rkmpi_parse_sensor_fps("30", &fps) && fps == 30);
	CHECK(pc_rkmpi_parse_sensor_fps("1", &fps) && fps == 1);
	CHECK(pc_rkmpi_parse_sensor_fps("120", &fps) && fps == 120);
	CHECK(pc_rkmpi_parse_sensor_fps("025", &fps) && fps == 25);
	static const char *const bad[] = {"", "0", "121", "3a", "-1", " 30", "30 ", "+30", "99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fps = 7;
		CHECK(!pc_rkmpi_parse_sensor_fps(bad[i], &fps));
		CHECK_EQ(fps, 7);
	}
}

static void test_rkmpi_kbps(void)
{
	CHECK_EQ(pc_rkmpi_kbps(2000000, 0), 2000);
	CHECK_EQ(pc_rkmpi_kbps(1999499, 0), 1999);
	CHECK_EQ(pc_rkmpi_kbps(1999500, 0), 2000);
	CHECK_EQ(pc_rkmpi_kbps(5000, 0), 10);                 /* the producer's floor */
	CHECK_EQ(pc_rkmpi_kbps(0, 0), 10);
	CHECK_EQ(pc_rkmpi_kbps(300000000, 0), PC_RKMPI_MAX_KBPS); /* the VENC's ceiling */
	CHECK_EQ(pc_rkmpi_kbps(UINT32_MAX, 0), PC_RKMPI_MAX_KBPS);
	/* The level's ceiling (level 3.1: 14 Mbit/s), never passed by rounding. */
	CHECK_EQ(pc_rkmpi_kbps(20000000, 14000000), 14000);
	CHECK_EQ(pc_rkmpi_kbps(14000400, 14000000), 14000);
	CHECK_EQ(pc_rkmpi_kbps(13999600, 14000000), 14000);
	CHECK_EQ(pc_rkmpi_kbps(2000000, 300000000), 2000);    /* a level above the VENC's ceiling */
	CHECK(pc_rkmpi_kbps(5000, 9999) * 1000 <= 9999);      /* a ceiling below the floor wins */
}

static void test_rkmpi_capture_time(void)
{
	const int64_t real = INT64_C(1700000000) * SEC + 123456789; /* CLOCK_REALTIME now */
	const uint64_t pts_us = UINT64_C(1000) * 1000000 + 250;        /* 1000 s after boot */
	const int64_t pts_ns = (int64_t)pts_us * 1000;
	int64_t out = 0;

	/* Out of the encoder 33 ms after the VI took it: taken 33 ms before now, on the wall clock. */
	CHECK(pc_rkmpi_capture_ns(pts_us, pts_ns + 33 * MS, real, &out));
	CHECK_EQ(out, real - 33 * MS);
	/* Only the age counts: the wall clock may be anywhere (set by NTP meanwhile). */
	CHECK(pc_rkmpi_capture_ns(pts_us, pts_ns + 33 * MS, real + 3600 * SEC, &out));
	CHECK_EQ(out, real + 3600 * SEC - 33 * MS);
	/* Just stamped: age 0. A microsecond PTS a little ahead of "now": age 0 too. */
	CHECK(pc_rkmpi_capture_ns(pts_us, pts_ns, real, &out));
	CHECK_EQ(out, real);
	CHECK(pc_rkmpi_capture_ns(pts_us, pts_ns - 999, real, &out));
	CHECK_EQ(out, real);
	/* Not CLOCK_MONOTONIC microseconds: the time it came out instead. */
	CHECK(!pc_rkmpi_capture_ns(pts_us, pts_ns - 2 * MS, real, &out)); /* from the future */
	CHECK_EQ(out, real);
	CHECK(!pc_rkmpi_capture_ns(pts_us, pts_ns + 6 * SEC, real, &out)); /* 6 s old */
	CHECK_EQ(out, real);
	CHECK(pc_rkmpi_capture_ns(pts_us, pts_ns + 4 * SEC, real, &out));   /* 4 s: still taken */
	CHECK_EQ(out, real - 4 * SEC);
	CHECK(!pc_rkmpi_capture_ns(0, pts_ns, real, &out));
	CHECK_EQ(out, real);
	CHECK(!pc_rkmpi_capture_ns(UINT64_MAX, pts_ns, real, &out));
	CHECK_EQ(out, real);
	/* Nanoseconds by mistake (1000 times too large): refused, not a date in the past. */
	CHECK(!pc_rkmpi_capture_ns((uint64_t)pts_ns, pts_ns, real, &out));
}

static void test_rkmpi_has_idr(void)
{
	static const uint8_t idr[] = {0, 0, 0, 1, 0x67, 0x42, 0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88, 0x84};
	static const uint8_t p[] = {0, 0, 0, 1, 0x41, 0x9a, 0x02, 0, 0, 1, 0x06, 0x05};
	static const uint8_t cut[] = {0, 0, 1};
	CHECK(pc_rkmpi_has_idr(idr, sizeof(idr)));
	CHECK(!pc_rkmpi_has_idr(p, sizeof(p)));
	CHECK(!pc_rkmpi_has_idr(cut, sizeof(cut)));
	CHECK(!pc_rkmpi_has_idr(idr, 16)); /* the IDR's header byte cut off */
}

static int push(struct pc_rkmpi_queue *q, int rendition, uint8_t fill, size_t size, bool key, int64_t t)
{
	uint8_t a[300], b[300];
	memset(a, fill, sizeof(a));
	memset(b, fill + 1, sizeof(b));
	size_t half = size / 2;
	struct pc_rkmpi_chunk chunks[] = {{a, half}, {b, size - half}};
	return pc_rkmpi_queue_push(q, rendition, chunks, 2, key, t);
}

static void test_rkmpi_queue_order(void)
{
	struct pc_rkmpi_queue q = {0};
	struct pc_rkmpi_au taken = {0};
	CHECK(!pc_rkmpi_queue_pop(&q, &taken));
	/* Main and sub interleaved, as the two threads push them: they come out in that order. */
	CHECK_EQ(push(&q, PC_RKMPI_MAIN, 1, 100, true, 10), PC_RKMPI_QUEUED);
	CHECK_EQ(push(&q, PC_RKMPI_SUB, 2, 40, true, 11), PC_RKMPI_QUEUED);
	CHECK_EQ(push(&q, PC_RKMPI_MAIN, 3, 10, false, 12), PC_RKMPI_QUEUED);
	CHECK_EQ(q.count, 3);
	CHECK(pc_rkmpi_queue_pop(&q, &taken));
	CHECK_EQ(taken.rendition, PC_RKMPI_MAIN);
	CHECK_EQ(taken.size, 100);
	CHECK(taken.keyframe);
	CHECK_EQ(taken.capture_ns, 10);
	/* The chunks, one after the other. */
	CHECK(taken.data[0] == 1 && taken.data[49] == 1 && taken.data[50] == 2 && taken.data[99] == 2);
	const uint8_t *first = taken.data;
	/* What was taken stays as it is while the threads go on pushing. */
	for (int i = 0; i < 10; i++)
		CHECK_EQ(push(&q, PC_RKMPI_MAIN, 9, 250, false, 20 + i), PC_RKMPI_QUEUED);
	CHECK(taken.data == first && taken.data[0] == 1 && taken.data[99] == 2);
	CHECK(pc_rkmpi_queue_pop(&q, &taken));
	CHECK_EQ(taken.rendition, PC_RKMPI_SUB);
	CHECK_EQ(taken.size, 40);
	CHECK_EQ(taken.capture_ns, 11);
	CHECK(pc_rkmpi_queue_pop(&q, &taken));
	CHECK_EQ(taken.rendition, PC_RKMPI_MAIN);
	CHECK_EQ(taken.capture_ns, 12);
	CHECK(!taken.keyframe);
	int n = 0;
	while (pc_rkmpi_queue_pop(&q, &taken))
		CHECK_EQ(taken.capture_ns, 20 + n++);
	CHECK_EQ(n, 10);
	CHECK_EQ(q.dropped, 0);
	CHECK_EQ(pc_rkmpi_queue_push(&q, 2, NULL, 0, true, 0), -EINVAL);
	pc_rkmpi_queue_free(&q, &taken);
	CHECK(taken.data == NULL);
}

static void test_rkmpi_queue_overflow(void)
{
	struct pc_rkmpi_queue q = {0};
	struct pc_rkmpi_au taken = {0};
	for (int i = 0; i < PC_RKMPI_QUEUE_LEN; i++)
		CHECK_EQ(push(&q, i % 2, (uint8_t)i, 20, i < 2, i), PC_RKMPI_QUEUED);
	/* Nobody took them: all are dropped, and each rendition starts again at an IDR. */
	CHECK_EQ(push(&q, PC_RKMPI_MAIN, 50, 20, false, 100), PC_RKMPI_OVERFLOW);
	CHECK_EQ(q.count, 0);
	CHECK_EQ(q.overflows, 1);
	CHECK_EQ(q.dropped, PC_RKMPI_QUEUE_LEN + 1);
	CHECK_EQ(push(&q, PC_RKMPI_MAIN, 51, 20, false, 101), PC_RKMPI_SKIPPED);
	CHECK_EQ(push(&q, PC_RKMPI_SUB, 52, 20, false, 102), PC_RKMPI_SKIPPED);
	CHECK_EQ(push(&q, PC_RKMPI_SUB, 53, 20, true, 103), PC_RKMPI_QUEUED);
	CHECK_EQ(push(&q, PC_RKMPI_SUB, 54, 20, false, 104), PC_RKMPI_QUEUED);
	CHECK_EQ(push(&q, PC_RKMPI_MAIN, 55, 20, false, 105), PC_RKMPI_SKIPPED);
	CHECK_EQ(push(&q, PC_RKMPI_MAIN, 56, 20, true, 106), PC_RKMPI_QUEUED);
	CHECK_EQ(q.dropped, PC_RKMPI_QUEUE_LEN + 4);
	int64_t want[] = {103, 104, 106};
	for (size_t i = 0; i < 3; i++) {
		CHECK(pc_rkmpi_queue_pop(&q, &taken));
		CHECK_EQ(taken.capture_ns, want[i]);
	}
	CHECK(!pc_rkmpi_queue_pop(&q, &taken));

	/* An IDR that finds the queue full is kept, and its rendition goes on. */
	for (int i = 0; i < PC_RKMPI_QUEUE_LEN; i++)
		CHECK_EQ(push(&q, PC_RKMPI_MAIN, 1, 20, false, i), PC_RKMPI_QUEUED);
	CHECK_EQ(push(&q, PC_RKMPI_MAIN, 2, 30, true, 200), PC_RKMPI_OVERFLOW);
	CHECK_EQ(q.count, 1);
	CHECK_EQ(push(&q, PC_RKMPI_MAIN, 3, 20, false, 201), PC_RKMPI_QUEUED);
	CHECK_EQ(push(&q, PC_RKMPI_SUB, 4, 20, false, 202), PC_RKMPI_SKIPPED);
	CHECK(pc_rkmpi_queue_pop(&q, &taken));
	CHECK_EQ(taken.capture_ns, 200);
	CHECK_EQ(taken.size, 30);
	CHECK(taken.keyframe);
	pc_rkmpi_queue_free(&q, &taken);
}

void pc_test_rkmpi(void)
{
	RUN_TEST(test_rkmpi_settings_defaults);
	RUN_TEST(test_rkmpi_settings_refused);
	RUN_TEST(test_rkmpi_settings_fps);
	RUN_TEST(test_rkmpi_parse_sensor_fps);
	RUN_TEST(test_rkmpi_kbps);
	RUN_TEST(test_rkmpi_capture_time);
	RUN_TEST(test_rkmpi_has_idr);
	RUN_TEST(test_rkmpi_queue_order);
	RUN_TEST(test_rkmpi_queue_overflow);
}
