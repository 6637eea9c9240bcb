/* A private PipeWire daemon for tests, and a screen-cast-like video source node on it.
 *
 * The daemon is `pipewire` (Debian's pipewire-bin) with a minimal config of its own (the native
 * protocol, client nodes, the adapter, the link factory and the access module; no session
 * manager, no devices) in a fresh XDG_RUNTIME_DIR (0700), which this process then points its own
 * XDG_RUNTIME_DIR at, for the clients here and the producers they spawn. Stop kills it by its PID
 * and removes the directory.
 *
 * The source stands in for mutter's screen cast: a pw_stream OUTPUT driver node that sends a
 * buffer only when its picture changed (one queued change per buffer, at most --fps a second),
 * stamps the header's pts with CLOCK_MONOTONIC, and carries VideoDamage (and, when asked,
 * cursor) metadata. Without a session manager it links consumers itself, as wireplumber would:
 * every new Stream/Input/Video node is linked to it. */
#ifndef PC_TEST_PIPEWIRE_LAB_H
#define PC_TEST_PIPEWIRE_LAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../sources/source.h"

struct pc_test_pw_lab {
	char dir[64];      /* the daemon's XDG_RUNTIME_DIR */
	char path[3][128]; /* config, log, the socket */
	pid_t pid;
	char saved_runtime_dir[256];
	bool had_runtime_dir;
};

/* Starts the daemon and points XDG_RUNTIME_DIR at it (PIPEWIRE_REMOTE and PIPEWIRE_RUNTIME_DIR
 * unset). 1 when it runs; 0 when the test must be skipped (pipewire is not installed); -1 when
 * it failed; why says which. */
int pc_test_pw_lab_start(struct pc_test_pw_lab *lab, char *why, size_t why_size);
/* Kills the daemon by its PID if it still runs, prints its log when show_log, removes the
 * directory and restores XDG_RUNTIME_DIR. */
void pc_test_pw_lab_stop(struct pc_test_pw_lab *lab, bool show_log);

struct pc_test_pw_src_config {
	int width, height;
	uint32_t colour;     /* the first picture, 0xRRGGBB */
	uint32_t format;     /* SPA_VIDEO_FORMAT_BGRx (also when 0), _RGBx, _BGRA or _RGBA */
	bool no_damage_meta; /* offer no VideoDamage metadata */
	bool cursor_meta;    /* offer cursor metadata (the pointer drawn by the consumer) */
	bool no_link;        /* link nothing (a daemon with no session manager) */
	int fps;             /* 0 = 30 */
};

/* The test's source node; its functions are safe to call from the test's thread. */
struct pc_test_pw_src;

/* Connects to the lab's daemon and waits until the node and its port are there. 0, or -1 with
 * why set. */
int pc_test_pw_src_start(struct pc_test_pw_src **src, const struct pc_test_pw_src_config *config, char *why,
			 size_t why_size);
uint32_t pc_test_pw_src_node(const struct pc_test_pw_src *src);
/* Paints r and sends it: one buffer, its damage exactly r. Queued: one change per buffer, one
 * buffer per frame tick. */
void pc_test_pw_src_fill(struct pc_test_pw_src *src, struct pc_rect r, uint32_t colour);
/* Paints r without saying so: no buffer, no damage (later buffers carry the pixels). */
void pc_test_pw_src_fill_quiet(struct pc_test_pw_src *src, struct pc_rect r, uint32_t colour);

enum pc_test_pw_bad {
	PC_TEST_PW_EMPTY,          /* chunk size 0 */
	PC_TEST_PW_CORRUPT_HEADER, /* the header says SPA_META_HEADER_FLAG_CORRUPTED */
	PC_TEST_PW_CORRUPT_CHUNK,  /* the chunk says SPA_CHUNK_FLAG_CORRUPTED */
};
/* Sends a buffer that must be ignored: all of it painted colour (not kept in the picture),
 * damaged all over. */
void pc_test_pw_src_send_bad(struct pc_test_pw_src *src, enum pc_test_pw_bad kind, uint32_t colour);
/* Moves the pointer (cursor metadata: a 16x16 image, hotspot 0,0, opaque magenta on its top
 * half, black at alpha 128 on its bottom half) with a cursor-only buffer as GNOME sends one (no
 * pixels: size 0, CORRUPTED). Later buffers carry it too. */
void pc_test_pw_src_cursor(struct pc_test_pw_src *src, int x, int y, bool visible);
#define PC_TEST_PW_CURSOR_COLOUR 0xff00ffu
#define PC_TEST_PW_CURSOR_SIZE 16
/* Changes the node's size: the picture becomes width x height of colour and the format is
 * renegotiated with the consumer. */
void pc_test_pw_src_resize(struct pc_test_pw_src *src, int width, int height, uint32_t colour);
/* What changes on every frame tick, with nothing queued. */
enum pc_test_pw_animation {
	PC_TEST_PW_STILL,
	PC_TEST_PW_SQUARE, /* a 64x64 square moves 8 pixels */
	PC_TEST_PW_ALL,    /* the whole picture changes colour */
};
void pc_test_pw_src_animate(struct pc_test_pw_src *src, enum pc_test_pw_animation animation);
/* Waits until every queued change went out; 0, or -1 after timeout_ms. */
int pc_test_pw_src_wait_sent(struct pc_test_pw_src *src, int timeout_ms);
/* Buffers sent so far. */
uint64_t pc_test_pw_src_sent(struct pc_test_pw_src *src);
/* Whether a consumer is linked and the node streams, waiting up to timeout_ms for it. */
bool pc_test_pw_src_streaming(struct pc_test_pw_src *src, int timeout_ms);
/* Removes the node (as when the user stops sharing) and disconnects. NULL is fine. */
void pc_test_pw_src_stop(struct pc_test_pw_src *src);

#endif
