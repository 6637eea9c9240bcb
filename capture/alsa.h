/* Opening ALSA PCMs the way the producer needs them, with alsa-lib's own reason for a
 * failure in the one-line error instead of alsa-lib's multi-line stderr chatter. */
#ifndef PC_ALSA_H
#define PC_ALSA_H

#include <alsa/asoundlib.h>
#include <stddef.h>

/* Opens name non-blocking as S16_LE interleaved at rate with channels, period_us per period
 * and about buffer_us of buffer. Returns 0, or a negative errno with err set to
 * "<what> '<name>': <alsa's message> (<strerror>)". */
int pc_alsa_open(snd_pcm_t **pcm, const char *name, snd_pcm_stream_t stream, int channels,
		 int rate, unsigned period_us, unsigned buffer_us, char *err, size_t err_size);

/* Formats "<what> '<name>': <alsa's last message, if any> (<snd_strerror(code)>)" and forgets
 * alsa's message. */
void pc_alsa_error(char *err, size_t err_size, const char *what, const char *name, int code);

#endif
