/* H.264 Table A-1 level choice. */
#include <stddef.h>

#include "../encoders/encoder.h"
#include "check.h"

static int level_of(int width, int height, uint32_t fps_num, uint32_t fps_den, uint32_t bitrate)
{
	const struct pc_h264_level *level = pc_h264_level_find(width, height, fps_num, fps_den, bitrate);
	return level ? level->idc : 0;
}

static void test_level_examples(void)
{
	static const struct {
		int width, height;
		uint32_t fps_num, fps_den, bitrate;
		int idc;
	} cases[] = {
		{1280, 720, 30, 1, 2000000, 31},
		{1920, 1080, 30, 1, 2000000, 40},
		{1920, 1080, 60, 1, 2000000, 42},
		{640, 480, 30, 1, 2000000, 30},
		{1280, 720, 60, 1, 2000000, 32},
		{1280, 720, 30000, 1001, 2000000, 31},
		{176, 144, 15, 1, 0, 10},       /* QCIF: 99 MBs x 15 fps is level 1's 1485 MB/s */
		{176, 144, 15, 1, 100000, 11},  /* over level 1's 64 kbit/s */
		{320, 240, 30, 1, 0, 13},
		{320, 240, 30, 1, 2000000, 20}, /* 2 Mbit/s is over 1.3's 768 kbit/s */
		{3840, 2160, 30, 1, 2000000, 51},
		{3840, 2160, 60, 1, 2000000, 52},
		{4096, 2304, 30, 1, 2000000, 52},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = level_of(cases[i].width, cases[i].height, cases[i].fps_num, cases[i].fps_den,
				   cases[i].bitrate);
		if (got != cases[i].idc)
			fprintf(stderr, "    %dx%d@%u/%u %u bit/s\n", cases[i].width, cases[i].height,
				cases[i].fps_num, cases[i].fps_den, cases[i].bitrate);
		CHECK_EQ(got, cases[i].idc);
	}
}

static void test_level_refusals(void)
{
	CHECK_EQ(level_of(3840, 2160, 120, 1, 0), 0);   /* MaxMBPS of 5.2 */
	CHECK_EQ(level_of(7680, 4320, 30, 1, 0), 0);    /* MaxFS of 5.2 */
	CHECK_EQ(level_of(8192, 256, 30, 1, 0), 51);    /* 512 MBs wide: within sqrt(8 * MaxFS) */
	CHECK_EQ(level_of(8800, 256, 30, 1, 0), 0);     /* 550 MBs wide: over sqrt(8 * 36864) */
	CHECK_EQ(level_of(4096, 2304, 60, 1, 0), 0);    /* 2211840 MB/s */
	CHECK_EQ(level_of(1280, 720, 30, 1, 300000000), 0); /* MaxBR of 5.2 */
	CHECK_EQ(level_of(1280, 720, 0, 1, 0), 0);
	CHECK_EQ(level_of(0, 720, 30, 1, 0), 0);
	/* The edge itself is allowed: 36864 MBs at 56.25 fps is 5.2's 2073600 MB/s. */
	CHECK_EQ(level_of(4096, 2304, 225, 4, 0), 52);
	CHECK_EQ(level_of(4096, 2304, 226, 4, 0), 0);
}

void pc_test_level(void)
{
	RUN_TEST(test_level_examples);
	RUN_TEST(test_level_refusals);
}
