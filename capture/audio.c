/* The audio threads. See audio.h. */
#include "audio.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alsa.h"
#include "clock.h"
#include "encoders/opus.h"
#include "jitter.h"
#include "log.h"

/* A wait longer than this means CLOCK_REALTIME stepped back: the caller restarts its clock
 * rather than sleep for the size of the step. */
#define CLOCK_STEP_NS PC_NS_PER_SEC
#define SLEEP_SLICE_NS (100 * PC_NS_PER_MS)
/* ns of n samples at 48 kHz, exactly: 1e9 / 48000 = 62500 / 3 (no overflow for 97 years). */
#define SAMPLES_TO_NS(n) ((int64_t)(n) * 62500 / 3)

/* ---- shared helpers ---- */

enum wait_result { WAIT_DUE, WAIT_STOPPED, WAIT_CLOCK_STEPPED };

/* Sleeps until CLOCK_REALTIME reaches due_ns, in slices so a stop request is noticed. */
static enum wait_result sleep_until_realtime(int64_t due_ns, atomic_bool *stop)
{
	for (;;) {
		if (atomic_load(stop))
			return WAIT_STOPPED;
		int64_t left = due_ns - pc_clock_ns(CLOCK_REALTIME);
		if (left <= 0)
			return WAIT_DUE;
		if (left > CLOCK_STEP_NS)
			return WAIT_CLOCK_STEPPED;
		struct timespec ts = pc_ns_to_timespec(left < SLEEP_SLICE_NS ? left : SLEEP_SLICE_NS);
		nanosleep(&ts, NULL);
	}
}

/* Sleeps ms; false when stopped meanwhile. */
static bool sleep_ms(uint32_t ms, atomic_bool *stop)
{
	return sleep_until_realtime(pc_clock_ns(CLOCK_REALTIME) + (int64_t)ms * PC_NS_PER_MS, stop) ==
	       WAIT_DUE;
}

static uint32_t next_retry(uint32_t ms)
{
	return ms * 2 > PC_AUDIO_RETRY_MAX_MS ? PC_AUDIO_RETRY_MAX_MS : ms * 2;
}

/* ---- the sample clock ---- */

void pc_sample_clock_start(struct pc_sample_clock *clock, int64_t frame_ns, int64_t now_ns)
{
	clock->frame_ns = frame_ns;
	clock->anchor_ns = (pc_floor_div(now_ns - 1, frame_ns) + 1) * frame_ns;
	clock->k = 0;
	clock->off_frames = 0;
	clock->measured_once = false;
}

uint64_t pc_sample_clock_catch_up(struct pc_sample_clock *clock, int64_t now_ns)
{
	int64_t nominal = pc_sample_clock_nominal(clock);
	if (now_ns - (nominal + clock->frame_ns) <= PC_AUDIO_BEHIND_NS)
		return 0;
	uint64_t skip = (uint64_t)((now_ns - nominal) / clock->frame_ns);
	clock->k += skip;
	return skip;
}

int64_t pc_sample_clock_measured(struct pc_sample_clock *clock, int64_t measured_ns,
				 bool *initial, int64_t *frame_start_ns)
{
	int64_t nominal = pc_sample_clock_nominal(clock);
	int64_t off = measured_ns - nominal;
	bool is_off = off > PC_AUDIO_DRIFT_NS || off < -PC_AUDIO_DRIFT_NS;
	int64_t shift = 0;

	*initial = false;
	if (!clock->measured_once) {
		/* Where a device really starts is only known once it delivered. */
		clock->measured_once = true;
		clock->off_frames = 0;
		if (is_off) {
			shift = off;
			*initial = true;
		}
	} else if (is_off) {
		if (clock->off_frames == 0 || (off > 0) != (clock->off_min > 0)) {
			clock->off_frames = 0; /* a new run, or it changed sides */
			clock->off_min = off;
		} else if (off > 0 ? off < clock->off_min : off > clock->off_min) {
			clock->off_min = off;
		}
		if (++clock->off_frames >= PC_AUDIO_DRIFT_FRAMES) {
			shift = clock->off_min;
			clock->off_frames = 0;
		}
	} else {
		clock->off_frames = 0;
	}
	clock->anchor_ns += shift;
	*frame_start_ns = nominal + shift;
	clock->k++;
	return shift;
}

/* ---- audio in ---- */

struct pc_audio_in {
	struct pc_audio_in_config config;
	struct pc_audio_config source_config;
	struct pc_audio_link link;
	void *source; /* NULL while the device is lost */
	struct pc_opus_encoder *enc;
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;
	_Atomic uint32_t bitrate_wanted;
	uint32_t bitrate_applied;
	uint32_t seq;
	int16_t pcm[PC_OPUS_FRAME_SAMPLES * 2];
	uint8_t packet[PC_OPUS_MAX_PACKET];
};

/* Encodes and sends one frame when a device listens. */
static void audio_in_send(struct pc_audio_in *ai, int64_t capture_ns)
{
	if (!ai->link.connected(ai->link.ctx))
		return; /* nobody listens: nothing is encoded, as for video */
	uint32_t wanted = atomic_load(&ai->bitrate_wanted);
	if (wanted != ai->bitrate_applied &&
	    pc_opus_encoder_set_bitrate(ai->enc, wanted, &ai->bitrate_applied) < 0)
		ai->bitrate_applied = wanted; /* refused: do not retry every frame */
	int n = pc_opus_encode(ai->enc, ai->pcm, ai->packet, sizeof(ai->packet));
	if (n < 0) {
		pc_log("audio-in: Opus could not encode frame %" PRIu32, ai->seq);
		return;
	}
	int64_t encoded_ns = pc_clock_ns(CLOCK_REALTIME);
	/* Stamped where the decoded frame starts: its first input sample less the look-ahead. */
	ai->link.send_frame(ai->link.ctx, ai->config.track, ai->seq++,
			    capture_ns - pc_opus_encoder_lookahead_ns(ai->enc), encoded_ns, ai->packet,
			    (size_t)n);
}

/* Reopens a lost device with backoff; true once it is back. */
static bool audio_in_reopen(struct pc_audio_in *ai, uint32_t *retry_ms, char *last_err,
			    size_t last_err_size)
{
	char err[256] = "";
	if (!sleep_ms(*retry_ms, &ai->stop))
		return false;
	*retry_ms = next_retry(*retry_ms);
	if (ai->config.ops->init(&ai->source, &ai->source_config, err, sizeof(err)) < 0) {
		ai->source = NULL;
		if (strcmp(err, last_err) != 0) /* each new reason once, not every retry */
			pc_log("audio-in: %s; retrying", err);
		snprintf(last_err, last_err_size, "%s", err);
		return false;
	}
	pc_log("audio-in: %s is back", ai->config.label);
	*retry_ms = PC_AUDIO_RETRY_MIN_MS;
	last_err[0] = '\0';
	return true;
}

/* Audio threads do little work, often, on a deadline: a 20 ms frame that waits behind an x264
 * encode on a busy core arrives late, and the viewer's jitter buffer grows for good. Real-time
 * priority (where permitted: root or CAP_SYS_NICE, as on the board) keeps them ahead of the
 * encoder; without it they run as before. (On the shared 2-core test machine, where Chromium
 * decodes on the same cores, bench avsync showed no change from it: the jitter there is not
 * only the producer's.) */
#define PC_AUDIO_RT_PRIORITY 10

static void raise_priority(const char *who)
{
	struct sched_param param = {.sched_priority = PC_AUDIO_RT_PRIORITY};
	int ret = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param);
	if (ret)
		pc_log("%s: real-time priority not permitted (%s); running at normal priority", who,
		       strerror(ret));
}

static void *audio_in_main(void *arg)
{
	struct pc_audio_in *ai = arg;
	const struct pc_audio_source_ops *ops = ai->config.ops;
	struct pc_sample_clock clock;
	raise_priority("audio-in");
	uint32_t retry_ms = PC_AUDIO_RETRY_MIN_MS;
	char err[256], last_err[256] = "";

	pc_sample_clock_start(&clock, PC_AUDIO_FRAME_NS, pc_clock_ns(CLOCK_REALTIME));
	while (!atomic_load(&ai->stop)) {
		if (!ai->source) {
			if (audio_in_reopen(ai, &retry_ms, last_err, sizeof(last_err)))
				pc_sample_clock_start(&clock, PC_AUDIO_FRAME_NS, pc_clock_ns(CLOCK_REALTIME));
			continue;
		}

		uint64_t skipped = pc_sample_clock_catch_up(&clock, pc_clock_ns(CLOCK_REALTIME));
		if (skipped)
			pc_log("audio-in: fell behind the clock: skipped %" PRIu64 " frames (%" PRIu64 " ms)",
			       skipped, skipped * (uint64_t)(PC_AUDIO_FRAME_NS / PC_NS_PER_MS));
		int64_t nominal = pc_sample_clock_nominal(&clock);
		enum wait_result wait = sleep_until_realtime(nominal + PC_AUDIO_FRAME_NS, &ai->stop);
		if (wait == WAIT_STOPPED)
			break;
		if (wait == WAIT_CLOCK_STEPPED) {
			pc_log("audio-in: the wall clock stepped back; restarting the sample clock");
			pc_sample_clock_start(&clock, PC_AUDIO_FRAME_NS, pc_clock_ns(CLOCK_REALTIME));
			continue;
		}

		int64_t measured = nominal;
		if (ops->read(ai->source, nominal, ai->pcm, &measured, err, sizeof(err)) < 0) {
			/* An unplugged microphone must not stop the video: reopen in the background. */
			pc_log("audio-in: %s; reopening with backoff", err);
			ops->destroy(ai->source);
			ai->source = NULL;
			continue;
		}
		bool initial;
		int64_t capture_ns;
		int64_t shift = pc_sample_clock_measured(&clock, measured, &initial, &capture_ns);
		if (shift && !initial)
			pc_log("audio-in: re-anchored the sample clock by %+.1f ms to %s's",
			       (double)shift / 1e6, ai->config.label);
		audio_in_send(ai, capture_ns);
	}
	return NULL;
}

int pc_audio_in_start(struct pc_audio_in **out, const struct pc_audio_in_config *config,
		      const struct pc_audio_link *link, char *err, size_t err_size)
{
	struct pc_audio_in *ai = calloc(1, sizeof(*ai));
	if (!ai) {
		snprintf(err, err_size, "audio-in: out of memory");
		return -ENOMEM;
	}
	ai->config = *config;
	ai->link = *link;
	ai->source_config = (struct pc_audio_config){
		.device = config->device,
		.channels = config->channels,
		.rate = PC_OPUS_RATE,
		.frame_samples = PC_OPUS_FRAME_SAMPLES,
	};
	atomic_init(&ai->stop, false);
	atomic_init(&ai->bitrate_wanted, config->bitrate);
	ai->bitrate_applied = config->bitrate;

	int ret = pc_opus_encoder_init(&ai->enc, config->channels, config->bitrate, err, err_size);
	if (ret == 0)
		ret = config->ops->init(&ai->source, &ai->source_config, err, err_size);
	if (ret == 0) {
		ret = -pthread_create(&ai->thread, NULL, audio_in_main, ai);
		if (ret < 0)
			snprintf(err, err_size, "audio-in: cannot start a thread: %s", strerror(-ret));
		ai->thread_started = ret == 0;
	}
	if (ret < 0) {
		pc_audio_in_stop(ai);
		return ret;
	}
	*out = ai;
	return 0;
}

uint32_t pc_audio_in_set_bitrate(struct pc_audio_in *ai, uint32_t bitrate)
{
	uint32_t v = bitrate < PC_OPUS_MIN_BITRATE	 ? PC_OPUS_MIN_BITRATE
		     : bitrate > PC_OPUS_MAX_BITRATE ? PC_OPUS_MAX_BITRATE
						     : bitrate;
	atomic_store(&ai->bitrate_wanted, v);
	return v;
}

uint32_t pc_audio_in_bitrate(const struct pc_audio_in *ai)
{
	return atomic_load(&((struct pc_audio_in *)ai)->bitrate_wanted);
}

void pc_audio_in_stop(struct pc_audio_in *ai)
{
	if (!ai)
		return;
	atomic_store(&ai->stop, true);
	if (ai->thread_started)
		pthread_join(ai->thread, NULL);
	if (ai->source)
		ai->config.ops->destroy(ai->source);
	pc_opus_encoder_destroy(ai->enc);
	free(ai);
}

/* ---- audio out ---- */

/* The device is kept about a frame ahead of the clock (on real hardware that is what it
 * plays meanwhile), in 10 ms periods of a 100 ms buffer. */
#define OUT_LEAD_SAMPLES PC_OPUS_FRAME_SAMPLES
#define OUT_PERIOD_US 10000u
#define OUT_BUFFER_US 100000u
/* The longest Opus packet decodes to 120 ms. */
#define OUT_MAX_SAMPLES (6 * PC_OPUS_FRAME_SAMPLES)
/* Further behind than this (a stall), the output is re-anchored instead of caught up. */
#define OUT_BEHIND_NS (500 * PC_NS_PER_MS)
#define OUT_DROP_REPORT_NS (5 * PC_NS_PER_SEC)

struct pc_audio_out {
	char *name;
	snd_pcm_t *pcm; /* NULL while the device is lost */
	int channels;   /* what the device took: 1, or 2 (the mono sink copied to both) */
	struct pc_opus_decoder *dec;
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;

	pthread_mutex_t lock; /* guards jb */
	struct pc_jitter jb;

	uint64_t dropped_reported;
	int64_t dropped_reported_at;
	struct pc_jitter_packet packet;
	int16_t mono[OUT_MAX_SAMPLES];
	int16_t out[OUT_MAX_SAMPLES * 2];
};

static int audio_out_open(struct pc_audio_out *ao, char *err, size_t err_size)
{
	/* Mono first; many sound cards only take stereo. */
	int ret = pc_alsa_open(&ao->pcm, ao->name, SND_PCM_STREAM_PLAYBACK, 1, PC_OPUS_RATE,
			       OUT_PERIOD_US, OUT_BUFFER_US, err, err_size);
	ao->channels = 1;
	if (ret < 0 && ret != -ENOENT && ret != -ENODEV) {
		char err2[256];
		if (pc_alsa_open(&ao->pcm, ao->name, SND_PCM_STREAM_PLAYBACK, 2, PC_OPUS_RATE,
				 OUT_PERIOD_US, OUT_BUFFER_US, err2, sizeof(err2)) == 0) {
			ao->channels = 2;
			ret = 0;
		}
	}
	if (ret < 0) {
		ao->pcm = NULL;
		return ret;
	}
	/* Real hardware starts playing once the lead is written. */
	snd_pcm_sw_params_t *sw;
	snd_pcm_sw_params_alloca(&sw);
	if (snd_pcm_sw_params_current(ao->pcm, sw) == 0 &&
	    snd_pcm_sw_params_set_start_threshold(ao->pcm, sw, OUT_LEAD_SAMPLES) == 0)
		(void)snd_pcm_sw_params(ao->pcm, sw);
	return 0;
}

static void audio_out_close(struct pc_audio_out *ao)
{
	if (ao->pcm)
		snd_pcm_close(ao->pcm);
	ao->pcm = NULL;
}

/* Writes n mono samples. 0; 1 after an underrun (the device was restarted: the caller
 * re-anchors); a negative errno when the device is lost. */
static int audio_out_write(struct pc_audio_out *ao, const int16_t *mono, int n)
{
	const int16_t *buf = mono;
	if (ao->channels == 2) {
		for (int i = 0; i < n; i++)
			ao->out[2 * i] = ao->out[2 * i + 1] = mono[i];
		buf = ao->out;
	}
	int done = 0, waits = 0;
	while (done < n) {
		snd_pcm_sframes_t w = snd_pcm_writei(ao->pcm, buf + (size_t)done * (size_t)ao->channels,
						     (snd_pcm_uframes_t)(n - done));
		if (w > 0) {
			done += (int)w;
			continue;
		}
		if (w == -EAGAIN || w == 0) {
			/* Full: the device runs slower than the clock. Wait a little, then drop
			 * the rest rather than fall behind the clock. */
			if (waits++ > 0)
				return 0;
			snd_pcm_wait(ao->pcm, 20);
			continue;
		}
		if (w == -EPIPE || w == -ESTRPIPE) {
			int r = snd_pcm_recover(ao->pcm, (int)w, 1);
			return r < 0 ? r : 1;
		}
		return (int)w;
	}
	return 0;
}

static void audio_out_report_drops(struct pc_audio_out *ao, uint64_t dropped, int64_t now)
{
	if (dropped == ao->dropped_reported || now - ao->dropped_reported_at < OUT_DROP_REPORT_NS)
		return;
	pc_log("audio-out: dropped %" PRIu64 " talk-back packets (queue over %d frames, or a RESUME)",
	       dropped - ao->dropped_reported, PC_JITTER_MAX_DEPTH);
	ao->dropped_reported = dropped;
	ao->dropped_reported_at = now;
}

/* One output frame (or what one packet decodes to): samples in ao->mono, returns how many. */
static int audio_out_next(struct pc_audio_out *ao, int64_t now)
{
	bool reset;
	pthread_mutex_lock(&ao->lock);
	enum pc_jitter_action action = pc_jitter_pop(&ao->jb, now, &ao->packet, &reset);
	uint64_t dropped = ao->jb.dropped;
	pthread_mutex_unlock(&ao->lock);
	audio_out_report_drops(ao, dropped, now);

	int n = -1;
	if (reset)
		pc_opus_decoder_reset(ao->dec);
	if (action == PC_JITTER_DECODE)
		n = pc_opus_decode(ao->dec, ao->packet.data, ao->packet.size, ao->mono, OUT_MAX_SAMPLES);
	if (action == PC_JITTER_CONCEAL || (action == PC_JITTER_DECODE && n <= 0))
		n = pc_opus_decode(ao->dec, NULL, 0, ao->mono, PC_OPUS_FRAME_SAMPLES);
	if (n <= 0) {
		memset(ao->mono, 0, PC_OPUS_FRAME_SAMPLES * sizeof(ao->mono[0]));
		n = PC_OPUS_FRAME_SAMPLES;
	}
	return n;
}

static void *audio_out_main(void *arg)
{
	struct pc_audio_out *ao = arg;
	uint32_t retry_ms = PC_AUDIO_RETRY_MIN_MS;
	char err[256], last_err[256] = "";
	raise_priority("audio-out");
	/* Output sample n plays at t0 + n / 48000 s; it is written a lead earlier. */
	int64_t t0 = 0;
	uint64_t written = 0;
	bool started = false;
	const char *restart_reason = NULL;

	while (!atomic_load(&ao->stop)) {
		if (!ao->pcm) {
			if (!sleep_ms(retry_ms, &ao->stop))
				break;
			retry_ms = next_retry(retry_ms);
			if (audio_out_open(ao, err, sizeof(err)) < 0) {
				if (strcmp(err, last_err) != 0)
					pc_log("audio-out: %s; retrying", err);
				snprintf(last_err, sizeof(last_err), "%s", err);
				continue;
			}
			pc_log("audio-out: %s is back", ao->name);
			retry_ms = PC_AUDIO_RETRY_MIN_MS;
			last_err[0] = '\0';
			started = false;
			restart_reason = NULL;
			pthread_mutex_lock(&ao->lock);
			pc_jitter_init(&ao->jb); /* what waited is stale now */
			pthread_mutex_unlock(&ao->lock);
		}

		int ret = 0;
		if (!started) {
			/* Silence from the first sample on, continuously, so sample n has a time. */
			t0 = pc_clock_ns(CLOCK_REALTIME);
			written = 0;
			memset(ao->mono, 0, OUT_LEAD_SAMPLES * sizeof(ao->mono[0]));
			ret = audio_out_write(ao, ao->mono, OUT_LEAD_SAMPLES);
			if (ret == 0) {
				written = OUT_LEAD_SAMPLES;
				started = true;
				if (restart_reason)
					pc_log("audio-out: %s; restarted at %" PRId64 " on %s", restart_reason,
					       t0, ao->name);
				else
					pc_log("audio-out: started at %" PRId64 " on %s", t0, ao->name);
			}
		} else {
			int64_t due = t0 + SAMPLES_TO_NS(written - OUT_LEAD_SAMPLES);
			enum wait_result wait = sleep_until_realtime(due, &ao->stop);
			if (wait == WAIT_STOPPED)
				break;
			int64_t now = pc_clock_ns(CLOCK_REALTIME);
			if (wait == WAIT_CLOCK_STEPPED || now - due > OUT_BEHIND_NS) {
				started = false;
				restart_reason = wait == WAIT_CLOCK_STEPPED ? "the wall clock stepped back"
									    : "fell behind the clock";
				continue;
			}
			int n = audio_out_next(ao, now);
			ret = audio_out_write(ao, ao->mono, n);
			if (ret == 0)
				written += (uint64_t)n;
		}
		if (ret == 1) {
			started = false;
			restart_reason = "underrun";
		} else if (ret < 0) {
			pc_alsa_error(err, sizeof(err), "write to ALSA playback device", ao->name, ret);
			pc_log("audio-out: %s; reopening with backoff", err);
			audio_out_close(ao);
		}
	}
	return NULL;
}

int pc_audio_out_start(struct pc_audio_out **out, const char *pcm_name, char *err,
		       size_t err_size)
{
	struct pc_audio_out *ao = calloc(1, sizeof(*ao));
	if (!ao || !(ao->name = strdup(pcm_name))) {
		free(ao);
		snprintf(err, err_size, "audio-out: out of memory");
		return -ENOMEM;
	}
	atomic_init(&ao->stop, false);
	pthread_mutex_init(&ao->lock, NULL);
	pc_jitter_init(&ao->jb);

	int ret = pc_opus_decoder_init(&ao->dec, 1, err, err_size);
	if (ret == 0)
		ret = audio_out_open(ao, err, err_size);
	if (ret == 0) {
		ret = -pthread_create(&ao->thread, NULL, audio_out_main, ao);
		if (ret < 0)
			snprintf(err, err_size, "audio-out: cannot start a thread: %s", strerror(-ret));
		ao->thread_started = ret == 0;
	}
	if (ret < 0) {
		pc_audio_out_stop(ao);
		return ret;
	}
	*out = ao;
	return 0;
}

void pc_audio_out_push(struct pc_audio_out *ao, const uint8_t *packet, size_t size, bool resume,
		       int64_t arrival_ns)
{
	pthread_mutex_lock(&ao->lock);
	pc_jitter_push(&ao->jb, packet, size, resume, arrival_ns);
	pthread_mutex_unlock(&ao->lock);
}

void pc_audio_out_stop(struct pc_audio_out *ao)
{
	if (!ao)
		return;
	atomic_store(&ao->stop, true);
	if (ao->thread_started)
		pthread_join(ao->thread, NULL);
	audio_out_close(ao); /* alsa's file plugin writes out what it holds here */
	pc_opus_decoder_destroy(ao->dec);
	pthread_mutex_destroy(&ao->lock);
	free(ao->name);
	free(ao);
}
