/* The time strip, read back the way the browser will: block centres' luma. Also the test
 * pattern's basic promises (changes every frame, draws fast). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../sources/testpattern.h"
#include "check.h"

static uint8_t luma_at(const struct pc_frame *frame, int x, int y)
{
	return frame->plane[0][(size_t)y * frame->stride[0] + x];
}

/* Returns false when a block is not uniformly 16 or 235, or its chroma is not neutral. */
static bool read_strip(const struct pc_frame *frame, uint64_t *word)
{
	int block = pc_timestrip_block_size(frame->width);
	bool clean = true;
	*word = 0;
	for (int i = 0; i < PC_TIMESTRIP_BITS; i++) {
		uint8_t centre = luma_at(frame, i * block + block / 2, block / 2);
		*word = (*word << 1) | (centre > 125);
		for (int y = 0; y < block; y++)
			for (int x = i * block; x < (i + 1) * block; x++)
				clean &= luma_at(frame, x, y) == centre;
		for (int p = 1; p < 3; p++)
			for (int y = 0; y < block / 2; y++)
				for (int x = i * block / 2; x < (i + 1) * block / 2; x++)
					clean &= frame->plane[p][(size_t)y * frame->stride[p] + x] == 128;
		clean &= centre == PC_TIMESTRIP_LUMA_ONE || centre == PC_TIMESTRIP_LUMA_ZERO;
	}
	return clean;
}

static void test_block_size(void)
{
	CHECK_EQ(pc_timestrip_block_size(1280), 16);
	CHECK_EQ(pc_timestrip_block_size(1920), 24);
	CHECK_EQ(pc_timestrip_block_size(640), 8);
	CHECK_EQ(pc_timestrip_block_size(320), 8);
	CHECK_EQ(pc_timestrip_block_size(1024), 16);
	CHECK_EQ(pc_timestrip_block_size(1000), 8);  /* 15 -> 8 */
	CHECK_EQ(pc_timestrip_block_size(2560), 32); /* 40, capped */
	CHECK_EQ(pc_timestrip_block_size(3840), 32);
	CHECK_EQ(pc_timestrip_block_size(7680), 32);
}

static void test_crc(void)
{
	/* The catalogue check value of CRC-16/CCITT-FALSE. */
	CHECK_EQ(pc_timestrip_crc16((const uint8_t *)"123456789", 9), 0x29b1);

	uint64_t us = 1700000000123456ull;
	uint64_t word = pc_timestrip_encode(us);
	uint8_t bytes[6];
	for (int i = 0; i < 6; i++)
		bytes[i] = (uint8_t)((us & 0xffffffffffffull) >> (8 * (5 - i)));
	CHECK_EQ(word >> 16, us & 0xffffffffffffull);
	CHECK_EQ(word & 0xffff, pc_timestrip_crc16(bytes, 6));

	uint64_t back = 0;
	CHECK(pc_timestrip_decode(word, &back));
	CHECK_EQ(back, us & 0xffffffffffffull);
	CHECK(!pc_timestrip_decode(word ^ (1ull << 40), &back));
	CHECK(!pc_timestrip_decode(word ^ 1, &back));
}

static void check_strip_at_pattern(int width, int height, int64_t capture_ns, const char *pattern)
{
	void *state = NULL;
	char err[256];
	struct pc_source_config config = {width, height, 30, 1, pattern};
	CHECK_EQ(pc_testpattern_source.init(&state, &config, err, sizeof(err)), 0);
	if (!state)
		return;
	const struct pc_frame *frame = pc_testpattern_source.next_frame(state, 5, capture_ns);
	uint64_t word, us;
	CHECK(read_strip(frame, &word));
	CHECK(pc_timestrip_decode(word, &us));
	CHECK_EQ(us, ((uint64_t)capture_ns / 1000) & 0xffffffffffffull);

	/* And again on the next frame, drawn over the first. */
	frame = pc_testpattern_source.next_frame(state, 6, capture_ns + 33333333);
	CHECK(read_strip(frame, &word));
	CHECK(pc_timestrip_decode(word, &us));
	CHECK_EQ(us, ((uint64_t)(capture_ns + 33333333) / 1000) & 0xffffffffffffull);
	pc_testpattern_source.destroy(state);
}

static void check_strip_at(int width, int height, int64_t capture_ns)
{
	check_strip_at_pattern(width, height, capture_ns, NULL);
}

static void test_strip_read_back(void)
{
	check_strip_at(1280, 720, INT64_C(1700000000123456789));
	check_strip_at(640, 480, INT64_C(1234567890987654321));
	check_strip_at(1920, 1080, INT64_C(1999999999999999999));
	check_strip_at(2048, 128, INT64_C(1700000000000000000)); /* B = 32, the whole height is busy */
	/* The busy pattern draws the same strip over its noise. */
	check_strip_at_pattern(1280, 720, INT64_C(1700000000123456789), "busy");
	check_strip_at_pattern(640, 360, INT64_C(1700000001500000000), "busy");
	check_strip_at_pattern(2048, 128, INT64_C(1700000000000000000), "busy");
}

static uint64_t hash_below_strip(const struct pc_frame *frame)
{
	uint64_t h = 1469598103934665603ull;
	int block = pc_timestrip_block_size(frame->width);
	for (int y = block; y < frame->height; y++)
		for (int x = 0; x < frame->width; x++)
			h = (h ^ luma_at(frame, x, y)) * 1099511628211ull;
	return h;
}

static void test_pattern_changes_and_is_fast(void)
{
	void *state = NULL;
	char err[256];
	struct pc_source_config config = {1280, 720, 30, 1, NULL};
	CHECK_EQ(pc_testpattern_source.init(&state, &config, err, sizeof(err)), 0);
	if (!state)
		return;

	/* Same capture time, next frame number: the picture still changes. */
	uint64_t previous = hash_below_strip(pc_testpattern_source.next_frame(state, 0, 0));
	for (uint32_t seq = 1; seq < 5; seq++) {
		uint64_t h = hash_below_strip(pc_testpattern_source.next_frame(state, seq, 0));
		CHECK(h != previous);
		previous = h;
	}

	enum { FRAMES = 300 };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint32_t seq = 0; seq < FRAMES; seq++)
		pc_testpattern_source.next_frame(state, seq, (int64_t)seq * 33333333);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 / FRAMES;
	fprintf(stderr, "    testpattern 1280x720: %.1f us per frame\n", us);
	CHECK(us < 1000); /* generous: a loaded CI machine must not fail this */
	pc_testpattern_source.destroy(state);
}

static void test_pattern_refuses_odd_sizes(void)
{
	void *state = NULL;
	char err[256] = "";
	struct pc_source_config config = {321, 240, 30, 1, NULL};
	CHECK_EQ(pc_testpattern_source.init(&state, &config, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "even") != NULL);
	config = (struct pc_source_config){320, 241, 30, 1, NULL};
	CHECK_EQ(pc_testpattern_source.init(&state, &config, err, sizeof(err)), -EINVAL);
	CHECK(state == NULL);
}

/* ---- the busy pattern ---- */

static bool in_rect(int x, int y, struct pc_testpattern_rect r)
{
	return x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h;
}

static double mean_abs_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (uint64_t)abs(a[i] - b[i]);
	return (double)sum / (double)n;
}

/* The overlays are there (strip, clock box, flash at whole seconds), the rest stays dark enough
 * for diag.js's flash patch, the noise is fresh every picture, and scenes cut every 3 s. */
static void test_busy_pattern(void)
{
	enum { W = 640, H = 360 };
	void *state = NULL;
	char err[256];
	struct pc_source_config config = {W, H, 30, 1, "busy"};
	CHECK_EQ(pc_testpattern_source.init(&state, &config, err, sizeof(err)), 0);
	if (!state)
		return;
	struct pc_testpattern_rect flash;
	pc_testpattern_flash_rect(W, H, &flash);
	int block = pc_timestrip_block_size(W);
	static uint8_t prev[W * H], cur[W * H];

	/* 30 pictures from 0.1 s after a cut: the flash at +0.5 s, no cut. Then the next cut, at
	 * +3 s. */
	const int64_t cut = INT64_C(1700000002500000000); /* 3 k + 1.5 s */
	CHECK_EQ(pc_testpattern_scene(cut) - pc_testpattern_scene(cut - 1), 1);
	CHECK_EQ(pc_testpattern_scene(cut + PC_TESTPATTERN_SCENE_NS - 1), pc_testpattern_scene(cut));
	int flashes = 0, too_bright = 0;
	double max_step = 0;
	for (uint32_t seq = 0; seq < 30; seq++) {
		int64_t t = cut + INT64_C(100000000) + (int64_t)seq * 33333333;
		const struct pc_frame *f = pc_testpattern_source.next_frame(state, seq, t);
		bool flashed = seq > 0 && pc_testpattern_flashes(t - 33333333, t);
		flashes += flashed;
		for (int y = 0; y < H; y++)
			memcpy(cur + y * W, f->plane[0] + (size_t)y * f->stride[0], W);
		/* Below the clock (where diag.js looks for the flash), outside the flash. */
		for (int y = block; y < H; y++)
			for (int x = 0; x < W; x++) {
				if (y < flash.y)
					continue; /* the clock's box (white text) is up there */
				if (flashed && in_rect(x, y, flash))
					continue;
				too_bright += cur[y * W + x] > PC_TESTPATTERN_BUSY_LUMA_MAX;
			}
		if (flashed)
			CHECK_EQ(cur[(flash.y + flash.h / 2) * W + W / 2], PC_TESTPATTERN_FLASH_LUMA);
		if (seq > 0 && !flashed && !pc_testpattern_flashes(t - 66666666, t - 33333333)) {
			double d = mean_abs_diff(prev + block * W, cur + block * W, (size_t)(H - block) * W);
			if (d > max_step)
				max_step = d;
			CHECK(d > 4); /* fresh noise and motion: every picture differs everywhere */
		}
		memcpy(prev, cur, sizeof(cur));
	}
	CHECK_EQ(flashes, 1);
	CHECK_EQ(too_bright, 0);

	/* Across the cut the texture changes: far more than between pictures of one scene. (The
	 * first picture of that second flashes: the two compared come after it.) */
	const int64_t next_cut = cut + PC_TESTPATTERN_SCENE_NS;
	pc_testpattern_source.next_frame(state, 99, next_cut - 2000);
	const struct pc_frame *f = pc_testpattern_source.next_frame(state, 100, next_cut - 1000);
	for (int y = 0; y < H; y++)
		memcpy(prev + y * W, f->plane[0] + (size_t)y * f->stride[0], W);
	f = pc_testpattern_source.next_frame(state, 101, next_cut + 1000);
	for (int y = 0; y < H; y++)
		memcpy(cur + y * W, f->plane[0] + (size_t)y * f->stride[0], W);
	double across = mean_abs_diff(prev + block * W, cur + block * W, (size_t)(H - block) * W);
	fprintf(stderr, "    busy 640x360: mean luma step %.1f between pictures, %.1f across a scene cut\n",
		max_step, across);
	CHECK(across > max_step);
	pc_testpattern_source.destroy(state);

	/* A pattern nobody knows is refused. */
	config.pattern = "plaid";
	state = NULL;
	CHECK_EQ(pc_testpattern_source.init(&state, &config, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "plaid") != NULL);
	CHECK(state == NULL);
}

/* What drawing costs per picture at 720p, each pattern. */
static void test_pattern_cost(void)
{
	static const char *const patterns[] = {"bars", "busy"};
	for (size_t i = 0; i < 2; i++) {
		void *state = NULL;
		char err[256];
		struct pc_source_config config = {1280, 720, 30, 1, patterns[i]};
		CHECK_EQ(pc_testpattern_source.init(&state, &config, err, sizeof(err)), 0);
		if (!state)
			return;
		enum { FRAMES = 150 };
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (uint32_t seq = 0; seq < FRAMES; seq++)
			pc_testpattern_source.next_frame(state, seq, (int64_t)seq * 33333333);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 / FRAMES;
		fprintf(stderr, "    %s 1280x720: %.0f us per picture\n", patterns[i], us);
		CHECK(us < 5000); /* generous: a loaded CI machine must not fail this */
		pc_testpattern_source.destroy(state);
	}
}

void pc_test_timestrip(void)
{
	RUN_TEST(test_block_size);
	RUN_TEST(test_crc);
	RUN_TEST(test_strip_read_back);
	RUN_TEST(test_pattern_changes_and_is_fast);
	RUN_TEST(test_pattern_refuses_odd_sizes);
	RUN_TEST(test_busy_pattern);
	RUN_TEST(test_pattern_cost);
}
