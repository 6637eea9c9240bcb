/* The v4l2 source: a V4L2 camera (/dev/videoN), docs/capture-v4l2.md.
 *
 * Damage-driven (source.h's wait_fd and take), each dequeued buffer being news: the camera
 * brings its own clock. init opens the device (non-blocking), checks it is a camera
 * (VIDIOC_QUERYCAP: single-planar video capture with streaming I/O; a memory-to-memory
 * encoder is refused), chooses a format, size and rate (ENUM_FMT, ENUM_FRAMESIZES,
 * ENUM_FRAMEINTERVALS), sets them (S_FMT: the size the driver returns is followed; S_PARM),
 * maps 4 MMAP buffers and starts streaming. wait_fd is the device's descriptor.
 *
 * take() dequeues what the camera filled. Raw pictures are converted to I420, only the newest
 * of those waiting (the others go back to the camera at once): YUYV and NV12 with libyuv, MJPEG
 * decoded with TurboJPEG (libjpeg-turbo) in the JPEG's own subsampling (4:2:0 straight into the
 * picture; 4:2:2, 4:4:4, 4:4:0, 4:1:1 and grayscale then brought to 4:2:0 with libyuv). A JPEG
 * that is cut, corrupt or not of the negotiated size is skipped and counted (corrupt), the
 * picture before it kept. An H.264 camera's access units are handed out one per take(), every one, copied out
 * of the buffer, for the producer to send as they are (source.h's au). Each buffer goes back
 * to the driver (QBUF) before take() returns.
 *
 * capture_ns: the buffer's timestamp when the driver says it is CLOCK_MONOTONIC
 * (V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC), moved to CLOCK_REALTIME by the offset between the two
 * clocks at take(); the time of take() otherwise. Gaps in the buffers' sequence numbers are
 * counted as frames the driver dropped.
 *
 * The source fails for good (take() < 0, with the reason) when the camera is unplugged
 * (ENODEV) or a dequeue fails otherwise. */
#ifndef PC_V4L2_H
#define PC_V4L2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source.h"
#include "v4l2_io.h"

enum pc_v4l2_format {
	PC_V4L2_AUTO, /* H.264 if offered at the asked size, else NV12, YUYV, MJPEG */
	PC_V4L2_YUYV,
	PC_V4L2_NV12,
	PC_V4L2_MJPEG,
	PC_V4L2_H264,
};

#define PC_V4L2_FORMATS "yuyv, nv12, mjpeg, h264, auto"
#define PC_V4L2_DEFAULT_DEVICE "/dev/video0"
/* The size asked for when pc_source_config has none. */
#define PC_V4L2_DEFAULT_WIDTH 1280
#define PC_V4L2_DEFAULT_HEIGHT 720
#define PC_V4L2_BUFFERS 4

/* The source's own settings; its ops' init takes the defaults (/dev/video0, auto). */
struct pc_v4l2_options {
	const char *device;        /* NULL = PC_V4L2_DEFAULT_DEVICE */
	enum pc_v4l2_format format;
	const struct pc_v4l2_io *io; /* NULL = pc_v4l2_io_system */
};

/* What a running source chose and counted (for the tests and the log). */
struct pc_v4l2_stats {
	enum pc_v4l2_format format;
	int width, height;         /* the driver's (a picture may be a pixel narrower: even) */
	uint32_t fps_num, fps_den; /* what S_PARM gave, 0/0 when the driver has no rate */
	uint64_t frames;           /* buffers dequeued */
	uint64_t dropped;          /* gaps in the driver's sequence numbers */
	uint64_t coalesced;        /* raw pictures passed over for a newer one */
	uint64_t corrupt;          /* buffers flagged ERROR, JPEGs undecodable or of another size: skipped */
	uint64_t requeued;         /* buffers given back to the driver */
};

extern const struct pc_source_ops pc_v4l2_source;

/* Parses "yuyv", "nv12", "mjpeg", "h264" or "auto"; false for anything else. */
bool pc_v4l2_format_parse(const char *name, enum pc_v4l2_format *out);
const char *pc_v4l2_format_name(enum pc_v4l2_format format);

/* pc_v4l2_source's init with options. -ENOENT when the device does not exist, -ENOTTY when it
 * is not a camera, -EINVAL when it offers no format asked for; err says which. */
int pc_v4l2_init(void **state, const struct pc_source_config *config, const struct pc_v4l2_options *options,
		 char *err, size_t err_size);

void pc_v4l2_stats(void *state, struct pc_v4l2_stats *out);

#endif
