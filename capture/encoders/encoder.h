/* Video encoders: I420 pictures in, H.264 Annex-B access units out. */
#ifndef PC_ENCODER_H
#define PC_ENCODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../sources/source.h"

struct pc_encoder_config {
	int width;
	int height;
	uint32_t fps_num;
	uint32_t fps_den;
	uint32_t bitrate; /* bit/s */
	uint32_t gop;     /* frames from one IDR to the next */
	const char *preset;
	int threads;      /* 0 = let the encoder decide */
	/* Periodic intra refresh instead of periodic IDRs: intra macroblocks spread over the
	 * GOP's pictures, IDRs only on request. A slow path then carries no keyframe bursts
	 * (a 360p IDR at 100 kbit/s takes ~300 ms to send at 175 kbit/s, delaying the pictures
	 * behind it). */
	bool intra_refresh;
	/* Pictures come when the source has news (a screen), and a change after a still moment
	 * is often the whole picture (a new window): the rate control's buffer then holds
	 * PC_ENCODER_SCREEN_BUFFER_MS of the bitrate instead of a few pictures' worth, so such a
	 * picture is not starved to a blur. (x264's own variable-frame-rate mode is not used: it
	 * holds every picture back until the next one comes, to know its duration.) */
	bool screen;
	/* Hardware encoders: the device to use (v4l2m2m: /dev/videoN), NULL = look for one. */
	const char *device;
};

/* With screen: how much of the bitrate one picture may take at most, in milliseconds. */
#define PC_ENCODER_SCREEN_BUFFER_MS 500

/* One access unit, owned by the encoder: valid until the next encode() or destroy(). */
struct pc_encoded {
	const uint8_t *data; /* Annex-B: start code before each NAL unit */
	size_t size;         /* 0 when the encoder produced nothing for this picture */
	bool keyframe;       /* holds an IDR slice (and then SPS and PPS before it) */
	/* The AU is of the picture given this many encode() calls ago (0: this one's): a hardware
	 * encoder may hand pictures back late. Encoders that never are leave it 0. */
	uint32_t late;
};

struct pc_encoder_ops {
	const char *name;
	/* Returns 0; -EINVAL when the config is refused, another negative errno otherwise;
	 * err then holds a one-line reason. */
	int (*init)(void **state, const struct pc_encoder_config *config, char *err, size_t err_size);
	/* Encodes one picture; force_idr makes it an IDR with SPS and PPS. Returns 0 or -1. */
	int (*encode)(void *state, const struct pc_frame *frame, bool force_idr, struct pc_encoded *out);
	/* Changes the target (and VBV) from the next picture on. The bitrate is clamped to what
	 * the stream's level allows (and to a small minimum); *applied says what was set.
	 * 0, or a negative errno. */
	int (*set_bitrate)(void *state, uint32_t bitrate, uint32_t *applied);
	/* Tells the encoder pictures now come at num/den per second. -ERANGE when the level
	 * announced in the SPS does not allow that rate. */
	int (*set_fps)(void *state, uint32_t num, uint32_t den);
	void (*destroy)(void *state);
};

extern const struct pc_encoder_ops pc_x264_encoder;
/* v4l2m2m.c: a V4L2 memory-to-memory stateful encoder (v4l2m2m.h). */
extern const struct pc_encoder_ops pc_v4l2m2m_encoder;
#if PC_HAVE_RKMPI
/* rkmpi.c: Rockchip's VENC through the vendor media API (the Makefile's RKMPI=1). */
extern const struct pc_encoder_ops pc_rkmpi_encoder;
#endif

/* H.264 Table A-1: the limits of one level. */
struct pc_h264_level {
	int idc;              /* level_idc: 31 for level 3.1 */
	uint32_t max_mbps;    /* macroblocks per second */
	uint32_t max_fs;      /* macroblocks per frame */
	uint32_t max_dpb_mbs; /* decoded picture buffer, in macroblocks */
	uint32_t max_br_kbit; /* VCL bitrate, 1000 bit/s (Baseline/Main/Extended) */
};

/* The lowest level that holds width x height at fps_num/fps_den and bitrate (0 = do not
 * check the bitrate); NULL beyond level 5.2. */
const struct pc_h264_level *pc_h264_level_find(int width, int height, uint32_t fps_num,
					       uint32_t fps_den, uint32_t bitrate);

#endif
