/* The downscaler: known pictures in, exact values out. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../scale.h"
#include "check.h"

static uint8_t *px(const struct pc_frame *f, int plane, int x, int y)
{
	return f->plane[plane] + (size_t)y * f->stride[plane] + x;
}

/* Fills plane p of f with value(x, y). */
static void fill(struct pc_frame *f, int p, int (*value)(int x, int y))
{
	int w = p ? f->width / 2 : f->width, h = p ? f->height / 2 : f->height;
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
			*px(f, p, x, y) = (uint8_t)value(x, y);
}

static int checker_values(int x, int y)
{
	return (x * 37 + y * 101) % 251; /* no two neighbours alike */
}

static int ramp_x(int x, int y)
{
	(void)y;
	return 20 * x + 10;
}

static int ramp_y(int x, int y)
{
	(void)x;
	return 10 * y + 50;
}

static int ramp5_x(int x, int y)
{
	(void)y;
	return 5 * x + 10;
}

static int constant(int x, int y)
{
	(void)x;
	(void)y;
	return 77;
}

/* Exactly halved: each output is the rounded mean of its 2x2 block, in every plane. */
static void test_scale_box(void)
{
	struct pc_frame src, dst;
	struct pc_scaler s;
	CHECK_EQ(pc_frame_alloc(&src, 16, 8), 0);
	CHECK_EQ(pc_frame_alloc(&dst, 8, 4), 0);
	CHECK_EQ(pc_scaler_init(&s, 16, 8, 8, 4), 0);
	CHECK(s.plane[0].box && s.plane[1].box);
	for (int p = 0; p < 3; p++)
		fill(&src, p, checker_values);
	pc_scaler_run(&s, &src, &dst);
	int bad = 0;
	for (int p = 0; p < 3; p++) {
		int w = p ? 4 : 8, h = p ? 2 : 4;
		for (int y = 0; y < h; y++)
			for (int x = 0; x < w; x++) {
				int sum = checker_values(2 * x, 2 * y) + checker_values(2 * x + 1, 2 * y) +
					  checker_values(2 * x, 2 * y + 1) + checker_values(2 * x + 1, 2 * y + 1);
				bad += *px(&dst, p, x, y) != (sum + 2) / 4;
			}
	}
	CHECK_EQ(bad, 0);
	/* One block by hand: 10, 11, 12, 14 -> 47/4 = 11.75 -> 12. */
	*px(&src, 0, 0, 0) = 10, *px(&src, 0, 1, 0) = 11, *px(&src, 0, 0, 1) = 12, *px(&src, 0, 1, 1) = 14;
	pc_scaler_run(&s, &src, &dst);
	CHECK_EQ(*px(&dst, 0, 0, 0), 12);
	pc_scaler_destroy(&s);
	pc_frame_free(&src);
	pc_frame_free(&dst);
}

/* 6 -> 4 (2:3): destination pixel d sits at source 1.5 d + 0.25, so a ramp 20 x + 10 becomes
 * 30 d + 15, exactly; a constant stays constant; a vertical ramp likewise. */
static void test_scale_bilinear(void)
{
	struct pc_frame src, dst;
	struct pc_scaler s;
	CHECK_EQ(pc_frame_alloc(&src, 12, 12), 0);
	CHECK_EQ(pc_frame_alloc(&dst, 8, 8), 0);
	CHECK_EQ(pc_scaler_init(&s, 12, 12, 8, 8), 0);
	CHECK(!s.plane[0].box && !s.plane[1].box);
	fill(&src, 0, ramp_x);   /* 10 .. 230 */
	fill(&src, 1, ramp_y);   /* 50 .. 100 */
	fill(&src, 2, constant);
	pc_scaler_run(&s, &src, &dst);
	int bad = 0;
	for (int y = 0; y < 8; y++)
		for (int x = 0; x < 8; x++)
			bad += *px(&dst, 0, x, y) != 30 * x + 15;
	for (int y = 0; y < 4; y++)
		for (int x = 0; x < 4; x++) {
			bad += *px(&dst, 1, x, y) != 15 * y + 53; /* 10 (1.5 y + 0.25) + 50 = 15 y + 52.5, rounded up */
			bad += *px(&dst, 2, x, y) != 77;
		}
	CHECK_EQ(bad, 0);
	if (bad)
		fprintf(stderr, "    row 0: %d %d %d %d; chroma column: %d %d %d %d\n", *px(&dst, 0, 0, 0),
			*px(&dst, 0, 1, 0), *px(&dst, 0, 2, 0), *px(&dst, 0, 3, 0), *px(&dst, 1, 0, 0),
			*px(&dst, 1, 0, 1), *px(&dst, 1, 0, 2), *px(&dst, 1, 0, 3));
	pc_scaler_destroy(&s);
	pc_frame_free(&src);
	pc_frame_free(&dst);
}

/* Edges clamp (no reads outside the source), a big ratio samples the right places, and
 * refusals. */
static void test_scale_edges_and_refusals(void)
{
	struct pc_frame src, dst;
	struct pc_scaler s;
	CHECK_EQ(pc_frame_alloc(&src, 32, 32), 0);
	CHECK_EQ(pc_frame_alloc(&dst, 4, 4), 0);
	CHECK_EQ(pc_scaler_init(&s, 32, 32, 4, 4), 0);
	for (int p = 0; p < 3; p++)
		fill(&src, p, ramp5_x);
	pc_scaler_run(&s, &src, &dst);
	/* 8:1 — destination pixel d samples source 8 d + 3.5: 5 (8 d + 3.5) + 10 = 40 d + 27.5,
	 * rounded up. */
	for (int x = 0; x < 4; x++)
		CHECK_EQ(*px(&dst, 0, x, 0), 40 * x + 28);
	pc_scaler_destroy(&s);

	/* Upscaling works too (not used), and reads nothing past the last column. */
	CHECK_EQ(pc_scaler_init(&s, 4, 4, 32, 32), 0);
	fill(&src, 0, constant);
	pc_scaler_run(&s, &dst, &src);
	pc_scaler_destroy(&s);

	CHECK_EQ(pc_scaler_init(&s, 32, 32, 7, 4), -EINVAL);
	CHECK_EQ(pc_scaler_init(&s, 32, 32, 0, 4), -EINVAL);
	pc_frame_free(&src);
	pc_frame_free(&dst);
}

/* What it costs for the sub stream's usual sizes. */
static void test_scale_cost(void)
{
	static const int sizes[][4] = {{1280, 720, 640, 360}, {1280, 720, 854, 480}, {1920, 1080, 640, 360}};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct pc_frame src, dst;
		struct pc_scaler s;
		const int *z = sizes[i];
		if (pc_frame_alloc(&src, z[0], z[1]) < 0 || pc_frame_alloc(&dst, z[2], z[3]) < 0 ||
		    pc_scaler_init(&s, z[0], z[1], z[2], z[3]) < 0) {
			CHECK(!"alloc");
			return;
		}
		memset(src.plane[0], 100, (size_t)src.stride[0] * (size_t)src.height * 3 / 2);
		enum { RUNS = 100 };
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int r = 0; r < RUNS; r++)
			pc_scaler_run(&s, &src, &dst);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 / RUNS;
		fprintf(stderr, "    %dx%d -> %dx%d (%s): %.0f us per picture\n", z[0], z[1], z[2], z[3],
			s.plane[0].box ? "box" : "bilinear", us);
		CHECK(*px(&dst, 0, z[2] / 2, z[3] / 2) == 100);
		pc_scaler_destroy(&s);
		pc_frame_free(&src);
		pc_frame_free(&dst);
	}
}

void pc_test_scale(void)
{
	RUN_TEST(test_scale_box);
	RUN_TEST(test_scale_bilinear);
	RUN_TEST(test_scale_edges_and_refusals);
	RUN_TEST(test_scale_cost);
}
