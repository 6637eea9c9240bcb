/* libopus behind the small API of opus.h.
 *
 * Application AUDIO rather than VOIP: the producer's microphone is a camera's or a room's, so
 * ambient sound, music and test tones matter as much as speech, and VOIP's speech tuning
 * (high-pass, SILK at lower rates) would colour them. Delay stays low anyway: 20 ms frames,
 * no DTX (frames come steadily, every 20 ms, so timestamps never jump), and a one-frame
 * encoder with ~6.5 ms look-ahead. */
#include "opus.h"

#include <errno.h>
#include <opus.h>
#include <stdio.h>
#include <stdlib.h>

struct pc_opus_encoder {
	OpusEncoder *enc;
	int channels;
};

struct pc_opus_decoder {
	OpusDecoder *dec;
	int channels;
};

static uint32_t clamp_bitrate(uint32_t bitrate)
{
	if (bitrate < PC_OPUS_MIN_BITRATE)
		return PC_OPUS_MIN_BITRATE;
	if (bitrate > PC_OPUS_MAX_BITRATE)
		return PC_OPUS_MAX_BITRATE;
	return bitrate;
}

int pc_opus_encoder_init(struct pc_opus_encoder **out, int channels, uint32_t bitrate, char *err,
			 size_t err_size)
{
	int error = 0;
	struct pc_opus_encoder *e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, err_size, "opus: out of memory");
		return -ENOMEM;
	}
	e->channels = channels;
	e->enc = opus_encoder_create(PC_OPUS_RATE, channels, OPUS_APPLICATION_AUDIO, &error);
	if (!e->enc) {
		snprintf(err, err_size, "opus: cannot create the encoder: %s", opus_strerror(error));
		free(e);
		return -EINVAL;
	}
	opus_encoder_ctl(e->enc, OPUS_SET_BITRATE((opus_int32)clamp_bitrate(bitrate)));
	opus_encoder_ctl(e->enc, OPUS_SET_VBR(1));
	opus_encoder_ctl(e->enc, OPUS_SET_DTX(0));
	/* WebRTC links lose packets: let the encoder spend a little on resilience. */
	opus_encoder_ctl(e->enc, OPUS_SET_PACKET_LOSS_PERC(5));
	opus_encoder_ctl(e->enc, OPUS_SET_INBAND_FEC(1));
	*out = e;
	return 0;
}

int pc_opus_encode(struct pc_opus_encoder *e, const int16_t *pcm, uint8_t *out, size_t out_size)
{
	opus_int32 max = out_size > PC_OPUS_MAX_PACKET ? PC_OPUS_MAX_PACKET : (opus_int32)out_size;
	int n = opus_encode(e->enc, pcm, PC_OPUS_FRAME_SAMPLES, out, max);
	return n > 0 ? n : -1;
}

int pc_opus_encoder_set_bitrate(struct pc_opus_encoder *e, uint32_t bitrate, uint32_t *applied)
{
	uint32_t v = clamp_bitrate(bitrate);
	if (opus_encoder_ctl(e->enc, OPUS_SET_BITRATE((opus_int32)v)) != OPUS_OK)
		return -EINVAL;
	*applied = v;
	return 0;
}

int64_t pc_opus_encoder_lookahead_ns(struct pc_opus_encoder *e)
{
	opus_int32 samples = 0;
	if (opus_encoder_ctl(e->enc, OPUS_GET_LOOKAHEAD(&samples)) != OPUS_OK || samples < 0)
		return 0;
	return (int64_t)samples * 1000000000 / PC_OPUS_RATE;
}

void pc_opus_encoder_destroy(struct pc_opus_encoder *e)
{
	if (!e)
		return;
	opus_encoder_destroy(e->enc);
	free(e);
}

int pc_opus_decoder_init(struct pc_opus_decoder **out, int channels, char *err, size_t err_size)
{
	int error = 0;
	struct pc_opus_decoder *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, err_size, "opus: out of memory");
		return -ENOMEM;
	}
	d->channels = channels;
	d->dec = opus_decoder_create(PC_OPUS_RATE, channels, &error);
	if (!d->dec) {
		snprintf(err, err_size, "opus: cannot create the decoder: %s", opus_strerror(error));
		free(d);
		return -EINVAL;
	}
	*out = d;
	return 0;
}

int pc_opus_decode(struct pc_opus_decoder *d, const uint8_t *packet, size_t size, int16_t *pcm,
		   int max_samples)
{
	if (!packet) /* concealment: exactly one frame */
		max_samples = max_samples < PC_OPUS_FRAME_SAMPLES ? max_samples : PC_OPUS_FRAME_SAMPLES;
	int n = opus_decode(d->dec, packet, packet ? (opus_int32)size : 0, pcm, max_samples, 0);
	return n >= 0 ? n : -1;
}

void pc_opus_decoder_reset(struct pc_opus_decoder *d)
{
	opus_decoder_ctl(d->dec, OPUS_RESET_STATE);
}

void pc_opus_decoder_destroy(struct pc_opus_decoder *d)
{
	if (!d)
		return;
	opus_decoder_destroy(d->dec);
	free(d);
}
