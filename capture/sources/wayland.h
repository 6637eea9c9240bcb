/* The wayland source: one output of a wlroots compositor (sway), captured with wlr-screencopy
 * (zwlr_screencopy_manager_v1, version 2 or later for copy_with_damage) over libwayland-client.
 *
 * Damage-driven (source.h's wait_fd and take): a capture thread ("pc-wayland") keeps one
 * copy_with_damage request outstanding into one of a pair of shared-memory buffers. The
 * compositor answers only when something on the output changed; the thread then publishes the
 * buffer as the newest picture, with the damage rectangles, and asks for the next one into the
 * other buffer. take() converts only the damaged rectangles (widened to even edges) of the
 * newest buffer into the I420 picture it keeps (libyuv), so a small change costs little; pictures
 * that came between two take()s are coalesced (the older buffer is reused, its damage added to
 * the newer one's).
 *
 * Size: the output's own, an odd width or height cropped by one pixel (the last column or row),
 * or with pc_source_config width and height the output scaled to fit them (aspect kept, centred,
 * black bars). A mode change of the output is followed: the next picture has the new size.
 *
 * capture_ns: the compositor's presentation time of the copied frame (the ready event, in
 * CLOCK_MONOTONIC for wlroots), moved to CLOCK_REALTIME by the offset between the two clocks
 * when the event arrives; the arrival time itself when the timestamp is not plausible (another
 * clock, more than a second old or in the future).
 *
 * The source fails for good (take() < 0, with the reason) when the connection to the compositor
 * is lost, when the output is removed, or after many copies in a row fail. Output transforms are
 * not applied: a rotated output comes as the compositor stores it. */
#ifndef PC_WAYLAND_H
#define PC_WAYLAND_H

#include <stdbool.h>
#include <stddef.h>

#include "source.h"

/* The source's own settings; its ops' init takes the defaults (the first output, cursor drawn). */
struct pc_wayland_options {
	const char *output; /* the output's name (wl_output v4 or xdg-output), NULL = the first */
	bool cursor;        /* the pointer drawn into the picture (overlay_cursor) */
};

extern const struct pc_source_ops pc_wayland_source;

/* pc_wayland_source's init with options. -EINVAL when no output has that name (err lists the
 * outputs there are), -ENOTSUP when the compositor has no screencopy. */
int pc_wayland_init(void **state, const struct pc_source_config *config, const struct pc_wayland_options *options,
		    char *err, size_t err_size);

#endif
