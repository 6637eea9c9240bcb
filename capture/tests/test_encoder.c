/* The x264 wrapper: what comes out must be constrained baseline, I/P only, with SPS and PPS
 * in front of every IDR, and IDRs exactly when asked for. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "../encoders/encoder.h"
#include "../sources/testpattern.h"
#include "check.h"

#define MAX_NALS 64

enum { NAL_NON_IDR = 1, NAL_IDR = 5, NAL_SEI = 6, NAL_SPS = 7, NAL_PPS = 8 };

int pc_test_nal_units(const uint8_t *au, size_t size, int *types, size_t *offsets, int max)
{
	int count = 0;
	for (size_t i = 0; i + 3 <= size && count < max; i++) {
		if (au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1) {
			size_t start = i + 3;
			if (start < size) {
				types[count] = au[start] & 0x1f;
				offsets[count] = start;
				count++;
			}
			i = start - 1;
		}
	}
	return count;
}

/* Exp-Golomb reading over an RBSP (emulation prevention bytes removed). */
struct bit_reader {
	uint8_t rbsp[64];
	size_t len;
	size_t bit;
};

static void bit_reader_init(struct bit_reader *br, const uint8_t *payload, size_t size)
{
	br->len = 0;
	br->bit = 0;
	int zeros = 0;
	for (size_t i = 0; i < size && br->len < sizeof(br->rbsp); i++) {
		if (zeros >= 2 && payload[i] == 3) {
			zeros = 0;
			continue;
		}
		zeros = payload[i] == 0 ? zeros + 1 : 0;
		br->rbsp[br->len++] = payload[i];
	}
}

static int read_bit(struct bit_reader *br)
{
	if (br->bit >= br->len * 8)
		return -1;
	int v = (br->rbsp[br->bit / 8] >> (7 - br->bit % 8)) & 1;
	br->bit++;
	return v;
}

static long read_ue(struct bit_reader *br)
{
	int zeros = 0, b;
	while ((b = read_bit(br)) == 0)
		if (++zeros > 31)
			return -1;
	if (b < 0)
		return -1;
	long v = 1;
	for (int i = 0; i < zeros; i++) {
		if ((b = read_bit(br)) < 0)
			return -1;
		v = (v << 1) | b;
	}
	return v - 1;
}

/* slice_type % 5 of the slice NAL unit starting at nal (header byte included). */
static long slice_type_of(const uint8_t *nal, size_t size)
{
	struct bit_reader br;
	bit_reader_init(&br, nal + 1, size - 1);
	if (read_ue(&br) < 0) /* first_mb_in_slice */
		return -1;
	long type = read_ue(&br);
	return type < 0 ? -1 : type % 5;
}

struct au_report {
	bool ok_types;       /* only 1, 5, 6, 7, 8 */
	bool has_idr;
	bool headers_first;  /* SPS then PPS before the first IDR slice */
	bool slices_ip;      /* every slice I or P; IDR slices I */
	int profile_idc, constraint_flags, level_idc; /* from the SPS, -1 if none */
};

static struct au_report inspect(const struct pc_encoded *au)
{
	struct au_report r = {.ok_types = true, .slices_ip = true, .profile_idc = -1,
			      .constraint_flags = -1, .level_idc = -1};
	int types[MAX_NALS];
	size_t offsets[MAX_NALS];
	int n = pc_test_nal_units(au->data, au->size, types, offsets, MAX_NALS);
	int sps_at = -1, pps_at = -1, idr_at = -1;

	for (int i = 0; i < n; i++) {
		const uint8_t *nal = au->data + offsets[i];
		size_t nal_size = (i + 1 < n ? offsets[i + 1] - 3 : au->size) - offsets[i];
		switch (types[i]) {
		case NAL_SPS:
			if (sps_at < 0)
				sps_at = i;
			if (nal_size >= 4) {
				r.profile_idc = nal[1];
				r.constraint_flags = nal[2];
				r.level_idc = nal[3];
			}
			break;
		case NAL_PPS:
			if (pps_at < 0)
				pps_at = i;
			break;
		case NAL_IDR:
		case NAL_NON_IDR: {
			long st = slice_type_of(nal, nal_size);
			if (types[i] == NAL_IDR) {
				if (idr_at < 0)
					idr_at = i;
				r.slices_ip &= st == 2;
			} else {
				r.slices_ip &= st == 0 || st == 2;
			}
			break;
		}
		case NAL_SEI:
			break;
		default:
			r.ok_types = false;
		}
	}
	r.has_idr = idr_at >= 0;
	r.headers_first = r.has_idr && sps_at >= 0 && pps_at > sps_at && idr_at > pps_at;
	return r;
}

static void test_nal_scanner(void)
{
	const uint8_t au[] = {0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4};
	int types[8];
	size_t offsets[8];
	CHECK_EQ(pc_test_nal_units(au, sizeof(au), types, offsets, 8), 3);
	CHECK_EQ(types[0], NAL_SPS);
	CHECK_EQ(types[1], NAL_PPS);
	CHECK_EQ(types[2], NAL_IDR);
	CHECK_EQ(offsets[2], 16);
}

struct encode_fixture {
	void *source;
	void *encoder;
};

static bool fixture_init_pattern(struct encode_fixture *f, const struct pc_encoder_config *config,
				 const char *pattern)
{
	char err[256];
	struct pc_source_config source_config = {config->width, config->height, config->fps_num,
						 config->fps_den, pattern};
	memset(f, 0, sizeof(*f));
	if (pc_testpattern_source.init(&f->source, &source_config, err, sizeof(err)) < 0 ||
	    pc_x264_encoder.init(&f->encoder, config, err, sizeof(err)) < 0) {
		fprintf(stderr, "    %s\n", err);
		return false;
	}
	return true;
}

static bool fixture_init(struct encode_fixture *f, const struct pc_encoder_config *config)
{
	return fixture_init_pattern(f, config, NULL);
}

static void fixture_destroy(struct encode_fixture *f)
{
	if (f->encoder)
		pc_x264_encoder.destroy(f->encoder);
	if (f->source)
		pc_testpattern_source.destroy(f->source);
}

static bool encode_one(struct encode_fixture *f, uint32_t seq, bool force_idr, struct pc_encoded *au)
{
	const struct pc_frame *frame =
		pc_testpattern_source.next_frame(f->source, seq, INT64_C(1700000000000000000) + seq * INT64_C(33333333));
	return pc_x264_encoder.encode(f->encoder, frame, force_idr, au) == 0 && au->size > 0;
}

static void test_encode_gop_and_forced_idr(void)
{
	struct pc_encoder_config config = {
		.width = 320, .height = 240, .fps_num = 30, .fps_den = 1, .bitrate = 2000000,
		.gop = 1000, .preset = "ultrafast", .threads = 2, /* two slices per picture */
	};
	struct encode_fixture f;
	const struct pc_h264_level *level = pc_h264_level_find(320, 240, 30, 1, 2000000);
	CHECK(level != NULL);
	if (!fixture_init(&f, &config) || !level) {
		CHECK(!"fixture");
		fixture_destroy(&f);
		return;
	}

	enum { FRAMES = 30, FORCED = 15 };
	for (uint32_t seq = 0; seq < FRAMES; seq++) {
		struct pc_encoded au;
		bool encoded = encode_one(&f, seq, seq == FORCED, &au);
		CHECK(encoded);
		if (!encoded)
			break;
		struct au_report r = inspect(&au);
		bool want_idr = seq == 0 || seq == FORCED;
		if (r.has_idr != want_idr || au.keyframe != want_idr)
			fprintf(stderr, "    picture %u\n", seq);
		CHECK(r.ok_types);
		CHECK(r.slices_ip);
		CHECK_EQ(au.keyframe, r.has_idr);
		CHECK_EQ(r.has_idr, want_idr);
		if (want_idr) {
			CHECK(r.headers_first);
			CHECK_EQ(r.profile_idc, 66);          /* Baseline ... */
			CHECK(r.constraint_flags & 0x40);     /* ... constraint_set1: Constrained */
			CHECK_EQ(r.level_idc, level->idc);
		}
	}
	fixture_destroy(&f);
}

static void test_reconfigure(void)
{
	struct pc_encoder_config config = {
		.width = 320, .height = 240, .fps_num = 30, .fps_den = 1, .bitrate = 2000000,
		.gop = 60, .preset = "ultrafast", .threads = 1,
	};
	struct encode_fixture f;
	if (!fixture_init(&f, &config)) {
		CHECK(!"fixture");
		fixture_destroy(&f);
		return;
	}
	struct pc_encoded au;
	uint32_t applied = 0;
	CHECK(encode_one(&f, 0, false, &au));

	CHECK_EQ(pc_x264_encoder.set_bitrate(f.encoder, 500000, &applied), 0);
	CHECK_EQ(applied, 500000);
	CHECK(encode_one(&f, 1, false, &au));
	/* Level 2.0 (320x240 at 2 Mbit/s) caps the bitrate at 2000 kbit/s. */
	CHECK_EQ(pc_x264_encoder.set_bitrate(f.encoder, 50000000, &applied), 0);
	CHECK_EQ(applied, 2000000);
	CHECK_EQ(pc_x264_encoder.set_bitrate(f.encoder, 1, &applied), 0);
	CHECK_EQ(applied, 10000);
	CHECK_EQ(pc_x264_encoder.set_bitrate(f.encoder, 1000000, &applied), 0);

	CHECK_EQ(pc_x264_encoder.set_fps(f.encoder, 15, 1), 0);
	CHECK(encode_one(&f, 2, false, &au));
	CHECK_EQ(pc_x264_encoder.set_fps(f.encoder, 30000, 1001), 0);
	/* 300 MBs x 60 fps is over level 2.0's 11880 MB/s. */
	CHECK_EQ(pc_x264_encoder.set_fps(f.encoder, 60, 1), -ERANGE);
	CHECK(encode_one(&f, 3, true, &au));
	CHECK(au.keyframe);
	fixture_destroy(&f);
}

static void test_refusals(void)
{
	char err[256] = "";
	void *encoder = NULL;
	struct pc_encoder_config config = {
		.width = 320, .height = 240, .fps_num = 30, .fps_den = 1, .bitrate = 2000000,
		.gop = 60, .preset = "warpspeed", .threads = 0,
	};
	CHECK_EQ(pc_x264_encoder.init(&encoder, &config, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "preset") != NULL);

	config.preset = "ultrafast";
	config.width = 7680;
	config.height = 4320;
	CHECK_EQ(pc_x264_encoder.init(&encoder, &config, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "5.2") != NULL);
	CHECK(encoder == NULL);
}

static void test_encode_720p_speed(void)
{
	struct pc_encoder_config config = {
		.width = 1280, .height = 720, .fps_num = 30, .fps_den = 1, .bitrate = 2000000,
		.gop = 60, .preset = "ultrafast", .threads = 0,
	};
	struct encode_fixture f;
	if (!fixture_init(&f, &config)) {
		CHECK(!"fixture");
		fixture_destroy(&f);
		return;
	}
	enum { FRAMES = 60 };
	struct timespec t0, t1;
	struct pc_encoded au;
	size_t bytes = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint32_t seq = 0; seq < FRAMES; seq++) {
		bool encoded = encode_one(&f, seq, false, &au);
		CHECK(encoded);
		if (seq == 0)
			CHECK_EQ(inspect(&au).level_idc, 31);
		bytes += au.size;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) / FRAMES;
	fprintf(stderr, "    x264 ultrafast 1280x720: %.2f ms per picture (draw included), %.0f kbit/s\n",
		ms, (double)bytes * 8 * 30 / FRAMES / 1000);
	fixture_destroy(&f);
}

/* ---- output rate ---- */

/* Encodes pictures [from, from + n) at fps, 1/fps apart in capture time; returns their bytes. */
static size_t encode_run(struct encode_fixture *f, uint32_t from, uint32_t n, double fps, bool *ok)
{
	size_t bytes = 0;
	for (uint32_t seq = from; seq < from + n; seq++) {
		int64_t t = INT64_C(1700000000000000000) + (int64_t)((double)seq * 1e9 / fps);
		const struct pc_frame *frame = pc_testpattern_source.next_frame(f->source, seq, t);
		struct pc_encoded au;
		if (pc_x264_encoder.encode(f->encoder, frame, false, &au) < 0) {
			*ok = false;
			return bytes;
		}
		bytes += au.size;
	}
	return bytes;
}

static double kbit(size_t bytes)
{
	return (double)bytes * 8 / 1000;
}

/* The busy pattern really spends the bitrate at 720p30 2M (the bars do not come close). */
static void test_busy_output_rate(void)
{
	struct pc_encoder_config config = {
		.width = 1280, .height = 720, .fps_num = 30, .fps_den = 1, .bitrate = 2000000,
		.gop = 60, .preset = "ultrafast", .threads = 0,
	};
	static const char *const patterns[] = {"bars", "busy"};
	double rate[2] = {0, 0};
	for (int i = 0; i < 2; i++) {
		struct encode_fixture f;
		bool ok = true;
		if (!fixture_init_pattern(&f, &config, patterns[i])) {
			CHECK(!"fixture");
			fixture_destroy(&f);
			return;
		}
		/* The first second (the first IDR, the rate control settling) does not count;
		 * three seconds do, one scene cut among them. */
		encode_run(&f, 0, 30, 30, &ok);
		rate[i] = kbit(encode_run(&f, 30, 90, 30, &ok)) / 3;
		CHECK(ok);
		fixture_destroy(&f);
	}
	fprintf(stderr, "    1280x720 30 fps at 2000 kbit/s: bars %.0f kbit/s, busy %.0f kbit/s (%.0f%%)\n",
		rate[0], rate[1], rate[1] / 20);
	CHECK(rate[1] >= 0.9 * 2000);
	CHECK(rate[1] <= 1.15 * 2000);
	CHECK(rate[0] < rate[1]);
}

/* BITRATE at run time: within a second the output follows, down and back up; an FPS change
 * keeps the bitrate (each picture's budget follows the rate pictures come at). */
static void test_bitrate_follows(void)
{
	struct pc_encoder_config config = {
		.width = 1280, .height = 720, .fps_num = 30, .fps_den = 1, .bitrate = 2000000,
		.gop = 60, .preset = "ultrafast", .threads = 0,
	};
	struct encode_fixture f;
	bool ok = true;
	uint32_t applied;
	if (!fixture_init_pattern(&f, &config, "busy")) {
		CHECK(!"fixture");
		fixture_destroy(&f);
		return;
	}
	uint32_t seq = 0;
	encode_run(&f, seq, 60, 30, &ok);
	seq += 60;

	CHECK_EQ(pc_x264_encoder.set_bitrate(f.encoder, 500000, &applied), 0);
	double down = kbit(encode_run(&f, seq, 30, 30, &ok));
	seq += 30;
	double down2 = kbit(encode_run(&f, seq, 30, 30, &ok));
	seq += 30;

	CHECK_EQ(pc_x264_encoder.set_bitrate(f.encoder, 2000000, &applied), 0);
	double up = kbit(encode_run(&f, seq, 30, 30, &ok));
	seq += 30;

	/* Half the frame rate: 15 pictures make a second, still at 2 Mbit/s... */
	CHECK_EQ(pc_x264_encoder.set_fps(f.encoder, 15, 1), 0);
	encode_run(&f, seq, 8, 15, &ok);
	seq += 8;
	double half_fps = kbit(encode_run(&f, seq, 15, 15, &ok));
	seq += 15;
	/* ... and a bitrate change at that rate is still right per second. */
	CHECK_EQ(pc_x264_encoder.set_bitrate(f.encoder, 800000, &applied), 0);
	double half_fps_down = kbit(encode_run(&f, seq, 15, 15, &ok));
	CHECK(ok);

	fprintf(stderr, "    busy 720p, first second after each change: 2M->500k %.0f kbit/s (then %.0f), "
		"->2M %.0f, 15 fps %.0f, ->800k at 15 fps %.0f\n", down, down2, up, half_fps, half_fps_down);
	CHECK(down >= 0.7 * 500 && down <= 1.3 * 500);
	CHECK(down2 >= 0.7 * 500 && down2 <= 1.3 * 500);
	CHECK(up >= 0.7 * 2000 && up <= 1.3 * 2000);
	CHECK(half_fps >= 0.7 * 2000 && half_fps <= 1.3 * 2000);
	CHECK(half_fps_down >= 0.7 * 800 && half_fps_down <= 1.3 * 800);
	fixture_destroy(&f);
}

void pc_test_encoder(void)
{
	RUN_TEST(test_nal_scanner);
	RUN_TEST(test_encode_gop_and_forced_idr);
	RUN_TEST(test_reconfigure);
	RUN_TEST(test_refusals);
	RUN_TEST(test_encode_720p_speed);
	RUN_TEST(test_busy_output_rate);
	RUN_TEST(test_bitrate_follows);
}
