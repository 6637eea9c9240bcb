/* The pipewire source: a PipeWire screen-cast stream, as the xdg-desktop-portal of GNOME and KDE
 * hands one out (ScreenCast.Start gives the stream's node id, ScreenCast.OpenPipeWireRemote a
 * connection to the PipeWire daemon that can see it), or any video node of a PipeWire daemon of
 * one's own.
 *
 * A pw_stream (media.type Video, media.category Capture, media.role Screen) connected as an
 * input to the node, on a pw_thread_loop ("pc-pipewire"). It offers BGRx, RGBx, BGRA and RGBA
 * at any size and frame rate (the most pictures a second asked for, maxFramerate, is --fps),
 * shared-memory buffers only (MemPtr or MemFd; DMA-BUF is not imported), and asks for the
 * header (pts), damage (VideoDamage) and cursor metadata.
 *
 * Damage-driven (source.h's wait_fd and take), like the wayland source: the newest buffer is
 * held until take(), buffers that come before it are coalesced (the older one goes back to the
 * producer, its damage added to the newer one's), and take() converts only the damaged
 * rectangles into the I420 picture it keeps (libyuv). A buffer without damage metadata counts as
 * all changed; one marked corrupted (its header, or its chunk) or empty (chunk size 0: GNOME's
 * "cursor only" buffers) brings no pixels, only its cursor metadata.
 *
 * Cursor: with cursor_mode metadata the compositor sends the pointer apart from the picture; it is
 * drawn in (alpha-blended) unless options say not to, and moving it damages where it was and
 * where it is. With cursor_mode embedded it is already in the pixels.
 *
 * Size: the stream's own, odd sides cropped by one pixel, or fitted into pc_source_config's
 * width and height (aspect kept, black bars), as the wayland source does. A new format from the
 * producer (a monitor's mode change) is followed: the next picture has the new size.
 *
 * capture_ns: the buffer's header pts (CLOCK_MONOTONIC, as mutter and KWin stamp it) moved to
 * CLOCK_REALTIME, or the arrival time when there is none or it is implausible (over a second old,
 * in the future).
 *
 * The source fails for good (take() < 0 with the reason) when the node is removed (the user
 * stopped sharing), the stream errors, or the connection to the daemon is lost. */
#ifndef PC_PIPEWIRE_H
#define PC_PIPEWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "source.h"

#define PC_PIPEWIRE_START_TIMEOUT_MS 5000

struct pc_pipewire_options {
	/* A connection to the daemon (ScreenCast.OpenPipeWireRemote's fd, inherited): the source
	 * owns it from init on, whatever init returns. -1: connect to the default daemon
	 * ($PIPEWIRE_REMOTE, else pipewire-0 in $PIPEWIRE_RUNTIME_DIR or $XDG_RUNTIME_DIR). */
	int fd;
	uint32_t node;         /* the stream's node id */
	bool cursor;           /* draw the cursor metadata into the picture */
	int start_timeout_ms;  /* how long the stream may take to start; 0 = PC_PIPEWIRE_START_TIMEOUT_MS */
};

/* Its ops' init refuses (-EINVAL): a node id is needed, so the producer calls pc_pipewire_init. */
extern const struct pc_source_ops pc_pipewire_source;

/* Connects, and waits until the node streams to us. -EINVAL for an fd that is not an open socket,
 * -ECONNREFUSED when the daemon cannot be reached, -ENODEV when the daemon lists no such node,
 * -ETIMEDOUT when the node did not start streaming in time, another negative errno otherwise;
 * err then holds a one-line reason. */
int pc_pipewire_init(void **state, const struct pc_source_config *config, const struct pc_pipewire_options *options,
		     char *err, size_t err_size);

/* The stream's own node id (for tests: the node a session manager links), SPA_ID_INVALID when it
 * has none. */
uint32_t pc_pipewire_node_id(void *state);

#endif
