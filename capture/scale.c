/* I420 downscaling: see scale.h. */
#include "scale.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define STRIDE_ALIGN 64

int pc_frame_alloc(struct pc_frame *frame, int width, int height)
{
	int luma_stride = (width + STRIDE_ALIGN - 1) / STRIDE_ALIGN * STRIDE_ALIGN;
	int chroma_stride = luma_stride / 2;
	size_t luma_size = (size_t)luma_stride * (size_t)height;
	size_t chroma_size = (size_t)chroma_stride * (size_t)(height / 2);
	/* aligned_alloc wants a multiple of the alignment. */
	size_t total = (luma_size + 2 * chroma_size + STRIDE_ALIGN) / STRIDE_ALIGN * STRIDE_ALIGN;
	uint8_t *mem = aligned_alloc(STRIDE_ALIGN, total);
	memset(frame, 0, sizeof(*frame));
	if (!mem)
		return -ENOMEM;
	frame->width = width;
	frame->height = height;
	frame->plane[0] = mem;
	frame->plane[1] = mem + luma_size;
	frame->plane[2] = mem + luma_size + chroma_size;
	frame->stride[0] = luma_stride;
	frame->stride[1] = chroma_stride;
	frame->stride[2] = chroma_stride;
	return 0;
}

void pc_frame_free(struct pc_frame *frame)
{
	free(frame->plane[0]); /* the one allocation: the other planes follow it */
	memset(frame, 0, sizeof(*frame));
}

/* Destination index d of n maps to source position (d + 0.5) * src / dst - 0.5 (centres
 * line up), in 1/256ths, clamped to the source: the two neighbours and the second's weight. */
static int axis_init(int src, int dst, int32_t **i0, int32_t **i1, uint16_t **w)
{
	*i0 = malloc(sizeof(**i0) * (size_t)dst);
	*i1 = malloc(sizeof(**i1) * (size_t)dst);
	*w = malloc(sizeof(**w) * (size_t)dst);
	if (!*i0 || !*i1 || !*w)
		return -ENOMEM;
	for (int d = 0; d < dst; d++) {
		int64_t pos = ((int64_t)(2 * d + 1) * src * 256) / (2 * dst) - 128;
		if (pos < 0)
			pos = 0;
		if (pos > (int64_t)(src - 1) * 256)
			pos = (int64_t)(src - 1) * 256;
		int32_t a = (int32_t)(pos / 256);
		(*i0)[d] = a;
		(*i1)[d] = a + 1 < src ? a + 1 : a;
		(*w)[d] = (uint16_t)(pos % 256);
	}
	return 0;
}

static void plane_destroy(struct pc_scaler_plane *p)
{
	free(p->x0);
	free(p->x1);
	free(p->wx);
	free(p->y0);
	free(p->y1);
	free(p->wy);
	memset(p, 0, sizeof(*p));
}

static int plane_init(struct pc_scaler_plane *p, int src_w, int src_h, int dst_w, int dst_h)
{
	memset(p, 0, sizeof(*p));
	p->src_w = src_w;
	p->src_h = src_h;
	p->dst_w = dst_w;
	p->dst_h = dst_h;
	p->box = src_w == 2 * dst_w && src_h == 2 * dst_h;
	if (p->box)
		return 0;
	if (axis_init(src_w, dst_w, &p->x0, &p->x1, &p->wx) < 0 ||
	    axis_init(src_h, dst_h, &p->y0, &p->y1, &p->wy) < 0) {
		plane_destroy(p);
		return -ENOMEM;
	}
	return 0;
}

int pc_scaler_init(struct pc_scaler *scaler, int src_w, int src_h, int dst_w, int dst_h)
{
	memset(scaler, 0, sizeof(*scaler));
	if (src_w < 2 || src_h < 2 || dst_w < 2 || dst_h < 2 || src_w % 2 || src_h % 2 || dst_w % 2 ||
	    dst_h % 2)
		return -EINVAL;
	if (plane_init(&scaler->plane[0], src_w, src_h, dst_w, dst_h) < 0 ||
	    plane_init(&scaler->plane[1], src_w / 2, src_h / 2, dst_w / 2, dst_h / 2) < 0) {
		pc_scaler_destroy(scaler);
		return -ENOMEM;
	}
	return 0;
}

void pc_scaler_destroy(struct pc_scaler *scaler)
{
	plane_destroy(&scaler->plane[0]);
	plane_destroy(&scaler->plane[1]);
}

static void scale_box(const struct pc_scaler_plane *p, const uint8_t *src, int src_stride,
		      uint8_t *dst, int dst_stride)
{
	for (int y = 0; y < p->dst_h; y++) {
		const uint8_t *r0 = src + (size_t)(2 * y) * src_stride;
		const uint8_t *r1 = r0 + src_stride;
		uint8_t *out = dst + (size_t)y * dst_stride;
		/* Plain loop: compilers vectorize it (pairwise adds). */
		for (int x = 0; x < p->dst_w; x++)
			out[x] = (uint8_t)((r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1] + 2) >> 2);
	}
}

static void scale_bilinear(const struct pc_scaler_plane *p, const uint8_t *src, int src_stride,
			   uint8_t *dst, int dst_stride)
{
	for (int y = 0; y < p->dst_h; y++) {
		const uint8_t *r0 = src + (size_t)p->y0[y] * src_stride;
		const uint8_t *r1 = src + (size_t)p->y1[y] * src_stride;
		uint32_t wy = p->wy[y];
		uint8_t *out = dst + (size_t)y * dst_stride;
		for (int x = 0; x < p->dst_w; x++) {
			uint32_t a = p->x0[x], b = p->x1[x], wx = p->wx[x];
			uint32_t top = r0[a] * (256 - wx) + r0[b] * wx;
			uint32_t bottom = r1[a] * (256 - wx) + r1[b] * wx;
			out[x] = (uint8_t)((top * (256 - wy) + bottom * wy + 32768) >> 16);
		}
	}
}

void pc_scaler_run(const struct pc_scaler *scaler, const struct pc_frame *src, struct pc_frame *dst)
{
	for (int i = 0; i < 3; i++) {
		const struct pc_scaler_plane *p = &scaler->plane[i == 0 ? 0 : 1];
		if (p->box)
			scale_box(p, src->plane[i], src->stride[i], dst->plane[i], dst->stride[i]);
		else
			scale_bilinear(p, src->plane[i], src->stride[i], dst->plane[i], dst->stride[i]);
	}
}
