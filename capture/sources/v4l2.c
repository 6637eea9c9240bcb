/* The v4l2 source (v4l2.h): a camera, through the calls of v4l2_io.h. */
#include "v4l2.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libyuv.h>
#include <linux/videodev2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <turbojpeg.h>

#include "../clock.h"
#include "../log.h"
#include "../scale.h"

/* At least this many buffers, or the camera stalls while one is converted. */
#define MIN_BUFFERS 2

struct v4l2_mapping {
	void *data;
	size_t length;
};

struct v4l2_source {
	const struct pc_v4l2_io *io;
	char device[256];
	int fd;
	enum pc_v4l2_format format;
	uint32_t fourcc;
	int width, height;       /* the driver's */
	uint32_t bytesperline;
	struct v4l2_mapping buf[PC_V4L2_BUFFERS];
	unsigned n_buf;
	bool streaming;
	struct pc_frame frame;   /* raw formats: the I420 picture */
	/* MJPEG: a picture is decoded into back, which becomes frame only when it came out whole: a
	 * refused one (truncated, say) leaves frame the last good picture, which the producer may
	 * encode again (keep-alive, keyframe). Chroma other than 4:2:0 is decoded into chroma (two
	 * planes of up to width x height: 4:4:4) and scaled into back from there. All of it is
	 * allocated at init, none per picture. */
	tjhandle tj;
	struct pc_frame back;
	uint8_t *chroma;
	uint8_t *au;             /* h264: the last access unit, copied out */
	size_t au_cap;
	bool have_seq;
	uint32_t last_seq;
	bool keyframe_unsupported, bitrate_unsupported;
	struct pc_v4l2_stats stats;
};

static const struct {
	enum pc_v4l2_format format;
	const char *name;
	uint32_t fourcc;
} formats[] = {
	/* In the order auto prefers them (ties broken by it). */
	{PC_V4L2_H264, "h264", V4L2_PIX_FMT_H264},
	{PC_V4L2_NV12, "nv12", V4L2_PIX_FMT_NV12},
	{PC_V4L2_YUYV, "yuyv", V4L2_PIX_FMT_YUYV},
	{PC_V4L2_MJPEG, "mjpeg", V4L2_PIX_FMT_MJPEG},
};
#define N_FORMATS (sizeof(formats) / sizeof(formats[0]))

bool pc_v4l2_format_parse(const char *name, enum pc_v4l2_format *out)
{
	if (strcmp(name, "auto") == 0) {
		*out = PC_V4L2_AUTO;
		return true;
	}
	for (size_t i = 0; i < N_FORMATS; i++) {
		if (strcmp(name, formats[i].name) == 0) {
			*out = formats[i].format;
			return true;
		}
	}
	return false;
}

const char *pc_v4l2_format_name(enum pc_v4l2_format format)
{
	for (size_t i = 0; i < N_FORMATS; i++)
		if (formats[i].format == format)
			return formats[i].name;
	return "auto";
}

static int xioctl(struct v4l2_source *s, unsigned long request, void *arg)
{
	int ret;
	do {
		ret = s->io->ioctl(s->io->ctx, s->fd, request, arg);
	} while (ret < 0 && errno == EINTR);
	return ret;
}

/* ---- choosing a format ---- */

struct choice {
	int index;        /* into formats[] */
	int width, height;
	bool exact;       /* the asked size */
	bool rate_ok;     /* at least the asked rate at that size */
	int64_t distance; /* from the asked size */
};

/* The size closest to want_w x want_h the camera offers in fourcc; the asked one itself when
 * the driver does not enumerate sizes (S_FMT adjusts it then). */
static void closest_size(struct v4l2_source *s, uint32_t fourcc, int want_w, int want_h, int *w, int *h)
{
	struct v4l2_frmsizeenum fs = {.index = 0, .pixel_format = fourcc};
	*w = want_w;
	*h = want_h;
	if (xioctl(s, VIDIOC_ENUM_FRAMESIZES, &fs) < 0)
		return;
	if (fs.type == V4L2_FRMSIZE_TYPE_DISCRETE) {
		int64_t best = INT64_MAX;
		for (;;) {
			int64_t d = llabs((int64_t)fs.discrete.width - want_w) + llabs((int64_t)fs.discrete.height - want_h);
			if (d < best) {
				best = d;
				*w = (int)fs.discrete.width;
				*h = (int)fs.discrete.height;
			}
			fs.index++;
			if (xioctl(s, VIDIOC_ENUM_FRAMESIZES, &fs) < 0 || fs.type != V4L2_FRMSIZE_TYPE_DISCRETE)
				break;
		}
		return;
	}
	/* Stepwise or continuous: the asked size, clamped and on the steps. */
	const struct v4l2_frmsize_stepwise *sw = &fs.stepwise;
	uint32_t step_w = sw->step_width ? sw->step_width : 1, step_h = sw->step_height ? sw->step_height : 1;
	int64_t cw = want_w, ch = want_h;
	cw = cw < (int64_t)sw->min_width ? (int64_t)sw->min_width : cw > (int64_t)sw->max_width ? (int64_t)sw->max_width : cw;
	ch = ch < (int64_t)sw->min_height ? (int64_t)sw->min_height : ch > (int64_t)sw->max_height ? (int64_t)sw->max_height : ch;
	*w = (int)(sw->min_width + (uint64_t)(cw - sw->min_width) / step_w * step_w);
	*h = (int)(sw->min_height + (uint64_t)(ch - sw->min_height) / step_h * step_h);
}

/* Whether the camera gives fourcc at w x h at least fps_num/fps_den a second (an interval of at
 * most fps_den/fps_num). True when the driver does not enumerate intervals. */
static bool rate_offered(struct v4l2_source *s, uint32_t fourcc, int w, int h, uint32_t fps_num, uint32_t fps_den)
{
	struct v4l2_frmivalenum fi = {.index = 0, .pixel_format = fourcc, .width = (uint32_t)w, .height = (uint32_t)h};
	if (xioctl(s, VIDIOC_ENUM_FRAMEINTERVALS, &fi) < 0)
		return true;
	if (fi.type != V4L2_FRMIVAL_TYPE_DISCRETE) {
		/* The shortest interval is the minimum of the range. */
		return (uint64_t)fi.stepwise.min.numerator * fps_num <= (uint64_t)fi.stepwise.min.denominator * fps_den;
	}
	for (;;) {
		if ((uint64_t)fi.discrete.numerator * fps_num <= (uint64_t)fi.discrete.denominator * fps_den)
			return true;
		fi.index++;
		if (xioctl(s, VIDIOC_ENUM_FRAMEINTERVALS, &fi) < 0 || fi.type != V4L2_FRMIVAL_TYPE_DISCRETE)
			return false;
	}
}

/* a better than b: the asked size at the asked rate, then the asked size, then the rate, then
 * the nearest size, then auto's order. */
static bool better(const struct choice *a, const struct choice *b)
{
	int ta = a->exact ? (a->rate_ok ? 0 : 1) : (a->rate_ok ? 2 : 3);
	int tb = b->exact ? (b->rate_ok ? 0 : 1) : (b->rate_ok ? 2 : 3);
	if (ta != tb)
		return ta < tb;
	if (a->distance != b->distance)
		return a->distance < b->distance;
	return a->index < b->index;
}

/* Picks the format, size (before the driver's say) for the config; -EINVAL with err when none
 * fits. */
static int choose_format(struct v4l2_source *s, enum pc_v4l2_format asked, int want_w, int want_h,
			 uint32_t fps_num, uint32_t fps_den, struct choice *out, char *err, size_t err_size)
{
	char offered[256] = "";
	size_t used = 0;
	bool found = false;

	for (uint32_t i = 0;; i++) {
		struct v4l2_fmtdesc fd = {.index = i, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
		if (xioctl(s, VIDIOC_ENUM_FMT, &fd) < 0)
			break;
		uint32_t fourcc = fd.pixelformat == V4L2_PIX_FMT_JPEG ? V4L2_PIX_FMT_MJPEG : fd.pixelformat;
		used += (size_t)snprintf(offered + used, used < sizeof(offered) ? sizeof(offered) - used : 0, "%s%.4s",
					 i ? ", " : "", (const char *)&fd.pixelformat);
		if (used >= sizeof(offered))
			used = sizeof(offered) - 1;
		for (int k = 0; k < (int)N_FORMATS; k++) {
			if (formats[k].fourcc != fourcc || (asked != PC_V4L2_AUTO && formats[k].format != asked))
				continue;
			struct choice c = {.index = k};
			closest_size(s, fourcc, want_w, want_h, &c.width, &c.height);
			c.exact = c.width == want_w && c.height == want_h;
			c.rate_ok = rate_offered(s, fourcc, c.width, c.height, fps_num, fps_den);
			c.distance = llabs((int64_t)c.width - want_w) + llabs((int64_t)c.height - want_h);
			/* auto passes H.264 through only at the asked size: it cannot be scaled. */
			if (asked == PC_V4L2_AUTO && formats[k].format == PC_V4L2_H264 && !c.exact)
				continue;
			if (!found || better(&c, out))
				*out = c;
			found = true;
		}
	}
	if (!found) {
		snprintf(err, err_size, "%s: the camera offers no %s (it offers: %s)", s->device,
			 asked == PC_V4L2_AUTO ? "format this source takes (yuyv, nv12, mjpeg, h264)" : pc_v4l2_format_name(asked),
			 *offered ? offered : "nothing");
		return -EINVAL;
	}
	return 0;
}

/* ---- setup ---- */

static int check_caps(struct v4l2_source *s, char *err, size_t err_size)
{
	struct v4l2_capability cap = {0};
	if (xioctl(s, VIDIOC_QUERYCAP, &cap) < 0) {
		int e = errno;
		snprintf(err, err_size, "%s: VIDIOC_QUERYCAP: %s (not a V4L2 device?)", s->device, strerror(e));
		return e == ENOTTY ? -ENOTTY : -e;
	}
	uint32_t caps = (cap.capabilities & V4L2_CAP_DEVICE_CAPS) ? cap.device_caps : cap.capabilities;
	if (caps & (V4L2_CAP_VIDEO_M2M | V4L2_CAP_VIDEO_M2M_MPLANE)) {
		snprintf(err, err_size, "%s (%.32s): a memory-to-memory encoder or decoder, not a camera", s->device,
			 (const char *)cap.card);
		return -ENOTTY;
	}
	if (!(caps & V4L2_CAP_VIDEO_CAPTURE)) {
		snprintf(err, err_size, "%s (%.32s): not a video capture device%s", s->device, (const char *)cap.card,
			 caps & V4L2_CAP_VIDEO_CAPTURE_MPLANE ? " this source takes (multi-planar capture is not supported)" : "");
		return -ENOTTY;
	}
	if (!(caps & V4L2_CAP_STREAMING)) {
		snprintf(err, err_size, "%s (%.32s): a capture device without streaming I/O (read() only is not supported)",
			 s->device, (const char *)cap.card);
		return -ENOTTY;
	}
	pc_log("v4l2: %s: %.32s (%.16s, %.32s)", s->device, (const char *)cap.card, (const char *)cap.driver,
	       (const char *)cap.bus_info);
	return 0;
}

static int set_format(struct v4l2_source *s, const struct choice *c, char *err, size_t err_size)
{
	struct v4l2_format f = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
	f.fmt.pix.width = (uint32_t)c->width;
	f.fmt.pix.height = (uint32_t)c->height;
	f.fmt.pix.pixelformat = s->fourcc;
	f.fmt.pix.field = V4L2_FIELD_NONE;
	if (xioctl(s, VIDIOC_S_FMT, &f) < 0) {
		int e = errno;
		snprintf(err, err_size, "%s: VIDIOC_S_FMT %s %dx%d: %s", s->device, pc_v4l2_format_name(s->format),
			 c->width, c->height, strerror(e));
		return -e;
	}
	if (f.fmt.pix.pixelformat != s->fourcc && !(s->fourcc == V4L2_PIX_FMT_MJPEG && f.fmt.pix.pixelformat == V4L2_PIX_FMT_JPEG)) {
		snprintf(err, err_size, "%s: the driver refused %s (it set %.4s)", s->device,
			 pc_v4l2_format_name(s->format), (const char *)&f.fmt.pix.pixelformat);
		return -EINVAL;
	}
	s->fourcc = f.fmt.pix.pixelformat;
	s->width = (int)f.fmt.pix.width;
	s->height = (int)f.fmt.pix.height;
	if (s->width < 16 || s->height < 16 || s->width > 8192 || s->height > 8192) {
		snprintf(err, err_size, "%s: the driver set %dx%d: not a size this source takes", s->device, s->width,
			 s->height);
		return -EINVAL;
	}
	uint32_t min_bpl = s->format == PC_V4L2_YUYV ? (uint32_t)s->width * 2 : (uint32_t)s->width;
	s->bytesperline = f.fmt.pix.bytesperline >= min_bpl ? f.fmt.pix.bytesperline : min_bpl;
	if (s->format == PC_V4L2_MJPEG && (s->width % 2 || s->height % 2)) {
		snprintf(err, err_size, "%s: the driver set MJPEG at %dx%d: odd sizes are not supported", s->device,
			 s->width, s->height);
		return -EINVAL;
	}
	if (s->width != c->width || s->height != c->height)
		pc_log("v4l2: the driver adjusted %dx%d to %dx%d", c->width, c->height, s->width, s->height);
	return 0;
}

/* The rate: what the driver makes of fps_num/fps_den is logged; a driver without one is fine. */
static void set_rate(struct v4l2_source *s, uint32_t fps_num, uint32_t fps_den)
{
	struct v4l2_streamparm p = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
	if (xioctl(s, VIDIOC_G_PARM, &p) < 0 || !(p.parm.capture.capability & V4L2_CAP_TIMEPERFRAME)) {
		pc_log("v4l2: the driver sets no frame rate: pictures come at the camera's own");
		return;
	}
	p.parm.capture.timeperframe.numerator = fps_den;
	p.parm.capture.timeperframe.denominator = fps_num;
	if (xioctl(s, VIDIOC_S_PARM, &p) < 0) {
		pc_log("v4l2: VIDIOC_S_PARM %u/%u fps: %s; the camera keeps its rate", fps_num, fps_den, strerror(errno));
		return;
	}
	const struct v4l2_fract *t = &p.parm.capture.timeperframe;
	if (t->numerator && t->denominator) {
		s->stats.fps_num = t->denominator;
		s->stats.fps_den = t->numerator;
		if ((uint64_t)t->denominator * fps_den != (uint64_t)t->numerator * fps_num)
			pc_log("v4l2: the driver set %u/%u fps (%u/%u asked)", t->denominator, t->numerator, fps_num, fps_den);
	}
}

static int start_buffers(struct v4l2_source *s, char *err, size_t err_size)
{
	struct v4l2_requestbuffers req = {
		.count = PC_V4L2_BUFFERS, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .memory = V4L2_MEMORY_MMAP};
	if (xioctl(s, VIDIOC_REQBUFS, &req) < 0) {
		int e = errno;
		snprintf(err, err_size, "%s: VIDIOC_REQBUFS (mmap): %s", s->device, strerror(e));
		return -e;
	}
	if (req.count < MIN_BUFFERS) {
		snprintf(err, err_size, "%s: the driver gave %u buffers (at least %d needed)", s->device, req.count,
			 MIN_BUFFERS);
		return -ENOMEM;
	}
	unsigned n = req.count > PC_V4L2_BUFFERS ? PC_V4L2_BUFFERS : req.count;
	/* cppcheck cannot see the driver (through a pointer) set req.count. */
	// cppcheck-suppress knownConditionTrueFalse
	for (unsigned i = 0; i < n; i++) {
		struct v4l2_buffer b = {.index = i, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .memory = V4L2_MEMORY_MMAP};
		if (xioctl(s, VIDIOC_QUERYBUF, &b) < 0) {
			int e = errno;
			snprintf(err, err_size, "%s: VIDIOC_QUERYBUF %u: %s", s->device, i, strerror(e));
			return -e;
		}
		void *p = s->io->mmap(s->io->ctx, b.length, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, (off_t)b.m.offset);
		if (p == MAP_FAILED) {
			int e = errno;
			snprintf(err, err_size, "%s: mmap of buffer %u (%u bytes): %s", s->device, i, b.length, strerror(e));
			return -e;
		}
		s->buf[i] = (struct v4l2_mapping){.data = p, .length = b.length};
		s->n_buf = i + 1;
		if (xioctl(s, VIDIOC_QBUF, &b) < 0) {
			int e = errno;
			snprintf(err, err_size, "%s: VIDIOC_QBUF %u: %s", s->device, i, strerror(e));
			return -e;
		}
	}
	int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
	if (xioctl(s, VIDIOC_STREAMON, &type) < 0) {
		int e = errno;
		snprintf(err, err_size, "%s: VIDIOC_STREAMON: %s", s->device, strerror(e));
		return -e;
	}
	s->streaming = true;
	return 0;
}

static void v4l2_destroy(void *state)
{
	struct v4l2_source *s = state;
	if (!s)
		return;
	if (s->streaming) {
		int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
		if (xioctl(s, VIDIOC_STREAMOFF, &type) < 0 && errno != ENODEV)
			pc_log("v4l2: %s: VIDIOC_STREAMOFF: %s", s->device, strerror(errno));
	}
	for (unsigned i = 0; i < s->n_buf; i++)
		if (s->io->munmap(s->io->ctx, s->buf[i].data, s->buf[i].length) < 0)
			pc_log("v4l2: munmap: %s", strerror(errno));
	if (s->n_buf) {
		/* Frees the driver's buffers (mapped ones are freed by the munmaps and the close anyway). */
		struct v4l2_requestbuffers req = {.count = 0, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .memory = V4L2_MEMORY_MMAP};
		(void)xioctl(s, VIDIOC_REQBUFS, &req);
	}
	if (s->fd >= 0 && s->io->close(s->io->ctx, s->fd) < 0)
		pc_log("v4l2: close %s: %s", s->device, strerror(errno));
	pc_frame_free(&s->frame);
	pc_frame_free(&s->back);
	free(s->chroma);
	if (s->tj)
		tjDestroy(s->tj);
	free(s->au);
	free(s);
}

int pc_v4l2_init(void **state, const struct pc_source_config *config, const struct pc_v4l2_options *options,
		 char *err, size_t err_size)
{
	struct v4l2_source *s = calloc(1, sizeof(*s));
	int ret;
	if (!s) {
		snprintf(err, err_size, "v4l2: out of memory");
		return -ENOMEM;
	}
	s->fd = -1;
	s->io = options && options->io ? options->io : &pc_v4l2_io_system;
	snprintf(s->device, sizeof(s->device), "%s", options && options->device ? options->device : PC_V4L2_DEFAULT_DEVICE);
	enum pc_v4l2_format asked = options ? options->format : PC_V4L2_AUTO;
	int want_w = config->width ? config->width : PC_V4L2_DEFAULT_WIDTH;
	int want_h = config->height ? config->height : PC_V4L2_DEFAULT_HEIGHT;
	uint32_t fps_num = config->fps_num ? config->fps_num : 30, fps_den = config->fps_den ? config->fps_den : 1;

	s->fd = s->io->open(s->io->ctx, s->device, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (s->fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ENODEV || e == ENXIO)
			snprintf(err, err_size, "%s: no such device (is the camera plugged in? ls /dev/video*)", s->device);
		else
			snprintf(err, err_size, "open %s: %s", s->device, strerror(e));
		ret = -e;
		goto error;
	}
	ret = check_caps(s, err, err_size);
	if (ret < 0)
		goto error;
	struct choice c = {0};
	ret = choose_format(s, asked, want_w, want_h, fps_num, fps_den, &c, err, err_size);
	if (ret < 0)
		goto error;
	s->format = formats[c.index].format;
	s->fourcc = formats[c.index].fourcc;
	pc_log("v4l2: %s %dx%d%s chosen for %dx%d at %u/%u fps (%s%s)", pc_v4l2_format_name(s->format), c.width,
	       c.height, c.rate_ok ? "" : " (slower than asked)", want_w, want_h, fps_num, fps_den,
	       asked == PC_V4L2_AUTO ? "auto" : "asked",
	       s->format == PC_V4L2_H264 ? ": the camera's H.264 passed through, no encoding" : "");
	ret = set_format(s, &c, err, err_size);
	if (ret < 0)
		goto error;
	set_rate(s, fps_num, fps_den);
	if (s->format != PC_V4L2_H264 && pc_frame_alloc(&s->frame, s->width & ~1, s->height & ~1) < 0) {
		snprintf(err, err_size, "v4l2: out of memory for a %dx%d picture", s->width, s->height);
		ret = -ENOMEM;
		goto error;
	}
	if (s->format == PC_V4L2_H264)
		s->frame = (struct pc_frame){.width = s->width, .height = s->height};
	if (s->format == PC_V4L2_MJPEG) {
		s->tj = tjInitDecompress();
		if (!s->tj) {
			snprintf(err, err_size, "v4l2: TurboJPEG: %s", tjGetErrorStr2(NULL));
			ret = -ENOMEM;
			goto error;
		}
		s->chroma = malloc(2 * (size_t)s->width * (size_t)s->height);
		if (!s->chroma || pc_frame_alloc(&s->back, s->width, s->height) < 0) {
			snprintf(err, err_size, "v4l2: out of memory for a %dx%d JPEG's planes", s->width, s->height);
			ret = -ENOMEM;
			goto error;
		}
	}
	ret = start_buffers(s, err, err_size);
	if (ret < 0)
		goto error;
	s->stats.format = s->format;
	s->stats.width = s->width;
	s->stats.height = s->height;
	*state = s;
	return 0;

error:
	if (s->format == PC_V4L2_H264)
		s->frame = (struct pc_frame){0};
	v4l2_destroy(s);
	*state = NULL;
	return ret < 0 ? ret : -EIO;
}

static int v4l2_init_default(void **state, const struct pc_source_config *config, char *err, size_t err_size)
{
	return pc_v4l2_init(state, config, NULL, err, err_size);
}

/* ---- pictures ---- */

static int v4l2_wait_fd(void *state)
{
	return ((struct v4l2_source *)state)->fd;
}

/* Gives buffer b back to the driver. 0, or the errno. */
static int requeue(struct v4l2_source *s, struct v4l2_buffer *b)
{
	struct v4l2_buffer q = {.index = b->index, .type = b->type, .memory = b->memory};
	if (xioctl(s, VIDIOC_QBUF, &q) < 0)
		return errno;
	s->stats.requeued++;
	return 0;
}

static int fail(struct v4l2_source *s, int e, const char *what, char *err, size_t err_size)
{
	if (e == ENODEV)
		snprintf(err, err_size, "v4l2: %s is gone (%s: %s): the camera was unplugged?", s->device, what,
			 strerror(e));
	else
		snprintf(err, err_size, "v4l2: %s: %s: %s", s->device, what, strerror(e));
	return -e;
}

/* CLOCK_REALTIME of buffer b's capture. */
static int64_t capture_time(struct v4l2_source *s, const struct v4l2_buffer *b)
{
	int64_t now_real = s->io->clock_ns(s->io->ctx, CLOCK_REALTIME);
	if ((b->flags & V4L2_BUF_FLAG_TIMESTAMP_MASK) != V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC)
		return now_real;
	int64_t now_mono = s->io->clock_ns(s->io->ctx, CLOCK_MONOTONIC);
	int64_t taken = (int64_t)b->timestamp.tv_sec * PC_NS_PER_SEC + (int64_t)b->timestamp.tv_usec * 1000;
	return now_real - (now_mono - taken);
}

/* Whether an Annex-B access unit holds an IDR slice (nal_unit_type 5). */
static bool has_idr(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 3 < n; i++)
		if (p[i] == 0 && p[i + 1] == 0 && p[i + 2] == 1 && (p[i + 3] & 0x1f) == 5)
			return true;
	return false;
}

/* Decodes a JPEG of used bytes at src into s->back and makes that s->frame. False, with why,
 * when it is not a whole picture of the negotiated size. */
static bool decode_mjpeg(struct v4l2_source *s, const uint8_t *src, size_t used, char *why, size_t why_size)
{
	int w = 0, h = 0, subsamp = -1, colorspace = -1;
	if (tjDecompressHeader3(s->tj, src, used, &w, &h, &subsamp, &colorspace) < 0) {
		snprintf(why, why_size, "%s", tjGetErrorStr2(s->tj));
		return false;
	}
	/* A cut picture may hold only tables: that "succeeds" without a size (w, h stay 0). */
	if (w != s->width || h != s->height) {
		snprintf(why, why_size, "a %dx%d JPEG, %dx%d negotiated", w, h, s->width, s->height);
		return false;
	}
	if (colorspace != TJCS_YCbCr && colorspace != TJCS_GRAY) {
		snprintf(why, why_size, "a JPEG in colorspace %d, not YCbCr or grayscale", colorspace);
		return false;
	}
	struct pc_frame *f = &s->back;
	size_t plane = (size_t)s->width * (size_t)s->height;
	/* The luma always goes straight into the frame, 4:2:0's chroma too: no copy. */
	bool direct = subsamp == TJSAMP_420 || subsamp == TJSAMP_GRAY;
	unsigned char *planes[3] = {f->plane[0], direct ? f->plane[1] : s->chroma,
				    direct ? f->plane[2] : s->chroma + plane};
	int strides[3] = {f->stride[0], direct ? f->stride[1] : 0, direct ? f->stride[2] : 0};
	if (tjDecompressToYUVPlanes(s->tj, src, used, planes, s->width, strides, s->height, 0) < 0) {
		const char *msg = tjGetErrorStr2(s->tj);
		/* Many webcams leave bytes between a picture's data and its end marker: libjpeg warns,
		 * the picture is whole. Any other warning (a truncated picture: the rest filled grey,
		 * corrupt data) or error refuses it. */
		if (tjGetErrorCode(s->tj) != TJERR_WARNING || !strstr(msg, "extraneous bytes")) {
			snprintf(why, why_size, "%s", msg);
			return false;
		}
	}
	if (subsamp == TJSAMP_GRAY) {
		SetPlane(f->plane[1], f->stride[1], f->width / 2, f->height / 2, 128);
		SetPlane(f->plane[2], f->stride[2], f->width / 2, f->height / 2, 128);
	} else if (!direct) {
		/* 4:2:2, 4:4:4, 4:4:0, 4:1:1: the chroma scaled to 4:2:0's planes (half the width and
		 * height) as libyuv's I422ToI420 and I444ToI420 scale theirs; the luma is in place. */
		int cw = tjPlaneWidth(1, s->width, subsamp), ch = tjPlaneHeight(1, s->height, subsamp);
		for (int i = 1; i < 3; i++)
			ScalePlane(planes[i], cw, cw, ch, f->plane[i], f->stride[i], f->width / 2, f->height / 2,
				   kFilterBilinear);
	}
	struct pc_frame done = s->back;
	s->back = s->frame;
	s->frame = done;
	return true;
}

/* Converts buffer b's raw picture into s->frame. False when it is not a whole picture; why says
 * more when there is more to say. */
static bool convert(struct v4l2_source *s, const struct v4l2_buffer *b, char *why, size_t why_size)
{
	const uint8_t *src = s->buf[b->index].data;
	size_t used = b->bytesused ? b->bytesused : s->buf[b->index].length;
	struct pc_frame *f = &s->frame;
	size_t plane = (size_t)s->bytesperline * (size_t)s->height;
	if (used > s->buf[b->index].length)
		return false;
	switch (s->format) {
	case PC_V4L2_YUYV:
		if (used < plane)
			return false;
		return YUY2ToI420(src, (int)s->bytesperline, f->plane[0], f->stride[0], f->plane[1], f->stride[1],
				  f->plane[2], f->stride[2], f->width, f->height) == 0;
	case PC_V4L2_NV12:
		if (used < plane + plane / 2)
			return false;
		return NV12ToI420(src, (int)s->bytesperline, src + plane, (int)s->bytesperline, f->plane[0], f->stride[0],
				  f->plane[1], f->stride[1], f->plane[2], f->stride[2], f->width, f->height) == 0;
	case PC_V4L2_MJPEG:
		return decode_mjpeg(s, src, used, why, why_size);
	default:
		return false;
	}
}

/* An H.264 buffer: copied out (so it goes back to the camera at once) into out. */
static int take_au(struct v4l2_source *s, struct v4l2_buffer *b, struct pc_source_picture *out, char *err,
		   size_t err_size)
{
	size_t used = b->bytesused;
	if (used > s->buf[b->index].length)
		used = s->buf[b->index].length;
	if (used > s->au_cap) {
		uint8_t *p = realloc(s->au, used);
		if (!p) {
			requeue(s, b);
			snprintf(err, err_size, "v4l2: out of memory for a %zu-byte access unit", used);
			return -ENOMEM;
		}
		s->au = p;
		s->au_cap = used;
	}
	memcpy(s->au, s->buf[b->index].data, used);
	*out = (struct pc_source_picture){
		.frame = &s->frame,
		.capture_ns = capture_time(s, b),
		.damage = {0, 0, s->width, s->height},
		.au = s->au,
		.au_size = used,
		.keyframe = (b->flags & V4L2_BUF_FLAG_KEYFRAME) || has_idr(s->au, used),
	};
	int e = requeue(s, b);
	if (e)
		return fail(s, e, "VIDIOC_QBUF", err, err_size);
	return used ? 1 : 0;
}

static int v4l2_take(void *state, struct pc_source_picture *out, char *err, size_t err_size)
{
	struct v4l2_source *s = state;
	struct v4l2_buffer newest;
	bool have = false;
	int e;

	for (;;) {
		struct v4l2_buffer b = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .memory = V4L2_MEMORY_MMAP};
		if (xioctl(s, VIDIOC_DQBUF, &b) < 0) {
			e = errno;
			if (e == EAGAIN)
				break;
			if (have)
				requeue(s, &newest);
			return fail(s, e, "VIDIOC_DQBUF", err, err_size);
		}
		if (b.index >= s->n_buf) {
			snprintf(err, err_size, "v4l2: %s: the driver returned buffer %u of %u", s->device, b.index, s->n_buf);
			return -EIO;
		}
		s->stats.frames++;
		if (s->have_seq && b.sequence - s->last_seq > 1 && b.sequence - s->last_seq < UINT32_MAX / 2)
			s->stats.dropped += b.sequence - s->last_seq - 1;
		s->have_seq = true;
		s->last_seq = b.sequence;
		if (b.flags & V4L2_BUF_FLAG_ERROR) {
			s->stats.corrupt++;
			if ((e = requeue(s, &b)) != 0)
				return fail(s, e, "VIDIOC_QBUF", err, err_size);
			continue;
		}
		if (s->format == PC_V4L2_H264) {
			int ret = take_au(s, &b, out, err, err_size);
			if (ret != 0)
				return ret;
			continue; /* an empty buffer: look for the next */
		}
		if (have) {
			s->stats.coalesced++;
			if ((e = requeue(s, &newest)) != 0)
				return fail(s, e, "VIDIOC_QBUF", err, err_size);
		}
		newest = b;
		have = true;
	}
	if (!have)
		return 0;
	char why[160] = "";
	bool ok = convert(s, &newest, why, sizeof(why));
	if (!ok && s->stats.corrupt++ == 0)
		pc_log("v4l2: %s: a %s picture of %u bytes could not be converted%s%s%s: skipped (later ones are only counted)",
		       s->device, pc_v4l2_format_name(s->format), newest.bytesused, *why ? " (" : "", why,
		       *why ? ")" : "");
	*out = (struct pc_source_picture){
		.frame = &s->frame,
		.capture_ns = capture_time(s, &newest),
		.damage = {0, 0, s->frame.width, s->frame.height},
	};
	if ((e = requeue(s, &newest)) != 0)
		return fail(s, e, "VIDIOC_QBUF", err, err_size);
	return ok ? 1 : 0;
}

/* ---- control of a camera's encoder ---- */

static int set_ctrl(struct v4l2_source *s, uint32_t id, int32_t value)
{
	struct v4l2_control c = {.id = id, .value = value};
	if (xioctl(s, VIDIOC_S_CTRL, &c) == 0)
		return 0;
	return errno == EINVAL || errno == ENOTTY || errno == EACCES ? -ENOTSUP : -errno;
}

static int v4l2_request_keyframe(void *state)
{
	struct v4l2_source *s = state;
	if (s->format != PC_V4L2_H264 || s->keyframe_unsupported)
		return -ENOTSUP;
	int ret = set_ctrl(s, V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 0);
	if (ret == -ENOTSUP) {
		s->keyframe_unsupported = true;
		pc_log("v4l2: %s cannot be asked for a keyframe (no V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME): viewers wait for its next one",
		       s->device);
	}
	return ret;
}

static int v4l2_set_bitrate(void *state, uint32_t bitrate)
{
	struct v4l2_source *s = state;
	if (s->format != PC_V4L2_H264 || s->bitrate_unsupported)
		return -ENOTSUP;
	int ret = set_ctrl(s, V4L2_CID_MPEG_VIDEO_BITRATE, bitrate > INT32_MAX ? INT32_MAX : (int32_t)bitrate);
	if (ret == -ENOTSUP) {
		s->bitrate_unsupported = true;
		pc_log("v4l2: %s takes no bitrate (no V4L2_CID_MPEG_VIDEO_BITRATE): it keeps its own", s->device);
	}
	return ret;
}

void pc_v4l2_stats(void *state, struct pc_v4l2_stats *out)
{
	*out = ((struct v4l2_source *)state)->stats;
}

const struct pc_source_ops pc_v4l2_source = {
	.name = "v4l2",
	.init = v4l2_init_default,
	.destroy = v4l2_destroy,
	.wait_fd = v4l2_wait_fd,
	.take = v4l2_take,
	.request_keyframe = v4l2_request_keyframe,
	.set_bitrate = v4l2_set_bitrate,
};
