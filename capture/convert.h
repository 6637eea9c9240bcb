/* From a compositor's 32-bit pixels to I420, one damaged rectangle at a time (libyuv).
 *
 * A screen-capture source keeps one I420 picture and, for each new capture, converts only what
 * changed into it: the damage rectangles, widened to even edges (a 2x2 block of luma shares
 * one chroma sample, so a rectangle must start and end on one). Damage is kept as a short list
 * of rectangles, collapsed into their bounding box when it fills up. */
#ifndef PC_CONVERT_H
#define PC_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include "sources/source.h"

/* The wl_shm formats converted (values of wl_shm.format: DRM fourccs, except 0 and 1). Little
 * endian, so XRGB8888 is B, G, R, X in memory: libyuv's "ARGB"; XBGR8888 is libyuv's "ABGR". */
#define PC_SHM_ARGB8888 0u
#define PC_SHM_XRGB8888 1u
#define PC_SHM_ABGR8888 0x34324241u /* 'AB24' */
#define PC_SHM_XBGR8888 0x34324258u /* 'XB24' */

/* Whether pc_convert_rect() takes pixels of this wl_shm format. */
bool pc_convert_format_known(uint32_t shm_format);
/* "XRGB8888" and so on, or "0x%08x" into buf for others. */
const char *pc_convert_format_name(uint32_t shm_format, char *buf, size_t size);

/* Pixels as the compositor wrote them: rows top to bottom, or bottom to top when y_invert. */
struct pc_pixels {
	const uint8_t *data;
	int width, height, stride;
	uint32_t format; /* one of PC_SHM_* */
	bool y_invert;
};

/* Widens r to even edges and clips it to width x height (both even). False when nothing is
 * left. */
bool pc_rect_even(struct pc_rect *r, int width, int height);
/* The smallest rectangle holding a and b (an empty one counts as nothing). */
struct pc_rect pc_rect_union(struct pc_rect a, struct pc_rect b);

#define PC_DAMAGE_MAX 8

struct pc_damage {
	int n;
	struct pc_rect rect[PC_DAMAGE_MAX];
};

void pc_damage_clear(struct pc_damage *d);
/* Adds r (ignored when empty); when the list is full, it becomes its bounding box. */
void pc_damage_add(struct pc_damage *d, struct pc_rect r);
/* Adds every rectangle of from to d. */
void pc_damage_merge(struct pc_damage *d, const struct pc_damage *from);
/* The bounding box of all of d ({0} when empty). */
struct pc_rect pc_damage_bounds(const struct pc_damage *d);

/* Converts rectangle r of src into the same place of dst. r must be even-edged (pc_rect_even)
 * and inside both. */
void pc_convert_rect(const struct pc_pixels *src, struct pc_frame *dst, struct pc_rect r);

/* Scales src into dst keeping its aspect ratio, centred, black bars around it (libyuv's box
 * filter: text stays legible when shrunk). *placed says where the picture went (even edges). */
void pc_convert_fit(const struct pc_frame *src, struct pc_frame *dst, struct pc_rect *placed);

#endif
