/* The rkmpi source: the camera of a Rockchip RV1106 (Luckfox Pico) through the vendor media API,
 * docs/capture.md "rkmpi".
 *
 * The ISP is started with rkaiq and the board's IQ files (rkmpi_isp.c), the VI device, pipe and
 * channel 0 (the ISP's main path) are enabled and bound to a VENC channel (RK_MPI_SYS_Bind):
 * pictures go from the ISP to the encoder without passing through the CPU. With a sub stream,
 * VI channel 1 (the ISP's self path, scaled by the ISP) is bound to a second VENC channel.
 *
 * A source of already-encoded pictures (source.h's au): a thread per VENC channel takes each
 * access unit (RK_MPI_VENC_GetStream), copies it into a queue and makes wait_fd readable; take()
 * hands them out one at a time, every one, in order, main and sub interleaved (pc_source_picture's
 * rendition). Keyframe requests go to RK_MPI_VENC_RequestIDR, bitrate changes to the channel's
 * rate control (RK_MPI_VENC_SetChnAttr), each to the rendition's own channel.
 *
 * Built only with the Makefile's RKMPI=1 (rkmpi_vi.c, rkmpi_isp.c). What this header declares
 * besides the source (the options, the clock mapping, the bitrate clamp, the queue) is plain C,
 * built always (rkmpi_util.c) and tested without the SDK (tests/test_rkmpi.c). */
#ifndef PC_RKMPI_VI_H
#define PC_RKMPI_VI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source.h"

#define PC_RKMPI_DEFAULT_IQ_DIR "/etc/iqfiles"
/* The Luckfox Pico's camera (SC3336) runs at 30 pictures a second. */
#define PC_RKMPI_DEFAULT_SENSOR_FPS 30u
#define PC_RKMPI_MAX_SENSOR_FPS 120u
/* The size asked for when pc_source_config has none (as the producer's --size default). */
#define PC_RKMPI_DEFAULT_WIDTH 1280
#define PC_RKMPI_DEFAULT_HEIGHT 720
/* The VENC's rate control takes 2 to 200000 kbit/s; the producer's floor is 10 kbit/s. */
#define PC_RKMPI_MIN_BITRATE 10000u
#define PC_RKMPI_MAX_KBPS 200000u

/* Renditions: the main stream (VI channel 0) and the sub stream (VI channel 1). */
#define PC_RKMPI_MAIN 0
#define PC_RKMPI_SUB 1
#define PC_RKMPI_RENDITIONS 2

/* The source's own settings; its ops' init takes the defaults (no sub stream). */
struct pc_rkmpi_vi_options {
	const char *iq_dir;   /* NULL = PC_RKMPI_DEFAULT_IQ_DIR */
	uint32_t sensor_fps;  /* the sensor's own rate, 0 = PC_RKMPI_DEFAULT_SENSOR_FPS */
	uint32_t bitrate;     /* the main stream's, bit/s; 0 = 2 Mbit/s */
	uint32_t gop;         /* pictures from one IDR to the next; 0 = 2 s worth */
	int sub_width;        /* 0 = no sub stream */
	int sub_height;
	uint32_t sub_bitrate; /* 0 = a quarter of bitrate */
};

/* What init makes of the config and options (pc_rkmpi_vi_settings). */
struct pc_rkmpi_vi_settings {
	int width[PC_RKMPI_RENDITIONS], height[PC_RKMPI_RENDITIONS]; /* sub: 0 when none */
	uint32_t bitrate[PC_RKMPI_RENDITIONS];                       /* as asked, bit/s */
	uint32_t sensor_fps;
	/* The encoders' output rate: --fps, at most the sensor's (the VENC drops pictures to reach
	 * it: its rate control is told src = sensor_fps, dst = fps_num/fps_den). */
	uint32_t fps_num, fps_den;
	uint32_t gop;
	const char *iq_dir;
	bool fps_capped; /* --fps was above the sensor's rate */
};

#if PC_HAVE_RKMPI
extern const struct pc_source_ops pc_rkmpi_vi_source;

/* pc_rkmpi_vi_source's init with options. -EINVAL when the settings are refused, -ENODEV when
 * the ISP, VI or VENC cannot be started; err says which. */
int pc_rkmpi_vi_init(void **state, const struct pc_source_config *config, const struct pc_rkmpi_vi_options *options,
		     char *err, size_t err_size);
#endif

/* Checks config and options and fills *out: sizes even and at least 64x64 (the default when the
 * config has none), a sub stream smaller than the main one, the sensor's rate within
 * 1..PC_RKMPI_MAX_SENSOR_FPS. 0, or -EINVAL with err saying what is wrong. */
int pc_rkmpi_vi_settings(const struct pc_source_config *config, const struct pc_rkmpi_vi_options *options,
			 struct pc_rkmpi_vi_settings *out, char *err, size_t err_size);

/* --sensor-fps: digits only, 1..PC_RKMPI_MAX_SENSOR_FPS. */
bool pc_rkmpi_parse_sensor_fps(const char *s, uint32_t *fps);

/* A bitrate for the VENC's rate control: kbit/s (rounded), at least PC_RKMPI_MIN_BITRATE and
 * at most max_bitrate (the stream's H.264 level; 0 = no level limit) and PC_RKMPI_MAX_KBPS. */
uint32_t pc_rkmpi_kbps(uint32_t bitrate, uint32_t max_bitrate);

/* A picture's VENC PTS is the time the VI took it, in microseconds of CLOCK_MONOTONIC (the V4L2
 * buffer's timestamp, which rockit passes on: its samples measure a stream's delay as
 * CLOCK_MONOTONIC now minus the PTS). Its CLOCK_REALTIME capture time is now_real_ns minus its
 * age on the monotonic clock, both clocks read together just after the stream was taken: a
 * change of the wall clock does not skew the age. An age below zero (a PTS a few microseconds
 * ahead) counts as 0; a PTS of 0, older than PC_RKMPI_MAX_PTS_AGE_NS or further ahead than
 * PC_RKMPI_MAX_PTS_AHEAD_NS is not of that clock (an SDK that stamps another way): *out is then
 * now_real_ns and false is returned. */
#define PC_RKMPI_MAX_PTS_AGE_NS (5 * INT64_C(1000000000))
#define PC_RKMPI_MAX_PTS_AHEAD_NS INT64_C(1000000)
bool pc_rkmpi_capture_ns(uint64_t pts_us, int64_t now_mono_ns, int64_t now_real_ns, int64_t *out);

/* Whether an Annex-B access unit holds an IDR slice (nal_unit_type 5). */
bool pc_rkmpi_has_idr(const uint8_t *au, size_t size);

/* The queue between the VENC threads and take(): a bounded FIFO of access units, each copied
 * into a buffer of its slot (kept for the next one: no allocation once they are big enough).
 * Not locked: the source holds its lock around every call. */
#define PC_RKMPI_QUEUE_LEN 16

struct pc_rkmpi_au {
	uint8_t *data;
	size_t size, cap;
	int64_t capture_ns;
	bool keyframe;
	int rendition;
};

struct pc_rkmpi_chunk {
	const void *data;
	size_t size;
};

struct pc_rkmpi_queue {
	struct pc_rkmpi_au slot[PC_RKMPI_QUEUE_LEN];
	unsigned head, count;
	/* After an overflow a rendition's next access unit must be an IDR: until one comes, its
	 * others are dropped (a decoder could not use them). */
	bool wait_idr[PC_RKMPI_RENDITIONS];
	uint64_t overflows, dropped;
};

enum pc_rkmpi_push {
	PC_RKMPI_QUEUED,
	PC_RKMPI_SKIPPED,  /* the rendition waits for an IDR and this is none: dropped */
	PC_RKMPI_OVERFLOW, /* the queue was full (nobody took for a while): every access unit in it
			    * was dropped, every rendition now waits for an IDR (ask the encoders for
			    * one); this one was queued if it is an IDR, else dropped too */
};

/* Queues the access unit made of chunks (copied, in order). A pc_rkmpi_push, or -ENOMEM (the
 * access unit is dropped and its rendition waits for an IDR). */
int pc_rkmpi_queue_push(struct pc_rkmpi_queue *q, int rendition, const struct pc_rkmpi_chunk *chunks, int n_chunks,
			bool keyframe, int64_t capture_ns);
/* Takes the oldest access unit into *taken, whose buffer goes back to the queue in exchange:
 * taken->data stays valid until the next pop into it. false when the queue is empty. */
bool pc_rkmpi_queue_pop(struct pc_rkmpi_queue *q, struct pc_rkmpi_au *taken);
/* Frees every slot's buffer (and taken's, when not NULL). */
void pc_rkmpi_queue_free(struct pc_rkmpi_queue *q, struct pc_rkmpi_au *taken);

#endif
