/* Opus at 48 kHz in 20 ms frames: the encoder for the audio track, the decoder for the
 * talk-back sink. */
#ifndef PC_OPUS_H
#define PC_OPUS_H

#include <stddef.h>
#include <stdint.h>

#define PC_OPUS_RATE 48000
#define PC_OPUS_FRAME_SAMPLES 960 /* per channel: 20 ms */
#define PC_OPUS_FRAME_US 20000
#define PC_OPUS_MIN_BITRATE 6000u
#define PC_OPUS_MAX_BITRATE 510000u
#define PC_OPUS_MAX_PACKET 1500 /* one 20 ms packet is at most 1275 bytes */

struct pc_opus_encoder;
struct pc_opus_decoder;

/* channels 1 or 2, bitrate within [PC_OPUS_MIN_BITRATE, PC_OPUS_MAX_BITRATE]. 0, or a
 * negative errno with err set. */
int pc_opus_encoder_init(struct pc_opus_encoder **enc, int channels, uint32_t bitrate, char *err,
			 size_t err_size);
/* One frame of PC_OPUS_FRAME_SAMPLES interleaved samples per channel in; the packet size out,
 * or -1. */
int pc_opus_encode(struct pc_opus_encoder *enc, const int16_t *pcm, uint8_t *out, size_t out_size);
/* Clamps to the Opus range; *applied says what was set. 0, or -EINVAL. */
int pc_opus_encoder_set_bitrate(struct pc_opus_encoder *enc, uint32_t bitrate, uint32_t *applied);
/* The encoder's look-ahead in ns (6.5 ms for libopus at 48 kHz): a decoder's output starts that
 * much before the first sample of the frame that was put in, so a frame is stamped that much
 * earlier than its first input sample's capture time, or audio plays late against video. */
int64_t pc_opus_encoder_lookahead_ns(struct pc_opus_encoder *enc);
void pc_opus_encoder_destroy(struct pc_opus_encoder *enc);

int pc_opus_decoder_init(struct pc_opus_decoder **dec, int channels, char *err, size_t err_size);
/* Decodes packet into up to max_samples per channel; packet NULL conceals one lost frame of
 * PC_OPUS_FRAME_SAMPLES. Returns samples per channel, or -1 (a corrupt packet). */
int pc_opus_decode(struct pc_opus_decoder *dec, const uint8_t *packet, size_t size, int16_t *pcm,
		   int max_samples);
/* Forgets the previous stream: the next packet starts a new one. */
void pc_opus_decoder_reset(struct pc_opus_decoder *dec);
void pc_opus_decoder_destroy(struct pc_opus_decoder *dec);

#endif
