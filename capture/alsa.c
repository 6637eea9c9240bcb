/* See alsa.h. */
#include "alsa.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* alsa-lib reports details ("Unknown PCM mic") through its error handler, on stderr by
 * default. Each thread keeps its last one for pc_alsa_error(). */
static _Thread_local char last_message[200];
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;

static void keep_message(const char *file, int line, const char *function, int err,
			 const char *fmt, ...)
{
	(void)file;
	(void)line;
	(void)function;
	(void)err;
	va_list args;
	va_start(args, fmt);
	vsnprintf(last_message, sizeof(last_message), fmt, args);
	va_end(args);
}

static void install_handler(void)
{
	snd_lib_error_set_handler(keep_message);
}

void pc_alsa_error(char *err, size_t err_size, const char *what, const char *name, int code)
{
	if (last_message[0])
		snprintf(err, err_size, "%s '%s': %s (%s)", what, name, last_message,
			 snd_strerror(code));
	else
		snprintf(err, err_size, "%s '%s': %s", what, name, snd_strerror(code));
	last_message[0] = '\0';
}

int pc_alsa_open(snd_pcm_t **pcm_out, const char *name, snd_pcm_stream_t stream, int channels,
		 int rate, unsigned period_us, unsigned buffer_us, char *err, size_t err_size)
{
	const char *what = stream == SND_PCM_STREAM_CAPTURE ? "cannot open ALSA capture device"
							    : "cannot open ALSA playback device";
	char what_buf[96];
	snd_pcm_t *pcm = NULL;
	snd_pcm_hw_params_t *hw;
	snd_pcm_hw_params_alloca(&hw);
	int dir = 0;

	pthread_once(&handler_once, install_handler);
	last_message[0] = '\0';
	int ret = snd_pcm_open(&pcm, name, stream, SND_PCM_NONBLOCK);
	if (ret < 0)
		goto fail;
	unsigned urate = (unsigned)rate;
	if ((ret = snd_pcm_hw_params_any(pcm, hw)) < 0 ||
	    (ret = snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED)) < 0 ||
	    (ret = snd_pcm_hw_params_set_format(pcm, hw, SND_PCM_FORMAT_S16_LE)) < 0 ||
	    (ret = snd_pcm_hw_params_set_channels(pcm, hw, (unsigned)channels)) < 0 ||
	    (ret = snd_pcm_hw_params_set_rate_resample(pcm, hw, 1)) < 0 ||
	    (ret = snd_pcm_hw_params_set_rate(pcm, hw, urate, 0)) < 0 ||
	    (ret = snd_pcm_hw_params_set_period_time_near(pcm, hw, &period_us, &dir)) < 0 ||
	    (ret = snd_pcm_hw_params_set_buffer_time_near(pcm, hw, &buffer_us, &dir)) < 0 ||
	    (ret = snd_pcm_hw_params(pcm, hw)) < 0) {
		snprintf(what_buf, sizeof(what_buf), "cannot set S16_LE, %d channel%s, %d Hz on ALSA %s device",
			 channels, channels == 1 ? "" : "s", rate,
			 stream == SND_PCM_STREAM_CAPTURE ? "capture" : "playback");
		what = what_buf;
		goto fail;
	}
	*pcm_out = pcm;
	return 0;

fail:
	pc_alsa_error(err, err_size, what, name, ret);
	if (pcm)
		snd_pcm_close(pcm);
	return ret;
}
