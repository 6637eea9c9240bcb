/* The rkmpi encoder: Rockchip's hardware H.264 encoder (VENC) through the vendor media API
 * (rockit's RK_MPI_*, as in the Luckfox Pico SDK for the RV1106). Built only with the Makefile's
 * RKMPI=1 RKMPI_SDK=DIR; docs/encoders.md.
 *
 * UNVERIFIED on a board: written against the SDK's headers as published (rk_mpi_sys.h,
 * rk_mpi_venc.h, rk_mpi_mb.h: RK_MPI_SYS_Init, RK_MPI_VENC_CreateChn with VENC_RC_MODE_H264CBR,
 * RK_MPI_VENC_StartRecvFrame, RK_MPI_VENC_SendFrame, RK_MPI_VENC_GetStream/ReleaseStream,
 * RK_MPI_VENC_RequestIDR, RK_MPI_VENC_SetChnAttr) and type-checked against them (copied from
 * the Luckfox SDK into a scratch directory, for x86-64 and ARMv7), but never linked against the
 * real librockit nor run: this machine has neither the SDK's libraries nor the board.
 *
 * The encoder shape: I420 pictures from any source are copied into a DMA block as NV12 and sent
 * to a VENC channel, and the stream is taken back at once (GetStream waits up to
 * PC_RKMPI_WAIT_MS). Each rendition has its own channel. The camera's own path (VI bound to
 * VENC, no copy) is a source, not an encoder: sources/rkmpi_vi.c, which takes its VENC channels
 * from the same allocator (rkmpi.h). */
#include "encoder.h"
#include "rkmpi.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rk_mpi_mb.h>
#include <rk_mpi_sys.h>
#include <rk_mpi_venc.h>

#include "../log.h"

#define PC_RKMPI_WAIT_MS 200
#define PC_RKMPI_PACKS 8
#define MIN_BITRATE 10000u

/* The media system and its VENC channels belong to the process (the vendor library keeps them),
 * so which channels this process took is kept here too, under a lock: both renditions'
 * encoders and the camera source share them (rkmpi.h). */
static pthread_mutex_t rkmpi_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned rkmpi_channels; /* bit n: channel n in use */

struct pc_rkmpi {
	int chn;
	int width, height;
	const struct pc_h264_level *level;
	uint32_t frame_mbs;
	uint32_t bitrate;
	MB_POOL pool;
	MB_BLK block;
	uint8_t *block_mem;
	VENC_PACK_S packs[PC_RKMPI_PACKS];
	uint8_t *au;
	size_t au_cap;
	uint64_t pts;
};

void pc_rkmpi_channel_release(int chn)
{
	pthread_mutex_lock(&rkmpi_lock);
	rkmpi_channels &= ~(1u << chn);
	if (!rkmpi_channels)
		RK_MPI_SYS_Exit();
	pthread_mutex_unlock(&rkmpi_lock);
}

int pc_rkmpi_channel_take(void)
{
	int chn = -1;
	pthread_mutex_lock(&rkmpi_lock);
	if (!rkmpi_channels && RK_MPI_SYS_Init() != RK_SUCCESS) {
		pthread_mutex_unlock(&rkmpi_lock);
		return -1;
	}
	for (int i = 0; i < PC_RKMPI_CHANNELS && chn < 0; i++)
		if (!(rkmpi_channels & (1u << i)))
			chn = i;
	if (chn >= 0)
		rkmpi_channels |= 1u << chn;
	pthread_mutex_unlock(&rkmpi_lock);
	return chn;
}

void pc_rkmpi_avc_attr(VENC_CHN_ATTR_S *attr, int width, int height, uint32_t buffers, uint32_t buf_size)
{
	memset(attr, 0, sizeof(*attr));
	attr->stVencAttr.enType = RK_VIDEO_ID_AVC;
	attr->stVencAttr.enPixelFormat = RK_FMT_YUV420SP;
	attr->stVencAttr.u32Profile = H264E_PROFILE_BASELINE;
	attr->stVencAttr.u32PicWidth = (RK_U32)width;
	attr->stVencAttr.u32PicHeight = (RK_U32)height;
	attr->stVencAttr.u32VirWidth = (RK_U32)width;
	attr->stVencAttr.u32VirHeight = (RK_U32)height;
	attr->stVencAttr.u32StreamBufCnt = buffers;
	attr->stVencAttr.u32BufSize = buf_size;
}

static void rc_attr(VENC_CHN_ATTR_S *attr, uint32_t gop, uint32_t fps_num, uint32_t fps_den, uint32_t bitrate)
{
	attr->stRcAttr.enRcMode = VENC_RC_MODE_H264CBR;
	attr->stRcAttr.stH264Cbr.u32Gop = gop;
	attr->stRcAttr.stH264Cbr.u32SrcFrameRateNum = fps_num;
	attr->stRcAttr.stH264Cbr.u32SrcFrameRateDen = fps_den;
	attr->stRcAttr.stH264Cbr.fr32DstFrameRateNum = fps_num;
	attr->stRcAttr.stH264Cbr.fr32DstFrameRateDen = fps_den;
	attr->stRcAttr.stH264Cbr.u32BitRate = bitrate / 1000; /* kbit/s */
}

static void pc_rkmpi_destroy(void *state);

static int pc_rkmpi_init(void **state, const struct pc_encoder_config *config, char *err, size_t err_size)
{
	struct pc_rkmpi *st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, err_size, "rkmpi: out of memory");
		return -ENOMEM;
	}
	st->chn = -1;
	st->pool = MB_INVALID_POOLID;
	st->width = config->width;
	st->height = config->height;
	st->bitrate = config->bitrate;
	st->level = pc_h264_level_find(config->width, config->height, config->fps_num, config->fps_den,
				       config->bitrate);
	st->frame_mbs = (uint32_t)((config->width + 15) / 16) * (uint32_t)((config->height + 15) / 16);
	if (!st->level) {
		snprintf(err, err_size, "rkmpi: %dx%d is beyond H.264 level 5.2", config->width, config->height);
		pc_rkmpi_destroy(st);
		return -EINVAL;
	}
	st->chn = pc_rkmpi_channel_take();
	if (st->chn < 0) {
		snprintf(err, err_size, "rkmpi: RK_MPI_SYS_Init failed or no VENC channel free");
		pc_rkmpi_destroy(st);
		return -ENODEV;
	}

	size_t size = (size_t)config->width * (size_t)config->height * 3 / 2;
	MB_POOL_CONFIG_S pool = {0};
	pool.u64MBSize = size;
	pool.u32MBCnt = 1;
	pool.enAllocType = MB_ALLOC_TYPE_DMA;
	st->pool = RK_MPI_MB_CreatePool(&pool);
	if (st->pool == MB_INVALID_POOLID ||
	    !(st->block = RK_MPI_MB_GetMB(st->pool, size, RK_TRUE)) ||
	    !(st->block_mem = RK_MPI_MB_Handle2VirAddr(st->block))) {
		snprintf(err, err_size, "rkmpi: no %zu-byte DMA buffer for the pictures", size);
		pc_rkmpi_destroy(st);
		return -ENOMEM;
	}

	VENC_CHN_ATTR_S attr;
	pc_rkmpi_avc_attr(&attr, config->width, config->height, 2, (uint32_t)size);
	rc_attr(&attr, config->gop, config->fps_num, config->fps_den, config->bitrate);
	RK_S32 ret = RK_MPI_VENC_CreateChn(st->chn, &attr);
	if (ret != RK_SUCCESS) {
		snprintf(err, err_size, "rkmpi: RK_MPI_VENC_CreateChn %d: %#x", st->chn, (unsigned)ret);
		pc_rkmpi_destroy(st);
		return -EIO;
	}
	VENC_RECV_PIC_PARAM_S recv;
	memset(&recv, 0, sizeof(recv));
	recv.s32RecvPicNum = -1; /* until stopped */
	if ((ret = RK_MPI_VENC_StartRecvFrame(st->chn, &recv)) != RK_SUCCESS) {
		snprintf(err, err_size, "rkmpi: RK_MPI_VENC_StartRecvFrame %d: %#x", st->chn, (unsigned)ret);
		pc_rkmpi_destroy(st);
		return -EIO;
	}
	pc_log("rkmpi: VENC channel %d, %dx%d H.264 CBR %u bit/s", st->chn, st->width, st->height, st->bitrate);
	*state = st;
	return 0;
}

static int pc_rkmpi_encode(void *state, const struct pc_frame *frame, bool force_idr, struct pc_encoded *out)
{
	struct pc_rkmpi *st = state;
	*out = (struct pc_encoded){0};
	if (force_idr && RK_MPI_VENC_RequestIDR(st->chn, RK_TRUE) != RK_SUCCESS)
		pc_log("rkmpi: RK_MPI_VENC_RequestIDR %d failed", st->chn);

	/* I420 -> NV12 in the DMA block, then the CPU cache out to memory for the encoder. */
	uint8_t *y = st->block_mem, *uv = st->block_mem + (size_t)st->width * (size_t)st->height;
	for (int r = 0; r < st->height; r++)
		memcpy(y + (size_t)r * (size_t)st->width, frame->plane[0] + (size_t)r * (size_t)frame->stride[0],
		       (size_t)st->width);
	for (int r = 0; r < st->height / 2; r++) {
		const uint8_t *u = frame->plane[1] + (size_t)r * (size_t)frame->stride[1];
		const uint8_t *v = frame->plane[2] + (size_t)r * (size_t)frame->stride[2];
		uint8_t *d = uv + (size_t)r * (size_t)st->width;
		for (int x = 0; x < st->width / 2; x++) {
			d[2 * x] = u[x];
			d[2 * x + 1] = v[x];
		}
	}
	RK_MPI_SYS_MmzFlushCache(st->block, RK_FALSE);

	VIDEO_FRAME_INFO_S pic;
	memset(&pic, 0, sizeof(pic));
	pic.stVFrame.pMbBlk = st->block;
	pic.stVFrame.u32Width = (RK_U32)st->width;
	pic.stVFrame.u32Height = (RK_U32)st->height;
	pic.stVFrame.u32VirWidth = (RK_U32)st->width;
	pic.stVFrame.u32VirHeight = (RK_U32)st->height;
	pic.stVFrame.enPixelFormat = RK_FMT_YUV420SP;
	pic.stVFrame.u64PTS = st->pts++;
	RK_S32 ret = RK_MPI_VENC_SendFrame(st->chn, &pic, PC_RKMPI_WAIT_MS);
	if (ret != RK_SUCCESS) {
		pc_log("rkmpi: RK_MPI_VENC_SendFrame %d: %#x", st->chn, (unsigned)ret);
		return -1;
	}

	VENC_STREAM_S stream;
	memset(&stream, 0, sizeof(stream));
	stream.pstPack = st->packs;
	ret = RK_MPI_VENC_GetStream(st->chn, &stream, PC_RKMPI_WAIT_MS);
	if (ret != RK_SUCCESS) {
		pc_log("rkmpi: RK_MPI_VENC_GetStream %d: %#x", st->chn, (unsigned)ret);
		return -1;
	}
	size_t size = 0;
	for (RK_U32 i = 0; i < stream.u32PackCount && i < PC_RKMPI_PACKS; i++)
		size += st->packs[i].u32Len;
	if (size > st->au_cap) {
		uint8_t *p = realloc(st->au, size);
		if (!p) {
			RK_MPI_VENC_ReleaseStream(st->chn, &stream);
			return -1;
		}
		st->au = p;
		st->au_cap = size;
	}
	size_t at = 0;
	for (RK_U32 i = 0; i < stream.u32PackCount && i < PC_RKMPI_PACKS; i++) {
		const uint8_t *data = RK_MPI_MB_Handle2VirAddr(st->packs[i].pMbBlk);
		memcpy(st->au + at, data + st->packs[i].u32Offset, st->packs[i].u32Len);
		at += st->packs[i].u32Len;
	}
	RK_MPI_VENC_ReleaseStream(st->chn, &stream);

	bool idr = false;
	for (size_t i = 0; i + 3 < at; i++)
		if (st->au[i] == 0 && st->au[i + 1] == 0 && st->au[i + 2] == 1 && (st->au[i + 3] & 0x1f) == 5)
			idr = true;
	*out = (struct pc_encoded){.data = st->au, .size = at, .keyframe = idr};
	return 0;
}

static int set_rate(struct pc_rkmpi *st, uint32_t bitrate, uint32_t num, uint32_t den)
{
	VENC_CHN_ATTR_S attr;
	if (RK_MPI_VENC_GetChnAttr(st->chn, &attr) != RK_SUCCESS)
		return -EIO;
	uint32_t n = num ? num : attr.stRcAttr.stH264Cbr.u32SrcFrameRateNum;
	uint32_t d = den ? den : attr.stRcAttr.stH264Cbr.u32SrcFrameRateDen;
	rc_attr(&attr, attr.stRcAttr.stH264Cbr.u32Gop, n, d, bitrate);
	return RK_MPI_VENC_SetChnAttr(st->chn, &attr) == RK_SUCCESS ? 0 : -EIO;
}

static int pc_rkmpi_set_bitrate(void *state, uint32_t bitrate, uint32_t *applied)
{
	struct pc_rkmpi *st = state;
	uint32_t level_max = st->level->max_br_kbit * 1000;
	uint32_t b = bitrate > level_max ? level_max : bitrate < MIN_BITRATE ? MIN_BITRATE : bitrate;
	int ret = set_rate(st, b, 0, 0);
	if (ret == 0) {
		st->bitrate = b;
		*applied = b;
	}
	return ret;
}

static int pc_rkmpi_set_fps(void *state, uint32_t num, uint32_t den)
{
	struct pc_rkmpi *st = state;
	if (!num || !den)
		return -EINVAL;
	if ((uint64_t)st->frame_mbs * num > (uint64_t)st->level->max_mbps * den)
		return -ERANGE;
	return set_rate(st, st->bitrate, num, den);
}

static void pc_rkmpi_destroy(void *state)
{
	struct pc_rkmpi *st = state;
	if (!st)
		return;
	if (st->chn >= 0) {
		/* Refused for a channel that was never created: harmless. */
		RK_MPI_VENC_StopRecvFrame(st->chn);
		RK_MPI_VENC_DestroyChn(st->chn);
	}
	if (st->block)
		RK_MPI_MB_ReleaseMB(st->block);
	if (st->pool != MB_INVALID_POOLID)
		RK_MPI_MB_DestroyPool(st->pool);
	if (st->chn >= 0)
		pc_rkmpi_channel_release(st->chn); /* the last one also ends the media system */
	free(st->au);
	free(st);
}

const struct pc_encoder_ops pc_rkmpi_encoder = {
	.name = "rkmpi",
	.init = pc_rkmpi_init,
	.encode = pc_rkmpi_encode,
	.set_bitrate = pc_rkmpi_set_bitrate,
	.set_fps = pc_rkmpi_set_fps,
	.destroy = pc_rkmpi_destroy,
};
