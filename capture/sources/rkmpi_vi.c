/* The rkmpi source (rkmpi_vi.h): the RV1106's camera, ISP -> VI -> VENC bound in the vendor
 * media system, the encoded access units handed out as they come.
 *
 * UNVERIFIED on a board: written after the Luckfox Pico SDK's samples
 * (media/samples/simple_test/simple_vi_bind_venc_rtsp.c, example/common/isp3.x) and type-checked
 * against the SDK's rockit headers (rk_mpi_sys.h, rk_mpi_vi.h, rk_mpi_venc.h, rk_mpi_mb.h and
 * what they include), never linked nor run: docs/capture.md "rkmpi".
 *
 * Start, in the samples' order: the ISP (rkmpi_isp.c), the media system with the first VENC
 * channel taken (encoders/rkmpi.h), the VI device and its pipe, then per rendition a VI channel
 * (0: the ISP's main path, 1: its self path, each scaled by the ISP to its rendition's size), a
 * VENC channel (H.264 baseline, CBR, told the sensor's rate in and --fps out: it drops pictures
 * to reach it), the bind VI -> VENC, and a thread that takes the channel's stream. Stop is the
 * reverse, the ISP last. */
#include "rkmpi_vi.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <rk_mpi_mb.h>
#include <rk_mpi_sys.h>
#include <rk_mpi_venc.h>
#include <rk_mpi_vi.h>

#include "../clock.h"
#include "../encoders/encoder.h"
#include "../encoders/rkmpi.h"
#include "../log.h"
#include "rkmpi_isp.h"

#define VI_DEV 0
#define VI_PIPE_ID 0
#define CAMERA_ID 0
/* The ISP buffers each VI channel writes into; bound channels keep none for the user (depth 0). */
#define VI_BUFFERS 2
#define STREAM_BUFFERS 2
/* How long a thread waits in RK_MPI_VENC_GetStream: also how soon it sees the stop flag. */
#define GET_STREAM_MS 100
/* Packs per access unit the channel may hand out at once (one, in the samples). */
#define PACKS 8
/* No access unit from a channel for this long: the camera has stopped, the source fails. */
#define STALL_NS (5 * PC_NS_PER_SEC)

struct rkmpi_vi;

/* One rendition: a VI channel bound to a VENC channel, and the thread that takes its stream. */
struct stream {
	struct rkmpi_vi *src;
	int rendition;
	VI_CHN vi_chn;
	VENC_CHN venc_chn;      /* -1 until taken */
	int width, height;
	const struct pc_h264_level *level;
	bool vi_enabled, venc_created, receiving, bound, thread_started;
	pthread_t thread;
	VENC_PACK_S packs[PACKS]; /* the thread's */
	/* Under the source's lock: */
	uint32_t bitrate;       /* what the rate control was last set to, bit/s */
	uint64_t aus, bad_pts;
};

struct rkmpi_vi {
	struct pc_rkmpi_vi_settings set;
	struct pc_rkmpi_isp *isp;
	bool vi_dev_enabled;
	struct stream stream[PC_RKMPI_RENDITIONS];
	int n_streams;
	struct pc_frame frame[PC_RKMPI_RENDITIONS]; /* sizes only: the pictures are encoded */
	atomic_bool stop;
	int efd;

	pthread_mutex_t lock;
	/* Under lock: */
	int running;             /* streams whose thread runs: the first ones */
	struct pc_rkmpi_queue queue;
	bool efd_readable;
	int error;               /* a thread's failure (negative errno), with reason */
	char reason[200];
	bool pts_warned;
	struct pc_rkmpi_au taken; /* the access unit take() handed out last (its own, unlocked) */
};

static const char *const entity[PC_RKMPI_RENDITIONS] = {"rkisp_mainpath", "rkisp_selfpath"};
static const char *const label[PC_RKMPI_RENDITIONS] = {"main", "sub"};

/* wait_fd polls readable while the queue holds an access unit, or a thread failed. Under lock. */
static void sync_efd(struct rkmpi_vi *s)
{
	bool want = s->queue.count > 0 || s->error;
	if (want == s->efd_readable)
		return;
	uint64_t v = 1;
	ssize_t n = want ? write(s->efd, &v, sizeof(v)) : read(s->efd, &v, sizeof(v));
	if (n == (ssize_t)sizeof(v))
		s->efd_readable = want;
}

static void request_idr(struct stream *st)
{
	RK_S32 ret = RK_MPI_VENC_RequestIDR(st->venc_chn, RK_TRUE);
	if (ret != RK_SUCCESS)
		pc_log("rkmpi: RK_MPI_VENC_RequestIDR %d (%s stream): %#x", st->venc_chn, label[st->rendition],
		       (unsigned)ret);
}

static void fail(struct rkmpi_vi *s, int error, const char *why)
{
	pthread_mutex_lock(&s->lock);
	if (!s->error) {
		s->error = error;
		snprintf(s->reason, sizeof(s->reason), "%s", why);
		sync_efd(s);
	}
	pthread_mutex_unlock(&s->lock);
}

/* Copies one access unit of st's channel into the queue. */
static void queue_stream(struct stream *st, const VENC_STREAM_S *stream)
{
	struct rkmpi_vi *s = st->src;
	struct pc_rkmpi_chunk chunks[PACKS];
	int n = 0;
	bool idr = false;
	uint64_t pts = 0;
	for (RK_U32 i = 0; i < stream->u32PackCount && i < PACKS; i++) {
		const VENC_PACK_S *p = &st->packs[i];
		const uint8_t *data = RK_MPI_MB_Handle2VirAddr(p->pMbBlk);
		if (!data || !p->u32Len)
			continue;
		chunks[n++] = (struct pc_rkmpi_chunk){.data = data + p->u32Offset, .size = p->u32Len};
		idr |= p->DataType.enH264EType == H264E_NALU_IDRSLICE ||
		       pc_rkmpi_has_idr(data + p->u32Offset, p->u32Len);
		if (!pts)
			pts = p->u64PTS;
	}
	if (!n)
		return;
	/* Both clocks read together, right after the stream came out (rkmpi_vi.h: the PTS is the VI's
	 * CLOCK_MONOTONIC time of the picture, in microseconds). */
	int64_t mono = pc_clock_ns(CLOCK_MONOTONIC), real = pc_clock_ns(CLOCK_REALTIME), capture_ns;
	bool pts_ok = pc_rkmpi_capture_ns(pts, mono, real, &capture_ns);

	pthread_mutex_lock(&s->lock);
	int ret = pc_rkmpi_queue_push(&s->queue, st->rendition, chunks, n, idr, capture_ns);
	st->aus++;
	if (!pts_ok)
		st->bad_pts++;
	bool warn_pts = !pts_ok && !s->pts_warned;
	s->pts_warned |= warn_pts;
	uint64_t overflows = s->queue.overflows;
	int running = s->running;
	sync_efd(s);
	pthread_mutex_unlock(&s->lock);

	if (warn_pts)
		pc_log("rkmpi: the %s stream's PTS %llu us is not of CLOCK_MONOTONIC (now %lld us): its pictures are stamped with the time they came out of the encoder",
		       label[st->rendition], (unsigned long long)pts, (long long)(mono / 1000));
	if (ret == PC_RKMPI_OVERFLOW || ret == -ENOMEM) {
		/* Nobody took the access units for a while (no device): start again at an IDR, on
		 * every channel (the queue dropped all of theirs). */
		if (ret == -ENOMEM)
			pc_log("rkmpi: out of memory for an access unit of the %s stream: dropped, waiting for an IDR",
			       label[st->rendition]);
		else if (overflows == 1 || overflows % 100 == 0)
			pc_log("rkmpi: %llu access units were not taken in time and were dropped (%llu times so far); waiting for IDRs",
			       (unsigned long long)PC_RKMPI_QUEUE_LEN, (unsigned long long)overflows);
		for (int r = 0; r < running; r++)
			request_idr(&s->stream[r]);
	}
}

static void *stream_thread(void *arg)
{
	struct stream *st = arg;
	struct rkmpi_vi *s = st->src;
	int64_t last = pc_clock_ns(CLOCK_MONOTONIC);
	while (!atomic_load(&s->stop)) {
		VENC_STREAM_S stream;
		memset(&stream, 0, sizeof(stream));
		stream.pstPack = st->packs;
		RK_S32 ret = RK_MPI_VENC_GetStream(st->venc_chn, &stream, GET_STREAM_MS);
		int64_t now = pc_clock_ns(CLOCK_MONOTONIC);
		if (ret != RK_SUCCESS) {
			/* A timeout (or a channel with nothing yet); only a long silence is a failure. */
			if (now - last > STALL_NS) {
				char why[200];
				snprintf(why, sizeof(why), "rkmpi: no picture from the %s stream (VENC channel %d) for %lld s (last RK_MPI_VENC_GetStream: %#x)",
					 label[st->rendition], st->venc_chn, (long long)(STALL_NS / PC_NS_PER_SEC), (unsigned)ret);
				fail(s, -EIO, why);
				break;
			}
			continue;
		}
		last = now;
		queue_stream(st, &stream);
		ret = RK_MPI_VENC_ReleaseStream(st->venc_chn, &stream);
		if (ret != RK_SUCCESS)
			pc_log("rkmpi: RK_MPI_VENC_ReleaseStream %d: %#x", st->venc_chn, (unsigned)ret);
	}
	return NULL;
}

static void rc_attr(VENC_CHN_ATTR_S *attr, const struct rkmpi_vi *s, uint32_t kbps)
{
	attr->stRcAttr.enRcMode = VENC_RC_MODE_H264CBR;
	attr->stRcAttr.stH264Cbr.u32Gop = s->set.gop;
	/* In: every picture of the sensor; out: --fps (the VENC drops the others). */
	attr->stRcAttr.stH264Cbr.u32SrcFrameRateNum = s->set.sensor_fps;
	attr->stRcAttr.stH264Cbr.u32SrcFrameRateDen = 1;
	attr->stRcAttr.stH264Cbr.fr32DstFrameRateNum = s->set.fps_num;
	attr->stRcAttr.stH264Cbr.fr32DstFrameRateDen = s->set.fps_den;
	attr->stRcAttr.stH264Cbr.u32BitRate = kbps;
}

static uint32_t max_bitrate(const struct stream *st)
{
	return st->level ? st->level->max_br_kbit * 1000 : 0;
}

static int start_stream(struct rkmpi_vi *s, int r, char *err, size_t err_size)
{
	struct stream *st = &s->stream[r];
	*st = (struct stream){
		.src = s,
		.rendition = r,
		.vi_chn = r, /* 0: the main path, 1: the self path */
		.venc_chn = st->venc_chn, /* the main stream's is taken before the VI starts */
		.width = s->set.width[r],
		.height = s->set.height[r],
	};
	st->level = pc_h264_level_find(st->width, st->height, s->set.fps_num, s->set.fps_den, 0);
	if (!st->level) {
		snprintf(err, err_size, "rkmpi: the %s stream's %dx%d at %u/%u fps is beyond H.264 level 5.2", label[r],
			 st->width, st->height, s->set.fps_num, s->set.fps_den);
		return -EINVAL;
	}
	s->n_streams = r + 1;

	VI_CHN_ATTR_S vi;
	memset(&vi, 0, sizeof(vi));
	snprintf(vi.stIspOpt.aEntityName, sizeof(vi.stIspOpt.aEntityName), "%s", entity[r]);
	vi.stIspOpt.u32BufCount = VI_BUFFERS;
	vi.stIspOpt.enMemoryType = VI_V4L2_MEMORY_TYPE_DMABUF;
	vi.stSize.u32Width = (RK_U32)st->width;
	vi.stSize.u32Height = (RK_U32)st->height;
	vi.enPixelFormat = RK_FMT_YUV420SP;
	vi.enCompressMode = COMPRESS_MODE_NONE;
	vi.u32Depth = 0; /* bound: the pictures go to the VENC, none is kept for RK_MPI_VI_GetChnFrame */
	vi.stFrameRate.s32SrcFrameRate = -1;
	vi.stFrameRate.s32DstFrameRate = -1;
	RK_S32 ret = RK_MPI_VI_SetChnAttr(VI_PIPE_ID, st->vi_chn, &vi);
	if (ret == RK_SUCCESS)
		ret = RK_MPI_VI_EnableChn(VI_PIPE_ID, st->vi_chn);
	if (ret != RK_SUCCESS) {
		snprintf(err, err_size, "rkmpi: VI channel %d (%s, %dx%d): %#x", st->vi_chn, entity[r], st->width,
			 st->height, (unsigned)ret);
		return -ENODEV;
	}
	st->vi_enabled = true;

	if (st->venc_chn < 0)
		st->venc_chn = pc_rkmpi_channel_take();
	if (st->venc_chn < 0) {
		snprintf(err, err_size, "rkmpi: no VENC channel free for the %s stream", label[r]);
		return -ENODEV;
	}
	uint32_t kbps = pc_rkmpi_kbps(s->set.bitrate[r], max_bitrate(st));
	VENC_CHN_ATTR_S attr;
	pc_rkmpi_avc_attr(&attr, st->width, st->height, STREAM_BUFFERS, (uint32_t)st->width * (uint32_t)st->height * 3 / 2);
	rc_attr(&attr, s, kbps);
	ret = RK_MPI_VENC_CreateChn(st->venc_chn, &attr);
	if (ret != RK_SUCCESS) {
		snprintf(err, err_size, "rkmpi: RK_MPI_VENC_CreateChn %d (%s stream): %#x", st->venc_chn, label[r],
			 (unsigned)ret);
		return -ENODEV;
	}
	st->venc_created = true;
	st->bitrate = kbps * 1000;
	VENC_RECV_PIC_PARAM_S recv;
	memset(&recv, 0, sizeof(recv));
	recv.s32RecvPicNum = -1; /* until stopped */
	if ((ret = RK_MPI_VENC_StartRecvFrame(st->venc_chn, &recv)) != RK_SUCCESS) {
		snprintf(err, err_size, "rkmpi: RK_MPI_VENC_StartRecvFrame %d: %#x", st->venc_chn, (unsigned)ret);
		return -ENODEV;
	}
	st->receiving = true;

	MPP_CHN_S from = {.enModId = RK_ID_VI, .s32DevId = VI_DEV, .s32ChnId = st->vi_chn};
	MPP_CHN_S to = {.enModId = RK_ID_VENC, .s32DevId = 0, .s32ChnId = st->venc_chn};
	if ((ret = RK_MPI_SYS_Bind(&from, &to)) != RK_SUCCESS) {
		snprintf(err, err_size, "rkmpi: RK_MPI_SYS_Bind VI %d -> VENC %d: %#x", st->vi_chn, st->venc_chn,
			 (unsigned)ret);
		return -ENODEV;
	}
	st->bound = true;
	int e = pthread_create(&st->thread, NULL, stream_thread, st);
	if (e) {
		snprintf(err, err_size, "rkmpi: pthread_create: %s", strerror(e));
		return -e;
	}
	st->thread_started = true;
	pthread_mutex_lock(&s->lock);
	s->running = r + 1;
	pthread_mutex_unlock(&s->lock);
	pc_log("rkmpi: %s stream %dx%d: VI channel %d (%s) -> VENC channel %d, H.264 CBR %u kbit/s, %u/%u fps of the sensor's %u, GOP %u",
	       label[r], st->width, st->height, st->vi_chn, entity[r], st->venc_chn, kbps, s->set.fps_num,
	       s->set.fps_den, s->set.sensor_fps, s->set.gop);
	return 0;
}

/* After every thread has ended (one may ask another's channel for an IDR). */
static void stop_stream(struct stream *st)
{
	MPP_CHN_S from = {.enModId = RK_ID_VI, .s32DevId = VI_DEV, .s32ChnId = st->vi_chn};
	MPP_CHN_S to = {.enModId = RK_ID_VENC, .s32DevId = 0, .s32ChnId = st->venc_chn};
	if (st->bound && RK_MPI_SYS_UnBind(&from, &to) != RK_SUCCESS)
		pc_log("rkmpi: RK_MPI_SYS_UnBind VI %d -> VENC %d failed", st->vi_chn, st->venc_chn);
	if (st->vi_enabled && RK_MPI_VI_DisableChn(VI_PIPE_ID, st->vi_chn) != RK_SUCCESS)
		pc_log("rkmpi: RK_MPI_VI_DisableChn %d failed", st->vi_chn);
	if (st->receiving)
		RK_MPI_VENC_StopRecvFrame(st->venc_chn);
	if (st->venc_created && RK_MPI_VENC_DestroyChn(st->venc_chn) != RK_SUCCESS)
		pc_log("rkmpi: RK_MPI_VENC_DestroyChn %d failed", st->venc_chn);
	*st = (struct stream){.venc_chn = st->venc_chn};
}

/* The VI device and its pipe, once for every channel (left as they are if something enabled them
 * already, as the samples do). */
static int start_vi_dev(struct rkmpi_vi *s, char *err, size_t err_size)
{
	VI_DEV_ATTR_S dev;
	memset(&dev, 0, sizeof(dev));
	RK_S32 ret = RK_MPI_VI_GetDevAttr(VI_DEV, &dev);
	if (ret == RK_ERR_VI_NOT_CONFIG && (ret = RK_MPI_VI_SetDevAttr(VI_DEV, &dev)) != RK_SUCCESS) {
		snprintf(err, err_size, "rkmpi: RK_MPI_VI_SetDevAttr: %#x", (unsigned)ret);
		return -ENODEV;
	}
	if (RK_MPI_VI_GetDevIsEnable(VI_DEV) == RK_SUCCESS)
		return 0;
	if ((ret = RK_MPI_VI_EnableDev(VI_DEV)) != RK_SUCCESS) {
		snprintf(err, err_size, "rkmpi: RK_MPI_VI_EnableDev: %#x (is another program, such as rkipc, using the camera?)",
			 (unsigned)ret);
		return -ENODEV;
	}
	s->vi_dev_enabled = true;
	VI_DEV_BIND_PIPE_S pipe;
	memset(&pipe, 0, sizeof(pipe));
	pipe.u32Num = 1;
	pipe.PipeId[0] = VI_PIPE_ID;
	if ((ret = RK_MPI_VI_SetDevBindPipe(VI_DEV, &pipe)) != RK_SUCCESS) {
		snprintf(err, err_size, "rkmpi: RK_MPI_VI_SetDevBindPipe: %#x", (unsigned)ret);
		return -ENODEV;
	}
	return 0;
}

static void rkmpi_vi_destroy(void *state)
{
	struct rkmpi_vi *s = state;
	if (!s)
		return;
	atomic_store(&s->stop, true);
	for (int r = 0; r < s->n_streams; r++)
		if (s->stream[r].thread_started)
			pthread_join(s->stream[r].thread, NULL);
	for (int r = s->n_streams - 1; r >= 0; r--)
		stop_stream(&s->stream[r]);
	if (s->vi_dev_enabled && RK_MPI_VI_DisableDev(VI_DEV) != RK_SUCCESS)
		pc_log("rkmpi: RK_MPI_VI_DisableDev failed");
	/* The last channel given back ends the media system; the ISP stops after it, as in the
	 * samples. */
	for (int r = 0; r < PC_RKMPI_RENDITIONS; r++)
		if (s->stream[r].venc_chn >= 0)
			pc_rkmpi_channel_release(s->stream[r].venc_chn);
	pc_rkmpi_isp_stop(s->isp);
	if (s->efd >= 0)
		close(s->efd);
	pc_rkmpi_queue_free(&s->queue, &s->taken);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int pc_rkmpi_vi_init(void **state, const struct pc_source_config *config, const struct pc_rkmpi_vi_options *options,
		     char *err, size_t err_size)
{
	*state = NULL;
	struct rkmpi_vi *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, err_size, "rkmpi: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	atomic_init(&s->stop, false);
	for (int r = 0; r < PC_RKMPI_RENDITIONS; r++)
		s->stream[r].venc_chn = -1;
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int ret = pc_rkmpi_vi_settings(config, options, &s->set, err, err_size);
	if (ret < 0)
		goto error;
	if (s->efd < 0) {
		ret = -errno;
		snprintf(err, err_size, "rkmpi: eventfd: %s", strerror(errno));
		goto error;
	}
	if (s->set.fps_capped)
		pc_log("rkmpi: %u/%u fps asked, the sensor gives %u: encoding %u", config->fps_num, config->fps_den,
		       s->set.sensor_fps, s->set.fps_num);
	ret = pc_rkmpi_isp_start(&s->isp, CAMERA_ID, s->set.iq_dir, err, err_size);
	if (ret < 0)
		goto error;
	/* The first VENC channel taken initialises the media system, which the VI needs: the main
	 * stream's is taken now. */
	s->stream[PC_RKMPI_MAIN].venc_chn = pc_rkmpi_channel_take();
	if (s->stream[PC_RKMPI_MAIN].venc_chn < 0) {
		snprintf(err, err_size, "rkmpi: RK_MPI_SYS_Init failed or no VENC channel free");
		ret = -ENODEV;
		goto error;
	}
	ret = start_vi_dev(s, err, err_size);
	if (ret < 0)
		goto error;
	int n = s->set.width[PC_RKMPI_SUB] ? 2 : 1;
	for (int r = 0; r < n; r++) {
		ret = start_stream(s, r, err, err_size);
		if (ret < 0)
			goto error;
		s->frame[r] = (struct pc_frame){.width = s->set.width[r], .height = s->set.height[r]};
	}
	*state = s;
	return 0;

error:
	rkmpi_vi_destroy(s);
	return ret;
}

static int rkmpi_vi_init_default(void **state, const struct pc_source_config *config, char *err, size_t err_size)
{
	return pc_rkmpi_vi_init(state, config, NULL, err, err_size);
}

static int rkmpi_vi_wait_fd(void *state)
{
	const struct rkmpi_vi *s = state;
	return s->efd;
}

static int rkmpi_vi_take(void *state, struct pc_source_picture *out, char *err, size_t err_size)
{
	struct rkmpi_vi *s = state;
	pthread_mutex_lock(&s->lock);
	bool got = pc_rkmpi_queue_pop(&s->queue, &s->taken);
	int error = s->error;
	if (!got && error)
		snprintf(err, err_size, "%s", s->reason);
	sync_efd(s);
	pthread_mutex_unlock(&s->lock);
	/* What came before a failure still goes out. */
	if (!got)
		return error ? error : 0;
	const struct pc_rkmpi_au *au = &s->taken;
	const struct pc_frame *frame = &s->frame[au->rendition];
	*out = (struct pc_source_picture){
		.frame = frame,
		.capture_ns = au->capture_ns,
		.damage = {0, 0, frame->width, frame->height},
		.au = au->data,
		.au_size = au->size,
		.keyframe = au->keyframe,
		.rendition = au->rendition,
	};
	return 1;
}

static int stream_request_keyframe(struct rkmpi_vi *s, int r)
{
	if (r >= s->n_streams)
		return -ENOTSUP;
	return RK_MPI_VENC_RequestIDR(s->stream[r].venc_chn, RK_TRUE) == RK_SUCCESS ? 0 : -EIO;
}

/* The rate control's bitrate (within what the stream's level and the VENC take: a request beyond
 * is clamped, and said once). */
static int stream_set_bitrate(struct rkmpi_vi *s, int r, uint32_t bitrate)
{
	if (r >= s->n_streams)
		return -ENOTSUP;
	struct stream *st = &s->stream[r];
	uint32_t kbps = pc_rkmpi_kbps(bitrate, max_bitrate(st));
	VENC_CHN_ATTR_S attr;
	memset(&attr, 0, sizeof(attr));
	if (RK_MPI_VENC_GetChnAttr(st->venc_chn, &attr) != RK_SUCCESS)
		return -EIO;
	rc_attr(&attr, s, kbps);
	if (RK_MPI_VENC_SetChnAttr(st->venc_chn, &attr) != RK_SUCCESS)
		return -EIO;
	if (kbps * 1000 != bitrate)
		pc_log("rkmpi: %s stream: %u bit/s asked, %u kbit/s set (the encoder's range for this H.264 level)",
		       label[r], bitrate, kbps);
	pthread_mutex_lock(&s->lock);
	st->bitrate = kbps * 1000;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static int rkmpi_vi_request_keyframe(void *state)
{
	return stream_request_keyframe(state, PC_RKMPI_MAIN);
}

static int rkmpi_vi_set_bitrate(void *state, uint32_t bitrate)
{
	return stream_set_bitrate(state, PC_RKMPI_MAIN, bitrate);
}

static int rkmpi_vi_request_keyframe_sub(void *state)
{
	return stream_request_keyframe(state, PC_RKMPI_SUB);
}

static int rkmpi_vi_set_bitrate_sub(void *state, uint32_t bitrate)
{
	return stream_set_bitrate(state, PC_RKMPI_SUB, bitrate);
}

const struct pc_source_ops pc_rkmpi_vi_source = {
	.name = "rkmpi",
	.init = rkmpi_vi_init_default,
	.destroy = rkmpi_vi_destroy,
	.wait_fd = rkmpi_vi_wait_fd,
	.take = rkmpi_vi_take,
	.request_keyframe = rkmpi_vi_request_keyframe,
	.set_bitrate = rkmpi_vi_set_bitrate,
	.request_keyframe_sub = rkmpi_vi_request_keyframe_sub,
	.set_bitrate_sub = rkmpi_vi_set_bitrate_sub,
};
