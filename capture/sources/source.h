/* Picture sources: something that hands out I420 frames.
 *
 * A source owns its frame buffer and returns the same frame each time, rewritten. That
 * lets a synthetic source redraw only what changed, and the encoder copies the picture
 * in anyway.
 *
 * Two kinds: a source drawn on the producer's fixed tick (the test pattern: next_frame), and a
 * damage-driven one (a screen: wait_fd and take), whose pictures come when something changed,
 * and only then. */
#ifndef PC_SOURCE_H
#define PC_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An I420 picture: full-resolution luma, then U and V at half width and half height. */
struct pc_frame {
	int width;
	int height;
	uint8_t *plane[3];
	int stride[3];
};

/* A rectangle of a picture, in pixels. */
struct pc_rect {
	int x, y, w, h;
};

/* Settings every source takes; a source's own (a screen's output) go through its own entry
 * point (e.g. pc_wayland_init), its init taking the defaults. */
struct pc_source_config {
	int width;  /* even; 0 (with height 0) = a damage-driven source's own size */
	int height; /* even */
	uint32_t fps_num;
	uint32_t fps_den;
	const char *pattern; /* what a synthetic source draws; NULL = its default */
};

/* A damage-driven source's picture. */
struct pc_source_picture {
	const struct pc_frame *frame; /* valid until the next take() or destroy() */
	int64_t capture_ns;           /* CLOCK_REALTIME */
	/* The bounding box of what changed since the previous picture, in frame's pixels (the
	 * whole frame for the first one, and after a size change). */
	struct pc_rect damage;
	/* A source of already-encoded pictures (a camera's own H.264) sets au instead of filling
	 * frame's planes: one Annex-B access unit, sent as it is (no encoder), valid like frame.
	 * frame then says only the size (planes NULL). Every access unit must go out, in order: none
	 * is coalesced or repeated. */
	const uint8_t *au;
	size_t au_size;
	bool keyframe; /* au holds an IDR slice */
	/* Which rendition au is of: 0, the main one; 1, the sub one, from a source asked to encode
	 * a sub stream of its own (the rkmpi camera: a second encoder channel fed by the ISP at the
	 * smaller size). frame then says the sub stream's size. Sources that encode one stream leave
	 * it 0. */
	int rendition;
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

	/* Damage-driven sources set these two (and no next_frame); fixed-tick ones leave them
	 * NULL. The producer then encodes a picture when one is ready, and nothing while the
	 * source has nothing new (but for its keep-alive).
	 * wait_fd: a descriptor that polls readable when take() has news: a new picture, or a
	 * failure. Owned by the source. */
	int (*wait_fd)(void *state);
	/* 1 with the newest picture in *out (pictures that came since the last call are
	 * coalesced: their damage is united), 0 when nothing changed since the last call, or a
	 * negative errno when the source failed for good (the compositor went away, the output
	 * was removed), err then holding a one-line reason. Makes wait_fd unreadable again until
	 * there is news. The picture's size may differ from the previous one's. */
	int (*take)(void *state, struct pc_source_picture *out, char *err, size_t err_size);

	/* Sources of already-encoded pictures may set these (NULL: not supported): the device's
	 * keyframe request and bitrate passed on to whatever encodes. 0, -ENOTSUP when the
	 * hardware cannot, or another negative errno. */
	int (*request_keyframe)(void *state);
	int (*set_bitrate)(void *state, uint32_t bitrate);
	/* The same for the sub rendition, from a source that encodes it too (rendition 1). */
	int (*request_keyframe_sub)(void *state);
	int (*set_bitrate_sub)(void *state, uint32_t bitrate);
};

#endif
