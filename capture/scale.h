/* Downscaling I420 pictures, for a second (smaller) rendition of the same capture.
 *
 * Each plane is scaled on its own: a 2x2 box (the mean of four pixels, rounded) where the plane
 * is exactly halved, as 1280x720 -> 640x360 is, and bilinear otherwise, sampling at the
 * destination pixel's centre mapped into the source. Both are integer-only, and the
 * per-column positions and weights are computed once, at init. */
#ifndef PC_SCALE_H
#define PC_SCALE_H

#include <stdbool.h>
#include <stdint.h>

#include "sources/source.h"

struct pc_scaler_plane {
	int src_w, src_h, dst_w, dst_h;
	bool box;           /* exactly halved: 2x2 box, no tables */
	int32_t *x0, *x1;   /* bilinear: the two source columns of each destination column */
	uint16_t *wx;       /* ... and the second one's weight, out of 256 */
	int32_t *y0, *y1;   /* the same for rows */
	uint16_t *wy;
};

struct pc_scaler {
	struct pc_scaler_plane plane[2]; /* luma, then chroma (U and V alike) */
};

/* Both sizes even and at least 2. 0, -EINVAL or -ENOMEM. */
int pc_scaler_init(struct pc_scaler *scaler, int src_w, int src_h, int dst_w, int dst_h);
void pc_scaler_destroy(struct pc_scaler *scaler);
/* Scales src (the init's source size) into dst (its destination size). */
void pc_scaler_run(const struct pc_scaler *scaler, const struct pc_frame *src, struct pc_frame *dst);

/* An I420 frame of its own, strides padded for the encoder's SIMD loads. 0 or -ENOMEM. */
int pc_frame_alloc(struct pc_frame *frame, int width, int height);
void pc_frame_free(struct pc_frame *frame);

#endif
