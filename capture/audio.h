/* The audio threads: audio in (source -> Opus -> FRAME on the audio track, every 20 ms on the
 * wall clock) and audio out (SINK_FRAME packets -> jitter buffer -> Opus -> ALSA, paced on
 * the wall clock). Each runs on its own thread so neither waits behind an x264 encode, and
 * video never waits behind them. */
#ifndef PC_AUDIO_H
#define PC_AUDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sources/audio.h"

#define PC_AUDIO_FRAME_NS (20 * INT64_C(1000000))
/* The sample clock is re-anchored to what the device reports only when they disagree by
 * more than this, the same way, for PC_AUDIO_DRIFT_FRAMES frames in a row, and then by the
 * smallest of those differences: late wake-ups on a busy machine (which is all a device
 * that does not pace, like alsa's null, can show) come and go, a device's drift stays. */
#define PC_AUDIO_DRIFT_NS (5 * INT64_C(1000000))
#define PC_AUDIO_DRIFT_FRAMES 10
/* Further behind than this (a stall, a clock step), the clock skips ahead instead of
 * catching up with a burst of stale frames. */
#define PC_AUDIO_BEHIND_NS (200 * INT64_C(1000000))
/* Reopening a lost device: 100 ms doubling to 5 s. */
#define PC_AUDIO_RETRY_MIN_MS 100
#define PC_AUDIO_RETRY_MAX_MS 5000

/* How the audio threads reach the device connection (owned by the main loop). */
struct pc_audio_link {
	void *ctx;
	/* True while a connection has its HELLOs: frames are worth encoding. */
	bool (*connected)(void *ctx);
	/* Sends one FRAME; failures are handled (logged, connection dropped) by the callee. */
	void (*send_frame)(void *ctx, uint8_t track, uint32_t seq, int64_t capture_ns,
			   int64_t encoded_ns, const uint8_t *data, size_t size);
};

/* ---- the sample clock (exposed for the tests) ---- */

/* Frame k of a run starts at anchor_ns + k * frame_ns; re-anchoring moves anchor_ns. */
struct pc_sample_clock {
	int64_t anchor_ns;
	int64_t frame_ns;
	uint64_t k;
	int off_frames; /* consecutive frames with |measured - nominal| > PC_AUDIO_DRIFT_NS */
	int64_t off_min; /* of those, the difference nearest 0 */
	bool measured_once;
};

/* Starts at the first frame_ns boundary of CLOCK_REALTIME at or after now_ns. */
void pc_sample_clock_start(struct pc_sample_clock *clock, int64_t frame_ns, int64_t now_ns);
static inline int64_t pc_sample_clock_nominal(const struct pc_sample_clock *clock)
{
	return clock->anchor_ns + (int64_t)clock->k * clock->frame_ns;
}
/* Before waiting for frame k: when now_ns is over PC_AUDIO_BEHIND_NS past its end, skips to
 * the frame now_ns is in (staying on the frame grid). Returns the frames skipped. */
uint64_t pc_sample_clock_catch_up(struct pc_sample_clock *clock, int64_t now_ns);
/* After reading frame k: compares the source's measured start with the nominal one. The
 * first measurement after a start is adopted silently when off (*initial); later ones
 * re-anchor as above. Sets *frame_start_ns to the frame's timestamp, returns the shift
 * applied (0 = none) and advances k. */
int64_t pc_sample_clock_measured(struct pc_sample_clock *clock, int64_t measured_ns,
				 bool *initial, int64_t *frame_start_ns);

/* ---- audio in ---- */

struct pc_audio_in_config {
	const struct pc_audio_source_ops *ops;
	const char *device; /* the ALSA PCM, or NULL for the test tone */
	const char *label;  /* for the log: "testtone", or the PCM name */
	int channels;
	uint32_t bitrate;
	uint8_t track;
};

struct pc_audio_in;

/* Opens the source and the encoder now (so a bad device is an error at start-up), then
 * starts the thread. 0, or a negative errno with err set. */
int pc_audio_in_start(struct pc_audio_in **ai, const struct pc_audio_in_config *config,
		      const struct pc_audio_link *link, char *err, size_t err_size);
/* Asks the thread for a new bitrate (clamped to Opus's range); returns what will apply. */
uint32_t pc_audio_in_set_bitrate(struct pc_audio_in *ai, uint32_t bitrate);
uint32_t pc_audio_in_bitrate(const struct pc_audio_in *ai);
void pc_audio_in_stop(struct pc_audio_in *ai);

/* ---- audio out ---- */

struct pc_audio_out;

/* Opens the PCM now, then starts the thread (which logs "audio-out: started at <ns> on
 * <pcm>": output sample n plays at <ns> + n / 48000 s). */
int pc_audio_out_start(struct pc_audio_out **ao, const char *pcm_name, char *err,
		       size_t err_size);
/* Hands one SINK_FRAME packet to the thread (never blocks on the device). */
void pc_audio_out_push(struct pc_audio_out *ao, const uint8_t *packet, size_t size, bool resume,
		       int64_t arrival_ns);
void pc_audio_out_stop(struct pc_audio_out *ao);

#endif
