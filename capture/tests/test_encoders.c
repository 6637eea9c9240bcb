/* The encoder registry (priority list, fallback at init and while running) and the v4l2m2m
 * encoder against a stand-in for the V4L2 calls (v4l2_io.h) that behaves like a stateful M2M
 * H.264 encoder: format negotiation, MMAP buffers on both queues, controls, access units late by
 * a few pictures, SPS/PPS only once, and a device that vanishes mid-stream. The stand-in encodes
 * with x264 what it reads back from its OUTPUT buffers, so what comes out is real H.264 and the
 * picture copy is checked too. No /dev/video* here: what a real driver does beyond this stand-in
 * is not verified (docs/encoders.md). */
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../encoders/encoder.h"
#include "../encoders/registry.h"
#include "../encoders/v4l2m2m.h"
#include "../scale.h"
#include "../sources/testpattern.h"
#include "check.h"

#define W 320
#define H 240
#define MAX_NALS 64

/* ---- stderr, captured to check the log lines ---- */

struct log_capture {
	char path[64];
	int saved;
};

static void log_begin(struct log_capture *c)
{
	snprintf(c->path, sizeof(c->path), "/tmp/p2pcast-enc-log-XXXXXX");
	int fd = mkstemp(c->path);
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

/* Ends the capture, echoes it (indented) and returns it (malloc'd). */
static char *log_end(struct log_capture *c)
{
	fflush(stderr);
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	char *text = calloc(1, 65536);
	FILE *f = fopen(c->path, "r");
	if (f && text) {
		size_t n = fread(text, 1, 65535, f);
		text[n] = '\0';
	}
	if (f)
		fclose(f);
	unlink(c->path);
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next = '\0';
		fprintf(stderr, "    | %s\n", line);
		if (next)
			*next++ = '\n';
	}
	return text;
}

/* ---- pictures ---- */

struct pictures {
	void *source;
};

static bool pictures_init(struct pictures *p)
{
	char err[256];
	struct pc_source_config config = {W, H, 30, 1, "busy"};
	if (pc_testpattern_source.init(&p->source, &config, err, sizeof(err)) < 0) {
		fprintf(stderr, "    %s\n", err);
		return false;
	}
	return true;
}

static const struct pc_frame *picture(struct pictures *p, uint32_t seq)
{
	return pc_testpattern_source.next_frame(p->source, seq, INT64_C(1700000000000000000) + seq * INT64_C(33333333));
}

static struct pc_encoder_config base_config(void)
{
	return (struct pc_encoder_config){
		.width = W, .height = H, .fps_num = 30, .fps_den = 1, .bitrate = 500000, .gop = 60, .preset = "ultrafast",
		.threads = 1,
	};
}

static bool has_nal(const struct pc_encoded *au, int type)
{
	int types[MAX_NALS];
	size_t offsets[MAX_NALS];
	int n = pc_test_nal_units(au->data, au->size, types, offsets, MAX_NALS);
	for (int i = 0; i < n; i++)
		if (types[i] == type)
			return true;
	return false;
}

/* Pictures ffprobe decodes in an Annex-B file; -1 without ffprobe. */
static int decoded_pictures(const char *path)
{
	if (system("command -v ffprobe >/dev/null 2>&1") != 0)
		return -1;
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "ffprobe -v error -f h264 -count_frames -select_streams v:0 -show_entries stream=nb_read_frames "
		 "-of csv=p=0 '%s' 2>/dev/null",
		 path);
	FILE *p = popen(cmd, "r");
	int n = -2;
	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -2;
		pclose(p);
	}
	return n;
}

/* ---- fake encoders for the registry ---- */

/* "fakehw": refuses to start (no device), like a hardware encoder on the wrong machine. */
static int absent_init(void **state, const struct pc_encoder_config *config, char *err, size_t err_size)
{
	(void)state;
	(void)config;
	snprintf(err, err_size, "fakehw: no device here");
	return -ENOENT;
}

/* "flaky": x264 underneath, failing from its fail_at-th picture on (a device that gave up). */
struct flaky {
	void *x264;
	int pictures;
};

static int flaky_fail_at = 10;

static int flaky_init(void **state, const struct pc_encoder_config *config, char *err, size_t err_size)
{
	struct flaky *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	int ret = pc_x264_encoder.init(&f->x264, config, err, err_size);
	if (ret < 0) {
		free(f);
		return ret;
	}
	*state = f;
	return 0;
}

static int flaky_encode(void *state, const struct pc_frame *frame, bool force_idr, struct pc_encoded *out)
{
	struct flaky *f = state;
	if (++f->pictures >= flaky_fail_at) {
		fprintf(stderr, "p2pcast-capture: flaky: the device stopped answering\n");
		return -1;
	}
	return pc_x264_encoder.encode(f->x264, frame, force_idr, out);
}

static int flaky_set_bitrate(void *state, uint32_t bitrate, uint32_t *applied)
{
	struct flaky *f = state;
	return pc_x264_encoder.set_bitrate(f->x264, bitrate, applied);
}

static int flaky_set_fps(void *state, uint32_t num, uint32_t den)
{
	struct flaky *f = state;
	return pc_x264_encoder.set_fps(f->x264, num, den);
}

static void flaky_destroy(void *state)
{
	struct flaky *f = state;
	if (!f)
		return;
	pc_x264_encoder.destroy(f->x264);
	free(f);
}

static const struct pc_encoder_ops absent_ops = {
	.name = "fakehw",
	.init = absent_init,
	.encode = flaky_encode,
	.set_bitrate = flaky_set_bitrate,
	.set_fps = flaky_set_fps,
	.destroy = flaky_destroy,
};

static const struct pc_encoder_ops flaky_ops = {
	.name = "flaky",
	.init = flaky_init,
	.encode = flaky_encode,
	.set_bitrate = flaky_set_bitrate,
	.set_fps = flaky_set_fps,
	.destroy = flaky_destroy,
};

/* ---- registry ---- */

static void test_registry_lists(void)
{
	struct pc_encoder_list list;
	char err[256];

	pc_encoder_list_default(&list);
	CHECK(list.n >= 2);
	CHECK(list.choice[list.n - 1].ops == &pc_x264_encoder); /* x264 last */
	CHECK(list.choice[list.n - 2].ops == &pc_v4l2m2m_encoder);
	CHECK(pc_encoder_find("x264") == &pc_x264_encoder);
	CHECK(pc_encoder_find("nvenc") == NULL);

	CHECK_EQ(pc_encoder_list_parse(&list, "v4l2m2m:/dev/video11,x264", err, sizeof(err)), 0);
	CHECK_EQ(list.n, 2);
	CHECK(list.choice[0].ops == &pc_v4l2m2m_encoder && list.choice[0].device &&
	      strcmp(list.choice[0].device, "/dev/video11") == 0);
	CHECK(list.choice[1].ops == &pc_x264_encoder && !list.choice[1].device);

	static const char *const bad[] = {"", "x264,", "nvenc,x264", "x264,x264", "x264:/dev/video0", "v4l2m2m:"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK_EQ(pc_encoder_list_parse(&list, bad[i], err, sizeof(err)), -EINVAL);
		CHECK(err[0] != '\0');
	}
	pc_encoder_list_parse(&list, "nvenc", err, sizeof(err));
	CHECK(strstr(err, "unknown encoder 'nvenc'") != NULL);
}

/* A hardware encoder that does not start: x264 is used, and one line says why. */
static void test_registry_init_fallback(void)
{
	struct pc_encoder_list list = {.n = 2};
	list.choice[0].ops = &absent_ops;
	list.choice[1].ops = &pc_x264_encoder;
	struct pc_encoder_config config = base_config();
	struct pc_encoder_slot slot;
	char err[256];
	struct log_capture lc = {.saved = -1};

	log_begin(&lc);
	int ret = pc_encoder_slot_init(&slot, &list, "main", &config, err, sizeof(err));
	char *log = log_end(&lc);
	CHECK_EQ(ret, 0);
	CHECK(strcmp(pc_encoder_slot_name(&slot), "x264") == 0);
	CHECK(log && strstr(log, "main stream: fakehw: no device here: trying x264\n") != NULL);
	free(log);
	pc_encoder_slot_destroy(&slot);

	/* Nothing left: the last reason comes back. */
	list.n = 1;
	CHECK(pc_encoder_slot_init(&slot, &list, "sub", &config, err, sizeof(err)) == -ENOENT);
	CHECK(strstr(err, "fakehw: no device here") != NULL);
	CHECK(strcmp(pc_encoder_slot_name(&slot), "none") == 0);
}

/* Writes n pictures through slot to path; au_keyframe[i]/au_sps[i] say what picture i gave. */
static int encode_to_file(struct pc_encoder_slot *slot, struct pictures *pics, int n, const char *path,
			  bool *keyframe, bool *sps, int *encoded)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	*encoded = 0;
	for (int i = 0; i < n; i++) {
		struct pc_encoded au;
		if (pc_encoder_slot_encode(slot, picture(pics, (uint32_t)i), i == 0, &au) < 0) {
			fclose(f);
			return -1;
		}
		keyframe[i] = au.size && au.keyframe;
		sps[i] = au.size && has_nal(&au, 7);
		if (au.size) {
			(*encoded)++;
			fwrite(au.data, 1, au.size, f);
		}
	}
	fclose(f);
	return 0;
}

/* The running encoder fails at its 10th picture: x264 takes over with that same picture, as an
 * IDR with SPS/PPS, at the bitrate the first was set to; the whole file decodes. */
static void test_registry_runtime_fallback(void)
{
	struct pictures pics;
	if (!pictures_init(&pics)) {
		CHECK(false);
		return;
	}
	struct pc_encoder_list list = {.n = 2};
	list.choice[0].ops = &flaky_ops;
	list.choice[1].ops = &pc_x264_encoder;
	struct pc_encoder_config config = base_config();
	struct pc_encoder_slot slot;
	char err[256];
	flaky_fail_at = 10;
	CHECK_EQ(pc_encoder_slot_init(&slot, &list, "main", &config, err, sizeof(err)), 0);
	uint32_t applied = 0;
	CHECK_EQ(pc_encoder_slot_set_bitrate(&slot, 300000, &applied), 0);

	enum { N = 30 };
	bool keyframe[N], sps[N];
	int encoded = 0;
	const char *path = "/tmp/p2pcast-enc-fallback.h264";
	struct log_capture lc = {.saved = -1};
	log_begin(&lc);
	int ret = encode_to_file(&slot, &pics, N, path, keyframe, sps, &encoded);
	char *log = log_end(&lc);
	CHECK_EQ(ret, 0);
	CHECK_EQ(encoded, N);
	CHECK(strcmp(pc_encoder_slot_name(&slot), "x264") == 0);
	CHECK_EQ(slot.fallbacks, 1);
	CHECK_EQ(slot.config.bitrate, 300000); /* what was set carries over */
	CHECK(keyframe[0] && sps[0]);
	for (int i = 1; i < N; i++)
		CHECK_EQ(keyframe[i], i == 9); /* picture 10 is the new encoder's first: an IDR */
	CHECK(sps[9]);
	CHECK(log && strstr(log, "main stream: flaky failed while encoding: falling back to x264, starting with an IDR") != NULL);
	free(log);
	int decoded = decoded_pictures(path);
	if (decoded == -1)
		fprintf(stderr, "    ffprobe not found: decode check skipped\n");
	else
		CHECK_EQ(decoded, N);
	unlink(path);

	/* Nothing after it in the list: encode fails. */
	pc_encoder_slot_destroy(&slot);
	list.n = 1;
	CHECK_EQ(pc_encoder_slot_init(&slot, &list, "main", &config, err, sizeof(err)), 0);
	struct pc_encoded au;
	log_begin(&lc);
	for (int i = 0; i < 9; i++)
		CHECK_EQ(pc_encoder_slot_encode(&slot, picture(&pics, (uint32_t)i), false, &au), 0);
	CHECK_EQ(pc_encoder_slot_encode(&slot, picture(&pics, 9), false, &au), -1);
	log = log_end(&lc);
	CHECK(log && strstr(log, "no encoder is left in the list") != NULL);
	free(log);
	pc_encoder_slot_destroy(&slot);
	pc_testpattern_source.destroy(pics.source);
}

/* ---- the M2M stand-in ---- */

#define FAKE_BUFS 8
#define FAKE_CTRLS 16

struct fake_q {
	int n;
	int planes;
	size_t len[3];
	uint8_t *mem[FAKE_BUFS][3];
	bool queued[FAKE_BUFS];
	uint32_t bytesused[FAKE_BUFS];
	struct timeval timestamp[FAKE_BUFS];
	bool streaming;
};

struct fake_m2m {
	/* What the device is. */
	bool mplane;
	const uint32_t *out_formats; /* offered on OUTPUT, 0-terminated */
	int delay;                   /* pictures held before their AU comes */
	bool headers_once;           /* SPS/PPS only with the first IDR (some drivers) */
	int enodev_after;            /* OUTPUT QBUFs before it vanishes; 0 = never */

	/* What was done to it. */
	int efd, camera_fd;
	bool gone;
	uint32_t cap_fourcc, out_fourcc;
	int out_w, out_h;
	uint32_t bpl[3];
	uint32_t parm_num, parm_den;
	struct {
		uint32_t id;
		int32_t value;
		int count;
	} ctrl[FAKE_CTRLS];
	int n_ctrl;
	struct fake_q out, cap;
	int opens, closes, mmaps, munmaps, stops, streamoffs;
	int out_qbufs;
	bool copy_ok;                 /* every picture read back equals what was given */
	const struct pc_frame *expect; /* the picture the next OUTPUT QBUF must carry */

	/* The encoding inside: x264 on what the OUTPUT buffers hold. */
	void *x264;
	struct pc_frame i420;
	bool idr_wanted;
	bool headers_sent;
	uint8_t *held[8];            /* AUs waiting to come out (the delay) */
	size_t held_size[8];
	struct timeval held_ts[8];   /* the OUTPUT buffer's timestamp, copied as encoders do */
	int n_held;
	int done_cap[FAKE_BUFS];     /* finished CAPTURE buffers, in order */
	int n_done_cap;
	int done_out[FAKE_BUFS];
	int n_done_out;
	bool last_pending;           /* ENC_CMD_STOP: the next CAPTURE buffer out is LAST */
};

static void fake_ctrl_set(struct fake_m2m *f, uint32_t id, int32_t value)
{
	for (int i = 0; i < f->n_ctrl; i++) {
		if (f->ctrl[i].id == id) {
			f->ctrl[i].value = value;
			f->ctrl[i].count++;
			return;
		}
	}
	if (f->n_ctrl < FAKE_CTRLS) {
		f->ctrl[f->n_ctrl].id = id;
		f->ctrl[f->n_ctrl].value = value;
		f->ctrl[f->n_ctrl++].count = 1;
	}
}

/* The last value set, or -999 when never set; *count how often. */
static int32_t fake_ctrl(const struct fake_m2m *f, uint32_t id, int *count)
{
	for (int i = 0; i < f->n_ctrl; i++) {
		if (f->ctrl[i].id == id) {
			if (count)
				*count = f->ctrl[i].count;
			return f->ctrl[i].value;
		}
	}
	if (count)
		*count = 0;
	return -999;
}

static int fail(int e)
{
	errno = e;
	return -1;
}

static int fake_open(void *ctx, const char *path, int flags)
{
	struct fake_m2m *f = ctx;
	(void)flags;
	if (strcmp(path, "/dev/video0") == 0) {
		f->camera_fd = eventfd(0, EFD_CLOEXEC);
		f->opens++;
		return f->camera_fd;
	}
	if (strcmp(path, "/dev/video11") != 0 || f->gone)
		return fail(ENOENT);
	f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC | EFD_SEMAPHORE);
	f->opens++;
	return f->efd;
}

static int fake_close(void *ctx, int fd)
{
	struct fake_m2m *f = ctx;
	f->closes++;
	if (fd == f->efd)
		f->efd = -1;
	if (fd == f->camera_fd)
		f->camera_fd = -1;
	return close(fd);
}

static bool out_nv12(const struct fake_m2m *f)
{
	return f->out_fourcc == V4L2_PIX_FMT_NV12 || f->out_fourcc == V4L2_PIX_FMT_NV12M;
}

/* Reads OUTPUT buffer i back into I420, compares it to the picture given, encodes it. */
static void fake_encode(struct fake_m2m *f, int i, struct timeval ts)
{
	struct fake_q *q = &f->out;
	int cw = W / 2, ch = H / 2;
	for (int y = 0; y < H; y++)
		memcpy(f->i420.plane[0] + y * f->i420.stride[0], q->mem[i][0] + (size_t)y * f->bpl[0], W);
	for (int y = 0; y < ch; y++) {
		uint8_t *u = f->i420.plane[1] + y * f->i420.stride[1], *v = f->i420.plane[2] + y * f->i420.stride[2];
		if (out_nv12(f)) {
			const uint8_t *uv = q->planes == 1 ? q->mem[i][0] + (size_t)f->bpl[0] * H + (size_t)y * f->bpl[0]
							   : q->mem[i][1] + (size_t)y * f->bpl[1];
			for (int x = 0; x < cw; x++) {
				u[x] = uv[2 * x];
				v[x] = uv[2 * x + 1];
			}
		} else if (q->planes == 1) {
			size_t luma = (size_t)f->bpl[0] * H, cstride = f->bpl[0] / 2;
			memcpy(u, q->mem[i][0] + luma + (size_t)y * cstride, (size_t)cw);
			memcpy(v, q->mem[i][0] + luma + cstride * (size_t)ch + (size_t)y * cstride, (size_t)cw);
		} else {
			memcpy(u, q->mem[i][1] + (size_t)y * f->bpl[1], (size_t)cw);
			memcpy(v, q->mem[i][2] + (size_t)y * f->bpl[2], (size_t)cw);
		}
	}
	if (f->expect) {
		for (int c = 0; c < 3; c++) {
			int rows = c ? ch : H, cols = c ? cw : W;
			for (int y = 0; y < rows; y++)
				if (memcmp(f->i420.plane[c] + y * f->i420.stride[c],
					   f->expect->plane[c] + y * f->expect->stride[c], (size_t)cols) != 0)
					f->copy_ok = false;
		}
	}
	struct pc_encoded au;
	if (pc_x264_encoder.encode(f->x264, &f->i420, f->idr_wanted, &au) < 0 || au.size == 0)
		return;
	f->idr_wanted = false;
	/* headers_once: later IDRs lose their SPS/PPS (the AU starts with them, from x264). */
	const uint8_t *data = au.data;
	size_t size = au.size;
	if (au.keyframe && f->headers_once && f->headers_sent) {
		int types[MAX_NALS];
		size_t offsets[MAX_NALS];
		int n = pc_test_nal_units(au.data, au.size, types, offsets, MAX_NALS);
		for (int k = 0; k < n; k++) {
			if (types[k] != 7 && types[k] != 8) {
				size_t start = offsets[k] - 3;
				if (start > 0 && au.data[start - 1] == 0)
					start--;
				data += start;
				size -= start;
				break;
			}
		}
	}
	if (au.keyframe)
		f->headers_sent = true;
	f->held[f->n_held] = malloc(size);
	memcpy(f->held[f->n_held], data, size);
	f->held_ts[f->n_held] = ts;
	f->held_size[f->n_held++] = size;
}

/* Moves held AUs beyond the delay into queued CAPTURE buffers. */
static void fake_emit(struct fake_m2m *f, bool all)
{
	while (f->n_held > (all ? 0 : f->delay)) {
		int b = -1;
		for (int i = 0; i < f->cap.n && b < 0; i++)
			if (f->cap.queued[i])
				b = i;
		if (b < 0)
			return;
		memcpy(f->cap.mem[b][0], f->held[0], f->held_size[0]);
		f->cap.bytesused[b] = (uint32_t)f->held_size[0];
		f->cap.timestamp[b] = f->held_ts[0];
		f->cap.queued[b] = false;
		free(f->held[0]);
		memmove(f->held, f->held + 1, sizeof(f->held[0]) * (size_t)(f->n_held - 1));
		memmove(f->held_size, f->held_size + 1, sizeof(f->held_size[0]) * (size_t)(f->n_held - 1));
		memmove(f->held_ts, f->held_ts + 1, sizeof(f->held_ts[0]) * (size_t)(f->n_held - 1));
		f->n_held--;
		f->done_cap[f->n_done_cap++] = b;
		uint64_t one = 1;
		if (write(f->efd, &one, sizeof(one)) != sizeof(one))
			return;
	}
}

static struct fake_q *fake_queue(struct fake_m2m *f, uint32_t type)
{
	if (type == V4L2_BUF_TYPE_VIDEO_OUTPUT || type == V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE)
		return f->mplane == (type == V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE) ? &f->out : NULL;
	if (type == V4L2_BUF_TYPE_VIDEO_CAPTURE || type == V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE)
		return f->mplane == (type == V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE) ? &f->cap : NULL;
	return NULL;
}

static int fake_ioctl(void *ctx, int fd, unsigned long req, void *arg)
{
	struct fake_m2m *f = ctx;
	if (fd == f->camera_fd && fd >= 0) {
		if (req != VIDIOC_QUERYCAP)
			return fail(ENOTTY);
		struct v4l2_capability *c = arg;
		memset(c, 0, sizeof(*c));
		snprintf((char *)c->driver, sizeof(c->driver), "uvcvideo");
		c->capabilities = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
		return 0;
	}
	if (fd != f->efd)
		return fail(EBADF);
	if (f->gone)
		return fail(ENODEV);
	switch (req) {
	case VIDIOC_QUERYCAP: {
		struct v4l2_capability *c = arg;
		memset(c, 0, sizeof(*c));
		snprintf((char *)c->driver, sizeof(c->driver), "fake-enc");
		c->device_caps = V4L2_CAP_STREAMING | (f->mplane ? V4L2_CAP_VIDEO_M2M_MPLANE : V4L2_CAP_VIDEO_M2M);
		c->capabilities = c->device_caps | V4L2_CAP_DEVICE_CAPS;
		return 0;
	}
	case VIDIOC_ENUM_FMT: {
		struct v4l2_fmtdesc *d = arg;
		struct fake_q *q = fake_queue(f, d->type);
		if (!q)
			return fail(EINVAL);
		if (q == &f->cap) {
			if (d->index > 0)
				return fail(EINVAL);
			d->pixelformat = V4L2_PIX_FMT_H264;
			return 0;
		}
		for (uint32_t i = 0; f->out_formats[i]; i++)
			if (i == d->index) {
				d->pixelformat = f->out_formats[i];
				return 0;
			}
		return fail(EINVAL);
	}
	case VIDIOC_S_FMT: {
		struct v4l2_format *fm = arg;
		struct fake_q *q = fake_queue(f, fm->type);
		if (!q || q->n)
			return fail(q ? EBUSY : EINVAL);
		uint32_t pixfmt_v = f->mplane ? fm->fmt.pix_mp.pixelformat : fm->fmt.pix.pixelformat;
		uint32_t *pixfmt = &pixfmt_v;
		uint32_t w = f->mplane ? fm->fmt.pix_mp.width : fm->fmt.pix.width;
		uint32_t h = f->mplane ? fm->fmt.pix_mp.height : fm->fmt.pix.height;
		if (q == &f->cap) {
			f->cap_fourcc = pixfmt_v;
			if (f->mplane)
				fm->fmt.pix_mp.pixelformat = V4L2_PIX_FMT_H264;
			else
				fm->fmt.pix.pixelformat = V4L2_PIX_FMT_H264;
			q->planes = 1;
			q->len[0] = 256 * 1024;
			if (f->mplane) {
				fm->fmt.pix_mp.num_planes = 1;
				fm->fmt.pix_mp.plane_fmt[0].sizeimage = (uint32_t)q->len[0];
			} else {
				fm->fmt.pix.sizeimage = (uint32_t)q->len[0];
			}
			return 0;
		}
		bool offered = false;
		for (int i = 0; f->out_formats[i]; i++)
			offered |= f->out_formats[i] == *pixfmt;
		if (!offered)
			*pixfmt = f->out_formats[0];
		f->out_fourcc = *pixfmt;
		if (f->mplane)
			fm->fmt.pix_mp.pixelformat = *pixfmt;
		else
			fm->fmt.pix.pixelformat = *pixfmt;
		f->out_w = (int)w;
		f->out_h = (int)h;
		/* Rows padded to 64 bytes: the encoder must follow bytesperline. */
		uint32_t bpl = (w + 63) & ~63u;
		bool multi = f->out_fourcc == V4L2_PIX_FMT_YUV420M || f->out_fourcc == V4L2_PIX_FMT_NV12M;
		q->planes = multi ? (f->out_fourcc == V4L2_PIX_FMT_YUV420M ? 3 : 2) : 1;
		if (!multi) {
			f->bpl[0] = bpl;
			q->len[0] = (size_t)bpl * h * 3 / 2;
		} else {
			f->bpl[0] = bpl;
			f->bpl[1] = out_nv12(f) ? bpl : bpl / 2;
			f->bpl[2] = bpl / 2;
			q->len[0] = (size_t)bpl * h;
			q->len[1] = (size_t)f->bpl[1] * h / 2;
			q->len[2] = (size_t)f->bpl[2] * h / 2;
		}
		if (f->mplane) {
			fm->fmt.pix_mp.num_planes = (uint8_t)q->planes;
			for (int p = 0; p < q->planes; p++) {
				fm->fmt.pix_mp.plane_fmt[p].bytesperline = f->bpl[p];
				fm->fmt.pix_mp.plane_fmt[p].sizeimage = (uint32_t)q->len[p];
			}
		} else {
			fm->fmt.pix.bytesperline = bpl;
			fm->fmt.pix.sizeimage = (uint32_t)q->len[0];
		}
		return 0;
	}
	case VIDIOC_S_PARM: {
		struct v4l2_streamparm *p = arg;
		if (fake_queue(f, p->type) != &f->out)
			return fail(EINVAL);
		f->parm_num = p->parm.output.timeperframe.numerator;
		f->parm_den = p->parm.output.timeperframe.denominator;
		return 0;
	}
	case VIDIOC_S_CTRL: {
		struct v4l2_control *c = arg;
		if (c->id == V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME)
			f->idr_wanted = true;
		if (c->id == V4L2_CID_MPEG_VIDEO_HEADER_MODE)
			return fail(EINVAL); /* not every driver has it */
		fake_ctrl_set(f, c->id, c->value);
		return 0;
	}
	case VIDIOC_QUERYCTRL: {
		struct v4l2_queryctrl *q = arg;
		return q->id == V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME ? 0 : fail(EINVAL);
	}
	case VIDIOC_REQBUFS: {
		struct v4l2_requestbuffers *r = arg;
		struct fake_q *q = fake_queue(f, r->type);
		if (!q || r->memory != V4L2_MEMORY_MMAP || q->streaming)
			return fail(q ? EBUSY : EINVAL);
		for (int i = 0; i < q->n; i++)
			for (int p = 0; p < q->planes; p++)
				free(q->mem[i][p]);
		q->n = r->count > FAKE_BUFS ? FAKE_BUFS : (int)r->count;
		for (int i = 0; i < q->n; i++) {
			q->queued[i] = false;
			for (int p = 0; p < q->planes; p++)
				q->mem[i][p] = calloc(1, q->len[p]);
		}
		r->count = (uint32_t)q->n;
		return 0;
	}
	case VIDIOC_QUERYBUF: {
		struct v4l2_buffer *b = arg;
		struct fake_q *q = fake_queue(f, b->type);
		if (!q || b->index >= (uint32_t)q->n)
			return fail(EINVAL);
		uint32_t base = (q == &f->cap ? 0x100000u : 0) + b->index * 0x1000u;
		if (f->mplane) {
			if (b->length < (uint32_t)q->planes)
				return fail(EINVAL);
			for (int p = 0; p < q->planes; p++) {
				b->m.planes[p].length = (uint32_t)q->len[p];
				b->m.planes[p].m.mem_offset = base + (uint32_t)p * 0x100u;
			}
		} else {
			b->length = (uint32_t)q->len[0];
			b->m.offset = base;
		}
		return 0;
	}
	case VIDIOC_QBUF: {
		struct v4l2_buffer *b = arg;
		struct fake_q *q = fake_queue(f, b->type);
		if (!q || b->index >= (uint32_t)q->n || q->queued[b->index] || b->memory != V4L2_MEMORY_MMAP)
			return fail(EINVAL);
		if (q == &f->cap) {
			q->queued[b->index] = true;
			fake_emit(f, false);
			return 0;
		}
		uint32_t used = f->mplane ? b->m.planes[0].bytesused : b->bytesused;
		if (used < (uint32_t)(f->bpl[0] * (uint32_t)H))
			return fail(EINVAL);
		if (f->enodev_after && f->out_qbufs >= f->enodev_after) {
			f->gone = true;
			return fail(ENODEV);
		}
		f->out_qbufs++;
		fake_encode(f, (int)b->index, b->timestamp);
		f->done_out[f->n_done_out++] = (int)b->index; /* read at once: free again */
		q->queued[b->index] = true;
		fake_emit(f, false);
		return 0;
	}
	case VIDIOC_DQBUF: {
		struct v4l2_buffer *b = arg;
		struct fake_q *q = fake_queue(f, b->type);
		if (!q)
			return fail(EINVAL);
		if (q == &f->out) {
			if (!f->n_done_out)
				return fail(EAGAIN);
			int i = f->done_out[0];
			memmove(f->done_out, f->done_out + 1, sizeof(int) * (size_t)--f->n_done_out);
			q->queued[i] = false;
			b->index = (uint32_t)i;
			return 0;
		}
		if (!f->n_done_cap) {
			if (f->last_pending) {
				/* Drained: an empty buffer flagged LAST (none free: EPIPE). */
				f->last_pending = false;
				for (int i = 0; i < q->n; i++) {
					if (q->queued[i]) {
						q->queued[i] = false;
						b->index = (uint32_t)i;
						b->flags = V4L2_BUF_FLAG_LAST;
						b->bytesused = 0;
						if (f->mplane)
							b->m.planes[0].bytesused = 0;
						return 0;
					}
				}
				return fail(EPIPE);
			}
			return fail(EAGAIN);
		}
		uint64_t one;
		if (read(f->efd, &one, sizeof(one)) != sizeof(one))
			return fail(EIO);
		int i = f->done_cap[0];
		memmove(f->done_cap, f->done_cap + 1, sizeof(int) * (size_t)--f->n_done_cap);
		b->index = (uint32_t)i;
		b->flags = 0;
		b->timestamp = q->timestamp[i];
		if (f->mplane) {
			b->m.planes[0].bytesused = q->bytesused[i];
			b->m.planes[0].data_offset = 0;
		} else {
			b->bytesused = q->bytesused[i];
		}
		return 0;
	}
	case VIDIOC_STREAMON:
	case VIDIOC_STREAMOFF: {
		struct fake_q *q = fake_queue(f, *(uint32_t *)arg);
		if (!q)
			return fail(EINVAL);
		q->streaming = req == VIDIOC_STREAMON;
		if (req == VIDIOC_STREAMOFF)
			f->streamoffs++;
		return 0;
	}
	case VIDIOC_ENCODER_CMD: {
		struct v4l2_encoder_cmd *c = arg;
		if (c->cmd != V4L2_ENC_CMD_STOP)
			return fail(EINVAL);
		f->stops++;
		fake_emit(f, true);
		f->last_pending = true;
		return 0;
	}
	case VIDIOC_S_SELECTION:
		return fail(ENOTTY);
	default:
		return fail(ENOTTY);
	}
}

static void *fake_mmap(void *ctx, size_t length, int prot, int flags, int fd, off_t offset)
{
	struct fake_m2m *f = ctx;
	(void)prot;
	(void)flags;
	struct fake_q *q = offset >= 0x100000 ? &f->cap : &f->out;
	off_t rel = offset % 0x100000;
	int i = (int)(rel / 0x1000), p = (int)(rel % 0x1000 / 0x100);
	if (fd != f->efd || i >= q->n || p >= q->planes || length != q->len[p]) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	f->mmaps++;
	return q->mem[i][p];
}

static int fake_munmap(void *ctx, void *addr, size_t length)
{
	struct fake_m2m *f = ctx;
	(void)addr;
	(void)length;
	f->munmaps++;
	return 0;
}

static int64_t fake_clock(void *ctx, clockid_t clock)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool fake_init(struct fake_m2m *f, struct pc_v4l2_io *io, bool mplane, const uint32_t *out_formats)
{
	*f = (struct fake_m2m){.mplane = mplane, .out_formats = out_formats, .efd = -1, .camera_fd = -1,
			       .copy_ok = true};
	*io = (struct pc_v4l2_io){.ctx = f, .open = fake_open, .close = fake_close, .ioctl = fake_ioctl,
				  .mmap = fake_mmap, .munmap = fake_munmap, .clock_ns = fake_clock};
	struct pc_encoder_config config = base_config();
	char err[256];
	if (pc_frame_alloc(&f->i420, W, H) < 0 || pc_x264_encoder.init(&f->x264, &config, err, sizeof(err)) < 0) {
		fprintf(stderr, "    %s\n", err);
		return false;
	}
	return true;
}

static void fake_free(struct fake_m2m *f)
{
	struct fake_q *qs[2] = {&f->out, &f->cap};
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < qs[k]->n; i++)
			for (int p = 0; p < qs[k]->planes; p++)
				free(qs[k]->mem[i][p]);
	for (int i = 0; i < f->n_held; i++)
		free(f->held[i]);
	if (f->x264)
		pc_x264_encoder.destroy(f->x264);
	pc_frame_free(&f->i420);
	if (f->efd >= 0)
		close(f->efd);
}

/* Single-planar, NV12 only (so I420 is converted), found by looking through /dev/video*, where
 * a camera comes first: formats, rate and controls as asked; pictures copied right; bitrate,
 * IDR and rate changes reach the driver; destroy drains and frees everything. */
static void test_m2m_negotiation(void)
{
	static const uint32_t nv12_only[] = {V4L2_PIX_FMT_NV12, 0};
	struct fake_m2m f;
	struct pc_v4l2_io io;
	struct pictures pics;
	if (!fake_init(&f, &io, false, nv12_only) || !pictures_init(&pics)) {
		CHECK(false);
		fake_free(&f);
		return;
	}
	struct pc_encoder_config config = base_config();
	struct pc_v4l2m2m_options options = {.io = &io, .wait_ms = 50};
	void *enc = NULL;
	char err[256] = "";
	int ret = pc_v4l2m2m_init(&enc, &config, &options, err, sizeof(err));
	CHECK_EQ(ret, 0);
	if (ret < 0) {
		fprintf(stderr, "    %s\n", err);
		fake_free(&f);
		pc_testpattern_source.destroy(pics.source);
		return;
	}
	struct pc_v4l2m2m_stats st;
	pc_v4l2m2m_stats(enc, &st);
	CHECK(strcmp(st.device, "/dev/video11") == 0);
	CHECK(!st.mplane);
	CHECK_EQ(st.output_fourcc, V4L2_PIX_FMT_NV12);
	CHECK(st.has_force_key_frame && st.has_bitrate);
	CHECK_EQ(f.closes, 1); /* the camera at /dev/video0, looked at and closed */
	CHECK_EQ(f.cap_fourcc, V4L2_PIX_FMT_H264);
	CHECK_EQ(f.out_fourcc, V4L2_PIX_FMT_NV12);
	CHECK_EQ(f.out_w, W);
	CHECK_EQ(f.out_h, H);
	CHECK_EQ(f.parm_num, 1);
	CHECK_EQ(f.parm_den, 30);
	CHECK_EQ(fake_ctrl(&f, V4L2_CID_MPEG_VIDEO_BITRATE, NULL), 500000);
	CHECK_EQ(fake_ctrl(&f, V4L2_CID_MPEG_VIDEO_BITRATE_MODE, NULL), V4L2_MPEG_VIDEO_BITRATE_MODE_CBR);
	CHECK_EQ(fake_ctrl(&f, V4L2_CID_MPEG_VIDEO_GOP_SIZE, NULL), 60);
	CHECK_EQ(fake_ctrl(&f, V4L2_CID_MPEG_VIDEO_H264_I_PERIOD, NULL), 60);
	CHECK_EQ(fake_ctrl(&f, V4L2_CID_MPEG_VIDEO_B_FRAMES, NULL), 0);
	CHECK_EQ(fake_ctrl(&f, V4L2_CID_MPEG_VIDEO_H264_PROFILE, NULL),
		 V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE);
	/* 320x240 (300 macroblocks) at 30 and 500 kbit/s: level 1.3 */
	const struct pc_h264_level *level = pc_h264_level_find(W, H, 30, 1, 500000);
	CHECK(level && level->idc == 13);
	CHECK_EQ(fake_ctrl(&f, V4L2_CID_MPEG_VIDEO_H264_LEVEL, NULL), V4L2_MPEG_VIDEO_H264_LEVEL_1_3);
	CHECK_EQ(fake_ctrl(&f, V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER, NULL), 1);
	CHECK_EQ(f.mmaps, 2 * PC_V4L2M2M_BUFFERS);
	CHECK(f.out.streaming && f.cap.streaming);

	/* No delay: each picture's AU comes out of its own encode(). */
	struct pc_encoded au;
	int force_count = 0;
	for (uint32_t i = 0; i < 8; i++) {
		f.expect = picture(&pics, i);
		CHECK_EQ(pc_v4l2m2m_encoder.encode(enc, f.expect, i == 0 || i == 5, &au), 0);
		CHECK(au.size > 0);
		CHECK_EQ(au.late, 0);
		CHECK_EQ(au.keyframe, i == 0 || i == 5);
		if (i == 0 || i == 5)
			CHECK(has_nal(&au, 7) && has_nal(&au, 8));
	}
	fake_ctrl(&f, V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, &force_count);
	CHECK_EQ(force_count, 2);
	CHECK(f.copy_ok);

	uint32_t applied = 0;
	CHECK_EQ(pc_v4l2m2m_encoder.set_bitrate(enc, 700000, &applied), 0);
	CHECK_EQ(applied, 700000);
	CHECK_EQ(fake_ctrl(&f, V4L2_CID_MPEG_VIDEO_BITRATE, NULL), 700000);
	CHECK_EQ(pc_v4l2m2m_encoder.set_bitrate(enc, 1000000000, &applied), 0);
	CHECK_EQ(applied, level->max_br_kbit * 1000); /* clamped to the level */
	CHECK_EQ(pc_v4l2m2m_encoder.set_fps(enc, 15, 1), 0);
	CHECK_EQ(f.parm_num, 1);
	CHECK_EQ(f.parm_den, 15);
	CHECK_EQ(pc_v4l2m2m_encoder.set_fps(enc, 60, 1), -ERANGE); /* beyond level 1.3 at 320x240 */

	pc_v4l2m2m_encoder.destroy(enc);
	CHECK_EQ(f.stops, 1);
	CHECK_EQ(f.streamoffs, 2);
	CHECK_EQ(f.munmaps, f.mmaps);
	CHECK_EQ(f.out.n, 0); /* REQBUFS 0 on both */
	CHECK_EQ(f.cap.n, 0);
	CHECK_EQ(f.closes, 2);
	fake_free(&f);
	pc_testpattern_source.destroy(pics.source);
}

/* Multi-planar I420 (YUV420M), a driver two pictures late that sends SPS/PPS only once: nothing
 * for the first two pictures, then each AU in order; a later IDR gets the headers here. */
static void test_m2m_delay_and_headers(void)
{
	static const uint32_t formats[] = {V4L2_PIX_FMT_NV12M, V4L2_PIX_FMT_YUV420M, 0};
	struct fake_m2m f;
	struct pc_v4l2_io io;
	struct pictures pics;
	if (!fake_init(&f, &io, true, formats) || !pictures_init(&pics)) {
		CHECK(false);
		fake_free(&f);
		return;
	}
	f.delay = 2;
	f.headers_once = true;
	struct pc_encoder_config config = base_config();
	struct pc_v4l2m2m_options options = {.io = &io, .device = "/dev/video11", .wait_ms = 20};
	void *enc = NULL;
	char err[256] = "";
	CHECK_EQ(pc_v4l2m2m_init(&enc, &config, &options, err, sizeof(err)), 0);
	if (!enc) {
		fprintf(stderr, "    %s\n", err);
		fake_free(&f);
		pc_testpattern_source.destroy(pics.source);
		return;
	}
	struct pc_v4l2m2m_stats st;
	pc_v4l2m2m_stats(enc, &st);
	CHECK(st.mplane);
	CHECK_EQ(st.output_fourcc, V4L2_PIX_FMT_YUV420M); /* I420 preferred: no conversion */

	const char *path = "/tmp/p2pcast-enc-m2m-delay.h264";
	FILE *out = fopen(path, "wb");
	int sizes[20] = {0}, lates[20] = {0}, keys = 0, keys_with_sps = 0;
	struct log_capture lc = {.saved = -1};
	log_begin(&lc);
	for (uint32_t i = 0; i < 20; i++) {
		struct pc_encoded au;
		f.expect = picture(&pics, i);
		CHECK_EQ(pc_v4l2m2m_encoder.encode(enc, f.expect, i == 0 || i == 12, &au), 0);
		sizes[i] = (int)au.size;
		lates[i] = (int)au.late;
		if (au.size && out)
			fwrite(au.data, 1, au.size, out);
		if (au.keyframe) {
			keys++;
			keys_with_sps += has_nal(&au, 7) && has_nal(&au, 8);
		}
	}
	char *log = log_end(&lc);
	if (out)
		fclose(out);
	CHECK_EQ(sizes[0], 0);
	CHECK_EQ(sizes[1], 0);
	for (int i = 2; i < 20; i++) {
		CHECK(sizes[i] > 0);
		CHECK_EQ(lates[i], 2); /* picture i-2's AU, and it says so */
	}
	CHECK_EQ(keys, 2);
	CHECK_EQ(keys_with_sps, 2);
	CHECK(f.copy_ok);
	pc_v4l2m2m_stats(enc, &st);
	CHECK_EQ(st.delay, 2);
	CHECK_EQ(st.headers_added, 1);
	CHECK(log && strstr(log, "holds 2 pictures back") != NULL);
	free(log);
	pc_v4l2m2m_encoder.destroy(enc);
	CHECK_EQ(f.munmaps, f.mmaps);
	int decoded = decoded_pictures(path);
	if (decoded != -1)
		CHECK_EQ(decoded, 18); /* the two held back went with the drain, not to the file */
	unlink(path);
	fake_free(&f);
	pc_testpattern_source.destroy(pics.source);
}

/* The M2M device vanishes at the 10th picture (ENODEV): x264 takes over with that picture, as
 * an IDR, and the stream decodes across the switch. */
static struct fake_m2m *enodev_fake;
static struct pc_v4l2_io enodev_io;

static int enodev_m2m_init(void **state, const struct pc_encoder_config *config, char *err, size_t err_size)
{
	struct pc_v4l2m2m_options options = {.io = &enodev_io, .device = config->device, .wait_ms = 20};
	return pc_v4l2m2m_init(state, config, &options, err, err_size);
}

static void test_m2m_enodev_fallback(void)
{
	static const uint32_t formats[] = {V4L2_PIX_FMT_YUV420, V4L2_PIX_FMT_NV12, 0};
	struct fake_m2m f;
	struct pictures pics;
	if (!fake_init(&f, &enodev_io, false, formats) || !pictures_init(&pics)) {
		CHECK(false);
		fake_free(&f);
		return;
	}
	enodev_fake = &f;
	f.enodev_after = 9;
	struct pc_encoder_ops m2m_ops = pc_v4l2m2m_encoder;
	m2m_ops.init = enodev_m2m_init;
	struct pc_encoder_list list = {.n = 2};
	list.choice[0].ops = &m2m_ops;
	list.choice[1].ops = &pc_x264_encoder;
	struct pc_encoder_config config = base_config();
	struct pc_encoder_slot slot;
	char err[256] = "";
	CHECK_EQ(pc_encoder_slot_init(&slot, &list, "sub", &config, err, sizeof(err)), 0);
	CHECK(strcmp(pc_encoder_slot_name(&slot), "v4l2m2m") == 0);

	enum { N = 20 };
	bool keyframe[N], sps[N];
	int encoded = 0;
	const char *path = "/tmp/p2pcast-enc-m2m-enodev.h264";
	struct log_capture lc = {.saved = -1};
	log_begin(&lc);
	int ret = encode_to_file(&slot, &pics, N, path, keyframe, sps, &encoded);
	char *log = log_end(&lc);
	CHECK_EQ(ret, 0);
	CHECK_EQ(encoded, N);
	CHECK(strcmp(pc_encoder_slot_name(&slot), "x264") == 0);
	CHECK(keyframe[0] && sps[0]);
	CHECK(keyframe[9] && sps[9]);
	for (int i = 1; i < N; i++)
		if (i != 9)
			CHECK(!keyframe[i]);
	CHECK(log && strstr(log, "QBUF of a picture: No such device") != NULL);
	CHECK(log && strstr(log, "sub stream: v4l2m2m failed while encoding: falling back to x264") != NULL);
	free(log);
	CHECK_EQ(f.munmaps, f.mmaps); /* the vanished one was still cleaned up */
	CHECK_EQ(f.closes, f.opens);
	int decoded = decoded_pictures(path);
	if (decoded == -1)
		fprintf(stderr, "    ffprobe not found: decode check skipped\n");
	else
		CHECK_EQ(decoded, N);
	unlink(path);
	pc_encoder_slot_destroy(&slot);
	fake_free(&f);
	pc_testpattern_source.destroy(pics.source);
}

/* No M2M encoder anywhere: init says what it looked at. */
static void test_m2m_none(void)
{
	static const uint32_t formats[] = {V4L2_PIX_FMT_NV12, 0};
	struct fake_m2m f;
	struct pc_v4l2_io io;
	if (!fake_init(&f, &io, false, formats)) {
		CHECK(false);
		fake_free(&f);
		return;
	}
	f.gone = true; /* /dev/video11 absent; /dev/video0 is a camera */
	struct pc_encoder_config config = base_config();
	struct pc_v4l2m2m_options options = {.io = &io};
	void *enc = NULL;
	char err[256] = "";
	CHECK_EQ(pc_v4l2m2m_init(&enc, &config, &options, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "v4l2m2m: no M2M H.264 encoder under /dev/video* (looked at video0 (uvcvideo: not memory-to-memory))") != NULL);
	if (!strstr(err, "looked at"))
		fprintf(stderr, "    %s\n", err);
	CHECK_EQ(f.opens, f.closes);
	options.device = "/dev/video0";
	CHECK_EQ(pc_v4l2m2m_init(&enc, &config, &options, err, sizeof(err)), -ENODEV);
	CHECK(strstr(err, "/dev/video0 is no H.264 encoder") != NULL);
	fake_free(&f);
}

/* Runs the producer with args (stderr and stdout into out); its exit status, -1 when it could not
 * run. */
static int run_producer(const char *args, char *out, size_t out_size)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", pc_check_producer, args);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t n = fread(out, 1, out_size - 1, p);
	out[n] = '\0';
	int status = pclose(p);
	fprintf(stderr, "    $ p2pcast-capture %s\n", args);
	for (char *line = out, *next; *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next = '\0';
		fprintf(stderr, "    | %s\n", line);
		if (!next)
			break;
		*next++ = '\n';
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The binary: a missing hardware encoder in the list is skipped with its line, x264 encodes,
 * the file decodes; a bad list is a usage error; --encoder with nothing to fall back to fails. */
static void test_producer_encoder_flags(void)
{
	char out[8192];
	const char *path = "/tmp/p2pcast-enc-cli.h264";
	char args[512];
	snprintf(args, sizeof(args),
		 "--annexb-out %s --frames 10 --size 320x240 --encoder-priority v4l2m2m:/dev/p2pcast-no-such-node,x264",
		 path);
	CHECK_EQ(run_producer(args, out, sizeof(out)), 0);
	CHECK(strstr(out, "main stream: v4l2m2m: /dev/p2pcast-no-such-node: No such file or directory: trying x264") != NULL);
	CHECK(strstr(out, "main stream: encoded by x264") != NULL);
	int decoded = decoded_pictures(path);
	if (decoded != -1)
		CHECK_EQ(decoded, 10);
	unlink(path);

	CHECK_EQ(run_producer("--annexb-out /dev/null --encoder-priority nvenc,x264", out, sizeof(out)), 2);
	CHECK(strstr(out, "--encoder-priority: unknown encoder 'nvenc' (available in this build: ") != NULL);
	CHECK_EQ(run_producer("--annexb-out /dev/null --encoder x264,v4l2m2m", out, sizeof(out)), 2);
	CHECK_EQ(run_producer("--annexb-out /dev/null --frames 1 --encoder v4l2m2m:/dev/p2pcast-no-such-node", out,
			      sizeof(out)),
		 1);
	CHECK(strstr(out, "v4l2m2m: /dev/p2pcast-no-such-node: No such file or directory") != NULL);
	CHECK(strstr(out, "trying") == NULL);
}

void pc_test_encoders(void)
{
	RUN_TEST(test_registry_lists);
	RUN_TEST(test_registry_init_fallback);
	RUN_TEST(test_registry_runtime_fallback);
	RUN_TEST(test_m2m_negotiation);
	RUN_TEST(test_m2m_delay_and_headers);
	RUN_TEST(test_m2m_enodev_fallback);
	RUN_TEST(test_m2m_none);
	RUN_TEST(test_producer_encoder_flags);
}
