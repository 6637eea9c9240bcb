/* The v4l2 source against a fake camera: the calls of v4l2_io.h answered from a table of
 * formats, sizes and rates, with buffers the test fills (known YUYV and NV12 colours, JPEGs from
 * TurboJPEG's compressor in each subsampling and from ffmpeg, H.264 access units from x264) at
 * timestamps it picks. No /dev/video* here: what a real driver does beyond this stand-in is not verified
 * (docs/capture-v4l2.md). */
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "../clock.h"
#include "../encoders/encoder.h"
#include "../scale.h"
#include "../sources/v4l2.h"
#include "check.h"

#define MAX_SIZES 4
#define FAKE_BUFS 8

struct fake_size {
	int w, h;
	uint32_t fps[3]; /* discrete rates offered, 0-terminated */
};

struct fake_format {
	uint32_t fourcc;
	struct fake_size sizes[MAX_SIZES];
};

struct fake_buf {
	uint8_t *mem;
	size_t len;
	bool queued, done;
	struct v4l2_buffer v;
};

struct fake {
	const struct fake_format *formats;
	int n_formats;
	uint32_t caps;
	int adjust_w, adjust_h;  /* S_FMT sets this size instead, when not 0 */
	bool has_ctrls;          /* FORCE_KEY_FRAME and BITRATE */
	int efd;                 /* the fd handed out: readable while a buffer is done */
	bool open;
	uint32_t fourcc;
	int w, h;
	uint32_t bpl, sizeimage;
	struct fake_buf buf[FAKE_BUFS];
	int n_buf;
	int done_q[64];
	int q_head, q_tail;
	bool streaming, gone;
	int enodev_after;        /* DQBUFs before the camera is unplugged; 0 = never */
	int dqbufs, qbufs_streaming, mmaps, munmaps, closes;
	int keyframe_requests;
	int32_t bitrate;
	uint32_t parm_num, parm_den;
	int64_t mono_ns, real_ns;
};

static const struct fake_format camera_h264[] = {
	{V4L2_PIX_FMT_YUYV, {{640, 480, {30}}, {1280, 720, {10}}, {1920, 1080, {5}}}},
	{V4L2_PIX_FMT_MJPEG, {{640, 480, {30}}, {1280, 720, {30, 15}}, {1920, 1080, {30}}}},
	{V4L2_PIX_FMT_H264, {{1280, 720, {30}}, {1920, 1080, {30}}}},
	{V4L2_PIX_FMT_NV12, {{640, 480, {30}}, {1280, 720, {10}}}},
	{V4L2_PIX_FMT_SRGGB8, {{640, 480, {30}}}}, /* a format the source does not take */
};
/* The same without H.264 (the usual USB webcam). */
static const struct fake_format camera_plain[] = {
	{V4L2_PIX_FMT_YUYV, {{640, 480, {30}}, {1280, 720, {10}}, {1920, 1080, {5}}}},
	{V4L2_PIX_FMT_MJPEG, {{640, 480, {30}}, {1280, 720, {30, 15}}, {1920, 1080, {30}}}},
	{V4L2_PIX_FMT_NV12, {{640, 480, {30}}, {1280, 720, {10}}}},
};

static void fake_init(struct fake *f, const struct fake_format *formats, int n)
{
	*f = (struct fake){
		.formats = formats,
		.n_formats = n,
		.caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING,
		.has_ctrls = true,
		.efd = -1,
		.mono_ns = 1000 * PC_NS_PER_SEC,
		.real_ns = INT64_C(1700000000) * PC_NS_PER_SEC,
	};
}

static void fake_free(struct fake *f)
{
	for (int i = 0; i < f->n_buf; i++)
		free(f->buf[i].mem);
	f->n_buf = 0;
	if (f->efd >= 0 && !f->open)
		close(f->efd);
}

static const struct fake_format *fake_find(const struct fake *f, uint32_t fourcc)
{
	for (int i = 0; i < f->n_formats; i++)
		if (f->formats[i].fourcc == fourcc)
			return &f->formats[i];
	return NULL;
}

static int fake_open(void *ctx, const char *path, int flags)
{
	struct fake *f = ctx;
	(void)flags;
	if (strcmp(path, "/dev/fake0") != 0) {
		errno = ENOENT;
		return -1;
	}
	f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC | EFD_SEMAPHORE);
	f->open = f->efd >= 0;
	return f->efd;
}

static int fake_close(void *ctx, int fd)
{
	struct fake *f = ctx;
	f->closes++;
	f->open = false;
	f->efd = -1;
	return close(fd);
}

static int fail_errno(int e)
{
	errno = e;
	return -1;
}

static int fake_ioctl(void *ctx, int fd, unsigned long req, void *arg)
{
	struct fake *f = ctx;
	if (fd != f->efd)
		return fail_errno(EBADF);
	if (f->gone && req != VIDIOC_STREAMOFF && req != VIDIOC_REQBUFS)
		return fail_errno(ENODEV);
	switch (req) {
	case VIDIOC_QUERYCAP: {
		struct v4l2_capability *c = arg;
		memset(c, 0, sizeof(*c));
		snprintf((char *)c->driver, sizeof(c->driver), "fake");
		snprintf((char *)c->card, sizeof(c->card), "Fake Camera");
		c->capabilities = f->caps | V4L2_CAP_DEVICE_CAPS;
		c->device_caps = f->caps;
		return 0;
	}
	case VIDIOC_ENUM_FMT: {
		struct v4l2_fmtdesc *d = arg;
		if (d->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || d->index >= (uint32_t)f->n_formats)
			return fail_errno(EINVAL);
		d->pixelformat = f->formats[d->index].fourcc;
		return 0;
	}
	case VIDIOC_ENUM_FRAMESIZES: {
		struct v4l2_frmsizeenum *s = arg;
		const struct fake_format *ff = fake_find(f, s->pixel_format);
		if (!ff || s->index >= MAX_SIZES || !ff->sizes[s->index].w)
			return fail_errno(EINVAL);
		s->type = V4L2_FRMSIZE_TYPE_DISCRETE;
		s->discrete.width = (uint32_t)ff->sizes[s->index].w;
		s->discrete.height = (uint32_t)ff->sizes[s->index].h;
		return 0;
	}
	case VIDIOC_ENUM_FRAMEINTERVALS: {
		struct v4l2_frmivalenum *iv = arg;
		const struct fake_format *ff = fake_find(f, iv->pixel_format);
		for (int i = 0; ff && i < MAX_SIZES; i++) {
			const struct fake_size *sz = &ff->sizes[i];
			if (sz->w != (int)iv->width || sz->h != (int)iv->height)
				continue;
			if (iv->index >= 3 || !sz->fps[iv->index])
				return fail_errno(EINVAL);
			iv->type = V4L2_FRMIVAL_TYPE_DISCRETE;
			iv->discrete.numerator = 1;
			iv->discrete.denominator = sz->fps[iv->index];
			return 0;
		}
		return fail_errno(EINVAL);
	}
	case VIDIOC_S_FMT: {
		struct v4l2_format *fm = arg;
		if (f->streaming || f->n_buf)
			return fail_errno(EBUSY);
		if (!fake_find(f, fm->fmt.pix.pixelformat))
			fm->fmt.pix.pixelformat = f->formats[0].fourcc; /* as drivers do */
		if (f->adjust_w) {
			fm->fmt.pix.width = (uint32_t)f->adjust_w;
			fm->fmt.pix.height = (uint32_t)f->adjust_h;
		}
		f->fourcc = fm->fmt.pix.pixelformat;
		f->w = (int)fm->fmt.pix.width;
		f->h = (int)fm->fmt.pix.height;
		/* Rows padded to 64 bytes: the source must use bytesperline, not the width. */
		uint32_t row = f->fourcc == V4L2_PIX_FMT_YUYV ? (uint32_t)f->w * 2 : (uint32_t)f->w;
		f->bpl = (row + 63) & ~63u;
		f->sizeimage = f->fourcc == V4L2_PIX_FMT_NV12 ? f->bpl * (uint32_t)f->h * 3 / 2
			       : f->fourcc == V4L2_PIX_FMT_YUYV ? f->bpl * (uint32_t)f->h
								 : (uint32_t)(f->w * f->h * 2);
		fm->fmt.pix.bytesperline = f->fourcc == V4L2_PIX_FMT_MJPEG || f->fourcc == V4L2_PIX_FMT_H264 ? 0 : f->bpl;
		fm->fmt.pix.sizeimage = f->sizeimage;
		return 0;
	}
	case VIDIOC_G_PARM:
	case VIDIOC_S_PARM: {
		struct v4l2_streamparm *p = arg;
		p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
		if (req == VIDIOC_S_PARM) {
			/* The nearest rate offered at the size: the fastest not above the asked. */
			const struct fake_format *ff = fake_find(f, f->fourcc);
			uint32_t want = p->parm.capture.timeperframe.denominator / p->parm.capture.timeperframe.numerator;
			uint32_t got = 0;
			for (int i = 0; ff && i < MAX_SIZES; i++)
				if (ff->sizes[i].w == f->w && ff->sizes[i].h == f->h)
					for (int k = 0; k < 3 && ff->sizes[i].fps[k]; k++)
						if (ff->sizes[i].fps[k] <= want && ff->sizes[i].fps[k] > got)
							got = ff->sizes[i].fps[k];
			f->parm_num = 1;
			f->parm_den = got ? got : 30;
		}
		p->parm.capture.timeperframe.numerator = f->parm_num ? f->parm_num : 1;
		p->parm.capture.timeperframe.denominator = f->parm_den ? f->parm_den : 30;
		return 0;
	}
	case VIDIOC_REQBUFS: {
		struct v4l2_requestbuffers *r = arg;
		if (r->count == 0) {
			for (int i = 0; i < f->n_buf; i++)
				free(f->buf[i].mem);
			f->n_buf = 0;
			return 0;
		}
		f->n_buf = r->count > FAKE_BUFS ? FAKE_BUFS : (int)r->count;
		for (int i = 0; i < f->n_buf; i++)
			f->buf[i] = (struct fake_buf){.mem = calloc(1, f->sizeimage), .len = f->sizeimage};
		r->count = (uint32_t)f->n_buf;
		return 0;
	}
	case VIDIOC_QUERYBUF: {
		struct v4l2_buffer *b = arg;
		if (b->index >= (uint32_t)f->n_buf)
			return fail_errno(EINVAL);
		b->length = (uint32_t)f->buf[b->index].len;
		b->m.offset = b->index * 4096u;
		return 0;
	}
	case VIDIOC_QBUF: {
		struct v4l2_buffer *b = arg;
		if (b->index >= (uint32_t)f->n_buf || f->buf[b->index].queued || f->buf[b->index].done)
			return fail_errno(EINVAL);
		f->buf[b->index].queued = true;
		if (f->streaming)
			f->qbufs_streaming++;
		return 0;
	}
	case VIDIOC_DQBUF: {
		struct v4l2_buffer *b = arg;
		if (f->enodev_after && f->dqbufs >= f->enodev_after) {
			f->gone = true;
			return fail_errno(ENODEV);
		}
		if (f->q_head == f->q_tail)
			return fail_errno(EAGAIN);
		uint64_t one;
		if (read(f->efd, &one, sizeof(one)) != sizeof(one))
			return fail_errno(EIO);
		int i = f->done_q[f->q_head++ % 64];
		f->buf[i].done = false;
		*b = f->buf[i].v;
		f->dqbufs++;
		return 0;
	}
	case VIDIOC_STREAMON:
		f->streaming = true;
		return 0;
	case VIDIOC_STREAMOFF:
		f->streaming = false;
		for (int i = 0; i < f->n_buf; i++)
			f->buf[i].queued = f->buf[i].done = false;
		f->q_head = f->q_tail;
		return 0;
	case VIDIOC_S_CTRL: {
		struct v4l2_control *c = arg;
		if (!f->has_ctrls)
			return fail_errno(EINVAL);
		if (c->id == V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME)
			f->keyframe_requests++;
		else if (c->id == V4L2_CID_MPEG_VIDEO_BITRATE)
			f->bitrate = c->value;
		else
			return fail_errno(EINVAL);
		return 0;
	}
	default:
		return fail_errno(ENOTTY);
	}
}

static void *fake_mmap(void *ctx, size_t length, int prot, int flags, int fd, off_t offset)
{
	struct fake *f = ctx;
	(void)prot;
	(void)flags;
	int i = (int)(offset / 4096);
	if (fd != f->efd || i >= f->n_buf || length != f->buf[i].len) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	f->mmaps++;
	return f->buf[i].mem;
}

static int fake_munmap(void *ctx, void *addr, size_t length)
{
	struct fake *f = ctx;
	(void)addr;
	(void)length;
	f->munmaps++;
	return 0;
}

static int64_t fake_clock(void *ctx, clockid_t clock)
{
	struct fake *f = ctx;
	return clock == CLOCK_MONOTONIC ? f->mono_ns : f->real_ns;
}

/* The camera fills its first queued buffer with data: false when none is queued. */
static bool fake_produce(struct fake *f, const void *data, size_t size, uint32_t seq, int64_t mono_ns,
			 uint32_t flags)
{
	for (int i = 0; i < f->n_buf; i++) {
		struct fake_buf *b = &f->buf[i];
		if (!b->queued || size > b->len)
			continue;
		memcpy(b->mem, data, size);
		b->queued = false;
		b->done = true;
		b->v = (struct v4l2_buffer){
			.index = (uint32_t)i,
			.type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
			.memory = V4L2_MEMORY_MMAP,
			.bytesused = (uint32_t)size,
			.flags = flags,
			.sequence = seq,
			.timestamp = {.tv_sec = mono_ns / PC_NS_PER_SEC, .tv_usec = mono_ns % PC_NS_PER_SEC / 1000},
		};
		f->done_q[f->q_tail++ % 64] = i;
		uint64_t one = 1;
		return write(f->efd, &one, sizeof(one)) == sizeof(one);
	}
	return false;
}

static struct pc_v4l2_io fake_io(struct fake *f)
{
	return (struct pc_v4l2_io){
		.ctx = f,
		.open = fake_open,
		.close = fake_close,
		.ioctl = fake_ioctl,
		.mmap = fake_mmap,
		.munmap = fake_munmap,
		.clock_ns = fake_clock,
	};
}

/* Opens the fake camera asking for w x h at fps in format. */
static int open_fake(struct fake *f, struct pc_v4l2_io *io, void **state, enum pc_v4l2_format format, int w, int h,
		     uint32_t fps, char *err, size_t err_size)
{
	*io = fake_io(f);
	struct pc_source_config config = {.width = w, .height = h, .fps_num = fps, .fps_den = 1};
	struct pc_v4l2_options options = {.device = "/dev/fake0", .format = format, .io = io};
	return pc_v4l2_init(state, &config, &options, err, err_size);
}

static void test_v4l2_format_choice(void)
{
	static const struct {
		bool h264_camera;
		enum pc_v4l2_format asked;
		int w, h;
		uint32_t fps;
		enum pc_v4l2_format want;
		int want_w, want_h;
		uint32_t want_fps;
	} cases[] = {
		{true, PC_V4L2_AUTO, 1280, 720, 30, PC_V4L2_H264, 1280, 720, 30},   /* the camera encodes */
		{true, PC_V4L2_AUTO, 1920, 1080, 30, PC_V4L2_H264, 1920, 1080, 30},
		{true, PC_V4L2_AUTO, 640, 480, 30, PC_V4L2_NV12, 640, 480, 30},      /* no H.264 at that size */
		{true, PC_V4L2_AUTO, 1024, 576, 30, PC_V4L2_MJPEG, 1280, 720, 30},   /* nearest at the rate, not H.264 */
		{false, PC_V4L2_AUTO, 1280, 720, 30, PC_V4L2_MJPEG, 1280, 720, 30},  /* raw only at 10 fps */
		{false, PC_V4L2_AUTO, 1280, 720, 10, PC_V4L2_NV12, 1280, 720, 10},   /* raw at the rate: NV12 first */
		{false, PC_V4L2_AUTO, 1920, 1080, 30, PC_V4L2_MJPEG, 1920, 1080, 30},
		{false, PC_V4L2_YUYV, 1920, 1080, 30, PC_V4L2_YUYV, 1920, 1080, 5}, /* asked: slower, said */
		{false, PC_V4L2_NV12, 800, 600, 30, PC_V4L2_NV12, 640, 480, 30},    /* the nearest size */
		{true, PC_V4L2_H264, 640, 480, 30, PC_V4L2_H264, 1280, 720, 30},    /* asked: the nearest */
		{true, PC_V4L2_MJPEG, 1280, 720, 15, PC_V4L2_MJPEG, 1280, 720, 15},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake f;
		struct pc_v4l2_io io;
		void *s = NULL;
		char err[256] = "";
		if (cases[i].h264_camera)
			fake_init(&f, camera_h264, sizeof(camera_h264) / sizeof(camera_h264[0]));
		else
			fake_init(&f, camera_plain, sizeof(camera_plain) / sizeof(camera_plain[0]));
		int ret = open_fake(&f, &io, &s, cases[i].asked, cases[i].w, cases[i].h, cases[i].fps, err, sizeof(err));
		CHECK_EQ(ret, 0);
		if (ret == 0) {
			struct pc_v4l2_stats st;
			pc_v4l2_stats(s, &st);
			if (st.format != cases[i].want || st.width != cases[i].want_w)
				fprintf(stderr, "    case %zu: got %s %dx%d\n", i, pc_v4l2_format_name(st.format), st.width,
					st.height);
			CHECK_EQ(st.format, cases[i].want);
			CHECK_EQ(st.width, cases[i].want_w);
			CHECK_EQ(st.height, cases[i].want_h);
			CHECK_EQ(st.fps_num, cases[i].want_fps);
			CHECK_EQ(st.fps_den, 1);
			CHECK_EQ(f.n_buf, PC_V4L2_BUFFERS);
			CHECK(f.streaming);
			pc_v4l2_source.destroy(s);
		} else {
			fprintf(stderr, "    case %zu: %s\n", i, err);
		}
		fake_free(&f);
	}

	/* H.264 asked of a camera without it: said, with what it offers. */
	struct fake f;
	struct pc_v4l2_io io;
	void *s = NULL;
	char err[256] = "";
	fake_init(&f, camera_plain, sizeof(camera_plain) / sizeof(camera_plain[0]));
	CHECK_EQ(open_fake(&f, &io, &s, PC_V4L2_H264, 1280, 720, 30, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "offers no h264") && strstr(err, "YUYV, MJPG, NV12"));
	CHECK(s == NULL);
	CHECK_EQ(f.closes, 1);
	fake_free(&f);
}

static void test_v4l2_refused_devices(void)
{
	static const struct {
		uint32_t caps;
		const char *says;
	} cases[] = {
		{V4L2_CAP_VIDEO_M2M | V4L2_CAP_STREAMING, "a memory-to-memory encoder or decoder, not a camera"},
		{V4L2_CAP_VIDEO_M2M_MPLANE | V4L2_CAP_STREAMING, "a memory-to-memory encoder or decoder, not a camera"},
		{V4L2_CAP_VIDEO_OUTPUT | V4L2_CAP_STREAMING, "not a video capture device"},
		{V4L2_CAP_VIDEO_CAPTURE_MPLANE | V4L2_CAP_STREAMING, "multi-planar capture is not supported"},
		{V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_READWRITE, "without streaming I/O"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake f;
		struct pc_v4l2_io io;
		void *s = NULL;
		char err[256] = "";
		fake_init(&f, camera_plain, 3);
		f.caps = cases[i].caps;
		CHECK_EQ(open_fake(&f, &io, &s, PC_V4L2_AUTO, 640, 480, 30, err, sizeof(err)), -ENOTTY);
		if (!strstr(err, cases[i].says))
			fprintf(stderr, "    case %zu: %s\n", i, err);
		CHECK(strstr(err, cases[i].says) != NULL);
		CHECK_EQ(f.closes, 1);
		fake_free(&f);
	}
	/* A path with nothing there. */
	struct fake f;
	struct pc_v4l2_io io = fake_io(&f);
	void *s = NULL;
	char err[256] = "";
	fake_init(&f, camera_plain, 3);
	struct pc_source_config config = {.width = 640, .height = 480, .fps_num = 30, .fps_den = 1};
	struct pc_v4l2_options options = {.device = "/dev/video9", .io = &io};
	CHECK_EQ(pc_v4l2_init(&s, &config, &options, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "/dev/video9: no such device") != NULL);
	fake_free(&f);
}

static void yuv_at(const struct pc_frame *fr, int x, int y, int yuv[3])
{
	yuv[0] = fr->plane[0][y * fr->stride[0] + x];
	yuv[1] = fr->plane[1][y / 2 * fr->stride[1] + x / 2];
	yuv[2] = fr->plane[2][y / 2 * fr->stride[2] + x / 2];
}

static bool near_yuv(const int got[3], int y, int u, int v)
{
	return abs(got[0] - y) <= 3 && abs(got[1] - u) <= 3 && abs(got[2] - v) <= 3;
}

/* Two colours: the top half (Y 81, U 90, V 240: red), the bottom half (Y 145, U 54, V 34: green). */
static const int top[3] = {81, 90, 240}, bottom[3] = {145, 54, 34};

static uint8_t *pattern(const struct fake *f, size_t *size)
{
	*size = f->sizeimage;
	uint8_t *p = calloc(1, *size);
	for (int y = 0; y < f->h; y++) {
		const int *c = y < f->h / 2 ? top : bottom;
		uint8_t *row = p + (size_t)y * f->bpl;
		for (int x = 0; x < f->w; x++) {
			if (f->fourcc == V4L2_PIX_FMT_YUYV) {
				row[2 * x] = (uint8_t)c[0];
				row[2 * x + 1] = (uint8_t)(x % 2 ? c[2] : c[1]);
			} else {
				row[x] = (uint8_t)c[0];
			}
		}
		if (f->fourcc == V4L2_PIX_FMT_NV12 && y % 2 == 0) {
			uint8_t *uv = p + (size_t)f->bpl * (size_t)f->h + (size_t)(y / 2) * f->bpl;
			for (int x = 0; x < f->w; x += 2) {
				uv[x] = (uint8_t)c[1];
				uv[x + 1] = (uint8_t)c[2];
			}
		}
	}
	return p;
}

static void check_raw(enum pc_v4l2_format format, int adjust_w, int adjust_h)
{
	struct fake f;
	struct pc_v4l2_io io;
	void *s = NULL;
	char err[256] = "";
	fake_init(&f, camera_plain, 3);
	f.adjust_w = adjust_w;
	f.adjust_h = adjust_h;
	if (open_fake(&f, &io, &s, format, 640, 480, 30, err, sizeof(err)) < 0) {
		fprintf(stderr, "    %s\n", err);
		CHECK(false);
		fake_free(&f);
		return;
	}
	size_t size;
	uint8_t *data = pattern(&f, &size);
	CHECK(fake_produce(&f, data, size, 0, f.mono_ns, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC));
	struct pc_source_picture pic;
	CHECK_EQ(pc_v4l2_source.take(s, &pic, err, sizeof(err)), 1);
	int w = adjust_w ? adjust_w : 640, h = adjust_h ? adjust_h : 480;
	CHECK_EQ(pic.frame->width, w & ~1);
	CHECK_EQ(pic.frame->height, h & ~1);
	CHECK(pic.au == NULL);
	int yuv[3];
	yuv_at(pic.frame, 0, 0, yuv);
	CHECK(near_yuv(yuv, top[0], top[1], top[2]));
	yuv_at(pic.frame, pic.frame->width - 1, h / 2 - 2, yuv);
	CHECK(near_yuv(yuv, top[0], top[1], top[2]));
	yuv_at(pic.frame, pic.frame->width / 2, pic.frame->height - 1, yuv);
	CHECK(near_yuv(yuv, bottom[0], bottom[1], bottom[2]));
	/* Nothing more: 0, and the fd is not readable. */
	CHECK_EQ(pc_v4l2_source.take(s, &pic, err, sizeof(err)), 0);
	free(data);
	pc_v4l2_source.destroy(s);
	fake_free(&f);
}

static void test_v4l2_yuyv_nv12(void)
{
	check_raw(PC_V4L2_YUYV, 0, 0);
	check_raw(PC_V4L2_NV12, 0, 0);
	/* The driver's size is followed (an odd one cropped to even). */
	check_raw(PC_V4L2_YUYV, 656, 488);
	check_raw(PC_V4L2_NV12, 642, 362);
	check_raw(PC_V4L2_YUYV, 643, 481);
}

/* ---- MJPEG ---- */

/* 168x120: not a whole number of MCUs (16x16 at 4:2:0) either way, and the frame's rows are
 * padded (stride 192): the decoder's partial blocks and the strides are exercised. */
#define JW 168
#define JH 120

static const struct fake_format camera_mjpeg[] = {{V4L2_PIX_FMT_MJPEG, {{JW, JH, {30}}, {64, 48, {30}}}}};

/* A smooth 4:4:4 picture (what JPEG keeps well): Y, U and V planes of JW x JH. */
struct yuv444 {
	uint8_t p[3][JW * JH];
};

static void yuv444_make(struct yuv444 *src)
{
	for (int y = 0; y < JH; y++)
		for (int x = 0; x < JW; x++) {
			src->p[0][y * JW + x] = (uint8_t)lround(128 + 80 * sin(x / 9.0) * cos(y / 7.0));
			src->p[1][y * JW + x] = (uint8_t)lround(128 + 60 * sin((x + y) / 15.0));
			src->p[2][y * JW + x] = (uint8_t)lround(128 + 60 * cos((x - 2 * y) / 13.0));
		}
}

static const char *subsamp_name(int subsamp)
{
	static const char *names[] = {"4:4:4", "4:2:2", "4:2:0", "gray", "4:4:0", "4:1:1"};
	return subsamp >= 0 && subsamp < 6 ? names[subsamp] : "?";
}

/* src as a JPEG in subsamp, through TurboJPEG's compressor from planes (no colour conversion:
 * the JPEG holds these very samples, the chroma averaged down to subsamp's planes). NULL when
 * the compressor fails; tjFree() it. */
static unsigned char *jpeg_from_yuv(const struct yuv444 *src, int subsamp, unsigned long *size)
{
	static uint8_t chroma[2][JW * JH];
	const unsigned char *planes[3] = {src->p[0], chroma[0], chroma[1]};
	int strides[3] = {JW, 0, 0};
	if (subsamp != TJSAMP_GRAY) {
		int cw = tjPlaneWidth(1, JW, subsamp), ch = tjPlaneHeight(1, JH, subsamp);
		int fx = JW / cw, fy = JH / ch;
		strides[1] = strides[2] = cw;
		for (int i = 0; i < 2; i++)
			for (int y = 0; y < ch; y++)
				for (int x = 0; x < cw; x++) {
					int sum = 0;
					for (int dy = 0; dy < fy; dy++)
						for (int dx = 0; dx < fx; dx++)
							sum += src->p[1 + i][(y * fy + dy) * JW + x * fx + dx];
					chroma[i][y * cw + x] = (uint8_t)((sum + fx * fy / 2) / (fx * fy));
				}
	}
	tjhandle tj = tjInitCompress();
	unsigned char *jpeg = NULL;
	*size = 0;
	if (!tj || tjCompressFromYUVPlanes(tj, planes, JW, strides, JH, subsamp, &jpeg, size, 90, 0) < 0) {
		fprintf(stderr, "    tjCompressFromYUVPlanes %s: %s\n", subsamp_name(subsamp), tjGetErrorStr2(tj));
		tjFree(jpeg);
		jpeg = NULL;
	}
	if (tj)
		tjDestroy(tj);
	return jpeg;
}

/* A w x h picture of one RGB colour as a JPEG in subsamp (TurboJPEG converts to YCbCr itself). */
static unsigned char *jpeg_flat(int w, int h, uint8_t r, uint8_t g, uint8_t b, int subsamp, unsigned long *size)
{
	uint8_t *rgb = malloc((size_t)w * (size_t)h * 3);
	unsigned char *jpeg = NULL;
	*size = 0;
	tjhandle tj = tjInitCompress();
	if (rgb && tj) {
		for (int i = 0; i < w * h; i++) {
			rgb[3 * i] = r;
			rgb[3 * i + 1] = g;
			rgb[3 * i + 2] = b;
		}
		if (tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &jpeg, size, subsamp, 90, 0) < 0) {
			fprintf(stderr, "    tjCompress2 %s: %s\n", subsamp_name(subsamp), tjGetErrorStr2(tj));
			tjFree(jpeg);
			jpeg = NULL;
		}
	}
	if (tj)
		tjDestroy(tj);
	free(rgb);
	return jpeg;
}

/* Mean absolute difference between the frame's plane i and the source's: the luma as it is,
 * the chroma against the source's averaged over 2x2 (4:2:0). */
static double plane_mae(const struct pc_frame *fr, const struct yuv444 *src, int i)
{
	int w = i ? JW / 2 : JW, h = i ? JH / 2 : JH, f = i ? 2 : 1;
	double sum = 0;
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			int want = 0;
			for (int dy = 0; dy < f; dy++)
				for (int dx = 0; dx < f; dx++)
					want += src->p[i][(y * f + dy) * JW + x * f + dx];
			want = (want + f * f / 2) / (f * f);
			sum += abs(fr->plane[i][y * fr->stride[i] + x] - want);
		}
	return sum / (w * h);
}

/* The frame's visible samples, copied (a picture to compare a later one with). */
static void frame_copy(const struct pc_frame *fr, uint8_t *out)
{
	for (int i = 0; i < 3; i++) {
		int w = i ? fr->width / 2 : fr->width, h = i ? fr->height / 2 : fr->height;
		for (int y = 0; y < h; y++, out += w)
			memcpy(out, fr->plane[i] + (size_t)y * (size_t)fr->stride[i], (size_t)w);
	}
}

static bool frame_equals(const struct pc_frame *fr, const uint8_t *copy)
{
	static uint8_t now[JW * JH * 3 / 2];
	frame_copy(fr, now);
	return memcmp(now, copy, sizeof(now)) == 0;
}

static bool open_mjpeg(struct fake *f, struct pc_v4l2_io *io, void **s)
{
	char err[256] = "";
	fake_init(f, camera_mjpeg, 1);
	/* auto: MJPEG is all this camera offers. */
	int ret = open_fake(f, io, s, PC_V4L2_AUTO, JW, JH, 30, err, sizeof(err));
	CHECK_EQ(ret, 0);
	if (ret < 0) {
		fprintf(stderr, "    %s\n", err);
		fake_free(f);
		return false;
	}
	return true;
}

/* A JPEG in each subsampling the decoder takes comes out as the picture that went in, within
 * what JPEG loses (at quality 90, a mean error of about half a level in the luma, one in the
 * chroma). */
static void test_v4l2_mjpeg_subsampling(void)
{
	static const int subsamps[] = {TJSAMP_420, TJSAMP_422, TJSAMP_444, TJSAMP_440, TJSAMP_411, TJSAMP_GRAY};
	static struct yuv444 src;
	yuv444_make(&src);
	for (size_t k = 0; k < sizeof(subsamps) / sizeof(subsamps[0]); k++) {
		int subsamp = subsamps[k];
		unsigned long n;
		unsigned char *jpeg = jpeg_from_yuv(&src, subsamp, &n);
		CHECK(jpeg != NULL);
		struct fake f;
		struct pc_v4l2_io io;
		void *s = NULL;
		if (!jpeg || !open_mjpeg(&f, &io, &s)) {
			tjFree(jpeg);
			continue;
		}
		char err[256] = "";
		struct pc_source_picture pic;
		CHECK(fake_produce(&f, jpeg, n, 0, f.mono_ns, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC));
		int ret = pc_v4l2_source.take(s, &pic, err, sizeof(err));
		CHECK_EQ(ret, 1);
		if (ret == 1) {
			CHECK_EQ(pic.frame->width, JW);
			CHECK_EQ(pic.frame->height, JH);
			double e[3] = {plane_mae(pic.frame, &src, 0), plane_mae(pic.frame, &src, 1),
				       plane_mae(pic.frame, &src, 2)};
			if (subsamp == TJSAMP_GRAY) {
				/* No chroma: grey, exactly. */
				bool grey = true;
				for (int i = 1; i < 3; i++)
					for (int y = 0; y < JH / 2; y++)
						for (int x = 0; x < JW / 2; x++)
							grey &= pic.frame->plane[i][y * pic.frame->stride[i] + x] == 128;
				CHECK(grey);
				e[1] = e[2] = 0;
			}
			fprintf(stderr, "    %s: %lu bytes, mean error Y %.2f U %.2f V %.2f\n", subsamp_name(subsamp), n,
				e[0], e[1], e[2]);
			/* 4:1:1 keeps a quarter of the chroma's width: its own loss, not the decoder's. */
			double chroma_bound = subsamp == TJSAMP_411 ? 2.5 : 1.5;
			CHECK(e[0] < 1.0 && e[1] < chroma_bound && e[2] < chroma_bound);
		}
		struct pc_v4l2_stats st;
		pc_v4l2_stats(s, &st);
		CHECK_EQ(st.format, PC_V4L2_MJPEG);
		CHECK_EQ(st.corrupt, 0);
		tjFree(jpeg);
		pc_v4l2_source.destroy(s);
		fake_free(&f);
	}
}

/* What decoding costs at 1280x720 (docs/capture-v4l2.md), measured only with PC_MEASURE_MJPEG=1
 * in the environment: a textured picture (gradients and noise, as a camera sees) as a 4:2:0
 * and a 4:2:2 JPEG, taken through the source 40 times a round, 5 rounds; the median round's
 * ms a picture is printed. Without the variable it is skipped. */
static void test_v4l2_mjpeg_cost(void)
{
	if (!getenv("PC_MEASURE_MJPEG"))
		return;
	enum { W = 1280, H = 720, ROUNDS = 5, PER_ROUND = 40 };
	uint8_t *rgb = malloc((size_t)W * H * 3);
	CHECK(rgb != NULL);
	if (!rgb)
		return;
	uint32_t seed = 1;
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++)
			for (int c = 0; c < 3; c++) {
				seed = seed * 1103515245u + 12345u;
				int v = (x * (c + 1) / 7 + y * (3 - c) / 5) % 200 + (int)(seed >> 27);
				rgb[3 * ((size_t)y * W + x) + c] = (uint8_t)v;
			}
	static const int subsamps[] = {TJSAMP_420, TJSAMP_422};
	for (size_t k = 0; k < 2; k++) {
		tjhandle tj = tjInitCompress();
		unsigned char *jpeg = NULL;
		unsigned long n = 0;
		bool ok = tj && tjCompress2(tj, rgb, W, 0, H, TJPF_RGB, &jpeg, &n, subsamps[k], 90, 0) == 0;
		if (tj)
			tjDestroy(tj);
		CHECK(ok);
		struct fake f;
		struct pc_v4l2_io io;
		void *s = NULL;
		char err[256] = "";
		fake_init(&f, camera_plain, 3);
		int ret = ok ? open_fake(&f, &io, &s, PC_V4L2_MJPEG, W, H, 30, err, sizeof(err)) : -1;
		CHECK_EQ(ret, 0);
		double ms[ROUNDS];
		uint32_t seq = 0;
		for (int r = 0; ret == 0 && r < ROUNDS; r++) {
			int64_t t0 = pc_clock_ns(CLOCK_MONOTONIC);
			for (int i = 0; i < PER_ROUND; i++) {
				struct pc_source_picture pic;
				CHECK(fake_produce(&f, jpeg, n, seq++, f.mono_ns, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC));
				CHECK_EQ(pc_v4l2_source.take(s, &pic, err, sizeof(err)), 1);
			}
			ms[r] = (double)(pc_clock_ns(CLOCK_MONOTONIC) - t0) / PER_ROUND / 1e6;
		}
		if (ret == 0) {
			for (int i = 1; i < ROUNDS; i++) /* insertion sort: five numbers */
				for (int j = i; j > 0 && ms[j] < ms[j - 1]; j--) {
					double t = ms[j];
					ms[j] = ms[j - 1];
					ms[j - 1] = t;
				}
			fprintf(stderr, "    %dx%d %s JPEG of %lu bytes: %.2f ms a picture (median of %d rounds of %d)\n", W, H,
				subsamp_name(subsamps[k]), n, ms[ROUNDS / 2], ROUNDS, PER_ROUND);
			pc_v4l2_source.destroy(s);
		}
		fake_free(&f);
		tjFree(jpeg);
	}
	free(rgb);
}

/* A JPEG of one colour, red, through the source: in JPEG's full range that is Y 76, Cb 85, Cr 255
 * (grey: Y 76 only), everywhere. */
static void check_red(const uint8_t *jpeg, size_t n, bool gray, const char *what)
{
	struct fake f;
	struct pc_v4l2_io io;
	void *s = NULL;
	if (!open_mjpeg(&f, &io, &s))
		return;
	char err[256] = "";
	struct pc_source_picture pic;
	CHECK(fake_produce(&f, jpeg, n, 0, f.mono_ns, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC));
	int ret = pc_v4l2_source.take(s, &pic, err, sizeof(err));
	CHECK_EQ(ret, 1);
	int bad = 0;
	for (int y = 0; ret == 1 && y < JH; y += 7)
		for (int x = 0; x < JW; x += 5) {
			int yuv[3];
			yuv_at(pic.frame, x, y, yuv);
			if (!near_yuv(yuv, 76, gray ? 128 : 85, gray ? 128 : 255) && bad++ == 0)
				fprintf(stderr, "    %s at %d,%d: Y %d U %d V %d\n", what, x, y, yuv[0], yuv[1], yuv[2]);
		}
	CHECK_EQ(bad, 0);
	pc_v4l2_source.destroy(s);
	fake_free(&f);
}

/* Made by TurboJPEG from RGB, in each usual subsampling. */
static void test_v4l2_mjpeg_flat(void)
{
	static const int subsamps[] = {TJSAMP_420, TJSAMP_422, TJSAMP_444, TJSAMP_GRAY};
	for (size_t k = 0; k < sizeof(subsamps) / sizeof(subsamps[0]); k++) {
		unsigned long n;
		unsigned char *jpeg = jpeg_flat(JW, JH, 255, 0, 0, subsamps[k], &n);
		CHECK(jpeg != NULL);
		if (jpeg)
			check_red(jpeg, n, subsamps[k] == TJSAMP_GRAY, subsamp_name(subsamps[k]));
		tjFree(jpeg);
	}
}

/* Made by another encoder, ffmpeg's (its own tables and markers): 4:2:2 is what Debian's libyuv
 * refused (MJPGToI420 returned 1). Skipped when ffmpeg is not there. */
static void test_v4l2_mjpeg_ffmpeg(void)
{
	static const char *pix_fmts[] = {"yuvj422p", "yuvj420p", "yuvj444p"};
	char dir[] = "/tmp/pc-v4l2-XXXXXX";
	if (!mkdtemp(dir)) {
		CHECK(false);
		return;
	}
	for (size_t k = 0; k < sizeof(pix_fmts) / sizeof(pix_fmts[0]); k++) {
		static uint8_t jpeg[65536];
		char path[64], cmd[256];
		snprintf(path, sizeof(path), "%s/red.jpg", dir);
		snprintf(cmd, sizeof(cmd),
			 "ffmpeg -nostdin -loglevel error -y -f lavfi -i color=c=red:s=%dx%d -frames:v 1 -pix_fmt %s -f mjpeg %s",
			 JW, JH, pix_fmts[k], path);
		size_t n = 0;
		if (system(cmd) == 0) {
			FILE *fp = fopen(path, "rb");
			if (fp) {
				n = fread(jpeg, 1, sizeof(jpeg), fp);
				fclose(fp);
			}
		}
		unlink(path);
		if (n == 0) {
			fprintf(stderr, "    skipped: ffmpeg could not make a %s JPEG\n", pix_fmts[k]);
			continue;
		}
		check_red(jpeg, n, false, pix_fmts[k]);
	}
	rmdir(dir);
}

/* The byte offset of the first marker segment of type marker before the scan, 0 when none. */
static size_t jpeg_segment(const uint8_t *jpeg, size_t n, uint8_t marker)
{
	for (size_t i = 2; i + 4 <= n && jpeg[i] == 0xFF && jpeg[i + 1] != 0xDA;
	     i += 2 + ((size_t)jpeg[i + 2] << 8 | jpeg[i + 3]))
		if (jpeg[i + 1] == marker)
			return i;
	return 0;
}

/* jpeg without its Huffman tables (DHT segments), as many cameras send MJPEG: into out; its size. */
static size_t strip_dht(const uint8_t *jpeg, size_t n, uint8_t *out)
{
	size_t m = n, i;
	memcpy(out, jpeg, n);
	while ((i = jpeg_segment(out, m, 0xC4)) != 0) {
		size_t len = 2 + ((size_t)out[i + 2] << 8 | out[i + 3]);
		memmove(out + i, out + i + len, m - i - len);
		m -= len;
	}
	return m;
}

/* What a camera really sends now and then: a cut picture, garbage, a picture of another size are
 * skipped and counted, the picture before them kept (the producer may encode it again); one
 * without Huffman tables, or with bytes before its end marker, is a picture. */
static void test_v4l2_mjpeg_broken(void)
{
	static struct yuv444 src;
	static uint8_t good[JW * JH * 3 / 2], buf[65536];
	yuv444_make(&src);
	unsigned long n, n_small;
	/* 4:2:2: what most webcams send (and what libyuv's MJPGToI420 refused). */
	unsigned char *jpeg = jpeg_from_yuv(&src, TJSAMP_422, &n);
	unsigned char *small = jpeg_flat(64, 48, 0, 255, 0, TJSAMP_422, &n_small);
	struct fake f;
	struct pc_v4l2_io io;
	void *s = NULL;
	CHECK(jpeg && small && n + 16 <= sizeof(buf));
	if (!jpeg || !small || n + 16 > sizeof(buf) || !open_mjpeg(&f, &io, &s)) {
		tjFree(jpeg);
		tjFree(small);
		return;
	}
	char err[256] = "";
	struct pc_source_picture pic;
	struct pc_v4l2_stats st;
	uint32_t seq = 0;
	CHECK(fake_produce(&f, jpeg, n, seq++, f.mono_ns, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC));
	CHECK_EQ(pc_v4l2_source.take(s, &pic, err, sizeof(err)), 1);
	frame_copy(pic.frame, good);

	static uint8_t garbage[40];
	memset(garbage, 0xAB, sizeof(garbage));
	const struct {
		const char *what;
		const uint8_t *data;
		size_t size;
	} refused[] = {
		{"cut in half (the rest would be grey)", jpeg, n / 2},
		{"cut before its end marker", jpeg, n - 2},
		{"its first 40 bytes (tables only, no size)", jpeg, 40},
		{"garbage", garbage, sizeof(garbage)},
		{"64x48, not the negotiated size", small, n_small},
	};
	for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
		CHECK(fake_produce(&f, refused[k].data, refused[k].size, seq++, f.mono_ns, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC));
		int ret = pc_v4l2_source.take(s, &pic, err, sizeof(err));
		if (ret != 0)
			fprintf(stderr, "    %s: take() %d\n", refused[k].what, ret);
		CHECK_EQ(ret, 0);
		pc_v4l2_stats(s, &st);
		CHECK_EQ(st.corrupt, k + 1);
		/* The last good picture, untouched. */
		CHECK(frame_equals(pic.frame, good));
	}

	/* Without its Huffman tables: the standard ones, which TurboJPEG's compressor used too. */
	size_t m = strip_dht(jpeg, n, buf);
	CHECK(jpeg_segment(jpeg, n, 0xC4) != 0);
	CHECK(jpeg_segment(buf, m, 0xC4) == 0 && m < n);
	CHECK(fake_produce(&f, buf, m, seq++, f.mono_ns, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC));
	CHECK_EQ(pc_v4l2_source.take(s, &pic, err, sizeof(err)), 1);
	CHECK(frame_equals(pic.frame, good));

	/* Bytes between the data and the end marker (libjpeg warns "extraneous bytes"): whole. */
	memcpy(buf, jpeg, n - 2);
	memset(buf + n - 2, 0x55, 16);
	memcpy(buf + n + 14, jpeg + n - 2, 2);
	CHECK(fake_produce(&f, buf, n + 16, seq++, f.mono_ns, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC));
	CHECK_EQ(pc_v4l2_source.take(s, &pic, err, sizeof(err)), 1);
	CHECK(frame_equals(pic.frame, good));

	pc_v4l2_stats(s, &st);
	CHECK_EQ(st.corrupt, sizeof(refused) / sizeof(refused[0]));
	CHECK_EQ(st.dropped, 0);

	/* Damage anywhere (a few bytes changed, headers included): a picture or a skipped one,
	 * never a crash (valgrind: no invalid access). */
	uint32_t rng = 12345;
	int taken = 0, skipped = 0;
	for (int k = 0; k < 200; k++) {
		memcpy(buf, jpeg, n);
		for (int j = 0; j < 1 + k % 4; j++) {
			rng = rng * 1103515245u + 12345u;
			buf[(rng >> 8) % n] ^= (uint8_t)(1u << ((rng >> 28) % 8));
		}
		CHECK(fake_produce(&f, buf, n, seq++, f.mono_ns, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC));
		int ret = pc_v4l2_source.take(s, &pic, err, sizeof(err));
		CHECK(ret == 0 || ret == 1);
		taken += ret == 1;
		skipped += ret == 0;
	}
	pc_v4l2_stats(s, &st);
	CHECK_EQ(st.corrupt, sizeof(refused) / sizeof(refused[0]) + (size_t)skipped);
	fprintf(stderr, "    damaged: %d decoded, %d skipped\n", taken, skipped);
	tjFree(jpeg);
	tjFree(small);
	pc_v4l2_source.destroy(s);
	fake_free(&f);
}

/* Access units from x264 (an IDR first, then P pictures), copied into aus. */
static int make_aus(uint8_t aus[][65536], size_t *sizes, int n)
{
	struct pc_encoder_config config = {.width = 64, .height = 48, .fps_num = 30, .fps_den = 1, .bitrate = 200000,
					   .gop = 30, .preset = "ultrafast", .threads = 1};
	void *enc;
	char err[256];
	struct pc_frame frame;
	if (pc_x264_encoder.init(&enc, &config, err, sizeof(err)) < 0 || pc_frame_alloc(&frame, 64, 48) < 0)
		return 0;
	int got = 0;
	for (int i = 0; i < n * 4 && got < n; i++) {
		memset(frame.plane[0], 16 + i * 8, (size_t)frame.stride[0] * 48);
		memset(frame.plane[1], 128, (size_t)frame.stride[1] * 24);
		memset(frame.plane[2], 128, (size_t)frame.stride[2] * 24);
		struct pc_encoded au;
		if (pc_x264_encoder.encode(enc, &frame, false, &au) < 0)
			break;
		if (au.size == 0 || au.size > sizeof(aus[0]))
			continue;
		memcpy(aus[got], au.data, au.size);
		sizes[got++] = au.size;
	}
	pc_x264_encoder.destroy(enc);
	pc_frame_free(&frame);
	return got;
}

static void test_v4l2_h264_passthrough(void)
{
	static uint8_t aus[6][65536];
	size_t sizes[6];
	int n = make_aus(aus, sizes, 6);
	CHECK_EQ(n, 6);
	struct fake f;
	struct pc_v4l2_io io;
	void *s = NULL;
	char err[256] = "";
	fake_init(&f, camera_h264, 4);
	CHECK_EQ(open_fake(&f, &io, &s, PC_V4L2_AUTO, 1280, 720, 30, err, sizeof(err)), 0);
	if (!s)
		return;
	/* Three at once: all three come out, in order, none coalesced. */
	for (int i = 0; i < 3; i++)
		CHECK(fake_produce(&f, aus[i], sizes[i], (uint32_t)i, f.mono_ns, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC));
	struct pc_source_picture pic;
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(pc_v4l2_source.take(s, &pic, err, sizeof(err)), 1);
		CHECK(pic.au != NULL);
		CHECK_EQ(pic.au_size, sizes[i]);
		CHECK(pic.au && memcmp(pic.au, aus[i], sizes[i]) == 0);
		CHECK_EQ(pic.keyframe, i == 0);
		CHECK_EQ(pic.frame->width, 1280);
		CHECK_EQ(pic.frame->height, 720);
	}
	CHECK_EQ(pc_v4l2_source.take(s, &pic, err, sizeof(err)), 0);
	/* The device's requests go to the camera. */
	CHECK_EQ(pc_v4l2_source.request_keyframe(s), 0);
	CHECK_EQ(f.keyframe_requests, 1);
	CHECK_EQ(pc_v4l2_source.set_bitrate(s, 1500000), 0);
	CHECK_EQ(f.bitrate, 1500000);
	/* A camera without those controls: -ENOTSUP, asked once only. */
	f.has_ctrls = false;
	CHECK_EQ(pc_v4l2_source.request_keyframe(s), -ENOTSUP);
	f.has_ctrls = true; // cppcheck-suppress redundantAssignment
	CHECK_EQ(pc_v4l2_source.request_keyframe(s), -ENOTSUP);
	CHECK_EQ(f.keyframe_requests, 1);
	struct pc_v4l2_stats st;
	pc_v4l2_stats(s, &st);
	CHECK_EQ(st.coalesced, 0);
	pc_v4l2_source.destroy(s);
	fake_free(&f);

	/* A raw source takes no keyframe request. */
	fake_init(&f, camera_plain, 3);
	CHECK_EQ(open_fake(&f, &io, &s, PC_V4L2_AUTO, 640, 480, 30, err, sizeof(err)), 0);
	CHECK_EQ(pc_v4l2_source.request_keyframe(s), -ENOTSUP);
	pc_v4l2_source.destroy(s);
	fake_free(&f);
}

static void test_v4l2_timestamps_and_drops(void)
{
	struct fake f;
	struct pc_v4l2_io io;
	void *s = NULL;
	char err[256] = "";
	fake_init(&f, camera_plain, 3);
	CHECK_EQ(open_fake(&f, &io, &s, PC_V4L2_NV12, 640, 480, 30, err, sizeof(err)), 0);
	if (!s)
		return;
	size_t size;
	uint8_t *data = pattern(&f, &size);
	struct pc_source_picture pic;
	/* Taken 40 ms before the take(): the realtime 40 ms before now. */
	int64_t taken = f.mono_ns;
	f.mono_ns += 40 * PC_NS_PER_MS;
	f.real_ns += 40 * PC_NS_PER_MS;
	CHECK(fake_produce(&f, data, size, 10, taken, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC));
	CHECK_EQ(pc_v4l2_source.take(s, &pic, err, sizeof(err)), 1);
	CHECK_EQ(pic.capture_ns, f.real_ns - 40 * PC_NS_PER_MS);
	/* Sequence 10, then 14: three dropped by the driver. */
	taken = f.mono_ns;
	f.mono_ns += 5 * PC_NS_PER_MS;
	f.real_ns += 5 * PC_NS_PER_MS;
	CHECK(fake_produce(&f, data, size, 14, taken, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC));
	CHECK_EQ(pc_v4l2_source.take(s, &pic, err, sizeof(err)), 1);
	CHECK_EQ(pic.capture_ns, f.real_ns - 5 * PC_NS_PER_MS);
	/* A timestamp on another clock (COPY, unknown): the time of take(). */
	CHECK(fake_produce(&f, data, size, 15, 12345, V4L2_BUF_FLAG_TIMESTAMP_COPY));
	CHECK_EQ(pc_v4l2_source.take(s, &pic, err, sizeof(err)), 1);
	CHECK_EQ(pic.capture_ns, f.real_ns);
	/* Three waiting: the newest is converted, the others go back; an ERROR buffer is skipped. */
	CHECK(fake_produce(&f, data, size, 16, f.mono_ns, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC));
	CHECK(fake_produce(&f, data, size, 17, f.mono_ns, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC | V4L2_BUF_FLAG_ERROR));
	CHECK(fake_produce(&f, data, size, 18, f.mono_ns - PC_NS_PER_MS, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC));
	CHECK_EQ(pc_v4l2_source.take(s, &pic, err, sizeof(err)), 1);
	CHECK_EQ(pic.capture_ns, f.real_ns - PC_NS_PER_MS);
	struct pc_v4l2_stats st;
	pc_v4l2_stats(s, &st);
	CHECK_EQ(st.dropped, 3); /* 11, 12 and 13 */
	CHECK_EQ(st.coalesced, 1);
	CHECK_EQ(st.corrupt, 1);
	free(data);
	pc_v4l2_source.destroy(s);
	fake_free(&f);
}

static void test_v4l2_unplugged_and_buffers(void)
{
	struct fake f;
	struct pc_v4l2_io io;
	void *s = NULL;
	char err[256] = "";
	fake_init(&f, camera_plain, 3);
	f.enodev_after = 20;
	CHECK_EQ(open_fake(&f, &io, &s, PC_V4L2_YUYV, 640, 480, 30, err, sizeof(err)), 0);
	if (!s)
		return;
	size_t size;
	uint8_t *data = pattern(&f, &size);
	struct pc_source_picture pic;
	int fd = pc_v4l2_source.wait_fd(s);
	int ret = 0;
	uint32_t seq = 0;
	for (int turn = 0; turn < 50 && ret >= 0; turn++) {
		for (int k = 0; k < 1 + turn % 3; k++)
			fake_produce(&f, data, size, seq++, f.mono_ns, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC);
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		CHECK_EQ(poll(&pfd, 1, 0), 1);
		ret = pc_v4l2_source.take(s, &pic, err, sizeof(err));
		/* Every buffer dequeued went back before take() returned. */
		if (ret >= 0)
			CHECK_EQ(f.qbufs_streaming, f.dqbufs);
	}
	CHECK_EQ(ret, -ENODEV);
	CHECK(strstr(err, "is gone") && strstr(err, "unplugged"));
	/* The last one dequeued could not go back: the camera was gone. */
	CHECK_EQ(f.dqbufs, 20);
	CHECK_EQ(f.qbufs_streaming, 19);
	struct pc_v4l2_stats st;
	pc_v4l2_stats(s, &st);
	CHECK_EQ(st.requeued, 19);
	CHECK_EQ(st.dropped, 0);
	free(data);
	pc_v4l2_source.destroy(s);
	CHECK_EQ(f.mmaps, PC_V4L2_BUFFERS);
	CHECK_EQ(f.munmaps, PC_V4L2_BUFFERS);
	CHECK_EQ(f.closes, 1);
	CHECK_EQ(f.n_buf, 0); /* REQBUFS 0 freed them */
	CHECK(!f.streaming);
	fake_free(&f);
}

/* The real ioctl path: a device that is not there. */
static void test_v4l2_missing_device(void)
{
	char cmd[1024], out[] = "/tmp/pc-v4l2-err-XXXXXX";
	int fd = mkstemp(out);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	close(fd);
	snprintf(cmd, sizeof(cmd), "'%s' --source v4l2 --device /dev/video9 --annexb-out /dev/null 2>'%s'",
		 pc_check_producer, out);
	int status = system(cmd);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	char text[512] = "";
	FILE *fp = fopen(out, "r");
	if (fp) {
		size_t n = fread(text, 1, sizeof(text) - 1, fp);
		text[n] = '\0';
		fclose(fp);
	}
	unlink(out);
	CHECK(strstr(text, "/dev/video9: no such device") != NULL);
}

void pc_test_v4l2(void)
{
	RUN_TEST(test_v4l2_format_choice);
	RUN_TEST(test_v4l2_refused_devices);
	RUN_TEST(test_v4l2_yuyv_nv12);
	RUN_TEST(test_v4l2_mjpeg_subsampling);
	RUN_TEST(test_v4l2_mjpeg_flat);
	RUN_TEST(test_v4l2_mjpeg_ffmpeg);
	RUN_TEST(test_v4l2_mjpeg_broken);
	RUN_TEST(test_v4l2_mjpeg_cost);
	RUN_TEST(test_v4l2_h264_passthrough);
	RUN_TEST(test_v4l2_timestamps_and_drops);
	RUN_TEST(test_v4l2_unplugged_and_buffers);
	RUN_TEST(test_v4l2_missing_device);
}
