/* A real headless sway for tests (and weston, a compositor without wlr-screencopy), and a window
 * of known colours on it.
 *
 * sway refuses to run as root: it runs as uid 65534 (setpriv) with the headless backend, the
 * pixman renderer and one output (HEADLESS-1), in a fresh XDG_RUNTIME_DIR (0700, owned by
 * 65534). Root clients can use its socket. Every wait has a deadline; stop kills sway by its PID
 * and removes the directory. */
#ifndef PC_TEST_SWAY_H
#define PC_TEST_SWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../sources/source.h"

struct pc_test_sway {
	char dir[64];   /* its XDG_RUNTIME_DIR */
	char path[4][128]; /* config, log, the Wayland socket, the IPC socket */
	pid_t pid;
};

/* Starts sway with HEADLESS-1 at width x height (one tiled window fills it: no borders, no
 * gaps, no bar) and points this process's WAYLAND_DISPLAY and XDG_RUNTIME_DIR at it, for
 * clients here and the producers they spawn. 1 when it runs; 0 when the test must be skipped
 * (not root, sway not installed), -1 when it failed; why says which. */
int pc_test_sway_start(struct pc_test_sway *s, int width, int height, char *why, size_t why_size);
/* A second sway inside outer (its wayland backend), with two outputs, WL-1 and WL-2, each a
 * window of outer's titled "wlroots - WL-N": killing that window (pc_test_sway_msg on outer,
 * [title="wlroots - WL-2"] kill) removes the output, as unplugging a screen does (headless
 * outputs cannot be removed, and disabling one keeps its wl_output). Points this process at the
 * inner one. Same returns as pc_test_sway_start. */
int pc_test_sway_start_nested(struct pc_test_sway *s, const struct pc_test_sway *outer, char *why, size_t why_size);
/* weston (headless backend), a compositor that is not wlroots: no wlr-screencopy. Same returns
 * as pc_test_sway_start; pc_test_sway_msg does not apply, pc_test_sway_stop does. */
int pc_test_weston_start(struct pc_test_sway *s, char *why, size_t why_size);
/* Kills sway (by PID) if it still runs, prints its log when show_log, removes the directory. */
void pc_test_sway_stop(struct pc_test_sway *s, bool show_log);
/* Runs swaymsg COMMAND against it; 0 when swaymsg succeeded. */
int pc_test_sway_msg(const struct pc_test_sway *s, const char *command);
/* Whether sway still runs; false after it died (its exit reaped). */
bool pc_test_sway_alive(struct pc_test_sway *s);

/* A window (xdg_toplevel, wl_shm XRGB8888) painted in colours the test chooses, on its own
 * connection. Colours are 0xRRGGBB. */
struct pc_test_window;

/* Opens it, filled with colour, and waits until sway has configured, sized and shown it. */
int pc_test_window_open(struct pc_test_window **w, uint32_t colour);
/* Paints r (clipped to the window), damages only r, commits. */
int pc_test_window_fill(struct pc_test_window *w, struct pc_rect r, uint32_t colour);
/* Handles what sway sent (a resize: the whole window repainted in its first colour at the new
 * size), for up to timeout_ms or until the window is width x height (0: just one pass).
 * 0, or -1 on a lost connection or a timeout. */
int pc_test_window_wait_size(struct pc_test_window *w, int width, int height, int timeout_ms);
void pc_test_window_size(const struct pc_test_window *w, int *width, int *height);
void pc_test_window_close(struct pc_test_window *w);

#endif
