/* Motion detection on the raw pictures the producer already has, before they are encoded
 * (docs/motion.md).
 *
 * A subsample of the pictures (--motion-fps, 10 a second by default) is analysed: the luma is
 * box-averaged down to about 320 pixels wide, the small picture is compared with the one
 * analysed before it (not a slowly updated background: see motion.c), and each cell of a
 * PC_MOTION_GRID_W x PC_MOTION_GRID_H grid over the picture counts as changed when its mean
 * absolute luma difference is over a threshold that the sensitivity sets. A picture shows
 * motion when enough cells not under the mask changed; an event starts after min_duration of
 * pictures with motion and ends after hold without.
 *
 * The module draws nothing, sends nothing and logs nothing: pc_motion_feed() returns the
 * event edges and the caller sends them (capture/ipc.h, PC_IPC_EVENT). */
#ifndef PC_MOTION_H
#define PC_MOTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sources/source.h"

#define PC_MOTION_GRID_W 32
#define PC_MOTION_GRID_H 18
#define PC_MOTION_MAX_MASKS 16
#define PC_MOTION_MAX_REGIONS 8

#define PC_MOTION_DEFAULT_SENSITIVITY 50
#define PC_MOTION_DEFAULT_FPS 10
#define PC_MOTION_DEFAULT_MIN_DURATION_MS 500
#define PC_MOTION_DEFAULT_HOLD_MS 2000

/* A box in the picture, each value a share (0..1) of its width or height. */
struct pc_motion_box {
	double x, y, w, h;
};

struct pc_motion_config {
	int sensitivity;         /* 1 (only large, strong changes) .. 100 (the slightest) */
	uint32_t fps;            /* analysed pictures a second, at most; 1..60 */
	int64_t min_duration_ns; /* motion this long starts an event (0: the first picture with it) */
	int64_t hold_ns;         /* no motion this long ends it */
	int n_masks;             /* regions to ignore: a cell whose centre is in one never counts */
	struct pc_motion_box masks[PC_MOTION_MAX_MASKS];
};

/* One edge of an event: its start, or its end (end_ns set). */
struct pc_motion_event {
	uint32_t id;      /* from 1, counted per detector */
	bool end;
	int64_t start_ns; /* capture time of the first picture with its motion */
	int64_t end_ns;   /* end: capture time of the last picture with its motion; start: 0 */
	double score;     /* the largest share of unmasked cells changed at once so far, 0..1 */
	int n_regions;    /* where it moved so far: connected groups of changed cells, boxed */
	struct pc_motion_box regions[PC_MOTION_MAX_REGIONS];
};

struct pc_motion;

/* The defaults above, no mask. */
void pc_motion_config_defaults(struct pc_motion_config *config);
/* "x,y,w,h;x,y,w,h" in shares of the picture (0..1, x+w and y+h at most 1) into config's
 * masks. false (config unchanged) when malformed or more than PC_MOTION_MAX_MASKS. */
bool pc_motion_parse_mask(const char *s, struct pc_motion_config *config);

/* A duration: "2s", "1.5s", "500ms" (the first len bytes of s) into *ns; 0 is allowed. */
bool pc_motion_parse_duration(const char *s, size_t len, int64_t *ns);

/* 0, -EINVAL for a config out of range, or -ENOMEM. */
int pc_motion_init(struct pc_motion **out, const struct pc_motion_config *config);
void pc_motion_destroy(struct pc_motion *m);

/* Offers the picture captured at capture_ns (CLOCK_REALTIME, increasing). It is analysed when
 * one is due by the config's fps, else skipped at the cost of one comparison. Returns 1 with
 * *ev filled when an event started or ended with it, else 0. A picture of another size starts
 * the comparison afresh. */
int pc_motion_feed(struct pc_motion *m, const struct pc_frame *frame, int64_t capture_ns,
		   struct pc_motion_event *ev);
/* For a source that gives pictures only when something changed (a screen): when no picture
 * was offered for a whole analysis period up to now_ns (CLOCK_REALTIME) and an analysis is due,
 * the time counts as a picture without change, so an event still ends after the hold while the
 * screen stays still. 1 with *ev filled when that ended an event, else 0. */
int pc_motion_idle(struct pc_motion *m, int64_t now_ns, struct pc_motion_event *ev);
/* Ends an open event now (the producer is stopping): 1 with *ev filled, 0 when none is open. */
int pc_motion_flush(struct pc_motion *m, struct pc_motion_event *ev);

/* What it cost: pictures analysed, and the time spent analysing them (CLOCK_MONOTONIC ns). */
uint64_t pc_motion_analysed(const struct pc_motion *m);
int64_t pc_motion_busy_ns(const struct pc_motion *m);
/* The changed-cell count of the last analysed picture, and how many make motion (tests). */
int pc_motion_last_changed(const struct pc_motion *m);
int pc_motion_min_cells(const struct pc_motion *m);

#endif
