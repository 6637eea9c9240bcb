/* The test tone. See testtone.h. */
#include "testtone.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../clock.h"

bool pc_testtone_is_on(int64_t t_ns)
{
	return pc_floor_mod(t_ns, PC_NS_PER_SEC) < PC_TESTTONE_BEEP_NS;
}

void pc_testtone_fill(int16_t *pcm, int channels, int rate, int samples, int64_t first_ns)
{
	/* Exact arithmetic in units of 1/rate ns: sample i sits at x_i / rate ns past its whole
	 * second, x_i = (first mod 1 s) * rate + i * 1 s, taken mod 1 s * rate. At 48 kHz the
	 * largest value is 4.8e13: no overflow. */
	const int64_t second_units = PC_NS_PER_SEC * rate;
	const int64_t beep_units = PC_TESTTONE_BEEP_NS * rate;
	int64_t x = pc_floor_mod(first_ns, PC_NS_PER_SEC) * rate;
	for (int i = 0; i < samples; i++, x += PC_NS_PER_SEC) {
		if (x >= second_units)
			x -= second_units;
		int16_t v = 0;
		if (x < beep_units) {
			double seconds = (double)x / (double)second_units;
			v = (int16_t)lrint(PC_TESTTONE_AMPLITUDE * sin(2 * M_PI * PC_TESTTONE_HZ * seconds));
		}
		for (int c = 0; c < channels; c++)
			pcm[i * channels + c] = v;
	}
}

struct testtone {
	struct pc_audio_config config;
};

static int testtone_init(void **state, const struct pc_audio_config *config, char *err,
			 size_t err_size)
{
	struct testtone *tt = calloc(1, sizeof(*tt));
	if (!tt) {
		snprintf(err, err_size, "testtone: out of memory");
		return -ENOMEM;
	}
	tt->config = *config;
	*state = tt;
	return 0;
}

static int testtone_read(void *state, int64_t nominal_ns, int16_t *pcm, int64_t *measured_ns,
			 char *err, size_t err_size)
{
	(void)err;
	(void)err_size;
	struct testtone *tt = state;
	pc_testtone_fill(pcm, tt->config.channels, tt->config.rate, tt->config.frame_samples,
			 nominal_ns);
	*measured_ns = nominal_ns; /* synthetic: exactly on the caller's clock */
	return 0;
}

static void testtone_destroy(void *state)
{
	free(state);
}

const struct pc_audio_source_ops pc_testtone_source = {
	.name = "testtone",
	.init = testtone_init,
	.read = testtone_read,
	.destroy = testtone_destroy,
};
