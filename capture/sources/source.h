/* Picture sources: something that hands out I420 frames on request.
 *
 * A source owns its frame buffer and returns the same frame each time, rewritten. That
 * lets a synthetic source redraw only what changed, and the encoder copies the picture
 * in anyway. */
#ifndef PC_SOURCE_H
#define PC_SOURCE_H

#include <stddef.h>
#include <stdint.h>

/* An I420 picture: full-resolution luma, then U and V at half width and half height. */
struct pc_frame {
	int width;
	int height;
	uint8_t *plane[3];
	int stride[3];
};

struct pc_source_config {
	int width;  /* even */
	int height; /* even */
	uint32_t fps_num;
	uint32_t fps_den;
	const char *pattern; /* what a synthetic source draws; NULL = its default */
};

struct pc_source_ops {
	const char *name;
	/* Returns 0; -EINVAL when the config is refused, another negative errno otherwise;
	 * err then holds a one-line reason. */
	int (*init)(void **state, const struct pc_source_config *config, char *err, size_t err_size);
	/* Produces picture number seq, taken at capture_ns (CLOCK_REALTIME). The frame stays
	 * valid until the next call or destroy. NULL on failure. */
	const struct pc_frame *(*next_frame)(void *state, uint32_t seq, int64_t capture_ns);
	void (*destroy)(void *state);
};

#endif
