/* Audio from an ALSA capture PCM ("default", "hw:0", a name from an asoundrc...).
 *
 * The PCM is non-blocking: a read takes what is there and waits (with a bound) for the rest,
 * so a vanished device is an error, never a hang. The first sample's time is "now minus what
 * is still buffered minus the frame": on real hardware that follows the device's clock; on
 * alsa's null device (nothing buffered, reads return at once) it is the caller's clock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "../alsa.h"
#include "../clock.h"
#include "../log.h"
#include "audio.h"

/* 10 ms periods in a 100 ms buffer: late reads (a busy machine) lose nothing. */
#define ALSA_IN_PERIOD_US 10000u
#define ALSA_IN_BUFFER_US 100000u
/* A device that delivers nothing for this long is treated as gone. */
#define ALSA_IN_STALL_MS 500

struct alsa_in {
	snd_pcm_t *pcm;
	struct pc_audio_config config;
	const char *device;
};

static int alsa_in_init(void **state, const struct pc_audio_config *config, char *err,
			size_t err_size)
{
	struct alsa_in *in = calloc(1, sizeof(*in));
	if (!in) {
		snprintf(err, err_size, "audio-in: out of memory");
		return -ENOMEM;
	}
	in->config = *config;
	in->device = config->device;
	int ret = pc_alsa_open(&in->pcm, config->device, SND_PCM_STREAM_CAPTURE, config->channels,
			       config->rate, ALSA_IN_PERIOD_US, ALSA_IN_BUFFER_US, err, err_size);
	if (ret == 0 && (ret = snd_pcm_start(in->pcm)) < 0)
		pc_alsa_error(err, err_size, "cannot start ALSA capture device", config->device, ret);
	if (ret < 0) {
		if (in->pcm)
			snd_pcm_close(in->pcm);
		free(in);
		return ret;
	}
	*state = in;
	return 0;
}

static int alsa_in_read(void *state, int64_t nominal_ns, int16_t *pcm, int64_t *measured_ns,
			char *err, size_t err_size)
{
	(void)nominal_ns;
	struct alsa_in *in = state;
	const int frame = in->config.frame_samples, channels = in->config.channels;
	int got = 0, waited_ms = 0;

	while (got < frame) {
		snd_pcm_sframes_t n = snd_pcm_readi(in->pcm, pcm + (size_t)got * (size_t)channels,
						    (snd_pcm_uframes_t)(frame - got));
		if (n > 0) {
			got += (int)n;
			continue;
		}
		if (n == 0 || n == -EAGAIN) {
			if (waited_ms >= ALSA_IN_STALL_MS) {
				pc_alsa_error(err, err_size, "no audio for 500 ms from ALSA capture device",
					      in->device, -ETIMEDOUT);
				return -ETIMEDOUT;
			}
			int r = snd_pcm_wait(in->pcm, 50);
			waited_ms += 50;
			if (r < 0 && r != -EPIPE && r != -ESTRPIPE) {
				pc_alsa_error(err, err_size, "ALSA capture device", in->device, r);
				return r;
			}
			continue;
		}
		if (n == -EPIPE || n == -ESTRPIPE) {
			/* Overrun (we were too slow) or suspend: samples are lost, the caller's
			 * clock notices the jump and re-anchors. */
			pc_log("audio-in: overrun on '%s': samples lost", in->device);
			int r = snd_pcm_recover(in->pcm, (int)n, 1);
			if (r == 0)
				r = snd_pcm_start(in->pcm);
			if (r < 0) {
				pc_alsa_error(err, err_size, "cannot recover ALSA capture device",
					      in->device, r);
				return r;
			}
			continue;
		}
		pc_alsa_error(err, err_size, "read from ALSA capture device", in->device, (int)n);
		return (int)n;
	}

	int64_t now = pc_clock_ns(CLOCK_REALTIME);
	snd_pcm_sframes_t buffered = 0;
	if (snd_pcm_delay(in->pcm, &buffered) < 0 || buffered < 0)
		buffered = 0;
	*measured_ns = now - ((int64_t)buffered + frame) * PC_NS_PER_SEC / in->config.rate;
	return 0;
}

static void alsa_in_destroy(void *state)
{
	struct alsa_in *in = state;
	if (!in)
		return;
	snd_pcm_close(in->pcm);
	free(in);
}

const struct pc_audio_source_ops pc_alsa_source = {
	.name = "alsa",
	.init = alsa_in_init,
	.read = alsa_in_read,
	.destroy = alsa_in_destroy,
};
