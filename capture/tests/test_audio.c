/* The audio building blocks: the test tone, Opus round trips, the talk-back jitter buffer,
 * the sample clock, and the test pattern's flash that goes with the tone. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../audio.h"
#include "../clock.h"
#include "../encoders/opus.h"
#include "../jitter.h"
#include "../sources/testpattern.h"
#include "../sources/testtone.h"
#include "check.h"

#define RATE 48000
#define FRAME PC_OPUS_FRAME_SAMPLES
#define MS PC_NS_PER_MS
#define SEC PC_NS_PER_SEC

/* Frequency from the rising zero crossings of samples [from, to). 0 when fewer than two. */
double pc_test_zero_crossing_hz(const int16_t *pcm, size_t from, size_t to, int rate)
{
	long first = -1, last = -1, count = 0;
	for (size_t i = from + 1; i < to; i++) {
		if (pcm[i - 1] < 0 && pcm[i] >= 0) {
			if (first < 0)
				first = (long)i;
			last = (long)i;
			count++;
		}
	}
	if (count < 2)
		return 0;
	return (double)(count - 1) * rate / (double)(last - first);
}

double pc_test_rms(const int16_t *pcm, size_t from, size_t to)
{
	double sum = 0;
	for (size_t i = from; i < to; i++)
		sum += (double)pcm[i] * pcm[i];
	return to > from ? sqrt(sum / (double)(to - from)) : 0;
}

static void test_tone_onsets(void)
{
	/* 3 s of 20 ms frames from 0.5 s before a whole second, as the audio thread makes them. */
	const int64_t base = INT64_C(1700000000) * SEC - 500 * MS;
	enum { FRAMES = 150 };
	int16_t *pcm = calloc((size_t)FRAMES * FRAME, sizeof(*pcm));
	CHECK(pcm != NULL);
	if (!pcm)
		return;
	for (int f = 0; f < FRAMES; f++)
		pc_testtone_fill(pcm + (size_t)f * FRAME, 1, RATE, FRAME, base + f * 20 * MS);

	/* Sample i is at base + i/48000 s: the tone is on exactly where that is < 100 ms past a
	 * whole second (a zero of the sine still counts as "on": check the envelope). */
	int onsets = 0;
	for (size_t i = 0; i < (size_t)FRAMES * FRAME; i++) {
		int64_t t = base + (int64_t)i * SEC / RATE;
		bool on = pc_testtone_is_on(t);
		if (!on)
			CHECK_EQ(pcm[i], 0);
		if (on && i > 0 && !pc_testtone_is_on(base + (int64_t)(i - 1) * SEC / RATE)) {
			onsets++;
			/* The onset is the first sample of the frame stamped at the whole second. */
			CHECK_EQ(pc_floor_mod(t, SEC), 0);
			CHECK_EQ(i % FRAME, 0);
			CHECK_EQ(pcm[i], 0);      /* phase 0 at the whole second ... */
			CHECK(pcm[i + 1] > 1000); /* ... rising */
			CHECK(pc_test_rms(pcm, i, i + 4800) > 11000); /* A / sqrt(2) = 11585 */
			CHECK_EQ(pcm[i + 4800], 0);
			CHECK(pc_test_rms(pcm, i + 4800, i + 4800 + FRAME) == 0);
			double hz = pc_test_zero_crossing_hz(pcm, i, i + 4800, RATE);
			CHECK(fabs(hz - PC_TESTTONE_HZ) < 1);
		}
	}
	CHECK_EQ(onsets, 3);

	/* A frame that does not start on the grid still beeps exactly from the whole second. */
	int16_t odd[FRAME];
	int64_t start = INT64_C(1700000001) * SEC - 7 * MS;
	pc_testtone_fill(odd, 1, RATE, FRAME, start);
	size_t first_on = 0;
	while (first_on < FRAME && !pc_testtone_is_on(start + (int64_t)first_on * SEC / RATE))
		first_on++;
	CHECK_EQ(first_on, 336); /* 7 ms */
	CHECK(pc_test_rms(odd, 0, first_on) == 0);
	CHECK(pc_test_rms(odd, first_on, FRAME) > 10000);

	/* Stereo: the same samples on both channels. */
	int16_t stereo[2 * FRAME];
	pc_testtone_fill(stereo, 2, RATE, FRAME, INT64_C(1700000002) * SEC);
	for (int i = 0; i < FRAME; i++)
		CHECK_EQ(stereo[2 * i], stereo[2 * i + 1]);
	CHECK(pc_testtone_is_on(-1 * SEC));
	CHECK(!pc_testtone_is_on(-1));
	free(pcm);
}

/* Encodes 1 s of the tone from a whole second, decodes it, and finds the beep again. */
static void test_opus_round_trip(void)
{
	char err[256] = "";
	struct pc_opus_encoder *enc = NULL;
	struct pc_opus_decoder *dec = NULL;
	CHECK_EQ(pc_opus_encoder_init(&enc, 1, 32000, err, sizeof(err)), 0);
	CHECK_EQ(pc_opus_decoder_init(&dec, 1, err, sizeof(err)), 0);
	if (!enc || !dec)
		goto out;

	enum { FRAMES = 50 };
	static int16_t decoded[FRAMES * FRAME];
	int16_t pcm[FRAME];
	uint8_t packet[PC_OPUS_MAX_PACKET];
	const int64_t base = INT64_C(1700000000) * SEC;
	size_t bytes = 0;
	for (int f = 0; f < FRAMES; f++) {
		pc_testtone_fill(pcm, 1, RATE, FRAME, base + f * 20 * MS);
		int n = pc_opus_encode(enc, pcm, packet, sizeof(packet));
		CHECK(n > 0);
		if (n <= 0)
			goto out;
		bytes += (size_t)n;
		CHECK_EQ(pc_opus_decode(dec, packet, (size_t)n, decoded + f * FRAME, FRAME), FRAME);
	}
	/* About the bitrate asked for (VBR: silence is cheap, so at most that). */
	CHECK(bytes * 8 < 40000);
	/* The beep comes out a few ms late (the encoder's look-ahead), at 1 kHz. */
	double hz = pc_test_zero_crossing_hz(decoded, 20 * 48, 100 * 48, RATE);
	fprintf(stderr, "    opus 32 kbit/s: %.1f Hz after the round trip, %zu bytes in 1 s\n", hz,
		bytes);
	CHECK(fabs(hz - 1000) < 10);
	CHECK(pc_test_rms(decoded, 20 * 48, 90 * 48) > 8000);
	CHECK(pc_test_rms(decoded, 200 * 48, 900 * 48) < 300);

	/* Concealment yields one frame. */
	CHECK_EQ(pc_opus_decode(dec, NULL, 0, pcm, FRAME), FRAME);
	uint32_t applied = 0;
	CHECK_EQ(pc_opus_encoder_set_bitrate(enc, 1000, &applied), 0);
	CHECK_EQ(applied, PC_OPUS_MIN_BITRATE);
	CHECK_EQ(pc_opus_encoder_set_bitrate(enc, 64000, &applied), 0);
	CHECK_EQ(applied, 64000);
out:
	pc_opus_encoder_destroy(enc);
	pc_opus_decoder_destroy(dec);
}

static void push(struct pc_jitter *jb, uint8_t tag, bool resume, int64_t t)
{
	uint8_t data[3] = {tag, tag, tag};
	pc_jitter_push(jb, data, sizeof(data), resume, t);
}

static void test_jitter_buffer(void)
{
	static struct pc_jitter jb;
	struct pc_jitter_packet out;
	bool reset;
	pc_jitter_init(&jb);

	CHECK_EQ(pc_jitter_pop(&jb, 0, &out, &reset), PC_JITTER_SILENCE);

	/* One packet waits until a second arrives or 40 ms passed. */
	push(&jb, 1, true, 1000 * MS);
	CHECK_EQ(pc_jitter_pop(&jb, 1010 * MS, &out, &reset), PC_JITTER_SILENCE);
	push(&jb, 2, false, 1020 * MS);
	CHECK_EQ(pc_jitter_pop(&jb, 1020 * MS, &out, &reset), PC_JITTER_DECODE);
	CHECK_EQ(out.data[0], 1);
	CHECK(reset); /* a new burst: fresh decoder */
	CHECK_EQ(pc_jitter_pop(&jb, 1040 * MS, &out, &reset), PC_JITTER_DECODE);
	CHECK_EQ(out.data[0], 2);
	CHECK(!reset);

	/* A lost packet is concealed, up to three in a row, then silence. */
	CHECK_EQ(pc_jitter_pop(&jb, 1060 * MS, &out, &reset), PC_JITTER_CONCEAL);
	push(&jb, 3, false, 1070 * MS);
	CHECK_EQ(pc_jitter_pop(&jb, 1080 * MS, &out, &reset), PC_JITTER_DECODE);
	CHECK_EQ(out.data[0], 3);
	for (int i = 0; i < PC_JITTER_CONCEAL_MAX; i++)
		CHECK_EQ(pc_jitter_pop(&jb, (1100 + 20 * i) * MS, &out, &reset), PC_JITTER_CONCEAL);
	CHECK_EQ(pc_jitter_pop(&jb, 1200 * MS, &out, &reset), PC_JITTER_SILENCE);
	CHECK_EQ(jb.state, PC_JITTER_IDLE);

	/* A short burst alone still plays after 40 ms, with a fresh decoder. */
	push(&jb, 4, false, 2000 * MS);
	CHECK_EQ(pc_jitter_pop(&jb, 2020 * MS, &out, &reset), PC_JITTER_SILENCE);
	CHECK_EQ(pc_jitter_pop(&jb, 2040 * MS, &out, &reset), PC_JITTER_DECODE);
	CHECK_EQ(out.data[0], 4);
	CHECK(reset);

	/* RESUME drops what still waits. */
	push(&jb, 5, false, 3000 * MS);
	push(&jb, 6, false, 3001 * MS);
	push(&jb, 7, true, 3002 * MS);
	push(&jb, 8, false, 3003 * MS);
	CHECK_EQ(pc_jitter_pop(&jb, 3004 * MS, &out, &reset), PC_JITTER_DECODE);
	CHECK_EQ(out.data[0], 7);
	CHECK(reset);
	CHECK_EQ(jb.dropped, 2);

	/* A flood is cut back to the target depth, keeping the newest. */
	pc_jitter_init(&jb);
	for (int i = 0; i < 20; i++)
		push(&jb, (uint8_t)(10 + i), false, 4000 * MS);
	CHECK_EQ(jb.count, PC_JITTER_SLOTS);
	CHECK_EQ(pc_jitter_pop(&jb, 4000 * MS, &out, &reset), PC_JITTER_DECODE);
	CHECK_EQ(out.data[0], 10 + 20 - PC_JITTER_TARGET);
	CHECK_EQ(jb.count, PC_JITTER_TARGET - 1);

	/* Sizes out of range are ignored. */
	size_t before = jb.count;
	pc_jitter_push(&jb, out.data, 0, false, 0);
	pc_jitter_push(&jb, out.data, PC_IPC_SINK_FRAME_MAX + 1, false, 0);
	CHECK_EQ(jb.count, before);
}

static void test_sample_clock(void)
{
	struct pc_sample_clock c;
	bool initial;
	int64_t start;
	const int64_t frame = PC_AUDIO_FRAME_NS;
	const int64_t t = INT64_C(1700000000) * SEC;

	/* Starts on the next 20 ms boundary; frames are 20 ms apart. */
	pc_sample_clock_start(&c, frame, t + 5 * MS);
	CHECK_EQ(pc_sample_clock_nominal(&c), t + 20 * MS);
	pc_sample_clock_start(&c, frame, t);
	CHECK_EQ(pc_sample_clock_nominal(&c), t);
	CHECK_EQ(pc_sample_clock_measured(&c, t + 1 * MS, &initial, &start), 0);
	CHECK_EQ(start, t);
	CHECK_EQ(pc_sample_clock_nominal(&c), t + frame);

	/* Late readings that come and go are not drift. */
	CHECK_EQ(pc_sample_clock_measured(&c, t + frame + 9 * MS, &initial, &start), 0);
	CHECK_EQ(pc_sample_clock_measured(&c, t + 2 * frame, &initial, &start), 0);
	for (int i = 3; i < 3 + PC_AUDIO_DRIFT_FRAMES - 1; i++)
		CHECK_EQ(pc_sample_clock_measured(&c, t + i * frame + (i == 5 ? 30 : 7) * MS, &initial,
						  &start),
			 0);
	CHECK_EQ(pc_sample_clock_measured(&c, t + 2 * frame - 6 * MS + frame * PC_AUDIO_DRIFT_FRAMES,
					  &initial, &start),
		 0); /* changed sides: the run starts again */
	uint64_t k = c.k;
	CHECK_EQ(start, t + (int64_t)(k - 1) * frame);

	/* Off the same way PC_AUDIO_DRIFT_FRAMES times in a row: shifted by the smallest. */
	int64_t shift = 0;
	for (int i = 0; i < PC_AUDIO_DRIFT_FRAMES; i++)
		shift = pc_sample_clock_measured(&c, t + (int64_t)(k + i) * frame + (i == 4 ? 6 : 9) * MS,
						 &initial, &start);
	CHECK_EQ(shift, 6 * MS);
	CHECK(!initial);
	CHECK_EQ(start, t + (int64_t)(k + PC_AUDIO_DRIFT_FRAMES - 1) * frame + 6 * MS);
	CHECK_EQ(pc_sample_clock_nominal(&c), t + (int64_t)(k + PC_AUDIO_DRIFT_FRAMES) * frame + 6 * MS);

	/* The first reading after a start is adopted at once (where a device really starts). */
	pc_sample_clock_start(&c, frame, t);
	CHECK_EQ(pc_sample_clock_measured(&c, t - 30 * MS, &initial, &start), -30 * MS);
	CHECK(initial);
	CHECK_EQ(start, t - 30 * MS);

	/* Far behind: skip to the frame now is in, on the grid. */
	pc_sample_clock_start(&c, frame, t);
	CHECK_EQ(pc_sample_clock_catch_up(&c, t + 100 * MS), 0);
	CHECK_EQ(pc_sample_clock_catch_up(&c, t + 1234 * MS), 61);
	CHECK_EQ(pc_sample_clock_nominal(&c), t + 1220 * MS);
}

static double region_mean(const struct pc_frame *f, struct pc_testpattern_rect r)
{
	double sum = 0;
	for (int y = r.y; y < r.y + r.h; y++)
		for (int x = r.x; x < r.x + r.w; x++)
			sum += f->plane[0][(size_t)y * f->stride[0] + x];
	return sum / ((double)r.w * r.h);
}

static void test_flash(void)
{
	void *state = NULL;
	char err[256];
	struct pc_source_config config = {640, 360, 30, 1, NULL};
	CHECK_EQ(pc_testpattern_source.init(&state, &config, err, sizeof(err)), 0);
	if (!state)
		return;
	struct pc_testpattern_rect r;
	pc_testpattern_flash_rect(640, 360, &r);
	CHECK(r.y >= 3 * pc_timestrip_block_size(640)); /* below the strip and the clock text */
	CHECK((double)r.w * r.h > 0.6 * 640 * 360);     /* most of the picture */
	CHECK_EQ(r.y + r.h, 360);

	/* 30 fps across two whole seconds: the first picture at or after each flashes. */
	const int64_t base = INT64_C(1700000000) * SEC - 500 * MS;
	int flashes = 0;
	for (uint32_t seq = 0; seq < 60; seq++) {
		int64_t t = base + (int64_t)seq * SEC / 30;
		const struct pc_frame *f = pc_testpattern_source.next_frame(state, seq, t);
		bool expect = seq > 0 && pc_floor_div(t, SEC) != pc_floor_div(t - SEC / 30, SEC);
		double mean = region_mean(f, r);
		if (expect) {
			flashes++;
			CHECK(mean == PC_TESTPATTERN_FLASH_LUMA);
			CHECK(pc_floor_mod(t, SEC) < SEC / 30);
		} else {
			CHECK(mean < 160);
		}
	}
	CHECK_EQ(flashes, 2);
	CHECK(pc_testpattern_flashes(-1, 0));
	CHECK(!pc_testpattern_flashes(1, 999999999));
	pc_testpattern_source.destroy(state);
}

void pc_test_audio(void)
{
	RUN_TEST(test_tone_onsets);
	RUN_TEST(test_opus_round_trip);
	RUN_TEST(test_jitter_buffer);
	RUN_TEST(test_sample_clock);
	RUN_TEST(test_flash);
}
