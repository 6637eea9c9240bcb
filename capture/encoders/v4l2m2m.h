/* The v4l2m2m encoder: a V4L2 memory-to-memory stateful H.264 encoder (the kernel's
 * Documentation/userspace-api/media/v4l/dev-encoder.rst), as on a Raspberry Pi (bcm2835-codec)
 * and many SoCs. docs/encoders.md.
 *
 * init finds the device (config->device, or the first /dev/videoN whose QUERYCAP says
 * memory-to-memory, single- or multi-planar, with H.264 on its CAPTURE queue), sets CAPTURE to
 * H.264 and OUTPUT to I420 (YUV420, YUV420M) or else NV12 (NV12, NV12M), the rate (S_PARM on
 * OUTPUT) and the controls it has: bitrate (CBR), GOP and I period, no B-frames, constrained
 * baseline (else baseline), the level the size and rate need, SPS/PPS with every IDR. Then MMAP
 * buffers on both queues, the CAPTURE ones queued, and STREAMON.
 *
 * encode() copies the picture into a free OUTPUT buffer (FORCE_KEY_FRAME before it when an IDR
 * is wanted), queues it and takes the access units the driver finished. A driver may give an
 * AU one or more pictures late: encode() waits for one only while more pictures are in flight
 * than the delay it has learned (a wait that times out raises it), and then hands out the
 * oldest finished AU, or nothing for this picture. SPS and PPS are put before an IDR that
 * comes without them (from the first ones seen; also when a driver sends them alone in a
 * buffer of their own). Any failing ioctl (ENODEV: the device is gone) makes encode() fail:
 * the registry falls back to the next encoder.
 *
 * destroy() drains the encoder (V4L2_ENC_CMD_STOP, up to the buffer flagged LAST), stops both
 * queues and frees the buffers. */
#ifndef PC_V4L2M2M_H
#define PC_V4L2M2M_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../sources/v4l2_io.h"
#include "encoder.h"

/* /dev/video0 .. /dev/video63 are looked at when no device is given. */
#define PC_V4L2M2M_MAX_NODES 64
#define PC_V4L2M2M_BUFFERS 4
/* How long encode() waits for the driver at most, and destroy() for the drain. */
#define PC_V4L2M2M_WAIT_MS 200

struct pc_v4l2m2m_options {
	const char *device;          /* NULL = look through /dev/video* */
	const struct pc_v4l2_io *io; /* NULL = pc_v4l2_io_system */
	int wait_ms;                 /* 0 = PC_V4L2M2M_WAIT_MS */
};

struct pc_v4l2m2m_stats {
	char device[32];
	char driver[32];
	bool mplane;
	uint32_t output_fourcc;      /* V4L2_PIX_FMT_YUV420, NV12, YUV420M or NV12M */
	uint32_t delay;              /* pictures the driver was seen to hold back */
	uint64_t queued, encoded;    /* pictures in, access units out */
	uint64_t headers_added;      /* IDRs that came without SPS/PPS and got them here */
	uint64_t errors;             /* CAPTURE buffers flagged ERROR */
	bool has_force_key_frame, has_bitrate;
};

int pc_v4l2m2m_init(void **state, const struct pc_encoder_config *config, const struct pc_v4l2m2m_options *options,
		    char *err, size_t err_size);
void pc_v4l2m2m_stats(void *state, struct pc_v4l2m2m_stats *out);

#endif
