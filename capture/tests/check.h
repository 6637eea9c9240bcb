/* A tiny test harness: CHECK()s count towards the running test, RUN_TEST() reports it. */
#ifndef PC_CHECK_H
#define PC_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct pc_check_totals {
	int tests_passed;
	int tests_failed;
	int current_failures; /* failed CHECKs in the running test */
};

extern struct pc_check_totals pc_check;
extern const char *pc_check_producer; /* path of the built binary, for end-to-end tests */

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			pc_check.current_failures++;                                     \
			fprintf(stderr, "    %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, \
				#cond);                                                  \
		}                                                                        \
	} while (0)

#define CHECK_EQ(actual, expected)                                                          \
	do {                                                                                \
		long long pc_a_ = (long long)(actual), pc_e_ = (long long)(expected);       \
		if (pc_a_ != pc_e_) {                                                       \
			pc_check.current_failures++;                                        \
			fprintf(stderr, "    %s:%d: %s is %lld, expected %s = %lld\n", __FILE__, \
				__LINE__, #actual, pc_a_, #expected, pc_e_);                \
		}                                                                           \
	} while (0)

#define RUN_TEST(fn)                                                    \
	do {                                                            \
		pc_check.current_failures = 0;                          \
		fn();                                                   \
		if (pc_check.current_failures == 0) {                   \
			pc_check.tests_passed++;                        \
			fprintf(stderr, "ok   %s\n", #fn);              \
		} else {                                                \
			pc_check.tests_failed++;                        \
			fprintf(stderr, "FAIL %s\n", #fn);              \
		}                                                       \
	} while (0)

/* Shared H.264 helper (test_encoder.c): the nal_unit_type of each NAL unit of an Annex-B
 * access unit, in order, with offsets of their first byte after the start code. Returns the
 * count (at most max). */
int pc_test_nal_units(const uint8_t *au, size_t size, int *types, size_t *offsets, int max);

/* Shared audio helpers (test_audio.c): frequency from rising zero crossings of samples
 * [from, to), and the RMS level. */
double pc_test_zero_crossing_hz(const int16_t *pcm, size_t from, size_t to, int rate);
double pc_test_rms(const int16_t *pcm, size_t from, size_t to);

/* Suites, one per test file. */
void pc_test_ipc(void);
void pc_test_level(void);
void pc_test_encoder(void);
void pc_test_timestrip(void);
void pc_test_scale(void);
void pc_test_audio(void);
void pc_test_e2e(void);

#endif
