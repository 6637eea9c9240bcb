/* Audio sources: something that hands out interleaved signed 16-bit PCM, one frame at a
 * time.
 *
 * The caller keeps time: it asks for the frame whose first sample is due at nominal_ns
 * (CLOCK_REALTIME) once the whole frame should exist, so a source that does not pace
 * itself (a synthetic one, or ALSA's null device) still runs in real time. */
#ifndef PC_AUDIO_SOURCE_H
#define PC_AUDIO_SOURCE_H

#include <stddef.h>
#include <stdint.h>

struct pc_audio_config {
	const char *device; /* the source's device name (an ALSA PCM), or NULL */
	int channels;       /* 1 or 2 */
	int rate;           /* samples per second per channel */
	int frame_samples;  /* samples per channel in one frame */
};

struct pc_audio_source_ops {
	const char *name;
	/* Returns 0; a negative errno otherwise, err then holding a one-line reason. */
	int (*init)(void **state, const struct pc_audio_config *config, char *err, size_t err_size);
	/* Fills frame_samples * channels samples. *measured_ns is when their first sample was
	 * taken as far as the source knows (a synthetic source: nominal_ns). 0, or a negative
	 * errno when the device is lost (err says why; the caller reopens it). */
	int (*read)(void *state, int64_t nominal_ns, int16_t *pcm, int64_t *measured_ns, char *err,
		    size_t err_size);
	void (*destroy)(void *state);
};

extern const struct pc_audio_source_ops pc_testtone_source;
extern const struct pc_audio_source_ops pc_alsa_source;

#endif
