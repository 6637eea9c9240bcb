/* The v4l2m2m encoder (v4l2m2m.h), through the calls of v4l2_io.h. */
#include "v4l2m2m.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../clock.h"
#include "../log.h"

#define MAX_BUFS 8
#define MIN_BITRATE 10000u
/* Finished access units kept until handed out (a driver late by more drops the oldest). */
#define MAX_PENDING 8

struct m2m_buf {
	void *mem[VIDEO_MAX_PLANES];
	size_t len[VIDEO_MAX_PLANES];
	bool queued;
};

struct m2m_queue {
	uint32_t type;
	int n;
	int planes;
	struct m2m_buf buf[MAX_BUFS];
	bool streaming;
};

/* Where each component of the I420 picture goes in an OUTPUT buffer. */
struct m2m_component {
	int plane;       /* the buffer's plane */
	size_t offset;   /* in it */
	uint32_t stride;
};

struct m2m_au {
	uint8_t *data;
	size_t size, cap;
	uint64_t picture; /* which picture it is, from the buffer's timestamp */
};

struct pc_v4l2m2m {
	const struct pc_v4l2_io *io;
	int fd;
	char device[32];
	char driver[32];
	bool mplane;
	int width, height;
	uint32_t out_fourcc;
	struct m2m_component comp[3]; /* Y, U, V; NV12: U and V share the plane, interleaved */
	uint32_t out_bytes[VIDEO_MAX_PLANES]; /* bytesused of each OUTPUT plane */
	struct m2m_queue out, cap;
	int wait_ms;
	const struct pc_h264_level *level;
	uint32_t frame_mbs;
	uint32_t bitrate;
	bool has_force_key_frame, has_bitrate;

	uint32_t in_flight;  /* pictures queued whose AU has not come */
	uint32_t delay;      /* learned: pictures the driver holds back */
	bool idr_next;       /* an AU was lost: the next picture starts again */
	uint8_t headers[256]; /* SPS and PPS, Annex-B, from the first IDR that had them */
	size_t headers_size;
	struct m2m_au pending[MAX_PENDING];
	int pending_head, pending_count;
	struct m2m_au out_au; /* handed out by encode() */
	uint64_t queued, encoded, headers_added, errors;
	uint64_t timestamp;  /* picture number, in the buffers' timestamps (encoders copy them) */
};

static int xioctl(struct pc_v4l2m2m *st, unsigned long request, void *arg)
{
	return st->io->ioctl(st->io->ctx, st->fd, request, arg);
}

static bool fourcc_offered(struct pc_v4l2m2m *st, uint32_t type, uint32_t fourcc)
{
	for (uint32_t i = 0; i < 64; i++) {
		struct v4l2_fmtdesc d = {.index = i, .type = type};
		if (xioctl(st, VIDIOC_ENUM_FMT, &d) < 0)
			return false;
		if (d.pixelformat == fourcc)
			return true;
	}
	return false;
}

/* Whether the open device is an H.264 encoder; why not in why. */
static bool probe(struct pc_v4l2m2m *st, char *why, size_t why_size)
{
	struct v4l2_capability c = {0};
	if (xioctl(st, VIDIOC_QUERYCAP, &c) < 0) {
		snprintf(why, why_size, "QUERYCAP: %s", strerror(errno));
		return false;
	}
	snprintf(st->driver, sizeof(st->driver), "%s", (const char *)c.driver);
	uint32_t caps = (c.capabilities & V4L2_CAP_DEVICE_CAPS) ? c.device_caps : c.capabilities;
	if (!(caps & V4L2_CAP_STREAMING) || !(caps & (V4L2_CAP_VIDEO_M2M | V4L2_CAP_VIDEO_M2M_MPLANE))) {
		snprintf(why, why_size, "%s: not memory-to-memory", st->driver);
		return false;
	}
	st->mplane = !(caps & V4L2_CAP_VIDEO_M2M);
	st->cap.type = st->mplane ? V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE : V4L2_BUF_TYPE_VIDEO_CAPTURE;
	st->out.type = st->mplane ? V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE : V4L2_BUF_TYPE_VIDEO_OUTPUT;
	if (!fourcc_offered(st, st->cap.type, V4L2_PIX_FMT_H264)) {
		snprintf(why, why_size, "%s: no H.264 out", st->driver);
		return false;
	}
	/* I420 needs no conversion; NV12 is the one nearly every encoder takes. */
	static const uint32_t raw[] = {V4L2_PIX_FMT_YUV420, V4L2_PIX_FMT_YUV420M, V4L2_PIX_FMT_NV12,
				       V4L2_PIX_FMT_NV12M};
	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
		bool multi = raw[i] == V4L2_PIX_FMT_YUV420M || raw[i] == V4L2_PIX_FMT_NV12M;
		if ((!multi || st->mplane) && fourcc_offered(st, st->out.type, raw[i])) {
			st->out_fourcc = raw[i];
			return true;
		}
	}
	snprintf(why, why_size, "%s: takes neither I420 nor NV12", st->driver);
	return false;
}

/* Opens config's device, or the first encoder under /dev/video*. -ENOENT with err listing what
 * was looked at when there is none. */
static int find_device(struct pc_v4l2m2m *st, const char *device, char *err, size_t err_size)
{
	char looked[160] = "";
	size_t used = 0;
	for (int i = 0; i < (device ? 1 : PC_V4L2M2M_MAX_NODES); i++) {
		char path[32], why[96];
		if (device)
			snprintf(path, sizeof(path), "%s", device);
		else
			snprintf(path, sizeof(path), "/dev/video%d", i);
		st->fd = st->io->open(st->io->ctx, path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (st->fd < 0) {
			if (device) {
				snprintf(err, err_size, "v4l2m2m: %s: %s", path, strerror(errno));
				return errno == ENOENT ? -ENOENT : -errno;
			}
			continue;
		}
		if (probe(st, why, sizeof(why))) {
			snprintf(st->device, sizeof(st->device), "%s", path);
			return 0;
		}
		st->io->close(st->io->ctx, st->fd);
		st->fd = -1;
		if (device) {
			snprintf(err, err_size, "v4l2m2m: %s is no H.264 encoder (%s)", path, why);
			return -ENODEV;
		}
		if (used < sizeof(looked))
			used += (size_t)snprintf(looked + used, sizeof(looked) - used, "%s%s (%s)", used ? ", " : "",
						 path + 5, why);
	}
	snprintf(err, err_size, "v4l2m2m: no M2M H.264 encoder under /dev/video* (looked at %s)",
		 used ? looked : "none: no /dev/video* node");
	return -ENOENT;
}

/* A control the driver may not have: whether it took it. */
static bool set_ctrl(struct pc_v4l2m2m *st, uint32_t id, int32_t value)
{
	struct v4l2_control c = {.id = id, .value = value};
	return xioctl(st, VIDIOC_S_CTRL, &c) == 0;
}

static int level_enum(int idc)
{
	static const int idcs[] = {10, 9 /* 1b */, 11, 12, 13, 20, 21, 22, 30, 31, 32, 40, 41, 42, 50, 51, 52};
	for (size_t i = 0; i < sizeof(idcs) / sizeof(idcs[0]); i++)
		if (idcs[i] == idc)
			return (int)i; /* V4L2_MPEG_VIDEO_H264_LEVEL_1_0 is 0, in this order */
	return V4L2_MPEG_VIDEO_H264_LEVEL_5_1;
}

static void set_controls(struct pc_v4l2m2m *st, const struct pc_encoder_config *config)
{
	set_ctrl(st, V4L2_CID_MPEG_VIDEO_BITRATE_MODE, V4L2_MPEG_VIDEO_BITRATE_MODE_CBR);
	st->has_bitrate = set_ctrl(st, V4L2_CID_MPEG_VIDEO_BITRATE, (int32_t)st->bitrate);
	set_ctrl(st, V4L2_CID_MPEG_VIDEO_GOP_SIZE, (int32_t)config->gop);
	set_ctrl(st, V4L2_CID_MPEG_VIDEO_H264_I_PERIOD, (int32_t)config->gop);
	set_ctrl(st, V4L2_CID_MPEG_VIDEO_B_FRAMES, 0);
	if (!set_ctrl(st, V4L2_CID_MPEG_VIDEO_H264_PROFILE, V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE))
		set_ctrl(st, V4L2_CID_MPEG_VIDEO_H264_PROFILE, V4L2_MPEG_VIDEO_H264_PROFILE_BASELINE);
	set_ctrl(st, V4L2_CID_MPEG_VIDEO_H264_LEVEL, level_enum(st->level->idc));
	/* SPS/PPS with every IDR, in its buffer: the controls differ between drivers and kernels;
	 * what none of them does is made up for in encode(). */
	set_ctrl(st, V4L2_CID_MPEG_VIDEO_HEADER_MODE, V4L2_MPEG_VIDEO_HEADER_MODE_JOINED_WITH_1ST_FRAME);
	set_ctrl(st, V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER, 1);
#ifdef V4L2_CID_MPEG_VIDEO_PREPEND_SPSPPS_TO_IDR
	set_ctrl(st, V4L2_CID_MPEG_VIDEO_PREPEND_SPSPPS_TO_IDR, 1);
#endif
	/* Asked of a driver that has it, so FORCE_KEY_FRAME is known to work; it makes no IDR
	 * before the first picture is queued. */
	struct v4l2_queryctrl q = {.id = V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME};
	st->has_force_key_frame = xioctl(st, VIDIOC_QUERYCTRL, &q) == 0 && !(q.flags & V4L2_CTRL_FLAG_DISABLED);
}

static int set_rate(struct pc_v4l2m2m *st, uint32_t num, uint32_t den)
{
	struct v4l2_streamparm p = {.type = st->out.type};
	p.parm.output.timeperframe.numerator = den;
	p.parm.output.timeperframe.denominator = num;
	return xioctl(st, VIDIOC_S_PARM, &p) < 0 ? -errno : 0;
}

/* Formats: CAPTURE first (the coded format decides what OUTPUT may be), then OUTPUT. */
static int set_formats(struct pc_v4l2m2m *st, char *err, size_t err_size)
{
	struct v4l2_format f = {.type = st->cap.type};
	uint32_t coded_size = (uint32_t)(st->width * st->height * 3 / 2);
	if (st->mplane) {
		f.fmt.pix_mp.width = (uint32_t)st->width;
		f.fmt.pix_mp.height = (uint32_t)st->height;
		f.fmt.pix_mp.pixelformat = V4L2_PIX_FMT_H264;
		f.fmt.pix_mp.num_planes = 1;
		f.fmt.pix_mp.plane_fmt[0].sizeimage = coded_size;
	} else {
		f.fmt.pix.width = (uint32_t)st->width;
		f.fmt.pix.height = (uint32_t)st->height;
		f.fmt.pix.pixelformat = V4L2_PIX_FMT_H264;
		f.fmt.pix.sizeimage = coded_size;
	}
	if (xioctl(st, VIDIOC_S_FMT, &f) < 0) {
		snprintf(err, err_size, "v4l2m2m %s: S_FMT H.264: %s", st->device, strerror(errno));
		return -errno;
	}
	uint32_t got = st->mplane ? f.fmt.pix_mp.pixelformat : f.fmt.pix.pixelformat;
	if (got != V4L2_PIX_FMT_H264) {
		snprintf(err, err_size, "v4l2m2m %s: the driver will not give H.264", st->device);
		return -EINVAL;
	}

	f = (struct v4l2_format){.type = st->out.type};
	if (st->mplane) {
		f.fmt.pix_mp.width = (uint32_t)st->width;
		f.fmt.pix_mp.height = (uint32_t)st->height;
		f.fmt.pix_mp.pixelformat = st->out_fourcc;
		f.fmt.pix_mp.num_planes = st->out_fourcc == V4L2_PIX_FMT_YUV420M ? 3
					  : st->out_fourcc == V4L2_PIX_FMT_NV12M ? 2
										 : 1;
	} else {
		f.fmt.pix.width = (uint32_t)st->width;
		f.fmt.pix.height = (uint32_t)st->height;
		f.fmt.pix.pixelformat = st->out_fourcc;
	}
	if (xioctl(st, VIDIOC_S_FMT, &f) < 0) {
		snprintf(err, err_size, "v4l2m2m %s: S_FMT of the pictures: %s", st->device, strerror(errno));
		return -errno;
	}
	uint32_t w = st->mplane ? f.fmt.pix_mp.width : f.fmt.pix.width;
	uint32_t h = st->mplane ? f.fmt.pix_mp.height : f.fmt.pix.height;
	got = st->mplane ? f.fmt.pix_mp.pixelformat : f.fmt.pix.pixelformat;
	if (got != st->out_fourcc || w < (uint32_t)st->width || h < (uint32_t)st->height) {
		snprintf(err, err_size, "v4l2m2m %s: %dx%d pictures refused (the driver offers %ux%u %.4s)", st->device,
			 st->width, st->height, w, h, (const char *)&got);
		return -EINVAL;
	}
	if (w != (uint32_t)st->width || h != (uint32_t)st->height) {
		/* A driver that aligns the size: the picture is the top-left part of it. */
		struct v4l2_selection sel = {.type = st->out.type, .target = V4L2_SEL_TGT_CROP,
					     .r = {.width = (uint32_t)st->width, .height = (uint32_t)st->height}};
		if (xioctl(st, VIDIOC_S_SELECTION, &sel) < 0)
			pc_log("v4l2m2m %s: %dx%d aligned to %ux%u and no crop (S_SELECTION: %s): the stream carries the padding",
			       st->device, st->width, st->height, w, h, strerror(errno));
	}

	/* Where Y, U and V go: one plane (chroma after luma at bytesperline x height, as the
	 * single-plane formats define it) or one plane each. */
	uint32_t bpl[3] = {0};
	int n_planes = st->mplane ? f.fmt.pix_mp.num_planes : 1;
	for (int i = 0; i < n_planes && i < 3; i++)
		bpl[i] = st->mplane ? f.fmt.pix_mp.plane_fmt[i].bytesperline : f.fmt.pix.bytesperline;
	if (!bpl[0])
		bpl[0] = w;
	bool nv12 = st->out_fourcc == V4L2_PIX_FMT_NV12 || st->out_fourcc == V4L2_PIX_FMT_NV12M;
	size_t luma = (size_t)bpl[0] * h;
	size_t chroma_rows = (h + 1) / 2;
	if (n_planes == 1) {
		st->comp[0] = (struct m2m_component){0, 0, bpl[0]};
		if (nv12) {
			st->comp[1] = (struct m2m_component){0, luma, bpl[0]};
		} else {
			st->comp[1] = (struct m2m_component){0, luma, bpl[0] / 2};
			st->comp[2] = (struct m2m_component){0, luma + bpl[0] / 2 * chroma_rows, bpl[0] / 2};
		}
		st->out_bytes[0] = (uint32_t)(luma + (size_t)bpl[0] * chroma_rows);
	} else {
		for (int i = 0; i < n_planes; i++) {
			uint32_t stride = bpl[i] ? bpl[i] : nv12 || i == 0 ? w : w / 2;
			st->comp[i] = (struct m2m_component){i, 0, stride};
			st->out_bytes[i] = (uint32_t)(stride * (i == 0 ? h : chroma_rows));
		}
	}
	st->out.planes = n_planes;
	st->cap.planes = 1;
	return 0;
}

static void fill_buffer_planes(const struct pc_v4l2m2m *st, const struct m2m_queue *q, struct v4l2_buffer *b,
			       struct v4l2_plane *planes, int index)
{
	memset(b, 0, sizeof(*b));
	b->type = q->type;
	b->memory = V4L2_MEMORY_MMAP;
	b->index = (uint32_t)index;
	if (st->mplane) {
		memset(planes, 0, sizeof(*planes) * VIDEO_MAX_PLANES);
		b->m.planes = planes;
		b->length = (uint32_t)q->planes;
	}
}

static int map_queue(struct pc_v4l2m2m *st, struct m2m_queue *q, char *err, size_t err_size)
{
	struct v4l2_requestbuffers r = {.count = PC_V4L2M2M_BUFFERS, .type = q->type, .memory = V4L2_MEMORY_MMAP};
	if (xioctl(st, VIDIOC_REQBUFS, &r) < 0 || r.count == 0) {
		snprintf(err, err_size, "v4l2m2m %s: REQBUFS: %s", st->device, r.count ? strerror(errno) : "no buffers");
		return -EIO;
	}
	q->n = r.count > MAX_BUFS ? MAX_BUFS : (int)r.count;
	for (int i = 0; i < q->n; i++) {
		struct v4l2_buffer b;
		struct v4l2_plane planes[VIDEO_MAX_PLANES];
		fill_buffer_planes(st, q, &b, planes, i);
		if (xioctl(st, VIDIOC_QUERYBUF, &b) < 0) {
			snprintf(err, err_size, "v4l2m2m %s: QUERYBUF: %s", st->device, strerror(errno));
			return -EIO;
		}
		for (int p = 0; p < q->planes; p++) {
			size_t len = st->mplane ? planes[p].length : b.length;
			off_t off = st->mplane ? (off_t)planes[p].m.mem_offset : (off_t)b.m.offset;
			void *mem = st->io->mmap(st->io->ctx, len, PROT_READ | PROT_WRITE, MAP_SHARED, st->fd, off);
			if (mem == MAP_FAILED) {
				snprintf(err, err_size, "v4l2m2m %s: mmap: %s", st->device, strerror(errno));
				return -EIO;
			}
			q->buf[i].mem[p] = mem;
			q->buf[i].len[p] = len;
		}
	}
	return 0;
}

static int queue_capture(struct pc_v4l2m2m *st, int index)
{
	struct v4l2_buffer b;
	struct v4l2_plane planes[VIDEO_MAX_PLANES];
	fill_buffer_planes(st, &st->cap, &b, planes, index);
	if (xioctl(st, VIDIOC_QBUF, &b) < 0)
		return -errno;
	st->cap.buf[index].queued = true;
	return 0;
}

static void unmap_queue(struct pc_v4l2m2m *st, struct m2m_queue *q)
{
	for (int i = 0; i < q->n; i++)
		for (int p = 0; p < q->planes; p++)
			if (q->buf[i].mem[p])
				st->io->munmap(st->io->ctx, q->buf[i].mem[p], q->buf[i].len[p]);
	if (q->n) {
		struct v4l2_requestbuffers r = {.count = 0, .type = q->type, .memory = V4L2_MEMORY_MMAP};
		xioctl(st, VIDIOC_REQBUFS, &r); /* a gone device refuses: nothing left to free then */
	}
	q->n = 0;
}

static void pc_v4l2m2m_destroy(void *state);

int pc_v4l2m2m_init(void **state, const struct pc_encoder_config *config, const struct pc_v4l2m2m_options *options,
		    char *err, size_t err_size)
{
	int ret;
	struct pc_v4l2m2m *st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, err_size, "v4l2m2m: out of memory");
		return -ENOMEM;
	}
	st->fd = -1;
	st->io = options && options->io ? options->io : &pc_v4l2_io_system;
	st->wait_ms = options && options->wait_ms ? options->wait_ms : PC_V4L2M2M_WAIT_MS;
	st->width = config->width;
	st->height = config->height;
	st->bitrate = config->bitrate;
	st->level = pc_h264_level_find(config->width, config->height, config->fps_num, config->fps_den,
				       config->bitrate);
	if (!st->level) {
		snprintf(err, err_size, "v4l2m2m: %dx%d at %u/%u fps is beyond H.264 level 5.2", config->width,
			 config->height, config->fps_num, config->fps_den);
		ret = -EINVAL;
		goto error;
	}
	st->frame_mbs = (uint32_t)((config->width + 15) / 16) * (uint32_t)((config->height + 15) / 16);

	const char *device = options && options->device ? options->device : config->device;
	ret = find_device(st, device, err, err_size);
	if (ret < 0)
		goto error;
	ret = set_formats(st, err, err_size);
	if (ret < 0)
		goto error;
	if ((ret = set_rate(st, config->fps_num, config->fps_den)) < 0)
		pc_log("v4l2m2m %s: S_PARM %u/%u: %s (the rate control assumes its own)", st->device, config->fps_num,
		       config->fps_den, strerror(-ret));
	set_controls(st, config);
	if ((ret = map_queue(st, &st->out, err, err_size)) < 0 || (ret = map_queue(st, &st->cap, err, err_size)) < 0)
		goto error;
	for (int i = 0; i < st->cap.n; i++) {
		if ((ret = queue_capture(st, i)) < 0) {
			snprintf(err, err_size, "v4l2m2m %s: QBUF: %s", st->device, strerror(-ret));
			goto error;
		}
	}
	uint32_t types[2] = {st->out.type, st->cap.type};
	for (int i = 0; i < 2; i++) {
		if (xioctl(st, VIDIOC_STREAMON, &types[i]) < 0) {
			ret = -errno;
			snprintf(err, err_size, "v4l2m2m %s: STREAMON: %s", st->device, strerror(errno));
			goto error;
		}
		(i ? &st->cap : &st->out)->streaming = true;
	}
	pc_log("v4l2m2m %s (%s): %dx%d %.4s%s -> H.264 at %u bit/s%s%s", st->device, st->driver, st->width,
	       st->height, (const char *)&st->out_fourcc, st->mplane ? " (multi-planar)" : "", st->bitrate,
	       st->has_bitrate ? "" : " (no bitrate control: the driver's own rate)",
	       st->has_force_key_frame ? "" : ", no FORCE_KEY_FRAME: keyframes only every GOP");
	*state = st;
	return 0;

error:
	pc_v4l2m2m_destroy(st);
	return ret;
}

/* The picture, as I420, into OUTPUT buffer index. */
static void copy_picture(struct pc_v4l2m2m *st, int index, const struct pc_frame *frame)
{
	struct m2m_buf *buf = &st->out.buf[index];
	int cw = (st->width + 1) / 2, ch = (st->height + 1) / 2;
	for (int c = 0; c < 3; c++) {
		const struct m2m_component *m = &st->comp[c];
		int rows = c ? ch : st->height;
		if (c == 2 && (st->out_fourcc == V4L2_PIX_FMT_NV12 || st->out_fourcc == V4L2_PIX_FMT_NV12M))
			break; /* V went in with U */
		for (int y = 0; y < rows; y++) {
			uint8_t *dst = (uint8_t *)buf->mem[m->plane] + m->offset + (size_t)y * m->stride;
			const uint8_t *src = frame->plane[c] + (size_t)y * (size_t)frame->stride[c];
			if (c == 0) {
				memcpy(dst, src, (size_t)st->width);
			} else if (st->out_fourcc == V4L2_PIX_FMT_NV12 || st->out_fourcc == V4L2_PIX_FMT_NV12M) {
				const uint8_t *v = frame->plane[2] + (size_t)y * (size_t)frame->stride[2];
				for (int x = 0; x < cw; x++) {
					dst[2 * x] = src[x];
					dst[2 * x + 1] = v[x];
				}
			} else {
				memcpy(dst, src, (size_t)cw);
			}
		}
	}
}

/* Waits up to timeout_ms for events on the device. 1 when they came (or an error condition: the
 * ioctls then say which), 0 on timeout, -1 on error. */
static int wait_device(struct pc_v4l2m2m *st, short events, int timeout_ms)
{
	struct pollfd p = {.fd = st->fd, .events = events};
	int n = poll(&p, 1, timeout_ms < 0 ? 0 : timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -1;
	return n > 0;
}

/* A free OUTPUT buffer (reclaiming those the driver is done with), or -1 with errno set
 * (ETIMEDOUT when the driver keeps them all). */
static int free_output(struct pc_v4l2m2m *st)
{
	int64_t deadline = pc_clock_ns(CLOCK_MONOTONIC) + (int64_t)st->wait_ms * PC_NS_PER_MS;
	for (;;) {
		struct v4l2_buffer b;
		struct v4l2_plane planes[VIDEO_MAX_PLANES];
		fill_buffer_planes(st, &st->out, &b, planes, 0);
		while (xioctl(st, VIDIOC_DQBUF, &b) == 0) {
			if (b.index < (uint32_t)st->out.n)
				st->out.buf[b.index].queued = false;
			fill_buffer_planes(st, &st->out, &b, planes, 0);
		}
		if (errno != EAGAIN)
			return -1;
		for (int i = 0; i < st->out.n; i++)
			if (!st->out.buf[i].queued)
				return i;
		if (pc_clock_ns(CLOCK_MONOTONIC) >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (wait_device(st, POLLOUT, (int)((deadline - pc_clock_ns(CLOCK_MONOTONIC)) / PC_NS_PER_MS) + 1) < 0)
			return -1;
	}
}

static int au_append(struct m2m_au *au, const uint8_t *data, size_t size)
{
	if (au->size + size > au->cap) {
		size_t cap = au->cap ? au->cap : 4096;
		while (cap < au->size + size)
			cap *= 2;
		uint8_t *p = realloc(au->data, cap);
		if (!p)
			return -1;
		au->data = p;
		au->cap = cap;
	}
	memcpy(au->data + au->size, data, size);
	au->size += size;
	return 0;
}

/* The NAL units of an Annex-B buffer: what types it holds. */
struct nal_scan {
	bool idr, slice, sps, pps;
	size_t headers_end; /* where the SPS/PPS at its start end (0: none there) */
};

static void scan_nals(const uint8_t *d, size_t n, struct nal_scan *s)
{
	*s = (struct nal_scan){0};
	bool only_headers = true;
	for (size_t i = 0; i + 3 < n; i++) {
		if (d[i] != 0 || d[i + 1] != 0 || d[i + 2] != 1)
			continue;
		size_t start = i > 0 && d[i - 1] == 0 ? i - 1 : i;
		int type = d[i + 3] & 0x1f;
		if (only_headers && type != 7 && type != 8 && type != 9) {
			only_headers = false;
			s->headers_end = s->sps && s->pps ? start : 0;
		}
		s->sps |= type == 7;
		s->pps |= type == 8;
		s->idr |= type == 5;
		s->slice |= type == 1 || type == 5;
		i += 3;
	}
	if (only_headers && s->sps && s->pps)
		s->headers_end = n;
}

/* One finished CAPTURE buffer: its AU queued for handing out (SPS/PPS put before an IDR that
 * lacks them; headers alone only kept). 0, or -1 out of memory. */
static int take_au(struct pc_v4l2m2m *st, const uint8_t *data, size_t size, uint64_t picture)
{
	struct nal_scan s;
	scan_nals(data, size, &s);
	/* The newest ones: a driver that sends them again may have changed them. */
	if (s.headers_end && s.headers_end <= sizeof(st->headers)) {
		memcpy(st->headers, data, s.headers_end);
		st->headers_size = s.headers_end;
	}
	if (!s.slice)
		return 0; /* headers in a buffer of their own (or nothing): they go with the IDR */
	if (st->in_flight)
		st->in_flight--;
	if (st->pending_count == MAX_PENDING) {
		/* The driver is later than we keep: the oldest goes, the next must be an IDR. */
		st->pending_head = (st->pending_head + 1) % MAX_PENDING;
		st->pending_count--;
		st->idr_next = true;
	}
	struct m2m_au *au = &st->pending[(st->pending_head + st->pending_count) % MAX_PENDING];
	au->size = 0;
	au->picture = picture;
	if (s.idr && !(s.sps && s.pps) && st->headers_size) {
		if (au_append(au, st->headers, st->headers_size) < 0)
			return -1;
		st->headers_added++;
	}
	if (au_append(au, data, size) < 0)
		return -1;
	st->pending_count++;
	st->encoded++;
	return 0;
}

/* Dequeues every finished CAPTURE buffer. 0, or -1 (logged). */
static int collect(struct pc_v4l2m2m *st)
{
	for (;;) {
		struct v4l2_buffer b;
		struct v4l2_plane planes[VIDEO_MAX_PLANES];
		fill_buffer_planes(st, &st->cap, &b, planes, 0);
		if (xioctl(st, VIDIOC_DQBUF, &b) < 0) {
			if (errno == EAGAIN)
				return 0;
			pc_log("v4l2m2m %s: DQBUF of the stream: %s", st->device, strerror(errno));
			return -1;
		}
		if (b.index >= (uint32_t)st->cap.n) {
			pc_log("v4l2m2m %s: DQBUF gave buffer %u of %d", st->device, b.index, st->cap.n);
			return -1;
		}
		st->cap.buf[b.index].queued = false;
		size_t used = st->mplane ? planes[0].bytesused - planes[0].data_offset : b.bytesused;
		const uint8_t *data = (const uint8_t *)st->cap.buf[b.index].mem[0] + (st->mplane ? planes[0].data_offset : 0);
		if (used > st->cap.buf[b.index].len[0])
			used = 0;
		if (b.flags & V4L2_BUF_FLAG_ERROR) {
			/* That picture is lost: the next one starts again. */
			st->errors++;
			st->idr_next = true;
			if (st->in_flight)
				st->in_flight--;
		} else if (take_au(st, data, used, (uint64_t)b.timestamp.tv_sec * 1000000 + (uint64_t)b.timestamp.tv_usec) < 0) {
			pc_log("v4l2m2m %s: out of memory", st->device);
			return -1;
		}
		int ret = queue_capture(st, (int)b.index);
		if (ret < 0) {
			pc_log("v4l2m2m %s: QBUF of the stream: %s", st->device, strerror(-ret));
			return -1;
		}
	}
}

static int pc_v4l2m2m_encode(void *state, const struct pc_frame *frame, bool force_idr, struct pc_encoded *out)
{
	struct pc_v4l2m2m *st = state;
	*out = (struct pc_encoded){0};
	if (frame->width != st->width || frame->height != st->height) {
		pc_log("v4l2m2m %s: a %dx%d picture for a %dx%d encoder", st->device, frame->width, frame->height,
		       st->width, st->height);
		return -1;
	}
	if (collect(st) < 0)
		return -1;
	int index = free_output(st);
	if (index < 0) {
		pc_log("v4l2m2m %s: no picture buffer free: %s", st->device, strerror(errno));
		return -1;
	}
	if ((force_idr || st->idr_next) && st->has_force_key_frame &&
	    !set_ctrl(st, V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 1)) {
		pc_log("v4l2m2m %s: FORCE_KEY_FRAME: %s", st->device, strerror(errno));
		return -1;
	}
	st->idr_next = false;

	copy_picture(st, index, frame);
	struct v4l2_buffer b;
	struct v4l2_plane planes[VIDEO_MAX_PLANES];
	fill_buffer_planes(st, &st->out, &b, planes, index);
	b.field = V4L2_FIELD_NONE;
	b.timestamp.tv_sec = (time_t)(st->timestamp / 1000000);
	b.timestamp.tv_usec = (suseconds_t)(st->timestamp % 1000000);
	st->timestamp++;
	if (st->mplane)
		for (int p = 0; p < st->out.planes; p++)
			planes[p].bytesused = st->out_bytes[p]; // cppcheck-suppress unreadVariable ; read through b.m.planes
	else
		b.bytesused = st->out_bytes[0];
	if (xioctl(st, VIDIOC_QBUF, &b) < 0) {
		pc_log("v4l2m2m %s: QBUF of a picture: %s", st->device, strerror(errno));
		return -1;
	}
	st->out.buf[index].queued = true;
	st->queued++;
	st->in_flight++;

	/* This picture's AU, unless the driver is known to hold pictures back: then an older one
	 * (or none yet). */
	if (collect(st) < 0)
		return -1;
	int64_t deadline = pc_clock_ns(CLOCK_MONOTONIC) + (int64_t)st->wait_ms * PC_NS_PER_MS;
	while (!st->pending_count && st->in_flight > st->delay) {
		int64_t left = deadline - pc_clock_ns(CLOCK_MONOTONIC);
		int n = left > 0 ? wait_device(st, POLLIN, (int)(left / PC_NS_PER_MS) + 1) : 0;
		if (n < 0) {
			pc_log("v4l2m2m %s: poll: %s", st->device, strerror(errno));
			return -1;
		}
		if (collect(st) < 0)
			return -1;
		/* A poll that wakes with nothing (POLLERR) counts against the same deadline. */
		if (!st->pending_count && (n == 0 || pc_clock_ns(CLOCK_MONOTONIC) >= deadline)) {
			st->delay = st->in_flight;
			pc_log("v4l2m2m %s: no access unit within %d ms: the driver holds %u picture%s back", st->device,
			       st->wait_ms, st->delay, st->delay == 1 ? "" : "s");
			if (st->delay > (uint32_t)st->out.n) {
				pc_log("v4l2m2m %s: the encoder gives nothing back", st->device);
				return -1;
			}
		}
	}
	if (!st->pending_count)
		return 0;

	/* The oldest finished AU goes out; its buffer is swapped with out_au's. */
	struct m2m_au *au = &st->pending[st->pending_head];
	struct m2m_au tmp = st->out_au;
	st->out_au = *au;
	*au = tmp;
	st->pending_head = (st->pending_head + 1) % MAX_PENDING;
	st->pending_count--;
	struct nal_scan s;
	scan_nals(st->out_au.data, st->out_au.size, &s);
	/* The picture it is of: the timestamp the driver copied from the OUTPUT buffer; one that is
	 * not plausible (a driver that does not copy them) counts as this picture's. */
	uint64_t now = st->timestamp - 1;
	uint32_t late = st->out_au.picture <= now && now - st->out_au.picture <= UINT32_MAX
			    ? (uint32_t)(now - st->out_au.picture) : 0;
	*out = (struct pc_encoded){.data = st->out_au.data, .size = st->out_au.size, .keyframe = s.idr, .late = late};
	return 0;
}

static int pc_v4l2m2m_set_bitrate(void *state, uint32_t bitrate, uint32_t *applied)
{
	struct pc_v4l2m2m *st = state;
	if (!st->has_bitrate)
		return -ENOTSUP;
	uint32_t level_max = st->level->max_br_kbit * 1000;
	uint32_t b = bitrate > level_max ? level_max : bitrate < MIN_BITRATE ? MIN_BITRATE : bitrate;
	if (!set_ctrl(st, V4L2_CID_MPEG_VIDEO_BITRATE, (int32_t)b))
		return -errno;
	st->bitrate = b;
	*applied = b;
	return 0;
}

static int pc_v4l2m2m_set_fps(void *state, uint32_t num, uint32_t den)
{
	struct pc_v4l2m2m *st = state;
	if (!num || !den)
		return -EINVAL;
	if ((uint64_t)st->frame_mbs * num > (uint64_t)st->level->max_mbps * den)
		return -ERANGE;
	return set_rate(st, num, den);
}

/* Lets the encoder finish what it holds (V4L2_ENC_CMD_STOP), up to the LAST buffer. */
static void drain(struct pc_v4l2m2m *st)
{
	struct v4l2_encoder_cmd cmd = {.cmd = V4L2_ENC_CMD_STOP};
	if (xioctl(st, VIDIOC_ENCODER_CMD, &cmd) < 0)
		return; /* gone, or a driver without it: stopping the queues will do */
	int64_t deadline = pc_clock_ns(CLOCK_MONOTONIC) + (int64_t)st->wait_ms * PC_NS_PER_MS;
	while (pc_clock_ns(CLOCK_MONOTONIC) < deadline) {
		struct v4l2_buffer b;
		struct v4l2_plane planes[VIDEO_MAX_PLANES];
		fill_buffer_planes(st, &st->cap, &b, planes, 0);
		if (xioctl(st, VIDIOC_DQBUF, &b) == 0) {
			if (b.flags & V4L2_BUF_FLAG_LAST)
				return;
			continue;
		}
		if (errno != EAGAIN || wait_device(st, POLLIN, (int)((deadline - pc_clock_ns(CLOCK_MONOTONIC)) / PC_NS_PER_MS) + 1) <= 0)
			return; /* EPIPE: the last one was taken already */
	}
}

static void pc_v4l2m2m_destroy(void *state)
{
	struct pc_v4l2m2m *st = state;
	if (!st)
		return;
	if (st->fd >= 0) {
		if (st->out.streaming && st->cap.streaming)
			drain(st);
		struct m2m_queue *qs[2] = {&st->out, &st->cap};
		for (int i = 0; i < 2; i++) {
			if (qs[i]->streaming)
				xioctl(st, VIDIOC_STREAMOFF, &qs[i]->type);
			unmap_queue(st, qs[i]);
		}
		if (st->io->close(st->io->ctx, st->fd) < 0)
			pc_log("v4l2m2m %s: close: %s", st->device, strerror(errno));
	}
	for (int i = 0; i < MAX_PENDING; i++)
		free(st->pending[i].data);
	free(st->out_au.data);
	free(st);
}

void pc_v4l2m2m_stats(void *state, struct pc_v4l2m2m_stats *out)
{
	const struct pc_v4l2m2m *st = state;
	*out = (struct pc_v4l2m2m_stats){
		.mplane = st->mplane,
		.output_fourcc = st->out_fourcc,
		.delay = st->delay,
		.queued = st->queued,
		.encoded = st->encoded,
		.headers_added = st->headers_added,
		.errors = st->errors,
		.has_force_key_frame = st->has_force_key_frame,
		.has_bitrate = st->has_bitrate,
	};
	snprintf(out->device, sizeof(out->device), "%s", st->device);
	snprintf(out->driver, sizeof(out->driver), "%s", st->driver);
}

static int pc_v4l2m2m_ops_init(void **state, const struct pc_encoder_config *config, char *err, size_t err_size)
{
	return pc_v4l2m2m_init(state, config, NULL, err, err_size);
}

const struct pc_encoder_ops pc_v4l2m2m_encoder = {
	.name = "v4l2m2m",
	.init = pc_v4l2m2m_ops_init,
	.encode = pc_v4l2m2m_encode,
	.set_bitrate = pc_v4l2m2m_set_bitrate,
	.set_fps = pc_v4l2m2m_set_fps,
	.destroy = pc_v4l2m2m_destroy,
};
