/* BGRx/RGBx -> I420 by damaged rectangle, and fitting a picture into another size: see
 * convert.h. */
#include "convert.h"

#include <stdio.h>
#include <string.h>

#include <libyuv.h>

/* Limited-range BT.601 black, what libyuv's ARGBToI420 gives for (0, 0, 0). */
#define BLACK_Y 16
#define BLACK_UV 128

bool pc_convert_format_known(uint32_t shm_format)
{
	return shm_format == PC_SHM_XRGB8888 || shm_format == PC_SHM_ARGB8888 ||
	       shm_format == PC_SHM_XBGR8888 || shm_format == PC_SHM_ABGR8888;
}

const char *pc_convert_format_name(uint32_t shm_format, char *buf, size_t size)
{
	switch (shm_format) {
	case PC_SHM_XRGB8888:
		return "XRGB8888";
	case PC_SHM_ARGB8888:
		return "ARGB8888";
	case PC_SHM_XBGR8888:
		return "XBGR8888";
	case PC_SHM_ABGR8888:
		return "ABGR8888";
	default:
		snprintf(buf, size, "0x%08x", shm_format);
		return buf;
	}
}

static int floor_even(int v)
{
	return v & ~1;
}

bool pc_rect_even(struct pc_rect *r, int width, int height)
{
	int x0 = r->x, y0 = r->y;
	/* 64-bit ends: a compositor's uint32 damage may be anything. */
	int64_t x1 = (int64_t)r->x + r->w, y1 = (int64_t)r->y + r->h;
	if (r->w <= 0 || r->h <= 0)
		return false;
	x0 = x0 < 0 ? 0 : floor_even(x0);
	y0 = y0 < 0 ? 0 : floor_even(y0);
	x1 = x1 > width ? width : (x1 + 1) & ~(int64_t)1;
	y1 = y1 > height ? height : (y1 + 1) & ~(int64_t)1;
	if (x1 <= x0 || y1 <= y0)
		return false;
	*r = (struct pc_rect){x0, y0, (int)x1 - x0, (int)y1 - y0};
	return true;
}

struct pc_rect pc_rect_union(struct pc_rect a, struct pc_rect b)
{
	if (a.w <= 0 || a.h <= 0)
		return b;
	if (b.w <= 0 || b.h <= 0)
		return a;
	int x0 = a.x < b.x ? a.x : b.x, y0 = a.y < b.y ? a.y : b.y;
	int x1 = a.x + a.w > b.x + b.w ? a.x + a.w : b.x + b.w;
	int y1 = a.y + a.h > b.y + b.h ? a.y + a.h : b.y + b.h;
	return (struct pc_rect){x0, y0, x1 - x0, y1 - y0};
}

void pc_damage_clear(struct pc_damage *d)
{
	d->n = 0;
}

struct pc_rect pc_damage_bounds(const struct pc_damage *d)
{
	struct pc_rect b = {0, 0, 0, 0};
	for (int i = 0; i < d->n; i++)
		b = pc_rect_union(b, d->rect[i]);
	return b;
}

void pc_damage_add(struct pc_damage *d, struct pc_rect r)
{
	if (r.w <= 0 || r.h <= 0)
		return;
	/* Already covered (a cursor blinking in one place, the same window redrawn): nothing new. */
	for (int i = 0; i < d->n; i++) {
		const struct pc_rect *c = &d->rect[i];
		if (r.x >= c->x && r.y >= c->y && r.x + r.w <= c->x + c->w && r.y + r.h <= c->y + c->h)
			return;
	}
	if (d->n == PC_DAMAGE_MAX) {
		/* Many small pieces: one box converts a few more pixels but stays one libyuv call. */
		d->rect[0] = pc_rect_union(pc_damage_bounds(d), r);
		d->n = 1;
		return;
	}
	d->rect[d->n++] = r;
}

void pc_damage_merge(struct pc_damage *d, const struct pc_damage *from)
{
	for (int i = 0; i < from->n; i++)
		pc_damage_add(d, from->rect[i]);
}

void pc_convert_rect(const struct pc_pixels *src, struct pc_frame *dst, struct pc_rect r)
{
	/* A y-inverted buffer holds picture row y in buffer row height - 1 - y: start at the
	 * rectangle's top row there and walk the buffer upwards. */
	int src_row = src->y_invert ? src->height - 1 - r.y : r.y;
	int src_stride = src->y_invert ? -src->stride : src->stride;
	const uint8_t *in = src->data + (ptrdiff_t)src_row * src->stride + (ptrdiff_t)r.x * 4;
	uint8_t *y = dst->plane[0] + (ptrdiff_t)r.y * dst->stride[0] + r.x;
	uint8_t *u = dst->plane[1] + (ptrdiff_t)(r.y / 2) * dst->stride[1] + r.x / 2;
	uint8_t *v = dst->plane[2] + (ptrdiff_t)(r.y / 2) * dst->stride[2] + r.x / 2;

	if (src->format == PC_SHM_XBGR8888 || src->format == PC_SHM_ABGR8888)
		ABGRToI420(in, src_stride, y, dst->stride[0], u, dst->stride[1], v, dst->stride[2], r.w, r.h);
	else
		ARGBToI420(in, src_stride, y, dst->stride[0], u, dst->stride[1], v, dst->stride[2], r.w, r.h);
}

void pc_convert_fit(const struct pc_frame *src, struct pc_frame *dst, struct pc_rect *placed)
{
	/* The largest even rectangle of src's aspect inside dst. */
	int64_t w = dst->width, h = (int64_t)src->height * dst->width / src->width;
	if (h > dst->height) {
		h = dst->height;
		w = (int64_t)src->width * dst->height / src->height;
	}
	struct pc_rect p = {floor_even((dst->width - (int)w) / 2), floor_even((dst->height - (int)h) / 2),
			    floor_even((int)w), floor_even((int)h)};
	if (p.w < 2)
		p.w = 2;
	if (p.h < 2)
		p.h = 2;

	/* The bars: above, below, left and right of the picture. */
	struct pc_rect bars[4] = {
		{0, 0, dst->width, p.y},
		{0, p.y + p.h, dst->width, dst->height - p.y - p.h},
		{0, p.y, p.x, p.h},
		{p.x + p.w, p.y, dst->width - p.x - p.w, p.h},
	};
	for (int i = 0; i < 4; i++)
		if (bars[i].w > 0 && bars[i].h > 0)
			I420Rect(dst->plane[0], dst->stride[0], dst->plane[1], dst->stride[1], dst->plane[2],
				 dst->stride[2], bars[i].x, bars[i].y, bars[i].w, bars[i].h, BLACK_Y, BLACK_UV,
				 BLACK_UV);

	I420Scale(src->plane[0], src->stride[0], src->plane[1], src->stride[1], src->plane[2], src->stride[2],
		  src->width, src->height, dst->plane[0] + (ptrdiff_t)p.y * dst->stride[0] + p.x, dst->stride[0],
		  dst->plane[1] + (ptrdiff_t)(p.y / 2) * dst->stride[1] + p.x / 2, dst->stride[1],
		  dst->plane[2] + (ptrdiff_t)(p.y / 2) * dst->stride[2] + p.x / 2, dst->stride[2], p.w, p.h,
		  kFilterBox);
	if (placed)
		*placed = p;
}
